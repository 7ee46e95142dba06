"""A run's params and name read for its role: repeats of a configuration, words of the name.

Below :mod:`greenprint._study_roles` (which infers roles) and
:mod:`greenprint._size_curves` (which reads a learning curve written by hand), both of which
read runs' params by these rules: one module, so neither imports the other's helpers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from greenprint._records import RunRecord

__all__ = ["REPEAT_PARAMS", "is_repeat_param"]

#: Words of a run's name that say it is a baseline or the final run (a note, never a role).
_NAMED_ROLES = {
    "baseline": frozenset({"baseline", "baselines", "dummy", "majority"}),
    "final": frozenset({"final", "retrain", "retrained", "refit"}),
}

_NAMED_HINTS = tuple(sorted(set().union(*_NAMED_ROLES.values())))

#: Param names that index a repetition of one configuration, never a configuration: a random
#: seed, a cross-validation fold or split. Children that differ by these only are repeats of
#: their parent's configuration (its seeds, its folds), not trials of their own.
REPEAT_PARAMS = frozenset(
    {"seed", "random_seed", "random_state", "fold", "cv_fold", "fold_index", "fold_idx", "split"}
)


def is_repeat_param(name: str) -> bool:
    """Whether a param indexes a repetition (``seed``, ``fold``, ``data_seed``...), see above."""
    lower = name.lower()
    return lower in REPEAT_PARAMS or lower.endswith("_seed")


def _repeat_value(value: Any) -> bool:
    """Whether a repeat param's value indexes a repetition: a number (a seed, a fold's index).

    A name is none: a ``split`` of ``"val"`` or ``"test"`` says which data a run scored, so
    runs that differ by it are no repeats of one configuration (the notes on top-level runs
    and the mean of a trial's repeats made its parts, :attr:`StudyRoles.repeated`).
    """
    return isinstance(value, int | float) and not isinstance(value, bool)


def _split_repeats(params: Mapping[str, Any]) -> tuple[list[tuple[str, Any]], ...]:
    """A run's params as its configuration and its repetition, each sorted by name.

    The repetition holds the params indexing one (:func:`is_repeat_param`) that are numbers
    (:func:`_repeat_value`: a seed, a fold's index); every other param is the configuration.
    One rule for the top-level repeats (:attr:`StudyRoles.repeated`) and for the repeats made
    a trial's parts (:func:`_repeat_of`).
    """
    parts: tuple[list[tuple[str, Any]], list[tuple[str, Any]]] = ([], [])
    for name, value in sorted(params.items()):
        parts[is_repeat_param(name) and _repeat_value(value)].append((name, value))
    return parts


def _vary_params(kids: Sequence[RunRecord], *, repeats: bool = False) -> bool:
    """Whether the children's params take two values or more for some name (or differ in names).

    A param indexing a repetition (:func:`is_repeat_param`) counts only with ``repeats``.
    """
    seen: dict[str, Any] = {}
    names = {
        tuple(sorted(k for k in kid.params if repeats or not is_repeat_param(k))) for kid in kids
    }
    if len(names) > 1:
        return True
    for kid in kids:
        for key, value in kid.params.items():
            if (repeats or not is_repeat_param(key)) and seen.setdefault(key, value) != value:
                return True
    return False


def _named_role(name: str) -> str | None:
    """``"baseline"`` or ``"final"``: a word of ``name`` says so (:attr:`StudyRoles.named_like`)."""
    lower = name.lower()
    if not any(w in lower for w in _NAMED_HINTS):
        return None
    words = set(re.split(r"[^a-z0-9]+", lower))
    for role, says in _NAMED_ROLES.items():
        if words & says:
            return role
    return None
