"""The embedded servers are real and configured as obsync needs them."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from obsync.app.embedded.mariadb import MariaDBServer
from obsync.app.embedded.seekdb import SeekDBServer
from obsync.app.embedded.tansu import TansuBroker


def _query(server: MariaDBServer | SeekDBServer, sql: str) -> list[tuple[object, ...]]:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(("fixture", "metadata"), [("mariadb", "MINIMAL"), ("mariadb_full", "FULL")])
def test_mariadb_binlog_settings(request: pytest.FixtureRequest, fixture: str, metadata: str) -> None:
    server: MariaDBServer = request.getfixturevalue(fixture)
    [(file, position, *_)] = _query(server, "SHOW MASTER STATUS")
    assert str(file).startswith("binlog.") and int(str(position)) > 0
    assert _query(server, "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata") == [
        (1, "ROW", "FULL", metadata)
    ]
    assert server.port != 3306 and server.host == "127.0.0.1"


def test_mariadb_root_over_tcp_and_no_anonymous_users(mariadb: MariaDBServer) -> None:
    assert (mariadb.user, mariadb.password) == ("root", "")
    [(current_user, port, peer)] = _query(
        mariadb,
        "SELECT CURRENT_USER(), @@port, host FROM information_schema.processlist WHERE id = CONNECTION_ID()",
    )
    assert str(current_user).startswith("root@") and port == mariadb.port
    assert ":" in str(peer)  # a TCP peer (host:port), not the unix socket
    assert _query(mariadb, "SELECT COUNT(*) FROM mysql.user WHERE User = ''") == [(0,)]
    # An anonymous ''@'localhost' would shadow this user for logins from 127.0.0.1.
    user = f"u{uuid.uuid4().hex[:8]}"
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'")
    try:
        with mariadb.connect(user=user, password="pw") as conn, conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone() == (f"{user}@%",)
    finally:
        with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")


def test_mariadb_restart_and_crash_keep_data_and_binlog(tmp_path: Path) -> None:
    with MariaDBServer(tmp_path, row_metadata="FULL") as server:
        port, pid = server.port, server.pid
        assert pid is not None
        with server.connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE d")
            cur.execute("CREATE TABLE d.t (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO d.t VALUES (1)")
        [(first_log, *_)] = _query(server, "SHOW BINARY LOGS")
        server.stop()
        assert not server.running and _gone(pid)
        server.start()
        server.kill()
        server.start()
        assert server.port == port
        assert _query(server, "SELECT id FROM d.t") == [(1,)]
        assert first_log in [row[0] for row in _query(server, "SHOW BINARY LOGS")]
        assert _query(server, "SELECT @@binlog_row_metadata") == [("FULL",)]
    assert not server.running
    assert {"error.log", "mariadb.out", "install.log"} <= {p.name for p in tmp_path.iterdir()}


def test_seekdb_is_oceanbase(seekdb: SeekDBServer) -> None:
    [(scn,)] = _query(seekdb, "SELECT current_scn()")
    assert isinstance(scn, int) and scn > 0
    [(version,)] = _query(seekdb, "SELECT version()")
    assert "OceanBase" in str(version)
    assert (seekdb.user, seekdb.password, seekdb.host) == ("root", "", "127.0.0.1")


def test_seekdb_crash_and_restart_keep_data(tmp_path: Path) -> None:
    try:
        with SeekDBServer(tmp_path) as server:
            with server.connect(autocommit=True) as conn, conn.cursor() as cur:
                cur.execute("CREATE DATABASE d")
                cur.execute("CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(10))")
                cur.execute("INSERT INTO d.t VALUES (1, 'a')")
            server.kill()
            server.start()
            with server.connect(autocommit=True) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO d.t VALUES (2, 'b')")
            server.stop()
            server.start()
            assert _query(server, "SELECT id, v FROM d.t ORDER BY id") == [(1, "a"), (2, "b")]
        assert (tmp_path / "log" / "seekdb.log").exists() and (tmp_path / "seekdb.out").exists()
    finally:
        shutil.rmtree(tmp_path / "store", ignore_errors=True)


def _consume_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, int, bytes]]:
    """Every message of `topic`, read from offset 0 to end-of-partition on each partition."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
        "enable.partition.eof": True, "enable.auto.commit": False,
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: list[tuple[int, int, bytes]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"no EOF on all partitions; got {got}"
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if (err := msg.error()) is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                at_end.add(msg.partition())
                continue
            got.append((msg.partition(), msg.offset(), msg.value()))
    finally:
        consumer.close()
    return sorted(got)


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == partitions


def _produce(bootstrap: str, topic: str, messages: list[tuple[int, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for partition, value in messages:
        producer.produce(topic, value=value, key=b"k", partition=partition)
    assert producer.flush(30) == 0


def test_tansu_topic_produce_consume(kafka: TansuBroker) -> None:
    assert kafka.bootstrap_servers == f"127.0.0.1:{kafka.port}"
    topic = f"t_{uuid.uuid4().hex[:8]}"
    _create_topic(kafka.bootstrap_servers, topic, 3)
    _produce(kafka.bootstrap_servers, topic, [(2, b"two"), (0, b"zero"), (1, b"one")])
    assert _consume_all(kafka.bootstrap_servers, topic, 3) == [(0, 0, b"zero"), (1, 0, b"one"), (2, 0, b"two")]


def test_tansu_persistent_survives_restart(tmp_path: Path) -> None:
    with TansuBroker(tmp_path, persistent=True) as broker:
        _create_topic(broker.bootstrap_servers, "kept", 2)
        _produce(broker.bootstrap_servers, "kept", [(0, b"a"), (1, b"b"), (0, b"c")])
        pid = broker.pid
        assert pid is not None
        broker.stop()
        assert _gone(pid)
        broker.start()
        assert _consume_all(broker.bootstrap_servers, "kept", 2) == [(0, 0, b"a"), (0, 1, b"c"), (1, 0, b"b")]
    assert (tmp_path / "tansu.out").exists() and (tmp_path / "s3" / "moto.out").exists()
