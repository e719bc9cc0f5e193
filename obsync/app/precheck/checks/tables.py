"""The checks of the tables a task selects: `tables.*` (exist, physical, names, unique key, generated columns)."""

from __future__ import annotations

from obsync.app.precheck.items import Item, failed, listed, passed, warning
from obsync.app.precheck.probe import Probe, exists_hidden, needs_log
from obsync.task.naming import oms_name_problem

__all__ = ["check_tables_exist", "check_tables_generated_columns", "check_tables_names", "check_tables_physical",
           "check_tables_unique_key"]


def check_tables_exist(p: Probe) -> Item:
    missing = []
    for name, t in p.tables().items():
        if t.kind is not None:
            continue
        missing.append(f"table {name} " + ("is not visible to the user (no privilege on it)" if exists_hidden(p, name)
                                           else "does not exist on the source"))
    if missing:
        return failed("; ".join(dict.fromkeys(missing)),
                      "create it, correct objects[].match, or grant the user SELECT on it")
    found = sum(1 for t in p.tables().values() if t.kind is not None)
    unmatched = [o.match for i, o in enumerate(p.task.objects)
                 if not o.is_exact and not any(t.index == i for t in p.tables().values())]
    if unmatched:
        return warning(f"{found} tables selected; no table matches {listed(unmatched)} yet (tables created "
                       "later that match will sync)", "check the patterns (obsync objects TASK lists the tables)")
    return passed(f"all {found} tables are there")


def check_tables_physical(p: Probe) -> Item:
    tables = p.tables()
    other = [f"{m} is a {t.kind.lower()}" for m, t in tables.items() if t.kind not in (None, "BASE TABLE")]
    exact = [m for m, t in tables.items() if t.kind not in (None, "BASE TABLE") and t.exact(p.task)]
    if exact:
        return failed("; ".join(other) + "; only physical tables can be synchronized",
                      "select the underlying tables instead")
    if other:
        return warning("; ".join(other) + ": matched by a pattern, skipped (only physical tables sync)",
                       "add them to `exclude:` to silence this")
    return passed("every object that exists is a physical table")


def check_tables_names(p: Probe) -> Item:
    problems: list[str] = []
    for full, t in p.tables().items():
        for what, name in zip(("database", "table"), full.split("."), strict=False):
            if (why := oms_name_problem(name)) is not None:
                problems.append(f"{what} {name!r} has {why}")
        for col in t.schema.columns if t.schema is not None else ():
            if (why := oms_name_problem(col.name)) is not None:
                problems.append(f"column {full}.{col.name!r} has {why}")
    problems = list(dict.fromkeys(problems))
    if problems:
        return failed("unsupported names: " + listed(problems),
                      "rename them to ASCII letters, digits, '_' and '$', or leave them out of the task; "
                      "skippable: obsync quotes every name, but consumers that follow OMS's rules may refuse them")
    return passed("database, table and column names are ASCII letters, digits, '_' and '$'")


def check_tables_unique_key(p: Probe) -> Item:
    keyless = [s.full_name for s in p.schemas() if not s.key_columns]
    if keyless:
        return warning(f"no primary key and no non-null unique key: {listed(keyless)}; rows of a table without "
                       "a key cannot be told apart; updates may be duplicated",
                       "add a primary key (or a unique key on NOT NULL columns), or set the object's "
                       "sharding_columns")
    return passed("every table has a primary key or a non-null unique key")


def check_tables_generated_columns(p: Probe) -> Item:
    needs_log(p)
    virtual = [f"{s.full_name}.{c.name}" for s in p.schemas() for c in s.columns if c.generated == "VIRTUAL"]
    if not virtual:
        return passed("no VIRTUAL generated columns")
    if p.dialect == "oceanbase":
        return warning(f"OceanBase 4.x writes only STORED generated columns to its log; these VIRTUAL ones will "
                       f"be missing from incremental changes: {listed(virtual)}",
                       "make them STORED (ALTER TABLE ... MODIFY col ... AS (...) STORED), or accept that "
                       "incremental sync cannot carry them")
    return passed(f"VIRTUAL generated columns {listed(virtual)}: {p.dialect} writes their values in row events")
