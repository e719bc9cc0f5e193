"""Binlog reader throughput and memory: a 10-column table written on MariaDB, read back by `BinlogReader`.

    python -m bench.binlog_bench [--rows 200000] [--single-txn | --txn-rows N] [--batch-size 500]
                                 [--metadata MINIMAL|FULL] [--mariadb-port P]

Starts a MariaDB in a temporary directory unless given the port of a running one (user root, no password,
binlog on). Writes `--rows` rows (in 2,000-row transactions, one transaction with `--single-txn`, or `--txn-rows`
rows per transaction: 1 gives single-row transactions, each with its GTID, table map and XID events), then
streams them from the position before the writes to the position after, and prints:
  rows/s     changes handed out by poll() per second of wall time, and the reader's CPU time per row
  peak RSS   the highest resident set size of this process while streaming (the kernel's VmHWM), and its growth
             over the RSS before the reader started (the reader's memory is bounded by batch_size * max_batches)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from obsync.connectors.mysql.binlog import BinlogReader, current_log_position
from obsync.connectors.mysql.connection import Endpoint, connect

DDL = """CREATE TABLE bench_binlog.t (
  id BIGINT NOT NULL, a INT NOT NULL, b BIGINT NOT NULL, c VARCHAR(64) NOT NULL, d DECIMAL(12,2) NOT NULL,
  e DOUBLE NOT NULL, f DATETIME(3) NOT NULL, g TIMESTAMP(6) NOT NULL DEFAULT '2024-01-01 00:00:00',
  h DATE NOT NULL, i TINYINT NOT NULL, PRIMARY KEY (id))"""


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """The highest RSS of this process while in the block: the kernel's peak (VmHWM), reset on entry through
    /proc/self/clear_refs; where that cannot be reset, sampled every 20 ms in a thread."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            self._t = threading.Thread(target=self._run, daemon=True)
            self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._t is None:
            with open("/proc/self/status") as f:
                hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
            self.peak = max(self.peak, hwm)
            return
        self._stop.set()
        self._t.join()


def values(i: int) -> str:
    return (f"({i},{i % 1000},{i * 7},'name-{i}',{i / 100:.2f},{i / 3!r},'2024-05-06 07:08:09.123',"
            f"'2024-01-02 03:04:05.{i % 1000000:06d}','2024-02-{i % 28 + 1:02d}',{i % 100})")


def write_rows(ep: Endpoint, rows: int, single_txn: bool, txn_rows: int = 2000) -> None:
    conn = connect(ep, autocommit=not single_txn)
    with conn.cursor() as cur:
        if txn_rows == 1 and not single_txn:  # one autocommit INSERT per row, looped in the server
            cur.execute(f"BEGIN NOT ATOMIC FOR i IN 0..{rows - 1} DO INSERT INTO bench_binlog.t VALUES (i, i % 1000, "
                        "i * 7, CONCAT('name-', i), i / 100, i / 3, '2024-05-06 07:08:09.123', "
                        "'2024-01-02 03:04:05.5', '2024-02-03', i % 100); END FOR; END")
            conn.close()
            return
        if single_txn:
            cur.execute("BEGIN")
        step = txn_rows
        for lo in range(0, rows, step):
            vals = ",".join(values(i) for i in range(lo, min(lo + step, rows)))
            cur.execute(f"INSERT INTO bench_binlog.t VALUES {vals}")
        if single_txn:
            cur.execute("COMMIT")
    conn.close()


def run(ep: Endpoint, rows: int, single_txn: bool, batch_size: int, txn_rows: int = 2000) -> None:
    conn = connect(ep)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS bench_binlog")
        cur.execute("CREATE DATABASE bench_binlog CHARACTER SET utf8mb4")
        cur.execute(DDL)
    conn.close()
    start = current_log_position(ep)
    t0 = time.perf_counter()
    write_rows(ep, rows, single_txn, txn_rows)
    stop = current_log_position(ep)
    print(f"wrote {rows} rows ({'one transaction' if single_txn else f'{txn_rows:,}-row transactions'}) in "
          f"{time.perf_counter() - t0:.1f} s; binlog {start} .. {stop}", flush=True)
    with tempfile.TemporaryDirectory() as hist:
        base = rss_bytes()
        reader = BinlogReader(ep, server_id=4242, tables=[("bench_binlog", "t")], history_dir=hist,
                              start=start, stop_at=stop, batch_size=batch_size)
        n = 0
        with PeakRss() as mem:
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            while not reader.finished:
                n += len(reader.poll(1.0))
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
        reader.close()
    status = "" if n == rows else f"  (!! {n} rows, expected {rows})"
    print(f"  reader {n / seconds:>10,.0f} rows/s  {cpu / max(n, 1) * 1e6:5.1f} us CPU/row  "
          f"({n} rows in {seconds:.2f} s){status}")
    print(f"  peak RSS {mem.peak / 2**20:.0f} MiB (+{(mem.peak - base) / 2**20:.0f} MiB over the "
          f"{base / 2**20:.0f} MiB before the reader)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--single-txn", action="store_true", help="write all rows in one transaction")
    ap.add_argument("--txn-rows", type=int, default=2000, help="rows per transaction (1: single-row transactions)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--metadata", choices=("MINIMAL", "FULL"), default="MINIMAL")
    ap.add_argument("--mariadb-port", type=int, help="use a running MariaDB (root, no password, binlog on)")
    args = ap.parse_args()
    if args.mariadb_port:
        run(Endpoint("127.0.0.1", args.mariadb_port, "root", ""), args.rows, args.single_txn, args.batch_size,
            args.txn_rows)
        return
    from obsync.app.embedded.mariadb import MariaDBServer

    with tempfile.TemporaryDirectory() as d, MariaDBServer(Path(d), row_metadata=args.metadata) as server:
        run(Endpoint(server.host, server.port, server.user, server.password), args.rows, args.single_txn,
            args.batch_size, args.txn_rows)


if __name__ == "__main__":
    main()
