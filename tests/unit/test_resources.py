"""`resources` presets and explicit settings turned into engine and client settings (`obsync.task.resources`)."""

from __future__ import annotations

import pytest

from obsync.core.errors import ConfigError
from obsync.task.config import parse_task
from obsync.task.resources import PROCESS_BASE, ROW_BYTES, memory_budget, plan_resources

BASE = {"name": "t", "source": {"user": "u"}, "target": {"bootstrap_servers": "b:9092"},
        "objects": [{"match": "a.b"}]}


def plan(resources, workers=1, **over):
    return plan_resources(parse_task({**BASE, "resources": resources, **over}), workers)


def test_without_resources_obsync_defaults_apply():
    p = plan({})
    assert (p.chunks_per_worker, p.snapshot_batch_size, p.log_batch_size, p.log_queue_batches, p.producer) == (
        1, 2000, 500, 8, {})


def test_presets_grow_from_small_to_large():
    small, medium, large = (plan({"full": n, "incremental": n}, workers=2) for n in ("small", "medium", "large"))
    assert [p.chunks_per_worker for p in (small, medium, large)] == [1, 1, 2]
    assert [p.producer["max.in.flight.requests.per.connection"] for p in (small, medium, large)] == [2, 5, 5]
    buffers = [p.producer["queue.buffering.max.kbytes"] for p in (small, medium, large)]
    assert buffers == sorted(buffers) and buffers[0] == int(256 * 2**20 * 0.4 / 1024)
    queues = [p.log_queue_batches for p in (small, medium, large)]
    assert queues == sorted(queues) and queues[0] == int(64 * 2**20 * 0.5 / (500 * ROW_BYTES))


def test_memory_bounds_rows_in_flight_and_the_producer_buffer():
    p = plan({"full": {"read_concurrency": 4, "memory": "32MiB", "write_concurrency": 1}}, workers=2)
    assert p.chunks_per_worker == 2
    assert 4 * 2 * p.snapshot_batch_size * ROW_BYTES <= 32 * 2**20 * 0.4  # pages read ahead fit their share
    assert p.producer == {"queue.buffering.max.kbytes": int(32 * 2**20 * 0.4 / 1024),
                          "max.in.flight.requests.per.connection": 1}
    assert plan({"full": {"memory": "64GiB"}}).snapshot_batch_size == 2000  # never above the configured size


def test_bad_resources_are_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"resources.full"):
        plan({"full": "huge"})
    with pytest.raises(ConfigError, match=r"resources.full.FullResources.write_concurrency"):
        plan({"full": {"write_concurrency": 9}})
    with pytest.raises(ConfigError, match=r"resources.incremental.IncrementalResources.log_memory"):
        plan({"incremental": {"log_memory": "lots"}})


def test_memory_budget_is_base_plus_producer_buffer_plus_rows_read_ahead() -> None:
    """What `obsync check` prints and deploy/kubernetes sizes the pod's memory request with."""
    MIB = 2**20
    medium_small = parse_task({**BASE, "resources": {"full": "medium", "incremental": "small"}})
    # producer: 40% of 1 GiB (full) > 50% of 64 MiB (log); rows: the log's 65 batches of 500 rows (32,500) >
    # full sync's 2 chunks x 2 pages x 2,000 rows (8,000)
    assert memory_budget(medium_small) == PROCESS_BASE + 419430 * 1024 + 65 * 500 * ROW_BYTES
    # no resources: librdkafka's own 1 GiB buffer; a user's queue.buffering.max.kbytes wins over everything
    assert memory_budget(parse_task(BASE)) == PROCESS_BASE + 2**30 + 8 * 500 * ROW_BYTES
    own = parse_task({**BASE, "resources": {"full": "medium"},
                      "target": {"bootstrap_servers": "k:9092",
                                 "properties": {"queue.buffering.max.kbytes": 65536}}})
    assert memory_budget(own) == PROCESS_BASE + 64 * MIB + 2 * 2 * 2000 * ROW_BYTES  # full sync's read-ahead
