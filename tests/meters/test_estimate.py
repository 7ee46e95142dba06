"""The estimate meters: the power model, its integration, and the provenance strings."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenprint.hardware import HardwareInfo
from greenprint.meters import (
    DEFAULT_W_PER_CORE,
    IDLE_FRACTION,
    RAM_W_PER_GB,
    CpuEstimateMeter,
    GpuEstimateMeter,
    ProcessTree,
    RamEstimateMeter,
    cpu_power_w,
)
from greenprint.meters._discovery import cpu_estimate_for, ram_estimate_for

tdps = st.floats(min_value=1.0, max_value=2000.0, allow_nan=False)
utils = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@given(tdp=tdps, u=utils)
def test_power_lies_between_the_idle_floor_and_the_tdp(tdp, u):
    p = cpu_power_w(tdp, u)
    assert IDLE_FRACTION * tdp - 1e-9 <= p <= tdp + 1e-9


@given(tdp=tdps, u1=utils, u2=utils)
def test_power_is_monotone_and_linear_in_utilisation(tdp, u1, u2):
    lo, hi = sorted((u1, u2))
    assert cpu_power_w(tdp, lo) <= cpu_power_w(tdp, hi) + 1e-9
    mid = cpu_power_w(tdp, (lo + hi) / 2)
    assert math.isclose(mid, (cpu_power_w(tdp, lo) + cpu_power_w(tdp, hi)) / 2, rel_tol=1e-9)


def test_power_at_the_ends():
    assert cpu_power_w(150.0, 0.0) == pytest.approx(15.0)
    assert cpu_power_w(150.0, 1.0) == pytest.approx(150.0)
    assert cpu_power_w(150.0, 7.0) == pytest.approx(150.0)  # clamped


def test_cpu_estimate_integrates_between_idle_and_full_power():
    clock = Clock()
    tree = ProcessTree(clock=clock)
    meter = CpuEstimateMeter(tdp_w=100.0, provenance="estimate:test", tree=tree)
    meter.start()
    clock.t += 10.0
    reading = meter.read()
    u = tree.last
    assert u.elapsed_s == 10.0
    assert 10.0 * 10.0 - 1e-9 <= reading.machine_j <= 100.0 * 10.0 + 1e-9
    assert reading.machine_j == pytest.approx(10.0 * 10.0 + 90.0 * u.busy_s)
    assert 0 <= reading.process_j <= reading.machine_j


def test_reading_twice_in_one_tick_does_not_double_count():
    clock = Clock()
    tree = ProcessTree(clock=clock)
    meter = RamEstimateMeter(ram_gb=16.0, tree=tree)
    meter.start()
    clock.t += 2.0
    tree.sample()  # what MeterSet does once per tick
    first = meter.read()
    second = meter.read()  # no new sample: the meter takes one itself, with dt = 0
    assert first.machine_j == pytest.approx(16.0 * RAM_W_PER_GB * 2.0)
    assert second.machine_j == pytest.approx(first.machine_j)


def test_ram_estimate_is_w_per_gb_times_installed_gb():
    clock = Clock()
    meter = RamEstimateMeter(ram_gb=64.0, tree=ProcessTree(clock=clock))
    assert meter.provenance == "estimate:ram:0.3725W/GB x 64.0 GB"
    meter.start()
    clock.t += 3600.0
    assert meter.read().machine_j == pytest.approx(0.3725 * 64 * 3600)


def test_gpu_estimate_holds_a_constant_power():
    clock = Clock(5.0)
    meter = GpuEstimateMeter(power_w=250.0, share=0.5, clock=clock, started_at=3.0)
    meter.start()  # started_at wins
    clock.t = 7.0
    reading = meter.read()
    assert reading.machine_j == pytest.approx(1000.0)
    assert reading.process_j == pytest.approx(500.0)
    assert meter.provenance == "estimate:gpu:mean-power (250 W)"


def hardware(**kw):
    base = dict(
        cpu_model="AMD EPYC",
        sockets=1,
        physical_cores=2,
        logical_cores=2,
        ram_gb=16.0,
        gpus=(),
        meters=(),
        cpu_tdp_w=None,
        cpu_tdp_source="default-per-core",
    )
    base.update(kw)
    return HardwareInfo(**base)


def test_estimate_from_the_table_multiplies_by_sockets():
    hw = hardware(
        cpu_model="Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz",
        sockets=2,
        cpu_tdp_w=150.0,
        cpu_tdp_source="table:Intel Xeon Gold 6148",
    )
    meter = cpu_estimate_for(hw)
    assert meter.provenance == "estimate:tdp:Intel Xeon Gold 6148 (2 x 150 W)"
    assert meter.tdp_w == 300.0
    one = cpu_estimate_for(hardware(cpu_tdp_w=280.0, cpu_tdp_source="table:AMD EPYC 7763"))
    assert one.provenance == "estimate:tdp:AMD EPYC 7763 (280 W)"


def test_estimate_without_a_table_match_uses_the_per_core_default():
    meter = cpu_estimate_for(hardware(logical_cores=8))
    assert meter.provenance == (
        f"estimate:default-per-core ({DEFAULT_W_PER_CORE:g} W/core x 8; 'AMD EPYC' is not in the "
        "TDP table: set GREENPRINT_CPU_TDP_W or cpu_tdp_w to its power at full load)"
    )
    assert meter.tdp_w == DEFAULT_W_PER_CORE * 8
    assert ram_estimate_for(hardware()).provenance == "estimate:ram:0.3725W/GB x 16.0 GB"
