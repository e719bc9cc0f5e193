"""The container image (deploy/container/Containerfile), built with podman and run twice without `podman run`.

`podman run` is refused here and no registry is reachable (see tests.helpers.container), so the image is built
on a local stand-in for its base (Debian bookworm's own Python 3.11, debootstrapped), then:
1. used as the base of a test stage whose RUN step (chroot isolation: the image's user, the host's network and
   process ids) runs the image's own ENTRYPOINT + CMD and HEALTHCHECK command, read from `podman image inspect`;
2. run by hand as a runtime would: its root file system from `podman create` + `podman mount`, a PID namespace
   where the ENTRYPOINT (tini) is PID 1, the image's user, environment and working directory, a host directory
   as the volume, SIGTERM sent to PID 1 from outside (`docker stop`), the health check through `nsenter`
   (`docker exec`);
both against the suite's MariaDB and tansu broker, checking the messages in Kafka (exact rows, partitions,
order per key, no duplicates).

Exercised: the image builds from the real Containerfile; its declared user, volume, command, entrypoint, health
check, stop signal and port; obsync with mysqlclient installed; the task file at /etc/obsync/task.yaml with a
secret from the environment; full then incremental sync through tini -> obsync run (watching parent) -> task
process; state written under the volume by uid 10001; `obsync health` caught up while running and not running
after the stop; a clean stop (exit 0) on SIGTERM to PID 1; `obsync-cluster` on PATH.
Not exercised: a real container runtime (its cgroups, network namespace, `docker stop` timeout and HEALTHCHECK
scheduling), a signal arriving before obsync installed its handlers, the official python:3.11-slim-bookworm base
(whose Python lives in /usr/local), `obsync-cluster` with more than one pod.

Marked `container` (excluded by default; `scripts/container-test` runs it): about 5.5 minutes on a machine
without the images, 1 to 1.5 minutes after.
"""

from __future__ import annotations

import collections
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import container
from tests.helpers.kafka import read_topic
from tests.helpers.tasks import unique
from tests.helpers.workload import check_stream, replay, source_rows

pytestmark = pytest.mark.container

ROWS = 30


@pytest.fixture(scope="module")
def image() -> str:
    container.podman()
    return container.build_image(container.base_image())


def test_image_declares_user_volume_command_and_health_check(image: str) -> None:
    info = container.inspect(image)
    cfg = info["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert cfg["Cmd"] == ["obsync", "run", "/etc/obsync/task.yaml"]
    assert cfg["WorkingDir"] == "/var/lib/obsync"
    assert set(cfg["Volumes"]) == {"/var/lib/obsync"}
    assert cfg["StopSignal"] == "SIGTERM"
    assert "9108/tcp" in cfg["ExposedPorts"]
    assert info["Healthcheck"]["Test"] == ["CMD", "obsync", "health", "/etc/obsync/task.yaml"]


STAGE = """\
set -u
say() {{ echo "obsync-test: $*"; }}
say "uid $(id -u) gid $(id -g)"
out=$(POD_NAME=obsync-2 OBSYNC_PROCESSES=2 OBSYNC_PEER_SERVICE=peers obsync-cluster /etc/obsync/task.yaml 2>&1)
say "obsync-cluster: $out (exit $?)"
{entry} &
pid=$!
n=0
until {health} --ready --max-lag 5 >/tmp/health.out 2>&1; do
  n=$((n + 1))
  if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; say "run exited before catching up: $?"; exit 1; fi
  if [ "$n" -gt 600 ]; then say "not caught up in 300 s: $(cat /tmp/health.out)"; kill -TERM "$pid"; exit 1; fi
  sleep 0.5
done
out=$({health}); say "health caught up: $out (exit $?)"
say "ready"
n=0
until obsync status /etc/obsync/task.yaml --json | python3 -c \
    'import json, sys; sys.exit((json.load(sys.stdin).get("messages_written") or 0) < {expected})'; do
  n=$((n + 1))
  if [ "$n" -gt 600 ]; then say "not all {expected} messages written in 300 s"; kill -TERM "$pid"; exit 1; fi
  sleep 0.5
done
out=$({health}); say "health after the changes: $out (exit $?)"
say "state files: $(cd /var/lib/obsync/state/{name} && ls | tr '\\n' ' ')"
say "state owner: $(stat -c %u /var/lib/obsync/state/{name}/status.json)"
kill -TERM "$pid"
wait "$pid"
rc=$?
say "run exited $rc"
out=$({health}); say "health after the stop: $out (exit $?)"
exit "$rc"
"""


def _stage_containerfile(image: str, info: dict, task_name: str, expected: int) -> tuple[str, str]:
    cfg = info["Config"]
    entry = shlex.join([*cfg["Entrypoint"], *cfg["Cmd"]])
    test = info["Healthcheck"]["Test"]
    assert test[0] == "CMD"
    health = shlex.join(test[1:])
    script = STAGE.format(entry=entry, health=health, expected=expected, name=task_name)
    containerfile = (f"FROM {image}\n"
                     "ARG SRC_PASSWORD\n"
                     "COPY task.yaml /etc/obsync/task.yaml\n"
                     "COPY stage.sh /obsync-test/stage.sh\n"
                     'RUN ["/bin/sh", "/obsync-test/stage.sh"]\n')
    return containerfile, script


def test_image_runs_a_task_and_stops_it_cleanly(image: str, mariadb, kafka, shop, tmp_path: Path) -> None:
    db, conn = shop
    table = f"{db}.orders"
    password = "s3cret-" + unique("pw")
    user = unique("cdc")
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%'")
        for i in range(1, ROWS + 1):
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, NULL)", (i, f"n{i}", i, f"{i}.50"))
    name = unique("ctr")
    topic = f"Topic_{db}_orders"
    task = {
        "name": name,
        "source": {"host": mariadb.host, "port": mariadb.port, "user": user, "password": "${SRC_PASSWORD}",
                   "server_id": 7900},
        "target": {"bootstrap_servers": kafka.bootstrap_servers},
        "objects": [{"match": table}],
        "topics": {"partitions": 3, "replication_factor": 1},
        "epoch_seconds": 0.5,
    }
    changes = 10 + 5 + 3  # inserts, updates, deletes below: one message each
    ctx = tmp_path / "stage"
    ctx.mkdir()
    (ctx / "task.yaml").write_text(yaml.safe_dump(task))
    containerfile, script = _stage_containerfile(image, container.inspect(image), name, ROWS + changes)
    (ctx / "Containerfile").write_text(containerfile)
    (ctx / "stage.sh").write_text(script)

    proc = subprocess.Popen([container.podman(), "build", "--isolation", "chroot", "--no-cache",
                             "--build-arg", f"SRC_PASSWORD={password}", "-t", f"localhost/{name}:stage", str(ctx)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == "obsync-test: ready":
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 600
        while not ready.wait(0.5) and proc.poll() is None and time.monotonic() < deadline:
            pass
        assert ready.is_set(), "the stage never reported caught up:\n" + "\n".join(lines[-80:])
        with conn.cursor() as cur:  # incremental sync: the log after the full sync
            for i in range(101, 111):
                cur.execute(f"INSERT INTO {table} VALUES (%s, 'new', 1, 2.00, 'x')", (i,))
            for i in range(1, 6):
                cur.execute(f"UPDATE {table} SET qty = qty + 100, note = 'upd' WHERE id = %s", (i,))
            for i in range(6, 9):
                cur.execute(f"DELETE FROM {table} WHERE id = %s", (i,))
        rc = proc.wait(600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        subprocess.run([container.podman(), "rmi", "-f", f"localhost/{name}:stage"], capture_output=True)
    out = "\n".join(lines)
    assert rc == 0, f"the stage failed (exit {rc}):\n{out[-8000:]}"
    said = [line.removeprefix("obsync-test: ") for line in lines if line.startswith("obsync-test: ")]
    assert "uid 10001 gid 10001" in said
    assert ("obsync-cluster: obsync-cluster: pod obsync-2 (process 2) is beyond OBSYNC_PROCESSES=2: set "
            "OBSYNC_PROCESSES to the StatefulSet's replicas (exit 2)") in said, said  # on PATH, runs in the image
    assert any(s.startswith("health caught up: healthy: caught up (lag ") and s.endswith("(exit 0)")
               for s in said), said
    assert any(s.startswith("health after the changes: healthy: caught up") for s in said), said
    files = next(s for s in said if s.startswith("state files: ")).split()[2:]
    assert {"status.json", "start.json", "task.json"} <= set(files), files
    assert "state owner: 10001" in said
    assert "run exited 0" in said, out[-8000:]
    assert "stopped; the next run resumes from the last consistent point (SIGTERM)" in out, out[-8000:]
    assert "health after the stop: unhealthy: not running (stopped, phase incremental) (exit 1)" in said, \
        "\n".join(said)
    assert password not in out  # the secret came from the environment and was never printed

    msgs = read_topic(kafka.bootstrap_servers, topic)
    kinds = collections.Counter(json.loads(m.value)["recordType"] for m in msgs)
    assert kinds == {"ROW": ROWS, "INSERT": 10, "UPDATE": 5, "DELETE": 3}
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, table)
    assert len(replay(msgs)) == ROWS + 10 - 3


def _pid1(unshare_pid: int) -> tuple[int | None, str | None]:
    """The host pid and program of the process `unshare --fork` started (PID 1 of the new namespace)."""
    try:
        children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
        if len(children) != 1:
            return None, None
        return int(children[0]), Path(f"/proc/{children[0]}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return None, None


def test_tini_as_pid_1_stops_the_task_on_sigterm(image: str, mariadb, kafka, shop, tmp_path: Path) -> None:
    """The image run the way a container runtime runs it, by hand (`podman run` is refused here): its root
    file system (`podman create` + `podman mount`), a PID namespace of its own in which the ENTRYPOINT (tini) is
    PID 1, the image's user, environment and working directory, a host directory as the volume, the task file
    mounted at /etc/obsync/task.yaml. SIGTERM is sent to PID 1 from outside, as `docker stop` does; the health
    check command runs inside the container's namespaces, as `docker exec` does."""
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.skip("unshare/nsenter (util-linux) missing")
    db, conn = shop
    table = f"{db}.orders"
    with conn.cursor() as cur:
        for i in range(1, 21):
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, 1.00, NULL)", (i, f"n{i}", i))
    name = unique("pid1")
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump({
        "name": name,
        "source": {"host": mariadb.host, "port": mariadb.port, "user": "${SRC_USER}", "password": "",
                   "server_id": 7901},
        "target": {"bootstrap_servers": kafka.bootstrap_servers}, "objects": [{"match": table}],
        "topics": {"partitions": 3, "replication_factor": 1}, "epoch_seconds": 0.5}))
    info = container.inspect(image)
    cfg = info["Config"]
    uid, gid = cfg["User"].split(":")
    volume = tmp_path / "volume"
    volume.mkdir()
    os.chown(volume, int(uid), int(gid))
    (vol_path,) = cfg["Volumes"]
    env = [*cfg["Env"], f"SRC_USER={mariadb.user}"]
    podman = container.podman()
    ctr = container.run([podman, "create", image], timeout=60, what="podman create").stdout.strip()
    try:
        root = container.run([podman, "mount", ctr], timeout=60, what="podman mount").stdout.strip()
        (Path(root) / "etc/obsync/task.yaml").touch()
        inside = ["chroot", f"--userspec={uid}:{gid}", root, "/usr/bin/env", "-i", "-C", cfg["WorkingDir"], *env]
        setup = (f"set -e; mount -t proc proc {root}/proc; mount --rbind /dev {root}/dev; "
                 f"mount --bind {volume} {root}{vol_path}; mount --bind {task} {root}/etc/obsync/task.yaml; "
                 'exec "$@"')
        log = tmp_path / "container.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount", "--propagation", "private",
                                     "sh", "-c", setup, "sh", *inside, *cfg["Entrypoint"], *cfg["Cmd"]],
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # unshare's child: `sh` doing the mounts, then (exec) the entrypoint
                pid1, program = _pid1(proc.pid)
                if program == cfg["Entrypoint"][0] or proc.poll() is not None:
                    break
                time.sleep(0.1)
            assert pid1 is not None and program == cfg["Entrypoint"][0], (program, log.read_text()[-3000:])
            health_cmd = info["Healthcheck"]["Test"][1:]

            def exec_in(*cmd: str) -> subprocess.CompletedProcess[str]:  # `docker exec`
                return subprocess.run(["nsenter", "-t", str(pid1), "-m", "-p", *inside, *cmd],
                                      capture_output=True, text=True, timeout=60)

            def wait_for(check, what: str) -> str:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    assert proc.poll() is None, f"the container exited ({proc.returncode}):\n{log.read_text()[-5000:]}"
                    ok, said = check()
                    if ok:
                        return said
                    time.sleep(0.5)
                raise AssertionError(f"{what} within 300 s: {said}\n{log.read_text()[-5000:]}")

            def caught_up() -> tuple[bool, str]:
                h = exec_in(*health_cmd)
                return h.returncode == 0 and h.stdout.startswith("healthy: caught up"), h.stdout.strip()

            def written(n: int):
                def check() -> tuple[bool, str]:
                    s = exec_in("obsync", "status", "/etc/obsync/task.yaml", "--json")
                    got = json.loads(s.stdout).get("messages_written") if s.returncode == 0 else None
                    return (got or 0) >= n, f"{got} messages written"
                return check

            wait_for(caught_up, "caught up")
            with conn.cursor() as cur:
                cur.execute(f"UPDATE {table} SET qty = qty + 1 WHERE id <= 5")
                cur.execute(f"INSERT INTO {table} VALUES (21, 'n21', 21, 2.00, NULL), (22, 'n22', 22, 2.00, NULL)")
                cur.execute(f"DELETE FROM {table} WHERE id = 20")
            wait_for(written(20 + 5 + 2 + 1), "every change written")
            said = wait_for(caught_up, "caught up after the changes")
            assert said.startswith("healthy: caught up (lag ")
            os.kill(pid1, signal.SIGTERM)  # `docker stop`: SIGTERM to PID 1 from outside its namespace
            rc = proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        subprocess.run([podman, "umount", ctr], capture_output=True)
        subprocess.run([podman, "rm", "-f", ctr], capture_output=True)
    text = log.read_text()
    assert rc == 0, text[-5000:]
    assert "SIGTERM: stopping at a consistent point" in text
    assert "stopped; the next run resumes from the last consistent point (SIGTERM)" in text, text[-5000:]
    state = volume / "state" / name
    status = json.loads((state / "status.json").read_text())
    assert status["state"] == "stopped"
    assert {p.stat().st_uid for p in state.iterdir()} == {int(uid)}
    msgs = read_topic(kafka.bootstrap_servers, f"Topic_{db}_orders")
    assert collections.Counter(json.loads(m.value)["recordType"] for m in msgs) == {
        "ROW": 20, "UPDATE": 5, "INSERT": 2, "DELETE": 1}
    check_stream(msgs, 3)
    assert replay(msgs) == source_rows(conn, table)
