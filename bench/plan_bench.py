"""Full-sync planning time for many small tables, with and without each table's SHOW CREATE TABLE (read only when
the format writes a snapshot's DDL: `obsync.runtime.prepare.snapshot_ddl_needed`).

    python -m bench.plan_bench [--tables 1000] [--mariadb-port P] [--repeat 3]

Starts a MariaDB in a temporary directory unless given the port of a running one (user root, no password).
Prints the best of `--repeat` wall times of `plan_snapshot` over all the tables, each way.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from obsync.connectors.mysql.catalog import SqlCatalog
from obsync.connectors.mysql.connection import Endpoint, connect, detect_dialect
from obsync.connectors.mysql.snapshot.plan import plan_snapshot

DB = "bench_plan"


def load(ep: Endpoint, n: int) -> None:
    conn = connect(ep)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        for i in range(n):
            cur.execute(f"CREATE TABLE {DB}.t{i:04d} (id INT PRIMARY KEY, v VARCHAR(20), n INT)")
            cur.execute(f"INSERT INTO {DB}.t{i:04d} VALUES (1, 'a', 1), (2, 'b', 2)")
    conn.close()


def run(ep: Endpoint, n: int, repeat: int) -> None:
    load(ep, n)
    conn = connect(ep)
    try:
        catalog = SqlCatalog(conn)
        schemas = [catalog.table_schema(DB, f"t{i:04d}") for i in range(n)]
        dialect = detect_dialect(conn)
        for with_ddl in (True, False):
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                plan = plan_snapshot(conn, dialect, schemas, 50_000, with_ddl=with_ddl)
                best = min(best, time.perf_counter() - t0)
            assert len(plan.tables) == n and all((t.create_ddl is not None) == with_ddl for t in plan.tables)
            print(f"plan {n} tables, SHOW CREATE TABLE {'read' if with_ddl else 'not read'}: {best:.2f} s "
                  f"({best / n * 1000:.2f} ms/table)")
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mariadb-port", type=int)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="obsync-planbench-") as tmp:
        port, server = args.mariadb_port, None
        if port is None:
            from obsync.app.embedded.mariadb import MariaDBServer

            server = MariaDBServer(Path(tmp) / "mariadb")
            port = server.port
        try:
            run(Endpoint("127.0.0.1", port, "root", ""), args.tables, args.repeat)
        finally:
            if server is not None:
                server.close()


if __name__ == "__main__":
    main()
