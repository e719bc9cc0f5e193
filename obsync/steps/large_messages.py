"""Messages larger than the broker accepts: the task's `large_messages` policy, applied where records are built.

A record is too large when key + value + the sink's headers + `RECORD_OVERHEAD` (record-batch framing) exceed
the topic's limit: the smaller of its `max.message.bytes` (read with DescribeConfigs) and the producer's
`message.max.bytes` (`obsync.connectors.kafka.topics.MessageLimits`). obsync checks this itself before
producing, because some brokers (tansu) do not enforce the topic's setting. Policies:

- `fail`: stop with a `SinkError` naming the table, key, position, size and limit, and how to go on.
- `key_only`: the change encoded with only its key columns (the message key unchanged), with a marker.
- `truncate`: the largest text/blob columns (never key columns) cut until the message fits, with a marker
  listing each cut column's original length (characters for text, bytes for binary).
- `dead_letter`: the whole encoded value split into parts in the dead-letter topic, and a pointer (the key-only
  message with a marker naming the parts) in the data topic.

The decision is made here, where the router builds records, not in the Kafka sink: `key_only` and `truncate`
encode the change again (the sink sees only bytes), and the router numbers every record of a change with `seq`,
so dead-letter parts and the pointer are deduplicated on resume by the sink like any other record.

The marker: a header "obsync.large" (JSON) on every message a policy changed, in every format; in JSON formats
(the value starts with `{`) also a first field `"_obsync_large"` with the same object. A message that fits is
never touched, so normal message bytes are unchanged. Dead-letter parts and pointers carry the change's position
and consecutive `seq` numbers like any record, so the sink's per-position deduplication keeps a resumed task
from writing a part twice. The layout a consumer reassembles is in docs/formats/README.md, "Large messages".
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal, NamedTuple

from obsync.core.changes import Change
from obsync.core.errors import SinkError
from obsync.core.positions import position_to_header
from obsync.core.schema import TableSchema
from obsync.formats.base import Encoder, KafkaRecord
from obsync.steps.partitioning import hash_partition

Policy = Literal["fail", "key_only", "truncate", "dead_letter"]
POLICIES: tuple[str, ...] = ("fail", "key_only", "truncate", "dead_letter")

MARKER_FIELD = "_obsync_large"
MARKER_HEADER = "obsync.large"
PART_ID_HEADER = "obsync.large.id"
PART_HEADER = "obsync.large.part"
PARTS_HEADER = "obsync.large.parts"
# record-batch header (61 bytes), the record's varints and the sink's headers besides the position
RECORD_OVERHEAD = 300
_POS_ALLOWANCE = 1024  # the position header is measured exactly only for records this close to the limit

Header = tuple[str, bytes]
log = logging.getLogger(__name__)


class Emitted(NamedTuple):
    """A record a policy produced (partition None: the router chooses it, as for the change's own record)."""

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] | None


def record_size(key: bytes | None, value: bytes | None, pos_header: bytes, headers: tuple[Header, ...] = ()) -> int:
    """The bytes a record counts against a topic's limit (see the module's docstring)."""
    return (len(key or b"") + len(value or b"") + len(pos_header) + RECORD_OVERHEAD
            + sum(len(k) + len(v) for k, v in headers))


def with_marker(value: bytes | None, marker: dict[str, Any]) -> bytes | None:
    """`value` with the marker as its first field if it is a JSON object; any other value is left as is."""
    if value is None or value[:1] != b"{":
        return value
    rest = value[1:]
    head = b'{"' + MARKER_FIELD.encode() + b'":' + _json(marker)
    return head + (rest if rest.lstrip()[:1] == b"}" else b"," + rest)


def split_parts(value: bytes, part_size: int) -> list[bytes]:
    """`value` cut into parts of `part_size` bytes (the last shorter); concatenated in order they give it back."""
    if part_size <= 0:
        raise ValueError("part size must be positive")
    return [value[i:i + part_size] for i in range(0, len(value), part_size)] or [b""]


def key_only_change(change: Change) -> Change:
    """`change` restricted to its key columns (identity and message key); a keyless table keeps no column."""
    table = change.table
    assert table is not None
    keep = set(table.key_columns) | set(table.message_key_columns)
    cols = tuple(c for c in table.columns if c.name in keep)
    schema = replace(table, columns=cols, unique_keys=tuple(u for u in table.unique_keys if set(u) <= keep),
                     _by_name={})

    def img(row: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if row is None else {c.name: row[c.name] for c in cols}

    return replace(change, table=schema, before=img(change.before), after=img(change.after))


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _cuttable(table: TableSchema, change: Change) -> list[tuple[str, str, int]]:
    """(image, column, length) of every non-key text/blob value, the largest first."""
    keys = set(table.key_columns) | set(table.message_key_columns)
    out = []
    for image in ("before", "after"):
        row = getattr(change, image)
        if row is None:
            continue
        for name, v in row.items():
            if name not in keys and isinstance(v, (str, bytes)) and v:
                out.append((image, name, len(v)))
    out.sort(key=lambda u: -u[2])
    return out


def _cut(change: Change, cuts: dict[tuple[str, str], int]) -> Change:
    images: dict[str, Any] = {}
    for image in ("before", "after"):
        row = getattr(change, image)
        if row is not None and any(i == image for i, _ in cuts):
            row = dict(row)
            for (i, name), n in cuts.items():
                if i == image:
                    row[name] = row[name][:n]
        images[image] = row
    return replace(change, **images)


class LargeMessages:
    """Applies the policy to a change's record in `topic` that is larger than `limit_of(topic)`.

    `on_large(table, policy)` is called once per message handled (metrics); `partitions_of(topic)` gives the
    dead-letter topic's partition count.
    """

    def __init__(self, policy: Policy, encoder: Encoder, limit_of: Callable[[str], int],
                 dead_letter_topic: str | None = None, partitions_of: Callable[[str], int] | None = None,
                 on_large: Callable[[str, str], None] | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"large_messages: unknown policy {policy!r}; valid: {', '.join(POLICIES)}")
        if policy == "dead_letter" and (dead_letter_topic is None or partitions_of is None):
            raise ValueError("the dead_letter policy needs a dead-letter topic")
        self.policy = policy
        self.encoder = encoder
        self.limit_of = limit_of
        self.dead_letter_topic = dead_letter_topic
        self.partitions_of = partitions_of
        self.on_large = on_large or (lambda table, policy: None)

    def room(self, topic: str) -> int:
        """Key plus value bytes that fit in `topic` whatever the position header (larger ones: ask `fits`)."""
        return self.limit_of(topic) - RECORD_OVERHEAD - _POS_ALLOWANCE

    def fits(self, rec: KafkaRecord, change: Change) -> bool:
        limit = self.limit_of(rec.topic)
        n = len(rec.key or b"") + len(rec.value or b"") + RECORD_OVERHEAD
        if n + _POS_ALLOWANCE <= limit:
            return True
        return n + len(position_to_header(change.position)) <= limit

    def handle(self, change: Change, topic: str, partition: int, rec: KafkaRecord, index: int,
               seq: int) -> list[Emitted]:
        """The records that replace `rec` (the `index`-th record of `change`'s encoding, to be written with
        `seq`), which does not fit; raises SinkError under `fail` or when nothing fits."""
        table = change.table
        assert table is not None
        pos_header = position_to_header(change.position)
        limit = self.limit_of(topic)
        size = record_size(rec.key, rec.value, pos_header)
        self.on_large(table.full_name, self.policy)
        if self.policy != "fail":
            log.warning("%s at %s: a message of %d bytes for topic %s, which accepts %d; sent under large_messages: "
                        "%s", table.full_name, change.position, size, topic, limit, self.policy)
        base = {"policy": self.policy, "size": size, "limit": limit}
        if self.policy == "fail":
            raise self._error(change, topic, size, limit, "")
        if self.policy == "key_only":
            return [self._fitting(change, topic, rec, pos_header, limit, self._key_only(change, topic, rec, index),
                                  base, size)]
        if self.policy == "truncate":
            return [self._truncate(change, topic, rec, index, pos_header, limit, base, size)]
        return self._dead_letter(change, topic, partition, rec, index, seq, pos_header, limit, base, size)

    # -- policies ------------------------------------------------------------------------------------------

    def _encode_like(self, change: Change, topic: str, rec: KafkaRecord, index: int) -> bytes | None:
        """The value `change` encodes to in the place of `rec` (the `index`-th record)."""
        records = self.encoder.encode(change, topic)
        if index < len(records) and records[index].topic == topic:
            return records[index].value
        same = [r for r in records if r.topic == topic and r.value is not None]
        return same[0].value if same else None

    def _key_only(self, change: Change, topic: str, rec: KafkaRecord, index: int) -> bytes | None:
        return self._encode_like(key_only_change(change), topic, rec, index)

    def _marked(self, value: bytes | None, marker: dict[str, Any]) -> tuple[bytes | None, tuple[Header, ...]]:
        return with_marker(value, marker), ((MARKER_HEADER, _json(marker)),)

    def _fitting(self, change: Change, topic: str, rec: KafkaRecord, pos_header: bytes, limit: int,
                 value: bytes | None, marker: dict[str, Any], size: int) -> Emitted:
        marked, headers = self._marked(value, marker)
        if record_size(rec.key, marked, pos_header, headers) > limit:
            raise self._error(change, topic, size, limit, f" and its {self.policy} message does not fit either")
        return Emitted(topic, None, rec.key, marked, headers)

    def _truncate(self, change: Change, topic: str, rec: KafkaRecord, index: int, pos_header: bytes, limit: int,
                  base: dict[str, Any], size: int) -> Emitted:
        table = change.table
        assert table is not None
        cuts: dict[tuple[str, str], int] = {}
        columns: dict[str, int] = {}

        def attempt(extra: dict[tuple[str, str], int]) -> tuple[Emitted, bool]:
            trial = {**cuts, **extra}
            cols = dict(columns)
            for (image, name), _n in trial.items():
                orig = getattr(change, image)[name]
                cols[name] = max(cols.get(name, 0), len(orig))
            value = self._encode_like(_cut(change, trial), topic, rec, index)
            marked, headers = self._marked(value, {**base, "columns": cols})
            return (Emitted(topic, None, rec.key, marked, headers),
                    record_size(rec.key, marked, pos_header, headers) <= limit)

        for image, name, length in _cuttable(table, change):
            out, ok = attempt({(image, name): 0})
            if not ok:
                cuts[(image, name)] = 0
                columns[name] = max(columns.get(name, 0), length)
                continue
            lo, hi = 0, length  # the longest prefix that fits: lo fits, hi is the original (does not)
            best = out
            while hi - lo > 1:
                mid = (lo + hi) // 2
                trial, ok = attempt({(image, name): mid})
                if ok:
                    lo, best = mid, trial
                else:
                    hi = mid
            return best
        raise self._error(change, topic, size, limit, " and cutting every text/blob column does not make it fit")

    def _dead_letter(self, change: Change, topic: str, partition: int, rec: KafkaRecord, index: int, seq: int,
                     pos_header: bytes, limit: int, base: dict[str, Any], size: int) -> list[Emitted]:
        dl = self.dead_letter_topic
        assert dl is not None and self.partitions_of is not None
        value = rec.value or b""
        msg_id = b"%s/%d/%s/%d" % (topic.encode(), partition, pos_header, seq)
        part_headers = len(PART_ID_HEADER) + len(msg_id) + len(PART_HEADER) + len(PARTS_HEADER) + 24
        part_size = self.limit_of(dl) - record_size(msg_id, b"", pos_header) - part_headers
        if part_size < 1024:
            raise self._error(change, topic, size, limit, f" and dead-letter topic {dl!r} accepts too little")
        parts = split_parts(value, part_size)
        n = len(parts)
        dl_partition = hash_partition(msg_id, self.partitions_of(dl))
        out = [Emitted(dl, dl_partition, msg_id, part, ((PART_ID_HEADER, msg_id), (PART_HEADER, b"%d" % i),
                                                        (PARTS_HEADER, b"%d" % n)))
               for i, part in enumerate(parts)]
        marker = {**base, "topic": dl, "id": msg_id.decode(), "parts": n, "bytes": len(value),
                  "sha256": hashlib.sha256(value).hexdigest()}
        out.append(self._fitting(change, topic, rec, pos_header, limit, self._key_only(change, topic, rec, index),
                                 marker, size))
        return out

    def _error(self, change: Change, topic: str, size: int, limit: int, why: str) -> SinkError:
        table = change.table
        assert table is not None
        key = change.key()
        key_text = (", ".join(f"{c}={v!r}" for c, v in zip(table.key_columns, key, strict=True))
                    if key is not None else "none (the table has no key)")
        return SinkError(
            f"the {change.op.value} of {table.full_name} (key {key_text}) at position {change.position} encodes to "
            f"{size} bytes, more than the {limit} bytes topic {topic!r} accepts (the smaller of its "
            f"max.message.bytes and the producer's message.max.bytes){why}. To go on: raise the topic's "
            "max.message.bytes (and target.properties message.max.bytes), or set `large_messages:` to key_only, "
            "truncate or dead_letter; then start the task again (it resumes at this change)")
