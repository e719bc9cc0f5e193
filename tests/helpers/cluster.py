"""A task run as a Bytewax cluster of `obsync run` processes in tests, each with a state directory of its own
(as if on separate hosts), and the task's control topic read back."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from obsync.app.local_cluster import free_ports
from tests.helpers.kafka import read_partition
from tests.helpers.tasks import obsync_cmd

ROOT = Path(__file__).resolve().parents[2]


class Cluster:
    """Two `obsync run` processes of one task, state directories `<tmp>/host-K/state` (as if on two hosts)."""

    def __init__(self, tmp: Path, task: Path, n: int = 2) -> None:
        self.tmp, self.task, self.n = tmp, task, n
        self.procs: list[subprocess.Popen[bytes]] = []

    def state_dir(self, k: int) -> Path:
        return self.tmp / f"host-{k}" / "state"

    def log(self, k: int) -> Path:
        return self.tmp / f"host-{k}.log"

    def start(self, *extra: str) -> None:
        addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(self.n))
        self.procs = []
        for k in range(self.n):
            self.state_dir(k).parent.mkdir(parents=True, exist_ok=True)
            with open(self.log(k), "ab") as out:
                out.write(f"\n--- start {' '.join(extra)} ---\n".encode())
                out.flush()
                self.procs.append(subprocess.Popen(
                    obsync_cmd("run", str(self.task), "--state-dir", str(self.state_dir(k)), "-i", str(k),
                               "-a", addresses, *extra),
                    stdout=out, stderr=out, cwd=ROOT))

    def wait(self, timeout: float = 300) -> list[int]:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            p.wait(max(1.0, deadline - time.monotonic()))
        return [p.returncode for p in self.procs]

    def wait_until_logged(self, text: str, timeout: float = 120) -> None:
        """Until every process of the current start has logged `text` (bounded)."""
        deadline = time.monotonic() + timeout
        while not all(text in self.log(k).read_text(errors="replace").rsplit("--- start", 1)[-1]
                      for k in range(self.n)):
            assert time.monotonic() < deadline, f"not logged by every process: {text!r}\n{self.tails()}"
            assert all(p.poll() is None for p in self.procs), self.tails()
            time.sleep(0.2)

    def run_until_caught_up(self, timeout: float = 300) -> None:
        self.start("--until-caught-up")
        codes = self.wait(timeout)
        assert codes == [0] * self.n, self.tails()

    def tails(self) -> str:
        return "\n".join(f"== host {k}:\n{self.log(k).read_text(errors='replace')[-4000:]}" for k in range(self.n))

    def status(self, k: int) -> dict:
        return json.loads((self.state_dir(k) / "status.json").read_text())

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait(30)


def control_records(bootstrap: str, task_name: str) -> dict[str, object]:
    """The control topic's records, the last one per key winning."""
    out: dict[str, object] = {}
    for m in read_partition(bootstrap, f"obsync.control.{task_name}", 0):
        key = m.key.decode()
        if m.value is None:
            out.pop(key, None)
        else:
            out[key] = json.loads(m.value)
    return out
