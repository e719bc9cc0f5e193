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
#include <stdio.h>
#include <string.h>

enum { K_CALL = 0, K_STR = 1, K_DECIMAL = 2, K_DOUBLE = 3, K_DATETIME = 4, K_TIMESTAMP = 5, K_DATE = 6 };

static PyObject *decimal_type = NULL; /* decimal.Decimal */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    PyObject *names;     /* tuple of str */
    PyObject *fallbacks; /* tuple of callables */
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

static PyObject *render_datetime(PyObject *v, int fsp)
{
    char buf[40];
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06d", PyDateTime_GET_YEAR(v),
                     PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v), PyDateTime_DATE_GET_HOUR(v),
                     PyDateTime_DATE_GET_MINUTE(v), PyDateTime_DATE_GET_SECOND(v),
                     PyDateTime_DATE_GET_MICROSECOND(v));
    int cut = fsp ? 20 + fsp : 19;
    return PyUnicode_FromStringAndSize(buf, cut < n ? cut : n);
}

/* TIMESTAMP: epoch seconds of a UTC (or naive, taken as UTC) datetime; NULL with no error set for other zones. */
static PyObject *render_timestamp(PyObject *v, int fsp)
{
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(v);
    if (tz != Py_None && tz != PyDateTime_TimeZone_UTC)
        return NULL;
    long long secs = days_from_civil(PyDateTime_GET_YEAR(v), (unsigned)PyDateTime_GET_MONTH(v),
                                     (unsigned)PyDateTime_GET_DAY(v)) * 86400LL
                     + PyDateTime_DATE_GET_HOUR(v) * 3600LL + PyDateTime_DATE_GET_MINUTE(v) * 60LL
                     + PyDateTime_DATE_GET_SECOND(v);
    char buf[48];
    int n;
    if (fsp) {
        n = snprintf(buf, sizeof buf, "%lld.%06d", secs, PyDateTime_DATE_GET_MICROSECOND(v));
        if (fsp < 6)
            n -= 6 - fsp;
    } else {
        n = snprintf(buf, sizeof buf, "%lld", secs);
    }
    return PyUnicode_FromStringAndSize(buf, n);
}

static PyObject *render_date(PyObject *v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02d", PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v),
                     PyDateTime_GET_DAY(v));
    return PyUnicode_FromStringAndSize(buf, n);
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
    self->kinds = PyMem_Calloc((size_t)(n ? n : 1), sizeof(int));
    self->params = PyMem_Calloc((size_t)(n ? n : 1), sizeof(int));
    if (self->kinds == NULL || self->params == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long k = PyLong_AsLong(PyTuple_GET_ITEM(kinds, i));
        long p = PyLong_AsLong(PyTuple_GET_ITEM(params, i));
        if ((k == -1 || p == -1) && PyErr_Occurred()) {
            Py_DECREF(self);
            return NULL;
        }
        if (k < K_CALL || k > K_DATE || p < 0 || p > 65535) {
            PyErr_Format(PyExc_ValueError, "RowRenderer: column %zd has kind %ld, param %ld", i, k, p);
            Py_DECREF(self);
            return NULL;
        }
        self->kinds[i] = (int)k;
        self->params[i] = (int)p;
    }
    self->names = Py_NewRef(names);
    self->fallbacks = Py_NewRef(fallbacks);
    return (PyObject *)self;
}

static int RowRenderer_traverse(RowRenderer *self, visitproc visit, void *arg)
{
    Py_VISIT(self->names);
    Py_VISIT(self->fallbacks);
    return 0;
}

static int RowRenderer_clear(RowRenderer *self)
{
    Py_CLEAR(self->names);
    Py_CLEAR(self->fallbacks);
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

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_render", "Canonical text of a row's values, compiled (see RowRenderer).", -1, NULL,
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
    if (PyType_Ready(&RowRendererType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "RowRenderer", (PyObject *)&RowRendererType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
