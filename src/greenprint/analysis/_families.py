"""Model families of a study's trials: the label of each, from a dotted path or a function.

Split out of :mod:`greenprint.analysis._roles`: ``group_by="params.model"`` (or a function of
a run) gives one label per run (:func:`family_labels`); a trial without the value takes its
parts' when they agree (:func:`trial_family_labels`: the folds of a cross-validation carry the
model, their trial may not). EVP per family (Dodge et al.) is drawn from these labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greenprint._exceptions import ConfigError
from greenprint._records import RunRecord
from greenprint.analysis._common import RunForest

__all__ = ["family_labels", "trial_family_labels"]


def family_labels(runs: Sequence[RunRecord], group_by: Any) -> list[str]:
    """One family label per run, from a dotted path (``"params.model"``) or a function of a run.

    A run without the value gets ``"(no <path>)"``.

    Raises:
        ConfigError: ``group_by`` is neither a string nor callable, or its first name is no
            field of a run (``"model"`` for ``"params.model"``: no run could have a value).
    """
    if callable(group_by):
        return [str(group_by(run)) for run in runs]
    if not isinstance(group_by, str) or not group_by:
        raise ConfigError(
            f"group_by must be a dotted path such as 'params.model' or a function, not {group_by!r}"
        )
    head, *rest = group_by.split(".")
    if not hasattr(RunRecord, head):
        if any(isinstance(run.params, Mapping) and head in run.params for run in runs):
            hint = f"did you mean 'params.{group_by}'?"
        else:
            hint = "give a dotted path into a run such as 'params.model', 'host' or 'status'"
        raise ConfigError(f"group_by {group_by!r}: a run has no field {head!r}; {hint}")
    labels = []
    missing = f"(no {group_by})"
    for run in runs:
        value = _value_at(run, head, rest)
        labels.append(missing if value is None else str(value))
    return labels


def _value_at(run: RunRecord, head: str, keys: Sequence[str]) -> Any:
    """``run.<head>.<key>...`` of a dotted path, ``None`` where a step has no value."""
    value: Any = getattr(run, head, None)
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def trial_family_labels(forest: RunForest, positions: Sequence[int], group_by: Any) -> list[str]:
    """One family label per trial (positions in ``forest``), as :func:`family_labels` gives it.

    A trial that has no value of a dotted path takes the one its parts share: a trial that is
    ``greenprint run --role trial -- python train.py --model cnn`` records no params itself,
    while the script's run inside it (its part) records ``params.model``, and it scores the
    trial too. Else it takes the value of the nearest run it is inside that has one (the sweep
    it ran in): two scikit-learn searches in one study, a model family each, record the
    estimator on each sweep (``params.estimator``) and only its hyper-parameters on each
    trial; a search per model family, ``gp.track("svc", params={"model": "svc"})`` around
    trials of its own ``C``, records the family on the sweep. Parts that disagree (or none
    that has it), and no run around it that has it, leave it ``"(no <path>)"``.

    Raises:
        ConfigError: ``group_by`` is neither a string nor callable, or a dotted path of which
            no trial nor any of its parts nor any run it is inside has a value (a typo such
            as ``params.modle``: the message lists the keys the trials have, the nearest
            first).
    """
    labels = family_labels([forest.runs[p] for p in positions], group_by)
    if callable(group_by):
        return labels
    missing = f"(no {group_by})"
    looked: list[int] = list(positions)  # the trials and the parts read for a value
    for k, pos in enumerate(positions):
        if labels[k] != missing or not forest.children[pos]:
            continue
        below: list[int] = []
        stack = list(forest.children[pos])
        while stack:
            part = stack.pop()
            below.append(part)
            stack.extend(forest.children[part])
        looked += below
        found = set(family_labels([forest.runs[p] for p in below], group_by)) - {missing}
        if len(found) == 1:
            labels[k] = found.pop()
    around: dict[int, str] = {}  # a run a trial is inside -> its label (or its own outer's)
    for k, pos in enumerate(positions):
        if labels[k] == missing and forest.parents:
            labels[k] = _label_around(forest, forest.parents[pos], group_by, around, looked)
    if labels and all(label == missing for label in labels):
        raise ConfigError(_no_value_of(group_by, [forest.runs[p] for p in looked]))
    return labels


def _label_around(
    forest: RunForest, pos: int | None, group_by: str, around: dict[int, str], looked: list[int]
) -> str:
    """The label of the nearest run from ``pos`` up that has a value of ``group_by``.

    ``around`` caches each run's (a study's trials share a few sweeps); ``looked`` gathers the
    runs read, whose keys the no-value error lists.
    """
    missing = f"(no {group_by})"
    path: list[int] = []
    label = missing
    while pos is not None:
        if pos in around:
            label = around[pos]
            break
        path.append(pos)
        looked.append(pos)
        (label,) = family_labels([forest.runs[pos]], group_by)
        if label != missing:
            break
        pos = forest.parents[pos]
    for seen in path:
        around[seen] = label
    return label


def _no_value_of(group_by: str, runs: Sequence[RunRecord]) -> str:
    """Why no trial has a value of ``group_by``, with the paths they have (the nearest first)."""
    from greenprint._suggest import nearest

    head, *rest = group_by.split(".")
    message = (
        f"group_by {group_by!r}: no trial (nor any of its parts) has a value of it, nor has "
        "any run a trial is inside"
    )
    if not rest:
        return message
    keys: set[str] = set()  # the keys beside the last one of the path that have a value
    for run in runs:
        value = _value_at(run, head, rest[:-1])
        if isinstance(value, Mapping):
            keys.update(str(key) for key, v in value.items() if v is not None)
    if not keys:
        return message
    prefix = group_by.rsplit(".", 1)[0] + "."
    # the last key compared alone: the shared 'params.' would make any two paths look close
    close = [prefix + key for key in nearest(rest[-1], keys)]
    ordered = close + sorted({prefix + key for key in keys} - set(close))
    shown = ", ".join(ordered[:10])
    if len(ordered) > 10:
        shown += f" and {len(ordered) - 10} more"
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{message}; the trials have {shown}{hint}"
