"""The demo's pruner comparison: the same search twice, each search's price tag and best score."""

from __future__ import annotations

import math
import re

import pytest

from greenprint.demo._display import PlainDisplay
from greenprint.ledger import Ledger
from integrations._frameworks import need_installed

# looked up without importing them: collection (in every worker) stays light; a skip, but a
# failure under CI=true (a broken environment)
need_installed("torch", "torch")
need_installed("sklearn", "demo")
need_installed("optuna", "demo")


@pytest.mark.slow
def test_the_same_search_stopped_two_ways(tmp_path):
    import io

    from greenprint.demo._pruning import compare_pruners
    from greenprint.demo._study import _load_digits

    led = Ledger(tmp_path / "l.db")
    comparison = compare_pruners(
        led,
        "digits",
        _load_digits(0),
        PlainDisplay(io.StringIO()),
        trials=6,
        max_epochs=4,
        seed=0,
        startup_trials=1,
        warmup_epochs=3,
    )
    median = led.runs(study="digits-median-pruner")
    cost = led.runs(study="digits-cost-pruner")
    # the same configurations in the same order (RandomSampler, same seed)
    assert [r.params for r in median] == [r.params for r in cost]
    assert len(median) == 6 and {r.role for r in median + cost} == {"trial"}
    # a trial that both let finish scored the same in both (same seeds, same initial weights)
    for a, b in zip(median, cost, strict=True):
        if a.status == b.status == "finished":
            assert a.metric("val_accuracy") == b.metric("val_accuracy")
        assert a.status in ("finished", "pruned") and b.status in ("finished", "pruned")
    # each outcome is its search's price tag, every trial counted, pruned ones too
    for outcome, runs in ((comparison.median, median), (comparison.cost_aware, cost)):
        assert outcome.trials == 6
        assert outcome.pruned == sum(r.status == "pruned" for r in runs)
        assert outcome.energy_kwh == pytest.approx(math.fsum(r.energy_kwh for r in runs))
        assert outcome.fpo == sum(r.fpo or 0 for r in runs)
        finished = [r.metric("val_accuracy") for r in runs if r.status == "finished"]
        assert outcome.best_score == max(finished)
    # no trial is stopped before epoch 3 under either pruner
    for r in median + cost:
        assert len([p for p in r.metrics if p.name == "val_accuracy"]) >= 3
    saved = 100 * (comparison.median.fpo - comparison.cost_aware.fpo) / comparison.median.fpo
    assert comparison.fpo_saving_pct == pytest.approx(saved)
    first, *rest = comparison.lines()
    assert first.startswith("the same random search of 6 trials (seed 0, up to 4 epochs)")
    assert rest[0].startswith("Optuna MedianPruner (per epoch): ")
    assert rest[1].startswith("CostAwarePruner (at equal FPO): ")
    # in words, as a reader says it: '49.6 % less FPO, 37.5 % less energy, best score 0.0056
    # lower' (it read '+49.6 % FPO saved', and '-0.2 % FPO saved' for 0.2 % more)
    assert rest[2].startswith("cost-aware against median: ")
    assert re.search(r": (\d+\.\d % (less|more)|the same) FPO, ", rest[2]), rest[2]
    assert re.search(r", (\d+\.\d % (less|more)|the same) energy", rest[2]), rest[2]
    words = rest[2].split(": ", 1)[1]
    assert "saved" not in words and "+" not in words and "-" not in words, rest[2]
    led.close()


# The demo's summary and report show the comparison: tests/test_docs_examples.py checks them
# on the README quickstart's run (test_readme_demo_runs_the_whole_study).


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
