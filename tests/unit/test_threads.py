"""obsync's threads carry their names to the kernel (`obsync.core.threads`): what `top -H`, `ps -L`, py-spy and
the benches' CPU by thread read."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from obsync.core.threads import NamedThread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names in /proc: Linux")


def _kernel_name() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


def _name_seen_in(name: str, starter: type[threading.Thread] = NamedThread) -> str:
    seen: list[str] = []
    t = starter(target=lambda: seen.append(_kernel_name()), name=name, daemon=True)
    t.start()
    t.join(10)
    return seen[0]


def test_the_kernel_sees_the_threads_own_name_not_the_starters():
    outer: list[str] = []

    def starter() -> None:  # as a Bytewax worker starts the log reader: from a thread the kernel knows by name
        outer.append(_kernel_name())
        outer.append(_name_seen_in("obsync-binlog"))
        outer.append(_name_seen_in("plain", threading.Thread))

    t = NamedThread(target=starter, name="timely:work-0")
    t.start()
    t.join(10)
    assert outer == ["timely:work-0", "obsync-binlog", "timely:work-0"]  # a plain thread inherits its starter's


def test_a_long_name_is_cut_to_the_15_bytes_the_kernel_keeps():
    assert _name_seen_in("obsync-stop-watchdog") == "obsync-stop-wat"
