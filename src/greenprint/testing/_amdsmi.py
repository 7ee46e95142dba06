"""A fake ``amdsmi`` with the same surface and behaviour as AMD's Python package.

Copied from ``amdsmi`` (ROCm/amdsmi ``py-interface``: ``amdsmi_interface.py``,
``amdsmi_exception.py``, ``amdsmi_wrapper.py``, ROCm 6.0-6.4):

* ``AMDSMI_STATUS_*`` codes, reachable as ``amdsmi.amdsmi_wrapper.AMDSMI_STATUS_NO_PERM``;
* ``AmdSmiException`` (the root), ``AmdSmiLibraryException(err_code)`` with ``err_code``,
  ``err_info``, ``get_error_code()``, ``get_error_info()`` and the same ``str()``;
  ``AmdSmiRetryException``, ``AmdSmiTimeoutException``, ``AmdSmiParameterException`` (a handle
  that is not an ``amdsmi_processor_handle``);
* ``amdsmi_init`` (reference counted), ``amdsmi_shut_down``; calls before ``amdsmi_init`` raise
  ``AMDSMI_STATUS_NOT_INIT``;
* ``amdsmi_get_energy_count`` returning ``{"power", "counter_resolution", "timestamp"}`` on ROCm
  6.0/6.1, ``"energy_accumulator"`` beside ``"power"`` from 6.2 (``"power"`` deprecated), and
  ``"energy_accumulator"`` alone from 6.4 (``api=``): an unsigned 64-bit count of
  ``counter_resolution`` uJ (a C float: 15.3 reads back as 15.300000190734863), wrapping at
  2**64; the timestamp in ns;
* ``amdsmi_get_power_info``: ``current_socket_power`` (MI300 and newer) and
  ``average_socket_power`` (MI200 and older) in W as ints, ``"N/A"`` where the GPU has none;
* ``amdsmi_get_gpu_activity``: ``gfx_activity`` in %, ``"N/A"`` when unknown;
* ``amdsmi_get_gpu_process_list``: one dict per process with ``pid``, ``mem`` and
  ``memory_usage`` (``vram_mem`` in bytes);
* ``amdsmi_get_gpu_asic_info`` (``market_name``, ``target_graphics_version`` such as
  ``"gfx942"``), ``amdsmi_get_gpu_device_uuid``, ``amdsmi_get_gpu_vram_usage`` (MB).

Example:
    >>> from greenprint.testing import FakeAMDSMI, FakeAmdGpu
    >>> amdsmi = FakeAMDSMI([FakeAmdGpu(energy_count=1_000)])
    >>> amdsmi.amdsmi_init()
    >>> (h,) = amdsmi.amdsmi_get_processor_handles()
    >>> amdsmi.amdsmi_get_energy_count(h)["energy_accumulator"]
    1000
"""

from __future__ import annotations

import ctypes
import enum
import types
import uuid as _uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AmdSmiException",
    "AmdSmiLibraryException",
    "FakeAMDSMI",
    "FakeAmdGpu",
    "FakeAmdProcess",
]

AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NOT_YET_IMPLEMENTED = 3
AMDSMI_STATUS_FAIL_LOAD_MODULE = 4
AMDSMI_STATUS_FAIL_LOAD_SYMBOL = 5
AMDSMI_STATUS_DRM_ERROR = 6
AMDSMI_STATUS_API_FAILED = 7
AMDSMI_STATUS_TIMEOUT = 8
AMDSMI_STATUS_RETRY = 9
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_INTERRUPT = 11
AMDSMI_STATUS_IO = 12
AMDSMI_STATUS_ADDRESS_FAULT = 13
AMDSMI_STATUS_FILE_ERROR = 14
AMDSMI_STATUS_OUT_OF_RESOURCES = 15
AMDSMI_STATUS_INTERNAL_EXCEPTION = 16
AMDSMI_STATUS_INPUT_OUT_OF_BOUNDS = 17
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_REFCOUNT_OVERFLOW = 19
AMDSMI_STATUS_BUSY = 30
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_NO_SLOT = 33
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34
AMDSMI_STATUS_NO_DATA = 40
AMDSMI_STATUS_INSUFFICIENT_SIZE = 41
AMDSMI_STATUS_UNEXPECTED_SIZE = 42
AMDSMI_STATUS_UNEXPECTED_DATA = 43
AMDSMI_STATUS_FILE_NOT_FOUND = 52
AMDSMI_STATUS_UNKNOWN_ERROR = 4294967295

_INFO = {
    AMDSMI_STATUS_INVAL: "AMDSMI_STATUS_INVAL - Invalid parameters",
    AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    AMDSMI_STATUS_FAIL_LOAD_MODULE: "AMDSMI_STATUS_FAIL_LOAD_MODULE - Fail to load lib",
    AMDSMI_STATUS_DRM_ERROR: "AMDSMI_STATUS_DRM_ERROR - Error when called libdrm",
    AMDSMI_STATUS_API_FAILED: "AMDSMI_STATUS_API_FAILED - API call failed",
    AMDSMI_STATUS_TIMEOUT: "AMDSMI_STATUS_TIMEOUT - Timeout in API call",
    AMDSMI_STATUS_RETRY: "AMDSMI_STATUS_RETRY - Retry operation",
    AMDSMI_STATUS_NO_PERM: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    AMDSMI_STATUS_IO: "AMDSMI_STATUS_IO - I/O Error",
    AMDSMI_STATUS_FILE_ERROR: "AMDSMI_STATUS_FILE_ERROR - Error opening file",
    AMDSMI_STATUS_INIT_ERROR: "AMDSMI_STATUS_INIT_ERROR - Initialization error",
    AMDSMI_STATUS_BUSY: "AMDSMI_STATUS_BUSY - Device busy",
    AMDSMI_STATUS_NOT_FOUND: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
    AMDSMI_STATUS_NO_DATA: "AMDSMI_STATUS_NO_DATA - No data was found for given input",
    AMDSMI_STATUS_FILE_NOT_FOUND: ("AMDSMI_STATUS_FILE_NOT_FOUND - File or directory not found"),
    AMDSMI_STATUS_UNKNOWN_ERROR: "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred",
}

#: The counter is an unsigned 64-bit integer (``uint64_t *energy_accumulator``).
COUNTER_MODULUS = 2**64
#: What ``counter_resolution`` (a C float) reads back as for 15.3 uJ, the usual value.
DEFAULT_RESOLUTION_UJ = float(ctypes.c_float(15.3).value)


class AmdSmiException(Exception):
    """amdsmi's root exception."""


class AmdSmiLibraryException(AmdSmiException):
    """An error status of the C library: ``err_code`` and ``err_info``, as amdsmi's."""

    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = _INFO.get(
            err_code, "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred"
        )

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_info(self) -> str:
        """The message for the code."""
        return self.err_info

    def get_error_code(self) -> int:
        """The ``AMDSMI_STATUS_*`` code."""
        return self.err_code


class AmdSmiRetryException(AmdSmiLibraryException):
    """The device is busy; retry."""

    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_RETRY)


class AmdSmiTimeoutException(AmdSmiLibraryException):
    """The call timed out."""

    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_TIMEOUT)


class AmdSmiParameterException(AmdSmiException):
    """A parameter of the wrong type (a handle that is not a processor handle)."""

    def __init__(self, received: object, expected: type) -> None:
        super().__init__(None)
        self.err_code = None
        self.err_msg = (
            f"Invalid parameter:\nActual type: {type(received)}\nExpected type: {expected}"
        )

    def __str__(self) -> str:
        return self.err_msg


def _raise(code: int) -> None:
    if code == AMDSMI_STATUS_RETRY:
        raise AmdSmiRetryException()
    if code == AMDSMI_STATUS_TIMEOUT:
        raise AmdSmiTimeoutException()
    raise AmdSmiLibraryException(code)


class AmdSmiInitFlags(enum.IntFlag):
    """``amdsmi_init`` flags (as amdsmi's)."""

    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1 << 0
    INIT_AMD_GPUS = 1 << 1
    INIT_NON_AMD_CPUS = 1 << 2
    INIT_NON_AMD_GPUS = 1 << 3
    INIT_AMD_APUS = INIT_AMD_CPUS | INIT_AMD_GPUS


class amdsmi_processor_handle(ctypes.c_void_p):
    """A processor handle (a ``c_void_p`` subclass, as in ``amdsmi_wrapper``)."""


@dataclass
class FakeAmdProcess:
    """A process on a fake AMD GPU, as ``amdsmi_get_gpu_process_list`` lists it.

    Attributes:
        pid: process id.
        vram_mem: VRAM the process holds, in bytes.
        name: process name.
    """

    pid: int
    vram_mem: int = 2**30
    name: str = "python3"


@dataclass
class FakeAmdGpu:
    """One fake AMD GPU (one GCD on MI200).

    Attributes:
        name: ``market_name``, e.g. ``"AMD Instinct MI300X"``.
        gfx: ``target_graphics_version``, e.g. ``"gfx942"`` (MI300), ``"gfx90a"`` (MI200),
            ``"gfx908"`` (MI100).
        uuid: ``amdsmi_get_gpu_device_uuid`` (random if not given).
        memory_mb: VRAM in MB.
        energy_count: the accumulator in units of ``resolution_uj``, or ``None`` when the
            energy call is not supported (``AMDSMI_STATUS_NOT_SUPPORTED``, e.g. a VM guest).
        resolution_uj: ``counter_resolution`` in uJ per count.
        power_w: current power in W; ``None`` for a GPU reporting no power at all.
        power_field: which field of ``amdsmi_get_power_info`` carries it:
            ``"current_socket_power"`` (MI300), ``"average_socket_power"`` (MI200 and older); the
            other reads ``"N/A"``.
        gfx_activity: busy percentage (``amdsmi_get_gpu_activity``), ``None`` for ``"N/A"``.
        stuck: the counter does not move (MI100 until a reboot, ROCm/amdsmi#38).
        processes: the GPU's processes, or ``None`` when listing them is not supported.
        errors: function name -> status code that function raises for this GPU.
        timestamp_ns: the counter's timestamp.
    """

    name: str = "AMD Instinct MI300X"
    gfx: str = "gfx942"
    uuid: str = ""
    memory_mb: int = 196_592
    energy_count: int | None = 0
    resolution_uj: float = DEFAULT_RESOLUTION_UJ
    power_w: float | None = 150.0
    power_field: str = "current_socket_power"
    gfx_activity: int | None = 0
    stuck: bool = False
    processes: list[FakeAmdProcess] | None = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    timestamp_ns: int = 1_000_000_000

    def __post_init__(self) -> None:
        if not self.uuid:
            self.uuid = str(_uuid.uuid4())
        self._residue_uj = 0.0

    def advance(self, seconds: float, *, power_w: float | None = None) -> None:
        """Run for ``seconds`` at ``power_w`` (default: the current power).

        The accumulator grows by power x time / resolution counts, the remainder carried to
        the next call, wrapping at 2**64 like the real ``uint64_t``; a stuck counter stays.
        """
        if power_w is not None:
            self.power_w = power_w
        self.timestamp_ns += round(seconds * 1e9)
        if self.energy_count is None or self.power_w is None or self.stuck:
            return
        energy_uj = self.power_w * seconds * 1e6 + self._residue_uj
        counts = int(energy_uj // self.resolution_uj)
        self._residue_uj = energy_uj - counts * self.resolution_uj
        self.energy_count = (self.energy_count + counts) % COUNTER_MODULUS

    def fail(self, function: str, code: int) -> None:
        """Make ``function`` raise the status ``code`` for this GPU from now on."""
        self.errors[function] = code


class FakeAMDSMI:
    """A stand-in for the ``amdsmi`` module: pass it as ``amdsmi=`` to greenprint.

    Args:
        gpus: the GPUs, in ``amdsmi_get_processor_handles`` order.
        init_error: status ``amdsmi_init`` raises (``AMDSMI_STATUS_DRIVER_NOT_LOADED`` for a
            machine without amdgpu, ``AMDSMI_STATUS_NO_PERM`` without access to /dev/kfd).
        errors: function name -> status raised regardless of the device.
        api: ``"6.1"`` (energy under ``"power"`` only), ``"6.2"`` (``"power"`` and
            ``"energy_accumulator"``) or ``"6.4"`` (``"energy_accumulator"`` only).

    Attributes:
        calls: how many times each function was called.
        init_count: the ``amdsmi_init`` reference count.
    """

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiRetryException = AmdSmiRetryException
    AmdSmiTimeoutException = AmdSmiTimeoutException
    AmdSmiParameterException = AmdSmiParameterException
    AmdSmiInitFlags = AmdSmiInitFlags

    def __init__(
        self,
        gpus: Iterable[FakeAmdGpu] = (),
        *,
        init_error: int | None = None,
        errors: dict[str, int] | None = None,
        api: str = "6.2",
    ) -> None:
        if api not in ("6.1", "6.2", "6.4"):
            raise ValueError(f"api must be '6.1', '6.2' or '6.4', not {api!r}")
        self.gpus: list[FakeAmdGpu] = list(gpus)
        self.init_error = init_error
        self.errors = dict(errors or {})
        self.api = api
        self.calls: Counter[str] = Counter()
        self.init_count = 0
        self._handles = [amdsmi_processor_handle(1000 + i) for i in range(len(self.gpus))]
        wrapper = {n: v for n, v in globals().items() if n.startswith("AMDSMI_STATUS_")}
        wrapper["amdsmi_processor_handle"] = amdsmi_processor_handle
        self.amdsmi_wrapper = types.SimpleNamespace(**wrapper)

    # -- helpers ------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Advance every GPU by ``seconds`` at its current power."""
        for gpu in self.gpus:
            gpu.advance(seconds)

    def _enter(self, function: str) -> None:
        self.calls[function] += 1
        if self.init_count <= 0:
            _raise(AMDSMI_STATUS_NOT_INIT)
        if function in self.errors:
            _raise(self.errors[function])

    def _gpu(self, function: str, handle: object) -> FakeAmdGpu:
        if not isinstance(handle, amdsmi_processor_handle):
            raise AmdSmiParameterException(handle, amdsmi_processor_handle)
        self._enter(function)
        index = next((i for i, h in enumerate(self._handles) if h.value == handle.value), None)
        if index is None:
            _raise(AMDSMI_STATUS_NOT_FOUND)
        gpu = self.gpus[index]  # type: ignore[index]
        if function in gpu.errors:
            _raise(gpu.errors[function])
        return gpu

    # -- the amdsmi surface -------------------------------------------------------------------
    def amdsmi_init(self, flag: enum.IntFlag = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        """Initialise (reference counted); raises ``init_error`` if set."""
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiParameterException(flag, AmdSmiInitFlags)
        self.calls["amdsmi_init"] += 1
        if self.init_error is not None:
            _raise(self.init_error)
        self.init_count += 1

    def amdsmi_shut_down(self) -> None:
        """Drop one reference; calls fail once the count reaches 0."""
        self._enter("amdsmi_shut_down")
        self.init_count -= 1

    def amdsmi_get_processor_handles(self) -> list[amdsmi_processor_handle]:
        """One handle per GPU (all of them: amdsmi ignores HIP_VISIBLE_DEVICES)."""
        self._enter("amdsmi_get_processor_handles")
        return [amdsmi_processor_handle(h.value) for h in self._handles]

    def amdsmi_get_gpu_asic_info(self, processor_handle: object) -> dict[str, Any]:
        """``market_name``, ``target_graphics_version`` and the other ASIC fields."""
        gpu = self._gpu("amdsmi_get_gpu_asic_info", processor_handle)
        return {
            "market_name": gpu.name,
            "vendor_id": "0x1002",
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "subvendor_id": "0x1002",
            "device_id": "0x74a1",
            "rev_id": "0x00",
            "asic_serial": "0x0123456789ABCDEF",
            "oam_id": 0,
            "num_compute_units": 304,
            "target_graphics_version": gpu.gfx,
        }

    def amdsmi_get_gpu_device_uuid(self, processor_handle: object) -> str:
        """The GPU's UUID."""
        return self._gpu("amdsmi_get_gpu_device_uuid", processor_handle).uuid

    def amdsmi_get_gpu_vram_usage(self, processor_handle: object) -> dict[str, int]:
        """``vram_total`` and ``vram_used`` in MB."""
        gpu = self._gpu("amdsmi_get_gpu_vram_usage", processor_handle)
        used = sum(p.vram_mem for p in gpu.processes or []) // 2**20
        return {"vram_total": gpu.memory_mb, "vram_used": min(used, gpu.memory_mb)}

    def amdsmi_get_energy_count(self, processor_handle: object) -> dict[str, Any]:
        """The energy accumulator, its resolution in uJ and a timestamp in ns."""
        gpu = self._gpu("amdsmi_get_energy_count", processor_handle)
        if gpu.energy_count is None:
            _raise(AMDSMI_STATUS_NOT_SUPPORTED)
        count = int(gpu.energy_count or 0)
        out: dict[str, Any] = {}
        if self.api in ("6.1", "6.2"):
            out["power"] = count
        if self.api in ("6.2", "6.4"):
            out["energy_accumulator"] = count
        out["counter_resolution"] = gpu.resolution_uj
        out["timestamp"] = gpu.timestamp_ns
        return out

    def amdsmi_get_power_info(self, processor_handle: object) -> dict[str, Any]:
        """Socket power in W (``"N/A"`` where not supported) and voltages."""
        gpu = self._gpu("amdsmi_get_power_info", processor_handle)
        info: dict[str, Any] = {
            "current_socket_power": "N/A",
            "average_socket_power": "N/A",
            "gfx_voltage": 800,
            "soc_voltage": 900,
            "mem_voltage": 1200,
            "power_limit": 750,
        }
        if gpu.power_w is not None:
            info[gpu.power_field] = int(round(gpu.power_w))
        return info

    def amdsmi_get_gpu_activity(self, processor_handle: object) -> dict[str, Any]:
        """``gfx_activity``, ``umc_activity``, ``mm_activity`` in % (``"N/A"`` if unknown)."""
        gpu = self._gpu("amdsmi_get_gpu_activity", processor_handle)
        gfx: Any = "N/A" if gpu.gfx_activity is None else int(gpu.gfx_activity)
        return {"gfx_activity": gfx, "umc_activity": "N/A", "mm_activity": "N/A"}

    def amdsmi_get_gpu_process_list(self, processor_handle: object) -> list[dict[str, Any]]:
        """The GPU's processes: ``name``, ``pid``, ``mem``, ``engine_usage``, ``memory_usage``."""
        gpu = self._gpu("amdsmi_get_gpu_process_list", processor_handle)
        if gpu.processes is None:
            _raise(AMDSMI_STATUS_NOT_SUPPORTED)
        return [
            {
                "name": p.name,
                "pid": p.pid,
                "mem": p.vram_mem,
                "engine_usage": {"gfx": 0, "enc": 0},
                "memory_usage": {"gtt_mem": 0, "cpu_mem": 0, "vram_mem": p.vram_mem},
            }
            for p in gpu.processes or []
        ]
