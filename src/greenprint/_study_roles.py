"""Run roles: what each run is in its study (given or inferred), its trials and their scores.

A study holds more than trials: cross-validation folds and workers inside a trial, baselines, a
learning curve, the final model retrained on all the data, and the sweep that wraps the trials.
Each run has a role (:data:`~greenprint.RUN_ROLES`), given when it was tracked
(``gp.track(..., role=...)``, ``run.set(role=...)``, ``greenprint run --role``, integrations)
or inferred here, at read time, from the nesting of runs within the set:

* a run whose parent is not in the set (a *root*) is a ``trial``, except that a root with children
  that logged no score, or whose children were given role ``trial`` (an integration's trials inside
  ``gp.track("study")``), or whose score is its best child's among children that vary a
  configuration (a hand-written search that logs its best trial's score), is a ``sweep``, unless its
  children were all given role ``part`` (the workers of one training, tracked as its parts; a
  child given role ``part`` is no configuration in any of these rules); a root
  whose children are all ranks of one distributed job (one ``job_id``: ``greenprint run`` around a
  script that spawns the ranks of one training) is a ``trial``, unless they were given role
  ``trial``; a root with params whose children do not vary a configuration (they give its params the
  same values, and their own params one value across them: a plain cross-validation loop,
  ``gp.track("lr-0.1", params={"lr": 0.1})`` around its folds, or a trial around the Lightning fit
  of its hyper-parameters) is a ``trial`` all the same, unless its children were given role
  ``trial``; so is a root, with params or without, whose children differ only by a param
  indexing a repetition (``seed``, ``fold``, ``random_state``, ``*_seed``: its seeds or its
  folds, each run with ``params={"seed": s}``), with a note saying so; and so is a root that
  logged no score whose one child (given no role, no search of its own) was ``lost`` inside its
  measurement while it went on (``greenprint run -- python train.py`` around a script whose one
  ``gp.track`` run was killed: the wrapper measured the whole cost, the lost run recorded at most
  up to its last flush), the lost run its part, with a note saying so;
* a child of a ``sweep`` is a ``trial``, unless it is a sweep by the same rule (no score of its
  own, or its best child's, and children that vary a configuration within its own: they give
  its params its values; or children given role ``trial``): a search per model family, each
  around trials of its own ``lr``;
* any other child (of a trial, a part, a baseline, the final run or a learning-curve run) is a
  ``part``: a fold, a worker or a sub-step, whose cost is inside its parent's (or, for a node or
  rank of a distributed job linked under the job's head, counted once with it: see
  :class:`~greenprint._forest.RunForest`);
* a node or rank of a job linked under a ``sweep`` (the workers of one search started as one
  job: ``srun -n 3 greenprint run -- python search.py``) is a ``part`` of it, and its own
  children are read as the sweep's (its trials are the sweep's trials); a job's head is a sweep
  when such a worker's children were given role ``trial``, whichever worker ran them.

A given role wins, except inside a run that is not a container (a sweep, or a greener
comparison whose children are its variants): a run inside a trial (or a part, a baseline, the
final run or a learning-curve run) is always a part of it, whatever role it was given (a
scikit-learn search's sweep, trials and refit run inside an Optuna trial are that trial's parts,
not trials of the study); the note says how many. The runs below a given role are inferred from
it. "Logged no score" means no finite value of the metric the study is ranked by (``metric=``),
or of any metric without one.

A trial's score is its own logged score, else the mean of its parts' scores (e.g. the folds of a
cross-validation, each part scored the same way, recursively); :class:`TrialScore` says which.
A distributed job's root is scored by the mean of every rank of every node, each weighing the
same: a node or rank linked under it by the job hands it the scores of its ranks, not their mean.
Analyses over "trials" (expected max performance, Pareto fronts, trial counts, E·D·H) take the
``trial`` runs only: never a part, a sweep, a baseline, the final run or a learning-curve run.
The final run is the ``final`` run if there is one (of several, the best finished one by the
metric, of a tie the last started), else the best finished trial
(:func:`choose_final`); a ``final`` run that did not finish (a retrain that failed) made no
model: the best finished trial then, the rule saying so.

Runs given no role, read as trials, of one configuration that differ only by their
training-set size (``dataset_size``, and a ``fraction`` of the data), beside trials (given role
``trial`` or not: an Optuna search and a curve written by hand) that vary a configuration at one
size (a search), are a learning curve: role ``learning-curve``
(:func:`greenprint._size_curves.size_curves`, :attr:`StudyRoles.learning_curve`).

A finished run with no params, no score and no child beside trials that have both (a search
script's ``gp.track("load-data")`` before its trials) is a step of the study, not a trial: a
``part`` (:attr:`StudyRoles.steps`), whose cost is its own at the top level, its sweep's inside
one. A top-level run cut short (failed, interrupted, lost) with no params, no score and no
child, named as a top-level sweep that holds trials, is a worker of that search that ran none
(``greenprint run -- python search.py`` on a node that crashed as it started): a ``sweep``
(:attr:`StudyRoles.workers_cut_short`), not a failed trial.

The trials' scores and the final run (:func:`~greenprint.analysis.study_trials`,
:func:`~greenprint.analysis.choose_final`) are read in :mod:`greenprint.analysis._roles`, which
re-exports this module's names. This module is pure Python at import (no numpy, nothing of
:mod:`greenprint.analysis`), so that ``greenprint ledger ls`` reads a study's roles, and the
metric its report ranks by (:mod:`greenprint._metric_choice`), without loading the analyses.

Here: :func:`resolve_roles`, which applies the rules of :mod:`greenprint._role_rules` (and of
:mod:`greenprint._size_curves` for a learning curve) and returns a :class:`StudyRoles`
(:mod:`greenprint._role_set`, whose note reads what :mod:`greenprint._role_findings` finds
and repeats with :mod:`greenprint._role_repeats`);
their names are re-exported here.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

from greenprint._forest import Mode, RunForest
from greenprint._records import RUN_ROLES, RunRecord
from greenprint._role_repeats import _less_repeat as _less_repeat
from greenprint._role_rules import (
    _BESIDE_TRIALS,
    _held_by_ranks,
    _holds_its_lost_run,
    _holds_trials,
    _logs_its_best_child,
    _nested_sweep,
    _runs_its_params,
    _steps,
    _workers_cut_short,
)
from greenprint._role_rules import _CONTAINERS as _CONTAINERS
from greenprint._role_rules import _has_score as _has_score
from greenprint._role_set import ScoreSource as ScoreSource
from greenprint._role_set import StudyRoles as StudyRoles
from greenprint._role_set import TrialScore as TrialScore
from greenprint._run_params import _NAMED_HINTS as _NAMED_HINTS
from greenprint._run_params import REPEAT_PARAMS as REPEAT_PARAMS
from greenprint._run_params import _named_role as _named_role
from greenprint._run_params import _repeat_value as _repeat_value
from greenprint._run_params import _split_repeats as _split_repeats
from greenprint._run_params import _vary_params as _vary_params
from greenprint._run_params import is_repeat_param as is_repeat_param
from greenprint._size_curves import size_curves

__all__ = [
    "REPEAT_PARAMS",
    "SCORED_STATUSES",
    "ScoreSource",
    "StudyRoles",
    "TrialScore",
    "is_repeat_param",
    "resolve_roles",
    "recorded_direction",
    "roles",
]

logger = logging.getLogger(__name__)

#: Statuses whose logged score counts (failed, interrupted and lost runs produced no model).
SCORED_STATUSES: tuple[str, ...] = ("finished", "pruned")


def recorded_direction(runs: Sequence[RunRecord], metric: str) -> tuple[Mode, str | None] | None:
    """The direction ``runs`` recorded for ``metric``, and what said so; ``None``: none did.

    The search's own, ``(mode, None)``: an objective it optimised, an Optuna study's
    directions, recorded by greenprint's callback in each trial's provenance
    (:data:`~greenprint._provenance.OBJECTIVES_KEY`; ``"min"`` for Optuna's default
    ``direction="minimize"`` of a metric named ``value``, whose name says nothing). Else a
    direction the code that logged the metric knew
    (:data:`~greenprint._provenance.METRIC_DIRECTIONS_KEY`: scikit-learn's scorers are all
    greater-is-better, also one named ``rmse`` for ``neg_root_mean_squared_error``), ``(mode,
    why)`` with what it recorded of why (``""``: nothing), the one most runs recorded.
    """
    from greenprint._provenance import distinct_provenances, metric_directions_of, objectives_of

    searched: Counter[str] = Counter()
    found: Counter[tuple[str, str]] = Counter()
    for provenance, count in distinct_provenances(run.provenance for run in runs):
        objective = dict(objectives_of(provenance)).get(metric)
        if objective is not None:
            searched[objective] += count
        elif (recorded := metric_directions_of(provenance).get(metric)) is not None:
            found[recorded] += count
    if searched:
        return ("min" if searched.most_common(1)[0][0] == "minimize" else "max"), None
    if not found:
        return None
    direction, why = found.most_common(1)[0][0]
    return ("min" if direction == "minimize" else "max"), why


def resolve_roles(
    runs: Iterable[RunRecord] | RunForest, *, metric: str | None = None
) -> StudyRoles:
    """The role of every run: the one given when it was tracked, else inferred (see the module).

    Args:
        runs: the runs (e.g. ``ledger.runs(study=...)``), or a built :class:`RunForest`.
        metric: the metric a score is judged by for the sweep rule (``None``: any metric).

    Returns:
        The :class:`StudyRoles`.

    Raises:
        AnalysisError: a run is not a RunRecord, two runs share an id, or parents form a cycle.

    Example:
        >>> from greenprint import MetricPoint, RunRecord
        >>> runs = [
        ...     RunRecord(id="s", name="sweep"),
        ...     RunRecord(id="t", name="trial", parent_id="s"),
        ...     RunRecord(id="f", name="fold", parent_id="t", metrics=(MetricPoint("acc", 0.9),)),
        ...     RunRecord(id="b", name="baseline", role="baseline"),
        ... ]
        >>> resolve_roles(runs).as_dict()
        {'s': ('sweep', True), 't': ('trial', True), 'f': ('part', True), 'b': ('baseline', False)}
    """
    forest = runs if isinstance(runs, RunForest) else RunForest.build(runs)
    items = forest.runs
    count = len(items)
    parents = forest.parents
    # A root given a known role keeps it (most runs of a big search), whatever else is in the
    # set: those are taken in one pass, and the loop reads the others only (100,000 runs given
    # their roles: 15 -> 9 ms CPU).
    given_roles = forest.column("role")
    role: list[str] = list(given_roles)  # the others' are set below
    # the role a run's children see as their parent's: its own, but a node or rank linked
    # under a sweep by its job (the workers of a search started as one job: `srun -n 3` around
    # `greenprint run -- python search.py`) hands on the sweep, so that the trials it ran are
    # the sweep's trials, not its parts
    hands: list[str] = list(given_roles)
    virtual = forest.virtual or (False,) * count
    linked = True in virtual  # a job linked some run under another
    inferred = [False] * count
    owner = list(range(count))
    unknown = overridden = 0
    repeat_trials: list[int] = []
    lost_inside: list[int] = []
    for pos in [
        p
        for p in reversed(forest.order)  # parents before children
        if parents[p] is not None or given_roles[p] not in RUN_ROLES
    ]:
        run = items[pos]
        parent = parents[pos]
        given = run.role
        if given is not None and given not in RUN_ROLES:
            unknown += 1
            given = None
        if given is not None and given != "part" and parent is not None:
            if hands[parent] not in _CONTAINERS:
                # inside a trial (or a part, baseline, final or learning-curve run): its cost is
                # inside its parent's whatever role it was given (e.g. a scikit-learn search's
                # sweep, trials and refit inside an Optuna trial)
                given = None
                overridden += 1
        inferred[pos] = given is None
        if given is not None:
            role[pos] = given
        elif parent is None:
            # a job's nodes and ranks linked under its head do not make it a sweep
            kids = [c for c in forest.children[pos] if not virtual[c]]
            kid_runs = [items[c] for c in kids]
            # nor does a child given role 'part' (a step, or an earlier attempt made its part
            # afterwards: set-role part X --part-of Y): no configuration of a search, it leaves
            # a trial around its folds a trial (their configurations are the children's rest)
            configs = [r for r in kid_runs if r.role != "part"]
            # nor do the ranks of one distributed job inside it (`greenprint run` around a
            # script that spawns them): they train one model, its parts
            jobs = {items[c].job_id for c in kids}
            one_job = None not in jobs and len(jobs) == 1
            # no score of its own, or children tracked as trials or sweeps (an integration's,
            # e.g. Optuna trials inside gp.track("study") that logs the best score, or a
            # track_search sweep inside gp.track("experiment")), or children given
            # role baseline, final or learning-curve beside children that vary a configuration
            # (a search script's run around all of them; a training with its test evaluation
            # given role 'final', or a trial with its folds, is no search): a container;
            # never one whose children were all given role 'part' (workers of one training
            # tracked as its parts: a sweep holds trials)
            is_sweep = (
                bool(kids)
                and not all(items[c].role == "part" for c in kids)
                and (
                    _holds_trials(forest, pos, kids, metric)
                    or (
                        any(items[c].role in _BESIDE_TRIALS for c in kids)
                        and _vary_params([r for r in kid_runs if r.role is None])
                    )
                    or not (
                        one_job
                        or (
                            _has_score(run, metric)
                            # a search that logs its best trial's score is their sweep
                            and not _logs_its_best_child(run, configs, metric)
                        )
                        or _runs_its_params(run, configs)
                    )
                )
            ) or (linked and any(items[c].role == "trial" for c in _held_by_ranks(forest, pos)))
            # (the job's workers each ran trials given role 'trial': a search started as one
            # job, `srun -n 3 greenprint run -- python search.py`, is their sweep)
            if is_sweep and _holds_its_lost_run(forest, pos, metric):
                # `greenprint run` around a script whose one run was killed: one trial, the
                # wrapper's, which measured it; the lost run its part
                is_sweep = False
                lost_inside.append(pos)
            role[pos] = "sweep" if is_sweep else "trial"
        elif hands[parent] == "sweep" and not virtual[pos]:
            # a sweep inside a sweep (a search per model family, each around trials of its
            # own lr): a run with no score of its own (or its best child's) whose children
            # vary a configuration within its own (they give its params its values), or
            # were given role 'trial'
            role[pos] = "sweep" if _nested_sweep(forest, pos, metric, virtual) else "trial"
        else:
            role[pos] = "part"
        hands[pos] = role[pos]
        if virtual[pos] and parent is not None and hands[parent] in _CONTAINERS:
            hands[pos] = hands[parent]  # a worker of the sweep: its trials are the sweep's
        if role[pos] == "part" and parent is not None:
            owner[pos] = owner[parent]
        elif role[pos] == "trial" and inferred[pos] and forest.children[pos]:
            kids_runs = [items[c] for c in forest.children[pos] if not virtual[c]]
            if _vary_params(kids_runs, repeats=True) and not _vary_params(kids_runs):
                repeat_trials.append(pos)  # its children differ by a seed or fold only
    if unknown:
        logger.warning(
            "%d runs have a role this greenprint does not know: inferred instead", unknown
        )
    steps = _steps(forest, role, inferred, metric)
    for pos in steps:
        role[pos] = "part"
        up = parents[pos]
        if up is not None:
            owner[pos] = owner[up]  # a step of a sweep: its overhead
    workers_cut_short = _workers_cut_short(forest, role, inferred)
    for pos in workers_cut_short:
        role[pos] = "sweep"  # a search's worker that ran no trial: the search's overhead
    # one configuration run at several training-set sizes beside a search: a learning curve
    curve, unread = size_curves(forest, role, inferred)
    for pos in curve:
        role[pos] = "learning-curve"
    if curve:  # a point of the curve around its folds or seeds is no trial holding its repeats
        repeat_trials = [p for p in repeat_trials if p not in curve]
        lost_inside = [p for p in lost_inside if p not in curve]
    return StudyRoles(
        forest=forest,
        roles=tuple(role),
        inferred=tuple(inferred),
        owners=tuple(owner),
        metric=metric,
        overridden=overridden,
        repeat_trials=tuple(sorted(repeat_trials)),
        steps=steps,
        lost_inside=tuple(sorted(lost_inside)),
        workers_cut_short=workers_cut_short,
        learning_curve=curve,
        size_curves=unread,
    )


def roles(runs: Iterable[RunRecord], *, metric: str | None = None) -> dict[str, tuple[str, bool]]:
    """``{run_id: (role, inferred)}``: :func:`resolve_roles` as a plain dict."""
    return resolve_roles(runs, metric=metric).as_dict()
