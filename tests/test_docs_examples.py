"""Every ``python`` and ``bash`` example in README.md and docs/*.md runs as a new user runs it.

A README that drifts from the code fails the suite. The collector reads the Markdown files at
collection time (new files and blocks are picked up as they land) and makes one test per fenced
block whose language is ``python`` (also ``py``, ``python3``) or ``bash`` (also ``sh``,
``shell``); the test id is ``FILE:LINE`` of the opening fence. Other fences (``console`` for a
command with its output, ``text``, ``toml``, ``csv``, ``yaml``, none) are not run.

How a block runs:

* In a fresh temporary directory **per Markdown file**, shared by that file's blocks, which run
  in the order they appear: a later block may use what an earlier one wrote (the README's API
  quickstart writes ``greenprint.db`` with the study ``cifar-sweep``; its CLI and report
  quickstarts read it), as a reader following the page would. Selecting one block (``-k``) first
  runs the file's earlier blocks in its directory. Each block is its own process, so a Python
  block makes its own imports, as it would when pasted alone.
* With a clean environment: no ``GREENPRINT_*`` variable (the network guard is kept), no
  ``greenprint.toml`` or ``pyproject.toml`` above the directory, the virtual environment's
  ``bin`` first on ``PATH`` so that ``greenprint`` resolves.
* Python blocks: the virtual environment's ``python``, reading the block on stdin (so the
  working directory is on ``sys.path``, as in an interactive session). Bash blocks:
  ``bash -euxo pipefail -c BLOCK``: any failing command fails the example.
* No output is compared: the examples must run; a doc that claims a number checks it itself.
* A block that runs ``greenprint demo`` (about 25 s) is marked ``slow``; it still runs by default.

Inputs a block needs but that belong to the reader (their training script) come from
``tests/docs_fixtures/``, copied into every directory before the file's first block runs; the
text of a block is never changed. The fixtures:

* ``train.py``: the training script of ``greenprint run ... -- python train.py --lr 0.1``
  (README, "Quickstart: the CLI"): a second of arithmetic, accuracy printed per epoch.

A block that cannot run here (a GPU, a cluster, a database server, ``make test`` which is this
suite) carries a visible line right before its fence, starting with the exact text
``*Not run by the test suite:`` and giving the reason; the test is then skipped with that reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from _clean_env import clean_env, configured_above

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "docs_fixtures"
NOT_RUN = "*Not run by the test suite:"
LANGUAGES = {
    "python": "python",
    "py": "python",
    "python3": "python",
    "bash": "bash",
    "sh": "bash",
    "shell": "bash",
}
TIMEOUT_S = 240
#: Blocks running one of these get the ``slow`` mark (``greenprint demo``: about 25 s).
SLOW = re.compile(r"^\s*greenprint demo\b", re.M)
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced example: where it is, its language, its code and why it is not run (if so)."""

    doc: str
    line: int
    language: str
    code: str
    not_run: str | None = None

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    def numbered(self) -> str:
        """The code with the Markdown file's line numbers, for failure messages."""
        return "\n".join(
            f"{self.line + k:5d}  {text}" for k, text in enumerate(self.code.splitlines(), 1)
        )


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _not_run_reason(lines: list[str], fence_index: int) -> str | None:
    """The reason given by a ``*Not run by the test suite: ...*`` paragraph right before a fence."""
    k = fence_index - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    paragraph: list[str] = []
    while k >= 0 and lines[k].strip() and not FENCE.match(lines[k]):
        paragraph.insert(0, lines[k].strip())
        k -= 1
    text = " ".join(paragraph)
    if not text.startswith(NOT_RUN):
        return None
    return text[len(NOT_RUN) :].strip().rstrip("*").strip()


def parse_blocks(doc: str, text: str) -> Iterator[Block]:
    """Every fenced block of a Markdown text, runnable or not (CommonMark fences)."""
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        opening = FENCE.match(lines[k])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            k += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        start = k
        body: list[str] = []
        k += 1
        while k < len(lines) and not closing.match(lines[k]):
            line = lines[k]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            k += 1
        if k == len(lines):
            raise ValueError(f"{doc}:{start + 1}: code fence {fence!r} is never closed")
        k += 1
        words = opening["info"].split()
        language = words[0].lower() if words else ""
        yield Block(
            doc=doc,
            line=start + 1,
            language=language,
            code="\n".join(body) + "\n",
            not_run=_not_run_reason(lines, start),
        )


def collect() -> dict[str, list[Block]]:
    """The runnable-language blocks of every doc file, by file, in order."""
    found: dict[str, list[Block]] = {}
    for path in doc_files():
        doc = path.relative_to(ROOT).as_posix()
        found[doc] = [
            Block(b.doc, b.line, LANGUAGES[b.language], b.code, b.not_run)
            for b in parse_blocks(doc, path.read_text(encoding="utf-8"))
            if b.language in LANGUAGES
        ]
    return found


BLOCKS = collect()


def _params() -> list[object]:
    params = []
    for blocks in BLOCKS.values():
        for block in blocks:
            why = f"not run by the test suite: {block.not_run}"
            marks = [pytest.mark.skip(reason=why)] if block.not_run else []
            if SLOW.search(block.code):
                marks.append(pytest.mark.slow)
            params.append(pytest.param(block, id=block.id, marks=marks))
    return params


@dataclass
class DocDir:
    """The shared working directory of one Markdown file and which of its blocks ran."""

    path: Path
    passed: dict[int, bool] = field(default_factory=dict)


class Workspace:
    """One fresh directory per Markdown file, created on first use, fixtures copied in."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._dirs: dict[str, DocDir] = {}

    def dir_for(self, doc: str) -> DocDir:
        if doc not in self._dirs:
            path = self._factory.mktemp("docs-" + re.sub(r"[^\w.-]", "-", doc))
            for fixture in sorted(FIXTURES.iterdir()):
                if fixture.is_file() and not fixture.name.startswith((".", "_")):
                    shutil.copy(fixture, path / fixture.name)
            self._dirs[doc] = DocDir(path)
        return self._dirs[doc]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory)


def run_block(block: Block, cwd: Path) -> subprocess.CompletedProcess[str]:
    if block.language == "python":
        command, stdin = [sys.executable, "-"], block.code
    else:
        command, stdin = ["bash", "-euxo", "pipefail", "-c", block.code], None
    return subprocess.run(
        command,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


@pytest.mark.parametrize("block", _params())
def test_example_runs(block: Block, workspace: Workspace, require_component) -> None:
    doc_dir = workspace.dir_for(block.doc)
    found = configured_above(doc_dir.path)
    require_component(not found, f"greenprint configuration above the temporary dir: {found}")
    earlier = [b for b in BLOCKS[block.doc] if b.line < block.line and not b.not_run]
    for before in earlier:  # when run alone (-k), the file's earlier blocks first
        if before.line not in doc_dir.passed:
            doc_dir.passed[before.line] = run_block(before, doc_dir.path).returncode == 0

    done = run_block(block, doc_dir.path)
    doc_dir.passed[block.line] = done.returncode == 0
    if done.returncode != 0:
        failed = [b.id for b in earlier if not doc_dir.passed[b.line]]
        note = f"\n(earlier blocks of this file failed too: {', '.join(failed)})" if failed else ""
        pytest.fail(
            f"{block.id}: the {block.language} example exited with status {done.returncode} "
            f"in {doc_dir.path}{note}\n--- example ---\n{block.numbered()}\n"
            f"--- stdout ---\n{_tail(done.stdout)}\n--- stderr ---\n{_tail(done.stderr)}",
            pytrace=False,
        )


# The collector itself.


def test_collector_reads_fences_languages_indentation_and_markers():
    text = "\n".join(
        [
            "# t",  # 1
            "```python",  # 2
            "print(1)",  # 3
            "```",  # 4
            "*Not run by the test suite: needs",  # 5
            "an NVIDIA GPU.*",  # 6
            "```bash",  # 7
            "nvidia-smi",  # 8
            "```",  # 9
            "```console",  # 10
            "$ greenprint hardware",  # 11
            "```",  # 12
            "* a list item:",  # 13
            "",  # 14
            "  ````sh",  # 15
            "  echo ```",  # 16
            "    indented",  # 17
            "  ````",  # 18
        ]
    )
    blocks = list(parse_blocks("t.md", text))
    assert [(b.line, b.language) for b in blocks] == [
        (2, "python"),
        (7, "bash"),
        (10, "console"),
        (15, "sh"),
    ]
    assert blocks[0].code == "print(1)\n" and blocks[0].not_run is None
    assert blocks[1].not_run == "needs an NVIDIA GPU."
    assert blocks[3].code == "echo ```\n  indented\n"
    assert blocks[0].numbered() == "    3  print(1)"
    with pytest.raises(ValueError, match="t.md:1: code fence"):
        list(parse_blocks("t.md", "```python\nprint(1)\n"))


def test_every_doc_has_been_read_and_markers_precede_runnable_blocks():
    assert "README.md" in BLOCKS and BLOCKS["README.md"], "the README's examples are collected"
    for path in doc_files():
        doc = path.relative_to(ROOT).as_posix()
        lines = path.read_text(encoding="utf-8").splitlines()
        fences = {b.line: b for b in parse_blocks(doc, "\n".join(lines))}
        for number, line in enumerate(lines, 1):
            if not line.strip().startswith(NOT_RUN):
                continue
            following = next(  # the fence after the marker's paragraph and blank lines
                (k for k in range(number + 1, len(lines) + 1) if FENCE.match(lines[k - 1])), None
            )
            block = fences.get(following) if following is not None else None
            assert block is not None and block.language in LANGUAGES and block.not_run, (
                f"{doc}:{number}: a not-run marker is the paragraph right before a python or "
                "bash block, and gives its reason"
            )
