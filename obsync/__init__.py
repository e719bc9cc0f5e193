"""obsync: change-data-capture from OceanBase (and MySQL/MariaDB) to Kafka on Bytewax."""

__version__ = "0.1.0"
