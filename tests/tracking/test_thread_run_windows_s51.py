"""A run's times are those of the samples its estimates read, however long its thread waited.

Runs of one process share one process tree (``meters._attribution.shared_tree``); an estimate's
energy runs from one sample of it to another. The run was stamped after its meters were called
instead: a thread that waited in between (for the GIL, beside threads running Python: up to
0.1 s seen in a pool of three) started or ended its run that much away from the window its
energy was read over. Trials of 0.15-0.35 s in a ``ThreadPoolExecutor`` of three, each burning
one core's worth of the process, read 2.2-7.3 W for CPU where the process drew 4.4 W
(``ledger ls`` and ``run.energy_kwh``: one trial half, another 1.6 times, what it used); now
4.0-4.5 W. The waits are made here by a tree whose samples sleep after they are taken, in the
pool's threads, as a thread starved of the GIL does. No mocks of the meters: real ``/proc``
samples and real CPU work.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import greenprint as gp
from greenprint.meters import Meter, MeterReading, MeterSet, detect_meters
from greenprint.meters._attribution import ProcessTree, UsageSample, shared_tree
from greenprint.meters._estimate import CpuEstimateMeter, RamEstimateMeter
from greenprint.testing import FakeNVML
from greenprint.testing import _nvml as fake_module

#: How long a pool thread waits after each sample of the tree it takes (s).
_WAIT_S = 0.15


def _estimates_only(tmp_path):
    """This process's estimate-only meters: no RAPL, no GPU (on any machine)."""
    nvml = FakeNVML(init_error=fake_module.NVML_ERROR_LIBRARY_NOT_FOUND)
    return detect_meters(rapl_root=str(tmp_path / "no-rapl"), nvml=nvml)


def _burn(seconds: float) -> None:
    """Busy CPU work of this thread for ``seconds`` of its CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.fixture
def sample_walls(monkeypatch):
    """Every sample's wall time; each sample a pool thread takes is followed by a wait."""
    walls: list[float] = []
    real_sample, real_start = ProcessTree.sample, ProcessTree.start

    def recorded(sample: UsageSample) -> UsageSample:
        walls.append(sample.wall)
        if threading.current_thread().name.startswith("pool"):
            time.sleep(_WAIT_S)  # after the tree's lock is let go, as a wait for the GIL is
        return sample

    monkeypatch.setattr(ProcessTree, "sample", lambda self: recorded(real_sample(self)))
    monkeypatch.setattr(ProcessTree, "start", lambda self: recorded(real_start(self)))
    return walls


def test_runs_in_a_thread_pool_are_stamped_with_the_samples_their_energy_spans(
    tmp_path, sample_walls
):
    """Each trial's start and end are the wall times of samples of the tree, not the moments
    its thread got on after them (0.15 s later: before, every trial's were)."""
    ledger = tmp_path / "l.db"

    def trial(lr: float) -> gp.Run:
        with gp.track(
            f"lr={lr}", study="pool", ledger=ledger, params={"lr": lr},
            meters=_estimates_only(tmp_path),
        ) as run:  # fmt: skip
            _burn(0.05)
        return run

    with gp.track("search", study="pool", ledger=ledger, meters=_estimates_only(tmp_path)):
        with ThreadPoolExecutor(3, thread_name_prefix="pool") as pool:
            runs = list(pool.map(trial, [0.1, 0.3, 1.0]))
    walls = set(sample_walls)
    assert 0.0 not in walls
    assert all(run.status == "finished" and run.energy_kwh > 0 for run in runs)
    with gp.Ledger(ledger, create=False) as led:
        records = [r for r in led.runs(study="pool") if r.name != "search"]
    assert len(records) == 3
    for record in records:
        assert record.started_at in walls, record.name
        assert record.ended_at in walls, record.name
    assert shared_tree().users == 0


def test_a_meter_sets_reading_is_stamped_with_its_estimates_sample(tmp_path, sample_walls):
    """``MeterSet.read_at`` after a start and after each read is the wall time of the sample
    the CPU estimate read, taken before the thread's wait, not when the wait ended."""
    meters = _estimates_only(tmp_path)
    stamps: list[tuple[float, float, float]] = []

    def use() -> None:
        before = time.time()
        meters.start()
        stamps.append((before, meters.read_at, meters.meter("cpu").reached.wall))
        for _ in range(2):
            _burn(0.01)
            before = time.time()
            meters.read()
            stamps.append((before, meters.read_at, meters.meter("cpu").reached.wall))

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
            pool.submit(use).result()
    finally:
        meters.close()
    assert len(stamps) == 3
    for before, read_at, sampled in stamps:
        assert before <= read_at == sampled  # the sample's time, not the wait's end


class _Counter(Meter):
    """A hardware counter's stand-in: 10 J a read, no share (a meter under the deadline)."""

    component = "cpu"

    def __init__(self) -> None:
        self.joules = 0.0

    @property
    def provenance(self) -> str:
        return "rapl:package-0"

    def start(self) -> None:
        self.joules = 0.0

    def read(self) -> MeterReading:
        self.joules += 10.0
        return MeterReading(self.joules, None)


def test_a_set_with_a_hardware_meter_is_stamped_when_the_meter_is_read(tmp_path, sample_walls):
    """A counter is read at its own moment, after the tree's sample: that is the set's time
    (the counter's energy runs to it), as before, beside a RAM estimate read from the tree."""
    tree = shared_tree()
    meters = MeterSet(
        {"cpu": _Counter(), "ram": RamEstimateMeter(ram_gb=16.0, tree=tree)}, tree=tree
    )
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
            pool.submit(meters.start).result()
            after_sample = pool.submit(lambda: (meters.read(), meters.read_at)[1]).result()
    finally:
        meters.close()
    assert after_sample not in set(sample_walls)
    assert after_sample >= max(sample_walls) + _WAIT_S  # read after the sample's wait


class _FailsOnRead(_Counter):
    """A counter that starts and then fails at its first read (a RAPL file gone mid-run)."""

    def read(self) -> MeterReading:
        raise OSError(5, "Input/output error")


def test_a_counter_that_failed_leaves_its_estimate_to_stamp_the_set(tmp_path, sample_walls):
    """Once the counter has failed, its estimate continues it: the set's readings are then
    stamped with the estimate's sample, as a set of estimates alone is."""
    tree = shared_tree()
    estimate = CpuEstimateMeter(tdp_w=100.0, provenance="estimate:tdp:Test CPU (100 W)", tree=tree)
    meters = MeterSet({"cpu": _FailsOnRead()}, tree=tree, estimates={"cpu": estimate})
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="pool") as pool:
            pool.submit(meters.start).result()
            first = pool.submit(lambda: (meters.read(), meters.read_at)[1]).result()
            second = pool.submit(lambda: (meters.read(), meters.read_at)[1]).result()
    finally:
        meters.close()
    assert meters.provenance["cpu"].startswith("estimate:tdp:Test CPU (100 W) (rapl failed")
    assert first in set(sample_walls) and second in set(sample_walls)
    assert second > first


def test_a_samples_time_is_when_its_cpu_times_were_read_not_before_the_reads_ahead(
    monkeypatch,
):
    """A sample's time (``t``, ``wall``) is taken where its processes' CPU times are read, not
    before the machine's ``/proc/stat`` read ahead of them, which a thread may wait after."""
    from greenprint.meters import _attribution

    real = _attribution._machine_times
    ended: list[tuple[float, float]] = []

    def machine_times_then_a_wait(procfs):
        found = real(procfs)
        time.sleep(0.05)  # the GIL taken back late
        ended.append((time.monotonic(), time.time()))
        return found

    monkeypatch.setattr(_attribution, "_machine_times", machine_times_then_a_wait)
    tree = ProcessTree()
    try:
        for take in (tree.start, tree.sample, tree.sample):
            sample = take()
            clock, wall = ended.pop()
            assert sample.t >= clock and sample.wall >= wall
    finally:
        tree.close()
