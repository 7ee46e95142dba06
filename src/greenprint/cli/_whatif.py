"""``greenprint whatif``: a run's measured energy priced in other regions and at other hours."""

from __future__ import annotations

import json
from typing import Any

import click

from greenprint.cli._common import ledger_option

__all__ = ["command"]

UNIT = "g CO2-eq/kWh"


def _saving(kg: float, pct: float | None) -> str:
    from greenprint.greener._whatif import saving_text

    return saving_text(kg, pct)


def _hour(hours: float) -> str:
    minutes = round(hours * 60) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d} UTC"


def _show(result: Any) -> None:
    from greenprint._format import format_duration, format_emissions, format_energy
    from greenprint.cli._ledger import _safe

    intensity = (
        "-" if result.intensity_g_per_kwh is None else f"{result.intensity_g_per_kwh:g} {UNIT}"
    )
    source = _safe(result.intensity_source or "unrecorded", limit=80)
    if result.facility_energy_kwh > 0 and result.emissions_kg > 0:
        # an hourly series records its file's mean as the run's intensity: show what applied
        applied = result.emissions_kg * 1000.0 / result.facility_energy_kwh
        recorded = result.intensity_g_per_kwh
        if recorded is None or abs(applied - recorded) > 1e-3 * recorded:
            intensity = f"{applied:.4g} {UNIT}"
            source = f"mean over the run; {source}"
    click.echo(
        f"run       {_safe(result.run_name, limit=40)} ({result.run_id[:12]}): "
        f"{format_energy(result.energy_kwh)} x PUE {result.pue:g} = "
        f"{format_energy(result.facility_energy_kwh)} over {format_duration(result.duration_s)}"
    )
    click.echo(f"recorded  {format_emissions(result.emissions_kg)} at {intensity} ({source})")
    click.echo("")
    width = max([len(r.region) for r in result.regions] + [6])
    click.echo(f"{'region':<{width}}  {UNIT:>13}  {'CO2-eq':>17}  {'saving vs recorded':>26}  name")
    for r in result.regions:
        click.echo(
            f"{r.region:<{width}}  {r.g_per_kwh:>13.1f}  {format_emissions(r.emissions_kg):>17}  "
            f"{_saving(r.saving_kg, r.saving_pct):>26}  {r.name} ({r.year})"
        )
    if result.best is not None:
        best = result.best
        click.echo("")
        click.echo(f"hourly profile: {_safe(result.hourly_source, limit=100)}")
        click.echo(
            f"best start  {best.start_hour:02d}:00 UTC: {format_emissions(best.emissions_kg)} "
            f"(mean {best.mean_g_per_kwh:.1f} {UNIT} over the run)"
        )
        click.echo(
            f"actual      {_hour(result.actual_start_hour)}: "
            f"{format_emissions(result.actual_start_emissions_kg)}; saving "
            f"{_saving(result.hour_saving_kg, result.hour_saving_pct)} by starting at "
            f"{best.start_hour:02d}:00 UTC"
        )
    for note in result.notes:
        click.echo(f"note: {_safe(note)}")


@click.command("whatif")
@click.option("--run", "run_id", required=True, metavar="ID", help="Run id (or unique prefix).")
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(
    run_id: str, ledger: str | None, regions: str | None, hourly: str | None, as_json: bool
) -> None:
    """Price a run's measured energy in other regions and at the best start hour.

    The run's energy (with its PUE) at each region's grid intensity from the tables shipped
    with greenprint, beside the CO2-eq it recorded, with the saving in kg and percent. With
    --hourly, the run's energy spread over its duration is integrated against the file's mean
    intensity of each UTC hour of the day, for every start hour: the best one and the saving
    against the run's actual start time. Offline: no network.
    """
    from greenprint._exceptions import ConfigError
    from greenprint.greener import whatif

    if not run_id.strip():
        raise ConfigError(f"--run needs a run id (or a unique prefix of one), not {run_id!r}")
    codes = None
    if regions is not None:
        codes = [c.strip() for c in regions.split(",") if c.strip()]
        if not codes:
            raise ConfigError(f"--regions needs region codes separated by commas, not {regions!r}")
    result = whatif(run_id, regions=codes, hourly=hourly, ledger=ledger)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _show(result)
