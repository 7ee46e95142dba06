"""A run's budget covers the runs nested in it: their FPO counts, once, as the report reads it.

Before: a trial's ``budget_fpo`` compared only the FPO the trial itself added, so a trial whose
folds (or nested fit) counted the operations never reached its budget (``over_budget`` stayed
False at 300 FPO under a 250 budget). Now a run's figure is its FPO with its children's by the
report's rule (``RunForest.fpo_sums``: ``max(own, children's)``, plus what children on another
host add), live for children in this process (same thread, worker threads) and read from the
ledger for children in other processes. Real runs, real threads, real child processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from greenprint._exceptions import BudgetExceeded
from greenprint.analysis._common import RunForest

FAST: dict[str, Any] = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _report_fpo(db: Path, study: str, run_id: str) -> int:
    """The run's FPO with its nested runs' as the price tag and the report read it."""
    forest = RunForest.build(gp.Ledger(db).runs(study=study))
    sums = forest.fpo_sums
    pos = forest.index[run_id]
    assert sums.complete[pos]
    return int(sums.inclusive[pos])


def test_folds_that_count_the_fpo_reach_their_trials_budget(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    seen: list[BudgetExceeded] = []
    with gp.track(
        "trial", study="cv", ledger=db, budget_fpo=250, on_exceed=lambda r, e: seen.append(e)
    ) as trial:
        for k in range(3):
            with gp.track(f"fold-{k}", **FAST) as fold:
                fold.add_fpo(100)
            assert trial.over_budget is (k == 2)  # 100, 200: under; 300: over, at once
    assert trial.fpo is None  # the trial counted nothing itself
    (exceeded,) = seen
    assert (exceeded.limit, exceeded.spent, exceeded.budget) == ("budget_fpo", 300.0, 250.0)
    assert exceeded.run_id == trial.id
    assert _report_fpo(db, "cv", trial.id) == 300  # what the budget counted is the report's


def test_a_stop_budget_stops_inside_the_fold_that_crosses_it(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    folds: list[gp.Run] = []
    with pytest.raises(BudgetExceeded) as caught:
        with gp.track("trial", study="cv", ledger=db, budget_fpo=250, on_exceed="stop") as trial:
            for k in range(5):
                with gp.track(f"fold-{k}", **FAST) as fold:
                    folds.append(fold)
                    fold.add_fpo(100)  # the third raises the trial's BudgetExceeded
                    fold.log(acc=0.9)
    assert len(folds) == 3 and caught.value.run_id == trial.id and caught.value.spent == 300
    runs = {r.name: r for r in gp.Ledger(db).runs(study="cv")}
    assert [runs[f"fold-{k}"].status for k in range(3)] == ["finished", "finished", "interrupted"]
    assert runs["trial"].status == "interrupted"
    assert runs["trial"].error.startswith("BudgetExceeded: run ")
    assert runs["fold-2"].error == runs["trial"].error  # the trial's reason, where it stopped
    assert not runs["fold-2"].metrics  # raised before the fold's log()


def test_fpo_a_parent_adds_for_its_children_is_not_counted_twice(tmp_path: Path) -> None:
    """An integration may add a nested fit's FPO to the trial too (as ``greener.compare``'s
    container adds its variants'): the report reads max(own, children's), so must the budget."""
    db = tmp_path / "gp.db"
    seen: list[BudgetExceeded] = []
    with gp.track(
        "trial", study="twice", ledger=db, budget_fpo=250, on_exceed=lambda r, e: seen.append(e)
    ) as trial:
        with gp.track("fit", **FAST) as fit:
            for step in range(3):
                fit.add_fpo(100)
                trial.add_fpo(100)  # the same operations, counted on the parent as well
                assert trial.over_budget is (step == 2)
    assert seen[0].spent == 300  # not 600 (nor 400 at the second step)
    assert _report_fpo(db, "twice", trial.id) == 300


def test_a_parents_own_fpo_above_its_childrens_counts() -> None:
    seen: list[BudgetExceeded] = []
    with gp.track(
        "trial", ledger=False, budget_fpo=450, on_exceed=lambda r, e: seen.append(e)
    ) as trial:
        trial.add_fpo(500)  # the whole trial, counted by the trial
        with gp.track("fold", ledger=False, **FAST) as fold:
            fold.add_fpo(100)  # a part of it
    assert seen[0].spent == 500


def test_grandchildren_count_and_a_nested_runs_own_budget_counts_its_children() -> None:
    seen: list[BudgetExceeded] = []
    with gp.track(
        "trial", ledger=False, budget_fpo=500, on_exceed=lambda r, e: seen.append(e)
    ) as trial:
        with gp.track(
            "fold", ledger=False, budget_fpo=150, on_exceed=lambda r, e: seen.append(e)
        ) as fold:
            for k in range(2):
                with gp.track(f"step-{k}", ledger=False, **FAST) as step:
                    step.add_fpo(100)
        assert [e.run_id for e in seen] == [fold.id]  # 200 > 150; the trial's 200 <= 500
        for k in range(4):
            with gp.track(f"fold2-{k}", ledger=False, **FAST) as other:
                with gp.track("inner", ledger=False, **FAST) as inner:
                    inner.add_fpo(100)
    assert [(e.run_id, e.spent) for e in seen] == [(fold.id, 200), (trial.id, 600)]
    assert other.fpo is None and trial.fpo is None


def test_check_budgets_in_a_nested_run_returns_the_outer_stop(tmp_path: Path) -> None:
    """A framework callback on the nested fit (Lightning's, Hugging Face's) stops its own way:
    the trial's "stop" is returned to it, nothing is raised, both end interrupted."""
    db = tmp_path / "gp.db"
    with gp.track("trial", study="own", ledger=db, budget_fpo=250, on_exceed="stop") as trial:
        with gp.track("fit", **FAST) as fit:
            steps = 0
            for _ in range(10):
                fit.add_fpo(100)
                fit.log(loss=1.0)
                steps += 1
                if fit.check_budgets() is not None:
                    break
    assert steps == 3
    runs = {r.name: r for r in gp.Ledger(db).runs(study="own")}
    assert runs["fit"].status == runs["trial"].status == "interrupted"
    assert runs["fit"].error == runs["trial"].error
    assert runs["trial"].error.startswith(f"BudgetExceeded: run {trial.id[:8]}")


def test_runs_in_worker_threads_count_exactly() -> None:
    """Trials of a search in worker threads nest in the main thread's run: every operation they
    add counts once, whatever the interleaving (4 threads x 2,000 adds of 1)."""
    seen: list[BudgetExceeded] = []
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        with gp.track(f"worker-{k}", ledger=False, **FAST) as run:
            barrier.wait()
            for _ in range(2000):
                run.add_fpo(1)

    with gp.track(
        "search", ledger=False, budget_fpo=7999, on_exceed=lambda r, e: seen.append(e)
    ) as search:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert search._spent().fpo == 8000
    (exceeded,) = seen
    assert exceeded.spent == 8000  # crossed at the very last add, counted where it was added


def test_a_stop_in_a_worker_threads_run_ends_the_search() -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with gp.track("worker", ledger=False, **FAST) as run:
                for _ in range(100):
                    run.add_fpo(10)
        except BudgetExceeded as e:
            errors.append(e)

    with gp.track("search", ledger=False, budget_fpo=95, on_exceed="stop") as search:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    (error,) = errors
    assert error.run_id == search.id and error.spent == 100
    assert search.status == "interrupted"


_CHILD = textwrap.dedent(
    """
    import sys, time
    import greenprint as gp

    with gp.track("child", sample_interval_s=0.05, flush_interval_s=0.1) as run:
        run.add_fpo(int(sys.argv[1]))
        time.sleep(float(sys.argv[2]))
    """
)


def _child(fpo: int, linger_s: float = 0.0) -> subprocess.Popen[bytes]:
    """A process that tracks a run (its parent, study and ledger inherited from this one)."""
    env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_START"}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(fpo), str(linger_s)], env=env)


def test_a_child_processs_fpo_counts_while_it_runs(tmp_path: Path) -> None:
    """A run in a child process (``subprocess``, ``greenprint run``: GREENPRINT_PARENT_RUN)
    records its FPO in the ledger; the parent's budget reads it there every flush interval."""
    db = tmp_path / "gp.db"
    seen: list[BudgetExceeded] = []
    with gp.track(
        "trial",
        study="proc",
        ledger=db,
        budget_fpo=10**6,
        on_exceed=lambda r, e: seen.append(e),
        **FAST,
    ) as trial:
        child = _child(2 * 10**6, linger_s=20.0)
        deadline = time.monotonic() + 30
        while not trial.over_budget and time.monotonic() < deadline:
            time.sleep(0.05)
        still_running = child.poll() is None
        child.terminate()
        child.wait(timeout=30)
    assert trial.over_budget and still_running  # seen while the child was still running
    assert seen[0].spent == 2 * 10**6
    (record,) = [r for r in gp.Ledger(db).runs(study="proc") if r.name == "child"]
    assert record.parent_id == trial.id and record.contained is True


def test_a_child_process_counted_at_the_end_once(tmp_path: Path) -> None:
    """A child that ends before the parent's next read is counted at the final check; a parent
    that adds the same operations itself is not counted twice (the child is inside it)."""
    db = tmp_path / "gp.db"
    seen: list[BudgetExceeded] = []
    with gp.track(
        "trial",
        study="proc-end",
        ledger=db,
        budget_fpo=10**6,
        on_exceed=lambda r, e: seen.append(e),
        sample_interval_s=0.05,
        flush_interval_s=60.0,  # no read while it runs: only the final one
    ) as trial:
        assert _child(2 * 10**6).wait(timeout=60) == 0
        trial.add_fpo(2 * 10**6)  # the same operations: max(own, child's)
        trial.add_fpo(0)
    assert [e.spent for e in seen] == [2 * 10**6]
    assert _report_fpo(db, "proc-end", trial.id) == 2 * 10**6


def test_a_child_process_under_a_nested_run_counts(tmp_path: Path) -> None:
    """trial (budget) > fold (this process, no budget) > a run in a child process of the fold:
    the fold reads its children when it ends, so the trial counts them."""
    db = tmp_path / "gp.db"
    seen: list[BudgetExceeded] = []
    with gp.track(
        "trial",
        study="proc-deep",
        ledger=db,
        budget_fpo=150,
        on_exceed=lambda r, e: seen.append(e),
        **FAST,
    ) as trial:
        for k in range(2):
            # the trial's open ledger, not its path: a path is checked by opening the file,
            # and closing it drops this process's SQLite locks while a child process writes
            with gp.track(f"fold-{k}", ledger=trial.ledger, **FAST):
                assert _child(100).wait(timeout=60) == 0
    assert [(e.run_id, e.spent) for e in seen] == [(trial.id, 200)]
    assert _report_fpo(db, "proc-deep", trial.id) == 200


def test_a_ledger_that_cannot_be_read_never_raises(tmp_path: Path, caplog) -> None:
    """Reading the children's FPO is measurement: a ledger that fails is logged, the last
    figures stand, and the user's code goes on."""
    db = tmp_path / "gp.db"
    with gp.track("trial", study="gone", ledger=db, budget_fpo=10, **FAST) as trial:
        trial.ledger.close()  # every read now fails
        time.sleep(0.3)
        with gp.track("fold", ledger=False, **FAST) as fold:
            fold.add_fpo(5)
        trial.log(acc=1.0)
    assert trial.status == "finished" and not trial.over_budget


def _forked(fpo: int) -> None:
    with gp.track("forked", sample_interval_s=0.05, flush_interval_s=0.1) as run:
        run.add_fpo(fpo)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_counts_once(tmp_path: Path) -> None:
    """A multiprocessing worker forked inside the trial (a copy of the trial's run in memory):
    its run is counted from the ledger by the trial, not lost in the copy."""
    import multiprocessing

    db = tmp_path / "gp.db"
    seen: list[BudgetExceeded] = []
    context = multiprocessing.get_context("fork")
    with gp.track(
        "trial", study="fork", ledger=db, budget_fpo=150, on_exceed=lambda r, e: seen.append(e)
    ) as trial:
        workers = [context.Process(target=_forked, args=(100,)) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [w.exitcode for w in workers] == [0, 0]
    assert [(e.run_id, e.spent) for e in seen] == [(trial.id, 200)]
    assert _report_fpo(db, "fork", trial.id) == 200


def test_a_lightning_fit_inside_a_trial_stops_cleanly_at_the_trials_budget(
    tmp_path: Path,
) -> None:
    """The trial has the FPO budget, the Lightning fit nested in it counts the FPO: the fit's
    callback gets the trial's stop from check_budgets and stops the fit as EarlyStopping does
    (no exception in the user's code); both runs end interrupted with the trial's reason."""
    pytest.importorskip("lightning", reason="lightning is not installed (greenprint[lightning])")
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    from _tiny_lightning import Regressor, quiet_trainer
    from greenprint.integrations.lightning import GreenprintCallback

    gen = torch.Generator().manual_seed(0)
    data = DataLoader(
        TensorDataset(torch.randn(64, 4, generator=gen), torch.randn(64, 1, generator=gen)),
        batch_size=16,
    )
    db = tmp_path / "gp.db"
    callback = GreenprintCallback("fit", count_fpo=True, **FAST)
    trainer = quiet_trainer(callback, max_epochs=5)
    with gp.track("trial", study="lit", ledger=db, on_exceed="stop", budget_fpo=1) as trial:
        trainer.fit(Regressor(), data)  # returns normally
    runs = {r.name: r for r in gp.Ledger(db).runs(study="lit")}
    fit = runs["fit"]
    assert fit.parent_id == trial.id and fit.fpo is not None and fit.fpo > 1
    assert trainer.global_step == 1  # stopped after the batch that crossed the budget
    assert fit.status == runs["trial"].status == "interrupted"
    assert fit.error == runs["trial"].error
    assert runs["trial"].error.startswith(f"BudgetExceeded: run {trial.id[:8]}")


def test_greenprint_run_inside_a_trial_counts_its_commands_runs(tmp_path: Path) -> None:
    """``greenprint run -- python train.py`` inside the trial: the command's run is a child of
    greenprint run's, itself a child of the trial, both in other processes."""
    db = tmp_path / "gp.db"
    seen: list[BudgetExceeded] = []
    with gp.track(
        "trial", study="cli", ledger=db, budget_fpo=99, on_exceed=lambda r, e: seen.append(e)
    ) as trial:
        env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_START"}
        command = [sys.executable, "-m", "greenprint", "run", "--name", "wrapper", "--"]
        command += [sys.executable, "-c", _CHILD, "100", "0"]
        subprocess.run(command, env=env, check=True, timeout=120, cwd=tmp_path)
    runs = {r.name: r for r in gp.Ledger(db).runs(study="cli")}
    assert runs["wrapper"].parent_id == trial.id
    assert runs["child"].parent_id == runs["wrapper"].id
    assert [(e.run_id, e.spent) for e in seen] == [(trial.id, 100)]
    assert _report_fpo(db, "cli", trial.id) == 100
