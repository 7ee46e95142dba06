"""Runs that ran on after the runs around them ended: what they spent outside, counted once.

A worker process left running when its main process got SIGTERM or crashed spent energy after
its parent's end that no measurement of the parent's holds (see :func:`beyond_sums`). Used by
the price tag (:mod:`greenprint.analysis._pricetag`), its report's timeline, and a study budget's
read of the ledger (:mod:`greenprint.ledger._study_cost`): beside the run forest, below both, as
the ledger never imports the analysis layer (tests/test_imports.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from greenprint._forest import RunForest
from greenprint._forest_sums import SharedSums, run_end
from greenprint._records import PowerSample, RunRecord

__all__ = ["BeyondSums", "SamplesOf", "beyond_sums", "split_by_samples"]

#: A run's power samples by its id (``Ledger.samples``; a run that recorded none: empty).
SamplesOf = Callable[[str], Sequence[PowerSample]]


class BeyondSums(NamedTuple):
    """A shared cost's sums with what runs spent after the measurements around them ended.

    Attributes:
        inclusive: each run's amount with its descendants' (:attr:`SharedSums.inclusive`),
            what runs spent beyond the measurements around them counted once.
        exclusive: each run's own part (summed over all runs: the total); a run that ran on
            after the runs around it ended holds what it spent after that end.
        counted: position of each such run -> what it spent after that end (kWh or kg, as
            the cost), each stretch of one reading once.
        sums: the rule's sums of what lies inside (how parents shared their measurements
            out, for the notes): the forest's own when no run ran on.
        inside: position of each run -> what the runs below it spent after the measurements
            around them, in its inclusive amount and not in :meth:`RunForest.outside` of it
            (reached through links inside it, and through no run that adds far: runs with any).
        far: :attr:`SharedSums.far` of these sums: what is outside the measurements above
            each run, with what runs below it spent after the measurements around them where
            it came through a run that adds far (``None``: no run adds to its parent).
        sampled: the positions in :attr:`counted` split at that end by their power samples
            (:func:`split_by_samples`); the others were prorated by time over their spans.
        samples_read: whether the runs' samples were given to read (``samples_of``): without
            them every run is prorated by time.
        cut: the runs the rule read (``None`` when no run ran on): each run in
            :attr:`spans` with only what it measured before that end (its energy and CO2-eq
            less what it spent after, its ``ended_at`` that end); positions as the forest's.
        spans: position of each run that ran on -> ``(start, outside_from, end)``: its span
            and the end of the last measurement around it (s since the epoch).
    """

    inclusive: list[Any]
    exclusive: list[Any]
    counted: dict[int, Any]
    sums: SharedSums
    inside: dict[int, Any]
    far: list[Any] | None = None
    sampled: frozenset[int] = frozenset()
    samples_read: bool = False
    cut: RunForest | None = None
    spans: Mapping[int, tuple[float, float, float]] | None = None


def beyond_sums(
    forest: RunForest, samples_of: SamplesOf | None = None
) -> tuple[BeyondSums, BeyondSums]:
    """Energy and CO2-eq (:meth:`RunForest.shared_sums`) with what runs spent after their parents.

    A run inside its parent's measurement (``contained``: the same process, or the parent's
    process tree on the same host) is in it only while the parent measured: a worker process
    that ran on after its main process was stopped (SIGTERM to the main process only, a crash)
    spent energy after the parent's end that no measurement of the parent's holds, and the
    rule (``max(own, children's sum)``, or the parent's measurement shared out) counted it
    nowhere. So, for each run whose link to its parent is inside it (:meth:`RunForest.adds`
    false), the measurement around it ends at the latest end of the runs it is inside, up to
    the first link that adds (a parent's process tree holds its children's processes: a
    grandparent still measures a worker whose parent ended; see :func:`_outside_spans`).
    What the run measured after that end is outside every measurement around it:

    * how much: its amount split at that end by what it measured, its power samples
      (``samples_of``; :func:`split_by_samples`: exact, whatever its power did, such as a
      worker that drew twice as much once its main process had died); for a run with no
      samples (or none given), its amount prorated by time over its span, the part after that
      end (what every record holds; exact at constant power); runs that read one process or
      one machine (threads naming it, machine scope) and ran on at the same time count each
      stretch of that time once (:func:`~greenprint._forest_stretches.stretch_shares`);
    * the rule reads the runs with only the rest (their amount less that part, their span
      ending at that end), inside the measurements around them as the rule expects, and what
      lies outside is added once: to the run's exclusive amount and to the inclusive amounts
      of the run and of every run above it.

    Nothing is counted twice: what a run spent outside is in no other run's measurement, and
    the rest is in the rule's reading as before.

    Args:
        forest: the runs.
        samples_of: a run's power samples by its id (``Ledger.samples``), read only for the
            runs that ran on after the runs around them ended; ``None``: every such run is
            prorated by time.

    Returns:
        Energy's sums and CO2-eq's (the forest's own lists, unchanged, when no run ran on
        after the measurements around it: do not mutate them).
    """
    spans = _outside_spans(forest)
    names = ("energy_kwh", "emissions_kg")
    if not spans:
        return tuple(  # type: ignore[return-value]
            BeyondSums(sums.inclusive, sums.exclusive, {}, sums, {}, sums.far)
            for sums in map(forest.shared_sums, names)
        )
    runs = forest.runs
    # each run's (before, after) shares of its energy and of its CO2-eq at that end
    split: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {}
    sampled = set()
    for pos, (start, outside_from, end) in spans.items():
        found = None
        if samples_of is not None and any(_positive(getattr(runs[pos], name)) for name in names):
            found = split_by_samples(samples_of(runs[pos].id), outside_from)
        if found is not None:
            split[pos] = found
            sampled.add(pos)
        else:
            by_time = ((outside_from - start) / (end - start), (end - outside_from) / (end - start))
            split[pos] = (by_time, by_time)
    outside: dict[str, dict[int, Any]] = {}
    for k, name in enumerate(names):
        values = forest.column(name)
        positions, intervals, amounts = [], [], []
        for pos, (_, outside_from, end) in spans.items():
            value = values[pos]
            if not _positive(value):
                continue
            positions.append(pos)
            intervals.append((outside_from, end))
            amounts.append(value * split[pos][k][1])
        counted = _once_per_reading(forest, positions, intervals, amounts)
        outside[name] = dict(zip(positions, counted, strict=True))
    cut = list(runs)
    for pos, (_, outside_from, _) in spans.items():
        record = _copy_record(runs[pos])
        for k, name in enumerate(names):
            value = getattr(record, name)
            if pos in outside[name]:  # the rest: what it measured inside, in the rule
                object.__setattr__(record, name, value * split[pos][k][0])
        object.__setattr__(record, "ended_at", outside_from)
        cut[pos] = record
    cut_forest = RunForest.build(cut)
    parents = forest.parents
    found_sums = []
    read = samples_of is not None
    for name in names:
        sums = cut_forest.shared_sums(name)
        inclusive, exclusive = list(sums.inclusive), list(sums.exclusive)
        far = None if sums.far is None else list(sums.far)
        below: dict[int, Any] = {}
        for pos, amount in outside[name].items():
            exclusive[pos] += amount
            inclusive[pos] += amount
            at, crossed = pos, False  # crossed: in the far amounts from here up
            while (up := parents[at]) is not None:
                inclusive[up] += amount
                if forest.adds(at):  # in outside(up) as what adds to it
                    crossed = crossed or forest.adds_far(at)
                elif not crossed:  # in no outside(up): what its own figure is compared with
                    below[up] = below.get(up, 0) + amount
                if crossed and far is not None:
                    far[up] += amount
                at = up
        counted_here = outside[name]
        found_sums.append(
            BeyondSums(
                inclusive,
                exclusive,
                counted_here,
                sums,
                below,
                far,
                frozenset(p for p in sampled if p in counted_here),
                read,
                cut_forest,
                spans,
            )
        )
    return found_sums[0], found_sums[1]


def split_by_samples(
    samples: Sequence[PowerSample], at: float
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """What a run measured before and after an instant, as shares of its energy and CO2-eq.

    Each sample's energy is its power (W, its components summed) times its interval; a
    sample that ends by ``at`` is before it, one that starts at or after it is after, and one
    that straddles it is split by time within that sample only (its power was constant over
    it, as far as the run knows). CO2-eq weighs each part by its sample's grid intensity
    (an hourly series: its hour's), or, where a sample with energy has no intensity, as the
    energy is.

    Args:
        samples: the run's power samples (W over ``[t0, t1]``, s since the epoch).
        at: the instant, s since the epoch.

    Returns:
        ``((energy before, after), (CO2-eq before, after))``, each pair's shares adding up to
        1; ``None`` when the samples hold no energy (none, or no positive finite power over a
        positive interval): nothing to split by.
    """
    before: list[float] = []
    after: list[float] = []
    weighted: list[tuple[float, float]] = []
    intensities = True
    for sample in samples:
        length = sample.t1 - sample.t0
        joules = sample.power_w * length
        if not (length > 0 and _positive(joules)):
            continue
        if sample.t1 <= at:
            late = 0.0
        elif sample.t0 >= at:
            late = joules
        else:
            late = joules * ((sample.t1 - at) / length)
        early = joules - late
        before.append(early)
        after.append(late)
        intensity = sample.intensity_g_per_kwh
        if intensity is None or not (math.isfinite(intensity) and intensity >= 0):
            intensities = False
        elif intensities:
            weighted.append((early * intensity, late * intensity))
    energy = _shares(math.fsum(before), math.fsum(after))
    if energy is None:
        return None
    if not intensities:
        return energy, energy
    co2 = _shares(math.fsum(w for w, _ in weighted), math.fsum(w for _, w in weighted))
    return energy, (energy if co2 is None else co2)


def _shares(before: float, after: float) -> tuple[float, float] | None:
    """``before`` and ``after`` as shares of their sum (``None``: the sum is not positive)."""
    whole = before + after
    if not _positive(whole):
        return None
    return before / whole, after / whole


def _positive(value: Any) -> bool:
    """Whether ``value`` is a positive finite number (``None``, NaN, 0: not)."""
    return value is not None and value > 0 and math.isfinite(value)


def _outside_spans(forest: RunForest) -> dict[int, tuple[float, float, float]]:
    """Runs inside their parents that ran on after every run around them ended.

    Position -> ``(start, outside_from, end)``: the run's span, and when the last measurement
    around it ended. Only runs that name what they read: the process (provenance
    ``"process"``, scope ``"process"``), or the machine (scope ``"machine"``); a run that names
    neither (recorded before runs named their process) may be one of several threads that each
    read one whole process, whose time after the end cannot be told apart: the rule's
    ``max(own, children's sum)`` stands for it; so does it for a thread of its parent's own
    process (RunForest counts threads that outlived their parent's run each stretch once, with
    its measurement as a floor), and for a run of a distributed job (a rank under its node's
    meter, which reads the machine, ends with the job's rules). A run's end is
    :func:`run_end` (its ``ended_at``, or a running or lost run's last heartbeat); a parent's
    end is its ``ended_at``, or, for one that recorded none, its last heartbeat when that is
    more than two of its flush intervals before the child's end (it stopped flushing: killed
    with SIGKILL, lost); otherwise a parent with no end is still measuring (a live run's
    children's heartbeats may lead its own by a flush). A run with no start time
    (``started_at`` 0) has no known span and is left out.
    """
    parents = forest.parents
    if not parents or parents.count(None) == len(parents):
        return {}
    runs = forest.runs
    ended = forest.column("ended_at")

    def end_of(pos: int) -> float:
        end = ended[pos]
        return run_end(runs[pos]) if end is None else end

    found: dict[int, tuple[float, float, float]] = {}
    keys: tuple[Any, ...] | None = None
    for pos, parent in enumerate(parents):
        if parent is None:
            continue
        end = end_of(pos)
        if not end > end_of(parent):
            continue  # quick: no later than its parent's last sign (most runs: 100,000, 6 ms)
        run = runs[pos]
        if forest.adds(pos) or run.job_id is not None:
            continue  # adds anyway; or a distributed job's rank or node: the job's rules
        start = run.started_at
        if not (start > 0 and end > start):
            continue
        latest = -math.inf
        at: int | None = pos
        while at is not None and (up := parents[at]) is not None:
            above = runs[up]
            if above.ended_at is not None:
                stop = above.ended_at
            elif end > end_of(up) + 2 * _flush_interval(above):
                stop = end_of(up)  # stopped flushing long before: lost
            else:
                latest = math.inf  # still measuring
                break
            latest = max(latest, stop)
            at = None if forest.adds(up) else up
        if not (math.isfinite(latest) and end > latest):
            continue
        if keys is None:
            keys = forest._process_keys
        if keys[pos] is None and run.scope != "machine":
            continue  # what it read is not known (a thread's whole process?): the rule's sum
        if keys[pos] is not None and keys[pos] == keys[parent]:
            continue  # a thread of its parent's process: RunForest's rule for threads stands
        found[pos] = (start, max(latest, start), end)
    return found


def _flush_interval(run: RunRecord) -> float:
    """A run's flush interval in s (10 s where the record has none that is a finite number)."""
    value = getattr(run, "flush_interval_s", None)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 10.0


def _once_per_reading(
    forest: RunForest,
    positions: Sequence[int],
    intervals: Sequence[tuple[float, float]],
    amounts: Sequence[Any],
) -> list[Any]:
    """What each run counts of what it spent outside, each stretch of one reading once.

    Runs that read one process (threads of it, naming it in their provenance) or one machine
    (scope ``"machine"``, one host) each read all of it: over the time they ran on together,
    the stretch is counted once (:func:`stretch_shares`). Runs that read their own processes
    keep their amounts.
    """
    from greenprint._forest_stretches import stretch_shares

    keys = forest._process_keys
    groups: dict[Any, list[int]] = {}
    for k, pos in enumerate(positions):
        run = forest.runs[pos]
        key = ("machine", run.host) if run.scope == "machine" else keys[pos]
        if key is not None:
            groups.setdefault(key, []).append(k)
    out = list(amounts)
    for members in groups.values():
        if len(members) > 1:
            shares = stretch_shares([intervals[k] for k in members], [amounts[k] for k in members])
            for k, share in zip(members, shares, strict=True):
                out[k] = share
    return out


def _copy_record(run: RunRecord) -> RunRecord:
    """A copy of a record, field by field: a partial one too.

    A study budget's read (``greenprint.ledger._study_cost``) sets only the fields the rule
    reads; the unset ones stay unset.
    """
    copied: RunRecord = object.__new__(type(run))
    for f in dataclasses.fields(run):
        try:
            value = getattr(run, f.name)
        except AttributeError:
            continue
        object.__setattr__(copied, f.name, value)
    return copied
