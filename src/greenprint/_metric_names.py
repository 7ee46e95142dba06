"""What a metric's name says about it: bookkeeping of the training schedule, never a score.

Pure Python and light (no numpy): read by the report's choice of metric
(``greenprint._metric_choice.pick_metric``) and by ``greenprint ledger ls``, which shows one
metric a study.
"""

from __future__ import annotations

__all__ = ["BOOKKEEPING_METRICS", "is_bookkeeping_metric"]

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
