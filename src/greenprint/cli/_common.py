"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import math

import click

__all__ = ["applied_intensity", "ledger_option", "study_option"]

ledger_option = click.option(
    "--ledger",
    "ledger",
    default=None,
    metavar="PATH|URL",
    help="Ledger file or database URL [default: GREENPRINT_LEDGER, config, ./greenprint.db].",
)
study_option = click.option("--study", default=None, help="Study name.")


def applied_intensity(
    *,
    energy_kwh: float,
    pue: float,
    emissions_kg: float,
    recorded_g_per_kwh: float | None,
    source: str,
) -> tuple[float | None, str]:
    """The grid intensity a run's CO2-eq was computed at, and where it came from.

    A run priced by an hourly series (``csv:`` in its source) records the file's plain mean as
    its intensity; what applied to the run is the series' energy-weighted mean over the run,
    ``emissions_kg * 1000 / (energy_kwh * pue)``: that is what is shown, as the "mean over the
    run" of its source. A constant intensity is shown as recorded.

    Args:
        energy_kwh: the run's IT energy, kWh.
        pue: the PUE it was priced with.
        emissions_kg: its CO2-eq, kg.
        recorded_g_per_kwh: the intensity it recorded, g CO2-eq/kWh (``None``: unrecorded).
        source: that intensity's provenance (``"csv:/path/hourly.csv"``, ``"table:DE:2023"``).

    Returns:
        ``(g_per_kwh, provenance)``: the intensity (``None`` when unknown) and its source as
        the CLI shows it.
    """
    if "csv:" not in source:
        return recorded_g_per_kwh, source
    facility_kwh = energy_kwh * pue
    if facility_kwh > 0 and math.isfinite(emissions_kg):
        return emissions_kg * 1000.0 / facility_kwh, f"mean over the run; {source}"
    return recorded_g_per_kwh, f"mean of the file, the run drew no energy; {source}"
