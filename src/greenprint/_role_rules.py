"""The rules that read a run's role from the nesting of runs, for :mod:`greenprint._study_roles`.

Which run is a sweep (children given role ``trial``, a search logging its best trial's score,
children that vary a configuration), a trial around its own folds or fit, a search per model
family inside a sweep, one trial around its lost run, a step of the study; and the rules' words
for the report's note (``_INFERENCE_RULES``). :func:`~greenprint._study_roles.resolve_roles`
applies them; the module's docstring there states them in full.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from greenprint._forest import RunForest, score_of
from greenprint._metric_names import is_bookkeeping_metric
from greenprint._prediction import is_reserved_metric
from greenprint._records import RunRecord
from greenprint._run_params import (
    _vary_params,
    is_repeat_param,
)

#: Roles whose children keep the roles given to them: a sweep's trials, a greener comparison's
#: variants. Inside any other run, a run is a part of it whatever role it was given.
_CONTAINERS = ("sweep", "greener")
#: Roles given to runs that a study's container holds beside its trials: a run holding one and
#: children that vary a configuration is their sweep (a trial does not hold a baseline, the
#: final model or a learning curve beside configurations of its own)
_BESIDE_TRIALS = ("baseline", "final", "learning-curve")


_INFERENCE_RULES = (
    "a top-level run is a trial; runs inside a trial are its parts; a top-level run with child "
    "runs and no score (or with children given role 'trial', or given role 'baseline', "
    "'final' or 'learning-curve' beside children that vary a configuration, or whose score is "
    "its best child's among children that vary a configuration) is a sweep, whose children are "
    "trials (or sweeps, read by the same rule: a search per model family), unless its children "
    "do not vary a configuration (it has params they share, or they differ by a seed or fold "
    "only: its folds, seeds or fit), or its children were all given role 'part', or its one "
    "child was lost inside its measurement while it went on (a script killed under greenprint "
    "run: one trial); runs given no role, of one configuration, that differ only by their "
    "dataset_size, beside trials that vary a configuration at one size, are a learning curve"
)


def _runs_its_params(run: RunRecord, kids: Sequence[RunRecord]) -> bool:
    """Whether ``run``'s children run its own configuration (its folds or its fit): a trial.

    ``run`` has params; its children give the same value to each of them they have, and any
    other param they have takes one value across them (a framework's run of the trial's
    hyper-parameters, e.g. a Lightning fit with its Trainer's epochs). A sweep's trials each
    bring a configuration of their own: other values of its params, or of their own (a search
    per model family whose trials vary ``lr``). A param that indexes a repetition
    (:func:`is_repeat_param`: ``seed``, ``fold``...) is no configuration: children that differ
    by these only (its seeds, its folds) run ``run``'s configuration, with params or without.
    """
    params = run.params
    if not params:
        return _repeats_only(kids)
    seen: dict[str, Any] = {}
    for kid in kids:
        for key, value in kid.params.items():
            if is_repeat_param(key):
                continue
            if key in params:
                if params[key] != value:
                    return False
            elif seen.setdefault(key, value) != value:
                return False
    return True


def _refine_its_params(run: RunRecord, kids: Sequence[RunRecord]) -> bool:
    """Whether no child gives one of ``run``'s params another value (a family's trials do)."""
    params = run.params
    return all(
        params[key] == value for kid in kids for key, value in kid.params.items() if key in params
    )


def _has_score(run: RunRecord, metric: str | None) -> bool:
    return any(
        (p.name == metric if metric is not None else not is_reserved_metric(p.name))
        and math.isfinite(p.value)
        for p in run.metrics
    )


def _holds_trials(forest: RunForest, pos: int, kids: Sequence[int], metric: str | None) -> bool:
    """Whether children given a role make the run at ``pos`` their sweep.

    Children given role ``trial`` (an integration's, e.g. Optuna trials inside
    ``gp.track("study")`` that logs the best score) do; so do children given role ``sweep``
    (``gp.track("experiment")`` around a script whose ``track_search`` is a sweep of trials),
    unless the run logged a score of its own and two or more of those sweeps tried the same
    configurations: the same search repeated, once per outer fold of a nested
    cross-validation whose estimate the run logged, is a trial, its searches its parts.
    """
    runs, children = forest.runs, forest.children
    if any(runs[c].role == "trial" for c in kids):
        return True
    sweeps = [c for c in kids if runs[c].role == "sweep"]
    if not sweeps:
        return False
    if len(sweeps) < 2 or not _has_score(runs[pos], metric):
        return True
    tried = [
        frozenset(
            tuple(sorted((k, repr(v)) for k, v in runs[g].params.items()))
            for g in children[c]
            if runs[g].role == "trial" and runs[g].params
        )
        for c in sweeps
    ]
    searches = [t for t in tried if t]
    return len(set(searches)) == len(searches)  # no search repeated


def _logs_its_best_child(run: RunRecord, kids: Sequence[RunRecord], metric: str | None) -> bool:
    """Whether ``run``'s score is its best child's, among children that vary a configuration.

    A search written by hand, ``gp.track("search")`` around a loop of ``gp.track(f"lr={lr}",
    params={"lr": lr})`` trials, often logs the best trial's score on the search's run at the
    end (``search.log(val_acc=best)``, or ``best_val_acc=best``): that run is their sweep, not
    a trial of four parts that happens to score best. A trial around its cross-validation
    folds logs their mean instead, which is their best only when every fold scored the same
    (then it stays a trial). The children must vary a configuration (their params take two
    values or more, or other values than ``run``'s own: not :func:`_runs_its_params`), and at
    least two must have logged the metric compared; ``run``'s score is its last finite value of
    the metric (of each metric it logged when ``metric`` is ``None``), equal to the highest or
    the lowest finite value any child logged of one metric (that metric, or another name: a
    ``best_val_acc`` is the highest ``val_acc``: a name that holds the child's), and not to
    the mean of their last values. A training's bookkeeping (``epoch``, ``step``, a learning
    rate: :func:`~greenprint._metric_names.is_bookkeeping_metric`) is never compared.
    """
    if len(kids) < 2 or _runs_its_params(run, kids) or not _vary_params(kids):
        return False
    owns = [
        (n, v)
        for n in _scored_names(run, metric)
        if not is_bookkeeping_metric(n) and (v := score_of(run, n, "last")) == v
    ]
    if not owns:
        return False
    by_name: dict[str, tuple[list[float], list[float], list[float]]] = {}
    for kid in kids:
        values: dict[str, list[float]] = {}
        for p in kid.metrics:
            if math.isfinite(p.value) and not _not_a_score(p.name):
                values.setdefault(p.name, []).append(p.value)
        for name, logged in values.items():
            lows, highs, lasts = by_name.setdefault(name, ([], [], []))
            lows.append(min(logged))
            highs.append(max(logged))
            lasts.append(logged[-1])
    for name, (lows, highs, lasts) in by_name.items():
        if len(lasts) < 2 or min(lows) == max(highs):
            continue  # one child scored, or every child scored the same: no best among them
        best = (max(highs), min(lows))
        mean = math.fsum(lasts) / len(lasts)
        # the same metric, or one whose name holds it (best_val_acc, val_acc_max)
        if any(name in own_name and own in best and own != mean for own_name, own in owns):
            return True
    return False


def _not_a_score(name: str) -> bool:
    """Whether a metric is never compared: greenprint's own, or a training's bookkeeping."""
    return is_reserved_metric(name) or is_bookkeeping_metric(name)


def _repeats_only(kids: Sequence[RunRecord]) -> bool:
    """Whether every child has a param indexing a repetition, and they vary by those only."""
    return (
        len(kids) >= 2
        and all(any(is_repeat_param(k) for k in kid.params) for kid in kids)
        and not _vary_params(kids)
    )


def _scored_names(run: RunRecord, metric: str | None) -> list[str]:
    if metric is not None:
        return [metric]
    return list(
        dict.fromkeys(
            p.name for p in run.metrics if not is_reserved_metric(p.name) and math.isfinite(p.value)
        )
    )


def _nested_sweep(
    forest: RunForest, pos: int, metric: str | None, virtual: Sequence[bool] | None = None
) -> bool:
    """Whether the run at ``pos``, inside a sweep, is a sweep too (a search per model family).

    It has children (not a job's links: ``virtual``, the forest's by default), not all given
    role ``part``, given role ``trial`` or ``sweep`` (:func:`_holds_trials`), or varying a
    configuration within its own (they give its params its values; a child given role ``part``
    is no configuration) while it logged no score of its own, or its best child's.
    """
    items = forest.runs
    if virtual is None:
        virtual = forest.virtual or (False,) * len(items)
    kids = [c for c in forest.children[pos] if not virtual[c]]
    kid_runs = [items[c] for c in kids if items[c].role != "part"]
    run = items[pos]
    return (
        bool(kids)
        and not all(items[c].role == "part" for c in kids)
        and (
            _holds_trials(forest, pos, kids, metric)
            or (
                _vary_params(kid_runs)
                and _refine_its_params(run, kid_runs)
                and not _runs_its_params(run, kid_runs)
                and (not _has_score(run, metric) or _logs_its_best_child(run, kid_runs, metric))
            )
        )
    )


def _holds_its_lost_run(forest: RunForest, pos: int, metric: str | None) -> bool:
    """Whether top-level run ``pos`` measured the one run inside it, lost, and went on after it.

    ``greenprint run -- python train.py`` around a script whose one ``gp.track`` run was
    killed (SIGKILL, the OOM killer): the script's run is ``lost`` (it stopped writing without
    an end: killed before it could record one) and recorded at most up to its last flush (nothing
    when killed before its first), while the wrapper, whose reading of the process tree holds
    it (not measured apart), ended after it with the whole cost. That is one trial, the
    wrapper's, whose cost it measured, the lost run its part: not a sweep around one lost
    trial that cost nothing and a sweep's overhead that cost it all. Not when the lost run was
    given a role, or is a search of its own (a sweep by the rule for a sweep inside a sweep:
    its trials stay the trials), or the wrapper is lost or still running too (its reading
    stopped with the run's).
    """
    children = forest.children[pos]
    if len(children) != 1:
        return False
    kid = children[0]
    lost = forest.runs[kid]
    return (
        lost.status == "lost"
        and lost.role is None
        and forest.runs[pos].status not in ("lost", "running")
        and not (forest.virtual and forest.virtual[kid])
        and not forest.adds(kid)
        and not _nested_sweep(forest, kid, metric)
    )


def _steps(
    forest: RunForest, role: Sequence[str], inferred: Sequence[bool], metric: str | None
) -> tuple[int, ...]:
    """Inferred trials that are steps of the study, not trials (:attr:`StudyRoles.steps`).

    A finished run with no params, no child and no score (no metric but greenprint's own or a
    training's bookkeeping), among siblings (the runs of its parent, or the top-level runs) of
    which two or more are trials with params that vary and a score of their own or their
    children's: a search script's ``gp.track("load-data")`` before its trials. Read as a trial,
    it was one more draw of the search counted as the worst score, and the mean trial's cost
    held it. A trial that forgot its score has the params of its configuration: it stays one.
    """
    runs, children, parents = forest.runs, forest.children, forest.parents
    virtual = forest.virtual or (False,) * len(runs)
    candidates = [
        p
        for p, r in enumerate(role)
        if r == "trial"
        and inferred[p]
        and not runs[p].params
        and not children[p]
        and runs[p].status == "finished"
        and runs[p].job_id is None
        and not virtual[p]
        and all(_not_a_score(m.name) for m in runs[p].metrics)
    ]
    if not candidates:
        return ()
    found = []
    by_parent: dict[int | None, bool] = {}
    for p in candidates:
        parent = parents[p]
        if parent not in by_parent:
            siblings = forest.roots if parent is None else children[parent]
            scored = [
                runs[q]
                for q in siblings
                if role[q] == "trial"
                and runs[q].params
                and (
                    _has_score(runs[q], metric)
                    or any(_has_score(runs[c], metric) for c in children[q])
                )
            ]
            by_parent[parent] = len(scored) >= 2 and _vary_params(scored)
        if by_parent[parent]:
            found.append(p)
    return tuple(found)


#: Statuses of a run cut short: a search worker that ended so before its first trial is no trial.
_CUT_SHORT = ("failed", "interrupted", "lost")


def _workers_cut_short(
    forest: RunForest, role: Sequence[str], inferred: Sequence[bool]
) -> tuple[int, ...]:
    """Inferred top-level trials that are a search's workers cut short before their first trial.

    A top-level run with no params, no child and no score that failed, was interrupted or was
    lost, named as a top-level sweep of the study that holds two trials or more: a worker of the
    search (``greenprint run -- python search.py`` launched on several machines, one of which
    crashed as it started: a storage it could not open, an import that failed) that ran none.
    Read as a trial, it was one more trial than the search ran (Optuna listed 15, the report
    16), counted as the worst score, its params none. It is a sweep, with no trial: its cost is
    the search's overhead, and the failed runs list it with its error. A wrapper around one
    training (a sweep of one trial) that failed is still its configuration's failed trial.
    """
    runs, children = forest.runs, forest.children
    virtual = forest.virtual or (False,) * len(runs)
    roots = forest.roots
    searches = {
        runs[q].name
        for q in roots
        if role[q] == "sweep" and sum(role[c] == "trial" for c in children[q]) >= 2
    }
    if not searches:
        return ()
    return tuple(
        p
        for p in roots
        if role[p] == "trial"
        and inferred[p]
        and runs[p].name in searches
        and runs[p].status in _CUT_SHORT
        and not runs[p].params
        and not children[p]
        and runs[p].job_id is None
        and not virtual[p]
        and all(_not_a_score(m.name) for m in runs[p].metrics)
    )


def _held_by_ranks(forest: RunForest, pos: int) -> list[int]:
    """The runs held by the nodes and ranks that a job links under run ``pos`` (its head).

    Those are the children each node or rank recorded of its own (``parent_id``), the job's
    links followed down.
    """
    held: list[int] = []
    stack = [c for c in forest.children[pos] if forest.virtual and forest.virtual[c]]
    while stack:
        rank = stack.pop()
        for c in forest.children[rank]:
            (stack if forest.virtual[c] else held).append(c)
    return held
