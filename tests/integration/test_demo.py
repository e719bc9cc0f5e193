"""The quick start's main job: `obsync demo` starts its servers, syncs the sample table and shows messages."""

from __future__ import annotations

import re

from tests.helpers.tasks import run_obsync


def test_demo_runs_and_shows_snapshot_and_live_changes(tmp_path):
    proc = run_obsync("demo", "--seconds", "20", "--rows", "500", "--dir", str(tmp_path), timeout=180)
    summary = re.search(r"messages seen by type: (\{.*\})", proc.stdout)
    assert summary, proc.stdout[-2000:]
    counts = eval(summary.group(1))  # our own dict repr
    assert counts["ROW"] >= 500
    assert counts.get("INSERT", 0) > 0
    assert '"recordType":"ROW"' in proc.stdout and '"recordType":"INSERT"' in proc.stdout
