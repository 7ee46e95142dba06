"""The meter set of a run: :func:`detect_meters` picks it, :func:`guard_meters` wraps a foreign one.

:func:`detect_meters` picks, per component:

* ``cpu``: RAPL package domains if readable, else the TDP estimate;
* ``ram``: RAPL DRAM domains if readable, else the W/GB estimate;
* ``gpu``: NVML (energy counter where the GPU has it, else sampled power), and AMD GPUs through
  amdsmi beside it (both vendors summed, the provenance naming both), absent with no GPU;
* beyond those (hwmon sensors, Intel GPUs, Apple's ``powermetrics``, RAPL ``psys``): see
  :mod:`greenprint.meters._beyond`.

:func:`guard_meters` gives any meter-set-like object (``gp.track(meters=...)``) the guarantees of
a :class:`MeterSet`: the read deadline, the checks, and the estimates in its shadow. The set
itself, and how it falls back to estimates when a meter fails, is in
:mod:`greenprint.meters._meter_set`; :class:`MeterSet` is re-exported here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._config import Config
from greenprint._exceptions import MeterError
from greenprint.meters._attribution import shared_tree
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._deadline import DEFAULT_READ_TIMEOUT_S
from greenprint.meters._estimate import configured_cpu_tdp
from greenprint.meters._meter_set import MeterSet

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.meters._discovery import HardwareInfo
    from greenprint.meters._rapl import Opener

__all__ = ["MeterSet", "detect_meters", "guard_meters"]

logger = logging.getLogger(__name__)


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
    amdsmi: Any = None,
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
        amdsmi: an amdsmi-compatible module (default: ``amdsmi``, imported when ``/dev/kfd``
            exists); AMD GPUs are metered too, summed with NVIDIA's on a machine with both.

    Returns:
        A :class:`MeterSet`, not started. Detection never raises on hardware; whatever cannot be
        read is estimated, and the provenance says so.

    Raises:
        ConfigError: the ``cpu_tdp_w`` setting is not a number in (0, 5600] W.
    """
    # the discovery and vendor modules load when meters are chosen, not when this one is imported
    from greenprint.meters._discovery import cpu_estimate_for, detect_hardware, ram_estimate_for
    from greenprint.meters._rapl import RaplMeter, probe_rapl
    from greenprint.meters._where import gpu_may_be_present

    opener = rapl_opener or open
    hw = (
        hardware
        if hardware is not None
        else detect_hardware(rapl_root=rapl_root, nvml=nvml, rapl_opener=rapl_opener, amdsmi=amdsmi)
    )
    env = os.environ if environ is None else environ
    tree = shared_tree(pid, clock=clock)  # one series of samples for runs nested in one another
    configured = (
        configured_cpu_tdp()
        if cpu_tdp_w is None
        else configured_cpu_tdp(Config({"cpu_tdp_w": str(cpu_tdp_w)}, {"cpu_tdp_w": "argument"}))
    )
    from greenprint.meters._quota import cpu_quota

    estimates = {
        "cpu": cpu_estimate_for(hw, tree=tree, configured=configured, quota=cpu_quota()),
        "ram": ram_estimate_for(hw, tree=tree),
    }
    meters: dict[str, Meter] = dict(estimates)
    probe = probe_rapl(rapl_root, opener=opener)
    if probe.status.usable and probe.package:
        meters["cpu"] = RaplMeter("cpu", probe.package, tree=tree, opener=opener, clock=clock)
        if probe.dram:
            meters["ram"] = RaplMeter("ram", probe.dram, tree=tree, opener=opener, clock=clock)
    nvml_status = hw.meter("nvml")
    nvml_refused: str | None = None  # why NVML, there, could not meter
    if nvml is not None or nvml_status is None or nvml_status.usable:
        from greenprint.meters._nvml import NvmlMeter

        try:
            meters["gpu"] = NvmlMeter.open(nvml, environ=env, tree=tree, clock=clock)
        except MeterError as e:
            logger.debug("no GPU meter: %s", e)
            nvml_refused = _refusal(e)
    amd_status = hw.meter("amdsmi")
    if "gpu" in meters and (amdsmi is not None or amd_status is None or amd_status.usable):
        from greenprint.meters._amd import AmdMeter  # NVIDIA and AMD GPUs in one machine
        from greenprint.meters._gpu_meter import VendorSumMeter

        try:
            amd = AmdMeter.open(amdsmi, environ=env, tree=tree, clock=clock)
        except MeterError as e:
            logger.debug("no AMD GPU beside the NVIDIA ones: %s", e)
        else:
            meters["gpu"] = VendorSumMeter([meters["gpu"], amd])
    # AMD through amdsmi, else a GPU without counter: its TDP estimate (neither is imported on a
    # machine whose cheap checks find no GPU driver and no DRM card)
    maybe_amd = amdsmi is not None or amd_status is None or amd_status.usable
    if "gpu" not in meters and (maybe_amd or nvml is not None or gpu_may_be_present(env)):
        from greenprint.meters._gpu_estimate import other_gpu_meter

        other = other_gpu_meter(
            amdsmi=amdsmi,
            amd_usable=None if amd_status is None else amd_status.usable,
            nvml=nvml,
            environ=env,
            tree=tree,
            clock=clock,
        )
        if other is not None:
            meters["gpu"] = other
    from greenprint.meters._beyond import add_meters_beyond  # hwmon, Intel GPU, Apple, psys

    add_meters_beyond(
        meters,
        estimates,
        statuses={m.name: m for m in hw.meters},
        rapl=probe,
        tree=tree,
        environ=env,
        rapl_opener=opener,
        clock=clock,
        cpu_model=hw.cpu_model,
    )
    notes: dict[str, str | None] = {
        c: probe.not_used(c)
        for c in ("cpu", "ram")
        if c in meters and meters[c] is estimates.get(c)  # the estimate stands in for RAPL
    }
    if nvml_refused is not None and "gpu" in meters and meters["gpu"].is_estimate:
        notes["gpu"] = f"nvml not used: {nvml_refused}"
    return MeterSet(
        meters,
        tree=tree,
        estimates=estimates,
        clock=clock,
        notes={c: n for c, n in notes.items() if n},
    )


def _refusal(err: MeterError) -> str | None:
    """Why a GPU vendor's library refused to meter (``"...; fix: ..."``), for the provenance.

    ``None`` where there is nothing to say: the driver is absent, or the library listed no GPU
    it could meter (a GPU reporting neither energy nor power: its estimate says so itself).
    """
    from greenprint.meters._gpu_meter import GpuVendorUnavailable
    from greenprint.meters._where import absent_nvml

    cause = err.__cause__
    if not isinstance(cause, GpuVendorUnavailable) or cause.status == absent_nvml():
        return None
    fix = f"; fix: {cause.status.fix}" if cause.status.fix else ""
    return f"{cause.status.reason}{fix}"


class _ForeignSource:
    """A meter set that is not a :class:`MeterSet` (a user's or a test's), read once per tick."""

    def __init__(self, meters: Any) -> None:
        self.meters = meters
        self._cache: dict[str, MeterReading] = {}
        self._lock = threading.Lock()
        self._started = False
        self._closed = False

    def start(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise MeterError("the meter set is still blocked in an earlier call")
        try:
            if not self._started:
                self._started = True
                self.meters.start()
        finally:
            self._lock.release()

    def read(self, component: str) -> MeterReading:
        # non-blocking: while an abandoned read is still stuck inside the foreign set, every
        # component fails at once instead of each waiting for its own deadline
        if not self._lock.acquire(blocking=False):
            raise MeterError("the meter set is still blocked in an earlier call")
        try:
            if component not in self._cache:
                self._cache = dict(self.meters.read())
            try:
                return self._cache.pop(component)
            except KeyError:
                raise MeterError(f"the meter set returned no {component!r} reading") from None
        finally:
            self._lock.release()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.meters.close()


class _ForeignMeter(Meter):
    """One component of a :class:`_ForeignSource`."""

    def __init__(self, source: _ForeignSource, component: str) -> None:
        self.component = component
        self._source = source

    @property
    def provenance(self) -> str:
        return str(getattr(self._source.meters, "provenance", {}).get(self.component, "unknown"))

    @property
    def is_estimate(self) -> bool:
        return False  # whatever it says, it gets the deadline and the checks of a hardware meter

    def start(self) -> None:
        self._source.start()

    def read(self) -> MeterReading:
        return self._source.read(self.component)

    def close(self) -> None:
        self._source.close()


def guard_meters(
    meters: Any,
    *,
    pid: int | None = None,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
) -> MeterSet:
    """Give any meter set the guarantees of a :class:`MeterSet`.

    ``gp.track(meters=...)`` accepts a :class:`MeterSet` or any object with ``components``,
    ``provenance`` (component -> str), ``start()``, ``read()`` (component ->
    :class:`MeterReading`, cumulative J) and ``close()``. Such an object is wrapped so that its
    calls run under the read deadline and its readings are checked; a component that fails is
    continued by the estimate (``cpu``, ``ram``: the same estimates :func:`detect_meters` uses,
    running in the shadow) or at the mean power it measured so far (any other), labelled.

    Args:
        meters: a :class:`MeterSet` (returned as it is) or a meter-set-like object.
        pid: root of the process tree (default: this process).
        read_timeout_s: longest wait for one call into ``meters``, in s.
    """
    if isinstance(meters, MeterSet):
        return meters
    from greenprint.meters._discovery import cpu_estimate_for, detect_hardware, ram_estimate_for

    source = _ForeignSource(meters)
    components = tuple(getattr(meters, "components", ()) or ())
    tree = shared_tree(pid)
    hw = detect_hardware()
    shadows = {
        "cpu": cpu_estimate_for(hw, tree=tree, configured=configured_cpu_tdp()),
        "ram": ram_estimate_for(hw, tree=tree),
    }
    return MeterSet(
        {c: _ForeignMeter(source, c) for c in components},
        tree=tree,
        estimates={c: m for c, m in shadows.items() if c in components},
        read_timeout_s=read_timeout_s,
    )
