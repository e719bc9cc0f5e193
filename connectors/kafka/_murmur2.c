/* Kafka's default partitioner, compiled: `partition_for(key: bytes, partitions: int) -> int`.
 *
 * The same function as org.apache.kafka.common.utils.Utils.murmur2 and librdkafka's murmur2 partitioner
 * (`toPositive(murmur2(key)) % partitions`), for `obsync.connectors.kafka.partitioner`, which falls back to
 * librdkafka's through ctypes, then to Python, when this module was not built. Called once per row change: a
 * ctypes call costs about 5,700 instructions, this one about 200 (`python -m bench.instructions`).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static uint32_t murmur2(const unsigned char *data, Py_ssize_t length)
{
    const uint32_t m = 0x5bd1e995u;
    uint32_t h = 0x9747b28cu ^ (uint32_t)length;
    Py_ssize_t end4 = length & ~(Py_ssize_t)3;
    for (Py_ssize_t i = 0; i < end4; i += 4) {
        uint32_t k = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16
                     | (uint32_t)data[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (length & 3) {
    case 3:
        h ^= (uint32_t)data[end4 + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)data[end4 + 1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)data[end4];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

static PyObject *partition_for(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "partition_for() takes 2 arguments (key, partitions), %zd given", nargs);
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "partition_for(): the key must be bytes, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    long partitions = PyLong_AsLong(args[1]);
    if (partitions == -1 && PyErr_Occurred())
        return NULL;
    if (partitions <= 0 || partitions > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "partition_for(): the partition count must be from 1 to 2147483647, not %ld",
                     partitions);
        return NULL;
    }
    uint32_t h = murmur2((const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]));
    return PyLong_FromLong((long)((h & 0x7fffffffu) % (uint32_t)partitions));
}

static PyMethodDef methods[] = {
    {"partition_for", (PyCFunction)(void (*)(void))partition_for, METH_FASTCALL,
     "partition_for(key, partitions) -> the partition Kafka's default partitioner chooses for key."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_murmur2", "Kafka's default partitioner (murmur2), compiled.", 0, methods,
};

PyMODINIT_FUNC PyInit__murmur2(void)
{
    return PyModuleDef_Init(&module);
}
