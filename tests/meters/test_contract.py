"""Public names of greenprint.meters, greenprint.testing and greenprint.hardware; their doctests."""

import doctest
import importlib

import pytest

MODULES = ["greenprint.meters", "greenprint.testing", "greenprint.hardware"]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_public_and_resolves(name):
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    assert not [n for n in module.__all__ if n.startswith("_")]
    for n in module.__all__:
        assert getattr(module, n) is not None, n


@pytest.mark.parametrize(
    "name",
    [
        "greenprint.hardware",
        "greenprint.meters._tdp",
        "greenprint.meters._nvml",
        "greenprint.testing._nvml",
    ],
)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_contract_the_tracker_relies_on():
    from greenprint.hardware import GPUInfo, HardwareInfo, MeterStatus, detect_hardware
    from greenprint.meters import MeterReading, MeterSet, detect_meters

    assert list(HardwareInfo.__dataclass_fields__) == [
        "cpu_model",
        "sockets",
        "physical_cores",
        "logical_cores",
        "ram_gb",
        "gpus",
        "meters",
        "cpu_tdp_w",
        "cpu_tdp_source",
    ]
    assert list(GPUInfo.__dataclass_fields__) == [
        "index",
        "name",
        "uuid",
        "memory_gb",
        "has_energy_counter",
    ]
    assert list(MeterStatus.__dataclass_fields__) == ["name", "usable", "reason", "fix"]
    assert list(MeterReading.__dataclass_fields__) == ["machine_j", "process_j"]
    for cls in (HardwareInfo, GPUInfo, MeterStatus):
        assert cls.__dataclass_params__.frozen
    assert callable(detect_hardware) and callable(detect_meters)
    for attr in ("start", "read", "close"):
        assert callable(getattr(MeterSet, attr))
