"""Session 41: the report says when a study's first trial carried a one-off cost of its process.

A plain PyTorch search made its first SGD optimizer inside its first trial: torch imported
``torch._dynamo`` there (about 1 s of CPU), and that trial measured 1.04 mWh against 0.034 mWh
for the same model at another learning rate, which raised the mean trial's cost the
expected-best-score-against-energy curve is drawn with; only the docs said so. The report now
names that trial in a note, with both costs and the docs' advice, where the first trial to start
cost far more than the finished trials of its shape (same params but for float values): not
for the same search once the import was done before its first run (the docs' advice), nor for
a first trial that is a larger configuration than the rest.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from _report_cli import GREENPRINT, empty_home, run_in

#: The search as a user writes it, once in a new process ("cold": its first optimizer imports
#: torch._dynamo inside its first trial), then again in the same process ("warm": the import
#: done before its first run, as the docs advise).
TORCH_SEARCH = """
import torch
import greenprint as gp

torch.set_num_threads(1)  # a pool of two on a busy machine spins: 10 ms trials read 0.4 s
torch.manual_seed(0)
x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
for study in ("cold", "warm"):
    for lr in (0.3, 0.1, 0.03, 0.01, 0.003):
        with gp.track(f"lr={lr}", study=study, params={"lr": lr, "hidden": 16}) as run:
            model = torch.nn.Sequential(
                torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
            )
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            for step in range(20):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
            run.log(loss=loss.item())
"""

#: An ordinary search whose first trial is its largest configuration (ten times the work of the
#: others, a width given as an int): dear for its configuration, not for a one-off cost.
WIDTHS = """
import time
import greenprint as gp

for width, lr in ((400, 0.1), (40, 0.1), (40, 0.01), (40, 0.001), (40, 0.0001)):
    with gp.track(f"w={width},lr={lr}", study="widths", params={"width": width, "lr": lr}) as run:
        end = time.perf_counter() + width / 1000  # work in proportion to the width
        while time.perf_counter() < end:
            pass
        run.log(loss=1 / width + lr)
"""


def _notes(home, study: str, *formats: str) -> list[str]:
    done = run_in(
        home, GREENPRINT, "report", "--study", study, "--out", study, "--no-plots",
        "--format", ",".join(("json", *formats)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((home / study / "report.json").read_text(encoding="utf-8"))
    return [n for n in report["notes"] if n.startswith("the first trial")]


def test_a_first_trial_that_imported_torch_dynamo_is_named(tmp_path_factory):
    pytest.importorskip("torch")
    home = empty_home(tmp_path_factory, "first-trial")
    (home / "search.py").write_text(TORCH_SEARCH)
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr

    (note,) = _notes(home, "cold", "md")
    match = re.fullmatch(
        r"the first trial, lr=0\.3 \((\w{8})\), cost (\S+ \S+) of energy, (\S+)x the median of "
        r"the 4 finished trials of its shape \((\S+ \S+): the same params but for their float "
        r"values, such as a learning rate\): a one-off cost of its process \(an import, a "
        r"compilation, a warm-up\) may have landed in it, and it raises the mean trial's cost "
        r"that the expected best score against energy is drawn with; to keep it out, do that "
        r"step before the first run opens \(docs/analysis\.md, 'A one-off cost in the first "
        r"run'\)",
        note,
    )
    assert match, note
    assert float(match[3].replace(",", "")) > 5
    markdown = (home / "cold" / "report.md").read_text(encoding="utf-8").replace("\\", "")
    assert f"the first trial, lr=0.3 ({match[1]}), cost {match[2]}" in markdown

    # the same search after the import (the docs' advice): its first trial is one of the rest
    assert _notes(home, "warm") == []


def test_no_note_for_a_first_trial_that_is_a_larger_configuration(tmp_path_factory):
    home = empty_home(tmp_path_factory, "first-widths")
    (home / "widths.py").write_text(WIDTHS)
    done = run_in(home, sys.executable, "widths.py")
    assert done.returncode == 0, done.stderr
    assert _notes(home, "widths") == []
