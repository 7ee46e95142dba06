"""What a metric's name says about it: bookkeeping of the training schedule, never a score.

Pure Python and light (no numpy): read by the report's choice of metric
(``greenprint._metric_choice.pick_metric``) and by ``greenprint ledger ls``, which shows one
metric a study.
"""

from __future__ import annotations

import re

__all__ = [
    "BOOKKEEPING_METRICS",
    "is_bookkeeping_metric",
    "is_curve_x",
    "is_param_column",
    "is_size_metric",
]

#: Metric names a framework logs about the training schedule, never a score to rank by.
BOOKKEEPING_METRICS = frozenset(
    {"learning_rate", "lr", "epoch", "step", "global_step", "grad_norm", "total_flos"}
)
_BOOKKEEPING_SUFFIXES = ("_runtime", "_per_second")


def is_bookkeeping_metric(name: str) -> bool:
    """Whether ``name`` is bookkeeping, not a score.

    ``epoch``, ``learning_rate``, ``train_runtime``, Lightning's ``lr-Adam``...
    """
    lower = name.lower()
    return (
        lower in BOOKKEEPING_METRICS
        or lower.endswith(_BOOKKEEPING_SUFFIXES)
        or lower.startswith("lr-")
    )


#: Metric names that say a point's training-set size (``train_size``, ``n_train``,
#: ``train_sizes_abs``, ``train_fraction``...): the x of a learning curve logged as a run's
#: steps. Not ``n_samples`` nor ``fraction`` alone: a training logs the samples it has seen.
_SIZE_NAME = re.compile(
    r"(?:^|[_/.-])(?:train(?:ing)?_?(?:set_?)?(?:size|samples|examples|fraction)s?(?:_abs)?"
    r"|n_?train(?:ing)?(?:_samples|_examples)?|num_train(?:_samples|_examples)?"
    r"|dataset_size|data_?size|train_frac)$"
)


def is_size_metric(name: str) -> bool:
    """Whether ``name`` says a training-set size (``train_size``, ``n_train``...), never a score.

    A learning curve logged inside one run (``run.log(train_size=n, val_acc=s)``) has it as its
    x: the report notes the curve (:mod:`greenprint.report._curve_runs`) and ranks by the score.
    """
    return _SIZE_NAME.search(name.lower()) is not None


def is_param_column(name: str) -> bool:
    """Whether ``name`` is a ``param_*`` column (scikit-learn's ``cv_results_``): a param's value.

    Logged at each step of a run, the x of a validation curve inside it, never a score.
    """
    return name.lower().startswith("param_")


def is_curve_x(name: str) -> bool:
    """Whether ``name`` alone says a curve's x: a training-set size or a ``param_*`` column.

    (A metric named as a param of the runs is one too: the runs' params say so, not the name.)
    """
    return is_size_metric(name) or is_param_column(name)
