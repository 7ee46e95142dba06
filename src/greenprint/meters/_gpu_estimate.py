"""GPU energy estimated from TDP and utilisation, when a GPU is present but no counter is readable.

Used when this machine has a GPU that no meter can read: pynvml missing or NVML refusing
(permissions, a driver/library mismatch), amdsmi missing, or GPUs that report neither energy nor
power. Instead of "no GPU energy", each visible GPU is modelled like the CPU::

    power_w = idle_w + (tdp_w - idle_w) * utilisation,       idle_w = GPU_IDLE_FRACTION * tdp_w

integrated with the trapezoid rule between reads. ``tdp_w``, per GPU, in this order:

1. the enforced power limit when NVML can read it (``nvmlDeviceGetEnforcedPowerLimit``), or the
   amdgpu ``power1_cap`` in sysfs: what the board is allowed to draw here;
2. the shipped table ``meters/data/gpu_tdp.csv`` (vendor pages, Green Algorithms, ML CO2 Impact;
   see ``SOURCES.md``), matched by :func:`match_gpu_tdp`; per GCD half the package on MI250;
3. :data:`DEFAULT_GPU_TDP_W`, labelled as a default.

``utilisation`` is NVML's ``utilization.gpu`` or amdgpu's ``gpu_busy_percent`` (sysfs, readable
by everyone) when available; otherwise it is taken as 1 (full load: an upper bound, the usage
factor Green Algorithms assumes when it is unknown) and the provenance says so. A reading that is
not a whole percentage in [0, 100] (``gpu_busy_percent`` reads ``65535``, i.e. 0xFFFF, on some
firmware and while the GPU resets; a read error; text) is missing, not clamped: a source that
gives none at discovery is "unknown", and reads missing later are counted and named in the
provenance (``utilisation sysfs, unknown in 3 of 10 reads: full load then``). The tracked
process gets no share (``process_j`` is ``None``): nothing per process can be read either.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprint.meters._base import Meter
from greenprint.meters._gpu_tdp import (
    DEFAULT_GPU_TDP_W,
    GPU_IDLE_FRACTION,
    EstimatedGpu,
    GpuTdpEstimateMeter,
    GpuTdpMatch,
    busy_fraction,
    gpu_key,
    gpu_tokens,
    match_gpu_tdp,
    tdp_for,
)
from greenprint.meters._status import MeterStatus, vendor_text
from greenprint.meters._where import no_gpu_found

__all__ = [  # the model and the table live in _gpu_tdp; their names are kept here too
    "DEFAULT_GPU_TDP_W",
    "EstimatedGpu",
    "GPU_IDLE_FRACTION",
    "GpuTdpEstimateMeter",
    "GpuTdpMatch",
    "NvidiaProcGpu",
    "busy_fraction",
    "estimate_status",
    "find_unmetered_gpus",
    "gpu_key",
    "gpu_tokens",
    "match_gpu_tdp",
    "other_gpu_meter",
    "tdp_for",
    "unmetered_gpus",
    "visible_nvidia_proc_gpus",
]

logger = logging.getLogger(__name__)


# -- finding GPUs that no meter reads ------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


@dataclass(frozen=True)
class NvidiaProcGpu:
    """An NVIDIA GPU as the driver lists it in ``/proc/driver/nvidia/gpus/<bus>/information``.

    Attributes:
        model: ``Model``.
        uuid: ``GPU UUID`` (``""`` when absent).
        bus: the PCI address, the listing's directory name (``"0000:3b:00.0"``).
        minor: ``Device Minor``, the ``N`` of ``/dev/nvidiaN`` (``None`` when absent).
        excluded: ``GPU Excluded: Yes`` (``NVreg_ExcludedGpus``): no process can use it.
    """

    model: str
    uuid: str
    bus: str = ""
    minor: int | None = None
    excluded: bool = False


def nvidia_proc_gpus(root: str | os.PathLike[str] | None = None) -> list[NvidiaProcGpu]:
    """Each NVIDIA GPU the driver lists, in PCI order (no NVML needed).

    ``root`` defaults to ``/proc/driver/nvidia`` (under ``$GREENPRINT_PROC_DRIVER_ROOT``).
    """
    from greenprint.meters._where import nvidia_proc_root

    out = []
    base = Path(root if root is not None else nvidia_proc_root()) / "gpus"
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    for entry in entries:
        text = _read(entry / "information") or ""
        fields = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("model"):
            minor = fields.get("device minor", "")
            out.append(
                NvidiaProcGpu(
                    fields["model"],
                    fields.get("gpu uuid", ""),
                    entry.name,
                    int(minor) if minor.isdigit() else None,
                    fields.get("gpu excluded", "").lower() == "yes",
                )
            )
    return out


def visible_nvidia_proc_gpus(
    environ: Mapping[str, str], root: str | os.PathLike[str] | None = None
) -> tuple[list[tuple[int, NvidiaProcGpu]], str]:
    """The listed NVIDIA GPUs this process can use, numbered in PCI order, and why.

    Left out: GPUs the driver excludes, GPUs the device cgroup (or a container's ``/dev``)
    denies (:func:`greenprint.meters._device_cgroup.allowed_minors`); the rest are numbered
    from 0 in PCI order, which ``CUDA_VISIBLE_DEVICES`` picks from by index or UUID (as NVML's
    path does). CUDA numbers them so with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; by default it puts
    the fastest first, so where the GPUs left are of different models and an index picks one,
    the note says the index may name another GPU
    (:data:`~greenprint.meters._nvml_devices.ORDER_NOTE`).

    Returns:
        ``([(cuda_index, gpu)...], note)``: ``note`` names the GPUs counted and why (``"counted
        0000:3b:00.0 of the driver's 4 NVIDIA GPUs (the device cgroup (v1 devices.list) allows
        /dev/nvidia2; CUDA_VISIBLE_DEVICES unset)"``), ``""`` when the driver lists none.
    """
    from greenprint.meters._device_cgroup import allowed_minors
    from greenprint.meters._nvml_devices import (
        ORDER_NOTE,
        parse_cuda_visible_devices,
        picks_by_index,
    )

    listed = nvidia_proc_gpus(root)
    if not listed:
        return [], ""
    usable = [g for g in listed if not g.excluded]
    why = []
    if len(usable) < len(listed):
        why.append(f"{len(listed) - len(usable)} excluded by the driver")
    allowed, how = allowed_minors([g.minor for g in usable])
    why.append(how)
    if allowed is not None:  # a GPU without a minor cannot be told apart: kept
        usable = [g for g in usable if g.minor is None or g.minor in allowed]
    value = environ.get("CUDA_VISIBLE_DEVICES")
    picked = parse_cuda_visible_devices(value, [g.uuid for g in usable])
    why.append("CUDA_VISIBLE_DEVICES unset" if value is None else f"CUDA_VISIBLE_DEVICES={value}")
    if picks_by_index(environ) and len({g.model for g in usable}) > 1:
        why.append(ORDER_NOTE)  # CUDA numbers mixed GPUs fastest first: not PCI order
    counted = ", ".join(usable[i].bus for i in picked) or "none"
    note = f"counted {counted} of the driver's {len(listed)} NVIDIA GPUs ({'; '.join(why)})"
    return [(i, usable[i]) for i in picked], note


@dataclass(frozen=True)
class AmdCard:
    """An AMD GPU found in sysfs (``/sys/class/drm/cardN/device``)."""

    card: str
    name: str
    uuid: str
    power_cap_w: float | None
    busy_path: Path | None


def _apu_render_minors(kfd_nodes: Path) -> set[int]:
    """Render minors of the KFD nodes that have both CPU cores and SIMDs: APUs' GPUs."""
    minors: set[int] = set()
    try:
        nodes = list(kfd_nodes.iterdir())
    except OSError:
        return minors
    for node in nodes:
        props: dict[str, str] = {}
        for line in (_read(node / "properties") or "").splitlines():
            key, _, value = line.partition(" ")
            props[key] = value.strip()
        try:
            if int(props.get("cpu_cores_count", "0")) > 0 and int(props.get("simd_count", "0")) > 0:
                minors.add(int(props["drm_render_minor"]))
        except (KeyError, ValueError):
            continue
    return minors


def amd_sysfs_gpus(drm_root: str | os.PathLike[str] | None = None) -> list[AmdCard]:
    """The discrete AMD GPUs (PCI vendor 0x1002) under the DRM class directory, by card number.

    ``drm_root`` defaults to ``$GREENPRINT_DRM_ROOT``, else ``/sys/class/drm``. The GPU of an APU
    (a KFD node under ``../kfd/kfd/topology/nodes`` with CPU cores and SIMDs, matched by its
    render minor) is left out: it is inside the CPU package, which the CPU meter covers.
    """
    root = Path(drm_root or os.environ.get("GREENPRINT_DRM_ROOT") or "/sys/class/drm")
    try:
        cards = [p for p in root.iterdir() if re.fullmatch(r"card\d+", p.name)]
    except OSError:
        return []
    apus = _apu_render_minors(root.parent / "kfd" / "kfd" / "topology" / "nodes")
    out = []
    for card in sorted(cards, key=lambda p: int(p.name[4:])):
        dev = card / "device"
        if (_read(dev / "vendor") or "").lower() != "0x1002":
            continue
        render = [int(r.name[7:]) for r in (dev / "drm").glob("renderD*") if r.name[7:].isdigit()]
        if any(minor in apus for minor in render):
            logger.debug(
                "%s is an APU's GPU: inside the CPU package, not estimated apart", card.name
            )
            continue
        cap_w: float | None = None
        for hw in sorted((dev / "hwmon").glob("hwmon*")):
            cap = _read(hw / "power1_cap")
            if cap and cap.isdigit() and int(cap) > 0:
                cap_w = int(cap) / 1e6  # uW
                break
        busy = dev / "gpu_busy_percent"
        out.append(
            AmdCard(
                card.name,
                _read(dev / "product_name") or f"AMD GPU ({_read(dev / 'device') or '?'})",
                _read(dev / "unique_id") or "",
                cap_w,
                busy if busy.exists() else None,
            )
        )
    return out


def _sysfs_busy(path: Path) -> Callable[[], float | None]:
    def read() -> float | None:
        text = _read(path)  # None on a read error
        return None if text is None else busy_fraction(text)

    return read


def _nvml_utilisation(nvml: Any, handle: Any) -> Callable[[], float | None]:
    def read() -> float | None:
        try:
            return busy_fraction(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nvml.NVMLError:
            return None

    return read


def nvml_unmetered(nvml: Any, environ: Mapping[str, str]) -> list[EstimatedGpu]:
    """The visible NVIDIA GPUs NVML lists but cannot meter (NVML initialised by the caller)."""
    from greenprint.meters._nvml import open_handles, parse_cuda_visible_devices

    handles, uuids, _ = open_handles(nvml)  # GPUs a device cgroup denies are not this process's
    out = []
    for i in parse_cuda_visible_devices(environ.get("CUDA_VISIBLE_DEVICES"), uuids):
        name = vendor_text(nvml.nvmlDeviceGetName(handles[i]))
        try:
            limit_w: float | None = float(nvml.nvmlDeviceGetEnforcedPowerLimit(handles[i])) / 1e3
        except nvml.NVMLError:
            limit_w = None
        tdp_w, source = tdp_for(name, limit_w=limit_w)
        util = _nvml_utilisation(nvml, handles[i])
        known = util() is not None
        out.append(
            EstimatedGpu(
                f"GPU-{i}", name, tdp_w, source, util if known else None, "nvml" if known else ""
            )
        )
    return out


def find_unmetered_gpus(
    *,
    environ: Mapping[str, str] | None = None,
    nvidia_root: str | os.PathLike[str] | None = None,
    drm_root: str | os.PathLike[str] | None = None,
    vendors: Sequence[str] = ("nvidia", "amd"),
) -> list[EstimatedGpu]:
    """The GPUs visible to this process found without a vendor library. Never raises.

    NVIDIA: ``/proc/driver/nvidia/gpus/*/information``, those this process may open
    (:func:`visible_nvidia_proc_gpus`: device cgroup, ``CUDA_VISIBLE_DEVICES``);
    AMD: sysfs cards of vendor 0x1002 (``ROCR/HIP/CUDA_VISIBLE_DEVICES`` honoured, by card order),
    with ``gpu_busy_percent`` as utilisation and ``power1_cap`` as TDP where readable.
    """
    from greenprint.meters._amd import parse_rocm_visible_devices

    env = os.environ if environ is None else environ
    out: list[EstimatedGpu] = []
    if "nvidia" in vendors:
        found, note = visible_nvidia_proc_gpus(env, nvidia_root)
        for i, gpu in found:
            tdp_w, source = tdp_for(gpu.model)
            out.append(EstimatedGpu(f"GPU-{i}", gpu.model, tdp_w, source, counted=note))
    if "amd" in vendors:
        cards = amd_sysfs_gpus(drm_root)
        for i in parse_rocm_visible_devices(env, [c.uuid or c.card for c in cards]):
            card = cards[i]
            tdp_w, source = tdp_for(card.name, limit_w=card.power_cap_w)
            busy = _sysfs_busy(card.busy_path) if card.busy_path is not None else None
            if busy is not None and busy() is None:  # garbage (0xFFFF) or unreadable now
                logger.info("%s gpu_busy_percent gives no valid figure: unknown", card.card)
                busy = None
            out.append(
                EstimatedGpu(
                    f"AMD-{i}", card.name, tdp_w, source, busy, "sysfs" if busy is not None else ""
                )
            )
    return out


def estimate_status(
    metered: bool, *, nvml: Any = None, environ: Mapping[str, str] | None = None
) -> MeterStatus:
    """The ``estimate:gpu`` line of ``greenprint hardware``. Never raises.

    Args:
        metered: a vendor meter (NVML, amdsmi) reads the GPUs: the estimate is not needed.
        nvml: a pynvml-compatible module.
        environ: environment for the visible-device variables.
    """
    if metered:
        return MeterStatus("estimate:gpu", False, "not needed: a GPU counter is readable", None)
    gpus, close = unmetered_gpus(nvml=nvml, environ=environ)
    if close is not None:
        close()
    env = os.environ if environ is None else environ
    if not gpus and "MIG-" in (env.get("CUDA_VISIBLE_DEVICES") or "").upper():
        reason = (
            "CUDA_VISIBLE_DEVICES names a MIG device and NVML cannot be used: its share of the "
            "parent GPU is unknown, so it is not estimated"
        )
        return MeterStatus("estimate:gpu", False, reason, "make NVML usable (see the nvml line)")
    if not gpus:
        _, note = visible_nvidia_proc_gpus(env)
        if note:  # the driver lists GPUs, none of them this process's
            return MeterStatus("estimate:gpu", False, f"no GPU this process can use: {note}", None)
        return no_gpu_found()  # also said, without importing this module, by discovery
    parts = "; ".join(
        f"{g.label} {g.name}: {g.tdp_w:g} W ({g.tdp_source}), utilisation "
        + (g.utilisation_source or "unknown (full load assumed)")
        for g in gpus
    )
    floor = f"idle floor {GPU_IDLE_FRACTION:.0%} of TDP"
    fix = (
        "make the GPU counter readable (see the nvml/amdsmi lines above)"
        if not any(g.utilisation_source for g in gpus)
        else None
    )
    counted = "".join(f"; {c}" for c in dict.fromkeys(g.counted for g in gpus if g.counted))
    return MeterStatus("estimate:gpu", True, f"{parts}; {floor}{counted}", fix)


def unmetered_gpus(
    *,
    nvml: Any = None,
    environ: Mapping[str, str] | None = None,
    nvidia_root: str | os.PathLike[str] | None = None,
    drm_root: str | os.PathLike[str] | None = None,
) -> tuple[list[EstimatedGpu], Callable[[], None] | None]:
    """Every visible GPU, for the estimate, when no vendor meter could be opened. Never raises.

    NVIDIA GPUs through NVML when it initialises (names, power limits, utilisation), else the
    driver's ``/proc`` listing; AMD GPUs through sysfs.

    Returns:
        ``(gpus, close)``: ``close`` shuts NVML down once the estimate is done with it (``None``
        when NVML was not used).
    """
    from greenprint.meters._nvml import NvmlUnavailable, load_nvml

    env = os.environ if environ is None else environ
    gpus: list[EstimatedGpu] = []
    close: Callable[[], None] | None = None
    module: Any = None
    try:
        module = load_nvml(nvml)
    except NvmlUnavailable:
        module = None
    if module is not None:
        try:
            module.nvmlInit()
        except module.NVMLError as e:
            logger.debug("NVML unusable for the GPU estimate: %s", e)
            module = None
    if module is not None:
        try:
            gpus.extend(nvml_unmetered(module, env))
        except module.NVMLError as e:
            logger.debug("NVML listing failed: %s", e)
            gpus.clear()
        if gpus:
            close = module.nvmlShutdown
        else:
            try:
                module.nvmlShutdown()
            except module.NVMLError:
                pass
            module = None
    if module is None:
        gpus.extend(find_unmetered_gpus(environ=env, nvidia_root=nvidia_root, vendors=("nvidia",)))
    gpus.extend(find_unmetered_gpus(environ=env, drm_root=drm_root, vendors=("amd",)))
    return gpus, close


def other_gpu_meter(
    *,
    amdsmi: Any = None,
    amd_usable: bool | None = None,
    nvml: Any = None,
    environ: Mapping[str, str] | None = None,
    tree: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> Meter | None:
    """The GPU meter when NVML meters nothing: amdsmi, else the TDP estimate, else ``None``.

    Args:
        amdsmi: an amdsmi-compatible module (default: ``amdsmi`` when ``/dev/kfd`` exists).
        amd_usable: what discovery found for amdsmi (``False`` skips trying it again).
        nvml: a pynvml-compatible module, for the estimate's names and utilisation.
        environ: environment for the visible-device variables.
        tree: the tracked process tree (for amdsmi's per-process share).
        clock: monotonic clock in s.
    """
    from greenprint._exceptions import MeterError
    from greenprint.meters._amd import AmdMeter

    if amdsmi is not None or amd_usable is None or amd_usable:
        try:
            return AmdMeter.open(amdsmi, environ=environ, tree=tree, clock=clock)
        except MeterError as e:
            logger.debug("no AMD GPU meter: %s", e)
    gpus, close = unmetered_gpus(nvml=nvml, environ=environ)
    if not gpus:
        return None
    logger.info("GPU present but no counter readable: estimating from TDP and utilisation")
    return GpuTdpEstimateMeter(gpus, clock=clock, close=close)
