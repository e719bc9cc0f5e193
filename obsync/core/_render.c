/* Canonical text of a row's values, compiled: `RowRenderer(names, kinds, params, fallbacks)(row) -> dict`.
 *
 * The straight-line row renderer of `obsync.formats.values` (`_compile_full_row`) in C, for the OMS-style formats:
 * for each column in order, `None` stays `None` and any other value becomes its canonical text
 * (`obsync.core.canonical_text`). The common kinds are written here; a value of any other type, and any value
 * this code does not handle itself (zero dates, exponents, time zones other than UTC), goes to the column's
 * Python render function (`fallbacks`), so the text is always the Python one (a unit test compares both on
 * every kind and edge). A missing column raises KeyError, as the Python code does.
 *
 * Kinds (`KIND_*` in `obsync.core.row_text`): 0 call the Python function; 1 text or integer (an exact `str`
 * unchanged, an exact `int` in decimal); 2 DECIMAL(param = scale); 3 DOUBLE; 4 DATETIME(param = fsp);
 * 5 TIMESTAMP(param = fsp), as epoch seconds; 6 DATE.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

enum { K_CALL = 0, K_STR = 1, K_DECIMAL = 2, K_DOUBLE = 3, K_DATETIME = 4, K_TIMESTAMP = 5, K_DATE = 6 };

static PyObject *decimal_type = NULL; /* decimal.Decimal */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    PyObject *names;     /* tuple of str */
    PyObject *fallbacks; /* tuple of callables */
    PyObject *keys;      /* tuple of bytes: `{"name":` (the first) and `,"name":` (the others) */
    int *kinds;
    int *params;
} RowRenderer;

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* Days from the epoch to a date's (or datetime's) day. */
static long long epoch_days(PyObject *v)
{
    return days_from_civil(PyDateTime_GET_YEAR(v), (unsigned)PyDateTime_GET_MONTH(v), (unsigned)PyDateTime_GET_DAY(v));
}

/* Seconds from the epoch to a datetime's wall-clock time read as UTC (its zone is not looked at). */
static long long epoch_seconds(PyObject *v)
{
    return epoch_days(v) * 86400LL + PyDateTime_DATE_GET_HOUR(v) * 3600LL + PyDateTime_DATE_GET_MINUTE(v) * 60LL
           + PyDateTime_DATE_GET_SECOND(v);
}

/* DECIMAL: str(v) in plain notation, no negative zero, padded to `scale` digits; NULL with no error set when
 * the Python function must decide (an exponent). */
static PyObject *render_decimal(PyObject *v, int scale)
{
    PyObject *s = PyObject_Str(v);
    if (s == NULL)
        return NULL;
    Py_ssize_t len;
    const char *t = PyUnicode_AsUTF8AndSize(s, &len);
    if (t == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    int negative = len > 0 && t[0] == '-';
    int zero = 1;
    Py_ssize_t dot = -1;
    for (Py_ssize_t i = negative; i < len; i++) {
        char c = t[i];
        if (c == '.') {
            dot = i;
        } else if (c >= '0' && c <= '9') {
            if (c != '0')
                zero = 0;
        } else { /* an exponent, NaN, Infinity: the Python function */
            Py_DECREF(s);
            return NULL;
        }
    }
    Py_ssize_t start = negative && zero ? 1 : 0;
    Py_ssize_t digits = dot < 0 ? 0 : len - dot - 1;
    Py_ssize_t pad = scale > digits ? scale - digits : 0;
    if (start == 0 && pad == 0)
        return s;
    Py_ssize_t out_len = len - start + pad + (dot < 0 && pad ? 1 : 0);
    PyObject *out = PyUnicode_New(out_len, 127);
    if (out == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    char *o = (char *)PyUnicode_DATA(out);
    memcpy(o, t + start, (size_t)(len - start));
    o += len - start;
    if (pad) {
        if (dot < 0)
            *o++ = '.';
        memset(o, '0', (size_t)pad);
    }
    Py_DECREF(s);
    return out;
}

/* DOUBLE: repr(v) without a trailing ".0"; NULL with no error set for an exponent (the Python function). */
static PyObject *render_double(PyObject *v)
{
    char *r = PyOS_double_to_string(PyFloat_AS_DOUBLE(v), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (r == NULL)
        return NULL;
    size_t len = strlen(r);
    for (size_t i = 0; i < len; i++) {
        if (r[i] == 'e' || r[i] == 'n' || r[i] == 'i') { /* exponent, nan, inf */
            PyMem_Free(r);
            return NULL;
        }
    }
    if (len >= 2 && r[len - 2] == '.' && r[len - 1] == '0')
        len -= 2;
    PyObject *out = PyUnicode_FromStringAndSize(r, (Py_ssize_t)len);
    PyMem_Free(r);
    return out;
}

/* `x` in decimal into `out` (at least 20 bytes), as printf's %lld writes it; its length. */
static int put_lld(char *out, long long x)
{
    char tmp[24];
    int n = 0, k = 0;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        out[k++] = '-';
    while (n)
        out[k++] = tmp[--n];
    return k;
}

/* 0 <= x < 10**width as `width` digits, zero-padded (printf's %0<width>d of such x). */
static inline void put_digits(char *out, int x, int width)
{
    for (int k = width - 1; k >= 0; k--) {
        out[k] = (char)('0' + x % 10);
        x /= 10;
    }
}

/* A date's YYYY-MM-DD into `buf` (a date's year is 1 to 9999: always 10 bytes); its length. */
static int put_date(PyObject *v, char *buf)
{
    put_digits(buf, PyDateTime_GET_YEAR(v), 4);
    buf[4] = '-';
    put_digits(buf + 5, PyDateTime_GET_MONTH(v), 2);
    buf[7] = '-';
    put_digits(buf + 8, PyDateTime_GET_DAY(v), 2);
    return 10;
}

/* A datetime's YYYY-MM-DD<sep>hh:mm:ss.ffffff into `buf` (26 bytes); its length. */
static int put_datetime(PyObject *v, char sep, char *buf)
{
    put_date(v, buf);
    buf[10] = sep;
    put_digits(buf + 11, PyDateTime_DATE_GET_HOUR(v), 2);
    buf[13] = ':';
    put_digits(buf + 14, PyDateTime_DATE_GET_MINUTE(v), 2);
    buf[16] = ':';
    put_digits(buf + 17, PyDateTime_DATE_GET_SECOND(v), 2);
    buf[19] = '.';
    put_digits(buf + 20, PyDateTime_DATE_GET_MICROSECOND(v), 6);
    return 26;
}

/* DATETIME's text into `buf` (40 bytes); its length. */
static int datetime_text(PyObject *v, int fsp, char *buf)
{
    int n = put_datetime(v, ' ', buf);
    int cut = fsp ? 20 + fsp : 19;
    return cut < n ? cut : n;
}

/* TIMESTAMP's text (epoch seconds of a UTC, or naive taken as UTC, datetime) into `buf` (48 bytes); its length,
 * or -1 for a datetime of another zone (the Python function's). */
static int timestamp_text(PyObject *v, int fsp, char *buf)
{
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(v);
    if (tz != Py_None && tz != PyDateTime_TimeZone_UTC)
        return -1;
    long long secs = epoch_seconds(v);
    int n = put_lld(buf, secs);
    if (!fsp)
        return n;
    buf[n++] = '.';
    put_digits(buf + n, PyDateTime_DATE_GET_MICROSECOND(v), 6);
    n += 6;
    return fsp < 6 ? n - (6 - fsp) : n;
}

static int date_text(PyObject *v, char *buf)
{
    return put_date(v, buf);
}

static PyObject *render_datetime(PyObject *v, int fsp)
{
    char buf[40];
    return PyUnicode_FromStringAndSize(buf, datetime_text(v, fsp, buf));
}

/* NULL with no error set for other zones (the Python function). */
static PyObject *render_timestamp(PyObject *v, int fsp)
{
    char buf[48];
    int n = timestamp_text(v, fsp, buf);
    return n < 0 ? NULL : PyUnicode_FromStringAndSize(buf, n);
}

static PyObject *render_date(PyObject *v)
{
    char buf[24];
    return PyUnicode_FromStringAndSize(buf, date_text(v, buf));
}

/* One non-NULL value's text: the compiled kinds, else (or when they decline) the column's Python function. */
static PyObject *render_value(RowRenderer *self, Py_ssize_t i, PyObject *v)
{
    PyObject *out = NULL;
    PyTypeObject *t = Py_TYPE(v);
    switch (self->kinds[i]) {
    case K_STR:
        if (t == &PyUnicode_Type)
            return Py_NewRef(v);
        if (t == &PyLong_Type)
            return PyObject_Str(v);
        break;
    case K_DECIMAL:
        if ((PyObject *)t == decimal_type)
            out = render_decimal(v, self->params[i]);
        break;
    case K_DOUBLE:
        if (t == &PyFloat_Type)
            out = render_double(v);
        break;
    case K_DATETIME:
        if (PyDateTime_CheckExact(v))
            return render_datetime(v, self->params[i]);
        break;
    case K_TIMESTAMP:
        if (PyDateTime_CheckExact(v))
            out = render_timestamp(v, self->params[i]);
        break;
    case K_DATE:
        if (PyDate_CheckExact(v))
            return render_date(v);
        break;
    default:
        break;
    }
    if (out != NULL || PyErr_Occurred())
        return out;
    return PyObject_CallOneArg(PyTuple_GET_ITEM(self->fallbacks, i), v);
}

/* ---------------------------------------------------------------- JSON, byte for byte as orjson writes it */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char local[2048];
} Buf;

static void buf_init(Buf *b)
{
    b->data = b->local;
    b->len = 0;
    b->cap = (Py_ssize_t)sizeof b->local;
}

static void buf_free(Buf *b)
{
    if (b->data != b->local)
        PyMem_Free(b->data);
}

static int buf_reserve(Buf *b, Py_ssize_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + more)
        cap *= 2;
    char *data;
    if (b->data == b->local) {
        data = PyMem_Malloc((size_t)cap);
        if (data != NULL)
            memcpy(data, b->local, (size_t)b->len);
    } else {
        data = PyMem_Realloc(b->data, (size_t)cap);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* A JSON string: `"`, `\` and control characters escaped as orjson does (\b \t \n \f \r, else \u00xx), the rest
 * as UTF-8. A string with a lone surrogate fails (UnicodeEncodeError); the caller then lets orjson say why. */
static int buf_json_str(Buf *b, PyObject *s)
{
    Py_ssize_t n;
    const char *t = PyUnicode_AsUTF8AndSize(s, &n);
    if (t == NULL)
        return -1;
    if (buf_reserve(b, n * 6 + 2) < 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\t': *o++ = 't'; break;
        case '\n': *o++ = 'n'; break;
        case '\f': *o++ = 'f'; break;
        case '\r': *o++ = 'r'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = HEX[c >> 4];
            *o++ = HEX[c & 15];
        }
    }
    *o++ = '"';
    b->len = o - b->data;
    return 0;
}

/* A JSON value of a template's slot: null, a string, or an integer of 64 bits; anything else fails. */
static int buf_json_scalar(Buf *b, PyObject *v)
{
    if (v == Py_None)
        return buf_put(b, "null", 4);
    if (PyUnicode_CheckExact(v))
        return buf_json_str(b, v);
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_OverflowError, "an integer of more than 64 bits");
            return -1;
        }
        char num[24];
        return buf_put(b, num, put_lld(num, x));
    }
    PyErr_Format(PyExc_TypeError, "a JSON template slot takes None, str or int, not %.80s", Py_TYPE(v)->tp_name);
    return -1;
}

/* The JSON fragments of column names: `{"a":` then `,"b":` ... (orjson's text of each name); NULL on error. */
static PyObject *name_keys(PyObject *names)
{
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyObject *keys = PyTuple_New(n);
    if (keys == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Buf b;
        buf_init(&b);
        if (buf_put(&b, i ? "," : "{", 1) < 0 || buf_json_str(&b, PyTuple_GET_ITEM(names, i)) < 0
            || buf_put(&b, ":", 1) < 0) {
            buf_free(&b);
            Py_DECREF(keys);
            return NULL;
        }
        PyObject *k = PyBytes_FromStringAndSize(b.data, b.len);
        buf_free(&b);
        if (k == NULL) {
            Py_DECREF(keys);
            return NULL;
        }
        PyTuple_SET_ITEM(keys, i, k);
    }
    return keys;
}

/* Each column's kind and parameter, read into new arrays (freed by the caller) and checked against the
 * bounds; -1 with ValueError naming the column otherwise. */
static int read_kinds(const char *who, PyObject *kinds, PyObject *params, long max_kind, long max_param,
                      int **out_kinds, int **out_params)
{
    Py_ssize_t n = PyTuple_GET_SIZE(kinds);
    *out_kinds = PyMem_Calloc((size_t)(n ? n : 1), sizeof(int));
    *out_params = PyMem_Calloc((size_t)(n ? n : 1), sizeof(int));
    if (*out_kinds == NULL || *out_params == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long k = PyLong_AsLong(PyTuple_GET_ITEM(kinds, i));
        long p = PyLong_AsLong(PyTuple_GET_ITEM(params, i));
        if ((k == -1 || p == -1) && PyErr_Occurred())
            return -1;
        if (k < 0 || k > max_kind || p < 0 || p > max_param) {
            PyErr_Format(PyExc_ValueError, "%s: column %zd has kind %ld, param %ld", who, i, k, p);
            return -1;
        }
        (*out_kinds)[i] = (int)k;
        (*out_params)[i] = (int)p;
    }
    return 0;
}

static int buf_quoted(Buf *b, const char *text, int n)
{
    if (buf_reserve(b, n + 2) < 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    memcpy(o, text, (size_t)n);
    o[n] = '"';
    b->len += n + 2;
    return 0;
}

/* A row that has exactly the renderer's columns, as the JSON object orjson writes of `render(row)`. Fails with
 * KeyError for a row of other columns, and with whatever rendering raised. */
static int row_json(RowRenderer *self, PyObject *row, Buf *b)
{
    if (!PyDict_CheckExact(row) || PyDict_GET_SIZE(row) != self->n) {
        PyErr_SetString(PyExc_KeyError, "the row does not have the table's columns");
        return -1;
    }
    if (self->n == 0)
        return buf_put(b, "{}", 2);
    for (Py_ssize_t i = 0; i < self->n; i++) {
        PyObject *key = PyTuple_GET_ITEM(self->keys, i);
        if (buf_put(b, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)) < 0)
            return -1;
        PyObject *name = PyTuple_GET_ITEM(self->names, i);
        PyObject *v = PyDict_GetItemWithError(row, name); /* borrowed */
        if (v == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, name);
            return -1;
        }
        if (v == Py_None) {
            if (buf_put(b, "null", 4) < 0)
                return -1;
            continue;
        }
        char text[48];
        int n = -1;
        PyTypeObject *t = Py_TYPE(v);
        switch (self->kinds[i]) {
        case K_STR:
            if (t == &PyUnicode_Type) {
                if (buf_json_str(b, v) < 0)
                    return -1;
                continue;
            }
            if (t == &PyLong_Type) {
                int overflow;
                long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
                if (!overflow && !(x == -1 && PyErr_Occurred()))
                    n = put_lld(text, x);
                PyErr_Clear();
            }
            break;
        case K_DATETIME:
            if (PyDateTime_CheckExact(v))
                n = datetime_text(v, self->params[i], text);
            break;
        case K_TIMESTAMP:
            if (PyDateTime_CheckExact(v))
                n = timestamp_text(v, self->params[i], text);
            break;
        case K_DATE:
            if (PyDate_CheckExact(v))
                n = date_text(v, text);
            break;
        default:
            break;
        }
        if (n >= 0) {
            if (buf_quoted(b, text, n) < 0)
                return -1;
            continue;
        }
        PyObject *s = render_value(self, i, v);
        if (s == NULL)
            return -1;
        int rc = PyUnicode_CheckExact(s) ? buf_json_str(b, s) : -1;
        if (rc < 0 && !PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "a render function returned %.80s, not str", Py_TYPE(s)->tp_name);
        Py_DECREF(s);
        if (rc < 0)
            return -1;
    }
    return buf_put(b, "}", 1);
}

static PyObject *RowRenderer_call(RowRenderer *self, PyObject *args, PyObject *kwargs)
{
    PyObject *row;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "a row renderer takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "render", 1, 1, &row))
        return NULL;
    PyObject *out = _PyDict_NewPresized(self->n);
    if (out == NULL)
        return NULL;
    int is_dict = PyDict_CheckExact(row);
    for (Py_ssize_t i = 0; i < self->n; i++) {
        PyObject *name = PyTuple_GET_ITEM(self->names, i);
        PyObject *v;
        if (is_dict) {
            v = PyDict_GetItemWithError(row, name); /* borrowed */
            if (v == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, name);
                goto fail;
            }
            Py_INCREF(v);
        } else {
            v = PyObject_GetItem(row, name);
            if (v == NULL)
                goto fail;
        }
        PyObject *text = v == Py_None ? Py_NewRef(Py_None) : render_value(self, i, v);
        Py_DECREF(v);
        if (text == NULL)
            goto fail;
        int rc = PyDict_SetItem(out, name, text);
        Py_DECREF(text);
        if (rc < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *RowRenderer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *names, *kinds, *params, *fallbacks;
    static char *kwlist[] = {"names", "kinds", "params", "fallbacks", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!:RowRenderer", kwlist, &PyTuple_Type, &names,
                                     &PyTuple_Type, &kinds, &PyTuple_Type, &params, &PyTuple_Type, &fallbacks))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(kinds) != n || PyTuple_GET_SIZE(params) != n || PyTuple_GET_SIZE(fallbacks) != n) {
        PyErr_SetString(PyExc_ValueError, "RowRenderer: names, kinds, params and fallbacks differ in length");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i)) || !PyCallable_Check(PyTuple_GET_ITEM(fallbacks, i))) {
            PyErr_Format(PyExc_TypeError, "RowRenderer: column %zd needs a str name and a callable", i);
            return NULL;
        }
    }
    RowRenderer *self = (RowRenderer *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->n = n;
    self->names = Py_NewRef(names);
    self->fallbacks = Py_NewRef(fallbacks);
    if (read_kinds("RowRenderer", kinds, params, K_DATE, 65535, &self->kinds, &self->params) < 0
        || (self->keys = name_keys(names)) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int RowRenderer_traverse(RowRenderer *self, visitproc visit, void *arg)
{
    Py_VISIT(self->names);
    Py_VISIT(self->fallbacks);
    Py_VISIT(self->keys);
    return 0;
}

static int RowRenderer_clear(RowRenderer *self)
{
    Py_CLEAR(self->names);
    Py_CLEAR(self->fallbacks);
    Py_CLEAR(self->keys);
    return 0;
}

static void RowRenderer_dealloc(RowRenderer *self)
{
    PyObject_GC_UnTrack(self);
    RowRenderer_clear(self);
    PyMem_Free(self->kinds);
    PyMem_Free(self->params);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject RowRendererType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "obsync.core._render.RowRenderer",
    .tp_doc = "RowRenderer(names, kinds, params, fallbacks)(row) -> {name: canonical text or None}",
    .tp_basicsize = sizeof(RowRenderer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = RowRenderer_new,
    .tp_call = (ternaryfunc)RowRenderer_call,
    .tp_traverse = (traverseproc)RowRenderer_traverse,
    .tp_clear = (inquiry)RowRenderer_clear,
    .tp_dealloc = (destructor)RowRenderer_dealloc,
};

/* ---------------------------------------------------------------- JsonRow (Debezium's JSON values) */

enum { D_ASIS = 0, D_CALL = 1, D_DATE = 2, D_DATETIME = 3, D_TIMESTAMP = 4, D_DECIMAL = 5, D_CONNECT_DECIMAL = 6 };

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    PyObject *names;      /* tuple of str */
    PyObject *converters; /* tuple: a callable, or None (the value as it is) */
    PyObject *dumps;      /* orjson.dumps: the JSON of any value this code does not write itself */
    PyObject *keys;       /* tuple of bytes: `{"name":`, `,"name":` ... */
    int *kinds;
    int *params;
} JsonRow;

static int floor_div(long long a, long long b, long long *out)
{
    long long q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q -= 1;
    *out = q;
    return 0;
}

/* The JSON of a converted value, as orjson writes it inside an object. */
static int json_any(JsonRow *self, PyObject *v, Buf *b)
{
    if (v == Py_None)
        return buf_put(b, "null", 4);
    if (v == Py_True)
        return buf_put(b, "true", 4);
    if (v == Py_False)
        return buf_put(b, "false", 5);
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type)
        return buf_json_str(b, v);
    if (t == &PyLong_Type) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (!overflow && !(x == -1 && PyErr_Occurred())) {
            char num[24];
            return buf_put(b, num, put_lld(num, x));
        }
        PyErr_Clear();
    }
    PyObject *j = PyObject_CallOneArg(self->dumps, v);
    if (j == NULL)
        return -1;
    int rc = PyBytes_Check(j) ? buf_put(b, PyBytes_AS_STRING(j), PyBytes_GET_SIZE(j)) : -1;
    if (rc < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "dumps did not return bytes");
    Py_DECREF(j);
    return rc;
}

/* Debezium's ZonedTimestamp of a UTC (or naive) datetime: ISO-8601, `Z`, `fsp` fraction digits (0: none, or
 * the microseconds without trailing zeros when there are any). */
static int zoned_text(PyObject *v, int fsp, char *buf)
{
    int us = PyDateTime_DATE_GET_MICROSECOND(v);
    int n = put_datetime(v, 'T', buf);
    if (n != 26) /* a year beyond 9999 cannot be: the Python function decides */
        return -1;
    if (fsp > 0) {
        n = 20 + (fsp < 6 ? fsp : 6);
    } else if (us) {
        while (buf[n - 1] == '0')
            n--;
    } else {
        n = 19;
    }
    buf[n++] = 'Z';
    return n;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* `str(Decimal)` read as plain notation: its sign, fraction digits (0 without a point), whether a digit is not 0,
 * and its digits as an integer when they fit 18 significant digits (`wide` set otherwise). */
typedef struct {
    int negative, frac, nonzero, wide;
    long long n;
} DecimalText;

/* 0 with `*d` filled; 1 when the text is not plain (an exponent, NaN, Infinity); -1 on error. */
static int decimal_text(PyObject *v, DecimalText *d)
{
    PyObject *s = PyObject_Str(v);
    if (s == NULL)
        return -1;
    Py_ssize_t len;
    const char *t = PyUnicode_AsUTF8AndSize(s, &len);
    if (t == NULL) {
        Py_DECREF(s);
        return -1;
    }
    d->negative = len > 0 && t[0] == '-';
    d->frac = -1;
    d->nonzero = d->wide = 0;
    d->n = 0;
    int digits = 0, seen = 0, rc = 0;
    for (Py_ssize_t i = d->negative; i < len && rc == 0; i++) {
        char c = t[i];
        if (c == '.' && d->frac < 0 && seen) {
            d->frac = 0;
        } else if (c >= '0' && c <= '9') {
            seen = 1;
            if (d->frac >= 0)
                d->frac++;
            if (digits == 0 && c == '0')
                continue; /* leading zeros */
            d->nonzero = 1;
            if (++digits > 18)
                d->wide = 1;
            else
                d->n = d->n * 10 + (c - '0');
        } else { /* an exponent, NaN, Infinity */
            rc = 1;
        }
    }
    Py_DECREF(s);
    if (d->frac < 0)
        d->frac = 0;
    return rc != 0 || !seen ? 1 : 0;
}

/* The unscaled integer of a plain `str(Decimal)` at `scale`, when it has at most 18 digits and `scale` or fewer
 * fraction digits: 0 with `*out` set, 1 when the Python code must decide (an exponent, more digits), -1 on error. */
static int decimal_unscaled(PyObject *v, int scale, long long *out)
{
    DecimalText d;
    int rc = decimal_text(v, &d);
    if (rc != 0)
        return rc;
    if (d.wide || d.frac > scale)
        return 1;
    long long n = d.n;
    for (int k = d.frac; k < scale; k++) {
        if (n > 99999999999999999LL) /* the next step could leave 63 bits */
            return 1;
        n *= 10;
    }
    *out = d.negative ? -n : n;
    return 0;
}

/* `n` as big-endian two's complement in the fewest bytes (Java's BigInteger.toByteArray) into `raw` (9 bytes);
 * the count. */
static int twos_complement(long long n, unsigned char *raw)
{
    unsigned long long m = (unsigned long long)(n >= 0 ? n : ~n);
    int bits = 0;
    while (m) {
        bits++;
        m >>= 1;
    }
    int size = bits / 8 + 1;
    unsigned long long u = (unsigned long long)n;
    for (int k = size - 1; k >= 0; k--) {
        raw[k] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
    return size;
}

/* A Connect Decimal as the JsonConverter writes it: Base64 of its unscaled two's complement, quoted; 0 when
 * written, 1 when the Python converter must decide, -1 on error. */
static int decimal_base64(PyObject *v, int scale, Buf *b)
{
    long long n;
    int rc = decimal_unscaled(v, scale, &n);
    if (rc != 0)
        return rc;
    unsigned char raw[9];
    int size = twos_complement(n, raw);
    char out[16];
    int o = 0;
    out[o++] = '"';
    for (int k = 0; k < size; k += 3) {
        unsigned x = (unsigned)raw[k] << 16 | (k + 1 < size ? (unsigned)raw[k + 1] << 8 : 0)
                     | (k + 2 < size ? raw[k + 2] : 0);
        out[o++] = B64[x >> 18 & 63];
        out[o++] = B64[x >> 12 & 63];
        out[o++] = k + 1 < size ? B64[x >> 6 & 63] : '=';
        out[o++] = k + 2 < size ? B64[x & 63] : '=';
    }
    out[o++] = '"';
    return buf_put(b, out, o) < 0 ? -1 : 0;
}

/* Whether the Decimal `v` is what Connect's Decimal of a column of `scale` makes of it, sign, digits and exponent
 * alike: its text plain (no exponent), with exactly `scale` fraction digits, and not a negative zero (the
 * converter gives +0). 1 if so, 0 if the converter must decide, -1 on error. */
static int decimal_is_at_scale(PyObject *v, int scale)
{
    DecimalText d;
    int rc = decimal_text(v, &d);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    return d.frac == scale && (d.nonzero || !d.negative);
}

/* The converted value of a DATE, DATETIME or TIMESTAMP column computed here as its converter would (a new
 * reference); a Connect Decimal already at its column's scale, itself; or NULL with no error set when the
 * converter must decide (another type, another zone). */
static PyObject *known_value(JsonRow *self, Py_ssize_t i, PyObject *v)
{
    switch (self->kinds[i]) {
    case D_DATE:
        return PyDate_CheckExact(v) ? PyLong_FromLongLong(epoch_days(v)) : NULL;
    case D_DATETIME:
        if (PyDateTime_CheckExact(v) && PyDateTime_DATE_GET_TZINFO(v) == Py_None) {
            long long q;
            floor_div(epoch_seconds(v) * 1000000LL + PyDateTime_DATE_GET_MICROSECOND(v), self->params[i], &q);
            return PyLong_FromLongLong(q);
        }
        return NULL;
    case D_TIMESTAMP:
        if (PyDateTime_CheckExact(v)) {
            PyObject *tz = PyDateTime_DATE_GET_TZINFO(v);
            char text[48];
            int n = tz == Py_None || tz == PyDateTime_TimeZone_UTC ? zoned_text(v, self->params[i], text) : -1;
            if (n >= 0)
                return PyUnicode_FromStringAndSize(text, n);
        }
        return NULL;
    case D_CONNECT_DECIMAL:
        if ((PyObject *)Py_TYPE(v) == decimal_type) {
            int at = decimal_is_at_scale(v, self->params[i]);
            if (at < 0)
                return NULL;
            if (at)
                return Py_NewRef(v);
        }
        return NULL;
    default:
        return NULL;
    }
}

static PyObject *JsonRow_call(JsonRow *self, PyObject *args, PyObject *kwargs)
{
    PyObject *row;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "a JSON row takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "json_row", 1, 1, &row))
        return NULL;
    if (!PyDict_CheckExact(row)) {
        PyErr_SetString(PyExc_TypeError, "a JSON row takes a dict");
        return NULL;
    }
    Buf b;
    buf_init(&b);
    if (self->n == 0 && buf_put(&b, "{", 1) < 0)
        goto fail;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        PyObject *key = PyTuple_GET_ITEM(self->keys, i);
        if (buf_put(&b, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)) < 0)
            goto fail;
        PyObject *v = PyDict_GetItemWithError(row, PyTuple_GET_ITEM(self->names, i)); /* borrowed */
        if (v == NULL) {
            if (PyErr_Occurred())
                goto fail;
            v = Py_None; /* an absent column is null */
        }
        if (v == Py_None) {
            if (buf_put(&b, "null", 4) < 0)
                goto fail;
            continue;
        }
        if (self->kinds[i] == D_ASIS) {
            if (json_any(self, v, &b) < 0)
                goto fail;
            continue;
        }
        if (self->kinds[i] == D_DECIMAL && (PyObject *)Py_TYPE(v) == decimal_type) {
            int rc = decimal_base64(v, self->params[i], &b);
            if (rc < 0)
                goto fail;
            if (rc == 0)
                continue;
        }
        PyObject *c = known_value(self, i, v);
        if (c == NULL && PyErr_Occurred())
            goto fail;
        if (c == NULL) {
            PyObject *conv = PyTuple_GET_ITEM(self->converters, i);
            c = conv == Py_None ? Py_NewRef(v) : PyObject_CallOneArg(conv, v);
        }
        if (c == NULL)
            goto fail;
        int rc = json_any(self, c, &b);
        Py_DECREF(c);
        if (rc < 0)
            goto fail;
    }
    if (buf_put(&b, "}", 1) < 0)
        goto fail;
    PyObject *out = PyBytes_FromStringAndSize(b.data, b.len);
    buf_free(&b);
    return out;
fail:
    buf_free(&b);
    return NULL;
}

/* `JsonRow.values(row)`: the row's converted values as a dict in the columns' order (absent columns None), for
 * the converters given (Connect values, for the Avro format): DATE, DATETIME and TIMESTAMP computed here as
 * their converters would, the rest converted by them (or kept, without one). No JSON is written. */
static PyObject *JsonRow_values(JsonRow *self, PyObject *row)
{
    if (!PyDict_CheckExact(row)) {
        PyErr_SetString(PyExc_TypeError, "JsonRow.values takes a dict");
        return NULL;
    }
    PyObject *out = _PyDict_NewPresized(self->n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        PyObject *name = PyTuple_GET_ITEM(self->names, i);
        PyObject *v = PyDict_GetItemWithError(row, name); /* borrowed */
        if (v == NULL && PyErr_Occurred())
            goto fail;
        PyObject *c = NULL;
        if (v == NULL || v == Py_None) {
            c = Py_NewRef(Py_None);
        } else {
            c = self->kinds[i] == D_ASIS ? Py_NewRef(v) : known_value(self, i, v);
            if (c == NULL) {
                if (PyErr_Occurred())
                    goto fail;
                PyObject *conv = PyTuple_GET_ITEM(self->converters, i);
                c = conv == Py_None ? Py_NewRef(v) : PyObject_CallOneArg(conv, v);
                if (c == NULL)
                    goto fail;
            }
        }
        int rc = PyDict_SetItem(out, name, c);
        Py_DECREF(c);
        if (rc < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef JsonRow_methods[] = {
    {"values", (PyCFunction)JsonRow_values, METH_O,
     "values(row) -> dict: the row's converted values in the columns' order (absent columns None)"},
    {NULL, NULL, 0, NULL},
};

static PyObject *JsonRow_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *names, *kinds, *params, *converters, *dumps;
    static char *kwlist[] = {"names", "kinds", "params", "converters", "dumps", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!O:JsonRow", kwlist, &PyTuple_Type, &names, &PyTuple_Type,
                                     &kinds, &PyTuple_Type, &params, &PyTuple_Type, &converters, &dumps))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(kinds) != n || PyTuple_GET_SIZE(params) != n || PyTuple_GET_SIZE(converters) != n) {
        PyErr_SetString(PyExc_ValueError, "JsonRow: names, kinds, params and converters differ in length");
        return NULL;
    }
    if (!PyCallable_Check(dumps)) {
        PyErr_SetString(PyExc_TypeError, "JsonRow: dumps must be callable");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *conv = PyTuple_GET_ITEM(converters, i);
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i)) || (conv != Py_None && !PyCallable_Check(conv))) {
            PyErr_Format(PyExc_TypeError, "JsonRow: column %zd needs a str name and a callable or None", i);
            return NULL;
        }
    }
    JsonRow *self = (JsonRow *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->n = n;
    self->names = Py_NewRef(names);
    self->converters = Py_NewRef(converters);
    self->dumps = Py_NewRef(dumps);
    if (read_kinds("JsonRow", kinds, params, D_CONNECT_DECIMAL, 1000000, &self->kinds, &self->params) < 0
        || (self->keys = name_keys(names)) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int k = self->kinds[i];
        if ((k == D_DATETIME && self->params[i] < 1) || (k != D_ASIS && PyTuple_GET_ITEM(converters, i) == Py_None)) {
            PyErr_Format(PyExc_ValueError, "JsonRow: column %zd has kind %d, param %d", i, k, self->params[i]);
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

static int JsonRow_traverse(JsonRow *self, visitproc visit, void *arg)
{
    Py_VISIT(self->names);
    Py_VISIT(self->converters);
    Py_VISIT(self->dumps);
    Py_VISIT(self->keys);
    return 0;
}

static int JsonRow_clear(JsonRow *self)
{
    Py_CLEAR(self->names);
    Py_CLEAR(self->converters);
    Py_CLEAR(self->dumps);
    Py_CLEAR(self->keys);
    return 0;
}

static void JsonRow_dealloc(JsonRow *self)
{
    PyObject_GC_UnTrack(self);
    JsonRow_clear(self);
    PyMem_Free(self->kinds);
    PyMem_Free(self->params);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject JsonRowType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "obsync.core._render.JsonRow",
    .tp_doc = "JsonRow(names, kinds, params, converters, dumps)(row) -> bytes: the JSON object of the row's "
              "converted values in the columns' order (absent columns null), as dumps would write it",
    .tp_basicsize = sizeof(JsonRow),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = JsonRow_new,
    .tp_call = (ternaryfunc)JsonRow_call,
    .tp_methods = JsonRow_methods,
    .tp_traverse = (traverseproc)JsonRow_traverse,
    .tp_clear = (inquiry)JsonRow_clear,
    .tp_dealloc = (destructor)JsonRow_dealloc,
};

/* ---------------------------------------------------------------- AvroWriter */

/* Avro binary of a datum, by a program compiled from its schema (`obsync.formats.avro.plan.avro_program`): nested
 * tuples (0,) null, (1,) boolean, (2, is_int32) int/long, (3,) float, (4,) double, (5,) string, (6, scale) bytes
 * (scale >= 0: a decimal, an exact Decimal first turned into bytes by `decimal(value, scale)`), (7, ((name,
 * node), ...)) record (a dict, or a tuple of the fields' values in their order), (8, branch, node, record_name or None) a union of null and one branch at index `branch`.
 * Strict as the generated Python writer is: a value of another type raises `unwritable` (the caller then lets
 * fastavro write it or say why). */

enum { A_NULL, A_BOOLEAN, A_INT, A_FLOAT, A_DOUBLE, A_STRING, A_BYTES, A_RECORD, A_UNION };

typedef struct {
    PyObject_HEAD
    PyObject *program;
    PyObject *unwritable;
    PyObject *decimal; /* callable or None */
} AvroWriter;

static int avro_varint(Buf *b, unsigned long long z)
{
    if (buf_reserve(b, 10) < 0)
        return -1;
    char *o = b->data + b->len;
    while (z >= 0x80) {
        *o++ = (char)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    *o++ = (char)z;
    b->len = o - b->data;
    return 0;
}

static int avro_long(Buf *b, long long n)
{
    unsigned long long z = ((unsigned long long)n << 1) ^ (unsigned long long)(n >> 63);
    return avro_varint(b, z);
}

static int unwritable(AvroWriter *self, const char *what)
{
    PyErr_SetString(self->unwritable, what);
    return -1;
}

static int avro_write(AvroWriter *self, PyObject *node, PyObject *v, Buf *b, int depth)
{
    if (depth > 64)
        return unwritable(self, "nested too deep");
    long op = PyLong_AsLong(PyTuple_GET_ITEM(node, 0));
    switch (op) {
    case A_NULL:
        return v == Py_None ? 0 : unwritable(self, "null");
    case A_BOOLEAN:
        if (!PyBool_Check(v))
            return unwritable(self, "boolean");
        return buf_put(b, v == Py_True ? "\x01" : "\x00", 1);
    case A_INT: {
        if (!PyLong_CheckExact(v))
            return unwritable(self, "int");
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return unwritable(self, "long out of range");
        }
        if (PyTuple_GET_ITEM(node, 1) == Py_True && (x < -2147483648LL || x > 2147483647LL))
            return unwritable(self, "int out of range");
        return avro_long(b, x);
    }
    case A_FLOAT:
    case A_DOUBLE: {
        if (!PyFloat_CheckExact(v))
            return unwritable(self, "float");
        if (buf_reserve(b, 8) < 0)
            return -1;
        int size = op == A_FLOAT ? 4 : 8;
        int rc = size == 4 ? PyFloat_Pack4(PyFloat_AS_DOUBLE(v), b->data + b->len, 1)
                           : PyFloat_Pack8(PyFloat_AS_DOUBLE(v), b->data + b->len, 1);
        if (rc < 0)
            return -1;
        b->len += size;
        return 0;
    }
    case A_STRING: {
        if (!PyUnicode_CheckExact(v))
            return unwritable(self, "string");
        Py_ssize_t n;
        const char *t = PyUnicode_AsUTF8AndSize(v, &n);
        if (t == NULL || avro_long(b, n) < 0)
            return -1;
        return buf_put(b, t, n);
    }
    case A_BYTES: {
        long scale = PyLong_AsLong(PyTuple_GET_ITEM(node, 1));
        PyObject *conv = NULL;
        if (scale >= 0 && self->decimal != Py_None && (PyObject *)Py_TYPE(v) == decimal_type) {
            long long n;
            int plain = decimal_unscaled(v, (int)scale, &n);
            if (plain < 0)
                return -1;
            if (plain == 0) { /* what `decimal(v, scale)` gives, written here */
                unsigned char raw[9];
                int size = twos_complement(n, raw);
                return avro_long(b, size) < 0 ? -1 : buf_put(b, (const char *)raw, size);
            }
            PyObject *sc = PyLong_FromLong(scale);
            if (sc == NULL)
                return -1;
            conv = PyObject_CallFunctionObjArgs(self->decimal, v, sc, NULL);
            Py_DECREF(sc);
            if (conv == NULL)
                return -1;
            v = conv;
        }
        int rc;
        if (!PyBytes_CheckExact(v))
            rc = unwritable(self, "bytes");
        else
            rc = avro_long(b, PyBytes_GET_SIZE(v)) < 0 ? -1 : buf_put(b, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
        Py_XDECREF(conv);
        return rc;
    }
    case A_RECORD: {
        PyObject *fields = PyTuple_GET_ITEM(node, 1);
        if (PyTuple_CheckExact(v)) { /* the fields' values in the schema's order */
            if (PyTuple_GET_SIZE(v) != PyTuple_GET_SIZE(fields))
                return unwritable(self, "record of another length");
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++)
                if (avro_write(self, PyTuple_GET_ITEM(PyTuple_GET_ITEM(fields, i), 1), PyTuple_GET_ITEM(v, i), b,
                               depth + 1) < 0)
                    return -1;
            return 0;
        }
        if (!PyDict_CheckExact(v))
            return unwritable(self, "record");
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
            PyObject *field = PyTuple_GET_ITEM(fields, i);
            PyObject *name = PyTuple_GET_ITEM(field, 0);
            PyObject *x = PyDict_GetItemWithError(v, name);
            if (x == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, name);
                return -1;
            }
            if (avro_write(self, PyTuple_GET_ITEM(field, 1), x, b, depth + 1) < 0)
                return -1;
        }
        return 0;
    }
    case A_UNION: {
        long branch = PyLong_AsLong(PyTuple_GET_ITEM(node, 1));
        PyObject *inner = PyTuple_GET_ITEM(node, 2);
        PyObject *name = PyTuple_GET_ITEM(node, 3);
        if (v == Py_None) {
            if (branch < 0)
                return unwritable(self, "union without null");
            return avro_long(b, 1 - branch);
        }
        if (name != Py_None && PyTuple_CheckExact(v)) {
            if (PyTuple_GET_SIZE(v) != 2)
                return unwritable(self, "union branch");
            int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(v, 0), name, Py_EQ);
            if (eq < 0)
                return -1;
            if (!eq)
                return unwritable(self, "union branch name");
            v = PyTuple_GET_ITEM(v, 1);
        }
        if (avro_long(b, branch < 0 ? 0 : branch) < 0)
            return -1;
        return avro_write(self, inner, v, b, depth + 1);
    }
    default:
        return unwritable(self, "unknown node");
    }
}

static PyObject *AvroWriter_call(AvroWriter *self, PyObject *args, PyObject *kwargs)
{
    PyObject *datum;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "an Avro writer takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "write", 1, 1, &datum))
        return NULL;
    Buf b;
    buf_init(&b);
    if (avro_write(self, self->program, datum, &b, 0) < 0) {
        buf_free(&b);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(b.data, b.len);
    buf_free(&b);
    return out;
}

/* The program's shape, checked once so that the writer can read it without checks. */
static int avro_check(PyObject *node, int depth)
{
    if (depth > 64 || !PyTuple_CheckExact(node) || PyTuple_GET_SIZE(node) < 1 || !PyLong_CheckExact(PyTuple_GET_ITEM(node, 0)))
        goto bad;
    long op = PyLong_AsLong(PyTuple_GET_ITEM(node, 0));
    Py_ssize_t n = PyTuple_GET_SIZE(node);
    switch (op) {
    case A_NULL: case A_BOOLEAN: case A_FLOAT: case A_DOUBLE: case A_STRING:
        return 0;
    case A_INT:
        return n == 2 && PyBool_Check(PyTuple_GET_ITEM(node, 1)) ? 0 : -2;
    case A_BYTES:
        return n == 2 && PyLong_CheckExact(PyTuple_GET_ITEM(node, 1)) ? 0 : -2;
    case A_RECORD: {
        if (n != 2 || !PyTuple_CheckExact(PyTuple_GET_ITEM(node, 1)))
            goto bad;
        PyObject *fields = PyTuple_GET_ITEM(node, 1);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
            PyObject *f = PyTuple_GET_ITEM(fields, i);
            if (!PyTuple_CheckExact(f) || PyTuple_GET_SIZE(f) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(f, 0)))
                goto bad;
            int rc = avro_check(PyTuple_GET_ITEM(f, 1), depth + 1);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    case A_UNION:
        if (n != 4 || !PyLong_CheckExact(PyTuple_GET_ITEM(node, 1)))
            goto bad;
        {
            long branch = PyLong_AsLong(PyTuple_GET_ITEM(node, 1));
            if (branch < -1 || branch > 1)
                goto bad;
        }
        return avro_check(PyTuple_GET_ITEM(node, 2), depth + 1);
    default:
        goto bad;
    }
bad:
    return -2;
}

static PyObject *AvroWriter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *program, *unwritable_exc, *decimal;
    static char *kwlist[] = {"program", "unwritable", "decimal", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO:AvroWriter", kwlist, &program, &unwritable_exc, &decimal))
        return NULL;
    if (avro_check(program, 0) < 0) {
        PyErr_SetString(PyExc_ValueError, "AvroWriter: not a program of avro_program's shape");
        return NULL;
    }
    if (!PyExceptionClass_Check(unwritable_exc) || (decimal != Py_None && !PyCallable_Check(decimal))) {
        PyErr_SetString(PyExc_TypeError, "AvroWriter: unwritable must be an exception class, decimal a callable");
        return NULL;
    }
    AvroWriter *self = (AvroWriter *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->program = Py_NewRef(program);
    self->unwritable = Py_NewRef(unwritable_exc);
    self->decimal = Py_NewRef(decimal);
    return (PyObject *)self;
}

static int AvroWriter_traverse(AvroWriter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->program);
    Py_VISIT(self->unwritable);
    Py_VISIT(self->decimal);
    return 0;
}

static int AvroWriter_clear(AvroWriter *self)
{
    Py_CLEAR(self->program);
    Py_CLEAR(self->unwritable);
    Py_CLEAR(self->decimal);
    return 0;
}

static void AvroWriter_dealloc(AvroWriter *self)
{
    PyObject_GC_UnTrack(self);
    AvroWriter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject AvroWriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "obsync.core._render.AvroWriter",
    .tp_doc = "AvroWriter(program, unwritable, decimal)(datum) -> bytes: the datum's Avro binary",
    .tp_basicsize = sizeof(AvroWriter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = AvroWriter_new,
    .tp_call = (ternaryfunc)AvroWriter_call,
    .tp_traverse = (traverseproc)AvroWriter_traverse,
    .tp_clear = (inquiry)AvroWriter_clear,
    .tp_dealloc = (destructor)AvroWriter_dealloc,
};

/* ---------------------------------------------------------------- JsonTemplate */

typedef struct {
    PyObject_HEAD
    PyObject *fragments; /* tuple of bytes, one more than the slots */
    RowRenderer *renderer;
    vectorcallfunc vectorcall;
} JsonTemplate;

static PyObject *JsonTemplate_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    JsonTemplate *self = (JsonTemplate *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t slots = PyTuple_GET_SIZE(self->fragments) - 1;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
        PyErr_SetString(PyExc_TypeError, "a JSON template takes no keyword arguments");
        return NULL;
    }
    if (nargs != slots) {
        PyErr_Format(PyExc_TypeError, "this JSON template takes %zd values, not %zd", slots, nargs);
        return NULL;
    }
    Buf b;
    buf_init(&b);
    for (Py_ssize_t i = 0; i <= slots; i++) {
        PyObject *f = PyTuple_GET_ITEM(self->fragments, i);
        if (buf_put(&b, PyBytes_AS_STRING(f), PyBytes_GET_SIZE(f)) < 0)
            goto fail;
        if (i == slots)
            break;
        PyObject *v = args[i];
        int rc;
        if (PyBytes_CheckExact(v)) /* JSON written already */
            rc = buf_put(&b, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
        else if (PyDict_CheckExact(v) && self->renderer != NULL)
            rc = row_json(self->renderer, v, &b);
        else
            rc = buf_json_scalar(&b, v);
        if (rc < 0)
            goto fail;
    }
    PyObject *out = PyBytes_FromStringAndSize(b.data, b.len);
    buf_free(&b);
    return out;
fail:
    buf_free(&b);
    return NULL;
}

static PyObject *JsonTemplate_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *fragments, *renderer;
    static char *kwlist[] = {"fragments", "renderer", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O:JsonTemplate", kwlist, &PyTuple_Type, &fragments, &renderer))
        return NULL;
    if (renderer != Py_None && !PyObject_TypeCheck(renderer, &RowRendererType)) {
        PyErr_SetString(PyExc_TypeError, "JsonTemplate: renderer must be a RowRenderer or None");
        return NULL;
    }
    if (PyTuple_GET_SIZE(fragments) < 1) {
        PyErr_SetString(PyExc_ValueError, "JsonTemplate: at least one fragment");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fragments); i++) {
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(fragments, i))) {
            PyErr_Format(PyExc_TypeError, "JsonTemplate: fragment %zd is not bytes", i);
            return NULL;
        }
    }
    JsonTemplate *self = (JsonTemplate *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fragments = Py_NewRef(fragments);
    self->renderer = renderer == Py_None ? NULL : (RowRenderer *)Py_NewRef(renderer);
    self->vectorcall = JsonTemplate_vectorcall;
    return (PyObject *)self;
}

static int JsonTemplate_traverse(JsonTemplate *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fragments);
    Py_VISIT(self->renderer);
    return 0;
}

static int JsonTemplate_clear(JsonTemplate *self)
{
    Py_CLEAR(self->fragments);
    Py_CLEAR(self->renderer);
    return 0;
}

static void JsonTemplate_dealloc(JsonTemplate *self)
{
    PyObject_GC_UnTrack(self);
    JsonTemplate_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject JsonTemplateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "obsync.core._render.JsonTemplate",
    .tp_doc = "JsonTemplate(fragments, renderer)(*values) -> bytes: the fragments with each value's JSON between "
              "them (None, str, int of 64 bits, bytes: JSON written already, or, with a renderer, a row of its "
              "columns as its rendered object)",
    .tp_basicsize = sizeof(JsonTemplate),
    .tp_vectorcall_offset = offsetof(JsonTemplate, vectorcall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = JsonTemplate_new,
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)JsonTemplate_traverse,
    .tp_clear = (inquiry)JsonTemplate_clear,
    .tp_dealloc = (destructor)JsonTemplate_dealloc,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_render", "Canonical text of a row's values, compiled (RowRenderer, JsonTemplate).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__render(void)
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
    if (PyType_Ready(&RowRendererType) < 0 || PyType_Ready(&JsonTemplateType) < 0 || PyType_Ready(&JsonRowType) < 0
        || PyType_Ready(&AvroWriterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "RowRenderer", (PyObject *)&RowRendererType) < 0
        || PyModule_AddObjectRef(m, "JsonTemplate", (PyObject *)&JsonTemplateType) < 0
        || PyModule_AddObjectRef(m, "JsonRow", (PyObject *)&JsonRowType) < 0
        || PyModule_AddObjectRef(m, "AvroWriter", (PyObject *)&AvroWriterType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
