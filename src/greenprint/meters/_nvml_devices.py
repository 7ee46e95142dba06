"""NVML's errors, the GPUs CUDA lets a process see, and one NVIDIA GPU's state.

Split out of :mod:`greenprint.meters._nvml` (the meter): what an ``NVMLError`` means (its
code, the :class:`MeterStatus` and fix to report, a GPU whose readings are refused), the
handles NVML opens and the order ``CUDA_VISIBLE_DEVICES`` picks them in (indices in PCI bus
order, UUIDs, MIG), and what the meter holds per GPU (:class:`_Gpu`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from greenprint._format import count_of
from greenprint.meters._gpu_meter import (
    COUNTER,
    COUNTER_THEN_POWER,
    POWER_SAMPLING,
    TDP_ESTIMATE,
    THEN_MEAN_POWER,
    GpuVendorUnavailable,
    lost_gpu,
)
from greenprint.meters._status import GPUInfo, MeterStatus, vendor_text
from greenprint.meters._where import NVIDIA_DRIVER_FIX

__all__ = ["NvmlUnavailable", "open_handles", "parse_cuda_visible_devices"]

logger = logging.getLogger("greenprint.meters._nvml")

_NVML_LIBRARY = "nvml.dll" if sys.platform == "win32" else "libnvidia-ml.so.1"


#: Errors of the energy counter that mean "not available here" rather than "GPU gone": the GPU
#: is then power-sampled, if its power reads.
_COUNTER_UNAVAILABLE = (
    "NVML_ERROR_NOT_SUPPORTED",
    "NVML_ERROR_FUNCTION_NOT_FOUND",
    "NVML_ERROR_NO_DATA",
    "NVML_ERROR_NOT_READY",
)


#: What helps when NVML refuses a GPU's readings while the GPU itself opens.
READINGS_REFUSED_FIX = (
    "run as root, or ask the administrator to allow these NVML queries to users (the GPU "
    "itself opens, so access to /dev/nvidia* is not what is missing)"
)


def _readings_refused(
    nvml: Any, gpu: str, counter_err: Exception, power_err: Exception
) -> tuple[str, str | None] | None:
    """Reason and fix for a GPU that opens but whose energy counter and power both fail.

    Only for the errors that say "not here" (``NOT_SUPPORTED``, ``FUNCTION_NOT_FOUND``) or
    "not for you" (``NO_PERMISSION``), at least one a refusal; ``None`` for any other error
    (a GPU lost, the driver gone), whose own advice stands.
    """
    absent = ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")
    refused = "NVML_ERROR_NO_PERMISSION"
    errors = (counter_err, power_err)
    if not all(_code(nvml, e, *absent, refused) for e in errors):
        return None
    if not any(_code(nvml, e, refused) for e in errors):
        return None
    counter = (
        f"it has no energy counter (NVML: {counter_err}; GPUs before Volta have none)"
        if _code(nvml, counter_err, *absent)
        else f"its energy counter is refused (NVML: {counter_err})"
    )
    power = (
        f"it reports no power (NVML: {power_err})"
        if _code(nvml, power_err, *absent)
        else f"its power reading is refused (NVML: {power_err})"
    )
    return f"{gpu}: {counter} and {power}", READINGS_REFUSED_FIX


class NvmlUnavailable(GpuVendorUnavailable):
    """Internal: NVML cannot be used; carries the status to report."""


def _status_for(nvml: Any, err: BaseException) -> MeterStatus:
    refusal = getattr(err, "greenprint_refusal", None)
    if refusal is not None:  # a GPU that opens but refuses its readings (_open_one)
        return MeterStatus("nvml", False, refusal[0], refusal[1])
    code = getattr(err, "value", None)
    known = {
        "NVML_ERROR_LIBRARY_NOT_FOUND": (
            f"pynvml could not load {_NVML_LIBRARY}: no NVIDIA driver",
            NVIDIA_DRIVER_FIX,
        ),
        "NVML_ERROR_DRIVER_NOT_LOADED": (
            f"NVIDIA driver not loaded (NVML: {err})",
            "load it: sudo modprobe nvidia (or reinstall the driver and reboot)",
        ),
        "NVML_ERROR_NO_PERMISSION": (
            f"no permission to use the NVIDIA devices (NVML: {err})",
            "give your user read/write access to /dev/nvidia* (often the 'video' group), "
            "or start the container with the GPUs passed through (--gpus all)",
        ),
        "NVML_ERROR_LIB_RM_VERSION_MISMATCH": (
            f"NVML library and kernel driver versions differ (NVML: {err})",
            "reboot (the driver was updated without reloading its kernel module)",
        ),
        "NVML_ERROR_GPU_IS_LOST": (
            f"a GPU has fallen off the bus (NVML: {err})",
            "reset the GPU (sudo nvidia-smi -r) or reboot; dmesg shows the Xid error",
        ),
    }
    for const, (reason, fix) in known.items():
        if code is not None and code == getattr(nvml, const, object()):
            return MeterStatus("nvml", False, reason, fix)
    return MeterStatus("nvml", False, f"NVML error: {err}", None)


def parse_cuda_visible_devices(value: str | None, uuids: Sequence[str]) -> list[int]:
    """The NVML indices ``CUDA_VISIBLE_DEVICES`` selects, in its order.

    Args:
        value: the variable's value, or ``None`` when unset (every GPU).
        uuids: UUID of each GPU, by NVML index.

    Returns:
        Indices into ``uuids``. Parsing stops at the first entry that is out of range, unknown,
        ambiguous or a MIG device, as CUDA does; duplicates are dropped. (The NVML meter resolves
        MIG devices with :func:`greenprint.meters._mig.visible_targets`; this is for whole GPUs.)

    Example:
        >>> parse_cuda_visible_devices("1,GPU-aa", ["GPU-aa11", "GPU-bb22"])
        [1, 0]
    """
    if value is None:
        return list(range(len(uuids)))
    chosen: list[int] = []
    for raw in value.split(","):
        token = raw.strip()
        if not token:
            break
        index: int | None = None
        try:
            index = int(token)
        except ValueError:
            matches = [i for i, u in enumerate(uuids) if u.lower().startswith(token.lower())]
            if not token.upper().startswith("MIG-") and len(matches) == 1:
                index = matches[0]
            elif token.upper().startswith("MIG-"):
                logger.warning(
                    "CUDA_VISIBLE_DEVICES entry %s is a MIG device: only NVML resolves it "
                    "(greenprint.meters._mig); whole GPUs only here",
                    token,
                )
        if index is None or not 0 <= index < len(uuids):
            break
        if index not in chosen:
            chosen.append(index)
    return chosen


def _nvml_call(nvml: Any, name: str, *args: Any) -> Any:
    return getattr(nvml, name)(*args)


def open_handles(nvml: Any) -> tuple[list[Any], list[str], list[str]]:
    """The handles and UUIDs of the GPUs this process may open (NVML initialised).

    ``nvmlDeviceGetCount`` counts every GPU of the machine "even if
    nvmlDeviceGetHandleByIndex_v2 returns NVML_ERROR_NO_PERMISSION for such device" (nvml.h):
    those a device cgroup denies this process (Slurm's ``ConstrainDevices``, a container). They
    are not its GPUs, and CUDA, which enumerates the GPUs it can open, does not number them (the
    job's one GPU is its ``0``, as Slurm's ``CUDA_VISIBLE_DEVICES=0`` says); nor does this.

    A GPU that has fallen off the bus (``NVML_ERROR_GPU_IS_LOST`` from
    ``nvmlDeviceGetHandleByIndex``, an Xid 79) is left out too, so that the others are still
    metered; its line ends ``": not counted"`` (:func:`~greenprint.meters._gpu_lines.lost_gpu`)
    and the meter's provenance names it. Every GPU lost is NVML's error, as before.

    Returns:
        ``(handles, uuids, skipped)``: the GPUs it may open in NVML's order, and a line saying
        how many it may not (none when it may open all), and one per GPU lost.

    Raises:
        NVMLError: any other error of NVML.
    """
    handles: list[Any] = []
    denied = 0
    lost: list[tuple[int, Exception]] = []
    for i in range(int(_nvml_call(nvml, "nvmlDeviceGetCount"))):
        try:
            handles.append(_nvml_call(nvml, "nvmlDeviceGetHandleByIndex", i))
        except nvml.NVMLError as e:
            if _code(nvml, e, "NVML_ERROR_GPU_IS_LOST"):
                lost.append((i, e))
                continue
            if not _code(nvml, e, "NVML_ERROR_NO_PERMISSION"):
                raise
            denied += 1
    if lost and not handles and not denied:
        raise lost[0][1]  # no GPU left: NVML's own error says why
    uuids = [vendor_text(_nvml_call(nvml, "nvmlDeviceGetUUID", h)) for h in handles]
    skipped = []
    if denied:
        skipped.append(
            f"{count_of(denied, 'GPU')} this process may not open (NVML: no permission; a device "
            "cgroup gives it none of them): not metered"
        )
    skipped += [lost_gpu(i, str(e)) for i, e in lost]
    return handles, uuids, skipped


def _code(nvml: Any, err: Exception, *names: str) -> bool:
    value = getattr(err, "value", None)
    return any(value == getattr(nvml, n, object()) for n in names)


class _Gpu:
    """One metered GPU and its last counter (mJ) or power (W) reading."""

    __slots__ = (
        "estimated",
        "failed",
        "handle",
        "has_counter",
        "index",
        "last_mj",
        "last_power_w",
        "last_share",
        "memory_gb",
        "name",
        "no_counter",
        "proc_handle",
        "rule",
        "share",
        "switched",
        "tag",
        "total_j",
        "uuid",
    )

    def __init__(
        self, index: int, handle: Any, uuid: str, name: str, memory_gb: float, has_counter: bool
    ) -> None:
        self.index = index
        self.handle = handle  # energy and power (the parent GPU of a MIG device)
        self.uuid = uuid
        self.name = name
        self.memory_gb = memory_gb
        self.has_counter = has_counter
        self.last_mj = 0
        self.last_power_w = 0.0
        self.share = 1.0  # fraction of the handle's energy metered (a MIG device's slices)
        self.last_share: float | None = None  # the tree's share at the last process listing
        self.proc_handle = handle  # whose compute processes are attributed
        self.tag = ""
        self.rule = ""
        self.switched = ""  # why and when the counter was dropped mid-run, or ""
        self.total_j = 0.0  # its energy since the start, J (before its MIG share)
        self.failed = ""  # why and when it failed beside GPUs that still read, or ""
        self.estimated = False  # failed at its first read: its TDP for the run (see start)
        self.no_counter = ""  # NVML's answer to a GPU without an energy counter, or ""

    @property
    def label(self) -> str:
        return self.tag or f"GPU-{self.index}"

    @property
    def source(self) -> str:
        """Where its energy comes from (see :func:`~greenprint.meters._gpu_meter.vendor_origin`)."""
        if self.failed:
            return TDP_ESTIMATE if self.estimated else THEN_MEAN_POWER
        if self.has_counter:
            return COUNTER
        return COUNTER_THEN_POWER if self.switched else POWER_SAMPLING

    def info(self) -> GPUInfo:
        return GPUInfo(self.index, self.name, self.uuid, round(self.memory_gb, 2), self.has_counter)


#: What the provenance says of a GPU picked by index where CUDA may number the GPUs otherwise.
ORDER_NOTE = (
    "CUDA_VISIBLE_DEVICES indices read in PCI order; CUDA numbers mixed GPUs fastest first "
    "unless CUDA_DEVICE_ORDER=PCI_BUS_ID, so this may not be the GPU it uses"
)


def picks_by_index(environ: Mapping[str, str]) -> bool:
    """Whether ``CUDA_VISIBLE_DEVICES`` picks GPUs by index in an order CUDA may not share.

    That is an index among its entries and ``CUDA_DEVICE_ORDER`` not ``PCI_BUS_ID``: greenprint
    numbers the GPUs in PCI order (NVML's, and the driver's listing), CUDA fastest first.
    """
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None or environ.get("CUDA_DEVICE_ORDER", "").strip().upper() == "PCI_BUS_ID":
        return False
    return any(token.strip().lstrip("-").isdigit() for token in value.split(","))


def _order_note(nvml: Any, environ: Mapping[str, str], handles: Sequence[Any]) -> str:
    """:data:`ORDER_NOTE` where CUDA may number the GPUs otherwise than NVML, else ``""``.

    That is when ``CUDA_VISIBLE_DEVICES`` names GPUs by index, the GPUs are of different models,
    and ``CUDA_DEVICE_ORDER`` is not ``PCI_BUS_ID`` (CUDA's default, ``FASTEST_FIRST``, puts the
    fastest first).
    """
    if not picks_by_index(environ):
        return ""
    names: set[str] = set()
    for i, handle in enumerate(handles):
        try:
            names.add(vendor_text(_nvml_call(nvml, "nvmlDeviceGetName", handle)))
        except nvml.NVMLError:  # a model unknown: the orders may differ
            names.add(f"unknown GPU {i}")
    return ORDER_NOTE if len(names) > 1 else ""


def no_counter_reason(answer: str) -> str:
    """Why a GPU whose energy counter NVML does not support is power-sampled.

    Example:
        >>> no_counter_reason("Not Supported")
        'no energy counter (NVML: Not Supported): the total-energy counter arrives with Volta; power is sampled instead'
    """  # noqa: E501
    return (
        f"no energy counter (NVML: {answer}): the total-energy counter arrives with Volta; "
        "power is sampled instead"
    )
