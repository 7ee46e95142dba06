"""What greenprint writes into an MLflow run, and how.

The MLflow client and run checked (``client=``, ``run_id=``, else the active run), figures
logged at a step (a store that fails is a warning), a run's record as metrics, tags and the
artifact ``greenprint/run.json`` (:data:`ARTIFACT_PATH`), the roles a report infers tagged
once known (on the run, on its children), and the MLflow run ended as its greenprint run
ended (``failed``: ``FAILED``, ``interrupted``: ``KILLED``).

Private: :mod:`greenprint.integrations.mlflow` is the public module, and re-exports
:data:`ARTIFACT_PATH`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError, GreenprintError
from greenprint._imports import require
from greenprint.integrations._loggers import (
    inferred_role,
    provenance_tags,
    record_dict,
    total_figures,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord
    from greenprint.ledger import Ledger


#: Its messages keep the logger name they had in one module.
logger = logging.getLogger("greenprint.integrations.mlflow")

_PURPOSE = "greenprint.integrations.mlflow"
_mlflow = require("mlflow", extra="mlflow", purpose=_PURPOSE, package="mlflow-skinny")

#: Where in the MLflow run's artifacts greenprint puts the run record and reports.
ARTIFACT_PATH = "greenprint"


#: The MLflow status an MLflow run ends with when its greenprint run ends with this status.
_MLFLOW_STATUS = {"interrupted": "KILLED", "failed": "FAILED"}


#: Why a call that logs into the active MLflow run cannot.
_NO_ACTIVE_RUN = "no active MLflow run: call inside `with mlflow.start_run():` or pass run_id="


def _client(client: Any, run_id: str | None) -> Any:
    """``client``, checked, or one for the current tracking URI once there is a run to log to.

    ``MlflowClient()`` makes its tracking store at once (MLflow 3's default: ``./mlflow.db`` in
    the working directory): with no ``run_id`` and no active run, the call is refused before
    one is made, so a refused ``autolog(run)`` leaves no store behind.

    Raises:
        ConfigError: ``client`` is not an ``MlflowClient``; no client, no ``run_id`` and no
            active run.
    """
    if client is None:
        if run_id is None and _mlflow.active_run() is None:
            raise ConfigError(_NO_ACTIVE_RUN)
        return _mlflow.MlflowClient()
    if not isinstance(client, _mlflow.MlflowClient):
        raise ConfigError(f"client must be an mlflow.MlflowClient, not {type(client).__name__}")
    return client


def _run_id(client: Any, run_id: str | None) -> str:
    """The MLflow run to log to: ``run_id``, else the active run; checked in the store."""
    if run_id is None:
        active = _mlflow.active_run()
        if active is None:
            raise ConfigError(_NO_ACTIVE_RUN)
        run_id = active.info.run_id
    if not isinstance(run_id, str) or not run_id:
        raise ConfigError(f"run_id must be an MLflow run id, not {run_id!r}")
    try:
        client.get_run(run_id)
    except _mlflow.exceptions.MlflowException as e:
        raise ConfigError(
            f"no MLflow run {run_id!r} in tracking store {client.tracking_uri}: {e}"
        ) from e
    return run_id


class _StoreFailures:
    """A logger's failed writes to its MLflow run, each kind of error warned of once.

    Then debug lines, and at the run's end how many more failed (:meth:`said`). A tracking
    store that is down fails every write: at each flush (every 10 s by default) and at each
    step logged, a warning line apiece for as long as it stays down. Thread-safe (the writer
    thread and the sampler's flushes both write).
    """

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id
        self._lock = threading.Lock()
        self._kinds: set[str] = set()
        self._more = 0
        self._last = ""

    def failed(self, error: Exception) -> None:
        """Say a failed write: the first of its kind as a warning, the others at debug level."""
        kind = type(error).__name__
        with self._lock:
            first = kind not in self._kinds
            self._kinds.add(kind)
            if not first:
                self._more += 1
                self._last = f"{kind}: {error}"
        if first:
            logger.warning(
                "greenprint: could not log figures to MLflow run %s: %s (said once; the same "
                "failure again at debug level, counted at the run's end)",
                self._run_id,
                error,
            )
        else:
            logger.debug(
                "greenprint: could not log figures to MLflow run %s: %s", self._run_id, error
            )

    def said(self) -> None:
        """At the run's end: how many more writes failed after each kind's warning, if any."""
        with self._lock:
            more, last, self._more = self._more, self._last, 0
        if more:
            logger.warning(
                "greenprint: %d more writes of figures to MLflow run %s failed (the last: %s)",
                more,
                self._run_id,
                last,
            )


def _log_metrics(
    client: Any,
    run_id: str,
    figures: dict[str, float],
    step: int,
    failures: _StoreFailures | None = None,
) -> None:
    """Log the figures at ``step`` (a store that fails is a warning, never an error).

    ``failures``: the logger's, which warns once per kind of error (:class:`_StoreFailures`).
    """
    from mlflow.entities import Metric

    now_ms = int(time.time() * 1000)
    metrics = [Metric(key, value, now_ms, step) for key, value in figures.items()]
    try:
        client.log_batch(run_id, metrics=metrics, synchronous=True)
    except Exception as e:  # a tracking store that fails must not stop training
        if failures is None:
            logger.warning("greenprint: could not log figures to MLflow run %s: %s", run_id, e)
        else:
            failures.failed(e)


def _wait(pending: list[Future[Any]], run_id: str) -> None:
    """Wait for queued logs to be written (each logs its own failure as a warning)."""
    for operation in pending:
        try:
            operation.result()
        except Exception as e:  # pragma: no cover - _log_metrics catches the store's errors
            logger.warning("greenprint: could not log figures to MLflow run %s: %s", run_id, e)


def _searched(client: Any, experiment: str, filter_string: str) -> Iterator[Any]:
    """The MLflow runs of ``experiment`` that ``filter_string`` finds, a page (1,000) at a time.

    A page is fetched when the one before has been read: a caller that stops early fetches no
    more.
    """
    token = None
    while True:
        page = client.search_runs(
            [experiment], filter_string=filter_string, max_results=1000, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def _tag_children_roles(client: Any, run_id: str, record: RunRecord, ledger: Ledger) -> None:
    """Tag the role a report infers on the MLflow runs of ``record``'s children, now known.

    A child that ended while this run (given no role) was running could not be told a trial
    (of a sweep) from a part (of a trial) then: this run's own role was not known. Now it is;
    the children given no role, whose MLflow runs (in this run's experiment, found by their
    ``greenprint.run_id`` tag) carry no ``greenprint.role`` yet, get it, marked inferred.
    A store that fails is logged as a warning.
    """
    from greenprint.analysis._roles import roles

    children = [
        c for c in ledger.runs(parent_id=record.id) if c.role is None and c.status != "running"
    ]
    own = record.role or inferred_role(record, ledger)
    if not children or own is None or "'" in record.study:
        return
    tree = [record, *children]
    parent = record.parent_id
    try:
        while parent is not None and parent not in {r.id for r in tree}:
            above = ledger.run(parent)
            tree.append(above)
            parent = above.parent_id
        read = roles(tree)
    except GreenprintError as e:
        logger.debug("greenprint: the roles of run %s's children: %s", record.id[:8], e)
        return
    wanted = {c.id: read[c.id][0] for c in children}
    try:
        experiment = client.get_run(run_id).info.experiment_id
        for each in _searched(client, experiment, f"tags.`greenprint.study` = '{record.study}'"):
            tags = each.data.tags
            role = wanted.pop(tags.get("greenprint.run_id", ""), None)
            if role is not None and "greenprint.role" not in tags:
                client.set_tag(each.info.run_id, "greenprint.role", role)
                client.set_tag(each.info.run_id, "greenprint.role_inferred", "true")
            if not wanted:
                break
    except Exception as e:  # a tracking store that fails must not fail the run's end
        logger.warning("greenprint: could not tag the roles of run %s's children: %s", run_id, e)


def _end_mlflow_run(client: Any, run_id: str, status: str) -> None:
    """End the MLflow run, if still running, as its greenprint run ended: failed or interrupted.

    ``interrupted`` is MLflow's ``KILLED``, ``failed`` its ``FAILED``; any other status leaves
    the MLflow run to its owner (``mlflow.end_run()``, the end of ``with mlflow.start_run()``).
    A job killed by its scheduler (SIGTERM's default action) runs no exit hook of MLflow's, and
    its MLflow run stayed ``RUNNING`` for good. While this process's runs are ended together
    (SIGTERM, an uncaught exception, the interpreter's exit) and the MLflow run is this thread's
    active one, it is ended through ``mlflow.end_run``, which takes it off MLflow's stack of
    active runs: MLflow's exit hook, after a SIGTERM handler of the user's that exits, marked
    it ``FINISHED``, and the end of its ``with`` block ``FAILED``. A run already ended (by its
    owner, before an outer greenprint run ended) keeps its status. A store that fails is logged
    as a warning.
    """
    from greenprint._lifecycle import registry

    ended_as = _MLFLOW_STATUS.get(status)
    if ended_as is None:
        return
    try:
        if client.get_run(run_id).info.status != "RUNNING":
            return
        active = _mlflow.active_run()
        ending = registry.ending_wait_left(0.0) is not None  # the process's runs ended together
        if ending and active is not None and active.info.run_id == run_id:
            _mlflow.end_run(ended_as)  # off MLflow's stack: its exit hook leaves it as it is
        else:
            client.set_terminated(run_id, ended_as)
    except Exception as e:  # a tracking store that fails must not fail the run's end
        logger.warning("greenprint: could not end MLflow run %s as %s: %s", run_id, ended_as, e)


def _tag_role(client: Any, run_id: str, role: str) -> None:
    """Tag the role a report infers, known once a run above ended, unless tagged already.

    The run above may have tagged it first, from the ledger (:func:`_tag_children_roles`).
    """
    from mlflow.entities import RunTag

    if "greenprint.role" in client.get_run(run_id).data.tags:
        return
    tags = [RunTag("greenprint.role", role), RunTag("greenprint.role_inferred", "true")]
    client.log_batch(run_id, tags=tags, synchronous=True)


def _log_record(
    client: Any,
    run_id: str,
    record: RunRecord,
    *,
    step: int,
    quiet: bool = True,
    ledger: Ledger | None = None,
) -> bool:
    """Totals as metrics, provenance as tags, the record as ``greenprint/run.json``.

    ``ledger``: the run's, to tag the role a report infers for a run given none.

    Returns:
        Whether the run's role was tagged (``False``: given none, and not known yet).
    """
    from mlflow.entities import Metric, RunTag

    now_ms = int(time.time() * 1000)
    metrics = [Metric(k, v, now_ms, step) for k, v in total_figures(record).items()]
    named = provenance_tags(record, ledger=ledger)
    tags = [RunTag(k, v) for k, v in named.items()]
    try:
        client.log_batch(run_id, metrics=metrics, tags=tags, synchronous=True)
        client.log_dict(run_id, record_dict(record), f"{ARTIFACT_PATH}/run.json")
    except Exception as e:
        if not quiet:  # log_run, called by the user: say it plainly
            raise
        logger.warning(
            "greenprint: could not log run %s to MLflow run %s: %s", record.id[:8], run_id, e
        )
    return "greenprint.role" in named
