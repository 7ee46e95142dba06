"""Weights & Biases: a greenprint run's energy, CO2-eq, FPO and power in the W&B run beside it.

``pip install 'greenprint[wandb]'``, then::

    import wandb
    import greenprint as gp
    from greenprint.integrations import wandb as gp_wandb

    with wandb.init(project="cifar") as wb, gp.track("resnet", ledger="gp.db") as run:
        logger = gp_wandb.autolog(run)
        for epoch in range(epochs):
            loss = train_one_epoch()
            wb.log({"loss": loss, **logger.figures()})   # the figures in your own row
        # or: logger.log() logs them as wandb.log would

What it logs, under ``greenprint/`` names:

* at your steps: :meth:`WandbLogger.figures` reads ``greenprint/energy_kwh`` and
  ``greenprint/emissions_kg`` (totals so far), ``greenprint/power_w`` (mean since the previous
  read), ``greenprint/cpu_energy_kwh`` (``gpu_``, ``ram_``: each measured component) and
  ``greenprint/fpo`` when known, for you to add to your own ``wandb.log`` call (a run with no
  energy meter, ``meters=[]``, has no energy, CO2-eq or power figure, here or in the summary,
  whose ``greenprint/energy`` reads ``unknown (no energy meter)``);
  :meth:`WandbLogger.log` logs them itself and takes ``step`` and ``commit`` as ``wandb.log``
  does. Nothing is logged from a background thread: W&B's history steps are yours, and a log
  from another thread would move them (W&B drops data logged at a step lower than its
  current one);
* when the greenprint run ends (finished, failed, pruned or interrupted): the totals in a last
  history row and in ``run.summary`` (the same names plus ``greenprint/duration_s``; the
  summary's ``greenprint/power_w`` is the mean over the run), who the run is and where
  its figures come from (``greenprint/run_id``, ``greenprint/status``, ``greenprint/role``,
  ``greenprint/provenance`` with ``cpu`` = ``rapl`` or ``estimate:tdp``...), and the run record
  as the file ``greenprint-run.json`` in the W&B run's files. ``greenprint/role`` is the role
  given, else the one a report infers (a trial, a sweep, a part), with
  ``greenprint/role_inferred`` true, as MLflow's ``greenprint.role_inferred`` tag: W&B's runs
  table can then keep the trials alone. A run given no role inside a run given none that is
  still going (the trials of ``with gp.track("search"):``) cannot be told a trial from a part
  at its end, when its W&B run is written: it gets no ``greenprint/role`` (give the search
  ``role="sweep"``, or :func:`log_run` it once the search has ended).

End the greenprint run before the W&B run (``gp.track`` inside ``wandb.init``), or its totals
come too late for W&B: a warning then says so. :func:`log_run` logs a run that has ended (or a
record read from a ledger) into a W&B run. Offline mode (``WANDB_MODE=offline``) works the same;
``wandb sync`` uploads the figures with the rest.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError
from greenprint._imports import require
from greenprint.integrations._loggers import (
    FIGURE_PREFIX,
    StepFigures,
    check_record,
    check_running,
    provenance_tags,
    record_dict,
    total_figures,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord
    from greenprint.ledger import Ledger
    from greenprint.tracking import Run

__all__ = ["RECORD_FILE", "WandbLogger", "autolog", "log_run"]

logger = logging.getLogger(__name__)

_PURPOSE = "greenprint.integrations.wandb"
_wandb = require("wandb", extra="wandb", purpose=_PURPOSE)

#: The run record's file name in the W&B run's files.
RECORD_FILE = "greenprint-run.json"


def autolog(run: Run, wandb_run: Any = None) -> WandbLogger:
    """Follow a running greenprint run in a W&B run until it ends.

    Args:
        run: the running greenprint run (``with gp.track(...) as run``).
        wandb_run: the W&B run (what ``wandb.init()`` returned); default the current one,
            ``wandb.run``, or, when that is not set (``wandb.init(reinit="create_new")``), the
            one W&B run active in this process.

    Returns:
        The :class:`WandbLogger`: :meth:`~WandbLogger.figures` and :meth:`~WandbLogger.log`.

    Raises:
        ConfigError: ``run`` is not a running greenprint run, or there is no W&B run (or
            ``wandb_run`` is not one, or it has finished, or it is not given and several W&B
            runs are active).
    """
    return WandbLogger(run, wandb_run)


class WandbLogger:
    """Logs a greenprint run's figures into one W&B run; made by :func:`autolog`."""

    def __init__(self, run: Run, wandb_run: Any = None) -> None:
        check_running(run, "greenprint.integrations.wandb.autolog")
        self.wandb_run = _wandb_run(wandb_run)
        self._run = run
        self._figures = StepFigures(run)
        self._ended = False
        self._lock = threading.Lock()
        run.add_listener(self._on_event)

    def figures(self) -> dict[str, float]:
        """The figures so far, for your own ``wandb.log`` call; the meters are read first."""
        return self._figures.read(fresh=True)

    def log(self, step: int | None = None, commit: bool | None = None) -> dict[str, float]:
        """Log :meth:`figures` now through the W&B run's ``log``, with its ``step`` and ``commit``.

        Returns:
            The figures logged, by name.

        Raises:
            ConfigError: the greenprint run has ended.
        """
        if self._ended:
            raise ConfigError("the greenprint run has ended; its totals are in run.summary")
        figures = self.figures()
        self.wandb_run.log(figures, step=step, commit=commit)
        return figures

    def _on_event(self, run: Run, event: str) -> None:
        if event != "stop":
            return
        with self._lock:
            if self._ended:
                return
            self._ended = True
        if getattr(self.wandb_run, "_is_finished", False):
            logger.warning(
                "greenprint: W&B run %s finished before greenprint run %s ended; its totals "
                "are not in W&B (end the greenprint run first, or use log_run(run) in a new "
                "W&B run)",
                self.wandb_run.id,
                run.id[:8],
            )
            return
        try:
            _log_record(self.wandb_run, run.record, ledger=run.ledger)
        except Exception as e:  # W&B failing must not break the end of the user's run
            logger.warning("greenprint: could not log run %s to W&B: %s", run.id[:8], e)


def log_run(run: Run | RunRecord, wandb_run: Any = None) -> None:
    """Log an ended greenprint run (or a ledger's record of one) into a W&B run.

    Its totals and provenance into ``run.summary`` and its record as ``greenprint-run.json``,
    as :func:`autolog` does when a run ends. A run given no role gets the one a report infers
    (``greenprint/role_inferred``) when it is a :class:`~greenprint.Run` (its ledger says
    where it stands); a record is not.

    Args:
        run: a :class:`~greenprint.Run` that has ended, or a record from
            :meth:`greenprint.Ledger.runs`.
        wandb_run: the W&B run; default ``wandb.run``, else the one active W&B run.

    Raises:
        ConfigError: not a run or record, a run still going, or no W&B run.
    """
    record = check_record(run, "greenprint.integrations.wandb.log_run")
    ledger = None if run is record else getattr(run, "ledger", None)  # a Run: its ledger
    _log_record(_wandb_run(wandb_run), record, ledger=ledger)


def _wandb_run(wandb_run: Any) -> Any:
    if wandb_run is None:
        wandb_run = _wandb.run
    if wandb_run is None:  # wandb.init(reinit="create_new") does not set wandb.run
        active = _active_runs()
        if len(active) > 1:
            raise ConfigError(
                f"{len(active)} W&B runs are active (wandb.init(reinit='create_new')) and "
                "wandb.run is none of them: pass the one to follow as wandb_run="
            )
        if not active:
            raise ConfigError(
                "no W&B run: call wandb.init() first, or pass the run it returned as wandb_run="
            )
        wandb_run = active[0]
    if not isinstance(wandb_run, _wandb.Run):
        raise ConfigError(
            f"wandb_run must be a W&B run (from wandb.init()), not {type(wandb_run).__name__}"
        )
    if getattr(wandb_run, "_is_finished", False):
        raise ConfigError(f"W&B run {wandb_run.id} has finished; start one with wandb.init()")
    return wandb_run


def _active_runs() -> list[Any]:
    """This process's W&B runs not finished yet, oldest first (``[]``: none, or not known).

    ``wandb.init(reinit="create_new")`` keeps its run out of ``wandb.run``; W&B lists it in its
    setup singleton (``wandb.sdk.wandb_setup``, not a public API: read defensively).
    """
    import os

    from wandb.sdk import wandb_setup

    setup = getattr(wandb_setup, "_singleton", None)
    if setup is None or getattr(setup, "_pid", os.getpid()) != os.getpid():
        return []  # W&B not set up in this process (a fork's singleton is its parent's)
    lock = getattr(setup, "_active_runs_lock", None)
    try:
        if lock is None:
            runs = list(getattr(setup, "_active_runs", ()))
        else:
            with lock:
                runs = list(getattr(setup, "_active_runs", ()))
    except TypeError:  # pragma: no cover - another W&B version's layout
        return []
    return [r for r in runs if isinstance(r, _wandb.Run) and not getattr(r, "_is_finished", False)]


def _log_record(wandb_run: Any, record: RunRecord, *, ledger: Ledger | None = None) -> None:
    """Totals in a last row and the summary, who the run is, its record as a file.

    ``ledger``: the run's, to give a run given no role the one a report infers.
    """
    totals = total_figures(record)
    # a last history row with the totals: it commits a row still open (W&B would otherwise
    # write that row's figures over the summary's totals when the W&B run finishes)
    skip = {FIGURE_PREFIX + "power_w", FIGURE_PREFIX + "duration_s"}
    wandb_run.log({k: v for k, v in totals.items() if k not in skip})
    summary: dict[str, Any] = dict(totals)
    tags = provenance_tags(record, prefix="", ledger=ledger)
    provenance = {k.partition(".")[2]: v for k, v in tags.items() if k.startswith("provenance.")}
    # numbers stay numbers (W&B's runs table filters and plots them), the rest as tagged
    numbers = {"pue": record.pue, "intensity_g_per_kwh": record.intensity_g_per_kwh}
    for key, value in tags.items():
        if key in numbers:
            summary[FIGURE_PREFIX + key] = numbers[key]
        elif not key.startswith("provenance."):
            summary[FIGURE_PREFIX + key] = value == "true" if key == "role_inferred" else value
    summary[FIGURE_PREFIX + "provenance"] = provenance
    wandb_run.summary.update(summary)
    path = Path(wandb_run.dir) / RECORD_FILE
    path.write_text(json.dumps(record_dict(record), indent=2, allow_nan=False), encoding="utf-8")
