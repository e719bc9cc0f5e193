"""When a silent Kafka counts as stalled, is said again, ends and is given up on (`AckWatch`, on a fake clock),
and the librdkafka message timeout that goes with a patience."""

from __future__ import annotations

import pytest

from obsync.connectors.kafka.stall import MAX_MESSAGE_TIMEOUT_MS, AckWatch, BrokerPatience, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch(notice: float = 30, patience: float | None = 600, repeat: float = 30) -> tuple[AckWatch, Clock]:
    clock = Clock()
    return AckWatch(BrokerPatience(notice, patience, repeat), clock), clock


def test_messages_waiting_less_than_the_notice_time_are_not_a_stall() -> None:
    w, clock = watch()
    assert w.observe(5) == Verdict()  # they start waiting now
    clock.now += 29.9
    v = w.observe(5)
    assert not v.stalled and not v.announce and v.silent_for == pytest.approx(29.9)


def test_a_stall_is_announced_once_then_every_repeat_seconds_and_ends_with_the_first_ack() -> None:
    w, clock = watch(notice=30, repeat=30)
    w.observe(5)
    clock.now += 30
    v = w.observe(5)
    assert v.stalled and v.announce and v.silent_for == 30 and not v.give_up
    clock.now += 10
    v = w.observe(7)
    assert v.stalled and not v.announce and v.silent_for == 40
    clock.now += 20
    assert w.observe(7).announce  # 30 s after the first line
    clock.now += 5
    w.acked()
    v = w.observe(6)
    assert v == Verdict(recovered_after=65)  # the messages left wait afresh, from now
    clock.now += 29
    assert not w.observe(6).stalled


def test_an_empty_queue_ends_a_stall_and_the_next_messages_wait_from_when_they_are_seen() -> None:
    w, clock = watch(notice=10)
    w.observe(3)
    clock.now += 12
    assert w.observe(3).stalled
    assert w.observe(0) == Verdict(recovered_after=12)
    clock.now += 500  # idle: nothing waits
    assert w.observe(0) == Verdict()
    assert w.observe(4) == Verdict()  # new messages: they wait from now, not from the last acknowledgement
    clock.now += 9
    assert not w.observe(4).stalled


def test_acknowledgements_that_keep_coming_are_never_a_stall_however_long_messages_keep_waiting() -> None:
    w, clock = watch(notice=5, patience=20)
    w.observe(100)
    for _ in range(50):
        clock.now += 4
        w.acked()
        v = w.observe(100)
        assert not v.stalled and not v.give_up


def test_the_patience_runs_from_the_last_acknowledgement() -> None:
    w, clock = watch(notice=2, patience=5)
    w.observe(8)
    clock.now += 3
    w.acked()
    w.observe(8)
    clock.now += 4.9
    v = w.observe(8)
    assert v.stalled and not v.give_up
    clock.now += 0.1
    v = w.observe(8)
    assert v.give_up and v.silent_for == pytest.approx(5)


def test_forever_never_gives_up() -> None:
    w, clock = watch(notice=1, patience=None)
    w.observe(1)
    for _ in range(100):
        clock.now += 3600
        v = w.observe(1)
        assert v.stalled and not v.give_up
    w.acked()
    assert w.observe(1).recovered_after == 360000


def test_a_patience_of_zero_gives_up_at_the_first_silent_slice() -> None:
    w, clock = watch(notice=30, patience=0)
    assert w.observe(1) == Verdict()
    clock.now += 0.5
    assert w.observe(1).give_up


def test_librdkafka_gets_the_patience_and_its_own_default_before_it_fails_a_message() -> None:
    assert BrokerPatience(30, 600).message_timeout_ms() == 900_000
    assert BrokerPatience(2, 5).message_timeout_ms() == 305_000
    assert BrokerPatience(30, None).message_timeout_ms() == 0  # forever: librdkafka's infinite
    assert BrokerPatience(30, 1e9).message_timeout_ms() == 0  # beyond what librdkafka takes: infinite
    assert BrokerPatience(30, MAX_MESSAGE_TIMEOUT_MS / 1000 - 300).message_timeout_ms() <= MAX_MESSAGE_TIMEOUT_MS
