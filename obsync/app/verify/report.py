"""The report of `obsync verify`, as text (for people) and JSON (`--json`, `--report FILE`)."""

from __future__ import annotations

import json
from typing import Any

from obsync.app.verify.command import TableResult, VerifyReport
from obsync.app.verify.compare import Difference


def _j(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))


def _where(d: Difference) -> str:
    if d.partition is None:
        return ""
    return f" (last message: partition {d.partition} offset {d.offset}, position {_j(d.position)})"


def _difference(d: Difference) -> list[str]:
    copies = f" x{d.count}" if d.count != 1 else ""
    if d.kind == "missing":
        return [f"  missing in Kafka{copies}: {_j(d.key)}" + ("" if d.source is None else f" source {_j(d.source)}")
                + _where(d)]
    if d.kind == "extra":
        return [f"  extra in Kafka{copies}: {_j(d.key)}" + ("" if d.kafka is None else f" kafka {_j(d.kafka)}")
                + _where(d)]
    lines = [f"  different: {_j(d.key)}{_where(d)}"]
    lines += [f"    {c}: source {_j(v['source'])}, kafka {_j(v['kafka'])}" for c, v in d.columns.items()]
    return lines


def _table(t: TableResult) -> list[str]:
    how = "" if t.keyed else " (no key: compared as a multiset of rows)"
    head = (f"{t.table} -> {', '.join(t.topics)}{how}: {t.rows_compared:,} rows compared, "
            f"{t.messages_read:,} messages read: ")
    if t.matches:
        return [head + "match", *(f"  note: {n}" for n in t.notes)]
    lines = [head + f"{t.missing:,} missing in Kafka, {t.extra:,} extra in Kafka, {t.different:,} different"]
    for d in t.differences:
        lines += _difference(d)
    total = t.missing + t.extra + t.different
    if len(t.differences) < total and t.keyed:
        lines.append(f"  ... {total - len(t.differences):,} more (--max-differences)")
    lines += [f"  note: {n}" for n in t.notes]
    return lines


def text(report: VerifyReport) -> str:
    cut = report.cut
    at = "" if cut is None else f" at {cut['file']}:{cut['pos']}" + ("" if cut["exact"] else " (not exact)")
    if report.scn is not None:
        at = f" AS OF SNAPSHOT {report.scn} (topics read to their end)"
    lines = [f"verify {report.task}: source {report.source}{at}"]
    for t in report.tables:
        lines += _table(t)
    bad = sum(not t.matches for t in report.tables)
    n = len(report.tables)
    verdict = f"all {n} tables match" if not bad else f"{bad} of {n} tables differ"
    lines.append(f"result: {verdict} ({report.seconds:.1f} s)")
    return "\n".join(lines)


def as_json(report: VerifyReport) -> str:
    return json.dumps(report.to_json(), ensure_ascii=False, indent=1)
