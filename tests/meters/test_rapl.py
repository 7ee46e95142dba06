"""RAPL through fake powercap trees: sockets, DRAM, psys, mirrors, wrap-around, unreadable files."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import MeterError
from greenprint.meters import RaplMeter, probe_rapl
from greenprint.testing import make_fake_rapl


def test_two_sockets_with_dram_psys_core_and_a_mirror_are_found_once(tmp_path):
    rapl = make_fake_rapl(
        tmp_path / "pc", packages=2, dram=True, psys=True, core=True, mmio_mirror=True
    )
    probe = probe_rapl(rapl.root)
    assert probe.status.usable
    assert [d.name for d in probe.package] == ["package-0", "package-1"]
    assert [d.name for d in probe.dram] == ["dram-0", "dram-1"]
    # the MSR zone wins over its MMIO mirror
    assert probe.package[0].zone == "intel-rapl:0"
    names = sorted(d.name for d in probe.domains)
    assert names.count("package-0") == 2  # found twice, used once
    assert "psys" in names and "core-0" in names
    assert "psys ignored" in probe.status.reason
    assert "mirrored" in probe.status.reason


def test_package_energy_is_summed_over_sockets_without_psys_core_or_mirror(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", packages=2, psys=True, core=True, mmio_mirror=True)
    probe = probe_rapl(rapl.root)
    cpu = RaplMeter("cpu", probe.package)
    ram = RaplMeter("ram", probe.dram)
    cpu.start()
    ram.start()
    rapl.advance(package_j=[10.0, 30.0], dram_j=[1.0, 2.0], platform_extra_j=50.0)
    assert cpu.read().machine_j == pytest.approx(40.0)
    assert ram.read().machine_j == pytest.approx(3.0)
    assert rapl.get_uj("psys") == 93_000_000  # psys saw everything, and was not added
    assert cpu.provenance == "rapl:package-0+package-1"
    assert ram.provenance == "rapl:dram-0+dram-1"


def test_one_wrap_between_reads_is_undone(tmp_path):
    rng = 1_000_000  # 1 J range: tiny, so that the counter wraps quickly
    rapl = make_fake_rapl(tmp_path / "pc", max_energy_range_uj=rng, start_uj=rng - 100_000)
    cpu = RaplMeter("cpu", probe_rapl(rapl.root).package)
    cpu.start()
    rapl.advance(package_j=0.3)  # crosses the range
    assert rapl.get_uj("package-0") == 200_000
    assert cpu.read().machine_j == pytest.approx(0.3)
    rapl.advance(package_j=0.9)
    assert cpu.read().machine_j == pytest.approx(1.2)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=999_999),
    steps=st.lists(st.integers(min_value=0, max_value=999_999), min_size=1, max_size=20),
)
def test_any_sequence_of_sub_range_increments_is_counted_exactly(tmp_path_factory, start, steps):
    rng = 1_000_000
    rapl = make_fake_rapl(tmp_path_factory.mktemp("pc"), max_energy_range_uj=rng, start_uj=start)
    cpu = RaplMeter("cpu", probe_rapl(rapl.root).package)
    cpu.start()
    total_uj = 0
    last = 0.0
    for step in steps:
        rapl.add_j("package-0", step / 1e6)
        total_uj += step
        now = cpu.read().machine_j
        assert now >= last  # cumulative, never decreasing
        last = now
    assert last == pytest.approx(total_uj / 1e6, abs=1e-9)


def test_amd_rapl_prefix_is_read_like_intel(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", packages=1, dram=False, prefix="amd-rapl")
    probe = probe_rapl(rapl.root)
    assert probe.status.usable and [d.zone for d in probe.package] == ["amd-rapl:0"]
    assert probe.dram == ()
    assert "no dram domain: RAM is estimated" in probe.status.reason


def test_permission_denied_is_not_usable_with_the_chmod_fix(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", unreadable=["package-0"])
    probe = probe_rapl(rapl.root, opener=rapl.opener)
    path = rapl.root / "intel-rapl:0" / "energy_uj"
    assert not probe.status.usable
    assert probe.status.reason == f"permission denied reading {path}"
    assert probe.status.fix == f"sudo chmod a+r {rapl.root}/intel-rapl:*/energy_uj (or run as root)"


def test_unreadable_dram_only_falls_back_for_ram(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", unreadable=["dram-0"])
    probe = probe_rapl(rapl.root, opener=rapl.opener)
    assert probe.status.usable and probe.package and probe.dram == ()
    assert "dram unreadable (permission denied" in probe.status.reason


@pytest.mark.parametrize("how", ["missing", "directory"])
def test_broken_counter_files_are_reported_for_everyone(tmp_path, how):
    # these work in a subprocess too, where no opener can be injected
    rapl = make_fake_rapl(tmp_path / "pc")
    rapl.make_unreadable("package-0", how)
    probe = probe_rapl(rapl.root)
    assert not probe.status.usable
    assert probe.status.reason.startswith(f"cannot read {rapl.root / 'intel-rapl:0'}/energy_uj")
    assert probe.status.fix is None


def test_no_powercap_directory_says_why(tmp_path):
    probe = probe_rapl(tmp_path / "absent")
    assert not probe.status.usable
    assert probe.status.reason == (
        f"no {tmp_path / 'absent'} (not Linux, or a VM without RAPL passthrough)"
    )


def test_powercap_without_rapl_zones_suggests_the_driver(tmp_path):
    (tmp_path / "pc" / "dtpm").mkdir(parents=True)
    probe = probe_rapl(tmp_path / "pc")
    assert not probe.status.usable
    assert "modprobe intel_rapl_msr" in (probe.status.fix or "")


def test_the_environment_variable_points_at_the_tree(tmp_path, monkeypatch):
    rapl = make_fake_rapl(tmp_path / "pc", packages=2)
    monkeypatch.setenv("GREENPRINT_RAPL_ROOT", str(rapl.root))
    assert [d.name for d in probe_rapl().package] == ["package-0", "package-1"]


def test_a_counter_that_disappears_mid_run_raises_meter_error(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc")
    cpu = RaplMeter("cpu", probe_rapl(rapl.root).package, opener=rapl.opener)
    cpu.start()
    rapl.advance(package_j=1.0)
    assert cpu.read().machine_j == pytest.approx(1.0)
    rapl.make_unreadable("package-0")
    with pytest.raises(MeterError, match="permission denied"):
        cpu.read()


def test_counters_that_go_backwards_without_a_known_range_count_as_a_reset(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", start_uj=5_000_000)
    (rapl.zones["package-0"] / "max_energy_range_uj").unlink()
    cpu = RaplMeter("cpu", probe_rapl(rapl.root).package)
    cpu.start()
    rapl.set_uj("package-0", 2_000_000)  # reset, then 2 J
    assert cpu.read().machine_j == pytest.approx(2.0)
