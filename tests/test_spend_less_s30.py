"""Session 30: greenprint's "spend less" features as a new user meets them.

An empty directory, a clean environment (``_clean_env.clean_env``), a script as a user writes
it from docs/pruning.md, docs/greener.md and docs/fpo.md; the figures checked from first
principles.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, empty_home, run_in

#: The quick start of docs/pruning.md with the defaults a user starts from: the pruner's cost
#: is energy, the callback samples its meters every second, and each epoch is a few tens of
#: milliseconds of work (a small model on a small data set).
ENERGY_SEARCH = """
import json, time
import optuna
import greenprint as gp
from greenprint.greener import CostAwareOptunaPruner
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
pruner = CostAwareOptunaPruner(n_startup_trials=2)
judged = []


def objective(trial):
    kind = trial.suggest_categorical("kind", ["fast", "ahead", "slow"])
    for epoch in range(1, 5):
        # an epoch's work: the CPU busy for that much CPU time (not wall time: under load a
        # wall-clock epoch got less CPU, so less energy, and the slow trial's pace was lost)
        end = time.process_time() + (0.04 if kind == "slow" else 0.02)
        while time.process_time() < end:
            pass
        score = 0.2 * epoch + (0.4 if kind == "ahead" else 0.0)
        trial.report(score, epoch)
        prune = trial.should_prune()
        d = pruner.decision(trial.study, trial.number)
        judged.append({"trial": trial.number, "epoch": epoch, "cost": d.cost,
                       "reason": d.reason, "prune": prune})
        if prune:
            raise optuna.TrialPruned()
    return score


cb = GreenprintCallback(ledger="greenprint.db")
study = optuna.create_study(study_name="short-epochs", direction="maximize", pruner=pruner)
for kind in ("fast", "fast", "ahead", "slow"):
    study.enqueue_trial({"kind": kind})
study.optimize(cb.track(objective), n_trials=4, callbacks=[cb])
energy = {r.name: r.energy_kwh for r in gp.Ledger("greenprint.db").runs(study="short-epochs")}
print(json.dumps({"judged": judged, "energy": energy,
                  "states": [t.state.name for t in study.trials]}))
"""


@pytest.fixture(scope="module")
def energy_search(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home: Path = empty_home(tmp_path_factory, "short-epochs")
    (home / "search.py").write_text(ENERGY_SEARCH, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py", timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_energy_pruner_judges_short_epochs_at_the_energy_they_spent(energy_search: dict) -> None:
    """``CostAwareOptunaPruner()`` (cost="energy") with epochs shorter than the 1 s sample.

    It read the trial run's energy as of its last sample: 0 kWh at every report of a trial
    shorter than a second, so each trial was judged "at cost 0 kWh" against the others'
    final scores. Its meters are now read at each ``should_prune()``.
    """
    judged = energy_search["judged"]
    assert len(judged) >= 13  # 4 trials of 4 epochs, the slow one may be stopped early
    for report in judged:
        assert report["cost"] > 0, report
        assert "at cost 0 " not in report["reason"], report  # 0 mWh since s41 (0 kWh before)
    for trial in {r["trial"] for r in judged}:
        costs = [r["cost"] for r in judged if r["trial"] == trial]
        assert costs == sorted(costs) and len(set(costs)) == len(costs), costs  # it grows
        # the last report is at the end of the trial's last epoch: nearly its whole energy,
        # which the ledger holds once the run has ended (its meters read a last time)
        whole = energy_search["energy"][f"trial-{trial}"]
        assert 0.5 * whole < costs[-1] <= whole * (1 + 1e-9), (trial, costs, whole)


def test_trials_are_judged_at_equal_energy(energy_search: dict) -> None:
    """Two trials score 0.2 per 20 ms epoch; trial 2 as fast, 0.4 ahead at every epoch; trial
    3 at half their pace (40 ms an epoch). At cost 0 every reference read its final 0.8, so
    trial 2 was stopped at its first report (0.6 < 0.8) and the search lost its best trial;
    at equal energy it is ahead of all, and only the slow trial is stopped: at its first
    report (about two fast epochs' energy) 0.2 is below the median of the others there."""
    assert energy_search["states"] == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"]
    (slow,) = [r for r in energy_search["judged"] if r["trial"] == 3]
    assert slow["prune"] and slow["epoch"] == 1 and slow["cost"] > 0, slow
    assert slow["reason"].startswith("0.2 < median 0."), slow


#: A model pruned as docs/greener.md's techniques prune it (``torch.nn.utils.prune``: 50% of
#: each layer's weights by magnitude, made permanent), counted as docs/fpo.md counts a model.
PRUNED_MODELS = """
import torch
from torch import nn
from torch.nn.utils import prune


def dense():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def pruned():
    model = dense()
    for layer in (model[0], model[2]):
        prune.l1_unstructured(layer, "weight", amount=0.5)
        prune.remove(layer, "weight")
    return model
"""

COUNT_PRUNED = """
import json
import torch
import greenprint as gp
from models import dense, pruned

x = torch.randn(32, 64)
for make in (dense, pruned):
    counted = gp.count_fpo(make(), x, backward=False)
    print(json.dumps({"total": counted.total, "table": counted.table(),
                      "weights": counted.to_dict()["weights"],
                      "zero_weights": counted.to_dict()["zero_weights"]}))
"""


@pytest.fixture(scope="module")
def pruned_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home: Path = empty_home(tmp_path_factory, "pruned-count")
    (home / "models.py").write_text(PRUNED_MODELS, encoding="utf-8")
    (home / "count.py").write_text(COUNT_PRUNED, encoding="utf-8")
    return home


def test_count_of_a_pruned_model_says_its_zeros_are_multiplied(pruned_home: Path) -> None:
    """``gp.count_fpo`` of a model with half its weights pruned to 0 counts the dense FPO (the
    dense kernels multiply the zeros too), as it should; its table read "params 9,610" and
    nothing else, so a user could not tell the count from that of a sparse kernel. It now
    says how many of the layer weights are 0 and that they were counted as multiplied."""
    done = run_in(pruned_home, sys.executable, "count.py", timeout=120)
    assert done.returncode == 0, done.stderr
    dense, pruned = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    # first principles, a batch of 32: 2 * 64 * 128 products and adds + 128 biases, 128 ReLUs,
    # 2 * 128 * 10 + 10: the same for both, since dense kernels run the zeros
    per_example = 2 * 64 * 128 + 128 + 128 + 2 * 128 * 10 + 10
    assert dense["total"] == pruned["total"] == 32 * per_example == 614_720
    # l1_unstructured zeroes round(0.5 * n) of each layer's weights: 4,096 + 640 of 9,472
    assert (pruned["weights"], pruned["zero_weights"]) == (64 * 128 + 128 * 10, 4_096 + 640)
    assert (dense["weights"], dense["zero_weights"]) == (9_472, 0)
    line = next(x for x in pruned["table"].splitlines() if x.startswith("zeros"))
    assert "4,736 of 9,472 layer weights are 0 (50%)" in line, line
    assert "counted as dense kernels run them, zeros multiplied" in line, line
    assert "sparse kernel" in line and "FPO executed" in line, line
    assert not any(x.startswith("zeros") for x in dense["table"].splitlines())


def test_greenprint_fpo_of_a_pruned_model_on_the_cpu_says_so_too(pruned_home: Path) -> None:
    """The CLI prints the same table: on the CPU (real weights) the zeros line is there; on
    meta (the default: no values) the count cannot know and the JSON says null."""
    done = run_in(
        pruned_home, GREENPRINT, "fpo", "models:pruned", "--input-shape", "32,64",
        "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "614,720 FPO" in done.stdout
    assert "zeros      4,736 of 9,472 layer weights are 0 (50%)" in done.stdout, done.stdout
    meta = run_in(pruned_home, GREENPRINT, "fpo", "models:pruned", "--input-shape", "32,64",
                  "--json")  # fmt: skip
    assert meta.returncode == 0, meta.stderr
    counted = json.loads(meta.stdout)
    assert counted["total"] == 614_720
    assert counted["weights"] is None and counted["zero_weights"] is None


#: docs/greener.md's command-line models, with a loader whose first batch is empty (a slice
#: past the end of a data set, a filter that kept nothing).
EMPTY_BATCH_MODELS = """
import torch
from torch import nn


def trained():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2)).eval()


def batches():
    x = torch.randn(32, 16)
    return [(x[32:], torch.zeros(0, dtype=torch.long)), (x, (x.sum(dim=1) > 0).long())]
"""

COMPARE_EMPTY = """
import torch
from greenprint import greener
from models import trained

try:
    greener.compare(trained(), None, torch.randn(0, 16), [greener.prune_unstructured(0.5)],
                    ledger=False, min_time_s=0.01)
except Exception as e:
    print(type(e).__name__, e)
"""


def test_an_empty_batch_is_one_line_that_names_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A first batch with no example: the CLI said ``models.py:trained failed on its data:
    ZeroDivisionError: float division by zero`` (blaming the model) and ``greener.compare``
    raised the ZeroDivisionError itself (the timed loop's inferences per second). Both now say
    the batch has no example, before anything is measured or written."""
    home: Path = empty_home(tmp_path_factory, "empty-batch")
    (home / "models.py").write_text(EMPTY_BATCH_MODELS, encoding="utf-8")
    (home / "compare.py").write_text(COMPARE_EMPTY, encoding="utf-8")
    done = run_in(
        home, GREENPRINT, "greener", "models.py:trained", "--data", "models.py:batches",
        "--variants", "prune-50", "--min-time", "0.01", "--out", "out",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "greenprint: error: --data models.py:batches: batch 0 has no example (its first input "
        "has shape (0, 16); the first dimension is the batch)"
    ]
    assert not (home / "out").exists() and not (home / "greenprint.db").exists()
    script = run_in(home, sys.executable, "compare.py", timeout=120)
    assert script.returncode == 0, script.stderr
    assert script.stdout.strip() == (
        "ConfigError example_inputs must be a batch of at least one example: its first input "
        "has shape (0, 16)"
    )
