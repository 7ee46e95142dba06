"""NVIDIA GPU energy through NVML (the ``pynvml`` module of nvidia-ml-py, imported lazily).

Per visible GPU:

* **counter** (Volta and newer): ``nvmlDeviceGetTotalEnergyConsumption``, mJ since the driver
  loaded, a 64-bit counter. A decrease is a wrap at 2**64 when the wrapped difference is
  plausible (below 5 kW over the interval), otherwise a reset of the GPU, after which the counter
  restarts near zero and its new value is the energy since the reset (when that is plausible too;
  a counter that merely stepped back adds nothing for that step).
* **power sampling** (older GPUs): ``nvmlDeviceGetPowerUsage`` (mW) at every read, integrated
  with the trapezoid rule; also a GPU whose counter refuses with another error than "not
  supported" (``NO_PERMISSION``) while its power reads, the detail saying so.
* A GPU whose calls fail at the start (``GPU_IS_LOST``, a refusal of its own) beside GPUs that
  answer is left out, named in the provenance (``GPU-1 failed to open (...): not counted``).
* **TDP estimate**: a GPU that opened but whose first read fails (``NVMLError_Unknown``,
  ``GPU_IS_LOST``) beside GPUs that read is estimated for the run at its table TDP, full load
  (nothing of it reads); the others stay measured: ``nvml:counter:GPU-0+nvml:tdp-estimate:GPU-1
  (GPU-1 failed at its first read (...): estimated from its TDP, ... 400 W table:..., utilisation
  unknown: full load)``. Every GPU failing so fails the meter: all are TDP-estimated.
* **counter, then power sampling**: a counter that stops answering mid-run with an error that
  means "not available" (``NOT_SUPPORTED``, ``FUNCTION_NOT_FOUND``, ``NO_DATA``, ``NOT_READY``)
  while the GPU's power still reads is dropped for power sampling for the rest of the run; the
  interval in which it failed is the power read then times its length. The provenance becomes
  ``nvml:counter-then-power-sampling:GPU-0 (GPU-0 energy counter failed: ...: power sampled
  after 12 s)``. Any other error (the GPU is lost, the driver gone) on a GPU while other GPUs
  still read leaves that GPU at its own mean power so far (``nvml:then-mean-power:GPU-1``, the
  detail saying why and when); on the last GPU still read, or before any energy was read, it
  fails the meter, and the meter set continues at the mean power, labelled.

``CUDA_VISIBLE_DEVICES`` is honoured as CUDA does: a comma list of indices or UUIDs (``GPU-...``,
unique prefixes allowed), read up to the first invalid entry; an empty value hides every GPU.
GPUs this process may not open (a device cgroup denies them: Slurm's ``ConstrainDevices``, a
container) are left out, as CUDA leaves them out: NVML counts them, but its handle calls answer
``NO_PERMISSION`` (:func:`open_handles`). Indices are NVML's (PCI bus order) among the others;
CUDA numbers by speed unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, which on machines with mixed GPUs
can differ. MIG devices (``MIG-...`` entries, or a GPU in MIG
mode) are metered as their share of the parent GPU by compute slices: see
:mod:`greenprint.meters._mig`.

Per-process share: ``nvmlDeviceGetComputeRunningProcesses`` lists the compute processes on each
GPU with their memory; the tracked tree gets the fraction of that memory its processes hold (of
the process count, where memory is not reported). When NVML cannot list processes, or lists none
that exist in this PID namespace (a container), ``process_j`` is ``None``; a listing that fails
after one that worked keeps that GPU's last share for the interval, up to
:data:`~greenprint.meters._gpu_meter.HELD_LISTINGS` times in a row. The provenance says which GPU
was not attributed, why and from when (``GPU-0 not attributed after 12 s: ...``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from greenprint._exceptions import MeterError, MissingDependencyError
from greenprint._imports import require
from greenprint._provenance import Provenance
from greenprint.meters._attribution import ProcessTree
from greenprint.meters._base import MeterReading
from greenprint.meters._counter import (
    GPU_COUNTER_MODULUS,
    MAX_PLAUSIBLE_GPU_W,
    counter_step,
)
from greenprint.meters._gpu_lines import estimate_from_tdp, go_on_at_mean_power
from greenprint.meters._gpu_meter import (
    GpuVendor,
    GpuVendorUnavailable,
    SummedGpuMeter,
    failed_gpu,
    not_counted,
    open_vendor,
    refused_gpu,
    vendor_origin,
)
from greenprint.meters._nvml_devices import (
    _COUNTER_UNAVAILABLE,
    NvmlUnavailable,
    _code,
    _Gpu,
    _nvml_call,
    _order_note,
    _readings_refused,
    _status_for,
    no_counter_reason,
    open_handles,
    parse_cuda_visible_devices,
)
from greenprint.meters._status import GPUInfo, MeterStatus, vendor_text
from greenprint.meters._where import absent_nvml
from greenprint.meters._where import nvidia_driver_present as _driver_present

__all__ = ["NvmlMeter", "load_nvml", "open_handles", "parse_cuda_visible_devices", "probe_nvml"]

logger = logging.getLogger(__name__)

#: NVML's energy counter: a 64-bit count of mJ.
COUNTER_MODULUS = GPU_COUNTER_MODULUS


def load_nvml(nvml: Any = None) -> Any:
    """The NVML module to use: ``nvml`` if given, else ``pynvml`` imported now.

    Raises:
        NvmlUnavailable: no driver on this Linux machine (checked before importing pynvml, which
            costs ~30 ms), or pynvml is not installed.
    """
    if nvml is not None:
        return nvml
    if not _driver_present():
        raise NvmlUnavailable(absent_nvml())
    try:
        return require("pynvml", extra=None, purpose="GPU energy", package="nvidia-ml-py")
    except MissingDependencyError as e:
        reason = f"pynvml is not importable ({e.__cause__ or e})"
        raise NvmlUnavailable(MeterStatus("nvml", False, reason, e.install)) from e


def _open(nvml: Any, environ: Mapping[str, str]) -> tuple[list[_Gpu], list[str]]:
    """Enumerate the visible, measurable GPUs (NVML already initialised).

    A GPU whose calls fail here with an error of its own (``GPU_IS_LOST``, a refusal) while
    other GPUs answer is left out (``"GPU-1 (...) failed (...): not counted"``, which the
    meter's provenance names), so that the others are still read; when no GPU answers, the
    first error is NVML's, as before. A counter refused while the power reads is power-sampled.
    """
    from greenprint.meters._mig import MigDevice, visible_targets

    handles, uuids, denied = open_handles(nvml)
    targets, skipped = visible_targets(nvml, environ.get("CUDA_VISIBLE_DEVICES"), handles, uuids)
    skipped += denied
    order_note = _order_note(nvml, environ, handles)
    gpus: list[_Gpu] = []
    errors: list[Exception] = []
    for target in targets:
        mig = target if isinstance(target, MigDevice) else None
        i = target.parent if isinstance(target, MigDevice) else target
        label = mig.label if mig is not None else f"GPU-{i}"
        try:
            gpu = _open_one(nvml, handles[i], i, uuids[i], mig, skipped)
        except nvml.NVMLError as e:
            errors.append(e)
            refusal = getattr(e, "greenprint_refusal", None)
            if refusal is not None:
                why = refusal[0].split(": ", 1)[1]
                skipped.append(refused_gpu(label, why, refusal[1]))
            else:
                skipped.append(failed_gpu(label, str(e)))
            continue
        if gpu is None:
            continue
        gpus.append(gpu)
        gpu.rule = "; ".join(r for r in (gpu.rule, order_note) if r)
    if errors and not gpus:
        raise errors[0]  # no GPU answers: NVML's own error says why
    return gpus, skipped


def _open_one(
    nvml: Any, handle: Any, i: int, uuid: str, mig: Any, skipped: list[str]
) -> _Gpu | None:
    """GPU ``i`` (or its MIG device ``mig``) ready to meter, or ``None``.

    ``None`` with a line in ``skipped`` when it reports neither energy nor power.

    Raises:
        NVMLError: a call for it failed otherwise.
    """
    if mig is not None:
        name, memory_gb = mig.name, mig.memory_gb
    else:
        name = vendor_text(_nvml_call(nvml, "nvmlDeviceGetName", handle))
        memory_gb = float(_nvml_call(nvml, "nvmlDeviceGetMemoryInfo", handle).total) / 2**30
    refused = no_counter = ""
    try:
        _nvml_call(nvml, "nvmlDeviceGetTotalEnergyConsumption", handle)
        has_counter = True
    except nvml.NVMLError as e:
        unavailable = _code(nvml, e, "NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")
        has_counter = False
        no_counter = str(e) if unavailable else ""
        try:
            _nvml_call(nvml, "nvmlDeviceGetPowerUsage", handle)
        except nvml.NVMLError as e2:
            if not (unavailable and _code(nvml, e2, "NVML_ERROR_NOT_SUPPORTED")):
                raised = e if not unavailable else e2
                refusal = _readings_refused(nvml, f"GPU-{i} ({name})", e, e2)
                if refusal is not None:
                    raised.greenprint_refusal = refusal  # type: ignore[attr-defined]
                raise raised from None
            skipped.append(not_counted(mig.label if mig is not None else f"GPU-{i}", name))
            return None
        if not unavailable:  # the counter refused (not "not supported"): its power still reads
            refused = f"energy counter refused (NVML: {e}): power sampled"
    gpu = _Gpu(i, handle, uuid if mig is None else mig.uuid, name, memory_gb, has_counter)
    gpu.rule, gpu.no_counter = refused, no_counter
    if mig is not None:
        gpu.share, gpu.proc_handle, gpu.tag = mig.share, mig.handle, mig.label
        gpu.rule = "; ".join(r for r in (mig.rule, refused) if r)
    return gpu


def probe_nvml(
    nvml: Any = None, *, environ: Mapping[str, str] | None = None
) -> tuple[MeterStatus, tuple[GPUInfo, ...]]:
    """Check NVML and list the visible GPUs. Never raises.

    Args:
        nvml: a pynvml-compatible module (default: ``pynvml``, imported lazily).
        environ: environment for ``CUDA_VISIBLE_DEVICES`` (default: ``os.environ``).

    Returns:
        ``(status, gpus)``; ``gpus`` is empty when NVML is unusable.
    """
    env = os.environ if environ is None else environ
    try:
        _, gpus, skipped = open_vendor(_VENDOR, nvml, env, keep=False)
    except GpuVendorUnavailable as e:
        return e.status, ()
    infos = tuple(g.info() for g in gpus)
    if not gpus:
        if env.get("CUDA_VISIBLE_DEVICES") is not None and not env["CUDA_VISIBLE_DEVICES"].strip():
            reason = "CUDA_VISIBLE_DEVICES is empty: no GPU visible to this process"
            return MeterStatus("nvml", False, reason, "unset CUDA_VISIBLE_DEVICES"), ()
        reason = "; ".join(skipped) or "NVML found no visible NVIDIA GPU"
        return MeterStatus("nvml", False, reason, None), ()
    parts = []
    for g in gpus:
        why = [no_counter_reason(g.no_counter)] if g.no_counter else []
        why += [g.rule] if g.rule else []
        how = "energy counter" if g.has_counter else "power sampling"
        parts.append(f"{g.label} {how}" + (f" ({'; '.join(why)})" if why else ""))
    return MeterStatus("nvml", True, "; ".join(parts + skipped), None), infos


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except nvml.NVMLError as e:
        logger.debug("nvmlShutdown failed: %s", e)


_VENDOR = GpuVendor(
    load=load_nvml,
    init=lambda module: module.nvmlInit(),
    error=lambda module: module.NVMLError,
    listing=_open,
    shutdown=_shutdown,
    status_for=_status_for,
)


class NvmlMeter(SummedGpuMeter):
    """Energy of the visible NVIDIA GPUs, summed.

    Build it with :meth:`open`. ``process_j`` follows NVML's per-process memory (see the module
    docstring); ``None`` when NVML cannot attribute or no tree is given.
    """

    _gpus: list[_Gpu]
    _vendor = _VENDOR
    _none_visible = "no visible NVIDIA GPU can be metered"

    def __init__(
        self,
        nvml: Any,
        gpus: Sequence[_Gpu],
        *,
        tree: ProcessTree | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(nvml, gpus, tree=tree, clock=clock)
        self._nvml = nvml

    @classmethod
    def open(
        cls,
        nvml: Any = None,
        *,
        environ: Mapping[str, str] | None = None,
        tree: ProcessTree | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> NvmlMeter:
        """Initialise NVML and meter every visible GPU.

        Raises:
            MeterError: NVML is unusable or no GPU is visible (the message says why).
        """
        return cls._open_with(nvml, environ=environ, tree=tree, clock=clock)

    @property
    def origin(self) -> Provenance:
        """``Provenance("measured", "nvml:counter:GPU-0+GPU-1")``, likewise for sampled power.

        A GPU whose counter was dropped mid-run is ``nvml:counter-then-power-sampling:GPU-0``,
        the detail saying why and from when.
        """
        notes = [f"{g.label}: {g.rule}" for g in self._gpus if g.rule]
        notes += [f"{g.label} {g.switched}" for g in self._gpus if g.switched]
        notes += [f"{g.label} {g.failed}" for g in self._gpus if g.failed]
        notes += [*self.left_out, self.unattributed, self.shared]
        return vendor_origin("nvml", [(g.label, g.source) for g in self._gpus], notes)

    def _call(self, gpu: _Gpu, name: str) -> Any:
        try:
            return _nvml_call(self._nvml, name, gpu.handle)
        except self._nvml.NVMLError as e:
            raise MeterError(f"{gpu.label}: {name} failed: {e}") from e

    def start(self) -> None:
        """Read the baseline counters and powers.

        A GPU whose first read fails (``NVMLError_Unknown``, ``GPU_IS_LOST``: an error of its
        own, after it opened) while other GPUs answer is estimated for the run at its table TDP
        at full load (nothing of it can be read, its utilisation included), as the whole meter
        would be; the others stay measured. The provenance says which and why
        (``nvml:counter:GPU-0+nvml:tdp-estimate:GPU-1 (GPU-1 failed at its first read (...):
        estimated from its TDP, NVIDIA A100-SXM4-40GB 400 W table:..., utilisation unknown:
        full load)``).

        Raises:
            MeterError: every GPU failed at its first read (the first one's error): the meter
                set then estimates them all (:meth:`estimate_if_unmeasured`).
        """
        now = self._clock()
        failed: list[tuple[_Gpu, MeterError]] = []
        for g in self._gpus:
            g.total_j, g.failed, g.estimated = 0.0, "", False
            try:
                if g.has_counter:
                    g.last_mj = int(self._call(g, "nvmlDeviceGetTotalEnergyConsumption"))
                else:
                    g.last_power_w = float(self._call(g, "nvmlDeviceGetPowerUsage")) / 1000.0
            except MeterError as e:
                failed.append((g, e))
        if failed and len(failed) == len(self._gpus):
            raise failed[0][1]
        for g, err in failed:
            self._estimate_one(g, err)
        self._begin(now)

    def _estimate_one(self, g: _Gpu, err: MeterError) -> None:
        """Estimate ``g``, failed at its first read, from its table TDP at full load."""
        from greenprint.meters._gpu_tdp import tdp_for

        tdp_w, source = tdp_for(g.name.split(" MIG ", 1)[0])
        if g.share != 1.0:  # a MIG device: its share is applied to the parent's power
            source = f"{source} x {g.share:g}"
        estimate_from_tdp(g, err, tdp_w, f"{tdp_w * g.share:g} W {source}")

    def read(self) -> MeterReading:
        """Cumulative energy of the GPUs since :meth:`start`, in J.

        A GPU whose calls fail (it fell off the bus, an NVML error of its own) while others
        still read continues at its own mean power so far, with its last process share; the
        others go on being read, and the provenance names it
        (``nvml:counter:GPU-0+nvml:then-mean-power:GPU-1 (GPU-1 failed after 12 s (...): its
        mean power so far (300 W) after)``).

        Raises:
            MeterError: an NVML call failed (GPU lost, driver gone...) for every GPU still
                read, or for one before any energy was read (no mean power to go on at).
        """
        now = self._clock()
        dt = max(now - self._t_last, 0.0)
        pids = self._tree_pids()
        shares: list[tuple[float, float | None]] = []
        for g in self._gpus:
            share: float | None
            if not g.failed:
                try:
                    joules = self._energy(g, now, dt)
                except MeterError as e:
                    if not self._fail_one(g, e):
                        raise
                else:
                    share = self._share(g, pids) if pids is not None else None
            if g.failed:  # failed now or before: its mean power (or TDP), its last share
                joules = g.last_power_w * dt
                if pids is None:
                    share = None
                elif g.estimated:  # never read: its processes may still be listed
                    share = self._share(g, pids)
                else:
                    share = g.last_share
            g.total_j += joules
            shares.append((joules * g.share, share))
        return self._add(now, shares)

    def _energy(self, g: _Gpu, now: float, dt: float) -> float:
        """``g``'s energy since the last read, in J (its counter, else its sampled power).

        Raises:
            MeterError: an NVML call for it failed.
        """
        if not g.has_counter:
            power_w = float(self._call(g, "nvmlDeviceGetPowerUsage")) / 1000.0
            joules = 0.5 * (power_w + g.last_power_w) * dt
            g.last_power_w = power_w
            return joules
        mj = self._counter(g, now, dt)
        if mj is None:  # dropped at this read: the power read then, over the interval
            return g.last_power_w * dt
        limit_mj = MAX_PLAUSIBLE_GPU_W * (dt + 1.0) * 1000.0
        delta = counter_step(
            g.last_mj, mj, COUNTER_MODULUS, limit_mj, name=f"{g.label} energy counter", unit="mJ"
        )
        g.last_mj = mj
        return delta / 1000.0

    def _fail_one(self, g: _Gpu, err: MeterError) -> bool:
        """:func:`~greenprint.meters._gpu_lines.go_on_at_mean_power` for ``g``."""
        return go_on_at_mean_power(g, self._gpus, self._t_last - self._t_start, err)

    def _counter(self, g: _Gpu, now: float, dt: float) -> int | None:
        """``g``'s energy counter in mJ, or ``None`` when it is dropped now for power sampling.

        Raises:
            MeterError: the counter failed with an error other than "not available", or the
                GPU's power cannot be read either.
        """
        name = "nvmlDeviceGetTotalEnergyConsumption"
        try:
            return int(_nvml_call(self._nvml, name, g.handle))
        except self._nvml.NVMLError as e:
            failed = MeterError(f"{g.label}: {name} failed: {e}")
            if not _code(self._nvml, e, *_COUNTER_UNAVAILABLE):
                raise failed from e
            try:
                power_w = float(_nvml_call(self._nvml, "nvmlDeviceGetPowerUsage", g.handle))
            except self._nvml.NVMLError as e2:
                raise failed from e2
            err = e
        logger.warning("%s: energy counter failed (%s); sampling power from now on", g.label, err)
        g.has_counter = False
        g.last_power_w = power_w / 1000.0
        since_s = max(now - dt - self._t_start, 0.0)
        g.switched = f"energy counter failed ({err}): power sampled after {since_s:.0f} s"
        return None

    def _estimated_gpus(self) -> list[Any]:
        """Each GPU's table TDP (a MIG device's share of its parent's), for a failed start."""
        from greenprint.meters._gpu_tdp import EstimatedGpu, tdp_for

        out = []
        for g in self._gpus:
            tdp_w, source = tdp_for(g.name.split(" MIG ", 1)[0])
            if g.share != 1.0:
                tdp_w, source = tdp_w * g.share, f"{source} x {g.share:g}"
            out.append(EstimatedGpu(g.label, g.name, tdp_w, source))
        return out

    def _share(self, gpu: _Gpu, pids: frozenset[int]) -> float | None:
        """The tree's share of ``gpu`` now, or ``None`` when NVML cannot list its processes.

        A listing that fails after one that worked keeps the last share (a timeout, a list that
        grew between pynvml's two calls) for up to
        :data:`~greenprint.meters._gpu_meter.HELD_LISTINGS` reads in a row; one that never
        worked, or fails once more, is ``None`` (the provenance says which GPU, why and when).
        """
        try:
            procs = _nvml_call(self._nvml, "nvmlDeviceGetComputeRunningProcesses", gpu.proc_handle)
        except self._nvml.NVMLError as e:
            return self._listing_failed(gpu.label, gpu.last_share, str(e))
        self._listed(gpu.label)
        memory = [getattr(p, "usedGpuMemory", None) for p in procs or ()]
        pid_list = [p.pid for p in procs or ()]
        gpu.last_share = self._tree_share(gpu.label, "NVML", pid_list, memory, pids)
        if gpu.last_share is None:
            self._no_share(gpu.label, "NVML lists no process of this PID namespace")
        return gpu.last_share
