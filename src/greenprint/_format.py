"""Formatting for output: quantities for humans (energy, CO2-eq, time, FPO), values for JSON."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "EMISSION_UNITS",
    "ENERGY_UNITS",
    "FPO_UNITS",
    "and_list",
    "count_of",
    "count_out_of",
    "ended_tally",
    "energy_none_recorded",
    "format_duration",
    "format_emissions",
    "format_energy",
    "format_fpo",
    "format_share",
    "format_step",
    "fpo_none_counted",
    "fpo_text",
    "json_safe",
    "known_duration",
    "percent_shares",
    "run_emissions_text",
    "run_energy_text",
    "run_id_if_named_alike",
    "run_time_text",
    "run_times_text",
    "unknown_for",
]


def _scaled(
    value: float,
    units: tuple[tuple[float, str], ...],
    digits: int = 3,
    unit_of: float | None = None,
) -> str:
    """``value`` in the largest of ``units`` (largest first) it holds at least one of.

    A value that rounds up to a thousand takes the unit above (999.6 Wh reads ``"1 kWh"``, not
    ``"1e+03 Wh"``); the largest unit writes any count in digits (``"2,000 EFPO"``). With
    ``unit_of``, the unit is the one that value would take: a part said beside its whole reads
    in the whole's unit (``"0.83 mWh of 25.8 mWh"``, not ``"830 µWh of 25.8 mWh"``), unless
    it would read under a thousandth of that unit (then in its own: never ``"1e-06 kWh"``).
    """
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit_of is not None and math.isfinite(unit_of) and unit_of != 0:
        unit = _scaled(unit_of, units, digits).rsplit(" ", 1)[1]
        factor = next(f for f, name in units if name == unit)
        if value == 0 or abs(value / factor) >= 1e-3:
            return f"{value / factor:.{digits}g} {unit}"
    for at, (factor, unit) in enumerate(units):
        if abs(value) >= factor or at == len(units) - 1:
            text = f"{value / factor:.{digits}g}"
            if "e+" not in text:
                return f"{text} {unit}"
            if at > 0:  # rounded up to 10 ** digits: the unit above holds it
                above, bigger = units[at - 1]
                return f"{value / above:.{digits}g} {bigger}"
            return f"{value / factor:,.0f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def format_share(share: float) -> str:
    """A part's share of a whole (a fraction, 0 to 1) as a reader takes it in.

    Under a tenth, one part in N: ``"1/129,134"`` (``"0.00077%"`` made the reader count
    zeros); from a tenth on, a percent of three significant figures: ``"40.2%"``, ``"100%"``
    (``"1/2"`` for 40% would round too much); under one in a million, ``"less than
    1/1,000,000"``; none (or NaN), ``"0%"``. The final model's share of the study's energy is
    said in this one form wherever it is said (the price tag's sentence, the compute statement,
    :meth:`~greenprint.analysis.FinalRun.describe`).

    Example:
        >>> [format_share(s) for s in (1 / 129134, 0.402, 1.0, 1e-9, 0.0)]
        ['1/129,134', '40.2%', '100%', 'less than 1/1,000,000', '0%']
    """
    if not share > 0:
        return "0%"
    if share < 1e-6:
        return "less than 1/1,000,000"
    if share < 0.1:
        return f"1/{round(1.0 / share):,d}"
    return f"{100.0 * share:.3g}%"


def format_step(step: float) -> str:
    """A step (an epoch, an iteration, a halving search's resources) as a reader takes it in.

    A whole number with its thousands separated (``"7,900"``: a global step), else four
    significant figures (``"2.5"``). Where a pruned run stopped is said in this one form by the
    report's "Pruned trials" section and by ``greenprint ledger show``.

    Example:
        >>> [format_step(s) for s in (7, 7900.0, 2.5, 0.125)]
        ['7', '7,900', '2.5', '0.125']
    """
    value = float(step)
    return f"{int(value):,}" if value.is_integer() else f"{value:.4g}"


def format_multiple(multiple: float) -> str:
    """How many times the final model's energy the study used: ``"1,224x"``, ``"6.62x"``.

    Above 10 a whole number, as :func:`format_share` writes a share under a tenth
    (``1/1,224``: one figure, two forms, where ``2.02e+05x`` stood beside ``1/202186``); up to
    10 three significant figures, as its percent (``15.1%`` stood beside a rounded ``7x``).

    Example:
        >>> [format_multiple(m) for m in (1224.4, 6.6225, 1.0)]
        ['1,224x', '6.62x', '1x']
    """
    return f"{round(multiple):,d}x" if multiple > 10 else f"{multiple:.3g}x"


#: The units energies (kWh), emissions (kg CO2-eq) and FPO are written in, largest first:
#: (how many of the base unit one holds, its name).
#: Energy goes on to nWh as CO2-eq goes on to ng: a run of a few milliseconds (a test, a
#: notebook cell) reads ``"10.3 nWh"``, not ``"0.0103 µWh"``.
ENERGY_UNITS = (
    (1e3, "MWh"),
    (1.0, "kWh"),
    (1e-3, "Wh"),
    (1e-6, "mWh"),
    (1e-9, "µWh"),
    (1e-12, "nWh"),
)
EMISSION_UNITS = (
    (1e3, "t"),
    (1.0, "kg"),
    (1e-3, "g"),
    (1e-6, "mg"),
    (1e-9, "µg"),
    (1e-12, "ng"),
)
FPO_UNITS = (
    (1e18, "EFPO"),
    (1e15, "PFPO"),
    (1e12, "TFPO"),
    (1e9, "GFPO"),
    (1e6, "MFPO"),
    (1e3, "kFPO"),
    (1.0, "FPO"),
)


def format_energy(kwh: float, *, digits: int = 3, unit_of: float | None = None) -> str:
    """``0.0123`` kWh -> ``"12.3 Wh"``; picks MWh, kWh, Wh, mWh, µWh or nWh (``digits`` figures).

    A tiny energy (a run's RAM, an example's share) reads ``"1.16 µWh"``, not ``"0.00116
    mWh"``, and a run of a few milliseconds ``"10.3 nWh"``, not ``"0.0103 µWh"``; none reads
    ``"0 mWh"``. ``unit_of`` (kWh): said in the unit that energy takes, for
    a part beside its whole (``format_energy(0.00000083, unit_of=0.0000258)`` -> ``"0.83 mWh"``).
    """
    if kwh == 0 and unit_of is None:
        return "0 mWh"
    return _scaled(kwh, ENERGY_UNITS, digits, unit_of)


def format_emissions(kg: float, *, digits: int = 3, unit_of: float | None = None) -> str:
    """``0.0042`` kg CO2-eq -> ``"4.2 g CO2-eq"``; picks t, kg, g, mg, µg or ng.

    ``digits`` significant figures. A tiny run's emissions read ``"2.62 ng CO2-eq"``, not
    ``"2.62e-06 mg CO2-eq"`` (µWh of energy at a clean grid's intensity are nanograms); none
    reads ``"0 mg CO2-eq"``. ``unit_of`` (kg CO2-eq): said in the unit those emissions take
    (see :func:`format_energy`).
    """
    if kg == 0 and unit_of is None:
        return "0 mg CO2-eq"
    return _scaled(kg, EMISSION_UNITS, digits, unit_of) + " CO2-eq"


def fpo_none_counted(runs: int) -> str:
    """``"FPO unknown (none of the 45 runs counted FPO)"``: a set none of whose runs counted.

    Said of every run of the set (``CostTotals.runs``), not of the innermost that
    ``CostTotals.fpo_unknown`` counts (45 runs of trials over folds: the 29 folds and refits).
    """
    if runs == 1:
        return "FPO unknown (the run counted no FPO)"
    return f"FPO unknown (none of the {runs} runs counted FPO)"


def format_fpo(fpo: float, *, digits: int = 3) -> str:
    """``3.1e15`` -> ``"3.1 PFPO"`` (decimal prefixes, ``digits`` significant)."""
    return _scaled(float(fpo), FPO_UNITS, digits)


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1h 2m 5s"``; short durations in seconds with one decimal.

    Under 1 s, two significant digits (``0.0084`` -> ``"0.0084 s"``, ``0.051`` -> ``"0.051 s"``):
    a run of milliseconds never reads as ``"0.0 s"``, nor one of 51 ms as ``"0.1 s"``.
    """
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if 0 < seconds < 1:
        return f"{seconds:.2g} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s"


def run_time_text(seconds: float | None, *, unknown: str = "-") -> str:
    """A run's time as :func:`format_duration` writes it; ``unknown`` when none was recorded.

    None, NaN, a negative time and 0 are unknown: greenprint never records a run of no time
    (the shortest ``greenprint run -- true`` takes 0.06 s), and a record built without a
    duration (``RunRecord(duration_s=...)`` not given, as in a hand-made or merged ledger)
    holds 0.0: it reads ``"-"``, never a made-up ``"0.0 s"``.
    """
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return unknown
    return format_duration(seconds)


def run_times_text(seconds: float | None, unknown: int = 0, *, none: str = "-") -> str:
    """Runs' summed time, never a sum that leaves runs of unknown time out without a word.

    ``unknown`` runs recorded no duration (``CostTotals.duration_unknown``: not in
    ``seconds``). ``"1m 35s"``; ``"1m 35s + unknown for 2 runs"`` (as an FPO total says
    its runs that counted none); ``"unknown"`` when every run's time is unknown; ``none``
    for a sum of no known time and no unknown run (a container's own time around its
    children, 0).

    Example:
        >>> run_times_text(95.0), run_times_text(95.0, 2), run_times_text(0.0, 3)
        ('1m 35s', '1m 35s + unknown for 2 runs', 'unknown')
    """
    known = run_time_text(seconds, unknown="")
    if not unknown:
        return known or none
    if not known:
        return "unknown"
    return f"{known} + unknown for {count_of(unknown, 'run')}"


def run_energy_text(kwh: float) -> str:
    """A run's energy as :func:`format_energy` writes it; ``"unknown"`` for NaN.

    NaN is a run that recorded no energy (no meter: ``meters=[]``), as the report's rows hold
    it: never ``"0 mWh"``, nor ``"n/a"``.
    """
    return "unknown" if kwh != kwh else format_energy(kwh)


def run_emissions_text(kg: float) -> str:
    """A run's CO2-eq as :func:`format_emissions` writes it; ``"unknown"`` for NaN."""
    return "unknown" if kg != kg else format_emissions(kg)


def unknown_for(known: str, unknown: int) -> str:
    """``known`` (a sum's text) and how many runs it leaves out: ``"2 Wh + unknown for 3 runs"``.

    ``known`` alone when ``unknown`` is 0.
    """
    return f"{known} + unknown for {count_of(unknown, 'run')}" if unknown else known


def energy_none_recorded(runs: int) -> str:
    """``"unknown (none of the 3 runs recorded energy)"``: a set no run of which had a meter.

    Said of an energy or CO2-eq total (``CostTotals.energy_known`` false), as
    :func:`fpo_none_counted` says an FPO total: never ``"0 mWh"``.
    """
    if runs == 1:
        return "unknown (the run recorded no energy)"
    return f"unknown (none of the {runs} runs recorded energy)"


def known_duration(seconds: float) -> float | None:
    """A run's duration, ``None`` when it recorded none (0.0, or NaN), never a 0 s to sum.

    A record built without one (a run written by hand through the ledger API, or imported)
    holds 0.0: ``ledger ls --json``, ``show --json`` and ``export`` write it as null (an empty
    CSV cell), as the report's JSON does, and the analyses read it as unknown
    (``RunForest.duration_sums``).
    """
    return seconds if seconds > 0 else None


def count_of(count: int, noun: str) -> str:
    """``"1 run"``, ``"3 runs"``: a count and its noun, plural but for one."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


#: Run statuses in the order :func:`ended_tally` lists them: the worst end first.
_ENDED_ORDER = ("failed", "interrupted", "lost", "pruned", "running", "finished")


def ended_tally(statuses: Iterable[str], *, finished: str = "finished") -> str:
    """``"3 failed, 2 interrupted, 1 lost"``: how many runs ended each way, the worst first.

    An interrupted or lost run is not a failed one: notes that count runs with no score say
    how each ended. ``finished``: the words after a count of finished runs (``"finished, no
    part scored"``).

    Example:
        >>> ended_tally(["lost", "failed", "failed", "finished"])
        '2 failed, 1 lost, 1 finished'
    """
    ended: dict[str, int] = {}
    for status in statuses:
        ended[status] = ended.get(status, 0) + 1
    return ", ".join(
        f"{ended[s]} {finished if s == 'finished' else s}" for s in _ENDED_ORDER if s in ended
    )


def count_out_of(count: int, total: int, noun: str) -> str:
    """``count`` of ``total`` things called ``noun``, as a sentence says it (1 <= count <= total).

    ``"1 of 3 trials"``; ``"the one trial"``, ``"both trials"`` and ``"all 5 trials"`` when
    ``count`` is all of them (never ``"1 of 1 trials"``). The verb that follows agrees with
    ``count``: ``"the one trial had no score and counts"``, ``"both trials ... count"``.
    """
    if count != total:
        return f"{count} of {count_of(total, noun)}"
    if total == 1:
        return f"the one {noun}"
    return f"both {noun}s" if total == 2 else f"all {count_of(total, noun)}"


def and_list(words: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``: words listed as a sentence lists them.

    Example:
        >>> and_list(["1 Wh", "2 g CO2-eq", "3 MFPO"])
        '1 Wh, 2 g CO2-eq and 3 MFPO'
    """
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def percent_shares(parts: Sequence[float], *, decimals: int = 1) -> list[float] | None:
    """Each part's percent of their sum, rounded so that the shares shown add up to 100.

    Rounded one by one, shares that add up to 100 can read 100.1 or 99.9 (the demo's energy by
    role read 56.5 + 4.1 + 6.0 + 10.7 + 22.8 = 100.1 % above its "100.0 %"): each is rounded
    down to ``decimals`` places, and the units of the last place still missing go to the
    largest remainders (Hamilton's method), so no share moves by a unit or more. Equal parts
    keep equal shares, and a larger part never reads less than a smaller one: where the parts
    next in line are equal and fewer units are missing than they are, they all take one or
    none, whichever leaves the sum nearer 100 (three thirds read 33 + 33 + 33; of two equal
    parts for one unit, as each rounds alone).
    ``None`` when the parts add up to no positive finite sum (no share to give).

    Example:
        >>> percent_shares([56.461, 4.079, 6.010, 10.690, 22.760])
        [56.5, 4.1, 6.0, 10.7, 22.7]
        >>> percent_shares([0.335, 0.336, 0.329], decimals=0)
        [33.0, 34.0, 33.0]
        >>> percent_shares([1, 1, 1], decimals=0)
        [33.0, 33.0, 33.0]
    """
    whole = math.fsum(parts)
    if not (math.isfinite(whole) and whole > 0) or any(not part >= 0 for part in parts):
        return None
    scale = 10**decimals
    exact = [100 * scale * part / whole for part in parts]
    units = [math.floor(e) for e in exact]
    # remainders to 9 places: equal ones but for float noise; of those the larger part's first
    remainders = [round(e - u, 9) for e, u in zip(exact, units, strict=True)]
    _give_missing(units, 100 * scale - sum(units), remainders, list(parts))
    return [u / scale for u in units]


def _give_missing(
    units: list[int], missing: int, remainders: Sequence[float], parts: Sequence[float]
) -> None:
    """Add the ``missing`` units to ``units``, largest remainder first, equal parts together.

    Parts of one value have one remainder and take a unit each or none. Where fewer units are
    left than such parts, they take one if that leaves the sum nearer its target (on a tie: if
    their remainder is a half or more, as each rounds alone), and the giving stops there: a
    smaller part after them does not take one before them.
    """
    groups: dict[float, list[int]] = {}
    for k in sorted(range(len(parts)), key=lambda k: (-remainders[k], -parts[k])):
        groups.setdefault(parts[k], []).append(k)
    for group in groups.values():
        if missing <= 0:
            return
        over = len(group) - missing  # units too many if each takes one
        if over > 0 and (over > missing or (over == missing and remainders[group[0]] < 0.5)):
            return
        for k in group:
            units[k] += 1
        missing -= len(group)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON: NaN and infinities become "NaN", "Infinity", "-Infinity".

    Dicts (keys as text), lists and tuples are converted throughout; anything else is returned
    as it is.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def fpo_text(
    fpo: int | None, unknown: int = 0, lower_bound: int | bool = 0, *, none_of: int = 0
) -> str:
    """FPO with its unit, never a zero that stands for "not counted".

    Args:
        fpo: the FPO counted (``None``: unknown).
        unknown: how many runs' FPO is unknown (not in ``fpo``): ``CostTotals.fpo_unknown``,
            where a run that counted none of its own counts as its children inside it.
        lower_bound: how many runs in ``fpo`` counted a lower bound (``CostTotals.
            fpo_lower_bound``; ops with no rule or on complex tensors), or whether ``fpo`` is
            one: ``fpo`` is then "at least".
        none_of: the number of runs of the set when none of them counted FPO (``CostTotals.
            runs`` where ``fpo_known`` is false): said of them all, as ``unknown`` counts
            only the innermost (45 runs in trials over folds: the 29 folds and refits).

    Returns:
        ``"1.23 GFPO"``, ``"at least 1.23 GFPO"``, ``"1.23 GFPO + unknown for 3 runs"``,
        ``"FPO unknown (none of the 45 runs counted FPO)"`` (nothing counted, ``none_of``),
        ``"FPO unknown for 26 runs"`` (nothing counted by the runs ``unknown`` counts) or
        ``"FPO unknown"``.
    """
    if none_of:
        return fpo_none_counted(none_of)
    if fpo is None:
        return "FPO unknown"
    least = "at least " if lower_bound else ""
    if not unknown:
        return least + format_fpo(fpo)
    runs = count_of(unknown, "run")
    if fpo == 0:
        return f"FPO unknown for {runs}"
    return f"{least}{format_fpo(fpo)} + unknown for {runs}"


def run_id_if_named_alike(name: str, run_id: str, names: Iterable[str]) -> str:
    """`` (run 1f6d7f61)`` when another run of ``names`` has the name ``name``, else ``""``.

    A search run twice into one study (an in-memory Optuna study re-created each time) has two
    ``trial-1``: "final run: trial-1" did not say which.
    """
    return f" (run {run_id[:8]})" if sum(1 for n in names if n == name) > 1 else ""
