"""scikit-learn: every fit of a hyper-parameter search priced, joblib worker processes included.

Usage::

    from greenprint.integrations.sklearn import track_search

    search = GridSearchCV(SVC(), {"C": [0.1, 1, 10]}, cv=3, n_jobs=2)
    sweep = track_search(search, X, y, ledger="greenprint.db", study="svc-digits")
    sweep.energy_kwh, search.best_params_      # the search is fitted as by search.fit(X, y)

Works with every search built on ``BaseSearchCV``: ``GridSearchCV``, ``RandomizedSearchCV``,
``HalvingGridSearchCV``, ``HalvingRandomSearchCV``. What lands in the ledger:

* the search: one run, ``role="sweep"``, measured in this process with its whole process tree
  (joblib's worker processes are children of it), so the price tag, which sums root runs,
  counts the search once;
* each candidate (each row of ``cv_results_``): a run, ``role="trial"``, child of the sweep,
  named ``<sweep>-c<row>``, with ``params`` from ``cv_results_["params"]`` and metrics
  ``score`` (the mean test score of the metric that ranks, i.e. ``refit``'s; with several
  scorers and ``refit=False``, the first scorer's; the sweep's param ``score_metric`` names it,
  e.g. ``mean_test_f1``, whenever there are several), and ``mean_test_*``, ``std_test_*``,
  ``rank_test_*`` (``mean_train_*`` with ``return_train_score``); status ``failed`` when a
  fold failed to fit (``error_score``), ``interrupted`` (``KeyboardInterrupt``) for a
  candidate a Ctrl-C stopped before scikit-learn scored it (a Ctrl-C during the refit stops
  no candidate: each keeps its scores, and the refit's run is ``interrupted``), or by another
  candidate's fit that raised (``error_score="raise"``: that candidate is ``failed``); a fit that
  stopped the search leaves no ``cv_results_``: each candidate's params are those the search
  gave ``evaluate_candidates``, and a fold whose worker process joblib killed as the search
  stopped ends ``interrupted``, not ``lost``;
* a halving search has one row per candidate and iteration it reached: the row of the
  candidate's last iteration is its trial (params ``iter`` and ``n_resources`` say which), with
  the cost of all its iterations; its earlier rows are parts of it (``role="part"``, with their
  folds and their scores on fewer resources). A candidate that reached the search's last
  iteration is ``finished``; one eliminated before is ``pruned``, as a scheduler's early stop
  of an Optuna or Ray Tune trial: its cost counts, its score (on fewer resources) counts in the
  expected max performance as a pruned trial's last value does, and the best trial is a
  finished one, scored on the most resources, as ``best_score_`` is;
* each cross-validation fold of a candidate: a run, ``role="part"``, child of its trial, named
  ``<sweep>-c<row>-fold<k>``, with ``params={"fold": k}`` and metrics ``score`` and ``test_*``;
* the refit on the whole data: a run, ``role="final"``, child of the sweep, with the best
  params and metrics ``score`` and ``cv_score``, both scikit-learn's ``best_score_``: the mean
  cross-validated score of the best candidate's parameters, for the metric that ranks
  (``refit``'s, the trials' ``score``). It is the score of its parameters in cross-validation,
  as ``best_score_`` is, not a score of the refitted model on new data (score it on a held-out
  split with ``run.log`` for that). So a report of the search, ranked by ``score``, says what
  the final run scored. With a callable ``refit`` (no ``best_score_``), its candidate's mean
  test score of the metric the trials' ``score`` holds.

Two ways of measuring, chosen by ``method``:

* ``"callbacks"`` (where scikit-learn has its callback API, ``sklearn.callback``, and the
  search supports it: scikit-learn 1.9 and later): a callback set on the search measures each
  fold fit where it runs, in the joblib worker process, and writes it to the ledger from
  there; each trial's cost is the sum of its folds' measured costs. The refit is measured
  likewise.
* ``"apportion"`` (older scikit-learn): the search is measured as a whole, and its energy and
  CO2-eq are shared out to candidates, folds and the refit in proportion to the fit and score
  times ``cv_results_`` reports; provenance says so (``"apportioned"``): candidate ``i`` gets
  ``(mean_fit_time[i] + mean_score_time[i]) * n_splits / T``, the refit ``refit_time_ / T``
  (``T`` the sum of these), each fold ``1 / n_splits`` of its candidate's. The shares are of
  the sweep's final reading (its meters read at its end, once the fit returned), so they sum
  to what the sweep measured, also for a search shorter than one meter sample. A fit that
  raises leaves no times to share by: the sweep holds the whole cost.

``"auto"`` (the default) takes ``"callbacks"`` when it can; :data:`METHOD` says which one the
installed scikit-learn gets.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from greenprint._imports import require

require(
    "sklearn", extra="sklearn", purpose="greenprint.integrations.sklearn", package="scikit-learn"
)

from sklearn.model_selection._search import BaseSearchCV  # noqa: E402

from greenprint._exceptions import ConfigError, GreenprintError  # noqa: E402
from greenprint._lifecycle import status_for  # noqa: E402
from greenprint._provenance import APPORTIONED, TRIAL_KEY  # noqa: E402
from greenprint._records import MetricPoint, RunRecord  # noqa: E402
from greenprint.integrations._common import (  # noqa: E402
    check_run_options,
    interrupted_at_heartbeat,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run

__all__ = ["METHOD", "track_search", "trial_id"]

logger = logging.getLogger(__name__)

Method = Literal["auto", "callbacks", "apportion"]


def _has_callback_api() -> bool:
    try:
        import sklearn.callback  # noqa: F401
    except ImportError:
        return False
    return hasattr(BaseSearchCV, "set_callbacks")


#: The way ``method="auto"`` measures on the installed scikit-learn: ``"callbacks"`` or
#: ``"apportion"``.
METHOD: Literal["callbacks", "apportion"] = "callbacks" if _has_callback_api() else "apportion"

_EVALUATION_TASK = "candidate-split-evaluation"
_REFIT_TASK = "refit-with-best-params"
_HALVING_TASK = "halving-iteration"


def track_search(
    search: Any,
    X: Any,
    y: Any = None,
    *,
    ledger: Any = None,
    study: str | None = None,
    name: str | None = None,
    method: Method = "auto",
    fit_params: Mapping[str, Any] | None = None,
    dataset_size: int | None = None,
    **run_options: Any,
) -> Run:
    """Fit ``search`` on ``X``, ``y`` and record every fit of it in a ledger.

    Args:
        search: an unfitted or fitted scikit-learn search (``GridSearchCV``,
            ``RandomizedSearchCV``, ``HalvingGridSearchCV``, ``HalvingRandomSearchCV`` or any
            ``BaseSearchCV``); it is fitted in place, as ``search.fit(X, y)`` would.
        X: training data.
        y: targets (``None`` for unsupervised estimators).
        ledger: a path, URL or :class:`~greenprint.Ledger` (``None``: the configured ledger);
            ``False`` is refused (worker processes write to the ledger).
        study: the greenprint study (default: as :func:`greenprint.track`).
        name: the sweep run's name (default: the search class and estimator,
            ``"GridSearchCV-SVC"``); trials and folds are named after it.
        method: ``"auto"``, ``"callbacks"`` or ``"apportion"`` (see the module docstring).
        fit_params: keyword arguments for ``search.fit`` (e.g. ``groups``).
        dataset_size: the training examples each trial is evaluated on (examples), recorded
            on the sweep, the trials and the refit; default ``X``'s number of samples (a
            successive-halving search on ``resource="n_samples"``: each trial its
            ``n_resources``). The report's E x D x H line reads it.
        **run_options: passed to each run: ``region``, ``intensity``, ``pue``, ``scope``,
            ``meters``, ``sample_interval_s``, ``flush_interval_s``, ``budget_kwh``,
            ``budget_kg``, ``budget_fpo``, ``budget_s``, ``on_exceed``, ``budget`` (see
            :func:`greenprint.track`). ``meters`` (an object of this process) is given to the
            sweep only; fold and refit runs detect their own. A budget applies to the sweep and
            to each fold run; nothing in a fit calls its run, so ``on_exceed="stop"`` does not
            interrupt scikit-learn: a run over budget warns, and ends ``interrupted`` when the
            crossing was noticed while it ran (at a meter sample). A study already over a
            ``"stop"`` budget when the search starts raises
            :class:`~greenprint.BudgetExceeded` before anything is fitted.

    Returns:
        The sweep :class:`~greenprint.Run`, ended: its ``energy_kwh``, ``emissions_kg`` and
        ``duration_s`` are the whole search's.

    Raises:
        ConfigError: ``search`` is not a scikit-learn search, an unknown ``method`` or
            ``"callbacks"`` where scikit-learn has no callback API, ``ledger=False``, or a bad
            run option. Checked before anything is fitted or written.
        LedgerError: the ledger cannot be used (closed, not a ledger).
        BudgetExceeded: the study is already over a ``"stop"`` budget given (nothing is
            fitted; the sweep ends ``interrupted`` with the reason).
        Exception: whatever ``search.fit`` raises (the sweep then ends ``failed``, with the
            folds measured so far).
    """
    from greenprint.tracking import Run

    if not isinstance(search, BaseSearchCV):
        raise ConfigError(
            "track_search needs a scikit-learn search (GridSearchCV, RandomizedSearchCV, "
            f"HalvingRandomSearchCV...), not {type(search).__name__}; for a single estimator "
            "use gp.track() around its fit"
        )
    if method not in ("auto", "callbacks", "apportion"):
        raise ConfigError(f"method must be 'auto', 'callbacks' or 'apportion', not {method!r}")
    chosen = METHOD if method == "auto" else method
    if chosen == "callbacks" and not (_has_callback_api() and hasattr(search, "set_callbacks")):
        raise ConfigError(
            "method='callbacks' needs scikit-learn's callback API (sklearn.callback, "
            "scikit-learn 1.9 or later); use method='apportion'"
        )
    if ledger is False:
        raise ConfigError("track_search writes trials to a ledger; ledger=False is not supported")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"name must be a non-empty string, not {name!r}")
    if fit_params is not None and not isinstance(fit_params, Mapping):
        raise ConfigError(f"fit_params must be a mapping, not {type(fit_params).__name__}")
    options = check_run_options(run_options, where="track_search", ledger=ledger, study=study)
    name = name or f"{type(search).__name__}-{type(search.estimator).__name__}"
    size = _sample_count(X) if dataset_size is None else dataset_size
    sweep = Run(
        name,
        study=study,
        ledger=ledger,
        role="sweep",
        params={
            "search": type(search).__name__,
            "estimator": _plain(search.estimator),
            "n_jobs": search.n_jobs,
            "method": chosen,
        },
        dataset_size=size,
        **options,
    )
    with sweep:
        assert sweep.ledger is not None  # ledger=False refused above
        # a study already over a "stop" budget (read as the sweep started) fits nothing:
        # nothing in a fit calls its run, so the whole search would run
        sweep._enforce_budgets()
        callback = None
        previous: list[Any] = list(getattr(search, "_skl_callbacks", []))
        if chosen == "callbacks":
            callback = _FoldCallback(
                sweep_id=sweep.id,
                ledger_url=sweep.ledger.url_unmasked,
                study=sweep.study,
                name=name,
                options={k: v for k, v in options.items() if k != "meters"},
                dataset_size=size,
            )
            search.set_callbacks(*previous, callback)
        stopped_by: BaseException | None = None
        earlier_best = search.__dict__.get("best_params_")  # a fit before this one's
        scored_at = _CandidatesTimer(search)  # when the refit began
        try:
            search.fit(X, y, **dict(fit_params or {}))
        except BaseException as e:  # a Ctrl-C too: the trials measured so far say so
            stopped_by = e
            raise
        finally:
            scored_at.restore()
            if callback is not None:
                search.set_callbacks(*previous)
            # the search's cost is final at the sweep's end, its meters read once more: the
            # trials, folds and refit share that reading (one taken before could be the start's,
            # 0 kWh for a search shorter than a sample interval), and writing them is not its cost
            sweep.stop(*status_for(stopped_by))
            try:
                _write_trials(
                    sweep,
                    search,
                    name,
                    chosen,
                    stopped_by,
                    earlier_best,
                    scored_at.time,
                    scored_at.params,
                    scored_at.iterations,
                )
            except GreenprintError as e:  # the measured runs stay; the summary could not
                logger.warning("greenprint: could not write the search's trials: %s", e)
        facts: dict[str, Any] = {"n_candidates": len(search.cv_results_["params"])}
        scorer = _refit_metric(search)
        if scorer != "score":  # several scorers: which one the trials' ``score`` is
            facts["score_metric"] = f"mean_test_{scorer}"
        sweep.set(params=facts)
    return sweep


# ---------------------------------------------------------------------- the callback
class _FoldCallback:
    """A scikit-learn callback that measures each fold fit and the refit as a run.

    It travels to joblib's worker processes with the search (pickled), and writes its runs
    from there, straight to the ledger; each fold's parent is its trial, whose id is derived
    from the sweep's id and the candidate's row in ``cv_results_`` (the trial itself is
    written when the search is done).
    """

    def __init__(
        self,
        *,
        sweep_id: str,
        ledger_url: str,
        study: str,
        name: str,
        options: dict[str, Any],
        dataset_size: int | None = None,
    ) -> None:
        self.sweep_id = sweep_id
        self.ledger_url = ledger_url
        self.study = study
        self.name = name
        self.options = options
        self.dataset_size = dataset_size  # the refit's: it trains on the whole of X
        self._runs: dict[int, tuple[Any, BaseException | None]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_runs"] = {}
        return state

    def setup(self, estimator: Any, context: Any) -> None:
        """Nothing to do: the sweep run is started by :func:`track_search`."""

    def teardown(self, estimator: Any, context: Any) -> None:
        """End any run a stopped fit left open (the refit's: its end is not called then).

        scikit-learn calls this in a ``finally`` block: what stopped the search, propagating
        now, ends the run as it ends a fold's (a Ctrl-C: ``interrupted``).
        """
        raised = sys.exc_info()[1]
        for run, around in list(self._runs.values()):
            if raised is None or raised is around:
                run.stop(status="failed", error="the search stopped during this fit")
            else:
                status, error = status_for(raised)
                run.stop(status=status, error=error)
        self._runs.clear()

    def on_fit_task_begin(self, estimator: Any, context: Any) -> None:
        """Start a run for a fold fit or the refit."""
        from greenprint.tracking import Run

        task = context.task_name
        if task == _EVALUATION_TASK:
            row, fold = _position(estimator, context)
            run = Run(
                f"{self.name}-c{row}-fold{fold}",
                study=self.study,
                ledger=self.ledger_url,
                role="part",
                parent=trial_id(self.sweep_id, row),
                params={"fold": fold},
                **self.options,
            )
        elif task == _REFIT_TASK:
            best = getattr(estimator, "best_params_", None) or {}
            run = Run(
                f"{self.name}-refit",
                study=self.study,
                ledger=self.ledger_url,
                role="final",
                parent=self.sweep_id,
                params=_plain_params(best),
                dataset_size=self.dataset_size,
                **self.options,
            )
            score = _refit_score(estimator)
            if score is not None:  # the trials' metric, and cv_score as before
                run.log(score=score, cv_score=score)
        else:
            return
        # the exception being handled around the search now, if any (track_search called in
        # an except block): on_fit_task_end tells a fit that raised from it
        self._runs[id(context)] = (run.start(), sys.exc_info()[1])

    def on_fit_task_end(self, estimator: Any, context: Any) -> bool:
        """End the run of a fold fit or the refit. Never asks the search to stop.

        scikit-learn calls this in a ``finally`` block, also for a fit that raised with
        ``error_score="raise"``: that exception, propagating now, ends the run ``failed``
        with its error (with a numeric ``error_score`` it was handled before, and the scores
        mark the fold failed when the search is done).
        """
        entry = self._runs.pop(id(context), None)
        if entry is not None:
            run, around = entry
            raised = sys.exc_info()[1]
            if raised is None or raised is around:
                run.stop()
            else:
                status, error = status_for(raised)
                run.stop(status=status, error=error)
        return False


def _sample_count(X: Any) -> int | None:
    """How many samples ``X`` holds (rows of an array or data frame, items of a list).

    ``None`` when it cannot say: then no ``dataset_size`` is recorded, as before.
    """
    from sklearn.utils.validation import _num_samples

    try:
        count = _num_samples(X)
    except TypeError:  # not array-like (a callable, a generator...)
        return None
    return count if isinstance(count, int) and count > 0 else None


def _position(search: Any, context: Any) -> tuple[int, int]:
    """The row in ``cv_results_`` and the fold of one candidate-split evaluation."""
    candidate, fold = divmod(int(context.task_id), int(search.n_splits_))
    parent = getattr(context, "parent", None)
    if parent is not None and parent.task_name == _HALVING_TASK:
        candidate += sum(search.n_candidates_[: int(parent.task_id)])
    return candidate, fold


def trial_id(sweep_id: str, row: int) -> str:
    """The run id of the trial for row ``row`` of ``cv_results_`` in sweep ``sweep_id``."""
    return _derived(sweep_id, str(row))


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
    of a fit stopped before it set ``cv_results_``).
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
    rows: list[RunRecord] = []
    for row in range(n_rows):
        tid = trial_id(sweep.id, row)
        params = _plain_params(results["params"][row])
        for key in ("iter", "n_resources"):
            if key in results:
                params[key] = _plain(results[key][row])
        score = float(results[f"mean_test_{refit}"][row])
        metrics = [MetricPoint("score", score, None, now)]
        for key, values in results.items():
            if key.startswith(("mean_test_", "std_test_", "rank_test_", "mean_train_")):
                metrics.append(MetricPoint(key, float(values[row]), None, now))
        status = "finished" if math.isfinite(score) else "failed"
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
                error=None if status == "finished" else "a fold failed to fit (error_score)",
                metrics=tuple(metrics),
                dataset_size=(
                    int(results["n_resources"][row]) if on_samples else record.dataset_size
                ),
            )
        )
    for record in _candidates(rows, results, sweep.id, getattr(search, "resource", None)):
        ledger.start_run(record)
    for row in range(n_rows):
        tid = trial_id(sweep.id, row)
        folds = children.get(tid, [])
        _score_folds(ledger, sweep, base, results, row, tid, folds, refit, n_splits, now, shares)
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


def _write_stopped(
    sweep: Run,
    search: Any,
    name: str,
    stopped_by: BaseException | None,
    earlier_best: Any,
    candidates: Sequence[Mapping[str, Any]],
    iterations: Sequence[int],
) -> None:
    """The trials of a search whose fit raised before it set ``cv_results_`` (no scores).

    One trial per candidate whose folds were measured, with its params. ``failed`` when a fold
    of its own raised; ``interrupted`` when another candidate's fit raised
    (``error_score="raise"``), or a Ctrl-C or a budget stopped the search; ``failed``
    otherwise. A halving search's candidate is one trial as in a whole fit: its row of the
    last iteration it reached, its earlier rows its parts (``finished``, scored then, the scores
    lost with the search); eliminated at an iteration before the one the search stopped in, it
    is ``pruned``.
    """
    ledger = sweep.ledger
    assert ledger is not None
    base = replace(sweep.record, metrics=(), error=None, fpo=None, param_count=None)
    measured: dict[int, list[RunRecord]] = {}  # row -> its fold runs
    for run in ledger.runs(study=sweep.study):
        if run.role == "part" and run.name.startswith(f"{name}-c") and run.parent_id:
            label = run.name[len(name) + 2 :].partition("-fold")[0]
            row = int(label) if label.isdigit() else -1
            if run.parent_id == trial_id(sweep.id, row):
                measured.setdefault(row, []).append(run)
    ended, why = status_for(stopped_by)  # how the search's fit ended, for each candidate
    for parts in measured.values():  # fits whose worker joblib killed as the search stopped
        parts[:] = [_ended_with_search(ledger, part, why) for part in parts]
    # a candidate's own fit raised (error_score="raise"): the others were only stopped
    raised = any(p.status == "failed" and p.error for ps in measured.values() for p in ps)
    # a halving search (its n_candidates_ per iteration): a candidate's rows are one trial
    halving = isinstance(getattr(search, "n_candidates_", None), list)
    halving = halving and len(iterations) == len(candidates)
    last_row = list(range(len(candidates)))
    if halving:
        resource = getattr(search, "resource", None)
        last_row = _last_rows(list(candidates), list(iterations), resource)
    stopped_in = max(iterations, default=0)
    earlier: dict[int, list[int]] = {}  # a candidate's trial row -> its earlier rows measured
    for row in measured:
        last = last_row[row] if 0 <= row < len(last_row) else row
        if last != row:
            earlier.setdefault(last, []).append(row)
    n_resources = getattr(search, "n_resources_", None)

    def params_of(row: int) -> dict[str, Any]:
        params = _plain_params(candidates[row]) if 0 <= row < len(candidates) else {}
        if halving and 0 <= row < len(iterations):
            params["iter"] = int(iterations[row])
            if isinstance(n_resources, list) and iterations[row] < len(n_resources):
                params["n_resources"] = _plain(n_resources[iterations[row]])
        return params

    went_on = {row for rows in earlier.values() for row in rows}  # a later row is the trial
    for trial_row in sorted((set(measured) - went_on) | set(earlier)):
        parts = measured.get(trial_row, [])
        failed = [p.error for p in parts if p.status == "failed" and p.error]
        status = ended
        if failed or (not raised and status != "interrupted"):
            status = "failed"
            error: str | None = (
                failed[0] if failed else "the search failed before this candidate was scored"
            )
        elif halving and 0 <= trial_row < len(iterations) and iterations[trial_row] < stopped_in:
            status, error = "pruned", None  # eliminated before the iteration that stopped
        elif raised:  # nothing of its own failed: another candidate's fit stopped the search
            status = "interrupted"
            error = (
                f"{why} in another candidate's fit (the search stopped before this candidate "
                "was scored)"
            )
        elif _refit_began(search, earlier_best):  # scored, but the scores are lost
            error = (
                f"{why} (scored, then the search was interrupted during its refit, before "
                "scikit-learn kept the scores)"
            )
        else:  # a Ctrl-C or a "stop" budget ended the search: nothing failed
            error = f"{why} (the search stopped before this candidate was scored)"
        tid = trial_id(sweep.id, trial_row)
        rows = []
        for row in sorted(earlier.get(trial_row, [])):  # its earlier iterations: its parts
            run_id, run_name = trial_id(sweep.id, row), f"{name}-c{row}"
            run = _summed(
                base, run_id, run_name, tid, measured[row], "finished", params_of(row), ()
            )
            rows.append(replace(run, role="part"))
        trial = _summed(
            base, tid, f"{name}-c{trial_row}", sweep.id, parts, status, params_of(trial_row), ()
        )
        ledger.start_run(replace(_with_parts(trial, rows), error=error))
        for run in rows:
            ledger.start_run(run)


def _ended_with_search(ledger: Any, part: RunRecord, why: str | None) -> RunRecord:
    """A fold fit's run whose worker process ended as the search stopped, ``interrupted``.

    joblib's process workers (loky) are killed when a fit raises (``error_score="raise"``) or
    the search is interrupted: a fit running in another worker then ends with no final
    write, and would read ``lost`` (its cost so far, 0 kWh before its first flush, is in the
    sweep's, which measured the workers). Any other part is returned as it is.
    """
    if part.status != "lost":
        return part
    fields = interrupted_at_heartbeat(
        part, f"its worker process was ended when the search stopped ({why or 'an error'})"
    )
    try:
        ledger.flush(part.id, fields=fields)
    except GreenprintError as e:
        logger.warning("greenprint: could not end run %s: %s", part.id[:8], e)
        return part
    return replace(part, **fields)


def _candidates(
    rows: list[RunRecord], results: Mapping[str, Any], sweep_id: str, resource: Any = None
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
    iteration's value).
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
    for row, record in enumerate(rows):
        last = trial_row[row]
        if last != row:  # an iteration of a candidate that went on: a part of its trial
            out.append(replace(record, role="part", parent_id=trial_id(sweep_id, last)))
            continue
        status = record.status
        if status == "finished" and iters[row] < last_iter:
            status = "pruned"
        out.append(replace(_with_parts(record, earlier.get(row, [])), status=status))
    return out


def _last_rows(params: Any, iters: list[int], resource: Any = None) -> list[int]:
    """For each row of a halving search, the row of the same candidate at its last iteration.

    A candidate kept for iteration ``i + 1`` is the same ``params`` dict as its row of
    iteration ``i`` (scikit-learn passes the dicts on); equal parameters link rows otherwise,
    but for ``resource``, an estimator's parameter that the search sets anew each iteration
    (``resource="n_estimators"``: 2, 4, 8; its rows are copies then).
    """
    plain = [{k: v for k, v in _plain_params(p).items() if k != resource} for p in params]
    by_iter: dict[int, list[int]] = {}
    for row, it in enumerate(iters):
        by_iter.setdefault(it, []).append(row)
    following: dict[int, int] = {}
    for it, members in by_iter.items():
        free = list(by_iter.get(it - 1, ()))
        for row in members:
            match = next((r for r in free if params[r] is params[row]), None)
            if match is None:
                match = next((r for r in free if plain[r] == plain[row]), None)
            if match is not None:
                free.remove(match)
                following[match] = row
    last = list(range(len(iters)))
    for row in range(len(iters)):
        while last[row] in following:
            last[row] = following[last[row]]
    return last


def _with_parts(trial: RunRecord, parts: list[RunRecord]) -> RunRecord:
    """``trial`` with the cost of its earlier iterations (its parts) added.

    Its time (run-seconds): the sum of its rows' (each row's: its folds' span with measured
    folds, its time share when apportioned), not the span from its first iteration to its last,
    in which the other candidates ran.
    """
    if not parts:
        return trial
    every = [trial, *parts]
    started = min(r.started_at for r in every)
    ended = max(r.ended_at or r.started_at for r in every)
    provenance = dict(trial.provenance)
    note = provenance.get(TRIAL_KEY, "")
    provenance[TRIAL_KEY] = f"{note}; with its {len(parts)} earlier halving iteration(s)"
    return replace(
        trial,
        started_at=started,
        ended_at=ended,
        heartbeat_at=ended,
        duration_s=sum(r.duration_s for r in every),
        provenance=provenance,
        **_cost_sums(every),
    )


def _cost_sums(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """The cost fields of ``runs`` added up (kWh, kg CO2-eq).

    A component none of them measured stays ``None``; energy and CO2-eq are 0 without runs.
    """

    def total(attr: str) -> float | None:
        values = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
        return sum(values) if values else None

    return {
        "energy_cpu_kwh": total("energy_cpu_kwh"),
        "energy_gpu_kwh": total("energy_gpu_kwh"),
        "energy_ram_kwh": total("energy_ram_kwh"),
        "energy_kwh": total("energy_kwh") or 0.0,
        "machine_energy_kwh": total("machine_energy_kwh"),
        "emissions_kg": total("emissions_kg") or 0.0,
    }


def _score_folds(
    ledger: Any,
    sweep: Run,
    reading: RunRecord,
    results: Mapping[str, Any],
    row: int,
    tid: str,
    measured: list[RunRecord],
    refit: str,
    n_splits: int,
    now: float,
    shares: list[float] | None,
) -> None:
    """Give each fold its test scores (measured folds), or write apportioned folds.

    ``reading``: the search's record its trials were apportioned from (the folds share it).
    """
    folds = {int(r.params.get("fold", -1)): r for r in measured}
    for fold in range(n_splits):
        key = f"split{fold}_test_{refit}"
        if key not in results:
            continue
        score = float(results[key][row])
        metrics = [MetricPoint("score", score, None, now)]
        prefix = f"split{fold}_"
        for name, values in results.items():
            if name.startswith((f"{prefix}test_", f"{prefix}train_")):
                metric = name.removeprefix(prefix)
                metrics.append(MetricPoint(metric, float(values[row]), None, now))
        failed = not math.isfinite(score)
        status = "failed" if failed else "finished"
        error = "the fit failed (error_score)" if failed else None
        if shares is not None:
            record = _apportioned(
                reading,
                _derived(tid, f"fold{fold}"),
                f"{sweep.name}-c{row}-fold{fold}",
                sweep,
                shares[row] / n_splits,
                {"fold": fold},
            )
            ledger.start_run(
                replace(
                    record,
                    parent_id=tid,
                    role="part",
                    metrics=tuple(metrics),
                    status=status,
                    error=error,
                )
            )
        elif fold in folds:
            fields = {"status": status, "error": error} if failed else None
            ledger.flush(folds[fold].id, fields=fields, metrics=metrics)


def _summed(
    base: RunRecord,
    run_id: str,
    name: str,
    parent_id: str,
    parts: list[RunRecord],
    status: str,
    params: dict[str, Any],
    metrics: tuple[MetricPoint, ...],
) -> RunRecord:
    """A trial whose cost is the sum of its measured folds'."""
    started = min((p.started_at for p in parts), default=base.started_at)
    ended = max((p.ended_at or p.started_at for p in parts), default=started)
    provenance = dict(parts[0].provenance) if parts else dict(base.provenance)
    provenance[TRIAL_KEY] = f"sum of {len(parts)} measured fold run(s)"
    # a sum, not a reading of the process over the trial's span (a halving candidate's spans
    # its iterations, interleaved with others'): never read as threads sharing the process
    provenance.pop("process", None)
    return replace(
        base,
        id=run_id,
        name=name,
        parent_id=parent_id,
        role="trial",
        status=status,
        started_at=started,
        ended_at=ended,
        heartbeat_at=ended,
        duration_s=max(ended - started, 0.0),
        params=params,
        provenance=provenance,
        metrics=metrics,
        **_cost_sums(parts),
    )


def _apportioned(
    base: RunRecord, run_id: str, name: str, sweep: Run, share: float, params: dict[str, Any]
) -> RunRecord:
    """A run whose cost is ``share`` of the sweep's measured cost in ``base``.

    ``base`` is one reading of the sweep (its record, taken once): the trials, their folds and
    the refit are shares of the same reading, so that a trial's folds sum to it (the sweep's
    sampler moves its live record on while they are written).
    """
    record = base

    def part(value: float | None) -> float | None:
        return None if value is None else value * share

    provenance = dict(record.provenance)
    provenance[TRIAL_KEY] = (
        f"{APPORTIONED} {share:.4g} of the search's measured cost, by cv_results_ fit+score times"
    )
    provenance.pop("process", None)  # a share of the search's reading, not one of its own
    return replace(
        base,
        id=run_id,
        name=name,
        parent_id=sweep.id,
        role="trial",
        status="finished",
        ended_at=record.heartbeat_at,
        heartbeat_at=record.heartbeat_at,
        duration_s=record.duration_s * share,
        params=params,
        energy_cpu_kwh=part(record.energy_cpu_kwh),
        energy_gpu_kwh=part(record.energy_gpu_kwh),
        energy_ram_kwh=part(record.energy_ram_kwh),
        energy_kwh=record.energy_kwh * share,
        machine_energy_kwh=part(record.machine_energy_kwh),
        emissions_kg=record.emissions_kg * share,
        provenance=provenance,
    )


def _time_shares(
    search: Any, results: Mapping[str, Any], refit_s: float | None = None
) -> list[float]:
    """Each candidate's share of the search's time, then the refit's (last).

    The refit's time is scikit-learn's ``refit_time_``, or ``refit_s`` (s, from the
    candidates' end to the stop) for a refit stopped before it set one (a Ctrl-C).
    """
    n_splits = int(search.n_splits_)
    times = [
        (float(f) + float(s)) * n_splits
        for f, s in zip(results["mean_fit_time"], results["mean_score_time"], strict=True)
    ]
    refit_time = getattr(search, "refit_time_", None) if refit_s is None else refit_s
    times.append(float(refit_time or 0.0))
    whole = sum(times)
    if whole <= 0:
        return [1.0 / len(times)] * len(times)
    return [t / whole for t in times]


def _refit_metric(search: Any, results: Mapping[str, Any] | None = None) -> str:
    """The scorer name whose mean test score ranks the candidates (``"score"`` for one).

    ``results``: the search's ``cv_results_`` (default: the attribute).
    """
    refit = search.refit
    if isinstance(refit, str):
        return refit
    results = search.cv_results_ if results is None else results
    keys = [k.removeprefix("mean_test_") for k in results if k.startswith("mean_test_")]
    return "score" if "score" in keys else keys[0]


def _refit_score(search: Any, results: Mapping[str, Any] | None = None) -> float | None:
    """The refit's score: the mean cross-validated score of the best candidate's parameters.

    scikit-learn's ``best_score_`` (the ``refit`` metric's, for several metrics); with a
    callable ``refit``, which sets no ``best_score_``, the best candidate's mean test score of
    the metric the trials log as ``score``. ``None`` when the search has neither.
    ``results``: the search's ``cv_results_`` (default: the attribute).
    """
    best = getattr(search, "best_score_", None)
    if best is None:
        index = getattr(search, "best_index_", None)
        if results is None:
            results = getattr(search, "cv_results_", None)
        if index is None or results is None:
            return None
        key = f"mean_test_{_refit_metric(search, results)}"
        if key not in results:
            return None
        best = results[key][int(index)]
    return float(best)


class _CandidatesTimer:
    """When a search's fit scored its last candidate, and which candidates it evaluated.

    scikit-learn's ``fit`` calls ``self._run_search(evaluate_candidates)``, which returns when
    every candidate is scored; the refit comes next. An attribute of the instance shadows the
    method for this fit, and :meth:`restore` removes it (or puts back one the instance had).
    ``params``: each candidate's parameters, in the order of the rows of ``cv_results_``, as
    ``evaluate_candidates`` received them (before any is fitted): a fit that raises sets no
    ``cv_results_``, and its candidates keep their parameters all the same.
    """

    def __init__(self, search: Any) -> None:
        self.search = search
        self.time: float | None = None
        self.params: list[Mapping[str, Any]] = []
        self.iterations: list[int] = []  # each row's call of evaluate_candidates
        self._had = search.__dict__.get("_run_search", _MISSING)
        run_search = search._run_search

        @functools.wraps(run_search)  # its signature: scikit-learn reads it (callback_ctx)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if args and callable(args[0]):
                args = (self._noting(args[0]), *args[1:])
            try:
                return run_search(*args, **kwargs)
            finally:
                self.time = time.time()

        search._run_search = timed

    def _noting(self, evaluate_candidates: Callable[..., Any]) -> Callable[..., Any]:
        """``evaluate_candidates`` noting the parameters of the candidates it evaluates."""

        def evaluate(candidate_params: Any, *args: Any, **kwargs: Any) -> Any:
            candidate_params = list(candidate_params)  # as scikit-learn does: one pass
            call = max(self.iterations, default=-1) + 1
            self.params.extend(p if isinstance(p, Mapping) else {} for p in candidate_params)
            self.iterations.extend(call for _ in candidate_params)
            return evaluate_candidates(candidate_params, *args, **kwargs)

        return evaluate

    def restore(self) -> None:
        """Give the search back its own ``_run_search``."""
        if self._had is _MISSING:
            self.search.__dict__.pop("_run_search", None)
        else:
            self.search._run_search = self._had


_MISSING = object()


def _refit_began(search: Any, earlier_best: Any) -> bool:
    """Whether this fit of ``search`` scored every candidate and chose the best.

    Its refit came next: ``best_params_`` set anew (not ``earlier_best``, a fit before this
    one's).
    """
    best = search.__dict__.get("best_params_")
    return best is not None and best is not earlier_best


def _scored_before_refit(
    search: Any, stopped_by: BaseException, earlier_best: Any
) -> Mapping[str, Any] | None:
    """The candidates' scores of a search stopped during its refit (a Ctrl-C), else ``None``.

    scikit-learn sets ``cv_results_`` only once the refit is done, but chooses the best
    candidate (``best_params_``, one of the results' ``params``) before it: the results it was
    to set are a local of its ``fit`` (``results``), which the traceback of what stopped it
    keeps. Taken only when its ``best_params_`` is one of them (so they are this fit's, every
    candidate scored); a scikit-learn that keeps them otherwise gets ``None``: the trials are
    then said to be scored, without their scores.
    """
    if not _refit_began(search, earlier_best):
        return None
    best = search.__dict__["best_params_"]
    traceback = stopped_by.__traceback__
    while traceback is not None:
        local = traceback.tb_frame.f_locals
        results = local.get("results") if local.get("self") is search else None
        if isinstance(results, dict) and any(p is best for p in results.get("params", ())):
            return results
        traceback = traceback.tb_next
    return None


def _derived(seed: str, what: str) -> str:
    """A UUID4-shaped run id hashed from ``seed`` and ``what`` (the same in every process)."""
    raw = bytearray(hashlib.blake2b(f"{seed}:{what}".encode(), digest_size=16).digest())
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def _plain(value: Any) -> Any:
    """A parameter value as the ledger can store it: JSON scalars kept, anything else its repr.

    The repr on one line: scikit-learn pretty-prints a long estimator over several lines
    (a ``Pipeline``'s steps), which would stand in the ledger and its tables as line breaks
    and runs of spaces.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    text = " ".join(repr(value).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in params.items()}
