"""The precheck's pure rules (unit-tested without servers): grants and binlog retention.

`parse_grants` reads `SHOW GRANTS` (MySQL, MariaDB, OceanBase) and `Grants.has` knows which privileges imply
which; `replication_privileges` names those a binlog reader needs on each server; `retention_seconds` reads
the expiry settings. Which names are refused (OMS's rule for tables and columns, Kafka's for topics) is
`obsync.task.naming`'s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from obsync.connectors.mysql.connection import Dialect

__all__ = ["HOUR", "Grants", "parse_grants", "replication_privileges", "retention_seconds"]

HOUR = 3600


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
