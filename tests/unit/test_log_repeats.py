"""librdkafka's repeated lines summarised (`obsync.core.repeats.RepeatFilter`): one line per distinct message per
window, the next one saying how many were held back; timings do not make lines distinct."""

from __future__ import annotations

import logging

from obsync.core.repeats import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def refused(ms: int, port: int = 9092) -> logging.LogRecord:
    # as confluent_kafka logs librdkafka's lines: "%s [%s] %s" with (facility, client name, text)
    text = (f"[thrd:127.0.0.1:{port}/bootstrap]: 127.0.0.1:{port}/bootstrap: Connect to ipv4#127.0.0.1:{port} "
            f"failed: Connection refused (after {ms}ms in state CONNECT)")
    return logging.LogRecord("obsync.rdkafka", logging.ERROR, __file__, 1, "%s [%s] %s",
                             ("FAIL", "rdkafka#producer-1", text), None)


def test_repeats_within_the_window_are_held_and_counted_on_the_next_line():
    clock = Clock()
    f = RepeatFilter(30.0, clock)
    first = refused(0)
    assert f.filter(first) and first.getMessage().endswith("(after 0ms in state CONNECT)")
    held = 0
    for i in range(89):  # three a second for 30 s
        clock.now += 0.333
        held += not f.filter(refused(i % 3))
    assert held == 89
    clock.now = 130.5
    nxt = refused(1)
    assert f.filter(nxt)
    assert nxt.getMessage().endswith("Connection refused (after 1ms in state CONNECT) (and 89 more like it in the "
                                     "last 30 s)")
    clock.now += 1
    assert not f.filter(refused(0))


def test_distinct_messages_and_levels_each_get_their_line():
    clock = Clock()
    f = RepeatFilter(30.0, clock)
    assert f.filter(refused(0, 9092))
    assert f.filter(refused(0, 9093))  # another broker
    warn = refused(0)
    warn.levelno = logging.WARNING
    assert f.filter(warn)
    other = logging.LogRecord("obsync.rdkafka", logging.ERROR, __file__, 1, "%s [%s] %s",
                              ("FAIL", "rdkafka#producer-1", "127.0.0.1:9092/1: Disconnected"), None)
    assert f.filter(other)
    assert not f.filter(refused(5, 9093))


def test_a_line_after_a_quiet_window_is_not_annotated():
    clock = Clock()
    f = RepeatFilter(30.0, clock)
    assert f.filter(refused(0))
    clock.now += 31
    r = refused(0)
    assert f.filter(r) and "more like it" not in r.getMessage()
