"""Unit conversions, in one place: no other module spells out 3.6e6 or 1e6.

greenprint stores energy in kWh, emissions in kg CO2-eq, intensity in g CO2-eq/kWh, power in W,
time in seconds (durations) or seconds since the Unix epoch (timestamps, UTC).
"""

from __future__ import annotations

__all__ = [
    "JOULES_PER_KWH",
    "g_to_kg",
    "j_to_kwh",
    "kg_to_g",
    "uj_to_j",
]

JOULES_PER_KWH = 3_600_000.0


def j_to_kwh(joules: float) -> float:
    """Convert joules to kilowatt-hours."""
    return joules / JOULES_PER_KWH


def uj_to_j(microjoules: float) -> float:
    """Convert microjoules (RAPL's unit) to joules."""
    return microjoules / 1e6


def g_to_kg(grams: float) -> float:
    """Convert grams to kilograms."""
    return grams / 1000.0


def kg_to_g(kilograms: float) -> float:
    """Convert kilograms to grams."""
    return kilograms * 1000.0
