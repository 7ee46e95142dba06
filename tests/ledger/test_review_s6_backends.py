"""Issue 12 review: session 6's readings of a study on every ledger backend (real PostgreSQL).

The Optuna pruner reads a trial's ended folds back from the ledger while a fold in a child
process writes it; ``efficiencies`` and ``learning_curve`` read the study back; each as on SQLite.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from greenprint.analysis import efficiencies, learning_curve, price_tag

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}

FOLD = """
import sys
import greenprint as gp

with gp.track("fold" + sys.argv[1], role="part", sample_interval_s=0.05) as fold:
    fold.add_fpo(1000)
    fold.log(accuracy=0.5 + int(sys.argv[1]) / 100)
"""


def test_the_fpo_pruner_reads_folds_of_child_processes_back(ledger_url: str, tmp_path: Path):
    """Each fold a child process writing the ledger; the trial's cost at each step is its
    ended folds' FPO, read back from the ledger (1000 per fold)."""
    optuna = pytest.importorskip("optuna")
    from greenprint.greener import CostAwareOptunaPruner
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    script = tmp_path / "fold.py"
    script.write_text(FOLD, encoding="utf-8")
    cb = GreenprintCallback(study="s", ledger=ledger_url, **FAST)
    pruner = CostAwareOptunaPruner(cost="fpo", n_startup_trials=5)

    def objective(trial: Any) -> float:
        for k in range(3):  # the fold's parent: the trial's run, through the environment
            subprocess.run([sys.executable, str(script), str(k)], check=True, timeout=120)
            trial.report(0.5 + k / 100, k)
            assert not trial.should_prune()
        return 0.51

    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(cb.track(objective), n_trials=2, callbacks=[cb])
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for number in range(2):
        costs = [c for c, _ in pruner.pruner_for(study).curve(number)]
        assert costs == [1000.0, 2000.0, 3000.0]
    with gp.Ledger(ledger_url) as led:
        runs = led.runs(study="s")
    items = efficiencies(runs, metric="accuracy")
    assert sorted(e.name for e in items) == ["trial-0", "trial-1"]
    assert all(e.fpo == 3000 and e.score_source == "parts" for e in items)  # its folds
    assert price_tag(runs, metric="accuracy").total.fpo == 6000


def test_trials_in_threads_read_back_share_their_searchs_measurement(ledger_url: str) -> None:
    """Two trials at a time in threads under a search run, at two data sizes: read back from
    the ledger, each trial's energy in ``efficiencies`` and the learning curve is its share of
    what the search measured (their sum the price tag's, never more than the search's own)."""
    with gp.track("search", study="t", ledger=ledger_url, **FAST):

        def trial(k: int) -> None:
            with gp.track(f"t{k}", dataset_size=100 * (1 + k % 2), **FAST) as run:
                total = 0
                for i in range(200_000):  # some CPU time for the estimate to read
                    total += i * i
                run.add_fpo(1000 + k)
                run.log(accuracy=0.5 + k / 100)

        for wave in range(2):
            threads = [threading.Thread(target=trial, args=(2 * wave + j,)) for j in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    with gp.Ledger(ledger_url) as led:
        runs = led.runs(study="t")
    by_name = {r.name: r for r in runs}
    tag = price_tag(runs, metric="accuracy")
    items = {e.name: e for e in efficiencies(runs, metric="accuracy")}
    assert sorted(items) == ["t0", "t1", "t2", "t3"]  # the search is a sweep, no entry
    shared = sum(e.energy_kwh for e in items.values())
    assert shared <= by_name["search"].energy_kwh * (1 + 1e-9)
    assert shared <= sum(by_name[n].energy_kwh for n in items) * (1 + 1e-9)
    assert tag.total.energy_kwh == pytest.approx(by_name["search"].energy_kwh, rel=1e-9)
    assert all(items[n].fpo == by_name[n].fpo for n in items)
    curve = learning_curve(runs, metric="accuracy")
    assert curve.dataset_size.tolist() == [100, 200] and curve.n_skipped == 0
    sizes, means = curve.dataset_size.tolist(), curve.energy_kwh_mean.tolist()
    for size, mean in zip(sizes, means, strict=True):
        at = [items[n].energy_kwh for n in items if by_name[n].dataset_size == size]
        assert mean == pytest.approx(sum(at) / len(at), rel=1e-12)
