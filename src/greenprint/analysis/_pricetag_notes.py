"""The notes a price tag writes beside its figures, where they need a caveat.

Lost runs that recorded nothing (:func:`_unflushed_note`: in no total, or inside a run whose
measurement went on after them); amounts that are not finite numbers, and concurrent children
whose energy and CO2-eq were shared out of their parent's reading (:func:`_shared_notes`:
scaled, floored, threads of one process counted once, top-level runs in threads); and runs that
ran on after the run they are part of ended (:func:`_beyond_note`). Each note is one sentence;
:func:`~greenprint.analysis._pricetag.price_tag` says when it writes which.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from greenprint._forest_beyond import BeyondSums
from greenprint._format import count_of, format_emissions, format_energy
from greenprint.analysis._common import RunForest, SharedSums, ShareOut


def _fit(amount: float, unit: str, *, of: float | None = None) -> str:
    """An amount said in a note in the unit that fits it, as the report writes every figure.

    Args:
        amount: in ``unit``: ``"kWh"`` (an energy) or ``"kg"`` (CO2-eq).
        unit: the amount's unit as the ledger holds it.
        of: the amount it is said beside (same unit), whose unit it takes when it is the
            larger: ``"429 µWh in all, count 216 µWh"``, ``"206 µg to 104 µg"`` (a larger
            amount reads in its own: ``"500 Wh, against 1.3 kWh"``).

    Returns:
        ``4.29e-07`` kWh as ``"429 µWh"``, ``2.06e-07`` kg as ``"206 µg"`` (the note says
        CO2-eq already), never ``"4.29e-07 kWh"``.
    """
    if of is not None and not abs(amount) <= abs(of):
        of = None  # in the smaller one's unit, a larger amount could read "1.3e+03 Wh"
    if unit == "kWh":
        return format_energy(amount, unit_of=of)
    return format_emissions(amount, unit_of=of).removesuffix(" CO2-eq")


#: What a run of each scope read, in the note on a lost run inside its measurement.
_READ = {"process": "measured its own process tree and ", "machine": "measured the machine and "}


def _unflushed_note(forest: RunForest) -> list[str]:
    """Notes for the lost runs that recorded nothing: killed before their first flush.

    Such a run (no energy, no run time, and no child in the set but the ranks its node meter
    read, whose own shares of the machine do not make up the rest of it) reads 0 of its own,
    but it ran.
    Inside a run whose measurement went on after it (an ancestor that ended, not lost or
    running, whose reading contains it: the process tree ``greenprint run`` or a parent
    ``gp.track`` reads), its cost is in that run's, so in the totals; else up to one flush
    interval of it is missing from them (the cost a kill -9 loses).
    """
    empty = [
        pos
        for pos, run in enumerate(forest.runs)
        if run.status == "lost"
        and all(forest.kinds[child] == "peer" for child in forest.children[pos])
        and run.energy_kwh == 0.0
        and run.duration_s == 0.0
    ]
    if not empty:
        return []
    runs = forest.runs
    missing: list[int] = []
    inside: dict[int, int] = {}  # lost run -> the run whose measurement holds it
    for pos in empty:
        holder = _measured_on(forest, pos)
        if holder is None:
            missing.append(pos)
        else:
            inside[pos] = holder
    notes = []
    if missing:
        longest = max(runs[p].flush_interval_s for p in missing)
        ids = ", ".join(runs[p].id[:8] for p in missing)
        its, it = ("its", "it") if len(missing) == 1 else ("their", "each")
        notes.append(
            f"{count_of(len(missing), 'lost run')} ({ids}) recorded no cost (killed before "
            f"{its} first flush): up to one flush interval ({longest:g} s) of {it} is in no total"
        )
    if inside:
        ids = ", ".join(runs[p].id[:8] for p in inside)
        holders = list(dict.fromkeys(inside.values()))
        what = ", ".join(f"{runs[h].id[:8]} ({runs[h].name!r})" for h in holders[:3])
        what += ", ..." if len(holders) > 3 else ""
        scopes = {runs[h].scope for h in holders}
        read = _READ.get(scopes.pop(), "") if len(scopes) == 1 else ""
        its, it, they = ("its", "it", "it") if len(inside) == 1 else ("their", "them", "they")
        run_s = "run" if len(holders) == 1 else "runs"
        notes.append(
            f"{count_of(len(inside), 'lost run')} ({ids}) recorded no cost (killed before "
            f"{its} first flush), but {its} cost is in the totals: {they} ran inside {run_s} "
            f"{what}, which {read}went on after {it}"
        )
    return notes


def _measured_on(forest: RunForest, pos: int) -> int | None:
    """The nearest ancestor of run ``pos`` whose measurement contains it and went on after it.

    Up the links inside their parent's reading (not a child that adds to its parent:
    :meth:`RunForest.adds`), the first that ended (not ``lost`` or ``running``, whose reading
    stopped at their last flush too) after run ``pos`` started: one that had ended before it
    started read none of it; ``None`` if none.
    """
    runs, parents = forest.runs, forest.parents
    started = runs[pos].started_at
    at = pos
    while not forest.adds(at) and (parent := parents[at]) is not None:
        holder = runs[parent]
        if holder.status not in ("lost", "running") and not (
            holder.ended_at is not None and holder.ended_at <= started
        ):
            return parent
        at = parent
    return None


#: A parent's concurrent children are noted as scaled when they measured more than this
#: factor of its amount (below it, the scaling only corrects float rounding).
_SCALED_NOTE_ABOVE = 1 + 1e-9


def _shared_notes(
    forest: RunForest, roles: Sequence[str], energy: SharedSums, co2: SharedSums
) -> list[str]:
    """Notes on amounts that are not finite numbers, and on concurrent children scaled.

    Parents whose concurrent children's energy or CO2-eq were scaled get one note, or one per
    cost when the two differ.

    Parents that measured less than the least their children spent (floored: see
    :meth:`~greenprint.analysis._common.RunForest.shared_sums`) get a note of their own.

    Children that read one process at the same time (threads: each stretch of their time
    counted once) get one note for all their parents, energy and CO2-eq together when both
    were counted again; parents that measured less energy than those children count (their
    own part would be negative: it is 0) get one more. Top-level runs that did so (threads
    with no run around them) get a note of their own.
    """
    notes = [
        _nonfinite_note(forest, sums.nonfinite, what, unit)
        for sums, what, unit in ((energy, "an energy", "kWh"), (co2, "a CO2-eq", "kg"))
        if sums.nonfinite
    ]

    def beyond_rounding(sums: SharedSums, floored: bool) -> dict[int, ShareOut]:
        return {
            p: share
            for p, share in sums.shares.items()
            if share.floored == floored and share.measured > share.shared * _SCALED_NOTE_ABOVE
        }

    for floored in (False, True):
        scaled_energy, scaled_co2 = beyond_rounding(energy, floored), beyond_rounding(co2, floored)
        if scaled_energy and scaled_energy.keys() == scaled_co2.keys():  # usual: one note
            notes.append(
                _shared_note(forest, roles, scaled_energy, "energies", "kWh")
                + "; their CO2-eq likewise, "
                + _amounts(scaled_co2, "kg")
            )
            continue
        if scaled_energy:
            notes.append(_shared_note(forest, roles, scaled_energy, "energies", "kWh"))
        if scaled_co2:
            notes.append(_shared_note(forest, roles, scaled_co2, "CO2-eq", "kg"))

    def counted_once(sums: SharedSums) -> dict[int, ShareOut]:
        return {
            p: share
            for p, share in sums.shares.items()
            if share.threads and share.threads_measured > share.threads_shared * _SCALED_NOTE_ABOVE
        }

    threads_energy, threads_co2 = counted_once(energy), counted_once(co2)
    if threads_energy and threads_energy.keys() == threads_co2.keys():  # usual: one note
        measured, shared = _threads_sums(threads_co2)
        notes.append(
            _threads_note(forest, roles, threads_energy, "energies", "kWh")
            + f"; their CO2-eq likewise, {_fit(measured, 'kg')} to "
            + _fit(shared, "kg", of=measured)
        )
    else:
        if threads_energy:
            notes.append(_threads_note(forest, roles, threads_energy, "energies", "kWh"))
        if threads_co2:
            notes.append(_threads_note(forest, roles, threads_co2, "CO2-eq", "kg"))
    short = {
        p: share
        for p, share in energy.shares.items()
        if share.short
        and energy.inclusive[p] - forest.outside(p, energy.inclusive, energy.far)
        > share.own * _SCALED_NOTE_ABOVE
    }
    if short:
        notes.append(_short_note(forest, energy, short))
    roots_energy, roots_co2 = (
        sums.roots
        if sums.roots is not None
        and sums.roots.threads_measured > sums.roots.threads_shared * _SCALED_NOTE_ABOVE
        else None
        for sums in (energy, co2)
    )
    if roots_energy is not None:
        note = _root_threads_note(forest, roles, roots_energy, "energies", "kWh")
        if roots_co2 is not None and roots_co2.threads == roots_energy.threads:  # usual
            measured, shared = roots_co2.threads_measured, roots_co2.threads_shared
            note += (
                f"; their CO2-eq likewise, {_fit(measured, 'kg')} to "
                f"{_fit(shared, 'kg', of=measured)}"
            )
        notes.append(note + _around_them(roles, roots_energy))
    elif roots_co2 is not None:
        note = _root_threads_note(forest, roles, roots_co2, "CO2-eq", "kg")
        notes.append(note + _around_them(roles, roots_co2))
    return notes


def _around_them(roles: Sequence[str], share: ShareOut) -> str:
    """The end of the note on top-level runs in threads: what would measure the rest."""
    if any(roles[p] == "sweep" for p in share.threads):  # sweeps in threads: a run around them
        return (
            " (no run measured what ran around them: to count it too, track the process in one "
            "run around them, gp.track(...))"
        )
    return (
        " (no run measured what ran around them: to count it too, run them inside one, "
        "gp.track(..., role='sweep'))"
    )


def _root_threads_note(
    forest: RunForest, roles: Sequence[str], share: ShareOut, what: str, unit: str
) -> str:
    """Top-level runs that read one process at the same time, each stretch counted once."""
    members = sorted(share.threads)
    kinds = {roles[c] for c in members}
    noun = kinds.pop() if len(kinds) == 1 and kinds <= {"trial", "part"} else "run"
    names = [repr(forest.runs[p].name) for p in members]
    listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    processes = len(
        {(forest.runs[p].host, (forest.runs[p].provenance or {}).get("process")) for p in members}
    )
    where = (
        "in one process (threads or asyncio tasks)"
        if processes == 1
        else f"in threads (or asyncio tasks) of {processes} processes"
    )
    return (
        f"the {len(members)} top-level {noun}s ({listed}) ran at the same time {where}, each "
        "measuring the whole process over its span: each stretch of their time is counted "
        "once, at their mean power, and split equally among the runs that ran in it (exact "
        f"at constant power): their measured {what}, {_fit(share.threads_measured, unit)} in "
        f"all, count {_fit(share.threads_shared, unit, of=share.threads_measured)}"
    )


def _threads_sums(shares: Mapping[int, ShareOut]) -> tuple[float, float]:
    """What children that read one process at once measured, and what they count, summed."""
    return (
        math.fsum(s.threads_measured for s in shares.values()),
        math.fsum(s.threads_shared for s in shares.values()),
    )


def _threads_note(
    forest: RunForest, roles: Sequence[str], shares: Mapping[int, ShareOut], what: str, unit: str
) -> str:
    """Children that read one process at the same time, each stretch counted once."""
    members = [c for s in shares.values() for c in s.threads]
    kinds = {roles[c] for c in members}
    noun = kinds.pop() if len(kinds) == 1 and kinds <= {"trial", "part"} else "child run"
    names = [repr(forest.runs[p].name) for p in shares]
    if len(shares) == 1:
        whose = f"the {len(members)} {noun}s of run {names[0]}"
    else:
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        whose = f"the {noun}s of {len(shares)} runs ({listed})"
    measured, shared = _threads_sums(shares)
    counted = math.fsum(s.threads_counted for s in shares.values())
    parents = "their parent" if len(shares) == 1 else "their parents"
    capped = (
        f" ({_fit(counted, unit, of=measured)} by their stretches, scaled to what {parents} "
        "measured)"
        if counted > shared * _SCALED_NOTE_ABOVE
        else ""
    )
    return (
        f"{whose} ran at the same time in one process (threads or asyncio tasks), each "
        "measuring the whole process over its span: each stretch of their time is counted "
        "once, at their mean power, and split equally among the runs that ran in it (exact at "
        f"constant power): their measured {what}, {_fit(measured, unit)} in all, count "
        f"{_fit(shared, unit, of=measured)}"
        f"{capped}"
    )


def _short_note(forest: RunForest, energy: SharedSums, shares: Mapping[int, ShareOut]) -> str:
    """Parents that measured less energy than their children in one process count."""
    names = [repr(forest.runs[p].name) for p in shares]
    own = math.fsum(s.own for s in shares.values())
    count = math.fsum(
        energy.inclusive[p] - forest.outside(p, energy.inclusive, energy.far) for p in shares
    )
    if len(shares) == 1:
        return (
            f"run {names[0]} measured less energy ({_fit(own, 'kWh')}) than its children that "
            f"ran at the same time in one process count ({_fit(count, 'kWh', of=own)}): its "
            "own part is 0 and "
            "their count is used (a meter that lagged, or a process whose power varied)"
        )
    listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (
        f"{len(shares)} runs ({listed}) measured less energy ({_fit(own, 'kWh')} in all) than "
        f"their children that ran at the same time in one process count "
        f"({_fit(count, 'kWh', of=own)}): their "
        "own parts are 0 and the children's counts are used (a meter that lagged, or a "
        "process whose power varied)"
    )


def _nonfinite_note(forest: RunForest, positions: Sequence[int], what: str, unit: str) -> str:
    """``run 'x' recorded an energy of inf kWh, not a number: ...``."""
    values = forest.column("energy_kwh" if unit == "kWh" else "emissions_kg")
    named = [f"{forest.runs[p].name!r}" for p in positions[:3]]
    more = f" and {len(positions) - 3} more" if len(positions) > 3 else ""
    if len(positions) == 1:
        said = f"run {named[0]} recorded {what} of {values[positions[0]]} {unit}"
    else:
        shown = ", ".join(sorted({str(values[p]) for p in positions}))
        said = f"runs {', '.join(named)}{more} recorded {what} not finite ({shown} {unit})"
    return (
        f"{said}, which is no measurement: every sum that contains it (its own, its parents', "
        "the totals) is NaN (not a number), and nothing is shared out around it; correct or "
        "remove it in the ledger"
    )


def _sums_of(scaled: Mapping[int, ShareOut]) -> tuple[float, float]:
    """The children's measured amounts and what they were scaled to, each summed."""
    return (
        math.fsum(s.measured for s in scaled.values()),
        math.fsum(s.shared for s in scaled.values()),
    )


def _amounts(scaled: Mapping[int, ShareOut], unit: str) -> str:
    """``"4.51e-06 to 2.41e-06 kWh"``: the children's measured sum, and what it was scaled to."""
    measured, shared = _sums_of(scaled)
    return f"{_fit(measured, unit)} to {_fit(shared, unit, of=measured)}"


def _shared_note(
    forest: RunForest,
    roles: Sequence[str],
    scaled: Mapping[int, ShareOut],
    what: str,
    unit: str,
) -> str:
    """One parent's (or several parents') concurrent children, scaled, in a sentence."""

    def called(positions: Sequence[int]) -> str:
        kinds = {roles[c] for c in positions}  # what the children are
        noun = kinds.pop() if len(kinds) == 1 and kinds <= {"trial", "part"} else "child run"
        return noun if len(positions) == 1 else f"{noun}s"

    together = [c for s in scaled.values() for c in s.together]
    alone = [c for s in scaled.values() for c in s.alone]
    word = called(together)
    measured, shared = _sums_of(scaled)
    factors = sorted(s.shared / s.measured for s in scaled.values())
    names = [repr(forest.runs[p].name) for p in scaled]
    floored = next(iter(scaled.values())).floored  # all or none: see _shared_notes
    if len(scaled) == 1:
        whose = f"the {len(together)} {word} of run {names[0]}"
        parent, by = "their parent", f"x{factors[0]:.3g}"
    else:
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        whose = f"the {word} of {len(scaled)} runs ({listed})"
        parent, by = "their parents", f"x{factors[0]:.3g} to x{factors[-1]:.3g}"
    kept = math.fsum(s.kept for s in scaled.values())
    besides = (
        f" beyond the {len(alone)} {called(alone)} that ran alone ({_fit(kept, unit)}, kept whole)"
        if alone
        else ""
    )
    read, separate = _what_they_read(forest, together)
    ran = (
        f"{whose} that ran at the same time each measured"
        if alone
        else f"{whose} ran at the same time, each measuring"
    )
    ran += f" {read} over its span"
    if not floored:
        if separate:  # no overlap between them: their parent's reading is taken as the truth
            return (
                f"{ran}: their measured {what}, {_fit(measured, unit)} in all, add to more than "
                f"{parent} measured over the same time{besides}; {parent}'s reading is taken "
                f"as the truth: they are scaled to its {_fit(shared, unit, of=measured)} ({by})"
            ).replace("parents's", "parents'")
        return (
            f"{ran}: their measured {what}, {_fit(measured, unit)} in all, are scaled to the "
            f"{_fit(shared, unit, of=measured)} {parent} measured{besides} ({by}), so none is "
            "counted twice"
        )
    own = math.fsum(s.own for s in scaled.values())
    least = "the largest run of each group" if separate else "the least its children spent"
    short = (
        f"run {names[0]} measured less than {least}"
        if len(scaled) == 1
        else f"each of their parents measured less than {least}"
    )
    if separate:  # each read its own process: their sum may all be true
        return (
            f"{ran}; {short} ({_fit(own, unit)}, against {_fit(kept + shared, unit, of=own)}"
            f"{besides}), so "
            "its reading is not taken as the truth: each group that ran together counts what "
            f"its largest run measured, their measured {what}, {_fit(measured, unit)} in all, "
            f"are scaled to {_fit(shared, unit, of=measured)} ({by}); a lower bound, as runs in "
            "separate "
            "processes do not read each other's energy"
        )
    return (
        f"{ran}; {short} ({_fit(own, unit)}, against {_fit(kept + shared, unit, of=own)}"
        f"{besides}): each group "
        f"that ran together counts what its largest run measured, their measured {what}, "
        f"{_fit(measured, unit)} in all, are scaled to {_fit(shared, unit, of=measured)} ({by}), "
        "so none is "
        "counted twice"
    )


def _what_they_read(forest: RunForest, positions: Sequence[int]) -> tuple[str, bool]:
    """What children that ran at the same time each read, and whether in separate processes.

    Runs of machine scope read the whole machine; runs that name the process their meters read
    (scope ``"process"``) read that process: the same one (threads of it) or each its own
    (separate processes, whose readings do not overlap). Runs that say neither (recorded before
    runs named their process), or a mix, get the words that hold for any of them.
    """
    generic = "the whole process (threads or asyncio tasks) or machine", False
    try:
        scopes = forest.column("scope")
    except AttributeError:  # a partial record (greenprint.ledger._study_cost's): not said
        return generic
    keys = forest._process_keys  # (host, process), or the process alone on one host
    if all(scopes[p] == "machine" for p in positions):
        return "the whole machine", False
    named = [keys[p] for p in positions]
    if None not in named:
        if len(set(named)) == len(named):
            return "its own process", True
        if len(set(named)) == 1:
            return "the whole process (threads or asyncio tasks)", False
    return generic


def _beyond_note(forest: RunForest, beyond: BeyondSums) -> str:
    """The note on runs that ran on after the runs around them ended (:func:`beyond_sums`).

    It says how what they measured after that end was found: split there by their power
    samples, or prorated by time over their spans (no samples given, or none recorded).
    """
    counted = beyond.counted
    names = [repr(forest.runs[p].name) for p in list(counted)[:3]]
    more = f" and {len(counted) - 3} more" if len(counted) > 3 else ""
    kwh = math.fsum(float(v) for v in counted.values())
    sampled = len(beyond.sampled)
    if sampled == len(counted):
        how = "split at that end by their power samples"
    elif not beyond.samples_read:
        how = (
            "their energy prorated over their spans, exact at constant power; "
            "price_tag(..., samples_of=ledger.samples) splits it by their power samples"
        )
    elif not sampled:
        how = "their energy prorated over their spans: they recorded no power samples"
    else:
        how = (
            f"split at that end by the power samples of {sampled}, prorated over their "
            f"spans for the {len(counted) - sampled} that recorded none"
        )
    return (
        f"{count_of(len(counted), 'run')} ({', '.join(names)}{more}) ran on after the run "
        f"{'they are' if len(counted) > 1 else 'it is'} part of ended (a worker process left "
        f"running when its main process was stopped or crashed): the {format_energy(kwh)} "
        f"they measured after that end ({how}) is in no "
        "measurement of the parent's, and is counted once beside it"
    )
