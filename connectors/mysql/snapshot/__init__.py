"""Full sync of MySQL-protocol sources (OceanBase, MySQL, MariaDB): plan chunks, read them, feed Bytewax.

- `plan.plan_snapshot` -> `SnapshotPlan` (chunks by key range, OceanBase read point)
- `reader.ChunkReader` reads one chunk in batches of `Change`s, resumable (no engine)
- `source.SnapshotSource` is the Bytewax adapter (import it from its module: it needs bytewax)
"""

from obsync.connectors.mysql.snapshot.plan import Chunk, SnapshotPlan, TablePlan, plan_snapshot
from obsync.connectors.mysql.snapshot.reader import ChunkReader

__all__ = ["Chunk", "ChunkReader", "SnapshotPlan", "TablePlan", "plan_snapshot"]
