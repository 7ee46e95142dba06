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
  children were all given role ``part`` (the workers of one training, tracked as its parts); a root
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
one.

The trials' scores and the final run (:func:`~greenprint.analysis.study_trials`,
:func:`~greenprint.analysis.choose_final`) are read in :mod:`greenprint.analysis._roles`, which
re-exports this module's names. This module is pure Python at import (no numpy, nothing of
:mod:`greenprint.analysis`), so that ``greenprint ledger ls`` reads a study's roles, and the
metric its report ranks by (:mod:`greenprint._metric_choice`), without loading the analyses.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from greenprint._forest import Mode, RunForest, json_float, score_of
from greenprint._format import count_of
from greenprint._metric_names import is_bookkeeping_metric
from greenprint._prediction import is_reserved_metric
from greenprint._records import CUT_SHORT_STATUSES, RUN_ROLES, RunRecord
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

ScoreSource = Literal["own", "parts", "none"]

#: Statuses whose logged score counts (failed, interrupted and lost runs produced no model).
SCORED_STATUSES: tuple[str, ...] = ("finished", "pruned")

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


@dataclass(frozen=True, slots=True)  # slots: one per run of a 100,000-run study
class TrialScore:
    """A run's score and where it came from.

    Attributes:
        score: the score (NaN when it has none).
        source: ``"own"`` (its own logged value), ``"parts"`` (the mean of its parts' scores,
            e.g. the folds of a cross-validation) or ``"none"``.
        parts: the number of parts' scores averaged (a job's root: its ranks, every node's;
            0 unless ``source == "parts"``).
    """

    score: float
    source: ScoreSource
    parts: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"score": json_float(self.score), "source": self.source, "parts": self.parts}


@dataclass(frozen=True, eq=False)
class StudyRoles:
    """The role of every run of a set, and whether it was inferred.

    Attributes:
        forest: the runs arranged by nesting (positions index every tuple here).
        roles: the role of the run at each position, one of :data:`~greenprint.RUN_ROLES`.
        inferred: whether that role was inferred (``False``: given when the run was tracked).
        owners: for each run, the position of the run its cost belongs to: itself, or for a
            part the nearest enclosing run that is not a part (its trial, baseline...).
        metric: the metric "logged no score" was judged by (``None``: any metric).
        overridden: how many runs were given a role inside a run that is not a sweep or a
            greener comparison (a trial, a part, a baseline, the final run or a learning-curve
            run) and are read as its parts (counted among the inferred).
        repeat_trials: positions of the inferred trials that hold child runs that differ by a
            param indexing a repetition only (``seed``, ``fold``...: :func:`is_repeat_param`),
            read as its repeats (its parts), not as trials of a sweep (:attr:`repeats` counts
            them).
        steps: positions of the runs read as steps of the study, not trials (role ``part``):
            a finished run with no params, no score and no child beside trials that have
            params (varying) and a score (a search script's data preparation or warm-up run).
        lost_inside: positions of the top-level runs read as trials though they logged no score
            and hold a run: its one run, which was lost inside their measurement while they
            went on (``greenprint run`` around a script whose one run was killed), is their
            part (:func:`_holds_its_lost_run`).
        learning_curve: positions of the runs read as a learning curve (role
            ``learning-curve``, inferred): runs of one configuration that differ only by their
            training-set size, beside a search at one size
            (:func:`greenprint._size_curves.size_curves`).
        size_curves: groups of trials (positions) that run one configuration at several
            training-set sizes but stay trials, as nothing tells them from a search over the
            size (no search beside them, or two groups or more): the note says so.
    """

    forest: RunForest
    roles: tuple[str, ...]
    inferred: tuple[bool, ...]
    owners: tuple[int, ...]
    metric: str | None = None
    overridden: int = 0
    repeat_trials: tuple[int, ...] = ()
    steps: tuple[int, ...] = ()
    lost_inside: tuple[int, ...] = ()
    learning_curve: tuple[int, ...] = ()
    size_curves: tuple[tuple[int, ...], ...] = ()

    @property
    def repeats(self) -> int:
        """How many inferred trials hold their repeats as parts (:attr:`repeat_trials`)."""
        return len(self.repeat_trials)

    @property
    def runs(self) -> tuple[RunRecord, ...]:
        """The runs, in the order given."""
        return self.forest.runs

    def role_of(self, run_id: str) -> str:
        """The role of a run of the set, by id.

        Raises:
            KeyError: no run with that id in the set.
        """
        return self.roles[self.forest.index[run_id]]

    def as_dict(self) -> dict[str, tuple[str, bool]]:
        """``{run_id: (role, inferred)}`` for every run."""
        return {
            run.id: (role, inferred)
            for run, role, inferred in zip(self.forest.runs, self.roles, self.inferred, strict=True)
        }

    def positions(self, role: str) -> tuple[int, ...]:
        """Positions of the runs with ``role``, in the order given."""
        return self._positions.get(role, ())

    @cached_property
    def _positions(self) -> dict[str, tuple[int, ...]]:
        """Role -> positions of its runs: one pass over every role, kept (asked many times)."""
        found: dict[str, list[int]] = {}
        for p, r in enumerate(self.roles):
            found.setdefault(r, []).append(p)
        return {r: tuple(positions) for r, positions in found.items()}

    @property
    def trials(self) -> tuple[int, ...]:
        """Positions of the trials, in the order given."""
        return self.positions("trial")

    @property
    def counts(self) -> dict[str, int]:
        """Role -> number of runs, in the order of :data:`~greenprint.RUN_ROLES` (present only)."""
        return {r: n for r in RUN_ROLES if (n := self.roles.count(r))}

    @property
    def n_inferred(self) -> int:
        """How many runs had no role given (theirs was inferred)."""
        return sum(self.inferred)

    @property
    def note(self) -> str | None:
        """A sentence for the report when any role was inferred, else ``None``.

        It says how the trials holding their repeats are scored only in general (the scores
        are not known here): :meth:`note_with` counts them.
        """
        return self.note_with(None)

    def note_with(self, scores: Sequence[TrialScore] | None) -> str | None:
        """:attr:`note`, counting the trials that hold their repeats by score source.

        ``scores``: every run's, by position (:attr:`StudyTrials.scores`); ``None``: the note
        says how such a trial is scored only in general.
        """
        if not self.n_inferred:
            return None
        found: dict[str, int] = {}
        for role, inferred in zip(self.roles, self.inferred, strict=True):
            if inferred:
                found[role] = found.get(role, 0) + 1
        if self.overridden:  # every overridden run is a part, and counted as inferred
            found["part"] -= self.overridden
        plain = self.n_inferred - self.overridden
        texts = []
        if plain:
            listing = ", ".join(f"{n} {r}" for r in RUN_ROLES if (n := found.get(r)))
            whose = (
                "every run" if plain == len(self.roles) else f"{plain} of {len(self.roles)} runs"
            )
            texts.append(
                f"roles inferred for {whose} ({listing}), as no role was given: "
                f"{_INFERENCE_RULES}; give roles with gp.track(..., role=...), or afterwards with "
                "greenprint ledger set-role ROLE RUN_ID..."
            )
        if self.overridden:
            texts.append(
                f"{self.overridden} of {len(self.roles)} runs were given a role but ran inside a "
                "trial (or a part, baseline, final or learning-curve run): they are read as its "
                "parts, their cost inside its own (e.g. a scikit-learn search inside an Optuna "
                "trial)"
            )
        if named := self.named_like:
            listing = ", ".join(
                f"{count_of(len(names), 'trial')} named like a {role} run "
                f"({', '.join(repr(n) for n in names[:3])}{', ...' if len(names) > 3 else ''})"
                for role, names in named.items()
            )
            one = sum(map(len, named.values())) == 1
            texts.append(
                f"{listing}: read as {'a trial' if one else 'trials'}, as no role was given; "
                f"if {'it is' if one else 'they are'} not, give {'it' if one else 'them'} "
                "role='baseline' or role='final' (gp.track(..., role=...), "
                "greenprint run --role, or afterwards greenprint ledger set-role)"
            )
        if sizes := self.sizes_only:
            texts.append(
                f"the {len(self.trials)} trials differ only by their training-set size "
                f"(dataset_size {min(sizes):,} to {max(sizes):,}): read as trials of a search; "
                "if they are a learning curve, give them role='learning-curve' "
                "(gp.track(..., role='learning-curve'), or afterwards greenprint ledger "
                "set-role learning-curve RUN_ID...)"
            )
        if self.learning_curve:
            texts.append(self._learning_curve_text())
        if self.size_curves and not self.sizes_only:
            texts.append(self._size_curves_text())
        if reruns := self.reruns:
            shown = ", ".join(f"{a[:8]} then {b[:8]}" for a, b in reruns[:3])
            more = ", ..." if len(reruns) > 3 else ""
            first, then = reruns[0]
            texts.append(
                f"{count_of(len(reruns), 'trial')} that did not finish had a later run of the "
                f"same name and params ({shown}{more}): read as trials of their own, each "
                "counted as the worst score; if one is an attempt of the later run (a script "
                "run again after a crash), make it its part: greenprint ledger set-role part "
                f"{first[:8]} --part-of {then[:8]}"
            )
        if repeated := self.repeated:
            texts.append(_repeated_text(repeated, self.forest))
        if retrained := self.retrained:
            texts.append(self._retrained_text(retrained))
        if self.steps:
            names = ", ".join(repr(self.forest.runs[p].name) for p in self.steps[:3])
            texts.append(
                f"{count_of(len(self.steps), 'run')} with no params and no score beside trials "
                f"that have both ({names}{', ...' if len(self.steps) > 3 else ''}): read as "
                "steps of the study (data preparation, a warm-up), role part: counted in the "
                "totals, never a trial; if one is a trial, give it role='trial' "
                "(gp.track(..., role='trial'), or afterwards greenprint ledger set-role trial "
                f"{self.forest.runs[self.steps[0]].id[:8]})"
            )
        if self.lost_inside:
            texts.append(self._lost_inside_text())
        if self.repeats:
            texts.append(self._repeats_text(scores))
        return "; ".join(texts)

    def _sizes_of(self, positions: Iterable[int]) -> str:
        """``"dataset_size 449 to 1,797"`` of the runs at ``positions``."""
        sizes = [self.forest.runs[p].dataset_size or 0 for p in positions]
        return f"dataset_size {min(sizes):,} to {max(sizes):,}"

    def _learning_curve_text(self) -> str:
        """The note on :attr:`learning_curve`: how they were read, and how to read them apart."""
        runs, curve = self.forest.runs, self.learning_curve
        names = ", ".join(repr(runs[p].name) for p in curve[:4]) + (
            ", ..." if len(curve) > 4 else ""
        )
        ids = " ".join(runs[p].id[:8] for p in curve)
        return (
            f"{len(curve)} runs ({names}) share one configuration and differ only by their "
            f"training-set size ({self._sizes_of(curve)}), beside trials that vary their "
            "configuration at one size (a search): read as a learning curve "
            "(role learning-curve, inferred): never a trial, nor the final run; if they are "
            f"trials of the search, give them role='trial' (greenprint ledger set-role trial {ids})"
        )

    def _size_curves_text(self) -> str:
        """The note on :attr:`size_curves`: read as trials, and how to give the role."""
        runs, groups = self.forest.runs, self.size_curves
        members = [p for g in groups for p in g]
        first = groups[0]
        example = ", ".join(repr(runs[p].name) for p in first[:3]) + (
            ", ..." if len(first) > 3 else ""
        )
        what = (
            "one configuration"
            if len(groups) == 1
            else f"{len(groups)} configurations (a grid over the size and another param, or "
            "a learning curve of each)"
        )
        why = (
            "nothing tells them from trials of a search over the size"
            if len(groups) == 1
            else "a search over the size reads the same"
        )
        return (
            f"{count_of(len(members), 'trial')} run {what} at several training-set sizes "
            f"({self._sizes_of(members)}; e.g. {example}): read as trials, as {why}; if they "
            "are a learning curve, give them role='learning-curve' (gp.track(..., "
            "role='learning-curve'), or afterwards greenprint ledger set-role learning-curve "
            "RUN_ID...)"
        )

    def _lost_inside_text(self) -> str:
        """The note on :attr:`lost_inside`: what happened, and how the runs are read."""
        runs, children = self.forest.runs, self.forest.children
        if len(self.lost_inside) == 1:
            pos = self.lost_inside[0]
            outer, lost = runs[pos], runs[children[pos][0]]
            ended = outer.status + (f": {outer.error}" if outer.error else "")
            return (
                f"run {outer.id[:8]} ({outer.name!r}, {ended}) is read as one trial, not a "
                f"sweep around one: the one run inside it, {lost.id[:8]} ({lost.name!r}), was "
                "lost (it stopped without recording its end: its process was killed) while "
                f"{outer.id[:8]}, which measured it, went on; the trial costs what "
                f"{outer.id[:8]} measured, and the lost run is its part"
            )
        ids = ", ".join(runs[p].id[:8] for p in self.lost_inside[:3])
        more = ", ..." if len(self.lost_inside) > 3 else ""
        return (
            f"{len(self.lost_inside)} runs ({ids}{more}) are each read as one trial, not a "
            "sweep around one: the one run inside each was lost (it stopped without recording "
            "its end: its process was killed) while the run around it, which measured it, "
            "went on; each trial costs what that run measured, and its lost run is its part"
        )

    def _repeats_text(self, scores: Sequence[TrialScore] | None) -> str:
        """The note on :attr:`repeat_trials`: how they were read, and how they are scored.

        With ``scores``, how many are scored by their parts' mean and how many by their own.
        """
        n = self.repeats
        held = "hold" if n > 1 else "holds"
        text = (
            f"{count_of(n, 'trial')} {held} child runs that differ only by a seed or fold "
            "param (seed, fold, random_state, *_seed...): read as repeats of "
            f"{'each' if n > 1 else 'the'} trial's configuration, its parts"
        )
        metric = repr(self.metric) if self.metric is not None else "a score"
        if scores is None:
            text += f" (a trial that logged no {metric} of its own is scored by its parts' mean)"
        else:
            sources = Counter(scores[p].source for p in self.repeat_trials)
            parts, own, none = sources["parts"], sources["own"], sources["none"]
            counted = []
            if parts:
                them = "it is" if n == 1 else ("each is" if parts == n else _of_them(parts, "is"))
                whose = "their" if 1 < parts < n else "its"
                counted.append(f"{them} scored by {whose} parts' mean")
            if own:
                them = "it is" if n == 1 else ("each is" if own == n else _of_them(own, "is"))
                its = "their" if 1 < own < n else "its"
                counted.append(f"{them} scored by {its} own logged {metric}")
            if none:
                them = "it has" if n == 1 else ("none has" if none == n else _of_them(none, "has"))
                counted.append(f"{them} no score (failed, or no part scored)")
            text += ": " + ", ".join(counted)
        return text + "; to rank each as a trial of its own, give those runs role='trial'"

    @cached_property
    def named_like(self) -> dict[str, list[str]]:
        """``{"baseline" | "final": names}`` of the inferred trials whose name says so.

        A word of the name (split at anything but letters and digits): ``baseline``,
        ``dummy``, ``majority`` for a baseline; ``final``, ``retrain``, ``refit`` for the final
        run. Names are no roles: the runs stay trials, and the note says how to give roles.
        """
        names = self.forest.column("name")
        found: dict[str, list[str]] = {}
        inferred = [p for p in self.trials if self.inferred[p]]
        # every name scanned at once first (substring search, 7 ms on 100,000): most have none
        joined = "\n".join([names[p] for p in inferred]).lower()
        hints = [w for w in _NAMED_HINTS if w in joined]
        if not hints:
            return found
        for p in inferred:
            if (role := _named_role(names[p])) is not None:
                found.setdefault(role, []).append(names[p])
        return found

    @cached_property
    def reruns(self) -> tuple[tuple[str, str], ...]:
        """Inferred trials that did not finish, each with the next trial of its name and params.

        ``(earlier, later)`` run ids: a trial failed, interrupted or lost, and the first trial
        started after it with the same name and params.

        A script run again after a crash records the same configuration twice: two trials, the
        first counted as the worst score. Nothing links them in the ledger, and two runs of one
        name and params may be meant (a flaky configuration tried twice): the note names them
        and how to make the first a part of the second (``greenprint ledger set-role``). A
        trial measured inside its parent (a sweep's, in the script's process) is not named:
        its cost is in that run's, so the command cannot make it a part of another.
        """
        runs = self.forest.runs
        inferred = [p for p in self.trials if self.inferred[p]]
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

    @cached_property
    def retrained(self) -> tuple[tuple[int, int], ...]:
        """Inferred trials that look like the final model retrained with a trial's params.

        ``(retrain, trial)`` positions: a finished trial with params that logged no value of
        the ranked metric (:attr:`metric`), nor did any of its parts (an export helper that
        failed, a test evaluation: runs inside it), but another score (a ``test_acc``, its own
        or a part's), started after a trial with the same params, scored by the metric, had
        ended (the latest such): a hand-written search that retrains its best configuration,
        ``gp.track("best-model", params=best)``, without ``role="final"``. It stays a trial
        (counted as the worst score): the note says how to give it its role. ``()`` when no
        metric ranks the study.
        """
        metric = self.metric
        if metric is None:
            return ()
        runs, children = self.forest.runs, self.forest.children
        trials = [p for p in self.trials if self.inferred[p]]
        unscored = []
        for p in trials:  # a loop, not _has_score's generator: 100,000 scored trials in 25 ms
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
                held = [runs[q] for q in self._below(p)] if children[p] else []
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
        for p in trials:
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

    def _below(self, pos: int) -> list[int]:
        """The positions of every run nested below the run at ``pos`` (its parts)."""
        children, found = self.forest.children, []
        stack = list(children[pos])
        while stack:
            q = stack.pop()
            found.append(q)
            stack.extend(children[q])
        return found

    def _retrained_text(self, pairs: Sequence[tuple[int, int]]) -> str:
        """The note on :attr:`retrained`."""
        runs = self.forest.runs
        names = ", ".join(repr(runs[p].name) for p, _ in pairs[:3]) + (
            ", ..." if len(pairs) > 3 else ""
        )
        logged = sorted(
            {
                m.name
                for p, _ in pairs
                for q in (p, *self._below(p))
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
            f"{count_of(len(pairs), 'trial')} ({names}) logged no {self.metric!r} but "
            f"{', '.join(logged[:3])}, and ran after a trial with the same params had ended "
            f"(e.g. {runs[trial].name!r}): read as {read}; if it is the final model "
            "retrained with that configuration, give it "
            "role='final' (gp.track(..., role='final'), or afterwards greenprint ledger "
            f"set-role final {runs[first].id[:8]})"
        )

    @cached_property
    def repeated(self) -> tuple[tuple[int, ...], ...]:
        """Inferred trials that are one configuration run again with another seed or fold.

        Each group (positions, in start order) holds two or more trials of one parent (or
        none: top-level runs) with the same name (or names alike but for the value of the
        repeat, ``f"lr={lr}-fold{fold}"``) and params but a param indexing a repetition
        (:func:`is_repeat_param`: ``fold``, ``seed``...), which takes two values or more among
        them: ``for fold in range(5): with gp.track(f"lr={lr}", params={"lr": lr, "fold":
        fold})`` with no run around a configuration's folds. Each is read as a trial of its
        own (nothing links them: repeated seeds may be meant as draws of the search), so the
        expected best score draws single folds and the final run is one fold; the note says
        so and how to make each configuration one trial.
        """
        runs = self.forest.runs
        parents = self.forest.parents
        trials = [p for p in self.trials if self.inferred[p] and runs[p].params]
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

    @cached_property
    def sizes_only(self) -> tuple[int, ...]:
        """The training-set sizes of the trials, when they differ by those only, else ``()``.

        Every trial was inferred and has a ``dataset_size``, two sizes or more, and each of
        their params (but a seed or fold: :func:`is_repeat_param`) takes one value across them
        or is a number proportional to the size (a ``fraction`` of the data, ``n_samples``,
        within 5%): a learning curve written by hand, or a search over the data's size. The
        note says how it was read (as trials) and how to give the role.
        """
        runs = self.forest.runs
        trials = [runs[p] for p in self.trials]
        if len(trials) < 2 or not all(self.inferred[p] for p in self.trials):
            return ()
        sizes = [run.dataset_size for run in trials]
        if any(not size for size in sizes) or len(set(sizes)) < 2:
            return ()
        names = {k for run in trials for k in run.params if not is_repeat_param(k)}
        for name in names:
            values = [run.params.get(name) for run in trials]
            if all(v == values[0] for v in values):
                continue
            numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if len(numbers) < len(values):
                return ()
            ratios = [v / size for v, size in zip(numbers, sizes, strict=True) if size]
            if min(ratios) <= 0 or max(ratios) > 1.05 * min(ratios):
                return ()  # a param that varies otherwise: a search
        return tuple(sorted({size for size in sizes if size}))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: counts by role, how many were inferred, and the note."""
        return {
            "counts": self.counts,
            "inferred": self.n_inferred,
            "note": self.note,
        }


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
                            and not _logs_its_best_child(run, kid_runs, metric)
                        )
                        or _runs_its_params(run, kid_runs)
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
        learning_curve=curve,
        size_curves=unread,
    )


def _nested_sweep(
    forest: RunForest, pos: int, metric: str | None, virtual: Sequence[bool] | None = None
) -> bool:
    """Whether the run at ``pos``, inside a sweep, is a sweep too (a search per model family).

    It has children (not a job's links: ``virtual``, the forest's by default), not all given
    role ``part``, given role ``trial`` or ``sweep`` (:func:`_holds_trials`), or varying a
    configuration within its own (they give its params its values) while it logged no score of
    its own, or its best child's.
    """
    items = forest.runs
    if virtual is None:
        virtual = forest.virtual or (False,) * len(items)
    kids = [c for c in forest.children[pos] if not virtual[c]]
    kid_runs = [items[c] for c in kids]
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


def roles(runs: Iterable[RunRecord], *, metric: str | None = None) -> dict[str, tuple[str, bool]]:
    """``{run_id: (role, inferred)}``: :func:`resolve_roles` as a plain dict."""
    return resolve_roles(runs, metric=metric).as_dict()
