import json
import math
import subprocess
import sys
import time

import pytest

import greenprint as gp
from _clean_env import clean_env
from greenprint.tracking import PARENT_ENV

from ._meters import READ_LAG_S, ConstantPowerMeters


@pytest.fixture
def ledger_path(tmp_path):
    return str(tmp_path / "ledger.db")


def fast(**kw):
    return {"sample_interval_s": 0.05, "flush_interval_s": 0.1, **kw}


def test_context_manager_records_a_finished_run_with_estimates(ledger_path):
    with gp.track("baseline", study="s1", ledger=ledger_path, **fast()) as run:
        run.log(accuracy=0.5, step=1)
        run.set(params={"lr": 0.1}, dataset_size=1000)
        x = 0
        t_end = time.time() + 0.3
        while time.time() < t_end:
            x += 1
        run.log(accuracy=0.9, step=2)
    assert run.status == "finished"
    assert run.energy_kwh > 0
    assert run.duration_s >= 0.3
    assert run.provenance["cpu"].startswith("estimate")
    assert run.provenance["intensity"].startswith("default")
    assert run.emissions_kg == pytest.approx(
        run.energy_kwh * run.pue * run.intensity_g_per_kwh / 1000, rel=1e-9
    )

    rec = gp.Ledger(ledger_path).run(run.id)
    assert rec.status == "finished"
    assert rec.study == "s1" and rec.name == "baseline"
    assert rec.params == {"lr": 0.1} and rec.dataset_size == 1000
    assert rec.energy_kwh == pytest.approx(run.energy_kwh)
    assert rec.emissions_kg == pytest.approx(run.emissions_kg)
    assert rec.metric("accuracy") == 0.9
    assert [p.step for p in rec.metrics] == [1, 2]
    assert rec.provenance["cpu"].startswith("estimate")
    assert rec.ended_at is not None and rec.ended_at >= rec.started_at
    assert rec.hardware.get("cpu_model")
    assert rec.greenprint_version == gp.__version__
    assert rec.python_version


def test_energy_and_emissions_accounting_is_exact_with_known_power(ledger_path):
    meters = ConstantPowerMeters(cpu_w=100.0, ram_w=10.0, process_share=0.5)
    with gp.track(
        "exact", ledger=ledger_path, intensity=400, pue=1.5, meters=meters, **fast()
    ) as run:
        time.sleep(0.4)
    assert meters.closed
    # process scope: half of 110 W for the run's duration
    expected_kwh = 55.0 * run.duration_s / 3.6e6
    assert run.energy_kwh == pytest.approx(expected_kwh, rel=0.05)
    assert run.energy_by_component["cpu"] == pytest.approx(run.energy_kwh * 100 / 110, rel=1e-6)
    assert run.emissions_kg == pytest.approx(run.energy_kwh * 1.5 * 400 / 1000, rel=1e-9)
    rec = gp.Ledger(ledger_path).run(run.id)
    assert rec.machine_energy_kwh == pytest.approx(2 * rec.energy_kwh, rel=1e-6)
    assert rec.pue == 1.5 and rec.intensity_g_per_kwh == 400
    samples = gp.Ledger(ledger_path).samples(run.id)
    assert len(samples) >= 3
    assert sum(s.energy_kwh for s in samples) == pytest.approx(rec.energy_kwh, rel=1e-6)
    assert all(s.cpu_w == pytest.approx(50.0, rel=0.05) for s in samples if s.t1 - s.t0 > 0.01)


def test_machine_scope_records_the_whole_machine(ledger_path):
    meters = ConstantPowerMeters(process_share=0.25)
    with gp.track("m", ledger=ledger_path, scope="machine", meters=meters, **fast()) as run:
        time.sleep(0.2)
    rec = gp.Ledger(ledger_path).run(run.id)
    assert rec.scope == "machine"
    assert rec.energy_kwh == pytest.approx(rec.machine_energy_kwh)


def test_hourly_intensity_is_integrated_sample_by_sample(tmp_path, ledger_path):
    boundary = round(time.time() + 0.25, 3)  # as the file writes it
    csv = tmp_path / "hourly.csv"
    csv.write_text(f"timestamp,g_per_kwh\n{boundary - 3600:.3f},100\n{boundary:.3f},500\n")
    meters = ConstantPowerMeters(cpu_w=3600.0, ram_w=0.0, process_share=1.0)
    with gp.track("series", ledger=ledger_path, intensity=str(csv), meters=meters, **fast()) as run:
        time.sleep(0.5)
    samples = gp.Ledger(ledger_path).samples(run.id)
    values = {s.intensity_g_per_kwh for s in samples}
    assert values == {100.0, 500.0}
    # energy before the boundary at 100 g/kWh, after it at 500 g/kWh
    before = max(0.0, boundary - samples[0].t0)
    after = max(0.0, samples[-1].t1 - boundary)
    expected_g = (3600.0 * before / 3.6e6) * 100 + (3600.0 * after / 3.6e6) * 500
    assert run.emissions_kg * 1000 == pytest.approx(expected_g, rel=0.02)
    assert run.provenance["intensity"].startswith("csv:")


def test_exception_marks_failed_and_is_reraised(ledger_path):
    with pytest.raises(ZeroDivisionError):
        with gp.track("boom", ledger=ledger_path, **fast()) as run:
            time.sleep(0.15)
            1 / 0  # noqa: B018
    assert run.status == "failed"
    rec = gp.Ledger(ledger_path).run(run.id)
    assert rec.status == "failed"
    assert "ZeroDivisionError" in (rec.error or "")
    assert rec.energy_kwh > 0


def test_keyboard_interrupt_marks_interrupted(ledger_path):
    with pytest.raises(KeyboardInterrupt):
        with gp.track("ctrl-c", ledger=ledger_path, **fast()) as run:
            raise KeyboardInterrupt
    assert gp.Ledger(ledger_path).run(run.id).status == "interrupted"


def test_pruned_runs(ledger_path):
    class TrialPruned(Exception):
        pass

    with pytest.raises(TrialPruned):
        with gp.track("optuna-style", ledger=ledger_path, **fast()) as a:
            raise TrialPruned
    with gp.track("early-stopped", ledger=ledger_path, **fast()) as b:
        b.prune()
    led = gp.Ledger(ledger_path)
    assert led.run(a.id).status == "pruned"
    assert led.run(b.id).status == "pruned"


def test_decorator_tracks_each_call_as_a_new_run(ledger_path):
    @gp.track(study="deco", ledger=ledger_path, **fast())
    def train(x):
        return x * 2

    assert train(2) == 4
    assert train(3) == 6
    runs = gp.Ledger(ledger_path).runs(study="deco")
    assert len(runs) == 2
    assert all(r.status == "finished" for r in runs)
    assert all(r.name.endswith("train") for r in runs)


def test_nested_runs_link_to_their_parent(ledger_path):
    with gp.track("sweep", ledger=ledger_path, **fast()) as parent:
        assert __import__("os").environ[PARENT_ENV] == parent.id
        with gp.track("trial-0", ledger=ledger_path, **fast()) as child:
            pass
        with gp.track("trial-1", ledger=ledger_path, **fast()) as child2:
            pass
    assert PARENT_ENV not in __import__("os").environ
    led = gp.Ledger(ledger_path)
    assert led.run(child.id).parent_id == parent.id
    assert led.run(child2.id).parent_id == parent.id
    assert led.run(parent.id).parent_id is None
    assert led.run(child.id).study == parent.study


def test_runs_inside_a_run_take_its_region_and_pue_when_given_none(ledger_path, tmp_path):
    # a fold inside gp.track(region="FR", pue=1.3) was priced at the world average and PUE 1,
    # and the script's trials under `greenprint run --region FR --pue 1.3` too: the price tag,
    # which takes nested children's larger CO2-eq, counted 4.3x the FR figure
    from greenprint.carbon import lookup_region

    fr = lookup_region("FR").g_per_kwh
    with gp.track("trial", ledger=ledger_path, region="FR", pue=1.3, **fast()):
        with gp.track("fold", ledger=ledger_path, **fast()) as fold:
            with gp.track("step", ledger=ledger_path, **fast()) as step:
                pass
        with gp.track("de", ledger=ledger_path, region="DE", **fast()) as de:
            pass
    led = gp.Ledger(ledger_path)
    for run in (fold, step):
        record = led.run(run.id)
        assert (record.intensity_g_per_kwh, record.pue) == (fr, 1.3)
        assert record.intensity_source.startswith("parent run -> table:FR:")
        assert record.provenance["pue"] == "parent run -> argument"
    record = led.run(de.id)  # its own region, its parent's PUE
    assert record.intensity_source.startswith("table:DE:") and record.pue == 1.3
    with gp.track("alone", ledger=ledger_path, **fast()) as alone:  # no parent: the default
        pass
    assert led.run(alone.id).intensity_source.startswith("default:world")
    # a parent's hourly CSV gone before a run inside starts: that run takes its own, no error
    hourly = tmp_path / "hourly.csv"
    hourly.write_text("timestamp,g_per_kwh\n2026-01-01T00:00:00Z,100\n2026-01-02T00:00:00Z,200\n")
    with gp.track("csv", ledger=ledger_path, intensity=hourly, **fast()):
        hourly.unlink()
        with gp.track("inside", ledger=ledger_path, **fast()) as inside:
            pass
    assert led.run(inside.id).intensity_source.startswith("default:world")
    # across processes: the script's runs under `greenprint run --region FR --pue 1.3`
    import subprocess
    import sys

    from _clean_env import clean_env

    script = tmp_path / "train.py"
    script.write_text(
        "import greenprint as gp\nwith gp.track('inner', sample_interval_s=0.05) as r:\n    pass\n",
        encoding="utf-8",
    )
    db = tmp_path / "cli.db"
    done = subprocess.run(
        [sys.executable, "-m", "greenprint", "run", "--ledger", str(db), "--region", "FR",
         "--pue", "1.3", "--", sys.executable, str(script)],
        env=clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (inner,) = [r for r in gp.Ledger(db).runs() if r.name == "inner"]
    assert (inner.intensity_g_per_kwh, inner.pue) == (fr, 1.3)
    assert inner.intensity_source.startswith("parent run -> table:FR:")


def test_a_numpy_intensity_or_pue_reaches_the_runs_inside(ledger_path):
    # a number computed with NumPy (a mean over an hourly series) was passed on as its repr,
    # 'np.float64(56.0)': every run inside gp.track(intensity=np.float64(56.0)) raised
    # InvalidIntensityError ('... is neither a number of g CO2-eq/kWh nor an existing CSV
    # file'), and InvalidPUEError for a NumPy PUE
    np = pytest.importorskip("numpy")
    outer = {"intensity": np.float64(56.0), "pue": np.float64(1.3)}
    with gp.track("trial", ledger=ledger_path, **outer, **fast()):
        with gp.track("fold", ledger=ledger_path, **fast()) as fold:
            pass
    record = gp.Ledger(ledger_path).run(fold.id)
    assert (record.intensity_g_per_kwh, record.pue) == (56.0, 1.3)
    assert record.intensity_source == "parent run -> argument"


def test_a_run_starts_once(ledger_path):
    run = gp.track("once", ledger=ledger_path, **fast())
    with run:
        pass
    with pytest.raises(gp.GreenprintError):
        run.start()


def test_what_is_recorded_after_the_block_reaches_the_ledger_and_the_cost_stays(ledger_path):
    # a test score computed after `with gp.track(...)` ended, a late count of FPO, params:
    # they stayed in memory and never reached the ledger (the report had no test score)
    with gp.track("final", ledger=ledger_path, role="final") as run:
        run.log(val_acc=0.8, step=1)
    led = gp.Ledger(ledger_path)
    ended = led.run(run.id)
    run.log(test_acc=0.9, step=2)
    run.set(params={"lr": 0.1}, dataset_size=1000)
    run.add_fpo(150)
    late = led.run(run.id)
    assert [(p.name, p.value, p.step) for p in late.metrics] == [
        ("val_acc", 0.8, 1),
        ("test_acc", 0.9, 2),
    ]
    assert (late.params, late.dataset_size, late.fpo) == ({"lr": 0.1}, 1000, 150)
    cost = ("status", "ended_at", "duration_s", "energy_kwh", "emissions_kg")
    assert [getattr(late, f) for f in cost] == [getattr(ended, f) for f in cost]
    # a status set since by someone else (a driver's callback marking the trial pruned) stays
    led.flush(run.id, fields={"status": "pruned"})
    run.log(test_loss=0.1)
    assert led.run(run.id).status == "pruned"
    assert led.run(run.id).metric("test_loss") == 0.1
    # before the start: kept, and written with the run
    later = gp.track("later", ledger=ledger_path)
    later.log(acc=0.3)
    with later:
        pass
    assert [p.name for p in led.run(later.id).metrics] == ["acc"]


def test_in_memory_run_needs_no_ledger():
    with gp.track("mem", ledger=False, **fast()) as run:
        run.log(loss=math.nan)
    assert run.ledger is None
    assert math.isnan(run.record.metric("loss"))
    assert run.record.status == "finished"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"pue": -1}, gp.InvalidPUEError),
        ({"pue": float("nan")}, gp.InvalidPUEError),
        ({"intensity": 0}, gp.InvalidIntensityError),
        ({"intensity": -5}, gp.InvalidIntensityError),
        ({"region": "XX-NOWHERE"}, gp.UnknownRegionError),
        ({"scope": "galaxy"}, gp.ConfigError),
        ({"sample_interval_s": 0}, gp.ConfigError),
    ],
)
def test_bad_configuration_raises_before_anything_runs(ledger_path, kwargs, error):
    with pytest.raises(error):
        gp.track("bad", ledger=ledger_path, **kwargs)


def test_ledger_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(gp.LedgerPathError):
        gp.track("bad", ledger=str(tmp_path))


def test_bad_log_and_set_values_raise(ledger_path):
    with gp.track("x", ledger=ledger_path, **fast()) as run:
        with pytest.raises(gp.ConfigError):
            run.log(acc="high")
        with pytest.raises(gp.ConfigError):
            run.set(colour="green")
        with pytest.raises(gp.ConfigError):
            run.set(dataset_size=-3)
        run.add_fpo(10)
        run.add_fpo(5)
    assert gp.Ledger(ledger_path).run(run.id).fpo == 15


def test_region_and_pue_from_environment(ledger_path, monkeypatch):
    monkeypatch.setenv("GREENPRINT_REGION", "FR")
    monkeypatch.setenv("GREENPRINT_PUE", "1.2")
    with gp.track("env", ledger=ledger_path, **fast()) as run:
        pass
    assert run.pue == 1.2
    assert "FR" in run.provenance["intensity"] or "FRA" in run.provenance["intensity"]
    assert run.provenance["pue"].startswith("env:")


def test_progress_predicts_the_whole_run_and_budgets_warn(ledger_path, caplog):
    meters = ConstantPowerMeters(cpu_w=3600.0, ram_w=0.0, process_share=1.0)
    with gp.track("pred", ledger=ledger_path, meters=meters, budget_kwh=1e-4, **fast()) as run:
        assert run.predicted_energy_kwh is None
        time.sleep(0.3)
        run.progress(0.25)
        # 3600 W = 1 Wh per second: the energy at the report (carried on from the last sample
        # at the sampled power), times 4
        assert run.predicted_energy_kwh == pytest.approx(4 * run.duration_s / 1000, rel=0.05)
        assert run.predicted_duration_s == pytest.approx(4 * run.duration_s, rel=0.05)
        with pytest.raises(gp.ConfigError):
            run.progress(1.5)
        with pytest.raises(gp.ConfigError, match="not True"):
            run.progress(True)  # no fraction, though True == 1 (it read "done")
    # 3600 W for 0.3 s = 3e-4 kWh > budget
    assert run.over_budget
    assert any("over budget" in r.getMessage() for r in caplog.records)


def test_bad_budget_is_refused(ledger_path):
    with pytest.raises(gp.ConfigError):
        gp.track("b", ledger=ledger_path, budget_kwh=-1)


def test_runs_into_one_path_share_an_open_ledger_until_the_file_is_replaced(tmp_path):
    path = tmp_path / "shared.db"
    runs = []
    for k in range(2):
        with gp.track(f"t{k}", study="s", ledger=str(path), meters=ConstantPowerMeters()) as run:
            pass
        runs.append(run)
    assert runs[0].ledger is runs[1].ledger  # one engine, its statements compiled once
    # the file is deleted and a new ledger made at the same path: runs must go to the new file
    path.unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"shared.db{suffix}").unlink(missing_ok=True)
    gp.Ledger(str(path)).close()
    with gp.track("t2", study="s", ledger=str(path), meters=ConstantPowerMeters()) as later:
        pass
    assert later.ledger is not runs[0].ledger
    with gp.Ledger(str(path), create=False) as led:
        assert [r.name for r in led.runs(study="s")] == ["t2"]
    # in-memory ledgers are never shared
    with gp.track("m1", ledger=":memory:", meters=ConstantPowerMeters()) as m1:
        pass
    with gp.track("m2", ledger=":memory:", meters=ConstantPowerMeters()) as m2:
        pass
    assert m1.ledger is not m2.ledger


def test_a_run_shorter_than_one_sample_still_records_where_it_ran(tmp_path, monkeypatch):
    import socket
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git[:5], "init", "-q", str(repo)], check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    monkeypatch.chdir(repo)
    with gp.track("quick", ledger=str(tmp_path / "l.db"), command="python train.py") as run:
        pass  # far shorter than the 1 s sample interval
    with gp.Ledger(str(tmp_path / "l.db")) as led:
        record = led.run(run.id)
    assert record.host == socket.gethostname()
    assert record.command == "python train.py"
    assert record.git_commit == head.strip() and record.git_dirty is False


def test_a_flush_records_the_cost_as_of_the_last_sample(tmp_path):
    """A live run's flushed row pairs its energy with the time that energy covers (up to its
    last meter sample), not with the time of the flush: a run killed after a flush that came
    late (a busy machine) keeps energy = power x its duration, and its duration does not run
    past its heartbeat. (Tune's ASHA kills a stopped trial's actor; the outside check of such
    a study read energy and time apart by more than 1e-3 under load.)"""
    path = tmp_path / "l.db"
    meters = ConstantPowerMeters(cpu_w=3600.0, ram_w=0.0, process_share=1.0)
    with gp.track(
        "live", ledger=str(path), meters=meters, sample_interval_s=60, flush_interval_s=60
    ) as run:
        time.sleep(0.2)
        run._sample()
        sampled_by = time.time()
        time.sleep(0.4)  # the flush comes late after the sample
        run._flush()
        row = gp.Ledger(path, create=False).run(run.id)
        assert row.status == "running"
        # (the meter starts and reads a moment off the run's clock: READ_LAG_S)
        lag = 3600.0 * READ_LAG_S / 3.6e6
        assert row.energy_kwh == pytest.approx(3600.0 * row.duration_s / 3.6e6, rel=1e-3, abs=lag)
        assert row.started_at + row.duration_s == pytest.approx(row.heartbeat_at, abs=1e-6)
        # up to the sample, not the flush 0.4 s later (on the clock, not a wall-time bound a
        # loaded machine could stretch: it was < 0.5 s)
        assert 0.2 <= row.duration_s and row.started_at + row.duration_s <= sampled_by
    ended = gp.Ledger(path, create=False).run(run.id)
    assert ended.energy_kwh == pytest.approx(3600.0 * ended.duration_s / 3.6e6, rel=1e-3, abs=lag)


def _run_script(folder, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run in ``folder`` as a new user runs it (a clean environment); it succeeded."""
    (folder / "script.py").write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "script.py"], cwd=folder, env=clean_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


FIRST_RUN_SCRIPT = """
import json, sys, time

imported = []


class Spy:  # every import asked for, with the time it was asked
    def find_spec(self, name, path=None, target=None):
        imported.append((time.time(), name))


sys.meta_path.insert(0, Spy())
import greenprint as gp

with gp.track("first", study="x") as run:
    pass
rec = gp.Ledger("greenprint.db").runs(study="x")[0]
end = rec.started_at + rec.duration_s
print(json.dumps([name for at, name in imported if rec.started_at <= at <= end]))
"""


def test_a_processs_first_run_is_not_charged_greenprints_own_imports(tmp_path):
    """greenprint imports what it needs (psutil, for the process's start time in the
    provenance) before the meters start: a fresh process's first run read 0.07-0.25 s and
    its energy for an empty body (24 modules imported inside it), the next runs 0.008 s."""
    done = _run_script(tmp_path, FIRST_RUN_SCRIPT)
    assert json.loads(done.stdout.splitlines()[-1]) == []


CUT_OFF_SCRIPT = """
import threading, time
import greenprint as gp

started = threading.Event()


def work():  # a daemon thread's run, still working when the interpreter exits
    gp.track("daemon", study="x").start()
    started.set()
    time.sleep(60)


gp.track("main", study="x").start()  # left open by the main thread: it ends with the program
threading.Thread(target=work, daemon=True).start()
started.wait(30)
"""


def test_a_run_whose_thread_is_cut_off_at_exit_is_interrupted_not_finished(tmp_path):
    """A Ray worker whose driver died exits while its trial's thread sleeps or trains: the
    trial's run read 'finished' (the exit handler ended every open run so) and a restored
    experiment kept it as a finished attempt; a run left open by the main thread is finished."""
    _run_script(tmp_path, CUT_OFF_SCRIPT)
    runs = {r.name: r for r in gp.Ledger(tmp_path / "greenprint.db").runs(study="x")}
    assert runs["main"].status == "finished" and runs["main"].error is None
    assert runs["daemon"].status == "interrupted"
    assert "thread that started the run was still running" in runs["daemon"].error
    assert runs["daemon"].energy_kwh is not None and runs["daemon"].ended_at is not None
