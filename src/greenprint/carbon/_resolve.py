"""Deciding which grid intensity applies: argument > environment/config file > world average."""

from __future__ import annotations

import os
from pathlib import Path

from greenprint._config import Config, load_config
from greenprint._exceptions import ConfigError, InvalidIntensityError, UnknownRegionError
from greenprint._validate import number_or_name
from greenprint.carbon import _regions
from greenprint.carbon._hourly import load_intensity_csv
from greenprint.carbon._intensity import Intensity, validate_intensity

__all__ = ["lookup_region", "resolve_intensity"]


def lookup_region(code: str) -> Intensity:
    """The shipped grid intensity of a country, subdivision, bidding zone or cloud region.

    Args:
        code: case-insensitive: ``"DE"`` or ``"DEU"`` or ``"Germany"``, ``"US-CA"``, ``"CA-QC"``,
            ``"SE-SE3"``, ``"aws:us-east-1"``, ``"gcp:europe-west1"``, ``"azure:westeurope"``,
            ``"world"``.

    Returns:
        A constant :class:`Intensity` whose ``source`` names the table row, year and citation,
        e.g. ``"table:DE:2023 (Our World in Data ...)"``; ``region`` is the canonical code.

    Raises:
        UnknownRegionError: no such region, or an ambiguous name; ``suggestions`` holds the
            nearest codes and the message lists them.
    """
    region = _regions.lookup(code)
    return Intensity(
        g_per_kwh=region.g_per_kwh,
        source=region.provenance,
        region=region.code,
        year=region.year,
        is_default=False,
    )


def _world_default() -> Intensity:
    world = _regions.world()
    return Intensity(
        g_per_kwh=world.g_per_kwh,
        source=f"default:world:{world.year} ({world.source}; set a region or intensity)",
        region=None,
        year=world.year,
        is_default=True,
    )


def _from_text(text: str, source: str, *, base: Path | None) -> Intensity:
    """An intensity given as text: a number of g CO2-eq/kWh, or the path of an hourly CSV."""
    stripped = number_or_name(text)
    if isinstance(stripped, float):
        return Intensity(validate_intensity(text, what=f"intensity ({source})"), source)
    path = Path(stripped).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not stripped or not path.is_file():
        raise InvalidIntensityError(
            f"intensity {text!r} ({source}) is neither a number of g CO2-eq/kWh nor an existing "
            "CSV file (timestamp,g_per_kwh)"
        )
    prefix = "" if source == "argument" else f"{source} -> "
    return load_intensity_csv(path, source=f"{prefix}csv:{path.resolve()}")


def _config_base(source: str) -> Path | None:
    """Relative CSV paths in a config file are relative to that file's directory."""
    if source.startswith("file:"):
        return Path(source[len("file:") :]).parent
    return None


def resolve_intensity(
    *,
    intensity: float | str | os.PathLike[str] | None = None,
    region: str | None = None,
    config: Config | None = None,
) -> Intensity:
    """Decide which grid carbon intensity applies to a run. Never uses the network.

    Order (first that is set wins):

    1. ``intensity``: a number of g CO2-eq/kWh, a string holding one, or the path of an hourly
       CSV (see :func:`load_intensity_csv`);
    2. ``region``: a code for :func:`lookup_region` (give one of ``intensity`` and ``region``:
       both is refused, as the region would be ignored);
    3. the configuration: environment variables first (``GREENPRINT_INTENSITY``, then
       ``GREENPRINT_REGION``), then the nearest ``greenprint.toml`` or ``pyproject.toml``
       ``[tool.greenprint]`` (``intensity``, then ``region``); a relative CSV path in a file is
       relative to that file;
    4. the world average, with ``is_default=True``.

    Args:
        intensity: explicit intensity (wins over everything).
        region: explicit region code.
        config: settings to consult; ``None`` reads them with ``load_config()``.

    Returns:
        The :class:`Intensity`, whose ``source`` says which of the above supplied it (for the
        configuration, prefixed with where the setting was found, e.g.
        ``"env:GREENPRINT_REGION -> table:DE:2023 (...)"``).

    Raises:
        InvalidIntensityError: a number that is not finite or outside ``0 < x <= 2000``, or text
            that is neither a number nor an existing file.
        IntensityCSVError: a malformed CSV (names file and line).
        UnknownRegionError: an unknown region (with suggestions).
        ConfigError: both ``intensity`` and ``region`` given.
    """
    if intensity is not None and region is not None:
        shown = os.fspath(intensity) if isinstance(intensity, os.PathLike) else intensity
        raise ConfigError(
            f"give an intensity or a region, not both: the intensity {shown!r} alone would "
            f"price the run, and the region {region!r} would be ignored"
        )
    if intensity is not None:
        if isinstance(intensity, str):
            return _from_text(intensity, "argument", base=None)
        if isinstance(intensity, os.PathLike):
            return load_intensity_csv(intensity, source=f"csv:{Path(intensity).resolve()}")
        return Intensity(validate_intensity(intensity), "argument")
    if region is not None:
        return lookup_region(region)
    if config is None:
        config = load_config()
    settings = [
        (key, config.get(key), config.sources.get(key, "config"))
        for key in ("intensity", "region")
        if config.get(key) is not None
    ]
    settings.sort(key=lambda item: 0 if item[2].startswith("env:") else 1)  # stable: intensity 1st
    for key, value, source in settings:
        if value is None:  # pragma: no cover - filtered above
            continue
        if key == "intensity":
            return _from_text(value, source, base=_config_base(source))
        try:
            found = lookup_region(value)
        except UnknownRegionError as e:
            raise UnknownRegionError(
                f"{source}: {e}", region=e.region, suggestions=e.suggestions
            ) from None
        return Intensity(
            g_per_kwh=found.g_per_kwh,
            source=f"{source} -> {found.source}",
            region=found.region,
            year=found.year,
            is_default=False,
        )
    return _world_default()
