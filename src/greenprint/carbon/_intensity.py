"""Grid carbon intensity: a constant figure or an hourly series, and emissions over an interval."""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass, field

from greenprint._exceptions import ConfigError, InvalidIntensityError
from greenprint._validate import finite_number

__all__ = ["MAX_G_PER_KWH", "Intensity", "applied_intensity", "validate_intensity"]

logger = logging.getLogger(__name__)

#: The largest grid intensity accepted, in g CO2-eq/kWh. The dirtiest national grids are around
#: 1,000; lignite plants reach about 1,200. Anything above 2,000 is a unit mistake (kg, lb/MWh).
MAX_G_PER_KWH = 2000.0


def validate_intensity(value: object, *, what: str = "intensity") -> float:
    """Check a grid intensity and return it as a float.

    Args:
        value: the intensity in g CO2-eq/kWh (a number, or a string holding one).
        what: how to name the value in the error message (e.g. ``"GREENPRINT_INTENSITY"``).

    Returns:
        The intensity in g CO2-eq/kWh.

    Raises:
        InvalidIntensityError: not a number, not finite, or outside ``0 < x <= 2000``.
    """
    return finite_number(
        what,
        value,
        low=0.0,
        high=MAX_G_PER_KWH,
        low_open=True,
        unit="g CO2-eq/kWh",
        error=InvalidIntensityError,
    )


@dataclass(frozen=True)
class Intensity:
    """The grid carbon intensity applied to a run, with where it came from.

    A constant intensity applies one figure at all times. A series (from an hourly CSV, see
    :func:`~greenprint.carbon.load_intensity_csv`) is a step function: each sample's value holds
    from its timestamp until the next sample's. Outside the series the nearest edge value holds
    (the first value before the first timestamp, the last value after the last one); use
    :meth:`covers` to check, and a warning is logged once per series when emissions are computed
    outside it.

    Attributes:
        g_per_kwh: the representative value in g CO2-eq/kWh; for a series, the plain mean of its
            sample values (for display only: emissions integrate the series).
        source: provenance, e.g. ``"table:DE:2023 (...)"``, ``"argument"``,
            ``"env:GREENPRINT_INTENSITY"``, ``"csv:/path/hourly.csv"``, ``"default:world:2023"``.
        region: canonical region code, or ``None``.
        year: the year the figure describes (for a series: the UTC year of its first sample), or
            ``None``.
        is_default: ``True`` when nothing was configured and the world average is used.
        series: ``((unix_time_s, g_per_kwh), ...)`` sorted by time, or ``None`` for a constant.
    """

    g_per_kwh: float
    source: str
    region: str | None = None
    year: int | None = None
    is_default: bool = False
    series: tuple[tuple[float, float], ...] | None = field(default=None, repr=False)
    _times: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)
    _values: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)
    _warned: list[bool] = field(
        default_factory=lambda: [False], init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        validate_intensity(self.g_per_kwh, what=f"intensity ({self.source})")
        if self.series is None:
            return
        if not self.series:
            raise InvalidIntensityError(f"intensity series ({self.source}) has no samples")
        times = tuple(float(t) for t, _ in self.series)
        values = tuple(
            validate_intensity(v, what=f"intensity series ({self.source}) at t={t}")
            for t, v in self.series
        )
        if any(not math.isfinite(t) for t in times) or any(
            b <= a for a, b in zip(times, times[1:], strict=False)
        ):
            raise InvalidIntensityError(
                f"intensity series ({self.source}) timestamps must be finite and strictly "
                "increasing"
            )
        object.__setattr__(self, "_times", times)
        object.__setattr__(self, "_values", values)

    @property
    def is_series(self) -> bool:
        """Whether this intensity varies in time (an hourly series)."""
        return self.series is not None

    @property
    def span_s(self) -> tuple[float, float] | None:
        """For a series, ``(start, end)`` in Unix seconds; ``None`` for a constant.

        The last sample is taken to last as long as the one before it (one hour for an hourly
        file; one hour for a single-sample file).
        """
        if not self._times:
            return None
        times = self._times
        last = times[-1] - times[-2] if len(times) > 1 else 3600.0
        return times[0], times[-1] + last

    def covers(self, t0: float, t1: float) -> bool:
        """Whether ``[t0, t1]`` (Unix seconds) lies within the series; true for a constant."""
        span = self.span_s
        return span is None or (span[0] <= t0 and t1 <= span[1])

    def at(self, t: float) -> float:
        """The intensity at Unix time ``t``, in g CO2-eq/kWh.

        Args:
            t: seconds since the Unix epoch.

        Returns:
            For a constant, :attr:`g_per_kwh`. For a series, the value of the sample interval
            containing ``t`` (``[t_i, t_i+1)``); before the first sample the first value, after
            the last sample the last value.
        """
        if not self._times:
            return self.g_per_kwh
        index = bisect.bisect_right(self._times, t) - 1
        return self._values[max(index, 0)]

    def emissions_g(self, t0: float, t1: float, energy_kwh: float) -> float:
        """Emissions of energy spent at a uniform rate over ``[t0, t1]``, in g CO2-eq.

        For a series the interval is split exactly at the sample boundaries and each piece is
        charged at its own intensity, ``sum(energy_kwh * len_i / (t1 - t0) * g_i)``: integrated,
        not averaged. ``t0 == t1`` charges all the energy at ``at(t0)``.

        Args:
            t0: interval start, Unix seconds.
            t1: interval end, Unix seconds (``>= t0``).
            energy_kwh: energy spent over the interval, in kWh (``>= 0``; apply PUE before).

        Returns:
            Emissions in g CO2-eq.

        Raises:
            ConfigError: ``t1 < t0``, a non-finite time, or a negative or non-finite energy.
        """
        if not (math.isfinite(t0) and math.isfinite(t1)) or t1 < t0:
            raise ConfigError(f"need finite times with t0 <= t1, got t0={t0!r}, t1={t1!r}")
        if not math.isfinite(energy_kwh) or energy_kwh < 0:
            raise ConfigError(f"energy must be a finite number of kWh >= 0, got {energy_kwh!r}")
        if not self._times:
            return energy_kwh * self.g_per_kwh
        if not self.covers(t0, t1) and not self._warned[0]:
            self._warned[0] = True
            span = self.span_s or (t0, t1)  # a series always has one
            logger.warning(
                "greenprint: energy drawn from %s to %s UTC falls %s the intensity series %s, "
                "which covers %s to %s UTC; its nearest edge value is used there "
                "(%.4g g CO2-eq/kWh before it, %.4g after)",
                _utc(t0),
                _utc(t1),
                "outside" if t1 <= span[0] or t0 >= span[1] else "partly outside",
                self.source,
                _utc(span[0]),
                _utc(span[1]),
                self._values[0],
                self._values[-1],
            )
        if t1 == t0:
            return energy_kwh * self.at(t0)
        times, values = self._times, self._values
        duration = t1 - t0
        index = bisect.bisect_right(times, t0) - 1  # interval containing t0 (-1: before start)
        total = 0.0
        start = t0
        while start < t1:
            end = times[index + 1] if index + 1 < len(times) else math.inf
            piece_end = min(end, t1)
            total += values[max(index, 0)] * (piece_end - start)
            start = piece_end
            index += 1
        return energy_kwh * total / duration


def _utc(t: float) -> str:
    """Unix time ``t`` (s) as ``2024-03-01 00:30:00``, UTC, for a message."""
    import datetime as dt

    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


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
        the CLI shows it. Where no mean over the run can be taken, the file's mean as
        recorded, its source saying why: the run drew no energy, or its energy or CO2-eq is
        not a number (NaN or infinite).
    """
    if "csv:" not in source:
        return recorded_g_per_kwh, source
    facility_kwh = energy_kwh * pue
    if 0 < facility_kwh < math.inf and math.isfinite(emissions_kg):
        return emissions_kg * 1000.0 / facility_kwh, f"mean over the run; {source}"
    if facility_kwh == 0:
        return recorded_g_per_kwh, f"mean of the file, the run drew no energy; {source}"
    return recorded_g_per_kwh, (
        f"mean of the file, the run's energy or CO2-eq is not a number; {source}"
    )
