"""A metric's name read by its head word: ``error_reduction`` is better higher (session 52).

The name rule minimised any metric with a word that says lower is better, wherever it stood:
scikit-learn's ``d2_absolute_error_score`` (1 the best), an ``error_reduction`` or a
``loss_reduction`` were minimised, and a report chose the worst trial as its final run. The
last deciding word of the name now decides, as the head of an English compound does.
"""

from __future__ import annotations

import pytest

import greenprint as gp
from greenprint._run_scores import lower_is_better
from greenprint.analysis import price_tag


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        # better higher: what a loss or an error fell by, a score of one
        ("d2_absolute_error_score", False),
        ("error_reduction", False),
        ("loss_reduction", False),
        ("val_loss_drop", False),
        ("relative_error_improvement", False),
        ("perplexity_gain", False),
        # better lower, as before: a loss named after a score, a rate of errors, a loss
        ("brier_score_loss", True),
        ("test_error_rate", True),
        ("val_loss", True),
        ("loss_neg", True),
        ("negative_log_likelihood", True),
        ("mean_squared_error", True),
        ("rank_test_r2", True),
        ("bits_per_byte", True),
        ("rank_test_score", True),  # the rank of a score, 1 the best
        ("loss_rank_reduction", True),
        # better higher, as before
        ("neg_log_loss", False),
        ("r2_score", False),
        ("accuracy", False),
        ("score", False),
    ],
)
def test_the_head_of_the_name_decides(metric: str, lower: bool) -> None:
    assert lower_is_better(metric) is lower


@pytest.mark.parametrize("metric", ["d2_absolute_error_score", "error_reduction", "loss_reduction"])
def test_the_best_trial_of_a_score_named_after_an_error_is_the_final_run(metric: str) -> None:
    runs = [
        gp.RunRecord(
            id=f"t{i}",
            name=f"t{i}",
            status="finished",
            role="trial",
            energy_kwh=0.01,
            metrics=(gp.MetricPoint(metric, value),),
        )
        for i, value in enumerate([0.2, 0.9])
    ]
    tag = price_tag(runs, metric=metric)
    assert tag.mode == "max"
    assert tag.final is not None and tag.final.name == "t1"
    assert not tag.mode_note  # maximised, as any metric whose name does not say otherwise
