"""Which process of which cluster a run is: `obsync run -i/-a` and `python -m bytewax.run -i/-a` (and Bytewax's
environment variables) read the same way, with errors naming the option."""

from __future__ import annotations

import pytest

from obsync.core.errors import StateError
from obsync.runtime.cluster import ClusterSpec, bytewax_run_spec, cluster_spec


def test_a_single_process_is_no_cluster() -> None:
    assert cluster_spec(None, None) is None
    assert cluster_spec(0, "h0:1") is None


def test_process_and_addresses() -> None:
    spec = cluster_spec(1, "h0:2101; h1:2101;")
    assert spec == ClusterSpec(1, ("h0:2101", "h1:2101")) and spec.processes == 2 and not spec.leader
    assert cluster_spec(0, ["a:1", "b:1", "c:1"]) == ClusterSpec(0, ("a:1", "b:1", "c:1"))


@pytest.mark.parametrize(("pid", "addrs", "says"), [
    (1, None, "without the processes' addresses"),
    (None, "h0:1;h1:1", "without this process's id"),
    (2, "h0:1;h1:1", "process id 2 (-i) is not one of the 2 processes"),
    (-1, "h0:1;h1:1", "give 0 to 1"),
])
def test_incomplete_or_wrong_options_are_refused(pid, addrs, says) -> None:
    with pytest.raises(StateError, match=says.replace("(", r"\(").replace(")", r"\)")):
        cluster_spec(pid, addrs)


def test_bytewax_run_arguments_and_environment() -> None:
    argv = ["/x/bytewax/run.py", "obsync.flows.sync:flow", "-i", "1", "-a", "h0:1;h1:1", "-r", "r"]
    assert bytewax_run_spec(argv, {}) == ClusterSpec(1, ("h0:1", "h1:1"))
    assert (bytewax_run_spec(["run.py", "--process-id=0", "--addresses=h0:1;h1:1"], {})
            == ClusterSpec(0, ("h0:1", "h1:1")))
    env = {"BYTEWAX_PROCESS_ID": "0", "BYTEWAX_ADDRESSES": "h0:1;h1:1;h2:1"}
    assert bytewax_run_spec(["run.py"], env) == ClusterSpec(0, ("h0:1", "h1:1", "h2:1"))
    sts = {"BYTEWAX_POD_NAME": "sync-2", "BYTEWAX_STATEFULSET_NAME": "sync", "BYTEWAX_ADDRESSES": "a:1;b:1;c:1"}
    assert bytewax_run_spec(["run.py"], sts) == ClusterSpec(2, ("a:1", "b:1", "c:1"))
    assert bytewax_run_spec(["run.py", "obsync.flows.sync:flow"], {}) is None
    with pytest.raises(StateError, match="'x' .* is not a number"):
        bytewax_run_spec(["run.py", "-i", "x", "-a", "a:1;b:1"], {})
