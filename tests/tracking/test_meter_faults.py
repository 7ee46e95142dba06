"""Meters that hang, raise, return garbage or recover never hang or break the user's run.

A blocked driver (a sysfs read on a wedged device, an NVML call during a GPU reset) must cost a run
at most one read deadline: ``run.log()`` and the live figures never wait on it, leaving ``with``
takes about a second whatever the meters do, and the component continues as an estimate that says
why. The bounds below are generous multiples of the real ones (0.4 s deadline, ~1 s exit) so that a
loaded CI machine does not make them flaky; what they guard against is waiting for ever.

The read deadline is a parameter of the meter set. The tests of a hang use the default one, as users
meet it; every other test gives its meters a deadline far above any healthy read (``NO_TIMEOUT_S``)
so that only the fault under test can fail a meter, however loaded the machine (a healthy read that
a busy machine delays past 0.4 s would otherwise fail it for the wrong reason).
"""

from __future__ import annotations

import math
import threading
import time

import pytest

import greenprint as gp
from _wait import wait_until
from greenprint.meters import CpuEstimateMeter, MeterSet, RamEstimateMeter
from greenprint.meters._attribution import ProcessTree
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._deadline import DEFAULT_READ_TIMEOUT_S

from ._meters import ConstantPowerMeters

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
#: far above the real bound (about 1 s), far below "for ever"
EXIT_BOUND_S = 3.0
#: the deadline of the tests where a meter hangs: the default, so the bounds hold as users see them
HANG_DEADLINE_S = DEFAULT_READ_TIMEOUT_S
#: the deadline where a timeout is not what is tested: no healthy read comes near it
NO_TIMEOUT_S = 30.0


class FaultyCpu(Meter):
    """A hardware-like CPU meter at 50 W that misbehaves from its ``after``-th read on."""

    component = "cpu"

    def __init__(self, fault: str, *, after: int = 3, release: threading.Event | None = None):
        self.fault = fault
        self.after = after
        self.release = release or threading.Event()
        self.reads = 0
        self.t0 = 0.0
        self.closed = False

    @property
    def provenance(self) -> str:
        return "rapl:package-0"

    def start(self) -> None:
        if self.fault == "hang-start":
            self.release.wait()
        self.t0 = time.monotonic()

    def read(self) -> MeterReading:
        self.reads += 1
        joules = 50.0 * (time.monotonic() - self.t0)
        if self.reads < self.after:
            return MeterReading(joules, joules / 2)
        if self.fault == "hang":
            self.release.wait()
        elif self.fault == "slow":
            time.sleep(0.05)  # slow but well within the deadline: kept
        elif self.fault == "raise":
            raise RuntimeError("driver bug")
        elif self.fault == "nan":
            return MeterReading(math.nan, None)
        elif self.fault == "inf":
            return MeterReading(math.inf, math.inf)
        elif self.fault == "negative":
            return MeterReading(-5.0, None)
        elif self.fault == "backwards":
            return MeterReading(0.0, 0.0)
        elif self.fault == "not-a-reading":
            return 42  # type: ignore[return-value]
        return MeterReading(joules, joules / 2)

    def close(self) -> None:
        if self.fault == "hang-close":
            self.release.wait()
        self.closed = True


def wait_for(condition, timeout_s: float = 10.0) -> bool:
    """Poll ``condition`` until it holds (a loaded CI machine may delay the sampler)."""
    return wait_until(condition, timeout_s)


def meter_set(cpu: Meter, *, deadline_s: float = NO_TIMEOUT_S) -> MeterSet:
    """``cpu`` with the estimates in its shadow; ``deadline_s``: its read deadline."""
    tree = ProcessTree()
    estimate = CpuEstimateMeter(tdp_w=80.0, provenance="estimate:tdp:Test CPU (80 W)", tree=tree)
    ram = RamEstimateMeter(ram_gb=8.0, tree=tree)
    return MeterSet(
        {"cpu": cpu, "ram": ram},
        tree=tree,
        estimates={"cpu": estimate, "ram": ram},
        read_timeout_s=deadline_s,
    )


@pytest.fixture
def release():
    event = threading.Event()
    yield event
    event.set()  # let abandoned threads finish


def test_a_hanging_meter_never_blocks_log_live_figures_or_the_end_of_the_run(tmp_path, release):
    cpu = FaultyCpu("hang", after=3, release=release)
    ledger = tmp_path / "g.db"
    meters = meter_set(cpu, deadline_s=HANG_DEADLINE_S)
    with gp.track("hang", ledger=ledger, meters=meters, **FAST) as run:
        assert wait_for(lambda: cpu.reads >= 3)  # the sampler is now stuck
        t = time.monotonic()
        run.log(loss=0.5, step=1)
        _ = (run.energy_kwh, run.emissions_kg, run.provenance, run.record)
        assert time.monotonic() - t < EXIT_BOUND_S  # no user call waits for the meter
        # past the deadline the estimate takes over, and keeps counting
        assert wait_for(lambda: run.provenance["cpu"].startswith("estimate"))
        energy_during = run.energy_kwh
        assert wait_for(lambda: run.energy_kwh > energy_during)
        t_exit = time.monotonic()
    assert time.monotonic() - t_exit < EXIT_BOUND_S
    assert run.status == "finished"
    cpu_prov = run.provenance["cpu"]
    assert cpu_prov.startswith("estimate:tdp:Test CPU (80 W) (rapl failed:")
    assert f"did not return within {HANG_DEADLINE_S:g} s" in cpu_prov
    rec = gp.Ledger(ledger).run(run.id)
    assert rec.provenance["cpu"] == cpu_prov
    assert rec.metric("loss") == 0.5
    assert rec.energy_kwh == pytest.approx(run.energy_kwh) and rec.energy_kwh > 0


def test_a_meter_that_hangs_when_the_run_ends_still_lets_with_return(tmp_path, release):
    # the read that blocks is the final one, in __exit__ itself
    cpu = FaultyCpu("hang", after=10**9, release=release)
    meters = meter_set(cpu, deadline_s=HANG_DEADLINE_S)
    with gp.track("late", ledger=tmp_path / "g.db", meters=meters, **FAST) as run:
        time.sleep(0.2)
        cpu.after = 0  # every read from now on blocks
        t_exit = time.monotonic()
    assert time.monotonic() - t_exit < EXIT_BOUND_S
    assert run.status == "finished"
    assert run.energy_kwh > 0


def test_a_meter_that_hangs_at_start_is_estimated_from_the_start(tmp_path, release):
    cpu = FaultyCpu("hang-start", release=release)
    meters = meter_set(cpu, deadline_s=HANG_DEADLINE_S)
    t = time.monotonic()
    with gp.track("start", ledger=tmp_path / "g.db", meters=meters, **FAST) as run:
        assert time.monotonic() - t < EXIT_BOUND_S
        time.sleep(0.2)
    assert "start did not return within" in run.provenance["cpu"]
    # the estimate counts from the start (the machine's energy: an idle process's share may be 0)
    assert run.record.machine_energy_kwh > 0


def test_a_meter_whose_close_hangs_does_not_hold_the_exit(tmp_path, release):
    cpu = FaultyCpu("hang-close", after=10**9, release=release)
    meters = meter_set(cpu, deadline_s=HANG_DEADLINE_S)  # closing waits at most the deadline
    with gp.track("close", ledger=tmp_path / "g.db", meters=meters, **FAST) as run:
        time.sleep(0.2)
        t_exit = time.monotonic()
    assert time.monotonic() - t_exit < EXIT_BOUND_S
    assert run.provenance["cpu"] == "rapl:package-0"  # its readings were good
    assert run.status == "finished"


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ("raise", "RuntimeError: driver bug"),
        ("nan", "returned nan J, not a finite non-negative energy"),
        ("inf", "returned inf J, not a finite non-negative energy"),
        ("negative", "returned -5.0 J, not a finite non-negative energy"),
        ("backwards", "went backwards"),
        ("not-a-reading", "returned 42, not a MeterReading"),
    ],
)
def test_a_meter_returning_garbage_degrades_to_the_estimate_and_never_raises(tmp_path, fault, why):
    cpu = FaultyCpu(fault, after=3)
    ledger = tmp_path / "g.db"
    with gp.track("garbage", ledger=ledger, meters=meter_set(cpu), **FAST) as run:
        assert wait_for(lambda: cpu.reads >= 3)
        run.log(accuracy=0.9)
    assert run.status == "finished"
    assert run.provenance["cpu"].startswith("estimate:tdp:Test CPU (80 W) (rapl failed:")
    assert why in run.provenance["cpu"]
    rec = gp.Ledger(ledger).run(run.id)
    assert math.isfinite(rec.energy_kwh) and rec.energy_kwh > 0
    assert math.isfinite(rec.emissions_kg) and rec.emissions_kg > 0
    samples = gp.Ledger(ledger).samples(run.id)
    assert all(math.isfinite(s.cpu_w) and s.cpu_w >= 0 for s in samples if s.cpu_w is not None)


def test_a_slow_meter_within_its_deadline_is_kept(tmp_path):
    cpu = FaultyCpu("slow", after=2)  # 0.05 s a read, a twentieth of its deadline
    meters = meter_set(cpu, deadline_s=1.0)
    with gp.track("slow", ledger=tmp_path / "g.db", meters=meters, **FAST) as run:
        assert wait_for(lambda: cpu.reads >= 3)
    assert run.provenance["cpu"] == "rapl:package-0"
    assert cpu.reads >= 3


def test_after_a_hang_the_meter_recovers_and_the_next_run_uses_it_again(tmp_path):
    release = threading.Event()
    cpu = FaultyCpu("hang", after=2, release=release)
    meters = meter_set(cpu, deadline_s=HANG_DEADLINE_S)
    with gp.track("first", ledger=tmp_path / "g.db", meters=meters, **FAST) as first:
        assert wait_for(lambda: "did not return" in first.provenance["cpu"])
        release.set()  # the driver comes back; the abandoned read returns and is dropped
        time.sleep(0.2)
    assert "did not return within" in first.provenance["cpu"]
    # the meter works again: a new run (a new meter set) reads it, with no thread left waiting
    cpu.fault = "none"
    with gp.track("second", ledger=tmp_path / "g.db", meters=meter_set(cpu), **FAST) as second:
        time.sleep(0.2)
    assert second.provenance["cpu"] == "rapl:package-0"
    # no thread is left behind: the abandoned one returned and ended, the other was closed
    assert meters._worker.abandoned == 1
    assert wait_for(lambda: not meters._worker.alive_threads())


class HangingForeignMeters(ConstantPowerMeters):
    """A user's own meter set (not a MeterSet) that blocks from its third read on."""

    def __init__(self, release: threading.Event, fault: str = "hang"):
        super().__init__(cpu_w=100.0, ram_w=10.0, process_share=0.5)
        self.release = release
        self.fault = fault
        self.reads = 0

    def read(self) -> dict[str, MeterReading]:
        self.reads += 1
        if self.reads >= 3:
            if self.fault == "hang":
                self.release.wait()
            elif self.fault == "nan":
                return {"cpu": MeterReading(math.nan), "ram": MeterReading(math.nan)}
        return super().read()


@pytest.mark.parametrize("fault", ["hang", "nan"])
def test_a_foreign_meter_set_gets_the_same_guarantees(tmp_path, release, fault):
    meters = HangingForeignMeters(release, fault)
    with gp.track("foreign", ledger=tmp_path / "g.db", meters=meters, **FAST) as run:
        assert wait_for(lambda: all("failed" in run.provenance[c] for c in ("cpu", "ram")))
        t = time.monotonic()
        run.log(loss=1.0)
        assert time.monotonic() - t < EXIT_BOUND_S
        t_exit = time.monotonic()
    assert time.monotonic() - t_exit < EXIT_BOUND_S
    assert run.status == "finished"
    for component in ("cpu", "ram"):
        assert run.provenance[component].startswith("estimate:"), run.provenance
        assert "(test failed:" in run.provenance[component]
    assert math.isfinite(run.emissions_kg) and run.energy_kwh > 0
