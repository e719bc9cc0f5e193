"""Threads named for the operating system too.

A thread started from Python keeps the name the kernel gave the thread that started it: `python`, or
`timely:work-0` when a Bytewax worker starts it (the log reader is). `NamedThread` gives the kernel the thread's
own name as it starts (Linux: `prctl(PR_SET_NAME)`, its first 15 bytes), so `top -H`, `ps -L`, py-spy and
/proc/PID/task/TID/comm tell obsync's threads apart from the engine's and librdkafka's (`rdk:broker1`, ...).
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

_PR_SET_NAME = 15
_NAME_BYTES = 15  # the kernel keeps 16 bytes, the last a NUL
_libc: Any = None


def set_native_name(name: str) -> None:
    """Name the calling thread for the kernel (its first 15 bytes of UTF-8); nothing where that is not
    supported (not Linux)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:_NAME_BYTES]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class NamedThread(threading.Thread):
    """A `threading.Thread` that names itself for the kernel (`set_native_name`) before running its target."""

    def run(self) -> None:
        set_native_name(self.name)
        super().run()
