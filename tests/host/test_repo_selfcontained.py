"""The repository stands alone: nothing in it refers to a document it does not hold.

- No reference to notes kept outside the repository (the team's shared folder one level
  up, its design document, a `reference/` tree, the machine's work folders). The names are
  built from parts below, so this file does not point to them either.
- Every `NAME.md` mentioned anywhere (code comments, docs, tests, scripts, board profiles)
  is a file of the repository: relative to the mentioning file, to the root, or in docs/.
  Only the reports the benchmarks write (out/bench/) are exempt.
- A section named in quotes after a document (`docs/failover.md, "Limited boards"`,
  `README, "Layout"`) is a heading (or a bold paragraph label) of that document.
- Every relative link of a Markdown file ([text](path#anchor)) points to a file that exists,
  and its #anchor to a heading of the target (GitHub's anchor rules).
"""
from __future__ import annotations

import re
import subprocess
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# What the code writes itself, not documents of the repository (bench/__main__.py, _readme.py).
GENERATED_MD = {"SUMMARY.md", "fault_matrix.md", "fault_matrix_sip.md"}
_SHARED = ".." + "/" + "shared"
_DESIGN = "DESIGN" + "." + "md"
FORBIDDEN = [
    (re.compile(re.escape(_SHARED) + r"\b"), f"the team's shared notes ({_SHARED})"),
    (re.compile(r"\b" + re.escape(_DESIGN) + r"\b"),
     f"{_DESIGN}, which the repository does not hold"),
    (re.compile(r"(?<![\w/.-])reference/"), "a reference/ tree outside the repository"),
    (re.compile(r"/work/"), "a path on the machine the project was developed on"),
]
TEXT_SUFFIXES = {".py", ".md", ".json", ".toml", ".txt", ".cfg", ".sh", ".xml", ".ini", ".yml",
                 ".yaml", ""}
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
_MD_NAME = re.compile(r"(?<![\w./*-])((?:\.\.?/)*\w[\w./-]*\.md)\b")
_SECTION = re.compile(r"(?<![\"'/\w.])((?:docs/)?[\w-]+\.md|README)\)?,?\s*\(?\"([^\"\n]{3,80})\"")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode()
        files = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):      # not a git checkout
        files = [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    skip = ("out", ".venv", ".frozen", "node_modules")
    return [p for p in files if p.suffix in TEXT_SUFFIXES and p.is_file()
            and not any(s in p.relative_to(ROOT).parts[:1] for s in skip)]


def _text(p: Path) -> str | None:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def _resolve_md(name: str, base: Path) -> Path | None:
    for cand in (base.parent / name, ROOT / name, ROOT / "docs" / name):
        c = cand.resolve()
        if c.is_file() and ROOT in c.parents:
            return c
    return None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"<[^>]+>", "", heading).strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


@lru_cache(maxsize=None)
def headings(path: Path) -> tuple[list[str], set[str]]:
    """(heading texts and bold paragraph labels, GitHub anchors) of a Markdown file."""
    texts, anchors, seen = [], set(), {}
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            h = m.group(1)
            texts.append(h.replace("`", ""))
            a = slug(h)
            n = seen.get(a, 0)
            seen[a] = n + 1
            anchors.add(a if n == 0 else f"{a}-{n}")
        for b in re.findall(r"\*\*([^*\n]+)\*\*", line):
            texts.append(b.replace("`", ""))
    return texts, anchors


def test_no_reference_to_anything_outside_the_repository():
    problems = []
    for p in tracked():
        rel = p.relative_to(ROOT).as_posix()
        if rel == THIS:
            continue
        text = _text(p)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for rx, what in FORBIDDEN:
                if rx.search(line):
                    problems.append(f"{rel}:{n}: refers to {what}: {line.strip()[:100]}")
            for name in _MD_NAME.findall(_URL.sub("", line)):
                if Path(name).name in GENERATED_MD:
                    continue
                if _resolve_md(name, p) is None:
                    problems.append(f"{rel}:{n}: {name} is not a file of the repository")
    assert not problems, "\n".join(problems)


def test_sections_named_in_quotes_exist():
    problems = []
    for p in tracked():
        rel = p.relative_to(ROOT).as_posix()
        text = _text(p)
        if text is None or rel == THIS:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for doc, section in _SECTION.findall(_URL.sub("", line)):
                target = _resolve_md("README.md" if doc == "README" else doc, p)
                if target is None:
                    continue            # the test above reports it
                texts, _ = headings(target)
                want = section.replace("`", "").lower()
                if not any(want in t.lower() for t in texts):
                    problems.append(f"{rel}:{n}: {target.relative_to(ROOT).as_posix()} has no "
                                    f"section \"{section}\"")
    assert not problems, "\n".join(problems)


def test_markdown_links_point_to_files_and_anchors_that_exist():
    problems = []
    mds = [p for p in tracked() if p.suffix == ".md"]
    assert ROOT / "README.md" in mds and len(mds) > 5
    for p in mds:
        rel = p.relative_to(ROOT).as_posix()
        fence = False
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                fence = not fence
            if fence or line.startswith("    "):
                continue
            for target in _LINK.findall(_CODE_SPAN.sub("", line)):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):    # http:, https:, mailto:
                    continue
                path, _, anchor = target.partition("#")
                dest = (p.parent / path).resolve() if path else p
                if ROOT not in dest.parents and dest != ROOT:
                    problems.append(f"{rel}:{n}: link {target} leaves the repository")
                    continue
                if not dest.exists():
                    problems.append(f"{rel}:{n}: link {target}: no such file")
                    continue
                if anchor:
                    if dest.suffix != ".md":
                        problems.append(f"{rel}:{n}: link {target}: an anchor into a "
                                        "file that is not Markdown")
                    elif anchor not in headings(dest)[1]:
                        problems.append(f"{rel}:{n}: link {target}: "
                                        f"{dest.relative_to(ROOT).as_posix()} has no "
                                        f"heading #{anchor}")
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The rules themselves, on made-up lines."""
    assert slug("Failover, fallback, re-home") == "failover-fallback-re-home"
    assert slug("`phonelab status` reads the event stream") == "phonelab-status-reads-the-event-stream"
    assert slug("Issue 12, item 7: CTL heap (verification)") == "issue-12-item-7-ctl-heap-verification"
    assert _MD_NAME.findall(f"see {_DESIGN} and docs/x.md, not docs/*.md") == [_DESIGN, "docs/x.md"]
    assert _SECTION.findall('# see README, "Firmware layout"') == [("README", "Firmware layout")]
    assert _SECTION.findall('[docs/reports.md](docs/reports.md), "Limited"') == [
        ("docs/reports.md", "Limited")]
    assert _SECTION.findall('readme = ROOT / "README.md", docs: "x y z"') == []
    assert any(rx.search(_SHARED + "/notes.md") for rx, _ in FORBIDDEN)
    assert not any(rx.search("https://example.org/api-reference/x.html") for rx, _ in FORBIDDEN)
    assert _resolve_md("no-such-note.md", ROOT / "docs" / "x.md") is None
    assert _resolve_md("failover.md", ROOT / "firmware" / "phone" / "agent.py") is not None
