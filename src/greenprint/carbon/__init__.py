"""Grid carbon intensity and PUE: which g CO2-eq/kWh and which overhead apply to a run.

Nothing here uses the network or guesses a location. The intensity comes, in this order, from an
explicit argument (a number, or an hourly CSV), an explicit region, the environment or config
file (``GREENPRINT_INTENSITY``, ``GREENPRINT_REGION``, ``greenprint.toml``, ``[tool.greenprint]``),
or else the world average, flagged ``is_default``. Region figures come from offline tables shipped
in ``greenprint/carbon/data/`` (sources, years and licences in ``data/SOURCES.md``); they are read
on the first lookup, not on import.

Example:
    >>> from greenprint.carbon import lookup_region, resolve_pue
    >>> de = lookup_region("DEU")
    >>> de.region, de.year
    ('DE', 2023)
    >>> round(de.emissions_g(0.0, 3600.0, energy_kwh=2.0) / de.g_per_kwh, 6)
    2.0
    >>> resolve_pue("google").value
    1.1
"""

from __future__ import annotations

from greenprint import _public
from greenprint.carbon._hourly import load_intensity_csv
from greenprint.carbon._intensity import MAX_G_PER_KWH, Intensity
from greenprint.carbon._pue import MAX_PUE, MIN_PUE, PUE, PUE_PRESETS, resolve_pue
from greenprint.carbon._regions import Region, regions
from greenprint.carbon._resolve import lookup_region, resolve_intensity

__all__ = [
    "Intensity",
    "MAX_G_PER_KWH",
    "MAX_PUE",
    "MIN_PUE",
    "PUE",
    "PUE_PRESETS",
    "Region",
    "load_intensity_csv",
    "lookup_region",
    "regions",
    "resolve_intensity",
    "resolve_pue",
]

_public.publish(__name__, globals())
