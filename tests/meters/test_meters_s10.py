"""Session 10's meter gaps: hwmon's wrap slack, the GPUs the estimate counts, attribution that
could not read every process, and a VM's share of its chip's TDP."""

from __future__ import annotations

import pytest

from greenprint.meters._hwmon import HwmonMeter, energy_delta_uj, probe_hwmon_cpu
from greenprint.testing import make_fake_hwmon


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# -- 1. hwmon: the same second of slack as RAPL ------------------------------------------------


def test_a_coarse_32_bit_counter_read_twice_quickly_wraps_not_resets(tmp_path):
    """A driver that refreshes its value every 0.5 s shows, between reads 20 ms apart, 100 J
    (200 W over its refresh period) across a 32-bit wrap: one wrap, not a reset that keeps only
    the 50 J after it (before: 50 J)."""
    fake = make_fake_hwmon(
        tmp_path / "h",
        devices={"hwmon0": {"driver": "scmi_sensors", "energy": {1: "cpu"}, "bits": 32}},
        start_uj=2**32 - 50_000_000,  # 50 J before the wrap
    )
    probe = probe_hwmon_cpu(fake.root)
    clock = Clock()
    meter = HwmonMeter("cpu", probe.channels, origin=probe.origin, clock=clock)
    meter.start()
    clock.t += 0.02
    fake.add_j("hwmon0:energy1", 100.0)
    assert fake.get("hwmon0:energy1") == 50_000_000
    assert meter.read().machine_j == pytest.approx(100.0)
    meter.close()


def test_hwmon_wrap_and_reset_share_rapls_limit():
    """The wrap and the reset share one limit, 2 kW over the interval plus 1 s, as RAPL's."""
    last = 2**32 - 1_000_000_000  # 1 kJ before the wrap
    # 1.9 kJ in 10 ms: a wrap within 2 kW x 1.01 s
    assert energy_delta_uj(last, 900_000_000, 0.01) == 1_900_000_000
    # 2.1 kJ: above it; the counter restarted, and 0.9 kJ since is plausible
    assert energy_delta_uj(last, 1_100_000_000, 0.01) == 1_100_000_000
