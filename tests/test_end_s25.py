"""The end of a process and of its runs, as a user meets it (session 25).

Nested runs still open when the interpreter exits, their ledger locked by another process (a
``sqlite3`` shell left in a transaction, another job's long write): before, the exit waited
5 s for each run's final record in turn (three nested runs: 15 s), then 3 s more, before
saving them apart. Now the runs ended together share one wait, whatever their number.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, empty_home, run_in
from test_exit_s24 import locked_ledger

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SQLite file locks of POSIX")

#: Three nested runs started (never stopped), each with a point written, then a point each
#: while another process holds the ledger's write lock; then the program ends. The exit's own
#: wait, after the runs' shared one, is 1 s here, not its 3 s (``test_exit_s24`` holds that):
#: the lock outlasts it.
NESTED_OPEN = """
import json, os, time
import greenprint as gp
from greenprint import _run_persistence

_run_persistence._EXIT_WRITE_S = 1.0

def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.01)

runs = []
for i in range(3):
    runs.append(gp.track(f"r{i}", study="s", ledger="greenprint.db",
                         sample_interval_s=0.05, flush_interval_s=0.1).start())
for run in runs:
    run.log(loss=1.0, step=0)
time.sleep(0.4)  # flushes that are written
open("go", "w").close()
wait_for("locked")
for run in runs:
    run.log(loss=0.5, step=1)
time.sleep(0.3)  # flushes blocked on the lock
print(json.dumps([run.id for run in runs]), flush=True)
"""

LIST = """
import json, greenprint as gp
led = gp.Ledger("greenprint.db", create=False)
for r in led.runs():
    print(json.dumps({"id": r.id, "status": r.status, "points": len(r.metrics),
                      "parent": r.parent_id}))
"""


def _listed(home: Path) -> dict[str, dict]:
    (home / "list.py").write_text(LIST, encoding="utf-8")
    done = run_in(home, sys.executable, "list.py")
    assert done.returncode == 0, done.stderr
    return {r["id"]: r for r in map(json.loads, done.stdout.splitlines())}


def test_nested_runs_open_at_exit_with_a_locked_ledger_share_one_wait_and_are_all_saved(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = empty_home(tmp_path_factory, "nested-at-exit")
    with locked_ledger(home, NESTED_OPEN) as env:
        child = subprocess.Popen(
            [sys.executable, "study.py"],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            began = time.monotonic()  # the program's last line: its exit from here on
            _, stderr = child.communicate(timeout=90)
            exit_s = time.monotonic() - began
        finally:
            child.kill()
            child.wait()
    assert child.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    ids = json.loads(line)
    # before: 5 s per run (15 s), then the exit's 1 s; now 5 s shared by the three, then 1 s
    # (and the three runs' samplers stopped and files written: a second or two on a busy
    # machine)
    assert exit_s < 12.5, (exit_s, stderr)
    said = [line for line in stderr.splitlines() if "saved in" in line]
    assert len(said) == 3, stderr  # every run not written is saved apart, each said once
    for run_id in ids:
        saved = home / "tmp" / f"greenprint-{os.getuid()}" / f"greenprint-unsaved-{run_id}.db"
        assert saved.is_file(), stderr
        (command,) = [
            m.group(1)
            for m in map(re.compile(r"`(greenprint ledger merge [^`]+)`").search, said)
            if m is not None and str(saved) in m.group(1)
        ]
        merged = run_in(home, GREENPRINT, *command.split()[1:])
        assert merged.returncode == 0, merged.stderr
    runs = _listed(home)
    assert [runs[i]["status"] for i in ids] == ["finished"] * 3
    assert [runs[i]["points"] for i in ids] == [2, 2, 2]  # the points logged under the lock too
    assert [runs[i]["parent"] for i in ids] == [None, ids[0], ids[1]]


# -- greenprint ledger ls --status: each run read once -----------------------------------------


def _listing_ledger(path: Path) -> dict[str, str]:
    """A study whose metric is chosen by runs a status filter leaves out: run id -> status.

    Two finished runs and a lost one (stored ``running``, its heartbeat long stale) logged
    ``alpha`` then ``beta``; three pruned runs logged ``beta`` only: the study's metric is
    ``beta``, which the runs of one status alone do not tell.
    """
    from greenprint import Ledger, MetricPoint, RunRecord

    t0 = 1_700_000_000.0
    kinds = [("finished", ("alpha", "beta"))] * 2 + [("pruned", ("beta",))] * 3
    kinds.append(("running", ("alpha", "beta")))
    statuses = {}
    with Ledger(path) as led:
        for k, (status, names) in enumerate(kinds):
            run_id = f"{k:02x}" + "ab" * 15
            started = t0 + 100 * k
            led.start_run(
                RunRecord(
                    id=run_id,
                    name=f"trial-{k}",
                    study="s",
                    status=status,  # type: ignore[arg-type]
                    started_at=started,
                    ended_at=None if status == "running" else started + 50,
                    heartbeat_at=started + 50,
                    duration_s=50.0,
                    energy_kwh=0.001 * (k + 1),
                    metrics=tuple(
                        MetricPoint(name, 0.5 + 0.01 * k + 0.1 * j, 1, started + 40)
                        for j, name in enumerate(names)
                    ),
                )
            )
            statuses[run_id] = "lost" if status == "running" else status
    return statuses


@pytest.mark.parametrize("status", ["finished", "lost"])
def test_ledger_ls_with_a_status_reads_each_run_once_and_shows_the_study_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, status
) -> None:
    """Before: the runs shown were read, then the whole study again to choose its metric (a
    ledger of 2,012 runs, 1,395 finished, 3 metrics each: 3,407 runs read for ``ls --status
    finished``). Now the study's other runs only: each run once, the output unchanged."""
    from greenprint.cli import main
    from greenprint.ledger import Ledger

    path = tmp_path / "runs.db"
    statuses = _listing_ledger(path)
    assert main(["ledger", "ls", "--ledger", str(path), "--study", "s"]) == 0
    whole = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    read = []
    real_read = Ledger._read

    def counted(self: Ledger, **kwargs: object) -> list:
        records = real_read(self, **kwargs)  # type: ignore[arg-type]
        read.extend(r.id for r in records)
        return records

    monkeypatch.setattr(Ledger, "_read", counted)
    assert main(["ledger", "ls", "--ledger", str(path), "--study", "s", "--status", status]) == 0
    shown = capsys.readouterr().out.splitlines()
    # the rows shown are those of the whole listing (the columns' widths aside): the study's
    # metric (beta), not the first one each run shown logged (alpha)
    assert [line.split() for line in shown[1:]] == [
        whole[run_id[:8]] for run_id, s in statuses.items() if s == status
    ], shown
    assert all(" beta=" in line for line in shown[1:])
    # every run of the study, each once; a run stored running (read lost or running by its
    # heartbeat's age, which may change between the two reads) is read again
    assert sorted(set(read)) == sorted(statuses)
    again = {run_id for run_id in read if read.count(run_id) > 1}
    assert again <= {run_id for run_id, s in statuses.items() if s == "lost"}, read


# -- amdsmi: a GPU failing at its first read is estimated, not left out -------------------------

_FILE_ERROR = "AMDSMI_STATUS_FILE_ERROR - Error opening file"


class _Clock:
    """A monotonic clock the test moves by hand, in s."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("call", ["amdsmi_get_power_info", "amdsmi_get_energy_count"])
def test_an_amd_gpu_failing_at_its_first_read_is_estimated_from_its_tdp_the_other_measured(
    call: str,
) -> None:
    """Before: the GPU was left out of the run (``GPU-1 failed to open (...): not counted``)
    and its energy missing from the figures, 400 J of 1,000 here. Now it is its table TDP at
    full load, as NVML does, and the provenance says so; the other GPU stays measured."""
    import os

    from greenprint._provenance import Provenance
    from greenprint.meters import ProcessTree
    from greenprint.meters._amd import AmdMeter
    from greenprint.testing import FakeAmdGpu, FakeAmdProcess, FakeAMDSMI
    from greenprint.testing._amdsmi import AMDSMI_STATUS_FILE_ERROR

    me = os.getpid()
    healthy = FakeAmdGpu(name="AMD Instinct MI210", gfx="gfx90a", power_w=200.0)
    # the failing GPU holds this process's memory: its estimate is this process's too
    failing = FakeAmdGpu(
        name="AMD Instinct MI210", gfx="gfx90a", power_w=150.0, processes=[FakeAmdProcess(me)]
    )
    amdsmi, clock = FakeAMDSMI([healthy, failing]), _Clock()
    meter = AmdMeter.open(amdsmi, environ={}, tree=ProcessTree(me, clock=clock), clock=clock)
    try:
        failing.fail(call, AMDSMI_STATUS_FILE_ERROR)  # it opened; at the run's start it fails
        meter.start()
        clock.t += 2.0
        amdsmi.advance(2.0)
        reading = meter.read()  # never raises
        prov = meter.provenance
        assert prov == (
            "amdsmi:counter:GPU-0+amdsmi:tdp-estimate:GPU-1 (GPU-1 failed at its first read "
            f"({call} failed: {_FILE_ERROR}): estimated from its TDP, AMD Instinct MI210 300 W "
            "table:AMD Instinct MI210, utilisation unknown: full load)"
        )
        assert str(Provenance.parse(prov)) == prov
        # GPU-0 from its counter (200 W x 2 s); GPU-1 at the table's 300 W x 2 s
        assert reading.machine_j == pytest.approx(400.0 + 600.0, rel=1e-6)
        assert reading.process_j == pytest.approx(600.0, rel=1e-6)  # GPU-1: all its VRAM
        clock.t += 1.0
        healthy.advance(1.0, power_w=100.0)
        assert meter.read().machine_j == pytest.approx(1000.0 + 100.0 + 300.0, rel=1e-6)
        assert meter.provenance == prov
    finally:
        meter.close()
    assert amdsmi.init_count == 0


def test_an_mi250_package_failing_at_its_first_read_is_estimated_at_the_packages_tdp() -> None:
    """The two GCDs of an MI250X are metered once, through the first: its package's TDP
    (560 W in the table) is the estimate, not a GCD's half."""
    from greenprint.meters._amd import AmdMeter
    from greenprint.testing import FakeAmdGpu, FakeAMDSMI
    from greenprint.testing._amdsmi import AMDSMI_STATUS_FILE_ERROR

    mi250 = {"name": "AMD Instinct MI250X", "gfx": "gfx90a", "power_field": "average_socket_power"}
    first, second = FakeAmdGpu(power_w=400.0, **mi250), FakeAmdGpu(power_w=0.0, **mi250)
    other = FakeAmdGpu(name="AMD Instinct MI210", gfx="gfx90a", power_w=200.0)
    amdsmi, clock = FakeAMDSMI([first, second, other]), _Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    try:
        first.fail("amdsmi_get_power_info", AMDSMI_STATUS_FILE_ERROR)
        meter.start()
        clock.t += 1.0
        amdsmi.advance(1.0)
        assert meter.read().machine_j == pytest.approx(560.0 + 200.0, rel=1e-6)
        assert "amdsmi:tdp-estimate:GPU-0" in meter.provenance
        assert "AMD Instinct MI250X 560 W table:AMD Instinct MI250X" in meter.provenance
    finally:
        meter.close()


def test_every_amd_gpu_failing_at_its_first_read_still_fails_over_to_the_meter_sets_estimate():
    from greenprint.meters import detect_meters
    from greenprint.testing import FakeAmdGpu, FakeAMDSMI, FakeNVML
    from greenprint.testing._amdsmi import AMDSMI_STATUS_FILE_ERROR

    gpus = [FakeAmdGpu(name="AMD Instinct MI210", gfx="gfx90a") for _ in range(2)]
    amdsmi, clock = FakeAMDSMI(gpus), _Clock()
    meters = detect_meters(nvml=FakeNVML([]), amdsmi=amdsmi, environ={}, clock=clock)
    try:
        for gpu in gpus:
            gpu.fail("amdsmi_get_power_info", AMDSMI_STATUS_FILE_ERROR)
        meters.start()
        clock.t += 1.0
        reading = meters.read()["gpu"]
        assert meters.provenance["gpu"].startswith("estimate:gpu-tdp:GPU-0+GPU-1 (")
        assert reading.machine_j == pytest.approx(600.0)  # 2 x 300 W x 1 s
    finally:
        meters.close()


# -- a run moved into another study (Ray Tune's sweep) -----------------------------------------
def test_a_run_moved_into_another_study_is_read_and_budgeted_there(tmp_path: Path) -> None:
    """Ray Tune's sweep learns its study only from its trials' first result. Before s25,
    ray.py moved it by writing the ledger row and setting ``Run._study``: the run's study
    budget went on guarding the old study's cost under the old name. ``Run._move_to_study``
    moves all of it: the ledger row, ``run.study``, and the budget, now over on the new study's
    earlier spending."""
    import greenprint as gp
    from tracking._meters import ConstantPowerMeters

    db = str(tmp_path / "ledger.db")
    late = {"sample_interval_s": 5.0, "flush_interval_s": 5.0}
    with gp.track("earlier", study="B", ledger=db, meters=ConstantPowerMeters(), **late):
        time.sleep(0.1)
    spent = gp.Ledger(db).runs(study="B")[0].energy_kwh
    budget = gp.Budget(kwh=spent / 2, per="study", on_exceed="stop")  # study B is over it
    run = gp.track(
        "sweep", study="A", ledger=db, budget=budget, meters=ConstantPowerMeters(), **late
    ).start()
    try:
        run._move_to_study("B")
        assert run.study == "B"
        assert [r.name for r in gp.Ledger(db).runs(study="B")] == ["earlier", "sweep"]
        assert gp.Ledger(db).studies() == ["B"]
        stop = run.check_budgets()
        assert stop is not None and "study 'B'" in str(stop), stop
    finally:
        run.stop()
