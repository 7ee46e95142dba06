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
  e.g. ``mean_test_f1``, whenever there are several), the same value under the scorer's own
  name where it has one (``accuracy`` for ``scoring="accuracy"``, ``refit="accuracy"`` or an
  unscored classifier, ``r2`` for a regressor, ``neg_log_loss`` as scikit-learn names it; or
  the name given as ``metric=``), so that a study mixing searches (an Optuna search that logs
  ``accuracy``) ranks them all by one metric, and ``mean_test_*``, ``std_test_*``,
  ``rank_test_*`` (``mean_train_*`` with ``return_train_score``); its provenance says that
  every scorer is higher-is-better (``metric_directions``: scikit-learn's scores are, also one
  named ``rmse`` for ``neg_root_mean_squared_error``; each ``mean_test_*``, ``mean_train_*``
  and the folds' ``test_*`` and ``train_*``, with its scorer) and that the search maximised
  ``mean_test_<refit>`` (``objectives``; none with several scorers and none named to refit,
  ``refit=False``: the search kept no candidate by a scorer); status
  ``failed`` when a fold failed to fit (a numeric ``error_score``, ``0`` too: the fold's run
  ``failed`` with its fit's error, which the candidate's names; every fit failed, the search
  raised: each candidate with its folds' error), ``interrupted`` (``KeyboardInterrupt``) for a
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
  ``<sweep>-c<row>-fold<k>``, with ``params={"fold": k}`` and metrics ``score`` (and under
  the scorer's name, as its trial) and ``test_*``;
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

Each run measures its own process (the sweep with its worker processes), in a job of several
tasks too (``srun -n 3 python search.py``: local rank 0 would otherwise meter the whole
machine), unless ``scope`` is given.

``"auto"`` (the default) takes ``"callbacks"`` when it can: not with an in-memory ledger
(``":memory:"``) when joblib fits in worker processes (``n_jobs`` other than 1, not under the
threading backend), which cannot write to it: then ``"apportion"``, with a warning.
:data:`METHOD` says which one the installed scikit-learn gets.

Under ``mlflow.sklearn.autolog()``, :func:`greenprint.integrations.mlflow.log_search` puts the
sweep's cost into the search's MLflow run and each trial's into the child run MLflow made of its
candidate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from greenprint._imports import require

require(
    "sklearn", extra="sklearn", purpose="greenprint.integrations.sklearn", package="scikit-learn"
)

from sklearn.model_selection._search import BaseSearchCV  # noqa: E402

from greenprint._exceptions import ConfigError, GreenprintError  # noqa: E402
from greenprint._lifecycle import status_for  # noqa: E402
from greenprint._public import publish  # noqa: E402
from greenprint.integrations._common import check_run_options  # noqa: E402
from greenprint.integrations._sklearn_common import (  # noqa: E402
    _plain,
    _refit_metric,
    _sample_count,
    trial_id,
)
from greenprint.integrations._sklearn_folds import _FoldCallback  # noqa: E402
from greenprint.integrations._sklearn_timer import _CandidatesTimer  # noqa: E402
from greenprint.integrations._sklearn_trials import _write_trials  # noqa: E402

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


def _fits_in_processes(search: Any) -> bool:
    """Whether joblib will fit ``search``'s candidates in worker processes, not in this one.

    Its ``n_jobs``, else the one a ``joblib.parallel_config`` around the call sets, on a
    backend of processes (loky, the default; not ``"threading"``).
    """
    from joblib.parallel import get_active_backend

    backend, configured = get_active_backend()
    n_jobs = search.n_jobs if search.n_jobs is not None else configured
    if n_jobs is None or n_jobs == 1:
        return False
    return not getattr(backend, "uses_threads", False)


def _in_memory(ledger: Any) -> bool:
    """Whether ``ledger`` (as :func:`track_search` got it) is SQLite in memory (``:memory:``).

    Such a ledger lives in this process only. ``None``: the enclosing run's, else the configured
    one. ``False`` for a location that cannot be read here (the sweep's start says why).
    """
    from greenprint.integrations._common import ledger_target

    try:
        target = ledger_target(ledger)
    except GreenprintError:
        return False
    return target.backend == "sqlite" and target.path is None


#: What the metrics a search's trials and folds log from ``cv_results_`` start with.
_CV_RESULTS_PREFIXES = ("mean_test_", "std_test_", "rank_test_", "mean_train_", "test_", "train_")


#: The way ``method="auto"`` measures on the installed scikit-learn: ``"callbacks"`` or
#: ``"apportion"``.
METHOD: Literal["callbacks", "apportion"] = "callbacks" if _has_callback_api() else "apportion"


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
    metric: str | None = None,
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
        metric: the name the trials and their folds also log their ``score`` under, as the
            study's other searches log theirs (``metric="accuracy"`` beside an Optuna search
            that logs ``accuracy``); not the refit, whose ``score`` is cross-validated, no
            held-out one. Default: the scorer's own name where it has one: ``refit``'s with
            several scorers, ``scoring`` when it is a scorer's name (``"neg_log_loss"``:
            negated as scikit-learn ranks it, recorded higher-is-better), ``"accuracy"`` or
            ``"r2"`` for ``scoring=None`` on an estimator scored by scikit-learn's
            classifier's or regressor's ``score`` method; none for a callable scorer
            (``score`` only). The value is scikit-learn's, unchanged.
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
            ``"callbacks"`` where scikit-learn has no callback API (or with an in-memory
            ledger and worker processes), ``ledger=False``, or a bad run option. Checked
            before anything is fitted or written.
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
            "or cross_validate, use gp.track() around it (it measures joblib's worker "
            "processes too)"
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
    if chosen == "callbacks" and _fits_in_processes(search) and _in_memory(ledger):
        # the folds would be measured in joblib's worker processes and written each to a
        # ledger of its own process, lost: the search is measured whole and shared out
        if method == "callbacks":
            raise ConfigError(
                "method='callbacks' measures each fit in joblib's worker processes, which "
                "cannot write to an in-memory ledger (it lives in this process only); give a "
                "ledger file or URL, n_jobs=1, or method='apportion'"
            )
        logger.warning(
            "greenprint: %s fits in joblib's worker processes, which cannot write to an "
            "in-memory ledger: its measured cost is shared out to its fits "
            "(method='apportion'); give a ledger file or URL to measure each fit",
            type(search).__name__,
        )
        chosen = "apportion"
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"name must be a non-empty string, not {name!r}")
    if metric is not None and (
        not isinstance(metric, str)
        or not metric.strip()
        or metric == "cv_score"
        or metric.startswith(_CV_RESULTS_PREFIXES)
    ):
        raise ConfigError(
            "metric must name the trials' score (e.g. 'accuracy'), a non-empty string that is "
            f"none of the metrics they log already (cv_score, mean_test_*...), not {metric!r}"
        )
    if fit_params is not None and not isinstance(fit_params, Mapping):
        raise ConfigError(f"fit_params must be a mapping, not {type(fit_params).__name__}")
    options = check_run_options(run_options, where="track_search", ledger=ledger, study=study)
    name = name or f"{type(search).__name__}-{type(search.estimator).__name__}"
    size = _sample_count(X) if dataset_size is None else dataset_size
    # each run measures its own process (the sweep: with its joblib workers), as outside a
    # job, unless a scope is given: in a job of several tasks (``srun -n 3 python
    # search.py``), local rank 0's runs would otherwise meter the whole machine, every fold
    # in it the other workers' folds and the other tasks' searches
    own_process = {} if "scope" in options else {"node_meter": False}
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
        **own_process,
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
                options={**own_process, **{k: v for k, v in options.items() if k != "meters"}},
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
                    metric,
                )
            except GreenprintError as e:  # the measured runs stay; the summary could not
                logger.warning("greenprint: could not write the search's trials: %s", e)
        facts: dict[str, Any] = {"n_candidates": len(search.cv_results_["params"])}
        scorer = _refit_metric(search)
        if scorer != "score":  # several scorers: which one the trials' ``score`` is
            facts["score_metric"] = f"mean_test_{scorer}"
            if not isinstance(search.refit, str):  # no scorer refits: score is the first's
                facts["refit"] = False if search.refit is False else "callable"
        sweep.set(params=facts)
    return sweep


# the names re-exported from private modules read as this module's (reprs, help, pickles)
publish(__name__, globals())
