"""A GPU meter's provenance says what was actually used when its source changes mid-run.

The AMD meter drops a counter that is stuck, goes backwards or jumps, and the NVML meter one that
stops answering, for sampled power; the label recorded must then name both (the counter, then
sampled power, and from when), in the meter, in the meter set and in the ledger, and still parse
as a measurement (it is one: sampled power is read from the GPU).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import greenprint as gp
from greenprint._provenance import Provenance
from greenprint.meters import NvmlMeter, detect_meters
from greenprint.meters._amd import STUCK_AFTER_S, AmdMeter
from greenprint.meters._gpu_meter import (
    COUNTER,
    COUNTER_THEN_POWER,
    POWER_SAMPLING,
    vendor_origin,
)
from greenprint.testing import FakeAmdGpu, FakeAMDSMI, FakeGPU, FakeNVML
from greenprint.testing import _amdsmi as amd_codes
from greenprint.testing import _nvml as nvml_codes


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _parses_as_measured(text: str) -> None:
    origin = Provenance.parse(text)
    assert str(origin) == text
    assert origin.is_measured and not origin.is_estimate


@given(
    vendor=st.sampled_from(["nvml", "amdsmi"]),
    sources=st.lists(st.sampled_from([COUNTER, POWER_SAMPLING, COUNTER_THEN_POWER]), min_size=1),
    notes=st.lists(st.from_regex(r"GPU-[0-9] [a-z ,:0-9]{0,30}", fullmatch=True), max_size=3),
)
def test_every_mix_of_sources_is_a_measured_label_that_reads_back(vendor, sources, notes):
    gpus = [(f"GPU-{i}", source) for i, source in enumerate(sources)]
    origin = vendor_origin(vendor, gpus, notes)
    text = str(origin)
    assert Provenance.parse(text) == origin and str(Provenance.parse(text)) == text
    assert origin.is_measured
    named = {}  # source -> the labels listed under it
    for part in origin.source.removeprefix(f"{vendor}:").split(f"+{vendor}:"):
        source, _, labels = part.partition(":")
        named[source] = labels.split("+")
    assert named == {s: [g for g, t in gpus if t == s] for s in set(sources)}


# -- AMD ----------------------------------------------------------------------------------------


def test_a_stuck_amd_counter_is_labelled_counter_then_sampled_in_the_meter_set():
    gpu = FakeAmdGpu(power_w=200.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meters = detect_meters(nvml=FakeNVML(), amdsmi=amdsmi, environ={}, clock=clock)
    try:
        assert meters.provenance["gpu"] == "amdsmi:counter:GPU-0"
        meters.start()
        for _ in range(5):  # 5 s on the counter
            clock.t += 1.0
            amdsmi.advance(1.0)
            meters.read()
        assert meters.provenance["gpu"] == "amdsmi:counter:GPU-0"
        gpu.stuck = True
        seconds = 5
        while meters.provenance["gpu"] == "amdsmi:counter:GPU-0":
            clock.t += 1.0
            amdsmi.advance(1.0)
            reading = meters.read()["gpu"]
            seconds += 1
            assert seconds < 5 + STUCK_AFTER_S + 2, "the stuck counter was never dropped"
        # first principles: 200 W for every second of the run, counter part and sampled part
        assert reading.machine_j == pytest.approx(200.0 * seconds, abs=1e-3)
        prov = meters.provenance["gpu"]
        assert prov == (
            "amdsmi:counter-then-power-sampling:GPU-0 (GPU-0 energy counter stuck for 3 s under "
            "load: power sampled after 5 s)"
        )
        _parses_as_measured(prov)
        clock.t += 2.0
        amdsmi.advance(2.0)
        assert meters.read()["gpu"].machine_j == pytest.approx(200.0 * (seconds + 2), abs=1e-3)
        assert meters.provenance["gpu"] == prov  # stays
    finally:
        meters.close()


def test_two_amd_gpus_one_dropped_name_each_source():
    gpus = [FakeAmdGpu(power_w=100.0), FakeAmdGpu(energy_count=10**12, power_w=300.0)]
    amdsmi, clock = FakeAMDSMI(gpus), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    clock.t += 2.0
    amdsmi.advance(2.0)
    assert meter.read().machine_j == pytest.approx(800.0, abs=1e-3)
    clock.t += 1.0
    amdsmi.advance(1.0)
    gpus[1].energy_count = 10**9  # far back: no wrap explains it
    assert meter.read().machine_j == pytest.approx(1200.0, abs=1e-3)
    assert meter.provenance == (
        "amdsmi:counter:GPU-0+amdsmi:counter-then-power-sampling:GPU-1 (GPU-1 energy counter "
        "went backwards: power sampled after 2 s)"
    )
    _parses_as_measured(meter.provenance)
    assert [g.has_energy_counter for g in meter.gpus] == [True, False]


def test_a_counter_that_stood_still_then_went_backwards_loses_no_energy():
    """The reads in which the counter did not move are taken from power too, not dropped."""
    gpu = FakeAmdGpu(energy_count=10**12, power_w=250.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    clock.t += 1.0
    amdsmi.advance(1.0)
    meter.read()  # 250 J on the counter; it last moved at 1 s
    gpu.stuck = True
    clock.t += 1.0
    amdsmi.advance(1.0)
    assert meter.read().machine_j == pytest.approx(250.0, abs=1e-3)  # not moved: held
    gpu.stuck = False
    gpu.energy_count = 10**9
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(750.0, abs=1e-3)  # 250 W x 3 s
    assert meter.provenance.endswith("went backwards: power sampled after 1 s)")


def test_the_label_a_run_records_is_the_one_in_use_at_its_end(tmp_path):
    gpu = FakeAmdGpu(energy_count=10**12, power_w=300.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meters = detect_meters(nvml=FakeNVML(), amdsmi=amdsmi, environ={}, clock=clock)
    ledger = tmp_path / "g.db"
    # one read, at the end: the sampler waits far longer than the run lasts
    slow = {"sample_interval_s": 600.0, "flush_interval_s": 600.0, "scope": "machine"}
    with gp.track("amd", ledger=ledger, meters=meters, **slow) as run:
        clock.t += 2.0
        gpu.energy_count = 10**9
    expected = (
        "amdsmi:counter-then-power-sampling:GPU-0 (GPU-0 energy counter went backwards: power "
        "sampled after 0 s)"
    )
    assert run.provenance["gpu"] == expected
    assert gp.Ledger(ledger).run(run.id).provenance["gpu"] == expected
    assert run.energy_by_component["gpu"] == pytest.approx(600.0 / 3.6e6, rel=1e-6)  # 300 W x 2 s


# -- NVML -----------------------------------------------------------------------------------------


def test_an_nvml_counter_that_stops_answering_is_replaced_by_sampled_power_and_says_so():
    gpu = FakeGPU(energy_mj=0, power_w=250.0)
    nvml, clock = FakeNVML([gpu]), Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    meter.start()
    clock.t += 2.0
    nvml.advance(2.0)
    assert meter.read().machine_j == pytest.approx(500.0)
    gpu.fail("nvmlDeviceGetTotalEnergyConsumption", nvml_codes.NVML_ERROR_NOT_SUPPORTED)
    clock.t += 1.0
    nvml.advance(1.0)
    assert meter.read().machine_j == pytest.approx(750.0)  # the power read then, over 1 s
    gpu.power_w = 350.0
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(1050.0)  # trapezoid 250 -> 350 W over 1 s
    assert meter.provenance == (
        "nvml:counter-then-power-sampling:GPU-0 (GPU-0 energy counter failed (Not Supported): "
        "power sampled after 2 s)"
    )
    _parses_as_measured(meter.provenance)
    assert meter.gpus[0].has_energy_counter is False
    meter.close()


def test_nvml_in_the_meter_set_one_gpu_dropped_the_other_on_its_counter():
    gpus = [FakeGPU(energy_mj=0, power_w=100.0), FakeGPU(energy_mj=0, power_w=200.0)]
    nvml, clock = FakeNVML(gpus), Clock()
    meters = detect_meters(nvml=nvml, environ={}, clock=clock)
    try:
        meters.start()
        clock.t += 1.0
        nvml.advance(1.0)
        assert meters.read()["gpu"].machine_j == pytest.approx(300.0)
        assert meters.provenance["gpu"] == "nvml:counter:GPU-0+GPU-1"
        gpus[1].fail("nvmlDeviceGetTotalEnergyConsumption", nvml_codes.NVML_ERROR_NO_DATA)
        clock.t += 1.0
        nvml.advance(1.0)
        assert meters.read()["gpu"].machine_j == pytest.approx(600.0)
        prov = meters.provenance["gpu"]
        assert prov.startswith("nvml:counter:GPU-0+nvml:counter-then-power-sampling:GPU-1 (")
        assert "power sampled after 1 s" in prov
        _parses_as_measured(prov)
    finally:
        meters.close()


def test_a_lost_gpu_still_fails_the_meter_and_the_set_says_estimate():
    """Only "not available" errors switch to sampled power; a lost GPU is an estimate, labelled."""
    gpu = FakeGPU(energy_mj=0, power_w=100.0)
    nvml, clock = FakeNVML([gpu]), Clock()
    meters = detect_meters(nvml=nvml, environ={}, clock=clock)
    try:
        meters.start()
        clock.t += 1.0
        nvml.advance(1.0)
        meters.read()
        gpu.fail("nvmlDeviceGetTotalEnergyConsumption", nvml_codes.NVML_ERROR_GPU_IS_LOST)
        clock.t += 1.0
        meters.read()
        prov = meters.provenance["gpu"]
        assert prov.startswith("estimate:gpu:mean-power (100 W) (nvml failed: GPU-0: ")
        assert Provenance.parse(prov).is_estimate
    finally:
        meters.close()


def test_an_amd_counter_failing_outright_is_still_an_estimate_labelled():
    gpu = FakeAmdGpu(power_w=300.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meters = detect_meters(nvml=FakeNVML(), amdsmi=amdsmi, environ={}, clock=clock)
    try:
        meters.start()
        clock.t += 1.0
        amdsmi.advance(1.0)
        meters.read()
        gpu.fail("amdsmi_get_energy_count", amd_codes.AMDSMI_STATUS_DRM_ERROR)
        clock.t += 1.0
        meters.read()
        assert Provenance.parse(meters.provenance["gpu"]).is_estimate
    finally:
        meters.close()
