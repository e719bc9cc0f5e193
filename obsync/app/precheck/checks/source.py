"""The checks of the source: `source.*` (reachable, privileges, standby) and `binlog.*` (enabled, format, row
image, retention).

Standby sources (`source.standby`): on OceanBase the tenant's role is read from `oceanbase.DBA_OB_TENANTS`
(4.x) or the cluster's from `oceanbase.V$OB_CLUSTER` (3.x); a STANDBY role fails, and when neither view can
be read (single-node seekdb) the item passes and says so. On MySQL/MariaDB a replica (read-only or not) is a
valid binlog source when `log_slave_updates` (MySQL 8: `log_replica_updates`) is ON. With it OFF, a server
whose replication SQL thread runs (`SHOW ALL SLAVES STATUS` / `SHOW REPLICA STATUS`) fails, because the
changes it replicates never reach its own binary log; a configured but stopped replica is a warning, and so is
a read-only server whose replication status the user cannot read.
"""

from __future__ import annotations

import math

import pymysql

from obsync.app.precheck.items import Item, as_text, failed, listed, passed, warning
from obsync.app.precheck.probe import DENIED, SYNTAX_ERROR, Probe, exists_hidden, needs_log
from obsync.app.precheck.rules import HOUR, replication_privileges, retention_seconds
from obsync.connectors.mysql.connection import quote_ident

__all__ = ["RETENTION_INCREMENTAL", "RETENTION_WITH_FULL", "check_binlog_enabled", "check_binlog_format",
           "check_binlog_retention", "check_binlog_row_image", "check_source_privileges", "check_source_reachable",
           "check_source_standby"]

RETENTION_INCREMENTAL = 48 * HOUR  # incremental sync only (OMS)
RETENTION_WITH_FULL = 7 * 24 * HOUR  # full + incremental: the log position must outlive the full sync


def _sql_user(current_user: str) -> str:
    user, _, host = current_user.rpartition("@")
    return f"'{user}'@'{host}'" if user else f"'{current_user}'"


def _duration(seconds: float) -> str:
    if seconds > 48 * HOUR and seconds % (24 * HOUR) == 0:
        return f"{seconds / (24 * HOUR):g} days"
    if seconds >= HOUR:
        return f"{seconds / HOUR:g} h"
    return f"{seconds / 60:g} min"


def check_source_reachable(p: Probe) -> Item:
    where = [("sql", p.sql_ep)] + ([] if p.same_endpoint or not p.task.sync.incremental else [("log", p.log_ep)])
    errors = [err for which, _ in where if (err := p.connect_error(which)) is not None]
    if errors:
        return failed("; ".join(errors),
                      "check source.host/port (and sql_host/sql_port), the user and its password, and that "
                      "the server accepts connections from this machine")
    names = " and ".join(f"{ep.user}@{ep.host}:{ep.port}" for _, ep in where)
    return passed(f"connected to {names} ({p.dialect}, version {p.version})")


def check_source_privileges(p: Probe) -> Item:
    missing: list[str] = []
    no_select = []
    for name, t in p.tables().items():
        if t.kind is None and not exists_hidden(p, name):
            continue
        db, table = name.split(".")
        try:
            p.query("sql", f"SELECT * FROM {quote_ident(db)}.{quote_ident(table)} LIMIT 0")
        except pymysql.err.MySQLError as e:
            if e.args and e.args[0] in DENIED:
                no_select.append(name)
    if no_select:
        missing.append(f"SELECT on {listed(no_select)}")
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
    user = _sql_user(as_text(p.query("sql", "SELECT CURRENT_USER()")[0][0]))
    if missing:
        grants_sql = []
        if no_select:
            grants_sql += [f"GRANT SELECT ON {quote_ident(d)}.* TO {user}"
                           for d in dict.fromkeys(m.split(".")[0] for m in no_select)]
        if any("ON *.*" in m for m in missing):
            grants_sql.append(f"GRANT {', '.join(lacking)} ON *.* TO {user}")
        return failed(f"user {user} lacks " + "; ".join(missing),
                      "; ".join(grants_sql) + " (skippable if obsync misreads the grants: a grant that is "
                      "really missing stops the task with the server's error)")
    if notes:
        return warning("; ".join(notes), "run SHOW GRANTS as the task's user and compare")
    has = "SELECT on the tables" + (f", {' and '.join(replication_privileges(p.dialect, p.version))}"
                                    if p.task.sync.incremental else "")
    return passed(f"user {user} has {has}")


def check_source_standby(p: Probe) -> Item:
    if p.dialect == "oceanbase":
        for sql, what in (("SELECT TENANT_NAME, TENANT_ROLE FROM oceanbase.DBA_OB_TENANTS", "tenant"),
                          ("SELECT CLUSTER_NAME, CLUSTER_ROLE FROM oceanbase.V$OB_CLUSTER", "cluster")):
            try:
                rows = p.query("sql", sql)
            except pymysql.err.MySQLError:
                continue
            standby = [f"{as_text(n)} ({as_text(r)})" for n, r in rows if "STANDBY" in as_text(r).upper()]
            if standby:
                return failed(f"the source {what} is a standby: {', '.join(standby)}; a standby OceanBase "
                              "database is not a supported source", "sync from the primary tenant")
            return passed(f"the source {what} is not a standby ({', '.join(as_text(r) for _, r in rows)})")
        return passed("not detectable here: neither oceanbase.DBA_OB_TENANTS nor oceanbase.V$OB_CLUSTER can be "
                      "read (single-node seekdb); a standby tenant is not a supported source")
    if not p.task.sync.incremental:
        return passed("a replica is a valid source for full sync")
    updates = p.variable("log_slave_updates") or p.variable("log_replica_updates")
    on = (updates or "").upper() in ("ON", "1")
    sources = _replication_sources(p)
    running = [src for src, sql_thread in (sources or ()) if sql_thread]
    if running and not on:
        return failed(f"the source is a replica of {', '.join(running)} and log_slave_updates is OFF: the changes "
                      "it replicates are not written to its binary log",
                      "set log_slave_updates=ON (log_replica_updates on MySQL 8) and restart it, or sync from "
                      "the primary")
    if sources and not on:
        return warning(f"the source is configured as a replica of {', '.join(s for s, _ in sources)} (stopped) and "
                       "log_slave_updates is OFF: once replication runs, what it replicates will not be in its "
                       "binary log", "RESET SLAVE ALL if it is no longer a replica, or set log_slave_updates=ON")
    if sources:
        return passed(f"a replica of {', '.join(s for s, _ in sources)} with log_slave_updates=ON: a valid "
                      "binlog source")
    if sources is None and (p.variable("read_only") or "").upper() in ("ON", "1") and not on:
        return warning("the source is read-only and log_slave_updates is OFF; if it is a replica, the changes "
                       "it replicates are not in its binary log (its replication status cannot be read)",
                       "sync from the primary, or set log_slave_updates=ON on the replica")
    return passed("not a replica" if sources is not None else
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
            if e.args and e.args[0] == SYNTAX_ERROR:
                continue
            return None  # denied (SLAVE MONITOR / REPLICATION CLIENT): cannot tell
        return [(f"{as_text(r.get('Master_Host') or r.get('Source_Host'))}:"
                 f"{r.get('Master_Port') or r.get('Source_Port')}",
                 as_text(r.get("Slave_SQL_Running") or r.get("Replica_SQL_Running") or "").upper() == "YES")
                for r in rows]
    return None


def check_binlog_enabled(p: Probe) -> Item:
    needs_log(p)
    status, detail = p.master_status()
    ep = f"{p.log_ep.host}:{p.log_ep.port}"
    fix_off = ("start the server with log_bin (e.g. --log-bin=mysql-bin), binlog_format=ROW, "
               "binlog_row_image=FULL and a server_id; log_bin cannot be turned on without a restart")
    if status == "row":
        return passed(f"binary log on; current position {detail[0]}:{detail[1]}")
    if status == "empty":
        return failed(f"binary logging is off on {ep} (log_bin={p.variable('log_bin') or 'OFF'})", fix_off)
    if status == "unsupported":
        return failed(f"{ep} does not serve a binary log (SHOW MASTER STATUS is not understood there)",
                      "on OceanBase point source.host/port at OceanBase Binlog Service and "
                      "source.sql_host/sql_port at OBProxy; on MySQL/MariaDB " + fix_off)
    log_bin = p.variable("log_bin")
    if log_bin is not None and log_bin.upper() in ("OFF", "0"):
        return failed(f"binary logging is off on {ep} (log_bin={log_bin})", fix_off)
    if log_bin is not None:
        return passed(f"log_bin={log_bin} (the current position cannot be read: {detail})")
    return warning(f"cannot tell whether {ep} writes a binary log: {detail}",
                   "grant the user BINLOG MONITOR (REPLICATION CLIENT on MySQL) so obsync can check")


def check_binlog_format(p: Probe) -> Item:
    needs_log(p)
    value = p.variable("binlog_format")
    if value is None:
        if p.dialect == "oceanbase":
            return passed("OceanBase Binlog Service always writes row format")
        return warning("binlog_format cannot be read", "make sure the server runs with binlog_format=ROW")
    if value.upper() == "ROW":
        return passed("binlog_format=ROW")
    return failed(f"binlog_format={value}: obsync reads row events only; statement-logged changes would be lost",
                  "SET GLOBAL binlog_format = 'ROW' and set binlog_format=ROW in the server's configuration "
                  "(sessions already open keep their format until they reconnect)")


def check_binlog_row_image(p: Probe) -> Item:
    needs_log(p)
    value = p.variable("binlog_row_image", ("sql", "log") if p.dialect == "oceanbase" else ("log", "sql"))
    if value is None:
        return warning("binlog_row_image cannot be read",
                       "make sure the source logs full row images (binlog_row_image=FULL; on OceanBase 4.x "
                       "the tenant's binlog_row_image)")
    if value.upper() == "FULL":
        return passed("binlog_row_image=FULL")
    return failed(f"binlog_row_image={value}: updates and deletes would lack the columns they did not change",
                  "SET GLOBAL binlog_row_image = 'FULL' and set it in the server's configuration")


def check_binlog_retention(p: Probe) -> Item:
    needs_log(p)
    names = ("binlog_expire_logs_seconds", "expire_logs_days", "binlog_expire_logs_auto_purge")
    where = ("log",) if p.dialect == "oceanbase" else ("log", "sql")  # the tenant's values are not the service's
    values = {n: p.variable(n, where) for n in names}
    kept = retention_seconds(values)
    need = RETENTION_WITH_FULL if p.task.sync.full else RETENTION_INCREMENTAL
    why = "with full sync" if p.task.sync.full else "for incremental sync only"
    setting = f"binlog_expire_logs_seconds = {need}" if values["binlog_expire_logs_seconds"] is not None \
        else f"expire_logs_days = {math.ceil(need / (24 * HOUR))}"
    if kept is None:
        return warning(f"the binary log retention cannot be read here; a task {why} needs {_duration(need)}",
                       "make sure the binlog service keeps binary logs that long (OceanBase Binlog Service: "
                       "its binlog_expire_logs_seconds)")
    if kept == math.inf:
        return passed("binary logs are not purged by age (expiry settings are 0)")
    if kept < need:
        return failed(f"binary logs are kept {_duration(kept)}; a task {why} needs at least {_duration(need)}, "
                      "or a resume may find its position purged",
                      f"SET GLOBAL {setting} (and in the server's configuration); skippable at your risk")
    return passed(f"binary logs are kept {_duration(kept)} (at least {_duration(need)} needed {why})")
