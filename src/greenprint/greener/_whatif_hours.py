"""The hours of :func:`~greenprint.greener.whatif`: a day's intensity profile and clocks.

Split out of :mod:`greenprint.greener._whatif`: the 24-hour profile of an hourly intensity
series (the mean of each UTC hour of the day, in g/kWh), a run's CO2-eq (kg) when its energy is
spent uniformly from a start hour under that profile, and the time zone whose whole hours the
start hours are (an IANA name read by :mod:`zoneinfo` from the machine, never the network).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from greenprint._exceptions import ConfigError, IntensityCSVError

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.carbon import Intensity

__all__ = ["hourly_profile", "profile_emissions_kg", "resolve_timezone"]

_DAY_S = 86400.0
_HOUR_S = 3600.0


def hourly_profile(intensity: Intensity) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """The mean intensity of each UTC hour of the day over the hours a series covers.

    Each hour ``[d + h, d + h + 1 h)`` (days ``d`` at UTC midnight) that the series' span
    overlaps contributes its integrated mean intensity over the overlap to hour ``h``, weighted
    by the overlap: a file of 24 hourly rows from 05:30 UTC covers every hour of the day.

    Args:
        intensity: a series :class:`~greenprint.carbon.Intensity` (an hourly CSV).

    Returns:
        ``(profile, notes)``: 24 values in g CO2-eq/kWh (index = UTC hour), and caveats.

    Raises:
        IntensityCSVError: a constant intensity, or a series that does not cover every hour
            of the day at least once.
    """
    span = intensity.span_s
    if span is None:
        raise IntensityCSVError(
            f"the hourly intensity ({intensity.source}) is a constant: give an hourly CSV"
        )
    start, end = span
    sums = [0.0] * 24
    weights = [0.0] * 24
    for k in range(math.floor(start / _HOUR_S), math.ceil(end / _HOUR_S)):
        t0, t1 = max(k * _HOUR_S, start), min((k + 1) * _HOUR_S, end)
        if t1 - t0 < 1.0:  # an edge touched, not covered
            continue
        g = intensity.emissions_g(t0, t1, 1.0)  # the mean intensity over the covered part
        w = (t1 - t0) / _HOUR_S
        sums[k % 24] += g * w
        weights[k % 24] += w
    missing = [h for h in range(24) if weights[h] == 0.0]
    if missing:
        shown = ", ".join(f"{h:02d}:00" for h in missing[:6]) + ("..." if len(missing) > 6 else "")
        raise IntensityCSVError(
            f"the hourly intensity ({intensity.source}) does not cover every hour of the day "
            f"(UTC; none for {shown}): give at least 24 consecutive hours"
        )
    notes = []
    days = min(weights), max(weights)  # hours covered of each hour of the day
    if days[1] - days[0] > 1e-6:
        notes.append(
            f"hourly profile: each UTC hour is the mean of {days[0]:.3g}-{days[1]:.3g} days of "
            f"{intensity.source}"
        )
    return tuple(s / w for s, w in zip(sums, weights, strict=True)), tuple(notes)


def profile_emissions_kg(
    profile: Sequence[float], start_s: float, duration_s: float, facility_energy_kwh: float
) -> tuple[float, float]:
    """Emissions of energy spent uniformly over ``[start, start + duration]`` under a profile.

    Args:
        profile: 24 intensities (g CO2-eq/kWh), one per hour of the day, repeating daily.
        start_s: start, seconds since midnight (any value: taken modulo a day).
        duration_s: how long the energy is spent, s (``>= 0``; 0 charges it at the start hour).
        facility_energy_kwh: the energy, kWh.

    Returns:
        ``(emissions_kg, mean_g_per_kwh)`` over the span.
    """
    if len(profile) != 24:
        raise ConfigError(f"an hourly profile has 24 values, not {len(profile)}")
    start = start_s % _DAY_S
    if duration_s <= 0:
        g = profile[int(start // _HOUR_S) % 24]
        return facility_energy_kwh * g / 1000.0, g
    day_integral = sum(profile) * _HOUR_S

    def integral(x: float) -> float:  # ∫_0^x profile(t) dt, x >= 0, in g/kWh x s
        days, rest = divmod(x, _DAY_S)
        hours = int(rest // _HOUR_S)
        partial = sum(profile[:hours]) * _HOUR_S + profile[hours % 24] * (rest - hours * _HOUR_S)
        return days * day_integral + partial

    mean = (integral(start + duration_s) - integral(start)) / duration_s
    return facility_energy_kwh * mean / 1000.0, mean


def resolve_timezone(timezone: str | _dt.tzinfo | None) -> tuple[_dt.tzinfo, str]:
    """The time zone hours are shown in, and its name.

    Args:
        timezone: ``None`` or ``"UTC"`` (any case) for UTC, an IANA name
            (``"Europe/Berlin"``) looked up by :mod:`zoneinfo` in the machine's time-zone data
            (the system's, or the ``tzdata`` package; never the network), or a
            :class:`datetime.tzinfo`.

    Returns:
        ``(tzinfo, name)``.

    Raises:
        ConfigError: a name that is not a time zone (the message suggests the nearest), or no
            time-zone data for it on this machine (the message says what to install).
    """
    if timezone is None:
        return _dt.timezone.utc, "UTC"
    if isinstance(timezone, _dt.tzinfo):
        return timezone, str(timezone)
    if not isinstance(timezone, str) or not timezone.strip():
        raise ConfigError(
            f"timezone must be an IANA time-zone name such as 'Europe/Berlin', not {timezone!r}"
        )
    name = timezone.strip()
    if name.upper() == "UTC":
        return _dt.timezone.utc, "UTC"
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name), name
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as e:
        known = zoneinfo.available_timezones()
        if not known:
            raise ConfigError(
                f"no time-zone data on this machine to read {name!r}: install the system's "
                "tzdata package or 'pip install tzdata' (UTC needs none)"
            ) from e
        raise ConfigError(f"unknown time zone {name!r}{_zone_hint(name, known)}") from e


def _zone_hint(name: str, known: set[str]) -> str:
    import difflib

    from greenprint._suggest import suggestion

    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:  # names are case-sensitive on most file systems
        close = [by_lower[name.lower()]]
    else:
        close = [by_lower[k] for k in difflib.get_close_matches(name.lower(), by_lower, n=3)]
    if not close:  # a city alone ("Berlin"): the zones named after it
        close = sorted(k for k in known if k.lower().rsplit("/", 1)[-1] == name.lower())[:3]
    hint = suggestion(close)
    return f"{hint} (an IANA name such as 'Europe/Berlin' or 'America/New_York', or UTC)"


def _offset_s(zone: _dt.tzinfo, at_s: float) -> tuple[float, bool]:
    """The zone's UTC offset at a Unix time, s, and whether it changes over that year."""
    when = _dt.datetime.fromtimestamp(at_s, _dt.timezone.utc).astimezone(zone)
    offset = when.utcoffset()
    seconds = offset.total_seconds() if offset is not None else 0.0
    year = when.year
    others = {
        (_dt.datetime(year, month, 1, tzinfo=_dt.timezone.utc).astimezone(zone).utcoffset())
        for month in (1, 4, 7, 10)
    }
    return seconds, len(others) > 1


def _clock(offset_s: float) -> str:
    sign = "-" if offset_s < 0 else "+"
    minutes = round(abs(offset_s) / 60)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _load_hourly(hourly: str | os.PathLike[str] | Intensity) -> Intensity:
    from greenprint.carbon import Intensity, load_intensity_csv

    if isinstance(hourly, Intensity):
        return hourly
    if isinstance(hourly, (str, os.PathLike)):
        return load_intensity_csv(hourly)
    raise ConfigError(f"hourly must be a CSV path or an Intensity series, not {hourly!r}")
