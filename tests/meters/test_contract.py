"""The contract the tracker relies on: the fields of the hardware and meter records."""


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
        "vendor",  # "nvidia" or "amd"; added last, with a default, so old callers still work
    ]
    assert list(MeterStatus.__dataclass_fields__) == ["name", "usable", "reason", "fix"]
    assert list(MeterReading.__dataclass_fields__) == ["machine_j", "process_j"]
    for cls in (HardwareInfo, GPUInfo, MeterStatus):
        assert cls.__dataclass_params__.frozen
    assert callable(detect_hardware) and callable(detect_meters)
    for attr in ("start", "read", "close"):
        assert callable(getattr(MeterSet, attr))
