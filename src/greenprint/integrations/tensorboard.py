"""TensorBoard: a greenprint run's energy, CO2-eq, FPO and power as scalars and hparams.

``pip install 'greenprint[tensorboard]'``, then::

    from torch.utils.tensorboard import SummaryWriter
    import greenprint as gp
    from greenprint.integrations import tensorboard as gp_tensorboard

    with SummaryWriter("runs/resnet") as writer, gp.track("resnet", params={"lr": 0.1}) as run:
        gp_tensorboard.autolog(run, writer)
        train()

Any writer with torch's ``SummaryWriter`` methods works (``tensorboardX.SummaryWriter``,
Lightning's ``TensorBoardLogger.experiment``). What it writes, under ``greenprint/`` tags:

* while the run goes, at every greenprint flush (``flush_interval_s``, 10 s by default) from the
  run's sampler thread (the writer queues events; it is thread-safe): ``add_scalar`` of
  ``greenprint/energy_kwh`` and ``greenprint/emissions_kg`` (totals so far),
  ``greenprint/power_w`` (mean since the previous write), ``greenprint/cpu_energy_kwh``
  (``gpu_``, ``ram_``: each measured component) and ``greenprint/fpo`` when known, at steps
  0, 1, 2... with the wall time (TensorBoard's "relative" axis shows time). A run with no
  energy meter (``meters=[]``) writes no energy, CO2-eq or power scalar (unknown, never 0), and
  its provenance text says ``energy | unknown (no energy meter)``.
  ``logger.log(step=epoch)`` writes them now at your step (with ``every_flush=False``, only
  then);
* when the greenprint run ends (finished, failed, pruned or interrupted): the totals at the
  step after the last, ``greenprint/duration_s``, the provenance as the text
  ``greenprint/provenance``, and ``add_hparams`` with the run's params (or ``hparams=``) and
  its totals as the metrics, in the writer's own folder, so the HParams tab compares runs by
  their cost. The writer is flushed.
* the run's role, as the report reads it: the text ``greenprint/role`` (``trial``, or
  ``trial (inferred)`` for a run given no role, the role the report infers, as MLflow's
  ``greenprint.role_inferred`` tag says) and, beside the run's params, the hparam
  ``greenprint/role``, so the HParams tab can keep the trials alone. A run given no role
  inside a run given none that is still going (the trials of ``with gp.track("search"):``)
  cannot be told a trial from a part at its end: its ``greenprint/role`` text is written when
  that outer run ends (the writer, even closed, writes it to a new event file in its folder),
  without the hparam; give the search ``role="sweep"`` to have both at each trial's end.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError
from greenprint._imports import require
from greenprint.integrations._dl import plain_params
from greenprint.integrations._loggers import (
    StepFigures,
    check_running,
    provenance_tags,
    role_when_known,
    total_figures,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord
    from greenprint.ledger import Ledger
    from greenprint.tracking import Run

__all__ = ["ROLE_TAG", "TensorBoardLogger", "autolog"]

#: The text tag and hparam of the run's role (given, or inferred: see the module).
ROLE_TAG = "greenprint/role"

logger = logging.getLogger(__name__)

_PURPOSE = "greenprint.integrations.tensorboard"
require("tensorboard", extra="tensorboard", purpose=_PURPOSE)


def autolog(
    run: Run,
    writer: Any,
    *,
    every_flush: bool = True,
    hparams: Mapping[str, Any] | None = None,
) -> TensorBoardLogger:
    """Follow a running greenprint run in a TensorBoard writer until it ends.

    Args:
        run: the running greenprint run (``with gp.track(...) as run``).
        writer: a ``SummaryWriter`` (torch's or tensorboardX's).
        every_flush: write the figures at every greenprint flush (steps 0, 1, 2...); ``False``
            writes them only when you call :meth:`TensorBoardLogger.log`.
        hparams: the hyper-parameters for ``add_hparams``; default the run's ``params``
            (numbers, text and bools as they are, anything else as text).

    Returns:
        The :class:`TensorBoardLogger`, whose :meth:`~TensorBoardLogger.log` writes now.

    Raises:
        ConfigError: ``run`` is not a running greenprint run, ``writer`` is not a summary
            writer, or ``hparams`` is not a mapping.
    """
    return TensorBoardLogger(run, writer, every_flush=every_flush, hparams=hparams)


class TensorBoardLogger:
    """Writes a greenprint run's figures with one summary writer; made by :func:`autolog`."""

    def __init__(
        self,
        run: Run,
        writer: Any,
        *,
        every_flush: bool = True,
        hparams: Mapping[str, Any] | None = None,
    ) -> None:
        check_running(run, "greenprint.integrations.tensorboard.autolog")
        missing = [
            m for m in ("add_scalar", "add_text", "add_hparams", "flush") if not hasattr(writer, m)
        ]
        if missing:
            raise ConfigError(
                "writer must be a TensorBoard SummaryWriter (torch.utils.tensorboard or "
                f"tensorboardX), not {type(writer).__name__} (no {', '.join(missing)})"
            )
        if not isinstance(every_flush, bool):
            raise ConfigError(f"every_flush must be True or False, not {every_flush!r}")
        if hparams is not None and not isinstance(hparams, Mapping):
            raise ConfigError(f"hparams must be a mapping, not {type(hparams).__name__}")
        self.writer = writer
        self._run = run
        self._hparams = None if hparams is None else plain_params(hparams)
        self._figures = StepFigures(run)
        self._lock = threading.Lock()
        self._every_flush = every_flush
        self._next_step = 0  # after every step written so far
        self._ended = False
        run.add_listener(self._on_event)

    def log(self, step: int | None = None) -> dict[str, float]:
        """Write the figures so far now, at ``step`` (default: the step after the last written).

        The meters are read first, so the figures are current (e.g. at an epoch's end).

        Returns:
            The figures written, by tag.

        Raises:
            ConfigError: ``step`` is not a non-negative integer, or the run has ended.
        """
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise ConfigError(f"step must be a non-negative integer, not {step!r}")
        if self._ended:
            raise ConfigError("the greenprint run has ended; its totals are written already")
        return self._write(step, fresh=True)

    def _write(self, step: int | None, *, fresh: bool) -> dict[str, float]:
        with self._lock:
            if step is None:
                step = self._next_step
            self._next_step = max(self._next_step, step + 1)
            figures = self._figures.read(fresh=fresh)
            now = time.time()
            for tag, value in figures.items():
                self.writer.add_scalar(tag, value, step, walltime=now)
        return figures

    def _on_event(self, run: Run, event: str) -> None:
        if event == "flush" and self._every_flush and not self._ended:
            self._write(None, fresh=False)
        elif event == "stop" and not self._ended:
            self._ended = True
            with self._lock:
                record = run.record
                step = self._next_step
                if not self._write_totals(record, step, run.ledger):
                    role_when_known(run, lambda role: self._write_role(role, step))

    def _write_role(self, role: str, step: int) -> None:
        """The role a report infers, known once a run above this one ended (text only)."""
        with self._lock:
            self.writer.add_text(ROLE_TAG, f"{role} (inferred)", step)
            self.writer.flush()

    def _write_totals(self, record: RunRecord, step: int, ledger: Ledger | None) -> bool:
        """Write the run's totals, provenance and role; whether its role was known."""
        totals = total_figures(record)
        tags = provenance_tags(record, ledger=ledger)
        lines = ["| what | source |", "| --- | --- |"]
        lines += [f"| {k.removeprefix('greenprint.')} | {_cell(v)} |" for k, v in tags.items()]
        self.writer.add_text("greenprint/provenance", "\n".join(lines), step)
        role = tags.get("greenprint.role")
        if role is not None:
            inferred = " (inferred)" if tags.get("greenprint.role_inferred") == "true" else ""
            self.writer.add_text(ROLE_TAG, role + inferred, step)
        params = self._hparams if self._hparams is not None else plain_params(record.params)
        if params and role is not None:
            params = {**params, ROLE_TAG: role}
        if params:
            if not self._write_hparams(params, totals, step, record.status):
                # the writer's own add_hparams (a session that reads "success" whatever the
                # run's status), its scalars the totals, in the writer's folder (".")
                name = "run_name" if "run_name" in _parameters(self.writer.add_hparams) else "name"
                self.writer.add_hparams(params, totals, **{name: ".", "global_step": step})
        else:
            now = time.time()
            for tag, value in totals.items():
                self.writer.add_scalar(tag, value, step, walltime=now)
        self.writer.flush()
        return role is not None

    def _write_hparams(
        self, params: Mapping[str, Any], totals: Mapping[str, float], step: int, status: str
    ) -> bool:
        """The run as an HParams session, with its status, in the writer's own event file.

        ``add_hparams`` (torch's and tensorboardX's) ends every session ``STATUS_SUCCESS``, a
        failed or interrupted run too (the HParams tab filters by it), and writes it through a
        second writer on the same folder: tensorboardX names an event file by the second, so a
        run of less than a second lost its first file (its totals and hparams) to it. The same
        summaries are made here, the session's end given the run's status, and written by the
        writer itself. ``False`` where the writer's library has no such summaries (then
        ``add_hparams`` is called as before).
        """
        try:
            if type(self.writer).__module__.startswith("tensorboardX"):
                from tensorboardX.proto import api_pb2
                from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
                from tensorboardX.summary import hparams
            else:
                from tensorboard.plugins.hparams import api_pb2
                from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
                from torch.utils.tensorboard.summary import hparams
            file_writer = self.writer._get_file_writer()
        except (ImportError, AttributeError):  # pragma: no cover - another writer
            return False
        experiment, start, end = hparams(dict(params), dict(totals))
        data = HParamsPluginData()
        data.ParseFromString(end.value[0].metadata.plugin_data.content)
        data.session_end_info.status = _SESSION_STATUS.get(status, api_pb2.STATUS_UNKNOWN)
        end.value[0].metadata.plugin_data.content = data.SerializeToString()
        for summary in (experiment, start, end):
            file_writer.add_summary(summary, step)
        now = time.time()
        for tag, value in totals.items():
            self.writer.add_scalar(tag, value, step, walltime=now)
        return True


#: A run's status as an HParams session's (tensorboard's api.proto: 1 success, 2 failure,
#: 0 unknown: an interrupted or lost run was stopped, neither succeeded nor failed).
_SESSION_STATUS = {"finished": 1, "failed": 2}


def _cell(value: str) -> str:
    """A value for a cell of the provenance's Markdown table, on one line, ``|`` escaped.

    A ``|`` or a line break in a run's name ended its row early.
    """
    return " ".join(value.splitlines()).replace("|", "\\|")


def _parameters(fn: Any) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return frozenset()
