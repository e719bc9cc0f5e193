"""The one compiled module: Kafka's murmur2 partitioner (`obsync/connectors/kafka/_murmur2.c`).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the install still
succeeds and `obsync.connectors.kafka.partitioner` uses librdkafka's murmur2 through ctypes (or Python).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("obsync.connectors.kafka._murmur2", ["obsync/connectors/kafka/_murmur2.c"],
                             optional=True)])
