"""The `compatible` schema-change policy's pure part: the smallest change to a new Avro value schema that a
subject's compatibility level accepts after its latest version (docs/schema-changes.md).

`compatible_shape(old, new, level)` walks the records of `new` that `old` has too (by full name: the
`...Value` record of a table, in `before` and `after`) and, field by field, under Avro's resolution rules as
Confluent's registry applies them (BACKWARD: the new schema reads data written with the old one; FORWARD: the
old one reads data written with the new one; FULL: both; NONE: anything; a `_TRANSITIVE` level is checked here
against the latest version only, and the registry then judges it against them all):

- a field the old schema lacks and that has no default (a column added, renamed, or NOT NULL without a
  default) becomes optional with default null (BACKWARD, FULL);
- a field that became required (a column made NOT NULL) stays optional (BACKWARD, FULL);
- a field whose type became narrower (BIGINT -> INT, DOUBLE -> FLOAT) keeps the wider old type, which holds
  every new value (BACKWARD, FULL);
- what no shape can mend is listed as a problem: under FORWARD or FULL, a required field dropped (the old
  readers have no value for it), a field widened (INT -> BIGINT: old readers cannot read the new values), a
  required field made optional (old readers cannot read null), and under any level a type change that is no
  Avro promotion (INT -> VARCHAR).

Values need no change for the mended shape: an optional field takes the same values, and a wider type holds
the narrower one's (fastavro writes int into long, float into double).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

PROMOTIONS = {"int": ("long", "float", "double"), "long": ("float", "double"), "float": ("double",),
              "string": ("bytes",), "bytes": ("string",)}
LEVELS = ("NONE", "BACKWARD", "FORWARD", "FULL")


@dataclass
class Adjusted:
    """The shape to register, what was changed to get it (`notes`), and what no change could mend."""

    schema: Any
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def base_level(level: str) -> str:
    """NONE, BACKWARD, FORWARD or FULL for a registry level (`_TRANSITIVE` dropped; unknown: BACKWARD, the
    registry's default)."""
    b = level.upper().removesuffix("_TRANSITIVE")
    return b if b in LEVELS else "BACKWARD"


def compatible_shape(old: Any, new: Any, level: str) -> Adjusted:
    """`new` changed as little as it takes for `level` to accept it after `old` (see the module docstring)."""
    lv = base_level(level)
    out = Adjusted(copy.deepcopy(new))
    if lv == "NONE":
        return out
    backward, forward = lv in ("BACKWARD", "FULL"), lv in ("FORWARD", "FULL")
    old_records = _records(old, "")
    for full, rec in _records(out.schema, "").items():
        was = old_records.get(full)
        if was is not None:
            _fields(full, was, rec, backward, forward, out)
    return out


def _records(s: Any, ns: str, found: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Every record definition in `s` by full name."""
    found = {} if found is None else found
    if isinstance(s, list):
        for b in s:
            _records(b, ns, found)
    elif isinstance(s, dict):
        kind = s.get("type")
        if kind in ("record", "error"):
            name = s["name"]
            full = name if "." in name or not s.get("namespace", ns) else f"{s.get('namespace', ns)}.{name}"
            found.setdefault(full, s)
            for f in s["fields"]:
                _records(f["type"], full.rpartition(".")[0], found)
        elif kind == "array":
            _records(s["items"], ns, found)
        elif kind == "map":
            _records(s["values"], ns, found)
        elif isinstance(kind, (dict, list)):
            _records(kind, ns, found)
    return found


def _split(t: Any) -> tuple[bool, Any]:
    """(optional, the non-null type) of a field type."""
    if isinstance(t, list):
        rest = [b for b in t if b != "null"]
        return len(rest) < len(t), rest[0] if len(rest) == 1 else rest
    return False, t


def _name(t: Any) -> str:
    """The Avro type name of a non-union type (a logical type's underlying one)."""
    if isinstance(t, dict):
        return _name(t["type"]) if t["type"] not in ("record", "error", "enum", "fixed", "array", "map") \
            else str(t.get("name", t["type"]))
    return str(t) if not isinstance(t, list) else "union"


def _logical(t: Any) -> Any:
    return t.get("logicalType") if isinstance(t, dict) else None


def _optional(t: Any) -> list[Any]:
    return ["null", *(t if isinstance(t, list) else [t])]


def _fields(record: str, old: dict[str, Any], new: dict[str, Any], backward: bool, forward: bool,
            out: Adjusted) -> None:
    old_fields = {f["name"]: f for f in old["fields"]}
    for f in old["fields"]:
        for a in f.get("aliases", ()):
            old_fields.setdefault(a, f)
    new_names = {f["name"] for f in new["fields"]} | {a for f in new["fields"] for a in f.get("aliases", ())}
    where = record.rpartition(".")[2]
    for f in new["fields"]:
        name = f["name"]
        was = old_fields.get(name)
        if was is None:
            if backward and "default" not in f:
                f["type"], f["default"] = _optional(f["type"]), None
                out.notes.append(f"{where}.{name}: new and required without a default; registered as optional "
                                 "with default null")
            continue
        old_opt, old_t = _split(was["type"])
        new_opt, new_t = _split(f["type"])
        on, nn = _name(old_t), _name(new_t)
        same = on == nn and _logical(old_t) == _logical(new_t) and \
            (not isinstance(old_t, dict) or old_t.get("scale") == new_t.get("scale"))
        if not same:
            if isinstance(old_t, list) or isinstance(new_t, list) or on in ("record", "enum", "fixed"):
                out.problems.append(f"{where}.{name}: type changed from {old_t} to {new_t}")
            elif _logical(old_t) != _logical(new_t) or nn not in PROMOTIONS and on not in PROMOTIONS:
                out.problems.append(f"{where}.{name}: type changed from {_show(old_t)} to {_show(new_t)}, which "
                                    "is no Avro promotion")
            elif on in PROMOTIONS.get(nn, ()):  # narrowed: the old, wider type holds every new value
                if backward:
                    f["type"] = _optional(old_t) if new_opt else copy.deepcopy(old_t)
                    out.notes.append(f"{where}.{name}: type narrowed from {on} to {nn}; registered as {on}")
            elif nn in PROMOTIONS.get(on, ()):  # widened: old readers cannot read the new values
                if forward:
                    out.problems.append(f"{where}.{name}: type widened from {on} to {nn}; readers of the old "
                                        f"schema cannot read {nn} values")
            else:
                out.problems.append(f"{where}.{name}: type changed from {on} to {nn}, which is no Avro promotion")
        if old_opt and not new_opt:
            if backward:
                f["type"] = _optional(f["type"])
                f.setdefault("default", None)
                out.notes.append(f"{where}.{name}: became required; registered as optional (default null)")
        elif new_opt and not old_opt and forward:
            out.problems.append(f"{where}.{name}: became optional; readers of the old schema cannot read null")
    if forward:
        for f in old["fields"]:
            if f["name"] not in new_names and "default" not in f:
                out.problems.append(f"{where}.{f['name']}: dropped, and readers of the old schema need it (it "
                                    "has no default)")


def _show(t: Any) -> str:
    logical = _logical(t)
    return f"{_name(t)} ({logical})" if logical else _name(t)
