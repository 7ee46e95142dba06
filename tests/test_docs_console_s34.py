"""The ``console`` examples of docs/*.md that can run here print what the page shows.

``tests/test_docs_examples.py`` runs every ``python`` and ``bash`` block but not ``console``
blocks (a command shown with its output). Those whose commands need nothing this machine lacks
and whose output does not depend on it (no run ids, times or hardware) are run here, as a new
user runs them: each ``$`` line in turn, in one empty directory per block, with no
GREENPRINT_* setting and no config file. Each output line shown must be the line printed (a
``...`` in it stands for any text); a command shown without output must exit 0, unless the
next line is ``echo $?``, whose shown status is compared. ``/home/me`` in a shown path stands
for the directory the commands run in.

Also run here: the README's shorter demo (``greenprint demo --trials 6 --epochs 5``), a command
named in its prose, not in a block (the quickstart's full demo runs in test_docs_examples).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from _clean_env import clean_env
from test_docs_examples import ROOT, parse_blocks

#: The checked blocks, by page and first command, with the files their commands read (what the
#: reader has: their notes, a text file that is no ledger)
CHECKED: dict[tuple[str, str], dict[str, str]] = {
    ("docs/carbon.md", "greenprint intensity Germny"): {},
    ("docs/carbon.md", "greenprint intensity aws:us-east-1"): {},
    ("docs/ledger.md", "greenprint ledger ls --ledger notes.txt"): {"notes.txt": "my notes\n"},
}


def _sessions(doc: str) -> dict[str, list[tuple[str, list[str]]]]:
    """A page's console blocks by first command: each ``$`` command, the lines shown after it."""
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for block in parse_blocks(doc, (ROOT / doc).read_text(encoding="utf-8")):
        if block.language != "console":
            continue
        steps: list[tuple[str, list[str]]] = []
        for line in block.code.splitlines():
            if line.startswith("$ "):
                command = re.sub(r"\s+#.*$", "", line[2:]).strip()
                steps.append((command, []))
            elif steps:
                steps[-1][1].append(line)
        if steps:
            found[steps[0][0]] = steps
    return found


def _shown(line: str, home: Path) -> re.Pattern[str]:
    line = line.replace("/home/me", str(home))
    return re.compile(".*".join(re.escape(piece) for piece in line.split("...")))


@pytest.mark.parametrize(("doc", "first"), list(CHECKED), ids=[f"{d}:{c}" for d, c in CHECKED])
def test_a_console_example_prints_what_the_page_shows(tmp_path, doc, first):
    sessions = _sessions(doc)
    assert first in sessions, f"{doc} has no console block starting with $ {first}"
    for name, text in CHECKED[doc, first].items():
        (tmp_path / name).write_text(text)
    status = 0
    steps = sessions[first]
    for k, (command, shown) in enumerate(steps):
        if command == "echo $?":
            assert shown == [str(status)], f"{doc}: $ {steps[k - 1][0]}"
            continue
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        status = done.returncode
        printed = (done.stdout + done.stderr).splitlines()
        if shown:
            assert len(printed) == len(shown), f"{doc}: $ {command}\n{done.stdout}{done.stderr}"
            for want, got in zip(shown, printed, strict=True):
                assert _shown(want, tmp_path).fullmatch(got), f"{doc}: $ {command}: {got!r}"
        elif k + 1 == len(steps) or steps[k + 1][0] != "echo $?":
            assert status == 0, f"{doc}: $ {command}\n{done.stderr}"


@pytest.mark.slow
def test_the_readme_shorter_demo_runs_as_written(tmp_path):
    """README: "`greenprint demo --trials 6 --epochs 5` is a shorter demo" (about 17 s on one
    training thread of a 2-vCPU VM): the command as the README writes it, in an empty directory,
    ends with a study of 6 trials and its report where the summary says."""
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    (command,) = re.findall(
        r"`(greenprint demo --trials \d+ --epochs \d+)` is a shorter demo", readme
    )
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env={**clean_env(), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = " ".join(done.stdout.split())
    assert "whole study" in summary and "6 of them trials" in summary
    assert "report greenprint-report/report.html" in summary
    assert (tmp_path / "greenprint-report" / "report.html").is_file()
