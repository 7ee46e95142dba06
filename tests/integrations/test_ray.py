"""Ray Tune on a real local Ray cluster: trials measured in their workers, the experiment a sweep.

One cluster for the module (``ray.init(num_cpus=2)``, about 2 s to start). Ray's dashboard
process probes cloud metadata addresses (169.254.169.254) when it starts unless it finds an
autoscaler config, even with usage stats off; the fixture gives Ray a home directory holding an
empty one, so nothing leaves loopback (the network guard would fail the session otherwise).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import cli_report, empty_home, export_reads_as_the_report
from _wait import wait_until
from greenprint import LedgerError
from greenprint.analysis import expected_max_performance, price_tag
from greenprint.cli import main
from greenprint.ledger import Ledger
from integrations._frameworks import need_installed
from integrations._ray_trainables import (  # what Ray's workers import: not this module
    _train,
    _train_capped,
    _train_capped_caught,
    _train_capped_either,
    _train_cut,
    _train_fails_twice,
    _train_kills_its_driver,
    _train_loss_and_score,
    _train_plateau,
    _train_reused,
)

need_installed("ray.tune", "ray")


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> None:
    """Import Ray Tune when this module's tests run, not at collection.

    Every pytest-xdist worker collects every module; Ray Tune takes about 2 s of CPU to import.
    The names are this module's globals, as a top-level import would make them. Ray's workers
    import the trainables' module (``_ray_trainables``) by name: they import Tune themselves.
    """
    global ray, tune, ASHAScheduler, GreenprintTuneCallback, trainable
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from greenprint.integrations.ray import GreenprintTuneCallback, trainable


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("ray-home")
    (home / "ray_bootstrap_config.yaml").write_text("{}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.setenv("RAY_USAGE_STATS_REPORT_URL", "http://127.0.0.1:9/")
        mp.setenv("RAY_DEDUP_LOGS", "0")
        # no idle workers prestarted beside the first trial's (two, ~0.35 s of CPU each, never
        # used: Tune starts each trial's actor in a worker of its own); Ray's pool, not the shape
        mp.setenv("RAY_prestart_worker_first_driver", "0")
        mp.setenv("RAY_enable_worker_prestart", "0")
        # the workers import the trainables' module by name, as pytest does (tests/ first)
        tests_dir = str(Path(__file__).resolve().parents[1])
        mp.setenv("PYTHONPATH", os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]))
        # short: Ray's AF_UNIX socket paths (under it) may not exceed 107 bytes, and pytest's
        # temporary folders are long under pytest-xdist (.../popen-gw0/...)
        scratch = tempfile.mkdtemp(prefix="gp-ray-")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=scratch,
            log_to_driver=False,
        )
        try:
            yield
        finally:
            ray.shutdown()
            shutil.rmtree(scratch, ignore_errors=True)


def _fit(
    tmp_path: Path,
    fn: Any,
    ledger: Path,
    xs: list[int],
    *,
    scheduler: Any = None,
    concurrent: int | None = None,
) -> tune.ResultGrid:
    callback = GreenprintTuneCallback(ledger=ledger, study="ray-study")
    tuner = tune.Tuner(
        fn,
        param_space={"x": tune.grid_search(xs)},
        # a trial starts in the actor a finished one leaves (one worker process per CPU, ~2 s
        # of CPU to start each, instead of one per trial); ``concurrent=1``: one actor in all
        # (about 4.5 s of CPU less than two on this VM), where the trials need not overlap
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=scheduler,
            reuse_actors=True,
            max_concurrent_trials=concurrent,
        ),
        run_config=tune.RunConfig(
            name="ray-exp",
            storage_path=str(tmp_path / "tune"),
            callbacks=[callback],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    return tuner.fit()


def test_asha_study_every_trial_its_status_and_one_price_tag(
    ray_cluster: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "gp.db"
    fn = trainable(_train, ledger=ledger, study="ray-study", sample_interval_s=0.1)
    scheduler = ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2)
    # the failing trials last: an errored trial's actor is not reused, so x=1 and x=3 end the two
    # actors that ran the others (two actors in all; in the order 1..6, four: ~3 s of CPU each)
    results = _fit(tmp_path, fn, ledger, [2, 6, 4, 5, 1, 3], scheduler=scheduler)

    led = gp.Ledger(ledger)
    runs = led.runs(study="ray-study")
    sweeps = [r for r in runs if r.role == "sweep"]
    trials = [r for r in runs if r.role == "trial"]
    assert len(sweeps) == 1 and len(trials) == 6
    sweep = sweeps[0]
    assert sweep.name == "ray-exp" and sweep.status == "finished"
    assert all(t.parent_id == sweep.id for t in trials)
    by_x = {t.params["x"]: t for t in trials}
    assert sorted(by_x) == [1, 2, 3, 4, 5, 6]

    # statuses: the failing trials failed (with their error; x=3 before its first result),
    # the best remaining one ran to max_t (finished), the weakest was cut by ASHA at its first
    # rung (pruned)
    assert by_x[1].status == "failed" and "x=1 fails" in (by_x[1].error or "")
    assert by_x[3].status == "failed" and "x=3 fails" in (by_x[3].error or "")
    assert by_x[2].status == by_x[6].status == "finished"
    assert by_x[4].status == by_x[5].status == "pruned"
    assert {t.status for t in trials} <= {"finished", "pruned", "failed"}

    # each trial measured in the worker process that ran it (reused by later trials), not the driver
    driver_pid = os.getpid()
    carried = [r for r in results if r.metrics and "greenprint/worker" in r.metrics]
    assert len(carried) == 5  # every trial's last result but x=3's (it failed before any)
    for result in carried:
        worker_pid = int(result.metrics["greenprint/worker"].rpartition(" ")[2])
        assert worker_pid == result.metrics["pid"] != driver_pid
        assert result.metrics["greenprint/run_id"] in {t.id for t in trials}
        assert result.metrics["greenprint/energy_kwh"] > 0
    # a reused worker's trials are runs of their own (as in the test below): one per trial
    assert len({r.metrics["greenprint/run_id"] for r in carried}) == 5
    for trial in trials:
        assert trial.energy_kwh > 0, trial.name
        assert trial.provenance["scope"] == "process"
        assert "default_worker" in trial.command or "ray" in trial.command.lower()
    assert by_x[2].metric("score") == 20.0  # the reported results are the run's metrics
    assert by_x[1].energy_kwh > 0 and by_x[3].energy_kwh > 0  # failed: their cost so far

    # the local cluster's raylet, and so its workers, are the driver's children: inside the
    # sweep's measurement
    assert all(t.contained is True for t in trials)

    # one price tag: the sweep's measurement (the driver's tree) contains the local workers,
    # so the total is neither the trials' sum plus the sweep nor less than the trials' sum
    tag = price_tag(runs)
    trial_sum = sum(t.energy_kwh for t in trials)
    assert tag.total.trials == 6 and tag.total.runs == 7
    spans = sorted((t.started_at, t.ended_at or t.started_at) for t in trials)
    ends = itertools.accumulate(end for _, end in spans)  # latest end so far
    overlapped = any(start < end for (start, _), end in zip(spans[1:], ends, strict=False))
    if overlapped:  # trials at the same time share the sweep's measurement out, floored at
        # the largest (docs/analysis.md): whether Ray ran two at once is the cluster's timing
        largest = max(t.energy_kwh for t in trials)
        assert max(sweep.energy_kwh, largest) * (1 - 1e-9) <= tag.total.energy_kwh
        assert tag.total.energy_kwh <= max(sweep.energy_kwh, trial_sum) * (1 + 1e-9)
    else:
        assert tag.total.energy_kwh == pytest.approx(max(sweep.energy_kwh, trial_sum), rel=1e-9)
    assert tag.total.energy_kwh < sweep.energy_kwh + trial_sum
    assert sum(v.energy_kwh for v in tag.by_role.values()) == pytest.approx(tag.total.energy_kwh)
    assert sum(v.energy_kwh for v in tag.by_status.values()) == pytest.approx(tag.total.energy_kwh)
    assert tag.by_status["failed"].trials == 2 and tag.by_status["pruned"].trials >= 1

    # when and by what the pruned ones were stopped: ASHA cut them at their first rung
    # (training_iteration 1, as Tune's results say), the finished ones went to max_t (4)
    last = {
        r.config["x"]: r.metrics["training_iteration"]
        for r in results
        if "training_iteration" in r.metrics  # x=3 failed before its first result
    }
    for x in (4, 5):
        provenance = by_x[x].provenance
        assert provenance["pruned_at_step"] == str(last[x]) == "1"
        assert provenance["full_steps"] == "4" == str(last[2])
        assert provenance["pruned_by"] == "Ray Tune AsyncHyperBandScheduler"  # ASHAScheduler
        assert provenance["step_unit"] == "training_iteration"
    for x in (2, 6):
        assert "pruned_at_step" not in by_x[x].provenance
    from greenprint.report import build_report

    pruning = build_report(ledger, "ray-study").pruning
    assert pruning is not None and [r.step for r in pruning.rows] == [1.0, 1.0]
    assert pruning.full_steps == 4 and not pruning.from_zero
    assert pruning.unit == "training_iteration"
    # run to max_t, each would have cost 4 times its first iteration's energy: 3 times more
    saved = sum(by_x[x].energy_kwh * 3 for x in (4, 5))
    assert pruning.saved_energy_kwh == pytest.approx(saved, rel=1e-9)
    assert "Stopped at training_iteration 1 (median); a trial run to the end reached " in " ".join(
        pruning.lines()
    )


def test_driver_writes_trials_when_workers_cannot_reach_the_ledger(
    ray_cluster: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "driver.db"
    fn = trainable(_train, ledger=ledger, study="ray-study", write="driver")
    results = _fit(tmp_path, fn, ledger, [2, 1], concurrent=1)  # x=1 in x=2's actor
    assert any(r.metrics.get("greenprint/record") for r in results if r.metrics)

    runs = gp.Ledger(ledger).runs(study="ray-study")
    sweep = next(r for r in runs if r.role == "sweep")
    trials = {r.params["x"]: r for r in runs if r.role == "trial"}
    assert sorted(trials) == [1, 2]
    assert trials[2].status == "finished" and trials[1].status == "failed"
    for trial in trials.values():
        assert trial.parent_id == sweep.id
        assert trial.energy_kwh > 0 and trial.host  # the worker's figures, written by the driver
    assert [p.value for p in trials[2].metrics if p.name == "score"] == [5.0, 10.0, 15.0, 20.0]
    assert [p.step for p in trials[2].metrics if p.name == "score"] == [1, 2, 3, 4]


def test_driver_records_a_trial_that_failed_before_its_first_result(
    ray_cluster: Any, tmp_path: Path
) -> None:
    """write="driver" (as for a worker on another host than a SQLite ledger's): a trial that
    raised before its first result carried no record to the driver, and was in no ledger (s34:
    Tune ran 6 trials, 1 ERROR; the report read 5, all finished). The driver now records it:
    failed, with the worker's error and its params, under the sweep, its cost not measured."""
    ledger = tmp_path / "driver.db"
    fn = trainable(_train, ledger=ledger, study="ray-study", write="driver")
    results = _fit(tmp_path, fn, ledger, [2, 3], concurrent=1)  # x=3 raises before a result
    assert sorted(r.error is not None for r in results) == [False, True]

    runs = gp.Ledger(ledger).runs(study="ray-study")
    sweep = next(r for r in runs if r.role == "sweep")
    trials = {r.params["x"]: r for r in runs if r.role == "trial"}
    assert sorted(trials) == [2, 3] and len(runs) == 3
    failed = trials[3]
    assert failed.status == "failed" and failed.parent_id == sweep.id
    assert failed.error == "ValueError: trial x=3 fails at iteration 0"
    assert failed.energy_kwh == 0 and "not measured" in failed.provenance["cost"]
    assert failed.started_at <= failed.ended_at <= sweep.ended_at
    tag = price_tag(runs)
    assert tag.total.trials == len(results) == 2
    assert tag.by_status["failed"].trials == 1 and tag.by_status["finished"].trials == 1


def test_trials_that_share_a_reused_worker_are_runs_of_their_own(
    ray_cluster: Any, tmp_path: Path
) -> None:
    """reuse_actors=True (as _fit): one worker process hosts the trials one after another.
    Each trial is still a run of its own: its results only, its own time, and the process
    tree's CPU from its own start (the trial after a heavy one is not charged for it).

    The trials' configs and results are in NumPy types, as ``np.arange(...)`` and a score
    computed on float32 data give them (from tests/test_review2_s9.py (4), a test and an
    experiment of its own until session 43): they were left out of the params and metrics."""
    np = pytest.importorskip("numpy")
    ledger = tmp_path / "gp.db"
    fn = trainable(_train_reused, ledger=ledger, study="ray-reuse", sample_interval_s=0.1)
    tuner = tune.Tuner(
        fn,
        param_space={"x": tune.grid_search([np.int64(x) for x in (1, 2, 3)])},
        tune_config=tune.TuneConfig(
            metric="score", mode="max", reuse_actors=True, max_concurrent_trials=1
        ),
        run_config=tune.RunConfig(
            name="ray-reuse",
            storage_path=str(tmp_path / "tune"),
            callbacks=[GreenprintTuneCallback(ledger=ledger, study="ray-reuse")],
            verbose=0,
        ),
    )
    results = tuner.fit()
    workers = {r.metrics["greenprint/worker"] for r in results}
    assert len(workers) == 1  # the scenario: Tune did reuse the one worker for every trial

    runs = gp.Ledger(ledger).runs(study="ray-reuse")
    sweep = next(r for r in runs if r.role == "sweep")
    trials = {r.params["x"]: r for r in runs if r.role == "trial"}
    assert sorted(trials) == [1, 2, 3] and len({t.id for t in trials.values()}) == 3
    for x, trial in trials.items():
        assert trial.status == "finished" and trial.parent_id == sweep.id, x
        # its own results, numbered from its own start (not the worker's previous trial's)
        assert [(p.step, p.value) for p in trial.metrics if p.name == "score"] == [
            (i + 1, float(10 * x + i)) for i in range(x)
        ], x
        # np.float32 is not a float: the score was left out and the trial read as unscored;
        # np.int64 was left out of the params too (a result named "x" does not replace it)
        assert trial.metric("accuracy") == 0.25 * x and trial.metric("epoch") == x - 1.0, x
        assert type(trial.params["x"]) is int, x
    # one after another in the worker: a run ends before the next one starts
    ordered = sorted(trials.values(), key=lambda t: t.started_at)
    assert [t.params["x"] for t in ordered] == [1, 2, 3]
    for before, after in zip(ordered, ordered[1:], strict=False):
        assert before.ended_at is not None and before.ended_at <= after.started_at
    # the process tree's CPU counted from each run's start: the 0.6 s of CPU the first trial
    # burned in this process is its own, not the idle trials' after it (as long, 0.6 s asleep)
    assert min(trials[2].duration_s, trials[3].duration_s) >= 0.6
    assert trials[1].energy_kwh > 0
    assert trials[2].energy_kwh < trials[1].energy_kwh / 3
    assert trials[3].energy_kwh < trials[1].energy_kwh / 3


def test_a_stop_budget_ends_the_trial_at_a_report_and_stays_interrupted(
    ray_cluster: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "gp.db"
    fn = trainable(
        _train_capped, ledger=ledger, study="ray-study", budget_fpo=1_000, on_exceed="stop"
    )
    (result,) = _fit(tmp_path, fn, ledger, [1])

    # the report that crossed 1,000 FPO (the third) reached Tune, then the trial stopped
    assert result.error is not None and "BudgetExceeded" in str(result.error)
    assert result.metrics["score"] == 3.0
    runs = gp.Ledger(ledger).runs(study="ray-study")
    (trial,) = [r for r in runs if r.role == "trial"]
    # Tune marked the trial ERROR; the driver kept the worker's reason
    assert trial.status == "interrupted" and (trial.error or "").startswith("BudgetExceeded:")
    assert trial.fpo == 1_200 and trial.energy_kwh > 0
    assert [p.value for p in trial.metrics if p.name == "score"] == [1.0, 2.0, 3.0]


@pytest.fixture(scope="module")
def driver_stops(ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A stop budget in two trials the driver writes, one after the other in one actor: the
    first catches the stop and returns (Tune: TERMINATED), the second lets it raise (ERROR).
    One experiment for both tests below (a trial's actor is ~4.5 s of CPU to start)."""
    tmp_path = tmp_path_factory.mktemp("ray-driver-stops")
    ledger = tmp_path / "driver.db"
    fn = trainable(
        _train_capped_either, ledger=ledger, study="ray-study", write="driver",
        budget_fpo=1_000, on_exceed="stop",
    )  # fmt: skip
    tuner = tune.Tuner(
        fn,
        param_space={"caught": tune.grid_search([True, False])},
        tune_config=tune.TuneConfig(
            metric="score", mode="max", reuse_actors=True, max_concurrent_trials=1
        ),
        run_config=tune.RunConfig(
            name="ray-exp",
            storage_path=str(tmp_path / "tune"),
            callbacks=[GreenprintTuneCallback(ledger=ledger, study="ray-study")],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    return ledger, tuner.fit()


@pytest.mark.parametrize("train", [_train_capped, _train_capped_caught])
def test_a_stop_budget_in_a_trial_the_driver_writes_is_recorded_as_in_process(
    driver_stops: tuple[Path, Any], train: Any
) -> None:
    ledger, results = driver_stops
    caught = train is _train_capped_caught
    (result,) = [r for r in results if r.config["caught"] == caught]

    # the report that crossed the budget carried the reason to the driver
    reason = result.metrics["greenprint/budget_stop"]
    assert reason.startswith("BudgetExceeded: run ") and "budget_fpo" in reason
    assert (result.error is not None) == (train is _train_capped)
    (trial,) = [
        r
        for r in gp.Ledger(ledger).runs(study="ray-study")
        if r.role == "trial" and r.params["caught"] == caught
    ]
    # not "failed" (Tune's ERROR) nor "finished": the status and reason a budget stop has
    assert (trial.status, trial.error) == ("interrupted", reason)
    assert trial.ended_at is not None and trial.fpo == 1_200 and trial.energy_kwh > 0


def test_a_study_restored_after_errors_reads_as_one_study(ray_cluster: Any, tmp_path: Path) -> None:
    """Issue 12: Tuner.restore(path, resume_errored=True), then restart_errored=True, rerun the
    errored trial each time with a callback that has no memory of it (as in a new driver
    process: Tune unpickles it from the experiment; restart gives the trial a new id and name).
    One configuration is one trial, the attempt that ends it: each failed attempt is a part of
    the first sweep (its error and cost kept, counted once); the trial that finished at first
    and was restored, not rerun, keeps its one run; each later driver's sweep is a child of
    the first, added to it (its measurement is later)."""
    ledger = tmp_path / "gp.db"
    callback = GreenprintTuneCallback(ledger=ledger, study="ray-resume")
    fn = trainable(_train_fails_twice, ledger=ledger, study="ray-resume", sample_interval_s=0.1)
    tuner = tune.Tuner(
        fn,
        # x=2, then x=1 in x=2's actor (one actor, not one each: nothing here needs them at once)
        param_space={"x": tune.grid_search([2, 1]), "folder": str(tmp_path)},
        tune_config=tune.TuneConfig(
            metric="score", mode="max", reuse_actors=True, max_concurrent_trials=1
        ),
        run_config=tune.RunConfig(
            name="ray-resume",
            storage_path=str(tmp_path / "tune"),
            callbacks=[callback],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),  # fmt: skip
    )
    assert sorted(r.error is not None for r in tuner.fit()) == [False, True]  # x=1 errored
    before = {r.id: r for r in gp.Ledger(ledger).runs(study="ray-resume")}
    path = str(tmp_path / "tune" / "ray-resume")
    again = tune.Tuner.restore(path, fn, resume_errored=True).fit()  # x=1: the same trial id
    assert sorted(r.error is not None for r in again) == [False, True]  # failed again
    grid = tune.Tuner.restore(path, fn, restart_errored=True).fit()  # x=1: a new trial id
    assert sorted((r.config["x"], r.metrics["score"], r.error) for r in grid) == [
        (1, 2.0, None),
        (2, 4.0, None),
    ]

    runs = gp.Ledger(ledger).runs(study="ray-resume")
    sweeps = sorted((r for r in runs if r.role == "sweep"), key=lambda r: r.started_at)
    trials = {r.params["x"]: r for r in runs if r.role == "trial"}
    parts = sorted((r for r in runs if r.role == "part"), key=lambda r: r.started_at)
    assert len(sweeps) == 3 and len(runs) == 7
    first_sweep = sweeps[0]
    assert first_sweep.parent_id is None and first_sweep.id in before
    for later in sweeps[1:]:
        assert later.parent_id == first_sweep.id and later.contained is False
    # x=2 finished in the first driver and was not rerun: its one run, as it was
    assert sorted(trials) == [1, 2] and trials[2].id in before
    assert trials[2].parent_id == first_sweep.id and trials[2].status == "finished"
    # x=1: the last attempt is the trial; each failed one a part of the sweep it ran under
    assert trials[1].parent_id == sweeps[2].id and trials[1].status == "finished"
    assert [p.parent_id for p in parts] == [first_sweep.id, sweeps[1].id]
    for n, part in enumerate(parts, 1):
        assert part.params["x"] == 1 and part.status == "failed"
        assert f"worker died ({n})" in (part.error or "") and part.energy_kwh > 0
    assert parts[0].energy_kwh == before[parts[0].id].energy_kwh  # its cost kept

    report = cli_report(
        tmp_path, "--ledger", str(ledger), "--study", "ray-resume", "--format", "json",
        "--no-plots",
    )  # fmt: skip
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 2 and tag["total"]["runs"] == 7
    assert {k: v["trials"] for k, v in tag["by_status"].items() if v["trials"]} == {"finished": 2}
    assert tag["by_status"]["failed"]["runs"] == 2

    # every attempt's cost once: each sweep's measurement holds its own trials (a local
    # cluster's workers are the driver's children), and the later sweeps add to the first
    def held(sweep: gp.RunRecord) -> float:
        inside = sum(r.energy_kwh for r in runs if r.parent_id == sweep.id and r.role != "sweep")
        return max(sweep.energy_kwh, inside)

    assert tag["total"]["energy_kwh"] == pytest.approx(sum(map(held, sweeps)), rel=1e-9)
    assert sum(r.energy_kwh for r in runs if r.role != "sweep") <= tag["total"]["energy_kwh"]
    assert tag["total"]["energy_kwh"] < sum(r.energy_kwh for r in runs)
    assert {r["id"]: r["role"] for r in report["runs"]} == {r.id: r.role for r in runs}
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    mean = next(s for p in evp["panels"] for s in p["series"] if s["role"] == "mean")
    assert mean["y"] == pytest.approx(expected_max_performance([2.0, 4.0]).mean.tolist())
    export_reads_as_the_report(tmp_path, "ray-resume", report, "--ledger", str(ledger))


#: A driver of its own on the module's cluster, killed by its second trial.
KILLED_DRIVER = """
import os, sys
# the experiment's state saved at each step (by default at most every few seconds), so that x=1's
# end is saved before x=2 kills the driver and the restore does not run x=1 again
os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = "0"
import ray
from ray import tune
from greenprint.integrations.ray import GreenprintTuneCallback, trainable
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from integrations._ray_trainables import _train_kills_its_driver


class StopsX2OnceRestored(FIFOScheduler):
    # stops x=2 at its first result once the test restores the experiment (an early stop: x=1
    # went further, under the killed driver)
    def on_trial_result(self, tune_controller, trial, result):
        restored = os.path.exists(os.path.join(trial.config["folder"], "restored"))
        if trial.config["x"] == 2 and restored:
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


ray.init(address=sys.argv[1], log_to_driver=False)
folder = sys.argv[2]
ledger = os.path.join(folder, "gp.db")
tune.Tuner(
    trainable(_train_kills_its_driver, ledger=ledger, sample_interval_s=0.1),
    param_space={"x": tune.grid_search([1, 2]), "folder": folder, "driver": os.getpid()},
    tune_config=tune.TuneConfig(metric="score", mode="max", max_concurrent_trials=1,
                                reuse_actors=True, scheduler=StopsX2OnceRestored(),
                                trial_name_creator=lambda t: f"x={t.config['x']}"),
    run_config=tune.RunConfig(name="ray-killed", storage_path=os.path.join(folder, "tune"),
                              verbose=0, callbacks=[GreenprintTuneCallback(ledger=ledger)]),
).fit()
"""


def test_a_study_restored_after_its_driver_was_killed_reads_as_one_study(
    ray_cluster: Any, tmp_path: Path
) -> None:
    """Issue 12: the driver killed (SIGKILL) under a running trial, then Tuner.restore (its
    unfinished trials run again): each configuration is one trial; the attempt that was running
    when the driver died is a part, interrupted, its cost kept once. The scheduler stops the
    rerun at its first result: pruned, since x=1 went further under the killed driver (it read
    finished: the restored driver judged it against the trials it saw run only)."""
    import subprocess
    import sys

    ledger = tmp_path / "gp.db"
    # an earlier experiment of the same name in the study (the same script, an hour ago), its
    # trials named as this one's (trial_name_creator), and a trial run of one whose driver
    # ended first: none of them is an earlier attempt of this experiment's trials
    hour_ago = time.time() - 3600
    earlier = gp.Ledger(ledger)
    for n, (name, role, parent) in enumerate(
        [("ray-killed", "sweep", None), ("x=2", "trial", "0" * 32), ("x=2", "trial", None)]
    ):
        earlier.start_run(
            gp.RunRecord(
                id=str(n) * 32, name=name, study="ray-killed", status="finished", role=role,
                parent_id=parent, started_at=hour_ago + n, ended_at=hour_ago + 60,
            )
        )  # fmt: skip
    others = {r.id: r for r in earlier.runs(study="ray-killed")}
    earlier.close()
    script = tmp_path / "driver.py"
    script.write_text(KILLED_DRIVER, encoding="utf-8")
    address = ray.get_runtime_context().gcs_address
    done = subprocess.run([sys.executable, str(script), address, str(tmp_path)],
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == -9, done.stderr[-3000:]  # the trial killed it
    note = (tmp_path / "killed").read_text()
    assert note.startswith("saved"), note  # with the state the restore needs on disk
    fn = trainable(_train_kills_its_driver, ledger=ledger, sample_interval_s=0.1)
    (tmp_path / "restored").touch()  # the scheduler stops x=2 at its first result from now on
    grid = tune.Tuner.restore(str(tmp_path / "tune" / "ray-killed"), fn).fit()
    assert sorted((r.config["x"], r.metrics["score"], r.error) for r in grid) == [
        (1, 2.0, None),
        (2, 2.0, None),
    ]

    runs = gp.Ledger(ledger).runs(study="ray-killed")
    assert {r.id: r for r in runs if r.id in others} == others  # as they were
    runs = [r for r in runs if r.id not in others]
    sweeps = sorted((r for r in runs if r.role == "sweep"), key=lambda r: r.started_at)
    trials = {r.params["x"]: r for r in runs if r.role == "trial"}
    parts = {r.params["x"]: r for r in runs if r.role == "part"}
    # the killed driver's sweep ends interrupted, as its running attempt does (it read 'lost')
    assert len(sweeps) == 2 and sweeps[0].status == "interrupted"
    assert "Tuner.restore resumed it" in (sweeps[0].error or "")
    assert sweeps[0].ended_at == sweeps[0].heartbeat_at
    assert sweeps[1].parent_id == sweeps[0].id and sweeps[1].contained is False
    assert sorted(trials) == [1, 2] and trials[2].parent_id == sweeps[1].id
    # x=2 stopped at its first result, x=1 had gone to its second: pruned
    assert (trials[1].status, trials[2].status) == ("finished", "pruned")
    # x=2 was running when its driver died: that attempt is a part, interrupted, its cost kept
    assert parts[2].parent_id == sweeps[0].id and parts[2].status == "interrupted"
    # its error: the restore's, or, when the worker outlived the driver long enough to run
    # its exit handler (under load), the handler's own (a final status the restore keeps)
    assert any(
        text in (parts[2].error or "")
        for text in ("driver ended before the trial", "the process exited while the thread")
    ), parts[2].error
    assert parts[2].energy_kwh > 0 and parts[2].ended_at is not None
    # x=1 finished before; Tune runs it again only if its end was not saved yet: then its
    # first run is a part (finished), else it is the trial, under the first sweep
    if 1 in parts:
        assert parts[1].status == "finished" and trials[1].parent_id == sweeps[1].id
    else:
        assert trials[1].parent_id == sweeps[0].id
    assert len(runs) == 2 + len(trials) + len(parts)
    tag = price_tag(runs)
    assert tag.total.trials == 2
    assert {k: v.trials for k, v in tag.by_status.items() if v.trials} == {
        "finished": 1,
        "pruned": 1,
    }

    # every attempt's cost once: the killed driver's measurement holds none of its trials (the
    # cluster is not its child: each adds to it), the second driver's holds its own, and the
    # second sweep adds to the first
    def held(run: gp.RunRecord) -> float:
        below = [r for r in runs if r.parent_id == run.id]
        inside = sum(held(r) for r in below if r.contained is not False)
        return max(run.energy_kwh, inside) + sum(held(r) for r in below if r.contained is False)

    assert tag.total.energy_kwh == pytest.approx(held(sweeps[0]), rel=1e-9)
    assert tag.total.energy_kwh >= sum(r.energy_kwh for r in runs if r.role != "sweep")


# ---------------------------------------------------- a ledger merged while the experiment runs
#: A user's Tune script (s34), a driver of its own on the module's cluster (it started a local
#: cluster of its own, ``ray.init(num_cpus=2)``, as the module's is, until session 38).
MERGE_SCRIPT = """
import os, sys, time
import ray
from ray import tune
from greenprint.integrations.ray import GreenprintTuneCallback, trainable

gate = os.path.abspath("go")


def train(config):
    while not os.path.exists(gate):  # the test merges the ledger here, every trial running
        time.sleep(0.05)
    for epoch in range(2):
        tune.report({"loss": config["lr"] / (epoch + 1)})


ray.init(address=sys.argv[1], log_to_driver=False)
tuner = tune.Tuner(
    trainable(train, ledger="node.db"),  # no study: the workers write under the experiment's
    param_space={"lr": tune.grid_search([0.1, 0.01])},
    tune_config=tune.TuneConfig(metric="loss", mode="min"),
    run_config=tune.RunConfig(name="exp", storage_path=os.path.abspath("tune"),
                              callbacks=[GreenprintTuneCallback(ledger="node.db", study="lr")]),
)
tuner.fit()
"""


def _runs(url: Path) -> list[tuple[str, str, str | None, str, int]]:
    with Ledger(url, create=False) as led:
        return sorted((r.id, r.study, r.role, r.status, len(r.metrics)) for r in led.runs())


def test_a_tune_ledger_merged_while_the_experiment_runs_and_after(
    ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory, capsys: Any
) -> None:
    """A Ray Tune experiment's ledger merged while it runs, and again after it ends (s34).

    A team fetches a node's ledger with ``greenprint ledger merge`` while its experiment still
    runs (a periodic copy to shared storage, a look at the study so far), and again at the end.
    The trials' workers write their runs under the experiment's name; the callback moves the
    sweep and each trial into the study it was given once it sees the trial's first result. A
    copy merged before that move and the run's later state differed by study, which the merge
    took for another run: a conflict, exit status 2, and the experiment's final state never
    reached the merged ledger (every later merge of the node failed too). The script is a
    user's Tune script, its own driver (on the module's cluster); the merges are the CLI's,
    from this process, as another process's would be.
    """
    import subprocess
    import sys

    home = empty_home(tmp_path_factory, "ray-merge")
    (home / "ray-home").mkdir()
    (home / "ray-home" / "ray_bootstrap_config.yaml").write_text("{}\n")
    (home / "study.py").write_text(MERGE_SCRIPT)
    env = clean_env()
    env.update(HOME=str(home / "ray-home"), RAY_USAGE_STATS_ENABLED="0",
               RAY_USAGE_STATS_REPORT_URL="http://127.0.0.1:9/")  # fmt: skip
    address = ray.get_runtime_context().gcs_address
    node, merged = home / "node.db", home / "merged.db"
    script = subprocess.Popen(
        [sys.executable, "study.py", address], cwd=home, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def both_trials_started() -> bool:
            try:
                with Ledger(node, create=False) as led:
                    return sum(r.role == "trial" for r in led.runs()) == 2
            except LedgerError:  # not made yet
                return False

        assert wait_until(both_trials_started, 120), "the trials never started"
        assert main(["ledger", "merge", str(merged), str(node)]) == 0
        early = _runs(merged)
        assert {status for *_, status, _ in early} == {"running"}
        assert "exp" in {study for _, study, *_ in early}  # written before the move
    finally:
        (home / "go").touch()
        try:
            _, err = script.communicate(timeout=240)
        finally:
            script.kill()
    assert script.returncode == 0, err[-3000:]
    capsys.readouterr()
    assert main(["ledger", "merge", str(merged), str(node)]) == 0, capsys.readouterr().err
    assert main(["ledger", "merge", str(merged), str(node)]) == 0  # again: nothing changes
    assert "0 runs added, 0 updated, 3 already there" in capsys.readouterr().out
    final = _runs(merged)
    assert final == _runs(node)
    assert sorted((study, role, status, n) for _, study, role, status, n in final) == sorted(
        [("lr", "sweep", "finished", 0)] + [("lr", "trial", "finished", 2)] * 2
    )


def _median_stopping() -> Any:
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(
        time_attr="training_iteration", grace_period=1, min_samples_required=2
    )


def _plateau() -> Any:
    from ray.tune.stopper import TrialPlateauStopper

    return TrialPlateauStopper("score", std=1e-6, num_results=2, grace_period=2)


@pytest.mark.parametrize(
    ("scheduler", "stopper", "by", "step"),
    [
        (_median_stopping, None, "Ray Tune MedianStoppingRule", "1"),
        (None, _plateau, "Ray Tune TrialPlateauStopper", "2"),
        (_median_stopping, _plateau, "Ray Tune MedianStoppingRule or TrialPlateauStopper", "1"),
    ],
    ids=["median-stopping-rule", "plateau-stopper", "both"],
)
def test_a_pruned_trial_names_the_scheduler_or_stopper_that_may_have_stopped_it(
    ray_cluster: Any, tmp_path: Path, scheduler: Any, stopper: Any, by: str, step: str
) -> None:
    """Tune tells callbacks neither its scheduler nor which stopper stopped a trial: every
    pruned trial read ``pruned_by="Ray Tune"``. The trials one after another: the flat x=2,
    last, is below the median of the two before it at its first iteration (stopped there by
    the rule) and flat over its first two (stopped at 2 by the plateau stopper)."""
    db = tmp_path / "gp.db"
    fn = trainable(_train_plateau, ledger=db, study="ray-by", sample_interval_s=0.1)
    tuner = tune.Tuner(
        fn,
        param_space={"x": tune.grid_search([0, 1, 2])},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=scheduler() if scheduler else None,
            reuse_actors=True,
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(
            name="ray-by",
            storage_path=str(tmp_path / "tune"),
            callbacks=[GreenprintTuneCallback(ledger=db, study="ray-by")],
            stop=stopper() if stopper else None,
            verbose=0,
        ),
    )
    tuner.fit()
    trials = {r.params["x"]: r for r in gp.Ledger(db).runs(study="ray-by") if r.role == "trial"}
    assert [trials[x].status for x in (0, 1, 2)] == ["finished", "finished", "pruned"]
    provenance = trials[2].provenance
    assert provenance["pruned_by"] == by
    assert (provenance["pruned_at_step"], provenance["full_steps"]) == (step, "4")


def _end_when_cut(marks: Path) -> tuple[Any, Any]:
    """A Tune callback and stopper that end the experiment once x=1 has completed (as Tune
    and greenprint's callback, listed before this one, saw it) and x=2 is in its first epoch.

    ``time_budget_s`` is a stopper too (Tune combines its ``TimeoutStopper`` with the others):
    ``stop_all`` ends the experiment the same way, at the moment the case needs rather than
    after a fixed time that a loaded machine may not have reached the second trial by (12 s, at
    a load of 8 on 2 CPUs: x=2 had not started, and Tune rightly recorded nothing).
    """
    from ray.tune import Callback
    from ray.tune.stopper import Stopper

    class Completed(Callback):  # type: ignore[misc]
        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            if trial.config["x"] == 1:
                (marks / "x1-completed").touch()

    class EndWhenCut(Stopper):  # type: ignore[misc]
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            ending = (marks / "x1-completed").exists() and (marks / "x2-started").exists()
            if ending:  # x=2's worker, in its first epoch, is killed as Tune would 10 s later
                (marks / "experiment-ending").touch()
            return ending

    return Completed(), EndWhenCut()


def test_a_trial_cut_before_its_first_result_reads_interrupted(
    ray_cluster: Any, tmp_path: Path
) -> None:
    """Session 31: a Tune experiment that ends before its trials (``time_budget_s``, Ctrl-C).

    Tune ends such an experiment by marking the trials still running ``TERMINATED`` without
    calling ``on_trial_complete``. A trial whose results the driver had seen was recorded
    ``interrupted``; one whose first result the driver had not seen yet (a slow first epoch, or
    a result still on its way when Ctrl-C came) was adopted by its name as a trial that "ended
    before its first result" and recorded ``finished``: with Ctrl-C 2 s into two trials of 40
    epochs, both read ``finished`` at epoch 1 of 40 (acc 0.99), a finished trial in the
    report's EVP and best trial. (Its own file and cluster until session 31's helper H10; the
    module's cluster is the same, ``ray.init(num_cpus=2)``.)
    """
    ledger = tmp_path / "greenprint.db"
    completed, end_when_cut = _end_when_cut(tmp_path)
    started = time.monotonic()
    tune.Tuner(
        trainable(_train_cut, ledger=ledger),
        param_space={"x": tune.grid_search([1, 2]), "marks": str(tmp_path)},
        # the time budget only as a backstop: the stopper ends the experiment as the case needs
        # one actor: x=2 starts in the one x=1 leaves (about 3 s of CPU less than a second)
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            time_budget_s=90,
            reuse_actors=True,
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(
            name="cut",
            storage_path=str(tmp_path / "tune"),
            callbacks=[GreenprintTuneCallback(ledger=ledger, study="cut"), completed],
            stop=end_when_cut,
            verbose=0,
        ),
    ).fit()
    assert time.monotonic() - started < 100  # the experiment's end ended it, not the trial
    runs = {r.name: r for r in gp.Ledger(ledger).runs(study="cut")}
    (sweep,) = [r for r in runs.values() if r.role == "sweep"]
    trials = {r.params["x"]: r for r in runs.values() if r.role == "trial"}
    assert sorted(trials) == [1, 2]
    assert trials[1].status == "finished" and trials[1].metric("score") == 2.0
    cut = trials[2]
    # its error: the driver's, or, when the worker outlived the experiment long enough to run
    # its exit handler (under load: once in session 38 at load 5), the handler's own, as the
    # killed driver's part above; interrupted either way, never finished
    assert cut.status == "interrupted"
    assert any(
        text in (cut.error or "")
        for text in ("the experiment ended before the trial", "the process exited while the thread")
    ), cut.error
    assert cut.metric("score") is None and cut.parent_id == sweep.id
    assert cut.ended_at is not None and cut.energy_kwh is not None
    # the experiment did not run to its end: its sweep is interrupted too (it read finished)
    assert (sweep.status, sweep.error) == (
        "interrupted",
        "the experiment ended before 1 of its 2 trials ended",
    )


def test_bad_setup_is_refused_on_the_driver(tmp_path: Path) -> None:
    with pytest.raises(gp.ConfigError):
        trainable(_train, ledger=tmp_path / "x.db", write="somewhere")
    with pytest.raises(gp.ConfigError):
        trainable(_train, ledger=tmp_path / "x.db", colour="green")
    with pytest.raises(gp.ConfigError):
        trainable("not a function")  # type: ignore[arg-type]
    with pytest.raises(gp.ConfigError):
        GreenprintTuneCallback(ledger=tmp_path / "x.db", pue=0.5)
    assert not (tmp_path / "x.db").exists()


def test_the_callback_tells_workers_inside_the_drivers_tree_from_others(tmp_path: Path) -> None:
    """A worker on another host, or outside the driver's process tree, is not contained."""
    import subprocess
    import sys

    from greenprint._jobs import node_host

    callback = GreenprintTuneCallback(ledger=tmp_path / "x.db")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert callback._contained(f"{node_host()} {child.pid}") is True
        assert callback._contained(f"another-node {child.pid}") is False
        assert callback._contained(f"{node_host()} 1") is False  # init: not the driver's child
        assert callback._contained("garbled") is None
    finally:
        child.kill()
        child.wait()


def test_a_reported_result_is_in_the_ledger_at_once(tmp_path: Path) -> None:
    """A trial Tune stops at a report (ASHA) may have its actor killed before its run ends: the
    result it is ranked by was held until the next flush (10 s) and lost with it (a pruned
    trial's score read None under load). Each report now writes its run."""
    from greenprint.integrations._dl import LiveFigures
    from greenprint.integrations.ray import _TrialRun, _TrialSpec
    from greenprint.tracking import Run

    ledger = tmp_path / "l.db"
    spec = _TrialSpec(str(ledger), "s", "worker", "host", os.getpid(), {})
    trial = _TrialRun(spec, {"x": 1})
    trial.run = Run("t", study="s", ledger=str(ledger), role="trial", flush_interval_s=600).start()
    trial._figures = LiveFigures(trial.run)
    try:
        trial._annotate({"val_loss": 0.9})
        record = gp.Ledger(ledger).run(trial.run.id)  # before the run ends or flushes
        assert record.metric("val_loss") == 0.9 and record.status == "running"
    finally:
        trial.run.stop()


@pytest.mark.postgres
def test_a_mistyped_postgresql_url_is_refused_on_the_driver(pg_server: Any) -> None:
    """Outside check s41: a team's Tune script given a PostgreSQL URL naming no database.

    ``trainable(train, ledger=URL)`` and ``GreenprintTuneCallback(ledger=URL)`` checked a
    path but never reached a server: both accepted ``.../teem`` for ``.../team``, the cluster
    started, and the callback raised out of ``Tuner.fit`` (a 200-line traceback) when the first
    trial started. Now the driver connects where they are made and refuses it, before any
    trial; a URL that works is taken as before.
    """
    bad = pg_server.url("no_such_study_db")
    for make in (
        lambda: trainable(_train, ledger=bad),
        lambda: GreenprintTuneCallback(ledger=bad),
    ):
        with pytest.raises(gp.LedgerPathError) as refused:
            make()
        assert 'database "no_such_study_db" does not exist' in str(refused.value)
        assert "\n" not in str(refused.value)
    good = pg_server.new_database()
    trainable(_train, ledger=good)
    GreenprintTuneCallback(ledger=good)


@pytest.mark.postgres
def test_a_metric_tune_minimised_is_ranked_as_tune_ranked_it(
    ray_cluster: Any, tmp_path: Path, pg_server: Any
) -> None:
    """Outside check s41: ``TuneConfig(metric="score", mode="min")``, a name that says nothing.

    Tune tells callbacks neither metric nor mode, and the trial runs recorded none: the report
    maximised ``score``, so the experiment's worst finished trial (lr=0.1 in a team's sweep,
    score 0.05 against Tune's best 0.005) was named the final model, with no note. The callback
    now reads the experiment's objective where Tune sets up its callbacks and records it as an
    Optuna study's is (``objectives`` in the sweep's and each trial's provenance): the report
    ranks ``score`` lowest first, and says why. Trials that report a ``loss`` first as well
    (``tune.report({"loss": ..., "score": ...})``) were ranked by that loss, the first logged
    of two metrics logged as often, though the note named ``score`` the search's objective:
    the one objective the trials recorded now comes before the first logged.
    """
    from greenprint.report import build_report

    url = pg_server.new_database()
    tuner = tune.Tuner(
        trainable(_train_loss_and_score, ledger=url, study="lower", sample_interval_s=0.1),
        param_space={"x": tune.grid_search([2, 4])},  # x=2: the lower loss; x=4: Tune's best
        tune_config=tune.TuneConfig(
            metric="score", mode="min", reuse_actors=True, max_concurrent_trials=1
        ),
        run_config=tune.RunConfig(
            name="lower",
            storage_path=str(tmp_path / "tune"),
            callbacks=[GreenprintTuneCallback(ledger=url)],
            verbose=0,
        ),
    )
    assert tuner.fit().get_best_result().config["x"] == 4  # Tune's best

    runs = Ledger(url).runs(study="lower")
    assert sorted(r.role or "" for r in runs) == ["sweep", "trial", "trial"]
    assert {r.provenance.get("objectives") for r in runs} == {"score: minimize"}
    report = build_report(url, "lower")
    final = report.price_tag.final
    by_x = {r.params["x"]: r for r in runs if r.role == "trial"}
    assert final is not None and final.run_id == by_x[4].id and final.score == 4.0
    assert (report.metric, report.mode) == ("score", "min")
    notes = " ".join(report.notes)
    assert "'score' is minimised, as the search that ran the trials" in notes
    assert "runs ranked by 'score', the metric logged by the most trials, the objective" in notes


def test_the_objective_given_to_a_scheduler_or_searcher_is_the_experiments() -> None:
    """The mode given to the scheduler (``ASHAScheduler(metric=..., mode=...)``) or searcher
    instead of ``TuneConfig``, as Tune's docs also show, is the experiment's too."""
    from types import SimpleNamespace

    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher
    from ray.tune.search.search_generator import SearchGenerator

    from greenprint.integrations._ray_trials import _experiment_objective

    def of(scheduler: Any, search: Any, **run_locals: Any) -> Any:
        return _experiment_objective(
            SimpleNamespace(scheduler_alg=scheduler, search_alg=search), run_locals
        )

    plain = BasicVariantGenerator()
    asha = ASHAScheduler(metric="val_loss", mode="min")
    assert of(asha, plain, metric=None, mode=None) == ("val_loss", "minimize")
    asha = ASHAScheduler(mode="max")  # TuneConfig(metric=...) names the metric
    asha.set_search_properties("acc", None)
    assert of(asha, plain, metric="acc", mode=None) == ("acc", "maximize")
    limited = SearchGenerator(ConcurrencyLimiter(Searcher(metric="err", mode="min"), 1))
    assert of(None, limited, metric=None, mode=None) == ("err", "minimize")
    assert of(None, plain, metric=None, mode=None) is None  # nothing named: by the name
    assert of(None, None) is None  # another Ray: no controller found


@pytest.mark.postgres
def test_a_callback_given_no_ledger_writes_the_sweep_where_the_trainable_writes(
    ray_cluster: Any, tmp_path: Path, pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside check s41: ``trainable(train, ledger=URL)`` (the team's PostgreSQL ledger) and
    ``GreenprintTuneCallback()`` given none, a hurried copy of the docs' example.

    The sweep went to the configured ``./greenprint.db`` and the trials to the team's ledger:
    the study split in two, a sweep of no trial in one, trials of no sweep in the other, the
    trial ASHA stopped read ``finished`` (the callback could not set its status), and 10 lines
    of warnings. A callback given no ledger now takes the one the experiment's trainable writes
    to, as it takes its study (here through ``tune.with_parameters``, which wraps it).
    """
    monkeypatch.chdir(tmp_path)  # the configured ledger: ./greenprint.db, here
    url = pg_server.new_database()
    tuner = tune.Tuner(
        tune.with_parameters(trainable(_train, ledger=url, study="split", sample_interval_s=0.1)),
        param_space={"x": tune.grid_search([2, 4])},  # x=4 below x=2 at the first rung
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
            reuse_actors=True,
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(
            name="split",
            storage_path=str(tmp_path / "tune"),
            callbacks=[GreenprintTuneCallback()],
            verbose=0,
        ),
    )
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        tuner.fit()
    assert not [str(w.message) for w in said if "greenprint" in str(w.message)]
    assert not (tmp_path / "greenprint.db").exists()
    runs = Ledger(url).runs(study="split")
    (sweep,) = [r for r in runs if r.role == "sweep"]
    trials = {r.params["x"]: r for r in runs if r.role == "trial"}
    assert {x: (t.status, t.parent_id) for x, t in trials.items()} == {
        2: ("finished", sweep.id),
        4: ("pruned", sweep.id),
    }


@pytest.mark.postgres
def test_a_trainable_given_no_ledger_writes_its_trials_where_the_callback_writes(
    ray_cluster: Any, tmp_path: Path, pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside check s41, the reverse of the test above: ``trainable(train)`` given no ledger
    beside ``GreenprintTuneCallback(ledger=URL)`` (the team's PostgreSQL ledger).

    The trials went to the configured ``./greenprint.db`` and the sweep to the team's ledger:
    a sweep of no trial there, trials of no sweep here, and a warning for each trial. A
    trainable given no ledger now writes where the callback writes (its workers read the
    callback's ledger from Ray's key-value store), here through ``tune.with_parameters``.
    """
    monkeypatch.chdir(tmp_path)  # the configured ledger: ./greenprint.db, here
    url = pg_server.new_database()
    tuner = tune.Tuner(
        tune.with_parameters(trainable(_train, study="split", sample_interval_s=0.1)),
        param_space={"x": tune.grid_search([2])},
        tune_config=tune.TuneConfig(metric="score", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(
            name="split",
            storage_path=str(tmp_path / "tune"),
            callbacks=[GreenprintTuneCallback(ledger=url)],
            verbose=0,
        ),
    )
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        tuner.fit()
    assert not [str(w.message) for w in said if "greenprint" in str(w.message)]
    assert not (tmp_path / "greenprint.db").exists()
    runs = Ledger(url).runs(study="split")
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert [(r.params, r.status, r.parent_id) for r in runs if r.role == "trial"] == [
        ({"x": 2}, "finished", sweep.id)
    ]
