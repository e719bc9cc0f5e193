"""`obsync demo`: a sample task on servers it starts itself, with live writes, showing messages arrive.

It starts a MariaDB with a row-format binary log and a tansu Kafka broker on free local ports, creates
`shop.orders` with some rows, runs `obsync run` on it in a child process (full + incremental sync), keeps
inserting, updating and deleting rows, and prints every message that lands in Kafka.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer

from obsync.app.embedded.mariadb import MariaDBServer
from obsync.app.embedded.tansu import TansuBroker

TASK = """\
name: demo
source: {{host: 127.0.0.1, port: {port}, user: root, password: "", server_id: 5401}}
target: {{bootstrap_servers: "{bootstrap}"}}
sync: {{full: true, incremental: true}}
objects:
  - match: shop.orders
topic: "Topic_${{database}}_${{table}}"
topics: {{partitions: 3, replication_factor: 1}}
format: default
partitioning: hash
state_dir: {state}
"""

SCHEMA = """
CREATE DATABASE IF NOT EXISTS shop;
CREATE TABLE shop.orders (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  customer VARCHAR(64) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
  note JSON NULL,
  created TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
)
"""


def _writer(db: MariaDBServer, stop: threading.Event) -> None:
    """Live writes: mostly inserts, some updates and deletes, a few per second."""
    conn = db.connect(autocommit=True)
    rnd = random.Random(7)
    with conn.cursor() as cur:
        while not stop.wait(0.3):
            action = rnd.random()
            if action < 0.6:
                cur.execute("INSERT INTO shop.orders (customer, amount, note) VALUES (%s, %s, %s)",
                            (rnd.choice(["ana", "bo", "chen", "dara"]), f"{rnd.uniform(1, 500):.2f}",
                             json.dumps({"via": "demo"})))
            elif action < 0.9:
                cur.execute("UPDATE shop.orders SET status = 'paid' WHERE status = 'new' ORDER BY RAND() LIMIT 1")
            else:
                cur.execute("DELETE FROM shop.orders ORDER BY RAND() LIMIT 1")
    conn.close()


def run_demo(base: Path, seconds: float = 0, rows: int = 1000) -> int:
    """Run the demo until Ctrl-C (or for `seconds`); returns the exit code."""
    run_dir = base / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # the broker keeps nothing across runs: start fresh
    run_dir.mkdir(parents=True)
    print(f"obsync demo: starting MariaDB (binary log on) and a Kafka broker in {run_dir}", flush=True)
    db = MariaDBServer(run_dir / "mariadb")
    broker = TansuBroker(run_dir / "tansu")
    with db.connect(autocommit=True) as conn, conn.cursor() as cur:
        for stmt in filter(str.strip, SCHEMA.split(";")):
            cur.execute(stmt)
        cur.executemany("INSERT INTO shop.orders (customer, amount) VALUES (%s, %s)",
                        [(f"customer{i % 50}", f"{i % 997}.{i % 100:02d}") for i in range(rows)])
    task_file = run_dir / "demo-task.yaml"
    task_file.write_text(TASK.format(port=db.port, bootstrap=broker.bootstrap_servers, state=run_dir / "state"))
    print(f"obsync demo: {rows} rows in shop.orders; task file {task_file}", flush=True)
    print(f"obsync demo: running `obsync run {task_file}`; messages from topic Topic_shop_orders follow "
          "(Ctrl-C to stop)", flush=True)
    task = subprocess.Popen([sys.executable, "-m", "obsync", "run", str(task_file)],
                            stdout=open(run_dir / "obsync.log", "wb"), stderr=subprocess.STDOUT)
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(db, stop), daemon=True)
    writer.start()
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"demo-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 1000,
                         "session.timeout.ms": 6000, "max.poll.interval.ms": 6000})
    consumer.subscribe(["Topic_shop_orders"])
    counts: dict[str, int] = {}
    deadline = time.monotonic() + seconds if seconds else None
    code = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            if task.poll() is not None:
                print(f"obsync demo: the task exited with code {task.returncode}; see {run_dir / 'obsync.log'}")
                code = 1
                break
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            value = json.loads(msg.value())
            kind = value["recordType"]
            counts[kind] = counts.get(kind, 0) + 1
            if kind != "ROW" or counts[kind] <= 3:
                print(f"[p{msg.partition()} @{msg.offset()}] key={msg.key().decode()} {msg.value().decode()}",
                      flush=True)
            elif counts[kind] % 250 == 0:
                print(f"... {counts[kind]} snapshot rows so far", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        consumer.close()
        if task.poll() is None:
            task.send_signal(signal.SIGTERM)
            try:
                task.wait(30)
            except subprocess.TimeoutExpired:
                task.kill()
        writer.join(5)
        broker.close()
        db.close()
    print(f"obsync demo: messages seen by type: {counts}", flush=True)
    if seconds and counts.get("ROW", 0) < rows:
        print(f"obsync demo: expected at least {rows} snapshot rows", flush=True)
        code = code or 1
    return code
