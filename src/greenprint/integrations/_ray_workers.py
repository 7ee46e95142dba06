"""Ray Tune's worker side: each trial of a wrapped trainable measured where it runs.

:class:`_TrialSpec` is what :func:`~greenprint.integrations.ray.trainable` ships to the
workers (picklable); :class:`_TrialRun` is a trial's run in its worker, started on entry, its
session's ``report`` patched so that every result gets greenprint's figures (and, when the
driver writes, the run's record), ended on exit. With the result keys the driver reads back
(:data:`FIGURE_PREFIX` and the private ones) and where a worker can write its run.

Private: :mod:`greenprint.integrations.ray` is the public module, and re-exports
``_TrialSpec`` and ``_TrialRun`` under their old names (a pickled trainable of an earlier
greenprint names them there).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from numbers import Integral, Real
from typing import Any

from greenprint._imports import require

require("ray.tune", extra="ray", purpose="greenprint.integrations.ray", package="ray")

from ray import tune  # noqa: E402

from greenprint import _jobs  # noqa: E402
from greenprint._exceptions import BudgetExceeded, GreenprintError  # noqa: E402
from greenprint._lifecycle import status_for  # noqa: E402
from greenprint._run_fallback import vouch  # noqa: E402

#: Its messages keep the logger name they had in one module.
logger = logging.getLogger("greenprint.integrations.ray")

#: The prefix of the figures added to every result a wrapped trial reports.
FIGURE_PREFIX = "greenprint/"


_RUN_ID = FIGURE_PREFIX + "run_id"


_WORKER = FIGURE_PREFIX + "worker"  # "<host> <pid>" of the trial's worker process


_RECORD = FIGURE_PREFIX + "record"  # the run's record, JSON, when the driver writes it


_BUDGET = FIGURE_PREFIX + "budget_stop"  # the error of a "stop" budget raised at this report


_DUPLICATE = "__duplicate__"  # ray.tune.result.RESULT_DUPLICATE: the repeat of a last result


#: Longest wait, in s, for a meter read in progress on the run's sampler thread at a report.
_SAMPLE_WAIT_S = 0.05


#: Tune's own result keys, not logged to the trial's run as metrics.
_TUNE_KEYS = frozenset(
    {
        "done",
        "training_iteration",
        "time_this_iter_s",
        "time_total_s",
        "timestamp",
        "iterations_since_restore",
        "time_since_restore",
        "timesteps_since_restore",
        "timesteps_total",
        "episodes_total",
        "checkpoint_dir_name",
        "should_checkpoint",
        "pid",
        "node_ip",
        "hostname",
        "trial_id",
        "date",
    }
)


@dataclass(frozen=True)
class _TrialSpec:
    """What a wrapped trainable carries to the workers (picklable)."""

    ledger: str | None  # a path or URL the workers can open; None: in memory only
    study: str | None
    write: str
    driver_host: str
    driver_pid: int
    options: dict[str, Any]
    #: whether ``trainable`` was given its ledger (``False``: ``ledger`` is the configured one,
    #: unless the experiment's callback was given one: :func:`_trial_ledger`)
    ledger_given: bool = True
    #: this trainable's key in Ray's key-value store, where the callback puts its ledger
    token: str = ""


#: The prefix of the key under which a callback tells a trainable given no ledger its own.
_CALLBACK_LEDGER = "greenprint/ray/callback-ledger/"


def _publish_ledger(spec: Any, ledger: str | None) -> str | None:
    """On the driver: the callback's ``ledger``, for the workers of a trainable given none.

    ``trainable(train)`` beside ``GreenprintTuneCallback(ledger=URL)`` wrote its trials to the
    configured ``./greenprint.db`` and the callback its sweep to the URL: the study split in
    two, a warning for each trial. The trainable's function is pickled for the workers before
    the callback's ``setup`` runs, so the ledger goes through Ray's key-value store (in the
    cluster's GCS, which every worker reads Tune's trainables from), under the trainable's
    :attr:`_TrialSpec.token`, till the experiment's end (:func:`_unpublish_ledger`). Nothing
    for a trainable given a ledger (its own is kept), or a spec without a token (an earlier
    greenprint's); an in-memory ledger (``None``) takes back an earlier experiment's.

    Returns:
        The key put (for :func:`_unpublish_ledger`), or ``None``.
    """
    if getattr(spec, "ledger_given", True) or not getattr(spec, "token", ""):
        return None
    from ray.experimental import internal_kv

    if not internal_kv._internal_kv_initialized():
        return None
    key = _CALLBACK_LEDGER + spec.token
    if ledger is None:
        internal_kv._internal_kv_del(key)
        return None
    internal_kv._internal_kv_put(key, ledger, overwrite=True)
    return key


def _unpublish_ledger(key: str | None) -> None:
    """At the experiment's end: take back what :func:`_publish_ledger` put under ``key``."""
    if key is None:
        return
    from ray.experimental import internal_kv

    if internal_kv._internal_kv_initialized():
        internal_kv._internal_kv_del(key)


def _trial_ledger(spec: _TrialSpec) -> str | None:
    """On a worker: where the trial's run goes, the callback's ledger for a trainable given none.

    :func:`_publish_ledger` put it; none put (no callback, or one given no ledger, or an
    earlier greenprint's): the spec's own, the configured ledger the driver resolved.
    """
    token = getattr(spec, "token", "")
    if getattr(spec, "ledger_given", True) or not token:
        return spec.ledger
    from ray.experimental import internal_kv

    if internal_kv._internal_kv_initialized():
        published = internal_kv._internal_kv_get(_CALLBACK_LEDGER + token)
        if published:
            return bytes(published).decode()
    return spec.ledger


class _TrialRun:
    """One trial's run in its worker: started on entry, reports patched, ended on exit."""

    def __init__(self, spec: _TrialSpec, config: Mapping[str, Any]) -> None:
        self.spec = spec
        self.config = config
        self.run: Any = None
        self._reports = 0
        self._session: Any = None
        self._figures: Any = None
        self._driver_writes = False
        self._contained: bool | None = None

    def __enter__(self) -> _TrialRun:
        from greenprint.integrations._dl import LiveFigures
        from greenprint.tracking import Run

        context = tune.get_context()
        experiment = _call(context, "get_experiment_name") or "ray-tune"
        name = _call(context, "get_trial_name") or "trial"
        spec = self.spec
        target = _trial_ledger(spec)  # the callback's, for a trainable given none
        self._driver_writes = spec.write == "driver" or (
            spec.write == "auto" and not _worker_can_write(target, spec.driver_host)
        )
        ledger: Any = False if self._driver_writes or target is None else target
        # checked on the driver: failing here, mid-search, its trials fall back, never fail
        vouch(ledger)
        self.run = Run(
            name,
            study=spec.study or experiment,
            ledger=ledger,
            role="trial",
            params=_params(self.config),
            parent=None,
            **spec.options,
        )
        self.run.start()
        self._contained = _jobs.tree_contains(
            _jobs.parent_tree_value("process", spec.driver_pid, spec.driver_host), host=_host()
        )
        if self.run.ledger is not None and self._contained is not None:
            try:  # known before the first result: a trial that fails at once has it too
                self.run.ledger.flush(self.run.id, fields={"contained": self._contained})
            except GreenprintError as e:  # the callback sets it again at the first result
                logger.warning("greenprint: could not record trial run containment: %s", e)
        self._figures = LiveFigures(self.run)
        self._patch_reports()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._unpatch_reports()
        status, error = status_for(exc)
        if isinstance(exc, SystemExit) and status == "finished":
            # Tune stopped the trial inside tune.report (a scheduler or a stopping criterion);
            # the driver's callback decides between finished and pruned
            error = None
        self.run.stop(status=status, error=error)

    # ---------------------------------------------------------------- the trial's results
    def _patch_reports(self) -> None:
        """Route this trial's results through :meth:`_report` (its session's ``report``).

        ``tune.report``, ``ray.train.report`` and a returned or yielded dict all end in the
        trial session's ``report``; patching that one object (not the module functions) also
        covers ``from ray.tune import report`` done before.
        """
        session = _trial_session()
        if session is None or not callable(getattr(session, "report", None)):
            logger.warning(
                "greenprint: this Ray version's trial session was not found; trials are "
                "measured but their results carry no greenprint/ figures"
            )
            return
        original = session.report

        def report(metrics: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            stop = None
            if isinstance(metrics, dict) and _DUPLICATE not in metrics:
                metrics, stop = self._annotate(metrics)
            result = original(metrics, *args, **kwargs)
            if stop is not None:  # a "stop" budget: after Tune has the result
                raise stop
            return result

        setattr(session, "report", report)  # noqa: B010 - this session object only
        self._session = session

    def _unpatch_reports(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.__dict__.pop("report", None)

    def _annotate(self, metrics: dict[str, Any]) -> tuple[dict[str, Any], BudgetExceeded | None]:
        """The result with this trial's figures added; its numbers logged to the run.

        Returns:
            The result, and the :class:`~greenprint.BudgetExceeded` of a ``"stop"`` budget
            that logging crossed (to raise once Tune has the result), else ``None``.
        """
        run = self.run
        self._reports += 1
        step = self._reports  # the training_iteration Tune gives this result (from a fresh start)
        numbers = {
            key: float(value)
            for key, value in metrics.items()
            if key not in _TUNE_KEYS
            and not key.startswith(FIGURE_PREFIX)
            and isinstance(value, Real)  # NumPy's float32, int64 too (not int or float)
            and not isinstance(value, bool)
        }
        stop = None
        if numbers:
            try:
                run.log(step=step, **numbers)
            except BudgetExceeded as e:
                stop = e
        try:  # the figures as of now, not of the last sample (a report is once per epoch or so)
            run._sample(wait_s=_SAMPLE_WAIT_S)
        except Exception:  # measurement must never reach the trial's code
            logger.exception("greenprint: sampling trial run %s at a report failed", run.id[:8])
        # written now, not at the next flush interval: a trial Tune stops at this report (ASHA)
        # may have its actor killed before the run ends, which lost the result it was ranked by
        # (a pruned trial's score read None); a write per report, a report per epoch or so
        run._flush()
        figures = self._figures.read()
        out = dict(metrics)
        for key in ("energy_kwh", "emissions_kg", "power_w"):  # none with no energy meter
            if key in figures:
                out[FIGURE_PREFIX + key] = figures[key]
        out[_RUN_ID] = run.id
        out[_WORKER] = f"{_host()} {os.getpid()}"
        if stop is not None:  # the reason, for a driver that writes the run (or outlives it)
            out[_BUDGET] = status_for(stop)[1]
        if self._driver_writes:
            out[_RECORD] = _record_json(run, contained=self._contained)
        return out, stop


def _trial_session() -> Any:
    """The running trial's Ray session (private to Ray: ``None`` if this Ray has none)."""
    try:
        from ray.train._internal.session import get_session
    except ImportError:  # pragma: no cover - another Ray layout: runs measured, no figures
        return None
    return get_session()


def _worker_can_write(ledger: str | None, driver_host: str) -> bool:
    """Whether a worker writes its run itself under ``write="auto"``."""
    if ledger is None:
        return False
    from greenprint.ledger._target import resolve_target

    target = resolve_target(ledger)
    if target.backend == "postgresql":
        return True
    return target.path is not None and _host() == driver_host


def _ledger_url(ledger: Any) -> str | None:
    """A location a worker can open: an absolute SQLite path or a URL; ``None``: no ledger."""
    if ledger is False:
        return None
    from greenprint.integrations._common import ledger_target

    target = ledger_target(ledger)
    if target.backend == "sqlite" and target.path is None:
        return None  # an in-memory ledger: the driver writes (ledger given to the callback)
    return str(target.path) if target.path is not None else target.url


def _host() -> str:
    return _jobs.node_host()


def _call(obj: Any, method: str) -> Any:
    try:
        return getattr(obj, method)()
    except (AttributeError, RuntimeError):  # outside a Tune session, or an older Ray
        return None


def _params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's plain values (numbers, strings, booleans), nested keys joined with ``/``."""
    out: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                visit(f"{prefix}/{key}" if prefix else str(key), inner)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            out[prefix] = value
        elif isinstance(value, Integral):  # NumPy's int64 too (tune.grid_search(np.arange(3)))
            out[prefix] = int(value)
        elif isinstance(value, Real):
            value = float(value)
            out[prefix] = value if math.isfinite(value) else str(value)

    if isinstance(config, Mapping):
        visit("", config)
    return out


def _record_json(run: Any, *, contained: bool | None) -> str:
    """The run's record without metrics, as JSON (the driver logs metrics from the results)."""
    record = run.record
    data = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "metrics"}
    if contained is not None:
        data["contained"] = contained
    return json.dumps(data, default=str)
