"""Predict a run's total energy, CO2-eq and time from its progress, with an interval.

A run that reports how far it is (:meth:`~greenprint.Run.progress` or
:meth:`~greenprint.Run.expect` + :meth:`~greenprint.Run.step`) is a sequence of increments: between
two reports it did ``df`` of the work and spent ``dq`` of a quantity (kWh, kg CO2-eq or s). The
model is the one behind a random walk with drift: each increment costs ``mu * df`` on average with
variance ``sigma^2 * df``, independently of the others (a step's cost does not depend on the
previous one's; an increment twice as long varies twice as much). Then, with ``q`` spent over a
fraction ``f`` done in ``n`` increments:

* the rate is estimated by ``mu = q / f`` (the weighted least-squares estimate), so the point
  prediction ``q / f`` is carbontracker's linear extrapolation;
* ``sigma^2`` by ``s^2 = sum((dq - mu df)^2 / df) / (n - 1)``;
* the rest of the run costs ``mu (1 - f)`` plus noise of variance ``sigma^2 (1 - f)``, and ``mu``
  itself is off by a variance ``sigma^2 / f``, so the total's prediction error has variance
  ``sigma^2 (1 - f) (1 + (1 - f) / f) = sigma^2 (1 - f) / f``.

The interval is ``q / f +- t * s * sqrt((1 - f) / f)`` with ``t`` the Student-t quantile of
``n - 1`` degrees of freedom (exact for normal increments: the pivot is t-distributed), its lower
edge never below ``q`` (what is spent stays spent). It narrows as ``f`` grows (to nothing at
``f = 1``) and as ``n`` grows (``t`` shrinks); one increment says nothing about spread, so the
first prediction has no interval when it comes from a single report. Coverage is checked by
simulation in ``tests/tracking/test_prediction_coverage.py``.

A run with no energy meter (``meters=[]``) has unknown energy and CO2-eq: its predictor is made
with ``metered=False`` and predicts its time only (:class:`Prediction`'s ``energy_kwh`` and
``emissions_kg`` are ``None``, never an estimate of 0).

Predictions are logged as metrics with the reserved prefix ``greenprint.`` (see
:data:`RESERVED_METRIC_PREFIX`): analyses and reports never take them for a score.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "DEFAULT_CONFIDENCE",
    "QUANTITIES",
    "RESERVED_METRIC_PREFIX",
    "Estimate",
    "Prediction",
    "Predictor",
    "is_reserved_metric",
    "metric_name",
    "t_quantile",
]

#: Metric names starting with this are greenprint's own (predictions, their errors), not scores.
RESERVED_METRIC_PREFIX = "greenprint."

#: Probability that the interval holds the run's total (a 90 % prediction interval).
DEFAULT_CONFIDENCE = 0.9

#: The predicted quantities, in the order of :class:`Prediction`'s fields.
QUANTITIES = ("energy_kwh", "emissions_kg", "duration_s")

#: Above this many degrees of freedom the t quantile comes from its expansion around the normal.
_EXACT_DF_MAX = 200


def is_reserved_metric(name: str) -> bool:
    """Whether a metric name is one of greenprint's own (``greenprint.predicted_energy_kwh``)."""
    return name.startswith(RESERVED_METRIC_PREFIX)


def metric_name(name: str) -> str:
    """The reserved metric name for ``name``: ``"greenprint." + name``."""
    return RESERVED_METRIC_PREFIX + name


@dataclass(frozen=True)
class Estimate:
    """A predicted total and its interval.

    Attributes:
        value: the point prediction (in the quantity's unit).
        low: the interval's lower edge, or ``None`` with a single increment.
        high: the interval's upper edge, or ``None`` with a single increment.
    """

    value: float
    low: float | None = None
    high: float | None = None

    def covers(self, actual: float) -> bool | None:
        """Whether ``actual`` lies in the interval (``None`` when there is no interval)."""
        if self.low is None or self.high is None:
            return None
        return self.low <= actual <= self.high


@dataclass(frozen=True)
class Prediction:
    """A run's predicted totals, made when ``fraction`` of it was done.

    Attributes:
        fraction: the part of the run done when the prediction was made, in (0, 1].
        reports: how many progress reports it rests on (increments).
        confidence: the probability the intervals are meant to hold the totals.
        energy_kwh: IT energy of the whole run, kWh; ``None`` for a run with no energy meter
            (``meters=[]``): unknown, never a predicted 0.
        emissions_kg: CO2-eq of the whole run, kg; ``None`` as ``energy_kwh``.
        duration_s: wall time of the whole run, s.
    """

    fraction: float
    reports: int
    confidence: float
    energy_kwh: Estimate | None
    emissions_kg: Estimate | None
    duration_s: Estimate

    def items(self) -> Iterator[tuple[str, Estimate]]:
        """``(quantity, estimate)`` for each of :data:`QUANTITIES` predicted, in that order.

        A run with no energy meter yields its ``duration_s`` only (its energy and CO2-eq are
        ``None``: not predicted).
        """
        for quantity in QUANTITIES:
            estimate = getattr(self, quantity)
            if estimate is not None:
                yield quantity, estimate


class _Series:
    """Sufficient statistics of one quantity's increments (O(1) memory and time per report)."""

    __slots__ = ("last", "weighted_squares")

    def __init__(self) -> None:
        self.last = 0.0  # the quantity at the last report
        self.weighted_squares = 0.0  # sum(dq^2 / df)

    def add(self, value: float, df: float) -> None:
        dq = value - self.last
        self.weighted_squares += dq * dq / df
        self.last = value

    def estimate(self, fraction: float, n: int, t: float | None) -> Estimate:
        spent = self.last
        point = spent / fraction
        if t is None or n < 2:
            return Estimate(point)
        # sum((dq - mu df)^2 / df) = sum(dq^2/df) - q^2/f, with mu = q/f and sum(df) = f
        residual = max(self.weighted_squares - spent * spent / fraction, 0.0)
        half = t * math.sqrt(residual / (n - 1) * (1.0 - fraction) / fraction)
        return Estimate(point, max(point - half, spent), point + half)


class Predictor:
    """Predicts a run's totals from its progress reports. Not thread-safe (the run locks it).

    Args:
        confidence: the probability the intervals should hold the totals, in (0, 1).
        metered: ``False`` for a run with no energy meter (``meters=[]``): its predictions'
            ``energy_kwh`` and ``emissions_kg`` are ``None`` (unknown), whatever it observes.
    """

    def __init__(self, confidence: float = DEFAULT_CONFIDENCE, *, metered: bool = True) -> None:
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), not {confidence!r}")
        self.confidence = confidence
        self.metered = metered
        self.fraction = 0.0
        self.reports = 0
        self._series = {quantity: _Series() for quantity in QUANTITIES}
        self.first: Prediction | None = None
        self._latest: Prediction | None = None

    def observe(
        self, fraction: float, energy_kwh: float, emissions_kg: float, duration_s: float
    ) -> bool:
        """Add a report: ``fraction`` done and the quantities spent so far.

        Returns:
            True when it was taken; False when ``fraction`` does not move forward (a repeated or
            backward report is ignored).
        """
        df = fraction - self.fraction
        if df <= 0.0 or not math.isfinite(df):
            return False
        values = (energy_kwh, emissions_kg, duration_s)
        for quantity, value in zip(QUANTITIES, values, strict=True):
            self._series[quantity].add(value, df)
        self.fraction = fraction
        self.reports += 1
        self._latest = None
        if self.first is None:
            self.first = self.predict()
        return True

    def predict(self) -> Prediction | None:
        """The prediction from the reports so far, or ``None`` before the first one."""
        if self.reports == 0:
            return None
        if self._latest is None:
            n = self.reports
            t = t_quantile(n - 1, self.confidence) if n >= 2 else None
            estimates = {q: s.estimate(self.fraction, n, t) for q, s in self._series.items()}
            metered = self.metered  # no energy meter: unknown, never an estimate of 0
            self._latest = Prediction(
                fraction=self.fraction,
                reports=n,
                confidence=self.confidence,
                energy_kwh=estimates["energy_kwh"] if metered else None,
                emissions_kg=estimates["emissions_kg"] if metered else None,
                duration_s=estimates["duration_s"],
            )
        return self._latest


@functools.lru_cache(maxsize=512)
def t_quantile(df: int, confidence: float) -> float:
    """The two-sided Student-t quantile: ``t`` with ``P(|T| <= t) = confidence``.

    Exact (bisection on the closed-form distribution function of integer degrees of freedom,
    Abramowitz and Stegun 26.7.3-4) up to 200 degrees of freedom, then the Cornish-Fisher
    expansion around the normal quantile (error below 1e-7 there).

    Args:
        df: degrees of freedom, at least 1.
        confidence: the two-sided probability, in (0, 1).

    Returns:
        The quantile, e.g. 6.3138 for ``df=1`` and ``confidence=0.9``.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df!r}")
    if df > _EXACT_DF_MAX:
        from statistics import NormalDist  # statistics imports fractions, decimal, random

        z = NormalDist().inv_cdf((1.0 + confidence) / 2.0)
        z3, z5, z7 = z**3, z**5, z**7
        return (
            z
            + (z3 + z) / (4 * df)
            + (5 * z5 + 16 * z3 + 3 * z) / (96 * df**2)
            + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * df**3)
        )
    low, high = 0.0, math.pi / 2
    for _ in range(80):
        theta = (low + high) / 2
        if _t_central(theta, df) < confidence:
            low = theta
        else:
            high = theta
    return math.sqrt(df) * math.tan((low + high) / 2)


def _t_central(theta: float, df: int) -> float:
    """``P(|T| <= t)`` for ``t = sqrt(df) tan(theta)`` (Abramowitz and Stegun 26.7.3-4)."""
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:  # odd: 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2.4/3.5 cos^4 + ...))
        if df == 1:
            return 2 * theta / math.pi
        term, total = 1.0, 1.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + s * math.sqrt(c2) * total)
    term, total = 1.0, 1.0  # even: sin (1 + 1/2 cos^2 + 1.3/2.4 cos^4 + ...)
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total
