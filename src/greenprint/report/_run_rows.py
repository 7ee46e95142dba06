"""The runs table's rows.

One :class:`~greenprint.report._model.RunRow` per run, with its energy's source, its FPO with
its children's and its efficiency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._format import known_duration
from greenprint._frozen import slot_constructor
from greenprint._metric_choice import NO_SCORE_STATUSES
from greenprint._provenance import (
    FPO_ASSUMPTIONS_KEY,
    FPO_KEY,
    Provenance,
    fpo_assumptions_of,
    is_fpo_lower_bound,
    merge_fpo_assumptions,
)
from greenprint._records import RunRecord
from greenprint.analysis import StudyTrials, score_per_cost
from greenprint.analysis._common import (
    RunForest,
)
from greenprint.analysis._roles import TrialScore
from greenprint.carbon._intensity import applied_intensity
from greenprint.report._model import NOTHING_ASSUMED, RunRow

if TYPE_CHECKING:  # pragma: no cover
    pass


__all__ = ["ROW_FIELD_ORDER"]


#: The score of a run of those statuses in the runs table: none.
_NO_SCORE_OF_RUN = TrialScore(math.nan, "none")


def _energy_source(run: RunRecord, memo: dict[tuple[Any, ...], str]) -> str:
    # by the provenance dictionary's id (a study's runs share a few: the ledger decodes each
    # distinct text once), then by its content
    key = (
        id(run.provenance),
        run.energy_cpu_kwh is None,
        run.energy_gpu_kwh is None,
        run.energy_ram_kwh is None,
    )
    found = memo.get(key)
    if found is None:
        content = (
            key[1:],
            run.provenance.get("cpu"),
            run.provenance.get("gpu"),
            run.provenance.get("ram"),
        )
        found = memo.get(content)
        if found is None:
            found = memo[content] = _energy_source_of(run)
        memo[key] = found
    return found


def _energy_source_of(run: RunRecord) -> str:
    kinds = set()
    for component, kwh in (
        ("cpu", run.energy_cpu_kwh),
        ("gpu", run.energy_gpu_kwh),
        ("ram", run.energy_ram_kwh),
    ):
        if kwh is None:
            continue
        source = run.provenance.get(component)
        if source is None:
            kinds.add("unknown")
        else:
            kinds.add("estimated" if Provenance.parse(source).is_estimate else "measured")
    if not kinds:
        return "unknown"
    return kinds.pop() if len(kinds) == 1 else "mixed"


_INF = math.inf
#: FPO below this divide to a finite GFLOP (every int FPO that is not astronomically large).
_BIG_FPO = 10**300


#: ``RunRow(*values)`` at half the cost, every field given (``_frozen.slot_constructor``).
_make_row = slot_constructor(RunRow)
#: The order ``_rows`` gives RunRow's fields in (positionally: keywords cost 0.1 s per 100,000
#: rows); a test checks that it is the dataclass's.
ROW_FIELD_ORDER = (
    "id",
    "name",
    "parent_id",
    "depth",
    "is_trial",
    "status",
    "score",
    "started_at",
    "duration_s",
    "energy_kwh",
    "emissions_kg",
    "fpo",
    "dataset_size",
    "param_count",
    "params",
    "energy_source",
    "pue",
    "intensity_g_per_kwh",
    "intensity_source",
    "score_per_kwh",
    "score_per_gflop",
    "error",
    "is_final",
    "role",
    "role_inferred",
    "score_source",
    "fpo_lower_bound",
    "job_id",
    "node_rank",
    "local_rank",
    "node_meter",
    "contained",
    "fpo_assumptions",
)


def _fpo_with_children(forest: RunForest) -> dict[int, int]:
    """Position -> FPO of each run with children, where the price tag counts more than its own.

    A run's FPO as the price tag counts them (:meth:`~greenprint.analysis._common.RunForest.
    known_sums`), when they are known: at least its nested children's sum (a sweep container
    that counted none of its own; a trial that counted 1 GFPO of its own while its two folds
    counted 1 GFPO each: its row read 1 GFPO and 0.9 per GFLOP, where the price tag counted 2),
    plus what children outside it add (workers in other processes). The root rows then add up
    to the price tag's FPO.
    """
    if not forest.inner_order:
        return {}
    fpos = forest.column("fpo")
    sums = forest.fpo_sums
    return {
        position: int(sums.inclusive[position])
        for position in forest.inner_order
        if sums.complete[position] and sums.inclusive[position] != fpos[position]
    }


def _bounded_within(forest: RunForest, positions: Collection[int]) -> set[int]:
    """Of ``positions`` (rows showing FPO with their children's), those that are a lower bound.

    A run inside them, or they, counted ops with no rule: their row reads "at least", as
    their children's rows do.
    """
    cache: dict[int, bool] = {}  # id(provenance) -> a lower bound (runs share provenances)

    def own(p: int) -> bool:
        run = forest.runs[p]
        if run.fpo is None or FPO_KEY not in run.provenance:
            return False
        key = id(run.provenance)
        found = cache.get(key)
        if found is None:
            found = cache[key] = is_fpo_lower_bound(run.provenance)
        return found

    children = forest.children
    bounded: dict[int, bool] = {}
    for p in forest.inner_order:  # children before parents
        bounded[p] = own(p) or any(bounded[c] if c in bounded else own(c) for c in children[p])
    return {p for p in positions if bounded.get(p)}


def _assumed_within(
    forest: RunForest, positions: Collection[int], own: Callable[[RunRecord], Mapping[str, str]]
) -> dict[int, Mapping[str, str]]:
    """Of ``positions`` (rows showing FPO with their children's), what those FPO assumed.

    Their own counts' assumptions merged with those of every run inside them
    (:func:`~greenprint._provenance.merge_fpo_assumptions`: ``mkl`` and ``cufft`` read
    ``cufft+mkl``); a position none of them assumed anything is left out. ``own`` gives a
    run's own (:data:`~greenprint.report._model.NOTHING_ASSUMED` when none).
    """
    runs, children = forest.runs, forest.children
    merged: dict[int, Mapping[str, str]] = {}
    for p in forest.inner_order:  # children before parents
        parts = [merged[c] if c in merged else own(runs[c]) for c in children[p]]
        parts = [part for part in (own(runs[p]), *parts) if part]
        if parts:
            merged[p] = parts[0] if len(parts) == 1 else merge_fpo_assumptions(*parts)
    return {p: merged[p] for p in positions if p in merged}


def _rows(trials: StudyTrials, final_id: str | None) -> tuple[RunRow, ...]:
    forest = trials.forest
    roles = trials.roles
    depth = [0] * len(forest.runs)
    for position in reversed(forest.order):  # parents before children
        for child in forest.children[position]:
            depth[child] = depth[position] + 1
    rows = []
    sources: dict[tuple[Any, ...], str] = {}
    index = forest.index
    role_of, inferred, scores = roles.roles, roles.inferred, trials.scores
    row = _make_row
    counted_by_children = _fpo_with_children(forest)
    # a row showing its children's FPO reads "at least" when one of them counted in part
    bounded = _bounded_within(forest, counted_by_children) if counted_by_children else set()
    # what a run's FPO assumed (an FFT library), read once per distinct provenance (a study's
    # runs share a few); a row showing its children's FPO merges theirs
    assumed_by: dict[int, Mapping[str, str]] = {}

    def assumed(run: RunRecord) -> Mapping[str, str]:
        provenance = run.provenance
        if run.fpo is None or FPO_ASSUMPTIONS_KEY not in provenance:
            return NOTHING_ASSUMED
        found = assumed_by.get(id(provenance))
        if found is None:
            found = assumed_by[id(provenance)] = fpo_assumptions_of(provenance) or NOTHING_ASSUMED
        return found

    assumed_within = (
        _assumed_within(forest, counted_by_children, assumed) if counted_by_children else {}
    )
    lower_is_better = trials.mode == "min"
    runs, parents = forest.runs, forest.parents
    adding = forest.adds_to_the_total
    statuses = forest.column("status")  # a job's head: its job's (another node failed)
    for position, run in enumerate(runs):
        scored = scores[position]
        status = statuses[position]
        if status in NO_SCORE_STATUSES and scored.source != "none":
            # a failed, interrupted or lost run produced no model: what it logged before it
            # ended is no score (a killed trial's last intermediate value read as its score,
            # while EVP, the best trials and the final run's choice left it out)
            scored = _NO_SCORE_OF_RUN
        score = scored.score
        known = None if score != score else score  # NaN: no score
        fpo = run.fpo
        if counted_by_children:
            fpo = counted_by_children.get(position, fpo)
        # a run with no meter (meters=[]) recorded 0.0 of both: unknown (NaN: null in JSON)
        recorded = run.energy_kwh != 0.0 or run.energy_recorded
        energy_kwh = run.energy_kwh if recorded else math.nan
        emissions_kg = run.emissions_kg if recorded else math.nan
        provenance = run.provenance
        parent_id = run.parent_id
        linked = parents[position]
        if linked is not None:  # a job's node or rank, under its counter; a reused worker's
            parent_id = runs[linked].id  # run, under the run open when it started
        if parent_id is not None and parent_id not in index:
            parent_id = None  # its parent is not in the study: a root here
        source = sources.get(
            (
                id(provenance),
                run.energy_cpu_kwh is None,
                run.energy_gpu_kwh is None,
                run.energy_ram_kwh is None,
            )
        ) or _energy_source(run, sources)
        # score_per_cost, without a call in the common case (finite score, positive energy);
        # a score that is better lower (a loss) per kWh or per GFLOP means nothing: None
        if known is None or lower_is_better:
            per_kwh = per_gflop = None
        else:
            finite = 0.0 <= known < _INF  # a negative score per cost is no efficiency
            if finite and type(energy_kwh) is float and 0.0 < energy_kwh < _INF:
                per_kwh = known / energy_kwh
            else:
                per_kwh = score_per_cost(known, energy_kwh)
            if fpo is None:
                per_gflop = None
            elif finite and type(fpo) is int and 0 < fpo < _BIG_FPO:
                per_gflop = known / (fpo / 1e9)
            else:
                per_gflop = score_per_cost(known, fpo / 1e9)
        # an hourly series' intensity: its energy-weighted mean over the run (unpacked here:
        # a call with *applied_intensity(...) in it cost 0.025 s per 100,000 rows more)
        intensity, intensity_source = applied_intensity(
            energy_kwh=energy_kwh,
            pue=run.pue,
            emissions_kg=emissions_kg,
            recorded_g_per_kwh=run.intensity_g_per_kwh,
            source=provenance.get("intensity") or run.intensity_source,
        )
        rows.append(
            row(  # in ROW_FIELD_ORDER
                run.id,  # id
                run.name,  # name
                parent_id,  # parent_id
                depth[position],  # depth
                role_of[position] == "trial",  # is_trial
                status,  # status
                known,  # score
                run.started_at,  # started_at
                known_duration(run.duration_s),  # duration_s (None: it recorded none)
                energy_kwh,  # energy_kwh
                emissions_kg,  # emissions_kg (NaN: unknown, no meter)
                fpo,  # fpo
                run.dataset_size,  # dataset_size
                run.param_count,  # param_count
                run.params,  # params
                source,  # energy_source
                run.pue,  # pue
                intensity,  # intensity_g_per_kwh
                intensity_source,  # intensity_source
                per_kwh,  # score_per_kwh
                per_gflop,  # score_per_gflop
                run.error,  # error
                run.id == final_id,  # is_final
                role_of[position],  # role
                inferred[position],  # role_inferred
                scored.source,  # score_source
                # its FPO counted with ops it could not count in full: "at least"
                (run.fpo is not None and FPO_KEY in provenance and is_fpo_lower_bound(provenance))
                or position in bounded,
                run.job_id,  # job_id
                run.node_rank,  # node_rank
                run.local_rank,  # local_rank
                run.node_meter,  # node_meter
                # false where its cost adds to the price tag's (another host, another node
                # of its job, a rank its job linked under a root rank 0); true inside a
                # measurement above it (nested, a rank under its node's meter, a rank its
                # job linked under its rank 0 inside a sweep's process tree)
                None if parent_id is None else not adding[position],  # contained
                # what its FPO assumed (as fpo: with its children's when fpo is their sum)
                assumed_within.get(position)
                or (
                    assumed(run)
                    if run.fpo is not None and FPO_ASSUMPTIONS_KEY in provenance
                    else NOTHING_ASSUMED
                ),
            )
        )
    return tuple(rows)
