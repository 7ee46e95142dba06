"""The records a ledger holds: runs, their metric time series and their power samples.

These frozen dataclasses are the one shape shared by the tracker (which writes them), the ledger
(which stores them) and the analysis and reports (which read them). Units are in the names.

Energy conventions:
    * ``energy_cpu_kwh``, ``energy_gpu_kwh``, ``energy_ram_kwh``: IT energy of each component,
      attributed to the tracked process tree (``scope="process"``) or to the whole machine
      (``scope="machine"``); ``None`` means "not measured", never 0.
    * ``energy_kwh``: their sum (IT energy, before PUE).
    * ``emissions_kg``: ``energy_kwh * pue * intensity`` integrated over the run (sample by sample
      when the intensity is an hourly series), in kg CO2-eq.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from greenprint._exceptions import ConfigError
from greenprint._suggest import did_you_mean
from greenprint._units import j_to_kwh

__all__ = [
    "CUT_SHORT_STATUSES",
    "RUN_ROLES",
    "RUN_STATUSES",
    "MetricPoint",
    "PowerSample",
    "RunRecord",
    "RunRole",
    "RunStatus",
    "check_role",
    "check_statuses",
]

RunStatus = Literal["running", "finished", "failed", "interrupted", "pruned", "lost"]
#: The statuses of :data:`RunStatus`, in order (the ledger's check and the CLI's choices).
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
#: The statuses of a run cut short before its work was done: by an error, an interruption, or a
#: process that died without a final write (read ``lost``).
CUT_SHORT_STATUSES: tuple[str, ...] = ("failed", "interrupted", "lost")


def check_statuses(statuses: object, name: str = "statuses") -> frozenset[str] | None:
    """The run statuses an analysis or :meth:`~greenprint.Ledger.runs` keeps, checked.

    ``None`` keeps all. A single status may be given as a string (``statuses="finished"``):
    ``set("finished")`` was the set of its letters, which kept no run, and the analysis then
    said no run had a size or a score. The ledger's read had a check of its own, which gave
    ``status=5`` a TypeError and a misspelt status no suggestion.

    Raises:
        ConfigError: not a status or a sequence of them, or a status no run can have (the
            message lists the known ones and suggests the nearest).
    """
    if statuses is None:
        return None
    if isinstance(statuses, str):
        statuses = (statuses,)
    try:
        wanted = list(statuses)  # type: ignore[call-overload]
    except TypeError:
        wanted = [statuses]
    odd = [s for s in wanted if not isinstance(s, str)]
    if odd:
        raise ConfigError(f"{name} must be run statuses such as ('finished',), not {statuses!r}")
    unknown = sorted(set(wanted) - set(RUN_STATUSES))
    if unknown:
        raise ConfigError(
            f"unknown run status {', '.join(map(repr, unknown))} in {name}"
            f"{did_you_mean(unknown, RUN_STATUSES)}; known: {', '.join(RUN_STATUSES)}"
        )
    return frozenset(wanted)


RunRole = Literal["trial", "part", "baseline", "final", "learning-curve", "sweep", "greener"]
#: What a run is in its study (see ``greenprint.analysis.resolve_roles``):
#:
#: * ``trial``: one configuration tried (its children are its parts);
#: * ``part``: a fold, worker or sub-step of another run (its cost is inside its parent's);
#: * ``baseline``: a reference model;
#: * ``final``: the model reported (e.g. retrained on all the data);
#: * ``learning-curve``: a run on a subsample of the training set;
#: * ``sweep``: a container whose children are trials;
#: * ``greener``: work of :mod:`greenprint.greener` (a comparison of greener variants, each
#:   variant's measurement, distillation and fine-tuning runs).
RUN_ROLES: tuple[str, ...] = get_args(RunRole)
#: A run of each role as a sentence counts it, singular (``count_of(n, ROLE_NOUNS[role])``:
#: "2 trials", "1 final run"): a role name alone is no noun ("2 learning-curve").
ROLE_NOUNS: dict[str, str] = {
    "trial": "trial",
    "part": "part",
    "baseline": "baseline",
    "final": "final run",
    "learning-curve": "learning-curve run",
    "sweep": "sweep",
    "greener": "greener run",
}


def check_role(role: object) -> str | None:
    """``role`` if it is one of :data:`RUN_ROLES` (or ``None``: not given), else ConfigError.

    Raises:
        ConfigError: an unknown role (the message names the nearest role, if one is close, and
            lists the roles).
    """
    if role is None or (isinstance(role, str) and role in RUN_ROLES):
        return role
    from greenprint._suggest import nearest, suggestion

    hint = suggestion(nearest(role, RUN_ROLES) if isinstance(role, str) else [])
    roles = ", ".join(RUN_ROLES)
    if hint:  # "...; did you mean 'trial'? Roles: ..." (one clause each, no "?;")
        raise ConfigError(f"unknown run role {role!r}{hint} Roles: {roles}")
    raise ConfigError(f"unknown run role {role!r}; roles: {roles}")


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One logged value of one metric.

    Attributes:
        name: metric name, e.g. ``"accuracy"``.
        value: the value (float; NaN allowed and kept).
        step: the step (epoch, iteration) it belongs to, or ``None``.
        time: when it was logged, seconds since the Unix epoch.
    """

    name: str
    value: float
    step: int | None = None
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class PowerSample:
    """Average power of each component over one sampling interval ``[t0, t1]``.

    Attributes:
        t0: interval start, seconds since the Unix epoch.
        t1: interval end, seconds since the Unix epoch.
        cpu_w: mean CPU power in W, ``None`` if not measured.
        gpu_w: mean GPU power in W, ``None`` if not measured.
        ram_w: mean RAM power in W, ``None`` if not measured.
        intensity_g_per_kwh: grid intensity applied to this interval (g CO2-eq/kWh).
    """

    t0: float
    t1: float
    cpu_w: float | None = None
    gpu_w: float | None = None
    ram_w: float | None = None
    intensity_g_per_kwh: float | None = None

    @property
    def power_w(self) -> float:
        """Total mean power in W over the interval (unmeasured components count as 0)."""
        return sum(p for p in (self.cpu_w, self.gpu_w, self.ram_w) if p is not None)

    @property
    def energy_kwh(self) -> float:
        """IT energy of the interval in kWh."""
        return j_to_kwh(self.power_w * max(self.t1 - self.t0, 0.0))


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything a ledger knows about one run (a training job, a trial, a baseline...).

    Times are seconds since the Unix epoch (UTC); durations in s; energy in kWh; emissions in kg
    CO2-eq; intensity in g CO2-eq/kWh; FPO as an integer count of floating-point operations.
    """

    id: str
    name: str
    study: str = "default"
    parent_id: str | None = None
    status: str = "running"
    started_at: float = 0.0
    ended_at: float | None = None
    heartbeat_at: float | None = None
    flush_interval_s: float = 10.0
    duration_s: float = 0.0
    # where and what
    host: str = ""
    command: str = ""
    git_commit: str | None = None
    git_dirty: bool | None = None
    python_version: str = ""
    greenprint_version: str = ""
    torch_version: str | None = None
    hardware: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # what was trained
    params: dict[str, Any] = field(default_factory=dict)
    dataset_size: int | None = None
    fpo: int | None = None
    param_count: int | None = None
    # cost
    scope: str = "process"
    energy_cpu_kwh: float | None = None
    energy_gpu_kwh: float | None = None
    energy_ram_kwh: float | None = None
    energy_kwh: float = 0.0
    machine_energy_kwh: float | None = None
    pue: float = 1.0
    intensity_g_per_kwh: float | None = None
    intensity_source: str = ""
    emissions_kg: float = 0.0
    provenance: dict[str, str] = field(default_factory=dict)
    # results
    metrics: tuple[MetricPoint, ...] = ()
    error: str | None = None
    # what the run is in its study (one of RUN_ROLES); None: not given, inferred when read
    role: str | None = None
    # distributed jobs (see greenprint._jobs): the job key grouping a job's runs (None: not in
    # a job), the node's rank in it and this process's rank on its node, whether this run
    # meters its node for the job (the machine, once), and whether the run's measurement is
    # inside its parent's (same process, or the parent's process tree on the same host);
    # None for runs recorded before schema 4 (read as inside, as they were)
    job_id: str | None = None
    node_rank: int | None = None
    local_rank: int | None = None
    node_meter: bool | None = None
    contained: bool | None = None

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text display: one line, as a :class:`~greenprint.Run` reads.

        ``led.runs(study=...)`` in a notebook cell showed every field of every record (3.4 kB
        each, most of it the hardware); ``repr`` still gives them all.
        """
        from greenprint._format import format_emissions, format_energy, run_time_text

        if self.energy_recorded:
            cost = f"{format_energy(self.energy_kwh)}, {format_emissions(self.emissions_kg)}"
        else:  # no meter: unknown, never "0 mWh"
            cost = "energy and CO2-eq unknown (no energy meter)"
        role = f" role={self.role!r}" if self.role else ""
        printer.text(
            f"<RunRecord {self.name!r} study={self.study!r} {self.status}{role} {cost}, "
            f"{run_time_text(self.duration_s, unknown='run time unknown')}, id {self.id[:8]}>"
        )

    @property
    def energy_recorded(self) -> bool:
        """Whether the run recorded its energy: ``False`` for a run that had no meter.

        A run tracked with ``meters=[]``, or built through the ledger API without an energy,
        holds ``energy_kwh`` 0.0 and no component: its energy (and so its CO2-eq) is unknown,
        never 0 kWh. A metered run that drew next to nothing records its components (0.0
        included), and a record that gives ``energy_kwh`` alone recorded it.
        """
        return (
            self.energy_kwh != 0.0
            or self.energy_cpu_kwh is not None
            or self.energy_gpu_kwh is not None
            or self.energy_ram_kwh is not None
        )

    @property
    def energy_by_component(self) -> dict[str, float]:
        """``{"cpu": kWh, "gpu": kWh, "ram": kWh}`` for the components that were measured."""
        out = {}
        for key, value in (
            ("cpu", self.energy_cpu_kwh),
            ("gpu", self.energy_gpu_kwh),
            ("ram", self.energy_ram_kwh),
        ):
            if value is not None:
                out[key] = value
        return out

    def metric(self, name: str, *, mode: Literal["last", "max", "min"] = "last") -> float | None:
        """The run's value of a metric: the last logged, or the max/min over finite values.

        Returns ``None`` when the metric was never logged (or has no finite value for max/min).
        """
        values = [p.value for p in self.metrics if p.name == name]
        if not values:
            return None
        if mode == "last":
            return values[-1]
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return None
        return max(finite) if mode == "max" else min(finite)

    @property
    def metric_names(self) -> list[str]:
        """Names of the metrics logged, in first-logged order."""
        return list(dict.fromkeys(p.name for p in self.metrics))
