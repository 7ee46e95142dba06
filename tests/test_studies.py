"""run_learning_curve returns the curve learning_curve reads from the study: runs nested in its
runs (a Lightning fit with count_fpo, folds that call run.add_fpo, runs in child processes) count.

Before: the returned curve was built from the records of the learning-curve runs alone, so where
the training function opened child runs that counted the FPO its ``fpo_mean`` was NaN (and its
energy the learning-curve run's own), while ``learning_curve(ledger.runs(study=...))`` read it
right. Real runs, a real Lightning fit, a real child process.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import greenprint as gp
from greenprint.analysis import LearningCurve, learning_curve, run_learning_curve
from greenprint.tracking import active_runs

FAST: dict[str, Any] = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
FIELDS = (
    "dataset_size",
    "n_runs",
    "score_mean",
    "score_std",
    "energy_kwh_mean",
    "energy_kwh_std",
    "emissions_kg_mean",
    "emissions_kg_std",
    "fpo_mean",
    "fpo_std",
    "duration_s_mean",
    "duration_s_std",
)


def _same(got: LearningCurve, want: LearningCurve) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert (got.n_skipped, got.notes) == (want.n_skipped, want.notes)


def _folds(fraction: float) -> tuple[float, int]:
    """Three folds, each a run that counts its FPO (1e6 per example seen)."""
    size = int(1000 * fraction)
    for k in range(3):
        with gp.track(f"fold-{k}", role="part", **FAST) as fold:
            fold.add_fpo(size * 10**6)
            fold.log(acc=0.5 + fraction / 4 + k / 100)
    return 0.5 + fraction / 4, size


def test_folds_counting_the_fpo_give_the_ledgers_curve(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    curve = run_learning_curve(
        _folds, [0.25, 0.5, 1.0], study="lc", ledger=db, metric="acc", track_options=FAST
    )
    _same(curve, learning_curve(gp.Ledger(db).runs(study="lc"), metric="acc"))
    # first principles: each run's FPO is its 3 folds', the learning-curve run counted none
    np.testing.assert_array_equal(curve.fpo_mean, [3 * s * 1e6 for s in (250, 500, 1000)])
    np.testing.assert_allclose(curve.score_mean, [0.5625, 0.625, 0.75])  # its own score
    runs = gp.Ledger(db).runs(study="lc")
    lc = sorted((r for r in runs if r.role == "learning-curve"), key=lambda r: r.dataset_size)
    assert [r.fpo for r in lc] == [None, None, None]  # what the old curve read: NaN
    for point, run in zip(curve.energy_kwh_mean, lc, strict=True):
        folds = [r for r in runs if r.parent_id == run.id]
        # one after another inside it: max(own, their sum), as the report reads it
        assert point == max(run.energy_kwh, sum(f.energy_kwh for f in folds))


def test_without_a_ledger_the_runs_as_they_stand(tmp_path: Path) -> None:
    made: list[gp.Run] = []
    nested: list[gp.Run] = []

    def train(fraction: float, seed: int) -> tuple[float, int]:
        made.append(list(active_runs())[-1])
        with gp.track("fit", ledger=False, **FAST) as fit:  # (not inherited: give it)
            nested.append(fit)
            with gp.track("epoch", ledger=False, **FAST) as epoch:  # a grandchild counts too
                nested.append(epoch)
                epoch.add_fpo(7 * seed)
        return 0.9, int(100 * fraction)

    curve = run_learning_curve(
        train, [0.5, 1.0], study="mem", ledger=False, seed=1, repeats=2, track_options=FAST
    )
    records = [r.record for r in made + nested]
    assert all(r.study == "mem" for r in records)
    _same(curve, learning_curve(records, metric="score"))
    np.testing.assert_array_equal(curve.fpo_mean, [7 * 1.5, 7 * 1.5])  # seeds 1 and 2
    assert not math.isnan(curve.fpo_std[0])


_CHILD = textwrap.dedent(
    """
    import sys
    import greenprint as gp

    with gp.track("worker", sample_interval_s=0.05, flush_interval_s=0.1) as run:
        run.add_fpo(int(sys.argv[1]))
    """
)


def test_runs_in_child_processes_count(tmp_path: Path) -> None:
    """fn trains in a child process that tracks its own run (its parent, study and ledger
    inherited through GREENPRINT_PARENT_RUN): the curve reads it from the ledger."""
    db = tmp_path / "gp.db"

    def train(fraction: float) -> float:
        fpo = str(int(fraction * 10**9))
        env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_START"}
        subprocess.run([sys.executable, "-c", _CHILD, fpo], env=env, check=True, timeout=120)
        return fraction

    # an open Ledger, not the path: a path is checked for each run by opening the file, and
    # closing it drops this process's SQLite locks while the child process writes
    led = gp.Ledger(db)
    curve = run_learning_curve(
        train, [0.5, 1.0], study="proc", ledger=led, full_size=10, track_options=FAST
    )
    runs = led.runs(study="proc")
    names = sorted(r.name for r in runs)
    assert names == ["learning-curve-0.5", "learning-curve-1", "worker", "worker"]
    _same(curve, learning_curve(runs, metric="score"))
    np.testing.assert_array_equal(curve.fpo_mean, [5e8, 1e9])


def test_a_lightning_fit_with_count_fpo(tmp_path: Path) -> None:
    """The way a Lightning user builds a curve: fn fits on a subsample with the greenprint
    callback counting the FPO; the fit is a run nested in the learning-curve run."""
    pytest.importorskip("lightning", reason="lightning is not installed (greenprint[lightning])")
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    from _tiny_lightning import Regressor, quiet_trainer
    from greenprint.integrations.lightning import GreenprintCallback

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=gen), torch.randn(64, 1, generator=gen)
    db = tmp_path / "gp.db"

    def fit(fraction: float) -> tuple[float, int]:
        n = int(64 * fraction)
        data = DataLoader(TensorDataset(x[:n], y[:n]), batch_size=16)
        callback = GreenprintCallback("fit", ledger=db, count_fpo=True, **FAST)
        trainer = quiet_trainer(callback, max_epochs=1)
        model = Regressor()
        trainer.fit(model, data)
        with torch.no_grad():
            loss = float(torch.nn.functional.mse_loss(model.layer(x), y))
        return -loss, n

    curve = run_learning_curve(fit, [0.5, 1.0], study="lit", ledger=db, track_options=FAST)
    runs = gp.Ledger(db).runs(study="lit")
    _same(curve, learning_curve(runs, metric="score"))
    fits = sorted((r for r in runs if r.name == "fit"), key=lambda r: r.fpo)
    # parts of their learning-curve runs, given by the callback (7c5cd21), not inferred
    assert [r.role for r in runs if r.name == "fit"] == ["part", "part"]
    # 2 and 4 batches of 16 examples, the same FPO per step
    assert fits[1].fpo == 2 * fits[0].fpo > 0
    np.testing.assert_array_equal(curve.fpo_mean, [fits[0].fpo, fits[1].fpo])
