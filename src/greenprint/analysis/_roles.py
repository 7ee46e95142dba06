"""The trials of a study, their scores and the final run, from each run's role.

Each run's role, given or inferred, is read by :mod:`greenprint._study_roles` (pure Python: the
rules are in its docstring), whose names are re-exported here. A trial's score is its own logged
score, else the mean of its parts' scores (e.g. the folds of a cross-validation, each part
scored the same way, recursively); :class:`TrialScore` says which. A distributed job's root is
scored by the mean of every rank of every node, each weighing the same. Analyses over "trials"
take the ``trial`` runs only. The final run is the ``final`` run if there is one (of several,
the best finished one by the metric, of a tie the last started), else the best finished trial
(:func:`~greenprint.analysis._final_run.choose_final`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from greenprint._format import count_of, ended_tally
from greenprint._frozen import slot_constructor
from greenprint._records import RunRecord
from greenprint._study_roles import _CONTAINERS as _CONTAINERS  # read by tests
from greenprint._study_roles import (
    SCORED_STATUSES,
    ScoreSource,
    StudyRoles,
    TrialScore,
    _less_repeat,
    _split_repeats,
    is_repeat_param,
    recorded_direction,
    resolve_roles,
    roles,
)
from greenprint._study_roles import _has_score as _has_score  # read by tests
from greenprint.analysis._common import (
    Mode,
    Reduce,
    RunForest,
    check_choice,
    check_metric_name,
    infinite_last,
    resolve_mode,
    score_of,
)

__all__ = [
    "ScoreSource",
    "StudyRoles",
    "StudyTrials",
    "TrialScore",
    "resolve_roles",
    "roles",
    "study_trials",
]


# ------------------------------------------------------------------------------------ trials
@dataclass(frozen=True, eq=False)
class StudyTrials:
    """The trials of a set of runs, with their scores (own, or the mean of their parts').

    Attributes:
        roles: every run's role.
        scores: for every run (by position), its score and where it came from.
        metric: the metric scored (``None``: no scores, every one is ``"none"``).
        mode: ``"max"`` or ``"min"``: whether a higher score is better.
        mode_note: why the mode was chosen when it was not given (e.g. a ``loss`` is minimised),
            else ``None``.
        reduce: ``"last"`` or ``"best"`` logged value.
        diverged: positions of the runs whose last value of the metric is infinite (a training
            that diverged): no score, as a NaN (:attr:`diverged_note` says so).
    """

    roles: StudyRoles
    scores: tuple[TrialScore, ...]
    metric: str | None
    mode: Mode
    mode_note: str | None
    reduce: Reduce
    diverged: tuple[int, ...] = ()

    @property
    def forest(self) -> RunForest:
        """The runs arranged by nesting."""
        return self.roles.forest

    @property
    def positions(self) -> tuple[int, ...]:
        """Positions of the trials, in the order given."""
        return self.roles.trials

    @property
    def runs(self) -> list[RunRecord]:
        """The trials, in the order given."""
        return [self.forest.runs[p] for p in self.positions]

    def score_of(self, run_id: str) -> TrialScore:
        """The score of a run of the set, by id."""
        return self.scores[self.forest.index[run_id]]

    @property
    def by_status(self) -> dict[str, int]:
        """Status -> number of trials (a job's trial by its job's status: RunForest.column)."""
        out: dict[str, int] = {}
        statuses = self.forest.column("status")
        for p in self.positions:
            out[statuses[p]] = out.get(statuses[p], 0) + 1
        return out

    @property
    def from_parts(self) -> int:
        """How many trials are scored by the mean of their parts."""
        return sum(1 for p in self.positions if self.scores[p].source == "parts")

    @property
    def score_note(self) -> str | None:
        """A sentence for the report when some trials are scored by their parts, else ``None``."""
        if not self.from_parts:
            return None
        n = len(self.positions)
        runs, metric = self.forest.runs, self.metric
        how: Literal["last", "max", "min"] = "last" if self.reduce == "last" else self.mode
        # those with a score of their own too: their repeats were made their parts afterwards
        again = sum(
            1
            for p in self.positions
            if self.scores[p].source == "parts"
            and metric is not None
            and not math.isnan(score_of(runs[p], metric, how))
        )
        why = "(runs of its name and params but another seed or fold, made its parts)"
        if again == n:
            return f"each trial's score is the mean of its own and its repeats' {why}"
        # "1 of 3 trials is scored by its own...", "2 of 3 trials are scored by their own..."
        are, their = ("is", "its") if again == 1 else ("are", "their")
        repeats = f"{again} of {n} trials {are} scored by the mean of {their} own and {their} "
        repeats += f"repeats' {why}"
        parts = self.from_parts - again
        if parts == n:
            return (
                f"no trial logged {self.metric!r} of its own: each trial's score is the mean of "
                "its parts' (e.g. cross-validation folds)"
            )
        own = sum(1 for p in self.positions if self.scores[p].source == "own")
        their, score = ("its", "its score") if parts == 1 else ("their", "their score")
        text = (
            f"{parts} of {n} trials logged no {self.metric!r} of {their} own: {score} "
            f"is the mean of {their} parts' (e.g. cross-validation folds)"
        )
        if again:
            text = f"{text}; {repeats}" if parts else repeats
        if own:
            text += f"; {own} scored by {'its' if own == 1 else 'their'} own"
        if none := n - self.from_parts - own:
            # "6 of 12 trials logged no 'acc' of their own: ...; 6 without a score (failed, or no
            # part scored)" read as if the other 6 had logged theirs, and named interrupted and
            # lost trials failed: how many more, and how they ended
            statuses = self.forest.column("status")
            tally = ended_tally(
                statuses[p] for p in self.positions if self.scores[p].source == "none"
            )
            text += f"; {none} more {'has' if none == 1 else 'have'} no score ({tally})"
        return text

    @property
    def roles_note(self) -> str | None:
        """The roles' note (:attr:`StudyRoles.note`), scores counted.

        The trials that hold their repeats are counted by where their score came from (their
        parts' mean, or their own).
        """
        return self.roles.note_with(self.scores)

    @property
    def diverged_note(self) -> str | None:
        """A sentence for the report when some runs' last value is infinite, else ``None``."""
        if not self.diverged:
            return None
        names = ", ".join(repr(self.forest.runs[p].name) for p in self.diverged[:5])
        more = f" and {len(self.diverged) - 5} more" if len(self.diverged) > 5 else ""
        runs = count_of(len(self.diverged), "run")
        return (
            f"{runs} ({names}{more}) ended with an infinite {self.metric!r} (a training that "
            "diverged): no score, as a NaN, so a trial among them counts as the worst score"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: counts, where scores came from, the mode and its note."""
        return {
            "trials": len(self.positions),
            "by_status": self.by_status,
            "scored_by_parts": self.from_parts,
            "metric": self.metric,
            "mode": self.mode,
            "mode_note": self.mode_note,
            "score_note": self.score_note,
        }


#: ``TrialScore(score, source, parts)`` at half the cost (``_frozen.slot_constructor``).
_make_score = slot_constructor(TrialScore)


def study_trials(
    runs: Iterable[RunRecord] | RunForest | StudyRoles,
    *,
    metric: str | None = None,
    mode: Mode | None = None,
    reduce: Reduce = "last",
    scored_statuses: Sequence[str] = SCORED_STATUSES,
) -> StudyTrials:
    """The trials of a set of runs and every run's score (own, else the mean of its parts').

    Args:
        runs: the runs, a built forest, or resolved roles.
        metric: the score's metric name (``None``: no scores).
        mode: ``"max"`` or ``"min"``; ``None``: the direction the runs recorded
            (:func:`recorded_direction`: an objective of the search that ran the trials, an
            Optuna study's; else the direction the code that logged the metric knew, a
            scikit-learn scorer's, greater-is-better also for ``"rmse":
            "neg_root_mean_squared_error"``), else inferred from the metric's name (a
            ``loss``, ``error``, ``perplexity``, ``rmse``... is minimised); a note says so
            either way.
        reduce: ``"last"`` or ``"best"`` logged value of each run's metric.
        scored_statuses: statuses of the parts whose score counts in their parent's mean,
            and of the runs a mean of parts can score (a failed trial gets none from its
            folds: it produced no model).

    Returns:
        The :class:`StudyTrials`.

    Raises:
        AnalysisError: an infinite score, duplicate ids or a parent cycle.
        ConfigError: an unknown ``mode`` or ``reduce``, or a ``metric`` that is no name.
    """
    check_metric_name(metric, optional=True)
    resolved_mode, note = resolve_mode(metric, mode)
    reduce = "last" if check_choice(reduce, "reduce", ("last", "best")) == "last" else "best"
    if isinstance(runs, StudyRoles):
        study = runs
    else:
        study = resolve_roles(runs, metric=metric)
    forest = study.forest
    if mode is None and metric is not None:
        recorded = recorded_direction(forest.runs, metric)
        if recorded is not None and recorded[0] != resolved_mode:
            named = note is not None  # the name said lower is better
            resolved_mode, why = recorded
            note = _recorded_note(metric, resolved_mode, why, named=named)
    scored = set(scored_statuses)
    scores: list[TrialScore] = [TrialScore(math.nan, "none")] * len(forest.runs)
    diverged: list[int] = []  # runs whose last value is infinite (no score, as a NaN)
    if metric is not None:
        how: Literal["last", "max", "min"] = "last" if reduce == "last" else resolved_mode
        runs, children = forest.runs, forest.children
        # A run of a job linked under another of its runs (a node under the job's head, a rank
        # under its node's meter: forest.virtual) is not a part scored on its own but stands
        # beside the ranks of the run it is linked under: it hands its parent every score it
        # stands for (its own, else its parts', and its linked runs'), so that every rank of
        # every node weighs the same in the head's mean (a node's mean weighed its ranks
        # 1/ranks-per-node). No job, no links: the plain mean of the parts' scores.
        virtual = forest.virtual if True in forest.virtual else None
        ranks: dict[int, list[float]] = {}  # linked run -> the scores it stands for
        # runs with a child measured apart from them (set-role --part-of: a fold or seed of
        # its configuration tracked as a run of its own may be one), found once
        contained = forest.column("contained")
        apart = (
            {forest.parents[c] for c, kept in enumerate(contained) if kept is False}
            if False in contained
            else set()
        )
        for pos in forest.order:  # children before parents
            own = score_of(runs[pos], metric, how)
            if own != own and how == "last" and infinite_last(runs[pos], metric):
                diverged.append(pos)
            if own == own:  # not NaN
                scores[pos] = _make_score(own, "own", 0)
                if pos in apart and (again := _repeats_apart(pos, study, scored, scores)):
                    # its folds or seeds, tracked as runs of their own, made its parts
                    # afterwards: one configuration's runs, each weighing the same
                    scores[pos] = TrialScore(
                        math.fsum((own, *again)) / (len(again) + 1), "parts", len(again) + 1
                    )
                if virtual is not None and virtual[pos]:
                    ranks[pos] = [own, *_scores_of_parts(pos, study, scored, scores, ranks, True)]
                continue
            if not children[pos] or runs[pos].status not in scored:
                continue  # a failed trial produced no model, whatever its folds scored
            if virtual is None:
                values = [
                    scores[c].score
                    for c in children[pos]
                    if study.roles[c] == "part"
                    and runs[c].status in scored
                    and not math.isnan(scores[c].score)
                ]
            else:
                values = _scores_of_parts(pos, study, scored, scores, ranks, False)
                if virtual[pos]:
                    ranks[pos] = values
            if values:
                scores[pos] = TrialScore(math.fsum(values) / len(values), "parts", len(values))
    return StudyTrials(
        roles=study,
        scores=tuple(scores),
        metric=metric,
        mode=resolved_mode,
        mode_note=note,
        reduce=reduce,
        diverged=tuple(sorted(diverged)),
    )


def _recorded_note(metric: str, mode: Mode, why: str | None, *, named: bool) -> str:
    """Why ``metric`` is ranked ``mode``, a direction its runs recorded, not its name's.

    ``why``: ``None`` for an objective of the search that ran the trials (an Optuna study's
    direction), else what the code that logged the metric recorded of why (a scikit-learn
    scorer); ``named``: whether the metric's name says lower is better.
    """
    done, other = ("minimised", "max") if mode == "min" else ("maximised", "min")
    back = f"to rank it the other way: --mode {other}, or mode='{other}' in Python"
    if why is None:
        return (
            f"{metric!r} is {done}, as the search that ran the trials {done} it (the "
            f"direction its trials recorded; {back})"
        )
    better = "lower" if mode == "min" else "higher"
    name = "its name says lower is better" if named else "its name says nothing of it"
    said = f" ({why})" if why else ""
    return (
        f"{metric!r} is {done}: the runs that logged it recorded that {better} is better"
        f"{said}, though {name} ({back})"
    )


def _repeats_apart(
    pos: int, study: StudyRoles, scored: set[str], scores: Sequence[TrialScore]
) -> list[float]:
    """The scores of run ``pos``'s repeats measured apart from it, which its mean takes.

    Those are its parts recorded outside its measurement (``contained`` false: given it with
    ``greenprint ledger set-role part ID --part-of ID``), not linked by a job, with its name
    (or one alike but for the repeat's value: ``lr=0.1-fold3``) and params but another value
    of a param indexing a repetition (:func:`is_repeat_param`:
    the other folds or seeds of its configuration, tracked as runs of their own), whose
    status is in ``scored``.
    """
    forest = study.forest
    runs, roles = forest.runs, study.roles
    run = runs[pos]
    virtual = forest.virtual
    values: list[float] = []
    for c in forest.children[pos]:
        kid = runs[c]
        if (
            kid.contained is False
            and roles[c] == "part"
            and not (virtual and virtual[c])
            and kid.status in scored
            and not math.isnan(scores[c].score)
            and _repeat_of(kid.params, run.params)
            and (kid.name == run.name or _alike_but_repeats(kid, run))
        ):
            values.append(scores[c].score)
    return values


def _alike_but_repeats(run: RunRecord, other: RunRecord) -> bool:
    """Whether two runs' names are one but for their repeat params' values (``-fold3``)."""
    repeat = frozenset(k for k in (*run.params, *other.params) if is_repeat_param(k))
    name = _less_repeat(run, repeat)
    return name is not None and name == _less_repeat(other, repeat)


def _repeat_of(params: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two runs' params differ by params indexing a repetition only, and by one.

    Such a param differs as a repetition where both give it a number (:func:`_repeat_value`:
    a fold's index, a seed); a ``split`` of ``"val"`` and ``"test"`` is another configuration.
    """
    if params.keys() != other.keys():
        return False
    mine, theirs = _split_repeats(params), _split_repeats(other)
    return mine[0] == theirs[0] and mine[1] != theirs[1]


def _scores_of_parts(
    pos: int,
    study: StudyRoles,
    scored: set[str],
    scores: Sequence[TrialScore],
    ranks: Mapping[int, list[float]],
    linked_only: bool,
) -> list[float]:
    """The scores the mean of run ``pos``'s parts takes, where some are runs of a job linked.

    A part linked under ``pos`` by its job (``forest.virtual``) gives every score it stands
    for (``ranks``); any other part, its score. Only parts whose status is in ``scored``, and
    only the linked ones with ``linked_only`` (a run with a score of its own: its other parts
    are inside it).
    """
    forest = study.forest
    runs, virtual, roles = forest.runs, forest.virtual, study.roles
    values: list[float] = []
    for c in forest.children[pos]:
        if roles[c] != "part" or runs[c].status not in scored:
            continue
        if virtual[c]:
            values.extend(ranks.get(c, ()))
        elif not linked_only and not math.isnan(scores[c].score):
            values.append(scores[c].score)
    return values
