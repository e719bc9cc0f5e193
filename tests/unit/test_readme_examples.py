"""README's format examples are what the encoders write (regenerate with `python docs/format_examples.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_format_examples_match_the_encoders():
    text = (ROOT / "README.md").read_text()
    start, end = "<!-- format-examples:start -->\n", "\n<!-- format-examples:end -->"
    in_readme = text[text.index(start) + len(start):text.index(end)]
    generated = subprocess.run([sys.executable, str(ROOT / "docs" / "format_examples.py")], capture_output=True,
                               text=True, check=True).stdout.rstrip()
    assert in_readme == generated, "README examples are stale: run python docs/format_examples.py"
