"""``price_tag(runs, metric=...)`` with a metric name typed wrong (session 34, a new user).

A study with a final run (``role="final"``, as the scikit-learn integration's refit has) let
``price_tag(runs, metric="acc")`` through where the runs logged ``accuracy``: no error, no
note, the final run picked by its role and shown without a score, and every role judged by a
metric no run has (a run with no score around children is their sweep). ``pareto_runs``,
``efficiencies`` and ``evp_by_budget`` refuse the same typo, and so did ``price_tag`` of a study
without a final run; ``greenprint report --metric acc`` too.
"""

from __future__ import annotations

import pytest

import greenprint as gp
from greenprint import AnalysisError
from greenprint.analysis import price_tag


@pytest.fixture
def runs(tmp_path):
    ledger = tmp_path / "greenprint.db"
    for lr, accuracy in ((0.1, 0.91), (0.3, 0.88)):
        with gp.track(f"lr={lr}", study="s", ledger=ledger, params={"lr": lr}) as run:
            run.log(accuracy=accuracy)
    with gp.track("retrain", study="s", ledger=ledger, role="final", params={"lr": 0.1}) as run:
        run.log(accuracy=0.92)
    return gp.Ledger(ledger).runs(study="s")


def test_a_metric_no_run_logged_is_refused_with_the_names_logged(runs):
    with pytest.raises(AnalysisError) as raised:
        price_tag(runs, metric="accuracyy")
    message = str(raised.value)
    assert "none of the 3 runs logged metric 'accuracyy'" in message
    assert "did you mean 'accuracy'?" in message
    assert "metrics logged: 'accuracy'" in message


def test_the_metric_logged_gives_the_final_run_its_score(runs):
    tag = price_tag(runs, metric="accuracy")
    assert tag.final is not None
    assert (tag.final.name, tag.final.score) == ("retrain", 0.92)
    assert tag.total.trials == 2


def test_runs_that_logged_no_metric_keep_their_final_run(tmp_path):
    # nothing scored yet (a study still at its first runs): no name to check against
    ledger = tmp_path / "greenprint.db"
    with gp.track("trial", study="s", ledger=ledger):
        pass
    with gp.track("retrain", study="s", ledger=ledger, role="final"):
        pass
    tag = price_tag(gp.Ledger(ledger).runs(study="s"), metric="accuracy")
    assert tag.final is not None and tag.final.name == "retrain"
