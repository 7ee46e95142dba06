"""Small result records shared by the meters and :mod:`greenprint.hardware`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GPUInfo", "MeterStatus", "vendor_text"]


def vendor_text(value: object) -> str:
    """A name or UUID as a GPU library returned it, as text.

    nvidia-ml-py decodes them; the older ``pynvml`` package (11.4 and before), which installs
    the same ``pynvml`` module, returns ``bytes``, whose ``str()`` would be ``"b'GPU-...'"``: no
    ``CUDA_VISIBLE_DEVICES`` UUID would match it and no TDP table row its name.

    Example:
        >>> vendor_text(b"NVIDIA A100-SXM4-40GB"), vendor_text("GPU-1234")
        ('NVIDIA A100-SXM4-40GB', 'GPU-1234')
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


@dataclass(frozen=True)
class GPUInfo:
    """One GPU visible to this process.

    Attributes:
        index: NVML index (the order ``nvidia-smi`` shows).
        name: model name, e.g. ``"NVIDIA A100-SXM4-40GB"``.
        uuid: ``"GPU-..."`` UUID.
        memory_gb: total memory in GB (2**30 bytes).
        has_energy_counter: True when NVML exposes the total-energy counter (Volta and newer);
            otherwise power is sampled and integrated.
        vendor: ``"nvidia"`` (NVML), ``"amd"`` (amdsmi); the index is the vendor library's.
    """

    index: int
    name: str
    uuid: str
    memory_gb: float
    has_energy_counter: bool
    vendor: str = "nvidia"


@dataclass(frozen=True)
class MeterStatus:
    """Whether one energy source can be used here, and if not, why and how to fix it.

    Attributes:
        name: ``"rapl"``, ``"nvml"``, ``"estimate:cpu"``, ``"estimate:ram"``...
        usable: True when the source can be read now.
        reason: what was found, e.g. ``"permission denied reading
            /sys/class/powercap/intel-rapl:0/energy_uj"``, or what will be used.
        fix: the exact command or step that makes it usable, or ``None`` when there is nothing
            to fix (the source is usable, or the hardware is simply absent).
    """

    name: str
    usable: bool
    reason: str
    fix: str | None = None
