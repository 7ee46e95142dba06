"""The examples in docs/analysis.md run and print what the page shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def _block(containing: str) -> str:
    """The first example that contains ``containing``."""
    return next(block for block in _blocks() if containing in block)


def test_price_tag_example_prints_the_documented_summary():
    code = _blocks()[0]
    shown = []
    lines = code.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("print(tag.summary())"))
    for line in lines[start + 1 :]:
        if not line.startswith("# "):
            break
        shown.append(line[2:])
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), namespace)
    assert namespace["tag"].summary().splitlines() == shown
    printed = out.getvalue().splitlines()
    assert printed[: len(shown)] == shown and printed[-1] == "['final']"


def test_learning_curve_example_runs(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(_block("run_learning_curve("), str(DOC), "exec"), namespace)
    assert namespace["curve"].dataset_size.tolist() == [144, 359, 718, 1437]
    assert (tmp_path / "greenprint.db").exists()


def test_threads_example_prints_the_documented_note():
    code = _block("ran at once in its threads")
    lines = code.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("print(tag.notes[0])"))
    shown = " ".join(line[2:] for line in lines[start + 1 :] if line.startswith("# "))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {})
    assert out.getvalue() == shown + "\n"
