"""Messages a broker acknowledged without keeping, and how a resumed lane writes them again in order.

When a lane finds, before its snapshot, that Kafka lacks messages it acknowledged (`sink._Lane.verify`), the
task restarts and replays from the last snapshot. The lane's usual rule, drop what is at or before the last
position Kafka holds of its stream, would drop the missing messages too (later messages of the stream are in
Kafka), so the loss is noted in the state directory (`GapFile`, `kafka-gaps.json`) before the task fails,
and the resumed lane of that partition follows `Redo`: write the missing messages; skip those Kafka holds;
but write again the messages Kafka holds of a message key (in the same stream) after its first missing one,
so that a consumer still sees each key's changes in order (a DELETE rewritten after the INSERT that followed
it would otherwise undo the INSERT); anything else as usual. A note applies to a resume from the snapshot it
was made after (`Gap.since`, that snapshot's offset) and is dropped otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsync.core.positions import Position, position_from_json
from obsync.task.state import write_json_atomic

log = logging.getLogger(__name__)

GAPS_FILE = "kafka-gaps.json"
_LOCK = threading.Lock()  # lanes in several worker threads read and rewrite the one file

Held = tuple[str, tuple, int]  # (stream, position sort key, seq) of a message


@dataclass(frozen=True)
class Gap:
    """Messages of one partition acknowledged but not kept: (position, seq, key) each; `since`: the offset of
    the snapshot the task resumes from."""

    since: int
    missing: tuple[tuple[Position, int, bytes | None], ...]

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since,
                "missing": [[p.to_json(), seq, None if key is None else key.hex()] for p, seq, key in self.missing]}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Gap:
        return Gap(int(data["since"]), tuple((position_from_json(p), int(seq), None if k is None else bytes.fromhex(k))
                                             for p, seq, k in data["missing"]))


class GapFile:
    """The notes of one state directory, by partition name (`records.part_name`); no file: no notes. Written
    atomically; a note is merged with one of the same `since` (a second failure before a snapshot)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            log.warning("cannot read %s (%s): resuming without it", self.path, e)
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        assert self.path is not None
        if data:
            write_json_atomic(self.path, data)
        elif self.path.exists():
            self.path.unlink()

    def record(self, part: str, gap: Gap) -> None:
        if self.path is None:
            return
        with _LOCK:
            self._record(part, gap)

    def _record(self, part: str, gap: Gap) -> None:
        data = self._read()
        old = data.get(part)
        if old is not None and int(old.get("since", -1)) == gap.since:
            known = Gap.from_json(old).missing
            gap = Gap(gap.since, known + tuple(m for m in gap.missing if m not in known))
        data[part] = gap.to_json()
        self._write(data)

    def take(self, part: str, since: int) -> Gap | None:
        """The note of `part` for a resume from offset `since`; a note made after another snapshot is dropped."""
        with _LOCK:
            return self._take(part, since)

    def _take(self, part: str, since: int) -> Gap | None:
        data = self._read()
        note = data.get(part)
        if note is None:
            return None
        try:
            gap = Gap.from_json(note)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("%s: ignoring the damaged note of %s (%s)", self.path, part, e)
            gap = None
        if gap is None or gap.since != since:
            del data[part]
            self._write(data)
            return None
        return gap


class Redo:
    """How the resumed lane of a partition treats a replayed message (see the module docstring); `held`: the
    messages Kafka holds from `Gap.since` on."""

    def __init__(self, gap: Gap, held: set[Held]) -> None:
        self.held = held
        self.missing = {(p.stream, p.sort_key, seq) for p, seq, _ in gap.missing}
        self.first: dict[tuple[str, bytes], tuple] = {}  # (stream, key) -> (sort key, seq) of its first missing
        for p, seq, key in gap.missing:
            if key is not None:
                k = (p.stream, key)
                here = (p.sort_key, seq)
                if k not in self.first or here < self.first[k]:
                    self.first[k] = here
        self.rewritten = 0  # messages Kafka holds written again (after a missing one of their key)
        self.ends: dict[str, tuple] = {}  # stream -> (sort key, seq) of its last message held or missing
        for stream, sort_key, seq in (*held, *self.missing):
            here = (sort_key, seq)
            if stream not in self.ends or here > self.ends[stream]:
                self.ends[stream] = here

    def pending(self, last: dict[str, tuple[tuple, Any]]) -> bool:
        """True until the replay reached the last message held or missing of each stream (`last`: the lane's
        `_Written.last`, stream -> ((sort key, seq), position))."""
        return any(stream not in last or last[stream][0] < end for stream, end in self.ends.items())

    def verdict(self, pos: Position, seq: int, key: bytes | None) -> bool | None:
        """True: Kafka holds it, skip; False: write it; None: the usual rule (Kafka holds nothing past it)."""
        here = (pos.stream, pos.sort_key, seq)
        if here in self.missing:
            return False
        if key is not None:
            first = self.first.get((pos.stream, key))
            if first is not None and (pos.sort_key, seq) > first:
                if here in self.held:
                    self.rewritten += 1
                return False
        if here in self.held:
            return True
        return None
