"""AMD GPU energy through ``amdsmi`` (ROCm's Python package, imported lazily).

Per visible GPU, one of two sources, chosen by these rules (in order):

1. **power sampling** when the energy counter cannot be read (``amdsmi_get_energy_count`` fails
   with ``NOT_SUPPORTED``: VM guests, old firmware) or the GPU is an MI100 (``gfx908``), whose
   counter is known to stay frozen until the machine is rebooted (ROCm/amdsmi#38,
   AMDResearch/hpcfund#21; Zeus found the same and polls power there);
2. otherwise the **counter**: ``energy_accumulator`` (``"power"`` before ROCm 6.2) times
   ``counter_resolution`` uJ, an unsigned 64-bit count; a decrease is a wrap at 2**64 when the
   wrapped difference is plausible (below 5 kW over the interval).

Power is read at every read in both modes (``current_socket_power``, MI300 and newer, else
``average_socket_power``, in W) and integrated with the trapezoid rule. A counter is dropped for
power sampling, for the rest of the run, when it proves unreliable:

* **stuck**: it has not moved for :data:`STUCK_AFTER_S` while the GPU drew power (at least
  :data:`STUCK_MIN_W` at both ends of each interval counted) (ROCm 6.1 on
  MI210 returned one value per process, ROCm/rocm_smi_lib#180); the power integral since the
  counter last moved replaces the zero it reported;
* **backwards** by more than a wrap explains (ROCm/amdsmi#115), or a **jump** above 5 kW over
  the interval: the time since the counter last moved is taken from the power integral.

The provenance then names both sources, ``amdsmi:counter-then-power-sampling:GPU-0``, and its
detail why and from when (``GPU-0 energy counter stuck for 3 s under load: power sampled after
12 s``): the seconds into the run from which the energy recorded is sampled power.

MI250/MI250X carry two GCDs per package and AMD reports the package's power on the first
(even-indexed) GCD while the second reads 0 W. A GCD whose pair is also visible is metered once
through the first; a GCD visible without its pair is metered as **half** of the package
(provenance ``GPU-1 (1/2 of package)``), never as 0.

``ROCR_VISIBLE_DEVICES`` (indices or UUIDs, applied first), then ``HIP_VISIBLE_DEVICES`` (or,
when it is unset, ``CUDA_VISIBLE_DEVICES``, which HIP honours too) as indices into what
``ROCR_VISIBLE_DEVICES`` left: the ROCm runtime's rules. Lists are read up to the first invalid
entry; an empty value hides every GPU. Indices are amdsmi's enumeration order, which follows the
KFD topology order the runtime uses; UUIDs (``GPU-`` prefix optional) match amdsmi's UUID by its
trailing hex digits.

One GPU failing (an ``AmdSmiLibraryException`` of its own) beside GPUs that still answer does
not fail the meter: when the meter opens it is left out (``GPU-1 failed to open (amdsmi: ...):
not counted``); at its first read (the run's start: it opened, then fell off the bus) it is
estimated for the run at its table TDP, full load, as NVML does (``amdsmi:tdp-estimate:GPU-1``,
the detail saying why, with the TDP and its source; before, it was left out: its energy was
missing from the figures); mid-run it goes on at its own mean power so far
(``amdsmi:then-mean-power:GPU-1``); the others read as before. A counter refused while the power
reads is power-sampled. With no GPU left, amdsmi's error fails the meter as before (every GPU
failing at its first read: the meter set estimates them all).

Per-process share: ``amdsmi_get_gpu_process_list`` gives each process's VRAM; the tracked tree
gets the fraction its processes hold (of the process count when no VRAM is reported). When the
list cannot be read or names no process of this PID namespace, ``process_j`` is ``None``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from math import inf
from typing import Any

from greenprint._exceptions import MeterError
from greenprint._provenance import Provenance
from greenprint.meters._amd_smi import (
    AmdsmiUnavailable,
    _AmdGpu,
    _energy_count,
    _is,
    _one_line,
    _power_w,
    _status_for,
    _visible_empty,
    parse_rocm_visible_devices,
)
from greenprint.meters._attribution import ProcessTree
from greenprint.meters._base import MeterReading
from greenprint.meters._counter import GPU_COUNTER_MODULUS, MAX_PLAUSIBLE_GPU_W, unwrap
from greenprint.meters._gpu_lines import estimate_from_tdp, go_on_at_mean_power
from greenprint.meters._gpu_meter import (
    GpuVendor,
    GpuVendorUnavailable,
    SummedGpuMeter,
    failed_gpu,
    not_counted,
    open_vendor,
    vendor_origin,
)
from greenprint.meters._status import GPUInfo, MeterStatus
from greenprint.meters._where import absent_amdsmi
from greenprint.meters._where import amd_driver_present as _driver_present

__all__ = [
    "AmdMeter",
    "COUNTER_MODULUS",
    "STUCK_AFTER_S",
    "load_amdsmi",
    "parse_rocm_visible_devices",
    "probe_amd",
]

logger = logging.getLogger(__name__)

#: The energy accumulator is a ``uint64_t`` count of ``counter_resolution`` uJ.
COUNTER_MODULUS = GPU_COUNTER_MODULUS
#: A counter that has not moved for this long (s) while the GPU drew power is stuck.
STUCK_AFTER_S = 3.0
#: "Drew power": at least this much at both ends of an interval, in W (idle GPUs draw tens).
STUCK_MIN_W = 1.0
#: Graphics versions whose counter is not used: gfx -> why.
UNRELIABLE_COUNTER_GFX = {
    "gfx908": "MI100 counter stays frozen until a reboot (ROCm/amdsmi#38)",
}
_DRIVER_FIX = (
    "install ROCm's amdgpu driver so that amd-smi works "
    "(nothing to fix on a machine without an AMD GPU)"
)
_INSTALL_FIX = (
    "pip install amdsmi (the version of your ROCm, e.g. amdsmi==6.2.*), or add "
    "/opt/rocm/share/amd_smi to PYTHONPATH"
)


def load_amdsmi(amdsmi: Any = None) -> Any:
    """The amdsmi module to use: ``amdsmi`` if given, else ``amdsmi`` imported now.

    Raises:
        AmdsmiUnavailable: no ``/dev/kfd`` (checked before importing), or amdsmi cannot be
            imported (not installed, ``libamd_smi.so`` missing, or a version that does not
            match the installed ROCm; amdsmi prints to stdout when its library is missing,
            which is swallowed).
    """
    if amdsmi is not None:
        return amdsmi
    if not _driver_present():
        raise AmdsmiUnavailable(absent_amdsmi())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import amdsmi as module  # type: ignore[import-not-found]
    except (ImportError, OSError, AttributeError, KeyError) as e:
        reason = f"amdsmi is not importable ({type(e).__name__}: {e})"
        raise AmdsmiUnavailable(MeterStatus("amdsmi", False, reason, _INSTALL_FIX)) from e
    return module


def _open(module: Any, environ: Mapping[str, str]) -> tuple[list[_AmdGpu], list[str]]:
    """Enumerate the visible, measurable GPUs (amdsmi already initialised).

    A GPU whose calls fail here with an error of its own (``AmdSmiLibraryException``: the GPU
    gone, a refusal) while other GPUs answer is left out (``"GPU-1 failed to open (amdsmi:
    ...): not counted"``, which the meter's provenance names), so that the others are still
    read; when no visible GPU answers, the first error is amdsmi's, as before. A counter
    refused (another error than ``NOT_SUPPORTED``/``NO_DATA``) while the power reads is
    power-sampled, and said.
    """
    handles = list(module.amdsmi_get_processor_handles())
    uuids: list[str] = []
    broken: dict[int, Exception] = {}
    for i, h in enumerate(handles):
        try:
            uuids.append(str(module.amdsmi_get_gpu_device_uuid(h)))
        except module.AmdSmiException as e:  # matched by index only
            uuids.append("")
            broken[i] = e
    visible = parse_rocm_visible_devices(environ, uuids)
    gpus: list[_AmdGpu] = []
    skipped: list[str] = []
    errors: list[Exception] = []
    for i in visible:
        try:
            if i in broken:
                raise broken[i]
            gpu = _open_one(module, handles, uuids, visible, i, skipped)
        except module.AmdSmiException as e:
            errors.append(e)
            skipped.append(failed_gpu(f"GPU-{i}", _one_line(e), "amdsmi"))
            continue
        if gpu is not None:
            gpus.append(gpu)
    if errors and not gpus:
        raise errors[0]  # no GPU answers: amdsmi's own error says why
    return gpus, skipped


def _open_one(
    module: Any,
    handles: Sequence[Any],
    uuids: Sequence[str],
    visible: Sequence[int],
    i: int,
    skipped: list[str],
) -> _AmdGpu | None:
    """GPU ``i`` ready to meter, or ``None`` with a line in ``skipped`` (see :func:`_open`).

    Raises:
        AmdSmiException: a call for it failed.
    """
    handle = handles[i]
    asic = module.amdsmi_get_gpu_asic_info(handle)
    name = str(asic.get("market_name") or "AMD GPU")
    gfx = str(asic.get("target_graphics_version") or "")
    try:
        vram_mb = float(module.amdsmi_get_gpu_vram_usage(handle)["vram_total"])
    except (module.AmdSmiException, KeyError, TypeError, ValueError):
        vram_mb = 0.0
    power = _power_w(module.amdsmi_get_power_info(handle))
    common: dict[str, Any] = {"uuid": uuids[i], "name": name, "gfx": gfx}
    common["memory_gb"] = vram_mb / 1024
    source, share, note = handle, 1.0, ""
    if "MI250" in name.upper():
        pair = i - 1 if i % 2 else i + 1
        if i % 2 and not power:  # the second GCD: its package reads on the first
            if pair in visible:
                skipped.append(f"GPU-{i} ({name}): counted in GPU-{pair} (one package)")
                return None
            source, share, note = handles[pair], 0.5, "1/2 of package"
            power = _power_w(module.amdsmi_get_power_info(source))
        elif not i % 2 and pair < len(handles) and pair not in visible:
            pair_power = _power_w(module.amdsmi_get_power_info(handles[pair]))
            if not pair_power:
                share, note = 0.5, "1/2 of package"
    mode, reason = "counter", ""
    refused: Exception | None = None
    if gfx in UNRELIABLE_COUNTER_GFX:
        mode, reason = "power", f"{gfx}: {UNRELIABLE_COUNTER_GFX[gfx]}"
    else:
        try:
            _energy_count(module.amdsmi_get_energy_count(source))
        except module.AmdSmiException as e:
            mode = "power"
            if _is(module, e, "NOT_SUPPORTED", "NO_DATA"):
                reason = "no energy counter"
            else:  # refused (NO_PERM...): its power may still read
                refused = e
                reason = f"energy counter refused (amdsmi: {_one_line(e)}): power sampled"
        except MeterError:
            mode, reason = "power", "no energy counter"
    if mode == "power" and power is None:
        if refused is not None:
            raise refused
        skipped.append(not_counted(f"GPU-{i}", name))
        return None
    gpu = _AmdGpu(i, source, mode=mode, reason=reason, share=share, proc_handle=handle, **common)
    if note:
        gpu.reason = f"{note}; {reason}" if reason else note
    return gpu


def _shutdown(module: Any) -> None:
    try:
        module.amdsmi_shut_down()
    except module.AmdSmiException as e:
        logger.debug("amdsmi_shut_down failed: %s", e)


def probe_amd(
    amdsmi: Any = None, *, environ: Mapping[str, str] | None = None
) -> tuple[MeterStatus, tuple[GPUInfo, ...]]:
    """Check amdsmi and list the visible AMD GPUs. Never raises.

    Args:
        amdsmi: an amdsmi-compatible module (default: ``amdsmi``, imported when ``/dev/kfd``
            exists).
        environ: environment for the visible-device variables (default: ``os.environ``).

    Returns:
        ``(status, gpus)``; ``gpus`` is empty when amdsmi is unusable.
    """
    env = os.environ if environ is None else environ
    try:
        _, gpus, skipped = open_vendor(_VENDOR, amdsmi, env, keep=False)
    except GpuVendorUnavailable as e:
        return e.status, ()
    if not gpus:
        empty = _visible_empty(env)
        if empty is not None:
            reason = f"{empty} is empty: no GPU visible to this process"
            return MeterStatus("amdsmi", False, reason, f"unset {empty}"), ()
        return MeterStatus("amdsmi", False, "; ".join(skipped) or "amdsmi found no GPU", None), ()
    parts = [
        f"{g.label} {g.name}: "
        + ("energy counter" if g.mode == "counter" else "power sampling")
        + (f" ({g.reason})" if g.reason else "")
        for g in gpus
    ]
    return MeterStatus("amdsmi", True, "; ".join(parts + skipped), None), tuple(
        g.info() for g in gpus
    )


def _init(module: Any) -> None:
    module.amdsmi_init(module.AmdSmiInitFlags.INIT_AMD_GPUS)


_VENDOR = GpuVendor(
    load=load_amdsmi,
    init=_init,
    error=lambda module: module.AmdSmiException,
    listing=_open,
    shutdown=_shutdown,
    status_for=_status_for,
)


class AmdMeter(SummedGpuMeter):
    """Energy of the visible AMD GPUs, summed. Build it with :meth:`open`.

    ``process_j`` follows amdsmi's per-process VRAM (see the module docstring); ``None`` when
    amdsmi cannot attribute or no tree is given.
    """

    _gpus: list[_AmdGpu]
    _vendor = _VENDOR
    _none_visible = "no visible AMD GPU can be metered"

    def __init__(
        self,
        amdsmi: Any,
        gpus: Sequence[_AmdGpu],
        *,
        tree: ProcessTree | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(amdsmi, gpus, tree=tree, clock=clock)
        self._amdsmi = amdsmi

    @classmethod
    def open(
        cls,
        amdsmi: Any = None,
        *,
        environ: Mapping[str, str] | None = None,
        tree: ProcessTree | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> AmdMeter:
        """Initialise amdsmi and meter every visible AMD GPU.

        Raises:
            MeterError: amdsmi is unusable or no GPU is visible (the message says why).
        """
        return cls._open_with(amdsmi, environ=environ, tree=tree, clock=clock)

    @property
    def origin(self) -> Provenance:
        """``Provenance("measured", "amdsmi:counter:GPU-0+amdsmi:power-sampling:GPU-1", ...)``.

        The detail names why a GPU is power-sampled or shared (``GPU-1 gfx908: ...``). A GPU
        whose counter was dropped mid-run is ``amdsmi:counter-then-power-sampling:GPU-0``, the
        detail saying why and when (``GPU-0 energy counter stuck for 3 s under load: power
        sampled after 12 s``).
        """
        return vendor_origin(
            "amdsmi",
            [(g.label, g.source) for g in self._gpus],
            [f"{g.label} {g.reason}" for g in self._gpus if g.reason]
            + [f"{g.label} {g.failed}" for g in self._gpus if g.failed]
            + [*self.left_out, self.unattributed, self.shared],
        )

    def _call(self, gpu: _AmdGpu, name: str, handle: Any = None) -> Any:
        try:
            return getattr(self._amdsmi, name)(gpu.handle if handle is None else handle)
        except self._amdsmi.AmdSmiException as e:
            raise MeterError(f"{gpu.label}: {name} failed: {_one_line(e)}") from e

    def _power(self, gpu: _AmdGpu) -> float | None:
        return _power_w(self._call(gpu, "amdsmi_get_power_info"))

    def start(self) -> None:
        """Read the baseline counters and powers.

        A GPU whose first read fails (an error of its own, after it opened: it fell off the
        bus) while other GPUs answer is estimated for the run at its table TDP at full load
        (nothing of it can be read, its utilisation included), as the whole meter would be;
        the others stay measured. The provenance says which and why
        (``amdsmi:counter:GPU-0+amdsmi:tdp-estimate:GPU-1 (GPU-1 failed at its first read
        (...): estimated from its TDP, AMD Instinct MI210 300 W table:..., utilisation unknown:
        full load)``). Before, it was left out, and its energy missing from the figures.

        Raises:
            MeterError: every GPU failed (the first one's error): the meter set then estimates
                them all (:meth:`estimate_if_unmeasured`).
        """
        now = self._clock()
        failed: list[tuple[_AmdGpu, MeterError]] = []
        for g in self._gpus:
            try:
                g.last_power_w = self._power(g)
                if g.mode == "counter":
                    g.last_count, g.resolution_uj = _energy_count(
                        self._call(g, "amdsmi_get_energy_count")
                    )
            except MeterError as e:
                failed.append((g, e))
            g.last_t = g.moved_t = now
            g.still_s = g.pending_j = g.total_j = 0.0
            g.failed, g.estimated = "", False
        if failed and len(failed) == len(self._gpus):
            raise failed[0][1]
        for g, err in failed:
            self._estimate_one(g, err)
        self._begin(now)

    def _estimate_one(self, g: _AmdGpu, err: MeterError) -> None:
        """Estimate ``g``, failed at its first read, from its table TDP at full load."""
        from greenprint.meters._gpu_tdp import tdp_for

        tdp_w, source = tdp_for(g.name)
        if "MI250" in g.name.upper():  # tdp_for gives a GCD's half; g reads its package
            tdp_w *= 2
        # its package's power; g.share of it is metered
        estimate_from_tdp(g, err, tdp_w, f"{tdp_w * g.share:g} W {source}")

    def read(self) -> MeterReading:
        """Cumulative energy of the GPUs since :meth:`start`, in J.

        A busy device (``RETRY``/``BUSY``) skips that GPU for this read; the next read covers
        it. A GPU whose calls fail otherwise (it is gone, an error of its own) while others
        still read continues at its own mean power so far, with its last process share; the
        others go on being read, and the provenance names it
        (``amdsmi:counter:GPU-0+amdsmi:then-mean-power:GPU-1 (GPU-1 failed after 12 s (...):
        its mean power so far (300 W) after)``).

        Raises:
            MeterError: an amdsmi call failed (GPU gone, driver unloaded...) for every GPU
                still read, or for one before any energy was read (no mean power to go on at).
        """
        now = self._clock()
        pids = self._tree_pids()
        shares: list[tuple[float, float | None]] = []
        for g in self._gpus:
            share: float | None
            if not g.failed:
                last_t = g.last_t
                try:
                    package_j = self._step(g, now)
                except MeterError as e:
                    g.last_t = last_t  # this interval is not read: at its mean power if failed
                    if _is(self._amdsmi, e.__cause__ or e, "RETRY", "BUSY"):
                        logger.debug("%s busy, read next time: %s", g.label, e)
                        continue
                    if not self._fail_one(g, e):
                        raise
                else:
                    g.total_j += package_j
                    share = self._share(g, pids) if pids is not None else None
            if g.failed:  # failed now or before: its mean power (or TDP), its last share
                package_j = g.last_power_w * max(now - g.last_t, 0.0) if g.last_power_w else 0.0
                g.last_t = now
                g.total_j += package_j
                if pids is None:
                    share = None
                elif g.estimated:  # never read: its processes may still be listed
                    share = self._share(g, pids)
                else:
                    share = g.last_share
            shares.append((package_j * g.share, share))
        return self._add(now, shares)

    def _fail_one(self, g: _AmdGpu, err: MeterError) -> bool:
        """:func:`~greenprint.meters._gpu_lines.go_on_at_mean_power` for ``g``."""
        return go_on_at_mean_power(g, self._gpus, g.last_t - self._t_start, err)

    def _step(self, g: _AmdGpu, now: float) -> float:
        """Energy of ``g``'s package since its last read, in J; drops a bad counter."""
        dt = max(now - g.last_t, 0.0)
        power = self._power(g)
        drawing = min(power or 0.0, g.last_power_w or 0.0) >= STUCK_MIN_W
        power_j = 0.0
        if power is not None and g.last_power_w is not None:
            power_j = 0.5 * (power + g.last_power_w) * dt
        elif power is not None:
            power_j = power * dt
        g.last_power_w = power
        g.last_t = now
        if g.mode == "power":
            return power_j
        count, resolution = _energy_count(self._call(g, "amdsmi_get_energy_count"))
        delta = count - g.last_count
        g.last_count = count
        limit_j = MAX_PLAUSIBLE_GPU_W * (dt + 1.0)
        limit_counts = limit_j * 1e6 / resolution if resolution else inf
        unwrapped = unwrap(delta, COUNTER_MODULUS, limit_counts)
        if unwrapped is None:
            # what the counter did not report since it last moved comes from power too
            return self._drop(g, "energy counter went backwards", g.pending_j + power_j, g.moved_t)
        delta = unwrapped
        counter_j = delta * (resolution or g.resolution_uj) / 1e6
        if counter_j > limit_j:
            why = f"energy counter jumped by {counter_j:.3g} J"
            return self._drop(g, why, g.pending_j + power_j, g.moved_t)
        if delta == 0:
            g.pending_j += power_j
            g.still_s += dt if drawing else 0.0
            if g.still_s >= STUCK_AFTER_S:
                why = f"energy counter stuck for {g.still_s:.0f} s under load"
                return self._drop(g, why, g.pending_j, g.moved_t)
            return 0.0
        g.still_s = g.pending_j = 0.0
        g.moved_t = now
        return counter_j

    def _drop(self, g: _AmdGpu, why: str, joules: float, since: float) -> float:
        """Sample ``g``'s power from now on; the provenance says why, and from when.

        Returns:
            ``joules``: the power integral since ``since`` (clock time, s), which replaces
            what the counter said for that time.
        """
        logger.warning("%s: %s; sampling power from now on", g.label, why)
        g.mode = "power"
        g.switched = True
        note = f"{why}: power sampled after {max(since - self._t_start, 0.0):.0f} s"
        g.reason = f"{g.reason}; {note}" if g.reason else note
        g.pending_j = 0.0
        return joules

    def _estimated_gpus(self) -> list[Any]:
        """Each GPU's table TDP (an MI250 package's, or half of it for a lone GCD)."""
        from greenprint.meters._gpu_tdp import EstimatedGpu, tdp_for

        out = []
        for g in self._gpus:
            tdp_w, source = tdp_for(g.name)
            if "MI250" in g.name.upper():  # tdp_for gives a GCD's half; g meters g.share of two
                tdp_w = 2 * tdp_w * g.share
            out.append(EstimatedGpu(g.label, g.name, tdp_w, source))
        return out

    def _share(self, gpu: _AmdGpu, pids: frozenset[int]) -> float | None:
        """The tree's share of ``gpu`` now, or ``None`` when amdsmi cannot list its processes.

        A listing that fails after one that worked keeps the last share for up to
        :data:`~greenprint.meters._gpu_meter.HELD_LISTINGS` reads in a row; one that never
        worked, or fails once more, is ``None`` (the provenance says which GPU, why and when).
        """
        try:
            procs = self._amdsmi.amdsmi_get_gpu_process_list(gpu.proc_handle)
        except self._amdsmi.AmdSmiException as e:
            return self._listing_failed(gpu.label, gpu.last_share, _one_line(e))
        self._listed(gpu.label)
        entries = [p for p in procs if isinstance(p, Mapping) and "pid" in p]
        if len(entries) != len(procs):  # an older amdsmi returning process handles
            self._no_share(gpu.label, "amdsmi lists process handles, not process ids")
            return None
        memory: list[float | None] = []
        for p in entries:
            usage = p.get("memory_usage")
            vram = usage.get("vram_mem") if isinstance(usage, Mapping) else None
            value = vram if isinstance(vram, int) else p.get("mem")
            memory.append(float(value) if isinstance(value, int) else None)
        pid_list = [int(p["pid"]) for p in entries]
        gpu.last_share = self._tree_share(gpu.label, "amdsmi", pid_list, memory, pids)
        if gpu.last_share is None:
            self._no_share(gpu.label, "amdsmi lists no process of this PID namespace")
        return gpu.last_share
