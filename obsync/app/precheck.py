"""`obsync precheck`: what must hold before a task starts, each item passed, warning or failed, with the
reason and the fix.

Every check is a plain function over a `Probe` (lazy, cached access to the source's SQL endpoint, its binlog
endpoint, the task's tables, Kafka and the state directory) and returns one `Item`; `run_precheck` runs them
all and returns a `Report`. Nothing here imports the dataflow engine. `obsync run` runs the same precheck
and refuses to start while an item failed.

Statuses: *passed*; *warning* (never blocks the start); *failed* (blocks it); *skipped* (not needed for this
task, e.g. binlog items without incremental sync; not checked because an item it depends on failed; or
skipped by the user with `--skip ITEM`). Only the items in `SKIPPABLE` can be skipped: those where obsync's
reading of the server may be wrong or where the consequence is the user's to accept. A failure that makes
the task impossible or wrong (binlog off, statement format, a missing table, an unreachable broker, ...)
cannot be skipped.

Standby sources (`source.standby`): on OceanBase the tenant's role is read from `oceanbase.DBA_OB_TENANTS`
(4.x) or the cluster's from `oceanbase.V$OB_CLUSTER` (3.x); a STANDBY role fails, and when neither view can
be read (single-node seekdb) the item passes and says so. On MySQL/MariaDB a replica (read-only or not) is a
valid binlog source when `log_slave_updates` (MySQL 8: `log_replica_updates`) is ON. With it OFF, a server
whose replication SQL thread runs (`SHOW ALL SLAVES STATUS` / `SHOW REPLICA STATUS`) fails, because the
changes it replicates never reach its own binary log; a configured but stopped replica is a warning, and so is
a read-only server whose replication status the user cannot read.
"""

from __future__ import annotations

import json
import logging
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import pymysql

from obsync.connectors.kafka.client import base_config, redacted
from obsync.connectors.mysql.catalog import SqlCatalog, load_table_schema
from obsync.connectors.mysql.connection import Dialect, connect, detect_dialect, quote_ident
from obsync.runtime.settings import kafka_settings, log_endpoint, sql_endpoint
from obsync.task.config import TaskConfig
from obsync.core.errors import ConfigError, ObsyncError
from obsync.task.objects import ObjectPlan, check_table, list_source_tables, plan_for
from obsync.core.schema import TableSchema
from obsync.task.selection import Selected, Selection

log = logging.getLogger(__name__)

HOUR = 3600
RETENTION_INCREMENTAL = 48 * HOUR  # incremental sync only (OMS)
RETENTION_WITH_FULL = 7 * 24 * HOUR  # full + incremental: the log position must outlive the full sync
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_DENIED = (1044, 1142, 1143, 1227)  # no database access, table/column command denied, needs privilege
_SYNTAX = 1064


class Status(str, Enum):
    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Item:
    """One line of the precheck: the item's id, its status, why, and what to do about it."""

    id: str
    status: Status
    reason: str
    fix: str = ""
    skippable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status.value, "reason": self.reason, "fix": self.fix,
                "skippable": self.skippable}


class PrecheckFailed(ObsyncError):
    """`obsync run` refused to start: an item of the precheck failed."""


class NotChecked(Exception):
    """A check does not apply to this task, or cannot run because an item it needs failed."""


def _passed(reason: str) -> Item:
    return Item("", Status.PASSED, reason)


def _warning(reason: str, fix: str) -> Item:
    return Item("", Status.WARNING, reason, fix)


def _failed(reason: str, fix: str) -> Item:
    return Item("", Status.FAILED, reason, fix)


def _listed(things: list[str], most: int = 8) -> str:
    shown = ", ".join(things[:most])
    return shown + (f" and {len(things) - most} more" if len(things) > most else "")


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def _duration(seconds: float) -> str:
    if seconds > 48 * HOUR and seconds % (24 * HOUR) == 0:
        return f"{seconds / (24 * HOUR):g} days"
    if seconds >= HOUR:
        return f"{seconds / HOUR:g} h"
    return f"{seconds / 60:g} min"


# ---- pure helpers (unit-tested without servers) --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Grants:
    """The global (`ON *.*`) privileges in a user's `SHOW GRANTS`, and the roles it was granted."""

    global_privileges: frozenset[str]
    roles: tuple[str, ...] = ()

    def has(self, privilege: str) -> bool:
        return bool(_IMPLIED.get(privilege, {privilege}) & self.global_privileges)


_ALL = {"ALL", "ALL PRIVILEGES"}
# A privilege and what else grants it. MariaDB 10.5+ shows REPLICATION CLIENT as BINLOG MONITOR (it is the
# same privilege); REPLICATION SLAVE ADMIN manages replica threads and is not needed by a binlog reader.
_IMPLIED: dict[str, set[str]] = {
    "REPLICATION SLAVE": {"REPLICATION SLAVE", "REPLICATION REPLICA", *_ALL},
    "REPLICATION CLIENT": {"REPLICATION CLIENT", "BINLOG MONITOR", "SUPER", *_ALL},
    "BINLOG MONITOR": {"BINLOG MONITOR", "REPLICATION CLIENT", "SUPER", *_ALL},
}
_GRANT = re.compile(r"^\s*GRANT\s+(?P<privs>.+?)\s+ON\s+(?P<target>\S+)\s+TO\s", re.I)
_ROLE_GRANT = re.compile(r"^\s*GRANT\s+(?P<roles>[`'\"].*?)\s+TO\s", re.I)


def parse_grants(lines: Iterable[str]) -> Grants:
    """The global privileges and granted roles in `SHOW GRANTS` output (MySQL, MariaDB, OceanBase).

    MariaDB lists the grants of the user's current role and of PUBLIC in the same output; MySQL 8 needs
    `SHOW GRANTS ... USING <roles>` for the privileges of its roles.
    """
    privileges: set[str] = set()
    roles: list[str] = []
    for line in lines:
        m = _GRANT.match(line)
        if m:
            if re.sub(r"[`'\"]", "", m.group("target")) == "*.*":
                privs = re.sub(r"\([^)]*\)", "", m.group("privs"))  # column lists: "SELECT (`a`, `b`)"
                privileges.update(" ".join(p.split()).upper() for p in privs.split(",") if p.strip())
            continue
        m = _ROLE_GRANT.match(line)
        if m:
            roles.extend(r.strip() for r in m.group("roles").split(",") if r.strip())
    return Grants(frozenset(privileges), tuple(roles))


def replication_privileges(dialect: Dialect, version: str) -> tuple[str, ...]:
    """The global privileges a binlog reader needs, as the server names them."""
    if dialect == "mariadb" and _mariadb_version(version) >= (10, 5):
        return ("REPLICATION SLAVE", "BINLOG MONITOR")
    return ("REPLICATION SLAVE", "REPLICATION CLIENT")


def _mariadb_version(version: str) -> tuple[int, int]:
    m = re.search(r"(?:^|-)(\d+)\.(\d+)\.\d+-MariaDB", version) or re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def retention_seconds(values: dict[str, str | None]) -> float | None:
    """How long the server keeps binary logs, from its variables; `math.inf` when it does not purge them by
    age (every expiry setting 0, or MySQL's `binlog_expire_logs_auto_purge=OFF`), None when none is readable.

    `binlog_expire_logs_seconds` (MySQL 8, MariaDB 10.6+) wins when set; else `expire_logs_days` (MySQL 5.7,
    MariaDB, where the two are kept in step; fractional days on MariaDB).
    """
    auto = values.get("binlog_expire_logs_auto_purge")
    if auto is not None and auto.strip().upper() in ("OFF", "0"):
        return math.inf

    def num(name: str) -> float | None:
        v = values.get(name)
        try:
            return float(v) if v is not None else None
        except ValueError:
            return None

    secs, days = num("binlog_expire_logs_seconds"), num("expire_logs_days")
    if secs is None and days is None:
        return None
    if secs:
        return secs
    if days:
        return days * 24 * HOUR
    return math.inf


_CHAR_NAMES = {" ": "a space", "\n": "a line break", "\r": "a carriage return", "\t": "a tab"}


def name_problem(name: str) -> str | None:
    """What makes a database, table or column name unsupported (OMS: ASCII letters, digits, `_`, `$`)."""
    bad = [c for i, c in enumerate(name) if not (c.isascii() and (c.isalnum() or c in "_$")) and
           name.index(c) == i]
    if not name:
        return "an empty name"
    if not bad:
        return None
    return ", ".join(_CHAR_NAMES.get(c, repr(c) if c.isascii() else f"non-ASCII {c!r}") for c in bad)


def topic_problem(name: str) -> str | None:
    """Why Kafka would refuse `name` as a topic name, or None."""
    if name in (".", ".."):
        return "'.' and '..' are not topic names"
    if len(name) > 249:
        return f"{len(name)} characters (at most 249)"
    if not _KAFKA_TOPIC.match(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
        return "characters Kafka refuses: " + ", ".join(_CHAR_NAMES.get(c, repr(c)) for c in bad)
    return None


def _sql_user(current_user: str) -> str:
    user, _, host = current_user.rpartition("@")
    return f"'{user}'@'{host}'" if user else f"'{current_user}'"


# ---- the probe: lazy, cached facts about the task's servers ---------------------------------------------

@dataclass(slots=True)
class _Table:
    kind: str | None  # information_schema TABLE_TYPE, None when the table is not there (or not visible)
    schema: TableSchema | None = None
    index: int = 0  # the object (rule) that selects it

    def exact(self, task: TaskConfig) -> bool:
        return task.objects[self.index].is_exact


class Probe:
    """Everything the checks look at, read once, with connection failures remembered (never raised twice)."""

    def __init__(self, task: TaskConfig, state_dir: Path, kafka_timeout: float) -> None:
        self.task = task
        self.state_dir = state_dir
        self.kafka_timeout = kafka_timeout
        self.sql_ep = sql_endpoint(task.source)
        self.log_ep = log_endpoint(task.source)
        self.same_endpoint = (self.sql_ep.host, self.sql_ep.port) == (self.log_ep.host, self.log_ep.port)
        self._conns: dict[str, pymysql.Connection | str] = {}
        self._memo: dict[str, Any] = {}
        conf = base_config(kafka_settings(task.target))
        self.secrets = [str(v) for k, v in conf.items() if redacted(conf)[k] == "***" and str(v)]
        if self.sql_ep.password:
            self.secrets.append(self.sql_ep.password)

    def scrub(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def close(self) -> None:
        for c in self._conns.values():
            if not isinstance(c, str):
                try:
                    c.close()
                except Exception:  # closing anyway
                    pass

    def _memoized(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    # -- the source
    def connect_error(self, which: str) -> str | None:
        """None when the endpoint ("sql" or "log") answers, else why it does not."""
        key = "sql" if which == "sql" or self.same_endpoint else "log"
        if key not in self._conns:
            ep = self.sql_ep if key == "sql" else self.log_ep
            try:
                self._conns[key] = connect(ep, utc_session=key == "sql")
            except ObsyncError as e:
                self._conns[key] = str(e)
        c = self._conns[key]
        return c if isinstance(c, str) else None

    def conn(self, which: str = "sql") -> pymysql.Connection:
        if self.connect_error(which) is not None:
            raise NotChecked("not checked: the source is not reachable (see source.reachable)")
        return self._conns["sql" if which == "sql" or self.same_endpoint else "log"]  # type: ignore[return-value]

    @property
    def dialect(self) -> Dialect:
        kind = self.task.source.kind
        return self._memoized("dialect", lambda: detect_dialect(self.conn()) if kind == "auto" else kind)

    @property
    def version(self) -> str:
        """SELECT VERSION() (the handshake says only "5.7.25" on OceanBase, "5.5.5-..." on MariaDB)."""
        return self._memoized("version", lambda: _text(self.query("sql", "SELECT VERSION()")[0][0]))

    def query(self, which: str, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.conn(which).cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def variable(self, name: str, where: tuple[str, ...] = ("log", "sql")) -> str | None:
        """A global variable from the first endpoint in `where` that answers it (None if none does)."""
        for which in where:
            if self.connect_error(which) is not None:
                continue
            value = self._memoized(f"var:{which}:{name}", lambda w=which: self._read_variable(w, name))
            if value is not None:
                return value
        return None

    def _read_variable(self, which: str, name: str) -> str | None:
        try:
            rows = self.query(which, "SHOW GLOBAL VARIABLES LIKE %s", (name,))
        except pymysql.err.MySQLError:
            return None
        return next((_text(v) for k, v in rows if _text(k).lower() == name), None)

    def master_status(self) -> tuple[str, Any]:
        """("row", (file, pos)) | ("empty", None) | ("denied", msg) | ("unsupported", msg) | ("error", msg)."""
        def read() -> tuple[str, Any]:
            last: pymysql.err.MySQLError | None = None
            for stmt in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):  # MySQL 8.4 renamed it
                try:
                    rows = self.query("log", stmt)
                except pymysql.err.MySQLError as e:
                    last = e
                    if e.args and e.args[0] in _DENIED:
                        return "denied", e.args[-1]
                    continue
                return ("row", (_text(rows[0][0]), int(rows[0][1]))) if rows else ("empty", None)
            code = last.args[0] if last and last.args else None
            return ("unsupported" if code == _SYNTAX else "error"), (last.args[-1] if last else "")
        return self._memoized("master_status", read)

    def grants(self) -> tuple[Grants | None, str]:
        """The user's grants (from the binlog endpoint, else the SQL endpoint), or None and why not."""
        def read() -> tuple[Grants | None, str]:
            error = ""
            for which in ("log", "sql"):
                if self.connect_error(which) is not None:
                    continue
                try:
                    grants = parse_grants(_text(r[0]) for r in self.query(which, "SHOW GRANTS"))
                    if grants.roles and self.dialect == "mysql":  # MySQL 8 shows role privileges on demand
                        using = ", ".join(grants.roles)
                        rows = self.query(which, f"SHOW GRANTS FOR CURRENT_USER() USING {using}")
                        grants = parse_grants(_text(r[0]) for r in rows)
                    return grants, ""
                except pymysql.err.MySQLError as e:
                    error = str(e.args[-1] if e.args else e)
            return None, error or "SHOW GRANTS is not answered"
        return self._memoized("grants", read)

    def selection(self) -> Selection:
        return self.task.selection()

    def tables(self) -> dict[str, _Table]:
        """Every table the objects select now, by `db.table` (schema loaded for base tables); exact names
        that are not on the source have kind None."""
        def read() -> dict[str, _Table]:
            out: dict[str, _Table] = {}
            selection = self.selection()
            on_source = list_source_tables(SqlCatalog(self.conn()), selection.schemas())
            for sel in selection.select(on_source):
                kind = on_source[sel.name]
                schema = load_table_schema(self.conn(), sel.db, sel.table) if kind == "BASE TABLE" else None
                out[f"{sel.db}.{sel.table}"] = _Table(kind, schema, sel.index)
            for i, obj in enumerate(self.task.objects):
                if obj.is_exact and (obj.db, obj.table) not in on_source:
                    out.setdefault(obj.match, _Table(None, None, i))
            return out
        return self._memoized("tables", read)

    def plans(self) -> dict[str, ObjectPlan]:
        """The plan (topic, rule) of each selected base table, by `db.table`."""
        selection = self.selection()
        out = {}
        for name, t in self.tables().items():
            if t.kind == "BASE TABLE":
                db, table = name.split(".")
                plan = plan_for(self.task, selection, db, table)
                if plan is not None:
                    out[name] = plan
        return out

    def schemas(self) -> list[TableSchema]:
        return [t.schema for t in self.tables().values() if t.schema is not None]

    # -- Kafka
    def topics(self) -> dict[str, list[str]]:
        """Every topic obsync would write, with what writes to it."""
        out: dict[str, list[str]] = {}
        if self.connect_error("sql") is None:
            for name, plan in sorted(self.plans().items()):
                out.setdefault(plan.topic, []).append(name)
        for i, obj in enumerate(self.task.objects):
            if obj.is_exact and obj.match not in {n for names in out.values() for n in names}:
                out.setdefault(self.task.topic_for(obj.db, obj.table, obj), []).append(obj.match)
        encoder, _ = self.encoder()
        for t in encoder.extra_topics() if encoder is not None else ():
            out.setdefault(t, []).append(f"format {self.task.format}")
        return out

    def encoder(self) -> tuple[Any, str]:
        """(the task's encoder, "") or (None, why its format options are refused)."""
        def make() -> tuple[Any, str]:
            from obsync.formats import encoder_for
            from obsync.formats.base import EncoderContext

            db_type = "OB_MYSQL" if self.task.source.kind == "oceanbase" else "MYSQL"
            try:
                ctx = EncoderContext(self.task.name, db_type)
                return encoder_for(self.task.format, ctx, self.task.format_options), ""
            except ConfigError as e:
                return None, str(e)
        return self._memoized("encoder", make)

    def kafka(self) -> tuple[Any, Any, str]:
        """(admin client, cluster metadata, "") or (None, None, why Kafka cannot be reached)."""
        def read() -> tuple[Any, Any, str]:
            from confluent_kafka import KafkaException
            from confluent_kafka.admin import AdminClient

            errors: list[str] = []
            conf = {**base_config(kafka_settings(self.task.target)),
                    "log_level": 0,  # reported here, not printed by librdkafka
                    "error_cb": lambda err: errors.append(err.str())}
            try:
                admin = AdminClient(conf)
                return admin, admin.list_topics(timeout=self.kafka_timeout), ""
            except KafkaException as e:
                admin.poll(0)  # serves the error callbacks: they say why (refused, TLS, SASL, ...)
                said = (re.sub(r"\s*\(after \d+ms[^)]*\)$", "", m) for m in errors if "brokers are down" not in m)
                detail = list(dict.fromkeys(said)) or [e.args[0].str()]
                return None, None, "; ".join(detail[:2])
            except ValueError as e:  # a librdkafka property the client refuses
                return None, None, str(e)
        return self._memoized("kafka", read)


# ---- the checks --------------------------------------------------------------------------------------

def _needs_log(p: Probe) -> None:
    if not p.task.sync.incremental:
        raise NotChecked("not needed: sync.incremental is false")


def check_source_reachable(p: Probe) -> Item:
    where = [("sql", p.sql_ep)] + ([] if p.same_endpoint or not p.task.sync.incremental else [("log", p.log_ep)])
    errors = [err for which, _ in where if (err := p.connect_error(which)) is not None]
    if errors:
        return _failed("; ".join(errors),
                       "check source.host/port (and sql_host/sql_port), the user and its password, and that "
                       "the server accepts connections from this machine")
    names = " and ".join(f"{ep.user}@{ep.host}:{ep.port}" for _, ep in where)
    return _passed(f"connected to {names} ({p.dialect}, version {p.version})")


def check_source_privileges(p: Probe) -> Item:
    missing: list[str] = []
    no_select = []
    for name, t in p.tables().items():
        if t.kind is None and not _exists_hidden(p, name):
            continue
        db, table = name.split(".")
        try:
            p.query("sql", f"SELECT * FROM {quote_ident(db)}.{quote_ident(table)} LIMIT 0")
        except pymysql.err.MySQLError as e:
            if e.args and e.args[0] in _DENIED:
                no_select.append(name)
    if no_select:
        missing.append(f"SELECT on {_listed(no_select)}")
    notes: list[str] = []
    lacking: list[str] = []
    if p.task.sync.incremental:
        needed = replication_privileges(p.dialect, p.version)
        grants, grants_error = p.grants()
        status, _ = p.master_status()
        for priv in needed:
            if priv != "REPLICATION SLAVE" and status in ("row", "empty", "denied"):
                ok = status != "denied"  # SHOW MASTER STATUS answered: the server says it, not the grants
            elif grants is None:
                notes.append(f"cannot read the grants ({grants_error}); make sure the user has {priv} ON *.*")
                continue
            else:
                ok = grants.has(priv)
            if not ok:
                lacking.append(priv)
        if lacking:
            missing.append(f"{' and '.join(lacking)} ON *.* (needed by incremental sync)")
    user = _sql_user(_text(p.query("sql", "SELECT CURRENT_USER()")[0][0]))
    if missing:
        grants_sql = []
        if no_select:
            grants_sql += [f"GRANT SELECT ON {quote_ident(d)}.* TO {user}"
                           for d in dict.fromkeys(m.split(".")[0] for m in no_select)]
        if any("ON *.*" in m for m in missing):
            grants_sql.append(f"GRANT {', '.join(lacking)} ON *.* TO {user}")
        return _failed(f"user {user} lacks " + "; ".join(missing),
                       "; ".join(grants_sql) + " (skippable if obsync misreads the grants: a grant that is "
                       "really missing stops the task with the server's error)")
    if notes:
        return _warning("; ".join(notes), "run SHOW GRANTS as the task's user and compare")
    has = "SELECT on the tables" + (f", {' and '.join(replication_privileges(p.dialect, p.version))}"
                                    if p.task.sync.incremental else "")
    return _passed(f"user {user} has {has}")


def check_source_standby(p: Probe) -> Item:
    if p.dialect == "oceanbase":
        for sql, what in (("SELECT TENANT_NAME, TENANT_ROLE FROM oceanbase.DBA_OB_TENANTS", "tenant"),
                          ("SELECT CLUSTER_NAME, CLUSTER_ROLE FROM oceanbase.V$OB_CLUSTER", "cluster")):
            try:
                rows = p.query("sql", sql)
            except pymysql.err.MySQLError:
                continue
            standby = [f"{_text(n)} ({_text(r)})" for n, r in rows if "STANDBY" in _text(r).upper()]
            if standby:
                return _failed(f"the source {what} is a standby: {', '.join(standby)}; a standby OceanBase "
                               "database is not a supported source", "sync from the primary tenant")
            return _passed(f"the source {what} is not a standby ({', '.join(_text(r) for _, r in rows)})")
        return _passed("not detectable here: neither oceanbase.DBA_OB_TENANTS nor oceanbase.V$OB_CLUSTER can be "
                       "read (single-node seekdb); a standby tenant is not a supported source")
    if not p.task.sync.incremental:
        return _passed("a replica is a valid source for full sync")
    updates = p.variable("log_slave_updates") or p.variable("log_replica_updates")
    on = (updates or "").upper() in ("ON", "1")
    sources = _replication_sources(p)
    running = [src for src, sql_thread in (sources or ()) if sql_thread]
    if running and not on:
        return _failed(f"the source is a replica of {', '.join(running)} and log_slave_updates is OFF: the changes "
                       "it replicates are not written to its binary log",
                       "set log_slave_updates=ON (log_replica_updates on MySQL 8) and restart it, or sync from "
                       "the primary")
    if sources and not on:
        return _warning(f"the source is configured as a replica of {', '.join(s for s, _ in sources)} (stopped) and "
                        "log_slave_updates is OFF: once replication runs, what it replicates will not be in its "
                        "binary log", "RESET SLAVE ALL if it is no longer a replica, or set log_slave_updates=ON")
    if sources:
        return _passed(f"a replica of {', '.join(s for s, _ in sources)} with log_slave_updates=ON: a valid "
                       "binlog source")
    if sources is None and (p.variable("read_only") or "").upper() in ("ON", "1") and not on:
        return _warning("the source is read-only and log_slave_updates is OFF; if it is a replica, the changes "
                        "it replicates are not in its binary log (its replication status cannot be read)",
                        "sync from the primary, or set log_slave_updates=ON on the replica")
    return _passed("not a replica" if sources is not None else
                   "not read-only (its replication status cannot be read with the user's privileges)")


def _replication_sources(p: Probe) -> list[tuple[str, bool]] | None:
    """The server's replication sources as ("host:port", SQL thread running), None when it cannot be read."""
    statements = (("SHOW ALL SLAVES STATUS", "SHOW SLAVE STATUS") if p.dialect == "mariadb"
                  else ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"))
    for stmt in statements:
        try:
            with p.conn("log").cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(stmt)
                rows = cur.fetchall()
        except pymysql.err.MySQLError as e:
            if e.args and e.args[0] == _SYNTAX:
                continue
            return None  # denied (SLAVE MONITOR / REPLICATION CLIENT): cannot tell
        return [(f"{_text(r.get('Master_Host') or r.get('Source_Host'))}:"
                 f"{r.get('Master_Port') or r.get('Source_Port')}",
                 _text(r.get("Slave_SQL_Running") or r.get("Replica_SQL_Running") or "").upper() == "YES")
                for r in rows]
    return None


def check_binlog_enabled(p: Probe) -> Item:
    _needs_log(p)
    status, detail = p.master_status()
    ep = f"{p.log_ep.host}:{p.log_ep.port}"
    fix_off = ("start the server with log_bin (e.g. --log-bin=mysql-bin), binlog_format=ROW, "
               "binlog_row_image=FULL and a server_id; log_bin cannot be turned on without a restart")
    if status == "row":
        return _passed(f"binary log on; current position {detail[0]}:{detail[1]}")
    if status == "empty":
        return _failed(f"binary logging is off on {ep} (log_bin={p.variable('log_bin') or 'OFF'})", fix_off)
    if status == "unsupported":
        return _failed(f"{ep} does not serve a binary log (SHOW MASTER STATUS is not understood there)",
                       "on OceanBase point source.host/port at OceanBase Binlog Service and "
                       "source.sql_host/sql_port at OBProxy; on MySQL/MariaDB " + fix_off)
    log_bin = p.variable("log_bin")
    if log_bin is not None and log_bin.upper() in ("OFF", "0"):
        return _failed(f"binary logging is off on {ep} (log_bin={log_bin})", fix_off)
    if log_bin is not None:
        return _passed(f"log_bin={log_bin} (the current position cannot be read: {detail})")
    return _warning(f"cannot tell whether {ep} writes a binary log: {detail}",
                    "grant the user BINLOG MONITOR (REPLICATION CLIENT on MySQL) so obsync can check")


def check_binlog_format(p: Probe) -> Item:
    _needs_log(p)
    value = p.variable("binlog_format")
    if value is None:
        if p.dialect == "oceanbase":
            return _passed("OceanBase Binlog Service always writes row format")
        return _warning("binlog_format cannot be read", "make sure the server runs with binlog_format=ROW")
    if value.upper() == "ROW":
        return _passed("binlog_format=ROW")
    return _failed(f"binlog_format={value}: obsync reads row events only; statement-logged changes would be lost",
                   "SET GLOBAL binlog_format = 'ROW' and set binlog_format=ROW in the server's configuration "
                   "(sessions already open keep their format until they reconnect)")


def check_binlog_row_image(p: Probe) -> Item:
    _needs_log(p)
    value = p.variable("binlog_row_image", ("sql", "log") if p.dialect == "oceanbase" else ("log", "sql"))
    if value is None:
        return _warning("binlog_row_image cannot be read",
                        "make sure the source logs full row images (binlog_row_image=FULL; on OceanBase 4.x "
                        "the tenant's binlog_row_image)")
    if value.upper() == "FULL":
        return _passed("binlog_row_image=FULL")
    return _failed(f"binlog_row_image={value}: updates and deletes would lack the columns they did not change",
                   "SET GLOBAL binlog_row_image = 'FULL' and set it in the server's configuration")


def check_binlog_retention(p: Probe) -> Item:
    _needs_log(p)
    names = ("binlog_expire_logs_seconds", "expire_logs_days", "binlog_expire_logs_auto_purge")
    where = ("log",) if p.dialect == "oceanbase" else ("log", "sql")  # the tenant's values are not the service's
    values = {n: p.variable(n, where) for n in names}
    kept = retention_seconds(values)
    need = RETENTION_WITH_FULL if p.task.sync.full else RETENTION_INCREMENTAL
    why = "with full sync" if p.task.sync.full else "for incremental sync only"
    setting = f"binlog_expire_logs_seconds = {need}" if values["binlog_expire_logs_seconds"] is not None \
        else f"expire_logs_days = {math.ceil(need / (24 * HOUR))}"
    if kept is None:
        return _warning(f"the binary log retention cannot be read here; a task {why} needs {_duration(need)}",
                        "make sure the binlog service keeps binary logs that long (OceanBase Binlog Service: "
                        "its binlog_expire_logs_seconds)")
    if kept == math.inf:
        return _passed("binary logs are not purged by age (expiry settings are 0)")
    if kept < need:
        return _failed(f"binary logs are kept {_duration(kept)}; a task {why} needs at least {_duration(need)}, "
                       "or a resume may find its position purged",
                       f"SET GLOBAL {setting} (and in the server's configuration); skippable at your risk")
    return _passed(f"binary logs are kept {_duration(kept)} (at least {_duration(need)} needed {why})")


def _exists_hidden(p: Probe, name: str) -> bool:
    """True when a table missing from information_schema exists but the user may not see it."""
    db, table = name.split(".")
    try:
        p.query("sql", f"SELECT 1 FROM {quote_ident(db)}.{quote_ident(table)} LIMIT 0")
        return False
    except pymysql.err.MySQLError as e:
        return bool(e.args and e.args[0] in _DENIED)


def check_tables_exist(p: Probe) -> Item:
    missing = []
    for name, t in p.tables().items():
        if t.kind is not None:
            continue
        missing.append(f"table {name} " + ("is not visible to the user (no privilege on it)" if _exists_hidden(p, name)
                                           else "does not exist on the source"))
    if missing:
        return _failed("; ".join(dict.fromkeys(missing)),
                       "create it, correct objects[].match, or grant the user SELECT on it")
    found = sum(1 for t in p.tables().values() if t.kind is not None)
    unmatched = [o.match for i, o in enumerate(p.task.objects)
                 if not o.is_exact and not any(t.index == i for t in p.tables().values())]
    if unmatched:
        return _warning(f"{found} tables selected; no table matches {_listed(unmatched)} yet (tables created "
                        "later that match will sync)", "check the patterns (obsync objects TASK lists the tables)")
    return _passed(f"all {found} tables are there")


def check_tables_physical(p: Probe) -> Item:
    tables = p.tables()
    other = [f"{m} is a {t.kind.lower()}" for m, t in tables.items() if t.kind not in (None, "BASE TABLE")]
    exact = [m for m, t in tables.items() if t.kind not in (None, "BASE TABLE") and t.exact(p.task)]
    if exact:
        return _failed("; ".join(other) + "; only physical tables can be synchronized",
                       "select the underlying tables instead")
    if other:
        return _warning("; ".join(other) + ": matched by a pattern, skipped (only physical tables sync)",
                        "add them to `exclude:` to silence this")
    return _passed("every object that exists is a physical table")


def check_tables_names(p: Probe) -> Item:
    problems: list[str] = []
    for full, t in p.tables().items():
        for what, name in zip(("database", "table"), full.split(".")):
            if (why := name_problem(name)) is not None:
                problems.append(f"{what} {name!r} has {why}")
        for col in t.schema.columns if t.schema is not None else ():
            if (why := name_problem(col.name)) is not None:
                problems.append(f"column {full}.{col.name!r} has {why}")
    problems = list(dict.fromkeys(problems))
    if problems:
        return _failed("unsupported names: " + _listed(problems),
                       "rename them to ASCII letters, digits, '_' and '$', or leave them out of the task; "
                       "skippable: obsync quotes every name, but consumers that follow OMS's rules may refuse them")
    return _passed("database, table and column names are ASCII letters, digits, '_' and '$'")


def check_tables_unique_key(p: Probe) -> Item:
    keyless = [s.full_name for s in p.schemas() if not s.key_columns]
    if keyless:
        return _warning(f"no primary key and no non-null unique key: {_listed(keyless)}; rows of a table without "
                        "a key cannot be told apart; updates may be duplicated",
                        "add a primary key (or a unique key on NOT NULL columns), or set the object's "
                        "sharding_columns")
    return _passed("every table has a primary key or a non-null unique key")


def check_tables_generated_columns(p: Probe) -> Item:
    _needs_log(p)
    virtual = [f"{s.full_name}.{c.name}" for s in p.schemas() for c in s.columns if c.generated == "VIRTUAL"]
    if not virtual:
        return _passed("no VIRTUAL generated columns")
    if p.dialect == "oceanbase":
        return _warning(f"OceanBase 4.x writes only STORED generated columns to its log; these VIRTUAL ones will "
                        f"be missing from incremental changes: {_listed(virtual)}",
                        "make them STORED (ALTER TABLE ... MODIFY col ... AS (...) STORED), or accept that "
                        "incremental sync cannot carry them")
    return _passed(f"VIRTUAL generated columns {_listed(virtual)}: {p.dialect} writes their values in row events")


def check_kafka_reachable(p: Probe) -> Item:
    _, meta, error = p.kafka()
    servers = p.task.target.bootstrap_servers
    if meta is None:
        return _failed(f"cannot reach Kafka at {servers} within {p.kafka_timeout:g} s: {error}",
                       "check target.bootstrap_servers, the network, and the SASL/SSL settings in "
                       "target.properties")
    return _passed(f"{len(meta.brokers)} broker(s) at {servers}, {len(meta.topics)} topics visible")


def check_kafka_topics(p: Probe) -> Item:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    from obsync.runtime.prepare import check_fixed_partition

    topics = p.topics()
    bad = [f"{t!r} ({why}; for {', '.join(topics[t])})" for t in topics if (why := topic_problem(t))]
    fix_names = "change `topic` (a fixed name or a template whose values give a valid name)"
    if bad:
        return _failed("invalid topic names: " + _listed(bad), fix_names)
    admin, meta, _ = p.kafka()
    if meta is None:
        raise NotChecked("not checked: Kafka is not reachable (see kafka.reachable)")
    cfg = p.task.topics
    problems = [f"topic {t!r}: {meta.topics[t].error.str()}" for t in topics
                if t in meta.topics and meta.topics[t].error is not None]  # e.g. not authorized to describe it
    existing = {t: len(meta.topics[t].partitions) for t in topics if t in meta.topics}
    must_exist = {o.existing_topic for o in p.task.objects if o.existing_topic is not None}
    for t in sorted(must_exist - set(existing)):
        problems.append(f"topic {t!r} (an existing_topic, for {', '.join(topics.get(t, ['no table yet']))}) does "
                        "not exist; obsync never creates an existing_topic")
    missing = sorted(set(topics) - set(existing) - must_exist)
    if missing and cfg.replication_factor > len(meta.brokers):
        problems.append(f"topics.replication_factor {cfg.replication_factor} exceeds the {len(meta.brokers)} "
                        f"broker(s) for the topics to create: {_listed(missing)}")
    elif missing:
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=cfg.partitions, replication_factor=cfg.replication_factor)
             for t in missing], validate_only=True, request_timeout=p.kafka_timeout,
            operation_timeout=p.kafka_timeout)
        for t, fut in sorted(futures.items()):
            try:
                fut.result()
            except KafkaException as e:
                if e.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: created meanwhile
                    problems.append(f"topic {t!r} cannot be created: {e.args[0].str()}")
    try:
        check_fixed_partition(p.task, {**{t: cfg.partitions for t in missing}, **existing})
    except ConfigError as e:
        problems.append(str(e))
    if problems:
        return _failed("; ".join(problems), "create the topics yourself, or fix target.properties (ACLs) and the "
                       "topics settings; under the `one` rule fixed_partition must exist in every topic")
    parts = [f"{len(existing)} exist: {_listed([f'{t} ({n} partitions)' for t, n in sorted(existing.items())], 4)}"
             ] if existing else []
    if missing:
        parts.append(f"{len(missing)} can be created with {cfg.partitions} partitions: {_listed(missing, 4)}")
    return _passed("; ".join(parts))


def check_task_name(p: Probe) -> Item:
    name, state = p.task.name, p.state_dir
    if len(name) > 64 or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return _failed(f"task name {name!r} is not 1-64 letters, digits, '.', '-', '_'", "rename the task")
    own = state / "task.json"
    if own.exists():
        owner = _state_owner(own)
        if owner != name:
            return _failed(f"state directory {state} belongs to task {owner!r}, not {name!r}",
                           "choose another state directory (state_dir or --state-dir)")
    others = sorted(str(d) for d in _sibling_states(state) if _state_owner(d / "task.json") == name)
    if others:
        return _failed(f"task name {name!r} is already used by the task in {', '.join(others)}; two tasks "
                       "with one name write messages that cannot be told apart",
                       "rename this task, or run it from that state directory")
    return _passed(f"task name {name!r} is valid and unique in {state.parent}")


def _sibling_states(state: Path) -> Iterator[Path]:
    try:
        children = list(state.parent.iterdir())
    except OSError:
        return
    for d in children:
        if d.resolve() != state.resolve() and (d / "task.json").is_file():
            yield d


def _state_owner(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def check_config_coherent(p: Probe) -> Item:
    from obsync.runtime.prepare import selection_rules
    from obsync.task.state import TaskState

    task = p.task
    problems: list[str] = []
    warnings: list[str] = []
    if not (task.sync.full or task.sync.incremental):
        problems.append("sync.full and sync.incremental are both false: the task would copy nothing")
    if task.partitioning == "one" and task.fixed_partition >= task.topics.partitions:
        problems.append(f"field `fixed_partition`: {task.fixed_partition} is not a partition of the topics obsync "
                        f"creates (topics.partitions {task.topics.partitions}: partitions 0 to "
                        f"{task.topics.partitions - 1})")
    dup = sorted({o.match for o in task.objects if [x.match for x in task.objects].count(o.match) > 1})
    if dup:
        problems.append(f"objects listed twice: {', '.join(dup)}")
    if (format_error := p.encoder()[1]):
        problems.append(format_error)
    if p.connect_error("sql") is None:
        tables = p.tables()
        selection = p.selection()
        try:
            selection.check_names(Selected(*name.split("."), t.index) for name, t in tables.items()
                                  if t.kind == "BASE TABLE")
        except ConfigError as e:
            problems.append(str(e))
        for name, plan in p.plans().items():
            schema = tables[name].schema
            assert schema is not None
            try:
                check_table(plan, schema)
            except ConfigError as e:
                problems.append(str(e))
    start = TaskState(p.state_dir).load_start() if (p.state_dir / "start.json").exists() else None
    if start is not None and start.get("rules") != selection_rules(task) and not task.sync.incremental:
        # with incremental sync a changed selection is a live change: added tables are backfilled
        problems.append(f"the task's table selection changed since it started (was {start.get('rules')}) and "
                        "the task has no incremental sync, which backfills added tables; use a new state "
                        "directory (or task name) to sync the new selection from scratch")
    if task.sync.ddl and not task.sync.incremental:
        warnings.append("sync.ddl is true but incremental sync is off: DDL comes from the log, none will be sent")
    if problems:
        return _failed("; ".join(problems), "correct the task file")
    if warnings:
        return _warning("; ".join(warnings), "turn on sync.incremental or turn off sync.ddl")
    return _passed("the settings agree with each other")


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    run: Callable[[Probe], Item]
    skippable: bool = False


CHECKS: tuple[Check, ...] = (
    Check("source.reachable", check_source_reachable),
    Check("source.privileges", check_source_privileges, skippable=True),
    Check("source.standby", check_source_standby),
    Check("binlog.enabled", check_binlog_enabled),
    Check("binlog.format", check_binlog_format),
    Check("binlog.row_image", check_binlog_row_image),
    Check("binlog.retention", check_binlog_retention, skippable=True),
    Check("tables.exist", check_tables_exist),
    Check("tables.physical", check_tables_physical),
    Check("tables.names", check_tables_names, skippable=True),
    Check("tables.unique_key", check_tables_unique_key, skippable=True),
    Check("tables.generated_columns", check_tables_generated_columns, skippable=True),
    Check("kafka.reachable", check_kafka_reachable),
    Check("kafka.topics", check_kafka_topics),
    Check("task.name", check_task_name),
    Check("config.coherent", check_config_coherent),
)
ITEM_IDS = tuple(c.id for c in CHECKS)
SKIPPABLE = tuple(c.id for c in CHECKS if c.skippable)


# ---- running and reporting ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Report:
    task: str
    items: tuple[Item, ...]
    _by_id: dict[str, Item] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({i.id: i for i in self.items})

    def __getitem__(self, item_id: str) -> Item:
        return self._by_id[item_id]

    @property
    def ok(self) -> bool:
        """Nothing failed (warnings and skipped items allowed): the task may start."""
        return not self.failed

    @property
    def failed(self) -> list[Item]:
        return [i for i in self.items if i.status is Status.FAILED]

    @property
    def warnings(self) -> list[Item]:
        return [i for i in self.items if i.status is Status.WARNING]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "ok": self.ok, "items": [i.to_dict() for i in self.items]}

    def summary(self) -> str:
        counts = {s: sum(i.status is s for i in self.items) for s in Status}
        text = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
        if self.ok:
            return f"precheck of task {self.task}: {text}; the task can start"
        skippable = [i.id for i in self.failed if i.skippable]
        hint = f" (skippable: {', '.join(skippable)})" if skippable else ""
        return f"precheck of task {self.task}: {text}; fix the failed items{hint}"

    def table(self, reason_width: int = 60, fix_width: int = 48) -> str:
        """The items as a text table: item, status, reason, fix (long text wrapped)."""
        rows = [("ITEM", "STATUS", "REASON", "FIX")] + [(i.id, i.status.value, i.reason, i.fix) for i in self.items]
        w_id = max(len(r[0]) for r in rows)
        lines = []
        for item_id, status, reason, fix in rows:
            rs = textwrap.wrap(reason, reason_width, break_on_hyphens=False) or [""]
            fs = textwrap.wrap(fix, fix_width, break_on_hyphens=False) or [""]
            for k in range(max(len(rs), len(fs))):
                cells = (item_id if k == 0 else "", status if k == 0 else "",
                         rs[k] if k < len(rs) else "", fs[k] if k < len(fs) else "")
                lines.append(f"{cells[0]:<{w_id}}  {cells[1]:<7}  {cells[2]:<{reason_width}}  {cells[3]}".rstrip())
        return "\n".join(lines)


def validate_skips(skip: Iterable[str]) -> frozenset[str]:
    """The `--skip` items, refused when unknown or not skippable."""
    out = frozenset(skip)
    for s in sorted(out):
        if s not in ITEM_IDS:
            raise ConfigError(f"--skip {s}: no such precheck item; items: {', '.join(ITEM_IDS)}")
        if s not in SKIPPABLE:
            raise ConfigError(f"--skip {s}: this item cannot be skipped; skippable: {', '.join(SKIPPABLE)}")
    return out


def run_precheck(task: TaskConfig, *, state_dir: Path | None = None, skip: Iterable[str] = (),
                 kafka_timeout: float = 5.0) -> Report:
    """Run every check against the task's servers and state directory."""
    skipped = validate_skips(skip)
    probe = Probe(task, task.resolved_state_dir(state_dir), kafka_timeout)
    items = []
    try:
        for check in CHECKS:
            items.append(_run_one(check, probe, skipped))
    finally:
        probe.close()
    return Report(task.name, tuple(items))


def _run_one(check: Check, probe: Probe, skipped: frozenset[str]) -> Item:
    try:
        item = check.run(probe)
    except NotChecked as e:
        item = Item("", Status.SKIPPED, str(e))
    except Exception as e:  # a check that breaks reports it; it never hides the other items
        log.debug("precheck %s raised", check.id, exc_info=True)
        item = _failed(f"the check could not run: {type(e).__name__}: {e}", "see the reason; run with -v for details")
    item = replace(item, id=check.id, skippable=check.skippable, reason=probe.scrub(item.reason),
                   fix=probe.scrub(item.fix))
    if check.id in skipped and item.status in (Status.FAILED, Status.WARNING):
        item = replace(item, status=Status.SKIPPED, reason=f"skipped by request: {item.reason}")
    return item
