"""One search run again into one study: the note that says so (:func:`searches_run_again`).

An in-memory Optuna study (``optuna.create_study(study_name="quad")``, no storage) numbers its
trials from 0 each time the script runs: run twice into one ledger, the study holds two
``trial-0``, two ``trial-1``... and reads as one search of twice the trials, with nothing to say
that it is two. A hand-written loop (``gp.track(f"trial-{i}", ...)``) run twice reads the same.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from greenprint._forest import RunForest
from greenprint._format import count_of

__all__ = ["searches_run_again"]


def _root(forest: RunForest, pos: int) -> int:
    """The top-level run above the run at ``pos`` (itself when it is one)."""
    parents = forest.parents
    while (up := parents[pos]) is not None:
        pos = up
    return pos


def searches_run_again(
    forest: RunForest, trials: Sequence[int], *, final_rule: str | None = "best-trial"
) -> str | None:
    """A note when the study's trials are one search run by two processes or more, else ``None``.

    The trials (positions in ``forest``) are grouped by the process that ran their top-level
    run (the trial itself, or the sweep or ``greenprint run`` around it: its provenance
    ``"process"``, on its host); two groups or more of two trials or more, each sharing two
    trial names or more with another group, are runs of one search (a script run again: an
    in-memory Optuna study numbers its trials from 0 each time). A search split between
    processes that name their trials apart (Optuna workers on one storage), one trial per
    process (``python train.py --lr 0.1`` then ``--lr 0.2``), or trials all named alike
    (``gp.track("train")`` in a loop: nothing tells a repeat) are not named. The note says how
    they were read (one search: the expected best score draws from them all, the final run
    is the best of them all, named by its id where its name repeats) and how to keep them apart
    or continue one search. ``final_rule`` is what chose the final run (``FinalRun.rule``):
    a run given role ``final`` or named (``"role"``, ``"given"``) is no best of them all (a
    script run twice that retrains its best: the last retrain), so the note does not say so.
    """
    keys: Any = forest._process_keys
    if len(trials) < 4 or not any(keys):
        return None
    runs = forest.runs
    by_process: dict[Any, list[int]] = {}
    for p in trials:
        key = keys[_root(forest, p)]
        if key is not None:
            by_process.setdefault(key, []).append(p)
    names = {k: {runs[p].name for p in ps} for k, ps in by_process.items() if len(ps) >= 2}
    if len(names) < 2:
        return None
    seen = Counter(name for found in names.values() for name in found)
    shared = {name for name, n in seen.items() if n > 1}
    again = [k for k, found in names.items() if len(found & shared) >= 2]
    if len(again) < 2:
        return None
    groups = sorted(
        (by_process[k] for k in again), key=lambda ps: min(runs[p].started_at for p in ps)
    )
    example = min(shared)
    times = sum(1 for ps in groups for p in ps if runs[p].name == example)
    described = []
    for ps in groups[:3]:
        first = min(ps, key=lambda p: (runs[p].started_at, p))
        command = runs[_root(forest, first)].command or "a process"
        at = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(runs[first].started_at))
        described.append(
            f"{command!r} from {at}: {count_of(len(ps), 'trial')}, the first run "
            f"{runs[first].id[:8]}"
        )
    more = f", and {len(groups) - 3} more" if len(groups) > 3 else ""
    return (
        f"the study holds one search run {len(groups)} times: {len(groups)} processes "
        f"({'; '.join(described)}{more}) each recorded trials of the same names ("
        f"{count_of(len(shared), 'name')} recorded twice or more, e.g. {example!r} "
        f"{times} times), as a script run again does (an in-memory Optuna study numbers its "
        "trials from 0 each time); they are read as one search, the study's "
        f"{count_of(len(trials), 'trial')}: the expected best score "
        "draws from them all and the final run "
        + ("is the best of them all, " if final_rule == "best-trial" else "is ")
        + "named by its run id where its name repeats; to keep the runs apart, give each its "
        "own study name "
        "(optuna.create_study(study_name=...), gp.track(..., study=...), greenprint run "
        "--study); to go on with one Optuna search, give it a storage "
        "(optuna.create_study(study_name=..., storage='sqlite:///optuna.db', "
        "load_if_exists=True))"
    )
