"""How a price tag sums a group of runs: by status, by role, the final run's, E·D·H.

The positions of each status or role (:func:`_positions_of`; a part's cost under its run's
status or its own, whichever ended worse: :func:`_owner_statuses`), the values at a group's
positions taken in one pass (:func:`_picker`), when a group's 0 FPO or 0 s means unknown
(:func:`_knows_fpo`, :func:`_unknown_if_none_knows`), a run with every run inside it
(:func:`_with_descendants`), a share (:func:`_ratio`) and Green AI's E·D·H over the trials
(:func:`_edh`). :func:`~greenprint.analysis._pricetag.price_tag` sums with them, in position
order, so every total is the same float.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Literal

from greenprint._forest_sums import KnownSums
from greenprint._jobs import job_status
from greenprint.analysis._common import RunForest
from greenprint.analysis._pricetag_model import EDH, CostTotals


def _owner_statuses(statuses: Sequence[str], owners: Sequence[int]) -> list[str]:
    """The status each run's cost counts under in the price tag's table by status.

    A run's own; a part's (its owner elsewhere): its owner's or its own, whichever ended worse
    (:func:`greenprint._jobs.job_status`'s order: lost, failed, interrupted, running, pruned,
    finished).
    """
    worse: dict[tuple[str, str], str] = {}
    out = []
    for p, o in enumerate(owners):
        own = statuses[p]
        if o != p:
            pair = (statuses[o], own)
            own = worse.get(pair) or worse.setdefault(pair, job_status(pair))
        out.append(own)
    return out


def _knows_fpo(forest: RunForest) -> list[bool]:
    """For each run, whether its own part of the FPO is a known amount.

    It is when the run counted its FPO (0 included), lies inside a run that counted its own,
    or is a container whose children inside it all know theirs. A run that counted none (one
    of the ``fpo_unknown``) or a container over children whose FPO is unknown (counted under
    their own group) knows nothing: its 0 is unknown.
    """
    own = [v is not None for v in forest.column("fpo")]
    covered = forest.covered(own, fpo=True)
    complete = forest.fpo_sums.complete
    return [o or c or k for o, c, k in zip(own, covered, complete, strict=True)]


def _counts_fpo(forest: RunForest) -> list[bool]:
    """For each run, whether its own part of the FPO is a count.

    It is when the run counted its FPO (0 included) or lies inside a run that counted its own.
    A container that counted none over children that know theirs (a sweep over trials that
    counted theirs) is known (:func:`_knows_fpo`) but counted nothing: its own part is 0 by
    the rule that its FPO are the children's, not by a count.
    """
    own = [v is not None for v in forest.column("fpo")]
    covered = forest.covered(own, fpo=True)
    return [o or c for o, c in zip(own, covered, strict=True)]


def _knows(
    forest: RunForest,
    sums: KnownSums,
    values: Sequence[Any],
    *,
    own: Sequence[bool] | None = None,
) -> list[bool]:
    """For each run, whether its own part of an amount (its run time) is a known amount.

    As :func:`_knows_fpo`, of ``values`` summed into ``sums`` (``forest.known_sums``): its own
    is known (above 0, or ``own`` true: a run's energy recorded), it lies inside a run whose
    own is, or its sum is complete.
    """
    if own is None:
        own = [v is not None and v > 0 for v in values]
    covered = forest.covered(own)
    return [o or c or k for o, c, k in zip(own, covered, sums.complete, strict=True)]


def _unknown_if_none_knows(
    cost: CostTotals,
    positions: Sequence[int],
    knows: list[bool],
    value: Literal["fpo", "duration_s", "energy_kwh"],
) -> CostTotals:
    """``cost`` marked unknown in ``value`` when its 0 means unknown.

    ``fpo_known``, ``duration_known`` or ``energy_known`` (energy and CO2-eq) set false when
    no run of the group (``positions``) ``knows`` its own.
    """
    known = {"fpo": "fpo_known", "duration_s": "duration_known"}.get(value, "energy_known")
    if getattr(cost, value) == 0 and getattr(cost, known) and not any(knows[p] for p in positions):
        return replace(cost, **{known: False})
    return cost


def _picker(positions: Sequence[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A function that takes the values at ``positions`` (in that order) from a sequence."""
    if isinstance(positions, range) and positions == range(positions.stop):
        return lambda values: values
    if len(positions) == 1:
        only = positions[0]
        return lambda values: (values[only],)
    if not positions:
        return lambda values: ()
    return operator.itemgetter(*positions)


def _positions_of(keys: Sequence[str]) -> dict[str, list[int]]:
    """Key -> the positions that have it, in order."""
    found: dict[str, list[int]] = {}
    for position, key in enumerate(keys):
        found.setdefault(key, []).append(position)
    return found


def _ratio(part: float, whole: float) -> float | None:
    return float(part) / float(whole) if whole > 0 else None


def _edh(
    forest: RunForest,
    trial_positions: tuple[int, ...],
    energy_in: list[Any],
    co2_in: list[Any],
    fpo_in: list[Any],
    fpo_known: list[bool],
    energy_known: list[bool] | None = None,
) -> EDH | None:
    """E·D·H over the trials (their parts' cost included); ``None`` if none has a size.

    ``fpo_known``: whether each run's FPO with its parts' is known (``KnownSums.complete``);
    ``energy_known`` likewise of its energy (``None``: every run recorded its own). A trial
    whose energy is unknown (no meter) is no 0 kWh: E x D x H is over the trials with a size
    whose energy is known, a note saying how many are left out; when none's is, its energy
    figures are NaN (null) over the trials with a size.
    """
    sizes_of = forest.column("dataset_size")
    covered = [p for p in trial_positions if (sizes_of[p] or 0) > 0]
    if not covered:
        return None
    unmetered = 0  # trials with a size whose energy is unknown (no meter): not in E x D x H
    if energy_known is not None and energy_known.count(False):
        metered = [p for p in covered if energy_known[p]]
        unmetered = len(covered) - len(metered)
        covered = metered or covered  # none known: D and H of them all, E unknown
    trials = trial_positions
    pick = _picker(covered)  # the values at ``covered``, in order (sums as before)
    sizes = list(map(int, pick(sizes_of)))
    examples = float(sum(sizes))
    unknown = unmetered == len(covered)  # no trial with a size recorded its energy
    energy = math.nan if unknown else float(sum(pick(energy_in)))
    emissions = math.nan if unknown else float(sum(pick(co2_in)))
    if fpo_known.count(False):
        with_fpo = [p for p in covered if fpo_known[p]]
        fpo_examples = float(sum(int(sizes_of[p]) for p in with_fpo))
    else:  # every run knows its FPO
        with_fpo, fpo_examples = covered, examples
    missing = len(trials) - len(covered) - (0 if unknown else unmetered)
    note = None
    if missing:
        have, are = ("has", "is") if missing == 1 else ("have", "are")  # "1 of 4 trials has"
        note = (
            f"{missing} of {len(trials)} trials {have} no dataset_size and {are} not in E x D x H"
        )
    if unmetered:  # said, as the trials without a size are
        have, are = ("has", "is") if unmetered == 1 else ("have", "are")
        said = f"{unmetered} of {len(trials)} trials {have} a dataset_size but no energy meter" + (
            "" if unknown else f" and {are} not in E x D x H"
        )
        note = f"{note}; {said}" if note else said
    return EDH(
        trials=len(covered),
        trials_total=len(trials),
        dataset_size=examples / len(covered),
        dataset_size_min=min(sizes),
        dataset_size_max=max(sizes),
        energy_kwh_per_example=energy / examples,
        emissions_kg_per_example=emissions / examples,
        fpo_per_example=(
            sum(map(int, _picker(with_fpo)(fpo_in))) / fpo_examples if with_fpo else None
        ),
        energy_kwh_per_trial=energy / len(covered),
        energy_kwh=energy,
        note=note,
    )


def _with_descendants(forest: RunForest, position: int) -> list[int]:
    """``position`` and the positions of every run inside it."""
    found, stack = [], [position]
    while stack:
        p = stack.pop()
        found.append(p)
        stack.extend(forest.children[p])
    return found
