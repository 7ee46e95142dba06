"""The timeline figure: power (W) and cumulative energy over the study's wall-clock time."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from greenprint._forest_beyond import BeyondSums, beyond_sums
from greenprint._format import count_of
from greenprint._records import PowerSample, RunRecord
from greenprint._units import JOULES_PER_KWH
from greenprint.analysis._common import RunForest
from greenprint.report._figure_inputs import FigureInputs, _time_unit, _tuple, energy_unit
from greenprint.report._model import Figure, Panel, Series

__all__ = ["timeline_figure"]


# Gaps in the power timeline up to max(this, share x span) are bridged in the drawing.
_BRIDGE_GAP_S = 1.0
_BRIDGE_GAP_SHARE = 0.01
# Above this many time segments the power timeline is averaged over equal bins.
_TIMELINE_MAX_SEGMENTS = 2000
_TIMELINE_BINS = 1000


def _unique_times(times: np.ndarray) -> np.ndarray:
    """``np.unique(times)`` (NaNs kept as one, last), by a stable sort.

    Runs' start and end times each come nearly in order, which the stable sort (timsort) merges
    in about linear time: 0.4 ms against np.unique's 20 ms quicksort for the 200,000 times of a
    100,000-run study (measured).
    """
    ordered = np.sort(times, kind="stable")
    keep = np.empty(ordered.size, dtype=bool)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    if ordered.size and np.isnan(ordered[-1]):  # as np.unique(equal_nan=True): one NaN
        first_nan = int(np.searchsorted(ordered, ordered[-1], side="left"))
        keep[first_nan] = True
        keep[first_nan + 1 :] = False
    return ordered[keep]


def _below_its_runs(forest: RunForest, positions: Sequence[int]) -> np.ndarray:
    """Whether the price tag counts each run above what it recorded: at the runs inside it.

    A job killed after a flush whose trials ran on and flushed later: its children, each
    measured alone, keep what they measured (:meth:`RunForest.shared_sums`), and their sum is
    above the job's reading. Children that ran at the same time (threads of one process, each
    reading all of it) share out their parent's reading instead: never below it.
    """
    shared = forest.shared_sums("energy_kwh")
    runs, children, inclusive = forest.runs, forest.children, shared.inclusive
    below = np.zeros(len(positions), dtype=bool)
    for k, p in enumerate(positions):
        inside = [c for c in children[p] if not forest.adds(c)]
        if inside and p not in shared.scaled:
            own = runs[p].energy_kwh or 0.0
            theirs = math.fsum(inclusive[c] for c in inside)
            below[k] = own > 0.0 and theirs > own * (1.0 + 1e-9)
    return below


def _lifted_by_its_threads(forest: RunForest, positions: Sequence[int]) -> np.ndarray:
    """How much more than its reading the price tag counts of each top-level run drawn.

    1.0 for a run drawn as it measured. Children that ran at the same time in one process
    (threads, each reading all of it) share out their parent's reading; where they count more
    than it measured (a meter that lagged, a process whose power varied), the price tag counts
    them (:meth:`RunForest.shared_sums`), its own part 0: a parent of 20 J whose two threads
    read 23 and 20 J counts 23 J.
    """
    shared = forest.shared_sums("energy_kwh")
    lifted = np.ones(len(positions))
    for k, p in enumerate(positions):
        if forest.parents[p] is None and p in shared.scaled:
            own = forest.runs[p].energy_kwh or 0.0
            counted = float(shared.inclusive[p])
            if own > 0.0 and counted > own * (1.0 + 1e-9):
                lifted[k] = counted / own
    return lifted


def _sample_rows(samples: Sequence[PowerSample]) -> np.ndarray:
    """A run's power samples as rows ``(t0, t1, cpu, gpu, ram, other)`` (s, W)."""
    return np.array(
        [
            (s.t0, s.t1, s.cpu_w or 0.0, s.gpu_w or 0.0, s.ram_w or 0.0, 0.0)
            for s in samples
            if s.t1 > s.t0
        ],
        dtype=float,
    ).reshape(-1, 6)


def _clip_rows(
    rows: np.ndarray, *, until: float | None = None, since: float | None = None
) -> np.ndarray:
    """Rows cut to the time before ``until`` or after ``since``.

    A row straddling it is cut there, at its power (as
    :func:`~greenprint._forest_beyond.split_by_samples` splits a sample).
    """
    rows = rows.copy()
    if until is not None:
        rows = rows[rows[:, 0] < until]
        rows[:, 1] = np.minimum(rows[:, 1], until)
    if since is not None:
        rows = rows[rows[:, 1] > since]
        rows[:, 0] = np.maximum(rows[:, 0], since)
    return rows


def _cut_rows(
    rows: np.ndarray,
    where: Sequence[int],
    spans: Mapping[int, tuple[float, float, float]],
    whole: Sequence[RunRecord],
    cut: Sequence[RunRecord],
) -> None:
    """Rows at mean power of runs that ran on, in place: up to the end of the runs around them.

    Each such row spans the run's start to that end, at what it measured before it (its cut
    record's energy, by component as its whole record's).
    """
    for k, p in enumerate(where):
        if p not in spans:
            continue
        start, until, _ = spans[p]
        energy, before = whole[p].energy_kwh, cut[k].energy_kwh
        if not (energy and before and until > start):
            continue
        row = _mean_power_rows([whole[p]])[0][0]
        row[2:] *= (before / energy) * (row[1] - row[0]) / (until - start)
        row[1] = until
        rows[k] = row


def _beyond_rows(
    beyond: BeyondSums,
    runs: Sequence[RunRecord],
    samples_of: Callable[[str], list[PowerSample]] | None,
) -> list[np.ndarray]:
    """What runs that ran on measured after the runs around them ended, as rows (s, W).

    Each at what the price tag counts of it (:attr:`BeyondSums.counted`): its samples after
    that end where the price tag split it by them (``samples_of`` given), else its mean power
    after it, by component as its record; scaled to that amount (runs that read one process
    or machine count each stretch once).
    """
    out: list[np.ndarray] = []
    spans = beyond.spans or {}
    for p, kwh in beyond.counted.items():
        if not kwh > 0:
            continue
        _, since, end = spans[p]
        rows = None
        if samples_of is not None and p in beyond.sampled:
            rows = _clip_rows(_sample_rows(samples_of(runs[p].id)), since=since)
        if rows is None or not rows.size:
            rows = _mean_power_rows([runs[p]])[0][:1].copy()
            rows[0, 0], rows[0, 1] = since, end
        joules = float(np.sum((rows[:, 1] - rows[:, 0]) * rows[:, 2:].sum(axis=1)))
        if not joules > 0:
            continue
        rows[:, 2:] *= kwh * JOULES_PER_KWH / joules
        out.append(rows)
    return out


def _mean_power_rows(runs: Sequence[RunRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Each run drawn at its mean power over its span, and which runs can be.

    Returns:
        ``(rows, drawn)``: one row per run, ``(t0, t1, cpu, gpu, ram, other)`` (s since the
        epoch, W), and a bool array, false for a run without energy over a positive duration
        (its row is then meaningless). Energy not by component is ``other``.

    Column by column rather than run by run: about 35 ms less at 100,000 runs (measured).
    """
    size = len(runs)

    def column(name: str, *, none_as_zero: bool = False) -> np.ndarray:
        values: Iterable[Any] = map(attrgetter(name), runs)
        if none_as_zero:
            values = (v or 0.0 for v in values)
        return np.fromiter(values, float, size)

    started, duration, energy = (column(n) for n in ("started_at", "duration_s", "energy_kwh"))
    cpu, gpu, ram = (
        column(n, none_as_zero=True) for n in ("energy_cpu_kwh", "energy_gpu_kwh", "energy_ram_kwh")
    )
    drawn = ~((duration <= 0) | (energy <= 0))  # NaN is drawn, as NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        watts = JOULES_PER_KWH / duration
        other = np.maximum(energy - cpu - gpu - ram, 0.0)
        rows = np.column_stack(
            [started, started + duration, cpu * watts, gpu * watts, ram * watts, other * watts]
        )
    return rows, drawn


def timeline_figure(
    inputs: FigureInputs,
    samples_of: Callable[[str], list[PowerSample]],
    *,
    max_sampled_runs: int,
    beyond: BeyondSums | None = None,
) -> tuple[Figure | None, str | None]:
    """Power (W) and cumulative energy over the study's wall-clock time.

    Only top-level runs are drawn (a parent's samples contain its children's). Their power
    samples are read from the ledger when there are at most ``max_sampled_runs`` of them; a run
    without samples, or every run above that limit, is drawn at its mean power over its span
    (its energy / its duration), which the figure's notes say. A top-level run that recorded
    no energy over a positive duration but has runs inside it (a job killed before its first
    flush, or one still running that has not flushed yet: the price tag counts its children's
    sum) is drawn as those runs, likewise, with a note. Top-level runs in threads of one
    process (each read all of it) are drawn at what the price tag counts of them, each stretch
    of their time once (:attr:`~greenprint.analysis._common.SharedSums.roots`), with a note.
    A run inside another that ran on after the runs around it ended (a worker process left
    running when its main process was stopped) is drawn as the price tag counts it
    (:func:`~greenprint._forest_beyond.beyond_sums`): inside the runs around it up to that
    end, and after it at what the price tag counts (its samples there, or its mean power),
    with a note. ``beyond``: ``beyond_sums(inputs.forest, samples_of)[0]`` when the caller
    has it (the report: the price tag's); ``None``: read here.
    """
    # runs that ran on after the runs around them ended (workers left running when their main
    # process was stopped): the price tag reads the runs with only what they measured before
    # that end (beyond.cut), and counts what they measured after it once (beyond.counted);
    # drawn alike, what is inside from the cut runs, the rest after it
    if beyond is None:
        beyond = beyond_sums(inputs.forest, samples_of)[0]
    forest = beyond.cut if beyond.counted and beyond.cut is not None else inputs.forest
    spans = (beyond.spans or {}) if forest is not inputs.forest else {}
    where = list(forest.roots)  # the positions of the runs drawn
    roots = [forest.runs[p] for p in where]
    mean_rows, drawn = _mean_power_rows(roots)
    hollow = 0  # top-level runs that recorded nothing, drawn as the runs inside them
    under = 0  # top-level runs that recorded less than the runs inside them, drawn as those
    below = _below_its_runs(forest, where)
    if not drawn.all() or below.any():
        positions: list[int] = []
        batch = list(forest.roots)
        recorded = drawn & ~below
        # a run that recorded nothing, or less than the runs inside it (killed after a flush,
        # they ran on: the price tag counts their sum), is drawn as them (theirs likewise)
        while batch:
            inner: list[int] = []
            for p, ok in zip(batch, recorded, strict=True):
                inside = () if ok else [c for c in forest.children[p] if not forest.adds(c)]
                if inside:
                    if forest.parents[p] is None:
                        if (forest.runs[p].energy_kwh or 0.0) > 0.0:
                            under += 1
                        else:
                            hollow += 1
                    inner.extend(inside)
                else:
                    positions.append(p)
            batch = inner
            recorded = _mean_power_rows([forest.runs[p] for p in batch])[1]
            recorded &= ~_below_its_runs(forest, batch)
        if hollow or under:
            where = positions
            roots = [forest.runs[p] for p in where]
            mean_rows, drawn = _mean_power_rows(roots)
    if spans:  # a run drawn that ran on: its row up to that end, at what it measured before it
        _cut_rows(mean_rows, where, spans, inputs.forest.runs, roots)
    # top-level runs in threads of one process each read all of it: drawn at what the price
    # tag counts of them (each stretch of their time once), their power scaled alike
    threads = forest.shared_sums("energy_kwh").roots
    scale = np.ones(len(roots))
    if threads is not None:
        for k, p in enumerate(where):
            scale[k] = threads.factors.get(p, 1.0)
    in_threads = scale != 1.0
    # a top-level run whose runs inside ran at the same time (threads of one process, each
    # reading all of it) count more than it measured (a meter that lagged): the price tag
    # counts their count, so it is drawn at that, its power scaled alike
    lifted = _lifted_by_its_threads(forest, where)
    scale *= lifted
    if threads is not None or (lifted != 1.0).any():
        mean_rows[:, 2:] *= scale[:, None]
    use_samples = len(roots) <= max_sampled_runs
    untimed = 0  # runs with energy but no recorded duration and no samples: not drawn
    # runs with no meter (meters=[]): their samples hold no power, their energy is unknown,
    # not 0 W: not drawn, and said
    unmetered = sum(not run.energy_recorded for run in roots)
    if use_samples:
        # each run's samples, or its row at mean power, in the runs' order
        parts: list[np.ndarray] = []
        averaged = 0
        for k, run in enumerate(roots):
            found = samples_of(run.id) if run.energy_recorded else None
            if found:
                sampled = _sample_rows(found)
                if where[k] in spans:  # up to the end of the runs around it
                    sampled = _clip_rows(sampled, until=spans[where[k]][1])
                sampled[:, 2:] *= scale[k]
                parts.append(sampled)
            elif drawn[k]:
                averaged += 1
                parts.append(mean_rows[k : k + 1])
            elif _untimed(run):
                untimed += 1
        parts.extend(_beyond_rows(beyond, inputs.forest.runs, samples_of))
        data = np.concatenate(parts) if parts else np.zeros((0, 6))
    else:
        data = mean_rows[drawn]
        averaged = int(data.shape[0])
        untimed = sum(map(_untimed, roots))
        if spans:
            data = np.concatenate([data, *_beyond_rows(beyond, inputs.forest.runs, None)])
    rows = data.shape[0]
    if not rows:
        return None, "no power timeline: no run recorded energy over a positive duration"
    start = float(np.min(data[:, 0]))
    times = _unique_times(np.concatenate([data[:, 0], data[:, 1]]))
    first = np.searchsorted(times, data[:, 0])
    last = np.searchsorted(times, data[:, 1])

    def level(values: np.ndarray) -> np.ndarray:
        steps = np.zeros(times.size)
        np.add.at(steps, first, values)
        np.add.at(steps, last, -values)
        return np.cumsum(steps)[:-1]

    covered = level(np.ones(rows)) > 0.5
    power = {name: level(data[:, k + 2]) for k, name in enumerate(("cpu", "gpu", "ram", "other"))}
    binned_s = None
    if times.size - 1 > _TIMELINE_MAX_SEGMENTS:
        # Mean power over equal bins (energy-preserving: the cumulative energy at each bin edge
        # is exact), so that a long study draws and serialises a readable number of steps.
        offsets = times - times[0]  # small numbers: interpolation keeps full precision
        edges = np.linspace(0.0, offsets[-1], _TIMELINE_BINS + 1)
        binned_s = float(edges[1])
        steps = np.diff(offsets)

        def mean_over_bins(levels: np.ndarray) -> np.ndarray:
            integral = np.concatenate([[0.0], np.cumsum(levels * steps)])
            return np.diff(np.interp(edges, offsets, integral)) / binned_s

        covered = mean_over_bins(covered.astype(float)) > 0
        power = {name: mean_over_bins(values) for name, values in power.items()}
        times = edges + times[0]
    # Short gaps (between one run and the next) are drawn at the level before them, so that
    # the power line is not cut into dashes; the energy curve counts them as 0 W.
    bridge_s = max(_BRIDGE_GAP_S, _BRIDGE_GAP_SHARE * float(times[-1] - times[0]))
    widths = np.diff(times - times[0])
    short = ~covered & (widths <= bridge_s)
    short[0] = False
    if binned_s is not None:
        short[:] = False
    bridged = int(short.sum())
    total = power["cpu"] + power["gpu"] + power["ram"] + power["other"]
    energy = np.concatenate([[0.0], np.cumsum(total * widths)]) / JOULES_PER_KWH
    time_factor, time_unit = _time_unit(float(times[-1] - start))
    x = _tuple((times - start) * time_factor)
    factor, unit = energy_unit(float(energy[-1]))

    def stepped(values: np.ndarray) -> tuple[float, ...]:
        shown = np.where(covered, values, np.nan)
        for k in np.flatnonzero(short):  # ascending: a run of short gaps carries the level on
            shown[k] = shown[k - 1]
        return _tuple(np.concatenate([shown, [np.nan]]))

    power_series = [Series("total", "step", x, stepped(total), role="total")]
    for name in ("cpu", "gpu", "ram", "other"):
        if np.any(power[name] > 0):
            label = name.upper() if name != "other" else "not by component"
            power_series.append(Series(label, "step", x, stepped(power[name]), role=name))
    notes = []
    if bool(in_threads.any()):
        notes.append(
            f"{count_of(int(in_threads.sum()), 'top-level run')} in threads of one process "
            "drawn at the share the price tag counts (each measured the whole process)"
        )
    if bool((lifted != 1.0).any()):
        notes.append(
            f"{count_of(int((lifted != 1.0).sum()), 'top-level run')} measured less energy than "
            "the runs inside it that ran at the same time in one process (threads, each reading "
            "all of it) count: drawn at their count, which the price tag counts"
        )
    if hollow:
        notes.append(
            f"{count_of(hollow, 'top-level run')} recorded no energy (killed before its first "
            "flush, or not flushed yet): drawn as the runs inside it, which the price tag counts"
        )
    if under:
        notes.append(
            f"{count_of(under, 'top-level run')} recorded less energy than the runs inside it "
            "(killed after a flush while they ran on): drawn as those runs, whose sum the price "
            "tag counts"
        )
    if spans:
        ran_on = len(beyond.counted)
        how = (
            "by their power samples"
            if len(beyond.sampled) == ran_on and use_samples
            else "at their mean power after it"
            if not beyond.sampled or not use_samples
            else f"by the power samples of {len(beyond.sampled)}, at mean power for the rest"
        )
        notes.append(
            f"{count_of(ran_on, 'run')} ran on after the run "
            f"{'they are' if ran_on > 1 else 'it is'} part of ended (a worker process left "
            "running when its main process was stopped or crashed): drawn inside it up to that "
            f"end, and after it {how}, at what the price tag counts"
        )
    if unmetered:
        were, its = ("is", "its") if unmetered == 1 else ("are", "their")
        notes.append(
            f"{count_of(unmetered, 'top-level run')} with no energy meter {were} not drawn: "
            f"{its} energy is unknown (not 0 W), and not under the energy curve"
        )
    if untimed:
        were, its = ("is", "its") if untimed == 1 else ("are", "their")
        notes.append(
            f"{count_of(untimed, 'run')} recorded without a duration ({its} time unknown) "
            f"and without power samples {were} not drawn: {its} energy is in the price tag's "
            "total, not under this curve"
        )
    if averaged:
        why = (
            f"the study has more than {max_sampled_runs} top-level runs"
            if not use_samples
            else "they have no power samples in the ledger"
        )
        their = "its" if averaged == 1 else "their"
        notes.append(
            f"{count_of(averaged, 'run')} drawn at {their} mean power over {their} span, "
            f"because {why}"
        )
    if binned_s is not None:
        notes.append(
            f"power is the mean over {_TIMELINE_BINS} equal intervals of {binned_s:.3g} s "
            "(idle time between runs included)"
        )
    if bridged:
        notes.append(
            f"{count_of(bridged, 'gap')} of at most {bridge_s:.2g} s between runs "
            f"{'is' if bridged == 1 else 'are'} drawn at the power before "
            f"{'it' if bridged == 1 else 'them'} (the energy curve counts "
            f"{'it' if bridged == 1 else 'them'} as 0 W)"
        )
    if not (covered | short).all():
        notes.append("gaps in the power line are times when no run of the study was measured")
    return (
        Figure(
            id="timeline",
            title="Power and energy over time",
            caption=(
                "Power drawn by the study's runs (process share, before PUE) and the energy "
                "used so far, against time since the first run started."
            ),
            panels=(
                Panel(
                    x_label=f"time since start ({time_unit})",
                    y_label="power (W)",
                    x_unit=time_unit,
                    y_unit="W",
                    series=tuple(power_series),
                ),
                Panel(
                    x_label=f"time since start ({time_unit})",
                    y_label=f"cumulative energy ({unit})",
                    x_unit=time_unit,
                    y_unit=unit,
                    series=(Series("energy", "line", x, _tuple(energy * factor), role="energy"),),
                ),
            ),
            provenance=inputs.energy_provenance,
            notes=tuple(notes),
        ),
        None,
    )


def _untimed(run: RunRecord) -> bool:
    """Whether a run has energy but no recorded duration (0.0: built through the ledger API)."""
    return not run.duration_s > 0 and (run.energy_kwh or 0.0) > 0.0
