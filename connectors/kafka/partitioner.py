"""Stable partition choice: Kafka's own murmur2, never Python's salted `hash()`.

Hash uses the same function as Kafka's Java default partitioner (`toPositive(murmur2(key)) % n`), applied to
a canonical encoding of the key columns' values, so a key lands in the same partition whatever the message
format, run or process.

`partition_for` is, fastest first, whichever of these is there (a unit test checks that each gives the
partitions of the Python `murmur2` below, the reference):
- the compiled `_murmur2` module (`_murmur2.c` beside this file), built by `pip install` when a C compiler is
  there (`setup.py`): about 200 instructions a key;
- librdkafka's own murmur2 partitioner (`rd_kafka_msg_partitioner_murmur2`, public in `rdkafka.h`), from the
  librdkafka the Kafka client already loads, called through ctypes: about 5,700 instructions a key, most of them
  ctypes' and libffi's;
- the Python `murmur2`: about 15,000.

librdkafka's is loaded as a `ctypes.PyDLL`, whose calls keep the GIL: the
function takes well under a µs, while releasing the GIL around it (`ctypes.CDLL`) let the binlog reader's thread
take it, and the dataflow's thread then waited for it back, about 100 µs per key with that thread busy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
from collections.abc import Callable, Iterator


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    length = len(data)
    m = 0x5BD1E995
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    end4 = length & ~3
    for i in range(0, end4, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * m) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * m) & 0xFFFFFFFF) ^ ((k * m) & 0xFFFFFFFF)
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[end4 + 2] << 16
        if extra >= 2:
            h ^= data[end4 + 1] << 8
        h = ((h ^ data[end4]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def python_partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner would choose for `key` (pure Python)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _library_files() -> Iterator[str]:
    """librdkafka's library files: the confluent-kafka wheel's, then (asked only when reached) the system's."""
    import confluent_kafka

    site = os.path.dirname(os.path.dirname(confluent_kafka.__file__))
    yield from sorted(glob.glob(os.path.join(site, "confluent_kafka.libs", "librdkafka*.so*")))
    system = ctypes.util.find_library("rdkafka")
    if system:
        yield system


@functools.cache
def librdkafka_partitioner() -> Callable[..., int] | None:
    """librdkafka's murmur2 partitioner (rkt, key, keylen, partition_cnt, rkt_opaque, msg_opaque) -> partition,
    from the library the confluent-kafka client bundles (its wheel's `confluent_kafka.libs`), else the system's
    (looked for only then: `ctypes.util.find_library` runs ldconfig and the C compiler); None when neither is
    found. Looked up once, and only without the compiled module."""
    try:
        for path in _library_files():
            fn = ctypes.PyDLL(path).rd_kafka_msg_partitioner_murmur2  # keeps the GIL (docstring)
            fn.restype = ctypes.c_int32
            # no `argtypes`: ctypes would convert each argument by a `from_param` call, about half the cost of
            # a key. Passed as they are, None is a NULL pointer, bytes a char*, an int a C int (the partition
            # count is an int32_t); the length is given as the size_t it is (`partition_for`).
            if all(fn(None, k, ctypes.c_size_t(len(k)), n, None, None) == python_partition_for(k, n)
                   for k in (b"", b"21", b"foobar", b"a-little-bit-long-string", b"[42]") for n in (1, 3, 7)):
                return fn
    except (ImportError, OSError, AttributeError):
        pass
    return None


compiled_partition_for: Callable[[bytes, int], int] | None
try:
    from obsync.connectors.kafka._murmur2 import partition_for as compiled_partition_for
except ImportError:  # pragma: no cover - installed without a C compiler
    compiled_partition_for = None

if compiled_partition_for is not None:
    partition_for = compiled_partition_for
elif (_rd_murmur2 := librdkafka_partitioner()) is not None:  # pragma: no cover - installed without a C compiler
    _size_t = ctypes.c_size_t

    def partition_for(key: bytes, partitions: int) -> int:
        """The partition Kafka's default partitioner would choose for `key` (computed by librdkafka)."""
        return _rd_murmur2(None, key, _size_t(len(key)), partitions, None, None)  # type: ignore[misc]  # not None here
else:  # pragma: no cover - without librdkafka's library file
    partition_for = python_partition_for
