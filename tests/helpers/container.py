"""Building obsync's container image (deploy/container/Containerfile) with podman on a machine without an image
registry, and running build stages on it.

No registry is reachable here, so `python:3.11-slim-bookworm` (the Containerfile's default `BASE`) cannot be
pulled; `podman run` is refused by the sandbox (setrlimit), while `podman build --isolation chroot` works and its
RUN steps share the host's network (the servers the suite starts on 127.0.0.1 are reachable) and process ids
(no PID namespace: the entrypoint is not PID 1 there).

The stand-in base is Debian bookworm made by `debootstrap` from Debian's mirror (what the official image is built
on), with Debian's Python 3.11 (`python3`, `python3-venv`, `python3-dev`: the official image has venv and the
headers too) and this machine's CA bundle with `PIP_CERT` pointing at it (the egress proxy here re-signs TLS;
pip in the image needs its CA, as behind any corporate proxy). It is built once per machine and kept in
podman's store (`BASE_TAG`): about 75 s; the image on it about 2 min from nothing, seconds when only
obsync's code changed (its dependencies are a layer of their own).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"
BASE_TAG = "localhost/obsync-test-base:bookworm-1"  # bump the suffix when the recipe below changes
IMAGE_TAG = "localhost/obsync:test"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "python3,python3-venv,python3-dev,ca-certificates"


def podman() -> str:
    """The podman binary, installed from Debian's packages when missing (the test is skipped, saying why, only
    when that cannot be done)."""
    found = shutil.which("podman")
    if found and shutil.which("debootstrap"):
        return found
    if not shutil.which("apt-get"):
        pytest.skip("podman and debootstrap are not installed and there is no apt-get to install them")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "podman", "debootstrap"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"cannot install podman and debootstrap ({' '.join(cmd)}: {proc.stderr.strip()[-500:]})")
    return shutil.which("podman") or pytest.fail("podman installed but not on PATH")


def run(cmd: list[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def image_exists(tag: str) -> bool:
    return subprocess.run([podman(), "image", "exists", tag]).returncode == 0


def base_image() -> str:
    """The stand-in for python:3.11-slim-bookworm (see the module docstring), built once per machine."""
    if image_exists(BASE_TAG):
        return BASE_TAG
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="obsync-base-") as tmp:
        root = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(root),
             DEBIAN_MIRROR], timeout=900, what="debootstrap of the stand-in base image")
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
        for leftover in (root / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        proc = subprocess.run([podman(), "import", "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                               "--change", 'CMD ["/bin/bash"]', "-", BASE_TAG],
                              stdin=tar.stdout, capture_output=True, text=True, timeout=600)
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if proc.returncode != 0 or tar.returncode != 0:
            raise AssertionError(f"podman import of the base failed: {proc.stderr[-2000:]}")
    return BASE_TAG


def build_image(base: str) -> str:
    """obsync's image from the real Containerfile on `base` (docker format: it keeps HEALTHCHECK)."""
    run([podman(), "build", "--isolation", "chroot", "--format", "docker", "--build-arg", f"BASE={base}",
         "-f", str(CONTAINERFILE), "-t", IMAGE_TAG, str(REPO)], timeout=1200, what="podman build of the image")
    return IMAGE_TAG


def inspect(tag: str) -> dict[str, Any]:
    out = run([podman(), "image", "inspect", tag], timeout=60, what="podman image inspect").stdout
    return json.loads(out)[0]
