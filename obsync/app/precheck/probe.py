"""The probe: lazy, cached facts about a task's servers, read once for all the checks.

`Probe` opens the source's SQL endpoint and its binlog endpoint on first use (one connection when they are the
same) and remembers a failure to connect as its message, never raising it twice; the checks that need an
unreachable server raise `NotChecked` through `Probe.conn`. It reads variables, grants, the binlog status, the
tables the task selects with their schemas and plans, the topics obsync would write, and Kafka's metadata.
`Probe.scrub` removes the task's secrets (passwords, SASL/SSL secrets) from any text the report shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from obsync.app.precheck.items import NotChecked, as_text
from obsync.app.precheck.rules import Grants, parse_grants
from obsync.connectors.kafka.client import base_config, redacted
from obsync.connectors.mysql.catalog import SqlCatalog, load_table_schema
from obsync.connectors.mysql.connection import Dialect, connect, detect_dialect, quote_ident
from obsync.core.errors import ConfigError, ObsyncError
from obsync.core.schema import TableSchema
from obsync.formats import encoder_for
from obsync.formats.base import EncoderContext
from obsync.runtime.settings import kafka_settings, log_endpoint, sql_endpoint
from obsync.task.config import TaskConfig
from obsync.task.objects import ObjectPlan, list_source_tables, plan_for
from obsync.task.selection import Selection

__all__ = ["DENIED", "SYNTAX_ERROR", "Probe", "exists_hidden", "needs_log"]

DENIED = (1044, 1142, 1143, 1227)  # no database access, table/column command denied, needs privilege
SYNTAX_ERROR = 1064


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
                except Exception:  # noqa: BLE001 - closing anyway: a failed close leaves nothing to do
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
        return self._conns["sql" if which == "sql" or self.same_endpoint else "log"]  # type: ignore[return-value]  # connect_error() is None: the entry is the connection, not its error

    @property
    def dialect(self) -> Dialect:
        kind = self.task.source.kind
        return self._memoized("dialect", lambda: detect_dialect(self.conn()) if kind == "auto" else kind)

    @property
    def version(self) -> str:
        """SELECT VERSION() (the handshake says only "5.7.25" on OceanBase, "5.5.5-..." on MariaDB)."""
        return self._memoized("version", lambda: as_text(self.query("sql", "SELECT VERSION()")[0][0]))

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
        return next((as_text(v) for k, v in rows if as_text(k).lower() == name), None)

    def master_status(self) -> tuple[str, Any]:
        """("row", (file, pos)) | ("empty", None) | ("denied", msg) | ("unsupported", msg) | ("error", msg)."""
        def read() -> tuple[str, Any]:
            last: pymysql.err.MySQLError | None = None
            for stmt in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):  # MySQL 8.4 renamed it
                try:
                    rows = self.query("log", stmt)
                except pymysql.err.MySQLError as e:
                    last = e
                    if e.args and e.args[0] in DENIED:
                        return "denied", e.args[-1]
                    continue
                return ("row", (as_text(rows[0][0]), int(rows[0][1]))) if rows else ("empty", None)
            code = last.args[0] if last and last.args else None
            return ("unsupported" if code == SYNTAX_ERROR else "error"), (last.args[-1] if last else "")
        return self._memoized("master_status", read)

    def grants(self) -> tuple[Grants | None, str]:
        """The user's grants (from the binlog endpoint, else the SQL endpoint), or None and why not."""
        def read() -> tuple[Grants | None, str]:
            error = ""
            for which in ("log", "sql"):
                if self.connect_error(which) is not None:
                    continue
                try:
                    grants = parse_grants(as_text(r[0]) for r in self.query(which, "SHOW GRANTS"))
                    if grants.roles and self.dialect == "mysql":  # MySQL 8 shows role privileges on demand
                        using = ", ".join(grants.roles)
                        rows = self.query(which, f"SHOW GRANTS FOR CURRENT_USER() USING {using}")
                        grants = parse_grants(as_text(r[0]) for r in rows)
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
        for obj in self.task.objects:
            if obj.is_exact and obj.match not in {n for names in out.values() for n in names}:
                out.setdefault(self.task.topic_for(obj.db, obj.table, obj), []).append(obj.match)
        encoder, _ = self.encoder()
        for t in encoder.extra_topics() if encoder is not None else ():
            out.setdefault(t, []).append(f"format {self.task.format}")
        return out

    def encoder(self) -> tuple[Any, str]:
        """(the task's encoder, "") or (None, why its format options are refused)."""
        def make() -> tuple[Any, str]:
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
            errors: list[str] = []
            conf = {**base_config(kafka_settings(self.task.target)),
                    "log_level": 0,  # reported here, not printed by librdkafka
                    "error_cb": lambda err: errors.append(err.str())}
            try:
                admin = AdminClient(conf)
            except (KafkaException, TypeError, ValueError) as e:  # librdkafka refuses a property: no client
                why = e.args[0].str() if e.args and hasattr(e.args[0], "str") else str(e)
                return None, None, f"field `target.properties`: librdkafka refuses the settings: {why}"
            try:
                return admin, admin.list_topics(timeout=self.kafka_timeout), ""
            except KafkaException as e:
                admin.poll(0)  # serves the error callbacks: they say why (refused, TLS, SASL, ...)
                said = (re.sub(r"\s*\(after \d+ms[^)]*\)$", "", m) for m in errors if "brokers are down" not in m)
                detail = list(dict.fromkeys(said)) or [e.args[0].str()]
                return None, None, "; ".join(detail[:2])
            except ValueError as e:  # a librdkafka property the client refuses
                return None, None, str(e)
        return self._memoized("kafka", read)


def needs_log(p: Probe) -> None:
    """Raise NotChecked unless the task reads the binlog (incremental sync)."""
    if not p.task.sync.incremental:
        raise NotChecked("not needed: sync.incremental is false")


def exists_hidden(p: Probe, name: str) -> bool:
    """True when a table missing from information_schema exists but the user may not see it."""
    db, table = name.split(".")
    try:
        p.query("sql", f"SELECT 1 FROM {quote_ident(db)}.{quote_ident(table)} LIMIT 0")
        return False
    except pymysql.err.MySQLError as e:
        return bool(e.args and e.args[0] in DENIED)
