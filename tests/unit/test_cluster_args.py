"""`obsync run --process-id/--addresses` and the StatefulSet entry point `deploy/container/obsync-cluster` that
derives them from the pod's name (process id = ordinal, addresses = the pods' names under the headless service)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "container" / "obsync-cluster"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "obsync", "run", "task.yaml", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("args, error", [
    (["--process-id", "0"], "a process id (-i/--process-id) was given without the processes' addresses"),
    (["--addresses", "a:2101"], "the processes' addresses (-a/--addresses) were given without this process's id"),
    (["-i", "2", "-a", "a:2101;b:2101"], "process id 2 (-i) is not one of the 2 processes of -a/--addresses "
                                         "(a:2101; b:2101): give 0 to 1"),
    (["-i", "0", "-a", "a:2101;b"], "--addresses: 'b' is not host:port"),
])
def test_cluster_arguments_are_checked_before_anything_runs(args: list[str], error: str) -> None:
    p = _run(*args)
    assert p.returncode == 2
    assert f"obsync: error: {error}" in p.stderr, p.stderr


def _cluster(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The script with an `obsync` first on PATH that prints the arguments it was given (the script's job is
    only to compute them; `obsync run` with them is exercised by the tests above and the cluster tests)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    echo = bin_dir / "obsync"
    echo.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    echo.chmod(0o755)
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env})


def test_statefulset_pod_name_gives_process_id_and_addresses(tmp_path: Path) -> None:
    p = _cluster(tmp_path, {"POD_NAME": "shop-sync-2", "OBSYNC_PROCESSES": "3", "OBSYNC_PEER_SERVICE": "shop-peers"},
                 "/etc/obsync/task.yaml", "--metrics-port", "9108")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "run", "/etc/obsync/task.yaml", "--process-id", "2", "--addresses",
        "shop-sync-0.shop-peers:2101;shop-sync-1.shop-peers:2101;shop-sync-2.shop-peers:2101",
        "--metrics-port", "9108"]


@pytest.mark.parametrize("env, error", [
    ({"POD_NAME": "standalone", "OBSYNC_PROCESSES": "2", "OBSYNC_PEER_SERVICE": "s"},
     "pod name 'standalone' does not end in -<ordinal>"),
    ({"POD_NAME": "sync-3", "OBSYNC_PROCESSES": "2", "OBSYNC_PEER_SERVICE": "s"},
     "pod sync-3 (process 3) is beyond OBSYNC_PROCESSES=2"),
    ({"POD_NAME": "sync-0", "OBSYNC_PEER_SERVICE": "s"}, "OBSYNC_PROCESSES must be the StatefulSet's replicas"),
    ({"POD_NAME": "sync-0", "OBSYNC_PROCESSES": "1"}, "OBSYNC_PEER_SERVICE must name the headless service"),
])
def test_statefulset_misconfiguration_is_refused(tmp_path: Path, env: dict[str, str], error: str) -> None:
    p = _cluster(tmp_path, env, "task.yaml")
    assert p.returncode == 2 and p.stdout == ""
    assert error in p.stderr, p.stderr
