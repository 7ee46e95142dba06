"""The report's sentences: provenance lines, hardware, the model-card block, the compute paragraph.

Plain text built from the ledger's figures only; the renderers escape it for their format.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from greenprint._format import (
    count_of,
    energy_none_recorded,
    format_duration,
    format_emissions,
    format_energy,
    format_fpo,
    format_share,
    fpo_text,
    percent_shares,
    run_id_if_named_alike,
    run_time_text,
)
from greenprint._provenance import Provenance
from greenprint._records import RunRecord
from greenprint._units import kg_to_g
from greenprint.analysis import CostTotals, PriceTag, ProvenanceSummary
from greenprint.report._model import ModelCardEmissions

__all__ = [
    "compute_statement",
    "fpo_text",
    "energy_provenance",
    "geographical_location",
    "hardware_descriptions",
    "location_of",
    "model_card_emissions",
    "short_source",
]


def short_source(source: str) -> str:
    """A provenance string without its parenthesised detail: ``"table:DE:2023"``."""
    return source.split(" (", 1)[0].strip()


def _share_text(summary: ProvenanceSummary) -> str:
    measured, estimated = summary.measured_share, summary.estimated_share
    if measured is None:
        return "energy: none recorded"
    shares = [measured, estimated or 0.0, summary.unknown_share or 0.0]
    # whole percents that add up to 100 (a third each read 33% + 33% + 33%)
    rounded = percent_shares(shares, decimals=0) or [100 * share for share in shares]
    parts = []
    for share, percent, what in zip(
        shares,
        rounded,
        ("measured by hardware counters", "estimated", "of unknown origin"),
        strict=True,
    ):
        if share and share >= 0.0005:
            parts.append(f"{percent:.0f}% {what}" if percent >= 1 else f"<1% {what}")
    return "energy: " + (", ".join(parts) or "none recorded")


def _sources_text(sources: Mapping[str, Sequence[str]]) -> str:
    """``"cpu: rapl, estimate:tdp; ram: ..."`` (components with no source left out)."""
    return "; ".join(f"{k}: {', '.join(_folded(v))}" for k, v in sources.items() if v)


def _folded(texts: Sequence[str]) -> list[str]:
    """A component's sources, each once: one that is another with a note after it, that note.

    The note is said of some runs. A study of short and long runs recorded
    ``estimate:default-per-core (4 W/core x 2; ...)`` and the same text with ``(idle-floor share
    rough: ...)`` after it (its runs under 100 ms), and the line gave the long text twice; it
    now reads ``estimate:default-per-core (4 W/core x 2; ...) (some runs: idle-floor share
    rough: ...)``.

    Example:
        >>> _folded(["rapl", "estimate:tdp (x)", "estimate:tdp (x) (rough)"])
        ['rapl', 'estimate:tdp (x) (some runs: rough)']
    """
    given = set(texts)
    notes: dict[str, list[str]] = {}
    kept: list[str] = []
    for text in texts:
        base = next(
            (b for b in given if text != b and text.startswith(b + " (") and text.endswith(")")),
            None,
        )
        if base is None:
            kept.append(text)
        else:
            notes.setdefault(base, []).append(text[len(base) + 2 : -1])
    return [text + "".join(f" (some runs: {n})" for n in notes.get(text, ())) for text in kept]


def energy_provenance(summary: ProvenanceSummary) -> tuple[str, ...]:
    """Lines saying where the energy and CO2-eq figures came from.

    Example lines: ``"energy: 100% estimated (cpu: estimate:tdp ...; ram: ...)"``,
    ``"carbon intensity: table:DE:2023 (...)"``, ``"PUE: 1.2 (preset:...)"``.

    The sources beside the share are those of the runs the share is made of; where runs
    inside them (parts, a search's fits inside a trial) recorded others, those are listed
    apart, as what they are: ``"energy: 100% measured by hardware counters (the runs summed
    in the total: cpu: rapl; the runs inside them (their energy is in those runs' figures)
    also recorded cpu: estimate:tdp ...)"``.
    """
    sources = _sources_text(summary.sources)
    if summary.counted_sources is not None:
        inside = {
            k: tuple(s for s in v if s not in (summary.counted_sources.get(k) or ()))
            for k, v in summary.sources.items()
        }
        sources = (
            "the runs summed in the total: "
            f"{_sources_text(summary.counted_sources) or 'no source recorded'}; the runs inside "
            "them (their energy is in those runs' figures) also recorded " + _sources_text(inside)
        )
    lines = [_share_text(summary) + (f" ({sources})" if sources else "")]
    if summary.intensity_sources:
        lines.append("carbon intensity: " + "; ".join(summary.intensity_sources))
    else:
        lines.append("carbon intensity: not recorded")
    pue = ", ".join(f"{v:g}" for v in summary.pue_values) or "not recorded"
    detail = "; ".join(summary.pue_sources)
    lines.append(f"PUE: {pue}" + (f" ({detail})" if detail else ""))
    return tuple(lines)


def _describe_hardware(hw: dict[str, Any]) -> str | None:
    cpu = hw.get("cpu_model")
    if not cpu:
        return None
    details = []
    cores = hw.get("logical_cores")
    if isinstance(cores, int) and cores > 0:
        details.append(f"{cores} logical CPUs")
    ram = hw.get("ram_gb")
    if isinstance(ram, (int, float)) and ram > 0:
        details.append(f"{ram:.0f} GB RAM")
    sockets = hw.get("sockets")
    packages = f"{sockets} x " if isinstance(sockets, int) and sockets > 1 else ""
    text = f"{packages}{cpu}" + (f" ({', '.join(details)})" if details else "")
    gpus = hw.get("gpus") or []
    names = [str(g.get("name", "GPU")) if isinstance(g, dict) else str(g) for g in gpus]
    if names:
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        text += ", " + ", ".join(f"{n} x {name}" for name, n in counts.items())
    else:
        text += ", no GPU"
    return text


#: What the report says of the hardware when no run recorded any.
_NO_HARDWARE = "unknown (the runs recorded no hardware)"


def hardware_descriptions(runs: Iterable[RunRecord]) -> tuple[str, ...]:
    """The distinct hardware the runs recorded, most used first (``"unknown"`` if none).

    Runs on one host (or none recorded): each distinct hardware, ``"AMD EPYC (64 logical
    CPUs, 512 GB RAM), 8 x NVIDIA H100"`` (CPU packages counted when more than one:
    ``"2 x Xeon ..."``). Runs on several hosts (ledgers merged, one database written from
    several machines, a job over several nodes): each machine, with the runs it carried and
    the ranks of distributed jobs among them, ``"host node1: ... (3 runs, 2 ranks of job
    exp7)"``; machines of the same hardware are not one machine, and a machine none of whose
    runs recorded its hardware reads ``"host node2: hardware not recorded (1 run)"``.
    """
    items = runs if isinstance(runs, Sequence) else list(runs)
    hosts = set(map(_HOST, items))
    hosts.difference_update(("", None))
    several = len(hosts) > 1
    # a study's runs share a few hardware dictionaries (the ledger decodes each distinct text
    # once): each dictionary is described once, by its id, and the runs are counted by host
    # and id in C (100,000 runs: 21 ms CPU on one host, 54 ms on 8 hosts with job ranks)
    hardware = list(map(_HARDWARE, items))
    ids = list(map(id, hardware))
    texts = _described(dict(zip(ids, hardware, strict=True)))
    by: Iterable[tuple[tuple[str | None, int], int]] = (
        Counter(zip(map(_HOST, items), ids, strict=True)).items()
        if several
        else ((("", ident), n) for ident, n in Counter(ids).items())
    )
    counts: dict[tuple[str, str], int] = {}
    bare: dict[str, int] = {}  # several hosts: runs that recorded no hardware, by host
    for (host, ident), n in by:
        text = texts[ident]
        if text:
            counts[host or "", text] = counts.get((host or "", text), 0) + n
        elif several and host:
            bare[host] = bare.get(host, 0) + n
    described = {host for host, _ in counts}
    for host, n in bare.items():  # a machine none of whose runs recorded hardware: named too
        if host not in described:
            counts[host, _NOT_RECORDED] = n
    if not counts:
        return (_NO_HARDWARE,)
    order = sorted(counts, key=lambda where: (-counts[where], where[0] == "", where[0]))
    if not several:
        return tuple(text for _, text in order)
    ranks: dict[tuple[str, str], set[tuple[Any, ...]]] = {}
    for run, ident in zip(items, ids, strict=True):
        text = texts[ident]
        if text and run.job_id is not None and run.local_rank is not None:
            ranks.setdefault((run.host or "", text), set()).add(
                (run.job_id, run.node_rank, run.local_rank)
            )
    return tuple(
        f"{f'host {host}' if host else 'an unrecorded host'}: {text} "
        f"({count_of(counts[host, text], 'run')}{_ranks_text(ranks.get((host, text), set()))})"
        for host, text in order
    )


#: A machine none of whose runs recorded its hardware (several machines: each is named).
_NOT_RECORDED = "hardware not recorded"
_HOST = operator.attrgetter("host")
_HARDWARE = operator.attrgetter("hardware")


def _described(objects: dict[int, Any]) -> dict[int, str | None]:
    """Each hardware dictionary's description (``None``: no CPU recorded), by the object's id.

    Dictionaries of the same hardware are described once; GPUs are compared by name (a GPU's
    UUID makes no other hardware).
    """
    seen: dict[tuple[Any, ...], str | None] = {}
    out: dict[int, str | None] = {}
    for ident, hardware in objects.items():
        hw = hardware if isinstance(hardware, dict) else {}
        gpus = [g.get("name") if isinstance(g, dict) else g for g in hw.get("gpus") or []]
        key = (
            hw.get("cpu_model"),
            hw.get("sockets"),
            hw.get("logical_cores"),
            hw.get("ram_gb"),
            repr(gpus),
        )
        if key not in seen:
            seen[key] = _describe_hardware(hw)
        out[ident] = seen[key]
    return out


def _ranks_text(ranks: set[tuple[Any, ...]]) -> str:
    """``", 2 ranks of job exp7"``, ``", 4 ranks of 2 jobs"``, or ``""`` without ranks."""
    if not ranks:
        return ""
    jobs = {job for job, _, _ in ranks}
    of = f"job {next(iter(jobs))}" if len(jobs) == 1 else f"{len(jobs)} jobs"
    return f", {count_of(len(ranks), 'rank')} of {of}"


def geographical_location(summary: ProvenanceSummary) -> str:
    """The grid region(s) behind the carbon intensity, or why the location is unknown."""
    return location_of(summary.intensity_sources)


def location_of(intensity_sources: Iterable[str]) -> str:
    """The grid region(s) of intensity sources, or why the location is unknown.

    The model card's ``geographical_location``, of a report and of the Hugging Face callback's
    card alike: a place, not a provenance string.

    Example:
        >>> location_of(["table:DE:2023 (Our World in Data / Ember)"])
        'DE'
        >>> location_of(["default:world:2023 (generation-weighted mean ...)"])
        'unknown (no region set: world-average grid intensity)'
    """
    regions: list[str] = []
    others: list[str] = []
    for source in intensity_sources:
        root = Provenance.parse(source).root  # "env:GREENPRINT_REGION -> table:DE:2023 (...)"
        region, _, year = root.source.rpartition(":")
        if root.kind == "table" and region and year.isdigit():
            if region not in regions:
                regions.append(region)
        elif root.kind == "default":
            others.append("unknown (no region set: world-average grid intensity)")
        elif root.kind == "csv":
            others.append("hourly intensity series (CSV)")
        else:
            others.append(f"unknown (intensity from {short_source(source)})")
    parts = regions + [o for k, o in enumerate(others) if o not in others[:k]]
    return ", ".join(parts) if parts else "unknown (no intensity recorded)"


def _energy_clause(summary: ProvenanceSummary) -> str:
    measured, estimated = summary.measured_share or 0.0, summary.estimated_share or 0.0
    if measured >= 0.995:
        how = "measured with hardware counters"
    elif estimated >= 0.995:
        how = "estimated from hardware specifications and utilisation"
    elif measured or estimated:
        how = f"{measured:.0%} measured with hardware counters, {estimated:.0%} estimated"
    else:
        how = "of unknown origin"
    return how


def model_card_emissions(
    tag: PriceTag, *, hardware: Sequence[str], training_type: str, version: str
) -> ModelCardEmissions:
    """The Hugging Face ``co2_eq_emissions`` block for the study (grams CO2-eq)."""
    summary = tag.provenance
    intensity = ", ".join(short_source(s) for s in summary.intensity_sources) or "unrecorded"
    pue = ", ".join(f"{v:g}" for v in summary.pue_values) or "unrecorded"
    counted = (  # a study of no trial (baselines, a learning curve...) counts its runs
        f"{count_of(tag.total.trials, 'trial')} (failed and pruned included)"
        if tag.total.trials
        else f"{count_of(tag.total.runs, 'run')} (no trial)"
    )
    if tag.total.trials and tag.total.runs > tag.total.trials:  # the grams are every run's
        counted += f" in {count_of(tag.total.runs, 'run')}"
    energy = f"energy {_energy_clause(summary)}"
    total = tag.total
    if not total.energy_known:  # no meter recorded any: emissions null, never 0 g
        energy = "energy unknown (" + energy_none_recorded(total.runs).removeprefix("unknown (")
    elif total.energy_unknown:  # the grams leave these out: said, as the price tag says it
        energy += f", not counting {count_of(total.energy_unknown, 'run')} that recorded none"
    source = f"greenprint {version}: {counted}, {energy}, grid intensity {intensity}, PUE {pue}"
    return ModelCardEmissions(
        emissions_g=kg_to_g(total.emissions_kg) if total.energy_known else math.nan,
        source=source,
        training_type=training_type,
        geographical_location=geographical_location(summary),
        hardware_used="; ".join(hardware),
        final_emissions_g=None if tag.final is None else kg_to_g(tag.final.emissions_kg),
    )


def _intensity_values(runs: Sequence[RunRecord]) -> str:
    values = sorted(
        {
            round(r.intensity_g_per_kwh, 3)
            for r in runs
            if r.intensity_g_per_kwh is not None and math.isfinite(r.intensity_g_per_kwh)
        }
    )
    if not values:
        return "an unrecorded grid intensity"
    if len(values) == 1:
        return f"a grid intensity of {values[0]:.4g} g CO2-eq/kWh"
    return f"grid intensities of {values[0]:.4g}-{values[-1]:.4g} g CO2-eq/kWh"


def _pue_values(values: Sequence[float]) -> str:
    """``"a PUE of 1.2"``, or of several runs ``"PUEs of 1-1.2"``, as the intensities read.

    Several read "a PUE of 1, 1.2" before.
    """
    found = sorted(set(values))
    if not found:
        return "an unrecorded PUE"
    if len(found) == 1:
        return f"a PUE of {found[0]:g}"
    return f"PUEs of {found[0]:g}-{found[-1]:g}"


def compute_statement(
    tag: PriceTag,
    runs: Sequence[RunRecord],
    *,
    study: str,
    hardware: Sequence[str],
    version: str,
    final_scores: Sequence[tuple[str, float]] = (),
) -> str:
    """A compute-reporting paragraph for a paper's checklist: every trial counted.

    ``final_scores`` are the held-out scores the final run logged when it has no score of the
    report's metric (a retrain scored on a test split): the paragraph gives them instead.

    Hardware, hours of run time, energy, CO2-eq, FPO, the number of trials by status (failed
    and pruned ones included) and the final model's own share, all from the ledger.
    """
    total = tag.total
    statuses = ", ".join(f"{v.trials} {k}" for k, v in tag.by_status.items() if v.trials)
    statuses = f" ({statuses})" if statuses else ""  # no trial: no "()"
    summary = tag.provenance
    hours = total.duration_s / 3600.0
    pue = _pue_values(summary.pue_values)
    intensity = "; ".join(short_source(s) for s in summary.intensity_sources) or "unrecorded"
    # fpo_unknown counts no container: a run that counted none of its own is its children
    unknown = count_of(total.fpo_unknown, "run")
    if not total.fpo_known:  # no run counted any: said of them all, not of the innermost
        fpo = "their floating-point operations (FPO) are unknown (" + (
            "the run counted none)" if total.runs == 1 else f"none of the {total.runs} counted any)"
        )
    elif total.fpo_unknown and total.fpo == 0:
        fpo = f"their floating-point operations (FPO) are unknown ({unknown} counted none)"
    else:
        fpo = f"{format_fpo(total.fpo)} (floating-point operations)"
        if total.fpo_lower_bound:
            bound = count_of(total.fpo_lower_bound, "run")
            fpo = (
                f"at least {format_fpo(total.fpo)} (floating-point operations; a lower bound: "
                f"{bound} counted ops with no FPO rule or on complex tensors)"
            )
        if total.fpo_unknown:
            fpo += f", not counting {unknown} whose FPO is unknown"
    if not total.energy_known:  # no meter recorded any: unknown, never "used 0 mWh"
        used = (
            "their IT energy and CO2-eq are unknown ("
            + energy_none_recorded(total.runs).removeprefix("unknown (")[:-1]
            + ": tracked with no energy meter)"
        )
    else:
        used = (
            f"used {format_energy(total.energy_kwh)} of IT energy ({_energy_clause(summary)}), "
            f"or {format_emissions(total.emissions_kg)} with {_intensity_values(runs)} "
            f"({intensity}) and {pue}"
        )
        if total.energy_unknown:
            used += (
                f", not counting {count_of(total.energy_unknown, 'run')} that recorded no "
                "energy (tracked with no energy meter)"
            )
    text = [
        f"The study “{study}” comprised {count_of(total.trials, 'trial')}{statuses} in "
        f"{count_of(total.runs, 'run')}, every one counted in the totals that follow, on "
        f"{_machines(runs, hardware)}.",
        f"They ran for {_run_time(hours, total, tag.elapsed_s)} and {used}; and {fpo}.",
    ]
    final = tag.final
    if final is not None:
        score = "" if final.score is None else f", {final.metric} = {final.score:.4g}"
        if final.score is None and final_scores:
            score = "".join(f", {name} = {value:.4g}" for name, value in final_scores)
        share = (
            f", {format_share(final.energy_share)} of the study's energy"
            if final.energy_share is not None
            else ""
        )
        fpo_final = fpo_text(final.fpo, lower_bound=final.fpo_lower_bound)
        # a search run twice into one study has two runs of its name: its id tells which
        alike = run_id_if_named_alike(final.name, final.run_id, (r.name for r in runs))
        named = f", id {final.run_id[:8]}" if alike else ""
        energy = (  # NaN: no meter recorded it (nor every run inside it)
            f"{format_energy(final.energy_kwh)} of energy, {format_emissions(final.emissions_kg)}"
            if math.isfinite(final.energy_kwh)
            else "an unknown energy and CO2-eq (no meter recorded them)"
        )
        text.append(
            f"The final model (run “{final.name}”{named}{score}) alone used "
            f"{energy}, {fpo_final} and {run_time_of(final.duration_s)}{share}."
        )
    text.append(f"Energy and emissions were recorded with greenprint {version}.")
    return " ".join(text)


def _machines(runs: Sequence[RunRecord], hardware: Sequence[str]) -> str:
    """The hardware for the compute statement, its machines counted when there are several.

    ``"2 machines: host a: ...; host b: ..."`` when the runs recorded several hosts
    (:func:`hardware_descriptions` names each), else the hardware alone.
    """
    hosts = {run.host for run in runs if run.host}
    if tuple(hardware) == (_NO_HARDWARE,):  # "..., on unknown (the runs recorded no hardware)"
        where = f"{len(hosts)} machines" if len(hosts) > 1 else "hardware"
        return f"{where} the runs did not record"
    text = "; ".join(hardware)
    return f"{len(hosts)} machines: {text}" if len(hosts) > 1 else text


def run_time_of(duration_s: float) -> str:
    """``"1m 35s of run time"``, or ``"an unknown run time"`` where none was recorded."""
    known = run_time_text(duration_s, unknown="")
    return f"{known} of run time" if known else "an unknown run time"


def _run_time(hours: float, total: CostTotals, elapsed_s: float) -> str:
    """How long the runs ran, summed (parallel runs add up), beside the wall-clock span.

    In hours as papers report compute, from one hour; a shorter study in minutes and seconds
    (a study of 41 s read "0.0113 hours", one of seconds "9.7e-05 hours"). Runs that recorded
    no duration (``total.duration_unknown``) are said, not summed as 0: "not counting 2 runs
    whose duration is unknown".
    """
    duration_s = total.duration_s
    if total.duration_text() == "unknown":  # no run recorded its time: not "0.0 s in total"
        return "an unknown time (no run recorded its duration)"
    left_out = ""
    if total.duration_unknown:
        runs = count_of(total.duration_unknown, "run")
        left_out = f"; not counting {runs} whose duration is unknown"
    if hours >= 1:
        return (
            f"{hours:.3g} hours in total ({format_duration(duration_s)} of run time over "
            f"{format_duration(elapsed_s)} of wall-clock time{left_out})"
        )
    return (
        f"{format_duration(duration_s)} in total (run time, summed over the runs, over "
        f"{format_duration(elapsed_s)} of wall-clock time{left_out})"
    )
