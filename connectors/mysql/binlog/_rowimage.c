/* A rows event's row images decoded, compiled: `RowProgram(names, ops, null_bytes)`.
 *
 * The generated row functions of `obsync.connectors.mysql.binlog.rows` (`compile_row_functions`) in C.
 * `program.rows(b, o, end)` -> the rows from offset `o` up to `end`, `program.pairs(b, o, end)` -> the
 * (before, after) pairs of an UPDATE event, each row a dict of the columns in order, as the Python code builds
 * them. Each column is one op, chosen in Python (`rows.compiled_program`) from the same rules as the inline
 * code; a column of another type is read by the same Python reader the generated code calls (`column_reader`).
 *
 * The rule is that of the other compiled parts: C decodes only what it knows exactly. A read past the end of
 * the buffer, a fractional second above 999999, a DECIMAL whose digit groups overflow 64 bits: the call returns
 * None, and the caller decodes the same bytes with the Python functions, which give the value or the error they
 * always gave. A zero or partial date goes to the column's Python function for it (its text), a value the Python
 * readers raise on raises the same error here (they are the same functions).
 *
 * ops: a tuple of (kind, nullable, a, b, obj1, obj2, obj3):
 *   0 PY        obj1 = reader(b, o) -> (value, o)
 *   1 INT       a = width (1, 2, 3, 4, 8), b = 1 if UNSIGNED
 *   2 FLOAT     3 DOUBLE
 *   4 DECIMAL   a = precision (<= 18), b = scale, obj1 = scaleb(n, -scale) (or Decimal(n) when scale = 0),
 *               obj2 = the column's negative zero
 *   5 DATETIME2 a = fsp, obj1 = miss(raw, us, cache, fsp), obj2 = its cache
 *   6 TIMESTAMP2 a = fsp, obj1 = miss, obj2 = cache, obj3 = UTC
 *   7 DATE      obj1 = decode_date(x)
 *   8 TEXT      a = length bytes (1, 2), b = 1 to strip trailing spaces (CHAR), obj1 = codec name or None (bytes)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>

enum { K_PY = 0, K_INT, K_FLOAT, K_DOUBLE, K_DECIMAL, K_DATETIME2, K_TIMESTAMP2, K_DATE, K_TEXT };

typedef struct {
    int kind, nullable, a, b;
    PyObject *obj1, *obj2, *obj3; /* borrowed from `ops` */
    const char *codec;            /* K_TEXT: obj1's UTF-8, NULL for bytes */
} Op;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    Py_ssize_t null_bytes;
    PyObject *names; /* tuple of str */
    PyObject *ops;   /* the tuple given: keeps the ops' objects alive */
    Op *op;
} RowProgram;

static const int DIG2BYTES[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};
static const int64_t POW10[19] = {1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL,
                                  100000000LL, 1000000000LL, 10000000000LL, 100000000000LL, 1000000000000LL,
                                  10000000000000LL, 100000000000000LL, 1000000000000000LL, 10000000000000000LL,
                                  100000000000000000LL, 1000000000000000000LL};

/* Not exact here: the caller decodes the bytes with the Python functions. */
#define DECLINE 1

static void RowProgram_dealloc(RowProgram *self)
{
    Py_XDECREF(self->names);
    Py_XDECREF(self->ops);
    PyMem_Free(self->op);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int RowProgram_init(RowProgram *self, PyObject *args, PyObject *kwds)
{
    PyObject *names, *ops;
    Py_ssize_t null_bytes;
    if (!PyArg_ParseTuple(args, "O!O!n", &PyTuple_Type, &names, &PyTuple_Type, &ops, &null_bytes))
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(ops) != n) {
        PyErr_SetString(PyExc_ValueError, "RowProgram: one op per name");
        return -1;
    }
    Op *op = PyMem_Calloc(n ? n : 1, sizeof(Op));
    if (op == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_GET_ITEM(ops, i);
        Op *p = &op[i];
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 7
            || !PyArg_ParseTuple(t, "iiiiOOO", &p->kind, &p->nullable, &p->a, &p->b, &p->obj1, &p->obj2, &p->obj3)) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "RowProgram: op %zd is not (kind, nullable, a, b, obj1, obj2, obj3)", i);
            PyMem_Free(op);
            return -1;
        }
        int bad = p->kind < K_PY || p->kind > K_TEXT;
        if (p->kind == K_INT)
            bad = !(p->a == 1 || p->a == 2 || p->a == 3 || p->a == 4 || p->a == 8);
        if (p->kind == K_DECIMAL)
            bad = p->a < 1 || p->a > 18 || p->b < 0 || p->b > p->a;
        if (p->kind == K_DATETIME2 || p->kind == K_TIMESTAMP2)
            bad = p->a < 0 || p->a > 6 || !PyDict_Check(p->obj2);
        if (p->kind == K_TEXT) {
            bad = !(p->a == 1 || p->a == 2);
            if (p->obj1 == Py_None)
                p->codec = NULL;
            else if (!PyUnicode_Check(p->obj1) || (p->codec = PyUnicode_AsUTF8(p->obj1)) == NULL)
                bad = 1;
        }
        if (bad) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "RowProgram: op %zd (kind %d) has bad parameters", i, p->kind);
            PyMem_Free(op);
            return -1;
        }
    }
    Py_XSETREF(self->names, Py_NewRef(names));
    Py_XSETREF(self->ops, Py_NewRef(ops));
    PyMem_Free(self->op);
    self->op = op;
    self->n = n;
    self->null_bytes = null_bytes;
    return 0;
}

static inline uint64_t be(const unsigned char *p, int w)
{
    uint64_t v = 0;
    for (int k = 0; k < w; k++)
        v = v << 8 | p[k];
    return v;
}

static inline uint64_t le(const unsigned char *p, int w)
{
    uint64_t v = 0;
    for (int k = w - 1; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}

/* The fractional seconds of a DATETIME2/TIMESTAMP2 at `p` (fsp's bytes), as microseconds; -1: above 999999. */
static inline long frac_us(const unsigned char *p, int fsp)
{
    int nb = (fsp + 1) / 2;
    if (nb == 0)
        return 0;
    long v = (long)be(p, nb);
    long us = nb == 1 ? v * 10000 : nb == 2 ? v * 100 : v;
    return us > 999999 ? -1 : us;
}

/* A DATETIME2 (`size` 5) or TIMESTAMP2 (`size` 4) at *o: its big-endian whole part and its microseconds, *o moved
 * past it; 1 (nothing moved) when not decoded here: past the end of the buffer, a fraction above 999999. */
static int temporal_parts(const Op *p, const unsigned char *b, Py_ssize_t len, Py_ssize_t *o, int size,
                          long long *whole, long *us)
{
    Py_ssize_t at = *o;
    int nb = (p->a + 1) / 2;
    if (at < 0 || at > len - size - nb)
        return 1;
    *whole = (long long)be(b + at, size);
    *us = frac_us(b + at + size, p->a);
    if (*us < 0)
        return 1;
    *o = at + size + nb;
    return 0;
}

/* Days since 1970-01-01 as a civil date (H. Hinnant's civil_from_days). */
static void civil_from_days(long long z, int *y, int *m, int *d)
{
    z += 719468;
    const long long era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const long long yy = (long long)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

/* A datetime, or NULL with no error set when the fields are not a valid datetime (the caller asks Python). */
static PyObject *make_datetime(int y, int mo, int d, int h, int mi, int s, int us, PyObject *tz)
{
    PyObject *v = PyDateTimeAPI->DateTime_FromDateAndTime(y, mo, d, h, mi, s, us, tz, PyDateTimeAPI->DateTimeType);
    if (v == NULL && PyErr_ExceptionMatches(PyExc_ValueError))
        PyErr_Clear();
    return v;
}

static PyObject *call_miss(Op *p, long long x, long us)
{
    PyObject *xo = PyLong_FromLongLong(x), *uo = PyLong_FromLong(us), *fo = PyLong_FromLong(p->a);
    PyObject *v = NULL;
    if (xo && uo && fo)
        v = PyObject_CallFunctionObjArgs(p->obj1, xo, uo, p->obj2, fo, NULL);
    Py_XDECREF(xo);
    Py_XDECREF(uo);
    Py_XDECREF(fo);
    return v;
}

/* One value of column `p` at *o: a new reference; NULL with an error set (raised), or NULL with *declined = 1. */
static PyObject *read_value(Op *p, PyObject *bobj, const unsigned char *b, Py_ssize_t len, Py_ssize_t *o,
                            int *declined)
{
    Py_ssize_t at = *o;
#define NEED(k)                                                                                                   \
    do {                                                                                                          \
        if ((k) < 0 || at > len - (Py_ssize_t)(k)) {                                                              \
            *declined = 1;                                                                                        \
            return NULL;                                                                                          \
        }                                                                                                         \
    } while (0)
    switch (p->kind) {
    case K_INT: {
        NEED(p->a);
        uint64_t u = le(b + at, p->a);
        *o = at + p->a;
        if (p->b)
            return PyLong_FromUnsignedLongLong(u);
        int shift = 64 - 8 * p->a;
        int64_t s = shift ? (int64_t)(u << shift) >> shift : (int64_t)u;
        return PyLong_FromLongLong(s);
    }
    case K_FLOAT: {
        NEED(4);
        float f;
        uint32_t u = (uint32_t)le(b + at, 4);
        memcpy(&f, &u, 4);
        *o = at + 4;
        return PyFloat_FromDouble((double)f);
    }
    case K_DOUBLE: {
        NEED(8);
        double f;
        uint64_t u = le(b + at, 8);
        memcpy(&f, &u, 8);
        *o = at + 8;
        return PyFloat_FromDouble(f);
    }
    case K_DECIMAL: {
        int precision = p->a, scale = p->b, intg = precision - scale;
        int widths[8], digits[8], ng = 0;
        if (intg % 9) {
            widths[ng] = DIG2BYTES[intg % 9];
            digits[ng++] = intg % 9;
        }
        for (int k = 0; k < intg / 9 + scale / 9; k++) {
            widths[ng] = 4;
            digits[ng++] = 9;
        }
        if (scale % 9) {
            widths[ng] = DIG2BYTES[scale % 9];
            digits[ng++] = scale % 9;
        }
        int size = 0;
        for (int k = 0; k < ng; k++)
            size += widths[k];
        NEED(size);
        int positive = b[at] & 0x80;
        __int128 n = 0;
        int after = precision;
        const unsigned char *q = b + at;
        for (int k = 0; k < ng; k++) {
            uint64_t full = (1ULL << (8 * widths[k])) - 1;
            uint64_t g = be(q, widths[k]);
            q += widths[k];
            if (!positive)
                g ^= full;
            if (k == 0)
                g &= full >> 1;
            after -= digits[k];
            n += (__int128)g * POW10[after];
        }
        if (n > (__int128)INT64_MAX) {
            *declined = 1;
            return NULL;
        }
        *o = at + size;
        if (!positive && n == 0)
            return Py_NewRef(p->obj2);
        PyObject *no = PyLong_FromLongLong(positive ? (long long)n : -(long long)n);
        if (no == NULL)
            return NULL;
        PyObject *v;
        if (scale) {
            PyObject *so = PyLong_FromLong(-scale);
            v = so ? PyObject_CallFunctionObjArgs(p->obj1, no, so, NULL) : NULL;
            Py_XDECREF(so);
        } else {
            v = PyObject_CallOneArg(p->obj1, no);
        }
        Py_DECREF(no);
        return v;
    }
    case K_DATETIME2: {
        long long raw;
        long us;
        if (temporal_parts(p, b, len, o, 5, &raw, &us)) {
            *declined = 1;
            return NULL;
        }
        long long x = raw - 0x8000000000LL;
        if (x >= 0) { /* else not a date the server writes: the Python function's text */
            long long ymd = x >> 17, ym = ymd >> 5;
            PyObject *v = make_datetime((int)(ym / 13), (int)(ym % 13), (int)(ymd & 31), (int)((x >> 12) & 31),
                                        (int)((x >> 6) & 63), (int)(x & 63), (int)us, Py_None);
            if (v != NULL || PyErr_Occurred())
                return v;
        }
        return call_miss(p, raw, us); /* a zero or partial date: its text (the function takes the raw bytes) */
    }
    case K_TIMESTAMP2: {
        long long sec;
        long us;
        if (temporal_parts(p, b, len, o, 4, &sec, &us)) {
            *declined = 1;
            return NULL;
        }
        if (sec == 0)
            return call_miss(p, 0, us); /* the zero timestamp: its text */
        int y, mo, d;
        civil_from_days(sec / 86400, &y, &mo, &d);
        long r = (long)(sec % 86400);
        PyObject *v = make_datetime(y, mo, d, (int)(r / 3600), (int)(r / 60 % 60), (int)(r % 60), (int)us, p->obj3);
        if (v == NULL && !PyErr_Occurred())
            *declined = 1;
        return v;
    }
    case K_DATE: {
        NEED(3);
        long x = (long)le(b + at, 3);
        *o = at + 3;
        PyObject *v = PyDateTimeAPI->Date_FromDate((int)(x >> 9), (int)((x >> 5) & 15), (int)(x & 31),
                                                   PyDateTimeAPI->DateType);
        if (v != NULL || !PyErr_ExceptionMatches(PyExc_ValueError))
            return v;
        PyErr_Clear();
        PyObject *xo = PyLong_FromLong(x); /* a zero or partial date: its text */
        v = xo ? PyObject_CallOneArg(p->obj1, xo) : NULL;
        Py_XDECREF(xo);
        return v;
    }
    case K_TEXT: {
        NEED(p->a);
        Py_ssize_t ln = p->a == 1 ? b[at] : (Py_ssize_t)(b[at] | b[at + 1] << 8);
        at += p->a;
        NEED(ln);
        *o = at + ln;
        const char *s = (const char *)b + at;
        if (p->codec == NULL)
            return PyBytes_FromStringAndSize(s, ln);
        PyObject *v = PyUnicode_Decode(s, ln, p->codec, NULL);
        if (v == NULL || !p->b)
            return v;
        Py_ssize_t end = PyUnicode_GET_LENGTH(v);
        int kind = PyUnicode_KIND(v);
        const void *data = PyUnicode_DATA(v);
        while (end > 0 && PyUnicode_READ(kind, data, end - 1) == ' ')
            end--;
        if (end == PyUnicode_GET_LENGTH(v))
            return v;
        PyObject *w = PyUnicode_Substring(v, 0, end);
        Py_DECREF(v);
        return w;
    }
    default: { /* K_PY: the Python reader, exactly as the generated code calls it */
        PyObject *oo = PyLong_FromSsize_t(at);
        if (oo == NULL)
            return NULL;
        PyObject *r = PyObject_CallFunctionObjArgs(p->obj1, bobj, oo, NULL);
        Py_DECREF(oo);
        if (r == NULL)
            return NULL;
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2 || !PyLong_Check(PyTuple_GET_ITEM(r, 1))) {
            Py_DECREF(r);
            *declined = 1;
            return NULL;
        }
        Py_ssize_t next = PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 1));
        if (next == -1 && PyErr_Occurred()) {
            Py_DECREF(r);
            return NULL;
        }
        PyObject *v = Py_NewRef(PyTuple_GET_ITEM(r, 0));
        Py_DECREF(r);
        *o = next;
        return v;
    }
    }
#undef NEED
}

/* One row image at *o as a dict; NULL with an error set, or NULL with *declined = 1. */
static PyObject *read_row(RowProgram *self, PyObject *bobj, const unsigned char *b, Py_ssize_t len, Py_ssize_t *o,
                          int *declined)
{
    Py_ssize_t at = *o;
    if (at < 0 || at > len - self->null_bytes) {
        *declined = 1;
        return NULL;
    }
    const unsigned char *nulls = b + at;
    at += self->null_bytes;
    PyObject *row = _PyDict_NewPresized(self->n);
    if (row == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Op *p = &self->op[i];
        PyObject *v;
        if (p->nullable && (nulls[i / 8] >> (i % 8) & 1)) {
            v = Py_NewRef(Py_None);
        } else {
            v = read_value(p, bobj, b, len, &at, declined);
            if (v == NULL) {
                Py_DECREF(row);
                return NULL;
            }
        }
        int rc = PyDict_SetItem(row, PyTuple_GET_ITEM(self->names, i), v);
        Py_DECREF(v);
        if (rc < 0) {
            Py_DECREF(row);
            return NULL;
        }
    }
    *o = at;
    return row;
}

static PyObject *decode(RowProgram *self, PyObject *args, int pairs)
{
    PyObject *bobj;
    Py_ssize_t o, end;
    if (!PyArg_ParseTuple(args, "Onn", &bobj, &o, &end))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(bobj, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *b = view.buf;
    Py_ssize_t len = view.len;
    int declined = 0;
    PyObject *out = PyList_New(0);
    while (out != NULL && o < end) {
        PyObject *item = read_row(self, bobj, b, len, &o, &declined);
        if (item != NULL && pairs) {
            PyObject *after = read_row(self, bobj, b, len, &o, &declined);
            PyObject *pair = after ? PyTuple_Pack(2, item, after) : NULL;
            Py_XDECREF(after);
            Py_SETREF(item, pair);
        }
        if (item == NULL || PyList_Append(out, item) < 0)
            Py_CLEAR(out);
        Py_XDECREF(item);
    }
    PyBuffer_Release(&view);
    if (out == NULL && declined && !PyErr_Occurred())
        Py_RETURN_NONE;
    return out;
}

static PyObject *RowProgram_rows(RowProgram *self, PyObject *args) { return decode(self, args, 0); }

static PyObject *RowProgram_pairs(RowProgram *self, PyObject *args) { return decode(self, args, 1); }

static PyMethodDef RowProgram_methods[] = {
    {"rows", (PyCFunction)RowProgram_rows, METH_VARARGS,
     "rows(b, o, end) -> the row images from o up to end as dicts, or None: decode them in Python"},
    {"pairs", (PyCFunction)RowProgram_pairs, METH_VARARGS,
     "pairs(b, o, end) -> the (before, after) row images from o up to end, or None: decode them in Python"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RowProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "obsync.connectors.mysql.binlog._rowimage.RowProgram",
    .tp_basicsize = sizeof(RowProgram),
    .tp_dealloc = (destructor)RowProgram_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RowProgram(names, ops, null_bytes): a table's row images decoded as the generated Python code does",
    .tp_methods = RowProgram_methods,
    .tp_init = (initproc)RowProgram_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowimage", "A rows event's row images decoded, compiled (RowProgram).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rowimage(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    if (PyType_Ready(&RowProgramType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "RowProgram", (PyObject *)&RowProgramType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
