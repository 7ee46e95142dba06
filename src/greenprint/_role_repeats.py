"""Trials that are one configuration run again: their groups and the note's words.

Read by :mod:`greenprint._role_findings` (a study's ``repeated``, ``reruns`` and
``retrained``) and :class:`~greenprint._role_set.StudyRoles`: a configuration's key, its
repeats grouped by name and params but a seed or fold, and the text that says how they were
read and how to fix it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from greenprint._forest import RunForest
from greenprint._format import count_of
from greenprint._records import RunRecord
from greenprint._run_params import (
    _repeat_value,
    _split_repeats,
    is_repeat_param,
)


def _of_them(count: int, verb: str) -> str:
    """``"1 of them is"``, ``"3 of them are"``: ``verb`` is ``"is"`` or ``"has"``."""
    plural = {"is": "are", "has": "have"}[verb]
    return f"{count} of them {verb if count == 1 else plural}"


def _repeat_groups(
    runs: Sequence[RunRecord],
    parents: Sequence[int | None],
    trials: Sequence[int],
    repeat: frozenset[str],
    name_of: Any,
) -> list[tuple[int, ...]]:
    """Groups of ``trials`` (positions) of one parent, ``name_of`` and params but ``repeat``.

    Each group has two or more trials and two or more values of the ``repeat`` params among
    them; positions in start order. A name two of them share is looked for first (an Optuna
    trial's name is its own: counted without a container per trial, 100,000 trials named
    apart take 40 ms), then the parent and the params.
    """
    names = [name_of(runs[p]) for p in trials]
    shared = {name for name, n in Counter(names).items() if n > 1 and name is not None}
    by_name: dict[tuple[Any, str], list[int]] = {}
    for p, name in zip(trials, names, strict=True):
        if name in shared:
            by_name.setdefault((parents[p], name), []).append(p)
    keys = sorted(repeat)
    found = []
    for named in by_name.values():
        # one value of the repeat params among them (every trial's seed 0): no repeats
        if len(named) < 2 or len({repr([runs[p].params.get(k) for k in keys]) for p in named}) < 2:
            continue
        alike: dict[str, tuple[list[int], set[str]]] = {}
        for p in named:
            configuration, repetition = _split_repeats(runs[p].params)
            group, seeds = alike.setdefault(repr(configuration), ([], set()))
            group.append(p)
            seeds.add(repr(repetition))
        for group, seeds in alike.values():
            if len(seeds) > 1:
                found.append(tuple(sorted(group, key=lambda p: (runs[p].started_at, p))))
    return found


def _less_repeat(run: RunRecord, repeat: frozenset[str]) -> str | None:
    """``run``'s name less the last place it writes a repeat param's value, or ``None``.

    ``"lr=0.1-fold"`` for ``"lr=0.1-fold3"`` with ``fold`` 3; ``None`` when it writes none.
    """
    name, cut, params = run.name, False, run.params
    for key in repeat:  # most often one: seed, or fold
        value = params.get(key)
        if _repeat_value(value) and (text := str(value)) and (at := name.rfind(text)) >= 0:
            name, cut = name[:at] + name[at + len(text) :], True
    return name if cut else None


def _repeated_text(groups: Sequence[Sequence[int]], forest: RunForest) -> str:
    """The note on :attr:`StudyRoles.repeated`: how they were read, and how to fix it."""
    runs = forest.runs
    trials = sum(map(len, groups))
    sizes = sorted({len(g) for g in groups})
    times = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
    names = sorted(
        {
            k
            for g in groups
            for p in g
            for k, v in runs[p].params.items()
            if is_repeat_param(k) and _repeat_value(v)
        }
    )
    by = " or ".join(repr(k) for k in names)
    first = groups[0]
    text = (
        f"{trials} trials are {count_of(len(groups), 'configuration')} run {times} times each, "
        f"with the same name and params but {by} (e.g. {runs[first[0]].name!r}): each is read "
        "as a trial of its own, so the expected best score draws single runs and the final "
        "run is one of them; if they are repeats of one configuration (its cross-validation "
        "folds or seeds), "
    )
    apart = all(forest.parents[p] is None or runs[p].contained is False for g in groups for p in g)
    if apart:  # runs measured apart can be made parts of another afterwards
        ids = " ".join(runs[p].id[:8] for p in first[1:])
        return text + (
            "make each configuration's later runs parts of its first, one command per "
            f"configuration (greenprint ledger set-role part {ids} --part-of "
            f"{runs[first[0]].id[:8]}): each configuration is then one trial, scored by the "
            "mean of its runs and costing them all; or track them inside one run per "
            "configuration (gp.track(name, params=...) around its folds)"
        )
    return text + (
        "track them inside one run per configuration (gp.track(name, params=...) around its "
        "folds): each configuration is then one trial, scored by the mean of its runs"
    )


def _configuration(run: RunRecord) -> tuple[str, str]:
    """A run's name and params as a key: runs of one configuration share it."""
    return run.name, repr(sorted((run.params or {}).items()))
