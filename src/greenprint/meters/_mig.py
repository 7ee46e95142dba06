"""MIG (Multi-Instance GPU) slices, metered as their share of the parent GPU.

NVML has no energy counter or power reading per MIG device: on a MIG handle
``nvmlDeviceGetTotalEnergyConsumption`` and ``nvmlDeviceGetPowerUsage`` raise ``NotSupported``;
only the parent GPU has them. So a MIG device is metered as

    energy of the slice = energy of the parent GPU x compute slices of the device / compute
    slices of the GPU

with the device's slices from ``nvmlDeviceGetAttributes`` (``computeInstanceSliceCount``, else
``gpuInstanceSliceCount``) and the GPU's from ``nvmlDeviceGetMaxMigDeviceCount`` (7 on A100 and
H100, 4 on A30): a ``1g.10gb`` slice of an H100 is charged 1/7 of the GPU's energy, a
``3g.40gb`` 3/7. Compute slices rather than memory: the streaming multiprocessors are what draws
power (a ``1g.10gb`` slice has 1/8 of an 80 GB GPU's memory but 1/7 of its compute); the idle
draw of slices no one has created is charged to no one. The provenance says so
(``nvml:counter:GPU-0/MIG-1.0 (GPU-0/MIG-1.0: 1/7 of GPU-0 by compute slices)``).

Which MIG devices: the ``MIG-<uuid>`` entries of ``CUDA_VISIBLE_DEVICES`` (also the older
``MIG-GPU-<uuid>/<gi>/<ci>`` form); a GPU in MIG mode selected otherwise (by index, UUID, or with
``CUDA_VISIBLE_DEVICES`` unset) is metered through every MIG device NVML lists on it, which in a
container is the ones passed in. Per-process shares come from the MIG device's own process list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greenprint.meters._status import vendor_text

__all__ = ["MigDevice", "mig_devices", "mig_enabled", "visible_targets"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigDevice:
    """One MIG device (a compute instance) and where its energy comes from.

    Attributes:
        parent: NVML index of the parent GPU.
        handle: the MIG device's NVML handle (for its processes).
        uuid: ``"MIG-..."``.
        name: e.g. ``"NVIDIA A100-SXM4-40GB MIG 1g.5gb"``.
        gpu_instance: GPU instance id.
        compute_instance: compute instance id.
        slices: the device's compute slices.
        parent_slices: the parent GPU's compute slices.
        memory_gb: the device's memory, GB (2**30 bytes).
    """

    parent: int
    handle: Any
    uuid: str
    name: str
    gpu_instance: int
    compute_instance: int
    slices: int
    parent_slices: int
    memory_gb: float

    @property
    def share(self) -> float:
        """The fraction of the parent GPU's energy charged to this device."""
        return min(self.slices / self.parent_slices, 1.0) if self.parent_slices > 0 else 1.0

    @property
    def label(self) -> str:
        """``"GPU-0/MIG-1.0"``: parent, GPU instance, compute instance."""
        return f"GPU-{self.parent}/MIG-{self.gpu_instance}.{self.compute_instance}"

    @property
    def rule(self) -> str:
        """``"1/7 of GPU-0 by compute slices"``."""
        return f"{self.slices}/{self.parent_slices} of GPU-{self.parent} by compute slices"


def _code(nvml: Any, err: Exception, *names: str) -> bool:
    value = getattr(err, "value", None)
    return any(value == getattr(nvml, n, object()) for n in names)


def mig_enabled(nvml: Any, handle: Any) -> bool:
    """Whether the GPU is in MIG mode now (``False`` for GPUs without MIG).

    Raises:
        NVMLError: any NVML error other than "not supported".
    """
    try:
        current = nvml.nvmlDeviceGetMigMode(handle)[0]
    except nvml.NVMLError as e:
        if _code(nvml, e, "NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND"):
            return False
        raise
    return int(current) == int(getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1))


def mig_devices(nvml: Any, index: int, handle: Any) -> list[MigDevice]:
    """The MIG devices NVML lists on the GPU ``index`` (in MIG mode), by MIG index."""
    count = int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))
    out: list[MigDevice] = []
    for m in range(count):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, m)
        except nvml.NVMLError as e:
            if _code(nvml, e, "NVML_ERROR_NOT_FOUND", "NVML_ERROR_INVALID_ARGUMENT"):
                continue  # no MIG device at this index (or not visible in this container)
            raise
        attrs = nvml.nvmlDeviceGetAttributes(mig)
        slices = int(attrs.computeInstanceSliceCount or attrs.gpuInstanceSliceCount or 1)
        out.append(
            MigDevice(
                parent=index,
                handle=mig,
                uuid=vendor_text(nvml.nvmlDeviceGetUUID(mig)),
                name=vendor_text(nvml.nvmlDeviceGetName(mig)),
                gpu_instance=int(nvml.nvmlDeviceGetGpuInstanceId(mig)),
                compute_instance=int(nvml.nvmlDeviceGetComputeInstanceId(mig)),
                slices=slices,
                parent_slices=count,
                memory_gb=float(nvml.nvmlDeviceGetMemoryInfo(mig).total) / 2**30,
            )
        )
    return out


def _unique(matches: list[Any]) -> Any | None:
    return matches[0] if len(matches) == 1 else None


def visible_targets(
    nvml: Any, value: str | None, handles: Sequence[Any], uuids: Sequence[str]
) -> tuple[list[int | MigDevice], list[str]]:
    """What ``CUDA_VISIBLE_DEVICES`` selects: whole GPUs (NVML indices) and MIG devices.

    Args:
        nvml: the NVML module (initialised).
        value: the variable's value, or ``None`` when unset (every GPU).
        handles: handle of each GPU, by NVML index.
        uuids: UUID of each GPU, by NVML index.

    Returns:
        ``(targets, notes)``: each target an NVML index (a GPU not in MIG mode) or a
        :class:`MigDevice`; a GPU in MIG mode is replaced by its MIG devices. ``notes`` says
        what was left out and why. Parsing stops at the first entry that is out of range,
        unknown or ambiguous, as CUDA does; duplicates are dropped.
    """
    cache: dict[int, list[MigDevice]] = {}

    def devices(i: int) -> list[MigDevice]:
        if i not in cache:
            cache[i] = mig_devices(nvml, i, handles[i]) if mig_enabled(nvml, handles[i]) else []
        return cache[i]

    chosen: list[int | MigDevice] = []
    if value is None:
        chosen = list(range(len(uuids)))
    else:
        for raw in value.split(","):
            token = raw.strip()
            target = _parse_token(token, uuids, devices) if token else None
            if target is None:
                if token:
                    logger.warning("CUDA_VISIBLE_DEVICES entry %r matches no GPU: ends here", token)
                break
            if target not in chosen:
                chosen.append(target)
    targets: list[int | MigDevice] = []
    notes: list[str] = []
    for target in chosen:
        if isinstance(target, MigDevice) or not mig_enabled(nvml, handles[target]):
            expanded: list[int | MigDevice] = [target]
        else:
            expanded = list(devices(target))
            if not expanded:
                notes.append(f"GPU-{target} is in MIG mode with no MIG device: not counted")
        targets.extend(t for t in expanded if t not in targets)
    return targets, notes


def _parse_token(token: str, uuids: Sequence[str], devices: Any) -> int | MigDevice | None:
    try:
        index = int(token)
    except ValueError:
        pass
    else:
        return index if 0 <= index < len(uuids) else None
    low = token.lower()
    if not low.startswith("mig-"):
        return _unique([i for i, u in enumerate(uuids) if u.lower().startswith(low)])
    if low.startswith("mig-gpu-") and "/" in low:  # MIG-GPU-<uuid>/<gi>/<ci> (before R470)
        parent_uuid, _, ids = token[4:].partition("/")
        parent = _unique(
            [i for i, u in enumerate(uuids) if u.lower().startswith(parent_uuid.lower())]
        )
        gi, _, ci = ids.partition("/")
        if parent is None or not gi.isdigit():
            return None
        return _unique(
            [
                d
                for d in devices(parent)
                if d.gpu_instance == int(gi)
                and (not ci or (ci.isdigit() and d.compute_instance == int(ci)))
            ]
        )
    found = [d for i in range(len(uuids)) for d in devices(i) if d.uuid.lower().startswith(low)]
    return _unique(found)
