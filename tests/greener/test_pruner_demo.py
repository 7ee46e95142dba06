"""The demo's pruner comparison: its search and the same trials stopped at equal FPO."""

from __future__ import annotations

import math
import re

import pytest

from greenprint import UnknownStudyError
from greenprint.demo._display import PlainDisplay
from greenprint.ledger import Ledger
from integrations._frameworks import need_installed

# looked up without importing them: collection (in every worker) stays light; a skip, but a
# failure under CI=true (a broken environment)
need_installed("torch", "torch")
need_installed("sklearn", "demo")
need_installed("optuna", "demo")


@pytest.mark.slow
def test_the_same_search_stopped_two_ways(tmp_path, monkeypatch):
    """The per-epoch arm is the demo's own search (read from the ledger, not trained again);
    the cost-aware arm trains the same configurations from the same seeds: each trial trains
    as it did in the search, epoch by epoch, until a pruner stops it. The search's pruner stops
    what Optuna's ``MedianPruner`` stops, replayed on its curves (tests/greener/_median_replay.py).
    Until session 43 the comparison ran a third search, Optuna's ``RandomSampler`` with its
    ``MedianPruner``: other configurations than the demo's, 24 trials trained for nothing new."""
    import io

    import greenprint.fpo as fpo_module
    from greener._median_replay import demo_stops, optuna_median_stops
    from greenprint.demo._models import WARMUP_EPOCHS, startup_trials
    from greenprint.demo._pruning import compare_pruners
    from greenprint.demo._study import _load_digits, random_search

    # Each trial counts its configuration's FPO inside its run (demo._models keeps the counts
    # by architecture and batch): both arms count the same, or the trials trained again would
    # spend less energy for the counts kept from the search (one MLP trial of one epoch: 74
    # against 21 uWh, said as 72 % less energy for the same FPO)
    counts: list[str] = []
    for name in ("training_fpo", "count_fpo"):
        real = getattr(fpo_module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            counts.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(fpo_module, name, spy)
    # the search starts with no count kept, as in `greenprint demo`'s own process (a demo test
    # run before in this worker's process left counts of the same architectures: the search
    # counted 3 of them, the arm all 5)
    monkeypatch.setattr("greenprint.demo._models._FPO_COUNTS", {})
    led = Ledger(tmp_path / "l.db")
    data = _load_digits(0)
    show = PlainDisplay(io.StringIO())
    random_search(led, "digits", data, show, trials=6, max_epochs=4, seed=0)
    in_search = list(counts)
    comparison = compare_pruners(led, "digits", data, show, seed=0)
    assert in_search and counts[len(in_search) :] == in_search
    median = led.runs(study="digits")
    cost = led.runs(study="digits-cost-pruner")
    assert set(led.studies()) == {"digits", "digits-cost-pruner"}  # no third search
    # the search's configurations, in its order (Optuna records them without "epochs")
    assert [{k: v for k, v in r.params.items() if k != "epochs"} for r in median] == [
        r.params for r in cost
    ]
    assert len(median) == 6 and {r.role for r in median + cost} == {"trial"}
    assert startup_trials(6) == 1
    assert demo_stops(median) == optuna_median_stops(
        median, startup_trials=1, warmup_epochs=WARMUP_EPOCHS
    )
    # each trial trained as it did in the search (same seeds, same initial weights): the same
    # score after every epoch both ran, the same FPO where both ran the same epochs
    for a, b in zip(median, cost, strict=True):
        curves = [
            [v for _, v in sorted((p.step, p.value) for p in r.metrics
                                  if p.name == "val_accuracy" and p.step is not None)]
            for r in (a, b)
        ]  # fmt: skip
        common = min(map(len, curves))
        assert curves[0][:common] == curves[1][:common], (a.name, curves)
        if len(curves[0]) == len(curves[1]):
            assert a.fpo == b.fpo
        assert a.status in ("finished", "pruned") and b.status in ("finished", "pruned")
    # each outcome is its search's price tag, every trial counted, pruned ones too
    for outcome, runs in ((comparison.median, median), (comparison.cost_aware, cost)):
        assert outcome.trials == 6
        assert outcome.pruned == sum(r.status == "pruned" for r in runs)
        assert outcome.energy_kwh == pytest.approx(math.fsum(r.energy_kwh for r in runs))
        assert outcome.fpo == sum(r.fpo or 0 for r in runs)
        finished = [r.metric("val_accuracy") for r in runs if r.status == "finished"]
        assert outcome.best_score == max(finished)
    assert comparison.median.study == "digits"
    assert comparison.cost_aware.study == "digits-cost-pruner"
    # the cost-aware best trial is named by Optuna's callback ('trial-1'): the line says whose
    # configuration of the search it trained again
    assert comparison.median.best_config is None
    k = [r.name for r in cost].index(comparison.cost_aware.best_trial)
    assert comparison.cost_aware.best_config == median[k].name
    # no trial is stopped before epoch 3 under either pruner
    for r in median + cost:
        assert len([p for p in r.metrics if p.name == "val_accuracy"]) >= 3
    saved = 100 * (comparison.median.fpo - comparison.cost_aware.fpo) / comparison.median.fpo
    assert comparison.fpo_saving_pct == pytest.approx(saved)
    first, *rest = comparison.lines()
    assert first.startswith("this study's random search of 6 trials (seed 0, up to 4 epochs)")
    assert "as study digits-cost-pruner (not in this study's price tag)" in first
    assert rest[0].startswith("MedianPruner (per epoch): ")
    assert rest[1].startswith("CostAwarePruner (at equal FPO): ")
    assert rest[1].endswith(
        f"({comparison.cost_aware.best_trial} of study digits-cost-pruner, "
        f"{median[k].name}'s configuration)"
    ), rest[1]
    # in words, as a reader says it: '49.6 % less FPO, 37.5 % less energy, best score 0.0056
    # lower' (it read '+49.6 % FPO saved', and '-0.2 % FPO saved' for 0.2 % more)
    assert rest[2].startswith("cost-aware against median: ")
    assert re.search(r": (\d+\.\d % (less|more)|the same) FPO, ", rest[2]), rest[2]
    assert re.search(r", (\d+\.\d % (less|more)|the same) energy", rest[2]), rest[2]
    words = rest[2].split(": ", 1)[1]
    assert "saved" not in words and "+" not in words and "-" not in words, rest[2]
    with pytest.raises(UnknownStudyError, match="no study 'nothing'"):
        compare_pruners(led, "nothing", data, show, seed=0)
    led.close()


# The demo's summary and report show the comparison: tests/test_docs_examples.py checks them
# on the README quickstart's run (test_readme_demo_runs_the_whole_study).


def test_one_trial_of_one_epoch_is_said_in_the_singular():
    """``greenprint demo --trials 1 --epochs 1`` closed with 'random search of 1 trials (seed 0,
    up to 1 epochs)'."""
    from greenprint.demo._pruning import PrunerComparison, PrunerOutcome

    one = PrunerOutcome("median", "s", 1, 0, 7e-8, 3e-8, 26_900_000, 0.2, 0.81, "trial-01-mlp")
    first = PrunerComparison(one, one, trials=1, max_epochs=1, seed=0).lines()[0]
    assert first.startswith("this study's random search of 1 trial (seed 0, up to 1 epoch), ")


def test_the_comparison_says_less_or_more_in_words():
    """The demo's closing lines read 'cost-aware against median: -0.2 % FPO saved, +4.3 % energy
    saved, best score +0.0000' (its --trials 6 --epochs 5 run): a negative saving for 0.2 %
    more. Each difference is said as less, more or the same."""
    from greenprint.demo._pruning import PrunerComparison, PrunerOutcome

    def outcome(label, kwh, fpo, best):
        return PrunerOutcome(label, "s", 24, 10, kwh, kwh * 0.48, fpo, 10.0, best, "trial-1")

    def last(median, cost):
        return PrunerComparison(median, cost, trials=24, max_epochs=15, seed=0).lines()[-1]

    median = outcome("median", 12.6e-6, 424 * 10**9, 0.9833)
    assert last(median, outcome("cost", 7.9e-6, 214 * 10**9, 0.9778)) == (
        "cost-aware against median: 49.5 % less FPO, 37.3 % less energy, best score 0.0055 lower"
    )
    assert last(median, outcome("cost", 13.2e-6, 425 * 10**9, 0.9833)) == (
        "cost-aware against median: 0.2 % more FPO, 4.8 % more energy, the same best score"
    )
    assert last(median, outcome("cost", 12.6e-6, 424 * 10**9, 0.99)) == (
        "cost-aware against median: the same FPO, the same energy, best score 0.0067 higher"
    )


def test_the_demo_search_pruner_is_optunas_median_rule():
    """``demo._models.MedianPruner`` is "the rule of Optuna's MedianPruner", which the pruner
    comparison relies on (it reads the demo's search as its per-epoch arm). It compared a
    trial's latest score with the median until session 43; Optuna compares its best so far:
    on noisy curves, 40 trials of 6 epochs, the two stop the same trials at the same epochs."""
    from types import SimpleNamespace

    import numpy as np

    from greener._median_replay import optuna_median_stops
    from greenprint.demo._models import MedianPruner

    rng = np.random.default_rng(0)
    pruner = MedianPruner(startup_trials=3, warmup_epochs=2)
    runs, stops = [], []
    for _ in range(40):
        curve = np.clip(rng.uniform(0.2, 0.9) + rng.normal(0, 0.08, 6).cumsum() / 3, 0, 1)
        stop = next((e for e in range(1, 6) if pruner.should_prune(e, float(curve[e - 1]))), None)
        scores = [float(v) for v in curve[: stop or 6]]
        if stop is None:
            pruner.record(scores)
        stops.append(stop)
        points = [SimpleNamespace(name="val_accuracy", step=e, value=v) for e, v in
                  enumerate(scores, start=1)]  # fmt: skip
        runs.append(SimpleNamespace(metrics=points, params={"epochs": 6}))
    assert stops == optuna_median_stops(runs, startup_trials=3, warmup_epochs=2)
    # noisy enough to tell the rules apart: the latest score (the rule until session 43) stops
    # three of these trials that Optuna's rule keeps (at epochs 2, 3 and 5; checked when written)
    assert any(s is None for s in stops) and sum(s is not None for s in stops) > 5
