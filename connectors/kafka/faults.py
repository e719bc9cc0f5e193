"""Which Kafka write failures a new producer recovers from (`restartable`), and so a restart of the task clears.

The idempotent producer keeps a producer id and a sequence number per partition. A broker that loses track of
them (tansu back from a freeze or a restart answers a retried batch with UNKNOWN_SERVER_ERROR or
PRODUCER_FENCED; Kafka after an unclean leader election with OUT_OF_ORDER_SEQUENCE_NUMBER) makes librdkafka
raise a fatal error: that producer instance can write nothing more, yet a new one (a new producer id) writes
at once. Kafka Connect answers the same failure by restarting the task; so does obsync (`BrokerFault`, then
`obsync.app.supervisor`), and the restart resumes exactly from the last snapshot.

Not restartable: errors that a new producer meets again (a message too large, authorization, an unknown topic,
an invalid record), and `_MSG_TIMED_OUT`: librdkafka's `message.timeout.ms` is set beyond `target.patience`
(`stall.BrokerPatience`), so a timed-out message means the patience has run out already (or the user set a
shorter timeout in `target.properties` on purpose). A restart loop is bounded by `target.patience` anyway, so a
misjudged error costs time, never data. Pure: tested with `KafkaError` values, no broker.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

# broker answers after which the producer's idempotence state is void: a new producer id clears them
_PRODUCER_STATE = frozenset({
    KafkaError.UNKNOWN,  # UNKNOWN_SERVER_ERROR ("Unknown broker error")
    KafkaError.PRODUCER_FENCED,
    KafkaError._FENCED,  # librdkafka's own "this producer was fenced"
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    KafkaError.UNKNOWN_PRODUCER_ID,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.INVALID_PRODUCER_ID_MAPPING,
    KafkaError._INCONSISTENT,  # librdkafka's "inconsistent state" of the idempotent producer
})


def restartable(err: KafkaError, fatal_cause: KafkaError | None = None) -> bool:
    """True when a write that failed with `err` is written by a new producer: `err` is one of the answers that
    void the producer's idempotence state, or librdkafka's `_FATAL` (the producer raised a fatal error before)
    whose cause (`fatal_cause`, from the error callback; None: not known) is one of them or not known."""
    code = err.code()
    if code == KafkaError._FATAL:
        return fatal_cause is None or fatal_cause.code() in _PRODUCER_STATE
    return code in _PRODUCER_STATE
