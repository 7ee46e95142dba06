"""amdsmi's statuses and replies, one AMD GPU's state, and ROCm's visible-device rules.

Split out of :mod:`greenprint.meters._amd` (the meter): what an ``AmdSmiLibraryException``
means (its status code, a one-line message, the :class:`MeterStatus` to report), how a power or
energy reply of any ROCm 6 version is read, what the meter holds per GPU (:class:`_AmdGpu`),
and which GPUs ``ROCR_VISIBLE_DEVICES`` and ``HIP_VISIBLE_DEVICES`` (or
``CUDA_VISIBLE_DEVICES``) leave visible.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from greenprint._exceptions import MeterError
from greenprint.meters._gpu_meter import (
    COUNTER,
    COUNTER_THEN_POWER,
    POWER_SAMPLING,
    TDP_ESTIMATE,
    THEN_MEAN_POWER,
    GpuVendorUnavailable,
)
from greenprint.meters._status import GPUInfo, MeterStatus

__all__ = ["AmdsmiUnavailable", "parse_rocm_visible_devices"]

logger = logging.getLogger("greenprint.meters._amd")


_POWER_FIELDS = ("current_socket_power", "average_socket_power")


_STATUS_CODES = {  # amdsmi_wrapper.AMDSMI_STATUS_*; stable across ROCm 6.x
    "NOT_SUPPORTED": 2,
    "FAIL_LOAD_MODULE": 4,
    "TIMEOUT": 8,
    "RETRY": 9,
    "NO_PERM": 10,
    "INIT_ERROR": 18,
    "BUSY": 30,
    "NOT_FOUND": 31,
    "NOT_INIT": 32,
    "DRIVER_NOT_LOADED": 34,
    "NO_DATA": 40,
}


class AmdsmiUnavailable(GpuVendorUnavailable):
    """Internal: amdsmi cannot be used; carries the status to report."""


def _code_of(err: BaseException) -> int | None:
    code = getattr(err, "err_code", None)
    return abs(code) if isinstance(code, int) else None


def _is(module: Any, err: BaseException, *names: str) -> bool:
    code = _code_of(err)
    wrapper = getattr(module, "amdsmi_wrapper", None)
    for name in names:
        value = getattr(wrapper, f"AMDSMI_STATUS_{name}", _STATUS_CODES.get(name))
        if code is not None and code == value:
            return True
    return False


def _status_for(module: Any, err: BaseException) -> MeterStatus:
    if _is(module, err, "DRIVER_NOT_LOADED", "FAIL_LOAD_MODULE", "INIT_ERROR"):
        return MeterStatus(
            "amdsmi",
            False,
            f"amdgpu driver not loaded (amdsmi: {_one_line(err)})",
            "load it: sudo modprobe amdgpu (or install amdgpu-dkms from ROCm and reboot)",
        )
    if _is(module, err, "NO_PERM"):
        return MeterStatus(
            "amdsmi",
            False,
            f"no permission to use the AMD GPUs (amdsmi: {_one_line(err)})",
            "add your user to the render and video groups (sudo usermod -aG render,video "
            "$USER, then log in again), or start the container with --device=/dev/kfd "
            "--device=/dev/dri",
        )
    return MeterStatus("amdsmi", False, f"amdsmi error: {_one_line(err)}", None)


def _one_line(err: BaseException) -> str:
    info = getattr(err, "err_info", None)
    return str(info) if info else " ".join(str(err).split())


def _hex(text: str) -> str:
    body = text.strip().lower()
    if body.startswith("gpu-"):
        body = body[4:]
    return body.replace("-", "")


def _select(value: str, candidates: Sequence[int], uuids: Sequence[str]) -> list[int]:
    chosen: list[int] = []
    for raw in value.split(","):
        token = raw.strip()
        if not token:
            break
        index: int | None = None
        try:
            position = int(token)
        except ValueError:
            wanted = _hex(token)
            matches = [
                c for c in candidates if len(wanted) >= 8 and _hex(uuids[c]).endswith(wanted)
            ]
            index = matches[0] if len(matches) == 1 else None
        else:
            index = candidates[position] if 0 <= position < len(candidates) else None
        if index is None:
            logger.warning("visible-devices entry %r matches no AMD GPU: list ends here", token)
            break
        if index not in chosen:
            chosen.append(index)
    return chosen


def parse_rocm_visible_devices(environ: Mapping[str, str], uuids: Sequence[str]) -> list[int]:
    """The amdsmi indices the ROCm runtime lets this process see, in its order.

    Args:
        environ: the environment (``ROCR_VISIBLE_DEVICES``, ``HIP_VISIBLE_DEVICES``,
            ``CUDA_VISIBLE_DEVICES``).
        uuids: UUID of each GPU, by amdsmi index.

    Returns:
        Indices into ``uuids``: ``ROCR_VISIBLE_DEVICES`` selects from all GPUs, then
        ``HIP_VISIBLE_DEVICES`` (else ``CUDA_VISIBLE_DEVICES``) from those, by position.

    Example:
        >>> parse_rocm_visible_devices({"ROCR_VISIBLE_DEVICES": "1,2", "HIP_VISIBLE_DEVICES": "1"},
        ...                            ["a", "b", "c"])
        [2]
    """
    visible = list(range(len(uuids)))
    rocr = environ.get("ROCR_VISIBLE_DEVICES")
    if rocr is not None:
        visible = _select(rocr, visible, uuids)
    hip = environ.get("HIP_VISIBLE_DEVICES")
    if hip is None:
        hip = environ.get("CUDA_VISIBLE_DEVICES")
    if hip is not None:
        visible = _select(hip, visible, uuids)
    return visible


def _power_w(info: Mapping[str, Any]) -> float | None:
    for key in _POWER_FIELDS:
        value = info.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _energy_count(reading: Mapping[str, Any]) -> tuple[int, float]:
    """``(count, uJ per count)`` from ``amdsmi_get_energy_count`` of any ROCm 6 version.

    Raises:
        MeterError: the reply has neither key, or values that are not numbers.
    """
    try:
        key = "energy_accumulator" if "energy_accumulator" in reading else "power"
        return int(reading[key]), float(reading["counter_resolution"])
    except (KeyError, TypeError, ValueError) as e:
        raise MeterError(f"amdsmi_get_energy_count returned {reading!r}") from e


def _visible_empty(env: Mapping[str, str]) -> str | None:
    for name in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        value = env.get(name)
        if value is not None and not value.strip():
            if name == "CUDA_VISIBLE_DEVICES" and env.get("HIP_VISIBLE_DEVICES") is not None:
                continue
            return name
    return None


class _AmdGpu:
    """One metered AMD GPU: where its energy comes from and the last readings."""

    __slots__ = (
        "estimated",
        "failed",
        "gfx",
        "handle",
        "index",
        "last_count",
        "last_power_w",
        "last_share",
        "last_t",
        "memory_gb",
        "mode",
        "moved_t",
        "still_s",
        "name",
        "switched",
        "pending_j",
        "proc_handle",
        "reason",
        "resolution_uj",
        "share",
        "total_j",
        "uuid",
    )

    def __init__(
        self,
        index: int,
        handle: Any,
        *,
        uuid: str,
        name: str,
        gfx: str,
        memory_gb: float,
        mode: str,
        reason: str = "",
        share: float = 1.0,
        proc_handle: Any = None,
    ) -> None:
        self.index = index
        self.handle = handle  # energy and power come from here (the package's GCD on MI250)
        self.proc_handle = handle if proc_handle is None else proc_handle
        self.uuid = uuid
        self.name = name
        self.gfx = gfx
        self.memory_gb = memory_gb
        self.mode = mode  # "counter" or "power"
        self.reason = reason
        self.share = share
        self.last_count = 0
        self.resolution_uj = 0.0
        self.last_power_w: float | None = None
        self.last_t = 0.0
        self.moved_t = 0.0  # clock time the counter last moved (or started)
        self.still_s = 0.0
        self.pending_j = 0.0
        self.switched = False  # the counter was dropped mid-run: power sampled since
        self.last_share: float | None = None  # the tree's share at the last process listing
        self.total_j = 0.0  # its package's energy since the start, J (before its share)
        self.failed = ""  # why and when it failed beside GPUs that still read, or ""
        self.estimated = False  # failed at its first read: its TDP for the run (see start)

    @property
    def label(self) -> str:
        return f"GPU-{self.index}"

    @property
    def source(self) -> str:
        """Where its energy comes from (see :func:`~greenprint.meters._gpu_meter.vendor_origin`)."""
        if self.failed:
            return TDP_ESTIMATE if self.estimated else THEN_MEAN_POWER
        if self.mode == "counter":
            return COUNTER
        return COUNTER_THEN_POWER if self.switched else POWER_SAMPLING

    def info(self) -> GPUInfo:
        return GPUInfo(
            self.index,
            self.name,
            self.uuid,
            round(self.memory_gb, 2),
            self.mode == "counter",
            vendor="amd",
        )
