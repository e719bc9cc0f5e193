"""`obsync precheck` and the precheck of `obsync run` against real servers: clean passes on the fixtures, and
each thing that must stop a task (binlog off, statement format, a missing privilege, a missing table, a view,
an unreachable broker) on servers set up that way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsync.app.embedded.mariadb import MariaDBServer
from obsync.app.precheck import Report, Status, run_precheck
from obsync.core.errors import ConfigError
from obsync.task.config import load_task
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import run_obsync, unique, write_task


def statuses(report: Report) -> dict[str, str]:
    return {i.id: i.status.value for i in report.items}


def precheck_json(task: Path, *extra: str) -> tuple[int, dict[str, dict[str, object]]]:
    proc = run_obsync("precheck", str(task), "--json", *extra, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["ok"] is (proc.returncode == 0)
    return proc.returncode, {i["id"]: i for i in doc["items"]}


def make_db(server: MariaDBServer, *statements: str) -> str:
    db = unique("pre")
    with server.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        for stmt in statements:
            cur.execute(stmt)
    return db


@pytest.fixture(scope="module")
def binlog_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    with MariaDBServer(tmp_path_factory.mktemp("binlog_off"), extra_args=("--skip-log-bin",)) as server:
        yield server


@pytest.fixture(scope="module")
def misconfigured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """Statement format, minimal row images, logs kept one hour, and a replica without log_slave_updates."""
    args = ("--binlog-format=STATEMENT", "--binlog-row-image=MINIMAL", "--binlog-expire-logs-seconds=3600")
    with MariaDBServer(tmp_path_factory.mktemp("misconfigured"), extra_args=args) as server:
        with server.connect(autocommit=True) as conn, conn.cursor() as cur:
            # Its SQL thread runs (the IO thread keeps retrying a closed port): a replica as far as it knows.
            cur.execute("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=1, MASTER_USER='nobody'")
            cur.execute("START SLAVE")
        yield server


@pytest.mark.parametrize("fixture", ["mariadb", "mariadb_full"])
def test_a_ready_task_passes_every_item(fixture, request, tmp_path, kafka):
    server = request.getfixturevalue(fixture)
    db = make_db(server, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10), g INT AS (id + 1) VIRTUAL)")
    task = write_task(tmp_path / "task.yaml", db_server=server, kafka=kafka, tables=[f"{db}.t"])
    code, items = precheck_json(task)
    assert code == 0
    assert {k: v["status"] for k, v in items.items() if v["status"] != "passed"} == {}
    assert items["binlog.enabled"]["reason"].startswith("binary log on; current position binlog.")
    assert "BINLOG MONITOR" in items["source.privileges"]["reason"]
    proc = run_obsync("precheck", str(task))
    assert proc.stdout.splitlines()[0].split() == ["ITEM", "STATUS", "REASON", "FIX"]
    assert "16 passed; the task can start" in proc.stdout


def test_full_sync_from_oceanbase_passes_and_its_binlog_items_are_not_needed(tmp_path, seekdb, kafka):
    db = unique("pre")
    with seekdb.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, a INT, v INT AS (a + 1) VIRTUAL, "
                    "s INT AS (a + 2) STORED)")
    task = load_task(write_task(tmp_path / "task.yaml", db_server=seekdb, kafka=kafka, tables=[f"{db}.t"],
                                sync={"full": True, "incremental": False}))
    report = run_precheck(task)
    assert report.ok, report.table()
    for item_id in ("binlog.enabled", "binlog.format", "binlog.row_image", "binlog.retention",
                    "tables.generated_columns"):
        assert report[item_id].status is Status.SKIPPED and "not needed" in report[item_id].reason
    assert report["source.reachable"].reason.endswith("(oceanbase, version 5.7.25-OceanBase seekdb-v1.4.0.0)")
    assert "not detectable here" in report["source.standby"].reason
    # With incremental sync: seekdb serves no binlog, and VIRTUAL columns would be missing from the log.
    report = run_precheck(task.model_copy(update={"sync": task.sync.model_copy(update={"incremental": True})}))
    assert report["binlog.enabled"].status is Status.FAILED
    assert "does not serve a binary log" in report["binlog.enabled"].reason
    assert "OceanBase Binlog Service" in report["binlog.enabled"].fix
    gen = report["tables.generated_columns"]
    assert gen.status is Status.WARNING and f"{db}.t.v" in gen.reason and f"{db}.t.s" not in gen.reason


def test_binlog_off_fails_and_run_refuses_to_start(tmp_path, binlog_off, kafka):
    db = make_db(binlog_off, "CREATE TABLE t (id INT PRIMARY KEY)")
    task = write_task(tmp_path / "task.yaml", db_server=binlog_off, kafka=kafka, tables=[f"{db}.t"])
    code, items = precheck_json(task)
    assert code == 1
    assert items["binlog.enabled"]["status"] == "failed" and not items["binlog.enabled"]["skippable"]
    reason = items["binlog.enabled"]["reason"]
    assert "binary logging is off" in reason and "log_bin=OFF" in reason
    assert "restart" in items["binlog.enabled"]["fix"]
    assert [k for k, v in items.items() if v["status"] == "failed"] == ["binlog.enabled"]
    run = run_obsync("run", str(task), "--until-caught-up", check=False)
    assert run.returncode == 2
    assert "binlog.enabled" in run.stdout and "failed" in run.stdout  # the table
    assert "precheck failed" in run.stderr and "binary logging is off" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was set up
    run = run_obsync("run", str(task), "--skip-precheck", "binlog.enabled", check=False)
    assert run.returncode == 2 and "binlog.enabled: this item cannot be skipped" in run.stderr


def test_statement_format_minimal_images_short_retention_and_a_replica_fail(tmp_path, misconfigured, kafka):
    db = make_db(misconfigured, "CREATE TABLE t (id INT PRIMARY KEY)")
    task = load_task(write_task(tmp_path / "task.yaml", db_server=misconfigured, kafka=kafka,
                                tables=[f"{db}.t"]))
    report = run_precheck(task)
    assert {k for k, v in statuses(report).items() if v == "failed"} == {
        "binlog.format", "binlog.row_image", "binlog.retention", "source.standby"}
    assert "binlog_format=STATEMENT" in report["binlog.format"].reason
    assert "binlog_row_image=MINIMAL" in report["binlog.row_image"].reason
    assert report["binlog.retention"].reason.startswith("binary logs are kept 1 h; a task with full sync needs "
                                                        "at least 7 days")
    assert "binlog_expire_logs_seconds = 604800" in report["binlog.retention"].fix
    assert "a replica of 127.0.0.1:1 and log_slave_updates is OFF" in report["source.standby"].reason
    incremental_only = task.model_copy(update={"sync": task.sync.model_copy(update={"full": False})})
    report = run_precheck(incremental_only, skip=["binlog.retention"])
    assert "needs at least 48 h" in report["binlog.retention"].reason
    assert report["binlog.retention"].status is Status.SKIPPED
    assert report["binlog.format"].status is Status.FAILED  # the rest still fails
    with misconfigured.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("STOP SLAVE")
    standby = run_precheck(task)["source.standby"]
    assert standby.status is Status.WARNING and "replica of 127.0.0.1:1 (stopped)" in standby.reason


def test_a_user_without_replication_privileges_is_told_which_grants_are_missing(tmp_path, mariadb, kafka):
    db = make_db(mariadb, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE other (id INT PRIMARY KEY)")
    users = {unique("sel"): [f"GRANT SELECT ON {db}.t TO '{{u}}'@'%'"],
             unique("cdc"): [f"GRANT SELECT ON {db}.* TO '{{u}}'@'%'",
                             "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{u}'@'%'"],
             unique("role"): ["CREATE ROLE {u}_r", "GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {u}_r",
                              "GRANT {u}_r TO '{u}'@'%'", "SET DEFAULT ROLE {u}_r FOR '{u}'@'%'"]}
    with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
        for user, grants in users.items():
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'")
            for g in grants:
                cur.execute(g.format(u=user))
    try:
        def report_for(user: str) -> Report:
            source = {"host": mariadb.host, "port": mariadb.port, "user": user, "password": f"pw-{user}"}
            return run_precheck(load_task(write_task(tmp_path / f"{user}.yaml", db_server=mariadb, kafka=kafka,
                                                     tables=[f"{db}.t", f"{db}.other"], source=source)))

        sel, cdc, role = (report_for(u) for u in users)
        item = sel["source.privileges"]
        assert item.status is Status.FAILED and item.skippable
        assert f"lacks SELECT on {db}.other; REPLICATION SLAVE and BINLOG MONITOR ON *.*" in item.reason
        assert "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO" in item.fix
        assert f"table {db}.other is not visible to the user" in sel["tables.exist"].reason
        assert sel["binlog.enabled"].status is Status.PASSED  # log_bin is readable without BINLOG MONITOR
        assert cdc["source.privileges"].status is Status.PASSED, cdc["source.privileges"]
        assert role["source.privileges"].status is Status.PASSED, role["source.privileges"]
        assert cdc.ok and role.ok
    finally:
        with mariadb.connect(autocommit=True) as conn, conn.cursor() as cur:
            for user in users:
                cur.execute(f"DROP USER '{user}'@'%'")
            cur.execute(f"DROP ROLE {list(users)[2]}_r")


def test_missing_tables_views_keyless_tables_and_odd_names(tmp_path, mariadb, kafka):
    db = make_db(mariadb, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE nokey (a INT, b INT)",
                 "CREATE TABLE nullkey (a INT, UNIQUE KEY (a))", "CREATE VIEW v AS SELECT id FROM t",
                 "CREATE TABLE `odd-name` (id INT PRIMARY KEY, `a-b` INT)", "CREATE TABLE `odd x` (id INT)")
    objects = ["t", "nokey", "nullkey", "v", "nothere", "odd-name"]
    task = load_task(write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka,
                                tables=[f"{db}.{t}" for t in objects]))
    report = run_precheck(task)
    assert report["tables.exist"].status is Status.FAILED
    assert report["tables.exist"].reason == f"table {db}.nothere does not exist on the source"
    assert report["tables.physical"].reason.startswith(f"{db}.v is a view")
    keyless = report["tables.unique_key"]
    assert keyless.status is Status.WARNING and f"{db}.nokey, {db}.nullkey;" in keyless.reason
    assert "rows of a table without a key cannot be told apart; updates may be duplicated" in keyless.reason
    names = report["tables.names"]
    assert names.status is Status.FAILED and names.skippable
    assert names.reason == f"unsupported names: table 'odd-name' has '-', column {db}.odd-name.'a-b' has '-'"
    report = run_precheck(task, skip=["tables.names", "tables.unique_key"])
    assert report["tables.names"].status is Status.SKIPPED and report["tables.unique_key"].status is Status.SKIPPED

    # a name obsync cannot carry at all (a space) is refused, not skippable: exactly named, by the task file;
    # matched by a pattern, by config.coherent, naming the table and the rule
    with pytest.raises(ConfigError, match=r"field `objects.0.match`: .*cannot sync '.*odd x': it contains space"):
        load_task(write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.odd x"]))
    pattern = load_task(write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.odd*"]))
    coherent = run_precheck(pattern)["config.coherent"]
    assert coherent.status is Status.FAILED and not coherent.skippable
    assert f"objects.0 ('{db}.odd*') selects table '{db}'.'odd x', whose name obsync cannot carry: it contains " \
           "space" in coherent.reason


def test_an_unreachable_broker_fails_without_showing_the_password(tmp_path, mariadb):
    db = make_db(mariadb, "CREATE TABLE t (id INT PRIMARY KEY)")
    closed = type("Broker", (), {"bootstrap_servers": "127.0.0.1:1"})()
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=closed, tables=[f"{db}.t"],
                      target={"bootstrap_servers": "127.0.0.1:1",
                              "properties": {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                                             "sasl.username": "cdc", "sasl.password": "s3cret-kafka-pw"}})
    report = run_precheck(load_task(task), kafka_timeout=1.0)
    item = report["kafka.reachable"]
    assert item.status is Status.FAILED
    assert item.reason.startswith("cannot reach Kafka at 127.0.0.1:1 within 1 s: ") and "refused" in item.reason
    assert report["kafka.topics"].status is Status.SKIPPED
    assert "s3cret-kafka-pw" not in json.dumps(report.to_dict()) + report.table()


def test_run_starts_with_a_skipped_item_and_refuses_without_it(tmp_path, mariadb, kafka):
    db = make_db(mariadb, "CREATE TABLE `t-1` (id INT PRIMARY KEY, v VARCHAR(10))",
                 "INSERT INTO `t-1` VALUES (1, 'a'), (2, 'b')")
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=kafka, tables=[f"{db}.t-1"])
    refused = run_obsync("run", str(task), "--until-caught-up", check=False)
    assert refused.returncode == 2 and "skippable with --skip-precheck: tables.names" in refused.stderr
    run_obsync("run", str(task), "--until-caught-up", "--skip-precheck", "tables.names")
    assert sorted(json.loads(m.key)[0] for m in read_topic(kafka.bootstrap_servers, f"Topic_{db}_t-1")) == [1, 2]
