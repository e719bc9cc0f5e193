"""Every reference to a repository file, in the code and in the docs, points at something that exists.

Scans every .py and .md file of the repository (not .git, other hidden folders, caches or build output) for:
- markdown links in .md files: the target, relative to the file, exists; a `#anchor` is one of the target's
  headings (GitHub's heading slugs);
- paths: backticked ones that begin with a top-level folder (`docs/formats/`, `scripts/demo`), bare ones that
  begin with one and end in .py or .md, and bare file names ending in .md (`README.md`); each exists, from the
  repository root or from the citing file's folder;
- section citations, a .md path followed by a comma and a quoted heading (`docs/formats/README.md, "Headers"`;
  the heading may be wrapped over lines, in a comment too):
  the file has that heading;
- backticked dotted module names under the repository's packages (`obsync.steps.routing`,
  `obsync.task.live.Live`): the modules exist, and the first name after the module is in its text.
Text with placeholders (`<name>`, `*`, `${...}`) and absolute paths are not references. This file is not
scanned: its self-test holds broken references on purpose.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP_DIRS = ("obsync", "connectors", "formats", "flows", "tests", "docs", "scripts", "bench", "deploy")
PACKAGES = ("obsync", "connectors", "formats", "flows", "tests", "bench")
# Dotted names that are the Kafka headers obsync writes (`obsync.task` is a package too) or its logger names.
NOT_MODULES = frozenset({"obsync.task", "obsync.pos", "obsync.seq", "obsync.rdkafka", "obsync.large", "obsync.large.id",
                         "obsync.large.part", "obsync.large.parts"})
SKIP_DIRS = frozenset({"__pycache__", "build", "dist"})

_LINK = re.compile(r"\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
_TICKED = re.compile(r"`([^`\n]+)`")
_BARE_PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(TOP_DIRS)})/[\w./-]*\.(?:py|md))\b")
_BARE_MD = re.compile(r"(?<![\w./-])([\w./-]*\w\.md)\b")
_SECTION = re.compile(r"(?<![\w./-])([\w./-]*\w\.md),\s*\"([^\"]{1,300})\"")
_WRAP = re.compile(r"\s*\n\s*(?:#\s*)?")  # a line break inside a cited title, with a comment's "#"
_DOTTED = re.compile(rf"`((?:{'|'.join(PACKAGES)})(?:\.\w+)+)")
_PLACEHOLDER = re.compile(r"[<>*${}\s]|\.\.\.")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _sources() -> list[Path]:
    out = []
    for folder, dirs, files in os.walk(ROOT):  # does not descend into the obsync/* links
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS
                         and not d.endswith(".egg-info"))
        out += [Path(folder, f) for f in sorted(files) if f.endswith((".py", ".md"))]
    return [p for p in out if p != Path(__file__).resolve()]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(path: Path) -> tuple[set[str], set[str]]:
    """(heading texts without backticks, anchors) of a markdown file, code blocks skipped."""
    texts: set[str] = set()
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m is None:
            continue
        text = m.group(2).replace("`", "")
        texts.add(text)
        base = _slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return texts, anchors


def _resolve(source: Path, target: str) -> Path | None:
    for base in (ROOT, source.parent):
        p = base / target
        if p.exists():
            return p
    return None


def _module_problem(name: str) -> str | None:
    """None when dotted `name` is a module (or a module's attribute) of the repository, else why not."""
    if name in NOT_MODULES:
        return None
    parts = name.split(".")
    here = ROOT
    for i, part in enumerate(parts):
        if (here / part).is_dir():
            here = here / part
            continue
        module = here / f"{part}.py"
        if module.exists():
            rest = parts[i + 1:]
            if rest and not re.search(rf"\b{re.escape(rest[0])}\b", module.read_text(encoding="utf-8")):
                return f"{module.relative_to(ROOT)} has no {rest[0]!r}"
            return None
        init = here / "__init__.py"
        if i > 0 and init.exists() and re.search(rf"\b{re.escape(part)}\b", init.read_text(encoding="utf-8")):
            return None  # a name the package itself defines
        return f"no module {'.'.join(parts[:i + 1])}"
    return None


def _problems(source: Path) -> list[str]:
    """`path:line: problem` for each broken reference in `source`, in the order they appear."""
    text = source.read_text(encoding="utf-8")
    found: dict[tuple[int, str], None] = {}  # (offset, problem)

    def path_ref(pos: int, target: str) -> None:
        if not target.startswith("/") and not _PLACEHOLDER.search(target) and _resolve(source, target) is None:
            found[(pos, f"{target}: no such file")] = None

    bare_text = text
    if source.suffix == ".md":
        for m in _LINK.finditer(text):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = source.parent / file_part if file_part else source
            if not dest.exists():
                found[(m.start(), f"link {target}: no such file")] = None
            elif anchor and dest.suffix == ".md" and anchor not in _headings(dest)[1]:
                found[(m.start(), f"link {target}: {dest.name} has no heading #{anchor}")] = None
        # link targets are checked above, not again as bare paths
        bare_text = _LINK.sub(lambda m: m.group(0)[:2] + " " * (len(m.group(0)) - 2), text)
    for m in _TICKED.finditer(text):
        target = m.group(1).strip()
        if "/" in target and target.split("/", 1)[0] in TOP_DIRS:
            path_ref(m.start(), target)
    for regex in (_BARE_PATH, _BARE_MD):
        for m in regex.finditer(bare_text):
            path_ref(m.start(), m.group(1))
    for m in _SECTION.finditer(text):
        cited = _resolve(source, m.group(1))
        if cited is not None:
            titles = _headings(cited)[0]
            title = _WRAP.sub(" ", m.group(2)).replace("`", "")
            if title not in titles | {t.split(" (")[0] for t in titles}:
                found[(m.start(), f"{m.group(1)} has no section {title!r}")] = None
    for m in _DOTTED.finditer(text):
        why = _module_problem(m.group(1))
        if why is not None:
            found[(m.start(), f"`{m.group(1)}`: {why}")] = None
    rel = os.path.relpath(source, ROOT)
    lines = (f"{rel}:{text.count(chr(10), 0, pos) + 1}: {problem}" for pos, problem in sorted(found))
    return list(dict.fromkeys(lines))  # a path both backticked and bare is reported once


def test_every_reference_points_at_an_existing_file():
    problems = [p for source in _sources() for p in _problems(source)]
    assert not problems, "references to files or sections that do not exist:\n" + "\n".join(problems)


def test_the_scanner_finds_broken_references(tmp_path: Path):
    """The checks themselves: a broken reference of each kind is reported, a good one is not."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Title\n\n## Two words\n\n```sh\n# not a heading\n```\n"
        "[ok](#two-words) [bad anchor](#not-a-heading) [ok](other.md#x-1) [bad](missing.md)\n"
        "[web](https://example.com/a.md) `docs/formats/README.md` `docs/formats/` `formats/<name>.md`\n"
        "`formats/nothing.py` and bare docs/formats/README.md, docs/nothing.md, NOTHING.md, /tmp/x.md\n"
        '(docs/formats/README.md, "Headers") (docs/formats/README.md, "Canal") (other.md, "Nothing")\n'
        "`obsync.steps.routing.Router` `obsync.pos` `obsync.live.Live` `obsync.steps.routing.Nothing`\n"
        '(docs/formats/README.md, "Large\n  messages") (other.md, "No\n  such section")\n',
        encoding="utf-8")
    (tmp_path / "other.md").write_text("# X\n# X\n", encoding="utf-8")
    found = [p.split(": ", 1)[1] for p in _problems(doc)]
    assert found == [
        "link #not-a-heading: doc.md has no heading #not-a-heading",
        "link missing.md: no such file",
        "formats/nothing.py: no such file",
        "docs/nothing.md: no such file",
        "NOTHING.md: no such file",
        "other.md has no section 'Nothing'",
        "`obsync.live.Live`: no module obsync.live",
        "`obsync.steps.routing.Nothing`: obsync/steps/routing.py has no 'Nothing'",
        "other.md has no section 'No such section'",
    ]
    assert _slug("Default (`default`)") == "default-default"
    assert _slug("What is guaranteed") == "what-is-guaranteed"
