"""What the model card says of the final run: its held-out scores and its training type."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from greenprint._exceptions import ConfigError
from greenprint._metric_choice import is_held_out
from greenprint._metric_names import is_bookkeeping_metric
from greenprint._prediction import is_reserved_metric
from greenprint._records import RunRecord
from greenprint._run_scores import lower_is_better

if TYPE_CHECKING:  # pragma: no cover
    pass


__all__ = ["UNKNOWN_TRAINING_TYPE", "held_out_of_parts"]


def _final_scores(
    runs: Sequence[RunRecord], final_id: str | None, metric: str | None, mode: str | None = None
) -> tuple[tuple[str, float], ...]:
    """The held-out scores the final run logged when it has none of ``metric``.

    A final model retrained on all the data is scored on a test split the trials never saw
    (the demo's ``test_accuracy``): the number a paper reports, which the report must state
    although the trials are ranked by another metric. Each held-out metric's last finite value.
    A final run that logged none of its own but whose finished parts did (``greenprint run
    --role final -- python final.py``, the script scoring its model in a ``gp.track`` run of
    its own, inside the command's) has their mean, per metric, as a trial has its folds'.

    Those whose direction is the study's ``mode`` come first (``test_accuracy`` before
    ``test_loss`` where the trials are maximised), each kept in the order logged: the first
    is the score the runs table shows for the final run, as the efficiency table takes its
    first better-higher one (the runs table read ``0.6721 (test_loss)`` beside the efficiency
    table's ``1 (test_accuracy)``).
    """
    final = next((r for r in runs if r.id == final_id), None)
    if final is None or (metric is not None and final.metric(metric) is not None):
        return ()
    found = _held_out(final, metric)
    if found:
        return _mode_first(found.items(), mode)
    values = held_out_of_parts((run for run in runs if run.parent_id == final_id), metric)
    return _mode_first(((name, math.fsum(v) / len(v)) for name, v in values.items()), mode)


def _mode_first(
    scores: Iterable[tuple[str, float]], mode: str | None
) -> tuple[tuple[str, float], ...]:
    """``scores`` with those whose name's direction is ``mode`` first (stable; no mode: as is)."""
    scores = tuple(scores)
    if mode not in ("max", "min"):
        return scores
    return tuple(sorted(scores, key=lambda s: lower_is_better(s[0]) != (mode == "min")))


def held_out_of_parts(parts: Iterable[RunRecord], metric: str | None) -> dict[str, list[float]]:
    """The held-out values (:func:`_held_out`) of the finished ``parts``, by metric name.

    What a final run that logged none of its own is scored by, their mean per metric (the
    report's sentence on the final model, ``ledger ls --tree``'s METRIC cell).
    """
    values: dict[str, list[float]] = {}
    for run in parts:
        if run.status == "finished":
            for name, value in _held_out(run, metric).items():
                values.setdefault(name, []).append(value)
    return values


def _held_out(run: RunRecord, metric: str | None) -> dict[str, float]:
    """The run's held-out metrics (not ``metric``, not greenprint's own): last finite values.

    Not the bookkeeping an evaluation logs beside its scores either (Hugging Face's
    ``test_runtime``, ``test_samples_per_second``: seconds and rates, never a score): a final
    model scored on a test split read "scored test_loss = 0.6721, test_accuracy = 1,
    test_runtime = 0.0087, test_samples_per_second = 7377, ..." in the price tag's sentence and
    the compute statement, numbers without their units.
    """
    found: dict[str, float] = {}
    for point in run.metrics:
        name = point.name
        if (
            name != metric
            and is_held_out(name)
            and not is_reserved_metric(name)
            and not is_bookkeeping_metric(name)
            and math.isfinite(point.value)
        ):
            found[name] = point.value
    return found


#: The model card's ``training_type`` when neither the caller nor the study gives one.
UNKNOWN_TRAINING_TYPE = "unknown"


def _training_type(
    runs: Sequence[RunRecord], given: str | None, final_id: str | None
) -> tuple[str, str | None]:
    """The model card's ``training_type``: given, else the study's, else unknown (with a note)."""
    if given is not None:
        if not isinstance(given, str) or not given.strip():
            raise ConfigError(f"training_type must be a non-empty string, not {given!r}")
        return given.strip(), None
    found: dict[str, None] = {}
    final_value = None
    for run in runs:
        value = run.params.get("training_type")
        if isinstance(value, str) and value.strip():
            found[value.strip()] = None
            if run.id == final_id:
                final_value = value.strip()
    if len(found) == 1:
        return next(iter(found)), None
    if final_value is not None:
        return final_value, (
            f"model card training_type {final_value!r} is the final run's; the study's runs "
            f"set {', '.join(repr(v) for v in found)}"
        )
    if found:
        return UNKNOWN_TRAINING_TYPE, (
            f"model card training_type unknown: the study's runs set several "
            f"({', '.join(repr(v) for v in found)}); choose with --training-type"
        )
    return UNKNOWN_TRAINING_TYPE, (
        "model card training_type unknown: give it with greenprint report --training-type "
        "(pre-training, fine-tuning...) or a run parameter training_type"
    )
