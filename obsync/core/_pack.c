/* Rows of plain values packed into bytes for crossing processes: `pack(rows, constants) -> bytes | None`,
 * `unpack(blob, constants) -> list`.
 *
 * `rows` is a list of tuples whose items are None, bool, int (64-bit), float, str, bytes, Decimal, date,
 * datetime (naive or UTC), timedelta, a dict with str keys of such values, a tuple of them, or one of
 * `constants` (matched by identity: enum members). `unpack` gives back rows equal to them, value for value and type
 * for type (a datetime's fold included; a Decimal through its exact text). Anything else, of any type not named
 * here or a subclass of one, an int beyond 64 bits, a str that is not valid UTF-8, another time zone: `pack`
 * returns None and the caller pickles the rows as before. The text of dict keys and of a tuple's str items (column
 * names, binlog file names) is written once per blob and shared by the rows unpacked from it, as pickle's memo
 * shares them.
 *
 * Counts, lengths and indices are LEB128 varints, integers zigzagged varints (as small as pickle's).
 *
 * Pickle writes a Decimal through its `__reduce__` and a datetime through a class lookup per value (0.4-0.5 us
 * each); here each is a few bytes written in C.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

static PyObject *decimal_type = NULL;

enum {
    T_NONE = 'N', T_TRUE = 'T', T_FALSE = 'F', T_INT = 'i', T_FLOAT = 'f', T_STR = 's', T_BYTES = 'b',
    T_DECIMAL = 'D', T_DATETIME = 'd', T_DATE = 'a', T_DELTA = 'e', T_DICT = 'M', T_TUPLE = 't', T_CONST = 'c',
    T_NAME = 'K', T_NAME_AGAIN = 'k',
};

#define MAX_DEPTH 8

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
    PyObject *names;     /* str -> index of a name written once */
    PyObject *constants; /* tuple */
} Out;

static int grow(Out *o, Py_ssize_t need)
{
    if (o->len + need <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + need)
        cap *= 2;
    char *b = PyMem_Realloc(o->buf, cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->buf = b;
    o->cap = cap;
    return 0;
}

static int put(Out *o, const void *p, Py_ssize_t n)
{
    if (grow(o, n) < 0)
        return -1;
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

static int put_u8(Out *o, unsigned v)
{
    unsigned char c = (unsigned char)v;
    return put(o, &c, 1);
}

/* An unsigned integer as a LEB128 varint (7 bits a byte, low first). */
static int put_uvar(Out *o, uint64_t v)
{
    unsigned char b[10];
    int n = 0;
    do {
        b[n] = (unsigned char)(v & 127);
        v >>= 7;
        if (v)
            b[n] |= 128;
        n++;
    } while (v);
    return put(o, b, n);
}

/* A signed integer zigzagged into a varint (small magnitudes take a byte or two). */
static int put_i64(Out *o, int64_t v) { return put_uvar(o, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }

/* 1: not packable (the caller pickles), 0: written, -1: error. */
static int put_text(Out *o, PyObject *s, int tag)
{
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear(); /* a lone surrogate: pickle keeps it */
        return 1;
    }
    if (n > UINT32_MAX)
        return 1;
    return put_u8(o, tag) < 0 || put_uvar(o, (uint32_t)n) < 0 || put(o, u, n) < 0 ? -1 : 0;
}

/* A str written once per blob (then by its index). */
static int put_name(Out *o, PyObject *s)
{
    PyObject *at = PyDict_GetItemWithError(o->names, s);
    if (at != NULL)
        return put_u8(o, T_NAME_AGAIN) < 0 || put_uvar(o, (uint32_t)PyLong_AsUnsignedLong(at)) < 0 ? -1 : 0;
    if (PyErr_Occurred())
        return -1;
    int rc = put_text(o, s, T_NAME);
    if (rc != 0)
        return rc;
    PyObject *i = PyLong_FromSsize_t(PyDict_GET_SIZE(o->names));
    if (i == NULL)
        return -1;
    rc = PyDict_SetItem(o->names, s, i);
    Py_DECREF(i);
    return rc;
}

static int put_value(Out *o, PyObject *v, int depth, int as_name)
{
    if (depth > MAX_DEPTH)
        return 1;
    if (v == Py_None)
        return put_u8(o, T_NONE);
    if (v == Py_True)
        return put_u8(o, T_TRUE);
    if (v == Py_False)
        return put_u8(o, T_FALSE);
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type)
        return as_name ? put_name(o, v) : put_text(o, v, T_STR);
    if (t == &PyLong_Type) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow)
            return 1;
        if (x == -1 && PyErr_Occurred())
            return -1;
        return put_u8(o, T_INT) < 0 || put_i64(o, x) < 0 ? -1 : 0;
    }
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(v);
        return put_u8(o, T_FLOAT) < 0 || put(o, &d, 8) < 0 ? -1 : 0;
    }
    if (t == &PyBytes_Type) {
        Py_ssize_t n = PyBytes_GET_SIZE(v);
        if (n > UINT32_MAX)
            return 1;
        return put_u8(o, T_BYTES) < 0 || put_uvar(o, (uint32_t)n) < 0 || put(o, PyBytes_AS_STRING(v), n) < 0 ? -1 : 0;
    }
    if (t == (PyTypeObject *)decimal_type) {
        PyObject *s = PyObject_Str(v);
        if (s == NULL)
            return -1;
        int rc = put_text(o, s, T_DECIMAL);
        Py_DECREF(s);
        return rc;
    }
    if (t == PyDateTimeAPI->DateTimeType) {
        PyObject *tz = PyDateTime_DATE_GET_TZINFO(v);
        if (tz != Py_None && tz != PyDateTime_TimeZone_UTC)
            return 1;
        unsigned char b[13];
        int y = PyDateTime_GET_YEAR(v), us = PyDateTime_DATE_GET_MICROSECOND(v);
        b[0] = T_DATETIME;
        b[1] = (unsigned char)(y & 255);
        b[2] = (unsigned char)(y >> 8);
        b[3] = (unsigned char)PyDateTime_GET_MONTH(v);
        b[4] = (unsigned char)PyDateTime_GET_DAY(v);
        b[5] = (unsigned char)PyDateTime_DATE_GET_HOUR(v);
        b[6] = (unsigned char)PyDateTime_DATE_GET_MINUTE(v);
        b[7] = (unsigned char)PyDateTime_DATE_GET_SECOND(v);
        b[8] = (unsigned char)(us & 255);
        b[9] = (unsigned char)(us >> 8 & 255);
        b[10] = (unsigned char)(us >> 16 & 255);
        b[11] = (unsigned char)PyDateTime_DATE_GET_FOLD(v);
        b[12] = tz != Py_None;
        return put(o, b, 13);
    }
    if (t == PyDateTimeAPI->DateType) {
        int y = PyDateTime_GET_YEAR(v);
        unsigned char b[5] = {T_DATE, (unsigned char)(y & 255), (unsigned char)(y >> 8),
                              (unsigned char)PyDateTime_GET_MONTH(v), (unsigned char)PyDateTime_GET_DAY(v)};
        return put(o, b, 5);
    }
    if (t == PyDateTimeAPI->DeltaType) {
        if (put_u8(o, T_DELTA) < 0 || put_i64(o, PyDateTime_DELTA_GET_DAYS(v)) < 0
            || put_i64(o, PyDateTime_DELTA_GET_SECONDS(v)) < 0 || put_i64(o, PyDateTime_DELTA_GET_MICROSECONDS(v)) < 0)
            return -1;
        return 0;
    }
    if (t == &PyDict_Type) {
        Py_ssize_t n = PyDict_GET_SIZE(v), pos = 0;
        if (put_u8(o, T_DICT) < 0 || put_uvar(o, (uint32_t)n) < 0)
            return -1;
        PyObject *k, *x;
        while (PyDict_Next(v, &pos, &k, &x)) {
            if (!PyUnicode_CheckExact(k))
                return 1;
            int rc = put_name(o, k);
            if (rc == 0)
                rc = put_value(o, x, depth + 1, 0);
            if (rc != 0)
                return rc;
        }
        return PyDict_GET_SIZE(v) == n ? 0 : 1; /* changed while written (cannot happen here): pickle it */
    }
    if (t == &PyTuple_Type) {
        Py_ssize_t n = PyTuple_GET_SIZE(v);
        if (put_u8(o, T_TUPLE) < 0 || put_uvar(o, (uint32_t)n) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            int rc = put_value(o, PyTuple_GET_ITEM(v, i), depth + 1, 1);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    Py_ssize_t nc = PyTuple_GET_SIZE(o->constants);
    for (Py_ssize_t i = 0; i < nc; i++)
        if (PyTuple_GET_ITEM(o->constants, i) == v)
            return put_u8(o, T_CONST) < 0 || put_uvar(o, (uint32_t)i) < 0 ? -1 : 0;
    return 1;
}

static PyObject *pack(PyObject *self, PyObject *args)
{
    PyObject *rows, *constants;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &rows, &PyTuple_Type, &constants))
        return NULL;
    Out o = {NULL, 0, 0, PyDict_New(), constants};
    if (o.names == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    int rc = put_uvar(&o, (uint32_t)n);
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        rc = PyTuple_CheckExact(row) ? put_value(&o, row, 0, 1) : 1;
    }
    PyObject *out = NULL;
    if (rc == 0)
        out = PyBytes_FromStringAndSize(o.buf, o.len);
    else if (rc > 0)
        out = Py_NewRef(Py_None);
    PyMem_Free(o.buf);
    Py_DECREF(o.names);
    return out;
}

typedef struct {
    const unsigned char *p, *end;
    PyObject *names; /* list */
    PyObject *constants;
} In;

static int bad(void)
{
    PyErr_SetString(PyExc_ValueError, "packed rows: the bytes end early or hold an unknown tag");
    return -1;
}

static int take(In *in, Py_ssize_t n, const unsigned char **at)
{
    if (in->end - in->p < n)
        return bad();
    *at = in->p;
    in->p += n;
    return 0;
}

static int take_uvar(In *in, uint64_t *v)
{
    uint64_t u = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (in->p >= in->end)
            return bad();
        unsigned char c = *in->p++;
        u |= (uint64_t)(c & 127) << shift;
        if (!(c & 128)) {
            *v = u;
            return 0;
        }
    }
    return bad();
}

static int take_u32(In *in, uint32_t *v)
{
    uint64_t u;
    if (take_uvar(in, &u) < 0)
        return -1;
    if (u > UINT32_MAX)
        return bad();
    *v = (uint32_t)u;
    return 0;
}

static int take_i64(In *in, int64_t *v)
{
    uint64_t u;
    if (take_uvar(in, &u) < 0)
        return -1;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

/* An index below `n` (a shared str's, a constant's). */
static int take_index(In *in, Py_ssize_t n, uint32_t *i)
{
    if (take_u32(in, i) < 0)
        return -1;
    return (Py_ssize_t)*i < n ? 0 : bad();
}

static PyObject *take_text(In *in)
{
    uint32_t n;
    const unsigned char *b;
    if (take_u32(in, &n) < 0 || take(in, n, &b) < 0)
        return NULL;
    return PyUnicode_DecodeUTF8((const char *)b, n, "strict");
}

static PyObject *get_value(In *in, int depth)
{
    const unsigned char *b;
    if (depth > MAX_DEPTH + 1 || take(in, 1, &b) < 0) {
        if (!PyErr_Occurred())
            bad();
        return NULL;
    }
    switch (b[0]) {
    case T_NONE:
        return Py_NewRef(Py_None);
    case T_TRUE:
        return Py_NewRef(Py_True);
    case T_FALSE:
        return Py_NewRef(Py_False);
    case T_INT: {
        int64_t x;
        return take_i64(in, &x) < 0 ? NULL : PyLong_FromLongLong(x);
    }
    case T_FLOAT: {
        double d;
        if (take(in, 8, &b) < 0)
            return NULL;
        memcpy(&d, b, 8);
        return PyFloat_FromDouble(d);
    }
    case T_STR:
        return take_text(in);
    case T_NAME: {
        PyObject *s = take_text(in);
        if (s != NULL && PyList_Append(in->names, s) < 0)
            Py_CLEAR(s);
        return s;
    }
    case T_NAME_AGAIN: {
        uint32_t i;
        if (take_index(in, PyList_GET_SIZE(in->names), &i) < 0)
            return NULL;
        return Py_NewRef(PyList_GET_ITEM(in->names, i));
    }
    case T_BYTES: {
        uint32_t n;
        if (take_u32(in, &n) < 0 || take(in, n, &b) < 0)
            return NULL;
        return PyBytes_FromStringAndSize((const char *)b, n);
    }
    case T_DECIMAL: {
        PyObject *s = take_text(in);
        if (s == NULL)
            return NULL;
        PyObject *d = PyObject_CallOneArg(decimal_type, s);
        Py_DECREF(s);
        return d;
    }
    case T_DATETIME:
        if (take(in, 12, &b) < 0)
            return NULL;
        return PyDateTimeAPI->DateTime_FromDateAndTimeAndFold(
            b[0] | b[1] << 8, b[2], b[3], b[4], b[5], b[6], b[7] | b[8] << 8 | b[9] << 16,
            b[11] ? PyDateTime_TimeZone_UTC : Py_None, b[10], PyDateTimeAPI->DateTimeType);
    case T_DATE:
        if (take(in, 4, &b) < 0)
            return NULL;
        return PyDateTimeAPI->Date_FromDate(b[0] | b[1] << 8, b[2], b[3], PyDateTimeAPI->DateType);
    case T_DELTA: {
        int64_t d, s, us;
        if (take_i64(in, &d) < 0 || take_i64(in, &s) < 0 || take_i64(in, &us) < 0)
            return NULL;
        return PyDateTimeAPI->Delta_FromDelta((int)d, (int)s, (int)us, 1, PyDateTimeAPI->DeltaType);
    }
    case T_DICT: {
        uint32_t n;
        if (take_u32(in, &n) < 0)
            return NULL;
        PyObject *d = _PyDict_NewPresized(n);
        for (uint32_t i = 0; d != NULL && i < n; i++) {
            PyObject *k = get_value(in, depth + 1);
            PyObject *v = k != NULL ? get_value(in, depth + 1) : NULL;
            if (v == NULL || !PyUnicode_CheckExact(k) || PyDict_SetItem(d, k, v) < 0) {
                if (v != NULL && !PyErr_Occurred())
                    bad();
                Py_CLEAR(d);
            }
            Py_XDECREF(k);
            Py_XDECREF(v);
        }
        return d;
    }
    case T_TUPLE: {
        uint32_t n;
        if (take_u32(in, &n) < 0)
            return NULL;
        if ((Py_ssize_t)n > in->end - in->p) { /* each item takes at least a byte */
            bad();
            return NULL;
        }
        PyObject *t = PyTuple_New(n);
        for (uint32_t i = 0; t != NULL && i < n; i++) {
            PyObject *v = get_value(in, depth + 1);
            if (v == NULL)
                Py_CLEAR(t);
            else
                PyTuple_SET_ITEM(t, i, v);
        }
        return t;
    }
    case T_CONST: {
        uint32_t i;
        if (take_index(in, PyTuple_GET_SIZE(in->constants), &i) < 0)
            return NULL;
        return Py_NewRef(PyTuple_GET_ITEM(in->constants, i));
    }
    default:
        bad();
        return NULL;
    }
}

static PyObject *unpack(PyObject *self, PyObject *args)
{
    Py_buffer view;
    PyObject *constants;
    if (!PyArg_ParseTuple(args, "y*O!", &view, &PyTuple_Type, &constants))
        return NULL;
    In in = {view.buf, (const unsigned char *)view.buf + view.len, PyList_New(0), constants};
    PyObject *rows = NULL;
    uint32_t n;
    if (in.names != NULL && take_u32(&in, &n) == 0) {
        if ((Py_ssize_t)n > in.end - in.p) {
            bad();
        } else {
            rows = PyList_New(n);
            for (uint32_t i = 0; rows != NULL && i < n; i++) {
                PyObject *row = get_value(&in, 0);
                if (row == NULL)
                    Py_CLEAR(rows);
                else
                    PyList_SET_ITEM(rows, i, row);
            }
            if (rows != NULL && in.p != in.end) {
                bad();
                Py_CLEAR(rows);
            }
        }
    }
    Py_XDECREF(in.names);
    PyBuffer_Release(&view);
    return rows;
}

static PyMethodDef methods[] = {
    {"pack", pack, METH_VARARGS, "pack(rows, constants) -> bytes, or None when a value is not one packed here"},
    {"unpack", unpack, METH_VARARGS, "unpack(blob, constants) -> the rows packed into blob"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pack", "Rows of plain values packed into bytes for crossing processes (pack, unpack).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pack(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    PyObject *dec = PyImport_ImportModule("decimal");
    if (dec == NULL)
        return NULL;
    decimal_type = PyObject_GetAttrString(dec, "Decimal");
    Py_DECREF(dec);
    if (decimal_type == NULL)
        return NULL;
    return PyModule_Create(&module);
}
