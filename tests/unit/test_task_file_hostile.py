"""Hostile and mistaken task files, from the user's side: the file's text in, the exit code and message of
`obsync check` / `obsync precheck` / `obsync run` out (in process through `cli.main`, and once as a real
subprocess). Nothing here needs a server: every file is refused before anything is contacted, with an error
naming the field and the limit, and no password ever appears in any output."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from obsync.app import cli
from obsync.app.precheck import Status, run_precheck
from obsync.core.errors import ConfigError
from obsync.core.schema import Column, TableSchema
from obsync.sql.filters import compile_filter
from obsync.task.config import load_task

DB_PW = "Db-Sekr3t-pw"
KAFKA_PW = "Kafka-Sekr3t-pw"
REPO = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def task_text(*, password: str = f'"{DB_PW}"', properties: str = f'{{sasl.password: "{KAFKA_PW}"}}',
              obj: str = "{match: shop.orders}", extra: str = "", target: str = "") -> str:
    """A task file; line 5 is the password line; `target`: more of the target's fields (`, key: value`)."""
    return (f"name: hostile\n"
            f"source:\n"
            f"  host: 127.0.0.1\n"
            f"  user: cdc\n"
            f"  password: {password}\n"
            f"  port: {closed_port()}\n"
            f"target: {{bootstrap_servers: '127.0.0.1:{closed_port()}', properties: {properties}{target}}}\n"
            f"objects:\n"
            f"  - {obj}\n"
            f"{extra}")


def run_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, *command: str) -> tuple[int, str]:
    """Exit code and everything printed (stdout and stderr) of `obsync <command> <task file>`."""
    path = tmp_path / "task.yaml"
    path.write_text(text)
    capsys.readouterr()
    rc = cli.main([*command, str(path), "--state-dir", str(tmp_path / "state")] if command[0] != "check"
                  else [*command, str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


# -- the YAML text itself


PASSWORD_LINES = {
    "alias": "*" + DB_PW,  # a password starting with * reads as an alias
    "tag": "!" + DB_PW,  # ... with ! as a tag
    "reserved": "@" + DB_PW,
    "colon": DB_PW + ": x",
    "escape": f'"{DB_PW[:3]}\\q{DB_PW[3:]}"',
    "block": "|" + DB_PW,
}


@pytest.mark.parametrize("line", PASSWORD_LINES.values(), ids=PASSWORD_LINES.keys())
def test_a_yaml_error_on_the_password_line_names_line_and_column_never_the_password(capsys, tmp_path, line):
    rc, out = run_cli(capsys, tmp_path, task_text(password=line), "check")
    assert rc == 2
    assert "is not valid YAML: line 5, column " in out and "(setting `password`)" in out
    assert DB_PW not in out and DB_PW[1:] not in out and DB_PW[3:] not in out


def test_the_cli_process_prints_no_password_for_a_yaml_error(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(task_text(password=DB_PW + ": x"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for command in ("check", "precheck", "run"):
        proc = subprocess.run([sys.executable, "-m", "obsync", command, str(path)], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "line 5, column 25 (setting `password`): mapping values are not allowed here" in proc.stderr
        assert DB_PW not in proc.stdout + proc.stderr


def test_an_alias_bomb_is_refused_naming_the_limit(capsys, tmp_path):
    bomb = "lol0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 8))  # 10^8 values
    rc, out = run_cli(capsys, tmp_path, bomb + task_text(), "check")
    assert rc == 2 and "has more than 100000 values (aliases count as the values they repeat)" in out


def test_deep_nesting_and_a_huge_file_are_refused_naming_the_limit(capsys, tmp_path):
    rc, out = run_cli(capsys, tmp_path, task_text(extra="x: " + "[" * 3000 + "]" * 3000 + "\n"), "check")
    assert rc == 2 and "nests mappings and lists more than 64 deep (line 10)" in out
    rc, out = run_cli(capsys, tmp_path, task_text(extra="# " + "x" * (4 * 2**20) + "\n"), "check")
    assert rc == 2 and "bytes, more than the 4194304 a task file may have" in out


def test_a_file_within_the_limits_with_aliases_is_accepted(capsys, tmp_path):
    text = task_text(obj="&o {match: shop.orders}", extra="exclude: [shop.tmp]\n")
    assert run_cli(capsys, tmp_path, text, "check")[0] == 0


# -- target.properties


@pytest.mark.parametrize(("props", "said"), [
    ("{no.such.property: 1}", 'No such configuration property: "no.such.property"'),
    ("{security.protocol: BOGUS}", 'Invalid value "BOGUS" for configuration property "security.protocol"'),
])
def test_a_property_librdkafka_refuses_is_an_error_naming_target_properties(capsys, tmp_path, props, said):
    props = props[:-1] + f", sasl.password: {KAFKA_PW}}}"
    for command in ("check", "precheck", "run"):
        rc, out = run_cli(capsys, tmp_path, task_text(properties=props), command)
        assert rc == 2, out
        assert f"field `target.properties`: librdkafka refuses the settings: {said}" in out
        assert "UnboundLocalError" not in out and KAFKA_PW not in out and DB_PW not in out


def test_the_precheck_reports_a_refused_property_under_kafka_reachable(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(task_text(properties=f"{{no.such.property: 1, sasl.password: {KAFKA_PW}}}"))
    report = run_precheck(load_task(path), state_dir=tmp_path / "state", kafka_timeout=0.5)
    item = report["kafka.reachable"]
    assert item.status is Status.FAILED
    assert "field `target.properties`: librdkafka refuses the settings: No such configuration property: " \
           '"no.such.property"' in item.reason
    assert report["kafka.topics"].status is Status.SKIPPED
    assert "field `target.properties`" in report["config.coherent"].reason
    assert "UnboundLocalError" not in report.table() and KAFKA_PW not in report.table()


def test_a_refused_property_value_that_is_a_secret_is_masked(capsys, tmp_path):
    props = f"{{sasl.password: {KAFKA_PW}, security.protocol: {KAFKA_PW}}}"
    rc, out = run_cli(capsys, tmp_path, task_text(properties=props), "check")
    assert rc == 2 and 'Invalid value "***" for configuration property "security.protocol"' in out
    assert KAFKA_PW not in out


# -- row filters: size and nesting


SCHEMA = TableSchema("shop", "orders", (Column("id", "int", "int"), Column("a", "int", "int")))


@pytest.mark.parametrize(("where", "said"), [
    (" AND ".join(["a = 1"] * 40_000), "the row filter: 399995 characters, more than the 10000 a row filter may have"),
    ("(" * 3000 + "a = 1" + ")" * 3000, "parentheses nested 3000 deep, more than the 20 levels a row filter may have"),
    (" OR ".join(f"a = {i}" for i in range(70)), "operators nested or chained 70 deep (each AND/OR of a chain "
                                                  "counts), more than the 64 a row filter may have"),
    ("NOT " * 30 + "a = 1", "needs 30 levels of parentheses, more than the 20 a row filter may have"),
], ids=["40000 ANDs", "3000 parentheses", "70 ORs", "30 NOTs"])
def test_a_row_filter_beyond_the_limits_is_refused_naming_the_field(capsys, tmp_path, where, said):
    rc, out = run_cli(capsys, tmp_path, task_text(obj=f'{{match: shop.orders, where: "{where}"}}'), "check")
    assert rc == 2 and "field `objects.0.where`: " in out and said in out
    with pytest.raises(ConfigError, match=r"^field `objects.0.where` \(shop.orders\): ") as e:
        compile_filter(where, SCHEMA, origin="field `objects.0.where` (shop.orders)")
    assert said.removeprefix("the row filter: ") in str(e.value)


def test_row_filters_up_to_the_limits_compile_and_match():
    chain = " AND ".join(["a >= 0"] * 50)  # was a RecursionError: written back as 50 nested parentheses
    f = compile_filter(chain, SCHEMA, origin="field `objects.0.where` (shop.orders)")
    assert f.matches({"a": 1}) and not f.matches({"a": -1})
    assert f.sql.count("(") == 50  # one chain, each comparison in its parentheses, none nested
    nested = "(" * 20 + "a = 1" + ")" * 20
    assert compile_filter(nested, SCHEMA, origin="o").matches({"a": 1})
    mixed = compile_filter("a = 1 OR id = 2 AND (a = 3 OR id = 4) OR a = 5", SCHEMA, origin="o")
    assert mixed.sql == "(`a` = 1) OR ((`id` = 2) AND ((`a` = 3) OR (`id` = 4))) OR (`a` = 5)"
    assert [mixed.matches({"a": a, "id": i}) for a, i in [(1, 0), (3, 2), (0, 2), (5, 9)]] == [True, True, False,
                                                                                                 True]


# -- `check` refuses what `run` refuses


REFUSED = {
    "statements": ('{match: shop.orders, where: "1=1; DROP TABLE x"}', "", "field `objects.0.where`: Value error, "
                   "the row filter: `;` is not allowed: a row filter is one WHERE condition, not statements"),
    "format_options": ("{match: shop.orders}", "format: canal\nformat_options: {nope: 1}\n", "format_options"),
    "nothing": ("{match: shop.orders}", "sync: {full: false, incremental: false}\n",
                "sync.full and sync.incremental are both false: the task would copy nothing"),
    "fixed_partition": ("{match: shop.orders}", "partitioning: one\nfixed_partition: 99\n",
                        "field `fixed_partition`: 99 is not a partition of the topics obsync creates "
                        "(topics.partitions 3: partitions 0 to 2)"),
    "template": ("{match: shop.orders}", "topic: 'my topic ${table}'\n",
                 "field `topic`: Value error, the template's own text gives no valid Kafka topic name (characters "
                 "Kafka refuses: a space)"),
    "object template": ("{match: 'shop.*', topic: '${database}/${table}'}", "",
                        "field `objects.0.topic`: Value error, the template's own text gives no valid Kafka topic "
                        "name (characters Kafka refuses: '/')"),
    "twice": ("{match: shop.orders}\n  - {match: shop.orders}", "", "objects listed twice: shop.orders"),
}


@pytest.mark.parametrize(("obj", "extra", "said"), REFUSED.values(), ids=REFUSED.keys())
def test_check_refuses_what_run_refuses_with_the_same_message(capsys, tmp_path, obj, extra, said):
    text = task_text(obj=obj, extra=extra)
    rc, checked = run_cli(capsys, tmp_path, text, "check")
    assert rc == 2 and said in checked and "valid\n" not in checked
    rc, ran = run_cli(capsys, tmp_path, text, "run")  # refused before connecting: nothing listens there
    assert rc == 2 and said in ran
    assert checked.strip().splitlines()[-1] in ran


@pytest.mark.parametrize(("stall", "patience"), [(60, 30), (30, 30), (1, 0)])
def test_a_stall_timeout_not_shorter_than_the_patience_is_refused_naming_both(capsys, tmp_path, stall, patience):
    """Both count from the oldest message Kafka has not acknowledged: with a stall_timeout not shorter than the
    patience the task would give up on a silent Kafka without ever reporting the stall."""
    text = task_text(target=f", stall_timeout: {stall}, patience: {patience}")
    said = (f"fields `target.stall_timeout` ({stall} s) and `target.patience` ({patience} s): both count from the "
            "oldest message Kafka has not acknowledged, so the task would give up on a silent Kafka without ever "
            "reporting it as stalled; make target.stall_timeout less than target.patience (or target.patience "
            "`forever`)")
    rc, checked = run_cli(capsys, tmp_path, text, "check")
    assert rc == 2 and said in checked and "valid\n" not in checked, checked
    rc, ran = run_cli(capsys, tmp_path, text, "run")  # refused before connecting: nothing listens there
    assert rc == 2 and said in ran, ran


@pytest.mark.parametrize("patience", ["2", "forever"])
def test_a_stall_timeout_shorter_than_the_patience_is_valid(capsys, tmp_path, patience):
    rc, checked = run_cli(capsys, tmp_path, task_text(target=f", stall_timeout: 1, patience: {patience}"), "check")
    assert rc == 0 and "task hostile: valid" in checked, checked


# -- ${VAR}: only where the reference says


def test_environment_variables_fill_credentials_hosts_and_properties(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OBSYNC_T_PW", DB_PW)
    monkeypatch.setenv("OBSYNC_T_HOST", "db.example")
    monkeypatch.setenv("OBSYNC_T_KAFKA_PW", KAFKA_PW)
    monkeypatch.setenv("OBSYNC_T_STATE", str(tmp_path / "st"))
    text = (task_text(password="${OBSYNC_T_PW}", properties="{sasl.password: '${OBSYNC_T_KAFKA_PW}'}",
                      extra="state_dir: ${OBSYNC_T_STATE}/x\n")
            .replace("host: 127.0.0.1", "host: ${OBSYNC_T_HOST}"))
    rc, out = run_cli(capsys, tmp_path, text, "check")
    assert rc == 0 and DB_PW not in out
    task = load_task(tmp_path / "task.yaml")
    assert task.source.password.get_secret_value() == DB_PW and task.source.host == "db.example"
    assert task.target.properties["sasl.password"] == KAFKA_PW and task.state_dir == tmp_path / "st" / "x"


@pytest.mark.parametrize(("obj", "extra", "field"), [
    ("{match: shop.orders}", "topic: 'T_${HOME}_${table}'\n", "topic"),
    ("{match: shop.orders, topic: 'T_${HOME}'}", "", "objects.0.topic"),
    ("{match: shop.orders, where: \"a = '${HOME}'\"}", "", "objects.0.where"),
    ("{match: '${HOME}.orders'}", "", "objects.0.match"),
    ("{match: shop.orders}", "heartbeat: {interval: 1, table: 'hb.${USER}'}\n", "heartbeat.table"),
])
def test_a_variable_elsewhere_is_an_error_naming_the_field(capsys, tmp_path, monkeypatch, obj, extra, field):
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv("USER", "someone")
    rc, out = run_cli(capsys, tmp_path, task_text(obj=obj, extra=extra), "check")
    assert rc == 2
    assert f"field `{field}`: `${{" in out and "}`: environment variables are expanded only in source.host" in out
    assert "/home/someone" not in out


def test_topic_templates_keep_database_and_table(capsys, tmp_path):
    rc, out = run_cli(capsys, tmp_path, task_text(extra="topic: 'cdc.${database}.${table}'\n"), "check")
    assert rc == 0 and "shop.orders -> topic cdc.shop.orders" in out


# -- no credential in any output of any failure above


def test_no_failure_path_prints_a_password(capsys, tmp_path):
    files = [task_text(password=line) for line in PASSWORD_LINES.values()]
    files += [task_text(properties=f"{{{p}: 1, sasl.password: {KAFKA_PW}}}") for p in ("no.such.property",
                                                                                      "security.protocol")]
    files += [task_text(properties=f"{{sasl.password: {KAFKA_PW}, security.protocol: {KAFKA_PW}}}")]
    files += [task_text(obj=f'{{match: shop.orders, where: "{w}"}}') for w in
              (" AND ".join(["a = 1"] * 40_000), "(" * 3000 + "a = 1" + ")" * 3000)]
    files += [task_text(obj=obj, extra=extra) for obj, extra, _ in REFUSED.values()]
    files += [task_text(extra="topic: 'T_${HOME}_${table}'\n")]
    outputs = []
    for i, text in enumerate(files):
        (tmp_path / str(i)).mkdir()
        for command in ("check", "precheck", "run"):
            rc, out = run_cli(capsys, tmp_path / str(i), text, command)
            assert rc == 2, (command, text[:300], out)
            outputs.append(out)
            for state_file in (tmp_path / str(i)).rglob("*"):
                if state_file.is_file() and state_file.name != "task.yaml":
                    outputs.append(state_file.read_text(errors="replace"))
    everything = "\n".join(outputs)
    assert len(outputs) >= 3 * len(files)
    assert DB_PW not in everything and KAFKA_PW not in everything
    assert "Traceback" not in everything and "RecursionError" not in everything
