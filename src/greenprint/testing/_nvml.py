"""A fake NVML with the same surface and behaviour as nvidia-ml-py's ``pynvml`` module.

Copied from pynvml (nvidia-ml-py 12.x/13.x): the ``NVML_ERROR_*`` codes and their messages;
``NVMLError(code)`` returning the subclass for that code (``NVMLError_NotSupported``...), built
the same way (``"NVMLError_" + capwords(name)``); ``__eq__`` by code; the functions greenprint
calls, with the same names, arguments and units (energy in mJ as an int, power in mW as an int,
memory in bytes); ``nvmlInit`` reference counting; calls before ``nvmlInit`` or after the last
``nvmlShutdown`` raising ``NVMLError_Uninitialized``; ``nvmlDeviceGetComputeRunningProcesses``
returning objects with ``pid``, ``usedGpuMemory`` (``None`` when not available),
``gpuInstanceId`` and ``computeInstanceId``.

MIG (Multi-Instance GPU), as NVML behaves on A100/H100: ``nvmlDeviceGetMigMode`` returns
``[current, pending]`` (``NotSupported`` on a GPU without MIG); ``nvmlDeviceGetCount`` and
``nvmlDeviceGetHandleByIndex`` see the parent GPUs only; ``nvmlDeviceGetMigDeviceHandleByIndex``
gives the MIG devices (``NotFound`` for an empty index); on a MIG handle
``nvmlDeviceGetTotalEnergyConsumption`` and ``nvmlDeviceGetPowerUsage`` raise
``NVMLError_NotSupported`` (energy is the parent's), ``nvmlDeviceGetAttributes`` gives the slice
counts (``NotSupported`` on a parent), ``nvmlDeviceIsMigDeviceHandle`` returns a ``c_uint`` as
pynvml does, and ``nvmlDeviceGetComputeRunningProcesses`` lists that instance's processes.

Example:
    >>> from greenprint.testing import FakeGPU, FakeNVML
    >>> nvml = FakeNVML([FakeGPU(energy_mj=1_000)])
    >>> nvml.nvmlInit()
    >>> h = nvml.nvmlDeviceGetHandleByIndex(0)
    >>> nvml.nvmlDeviceGetTotalEnergyConsumption(h)
    1000
"""

from __future__ import annotations

import ctypes
import string
import sys
import uuid as _uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeGPU", "FakeGpuProcess", "FakeMigDevice", "FakeNVML", "NVMLError"]

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_VGPU_ECC_NOT_SUPPORTED = 22
NVML_ERROR_INSUFFICIENT_RESOURCES = 23
NVML_ERROR_FREQ_NOT_SUPPORTED = 24
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_DEPRECATED = 26
NVML_ERROR_NOT_READY = 27
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_INVALID_STATE = 29
NVML_ERROR_RESET_TYPE_NOT_SUPPORTED = 30
NVML_ERROR_UNKNOWN = 999

#: ``gpuInstanceId``/``computeInstanceId`` of a process on a GPU without MIG.
NVML_VALUE_NOT_AVAILABLE_uint = 0xFFFFFFFF
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    NVML_ERROR_INSUFFICIENT_POWER: "Insufficient External Power",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_IRQ_ISSUE: "Interrupt Request Issue",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_CORRUPTED_INFOROM: "Corrupted infoROM",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
    NVML_ERROR_OPERATING_SYSTEM: "The operating system has blocked the request.",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    NVML_ERROR_MEMORY: "Insufficient Memory",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """pynvml's error: ``NVMLError(code)`` returns the subclass registered for ``code``."""

    _valClassMapping: dict[int, type[NVMLError]] = {}  # pynvml's name
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _make_error_classes() -> dict[str, type[NVMLError]]:
    """One subclass per code, named as pynvml names them (``NVMLError_GpuIsLost``)."""
    this = sys.modules[__name__]
    classes: dict[str, type[NVMLError]] = {}
    for const in sorted(n for n in dir(this) if n.startswith("NVML_ERROR_")):
        code = getattr(this, const)
        name = "NVMLError_" + string.capwords(const.replace("NVML_ERROR_", ""), "_").replace(
            "_", ""
        )

        def new(cls: type[NVMLError], *args: Any, _code: int = code) -> NVMLError:
            return NVMLError.__new__(cls, _code)

        cls = type(name, (NVMLError,), {"__new__": new, "__module__": __name__})
        NVMLError._valClassMapping[code] = cls
        classes[name] = cls
    return classes


ERROR_CLASSES = _make_error_classes()
globals().update(ERROR_CLASSES)


@dataclass
class FakeGpuProcess:
    """A compute process on a fake GPU (as ``nvmlDeviceGetComputeRunningProcesses`` lists).

    Attributes:
        pid: process id.
        usedGpuMemory: bytes, or ``None`` where NVML cannot tell (Windows WDDM).
    """

    pid: int
    usedGpuMemory: int | None = 2**30  # pynvml's attribute name
    gpuInstanceId: int = NVML_VALUE_NOT_AVAILABLE_uint
    computeInstanceId: int = NVML_VALUE_NOT_AVAILABLE_uint


@dataclass
class FakeMigDevice:
    """One MIG device (a compute instance inside a GPU instance) of a fake GPU.

    Attributes:
        profile: the profile name, e.g. ``"1g.5gb"``, ``"3g.20gb"`` (part of the device name).
        slices: ``gpuInstanceSliceCount``: compute slices of its GPU instance.
        compute_slices: ``computeInstanceSliceCount`` (default: the GPU instance's).
        memory_gb: its memory, GB.
        gpu_instance_id: ``nvmlDeviceGetGpuInstanceId``.
        compute_instance_id: ``nvmlDeviceGetComputeInstanceId``.
        uuid: ``"MIG-..."`` (random if not given).
        processes: compute processes in this instance.
    """

    profile: str = "1g.5gb"
    slices: int = 1
    compute_slices: int = 0
    memory_gb: float = 4.75
    gpu_instance_id: int = 1
    compute_instance_id: int = 0
    uuid: str = ""
    processes: list[FakeGpuProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.uuid:
            self.uuid = f"MIG-{_uuid.uuid4()}"
        if not self.compute_slices:
            self.compute_slices = self.slices


class _Attributes:
    """``c_nvmlDeviceAttributes_t``'s fields, as ``nvmlDeviceGetAttributes`` returns them."""

    def __init__(self, mig: FakeMigDevice) -> None:
        self.multiprocessorCount = 14 * mig.compute_slices
        self.sharedCopyEngineCount = mig.slices
        self.sharedDecoderCount = 0
        self.sharedEncoderCount = 0
        self.sharedJpegCount = 0
        self.sharedOfaCount = 0
        self.gpuInstanceSliceCount = mig.slices
        self.computeInstanceSliceCount = mig.compute_slices
        self.memorySizeMB = round(mig.memory_gb * 1024)


@dataclass
class FakeGPU:
    """One fake GPU.

    Attributes:
        name: model name.
        uuid: ``"GPU-..."`` (random if not given).
        memory_gb: total memory, GB (2**30 bytes).
        energy_mj: total-energy counter in mJ, or ``None`` for a GPU without one (pre-Volta):
            ``nvmlDeviceGetTotalEnergyConsumption`` then raises ``NVMLError_NotSupported``.
        power_w: current power draw in W (``nvmlDeviceGetPowerUsage`` returns mW), or ``None``
            for a GPU that cannot report it.
        power_limit_w: enforced power limit in W.
        processes: compute processes, or ``None`` if the query is not supported.
        errors: function name -> NVML error code that function raises for this GPU.
        mig: MIG mode: ``None`` for a GPU without MIG (``nvmlDeviceGetMigMode`` raises
            ``NotSupported``), ``False`` disabled, ``True`` enabled.
        mig_devices: the MIG devices when enabled, by MIG index.
        max_mig_devices: ``nvmlDeviceGetMaxMigDeviceCount`` (7 on A100/H100, 4 on A30).
        utilization_gpu: ``nvmlDeviceGetUtilizationRates(h).gpu`` in %, or ``None`` when the GPU
            cannot report it (``NotSupported``).
        accessible: ``False`` for a GPU this process may not open (a device cgroup that denies
            its ``/dev/nvidiaN``, as Slurm's ``ConstrainDevices`` and container runtimes do):
            ``nvmlDeviceGetCount`` still counts it, and ``nvmlDeviceGetHandleByIndex`` and
            ``nvmlDeviceGetHandleByUUID`` raise ``NVMLError_NoPermission`` for it, as NVML's
            documentation of ``nvmlDeviceGetCount_v2`` says.
    """

    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = ""
    memory_gb: float = 40.0
    energy_mj: int | None = 0
    power_w: float | None = 100.0
    power_limit_w: float = 400.0
    processes: list[FakeGpuProcess] | None = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    mig: bool | None = None
    mig_devices: list[FakeMigDevice] = field(default_factory=list)
    max_mig_devices: int = 7
    utilization_gpu: int | None = 0
    accessible: bool = True

    def __post_init__(self) -> None:
        if not self.uuid:
            self.uuid = f"GPU-{_uuid.uuid4()}"

    def advance(self, seconds: float, *, power_w: float | None = None) -> None:
        """Run for ``seconds`` at ``power_w`` (default: the current power).

        The counter grows by power x time, in mJ, wrapping at 2**64 like the real 64-bit one.
        """
        if power_w is not None:
            self.power_w = power_w
        if self.energy_mj is not None and self.power_w is not None:
            self.energy_mj = (self.energy_mj + round(self.power_w * seconds * 1000)) % 2**64

    def reset(self) -> None:
        """A GPU reset: the energy counter restarts at 0."""
        if self.energy_mj is not None:
            self.energy_mj = 0

    def fail(self, function: str, code: int) -> None:
        """Make ``function`` raise the NVML error ``code`` for this GPU from now on."""
        self.errors[function] = code


class _Handle:
    __slots__ = ("index", "mig")

    def __init__(self, index: int, mig: int | None = None) -> None:
        self.index = index
        self.mig = mig  # MIG index on the parent, or None for the GPU itself

    def __repr__(self) -> str:
        suffix = "" if self.mig is None else f" MIG {self.mig}"
        return f"<FakeNVML device handle {self.index}{suffix}>"


class _Utilization:
    def __init__(self, gpu: int, memory: int) -> None:
        self.gpu = gpu
        self.memory = memory


class _Memory:
    def __init__(self, total: int, used: int) -> None:
        self.total = total
        self.used = used
        self.free = total - used


class FakeNVML:
    """A stand-in for the ``pynvml`` module: pass it as ``nvml=`` to greenprint.

    Args:
        gpus: the GPUs, by NVML index.
        init_error: NVML error code ``nvmlInit`` raises (e.g. ``NVML_ERROR_LIBRARY_NOT_FOUND``
            for a machine without the driver).
        errors: function name -> error code raised regardless of the device.
        driver_version: what ``nvmlSystemGetDriverVersion`` returns.
        text_as_bytes: return names and UUIDs as ``bytes``, as the ``pynvml`` package up to
            11.4 did (it installs the same ``pynvml`` module as nvidia-ml-py, which decodes
            them to ``str``).

    Attributes:
        calls: how many times each function was called.
        init_count: the ``nvmlInit`` reference count.
    """

    NVMLError = NVMLError

    def __init__(
        self,
        gpus: Iterable[FakeGPU] = (),
        *,
        init_error: int | None = None,
        errors: dict[str, int] | None = None,
        driver_version: str = "550.54.15",
        text_as_bytes: bool = False,
    ) -> None:
        self.gpus: list[FakeGPU] = list(gpus)
        self.text_as_bytes = text_as_bytes
        self.init_error = init_error
        self.errors = dict(errors or {})
        self.driver_version = driver_version
        self.calls: Counter[str] = Counter()
        self.init_count = 0

    def __getattr__(self, name: str) -> Any:
        # NVML_ERROR_* constants and NVMLError_* classes, as module attributes
        module = sys.modules[__name__]
        if name.startswith(("NVML_", "NVMLError_")) and hasattr(module, name):
            return getattr(module, name)
        raise AttributeError(f"FakeNVML has no attribute {name!r}")

    # -- helpers --------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Advance every GPU by ``seconds`` at its current power."""
        for gpu in self.gpus:
            gpu.advance(seconds)

    def _enter(self, function: str, handle: _Handle | None = None) -> FakeGPU | None:
        self.calls[function] += 1
        if self.init_count <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if function in self.errors:
            raise NVMLError(self.errors[function])
        if handle is None:
            return None
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.index]
        if function in gpu.errors:
            raise NVMLError(gpu.errors[function])
        if handle.mig is not None and not (gpu.mig and handle.mig < len(gpu.mig_devices)):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)  # a MIG device that is gone
        return gpu

    def _both(self, function: str, handle: _Handle) -> tuple[FakeGPU, FakeMigDevice | None]:
        """The GPU ``handle`` names and its MIG device, or ``None`` for the whole GPU."""
        gpu = self._gpu(function, handle)
        return gpu, None if handle.mig is None else gpu.mig_devices[handle.mig]

    def _mig(self, function: str, handle: _Handle) -> FakeMigDevice | None:
        """The MIG device ``handle`` names, or ``None`` for a whole GPU."""
        return self._both(function, handle)[1]

    def _gpu(self, function: str, handle: _Handle) -> FakeGPU:
        gpu = self._enter(function, handle)
        if gpu is None:  # pragma: no cover - _enter returns the GPU when given a handle
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpu

    # -- the pynvml surface -------------------------------------------------------------------
    def nvmlInit(self) -> None:  # pynvml's names
        """Initialise (reference counted)."""
        self.nvmlInitWithFlags(0)

    def nvmlInitWithFlags(self, flags: int) -> None:
        """Initialise (reference counted); raises ``init_error`` if set."""
        self.calls["nvmlInitWithFlags"] += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        """Drop one reference; device calls fail once the count reaches 0."""
        self._enter("nvmlShutdown")
        self.init_count -= 1

    def nvmlErrorString(self, result: int) -> str:
        """The message for an error code."""
        return _MESSAGES.get(result, "Unknown Error")

    def nvmlSystemGetDriverVersion(self) -> str:
        """The driver version string."""
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        """Number of GPUs (all of them: NVML ignores CUDA_VISIBLE_DEVICES and device cgroups)."""
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        """Handle of GPU ``index``: ``InvalidArgument`` out of range, ``NoPermission`` if denied."""
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= int(index) < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if not self.gpus[int(index)].accessible:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        code = self.gpus[int(index)].errors.get("nvmlDeviceGetHandleByIndex")
        if code is not None:  # a GPU that fell off the bus: GPU_IS_LOST, as nvml.h documents
            raise NVMLError(code)
        return _Handle(int(index))

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> _Handle:
        """Handle of the GPU (or MIG device) with this exact UUID; ``NotFound`` otherwise."""
        self._enter("nvmlDeviceGetHandleByUUID")
        wanted = uuid.decode() if isinstance(uuid, bytes) else uuid
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == wanted and not gpu.accessible:
                raise NVMLError(NVML_ERROR_NO_PERMISSION)
            if gpu.uuid == wanted:
                return _Handle(i)
            for m, mig in enumerate(gpu.mig_devices if gpu.mig else []):
                if mig.uuid == wanted:
                    return _Handle(i, m)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetIndex(self, handle: _Handle) -> int:
        """NVML index of a handle."""
        self._gpu("nvmlDeviceGetIndex", handle)
        return handle.index

    def nvmlDeviceGetName(self, handle: _Handle) -> str | bytes:
        """Model name (a str, as pynvml decodes it); a MIG device's ends ``MIG <profile>``."""
        gpu, mig = self._both("nvmlDeviceGetName", handle)
        return self._text(gpu.name if mig is None else f"{gpu.name} MIG {mig.profile}")

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str | bytes:
        """``"GPU-..."`` UUID, or ``"MIG-..."`` for a MIG device (a str)."""
        gpu, mig = self._both("nvmlDeviceGetUUID", handle)
        return self._text(gpu.uuid if mig is None else mig.uuid)

    def _text(self, value: str) -> str | bytes:
        """``value``, or its bytes for an old pynvml (``text_as_bytes``)."""
        return value.encode() if self.text_as_bytes else value

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> _Memory:
        """Memory in bytes: ``.total``, ``.free``, ``.used`` (a MIG device's own)."""
        gpu, mig = self._both("nvmlDeviceGetMemoryInfo", handle)
        procs = (gpu.processes or []) if mig is None else mig.processes
        used = sum(p.usedGpuMemory or 0 for p in procs)
        total = int((gpu.memory_gb if mig is None else mig.memory_gb) * 2**30)
        return _Memory(total, min(used, total))

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        """Energy since the driver loaded, in mJ (``NotSupported`` before Volta and on MIG)."""
        gpu = self._gpu("nvmlDeviceGetTotalEnergyConsumption", handle)
        if gpu.energy_mj is None or handle.mig is not None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return int(gpu.energy_mj)

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        """Current power draw, in mW (``NotSupported`` on a MIG device)."""
        gpu = self._gpu("nvmlDeviceGetPowerUsage", handle)
        if gpu.power_w is None or handle.mig is not None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return round(gpu.power_w * 1000)

    def nvmlDeviceGetMigMode(self, device: _Handle) -> list[int]:
        """``[current, pending]`` MIG mode; ``NotSupported`` on a GPU without MIG."""
        gpu = self._gpu("nvmlDeviceGetMigMode", device)
        if gpu.mig is None or device.mig is not None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        mode = NVML_DEVICE_MIG_ENABLE if gpu.mig else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, device: _Handle) -> int:
        """How many MIG devices the GPU can hold (0 without MIG)."""
        gpu = self._gpu("nvmlDeviceGetMaxMigDeviceCount", device)
        return 0 if gpu.mig is None else gpu.max_mig_devices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: _Handle, index: int) -> _Handle:
        """The MIG device at ``index``; ``NotFound`` where there is none."""
        gpu = self._gpu("nvmlDeviceGetMigDeviceHandleByIndex", device)
        if device.mig is not None or not 0 <= int(index) < max(gpu.max_mig_devices, 0):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if not gpu.mig or int(index) >= len(gpu.mig_devices):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return _Handle(device.index, int(index))

    def nvmlDeviceIsMigDeviceHandle(self, device: _Handle) -> ctypes.c_uint:
        """Whether the handle is a MIG device's: a ``c_uint``, as pynvml returns it."""
        self._gpu("nvmlDeviceIsMigDeviceHandle", device)
        return ctypes.c_uint(0 if device.mig is None else 1)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, migDevice: _Handle) -> _Handle:
        """The parent GPU of a MIG device (``InvalidArgument`` for a whole GPU)."""
        self._gpu("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", migDevice)
        if migDevice.mig is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(migDevice.index)

    def nvmlDeviceGetAttributes(self, device: _Handle) -> _Attributes:
        """Slice counts and memory of a MIG device (``NotSupported`` on a whole GPU)."""
        mig = self._mig("nvmlDeviceGetAttributes", device)
        if mig is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return _Attributes(mig)

    def nvmlDeviceGetGpuInstanceId(self, device: _Handle) -> int:
        """The GPU instance of a MIG device."""
        mig = self._mig("nvmlDeviceGetGpuInstanceId", device)
        if mig is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return mig.gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, device: _Handle) -> int:
        """The compute instance of a MIG device."""
        mig = self._mig("nvmlDeviceGetComputeInstanceId", device)
        if mig is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return mig.compute_instance_id

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> _Utilization:
        """Busy percentages (``.gpu``, ``.memory``) over NVML's last sample period."""
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        if gpu.utilization_gpu is None or handle.mig is not None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return _Utilization(int(gpu.utilization_gpu), 0)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        """Enforced power limit, in mW."""
        return round(self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle).power_limit_w * 1000)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[Any]:
        """Compute processes on the GPU (objects with ``pid`` and ``usedGpuMemory``)."""
        gpu, mig = self._both("nvmlDeviceGetComputeRunningProcesses", handle)
        if mig is not None:
            return [
                FakeGpuProcess(p.pid, p.usedGpuMemory, mig.gpu_instance_id, mig.compute_instance_id)
                for p in mig.processes
            ]
        if gpu.processes is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [
            FakeGpuProcess(p.pid, p.usedGpuMemory, p.gpuInstanceId, p.computeInstanceId)
            for p in gpu.processes
        ]


def error_class_names() -> Sequence[str]:
    """Names of the per-code error classes (for parity checks against pynvml)."""
    return sorted(ERROR_CLASSES)
