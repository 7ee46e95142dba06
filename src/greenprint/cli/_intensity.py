"""``greenprint intensity``: the grid carbon intensity of a region, or the list of regions."""

from __future__ import annotations

import json
from typing import Any

import click

from greenprint.cli._common import Choice

__all__ = ["command"]

UNIT = "g CO2-eq/kWh"
_KINDS = ("world", "country", "subdivision", "zone", "cloud")


def _region_dict(region: Any) -> dict[str, Any]:
    return {
        "region": region.code,
        "name": region.name,
        "kind": region.kind,
        "g_per_kwh": region.g_per_kwh,
        "unit": UNIT,
        "year": region.year,
        "source": region.provenance,
        "citation": region.citation,
        "url": region.url,
        "grid": region.grid,
        "aliases": list(region.aliases),
    }


def _show_region(code: str, as_json: bool) -> None:
    from greenprint.carbon import _regions

    region = _regions.lookup(code)
    if as_json:
        click.echo(json.dumps(_region_dict(region), indent=2))
        return
    rows = [
        ("region", f"{region.code} ({region.name}, {region.kind})"),
        ("intensity", f"{region.g_per_kwh:g} {UNIT}"),
        ("year", str(region.year)),
        ("source", region.provenance),
        ("citation", region.citation),
    ]
    if region.grid:
        grid = _regions.lookup(region.grid)
        rows.insert(1, ("grid", f"{grid.code} ({grid.name})"))
    for key, value in rows:
        click.echo(f"{key + ':':<11}{value}")


def _show_list(kind: str | None, as_json: bool) -> None:
    from greenprint.carbon import regions

    rows = [r for r in regions() if kind is None or r.kind == kind]
    if as_json:
        click.echo(json.dumps([_region_dict(r) for r in rows], indent=2))
        return
    width = max(len(r.code) for r in rows)
    click.echo(f"{'region':<{width}}  {'kind':<11}  {UNIT:>13}  year  name")
    for r in rows:
        click.echo(f"{r.code:<{width}}  {r.kind:<11}  {r.g_per_kwh:>13.1f}  {r.year}  {r.name}")
    click.echo(f"{len(rows)} regions; sources: greenprint/carbon/data/SOURCES.md")


def _is_file(region: str) -> bool:
    """Whether the REGION argument names an hourly CSV rather than a region code."""
    import os

    return region.lower().endswith(".csv") or (os.sep in region and os.path.isfile(region))


def _utc(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _show_resolved(as_json: bool, path: str | None = None) -> None:
    """What applies here (from the configuration), or the hourly CSV at ``path``.

    For an hourly series, its mean, what it covers, and the value a run started now is priced
    at (a run is priced hour by hour; outside the file, at its nearest edge value).
    """
    import time

    from greenprint.carbon import resolve_intensity

    found = resolve_intensity() if path is None else resolve_intensity(intensity=path)
    now = time.time()
    span = found.span_s
    if as_json:
        payload = {
            "region": found.region,
            "g_per_kwh": found.g_per_kwh,
            "unit": UNIT,
            "year": found.year,
            "source": found.source,
            "is_default": found.is_default,
            "is_series": found.is_series,
            "now_g_per_kwh": found.at(now),
            "span_s": None if span is None else list(span),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    label = " (mean of the hourly series)" if found.is_series else ""
    click.echo(f"{'intensity:':<11}{found.g_per_kwh:g} {UNIT}{label}")
    if span is not None and found.series is not None:
        if now < span[0]:
            when = "before the series starts: its first value applies"
        elif now >= span[1]:
            when = "after the series ends: its last value applies"
        else:
            when = f"the row of {_utc(max(t for t, _ in found.series if t <= now))} UTC"
        click.echo(f"{'now:':<11}{found.at(now):g} {UNIT} ({when})")
        rows = len(found.series)
        click.echo(
            f"{'covers:':<11}{_utc(span[0])} to {_utc(span[1])} UTC "
            f"({rows} row{'s' if rows != 1 else ''})"
        )
    click.echo(f"{'region:':<11}{found.region or '-'}")
    click.echo(f"{'year:':<11}{found.year if found.year is not None else '-'}")
    click.echo(f"{'source:':<11}{found.source}")
    if found.is_default:
        click.echo(
            "note:      nothing configured, so the world average applies; set "
            "GREENPRINT_REGION or GREENPRINT_INTENSITY, or region/intensity in greenprint.toml"
        )
    elif span is not None:
        click.echo(
            "note:      runs are priced hour by hour at the file's values, not at their mean"
        )


@click.command(
    "intensity",
    short_help="Show the grid carbon intensity of a region.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.argument("region", required=False)
@click.option("--list", "list_", is_flag=True, help="List every known region.")
@click.option(
    "--kind",
    type=Choice(_KINDS),
    default=None,
    help="With --list: only regions of this kind.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(region: str | None, list_: bool, kind: str | None, as_json: bool) -> None:
    """Show the grid carbon intensity (g CO2-eq/kWh) of REGION, with its source and year.

    REGION is a country (DE, DEU, Germany), a US state or Canadian province (US-CA, CA-QC), a
    bidding zone (SE-SE3) or a cloud region (aws:us-east-1, gcp:europe-west1, azure:westeurope).
    Without REGION, show the intensity greenprint would apply here (from GREENPRINT_INTENSITY,
    GREENPRINT_REGION, greenprint.toml, or the world average). REGION may instead be an hourly
    CSV (timestamp,g_per_kwh): it is checked as a run reads it. For an hourly file, the value
    a run started now is priced at and the hours the file covers are shown too. Offline: the
    figures come from tables shipped with greenprint.
    """
    if list_ and region is not None:
        raise click.UsageError("give either REGION or --list, not both")
    if kind is not None and not list_:
        raise click.UsageError("--kind only applies with --list")
    if list_:
        _show_list(kind, as_json)
    elif region is not None and _is_file(region):
        _show_resolved(as_json, path=region)  # an hourly CSV, checked as a run would read it
    elif region is not None:
        _show_region(region, as_json)
    else:
        _show_resolved(as_json)
