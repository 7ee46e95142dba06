"""The metric a study's report ranks its runs by, when none is named: :func:`pick_metric`.

One choice for every command that reads a study by its score: ``greenprint report`` (and
:func:`~greenprint.report.build_report`), ``greenprint ledger export``, which infers roles by
it, and ``greenprint ledger ls``, which shows each run's value of it. Pure Python at import
(the roles it counts trials by come from :mod:`greenprint._study_roles`): ``ledger ls`` chooses
without loading numpy or the analyses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from greenprint._exceptions import AnalysisError
from greenprint._metric_names import is_bookkeeping_metric, is_curve_x
from greenprint._prediction import RESERVED_METRIC_PREFIX, is_reserved_metric
from greenprint._provenance import objectives_of
from greenprint._records import CUT_SHORT_STATUSES, RunRecord
from greenprint._study_roles import StudyRoles, resolve_roles

if TYPE_CHECKING:
    from greenprint._forest import RunForest

__all__ = [
    "NO_METRIC_NOTE",
    "NO_SCORE_STATUSES",
    "is_held_out",
    "metrics_logged",
    "pick_metric",
]


#: What a report without a logged score says instead of its rankings.
NO_METRIC_NOTE = (
    "no run logged a metric: the price tag stands, but ranking the runs, expected max "
    "performance and the Pareto plot need a score; log one with run.log(accuracy=...)"
)


def pick_metric(
    runs: Sequence[RunRecord], metric: str | None, study: str, forest: RunForest | None = None
) -> tuple[str | None, str | None]:
    """The metric to rank by (``None``: no run logged one), and a note saying how it was chosen.

    ``metric`` given: itself (an AnalysisError when no run of the study logged a value of it).
    Else the one logged by the most trials (then final runs: a retrain scored on a test split
    does not tip the trials' held-out score to the training loss it logs too) that did not
    fail (a failed,
    interrupted or lost trial's figures are no score: scikit-learn gives a candidate that
    failed to fit only the worst ``rank_test_score``), never a training schedule's figure when
    anything else was logged; among those logged as often, the objective a search optimised
    (``objective``, ``objective_loss``: a Trainer's hyperparameter_search), then one a sweep
    logged (a hand-written search that logs its best trial's score), then the metric
    the trials kept their model by (the param ``metric_for_best_model`` they all record: a
    Trainer's ``load_best_model_at_end``), then a trial's best value of a metric it logged too
    (``best_val_acc`` at the end beside ``val_acc`` each epoch: the model it kept), then a
    held-out one before a training one, then one the study's baselines and learning-curve runs
    logged too (a scikit-learn search's trials log ``score`` and ``accuracy``, the same score
    under two names, beside a baseline that logs ``accuracy``: the baseline is then a
    reference line, the learning curve drawn).
    ``ledger export`` infers roles by the same choice, so its roles are the report's, and
    ``ledger ls`` shows each run's value of it. ``forest``: ``RunForest.build(runs)``, when the
    caller has it (not built again).
    """
    if metric is not None and not is_reserved_metric(metric):
        # the metric given was logged (a value that is not NaN): nothing to count
        for run in runs:
            for p in run.metrics:
                if p.name == metric and p.value == p.value:
                    return metric, None
    counts: dict[str, int] = {}
    # the trials' own counts come first: a final run scored on another split (the demo's
    # retrain logs train_loss and test_accuracy) must not make its training loss, logged by
    # every trial too, outnumber the trials' held-out score by one
    trial_counts: dict[str, int] = {}
    finals: set[int] = set()
    swept: set[str] = set()
    shared: dict[str, int] = {}  # the runs beside the trials (baselines...) that logged each
    named: Sequence[tuple[RunRecord, Sequence[str]]] = ()
    who = "runs"
    if metric is None:
        # the trials' and the final run's metrics, not their folds' (a scikit-learn fold logs
        # "score", the Optuna trial around it "accuracy"); every run's when they logged none
        study_roles = resolve_roles(runs if forest is None else forest)
        positions = (*study_roles.trials, *study_roles.positions("final"))
        finals = {id(runs[p]) for p in study_roles.positions("final")}
        names_of = _trial_names(study_roles)  # its own names, else its parts'
        picked = [(runs[pos], names_of(pos)) for pos in positions]
        # what a sweep logged (a hand-written search logs its best trial's score): the
        # metric the search was run for, before others its trials logged as often
        swept = {n for p in study_roles.positions("sweep") for n in _logged_names(runs[p])}
        for at in (*study_roles.positions("baseline"), *study_roles.positions("learning-curve")):
            for n in names_of(at):
                shared[n] = shared.get(n, 0) + 1
        scored = [(r, names) for r, names in picked if r.status not in NO_SCORE_STATUSES]
        for some in (scored, picked):  # every trial's when those that did not fail logged none
            if any(names for _, names in some):
                named, who = some, "trials"
                break
    if who == "runs":
        named = [(run, _logged_names(run)) for run in runs]
    counted = [run for run, _ in named]
    for run, logged in named:
        for name in logged:
            counts[name] = counts.get(name, 0) + 1
            if id(run) not in finals:
                trial_counts[name] = trial_counts.get(name, 0) + 1
    if metric is not None:
        if metric not in counts:
            from greenprint._suggest import nearest, suggestion

            logged = ", ".join(repr(m) for m in counts) or "none"
            hint = suggestion(nearest(metric, counts, n=2) if isinstance(metric, str) else [])
            raise AnalysisError(
                f"no run of study {study!r} logged a value of metric {metric!r} to rank by"
                f"{hint}; metrics logged: {logged}"
            )
        return metric, None
    if not counts:
        return None, NO_METRIC_NOTE
    # never a training schedule's figure (a Trainer's learning rate, epoch, runtime...) when
    # anything else was logged; among the most logged, the objective a search optimised (a
    # Trainer's hyperparameter_search), then a held-out metric (eval_loss) before a training
    # one logged as often (a Trainer's loss), then the one the baselines logged too, then the
    # one objective the trials recorded (a Ray Tune experiment's metric); else the first logged
    candidates = [m for m in counts if not is_bookkeeping_metric(m)] or list(counts)
    # nor the x of a curve logged inside a run (run.log(train_size=n, accuracy=s): a
    # training-set size, a param's value) when a score was logged beside it
    axes = _curve_axes(named, candidates) if len(candidates) > 1 else []
    candidates = [m for m in candidates if m not in axes] or candidates

    def often(m: str) -> int:
        return trial_counts.get(m, 0)

    kept_by = _kept_by(counted)
    # the objectives a search recorded (an Optuna study's values_0, values_1...)
    declared = {m for run in counted for m, _ in objectives_of(run.provenance)}
    # the one objective the trials recorded (several: a multi-objective search, ranked as
    # before), and scikit-learn's 'score', the same value as the mean_test_<scorer> a search
    # records, logged first
    objective = set(declared) if len(declared) == 1 else set()
    if any(m.startswith("mean_test_") for m in objective):
        objective.add("score")
    # a trial's best value of a metric it logged each epoch (best_val_acc beside val_acc): the
    # score of the model it kept, before its last epoch's
    best_of = {m: of for m in candidates if (of := _best_of(m)) is not None and of in counts}

    def rank(m: str) -> tuple[int, bool, bool, bool, bool, bool, int, bool, int]:
        return (
            often(m),
            m in _SEARCH_OBJECTIVES,
            m in swept,
            m == kept_by,
            m in best_of,
            is_held_out(m) or is_held_out(best_of.get(m, "")),
            shared.get(m, 0),
            m in objective,
            counts[m],
        )

    chosen = max(candidates, key=rank)
    note = None
    if len(counts) > 1:
        why = f"the metric logged by the most {who}"
        if chosen in _SEARCH_OBJECTIVES and any(
            often(m) == often(chosen) for m in candidates if m != chosen
        ):
            why += ", the objective the search optimised before the metrics logged as often"
        elif chosen in swept and any(
            often(m) == often(chosen) for m in candidates if m != chosen and m not in swept
        ):
            why += ", the one the sweep logged (its best) before the metrics logged as often"
        elif chosen == kept_by and any(
            often(m) == often(chosen) for m in candidates if m != chosen
        ):
            why += (
                ", the one each trial kept its best model by (metric_for_best_model) before "
                "the metrics logged as often"
            )
        elif chosen in best_of and any(
            often(m) == often(chosen) for m in candidates if m != chosen and m not in best_of
        ):
            why += (
                f", each trial's best {best_of[chosen]!r} (the model it kept) before its last "
                "value and the metrics logged as often"
            )
        elif is_held_out(chosen) and any(
            often(m) == often(chosen) and not is_held_out(m) for m in candidates
        ):
            why += ", a held-out one before the training metrics logged as often"
        elif shared.get(chosen, 0) and any(
            often(m) == often(chosen) and shared.get(m, 0) < shared[chosen]
            for m in candidates
            if m != chosen
        ):
            why += (
                ", the one the study's baselines and learning-curve runs logged too, before "
                "the metrics logged as often"
            )
        elif chosen in objective and any(
            often(m) == often(chosen) for m in candidates if m not in objective
        ):
            why += ", the objective its trials recorded the search optimised, before the others"
        elif ties := [m for m in candidates if m != chosen and rank(m) == rank(chosen)]:
            # nothing told them apart: the first logged of those logged as often
            tied = {chosen, *ties}
            if tied <= declared:  # a multi-objective search's objectives (values_0, values_1)
                which = "all of them the search's objectives, in the order it named them"
            elif tied & declared:
                named_ones = ", ".join(m for m in candidates if m in tied & declared)
                which = f"the search's objectives among them: {named_ones}"
            else:
                which = "none of them named as a search's objective, a sweep's or a kept model's"
            why = f"the first logged of {len(ties) + 1} metrics logged by as many {who} ({which})"
        if axes := [m for m in axes if m != chosen]:
            one = len(axes) == 1
            why += (
                f"; {', '.join(map(repr, axes))} {'is' if one else 'are'} the x of a curve "
                f"(a training-set size or a param's value), not a score"
            )
        note = (
            f"runs ranked by {chosen!r}, {why} "
            f"(also logged: {', '.join(m for m in counts if m != chosen)}); choose another with "
            "--metric (metric= in Python)"
        )
    return chosen, note


#: Statuses of a run whose figures are no score to choose the metric by (it produced no model).
NO_SCORE_STATUSES = frozenset(CUT_SHORT_STATUSES)


def _logged_names(run: RunRecord) -> list[str]:
    """The metrics a run logged a value of (not NaN), in logged order, greenprint's own left out.

    In logged order (not a set's hash order), so that ties go the same way every time; a
    NaN value (``v != v``) does not count; a reserved metric (predictions) is never a score.
    """
    # (a dict of the names in logged order, the reserved prefix tested inline: no call per
    # name; 100,000 runs of a search, when the report chooses the metric: see BENCHMARKS.md)
    names = {p.name: None for p in run.metrics if p.value == p.value}
    return [name for name in names if not name.startswith(RESERVED_METRIC_PREFIX)]


def metrics_logged(forest: RunForest, positions: Sequence[int]) -> list[str]:
    """The metrics the runs at ``positions`` logged a value of, each run's own else its parts'.

    In logged order (the first run's first), greenprint's own left out; a run that logged no
    metric stands for the metrics its child runs that did not fail logged (a trial scored by
    its folds'), as :func:`pick_metric` counts a trial's. What a report lists when the scored
    trials have no value of the metric it ranks by.
    """
    of = _names_with_parts(forest, lambda child: True)
    return list(dict.fromkeys(name for pos in positions for name in of(pos)))


def _trial_names(roles: StudyRoles) -> Callable[[int], list[str]]:
    """The metrics the run at a position stands for when choosing one: its own, else its parts'.

    A trial that logged no metric of its own is scored by the mean of its parts' (its folds,
    :func:`~greenprint.analysis.study_trials`): the metrics its parts logged (that did not
    fail) are the ones it can be ranked by. A cross-validated search whose folds log
    ``val_acc`` and whose final retrain logs ``test_acc`` is ranked by ``val_acc``, not by the
    one metric a trial-level run happened to log. A trial that logged any metric keeps its own
    (an Optuna trial's ``accuracy`` over its scikit-learn folds' ``score``).
    """
    role = roles.roles
    return _names_with_parts(roles.forest, lambda child: role[child] == "part")


def _names_with_parts(
    forest: RunForest, is_part: Callable[[int], bool]
) -> Callable[[int], list[str]]:
    """The metrics of the run at a position: its own, else those of its parts that did not fail.

    ``is_part(child)``: whether the child run at that position is a part of its parent.
    """
    runs, children = forest.runs, forest.children

    def of(pos: int) -> list[str]:
        found = _logged_names(runs[pos])
        if found or not children[pos]:
            return found
        merged: dict[str, None] = {}
        for child in children[pos]:
            if is_part(child) and runs[child].status not in NO_SCORE_STATUSES:
                merged.update(dict.fromkeys(of(child)))
        return list(merged)

    return of


#: The metric a search logs as the objective it optimised (greenprint's Hugging Face callback:
#: ``objective`` when maximised, ``objective_loss`` when minimised): the default ranking.
_SEARCH_OBJECTIVES = frozenset({"objective", "objective_loss"})
#: Prefixes of metrics measured on held-out data (Hugging Face's eval_, Keras' val_...).
_HELD_OUT_PREFIXES = ("eval_", "val_", "valid_", "validation_", "test_", "eval/", "val/", "test/")


def _curve_axes(
    named: Sequence[tuple[RunRecord, Sequence[str]]], names: Sequence[str]
) -> list[str]:
    """The ``names`` that are the x of a curve, not a score: a size, a param's value.

    A training-set size or a ``param_*`` column (:func:`~greenprint._metric_names.is_curve_x`)
    or the name of a param of the runs counted (``run.log(C=c, accuracy=s)``: a validation
    curve inside one run); the report notes such a curve (:mod:`greenprint.report._curve_runs`)
    and ranks by its score.
    """
    params: set[str] = set()
    for run, _ in named:
        params.update(run.params)
    return [m for m in names if is_curve_x(m) or m in params]


def _kept_by(runs: Sequence[RunRecord]) -> str | None:
    """The metric every run that records ``params.metric_for_best_model`` names, if one."""
    named = {run.params.get("metric_for_best_model") for run in runs}
    named.discard(None)
    return str(named.pop()) if len(named) == 1 else None


def _best_of(name: str) -> str | None:
    """The metric whose best value ``name`` says it is (``best_val_acc``, ``val_acc_best``)."""
    lower = name.lower()
    for prefix in ("best_", "best-", "best/"):
        if lower.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix) :]
    for suffix in ("_best", "-best", "/best"):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def is_held_out(name: str) -> bool:
    """Whether a metric's name says it was measured on held-out data (``val_acc``...)."""
    return name.lower().startswith(_HELD_OUT_PREFIXES)
