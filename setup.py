"""The compiled modules; everything else is in pyproject.toml.

- Kafka's murmur2 partitioner (`obsync/connectors/kafka/_murmur2.c`); without it
  `obsync.connectors.kafka.partitioner` uses librdkafka's murmur2 through ctypes (or Python).
- The canonical text of a row's values (`obsync/core/_render.c`); without it `obsync.formats.values` renders
  rows with generated Python code.
- Rows of plain values packed for crossing processes (`obsync/core/_pack.c`); without it `obsync.core.packing`
  leaves them to pickle (and reads what another process packed in Python).
- The binlog's row images decoded (`obsync/connectors/mysql/binlog/_rowimage.c`); without it
  `obsync.connectors.mysql.binlog.rows` decodes them with generated Python code.

All are optional: without a C compiler the install still succeeds and the Python code does the same work.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("obsync.connectors.kafka._murmur2", ["obsync/connectors/kafka/_murmur2.c"], optional=True),
    Extension("obsync.core._render", ["obsync/core/_render.c"], optional=True),
    Extension("obsync.core._pack", ["obsync/core/_pack.c"], optional=True),
    Extension("obsync.connectors.mysql.binlog._rowimage", ["obsync/connectors/mysql/binlog/_rowimage.c"],
              optional=True),
])
