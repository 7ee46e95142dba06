"""The column-wise paths of the forest, the roles and the price tag give what the run loops gave.

A 100,000-run study is arranged, its roles resolved, its final run chosen and its amounts nested
column by column (``RunForest.column``, C passes, a leaves-only fast path) instead of one run at
a time. Each reference below is the loop it replaced, kept verbatim: on generated studies (runs
nested, linked by jobs and across hosts, with parent cycles, unknown roles, NaN, -0.0, negative
and unknown amounts, tied scores and start times) the new paths give the same result, float for
float (compared by ``repr``, so -0.0 is not 0.0 and an int is not a float), or the same error.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import AnalysisError, MetricPoint, RunRecord
from greenprint._jobs import link_jobs
from greenprint._records import RUN_ROLES, RUN_STATUSES
from greenprint.analysis import choose_final, price_tag, resolve_roles, study_trials
from greenprint.analysis._common import RunForest, _link_kind
from greenprint.analysis._pricetag import EDH, _edh, _picker
from greenprint.analysis._roles import _CONTAINERS, _has_score

IDS = [f"r{k}" for k in range(12)]
AMOUNTS = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.0, -1.5, math.nan, 1e-300, 2.5]),
    st.floats(min_value=-10, max_value=1e6, allow_nan=False),
)


@st.composite
def studies(draw: Any, *, unique: bool = True, max_size: int = 10) -> list[RunRecord]:
    """Runs with nesting, jobs, roles, statuses, amounts and scores drawn to collide."""
    count = draw(st.integers(1, max_size))
    ids = (
        draw(st.permutations(IDS))[:count]
        if unique
        else draw(st.lists(st.sampled_from(IDS[:4]), min_size=count, max_size=count))
    )
    runs = []
    for k, rid in enumerate(ids):
        parent = draw(st.one_of(st.none(), st.sampled_from([*IDS[:count], "gone"])))
        score = draw(st.one_of(st.none(), st.sampled_from([0.5, 0.9, 0.9, -0.0, 0.0, math.nan])))
        energy, emissions = draw(AMOUNTS), draw(AMOUNTS)
        runs.append(
            RunRecord(
                id=rid,
                name=rid,
                parent_id=None if parent == rid else parent,
                role=draw(st.one_of(st.none(), st.sampled_from([*RUN_ROLES, "bogus"]))),
                status=draw(st.sampled_from(RUN_STATUSES)),
                started_at=draw(st.sampled_from([0.0, 1.0, 1.0, 2.0])),
                ended_at=draw(st.sampled_from([None, 5.0, 9.0])),
                duration_s=draw(st.sampled_from([0.0, 3.0, 4.5])),
                energy_kwh=0.0 if energy is None else energy,
                emissions_kg=0.0 if emissions is None else emissions,
                fpo=draw(st.one_of(st.none(), st.integers(0, 2**70))),
                dataset_size=draw(st.sampled_from([None, 0, 100, 2500])),
                job_id=draw(st.sampled_from([None, None, "job-a", "job-b"])),
                host=draw(st.sampled_from(["h1", "h2"])),
                node_meter=draw(st.sampled_from([None, True, False])),
                contained=draw(st.sampled_from([None, True, False])),
                metrics=() if score is None else (MetricPoint("accuracy", score, k),),
            )
        )
    return runs


# ------------------------------------------------------------------ references (the old loops)
def reference_build(runs: Any) -> dict[str, Any]:
    """RunForest.build as one loop over the runs (before the column-wise path)."""
    items = tuple(runs)
    index: dict[str, int] = {}
    for pos, run in enumerate(items):
        if not isinstance(run, RunRecord):
            raise AnalysisError(f"expected RunRecord objects, got {type(run).__name__}")
        if run.id in index:
            raise AnalysisError(f"run id {run.id!r} appears twice")
        index[run.id] = pos
    parents: list[int | None] = [
        index.get(run.parent_id) if run.parent_id is not None else None for run in items
    ]

    def elsewhere(pos: int) -> bool:
        """A child that recorded no containment under a parent of another host (it adds)."""
        parent = parents[pos]
        if parent is None or items[pos].contained is not None:
            return False
        host, above = items[pos].host, items[parent].host
        return bool(host and above and host != above)

    kinds = [
        "nested"
        if run.job_id is None and run.contained is not False and not elsewhere(pos)
        else _link_kind(run, items, parents[pos])
        for pos, run in enumerate(items)
    ]
    explicit = list(parents)
    notes = link_jobs(items, parents, kinds)
    kids: list[list[int]] = [[] for _ in items]
    roots = []
    for pos, parent in enumerate(parents):
        if parent is None:
            roots.append(pos)
        else:
            kids[parent].append(pos)
    order: list[int] = []
    for root in roots:
        stack: list[tuple[int, bool]] = [(root, False)]
        while stack:
            pos, expanded = stack.pop()
            if expanded:
                order.append(pos)
                continue
            stack.append((pos, True))
            stack.extend((child, False) for child in reversed(kids[pos]))
    if len(order) != len(items):
        seen = set(order)
        stuck = next(items[p].id for p in range(len(items)) if p not in seen)
        raise AnalysisError(f"the parents of run {stuck!r} form a cycle")
    return {
        "runs": items,
        "index": index,
        "children": tuple(tuple(k) for k in kids),
        "roots": tuple(roots),
        "order": tuple(order),
        "parents": tuple(parents),
        "kinds": tuple(kinds),
        "virtual": tuple(p != e for p, e in zip(parents, explicit, strict=True)),
        "notes": tuple(dict.fromkeys(notes)),
    }


def reference_nested_sum(forest: RunForest, values: Any, fpo: bool) -> tuple[list, list]:
    n = len(forest.runs)
    inclusive: list[Any] = [0] * n
    exclusive: list[Any] = [0] * n
    # what adds to a run or to a run inside it (another host's run under a nested one): in no
    # figure of the run's own, so it adds to it, never maxed away
    far: list[Any] = [0] * n
    for pos in forest.order:
        below = added = outside = 0
        beyond = 0
        for child in forest.children[pos]:
            if forest.adds(child, fpo=fpo):
                added += inclusive[child]
                # outside its recorded parent's tree by its record (contained False, or none
                # recorded by a run of no job, or by a run of a job on another host than its
                # recorded parent), else outside only this run
                run = forest.runs[child]
                recorded = forest.index.get(run.parent_id) if run.parent_id else None
                host = None if recorded is None else forest.runs[recorded].host
                elsewhere = bool(run.host and host and run.host != host)
                apart = run.contained is False or (
                    run.contained is None and (run.job_id is None or elsewhere)
                )
                beyond += inclusive[child] if apart else far[child]
            else:
                below += inclusive[child]
                outside += far[child]
        far[pos] = beyond + outside
        own = values[pos]
        if own is None:
            total = below
            exclusive[pos] = total - below
        elif not outside:  # nothing far inside it (a leaf, or no run adds)
            total = max(own, below)
            exclusive[pos] = total - below
        else:
            inside = below - outside
            total = max(own, inside) + outside
            # its own part is what it measured beyond what is inside it: never (a - b) + b - a,
            # which rounds (to -1e-16 for a parent that measured 0, to 2e-280 for one of 1e-280)
            exclusive[pos] = max(own, inside) - inside
        inclusive[pos] = total + added
    return inclusive, exclusive


def reference_covered(forest: RunForest, known: list[bool], fpo: bool) -> list[bool]:
    out = [False] * len(forest.runs)
    for pos in reversed(forest.order):
        if out[pos] or known[pos]:
            for child in forest.children[pos]:
                if not forest.adds(child, fpo=fpo):
                    out[child] = True
    return out


def reference_roles(forest: RunForest, metric: str | None) -> tuple[Any, ...]:
    items = forest.runs
    count = len(items)
    role: list[str] = [""] * count
    inferred = [True] * count
    owner = list(range(count))
    overridden = 0

    def container(pos: int) -> str:
        """The role pos's children see: a job's rank linked under a sweep is the sweep (also
        through its node, linked under the sweep in turn)."""
        parent = forest.parents[pos]
        if forest.virtual[pos] and parent is not None and container(parent) in _CONTAINERS:
            return container(parent)
        return role[pos]

    def ranks_trial(pos: int) -> bool:
        """Whether a rank its job linked under pos (at any depth) holds a given trial."""
        ranks = [c for c in forest.children[pos] if forest.virtual[c]]
        return any(
            any(items[k].role == "trial" and not forest.virtual[k] for k in forest.children[r])
            or ranks_trial(r)
            for r in ranks
        )

    def non_virtual(pos: int) -> list[int]:
        return [c for c in forest.children[pos] if not forest.virtual[c]]

    for pos in reversed(forest.order):
        run = items[pos]
        parent = forest.parents[pos]
        given = run.role
        if given is not None and given not in RUN_ROLES:
            given = None
        if given is not None and given != "part" and parent is not None:
            if container(parent) not in _CONTAINERS:
                given = None
                overridden += 1
        if given is not None:
            role[pos], inferred[pos] = given, False
        elif parent is None:
            kids = [c for c in forest.children[pos] if not forest.virtual[c]]
            ranks_of_one_job = len({items[c].job_id for c in kids} - {None}) == 1 and all(
                items[c].job_id is not None for c in kids
            )
            is_sweep = (
                bool(kids)
                and not all(items[c].role == "part" for c in kids)
                and (
                    not (_has_score(run, metric) or ranks_of_one_job)
                    or any(items[c].role in ("trial", "sweep") for c in kids)
                )
            ) or ranks_trial(pos)
            # its one child lost inside its measurement while it went on (a script killed
            # under `greenprint run`): one trial, unless the lost run is a search of its own
            alone = forest.children[pos]
            if is_sweep and len(alone) == 1 and run.status not in ("lost", "running"):
                lost, inner = items[alone[0]], non_virtual(alone[0])
                search = (
                    bool(inner)
                    and not all(items[c].role == "part" for c in inner)
                    and any(items[c].role in ("trial", "sweep") for c in inner)
                )
                is_sweep = not (
                    lost.status == "lost"
                    and lost.role is None
                    and not forest.virtual[alone[0]]
                    and not forest.adds(alone[0])
                    and not search
                )
            role[pos] = "sweep" if is_sweep else "trial"
        elif container(parent) == "sweep" and not forest.virtual[pos]:
            # a sweep inside a sweep: children given role 'trial' (no params are drawn, so
            # none varies a configuration)
            kids = [c for c in forest.children[pos] if not forest.virtual[c]]
            nested = (
                bool(kids)
                and not all(items[c].role == "part" for c in kids)
                and any(items[c].role in ("trial", "sweep") for c in kids)
            )
            role[pos] = "sweep" if nested else "trial"
        else:
            role[pos] = "part"
        if role[pos] == "part" and parent is not None:
            owner[pos] = owner[parent]
    return tuple(role), tuple(inferred), tuple(owner), overridden


def reference_best_trial(trials: Any) -> int | None:
    sign = -1.0 if trials.mode == "max" else 1.0
    energy = trials.forest.cost_sums("energy_kwh")  # a trial's own with its parts'
    best: tuple[float, float, float, int] | None = None
    for position in trials.positions:
        run = trials.forest.runs[position]
        score = trials.scores[position].score
        # as the study reads it: a job's head by its job's status (another node failed)
        status = trials.forest.job_statuses.get(position, run.status)
        if status != "finished" or math.isnan(score):
            continue
        key = (sign * score, energy[position], run.started_at, position)
        if best is None or key < best:
            best = key
    return None if best is None else best[-1]


def reference_edh(
    forest: RunForest, trial_positions: Any, energy_in, co2_in, fpo_in, fpo_known
) -> Any:
    runs = forest.runs
    covered = [p for p in trial_positions if (runs[p].dataset_size or 0) > 0]
    if not covered:
        return None
    trials = trial_positions
    pick = _picker(covered)
    sizes = [int(runs[p].dataset_size or 0) for p in covered]
    examples = float(sum(sizes))
    energy = float(sum(pick(energy_in)))
    emissions = float(sum(pick(co2_in)))
    with_fpo = [p for p in covered if fpo_known[p]]
    fpo_examples = float(sum(int(runs[p].dataset_size or 0) for p in with_fpo))
    missing = len(trials) - len(covered)
    note = None
    if missing:
        have, are = ("has", "is") if missing == 1 else ("have", "are")  # "1 of 4 trials has"
        note = (
            f"{missing} of {len(trials)} trials {have} no dataset_size and {are} not in E x D x H"
        )
    return EDH(
        trials=len(covered),
        trials_total=len(trials),
        dataset_size=examples / len(covered),
        dataset_size_min=min(sizes),
        dataset_size_max=max(sizes),
        energy_kwh_per_example=energy / examples,
        emissions_kg_per_example=emissions / examples,
        fpo_per_example=(
            sum(int(fpo_in[p]) for p in with_fpo) / fpo_examples if with_fpo else None
        ),
        energy_kwh_per_trial=energy / len(covered),
        energy_kwh=energy,
        note=note,
    )


def outcome(call: Any) -> Any:
    """What a call returns, or the error it raises (type and message)."""
    try:
        return call()
    except AnalysisError as e:
        return ("raises", type(e).__name__, str(e))


# ---------------------------------------------------------------------------------- tests
@settings(max_examples=150, deadline=None)
@given(studies())
def test_build_arranges_runs_as_the_loop_did(runs: list[RunRecord]) -> None:
    expected = outcome(lambda: reference_build(runs))
    got = outcome(lambda: RunForest.build(runs))
    if isinstance(expected, tuple):
        assert got == expected
        return
    assert {name: getattr(got, name) for name in expected} == expected


@settings(max_examples=100, deadline=None)
@given(studies(unique=False))
def test_build_names_the_first_bad_run_as_the_loop_did(runs: list[RunRecord]) -> None:
    for items in (runs, [*runs[:1], "not a run", *runs[1:]], [*runs, object()]):
        expected = outcome(lambda items=items: reference_build(items))
        got = outcome(lambda items=items: RunForest.build(items))
        if isinstance(expected, tuple):
            assert got == expected
        else:
            assert {name: getattr(got, name) for name in expected} == expected


def test_build_of_leaves_only_links_nothing() -> None:
    runs = [RunRecord(id=f"t{k}", name=f"t{k}") for k in range(5)]
    forest = RunForest.build(runs)
    assert forest.roots == forest.order == tuple(range(5))
    assert forest.children == ((),) * 5 and forest.virtual == (False,) * 5
    assert forest.kinds == ("nested",) * 5 and forest.inner_order == ()


@settings(max_examples=150, deadline=None)
@given(studies(), st.data())
def test_nested_sums_and_coverage_are_the_loops_float_for_float(runs, data) -> None:
    forest = outcome(lambda: RunForest.build(runs))
    if isinstance(forest, tuple):
        return  # a cycle
    for name, fpo in (("energy_kwh", False), ("emissions_kg", False), ("fpo", True)):
        values = [getattr(r, name) for r in runs]
        assert repr(forest.nested_sum(values, fpo=fpo)) == repr(
            reference_nested_sum(forest, values, fpo)
        )
    values = data.draw(st.lists(AMOUNTS, min_size=len(runs), max_size=len(runs)))
    assert repr(forest.nested_sum(values)) == repr(reference_nested_sum(forest, values, False))
    known = data.draw(st.lists(st.booleans(), min_size=len(runs), max_size=len(runs)))
    for fpo in (False, True):
        assert forest.covered(known, fpo=fpo) == reference_covered(forest, known, fpo)


@pytest.mark.parametrize("values", [[1.0, 2.0], [1, 2**80], [1.0, -0.0], [1.0, None], [math.nan]])
def test_nested_sum_of_leaves_only(values: list[Any]) -> None:
    """The leaves-only fast path (every amount positive) and the loop agree on the edges."""
    forest = RunForest.build([RunRecord(id=f"t{k}", name="t") for k in range(len(values))])
    inclusive, exclusive = forest.nested_sum(values)
    assert repr((inclusive, exclusive)) == repr(reference_nested_sum(forest, values, False))
    assert inclusive is not exclusive


@settings(max_examples=150, deadline=None)
@given(studies(), st.sampled_from([None, "accuracy"]))
def test_roles_are_the_loops(runs: list[RunRecord], metric: str | None) -> None:
    forest = outcome(lambda: RunForest.build(runs))
    if isinstance(forest, tuple):
        return
    study = resolve_roles(forest, metric=metric)
    role, inferred, owner, overridden = reference_roles(forest, metric)
    assert study.roles == role and study.inferred == inferred
    assert study.owners == owner and study.overridden == overridden


@settings(max_examples=150, deadline=None)
@given(studies(), st.sampled_from(["max", "min"]), st.sampled_from(["last", "best"]))
def test_best_trial_is_the_scans(runs: list[RunRecord], mode: str, reduce: str) -> None:
    forest = outcome(lambda: RunForest.build(runs))
    if isinstance(forest, tuple):
        return
    trials = study_trials(forest, metric="accuracy", mode=mode, reduce=reduce)  # type: ignore[arg-type]
    if trials.roles.positions("final"):
        return  # the role rule, unchanged
    assert choose_final(trials).position == reference_best_trial(trials)


def test_best_trial_ties_go_to_the_earliest_start_then_the_first() -> None:
    def trial(rid: str, score: float, started: float) -> RunRecord:
        return RunRecord(
            id=rid,
            name=rid,
            status="finished",
            started_at=started,
            metrics=(MetricPoint("accuracy", score),),
        )

    runs = [
        trial("a", 0.0, 2.0),
        trial("b", -0.0, 1.0),  # -0.0 == 0.0: tied, and started first
        trial("c", math.nan, 0.0),
        trial("d", -0.0, 1.0),  # tied again: the first in order wins
    ]
    for mode in ("max", "min"):
        chosen = choose_final(study_trials(runs, metric="accuracy", mode=mode))  # type: ignore[arg-type]
        assert chosen.position == 1


@settings(max_examples=100, deadline=None)
@given(studies())
def test_price_tag_edh_is_the_loops(runs: list[RunRecord]) -> None:
    forest = outcome(lambda: RunForest.build(runs))
    if isinstance(forest, tuple):
        return
    energy_in = forest.nested_sum([r.energy_kwh for r in runs])[0]
    co2_in = forest.nested_sum([r.emissions_kg for r in runs])[0]
    fpo_in = forest.nested_sum([r.fpo for r in runs], fpo=True)[0]
    trials = resolve_roles(forest).trials
    # a trial's FPO with its parts' is known as the price tag reads it (RunForest.known_sums)
    known = forest.fpo_sums.complete
    expected = reference_edh(forest, trials, energy_in, co2_in, fpo_in, known)
    assert repr(_edh(forest, trials, energy_in, co2_in, fpo_in, known)) == repr(expected)


@settings(max_examples=100, deadline=None)
@given(studies())
def test_price_tag_of_generated_studies_adds_up(runs: list[RunRecord]) -> None:
    """Whatever the nesting, the statuses and roles split the total, run for run."""
    tag = outcome(lambda: price_tag(runs))
    if isinstance(tag, tuple):
        assert "form a cycle" in tag[2]
        return
    assert sum(t.runs for t in tag.by_status.values()) == len(runs)
    assert sum(t.runs for t in tag.by_role.values()) == len(runs)
    assert sum(t.fpo for t in tag.by_status.values()) == tag.total.fpo
    assert tag.studies == tuple(sorted({r.study for r in runs}))


def test_a_reused_workers_runs_find_their_parent_without_comparing_every_pair():
    """2,000 searches one after another in one driver (a sweep each), their 20 trials each in
    two reused worker processes that name the first sweep as their parent: each trial reads
    under its own search's sweep (each stale trial compared with
    every run of the driver: 5 s of CPU under load)."""

    runs, now = [], 0.0
    for s in range(2_000):
        sweep = RunRecord(
            id=f"s{s:06d}", name="search", study="x", status="finished", started_at=now,
            ended_at=now + 20.5, host="h", provenance={"writer": "driver"},
        )  # fmt: skip
        runs.append(sweep)
        for k in range(20):
            now += 1.0
            runs.append(
                RunRecord(
                    id=f"t{s:06d}{k:03d}",
                    name="trial",
                    study="x",
                    status="finished",
                    started_at=now,
                    ended_at=now + 0.5,
                    parent_id="s000000",
                    host="h",
                    provenance={"writer": f"worker-{k % 2}"},
                    params={"k": k},
                )  # fmt: skip
            )
        now += 1.0
    forest = RunForest.build(runs)  # its CPU time: benchmarks/bench_analysis.py (< 2 s)
    parents = [None if p is None else forest.runs[p].id for p in forest.parents]
    assert parents == [None if r.name == "search" else f"s{r.id[1:7]}" for r in runs]
    (note,) = forest.notes
    assert note.startswith("39980 runs of a reused worker")
    # the note names a few runs, not the 1,999 sweeps (20,000 characters in the report)
    assert "read as children of run s000001, s000002, s000003 and 1,996 more, " in note
    assert len(note) < 500
