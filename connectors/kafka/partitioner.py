"""Stable partition choice: Kafka's own murmur2, never Python's salted `hash()`.

Hash uses the same function as Kafka's Java default partitioner (`toPositive(murmur2(key)) % n`), applied to
a canonical encoding of the key columns' values, so a key lands in the same partition whatever the message
format, run or process.
"""

from __future__ import annotations


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


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner would choose for `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
