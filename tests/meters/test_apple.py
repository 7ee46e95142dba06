"""Apple silicon through powermetrics: the parsers on recorded output, the probe's reasons and
fixes, and the meter against a fake powermetrics process (replay, refusal, silence, death)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import MeterError
from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters
from greenprint.meters._apple import (
    PowermetricsMeter,
    PowermetricsSource,
    parse_powermetrics_plist,
    parse_powermetrics_text,
    probe_powermetrics,
    stall_after_s,
)
from greenprint.testing import NOT_ROOT_MESSAGE, make_fake_powermetrics, powermetrics_plist

DATA = Path(__file__).parent / "data"
M2 = (DATA / "powermetrics_m2_macos14.plist").read_bytes()
M1 = (DATA / "powermetrics_m1_macos12.plist").read_bytes()
TEXT = (DATA / "powermetrics_m2_text.txt").read_text()
# (elapsed s, cpu mW, gpu mW, ane mW) of the three M2 samples, as written in the file
M2_FIGURES = [
    (1.004125, 2978.45, 269.614, 0.0),
    (1.001873458, 5123.0, 1840.25, 120.5),
    (0.999546667, 812.33, 45.2, 0.0),
]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _failure(meter: PowermetricsMeter) -> MeterError:
    """The error the meter reports once its process is gone (it may already fail to start)."""
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        try:
            meter.read()
        except MeterError as e:
            return e
        time.sleep(0.02)
    raise AssertionError("the meter never failed")


def _wait_for(source: PowermetricsSource, samples: int) -> None:
    deadline = time.monotonic() + 20.0
    while source.samples < samples:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {source.samples} of {samples} samples arrived")
        time.sleep(0.01)


# -- parsers on recorded output -----------------------------------------------------------------
def test_plist_samples_give_power_times_interval_in_joules():
    samples, rest = parse_powermetrics_plist(M2)
    assert rest == b""
    assert len(samples) == 3
    for s, (elapsed, cpu, gpu, ane) in zip(samples, M2_FIGURES, strict=True):
        assert s.elapsed_s == pytest.approx(elapsed)
        assert s.cpu_j == pytest.approx(cpu / 1000 * elapsed)  # mW x s / 1000 = J
        assert s.energy_j("gpu") == pytest.approx((gpu + ane) / 1000 * elapsed)  # GPU + ANE
        assert s.power_w("cpu") == pytest.approx(cpu / 1000)


def test_power_and_energy_keys_agree_in_the_recording():
    """The file's mJ energies and mW powers describe the same joules (within rounding)."""
    import plistlib

    for chunk in M2.split(b"\0")[:-1]:
        p = plistlib.loads(chunk)["processor"]
        seconds = plistlib.loads(chunk)["elapsed_ns"] / 1e9
        assert abs(p["cpu_energy"] - p["cpu_power"] * seconds) <= 0.5
        assert p["combined_power"] == pytest.approx(
            p["cpu_power"] + p["gpu_power"] + p["ane_power"]
        )


def test_macos12_energy_keys_are_the_fallback():
    samples, _ = parse_powermetrics_plist(M1)
    assert [round(s.cpu_j, 3) for s in samples] == [1.515, 4.412]  # cpu_energy mJ / 1000
    assert [round(s.gpu_j, 3) for s in samples] == [0.088, 2.211]


def test_text_output():
    samples = parse_powermetrics_text(TEXT)
    assert len(samples) == 2
    first, second = samples
    assert first.elapsed_s == pytest.approx(1.00413)
    assert first.cpu_j == pytest.approx(2.978 * 1.00413)
    assert first.gpu_j == pytest.approx(0.270 * 1.00413)  # the GPU line is there twice: once
    assert second.energy_j("gpu") == pytest.approx((1.840 + 0.121) * 1.00187)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, len(M2)), max_size=8))
def test_plist_stream_cut_anywhere_gives_the_same_samples(cuts):
    """Bytes arrive from a pipe in any pieces: the samples, and their sum, do not change."""
    whole, _ = parse_powermetrics_plist(M2)
    got, buffer = [], b""
    bounds = sorted(set([0, *cuts, len(M2)]))
    for a, b in zip(bounds, bounds[1:], strict=False):
        samples, buffer = parse_powermetrics_plist(buffer + M2[a:b])
        got.extend(samples)
    assert got == whole


def test_a_plist_is_complete_at_its_closing_tag_before_its_nul():
    first = powermetrics_plist(cpu_mw=1000.0)
    samples, rest = parse_powermetrics_plist(first + b"\n")
    assert len(samples) == 1 and rest == b""


def test_garbage_and_samples_without_cpu_are_skipped():
    no_cpu = powermetrics_plist(cpu_mw=1.0, with_energy=False, with_power=False)
    data = b"<plist>not xml" + b"\0" + no_cpu + b"\0" + powermetrics_plist(cpu_mw=500.0) + b"\0"
    samples, _ = parse_powermetrics_plist(data)
    assert [s.cpu_j for s in samples] == [0.5]


# -- probe ----------------------------------------------------------------------------------
def test_probe_on_linux_and_on_an_intel_mac():
    assert probe_powermetrics(environ={}, system="linux").status.reason == (
        "not macOS (powermetrics meters Apple silicon)"
    )
    intel = probe_powermetrics(environ={}, system="darwin", machine="x86_64").status
    assert not intel.usable and intel.reason.startswith("an Intel Mac (x86_64)")


@pytest.fixture
def usr_bin(tmp_path, monkeypatch):
    """A stand-in /usr/bin holding a powermetrics (found through GREENPRINT_USR_BIN_ROOT)."""
    folder = tmp_path / "usr-bin"
    folder.mkdir()
    (folder / "powermetrics").write_text("#!/bin/sh\n")
    monkeypatch.setenv("GREENPRINT_USR_BIN_ROOT", str(folder))
    return folder


def test_a_mac_without_powermetrics_says_so_and_reads_no_real_path(tmp_path, monkeypatch):
    """The presence check looks under GREENPRINT_USR_BIN_ROOT (tests: an empty folder)."""
    monkeypatch.setenv("GREENPRINT_USR_BIN_ROOT", str(tmp_path))

    def runner(argv):
        raise AssertionError(f"nothing is run without powermetrics: {argv}")

    probe = probe_powermetrics(
        environ={}, system="darwin", machine="arm64", as_root=False, runner=runner
    )
    assert not probe.status.usable and probe.argv == ()
    assert probe.status.reason == f"no {tmp_path / 'powermetrics'}"


def test_probe_without_sudo_rights_gives_the_sudoers_line(usr_bin):
    def runner(argv):
        assert list(argv) == ["sudo", "-n", "-l", str(usr_bin / "powermetrics")]
        return 1, "sudo: a password is required"

    probe = probe_powermetrics(
        environ={"USER": "ada"}, system="darwin", machine="arm64", as_root=False, runner=runner
    )
    assert not probe.status.usable and probe.argv == ()
    assert probe.status.reason == (
        "powermetrics needs root and sudo would ask for a password (sudo: a password is required)"
    )
    assert "ada ALL=(root) NOPASSWD: /usr/bin/powermetrics" in probe.status.fix
    assert "sudo visudo -f /etc/sudoers.d/greenprint" in probe.status.fix


def test_probe_with_sudo_rights_or_as_root(usr_bin):
    probe = probe_powermetrics(
        environ={}, system="darwin", machine="arm64", as_root=False, runner=lambda a: (0, "")
    )
    assert probe.status.usable
    assert probe.argv == (
        "sudo",
        "-n",
        str(usr_bin / "powermetrics"),
        "--samplers",
        "cpu_power,gpu_power",
        "-i",
        "1000",
        "-f",
        "plist",
    )
    root = probe_powermetrics(
        environ={},
        system="darwin",
        machine="arm64",
        as_root=True,
        runner=lambda a: (1, "never asked"),
    )
    assert root.status.usable and root.argv[0] == str(usr_bin / "powermetrics")
    assert root.status.reason == "cpu and gpu+ane from powermetrics as root, sampled every 1000 ms"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ('"unclosed', "$GREENPRINT_POWERMETRICS='\"unclosed' is not a command line"),
        ("  ", "$GREENPRINT_POWERMETRICS='  ' is not a command line"),
        (
            "/no/such/powermetrics -i 1000",
            "$GREENPRINT_POWERMETRICS: no program '/no/such/powermetrics' (not found or not "
            "executable)",
        ),
    ],
)
def test_an_override_that_names_no_program_is_unusable_and_never_raises(
    tmp_path, no_other_hardware, monkeypatch, override, reason
):
    """Found as a new user: an unclosed quote raised ValueError out of gp.track and `greenprint
    hardware`; a missing program or a blank value was listed as usable."""
    probe = probe_powermetrics(environ={"GREENPRINT_POWERMETRICS": override})
    assert not probe.status.usable and probe.argv == ()
    assert probe.status.reason == reason
    assert "GREENPRINT_POWERMETRICS" in probe.status.fix
    monkeypatch.setenv("GREENPRINT_POWERMETRICS", override)
    assert not detect_hardware().meter("powermetrics").usable
    meters = detect_meters()
    try:
        assert meters.provenance["cpu"].startswith("estimate:")
        assert "gpu" not in meters.provenance
    finally:
        meters.close()


# -- the meter against a fake process ---------------------------------------------------------
def test_meter_sums_the_replayed_samples(tmp_path):
    gate = tmp_path / "go"  # the samples come once both meters started (a meter counts from
    # its start: under load the first samples could arrive between the two starts)
    command = make_fake_powermetrics(
        tmp_path, M2, behaviour="once", interval_s=0.02, start_when=gate
    )
    clock = Clock()  # frozen: no extrapolation, no stall
    source = PowermetricsSource(command.split(), clock=clock)
    cpu, gpu = PowermetricsMeter("cpu", source), PowermetricsMeter("gpu", source)
    try:
        cpu.start()
        gpu.start()
        gate.touch()
        _wait_for(source, 3)
        expected = parse_powermetrics_plist(M2)[0]
        assert cpu.read().machine_j == pytest.approx(sum(s.cpu_j for s in expected))
        assert gpu.read().machine_j == pytest.approx(sum(s.energy_j("gpu") for s in expected))
        assert cpu.provenance == "powermetrics:cpu" and gpu.provenance == "powermetrics:gpu+ane"
        assert cpu.origin.is_measured
    finally:
        cpu.close()
        gpu.close()


def test_between_samples_energy_is_extrapolated_and_never_goes_back(tmp_path):
    gate = tmp_path / "go"  # the sample comes once the meter started (it counts from there)
    command = make_fake_powermetrics(
        tmp_path,
        [powermetrics_plist(cpu_mw=2000.0)],
        behaviour="once",
        interval_s=0.02,
        start_when=gate,
    )
    clock = Clock()
    source = PowermetricsSource(command.split(), clock=clock, interval_ms=1000)
    meter = PowermetricsMeter("cpu", source)
    try:
        meter.start()
        gate.touch()
        _wait_for(source, 1)
        assert meter.read().machine_j == pytest.approx(2.0)
        clock.t += 0.5
        assert meter.read().machine_j == pytest.approx(3.0)  # + 0.5 s at 2 W
        clock.t += 3.0  # 3.5 s since the sample: still under the stall deadline (5 s)
        assert meter.read().machine_j == pytest.approx(6.0)  # at most two intervals ahead
    finally:
        meter.close()


def test_refused_without_root_raises_meter_error_with_the_message(tmp_path):
    command = make_fake_powermetrics(tmp_path, b"", behaviour="not-root")
    source = PowermetricsSource(command.split())
    meter = PowermetricsMeter("cpu", source)
    try:
        error = _failure(meter)
        assert str(error) == f"powermetrics exited with status 1: {NOT_ROOT_MESSAGE}"
    finally:
        meter.close()


def test_a_silent_process_is_stuck_after_the_deadline_and_is_stopped(tmp_path):
    command = make_fake_powermetrics(tmp_path, b"", behaviour="silent")
    clock = Clock()
    source = PowermetricsSource(command.split(), clock=clock)
    meter = PowermetricsMeter("gpu", source)
    meter.start()
    proc = source._proc
    assert meter.read().machine_j == 0.0  # no sample yet: nothing, and no wait
    clock.t += stall_after_s(1000) + 0.1
    with pytest.raises(MeterError, match="sent no sample for 5.1 s"):
        meter.read()
    meter.close()
    assert proc is not None and proc.poll() is not None  # terminated, not left behind


def test_missing_command_is_a_meter_error(tmp_path):
    meter = PowermetricsMeter("cpu", PowermetricsSource([str(tmp_path / "no-such-command")]))
    with pytest.raises(MeterError, match="cannot run"):
        meter.start()


def test_detect_meters_uses_it_for_cpu_and_gpu(tmp_path, no_other_hardware, monkeypatch):
    command = make_fake_powermetrics(tmp_path, M2, interval_s=0.02)
    monkeypatch.setenv("GREENPRINT_POWERMETRICS", command)
    hw = detect_hardware()
    assert hw.meter("powermetrics").usable
    meters = detect_meters()
    try:
        assert meters.provenance["cpu"] == "powermetrics:cpu"
        assert meters.provenance["gpu"] == "powermetrics:gpu+ane"
        assert meters.provenance["ram"].startswith("estimate:ram")
        meters.start()
        source = meters.meter("cpu").source
        _wait_for(source, 2)
        readings = meters.read()
        assert readings["cpu"].machine_j > 0 and readings["gpu"].machine_j > 0
        assert readings["cpu"].process_j is not None  # the tree's share of busy CPU time
    finally:
        meters.close()
    assert source._proc is None  # both meters let go: the process was stopped


@pytest.mark.parametrize("behaviour", ["not-root", "die"])
def test_failing_mid_run_degrades_to_the_estimate_and_says_so(
    tmp_path, no_other_hardware, monkeypatch, behaviour
):
    command = make_fake_powermetrics(
        tmp_path, M2, behaviour=behaviour, die_after=1, interval_s=0.02
    )
    monkeypatch.setenv("GREENPRINT_POWERMETRICS", command)
    meters = detect_meters()
    try:
        meters.start()  # may already fall back
        deadline = time.monotonic() + 20.0
        while not meters.provenance["gpu"].startswith("estimate:"):
            assert time.monotonic() < deadline, "powermetrics never failed"
            meters.read()  # never raises
            time.sleep(0.02)
        readings = meters.read()
        assert set(readings) == {"cpu", "gpu", "ram"}
        assert meters.provenance["cpu"].startswith("estimate:")
        assert "(powermetrics failed: powermetrics exited with status" in meters.provenance["cpu"]
        assert meters.provenance["gpu"].startswith("estimate:")
        assert "(powermetrics failed:" in meters.provenance["gpu"]
        assert meters.read()["cpu"].machine_j >= readings["cpu"].machine_j
    finally:
        meters.close()
