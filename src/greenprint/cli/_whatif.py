"""``greenprint whatif``: a run's recorded energy priced in other regions and at other hours."""

from __future__ import annotations

import math
from typing import Any

import click

from greenprint.cli._common import TEXT, ledger_option

__all__ = ["command"]

UNIT = "g CO2-eq/kWh"


def _saving(kg: float, pct: float | None, unit_of: float | None = None) -> str:
    """A saving as text; a zero one (the recorded region's) in ``unit_of``'s unit (kg CO2-eq)."""
    from greenprint._format import format_emissions
    from greenprint.greener._whatif import saving_text

    if kg == 0 and unit_of:
        return saving_text(kg, pct, emissions=lambda v: format_emissions(v, unit_of=unit_of))
    return saving_text(kg, pct)


def _hour(hours: float, zone: str) -> str:
    """Hours since midnight as a clock shows them: 06:59:50 is 06:59, never the next hour."""
    # truncated, as a clock reads (rounding put a run started at 06:59:50, priced in the
    # 06:00 hour, at "07:00"); the small epsilon keeps 6.9999999999 from float sums at 07:00
    minutes = math.floor(hours * 60 + 1e-6) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d} {zone}"


def _start(hour: int, result: Any) -> str:
    """A start hour on the result's clock, with its UTC time when that is another zone."""
    shown = _hour(hour, result.timezone)
    if result.timezone == "UTC":
        return shown
    return f"{shown} ({_hour(hour - result.utc_offset_s / 3600.0, 'UTC')})"


def _offset(seconds: float) -> str:
    sign = "-" if seconds < 0 else "+"
    minutes = round(abs(seconds) / 60)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _show(result: Any) -> None:
    from greenprint._format import format_emissions, format_energy, run_time_text
    from greenprint.cli._cells import safe
    from greenprint.greener._whatif import percent_text

    # for a run priced by an hourly series, whatif() gives the intensity that applied
    g_per_kwh = result.intensity_g_per_kwh
    applied_source = result.intensity_source or "unrecorded"
    intensity = "-" if g_per_kwh is None else f"{g_per_kwh:.5g} {UNIT}"
    recorded = ""
    if result.recorded_pue is not None and result.recorded_pue != result.pue:
        recorded = f" (recorded at PUE {result.recorded_pue:g})"
    source = safe(applied_source, limit=120)
    click.echo(
        f"run       {safe(result.run_name, limit=40)} ({result.run_id[:12]}): "
        f"{format_energy(result.energy_kwh)} x PUE {result.pue:g}{recorded} = "
        f"{format_energy(result.facility_energy_kwh)} over "
        f"{run_time_text(result.duration_s, unknown='an unknown time')}"
    )
    if math.isfinite(result.emissions_kg):
        click.echo(f"recorded  {format_emissions(result.emissions_kg)} at {intensity} ({source})")
    else:  # NaN in the ledger: unknown, and so is every saving against it
        click.echo("recorded  unknown CO2-eq (none recorded: the savings below are unknown)")
    click.echo("")
    width = max([len(r.region) for r in result.regions] + [6])
    click.echo(f"{'region':<{width}}  {UNIT:>13}  {'CO2-eq':>17}  {'saving vs recorded':>26}  name")
    # a zero (the recorded region's saving) reads in its neighbours' unit, not "0 mg" beside µg
    savings = [abs(r.saving_kg) for r in result.regions if r.saving_kg]
    near = max(savings, default=None)
    for r in result.regions:
        shown = format_emissions(r.emissions_kg, unit_of=None if r.emissions_kg else near)
        click.echo(
            f"{r.region:<{width}}  {r.g_per_kwh:>13.1f}  {shown:>17}  "
            f"{_saving(r.saving_kg, r.saving_pct, near):>26}  {r.name} ({r.year})"
        )
    if result.best is not None:
        best = result.best
        zone = safe(result.timezone, limit=60)
        click.echo("")
        click.echo(f"hourly profile: {safe(result.hourly_source, limit=100)}")
        if result.timezone != "UTC":
            when = "when the run started" if result.actual_start_hour is not None else "now"
            click.echo(f"time zone   {zone} ({_offset(result.utc_offset_s)} {when})")
        click.echo(
            f"best start  {_start(best.start_hour, result)}: "
            f"{format_emissions(best.emissions_kg)} "
            f"(mean {best.mean_g_per_kwh:.1f} {UNIT} over the run)"
        )
        if result.actual_start_hour is None or result.hour_saving_kg is None:
            click.echo("actual      unknown: the run recorded no start time")
        elif result.hour_saving_kg < -1e-9 * best.emissions_kg:
            # a run of 1.5 h started at 00:30 can beat every whole-hour start: its start lies
            # between them; "saving -16.7 g (-25 %) by starting at 00:00" read as a contradiction
            more = format_emissions(-result.hour_saving_kg)
            pct = -result.hour_saving_pct if result.hour_saving_pct is not None else None
            share = "" if pct is None else f" ({percent_text(pct)} more)"
            click.echo(
                f"actual      {_hour(result.actual_start_hour, zone)}: "
                f"{format_emissions(result.actual_start_emissions_kg)}; cleaner than every "
                f"whole-hour start: the best of them, {_hour(best.start_hour, zone)}, emits "
                f"{more}{share}"
            )
        else:
            click.echo(
                f"actual      {_hour(result.actual_start_hour, zone)}: "
                f"{format_emissions(result.actual_start_emissions_kg)}; saving "
                # a zero saving (the run started at the best hour) in the unit of the figures
                f"{_saving(result.hour_saving_kg, result.hour_saving_pct, best.emissions_kg)} "
                f"by starting at {_hour(best.start_hour, zone)}"
            )
    for note in result.notes:
        click.echo(f"note: {safe(note)}")


def _study_whatif(
    study: str, ledger: str | None, codes: list[str] | None, pue: str | None
) -> dict[str, Any]:
    """The study's energy (counted once, as its price tag) priced in ``codes``, as JSON.

    Raises:
        UnknownStudyError: no such study; AnalysisError: none of its runs recorded energy.
    """
    from greenprint._exceptions import AnalysisError
    from greenprint.analysis import price_tag
    from greenprint.carbon import resolve_pue
    from greenprint.greener._whatif import DEFAULT_REGIONS, price_regions
    from greenprint.ledger import get_ledger
    from greenprint.report._whatif import whatif_section

    given = None if pue is None else resolve_pue(pue).value  # refused before the ledger
    led = get_ledger(ledger, create=False)
    try:  # the points a report reads: the price tag's roles and final run are read from them
        runs = led._read(study=study, points="score")
    finally:
        led.close()
    tag = price_tag(runs)
    section = whatif_section(runs, tag, regions=codes or DEFAULT_REGIONS)
    if section is None:  # unknown energy is never priced as 0
        why = (
            (
                "its one run recorded no energy (no energy meter)"
                if len(runs) == 1
                else f"none of its {len(runs)} runs recorded energy (no energy meter)"
            )
            if tag.total.energy_unknown >= len(runs)
            else "its runs recorded 0 kWh"
        )
        raise AnalysisError(f"study {study!r} has no energy to price: {why}")
    notes = []
    factor, regions = section.pue, section.regions
    if given is not None and given != section.pue:
        factor = given
        regions = price_regions(
            section.energy_kwh * given, section.emissions_kg, codes or DEFAULT_REGIONS
        )
        notes.append(
            f"priced at PUE {given:g}, where the runs recorded PUE {section.pue:.3g} (weighted "
            "by their energy): the savings against what they recorded include the facility's"
        )
    if section.energy_unknown:
        notes.append(
            f"{section.energy_unknown} of the {len(runs)} runs recorded no energy (no energy "
            "meter): their energy is unknown and not priced"
        )
    return {
        "study": study,
        "runs": len(runs),
        "trials": tag.total.trials,
        "energy_kwh": section.energy_kwh,
        "energy_unknown": section.energy_unknown,
        "pue": factor,
        "recorded_pue": section.pue,
        "facility_energy_kwh": section.energy_kwh * factor,
        "emissions_kg": section.emissions_kg,
        "regions": [r.to_dict() for r in regions],
        "notes": notes,
    }


def _show_study(result: dict[str, Any]) -> None:
    from greenprint._format import count_of, format_emissions, format_energy
    from greenprint.cli._cells import safe

    recorded = ""
    if result["pue"] != result["recorded_pue"]:
        recorded = f" (recorded at PUE {result['recorded_pue']:.3g})"
    click.echo(
        f"study     {safe(result['study'], limit=40)} ({count_of(result['runs'], 'run')}, energy "
        "counted "
        f"once as in its price tag): {format_energy(result['energy_kwh'])} x PUE "
        f"{result['pue']:.3g}{recorded} = {format_energy(result['facility_energy_kwh'])}"
    )
    click.echo(f"recorded  {format_emissions(result['emissions_kg'])}")
    click.echo("")
    regions = result["regions"]
    width = max([len(r["region"]) for r in regions] + [6])
    click.echo(f"{'region':<{width}}  {UNIT:>13}  {'CO2-eq':>17}  {'saving vs recorded':>26}  name")
    near = max((abs(r["saving_kg"]) for r in regions if r["saving_kg"]), default=None)
    for r in regions:
        kg = r["emissions_kg"]
        shown = format_emissions(kg, unit_of=None if kg else near)
        saving = _saving(r["saving_kg"], r["saving_pct"], near)
        click.echo(
            f"{r['region']:<{width}}  {r['g_per_kwh']:>13.1f}  {shown:>17}  "
            f"{saving:>26}  {r['name']} ({r['year']})"
        )
    for note in result["notes"]:
        click.echo(f"note: {safe(note)}")


@click.command("whatif")
@click.option(
    "--run", "run_id", type=TEXT, default=None, metavar="ID", help="Run id (or unique prefix)."
)
@click.option(
    "--study",
    type=TEXT,
    default=None,
    metavar="NAME",
    help="Price a whole study instead of one run: its energy counted once, as its price tag "
    "and its report count it, at its runs' PUE weighted by energy (or --pue).",
)
@ledger_option
@click.option(
    "--regions",
    default=None,
    metavar="CODES",
    help="Regions to price the run in, separated by commas (DE,FR,aws:eu-north-1) "
    "[default: a reference set from the world average to coal-heavy grids and cloud regions].",
)
@click.option(
    "--hourly",
    default=None,
    metavar="CSV",
    help="Hourly intensity CSV (timestamp,g_per_kwh) covering at least 24 hours: adds the "
    "best start hour of the day for a run of this length.",
)
@click.option(
    "--timezone",
    default=None,
    metavar="ZONE",
    help="With --hourly: show start hours on this IANA time zone's clock (Europe/Berlin, "
    "America/New_York), from this machine's time-zone data [default: UTC].",
)
@click.option(
    "--pue",
    default=None,
    metavar="PUE|PRESET",
    help="Price the run's IT energy at this PUE, a number in [1, 3] or a preset (google, aws, "
    "azure...): what it would have emitted in another facility [default: the run's].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(
    run_id: str | None,
    study: str | None,
    ledger: str | None,
    regions: str | None,
    hourly: str | None,
    timezone: str | None,
    pue: str | None,
    as_json: bool,
) -> None:
    """Price a run's (or a study's) recorded energy in other regions and at the best start hour.

    The run's energy (with its PUE) at each region's grid intensity from the tables shipped
    with greenprint, beside the CO2-eq it recorded, with the saving in CO2-eq (ng to t
    as it fits; kg with --json) and percent. With --hourly, the run's energy spread over its
    duration is integrated against the file's mean intensity of each UTC hour of the day, for
    every start hour: the best one and the saving against the run's actual start time. Hours
    are UTC, or whole hours of --timezone's clock (at its offset when the run started).
    --study prices a whole study's energy (counted once, as its price tag counts it) by region.
    Offline: no network.
    """
    from greenprint._exceptions import ConfigError
    from greenprint.greener import whatif

    if (run_id is None) == (study is None):
        raise click.UsageError("give --run ID (one run) or --study NAME (a whole study)")
    if study is not None and (hourly is not None or timezone is not None):
        raise click.UsageError(
            "--hourly and --timezone price one run's start hour: give --run ID, not --study"
        )
    if run_id is not None and not run_id.strip():
        raise ConfigError(f"--run needs a run id (or a unique prefix of one), not {run_id!r}")
    if study is not None and not study.strip():
        raise ConfigError(f"--study needs a study name, not {study!r}")
    codes = None
    if regions is not None:
        codes = [c.strip() for c in regions.split(",") if c.strip()]
        if not codes:
            raise ConfigError(f"--regions needs region codes separated by commas, not {regions!r}")
    if timezone is not None and hourly is None:  # it places the hourly profile's hours only
        raise click.UsageError(
            "--timezone applies only with --hourly CSV: it puts the best start hour on that "
            "zone's clock (the prices by region do not depend on it)"
        )
    if study is not None:
        from greenprint.cli._cells import json_text

        priced = _study_whatif(study, ledger, codes, pue)
        if as_json:
            click.echo(json_text(priced))
        else:
            _show_study(priced)
        return
    zone = None
    if timezone is not None:
        from greenprint.greener._whatif import resolve_timezone

        try:
            zone, _ = resolve_timezone(timezone)
        except ConfigError as e:  # named as the user typed it
            raise ConfigError(f"--timezone: {e}") from e
    result = whatif(
        run_id or "", regions=codes, hourly=hourly, ledger=ledger, timezone=zone, pue=pue
    )
    if as_json:
        from greenprint.cli._cells import json_text

        # a NaN recorded CO2-eq (and its savings) as "NaN": strict JSON, as `ledger show` writes
        click.echo(json_text(result.to_dict()))
    else:
        _show(result)
