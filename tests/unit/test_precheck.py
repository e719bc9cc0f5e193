"""The precheck's pure parts: grant parsing, retention, names, skipping, the report; and the checks that need
no server (task name, configuration) against a source and a broker that are not there."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import pytest

from obsync.app import cli
from obsync.app.precheck import (
    CHECKS,
    ITEM_IDS,
    SKIPPABLE,
    Grants,
    Item,
    Probe,
    Report,
    Status,
    parse_grants,
    replication_privileges,
    retention_seconds,
    run_precheck,
    validate_skips,
)
from obsync.app.precheck.checks.task import check_config_coherent, check_task_name
from obsync.app.precheck.run import _run_one
from obsync.core.errors import ConfigError
from obsync.task.config import parse_task
from obsync.task.naming import oms_name_problem, topic_problem

# SHOW GRANTS as MariaDB 10.11 prints it (REPLICATION CLIENT shown as BINLOG MONITOR; PUBLIC; roles).
MARIADB_USER = [
    "GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%` IDENTIFIED BY PASSWORD '*7B9E0209'",
    "GRANT SELECT, INSERT, UPDATE ON `test`.* TO PUBLIC",
]
MARIADB_ROLE = [
    "GRANT `r1` TO `u3`@`%`",
    "GRANT USAGE ON *.* TO `u3`@`%` IDENTIFIED BY PASSWORD '*7B9E0209'",
    "GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `r1`",
    "SET DEFAULT ROLE `r1` FOR `u3`@`%`",
]
MARIADB_SELECT_ONLY = [
    "GRANT USAGE ON *.* TO `u1`@`%` IDENTIFIED BY PASSWORD '*7B9E0209'",
    "GRANT SELECT ON `d1`.* TO `u1`@`%`",
    "GRANT SELECT (`id`, `v`) ON `d1`.`t` TO `u1`@`%`",
    "GRANT PROXY ON ''@'%' TO 'u1'@'%' WITH GRANT OPTION",
]
MYSQL8 = [
    "GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`",
    "GRANT BACKUP_ADMIN,REPLICATION_SLAVE_ADMIN ON *.* TO `cdc`@`%`",
    "GRANT `reader`@`%`,`ops`@`localhost` TO `cdc`@`%`",
]
OCEANBASE = ["GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'u2'"]


def test_grants_are_read_as_mariadb_10_11_prints_them() -> None:
    g = parse_grants(MARIADB_USER)
    assert g.global_privileges == {"SELECT", "REPLICATION SLAVE", "BINLOG MONITOR"}
    assert g.has("REPLICATION SLAVE") and g.has("BINLOG MONITOR") and g.has("REPLICATION CLIENT")
    role = parse_grants(MARIADB_ROLE)  # MariaDB lists the current role's grants too
    assert role.roles == ("`r1`",) and role.has("REPLICATION SLAVE") and role.has("BINLOG MONITOR")
    only = parse_grants(MARIADB_SELECT_ONLY)
    assert only.global_privileges == {"USAGE"}
    assert not only.has("REPLICATION SLAVE") and not only.has("BINLOG MONITOR")


def test_grants_of_mysql_and_oceanbase() -> None:
    g = parse_grants(MYSQL8)
    assert {"REPLICATION SLAVE", "REPLICATION CLIENT", "BACKUP_ADMIN",
            "REPLICATION_SLAVE_ADMIN"} <= g.global_privileges
    assert g.roles == ("`reader`@`%`", "`ops`@`localhost`")
    assert parse_grants(OCEANBASE).has("REPLICATION CLIENT")
    assert parse_grants(["GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION"]).has("REPLICATION SLAVE")
    super_only = Grants(frozenset({"SUPER"}))
    assert super_only.has("REPLICATION CLIENT") and not super_only.has("REPLICATION SLAVE")


def test_the_replication_privileges_are_named_as_the_server_names_them() -> None:
    assert replication_privileges("mariadb", "10.11.19-MariaDB-0+deb12u1-log") == ("REPLICATION SLAVE",
                                                                                     "BINLOG MONITOR")
    assert replication_privileges("mariadb", "5.5.5-10.4.3-MariaDB") == ("REPLICATION SLAVE", "REPLICATION CLIENT")
    assert replication_privileges("mysql", "8.0.36") == ("REPLICATION SLAVE", "REPLICATION CLIENT")
    assert replication_privileges("oceanbase", "5.7.25-OceanBase-v4.2.1") == ("REPLICATION SLAVE",
                                                                              "REPLICATION CLIENT")


@pytest.mark.parametrize(("values", "expected"), [
    ({"binlog_expire_logs_seconds": "0", "expire_logs_days": "0.000000"}, math.inf),  # MariaDB default
    ({"binlog_expire_logs_seconds": "3600", "expire_logs_days": "0.041667"}, 3600),  # MariaDB, kept in step
    ({"expire_logs_days": "1.500000"}, 1.5 * 86400),  # MariaDB before 10.6
    ({"binlog_expire_logs_seconds": "2592000", "expire_logs_days": "0"}, 2592000),  # MySQL 8 default
    ({"binlog_expire_logs_seconds": "0", "expire_logs_days": "10"}, 10 * 86400),  # MySQL 8: days still apply
    ({"binlog_expire_logs_seconds": "86400", "binlog_expire_logs_auto_purge": "OFF"}, math.inf),
    ({"expire_logs_days": "7"}, 7 * 86400),  # MySQL 5.7
    ({"expire_logs_days": "0"}, math.inf),
    ({}, None),  # OceanBase Binlog Service: nothing readable
    ({"binlog_expire_logs_seconds": None, "expire_logs_days": None}, None),
])
def test_retention_from_the_server_variables(values: dict[str, str | None], expected: float | None) -> None:
    assert retention_seconds(values) == expected


def test_supported_names() -> None:
    for ok in ("orders", "Order_2024", "a$b", "_x"):
        assert oms_name_problem(ok) is None
    assert oms_name_problem("odd name") == "a space"
    assert oms_name_problem("a\nb") == "a line break"
    assert oms_name_problem("x.y|z") == "'.', '|'"
    assert oms_name_problem("a=b;c") == "'=', ';'"
    assert oms_name_problem("`q`") == "'`'"
    assert oms_name_problem("t(1)/2&3") == "'(', ')', '/', '&'"
    assert oms_name_problem("\"'\\") == "'\"', \"'\", '\\\\'"
    assert oms_name_problem("café") == "non-ASCII 'é'"
    assert oms_name_problem("a-b") == "'-'"


def test_topic_names_kafka_accepts() -> None:
    assert topic_problem("Topic_shop_orders") is None and topic_problem("a.b-c_d") is None
    assert topic_problem("Topic_shop_odd name") == "characters Kafka refuses: a space"
    assert topic_problem("Topic_a$b") == "characters Kafka refuses: '$'"
    assert topic_problem("..") and topic_problem("x" * 250)


def test_skips_are_checked() -> None:
    assert validate_skips(["binlog.retention", "tables.unique_key"]) == {"binlog.retention", "tables.unique_key"}
    with pytest.raises(ConfigError, match="binlog.enabled: this item cannot be skipped; skippable: "):
        validate_skips(["binlog.enabled"])
    with pytest.raises(ConfigError, match="no such precheck item; items: source.reachable"):
        validate_skips(["binlog.nope"])
    assert set(SKIPPABLE) == {"source.privileges", "binlog.retention", "tables.names", "tables.unique_key",
                              "tables.generated_columns"}
    assert len(ITEM_IDS) == len(set(ITEM_IDS)) == 16


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_task(tmp_path: Path, **over: object) -> object:
    doc: dict[str, object] = {
        "name": "orders-sync",
        "source": {"host": "127.0.0.1", "port": closed_port(), "user": "cdc", "password": "db-secret-1"},
        "target": {"bootstrap_servers": f"127.0.0.1:{closed_port()}"},
        "objects": [{"match": "shop.orders"}],
        "state_dir": str(tmp_path / "states" / "orders-sync"),
    }
    doc.update(over)
    return parse_task(doc)


def test_a_task_name_used_by_another_state_directory_fails(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    probe = Probe(task, task.resolved_state_dir(), 1.0)  # type: ignore[attr-defined]  # make_task() is typed object
    assert check_task_name(probe).status is Status.PASSED
    other = tmp_path / "states" / "copy"
    other.mkdir(parents=True)
    (other / "task.json").write_text(json.dumps({"name": "orders-sync", "id": "x"}))
    item = check_task_name(probe)
    assert item.status is Status.FAILED and str(other) in item.reason and "already used" in item.reason
    (other / "task.json").write_text(json.dumps({"name": "another", "id": "x"}))
    assert check_task_name(probe).status is Status.PASSED
    own = task.resolved_state_dir()  # type: ignore[attr-defined]  # make_task() is typed object
    own.mkdir(parents=True)
    (own / "task.json").write_text(json.dumps({"name": "someone-else", "id": "y"}))
    item = check_task_name(probe)
    assert item.status is Status.FAILED and "belongs to task 'someone-else'" in item.reason


def test_incoherent_settings_fail_config_coherent(tmp_path: Path) -> None:
    def coherent(**over: object) -> Item:
        task = make_task(tmp_path, **over)
        return check_config_coherent(Probe(task, task.resolved_state_dir(), 1.0))  # type: ignore[attr-defined]  # make_task() is typed object

    assert coherent().status is Status.PASSED
    item = coherent(sync={"full": False, "incremental": False})
    assert item.status is Status.FAILED and "both false" in item.reason
    item = coherent(partitioning="one", fixed_partition=3, topics={"partitions": 3})
    assert item.status is Status.FAILED and "field `fixed_partition`: 3 is not a partition" in item.reason
    assert coherent(partitioning="one", fixed_partition=2, topics={"partitions": 3}).status is Status.PASSED
    item = coherent(objects=[{"match": "shop.orders"}, {"match": "shop.orders"}])
    assert item.status is Status.FAILED and "objects listed twice: shop.orders" in item.reason
    item = coherent(format="canal", format_options={"nope": 1})
    assert item.status is Status.FAILED and "format_options" in item.reason
    item = coherent(sync={"full": True, "incremental": False, "ddl": True})
    assert item.status is Status.WARNING and "sync.ddl" in item.reason


def test_nothing_reachable_fails_without_a_traceback_or_a_password(tmp_path: Path) -> None:
    task = make_task(tmp_path, target={"bootstrap_servers": f"127.0.0.1:{closed_port()}",
                                       "properties": {"security.protocol": "SASL_PLAINTEXT",
                                                      "sasl.mechanism": "PLAIN", "sasl.username": "u",
                                                      "sasl.password": "kafka-secret-2"}})
    report = run_precheck(task, kafka_timeout=0.5)  # type: ignore[arg-type]  # make_task() is typed object
    status = {i.id: i.status for i in report.items}
    assert [i.id for i in report.items] == list(ITEM_IDS)
    assert status["source.reachable"] is Status.FAILED and status["kafka.reachable"] is Status.FAILED
    assert "cannot connect to cdc@127.0.0.1" in report["source.reachable"].reason
    for item_id in ("source.privileges", "binlog.enabled", "tables.exist", "kafka.topics"):
        assert status[item_id] is Status.SKIPPED and report[item_id].reason.startswith("not checked:"), item_id
    assert status["task.name"] is Status.PASSED and status["config.coherent"] is Status.PASSED
    assert not report.ok
    text = json.dumps(report.to_dict()) + report.table()
    assert "db-secret-1" not in text and "kafka-secret-2" not in text


def test_skip_turns_a_failed_skippable_item_into_skipped(tmp_path: Path) -> None:
    probe = Probe(make_task(tmp_path), tmp_path, 1.0)  # type: ignore[arg-type]  # make_task() is typed object
    check = next(c for c in CHECKS if c.id == "binlog.retention")
    failing = type(check)(check.id, lambda p: Item("", Status.FAILED, "kept 1 h", "keep more"), True)
    item = _run_one(failing, probe, frozenset())
    assert (item.id, item.status, item.skippable) == ("binlog.retention", Status.FAILED, True)
    item = _run_one(failing, probe, frozenset({"binlog.retention"}))
    assert item.status is Status.SKIPPED and item.reason == "skipped by request: kept 1 h"
    broken = type(check)("tables.names", lambda p: 1 / 0, True)
    item = _run_one(broken, probe, frozenset())
    assert item.status is Status.FAILED and "ZeroDivisionError" in item.reason


def test_the_report_as_a_table_and_as_json() -> None:
    report = Report("t", (
        Item("binlog.enabled", Status.PASSED, "binary log on"),
        Item("tables.unique_key", Status.WARNING, "no key: " + "shop.x, " * 20, "add a primary key", True),
        Item("binlog.format", Status.FAILED, "binlog_format=STATEMENT", "SET GLOBAL binlog_format = 'ROW'"),
    ))
    lines = report.table().splitlines()
    assert lines[0].split() == ["ITEM", "STATUS", "REASON", "FIX"]
    assert lines[1].split()[:2] == ["binlog.enabled", "passed"]
    assert lines[2].split()[:2] == ["tables.unique_key", "warning"] and lines[3].startswith(" ")  # wrapped
    assert not report.ok and [i.id for i in report.failed] == ["binlog.format"]
    assert report.summary() == "precheck of task t: 1 passed, 1 warning, 1 failed; fix the failed items"
    doc = report.to_dict()
    assert doc["ok"] is False and doc["items"][2] == {
        "id": "binlog.format", "status": "failed", "reason": "binlog_format=STATEMENT",
        "fix": "SET GLOBAL binlog_format = 'ROW'", "skippable": False}
    assert Report("t", report.items[:2]).ok  # warnings do not block


def test_cli_refuses_an_unskippable_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(json.dumps({"name": "x", "source": {"user": "u", "port": closed_port()},
                                "target": {"bootstrap_servers": "127.0.0.1:1"}, "objects": [{"match": "a.b"}]}))
    assert cli.main(["precheck", str(task), "--skip", "kafka.reachable"]) == 2
    assert "--skip kafka.reachable: this item cannot be skipped" in capsys.readouterr().err
    assert cli.main(["run", str(task), "--skip-precheck", "binlog.nope"]) == 2
    assert "no such precheck item" in capsys.readouterr().err
