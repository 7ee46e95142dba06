"""MLflow: a greenprint run's energy, CO2-eq, FPO and power in the MLflow run beside it.

``pip install 'greenprint[mlflow]'``, then::

    import mlflow
    import greenprint as gp
    from greenprint.integrations import mlflow as gp_mlflow

    with mlflow.start_run(), gp.track("resnet", ledger="gp.db") as run:
        gp_mlflow.autolog(run)
        train()

MLflow's own system metrics log GPU power (not energy) and nothing for the CPU or RAM; this
module logs what greenprint measures, under ``greenprint/`` names:

* while the run goes, at every greenprint flush (``flush_interval_s``, 10 s by default) from the
  run's sampler thread, as MLflow logs its ``system/`` metrics: ``greenprint/energy_kwh`` and
  ``greenprint/emissions_kg`` (totals so far), ``greenprint/power_w`` (mean since the previous
  log), ``greenprint/cpu_energy_kwh`` (``gpu_``, ``ram_``: each measured component) and
  ``greenprint/fpo`` when known; steps count the logs (0, 1, 2...), like the system metrics'.
  A run with no energy meter (``meters=[]``) logs no energy, CO2-eq or power metric (unknown,
  never 0: MLflow metrics are numbers, so it is left out) and is tagged ``greenprint.energy`` =
  ``unknown (no energy meter)`` at its end.
  ``logger.log(step=epoch)`` logs them now at your step (with ``every_flush=False``, only then),
  written by a thread of the logger's own so that your loop does not wait for the store;
* when the greenprint run ends (finished, failed, pruned or interrupted): the totals (the same
  names plus ``greenprint/duration_s``) at the step after the last, so that MLflow's runs table
  (which shows each metric's value at its highest step) shows the totals; the
  provenance as tags (``greenprint.run_id``, ``greenprint.status``, ``greenprint.role``,
  ``greenprint.provenance.cpu`` = ``rapl`` or ``estimate:tdp``...), and the run record as the
  JSON artifact ``greenprint/run.json``; a run given no role is tagged with the one a report
  infers for it (a trial, a sweep, a part), and ``greenprint.role_inferred`` = ``true``, when
  its ledger says so at its end (under a run given no role that is still running, once the
  run above that holds it back ends, at any depth; a parent in another process only tags its
  children, when it is followed by ``autolog`` too); an MLflow run still running then is ended
  ``KILLED`` when the greenprint run ended ``interrupted`` (SIGTERM: a scheduler's kill, whose
  default action runs no exit hook of MLflow's, left it ``RUNNING`` for good), ``FAILED`` when
  it ``failed``; a run that finishes leaves its MLflow run to its owner;
* :func:`log_run` does the same for a run that has ended (or a record read from a ledger),
  :func:`log_search` for a scikit-learn search of
  :func:`greenprint.integrations.sklearn.track_search` into the runs ``mlflow.sklearn.autolog``
  made of it (the sweep into the parent run, each candidate into its child run), and
  :func:`log_report` logs a study's report (HTML and JSON) as artifacts.

Everything goes through an :class:`mlflow.MlflowClient` with the MLflow run's id, so it works
from the sampler thread and after the MLflow run has ended (put ``gp.track`` inside or outside
``mlflow.start_run()``). A tracking store that fails is logged as a warning; it never stops
training or the greenprint run.
"""

from __future__ import annotations

import logging
import math
import numbers
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError, UnknownRunError
from greenprint._imports import require
from greenprint.integrations._loggers import (
    StepFigures,
    check_record,
    check_running,
    role_when_known,
    write_running_runs,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord
    from greenprint._types import LedgerSource
    from greenprint.tracking import Run

__all__ = ["ARTIFACT_PATH", "MlflowLogger", "autolog", "log_report", "log_run", "log_search"]

logger = logging.getLogger(__name__)

_PURPOSE = "greenprint.integrations.mlflow"
_mlflow = require("mlflow", extra="mlflow", purpose=_PURPOSE, package="mlflow-skinny")

from greenprint.integrations._mlflow_writes import (  # noqa: E402
    ARTIFACT_PATH,
    _client,
    _end_mlflow_run,
    _log_metrics,
    _log_record,
    _run_id,
    _searched,
    _StoreFailures,
    _tag_children_roles,
    _tag_role,
    _wait,
)

#: Queued logs kept to wait for at the end; past this, the oldest half is waited for (done).
_MAX_PENDING = 64


def autolog(
    run: Run,
    *,
    run_id: str | None = None,
    client: Any = None,
    every_flush: bool = True,
) -> MlflowLogger:
    """Follow a running greenprint run in an MLflow run until it ends.

    Args:
        run: the running greenprint run (``with gp.track(...) as run``).
        run_id: the MLflow run to log to; default the active one (``mlflow.start_run()``).
        client: an :class:`mlflow.MlflowClient`; default one for the current tracking URI.
        every_flush: log the figures at every greenprint flush (steps 0, 1, 2...); ``False``
            logs them only when you call :meth:`MlflowLogger.log`.

    Returns:
        The :class:`MlflowLogger`, whose :meth:`~MlflowLogger.log` logs the figures now.

    Raises:
        ConfigError: ``run`` is not a running greenprint run, no MLflow run is active and no
            ``run_id`` was given, or the tracking store has no such run.
    """
    return MlflowLogger(run, run_id=run_id, client=client, every_flush=every_flush)


class MlflowLogger:
    """Logs a greenprint run's figures into one MLflow run; made by :func:`autolog`.

    Attributes:
        run_id: the MLflow run's id.
    """

    def __init__(
        self, run: Run, *, run_id: str | None, client: Any, every_flush: bool = True
    ) -> None:
        check_running(run, "greenprint.integrations.mlflow.autolog")
        if not isinstance(every_flush, bool):
            raise ConfigError(f"every_flush must be True or False, not {every_flush!r}")
        self._client = _client(client, run_id)
        self.run_id = _run_id(self._client, run_id)
        self._run = run
        self._figures = StepFigures(run)
        self._lock = threading.Lock()  # one write at a time; steps in order
        self._every_flush = every_flush
        self._next_step = 0  # after every step logged so far
        self._pending: list[Future[Any]] = []  # the logs queued on the writer, in order
        self._writer: ThreadPoolExecutor | None = None  # made at the first queued log
        self._ended = False
        self._failures = _StoreFailures(self.run_id)  # a store that is down: said once
        run.add_listener(self._on_event)

    def log(self, step: int | None = None) -> dict[str, float]:
        """Log the figures so far now, at ``step`` (default: the step after the last logged).

        The meters are read first, so the figures are current (e.g. at an epoch's end). The
        write is queued on a thread of this logger's own, so the training loop does not wait
        for the tracking store; the queue is drained when the greenprint run ends. (Not
        MLflow's asynchronous logging: a run that used it waits about 1 s in
        ``mlflow.end_run()`` for MLflow's queue thread, which polls every second.)

        Returns:
            The figures logged, by name.

        Raises:
            ConfigError: ``step`` is not a non-negative integer, or the run has ended.
        """
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise ConfigError(f"step must be a non-negative integer, not {step!r}")
        return self._log_figures(step, fresh=True)  # an ended run: ConfigError, under the lock

    def _log_figures(self, step: int | None, *, fresh: bool) -> dict[str, float]:
        # a step the user logs is queued on the logger's writer thread (the training loop does
        # not wait for the store); at a flush, on the sampler thread, it is written at once
        with self._lock:
            if fresh and self._ended:  # checked under the lock: the stop shuts the writer down
                raise ConfigError("the greenprint run has ended; its totals are logged already")
            if step is None:
                step = self._next_step
            self._next_step = max(self._next_step, step + 1)
            figures = self._figures.read(fresh=fresh)
            if not fresh:
                _log_metrics(self._client, self.run_id, figures, step, self._failures)
                return figures
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="greenprint-mlflow")
            self._pending.append(
                self._writer.submit(
                    _log_metrics, self._client, self.run_id, figures, step, self._failures
                )
            )
            if len(self._pending) > _MAX_PENDING:  # long done, in practice: no wait
                _wait(self._pending[: _MAX_PENDING // 2], self.run_id)
                del self._pending[: _MAX_PENDING // 2]
        return figures

    def _on_event(self, run: Run, event: str) -> None:
        if event == "flush" and self._every_flush and not self._ended:
            self._log_figures(None, fresh=False)
        elif event == "stop" and not self._ended:
            self._ended = True
            with self._lock:  # the totals at the last step: MLflow's "latest" values
                _wait(self._pending, self.run_id)
                self._pending.clear()
                if self._writer is not None:
                    self._writer.shutdown(wait=True)
                self._failures.said()
                record = run.record
                role_known = _log_record(
                    self._client, self.run_id, record, step=self._next_step, ledger=run.ledger
                )
                if run.ledger is not None:
                    _tag_children_roles(self._client, self.run_id, record, run.ledger)
                _end_mlflow_run(self._client, self.run_id, record.status)
            if not role_known:  # a run above, given no role, is still running: at its end
                client, run_id = self._client, self.run_id
                role_when_known(run, lambda role: _tag_role(client, run_id, role))


def log_run(run: Run | RunRecord, *, run_id: str | None = None, client: Any = None) -> None:
    """Log an ended greenprint run (or a ledger's record of one) into an MLflow run.

    Its totals as metrics, its provenance as tags and its record as the artifact
    ``greenprint/run.json``, as :func:`autolog` does when a run ends. A run given no role is
    tagged with the one a report infers (``greenprint.role_inferred``) when it is a
    :class:`~greenprint.Run` (its ledger says where it stands); a record is not.

    Args:
        run: a :class:`~greenprint.Run` that has ended, or a record from
            :meth:`greenprint.Ledger.runs`.
        run_id: the MLflow run; default the active one.
        client: an :class:`mlflow.MlflowClient`; default one for the current tracking URI.

    Raises:
        ConfigError: not a run or record, a run still going, or no such MLflow run.
    """
    record = check_record(run, "greenprint.integrations.mlflow.log_run")
    client = _client(client, run_id)
    ledger = None if run is record else getattr(run, "ledger", None)  # a Run: its ledger
    _log_record(client, _run_id(client, run_id), record, step=0, quiet=False, ledger=ledger)


def log_search(
    search: Any,
    sweep: Run | RunRecord,
    *,
    run_id: str | None = None,
    client: Any = None,
    ledger: LedgerSource = None,
) -> dict[str, str]:
    """Log a scikit-learn search's cost into the MLflow runs ``mlflow.sklearn.autolog`` made.

    For a search fitted by :func:`greenprint.integrations.sklearn.track_search` under
    ``mlflow.sklearn.autolog()``: the parent run (the search's) gets the sweep's cost, as
    :func:`log_run` logs it, and each child run autolog made for a row of ``cv_results_`` (the
    best ``max_tuning_runs``, 5 by default; MLflow makes them for ``GridSearchCV`` and
    ``RandomizedSearchCV``, not for a successive-halving search) gets the cost of that row's
    trial. A child run is matched to its row by what autolog logged from that row: its metrics
    (``mean_fit_time``, ``std_fit_time``, ``mean_score_time``, ``std_score_time``, the
    scores), all equal, and its params; one that matches no row, or several, is left alone,
    with a warning. Child runs without the fit times (not autolog's of a search) are not
    looked at.

    Args:
        search: the fitted search (its ``cv_results_``).
        sweep: the sweep run ``track_search`` returned, or its record from a ledger.
        run_id: the parent MLflow run; default the active one, else MLflow's last active run
            when it began while the sweep ran (the run autolog makes for a fit with no run
            around it), looked up only when ``client`` reads the fluent API's tracking store
            (where autolog logs).
        client: an :class:`mlflow.MlflowClient`; default one for the current tracking URI.
        ledger: the ledger of the sweep's trials when ``sweep`` is a record (a path, URL or
            :class:`~greenprint.Ledger`; ``None``: the configured one); a run's own otherwise.

    Returns:
        The greenprint run id logged into each MLflow child run, by the child run's id.

    Raises:
        ConfigError: ``search`` is not a fitted search; ``sweep`` is not a sweep of
            ``track_search`` that has ended, or has another number of candidates than the
            search (the search fitted again since); no such MLflow run, or no active run and
            no run that began while the sweep ran.
        LedgerError: the ledger cannot be read.
    """
    from greenprint.integrations._sklearn_common import trial_id
    from greenprint.ledger import Ledger, get_ledger
    from greenprint.tracking import Run

    where = "greenprint.integrations.mlflow.log_search"
    results = getattr(search, "cv_results_", None)
    if not isinstance(results, Mapping) or "params" not in results:
        raise ConfigError(
            f"{where} takes a fitted scikit-learn search (GridSearchCV...: its cv_results_), "
            f"not {type(search).__name__}"
            + (" that has not been fitted" if hasattr(search, "param_grid") else "")
        )
    record = check_record(sweep, where)
    if record.role != "sweep" or "search" not in record.params:
        raise ConfigError(
            f"{where} takes the sweep run track_search returned, not run {record.name!r} "
            f"(role {record.role!r})"
        )
    n_rows = len(results["params"])
    if record.params.get("n_candidates") != n_rows:
        raise ConfigError(
            f"sweep {record.name!r} has {record.params.get('n_candidates')} candidates and this "
            f"search's cv_results_ {n_rows}: not the search it measured, or fitted again since"
        )
    if client is not None:
        client = _client(client, run_id)  # checked: an MlflowClient
    parent = run_id
    if run_id is None and _mlflow.active_run() is None:  # autolog's own run, if it is one
        last = None
        fluent = _mlflow.get_tracking_uri()
        # autolog's run is in the fluent API's store; mlflow.last_active_run() reads it there,
        # and a store not in use is made on the way (MLflow 3's default: ./mlflow.db in the
        # working directory): only looked up when that is the client's store (no client: the
        # fluent API's; none is made before a run to log to is found)
        same_store = client is None or client.tracking_uri.rstrip("/") == fluent.rstrip("/")
        if same_store:
            try:
                last = _mlflow.last_active_run()
            except _mlflow.exceptions.MlflowException:  # its store is not the current one
                last = None
        ended_s = record.ended_at if record.ended_at is not None else time.time()
        if last is None or not record.started_at <= last.info.start_time / 1000 <= ended_s:
            elsewhere = (
                ""
                if same_store
                else f" in the client's tracking store {client.tracking_uri} (autolog's runs go "
                f"to {fluent})"
            )
            raise ConfigError(
                f"no active MLflow run, and no MLflow run began while the search ran{elsewhere} "
                "(the run mlflow.sklearn.autolog makes for a fit with no run around it): pass "
                "run_id="
            )
        parent = last.info.run_id
    if client is None:  # made now that there is a run to log to
        client = _client(None, parent)
    parent = _run_id(client, parent)
    rows = [_autolog_row(results, row) for row in range(n_rows)]
    matched: dict[str, int] = {}
    unmatched: list[str] = []
    for child in _child_runs(client, parent):
        metrics = child.data.metrics
        if not _FIT_TIMES <= metrics.keys():
            continue  # not a run autolog made for a candidate
        found = [row for row, each in enumerate(rows) if _same_row(child, *each)]
        if len(found) == 1:
            matched[child.info.run_id] = found[0]
        else:
            unmatched.append(child.info.run_id)
    if unmatched:
        logger.warning(
            "greenprint: %d MLflow child runs of run %s match no candidate of the search, or "
            "several, and were left without its cost: %s",
            len(unmatched),
            parent,
            ", ".join(unmatched),
        )
    opened = not isinstance(sweep, Run) and not isinstance(ledger, Ledger)
    led = sweep.ledger if isinstance(sweep, Run) else get_ledger(ledger, create=False)
    if led is None:
        raise ConfigError(f"sweep {record.name!r} has no ledger (ledger=False): no trials to log")
    logged: dict[str, str] = {}
    try:
        _log_record(client, parent, record, step=0, quiet=False, ledger=led)
        for child_id, row in matched.items():
            try:
                trial = led.run(trial_id(record.id, row))
            except UnknownRunError:  # the trials could not be written (a warning said so)
                continue
            _log_record(client, child_id, trial, step=0, quiet=False, ledger=led)
            logged[child_id] = trial.id
    finally:
        if opened:
            led.close()
    return logged


def log_report(
    study: str | None = None,
    ledger: LedgerSource = None,
    *,
    run_id: str | None = None,
    client: Any = None,
    formats: str | Iterable[str] = ("html", "json"),
    artifact_path: str | None = None,
    plots: bool = False,
    **report_options: Any,
) -> list[str]:
    """Log a study's greenprint report into an MLflow run as artifacts.

    The report is :func:`greenprint.report.build_report`'s, rendered by
    :func:`greenprint.report.write_report` (``report.html``, ``report.json``...). The running
    runs of this process that write to ``ledger`` (a search around this call) write their cost
    so far first, so that the report counts it, not their cost at their last flush.

    Args:
        study: the study; ``None`` when the ledger holds one study.
        ledger: the ledger (a :class:`~greenprint.Ledger`, path or URL); ``None``: the
            configured one.
        run_id: the MLflow run; default the active one.
        client: an :class:`mlflow.MlflowClient`; default one for the current tracking URI.
        formats: the report formats (``"html"``, ``"md"``, ``"latex"``, ``"json"``, ``"all"``).
        artifact_path: the artifacts' folder in the MLflow run; default ``greenprint/report``,
            or ``greenprint/report-STUDY`` when the ledger holds several studies (as
            ``greenprint report`` names its folder), so that one study's report never replaces
            another's in one MLflow run.
        plots: draw plots (needs matplotlib: inline SVG in HTML, PNG beside Markdown, PDF
            beside LaTeX); off by default, which keeps it fast.
        **report_options: passed to :func:`~greenprint.report.build_report` (``metric``,
            ``mode``, ``final``...).

    Returns:
        The artifact paths logged (e.g. ``["greenprint/report/report.html", ...]``).

    Raises:
        ConfigError: no such MLflow run, or a bad report option.
        LedgerError: the ledger cannot be read, or the study is not in it.
        ReportError: an unknown format.
    """
    import os
    from pathlib import Path

    from greenprint.ledger import Ledger, get_ledger
    from greenprint.report import build_report, write_report
    from greenprint.report._formats import study_slug

    if (  # build_report's order (ledger, study): a file given as the study, no ledger there
        isinstance(study, str)
        and os.path.isfile(study)
        and isinstance(ledger, str)
        and "://" not in ledger
        and not os.path.exists(ledger)
    ):
        raise ConfigError(
            f"log_report takes the study first, then the ledger: {study!r} is a file and there "
            f"is no ledger at {ledger!r}; call log_report({ledger!r}, {study!r})"
        )
    client = _client(client, run_id)
    mlflow_run = _run_id(client, run_id)
    opened = not isinstance(ledger, Ledger)
    led = get_ledger(ledger, create=False)
    try:
        write_running_runs(led)  # a search around this call: its cost so far, not its last flush
        report = build_report(led, study, **report_options)
        studies = led.studies()
    finally:
        if opened:
            led.close()
    if artifact_path is None:
        artifact_path = ARTIFACT_PATH + "/report"
        if len(studies) > 1:
            artifact_path += "-" + study_slug(report.study, studies)
    with tempfile.TemporaryDirectory(prefix="greenprint-report-") as tmp:
        written = write_report(report, tmp, formats, plots=plots)
        client.log_artifacts(mlflow_run, tmp, artifact_path)
        del written
        return sorted(
            f"{artifact_path}/{p.relative_to(tmp).as_posix()}"
            for p in Path(tmp).rglob("*")
            if p.is_file()
        )


# ---------------------------------------------------------------------------- internals


#: The metrics ``mlflow.sklearn.autolog`` logs into each candidate's child run, always.
_FIT_TIMES = frozenset({"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"})

#: The longest param key and value MLflow logs as they are (longer ones it cuts short).
_MAX_PARAM_KEY, _MAX_PARAM_VALUE = 250, 6000


def _autolog_row(results: Mapping[str, Any], row: int) -> tuple[dict[str, float], dict[str, str]]:
    """What ``mlflow.sklearn.autolog`` logs of a row of ``cv_results_`` into its child run.

    Its metrics: every number of the row but the ``param_*`` and ``split*`` columns; its params:
    the row's (``str`` of each value), beside the estimator's own.
    """
    figures = {
        key: float(values[row])
        for key, values in results.items()
        if not key.startswith(("param", "split")) and isinstance(values[row], numbers.Number)
    }
    params = {
        str(key): str(value)
        for key, value in results["params"][row].items()
        if len(str(key)) <= _MAX_PARAM_KEY and len(str(value)) <= _MAX_PARAM_VALUE
    }
    return figures, params


def _same_row(child: Any, figures: dict[str, float], params: dict[str, str]) -> bool:
    """Whether MLflow run ``child`` holds the metrics and params autolog logs of one row."""
    metrics, logged = child.data.metrics, child.data.params
    if not _FIT_TIMES <= figures.keys():
        return False
    for key, value in figures.items():
        if key in metrics and not (
            metrics[key] == value or (math.isnan(metrics[key]) and math.isnan(value))
        ):
            return False
    return all(logged.get(key) == value for key, value in params.items())


def _child_runs(client: Any, parent: str) -> list[Any]:
    """The MLflow runs whose parent is ``parent`` (``mlflow.parentRunId``), in its experiment."""
    experiment = client.get_run(parent).info.experiment_id
    return list(_searched(client, experiment, f"tags.`mlflow.parentRunId` = '{parent}'"))
