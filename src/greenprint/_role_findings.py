"""What the note on a study's roles finds among its inferred trials, read off its runs.

Trials named like a baseline or the final run (:func:`named_like`), trials that did not finish
and were run again (:func:`reruns`), the final model retrained without its role
(:func:`retrained`), one configuration repeated with another seed or fold (:func:`repeated`),
trials that differ only by their training-set size (:func:`sizes_only`), and sweeps whose
trials are named as the folds of one configuration (:func:`folds_as_trials`). Each takes the
study's :class:`~greenprint._forest.RunForest` and positions; ``StudyRoles``
(:mod:`greenprint._role_set`) keeps each as a cached attribute of the same name and words its
note from them.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence

from greenprint._forest import RunForest
from greenprint._format import count_of
from greenprint._records import CUT_SHORT_STATUSES
from greenprint._role_repeats import _configuration, _less_repeat, _repeat_groups
from greenprint._role_rules import _has_score, _not_a_score
from greenprint._run_params import _NAMED_HINTS, _named_role, _repeat_value, is_repeat_param

__all__ = [
    "below",
    "folds_as_trials",
    "named_like",
    "repeated",
    "reruns",
    "retrained",
    "retrained_text",
    "sizes_only",
]


def named_like(forest: RunForest, inferred: Sequence[int]) -> dict[str, list[str]]:
    """``{"baseline" | "final": names}`` of the inferred trials (``inferred``) whose name says so.

    A word of the name (split at anything but letters and digits): ``baseline``,
    ``dummy``, ``majority`` for a baseline; ``final``, ``retrain``, ``refit`` for the final
    run. Names are no roles: the runs stay trials, and the note says how to give roles.
    """
    names = forest.column("name")
    found: dict[str, list[str]] = {}
    # every name scanned at once first (substring search, 7 ms on 100,000): most have none
    joined = "\n".join([names[p] for p in inferred]).lower()
    hints = [w for w in _NAMED_HINTS if w in joined]
    if not hints:
        return found
    for p in inferred:
        if (role := _named_role(names[p])) is not None:
            found.setdefault(role, []).append(names[p])
    return found


def reruns(forest: RunForest, inferred: Sequence[int]) -> tuple[tuple[str, str], ...]:
    """Inferred trials that did not finish, each with the next trial of its name and params.

    ``inferred``: the positions of the inferred trials. ``(earlier, later)`` run ids: a trial
    failed, interrupted or lost, and the first trial started after it with the same name and
    params.

    A script run again after a crash records the same configuration twice: two trials, the
    first counted as the worst score. Nothing links them in the ledger, and two runs of one
    name and params may be meant (a flaky configuration tried twice): the note names them
    and how to make the first a part of the second (``greenprint ledger set-role``). A
    trial measured inside its parent (a sweep's, in the script's process) is not named:
    its cost is in that run's, so the command cannot make it a part of another.
    """
    runs = forest.runs
    ended = [
        p
        for p in inferred
        if runs[p].status in CUT_SHORT_STATUSES
        and (runs[p].parent_id is None or runs[p].contained is False)
    ]
    if not ended:
        return ()
    names = {runs[p].name for p in ended}
    # one configuration's trials in start order: each ended one finds its next by bisection
    # (comparing each with every trial of its name was quadratic: 20,000 trials named
    # "run", a tenth failed, took 5 s)
    alike: dict[tuple[str, str], list[tuple[float, str, int]]] = {}
    for p in inferred:
        if runs[p].name in names:
            alike.setdefault(_configuration(runs[p]), []).append(
                (runs[p].started_at, runs[p].id, p)
            )
    for group in alike.values():
        group.sort()
    found = []
    for p in ended:
        run = runs[p]
        group = alike[_configuration(run)]
        first = bisect.bisect_right(group, (run.started_at, "\U0010ffff"))
        later = (group[i][2] for i in range(first, len(group)))
        then = next((q for q in later if runs[q].params == run.params), None)
        if then is not None:
            found.append((run.id, runs[then].id))
    return tuple(found)


def retrained(
    forest: RunForest, inferred: Sequence[int], metric: str | None
) -> tuple[tuple[int, int], ...]:
    """Inferred trials that look like the final model retrained with a trial's params.

    ``inferred``: the positions of the inferred trials. ``(retrain, trial)`` positions: a
    finished trial with params that logged no value of the ranked ``metric``, nor did any of
    its parts (an export helper that failed, a test evaluation: runs inside it), but another
    score (a ``test_acc``, its own or a part's), started after a trial with the same params,
    scored by the metric, had ended (the latest such): a hand-written search that retrains
    its best configuration, ``gp.track("best-model", params=best)``, without
    ``role="final"``. It stays a trial (counted as the worst score): the note says how to give
    it its role. ``()`` when no metric ranks the study.
    """
    if metric is None:
        return ()
    runs, children = forest.runs, forest.children
    unscored = []
    for p in inferred:  # a loop, not _has_score's generator: 100,000 scored trials in 25 ms
        run = runs[p]
        if run.status != "finished" or not run.params:
            continue
        for point in run.metrics:
            if point.name == metric and math.isfinite(point.value):
                break
        else:
            # its parts (an export helper, a test evaluation) scored it by no metric either
            if any(_has_score(runs[c], metric) for c in children[p]):
                continue  # most often: a trial scored by its folds
            held = [runs[q] for q in below(forest, p)] if children[p] else []
            if any(_has_score(r, metric) for r in held):
                continue
            if any(
                math.isfinite(m.value) and not _not_a_score(m.name)
                for r in (run, *held)
                for m in r.metrics
            ):
                unscored.append(p)
    if not unscored:
        return ()
    scored: dict[str, list[int]] = {}
    for p in inferred:
        if _has_score(runs[p], metric) or any(_has_score(runs[c], metric) for c in children[p]):
            scored.setdefault(_configuration(runs[p])[1], []).append(p)
    found = []
    for p in unscored:
        start = runs[p].started_at
        before = [
            q
            for q in scored.get(_configuration(runs[p])[1], ())
            if (ended := runs[q].ended_at) is not None and ended <= start
        ]
        if before:
            found.append((p, max(before, key=lambda q: (runs[q].started_at, q))))
    return tuple(found)


def below(forest: RunForest, pos: int) -> list[int]:
    """The positions of every run nested below the run at ``pos`` (its parts)."""
    children, found = forest.children, []
    stack = list(children[pos])
    while stack:
        q = stack.pop()
        found.append(q)
        stack.extend(children[q])
    return found


def retrained_text(forest: RunForest, pairs: Sequence[tuple[int, int]], metric: str | None) -> str:
    """The note on :func:`retrained`'s ``pairs``, found ranking by ``metric``."""
    runs = forest.runs
    names = ", ".join(repr(runs[p].name) for p, _ in pairs[:3]) + (
        ", ..." if len(pairs) > 3 else ""
    )
    logged = sorted(
        {
            m.name
            for p, _ in pairs
            for q in (p, *below(forest, p))
            for m in runs[q].metrics
            if not _not_a_score(m.name) and math.isfinite(m.value)
        }
    )
    first, trial = pairs[0]
    read = (
        "a trial without a score, counted as the worst"
        if len(pairs) == 1
        else "trials without a score, each counted as the worst"
    )
    return (
        f"{count_of(len(pairs), 'trial')} ({names}) logged no {metric!r} but "
        f"{', '.join(logged[:3])}, and ran after a trial with the same params had ended "
        f"(e.g. {runs[trial].name!r}): read as {read}; if it is the final model "
        "retrained with that configuration, give it "
        "role='final' (gp.track(..., role='final'), or afterwards greenprint ledger "
        f"set-role final {runs[first].id[:8]})"
    )


def repeated(forest: RunForest, inferred: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Inferred trials that are one configuration run again with another seed or fold.

    ``inferred``: the positions of the inferred trials. Each group (positions, in start
    order) holds two or more trials of one parent (or none: top-level runs) with the same
    name (or names alike but for the value of the repeat, ``f"lr={lr}-fold{fold}"``) and
    params but a param indexing a repetition (:func:`is_repeat_param`: ``fold``, ``seed``...),
    which takes two values or more among them: ``for fold in range(5): with
    gp.track(f"lr={lr}", params={"lr": lr, "fold": fold})`` with no run around a
    configuration's folds. Each is read as a trial of its own (nothing links them: repeated
    seeds may be meant as draws of the search), so the expected best score draws single folds
    and the final run is one fold; the note says so and how to make each configuration one
    trial.
    """
    runs = forest.runs
    parents = forest.parents
    trials = [p for p in inferred if runs[p].params]
    # most studies have no repeat param: their names looked at once (100,000 trials: 10 ms)
    names = set().union(*(runs[p].params for p in trials))
    repeat = frozenset(filter(is_repeat_param, names))
    if not repeat:
        return ()
    trials = [p for p in trials if not repeat.isdisjoint(runs[p].params)]
    try:  # one seed for every trial (a search that records its seed 42): no repeats
        if len({(k, runs[p].params.get(k)) for p in trials for k in repeat}) <= len(repeat):
            return ()
    except TypeError:  # a value that cannot be hashed: looked at below
        pass
    trials = [p for p in trials if any(_repeat_value(runs[p].params.get(k)) for k in repeat)]
    found = _repeat_groups(runs, parents, trials, repeat, lambda run: run.name)
    # then names that hold the repeat's value (f"lr={lr}-fold{fold}"), less that value
    grouped = {p for group in found for p in group}
    rest = [p for p in trials if p not in grouped]
    found += _repeat_groups(runs, parents, rest, repeat, lambda run: _less_repeat(run, repeat))
    return tuple(found)


def sizes_only(
    forest: RunForest, trials: Sequence[int], inferred: Sequence[bool]
) -> tuple[int, ...]:
    """The training-set sizes of the ``trials``, when they differ by those only, else ``()``.

    ``inferred``: whether each run's role was inferred, by position. Every trial was inferred
    and has a ``dataset_size``, two sizes or more, and each of their params (but a seed or
    fold: :func:`is_repeat_param`) takes one value across them or is a number proportional to
    the size (a ``fraction`` of the data, ``n_samples``, within 5%): a learning curve written
    by hand, or a search over the data's size. The note says how it was read (as trials) and
    how to give the role.
    """
    runs = [forest.runs[p] for p in trials]
    if len(runs) < 2 or not all(inferred[p] for p in trials):
        return ()
    sizes = [run.dataset_size for run in runs]
    if any(not size for size in sizes) or len(set(sizes)) < 2:
        return ()
    names = {k for run in runs for k in run.params if not is_repeat_param(k)}
    for name in names:
        values = [run.params.get(name) for run in runs]
        if all(v == values[0] for v in values):
            continue
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) < len(values):
            return ()
        ratios = [v / size for v, size in zip(numbers, sizes, strict=True) if size]
        if min(ratios) <= 0 or max(ratios) > 1.05 * min(ratios):
            return ()  # a param that varies otherwise: a search
    return tuple(sorted({size for size in sizes if size}))


#: A run's name that indexes a repetition: a fold, seed or split and its number ("fold0",
#: "fold-1", "cv_fold_2", "seed=42"), after a part the runs share.
_REPEAT_NAME = re.compile(r"(.*?)(fold|seed|split)[\s_=:#-]*(\d+)", re.IGNORECASE)


def folds_as_trials(
    forest: RunForest, roles: Sequence[str], inferred: Sequence[bool]
) -> tuple[int, ...]:
    """Inferred sweeps with no params whose trials are named as one configuration's folds.

    ``greenprint run -- python cv.py`` given no ``--param`` around a script whose folds are
    each a ``gp.track(f"fold{k}")`` with no params: the command's run is read as a sweep, each
    fold a trial of its own (the final run a fold), as a search script's runs are. Its children
    (two or more, all inferred trials, of the same params) are named alike but for the number
    after ``fold``, ``seed`` or ``split``, two numbers or more. Positions of such sweeps, in
    start order. The note says how to make each one trial.
    """
    runs, children = forest.runs, forest.children
    found = []
    for pos, role in enumerate(roles):
        if role != "sweep" or not inferred[pos] or runs[pos].params:
            continue
        kids = children[pos]
        if len(kids) < 2 or not all(roles[c] == "trial" and inferred[c] for c in kids):
            continue
        if len({repr(sorted(runs[c].params.items())) for c in kids}) > 1:
            continue
        shared: set[tuple[str, str]] = set()
        numbers: set[int] = set()
        for c in kids:
            named = _REPEAT_NAME.fullmatch(runs[c].name.strip())
            if named is None:
                break
            shared.add((named[1].lower(), named[2].lower()))
            numbers.add(int(named[3]))
        else:
            if len(shared) == 1 and len(numbers) >= 2:
                found.append(pos)
    return tuple(sorted(found, key=lambda p: (runs[p].started_at, runs[p].id)))


def folds_as_trials_text(forest: RunForest, sweeps: Sequence[int]) -> str:
    """The note on :func:`folds_as_trials`' ``sweeps``."""
    runs, children = forest.runs, forest.children
    one = len(sweeps) == 1
    first = sweeps[0]
    shown = ", ".join(f"{runs[p].id[:8]} ({runs[p].name!r})" for p in sweeps[:3])
    more = ", ..." if len(sweeps) > 3 else ""
    names = ", ".join(repr(runs[c].name) for c in children[first][:3])
    trials = sum(len(children[p]) for p in sweeps)
    ids = " ".join(runs[p].id[:8] for p in sweeps[:3]) + (" ..." if len(sweeps) > 3 else "")
    return (
        f"{count_of(len(sweeps), 'run')} with no params ({shown}{more}) "
        f"{'holds runs' if one else 'hold runs'} named as the folds or seeds of one "
        f"configuration ({names}{', ...' if len(children[first]) > 3 else ''}): read as "
        f"{'a sweep' if one else 'sweeps'} of {count_of(trials, 'trial')}, one per fold; if "
        f"they are {'its' if one else 'their'} folds, give {'it' if one else 'each'} its "
        "configuration (greenprint run --param KEY=VALUE, or gp.track(..., params=...)) or "
        f"afterwards greenprint ledger set-role trial {ids}: one trial scored by its folds' mean"
    )
