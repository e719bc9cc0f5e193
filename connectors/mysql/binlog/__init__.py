"""The binlog (log) input: MySQL-protocol replication stream -> frozen `Change` batches, with schema tracking.

`reader.BinlogReader` is engine-free (a thread feeding a bounded queue of batches); `source.BinlogSource` is
the thin Bytewax adapter.
"""

from obsync.connectors.mysql.binlog.reader import BinlogReader
from obsync.connectors.mysql.binlog.server_log import binlog_files, current_log_position

__all__ = ["BinlogReader", "binlog_files", "current_log_position"]
