"""The EVP for a metric no trial logged names the metrics the runs did log (session 30).

``evp_by_budget(runs, "trials", metric="accuracy")`` on trials that logged ``val_accuracy``
said "no trial has a value of metric 'accuracy' to rank by" and nothing more: the user had to
open the ledger to learn the name. It now lists the metrics logged, the nearest first, as the
ledger's unknown-study message does; a metric only runs other than scored trials logged (the
sweep around them, a failed trial) names those runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, run_in
from greenprint import AnalysisError, MetricPoint, RunRecord
from greenprint.analysis import evp_by_budget


def _trial(k: int, metrics: dict[str, float], status: str = "finished") -> RunRecord:
    points = tuple(MetricPoint(name, value) for name, value in metrics.items())
    return RunRecord(id=f"t{k}", name=f"t{k}", status=status, energy_kwh=0.1, metrics=points)


def test_a_metric_no_trial_logged_lists_those_logged_the_nearest_first() -> None:
    runs = [
        _trial(k, {"train_loss": 1.0 - k / 10, "val_accuracy": 0.5 + k / 10, "lr": 0.1})
        for k in range(3)
    ]
    # greenprint's own metrics are never listed
    own = {"greenprint.predicted_energy_kwh": 1.0}
    runs[0] = _trial(0, {"train_loss": 0.9, "val_accuracy": 0.5, **own})
    with pytest.raises(AnalysisError) as info:
        evp_by_budget(runs, "trials", metric="accuracy")
    assert str(info.value) == (
        "no trial has a value of metric 'accuracy' to rank by; did you mean 'val_accuracy'?; "
        "metrics logged: 'val_accuracy', 'train_loss', 'lr'"
    )
    with pytest.raises(AnalysisError, match=r"by; metrics logged: 'train_loss', 'val_accuracy'"):
        evp_by_budget(runs, "trials", metric="bleu")  # nothing close: in logged order
    with pytest.raises(AnalysisError, match=r"to rank by; the runs logged no metric$"):
        evp_by_budget([_trial(0, {}), _trial(1, {})], "trials", metric="bleu")


def test_a_metric_only_a_failed_trial_logged_names_it() -> None:
    runs = [_trial(0, {"accuracy": 0.9}, status="failed"), _trial(1, {"loss": 0.3})]
    with pytest.raises(AnalysisError) as info:
        evp_by_budget(runs, "trials", metric="accuracy")
    assert str(info.value) == (
        "no finished or pruned trial has a value of metric 'accuracy' to rank by; "
        "runs that logged it: 't0' (failed)"
    )


def test_the_cli_names_the_metrics_logged_in_one_line(home: Path) -> None:
    """``greenprint report --metric accuracy``: one line, exit 2, the metrics logged."""
    for k in range(2):
        with gp.track(f"t{k}", study="s") as run:
            run.log(val_accuracy=0.5 + k / 10)
    done = run_in(home, GREENPRINT, "report", "--metric", "accuracy")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "metric 'accuracy'" in done.stderr and "'val_accuracy'" in done.stderr
