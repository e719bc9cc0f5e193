"""Topic and name rules, in one place: which topic each table goes to, and which names are valid.

Like Debezium's `TopicNamingStrategy`, one module decides every topic name obsync writes:

- a table's data topic (`topic_for`): the object's `existing_topic` (never created, must exist), else its `topic`,
  else the task's `topic`; `topic` is a fixed name or a template with `${database}` and `${table}`
  (`check_topic_template`), filled in per table (`render_topic`). `topic_kind` says which of the three it is;
- topics a format owns (a schema-change topic, a schema topic): named by the format from its options and listed
  by its `Encoder.extra_topics()`; this module says whether such a name is valid (`topic_problem`) and makes
  text safe in one (`topic_safe`).

Names, each rule under its own name:
- `topic_problem`: why Kafka refuses a topic name (1-249 of letters, digits, '.', '_', '-'; not '.' or '..');
- `table_name_problem`: why obsync cannot carry a database or table name (the selection refuses it);
- `oms_name_problem`: why OMS's stricter rule (ASCII letters, digits, '_', '$') refuses a database, table or
  column name (a precheck item: obsync carries such names, some consumers may not).

Engine-, server- and task-file-free: the task file (`obsync.task.config`) and the formats use it alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, Protocol

TopicKind = Literal["generated", "fixed", "existing"]
TEMPLATE_VARS = ("database", "table")

_TEMPLATE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FIXED_TOPIC = re.compile(r"^[A-Za-z0-9_-]{3,64}$")
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_NOT_TOPIC_CHAR = re.compile(r"[^A-Za-z0-9._-]")
_TABLE_NAME_FORBIDDEN = frozenset(' .|"\'\\`()=;/&\n\r\t')
_CHAR_NAMES = {" ": "a space", "\n": "a line break", "\r": "a carriage return", "\t": "a tab"}


class TopicRule(Protocol):
    """What an `objects:` entry says about its topic (`obsync.task.config.ObjectConfig`)."""

    @property
    def topic(self) -> str | None: ...

    @property
    def existing_topic(self) -> str | None: ...


# ------------------------------------------------------------------------------------------- topics


def check_topic_template(v: str) -> str:
    """A fixed topic name (3-64 letters, digits, '-', '_') or a template using ${database} / ${table}."""
    for var in _TEMPLATE_VAR.findall(v):
        if var not in TEMPLATE_VARS:
            raise ValueError(f"unknown variable ${{{var}}}; valid: ${{database}}, ${{table}}")
    if "${" not in v and not _FIXED_TOPIC.match(v):
        raise ValueError("a fixed topic name must be 3-64 characters of letters, digits, '-', '_'")
    if "${" in v and (why := topic_problem(_TEMPLATE_VAR.sub("x", v))) is not None:
        raise ValueError(f"the template's own text gives no valid Kafka topic name ({why}); a topic name is "
                         "1-249 characters of letters, digits, '.', '-', '_'")
    return v


def check_existing_topic(v: str) -> str:
    """A topic name Kafka accepts (an `existing_topic` is used as written)."""
    if topic_problem(v) is not None:
        raise ValueError("a Kafka topic name is 1-249 characters of letters, digits, '.', '-', '_'")
    return v


def render_topic(template: str, db: str, table: str) -> str:
    """A topic template with the table's names filled in."""
    return template.replace("${database}", db).replace("${table}", table)


def topic_template(default: str, rule: TopicRule | None = None) -> str:
    """The topic an object names, as written: its `existing_topic`, else its `topic`, else the task's `default`
    (a template for tables matched by a pattern)."""
    if rule is not None:
        if rule.existing_topic is not None:
            return rule.existing_topic
        if rule.topic is not None:
            return rule.topic
    return default


def topic_for(default: str, db: str, table: str, rule: TopicRule | None = None) -> str:
    """The Kafka topic of table `db.table` selected by `rule` (the object's topic, else the task's `default`)."""
    if rule is not None and rule.existing_topic is not None:
        return rule.existing_topic
    return render_topic(topic_template(default, rule), db, table)


def topic_kind(default: str, rule: TopicRule) -> TopicKind:
    """`existing` (must exist, never created), `generated` (a template, one topic per table) or `fixed`."""
    if rule.existing_topic is not None:
        return "existing"
    return "generated" if "${" in topic_template(default, rule) else "fixed"


def existing_topics(rules: Sequence[TopicRule]) -> dict[str, str]:
    """The topics the objects say must already exist, each with the first `objects:` entry naming it (for errors)."""
    out: dict[str, str] = {}
    for i, rule in enumerate(rules):
        if rule.existing_topic is not None:
            out.setdefault(rule.existing_topic, f"field `objects.{i}.existing_topic`")
    return out


def topic_problem(name: str) -> str | None:
    """Why Kafka would refuse `name` as a topic name, or None."""
    if name in (".", ".."):
        return "'.' and '..' are not topic names"
    if len(name) > 249:
        return f"{len(name)} characters (at most 249)"
    if not _KAFKA_TOPIC.match(name):
        if not name:
            return "an empty name"
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
        return "characters Kafka refuses: " + ", ".join(_CHAR_NAMES.get(c, repr(c)) for c in bad)
    return None


def topic_safe(text: str) -> str:
    """`text` with every character Kafka refuses in a topic name replaced by `_` (as Debezium's default topic
    naming does for the `<prefix>.<db>.<table>` of its topic and schema names)."""
    return _NOT_TOPIC_CHAR.sub("_", text)


# ------------------------------------------------------------------------------------------- names


def table_name_problem(name: str) -> str | None:
    """Why obsync cannot carry a database or table name (non-ASCII, spaces, ``. | " ' \\ ` ( ) = ; / &``, line
    breaks, other unprintable characters), or None when it can."""
    if not name:
        return "the name is empty"
    if not name.isascii():
        return "it has non-ASCII characters"
    bad = sorted({c for c in name if c in _TABLE_NAME_FORBIDDEN or not c.isprintable()})
    if bad:
        shown = ", ".join({" ": "space", "\n": "line break", "\r": "line break", "\t": "tab"}.get(c, repr(c))
                          for c in bad)
        return f"it contains {shown}"
    return None


def oms_name_problem(name: str) -> str | None:
    """What makes a database, table or column name one OMS does not support (it allows ASCII letters, digits,
    `_`, `$`), or None."""
    bad = [c for i, c in enumerate(name) if not (c.isascii() and (c.isalnum() or c in "_$")) and
           name.index(c) == i]
    if not name:
        return "an empty name"
    if not bad:
        return None
    return ", ".join(_CHAR_NAMES.get(c, repr(c) if c.isascii() else f"non-ASCII {c!r}") for c in bad)
