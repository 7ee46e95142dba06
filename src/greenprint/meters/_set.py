"""The meters of one run, one per component, with fallback to estimates that never raises.

:func:`detect_meters` picks, per component:

* ``cpu``: RAPL package domains if readable, else the TDP estimate;
* ``ram``: RAPL DRAM domains if readable, else the W/GB estimate;
* ``gpu``: NVML (energy counter where the GPU has it, else sampled power), absent with no GPU.

:class:`MeterSet` reads them all on each tick, sharing one process-tree sample. When a meter
fails (a :class:`~greenprint.MeterError`, an ``OSError`` from the hardware, or, as a last line of
defence, any other exception, logged with its traceback), it is replaced for the rest of the run
by the estimate of that component, continuing from the last good cumulative value: the estimate
runs in the shadow from the start, so the interval in which the failure happened is covered by
the estimate's own figure for that interval. The provenance then says, for example,
``"estimate:tdp:AMD EPYC 7B13 (240 W) (rapl failed: permission denied reading ...)"``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from greenprint._config import Config
from greenprint._exceptions import MeterError
from greenprint.meters._attribution import ProcessTree
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._estimate import (
    GpuEstimateMeter,
    configured_cpu_tdp,
)
from greenprint.meters._discovery import (
    HardwareInfo,
    cpu_estimate_for,
    detect_hardware,
    ram_estimate_for,
)
from greenprint.meters._nvml import NvmlMeter
from greenprint.meters._rapl import Opener, RaplMeter, probe_rapl

__all__ = ["MeterSet", "detect_meters"]

logger = logging.getLogger(__name__)

_ORDER = ("cpu", "gpu", "ram")


class _Slot:
    """One component: its meter, the estimate in its shadow, and the last good readings."""

    __slots__ = ("failed", "last", "last_shadow", "last_t", "meter", "shadow")

    def __init__(self, meter: Meter, shadow: Meter | None) -> None:
        self.meter = meter
        self.shadow = shadow  # the estimate running alongside a hardware meter (cpu, ram)
        self.last = MeterReading(0.0, 0.0)
        self.last_shadow: MeterReading | None = None
        self.last_t = 0.0
        self.failed = False


class _Continuation(Meter):
    """An estimate continuing a failed meter: ``offset + (estimate now - estimate at offset)``."""

    def __init__(
        self,
        estimate: Meter,
        *,
        offset: MeterReading,
        base: MeterReading,
        provenance: str,
    ) -> None:
        self.component = estimate.component
        self._estimate = estimate
        self._offset = offset
        self._base = base
        self._provenance = provenance

    @property
    def provenance(self) -> str:
        return self._provenance

    @property
    def is_estimate(self) -> bool:
        return True

    def start(self) -> None:  # the estimate is already running
        return None

    def read(self) -> MeterReading:
        now = self._estimate.read()
        machine = self._offset.machine_j + max(now.machine_j - self._base.machine_j, 0.0)
        process: float | None = None
        if (
            self._offset.process_j is not None
            and now.process_j is not None
            and self._base.process_j is not None
        ):
            process = self._offset.process_j + max(now.process_j - self._base.process_j, 0.0)
        return MeterReading(machine, process)

    def close(self) -> None:
        self._estimate.close()


class MeterSet:
    """One meter per component, read together; reading never raises.

    Attributes:
        components: the components measured, in ``("cpu", "gpu", "ram")`` order.
        provenance: component -> where its figures come from; updated on fallback.
        tree: the process tree used for attribution.

    Args:
        meters: component -> primary meter.
        tree: the process tree the meters share (sampled once per :meth:`read`).
        estimates: component -> estimate to run in the shadow of a hardware meter, taking over
            if it fails (``cpu`` and ``ram``). A component without one (``gpu``) is continued at
            the mean power it measured so far.
        clock: monotonic clock in s.
    """

    def __init__(
        self,
        meters: Mapping[str, Meter],
        *,
        tree: ProcessTree,
        estimates: Mapping[str, Meter] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tree = tree
        self._clock = clock
        estimates = dict(estimates or {})
        self.components: tuple[str, ...] = tuple(
            sorted(meters, key=lambda c: (_ORDER.index(c) if c in _ORDER else len(_ORDER), c))
        )
        self._slots: dict[str, _Slot] = {}
        for comp in self.components:
            meter = meters[comp]
            shadow = estimates.get(comp)
            if shadow is meter or meter.is_estimate:
                shadow = None
            self._slots[comp] = _Slot(meter, shadow)
        self.provenance: dict[str, str] = {c: s.meter.provenance for c, s in self._slots.items()}
        self._started = False
        self._closed = False
        self._t_start = 0.0

    def meter(self, component: str) -> Meter:
        """The meter now in use for ``component``."""
        return self._slots[component].meter

    def start(self) -> None:
        """Take the baseline of every meter (a meter that cannot start falls back at once)."""
        self.tree.start()
        now = self._t_start = self._clock()
        for comp, slot in self._slots.items():
            if slot.shadow is not None:
                slot.shadow.start()
                slot.last_shadow = slot.shadow.read()
            try:
                slot.meter.start()
            except Exception as e:  # noqa: BLE001 - a meter never breaks user code
                self._fail(comp, slot, e)
                slot.meter.start()
            slot.last = MeterReading(0.0, 0.0)
            slot.last_t = now
        self._started = True

    def read(self) -> dict[str, MeterReading]:
        """Cumulative energy per component since :meth:`start`, in J. Never raises."""
        if not self._started:
            self.start()
        try:
            self.tree.sample()
        except (psutil.Error, OSError) as e:  # keep the previous sample
            logger.warning("process-tree sample failed: %s", e)
        now = self._clock()
        out: dict[str, MeterReading] = {}
        for comp, slot in self._slots.items():
            shadow_now = self._read_shadow(comp, slot)
            try:
                reading = slot.meter.read()
            except Exception as e:  # noqa: BLE001 - a meter never breaks user code
                self._fail(comp, slot, e)
                try:
                    reading = slot.meter.read()
                except Exception:  # noqa: BLE001 - even the estimate failed: hold the last
                    logger.exception("the %s estimate failed too; holding the last value", comp)
                    reading = slot.last
            else:
                if shadow_now is not None:
                    slot.last_shadow = shadow_now
            reading = self._monotone(slot.last, reading)
            slot.last, slot.last_t = reading, now
            out[comp] = reading
        return out

    @staticmethod
    def _read_shadow(comp: str, slot: _Slot) -> MeterReading | None:
        if slot.shadow is None:
            return None
        try:
            return slot.shadow.read()
        except Exception:  # noqa: BLE001 - a broken shadow must not stop the primary
            logger.exception("the shadow %s estimate failed; it is dropped", comp)
            slot.shadow = None
            return None

    @staticmethod
    def _monotone(last: MeterReading, new: MeterReading) -> MeterReading:
        machine = max(new.machine_j, last.machine_j)
        if new.process_j is None:
            return MeterReading(machine, None)
        process = max(new.process_j, last.process_j or 0.0)
        return MeterReading(machine, min(process, machine) if machine > 0 else process)

    def _fail(self, comp: str, slot: _Slot, err: BaseException) -> None:
        old = slot.meter
        source = old.provenance.split(":", 1)[0]
        if isinstance(err, (MeterError, OSError)):
            logger.warning("%s meter %s failed, using an estimate: %s", comp, old.provenance, err)
            why = str(err)
        else:
            logger.error(
                "%s meter %s raised a bug; using an estimate", comp, old.provenance, exc_info=err
            )
            why = f"{type(err).__name__}: {err}"
        try:
            old.close()
        except Exception as e:  # noqa: BLE001 - closing a broken meter must not raise either
            logger.debug("closing the failed %s meter raised: %s", comp, e)
        if slot.shadow is not None:
            estimate = slot.shadow
            base = slot.last_shadow or MeterReading(0.0, 0.0)
        else:  # gpu (or a failed estimate): the mean power so far, from the last good read on
            elapsed = slot.last_t - self._t_start
            if elapsed > 1e-3:
                power_w = slot.last.machine_j / elapsed
            else:
                power_w = getattr(old, "mean_power_w", None) or 0.0
            share = None
            if slot.last.process_j is not None and slot.last.machine_j > 0:
                share = slot.last.process_j / slot.last.machine_j
            estimate = GpuEstimateMeter(
                power_w=power_w,
                share=share,
                clock=self._clock,
                started_at=slot.last_t,
                component=comp,
            )
            base = MeterReading(0.0, 0.0)
        provenance = f"{estimate.provenance} ({source} failed: {why})"
        slot.meter = _Continuation(estimate, offset=slot.last, base=base, provenance=provenance)
        slot.shadow = None
        slot.failed = True
        self.provenance[comp] = provenance

    def close(self) -> None:
        """Release every meter (NVML handles, files). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots.values():
            for meter in (slot.meter, slot.shadow):
                if meter is None:
                    continue
                try:
                    meter.close()
                except Exception as e:  # noqa: BLE001 - close never raises into user code
                    logger.debug("closing a meter raised: %s", e)

    def __enter__(self) -> MeterSet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detect_meters(
    *,
    pid: int | None = None,
    rapl_root: str | None = None,
    nvml: Any = None,
    hardware: HardwareInfo | None = None,
    rapl_opener: Opener | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    cpu_tdp_w: float | None = None,
) -> MeterSet:
    """Choose the best meter for each component on this machine.

    Args:
        pid: root of the tracked process tree (default: this process).
        rapl_root: powercap directory (default ``$GREENPRINT_RAPL_ROOT`` or
            ``/sys/class/powercap``).
        nvml: a pynvml-compatible module (default: ``pynvml``, imported lazily).
        hardware: a :class:`~greenprint.hardware.HardwareInfo` (default: detected).
        rapl_opener: function opening RAPL files (tests simulate permission errors with it).
        environ: environment for ``CUDA_VISIBLE_DEVICES`` (default: ``os.environ``).
        clock: monotonic clock in s.
        cpu_tdp_w: CPU power at full load for the estimate, in W (default: the ``cpu_tdp_w``
            setting, ``GREENPRINT_CPU_TDP_W``; else the TDP table or the per-core default).

    Returns:
        A :class:`MeterSet`, not started. Detection never raises on hardware; whatever cannot be
        read is estimated, and the provenance says so.

    Raises:
        ConfigError: the ``cpu_tdp_w`` setting is not a number in (0, 5600] W.
    """
    opener = rapl_opener or open
    hw = (
        hardware
        if hardware is not None
        else detect_hardware(rapl_root=rapl_root, nvml=nvml, rapl_opener=rapl_opener)
    )
    env = os.environ if environ is None else environ
    tree = ProcessTree(pid, clock=clock)
    configured = (
        configured_cpu_tdp()
        if cpu_tdp_w is None
        else configured_cpu_tdp(Config({"cpu_tdp_w": str(cpu_tdp_w)}, {"cpu_tdp_w": "argument"}))
    )
    estimates = {
        "cpu": cpu_estimate_for(hw, tree=tree, configured=configured),
        "ram": ram_estimate_for(hw, tree=tree),
    }
    meters: dict[str, Meter] = dict(estimates)
    probe = probe_rapl(rapl_root, opener=opener)
    if probe.status.usable and probe.package:
        meters["cpu"] = RaplMeter("cpu", probe.package, tree=tree, opener=opener)
        if probe.dram:
            meters["ram"] = RaplMeter("ram", probe.dram, tree=tree, opener=opener)
    nvml_status = hw.meter("nvml")
    if nvml is not None or nvml_status is None or nvml_status.usable:
        try:
            meters["gpu"] = NvmlMeter.open(nvml, environ=env, tree=tree, clock=clock)
        except MeterError as e:
            logger.debug("no GPU meter: %s", e)
    return MeterSet(meters, tree=tree, estimates=estimates, clock=clock)
