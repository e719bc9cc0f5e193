"""Byte sizes and byte rates as the task file writes them: a number, or a number with a unit.

`parse_bytes` reads `limits.*.bps`, `resources.full.memory` and `resources.incremental.log_memory`: B,
KB/MB/GB (powers of 1000), KiB/MiB/GiB (powers of 1024), case-insensitive, optionally followed by "/s".
Anything else raises ValueError with the accepted forms.
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*(?:/s)?\s*$")


def parse_bytes(v: str | float | int) -> float:
    """A byte rate: a number, or a number with a unit (case-insensitive): B, KB/MB/GB (powers of 1000),
    KiB/MiB/GiB (powers of 1024), optionally followed by "/s": "10MB", "512KiB", "1.5 MB/s"."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    m = _SIZE.match(str(v))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(f"not a byte rate: {v!r}; write a number of bytes per second or one with a unit: "
                         "B, KB, MB, GB (x1000), KiB, MiB, GiB (x1024), e.g. 10MB or 512KiB")
    return float(m.group(1)) * _UNITS[unit]
