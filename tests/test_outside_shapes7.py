"""Issue 13, a ninth outside check: study shapes the first eight checks did not use.

Each study is built the way users build one, in a fresh empty directory with a clean
environment (no ``GREENPRINT_*`` variable, no configuration), then read by ``greenprint
report`` and ``greenprint ledger export``. The scripts' runs are measured by a constant-power
meter (``tests/tracking/_meters.ConstantProcessPower``), so that the truth of every energy
figure is power x time:

* **k-fold cross-validation written by hand, each fold a top-level run**: ``for lr in ...:
  for fold in range(5): with gp.track(f"lr={lr}", params={"lr": lr, "fold": fold})``, no run
  around a configuration's folds; the same with a ``seed`` (one configuration's repeated
  seeds), and the folds inside one ``gp.track("search")``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, evp_curves, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from greenprint.analysis import expected_max_performance

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent / "tracking")

#: The constant power every script's meter draws, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0

# ------------------------------------------------------------ folds as top-level runs
#: Three learning rates, five folds each, every fold its own top-level run (study
#: ``cv-roots``); the same with five seeds (``seed-roots``); the folds inside one search run
#: (``cv-search``).
FOLDS_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import greenprint as gp
from _meters import ConstantProcessPower


def accuracy(lr, k):
    return {0.01: 0.80, 0.1: 0.86, 1.0: 0.81}[lr] + 0.004 * ((k * 7) % 5 - 2)


def folds(study, param):
    for lr in (0.01, 0.1, 1.0):
        for k in range(5):
            with gp.track(f"lr={lr}", study=study, params={"lr": lr, param: k},
                          meters=ConstantProcessPower(@WATTS@)) as run:
                sum(i * i for i in range(20000))
                run.log(accuracy=accuracy(lr, k))


folds("cv-roots", "fold")
folds("seed-roots", "seed")
with gp.track("search", study="cv-search", meters=ConstantProcessPower(@WATTS@)):
    folds("cv-search", "fold")
"""


@pytest.fixture(scope="module")
def folds_home(tmp_path_factory):
    """The folds script run once in an empty directory."""
    home = _empty(tmp_path_factory, "cv-roots")
    script = FOLDS_SCRIPT.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))
    (home / "cv.py").write_text(script, encoding="utf-8")
    done = run_in(home, sys.executable, "cv.py")
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def _accuracy(lr: float, k: int) -> float:
    return {0.01: 0.80, 0.1: 0.86, 1.0: 0.81}[lr] + 0.004 * ((k * 7) % 5 - 2)


def _note(report: dict, text: str) -> str:
    (found,) = [n for n in report["notes"] if text in n]
    return found


def test_folds_as_top_level_runs_say_they_are_read_as_trials_and_the_fix(folds_home):
    """Before: 15 trials, the expected best score drawn over single folds and the final run
    the best fold (0.868 of a configuration whose folds' mean is 0.86), with nothing said. The
    read stays (nothing links the folds: they may be meant as trials), but a note says that
    the 15 trials are 3 configurations run 5 times, differing by 'fold' only, and gives the
    commands that make each configuration one trial; run as the note says, the report reads 3
    trials, each scored by its 5 folds' mean and costing them all, the total unchanged."""
    home = folds_home
    report = _report(home, "--study", "cv-roots", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 15
    note = _note(report, "configurations")
    assert "15 trials are 3 configurations run 5 times each" in note
    assert "'fold'" in note and "greenprint ledger set-role part" in note
    runs = gp.Ledger(home / "greenprint.db").runs(study="cv-roots")
    by_lr: dict[float, list[gp.RunRecord]] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        by_lr.setdefault(run.params["lr"], []).append(run)
    first = by_lr[0.01]
    assert f"--part-of {first[0].id[:8]}" in note
    assert " ".join(r.id[:8] for r in first[1:]) in note
    total = report["price_tag"]["total"]["energy_kwh"]
    assert total == pytest.approx(sum(r.energy_kwh for r in runs), rel=1e-9)

    for group in by_lr.values():  # what the note says, once per configuration
        ids = [r.id[:8] for r in group]
        done = run_in(home, GREENPRINT, "ledger", "set-role", "part", *ids[1:],
                      "--part-of", ids[0])  # fmt: skip
        assert done.returncode == 0, done.stderr
    report = _report(home, "--study", "cv-roots", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (15, 3)
    assert tag["total"]["energy_kwh"] == pytest.approx(total, rel=1e-9)
    assert not [n for n in report["notes"] if "configurations run" in n]
    assert _note(report, "each trial's score is the mean of its own and its repeats'")
    rows = {r["id"]: r for r in report["runs"]}
    means = {}
    for lr, group in by_lr.items():
        row = rows[group[0].id]
        means[lr] = math.fsum(_accuracy(lr, k) for k in range(5)) / 5
        assert (row["role"], row["score_source"]) == ("trial", "parts")
        assert row["score"] == pytest.approx(means[lr], abs=1e-12)
    best = by_lr[0.1]
    assert (tag["final"]["name"], tag["final"]["run_id"]) == ("lr=0.1", best[0].id)
    assert tag["final"]["score"] == pytest.approx(means[0.1], abs=1e-12)
    assert tag["final"]["energy_kwh"] == pytest.approx(sum(r.energy_kwh for r in best), rel=1e-9)
    curve = evp_curves(report)["with replacement (Dodge et al.)"]
    expected = expected_max_performance(list(means.values()), mode="max").mean.tolist()
    assert curve == pytest.approx(expected, abs=1e-12)
    _export_reads_as_the_report(home, "cv-roots", report)


def test_seeds_as_top_level_runs_say_so_too(folds_home):
    """One configuration's repeated seeds, each a top-level run: read as 15 trials (seeds may
    be meant as draws of the search, as Dodge et al. 2020 draw them), with the note naming
    'seed'."""
    report = _report(folds_home, "--study", "seed-roots", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 15
    note = _note(report, "configurations")
    assert "15 trials are 3 configurations run 5 times each" in note and "'seed'" in note


def test_folds_inside_a_search_run_say_to_track_a_run_per_configuration(folds_home):
    """The folds inside one search run are its 15 trials, as before; the note says so, and as
    a fold measured inside the search cannot be made a part of another run afterwards
    (set-role refuses), it gives the fix: a run per configuration around its folds."""
    report = _report(folds_home, "--study", "cv-search", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 15
    note = _note(report, "configurations")
    said = note[note.index("15 trials are 3 configurations run 5 times each") :]
    assert "set-role" not in said and "one run per configuration" in said
