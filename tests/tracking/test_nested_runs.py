"""Runs inside runs of one process: a nested run never costs more than the run around it.

The runs of one process tracking the same process share one process tree and one series of
samples (``meters._attribution.shared_tree``), so every run's estimated energy is a difference
of the same cumulative integrals: a run nested in another (started after it, stopped before it)
gets a part of its parent's, component by component, and runs one after another inside a parent
get no more together than the parent. Before, each run sampled its own tree on its own instants
and a nested run could record more than its parent under load (a distillation inside its
variant's run, folds inside a trial). No mocks: real runs, real ``/proc`` samples, real CPU work.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenprint as gp
from greenprint.meters._attribution import (
    ProcessTree,
    UsageSample,
    share_between,
    shared_tree,
)
from greenprint.meters._estimate import CpuEstimateMeter, RamEstimateMeter
from greenprint.meters._set import MeterSet, detect_meters

#: Float slack on sums of differences of the same cumulative series (kWh or J).
_REL = 1e-9


def _burn(seconds: float) -> None:
    """Busy CPU work of this thread for ``seconds``."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


@dataclass
class _Node:
    run: gp.Run
    children: list[_Node] = field(default_factory=list)


def _fast() -> dict[str, Any]:
    return {"ledger": False, "sample_interval_s": 0.01, "flush_interval_s": 0.01}


def _assert_nests(node: _Node) -> None:
    """The run's energy, per component and in all, holds its direct children's summed."""
    parent = node.run.energy_by_component
    for comp in set(parent) | {c for ch in node.children for c in ch.run.energy_by_component}:
        inner = sum(ch.run.energy_by_component.get(comp, 0.0) for ch in node.children)
        outer = parent.get(comp, 0.0)
        assert outer >= inner - _REL * max(outer, 1e-12), (comp, outer, inner)
    total = sum(ch.run.energy_kwh for ch in node.children)
    assert node.run.energy_kwh >= total - _REL * max(node.run.energy_kwh, 1e-12)
    for child in node.children:
        _assert_nests(child)


# one step of a schedule: open a run inside the innermost one, close the innermost one, or work
_STEP = st.one_of(
    st.just(("open", 0.0)),
    st.just(("close", 0.0)),
    st.tuples(st.just("burn"), st.floats(0.0, 0.012)),
    st.tuples(st.just("sleep"), st.floats(0.0, 0.008)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(_STEP, min_size=1, max_size=18))
def test_nested_runs_never_exceed_their_parent_per_component(steps):
    """Runs several levels deep, started and stopped at random instants, CPU load between."""
    root = _Node(gp.track("root", **_fast()))
    root.run.__enter__()
    stack = [root]
    for i, (action, seconds) in enumerate(steps):
        if action == "open" and len(stack) < 5:
            node = _Node(gp.track(f"nested-{i}", **_fast()))
            node.run.__enter__()
            stack[-1].children.append(node)
            stack.append(node)
        elif action == "close" and len(stack) > 1:
            stack.pop().run.__exit__(None, None, None)
        elif action == "burn":
            _burn(seconds)
        elif action == "sleep":
            time.sleep(seconds)
    while stack:
        stack.pop().run.__exit__(None, None, None)
    assert root.run.status == "finished"
    _assert_nests(root)
    assert shared_tree().users == 0  # the last run closed the tree


def test_a_run_after_another_inside_a_parent_and_a_deep_chain():
    """Folds one after another inside a trial, and a chain four deep, each with its own work."""
    with gp.track("trial", **_fast()) as trial:
        folds = []
        for k in range(3):
            with gp.track(f"fold-{k}", **_fast()) as fold:
                _burn(0.03)
                with gp.track(f"fold-{k}-step", **_fast()) as step:
                    _burn(0.02)
                    with gp.track(f"fold-{k}-inner", **_fast()) as inner:
                        _burn(0.01)
            folds.append(_Node(fold, [_Node(step, [_Node(inner)])]))
        _burn(0.01)
    tree = _Node(trial, folds)
    _assert_nests(tree)
    assert all(f.run.parent_id == trial.id for f in folds)
    assert trial.energy_by_component["cpu"] > 0 and trial.energy_by_component["ram"] > 0


def test_concurrent_sibling_runs_in_threads_stay_inside_their_parent():
    """Runs started in threads at once share the tree; each is a part of the run around them."""
    results: dict[int, gp.Run] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            with gp.track(f"worker-{k}", **_fast()) as run:
                _burn(0.04 + 0.02 * k)
            results[k] = run
        except BaseException as e:  # reported below, on the test's thread
            errors.append(e)

    with gp.track("parent", **_fast()) as parent:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert len(results) == 4
    for run in results.values():
        assert run.status == "finished" and run.energy_kwh > 0
        assert run.parent_id == parent.id  # the main thread's run, though not in the context
        for comp, kwh in run.energy_by_component.items():
            outer = parent.energy_by_component[comp]
            assert outer >= kwh - _REL * outer, (comp, outer, kwh)
    assert shared_tree().users == 0


def test_meter_sets_of_one_pid_share_one_tree_and_nested_readings_nest():
    """The meter level: one tree per pid; the inner set's joules are inside the outer set's."""
    outer_set = detect_meters()
    inner_set = detect_meters()
    assert outer_set.tree is inner_set.tree is shared_tree()
    outer_set.start()
    _burn(0.02)
    inner_set.start()
    assert inner_set.tree.users == 2
    for _ in range(5):
        _burn(0.01)
        inner_set.read()
        outer_set.read()  # interleaved: both add samples to one series
    inner = inner_set.read()
    inner_set.close()
    assert outer_set.tree.users == 1
    _burn(0.01)
    outer = outer_set.read()
    outer_set.close()
    for comp, reading in inner.items():
        assert reading.process_j is not None and outer[comp].process_j is not None
        assert outer[comp].process_j >= reading.process_j > 0
        assert outer[comp].machine_j >= reading.machine_j > 0


def test_a_shared_tree_is_reset_only_when_nobody_uses_it():
    tree = ProcessTree()
    first = MeterSet(
        {"cpu": CpuEstimateMeter(tdp_w=10.0, provenance="estimate:test (10 W)", tree=tree)},
        tree=tree,
    )
    second = MeterSet({"ram": RamEstimateMeter(ram_gb=1.0, tree=tree)}, tree=tree)
    first.start()
    _burn(0.01)
    first.read()
    seq = tree.last.seq
    second.start()  # a sample as its baseline, not a reset of the series the first one reads
    assert tree.last.seq == seq + 1 and tree.last.elapsed_s > 0
    second.close()
    assert tree.users == 1
    assert first.read()["cpu"].machine_j > 0
    first.close()
    assert tree.users == 0
    again = MeterSet({"ram": RamEstimateMeter(ram_gb=1.0, tree=tree)}, tree=tree)
    again.start()  # nobody else: a fresh baseline
    assert tree.last.seq == 0
    again.close()


def _sample(seq: int, tree_cpu_s: float, busy_cpu_s: float, elapsed_s: float) -> UsageSample:
    return UsageSample(
        seq=seq,
        t=elapsed_s,
        dt_s=0.0,
        machine_util=0.0,
        cpu_share=0.25,
        ram_share=0.5,
        tree_cpu_s=tree_cpu_s,
        elapsed_s=elapsed_s,
        ram_share_s=0.1 * elapsed_s,
        busy_cpu_s=busy_cpu_s,
    )


def test_share_between_is_the_sample_share_for_one_step_and_the_interval_share_over_more():
    a = _sample(3, tree_cpu_s=1.0, busy_cpu_s=4.0, elapsed_s=2.0)
    b = _sample(4, tree_cpu_s=2.0, busy_cpu_s=6.0, elapsed_s=3.0)
    c = _sample(7, tree_cpu_s=4.0, busy_cpu_s=12.0, elapsed_s=6.0)
    # one step: the sample's own figures, as before runs shared trees
    assert share_between(a, b, "cpu") == 0.25 and share_between(a, b, "ram") == 0.5
    # several: tree CPU seconds over machine busy CPU seconds, and the mean RSS share
    assert share_between(b, c, "cpu") == pytest.approx(2.0 / 6.0)
    assert share_between(b, c, "ram") == pytest.approx(0.1)
    idle = _sample(9, tree_cpu_s=4.0, busy_cpu_s=12.0, elapsed_s=7.0)
    assert share_between(c, idle, "cpu") == 0.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_trees_of_its_own_even_while_a_thread_holds_the_lock():
    tree = shared_tree()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with tree._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if its trees work without the parent's lock
        code = 1
        try:
            mine = shared_tree()
            parents = shared_tree(os.getppid())
            if mine is not tree and parents is not tree and mine.attach().seq == 0:
                tree.sample()  # the parent's object: its lock was made anew
                mine.detach()
                code = 0
        finally:
            os._exit(code)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert shared_tree() is tree


@pytest.mark.skipif(sys.platform != "linux", reason="the estimate meters of this VM")
def test_distillation_inside_its_variant_run_costs_no_more_than_it():
    """The distill scenario: ``greener.distill`` opens its run inside the caller's run."""
    torch = pytest.importorskip("torch")
    from greenprint import greener

    for seed in range(3):
        torch.manual_seed(seed)
        teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
        data = [(torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))) for _ in range(4)]
        with gp.track("variant", **_fast()) as variant:
            _burn(0.01)
            result = greener.distill(teacher, student, data, 2, ledger=False)
            _burn(0.01)
        assert 0 < result.energy_kwh <= variant.energy_kwh


def test_a_counter_step_is_shared_out_over_its_own_interval_when_others_sampled_between():
    """RAPL and hwmon: a step spanning other runs' samples gets the share of the whole step."""
    from greenprint.meters._counter import SharedEnergy

    tree = ProcessTree()
    tree.attach()
    energy = SharedEnergy(tree, "cpu")
    energy.begin()
    start = tree.last
    for _ in range(4):  # another run's sampler, between this meter's two reads
        _burn(0.01)
        tree.sample()
    time.sleep(0.01)
    tree.sample()  # this run's own tick: a meter set samples before its meters read
    reading = energy.add(10.0)
    end = tree.last
    assert end.seq == start.seq + 5
    d_busy = end.busy_cpu_s - start.busy_cpu_s
    expected = min((end.tree_cpu_s - start.tree_cpu_s) / d_busy, 1.0) if d_busy > 0 else 1.0
    assert reading.machine_j == 10.0
    assert reading.process_j == pytest.approx(10.0 * expected)
    tree.detach()
