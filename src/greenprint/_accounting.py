"""Turn cumulative meter readings into a run's cost: energy per component, CO2-eq, samples.

Each reading interval ``[t0, t1]`` adds the energy the meters report for it; its CO2-eq is
``energy x PUE x intensity`` integrated over the interval (an hourly series is split at its
boundaries by :meth:`~greenprint.carbon.Intensity.emissions_g`), and it becomes one
:class:`~greenprint.PowerSample`. Not thread-safe: the owning run holds its lock.

A run of scope ``"process"`` counts the energy its meters attribute to its process tree. A meter
that cannot attribute (a GPU listing no process of this PID namespace) gives the whole
domain's energy (every metered GPU's, the whole machine's). One that stops attributing mid-run
(a GPU's process list failing for good) is counted on from its last attributed figure with the
whole domain's energy of each later interval, never the whole domain's since the start; the
run's provenance then says so for that component (:meth:`CostAccount.annotated`): ``... (this
process tree's share for the first 12.0 s of 30.0 s, 25% of the gpu energy recorded; the
whole device's after)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from greenprint._format import format_duration
from greenprint._provenance import Provenance
from greenprint._records import PowerSample
from greenprint._types import IntensityCurve
from greenprint._units import g_to_kg, j_to_kwh
from greenprint.meters._base import MeterReading

__all__ = ["COMPONENT_FIELDS", "CostAccount"]

#: component -> RunRecord field holding its energy in kWh
COMPONENT_FIELDS = {"cpu": "energy_cpu_kwh", "gpu": "energy_gpu_kwh", "ram": "energy_ram_kwh"}


class CostAccount:
    """The running cost of one run.

    Args:
        scope: ``"process"`` to count the process tree's attributed energy (the whole machine's
            when a meter cannot attribute), ``"machine"`` for the whole machine's.
        intensity: a :class:`~greenprint.carbon.Intensity` (g CO2-eq/kWh, possibly a series), or
            anything with its ``at`` and ``emissions_g``.
        pue: the power usage effectiveness applied to IT energy.
        t0: start time, seconds since the Unix epoch.
    """

    def __init__(self, *, scope: str, intensity: IntensityCurve, pue: float, t0: float) -> None:
        self.scope = scope
        self.intensity = intensity
        self.pue = pue
        self.t0 = t0
        self.last_t = t0
        self.joules: dict[str, float] = {}
        self.machine_joules: dict[str, float] = {}
        self.emissions_g = 0.0
        self._attributed: set[str] = set()  # components a meter attributed at some reading
        #: component -> (time attribution was lost, s since the epoch; J attributed by then)
        self.lost: dict[str, tuple[float, float]] = {}

    def add(self, now: float, readings: Mapping[str, MeterReading]) -> PowerSample | None:
        """Account cumulative ``readings`` taken at ``now``; return the interval's sample."""
        t0 = self.last_t
        dt = now - t0
        powers: dict[str, float] = {}
        interval_j = 0.0
        for component, reading in readings.items():
            attributed = reading.process_j if self.scope == "process" else None
            before = self.joules.get(component, 0.0)
            if attributed is not None and component not in self.lost:
                joules = attributed
                self._attributed.add(component)
            elif component in self._attributed:  # attribution lost: the whole domain from here
                self.lost.setdefault(component, (t0, before))
                machine_delta = reading.machine_j - self.machine_joules.get(component, 0.0)
                joules = before + max(machine_delta, 0.0)
            else:
                joules = reading.machine_j
            delta = max(joules - before, 0.0)
            self.joules[component] = joules
            self.machine_joules[component] = reading.machine_j
            interval_j += delta
            powers[component] = delta / dt if dt > 0 else 0.0
        self.last_t = max(now, t0)
        kwh = j_to_kwh(interval_j)
        # a wall clock stepped back (NTP) still charges the energy it read, at the last time
        self.emissions_g += self.intensity.emissions_g(t0, max(now, t0), kwh * self.pue)
        if dt <= 0:
            return None
        return PowerSample(
            t0=t0,
            t1=now,
            cpu_w=powers.get("cpu"),
            gpu_w=powers.get("gpu"),
            ram_w=powers.get("ram"),
            intensity_g_per_kwh=self.intensity.at((t0 + now) / 2),
        )

    def annotated(self, provenance: Mapping[str, str]) -> dict[str, str]:
        """``provenance`` (component -> source), saying where attribution was lost mid-run.

        Each component whose meter stopped attributing to the process tree gets a note: for how
        long of the run, and what share of its recorded energy, was the tree's share; the whole
        domain's after. Other entries are returned as they are.
        """
        out = dict(provenance)
        for component, (lost_t, attributed_j) in self.lost.items():
            if component not in out:
                continue
            total_j = self.joules.get(component, 0.0)
            share = attributed_j / total_j if total_j > 0 else 1.0
            percent = f"{share:.0%}" if share == 0 or share >= 0.005 else "<1%"
            domain = "device's" if component == "gpu" else "machine's"
            attributed_s = format_duration(max(lost_t - self.t0, 0.0))
            span_s = format_duration(max(self.last_t - self.t0, 0.0))
            note = (
                f"this process tree's share for the first {attributed_s} of {span_s}, {percent} "
                f"of the {component} energy recorded; the whole {domain} after"
            )
            out[component] = str(Provenance.parse(out[component]).with_note(note))
        return out

    @property
    def energy_kwh(self) -> float:
        """IT energy so far in kWh (before PUE)."""
        return j_to_kwh(sum(self.joules.values()))

    @property
    def energy_by_component(self) -> dict[str, float]:
        """IT energy so far in kWh per measured component."""
        return {c: j_to_kwh(j) for c, j in self.joules.items()}

    @property
    def emissions_kg(self) -> float:
        """CO2-eq so far in kg."""
        return g_to_kg(self.emissions_g)

    def fields(self) -> dict[str, Any]:
        """The cost as :class:`~greenprint.RunRecord` fields; unmeasured components are ``None``."""
        fields: dict[str, Any] = dict.fromkeys(COMPONENT_FIELDS.values())
        for component, joules in self.joules.items():
            if component in COMPONENT_FIELDS:
                fields[COMPONENT_FIELDS[component]] = j_to_kwh(joules)
        fields["energy_kwh"] = self.energy_kwh
        fields["machine_energy_kwh"] = j_to_kwh(sum(self.machine_joules.values()))
        fields["emissions_kg"] = self.emissions_kg
        return fields
