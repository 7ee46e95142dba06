"""The trials of a search written to the ledger once it is done, one per row of ``cv_results_``.

Private: :mod:`greenprint.integrations.sklearn` is the public module.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from greenprint._lifecycle import status_for
from greenprint._provenance import (
    METRIC_DIRECTIONS_KEY,
    OBJECTIVES_KEY,
    metric_directions_text,
    objectives_text,
)
from greenprint._pruned import pruned_provenance
from greenprint._records import MetricPoint, RunRecord
from greenprint.integrations._sklearn_common import (
    _derived,
    _plain,
    _plain_params,
    _refit_metric,
    _refit_score,
    _score_name,
    trial_id,
)
from greenprint.integrations._sklearn_costs import (
    _apportioned,
    _last_rows,
    _score_folds,
    _summed,
    _time_shares,
    _with_parts,
)
from greenprint.integrations._sklearn_stopped import _write_stopped
from greenprint.integrations._sklearn_timer import _scored_before_refit

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- the summary
def _write_trials(
    sweep: Run,
    search: Any,
    name: str,
    method: str,
    stopped_by: BaseException | None,
    earlier_best: Any = None,
    scored_at: float | None = None,
    candidates: Sequence[Mapping[str, Any]] = (),
    iterations: Sequence[int] = (),
    metric: str | None = None,
) -> None:
    """Write one trial run per candidate (and, for ``"apportion"``, its folds and the refit).

    ``stopped_by``: what the search's fit raised, if it raised. A candidate it stopped before
    scikit-learn scored it is ``interrupted`` by a Ctrl-C (``KeyboardInterrupt``) or a budget,
    or by another candidate's fit that raised (``error_score="raise"``); ``failed`` otherwise
    (with its fold's error where its own fold raised). Stopped during the
    refit, every candidate was scored: each is written with its scores, as after a whole fit
    (see :func:`_scored_before_refit`; ``earlier_best``: the search's ``best_params_`` before
    this fit, if it was fitted before; ``scored_at``: when the candidates were all scored, s
    since the epoch, which a refit stopped before scikit-learn timed it is measured from;
    ``candidates``: each row's parameters as the search evaluated them, and ``iterations``
    each row's call of ``evaluate_candidates`` (a halving search's iteration), for the trials
    of a fit stopped before it set ``cv_results_``; ``metric``: ``track_search``'s, the name
    the score is also logged under, see :func:`_score_name`).
    """
    ledger = sweep.ledger
    assert ledger is not None
    if stopped_by is None:
        results = getattr(search, "cv_results_", None)
    else:
        results = _scored_before_refit(search, stopped_by, earlier_best)
    base = replace(sweep.record, metrics=(), error=None, fpo=None, param_count=None)
    now = time.time()
    if results is None:  # the fit failed: the trials of the folds measured, without scores
        _write_stopped(sweep, search, name, stopped_by, earlier_best, candidates, iterations)
        return
    children: dict[str, list[RunRecord]] = {}
    measured_final: RunRecord | None = None
    for run in ledger.runs(study=sweep.study):
        if run.role == "part" and run.parent_id is not None:
            children.setdefault(run.parent_id, []).append(run)
        if run.role == "final" and run.parent_id == sweep.id:
            measured_final = run
    best = _refit_score(search, results)
    # the trials' and folds' score by its scorer's name too (accuracy), as other searches of
    # the study log it; not the refit's: its cross-validated score is no held-out one, which a
    # retrain scored on a test split logs (the report's final run is one with the metric)
    alias = _score_name(search, results, metric)
    if measured_final is not None and best is not None and not measured_final.metrics:
        # a callable refit: no best_score_ while the refit ran, its candidate's score now
        points = [MetricPoint(key, best, None, now) for key in ("score", "cv_score")]
        ledger.flush(measured_final.id, metrics=points)
    refit = _refit_metric(search, results)
    n_rows = len(results["params"])
    n_splits = int(search.n_splits_)
    refit_s = None  # a refit a Ctrl-C stopped set no refit_time_ (or an earlier fit's stands):
    if stopped_by is not None and scored_at is not None:  # it ran from the candidates' end
        refit_s = max((base.heartbeat_at or now) - scored_at, 0.0)
    shares = _time_shares(search, results, refit_s) if method == "apportion" else None
    if shares is None and not any(trial_id(sweep.id, row) in children for row in range(n_rows)):
        # a search class whose _run_search takes no callback context measures no fold
        logger.warning(
            "greenprint: %s reported no fold fits to its callbacks; its trials get shares of "
            "the search's measured cost instead (method='apportion')",
            type(search).__name__,
        )
        shares = _time_shares(search, results, refit_s)
    # a successive-halving search on samples: each candidate trained on its n_resources
    on_samples = getattr(search, "resource", None) == "n_samples" and "n_resources" in results
    recorded = {METRIC_DIRECTIONS_KEY: _directions(search, results, alias)}
    if objective := _objective(search, results, refit):
        recorded[OBJECTIVES_KEY] = objective
    rows: list[RunRecord] = []
    for row in range(n_rows):
        tid = trial_id(sweep.id, row)
        params = _plain_params(results["params"][row])
        for key in ("iter", "n_resources"):
            if key in results:
                params[key] = _plain(results[key][row])
        score = float(results[f"mean_test_{refit}"][row])
        metrics = [MetricPoint("score", score, None, now)]
        if alias:
            metrics.append(MetricPoint(alias, score, None, now))
        for key, values in results.items():
            if key.startswith(("mean_test_", "std_test_", "rank_test_", "mean_train_")):
                metrics.append(MetricPoint(key, float(values[row]), None, now))
        # a fold whose fit raised (error_score) failed with its error, also when
        # error_score is a number its scores then read as (error_score=0)
        errors = [r.error for r in _by_fold(children.get(tid, [])) if r.status == "failed"]
        failed = not math.isfinite(score) or bool(errors)
        status = "failed" if failed else "finished"
        if shares is not None:
            record = _apportioned(base, tid, f"{name}-c{row}", sweep, shares[row], params)
        else:
            record = _summed(
                base, tid, f"{name}-c{row}", sweep.id, children.get(tid, []), status, params, ()
            )
        rows.append(
            replace(
                record,
                status=status,
                error=_failed_fold(errors, measured=shares is None) if failed else None,
                metrics=tuple(metrics),
                provenance={**record.provenance, **recorded},
                dataset_size=(
                    int(results["n_resources"][row]) if on_samples else record.dataset_size
                ),
            )
        )
    resource = getattr(search, "resource", None)
    for record in _candidates(rows, results, sweep.id, resource, type(search).__name__):
        ledger.start_run(record)
    for row in range(n_rows):
        tid = trial_id(sweep.id, row)
        folds = children.get(tid, [])
        _score_folds(
            ledger, sweep, base, results, row, tid, folds, refit, n_splits, now, shares, alias
        )
    if shares is not None and getattr(search, "refit", False) and measured_final is None:
        final = _apportioned(
            base,
            _derived(sweep.id, "refit"),
            f"{name}-refit",
            sweep,
            shares[-1],
            _plain_params(getattr(search, "best_params_", {})),
        )
        scores = (
            (MetricPoint("score", best, None, now), MetricPoint("cv_score", best, None, now))
            if best is not None
            else ()
        )
        stopped, why = status_for(stopped_by)  # a refit stopped: as a measured one ends
        ledger.start_run(replace(final, role="final", metrics=scores, status=stopped, error=why))


def _objective(search: Any, results: Mapping[str, Any], refit: str) -> str:
    """The :data:`~greenprint._provenance.OBJECTIVES_KEY` provenance of a search's trials.

    The search ranks its candidates by the mean test score of ``refit``'s scorer, highest
    first, and keeps the best: ``mean_test_<refit>`` is its objective, maximised. A search of
    several scorers that names none to refit (``refit=False``, or a callable) optimised none
    of them (it ranked its candidates by each, ``rank_test_<scorer>``, and kept none by a
    scorer): ``""``, no objective; each scorer's direction is in :func:`_directions`, which
    ranking by it takes without calling the search one of several objectives. A search of
    one scorer ranked its candidates by it: its objective, whatever ``refit`` is.
    """
    several = sum(key.startswith("mean_test_") for key in results) > 1
    if several and not isinstance(search.refit, str):
        return ""
    return objectives_text([(f"mean_test_{refit}", "maximize")])


def _directions(search: Any, results: Mapping[str, Any], alias: str | None = None) -> str:
    """The :data:`~greenprint._provenance.METRIC_DIRECTIONS_KEY` provenance of a search's trials.

    scikit-learn's scorers are all greater-is-better: the search ranks its candidates by each
    highest first (an error is negated: ``neg_root_mean_squared_error``, or ``make_scorer(...,
    greater_is_better=False)``). The name a user gives one says nothing of that
    (``scoring={"rmse": ...}``: ``mean_test_rmse`` would read as lower-is-better, and
    ``greenprint report --metric mean_test_rmse`` rank the worst candidate first). So each
    scorer's ``mean_test_<scorer>`` (and ``mean_train_<scorer>``, and its folds' ``test_`` and
    ``train_<scorer>``) is recorded maximised, with the scorer that says so; the report names
    it where the name reads the other way. ``alias``: the name the score is also logged under
    (:func:`_score_name`: ``neg_log_loss``, maximised as scikit-learn ranks it), with the
    scorer that ranks.
    """
    found: list[tuple[str, str, str]] = []
    scorers = [k.removeprefix("mean_test_") for k in results if k.startswith("mean_test_")]
    train = any(key.startswith("mean_train_") for key in results)
    for scorer in scorers:
        why = _scorer_text(search.scoring, scorer)
        for prefix in ("mean_test_", "test_", *(("mean_train_", "train_") if train else ())):
            found.append((f"{prefix}{scorer}", "maximize", why))
    if alias and all(name != alias for name, _, _ in found):
        refit = _refit_metric(search, results)
        found.append((alias, "maximize", _scorer_text(search.scoring, refit)))
    return metric_directions_text(found)


def _scorer_text(scoring: Any, name: str) -> str:
    """What scorer ``name`` of a search's ``scoring`` is (a negated error says so)."""
    spec = scoring.get(name, scoring) if isinstance(scoring, Mapping) else scoring
    if spec is None:
        return "scikit-learn's default scorer, the estimator's score method"
    if isinstance(spec, list | tuple | set | frozenset):
        spec = name  # a list of scorer names
    if isinstance(spec, str):
        negated = ", the error negated" if spec.startswith("neg_") else ""
        return f"scikit-learn's scorer {spec}{negated}"
    sign = getattr(spec, "_sign", None)
    func = getattr(spec, "_score_func", None)
    if isinstance(sign, int) and func is not None:
        func_name = getattr(func, "__name__", None) or type(func).__name__
        if sign < 0:
            return (
                f"scikit-learn's scorer make_scorer({func_name}, greater_is_better=False), "
                "the error negated"
            )
        return f"scikit-learn's scorer make_scorer({func_name})"
    what = getattr(spec, "__name__", None) or type(spec).__name__
    return f"scikit-learn's scorer {what}: scikit-learn ranks every score higher first"


def _by_fold(folds: Sequence[RunRecord]) -> list[RunRecord]:
    """A candidate's measured fold runs in fold order (their ``fold`` param)."""

    def fold_of(run: RunRecord) -> int:
        fold = run.params.get("fold")
        return fold if isinstance(fold, int) else -1

    return sorted(folds, key=fold_of)


def _failed_fold(errors: Sequence[str | None], *, measured: bool) -> str:
    """A failed candidate's error: its first failed fold's, where the fold run recorded one.

    No fold's fit raised (``errors`` empty), the folds measured (``measured``): a fold's score
    is NaN though its fit did not raise (``roc_auc`` on a test fold of one class); apportioned
    folds cannot tell a fit from its scoring.
    """
    first = next((e for e in errors if e), None)
    if first is not None:
        return f"a fold failed to fit (error_score): {first}"[:2000]
    if measured:
        return "a fold has no score: its score is NaN though its fit did not raise (see the fold)"
    return "a fold failed to fit or to score (error_score)"


def _candidates(
    rows: list[RunRecord],
    results: Mapping[str, Any],
    sweep_id: str,
    resource: Any = None,
    by: str | None = None,
) -> list[RunRecord]:
    """The runs of ``cv_results_``'s rows: one trial per candidate, its earlier rows its parts.

    A search without iterations (no ``iter`` column): each row is a trial, as written. A
    halving search evaluates a candidate once per iteration it reaches, a row each time: the
    row of its last iteration is its trial, with the cost of every iteration it ran (its earlier
    rows are its parts, ``role="part"``, with their folds), ``finished`` when that was the
    search's last iteration, else ``pruned`` (eliminated there, as a scheduler's early stop of a
    Ray Tune trial); ``failed`` when a fold failed to fit. So the best finished trials are the
    candidates scored on the most resources, as ``best_score_`` is. ``resource``: the search's
    (an estimator's parameter other than ``"n_samples"`` is in each row's params, at that
    iteration's value). A pruned candidate's provenance says where it stopped
    (:func:`_halving_notes`); ``by``: the search's class name.
    """
    if "iter" not in results:
        return rows
    iters = [int(i) for i in results["iter"]]
    last_iter = max(iters, default=0)
    trial_row = _last_rows(results["params"], iters, resource)
    earlier: dict[int, list[RunRecord]] = {}
    for row, last in enumerate(trial_row):
        if last != row:
            earlier.setdefault(last, []).append(rows[row])
    out: list[RunRecord] = []
    resources = _iteration_resources(results, iters)
    for row, record in enumerate(rows):
        last = trial_row[row]
        if last != row:  # an iteration of a candidate that went on: a part of its trial
            out.append(replace(record, role="part", parent_id=trial_id(sweep_id, last)))
            continue
        status = record.status
        provenance = record.provenance
        if status == "finished" and iters[row] < last_iter:
            status = "pruned"
            notes = _halving_notes(resources, iters[row], last_iter, by)
            provenance = {**provenance, **notes}
        trial = replace(record, status=status, provenance=provenance)
        out.append(_with_parts(trial, earlier.get(row, [])))
    return out


def _iteration_resources(results: Mapping[str, Any], iters: list[int]) -> list[float] | None:
    """Each iteration's ``n_resources`` (by iteration), ``None`` without them (before 0.24)."""
    resources = results.get("n_resources")
    if resources is None:
        return None
    by_iter: dict[int, float] = {}
    for r, i in zip(resources, iters, strict=True):
        by_iter[i] = max(by_iter.get(i, 0.0), float(r))
    return [by_iter.get(i, 0.0) for i in range(max(iters, default=0) + 1)]


def _halving_notes(
    resources: list[float] | None, it: int, last_iter: int, by: str | None
) -> dict[str, str]:
    """Where a halving search eliminated a candidate: the resources it was fitted on.

    A candidate is fitted again at each iteration it reaches, on that iteration's
    ``n_resources``: its run's cost (with its earlier iterations' as parts) is that of every
    iteration up to the one it was eliminated after. So ``pruned_at_step`` is the resources
    of those iterations summed (60 + 120 = 180 for one eliminated after the iteration on 120),
    ``full_steps`` those of every iteration (60 + 120 + 240 + 480 = 900: what a candidate kept
    to the end is fitted on), ``step_unit`` ``"cumulative resources"``; the report scales a
    pruned candidate's cost by their ratio (900 / 180 = 5; the ratio of the last iterations'
    resources, 480 / 120 = 4, left out the cost of the iterations before). Without
    ``n_resources`` (scikit-learn before 0.24), the iteration counted from 1 against the last.
    ``resources``: :func:`_iteration_resources`'s; ``it``: the candidate's last iteration.
    """
    if resources is not None:
        step, full = sum(resources[: it + 1]), sum(resources[: last_iter + 1])
        unit = "cumulative resources"
    else:
        step, full, unit = float(it + 1), float(last_iter + 1), "iterations"
    return pruned_provenance(step=step, by=by or "successive halving", full_steps=full, unit=unit)
