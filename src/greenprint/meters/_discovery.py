"""Hardware discovery beside the meters: what this machine has and which meter fits each part.

:func:`detect_hardware` never raises and never touches the network; it reads ``/proc/cpuinfo``
(Linux), ``sysctl`` (macOS) or the registry (Windows), psutil, the powercap tree and NVML. Each
meter gets a :class:`MeterStatus`: usable or not, why, and the exact fix.
:func:`cpu_estimate_for` and :func:`ram_estimate_for` build the estimates that fit the hardware
found. The public face is :mod:`greenprint.hardware`.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from greenprint._provenance import Provenance
from greenprint.meters._attribution import ProcessTree, total_ram_bytes
from greenprint.meters._base import Meter
from greenprint.meters._beyond import beyond_cache_key, beyond_statuses
from greenprint.meters._estimate import (
    DEFAULT_W_PER_CORE,
    IDLE_FRACTION,
    RAM_W_PER_GB,
    CpuEstimateMeter,
    RamEstimateMeter,
)
from greenprint.meters._quota import CpuQuota, cpu_quota
from greenprint.meters._rapl import Opener, probe_rapl, resolve_rapl_root
from greenprint.meters._status import GPUInfo, MeterStatus
from greenprint.meters._tdp import match_cpu_tdp, visible_share
from greenprint.meters._where import (
    CGROUP_ROOT_ENV,
    absent_amdsmi,
    absent_nvml,
    amd_driver_present,
    gpu_may_be_present,
    no_gpu_found,
    nvidia_driver_present,
)

__all__ = [
    "HardwareInfo",
    "configured_instead",
    "cpu_estimate_for",
    "cpu_model_name",
    "detect_hardware",
    "parse_cpuinfo",
    "ram_estimate_for",
    "with_configured_tdp",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HardwareInfo:
    """The machine, as greenprint sees it.

    Attributes:
        cpu_model: CPU model string as the OS reports it (``"AMD EPYC"`` in many VMs).
        sockets: CPU packages.
        physical_cores: physical cores, all sockets.
        logical_cores: logical CPUs (hardware threads, or vCPUs in a VM).
        ram_gb: installed memory in GB (2**30 bytes).
        gpus: the NVIDIA GPUs visible to this process (``CUDA_VISIBLE_DEVICES`` honoured).
        meters: status of each energy source: ``rapl``, ``nvml``, ``psys``, ``hwmon`` (CPU
            sensors beyond RAPL), ``intel-gpu``, ``powermetrics`` (Apple silicon),
            ``estimate:cpu``, ``estimate:ram``.
        cpu_tdp_w: TDP per socket from the shipped table in W, or ``None`` when the model is not
            in it (the estimate then uses the per-core default).
        cpu_tdp_source: ``"table:<matched model>"`` or ``"default-per-core"``.
    """

    cpu_model: str
    sockets: int
    physical_cores: int
    logical_cores: int
    ram_gb: float
    gpus: tuple[GPUInfo, ...]
    meters: tuple[MeterStatus, ...]
    cpu_tdp_w: float | None
    cpu_tdp_source: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return asdict(self)

    def meter(self, name: str) -> MeterStatus | None:
        """The status of the meter called ``name``, or ``None``."""
        return next((m for m in self.meters if m.name == name), None)

    @property
    def cpu_tdp_origin(self) -> Provenance:
        """Where :attr:`cpu_tdp_w` came from, as data.

        ``kind="table"`` with the matched table row as ``source``, or ``kind="default"`` (the
        per-core default).
        """
        origin = Provenance.parse(self.cpu_tdp_source)
        return origin if origin.kind == "table" else Provenance("default", "per-core")


def parse_cpuinfo(text: str) -> tuple[str | None, int]:
    """``(model, sockets)`` from the text of ``/proc/cpuinfo``.

    The model is the first ``model name`` (x86), else ``Hardware``/``cpu model``/``Processor``
    (Arm, MIPS); sockets are the distinct ``physical id`` values (1 when absent).
    """
    model: str | None = None
    fallback: str | None = None
    physical_ids: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "model name" and model is None and value:
            model = value
        elif key in ("hardware", "cpu model", "processor") and fallback is None and value:
            if not value.isdigit():  # x86's "processor: 0" is an index
                fallback = value
        elif key == "physical id":
            physical_ids.add(value)
    return model or fallback, max(len(physical_ids), 1)


def _read_cpuinfo() -> tuple[str | None, int]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return parse_cpuinfo(fh.read())
    except OSError:
        return None, 1


def _run_quiet(argv: list[str]) -> str | None:
    import subprocess  # macOS only; keeps the import light elsewhere

    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cpu_model_name() -> tuple[str, int]:
    """The CPU model string and the number of sockets, by the best local source.

    Linux: ``/proc/cpuinfo`` (``model name``, else ``Hardware``/``cpu model``); macOS:
    ``sysctl machdep.cpu.brand_string`` (``"Apple M2"``); Windows: the registry's
    ``ProcessorNameString``; else ``platform.processor()``.
    """
    if sys.platform.startswith("linux"):
        model, sockets = _read_cpuinfo()
        if model:
            return model, sockets
    elif sys.platform == "darwin":
        brand = _run_quiet(["sysctl", "-n", "machdep.cpu.brand_string"])
        packages = _run_quiet(["sysctl", "-n", "hw.packages"])
        if brand:
            return brand, int(packages) if packages and packages.isdigit() else 1
    elif sys.platform == "win32":  # pragma: no cover - not tested on Linux
        try:
            import winreg

            key = winreg.OpenKey(
                winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
            )
            return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip(), 1
        except OSError:
            pass
    import platform  # the last resort only

    return (platform.processor() or platform.machine() or "unknown CPU"), 1


def _estimate_statuses(
    model: str,
    tdp_w: float | None,
    rule: str,
    sockets: int,
    logical: int,
    ram_gb: float,
    physical: int,
    quota: CpuQuota | None = None,
) -> tuple[MeterStatus, MeterStatus]:
    idle = f"idle floor {IDLE_FRACTION:.0%} of TDP, scaled by CPU utilisation"
    if quota is not None and quota.cpus < logical:
        idle += (
            f"; a CPU quota of {quota.text}: the process carries at most "
            f"{quota.cpus:.3g}/{logical} of the idle floor"
        )
    if tdp_w is not None:
        per = f"{tdp_w:g} W" if sockets == 1 else f"{sockets} x {tdp_w:g} W"
        share = visible_share(model, sockets=sockets, logical=logical, physical=physical)
        seen = (
            ""
            if share is None
            else f"; this machine sees {share.note}: {tdp_w * sockets * share.fraction:.3g} W"
        )
        cpu_reason = f"TDP {per} ({rule}){seen}; {idle}"
        cpu_fix = None
    else:
        cpu_reason = (
            f"{model!r} is not in the TDP table: default {DEFAULT_W_PER_CORE:g} W per logical "
            f"CPU x {logical} = {DEFAULT_W_PER_CORE * logical:g} W; {idle}"
        )
        cpu_fix = (
            "if you know the power at full load of the CPUs this machine sees, set "
            "GREENPRINT_CPU_TDP_W (or cpu_tdp_w in greenprint.toml)"
        )
    ram_reason = (
        f"{RAM_W_PER_GB:g} W/GB x {ram_gb:.1f} GB = {RAM_W_PER_GB * ram_gb:.1f} W "
        "(Green Algorithms constant); process share by RSS"
    )
    return (
        MeterStatus("estimate:cpu", True, cpu_reason, cpu_fix),
        MeterStatus("estimate:ram", True, ram_reason, None),
    )


def detect_hardware(
    *,
    rapl_root: str | None = None,
    nvml: Any = None,
    rapl_opener: Opener | None = None,
    amdsmi: Any = None,
) -> HardwareInfo:
    """Describe this machine and which meters can be used. Never raises; cached per arguments.

    Args:
        rapl_root: powercap directory (default ``$GREENPRINT_RAPL_ROOT`` or
            ``/sys/class/powercap``).
        nvml: a pynvml-compatible module (default: ``pynvml``, imported only when an NVIDIA
            driver is present).
        rapl_opener: function opening RAPL files (tests use it to simulate permission errors).
        amdsmi: an amdsmi-compatible module (default: ``amdsmi``, imported only when
            ``/dev/kfd`` exists).

    Returns:
        The :class:`HardwareInfo`. ``ROCR_VISIBLE_DEVICES``, ``HIP_VISIBLE_DEVICES``,
        ``CUDA_VISIBLE_DEVICES``, ``GREENPRINT_RAPL_ROOT``,
        ``GREENPRINT_HWMON_ROOT``, ``GREENPRINT_DRM_ROOT``, ``GREENPRINT_POWERMETRICS`` and
        ``GREENPRINT_CGROUP_ROOT`` (the CPU quota) are part of the cache key.
    """
    return _detect(
        str(resolve_rapl_root(rapl_root)),
        nvml,
        rapl_opener,
        os.environ.get("CUDA_VISIBLE_DEVICES"),
        beyond_key=beyond_cache_key(),
        cgroup_root=os.environ.get(CGROUP_ROOT_ENV),
        amdsmi=amdsmi,
        rocm_visible=(
            os.environ.get("ROCR_VISIBLE_DEVICES"),
            os.environ.get("HIP_VISIBLE_DEVICES"),
        ),
    )


def _cpu_counts() -> tuple[int, int]:
    """Logical and physical CPUs, as psutil's ``cpu_count`` gives them.

    On Linux, without importing psutil (a run's first start pays for every import): logical
    CPUs online from ``sysconf``, cores as the distinct sysfs ``core_cpus_list`` (older kernels:
    ``thread_siblings_list``), psutil's own first source. Elsewhere, or when sysfs has neither,
    psutil.
    """
    if sys.platform.startswith("linux"):
        base = "/sys/devices/system/cpu"
        try:
            cpus = [n for n in os.listdir(base) if n.startswith("cpu") and n[3:].isdigit()]
        except OSError:
            cpus = []
        for leaf in ("core_cpus_list", "thread_siblings_list"):
            cores: set[bytes] = set()
            for cpu in cpus:
                try:
                    with open(f"{base}/{cpu}/topology/{leaf}", "rb") as fh:
                        cores.add(fh.read().strip())
                except OSError:
                    continue
            if cores:
                logical = os.cpu_count() or len(cpus) or 1
                return logical, len(cores)
    import psutil

    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    return logical, psutil.cpu_count(logical=False) or logical


@functools.lru_cache(maxsize=32)
def _detect(
    rapl_root: str,
    nvml: Any,
    opener: Callable[..., Any] | None,
    cuda_visible: str | None,
    beyond_key: tuple[str | None, ...] = (),  # hwmon, DRM and powermetrics overrides
    amdsmi: Any = None,
    rocm_visible: tuple[str | None, ...] = (),  # ROCR_ and HIP_VISIBLE_DEVICES
    cgroup_root: str | None = None,  # where the CPU quota is read
) -> HardwareInfo:
    model, sockets = cpu_model_name()
    logical, physical = _cpu_counts()
    ram_gb = round(total_ram_bytes() / 2**30, 2)
    match = match_cpu_tdp(model)
    if match is not None:
        tdp_w: float | None = match.tdp_w
        source = str(Provenance("table", match.model))
        rule = f"{match.rule} match of {match.model!r} in the shipped table"
    else:
        tdp_w, source, rule = None, "default-per-core", ""
    rapl_probe = probe_rapl(rapl_root, opener=opener or open)
    rapl = rapl_probe.status
    env = dict(os.environ)
    if cuda_visible is None:
        env.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible
    nvml_status, gpus, amd_status, gpu_est = _gpu_statuses(nvml, amdsmi, env)
    quota = cpu_quota(cgroup_root)
    cpu_est, ram_est = _estimate_statuses(
        model, tdp_w, rule, sockets, logical, ram_gb, physical, quota
    )
    return HardwareInfo(
        cpu_model=model,
        sockets=sockets,
        physical_cores=physical,
        logical_cores=logical,
        ram_gb=ram_gb,
        gpus=gpus,
        meters=(
            rapl,
            nvml_status,
            amd_status,
            *beyond_statuses(rapl_probe),
            cpu_est,
            gpu_est,
            ram_est,
        ),
        cpu_tdp_w=tdp_w,
        cpu_tdp_source=source,
    )


def _gpu_statuses(
    nvml: Any, amdsmi: Any, env: dict[str, str]
) -> tuple[MeterStatus, tuple[GPUInfo, ...], MeterStatus, MeterStatus]:
    """The ``nvml``, ``amdsmi`` and ``estimate:gpu`` statuses, and the GPUs found.

    A vendor module (and the GPU estimate's) is imported only when its cheap presence check
    passes or a module is given: a machine without GPUs hears why from
    :mod:`greenprint.meters._where`, in the same words the vendor modules use.
    """
    gpus: tuple[GPUInfo, ...] = ()
    amd_gpus: tuple[GPUInfo, ...] = ()
    if nvml is None and not nvidia_driver_present():
        nvml_status = absent_nvml()
    else:
        from greenprint.meters._nvml import probe_nvml

        nvml_status, gpus = probe_nvml(nvml, environ=env)
    if amdsmi is None and not amd_driver_present():
        amd_status = absent_amdsmi()
    else:
        from greenprint.meters._amd import probe_amd

        amd_status, amd_gpus = probe_amd(amdsmi, environ=env)
    metered = nvml_status.usable or amd_status.usable
    if metered or nvml is not None or gpu_may_be_present(env):
        from greenprint.meters._gpu_estimate import estimate_status

        gpu_est = estimate_status(metered, nvml=nvml, environ=env)
    else:
        gpu_est = no_gpu_found()
    return nvml_status, gpus + amd_gpus, amd_status, gpu_est


def configured_instead(hardware: HardwareInfo) -> str:
    """What a configured CPU TDP replaces here: the shipped table's figure, or the default."""
    return "the shipped table" if hardware.cpu_tdp_w is not None else "the per-core default"


def with_configured_tdp(
    hardware: HardwareInfo, configured: tuple[float, str] | None
) -> HardwareInfo:
    """``hardware`` with its estimate:cpu status giving the configured TDP, when one is set.

    Detection (cached) reads no configuration: its estimate:cpu status gives the shipped
    table's TDP or the per-core default, with the fix "set GREENPRINT_CPU_TDP_W". With
    ``cpu_tdp_w`` set, the CPU estimate (the meter in use, or RAPL's fallback) takes that
    figure instead, so the status says it, with no fix; how the TDP becomes power (the idle
    floor, a CPU quota) is kept as detected.

    Args:
        hardware: the detected hardware.
        configured: ``(W, source)`` from
            :func:`~greenprint.meters._estimate.configured_cpu_tdp`, or ``None``.
    """
    if configured is None:
        return hardware
    watts, source = configured
    statuses = []
    for status in hardware.meters:
        if status.name == "estimate:cpu" and status.usable:
            at = status.reason.find("idle floor")
            scaling = f"; {status.reason[at:]}" if at >= 0 else ""
            status = MeterStatus(
                status.name,
                True,
                f"{watts:g} W configured ({source}) for the CPUs this machine sees, used "
                f"instead of {configured_instead(hardware)}{scaling}",
            )
        statuses.append(status)
    return replace(hardware, meters=tuple(statuses))


def cpu_estimate_for(
    hardware: HardwareInfo,
    *,
    tree: ProcessTree | None = None,
    configured: tuple[float, str] | None = None,
    quota: CpuQuota | None = None,
) -> Meter:
    """The CPU estimate: a configured TDP, else table TDP x sockets, else the per-core default.

    The per-core default's provenance names the model and the setting that gives its real
    figure: ``"estimate:default-per-core (4 W/core x 2; 'AMD EPYC' is not in the TDP table: set
    GREENPRINT_CPU_TDP_W or cpu_tdp_w to its power at full load)"``. Under a CPU quota below
    the machine's CPUs (a container's ``--cpus``), the tree carries at most that part of the idle
    floor, and the provenance says so (``"...; idle floor shared at most 2/64: a CPU quota of 2
    CPUs (cgroup v2 cpu.max 200000 100000)"``).

    Args:
        hardware: the detected hardware.
        tree: the tracked process tree.
        configured: ``(W, source)`` from
            :func:`~greenprint.meters._estimate.configured_cpu_tdp`, which wins when given.
        quota: this process's CPU quota (:func:`~greenprint.meters._quota.cpu_quota`), or
            ``None``.
    """
    if configured is not None:
        configured_w, source = configured
        tdp_w, kind, detail = configured_w, "configured-tdp", f"{configured_w:g} W, {source}"
    elif hardware.cpu_tdp_w is not None:
        origin = hardware.cpu_tdp_origin
        row = origin.source if origin.kind == "table" else hardware.cpu_tdp_source
        tdp_w, detail = _table_tdp(hardware)
        kind = f"tdp:{row}"
    else:
        cores = max(hardware.logical_cores, 1)
        # the user is told how to give the real figure, as `greenprint hardware` tells it
        missing = (
            f"{hardware.cpu_model!r} is not in the TDP table: set GREENPRINT_CPU_TDP_W or "
            "cpu_tdp_w to its power at full load"
        )
        tdp_w, kind = DEFAULT_W_PER_CORE * cores, "default-per-core"
        detail = f"{DEFAULT_W_PER_CORE:g} W/core x {cores}; {missing}"
    max_share, quota_note = _quota_share(hardware, quota)
    if quota_note:
        detail = f"{detail}; {quota_note}"
    return CpuEstimateMeter(
        tdp_w=tdp_w,
        provenance=Provenance("estimate", kind, detail),
        tree=tree,
        max_share=max_share,
    )


def _quota_share(hardware: HardwareInfo, quota: CpuQuota | None) -> tuple[float | None, str]:
    """The largest share of the idle floor a quota allows, and the words saying so.

    ``(None, "")`` without a quota, or with one of at least the machine's logical CPUs.
    """
    logical = max(hardware.logical_cores, 1)
    if quota is None or quota.cpus >= logical:
        return None, ""
    return quota.cpus / logical, (
        f"idle floor shared at most {quota.cpus:.3g}/{logical}: a CPU quota of {quota.text}"
    )


def _table_tdp(hardware: HardwareInfo) -> tuple[float, str]:
    """The table TDP for what this machine sees, in W, and how it was reached.

    The table's TDP per socket x sockets (``"2 x 150 W"``); in a VM that sees part of a chip
    whose model string gives its cores, that part of it (``"280 W x 2 of 128 threads (64 cores
    x 2) = 4.38 W"``, see :func:`~greenprint.meters._tdp.visible_share`), never more than the
    chips' TDP.
    """
    per_socket = hardware.cpu_tdp_w or 0.0
    sockets = max(hardware.sockets, 1)
    watts = f"{per_socket:g} W" if sockets == 1 else f"{sockets} x {per_socket:g} W"
    share = visible_share(
        hardware.cpu_model,
        sockets=sockets,
        logical=hardware.logical_cores,
        physical=hardware.physical_cores,
    )
    if share is None:
        return per_socket * sockets, watts
    tdp_w = per_socket * sockets * share.fraction
    return tdp_w, f"{watts} x {share.note} = {tdp_w:.3g} W"


def ram_estimate_for(hardware: HardwareInfo, *, tree: ProcessTree | None = None) -> Meter:
    """The RAM estimate for this hardware: :data:`RAM_W_PER_GB` x installed GB."""
    return RamEstimateMeter(ram_gb=hardware.ram_gb, tree=tree)
