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
  quickstarts read it), as a reader following the page would. Selecting one block (``-k``)
  first runs the file's earlier blocks in its directory (slow ones only in their own test).
  Each block is its own process, so a Python block makes its own imports, as it would when
  pasted alone.
* Python blocks that import the same heavy third-party packages (torch, lightning,
  transformers, Optuna, MLflow: found by parsing the blocks), two blocks or more on any pages,
  run as children of a fork server (``tests/_docs_fork.py``) that imported those packages once,
  never greenprint (a block whose set no other block has borrows the server of the largest
  such set within its own, and imports the rest itself): each child is what a fresh
  ``python -c RUNNER`` is (its cwd, exactly the clean environment, its own
  stdin/stdout/stderr and ``__main__``, a normal exit with atexit handlers), holding only
  heavy modules its block imports. Importing torch and torch._dynamo (~3.5 s), lightning
  (~10 s) or transformers (~9 s) per example was most of this file's time; one server per
  page still imported torch four times (the README, fpo.md, greener.md, integrations.md).
  A server whose set holds a smaller shared set is forked from that set's server, which stays
  open until it closes: Lightning's and Transformers' from torch's, so torch and torch._dynamo
  are imported once, not three times (each server of them had imported torch itself: ~3.5 s of
  CPU each; the blocks but the README demo, `-m "not slow"`: 90.0 -> 74.5 s of CPU).
  Other blocks, pages in ``SUBPROCESS_PAGES`` and bash blocks run in a fresh process.
* With a clean environment: no ``GREENPRINT_*`` variable (the network guard is kept), no
  ``greenprint.toml`` or ``pyproject.toml`` above the directory, the virtual environment's
  ``bin`` first on ``PATH`` so that ``greenprint`` resolves; and ``OMP_NUM_THREADS=1`` unless
  the suite was given one (:func:`example_env`): torch's two threads per example, beside the
  suite's other workers on two cores, spun on each other (greener.md's comparison: 11-13 s
  of CPU, 0.6-0.9 s on one thread).
* Python blocks: the virtual environment's ``python``, reading the block on stdin and running
  it as ``__main__`` (the working directory on ``sys.path``, as in an interactive session;
  tracebacks give the Markdown file's line numbers). Bash blocks:
  ``bash -euxo pipefail -c BLOCK``: any failing command fails the example.
* Printed output is not compared. A value a Python example shows in a comment after a
  top-level expression (``c.total  # 55623280: every FPO``, ``c.unknown_ops  # {}``) is
  checked: a float to the precision written, anything else exactly (see ``claims``).
* A block that runs ``greenprint demo`` (about 45 s) is marked ``slow``; it still runs by default.
  The demo runs once in the suite: the README's quickstart runs it as written, and
  ``test_readme_demo_runs_the_whole_study`` reads that run (its output, ledger and report), after
  the blocks (or, selected alone, running the README's blocks it needs first).

Inputs a block needs but that belong to the reader (their training script) come from
``tests/docs_fixtures/``, copied into every directory before the file's first block runs; a
block runs as written (only the expressions whose shown values are checked get wrapped in the
check). The fixtures:

* ``train.py``: the training script of ``greenprint run ... -- python train.py --lr 0.1``
  (README, "Quickstart: the CLI"): a second of arithmetic, accuracy printed per epoch.

A block that cannot run here (a GPU, a cluster, a database server, ``make test`` which is this
suite) carries a visible line right before its fence, starting with the exact text
``*Not run by the test suite:`` and giving the reason; the test is then skipped with that reason.
"""

from __future__ import annotations

import ast
import functools
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from _clean_env import clean_env, configured_above
from _docs_fork import ForkServer, heavy_imports

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
#: A block running ``greenprint demo`` (the README's quickstart): the whole study, 65-120 s
#: alone on a 2-vCPU machine, more than twice that beside two other test workers
DEMO_TIMEOUT_S = 600
#: Pages whose Python examples run in a fresh ``python`` each, not a fork server's children.
SUBPROCESS_PAGES: dict[str, str] = {}
#: Blocks running one of these get the ``slow`` mark (``greenprint demo``: about 45 s).
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
    params: list[object] = []
    for blocks in BLOCKS.values():
        for block in blocks:
            why = f"not run by the test suite: {block.not_run}"
            marks = [pytest.mark.skip(reason=why)] if block.not_run else []
            if SLOW.search(block.code):
                # pytest-timeout's 300 s (pyproject.toml) would stop it before its own timeout
                marks += [pytest.mark.slow, pytest.mark.timeout(DEMO_TIMEOUT_S + 60)]
            params.append(pytest.param(block, id=block.id, marks=marks))
    return params


@functools.cache
def _heavy_key(language: str, code: str) -> tuple[str, ...]:
    """:meth:`DocDir._key`, parsed once per block: a page's blocks are compared on every run."""
    if language != "python":
        return ()
    return tuple(sorted({item[0].split(".")[0] for item in heavy_imports([code])}))


def _suite_order() -> list[Block]:
    """Every runnable block of the docs, in the order the tests run them (pages, then lines)."""
    return [b for blocks in BLOCKS.values() for b in blocks if not b.not_run]


def server_key(block: Block) -> tuple[str, ...]:
    """The heavy imports of the fork server that runs ``block``, or () for a fresh ``python``.

    A server preloads a set of heavy packages two blocks or more import exactly (on any page:
    the README's torch example, fpo.md's and greener.md's share one). A block whose own set no
    other block has takes the largest such set within its own, if any (integrations.md's
    Optuna + Transformers example, a child of the Transformers server that imports Optuna
    itself): either way a child holds only heavy modules its block imports.
    """
    key = _heavy_key(block.language, block.code)
    if not key or block.doc in SUBPROCESS_PAGES:
        return ()
    shared = _shared_keys()
    if key in shared:
        return key
    within = [k for k in shared if set(k) < set(key)]
    return max(within, key=lambda k: (len(k), k)) if within else ()


@functools.cache
def _shared_keys() -> frozenset[tuple[str, ...]]:
    """The heavy-import sets two runnable blocks or more import exactly (outside
    ``SUBPROCESS_PAGES``)."""
    counts: dict[tuple[str, ...], int] = {}
    for b in _suite_order():
        key = _heavy_key(b.language, b.code)
        if key and b.doc not in SUBPROCESS_PAGES:
            counts[key] = counts.get(key, 0) + 1
    return frozenset(k for k, n in counts.items() if n >= 2)


def parent_key(key: tuple[str, ...]) -> tuple[str, ...]:
    """The server a server of ``key`` is forked from: the largest shared set within ``key``
    (torch's for Lightning's and Transformers'), or () for a server started fresh."""
    within = [k for k in _shared_keys() if set(k) < set(key)]
    return max(within, key=lambda k: (len(k), k)) if within else ()


def _lineage(key: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``key``, the key of the server it is forked from, that one's, and so on."""
    found = []
    while key:
        found.append(key)
        key = parent_key(key)
    return found


class Servers:
    """The fork servers of the docs' blocks, one per :func:`server_key`, shared by the pages:
    started on first use, each closed after the last block that uses it or a server forked
    from it (in the suite's order), the rest when the module ends (a selection of blocks,
    ``-k``). A server whose set holds a smaller shared set is forked from that set's server
    (:func:`parent_key`): torch is imported once for the torch, Lightning and Transformers
    examples, not three times."""

    def __init__(self) -> None:
        self._servers: dict[tuple[str, ...], ForkServer] = {}
        self._refused: set[tuple[str, ...]] = set()
        self._last: dict[tuple[str, ...], Block] = {}
        for b in _suite_order():
            for key in _lineage(server_key(b)):
                self._last[key] = b

    def get(self, block: Block, cwd: Path) -> ForkServer | None:
        key = server_key(block)
        return self._server(key, cwd) if key else None

    def _server(self, key: tuple[str, ...], cwd: Path) -> ForkServer | None:
        if key in self._refused:
            return None
        if key not in self._servers:
            # what the blocks of exactly this set import (a block that borrows the server
            # imports the rest itself)
            codes = [b.code for b in _suite_order() if self._key(b) == key]
            parent = self._server(parent_key(key), cwd) if parent_key(key) else None
            server = ForkServer(cwd, example_env(), heavy_imports(codes), parent=parent)
            if server.ready["project_modules"]:  # never share the project's state
                server.close()
                self._refused.add(key)
                return None
            self._servers[key] = server
        return self._servers[key]

    @staticmethod
    def _key(block: Block) -> tuple[str, ...]:
        return _heavy_key(block.language, block.code)

    def done(self, block: Block) -> None:
        """``block`` has run: its server is closed if no later block uses it, and so is each
        server it was forked from that no later block uses (after it: they wait for it)."""
        for key in _lineage(server_key(block)):
            if key in self._servers and self._last[key] == block:
                self._servers.pop(key).close()

    def close(self) -> None:
        for key in reversed(list(self._servers)):  # forked servers before their parents
            self._servers.pop(key).close()


@dataclass
class DocDir:
    """The shared working directory of one Markdown file and which of its blocks ran.

    ``runs`` keeps each block's last run (by its fence's line) for the tests that read what a
    block did, such as the README's demo.
    """

    path: Path
    passed: dict[int, bool] = field(default_factory=dict)
    runs: dict[int, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)
    doc: str = ""
    servers: Servers = field(default_factory=Servers)

    def _key(self, block: Block) -> tuple[str, ...]:
        """The heavy packages ``block`` imports (top-level names), or () for a bash block."""
        return _heavy_key(block.language, block.code)

    def run(self, block: Block) -> subprocess.CompletedProcess[str]:
        """Run ``block`` here (a Python block in a child of its fork server, if it has one)
        and record how it went."""
        self.started.add(block.line)
        done = run_block(block, self.path, self.servers.get(block, self.path))
        self.servers.done(block)
        self.passed[block.line] = done.returncode == 0
        self.runs[block.line] = done
        return done

    def run_earlier(self, block: Block) -> list[Block]:
        """Run the file's earlier blocks that have not run yet (not the slow ones); all of them."""
        earlier = [b for b in BLOCKS[block.doc] if b.line < block.line and not b.not_run]
        for before in earlier:
            if before.line not in self.passed and not SLOW.search(before.code):
                self.run(before)
        return earlier


class Workspace:
    """One fresh directory per Markdown file, created on first use, fixtures copied in; the
    fork servers, shared by the files."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._dirs: dict[str, DocDir] = {}
        self._servers = Servers()

    def dir_for(self, doc: str) -> DocDir:
        if doc not in self._dirs:
            path = self._factory.mktemp("docs-" + re.sub(r"[^\w.-]", "-", doc))
            for fixture in sorted(FIXTURES.iterdir()):
                if fixture.is_file() and not fixture.name.startswith((".", "_")):
                    shutil.copy(fixture, path / fixture.name)
            self._dirs[doc] = DocDir(path, doc=doc, servers=self._servers)
        return self._dirs[doc]

    def close(self) -> None:
        self._servers.close()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    found = Workspace(tmp_path_factory)
    yield found
    found.close()


# Values a Python example claims in a comment: a top-level expression statement followed by
# ``# <literal>``, where the literal ends the comment or is followed by ``:`` or `` (``
# (``c.total  # 55623280: every FPO``, ``c.unknown_ops  # {}``, ``r.machine_j  # 30.0: ...``).
# A float matches to the precision written (30.0: within 0.05); an int exactly; anything else
# by ``==``. ``print(...)`` lines are not checked.
Spec = tuple  # ("int", v) | ("float", v, tolerance) | ("seq", [specs]) | ("eq", v)


def _spec(node: ast.expr, text: str) -> Spec:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _spec(node.operand, text)
        if inner[0] in ("int", "float"):
            return (inner[0], -inner[1], *inner[2:])
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if isinstance(node.value, int):
            return ("int", node.value)
        written = ast.get_source_segment(text, node) or repr(node.value)
        exponent = Decimal(written.replace("_", "")).as_tuple().exponent
        return ("float", node.value, 0.5 * 10.0 ** int(exponent))
    if isinstance(node, (ast.Tuple, ast.List)):
        return ("seq", [_spec(e, text) for e in node.elts])
    return ("eq", ast.literal_eval(node))


def _claim(comment: str) -> tuple[str, Spec] | None:
    text = comment.lstrip("#").strip()
    cuts = [len(text)] + [m.start() for m in re.finditer(r":| \(", text)]
    for cut in sorted(set(cuts), reverse=True):
        candidate = text[:cut].strip()
        try:
            node = ast.parse(candidate, mode="eval").body
            ast.literal_eval(node)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            return None  # a bare string, None or Ellipsis is prose, not a value
        return candidate, _spec(node, candidate)
    return None


def claims(code: str) -> dict[int, tuple[str, str, Spec]]:
    """Line (1-based, in ``code``) -> (expression, value as written, spec) of each claim."""
    try:
        tree = ast.parse(code)
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (SyntaxError, tokenize.TokenError):
        return {}
    comments = {t.start[0]: (t.start[1], t.string) for t in tokens if t.type == tokenize.COMMENT}
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.Expr) or node.lineno != node.end_lineno:
            continue
        call = node.value
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "print":
            continue
        comment = comments.get(node.lineno)
        if comment is None or comment[0] < (node.end_col_offset or 0):
            continue
        claim = _claim(comment[1])
        if claim is not None:
            found[node.lineno] = (ast.get_source_segment(code, node.value) or "", *claim)
    return found


def instrument(code: str, first_line: int) -> str:
    """``code`` with each claim checked in place, padded so lines are the Markdown file's."""
    lines = code.splitlines()
    for number, (expr, written, spec) in claims(code).items():
        line = lines[number - 1]
        start = line.index(expr)
        check = f"__doc_claim__({first_line + number}, {expr!r}, {written!r}, {spec!r}, ({expr}))"
        lines[number - 1] = f"{line[:start]}{check}{line[start + len(expr) :]}"
    return "\n" * first_line + "\n".join(lines) + "\n"


# Runs an instrumented Python example (stdin) as ``__main__`` with the Markdown file's name and
# line numbers in tracebacks; a claimed value that does not hold is printed and fails the run.
RUNNER = """
import sys, types

wrong = []


def matches(spec, actual):
    kind = spec[0]
    if kind == "int":
        return not isinstance(actual, bool) and actual == spec[1]
    if kind == "float":
        return abs(actual - spec[1]) <= spec[2]
    if kind == "seq":
        return len(actual) == len(spec[1]) and all(map(matches, spec[1], actual))
    return actual == spec[1]


def __doc_claim__(line, expr, written, spec, actual):
    try:
        good = bool(matches(spec, actual))
    except Exception:
        good = False
    if not good:
        wrong.append(line)
        print(f"line {line}: the doc shows {expr} as {written}, the code gives {actual!r}",
              file=sys.stderr)


main = types.ModuleType("__main__")
main.__dict__["__doc_claim__"] = __doc_claim__
sys.modules["__main__"] = main
source, path = sys.stdin.read(), sys.argv[1]
sys.argv[:] = ["-"]  # as `python -` would have it
exec(compile(source, path, "exec"), main.__dict__)
if wrong:
    sys.exit(f"{len(wrong)} value(s) shown in the doc do not hold: lines {wrong}")
"""


def run_block(
    block: Block, cwd: Path, server: ForkServer | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``block`` in ``cwd``: a Python block in a child of the page's ``server`` if given."""
    if block.language == "python":
        stdin = instrument(block.code, block.line)
        if server is not None:
            argv = ["-c", str(ROOT / block.doc)]
            return server.run(RUNNER, argv, stdin, cwd, example_env(cwd), TIMEOUT_S)
        command = [sys.executable, "-c", RUNNER, str(ROOT / block.doc)]
    else:
        command, stdin = ["bash", "-euxo", "pipefail", "-c", block.code], None
    timeout = DEMO_TIMEOUT_S if SLOW.search(block.code) else TIMEOUT_S
    # its own process group, killed whole on a timeout (its own, or pytest-timeout's, which
    # raises here): a shell's `greenprint demo` outlived the shell killed alone, and went on
    # loading the machine of the tests after it
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=example_env(cwd),
        text=True,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(stdin, timeout=timeout)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def example_env(cwd: Path | None = None) -> dict[str, str]:
    """The examples' environment: :func:`clean_env`, with one OpenMP thread unless it says.

    An example run in ``cwd`` has a temporary folder of its own beside it (``TMPDIR``):
    ledger.md's study whose ledger folder moves away left its fallback file in the machine's
    ``/tmp/greenprint-<uid>/`` at each run of the suite (one more file each time).

    The suite runs its files in several workers on a machine of few cores (three on two for
    ``make test``). An example's torch (and OpenBLAS) then started a thread per core, and the
    threads of one small operation waited on each other spinning while another worker held
    the core: greener.md's comparison took 11-13 s of CPU with two threads, 0.6-0.9 s with one
    (on a loaded 2-vCPU VM). One thread is what the examples' arithmetic needs; what they
    print and show does not depend on it (``greenprint demo`` sets one thread itself).
    """
    env = clean_env()
    env.setdefault("OMP_NUM_THREADS", "1")
    if cwd is not None:
        temp = cwd.with_name(f"{cwd.name}-tmp")
        temp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(temp)
    return env


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


@pytest.mark.parametrize("block", _params())
def test_example_runs(block: Block, workspace: Workspace, require_component) -> None:
    doc_dir = workspace.dir_for(block.doc)
    found = configured_above(doc_dir.path)
    require_component(not found, f"greenprint configuration above the temporary dir: {found}")
    earlier = doc_dir.run_earlier(block)  # when selected alone (-k), the file's earlier blocks
    done = doc_dir.run(block)
    if done.returncode != 0:
        failed = [b.id for b in earlier if doc_dir.passed.get(b.line) is False]
        note = f"\n(earlier blocks of this file failed too: {', '.join(failed)})" if failed else ""
        pytest.fail(
            f"{block.id}: the {block.language} example exited with status {done.returncode} "
            f"in {doc_dir.path}{note}\n--- example ---\n{block.numbered()}\n"
            f"--- stdout ---\n{_tail(done.stdout)}\n--- stderr ---\n{_tail(done.stderr)}",
            pytrace=False,
        )


# The README's demo, read after its quickstart ran it.

#: The README block that runs ``greenprint demo`` as a new user does (the price-tag quickstart).
DEMO_BLOCKS = [b for b in BLOCKS["README.md"] if SLOW.search(b.code) and not b.not_run]


def _demo_run(workspace: Workspace) -> tuple[DocDir, subprocess.CompletedProcess[str]]:
    """The README's demo block as it ran in the README's directory (run now if it has not)."""
    assert len(DEMO_BLOCKS) == 1, "the README runs `greenprint demo` in one block"
    (block,) = DEMO_BLOCKS
    doc_dir = workspace.dir_for(block.doc)
    if block.line in doc_dir.started and block.line not in doc_dir.runs:
        # it was stopped (its test's timeout): a second demo would only take as long again
        pytest.fail(f"{block.id} did not finish: see test_example_runs[{block.id}]")
    if block.line not in doc_dir.runs:  # selected alone (-k): the README's blocks up to it
        doc_dir.run_earlier(block)
        doc_dir.run(block)
    done = doc_dir.runs[block.line]
    assert done.returncode == 0, f"{block.id} failed:\n{_tail(done.stdout)}\n{_tail(done.stderr)}"
    return doc_dir, done


@pytest.mark.slow
@pytest.mark.timeout(DEMO_TIMEOUT_S + 120)  # alone (-k), it runs the README's blocks and the demo
def test_readme_demo_runs_the_whole_study(workspace, require_component):
    """`greenprint demo` as the README runs it: 24 trials of 15 epochs, 4 learning-curve fractions.

    Its closing summary, its ledger (every run with its role, status, FPO and data size) and its
    report in every format, read from the README quickstart's own run.
    """
    import greenprint as gp

    found = configured_above(workspace.dir_for("README.md").path)
    require_component(not found, f"greenprint configuration above the temporary dir: {found}")
    doc_dir, done = _demo_run(workspace)
    out = doc_dir.path / "greenprint-report"  # the demo's default --out
    start = done.stdout.index("greenprint demo: done")
    took = done.stdout.index("\n  took ", start)
    demo_out = done.stdout[: done.stdout.index("\n", took + 1)]  # not the report command's
    summary = demo_out[start:]
    for label in (
        "final score",
        "whole study",
        "final model",
        "provenance",
        "report",
        "ledger",
        "took",
    ):
        assert f"  {label}" in summary
    assert "the whole study cost" in summary
    # the pruner comparison: the same search stopped two ways (tests/greener/test_pruner_demo.py)
    # its per-epoch arm is the study's own search, the cost-aware arm a study of its own
    assert "  pruners        this study's random search of 24 trials" in summary
    assert "CostAwarePruner (at equal FPO)" in summary

    (ledger_path,) = out.glob("demo-ledger-*.db")
    assert str(ledger_path.relative_to(doc_dir.path)) in summary  # as the user gave --out
    runs = gp.Ledger(ledger_path, create=False).runs(study="digits-demo")
    names = [r.name for r in runs]
    assert names[:2] == ["baseline-majority", "baseline-logreg"]  # baselines first
    trials = [r for r in runs if r.name.startswith("trial-")]
    assert len(trials) == 24
    assert {r.params["model"] for r in trials} == {"mlp", "cnn"}
    pruned = [r for r in trials if r.status == "pruned"]
    assert pruned and all(r.energy_kwh > 0 and r.duration_s > 0 for r in pruned)
    assert all(r.status in ("finished", "pruned") for r in runs)
    # FPO from the counter: every trained run has it, a pruned trial only its epochs' share
    assert all(r.fpo and r.fpo > 0 for r in runs if r.name != "baseline-majority")
    for run in pruned:
        epochs = len([p for p in run.metrics if p.name == "val_accuracy"])
        assert epochs < run.params["epochs"]
        twin = [r for r in trials if r.params == run.params and r is not run]
        assert not twin or twin[0].fpo > run.fpo
    # 1,797 digits: 20% held out for the final model's test, the rest split 75/25 train/val
    assert all(r.dataset_size == 1077 for r in trials)
    curve = [r for r in runs if r.name.startswith("learning-curve")]
    assert [r.params["fraction"] for r in curve] == [0.1, 0.25, 0.5, 1.0]
    sizes = [r.dataset_size for r in curve]
    assert sizes == sorted(set(sizes)) and sizes[-1] == 1077  # each fraction more data
    # roles as given: baselines, trials, learning curve, and the final retrain
    roles = {r.name: r.role for r in runs}
    assert roles["baseline-majority"] == roles["baseline-logreg"] == "baseline"
    assert {roles[r.name] for r in trials} == {"trial"}
    assert {roles[r.name] for r in curve} == {"learning-curve"}
    (final,) = [r for r in runs if r.role == "final"]
    assert final.name == "final-retrain"
    assert [r for r in runs if r.role != "greener"][-1] is final  # then the greener variants
    assert final.dataset_size == 1077 + 360  # retrained on training + validation data
    assert final.metric("val_accuracy") is None  # scored only on the held-out test split
    assert 0.5 < final.metric("test_accuracy") <= 1.0
    assert f"test_accuracy = {final.metric('test_accuracy'):.4f}" in summary
    # and the report states it too: the price tag's sentence and the compute statement
    md = (out / "report.md").read_text()
    assert f"scored test\\_accuracy = {final.metric('test_accuracy'):.4g} (not val" in md
    data_text = json.loads((out / "report.json").read_text())["compute_statement"]
    assert f"test_accuracy = {final.metric('test_accuracy'):.4g}) alone used" in data_text
    finished = [r for r in trials if r.status == "finished"]
    best = max(finished, key=lambda r: r.metric("val_accuracy"))
    assert final.params == best.params  # the best configuration of the search
    # the search stopped what Optuna's MedianPruner stops (its curves replayed): the pruner
    # comparison reads it as its per-epoch arm (tests/greener/test_pruner_demo.py)
    from greener._median_replay import demo_stops, optuna_median_stops

    assert demo_stops(trials) == optuna_median_stops(trials, startup_trials=5, warmup_epochs=3)
    cost = gp.Ledger(ledger_path, create=False).runs(study="digits-demo-cost-pruner")
    assert [r.params for r in cost] == [
        {k: v for k, v in r.params.items() if k != "epochs"} for r in trials
    ]

    for name in ("report.html", "report.md", "report.tex", "report.json"):
        assert (out / name).stat().st_size > 1000
    assert len(list((out / "figures").glob("*.png"))) == 6
    assert len(list((out / "figures").glob("*.pdf"))) == 6
    data = json.loads((out / "report.json").read_text())
    assert data["study"] == "digits-demo" and data["metric"] == "val_accuracy"
    # the search's trials only: not the baselines, the learning curve or the final retrain
    assert data["price_tag"]["total"]["trials"] == len(trials) == 24
    by_role = data["price_tag"]["by_role"]
    assert by_role["learning-curve"]["runs"] == len(curve)
    assert by_role["baseline"]["runs"] == 2 and by_role["final"]["runs"] == 1
    assert data["price_tag"]["final"]["name"] == "final-retrain"
    assert data["model_card"]["co2_eq_emissions"]["training_type"] == "pre-training"
    figures = {f["id"]: f for f in data["figures"]}
    for fid in ("evp_trials", "evp_energy"):  # one EVP curve per model family, baselines
        series = figures[fid]["panels"][0]["series"]
        labels = [s["label"] for s in series if s["role"].startswith("family")]
        assert [label.split(" ")[0] for label in labels] == ["mlp", "cnn"], labels
        baselines = [s for s in series if s["role"] == "baseline"]
        assert [s["label"].split(" ")[0] for s in baselines] == [
            "baseline-majority",
            "baseline-logreg",
        ]
        assert all(len(set(s["y"])) == 1 for s in baselines)  # horizontal
    pareto = figures["pareto"]["panels"][0]["series"]
    assert [s["role"] for s in pareto].count("baseline") == 2
    (star,) = [s for s in pareto if s["role"] == "final"]
    assert "final run's configuration" in star["label"]
    assert next(r for r in runs if r.id == star["run_ids"][0]).params == final.params
    assert data["price_tag"]["by_status"]["pruned"]["energy_kwh"] > 0
    assert {f["id"] for f in data["figures"]} == {
        "evp_trials",
        "evp_energy",
        "pareto",
        "learning_curve",
        "timeline",
        "greener",
    }
    # the greener variants of the best CNN: distilled, quantized, pruned, with break-even
    (greener,) = data["greener"]
    rows = {r["name"]: r for r in greener["rows"]}
    assert list(rows)[0] == "baseline" and rows["baseline"]["technique"] == "baseline"
    techniques = {r["technique"] for r in rows.values()}
    assert {"dynamic-int8", "static-int8", "prune-unstructured", "distilled"} <= techniques
    (student,) = [r for r in rows.values() if r["technique"] == "distilled"]
    assert (
        student["training_energy_kwh"] > 0
        and student["param_count"] < rows["baseline"]["param_count"]
    )
    assert greener["front"] and all(rows[n]["on_front"] for n in greener["front"])
    assert by_role["greener"]["runs"] == len([r for r in runs if r.role == "greener"])
    assert "  greener        best CNN variants, front:" in summary
    # each variant's line in the unit the trials' lines use, not "1.63e-05 Wh/1000 inferences"
    variants = [ln for ln in demo_out.splitlines() if "per 1,000 inferences" in ln]
    assert len(variants) == len(rows) and not any("e-0" in ln for ln in variants), variants
    assert "Greener variants" in (out / "report.md").read_text()
    assert any(n.startswith("pruner comparison: ") for n in data["notes"])
    assert (
        "pruner comparison: this study's random search of 24 trials"
        in (out / "report.md").read_text()
    )
    demo_numbers_add_up(out, ledger_path)


def demo_numbers_add_up(out: Path, ledger_path: Path) -> None:
    """The demo's report's numbers add up, and its four formats agree on them.

    The price tag is the sum of the study's root runs as ``greenprint ledger export`` gives
    them; each run's CO2-eq is its energy x PUE x intensity; the statuses and the roles add up
    to the total; the roles' energy shares add up to the 100.0 % under them (they read 100.1 %
    before session 36) in Markdown, HTML and LaTeX's caption; the compute statement is the same
    text in every format.
    """
    from greenprint._format import format_emissions, format_energy

    done = subprocess.run(
        [str(Path(sys.executable).with_name("greenprint")), "ledger", "export"]
        + ["--ledger", str(ledger_path), "--format", "json", "--out", "-"],
        capture_output=True,
        text=True,
        env=example_env(),
        timeout=120,
        check=True,
    )
    runs = [r for r in json.loads(done.stdout)["runs"] if r["study"] == "digits-demo"]
    roots = [r for r in runs if not r["parent_id"]]
    for run in runs:  # one grid intensity, no hourly file: exact
        priced = run["energy_kwh"] * run["pue"] * run["intensity_g_per_kwh"] / 1000
        assert run["emissions_kg"] == pytest.approx(priced, rel=1e-9), run["name"]
    data = json.loads((out / "report.json").read_text())
    tag = data["price_tag"]
    total = tag["total"]
    assert total["runs"] == len(runs)
    for key in ("energy_kwh", "emissions_kg", "duration_s"):
        assert total[key] == pytest.approx(sum(r[key] for r in roots), rel=1e-9), key
        for split in ("by_status", "by_role"):
            parts = sum(cost[key] for cost in tag[split].values())
            assert parts == pytest.approx(total[key], rel=1e-9), (split, key)
    assert total["fpo"] == sum(r["fpo"] or 0 for r in roots)
    md = (out / "report.md").read_text()
    energy, emissions = format_energy(total["energy_kwh"]), format_emissions(total["emissions_kg"])
    assert f"- **energy (IT)**: {energy}\n- **emissions**: {emissions}\n" in md
    shares = {}
    for line in md[md.index("The same total by role") :].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] != "role" and not cells[0].startswith("---"):
            shares[cells[0]] = cells[-1]
    assert shares.pop("total") == "100.0 %" and len(shares) == len(tag["by_role"])
    assert sum(Decimal(v.removesuffix(" %")) for v in shares.values()) == 100, shares
    html = (out / "report.html").read_text()
    assert all(f"<td class=num>{share}</td>" in html for share in shares.values())
    assert f"{energy}</" in html and f"{emissions}</" in html
    tex = (out / "report.tex").read_text()
    caption = tex[tex.index("; shares of the energy: ") :].split(".}", 1)[0]
    assert caption.count("\\%") == len(shares)
    assert all(f"{label} {v.removesuffix(' %')}\\%" in caption for label, v in shares.items())
    statement = data["compute_statement"]
    assert f"used {energy} of IT energy" in statement and f"or {emissions} " in statement
    assert statement in md.replace("\\_", "_")
    # LaTeX-escaped: the final model's share reads '1/11' under a tenth and '10.2\\%' from it
    escaped = statement.replace("_", "\\_").replace("%", "\\%")
    assert escaped.replace("“", "``").replace("”", "''") in tex


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


def test_claims_are_values_shown_after_top_level_expressions():
    code = "\n".join(
        [
            "c = 2 + 3  # 5: an assignment is not a claim",  # 1
            "c  # 5: the total",  # 2
            "c * 1.5, -c  # 7.5, -5",  # 3
            "{}  # {}: nothing unknown",  # 4
            "c / 3  # 1.67 (rounded)",  # 5
            "print(c)  # 5",  # 6
            "c  # 2 s at each GPU's power",  # 7
            "c  # or: c.to_dict()",  # 8
            "if c:",  # 9
            "    c  # 99",  # 10
            "c  # 'prose'",  # 11
        ]
    )
    found = claims(code)
    assert found == {
        2: ("c", "5", ("int", 5)),
        3: ("c * 1.5, -c", "7.5, -5", ("seq", [("float", 7.5, 0.05), ("int", -5)])),
        4: ("{}", "{}", ("eq", {})),
        5: ("c / 3", "1.67", ("float", 1.67, 0.005)),
    }
    lines = instrument(code, 40).splitlines()
    assert len(lines) == 40 + 11 and lines[40] == code.splitlines()[0]
    assert lines[41] == "__doc_claim__(42, 'c', '5', ('int', 5), (c))  # 5: the total"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX users")
def test_the_fallback_example_leaves_nothing_in_the_machines_temporary_folder(tmp_path):
    # before: its fallback file stayed in /tmp/greenprint-<uid>/, one more at each suite's run
    (block,) = [b for b in BLOCKS["docs/ledger.md"] if "greenprint-unsaved" in b.code]
    cwd = tmp_path / "ledger.md"
    cwd.mkdir()
    done = run_block(block, cwd)
    assert done.returncode == 0, done.stderr
    (fallback,) = (tmp_path / "ledger.md-tmp").glob("greenprint-*/greenprint-unsaved-*.db")
    machines = Path(tempfile.gettempdir()) / f"greenprint-{os.getuid()}"
    assert not (machines / fallback.name).exists()


def test_runner_checks_claims_and_reports_the_markdown_lines(tmp_path):
    def run(doc: Block) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", RUNNER, doc.doc],
            input=instrument(doc.code, doc.line),
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = run(Block("docs/x.md", 10, "python", "x = 0.1 + 0.2\nx  # 0.3\nx * 10  # 4\n"))
    assert done.returncode == 1
    assert "line 13: the doc shows x * 10 as 4, the code gives 3.0000000000000004" in done.stderr
    assert "line 12" not in done.stderr  # 0.3 to the precision written

    done = run(Block("docs/x.md", 20, "python", "import math\n\nmath.sqrt(-1)\n"))
    assert done.returncode == 1
    assert 'File "docs/x.md", line 23, in <module>' in done.stderr
    assert "ValueError: math domain error" in done.stderr


def test_fork_server_children_are_fresh_interpreters(tmp_path):
    """A page's fork server gives each example what a fresh ``python -c RUNNER`` would."""
    server = ForkServer(tmp_path, clean_env(), heavy_imports(["from optuna import samplers"]))
    try:
        assert server.ready["project_modules"] == []  # greenprint is not imported before fork
        code = "\n".join(
            [
                "import atexit, os, sys",
                "assert 'optuna' in sys.modules  # preloaded by the server",
                "assert not [m for m in sys.modules if m.startswith('greenprint')], 'greenprint'",
                "assert 'GP_DOCS_SEEN' not in os.environ, 'an earlier example set it'",
                "import greenprint",
                "os.environ['GP_DOCS_SEEN'] = '1'",
                "atexit.register(lambda: open('atexit-ran', 'a').write(f'{os.getpid()}\\n'))",
                "print(os.getcwd(), sys.argv, sys.path[0] == '', sys.stdin.read() == '')",
                "len(sys.argv)  # 1",
            ]
        )
        block = Block("docs/x.md", 10, "python", code + "\n")
        pids = set()
        for _ in range(2):
            done = run_block(block, tmp_path, server)
            assert done.returncode == 0, done.stderr
            assert done.stdout == f"{tmp_path} ['-'] True True\n"
            pids.add((tmp_path / "atexit-ran").read_text())
            (tmp_path / "atexit-ran").unlink()  # the example's atexit handler ran, at exit
        assert len(pids) == 2
        # the environment is the request's exactly: not the server's, not an earlier example's
        show = "import json, os\nprint(json.dumps(dict(os.environ)))"
        done = server.run(show, ["-c"], "", tmp_path, {**clean_env(), "GP_DOCS_ONLY": "1"}, 60)
        assert json.loads(done.stdout) == {**clean_env(), "GP_DOCS_ONLY": "1"}
        done = server.run(show, ["-c"], "", tmp_path, clean_env(), 60)
        assert json.loads(done.stdout) == clean_env()

        done = run_block(Block("docs/x.md", 20, "python", "x = 2\nx  # 3\n"), tmp_path, server)
        assert done.returncode == 1
        assert "line 22: the doc shows x as 3, the code gives 2" in done.stderr
        done = run_block(Block("docs/x.md", 30, "python", "\n1 / 0\n"), tmp_path, server)
        assert done.returncode == 1
        assert 'docs/x.md", line 32, in <module>' in done.stderr, done.stderr
        assert "ZeroDivisionError" in done.stderr
        done = run_block(
            Block("docs/x.md", 1, "python", "import os\nos.kill(os.getpid(), 9)\n"),
            tmp_path,
            server,
        )
        assert done.returncode == -9
        with pytest.raises(subprocess.TimeoutExpired):  # a hanging example is killed
            server.run("while True: pass", ["-c"], "", tmp_path, clean_env(), timeout=1)
        done = run_block(
            Block("docs/x.md", 1, "python", "import sys\nsys.exit(3)\n"), tmp_path, server
        )
        assert done.returncode == 3  # and the server still serves
    finally:
        server.close()
    assert server.process is not None and server.process.returncode == 0


def test_a_server_forked_from_another_serves_as_one_started_with_all_its_imports(tmp_path):
    """Lightning's server forked from torch's (``parent=``): its children hold what both
    imported, in the directory and exactly the environment each asks for; the first server
    still serves its own children (without the second's imports) meanwhile, and each closes
    with its children waited for."""
    (tmp_path / "gp_docs_first.py").write_text("import os\nPID = os.getpid()\n")
    (tmp_path / "second").mkdir()  # the second server's directory: what it imports is there
    (tmp_path / "second" / "gp_docs_second.py").write_text("import os\nENV = dict(os.environ)\n")
    first = ForkServer(tmp_path, clean_env(), [["gp_docs_first"]])
    try:
        preload = [["gp_docs_first"], ["gp_docs_second"]]
        env = {**clean_env(), "GP_DOCS_SECOND": "1"}
        second = ForkServer(tmp_path / "second", env, preload, parent=first)
        try:
            assert second.ready["ready"] is True and second.ready["project_modules"] == []
            show = "\n".join(
                [
                    "import json, os, sys",
                    "import gp_docs_first as a",
                    "b = sys.modules.get('gp_docs_second')",
                    "print(json.dumps([a.PID != os.getpid(), b and b.ENV.get('GP_DOCS_SECOND'),",
                    "                  os.getcwd(), dict(os.environ)]))",
                ]
            )
            done = second.run(show, ["-c"], "", tmp_path, clean_env(), 60)
            assert done.returncode == 0, done.stderr
            # imported once, in the first server (another process), and the second's import
            # saw the environment it was started with; the child has exactly its own
            assert json.loads(done.stdout) == [True, "1", str(tmp_path), clean_env()]
            done = first.run(show, ["-c"], "", tmp_path, clean_env(), 60)
            assert json.loads(done.stdout)[:2] == [True, None]  # not the second's import
            done = second.run("import sys\nsys.exit(4)", ["-c"], "", tmp_path, clean_env(), 60)
            assert done.returncode == 4
        finally:
            second.close()
        done = first.run("print('still here')", ["-c"], "", tmp_path, clean_env(), 60)
        assert (done.returncode, done.stdout) == (0, "still here\n")
    finally:
        first.close()
    assert first.process is not None and first.process.returncode == 0


def test_a_preload_printing_a_banner_does_not_break_the_fork_server(tmp_path):
    """What a preloaded framework prints on import (wandb's "[INFO] Running in WANDB offline
    mode" when the environment says so) is the server's log, not an answer to the test, nor
    the example's output."""
    (tmp_path / "noisy_banner.py").write_text("print('[INFO] a banner on import')\n")
    server = ForkServer(tmp_path, clean_env(), [["noisy_banner"]])
    try:
        assert server.ready["ready"] is True
        done = server.run("print('hi')", ["-c"], "", tmp_path, clean_env(), 60)
        assert (done.returncode, done.stdout) == (0, "hi\n")
    finally:
        server.close()


def test_fork_servers_preload_only_third_party_heavy_imports():
    code = "import greenprint as gp\nimport torch\nfrom sklearn import svm\nimport ray\n"
    assert heavy_imports([code, "from transformers import Trainer\n"]) == [
        ["torch"],
        ["transformers", "Trainer"],
        ["torch._dynamo"],
    ]
    page = DocDir(Path("."), doc="README.md")
    assert page._key(Block("README.md", 1, "python", code)) == ("torch",)
    assert page._key(Block("README.md", 1, "bash", "python -c 'import torch'\n")) == ()
