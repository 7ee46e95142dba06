"""Session 29: a metric's direction from its name, for scikit-learn's ``cv_results_`` names.

Before, ``neg`` counted only as a name's first word, so ``mean_test_neg_mean_squared_error``
and ``test_neg_log_loss`` (scikit-learn's negated scorers: higher is better) were minimised,
and ``rank_test_r2`` (a rank: 1 is the best) was maximised: ``greenprint report --metric``
took the worst candidate for the final run in all three.
"""

from __future__ import annotations

import pytest

from greenprint import MetricPoint, RunRecord
from greenprint.analysis import lower_is_better, price_tag, resolve_mode

#: (name, lower is better) as a user logs it.
NAMES = [
    # scikit-learn's negated scorers, wherever the scorer's name starts: higher is better
    ("neg_log_loss", False),
    ("neg_root_mean_squared_error", False),
    ("mean_test_neg_mean_squared_error", False),  # GridSearchCV.cv_results_
    ("split0_test_neg_mean_absolute_error", False),
    ("mean_train_neg_root_mean_squared_error", False),
    ("test_neg_log_loss", False),  # cross_validate
    ("train_neg_brier_score", False),
    ("neg_negative_likelihood_ratio", False),  # a negated LR-
    ("NegLogLoss", False),
    # a rank: 1 is the best
    ("rank_test_r2", True),
    ("rank_test_score", True),
    ("rank_test_neg_log_loss", True),  # the rank of a negated scorer is still a rank
    ("mean_rank", True),
    ("val/rank", True),
    # not a rank to minimise: better higher
    ("mean_reciprocal_rank", False),
    ("spearman_rank_correlation", False),
    ("rank_corr", False),
    ("rank_1_accuracy", False),  # a rank-1 cut-off
    ("rank1_accuracy", False),
    # the words the rule had already, unchanged
    ("val_loss", True),
    ("loss_neg", True),  # a loss (of negative samples): no negation before it
    ("train/loss_rank0", True),
    ("mean_squared_error", True),
    ("negative_log_likelihood", True),  # a negated log-likelihood is a loss
    ("val_neg_log_likelihood", True),
    ("log_likelihood", False),
    ("true_negative_rate", False),
    ("accuracy", False),
    ("glossary_score", False),
    # outside check s41: a language model's bits per byte and a cross-entropy were maximised
    ("val_bpb", True),
    ("eval/bpw", True),
    ("bits_per_byte", True),
    ("val_bits_per_char", True),
    ("nats_per_token", True),
    ("val_ce", True),
    ("bce", True),
    ("neg_bpb", False),
    ("bits", False),
    ("piece", False),
    ("celsius", False),
]


@pytest.mark.parametrize(("metric", "lower"), NAMES)
def test_a_metrics_direction_from_its_name(metric: str, lower: bool) -> None:
    """The direction, and the note the report prints when a name is minimised."""
    assert lower_is_better(metric) is lower
    mode, note = resolve_mode(metric)
    assert mode == ("min" if lower else "max")
    if lower:
        assert note == (
            f"{metric!r} is minimised: its name says lower is better "
            "(to maximise it: --mode max, or mode='max' in Python)"
        )
    else:
        assert note is None


def test_the_final_run_of_a_study_logging_cv_results_names_is_the_best_candidate() -> None:
    """Three candidates logging what scikit-learn's search and ``cross_validate`` return; ``b``
    is the best by each (the highest negated error and log loss, rank 1). Before, the price
    tag's final run was ``a``, the worst, for each."""
    names = ("mean_test_neg_mean_squared_error", "rank_test_r2", "test_neg_log_loss")
    logged = {"a": (-20.0, 3, -0.9), "b": (-5.0, 1, -0.3), "c": (-10.0, 2, -0.5)}
    runs = [
        RunRecord(
            id=rid,
            name=rid,
            status="finished",
            started_at=float(k),
            energy_kwh=1.0,
            duration_s=10.0,
            metrics=tuple(MetricPoint(n, v) for n, v in zip(names, values, strict=True)),
        )
        for k, (rid, values) in enumerate(logged.items())
    ]
    for metric in names:
        tag = price_tag(runs, metric=metric)
        assert tag.final is not None and tag.final.run_id == "b", metric
        assert tag.mode == ("min" if metric == "rank_test_r2" else "max")
        assert (tag.mode_note is not None) is (tag.mode == "min")
