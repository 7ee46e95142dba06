"""What the experiment-logger integrations (MLflow, W&B, TensorBoard) share.

A logger integration follows a running :class:`~greenprint.Run`: it logs the run's figures so
far at steps while the run goes (:class:`StepFigures`), and when the run has stopped its totals,
its provenance and its record (:func:`total_figures`, :func:`provenance_tags`,
:func:`record_dict`). The names are the same in every logger and the same as the Lightning and
Hugging Face callbacks': ``greenprint/energy_kwh``, ``greenprint/emissions_kg``,
``greenprint/power_w``, ``greenprint/fpo``, ``greenprint/cpu_energy_kwh``... (the ``/`` groups
them in each UI, as MLflow's own ``system/`` metrics are grouped).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import ConfigError
from greenprint._format import json_safe
from greenprint._units import JOULES_PER_KWH
from greenprint.integrations._dl import FIGURE_PREFIX, LiveFigures, refresh

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord
    from greenprint.ledger import Ledger
    from greenprint.tracking import Run

__all__ = [
    "ENERGY_UNKNOWN",
    "FIGURE_PREFIX",
    "StepFigures",
    "check_record",
    "check_running",
    "inferred_role",
    "provenance_tags",
    "record_dict",
    "role_when_known",
    "total_figures",
    "write_running_runs",
]

logger = logging.getLogger(__name__)

# the ``energy`` tag of a run that recorded no energy (its energy and CO2-eq metrics left out)
ENERGY_UNKNOWN = "unknown (no energy meter)"


def check_running(run: object, where: str) -> Run:
    """The run, if it is a :class:`~greenprint.Run` that is running.

    Raises:
        ConfigError: ``run`` is not a greenprint run, or it is not running (not started yet, or
            already stopped: log a stopped run with the module's ``log_run``).
    """
    from greenprint.tracking import Run

    if not isinstance(run, Run):
        raise ConfigError(
            f"{where} takes a running greenprint run (with gp.track(...) as run), "
            f"not {type(run).__name__}"
        )
    if run.status == "new":
        raise ConfigError(
            f"{where}: run {run.name!r} is not started; call it inside `with gp.track(...) as run:`"
        )
    if run.status != "running":
        raise ConfigError(
            f"{where}: run {run.name!r} has already ended ({run.status}); "
            "log a finished run with log_run(run)"
        )
    return run


def check_record(run: object, where: str) -> RunRecord:
    """The record of a stopped :class:`~greenprint.Run`, or a ledger's :class:`RunRecord`.

    Raises:
        ConfigError: anything else, or a run that has not ended.
    """
    from greenprint._records import RunRecord
    from greenprint.tracking import Run

    if isinstance(run, RunRecord):
        return run
    if isinstance(run, Run):
        if run.status in ("new", "running"):
            raise ConfigError(
                f"{where}: run {run.name!r} is {run.status}; log a run once it has ended "
                "(or follow a running one with autolog(run))"
            )
        return run.record
    raise ConfigError(
        f"{where} takes a greenprint Run that has ended or a RunRecord from a ledger, "
        f"not {type(run).__name__}"
    )


class StepFigures:
    """A running run's figures at a step: totals so far, mean power since the last step.

    Thread-safe: the sampler thread (at each flush) and the user's thread may both read it.

    Args:
        run: the running run.
    """

    def __init__(self, run: Run) -> None:
        self._run = run
        self._live = LiveFigures(run)
        self._lock = threading.Lock()

    def read(self, *, fresh: bool = False) -> dict[str, float]:
        """The figures under their ``greenprint/`` names.

        ``energy_kwh``, ``emissions_kg`` (so far), ``power_w`` (mean IT power since the last
        read), the energy of each measured component (``cpu_energy_kwh``...), and ``fpo`` when
        the run knows it (unknown FPO is left out, never logged as 0). A run with no energy
        meter has no energy, CO2-eq or power figure: unknown, left out, never logged as 0.

        Args:
            fresh: read the meters first (a step boundary in the user's code); a read at a
                flush uses the sample just taken.
        """
        if fresh:
            refresh(self._run)
        with self._lock:
            live = self._live.read()
        keys = ("energy_kwh", "emissions_kg", "power_w")  # none with no energy meter
        figures = {key: live[key] for key in keys if key in live}
        for component, kwh in sorted(self._run.energy_by_component.items()):
            figures[f"{component}_energy_kwh"] = kwh
        if self._run.fpo is not None:
            figures["fpo"] = float(self._run.fpo)
        return {FIGURE_PREFIX + key: value for key, value in figures.items()}


def total_figures(record: RunRecord) -> dict[str, float]:
    """A finished run's totals under their ``greenprint/`` names.

    ``energy_kwh``, ``emissions_kg``, ``duration_s``, ``power_w`` (mean IT power over the
    run), the energy of each measured component, and ``fpo`` when known. A run with no energy
    meter (:attr:`~greenprint.RunRecord.energy_recorded` false) has no energy, CO2-eq or
    power: unknown, left out, never 0 (its ``energy`` tag says so: :func:`provenance_tags`).
    """
    figures: dict[str, float] = {"duration_s": record.duration_s}
    if record.energy_recorded:
        figures["energy_kwh"] = record.energy_kwh
        figures["emissions_kg"] = record.emissions_kg
    if record.energy_recorded and record.duration_s > 0:
        figures["power_w"] = record.energy_kwh * JOULES_PER_KWH / record.duration_s
    for component, kwh in sorted(record.energy_by_component.items()):
        figures[f"{component}_energy_kwh"] = kwh
    if record.fpo is not None:
        figures["fpo"] = float(record.fpo)
    return {FIGURE_PREFIX + key: value for key, value in figures.items() if math.isfinite(value)}


def provenance_tags(
    record: RunRecord, *, prefix: str = "greenprint.", ledger: Ledger | None = None
) -> dict[str, str]:
    """Who the run is and where its figures come from, as text tags.

    ``run_id``, ``name``, ``study``, ``status``, ``role``, ``scope``, ``pue``,
    ``intensity_g_per_kwh``, ``version`` and ``provenance.<what>`` (``provenance.cpu`` is
    ``rapl`` or ``estimate:tdp``..., ``provenance.intensity`` the table row and year), and
    ``energy`` (``"unknown (no energy meter)"``) for a run that recorded no energy, whose
    energy and CO2-eq figures are left out.

    ``role`` is the one given; with none given, the role a report infers (see
    :func:`inferred_role`), with ``role_inferred`` ``"true"``, when ``ledger`` (the run's)
    is given and the role is known now; else no ``role`` tag.
    """
    tags = {
        "run_id": record.id,
        "name": record.name,
        "study": record.study,
        "status": record.status,
        "scope": record.scope,
        "pue": f"{record.pue:g}",
        "version": record.greenprint_version,
    }
    if record.role is not None:
        tags["role"] = record.role
    elif ledger is not None:
        role = inferred_role(record, ledger)
        if role is not None:
            tags["role"] = role
            tags["role_inferred"] = "true"
    if not record.energy_recorded:
        tags["energy"] = ENERGY_UNKNOWN
    if record.intensity_g_per_kwh is not None:
        tags["intensity_g_per_kwh"] = f"{record.intensity_g_per_kwh:g}"
    for what, source in sorted(record.provenance.items()):
        tags[f"provenance.{what}"] = str(source)
    return {prefix + key: value for key, value in tags.items()}


def inferred_role(record: RunRecord, ledger: Ledger) -> str | None:
    """The role a report will read for an ended run given none, if it is known now.

    The report infers it (:func:`greenprint.analysis.resolve_roles`) from the run's place:
    a top-level run is a trial, or a sweep when it has children and no score of its own; a
    run under a sweep is a trial, under any other run a part. That place is read from
    ``ledger``: the runs above this one and its children. ``None`` when it cannot be known
    yet: a run above it, given no role, is still running (its own children and score are not
    all there: a fold ending inside a running cross-validation could read as a sweep's
    trial), the run is still running, or the ledger cannot be read.
    """
    from greenprint._exceptions import GreenprintError
    from greenprint.analysis._roles import roles

    if record.status in ("new", "running"):
        return None
    tree = [record]
    seen = {record.id}
    try:
        parent = record.parent_id
        while parent is not None and parent not in seen:
            above = ledger.run(parent)
            if above.role is None and above.status in ("new", "running"):
                return None
            tree.append(above)
            seen.add(above.id)
            parent = above.parent_id
        tree.extend(r for r in ledger.runs(parent_id=record.id) if r.id not in seen)
        return roles(tree)[record.id][0]
    except GreenprintError as e:  # an unreadable ledger: no tag rather than a wrong one
        logger.debug("greenprint: the role of run %s is not known: %s", record.id[:8], e)
        return None


def role_when_known(run: Run, tag: Callable[[str], None]) -> bool:
    """Call ``tag(role)`` with the role a report infers for ``run`` once a run above it ends.

    For an ended run given no role whose role was not known at its end (:func:`inferred_role`:
    a run above it, given no role, still running: a trial of a search in ``with
    gp.track("search"):`` could be a sweep's trial or a trial's part). The nearest such run of
    this process (the run ``run`` was nested in, or one above it) gets a listener: when it
    stops, the role is read again from the ledger and given to ``tag`` (or waited for from the
    next run above). Nothing when the run has a role, no ledger, or no run of this process
    holds the answer back (a parent in another process: the role stays untagged).

    ``tag`` runs on the thread that stops that run; an error in it is logged as a warning.

    Returns:
        Whether a listener waits for the role.
    """
    from greenprint._exceptions import ConfigError, GreenprintError

    ledger = run.ledger
    if ledger is None or run.role is not None:
        return False
    above = run._parent_run
    while above is not None and (above.role is not None or above.status not in ("new", "running")):
        above = above._parent_run
    if above is None:
        return False

    def on_event(_: Run, event: str) -> None:
        if event != "stop":
            return
        try:
            record = ledger.run(run.id)
        except GreenprintError as e:
            logger.debug("greenprint: the role of run %s is not known: %s", run.id[:8], e)
            return
        role = inferred_role(record, ledger)
        if role is None:
            role_when_known(run, tag)  # a run further up still holds it back
            return
        try:
            tag(role)
        except Exception as e:  # a logger that fails must not fail the end of the run above
            logger.warning("greenprint: could not tag the role of run %s: %s", run.id[:8], e)

    try:
        above.add_listener(on_event)
    except ConfigError:  # it ended meanwhile, on another thread: its role is there to read
        on_event(above, "stop")
        return False
    return True


def write_running_runs(ledger: Ledger) -> int:
    """Write the cost so far of this process's running runs that write to ``ledger``.

    A run writes its row at each flush (``flush_interval_s``, 10 s by default); a report read
    between two flushes would take a running run's cost at the last one, less than its
    children's that ended since (a search's report logged from inside the search). Each such
    run reads its meters and writes its row now, as its sampler does at a flush.

    Returns:
        How many runs were written.
    """
    from greenprint.tracking import active_runs

    target = ledger.url_unmasked
    written = 0
    for run in active_runs():
        own = run._ledger  # opened when the run started; None: an in-memory run
        if own is None or own.url_unmasked != target:
            continue
        refresh(run)
        written += run._flush(quiet=True)
    return written


def record_dict(record: RunRecord) -> dict[str, Any]:
    """The run's record as plain JSON (NaN and infinities as strings), metrics included."""
    out = dataclasses.asdict(record)
    out["metrics"] = [dataclasses.asdict(point) for point in record.metrics]
    return json_safe(out)
