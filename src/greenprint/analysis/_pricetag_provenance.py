"""Where a price tag's energy figures came from: :class:`ProvenanceSummary`'s sums.

The energy the total sums (the top-level runs', and :func:`_counted_apart`: runs counted beside
them) split by the provenance of each run's CPU, GPU and RAM components (:func:`_plan`,
:func:`_source_kind`): measured by a hardware counter, estimated, or unknown; what a run
counts beyond its own record from the children inside it takes their provenance
(:func:`_lifted_mix`); and the distinct sources, grid intensities and PUE of the runs
(:func:`_provenance`). :func:`~greenprint.analysis._pricetag.price_tag` calls
:func:`_provenance`.
"""

from __future__ import annotations

from typing import Any

from greenprint._provenance import Provenance
from greenprint._records import RunRecord
from greenprint.analysis._common import RunForest
from greenprint.analysis._pricetag_model import ProvenanceSummary
from greenprint.analysis._pricetag_sums import _with_descendants

_COMPONENTS = ("cpu", "gpu", "ram")


_MEASURED, _ESTIMATED, _UNKNOWN, _ABSENT = 0, 1, 2, 3


_ALL_MEASURED = (_MEASURED, _MEASURED, _MEASURED)


def _plan(run: RunRecord) -> tuple[int, int, int]:
    """The kind of the run's CPU, GPU and RAM energy (``_ABSENT`` where it has none)."""
    kinds = [
        _ABSENT if kwh is None else _source_kind(run.provenance.get(component))
        for component, kwh in zip(
            _COMPONENTS, (run.energy_cpu_kwh, run.energy_gpu_kwh, run.energy_ram_kwh), strict=True
        )
    ]
    return (kinds[0], kinds[1], kinds[2])


def _source_kind(source: str | None) -> int:
    """Whether a component's provenance is a measurement, an estimate or unknown (``None``)."""
    if source is None:
        return _UNKNOWN
    return _ESTIMATED if Provenance.parse(source).is_estimate else _MEASURED


def _lifted_mix(
    forest: RunForest,
    position: int,
    own: float,
    parts: float,
    energy_in: list[Any],
    energy_far: list[Any] | None,
) -> list[float]:
    """The measured, estimated and unknown kWh of what a run counts from its children.

    A run counts the larger of what it recorded and what the children inside it spent (see
    :meth:`~greenprint.analysis._common.RunForest.nested_sum`); what its children's sum adds
    beyond its own record, ``own`` less the larger of its ``energy_kwh`` and its components'
    ``parts``, is split as the children's energy is (each child's own components, and what
    its children add to it likewise). Nothing when its record covers ``own``.
    """
    run = forest.runs[position]
    recorded = run.energy_kwh if run.energy_kwh is not None else 0.0
    lifted = own - max(float(recorded), parts)
    mix = [0.0, 0.0, 0.0]
    if not lifted > 0:
        return mix
    for child in forest.children[position]:
        if forest.adds(child):  # counted on its own (another host's run)
            continue
        item = forest.runs[child]
        kwh_of = (item.energy_cpu_kwh, item.energy_gpu_kwh, item.energy_ram_kwh)
        mine = 0.0
        for kind, kwh in zip(_plan(item), kwh_of, strict=True):
            if kind != _ABSENT and kwh is not None:
                mix[kind] += kwh
                mine += kwh
        inner = float(energy_in[child]) - float(forest.outside(child, energy_in, energy_far))
        if inner > mine and forest.children[child]:
            below = _lifted_mix(forest, child, inner, mine, energy_in, energy_far)
            mix = [a + b for a, b in zip(mix, below, strict=True)]
            mine += sum(below)
        mix[_UNKNOWN] += max(inner - mine, 0.0)
    spent = sum(mix)
    if not spent > 0:
        return [0.0, 0.0, 0.0]
    return [lifted * kwh / spent for kwh in mix]


#: Relative difference under which a run's recorded energy and the sum of its components are
#: the same figure rounded two ways, not energy of unknown origin
_SUM_ROUNDING = 1e-9


def _provenance(
    forest: RunForest, energy_in: list[Any], energy_far: list[Any] | None
) -> ProvenanceSummary:
    measured = estimated = unknown = 0.0
    runs = forest.runs
    children = forest.children
    counted = [*forest.roots, *_counted_apart(forest)]
    # A study's runs share a handful of provenance dictionaries (the ledger decodes each
    # distinct text once): the kinds of a run's components are looked up once per dictionary
    # and set of components present. The sums are taken run by run, component by component,
    # in the same order as always, so every figure is the same float.
    plans: dict[tuple[int, bool, bool, bool], tuple[int, int, int]] = {}
    lifted_in: list[int] = []  # runs whose share holds their children's energy
    for position in counted:
        run = runs[position]
        cpu, gpu, ram = run.energy_cpu_kwh, run.energy_gpu_kwh, run.energy_ram_kwh
        key = (id(run.provenance), cpu is None, gpu is None, ram is None)
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = _plan(run)
        parts = 0.0
        if plan == _ALL_MEASURED and cpu is not None and gpu is not None and ram is not None:
            measured += cpu  # the common case: three measured components
            measured += gpu
            measured += ram
            parts += cpu
            parts += gpu
            parts += ram
        else:
            for kind, kwh in zip(plan, (cpu, gpu, ram), strict=True):
                if kind == _ABSENT or kwh is None:
                    continue
                if kind == _UNKNOWN:
                    unknown += kwh
                elif kind == _ESTIMATED:
                    estimated += kwh
                else:
                    measured += kwh
                parts += kwh
        added = forest.outside(position, energy_in, energy_far) if children[position] else 0
        own = float(energy_in[position]) - float(added)
        if parts < own <= parts + _SUM_ROUNDING * own:
            # the recorded total and the sum of its components round differently (1.7e-21 kWh
            # of the demo's 21.8 mWh read as of unknown origin): no energy is missing there
            own = parts
        if own > parts and children[position]:
            # a run that measured less than its children spent (killed before its first
            # flush...) counts their sum: that energy has their provenance, not unknown
            lifted = _lifted_mix(forest, position, own, parts, energy_in, energy_far)
            if sum(lifted) > 0:
                lifted_in.append(position)
            measured += lifted[_MEASURED]
            estimated += lifted[_ESTIMATED]
            unknown += lifted[_UNKNOWN]
            parts += sum(lifted)
        unknown += max(own - parts, 0.0)
    sources: dict[str, set[str]] = {}
    intensity: set[str] = set()
    pue_sources: set[str] = set()
    seen: set[tuple[int, str]] = set()  # (id of a provenance dict, intensity source) done
    for run in runs:
        provenance = run.provenance
        done = (id(provenance), run.intensity_source)
        if done in seen:  # the same dictionary and source add nothing new to the sets
            continue
        seen.add(done)
        for component in _COMPONENTS:
            if component in provenance:
                sources.setdefault(component, set()).add(provenance[component])
        source = provenance.get("intensity") or run.intensity_source
        if source:
            intensity.add(source)
        if "pue" in provenance:
            pue_sources.add(provenance["pue"])
    # the sources of the runs the shares are made of (the list beside the share says the same
    # runs' meters: a trial's own counter, not the estimates of the fits inside it)
    counted_sources: dict[str, set[str]] = {}
    if len(counted) < len(runs):
        for position in {
            *counted,
            *(p for q in lifted_in for p in _with_descendants(forest, q)),
        }:
            provenance = runs[position].provenance
            for component in _COMPONENTS:
                if component in provenance:
                    counted_sources.setdefault(component, set()).add(provenance[component])
    all_sources = {k: tuple(sorted(v)) for k, v in sorted(sources.items())}
    mine = {k: tuple(sorted(v)) for k, v in sorted(counted_sources.items())}
    return ProvenanceSummary(
        measured_kwh=measured,
        estimated_kwh=estimated,
        unknown_kwh=unknown,
        counted_sources=None if len(counted) == len(runs) or mine == all_sources else mine,
        sources=all_sources,
        intensity_sources=tuple(sorted(intensity)),
        pue_values=tuple(sorted({float(r.pue) for r in forest.runs})),
        pue_sources=tuple(sorted(pue_sources)),
    )


def _counted_apart(forest: RunForest) -> list[int]:
    """The runs besides the roots whose energy is in no other counted run's own figure.

    A run that adds to its parent (:meth:`~RunForest.adds`) is outside that parent's
    measurement: counted on its own when the parent is counted (a root, or counted in turn) or
    when it adds far (:meth:`~RunForest.adds_far`: outside every run above it, another host's
    run under a trial in a sweep's process). A rank its job linked under its training's rank 0
    inside a sweep's process tree is in the sweep's measurement, its components with it: not
    counted again. The roots' and these runs' own figures (:meth:`~RunForest.outside` taken
    off) sum to the total. (:attr:`~RunForest.adds_to_the_total` less the roots.)
    """
    if "remote" not in forest.kinds:  # no run adds energy to its parent
        return []
    parents = forest.parents
    return [
        pos
        for pos, adding in enumerate(forest.adds_to_the_total)
        if adding and parents[pos] is not None
    ]
