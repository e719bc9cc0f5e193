"""deploy/kubernetes: schema-valid Kubernetes objects (kubernetes-validate, strict: unknown fields refused), and
what the image and its entry point (`obsync-cluster`) rely on: the headless service's name and port, the
process count, the pod name, the task file's path and `${ENV}` values, the state volume, the user, the metrics
port, and requests sized from the task's `resources`."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from obsync.runtime.validate import validate_task
from obsync.task.config import parse_task
from obsync.task.resources import memory_budget

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "deploy" / "kubernetes"
CONTAINERFILE = (REPO / "deploy" / "container" / "Containerfile").read_text()
VERSIONS = ("1.28.0", kubernetes_validate.latest_version())  # an older supported release and the newest bundled


def _objects() -> dict[str, dict[str, Any]]:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    out = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((KUBE / name).read_text()):
            out[doc["kind"]] = doc
    return out


OBJ = _objects()
STS, SVC, CM, SECRET = OBJ["StatefulSet"], OBJ["Service"], OBJ["ConfigMap"], OBJ["Secret"]
POD = STS["spec"]["template"]
CTR = POD["spec"]["containers"][0]
ENV = {e["name"]: e for e in CTR["env"]}
TASK_PATH = "/etc/obsync/task.yaml"


def _quantity(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3, "": 1}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    assert m and m.group(2) in units, f"unknown quantity {q!r}"
    return float(m.group(1)) * units[m.group(2)]


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(OBJ) == {"StatefulSet", "Service", "ConfigMap", "Secret"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", sorted(OBJ))
def test_schema_valid(kind: str, version: str) -> None:
    kubernetes_validate.validate(OBJ[kind], version, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    bad = copy.deepcopy(STS)
    bad["spec"]["replica"] = bad["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


def test_the_processes_find_each_other_through_the_headless_service() -> None:
    assert STS["spec"]["serviceName"] == SVC["metadata"]["name"] == ENV["OBSYNC_PEER_SERVICE"]["value"]
    assert SVC["spec"]["clusterIP"] == "None"
    assert SVC["spec"]["publishNotReadyAddresses"] is True  # names resolve before the pods are ready
    assert SVC["spec"]["selector"].items() <= POD["metadata"]["labels"].items()
    assert STS["spec"]["selector"]["matchLabels"].items() <= POD["metadata"]["labels"].items()
    peer = int(ENV["OBSYNC_PEER_PORT"]["value"])
    ports = {p["name"]: p["containerPort"] for p in CTR["ports"]}
    assert ports["bytewax"] == peer
    assert {(p["name"], p["port"]) for p in SVC["spec"]["ports"]} >= {("bytewax", peer)}
    assert int(ENV["OBSYNC_PROCESSES"]["value"]) == STS["spec"]["replicas"]
    assert ENV["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert STS["spec"]["podManagementPolicy"] == "Parallel"  # every process must start for any to run


def test_the_entry_point_derives_id_and_addresses_from_the_manifest(tmp_path: Path) -> None:
    """`obsync-cluster` with this pod's environment (pod 1) computes what `obsync run` gets."""
    assert CTR["command"] == ["/usr/bin/tini", "--", "obsync-cluster", TASK_PATH]
    assert "COPY deploy/container/obsync-cluster /usr/local/bin/obsync-cluster" in CONTAINERFILE
    env = {name: e["value"] for name, e in ENV.items() if "value" in e}
    name, service, port = STS["metadata"]["name"], SVC["metadata"]["name"], env["OBSYNC_PEER_PORT"]
    env["POD_NAME"] = f"{name}-1"
    (tmp_path / "obsync").write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    (tmp_path / "obsync").chmod(0o755)
    p = subprocess.run(["sh", str(REPO / "deploy" / "container" / "obsync-cluster"), *CTR["command"][3:]],
                       capture_output=True, text=True, timeout=30, env={"PATH": f"{tmp_path}:/usr/bin:/bin", **env})
    assert p.returncode == 0, p.stderr
    n = STS["spec"]["replicas"]
    assert p.stdout.splitlines() == ["run", TASK_PATH, "--process-id", "1", "--addresses",
                                     ";".join(f"{name}-{i}.{service}:{port}" for i in range(n))]


def _task(environ: dict[str, str]) -> Any:
    data = yaml.safe_load(CM["data"]["task.yaml"])
    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        task = parse_task(data, origin="deploy/kubernetes/configmap.yaml")
        validate_task(task, origin="deploy/kubernetes/configmap.yaml")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return task


def test_task_file_from_the_config_map_and_passwords_from_the_secret() -> None:
    mounts = {m["name"]: m for m in CTR["volumeMounts"]}
    volumes = {v["name"]: v for v in POD["spec"]["volumes"]}
    task_mount = next(m for m in CTR["volumeMounts"] if TASK_PATH.startswith(m["mountPath"] + "/"))
    assert task_mount["readOnly"] is True
    assert volumes[task_mount["name"]]["configMap"]["name"] == CM["metadata"]["name"]
    assert TASK_PATH.rsplit("/", 1)[1] in CM["data"]
    text = CM["data"]["task.yaml"]
    needed = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    assert needed, "the example's password comes from the environment"
    for var in needed:
        ref = ENV[var]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == SECRET["metadata"]["name"] and ref["key"] in SECRET["stringData"]
        assert var.upper().endswith("PASSWORD")
    task = _task({v: "x" for v in needed})  # what `obsync check` checks, with the variables set
    assert task.source.password.get_secret_value() == "x"
    assert "state_dir" not in yaml.safe_load(text)  # the default ./state/<name>: on the volume (below)
    assert mounts["state"]["mountPath"] == "/var/lib/obsync"


def test_state_volume_and_user_match_the_image() -> None:
    assert 'VOLUME ["/var/lib/obsync"]' in CONTAINERFILE and "WORKDIR /var/lib/obsync" in CONTAINERFILE
    claim = STS["spec"]["volumeClaimTemplates"][0]
    mount = next(m for m in CTR["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    assert mount["mountPath"] == "/var/lib/obsync" and not mount.get("readOnly")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]  # one volume per pod, never shared
    uid = re.search(r"^USER (\d+):(\d+)$", CONTAINERFILE, re.M)
    assert uid is not None
    sec = POD["spec"]["securityContext"]
    assert (sec["runAsUser"], sec["runAsGroup"], sec["fsGroup"]) == (int(uid[1]), int(uid[2]), int(uid[2]))
    assert sec["runAsNonRoot"] is True
    assert CTR["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in CTR["volumeMounts"])  # SQLite's temporary files


def test_prometheus_scrapes_the_tasks_metrics_port() -> None:
    task = _task({"OB_PASSWORD": "x"})
    ann = POD["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in CTR["ports"]}
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/path"] == "/metrics"
    assert int(ann["prometheus.io/port"]) == ports["metrics"] == task.metrics_port


def test_requests_are_sized_from_the_tasks_resources() -> None:
    task = _task({"OB_PASSWORD": "x"})
    budget = memory_budget(task)
    req, lim = CTR["resources"]["requests"], CTR["resources"]["limits"]
    assert budget <= _quantity(req["memory"]) < budget + 64 * 2**20
    assert _quantity(lim["memory"]) >= _quantity(req["memory"])
    assert _quantity(req["cpu"]) == task.workers


def test_probes_ask_obsync_health_about_the_same_task() -> None:
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert CTR[probe]["exec"]["command"][:3] == ["obsync", "health", TASK_PATH], probe
    assert 'CMD ["obsync", "health", "/etc/obsync/task.yaml"]' in CONTAINERFILE
    # a stop is clean within obsync run's --stop-timeout (60 s): the pod waits longer before SIGKILL
    assert POD["spec"]["terminationGracePeriodSeconds"] > 60
