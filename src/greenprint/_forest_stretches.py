"""Runs that read one process at the same time (its threads): each stretch of time once.

See :func:`stretch_shares`, and ``RunForest.shared_sums`` (:mod:`greenprint._forest`),
which applies it to a parent's children that name the same process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["StretchProfile", "group_counts", "stretch_profile", "stretch_shares"]


def stretch_shares(spans: Sequence[tuple[float, float]], amounts: Sequence[Any]) -> list[Any]:
    """What each of several runs that read one process counts, each stretch of time once.

    The runs' spans are cut at every start and end into stretches. In a stretch where ``k``
    of them ran, each read the same process (threads of it), so the stretch's energy is
    counted once: the mean of their powers (a run's power: its amount over its span's length)
    times the stretch's length, split equally among the ``k``. A run counts its parts of its
    stretches. Exact when the process drew constant power over each stretch: then each run
    counts that power times its own share of time (a stretch's length over ``k``), and the
    runs together count the process's energy over the union of their spans, once.

    Args:
        spans: ``(start, end)`` of each run, s (Unix time), each end after its start.
        amounts: what each run measured (kWh, kg CO2-eq), 0 or more.

    Returns:
        Each run's count, in the order given (the same unit as ``amounts``).
    """
    if len(spans) > _STRETCHES_IN_PYTHON:
        return _stretch_shares_array(spans, amounts)
    points, reached = _reached(spans, amounts)
    at = {t: k for k, t in enumerate(points)}
    return [reached[at[end]] - reached[at[start]] for start, end in spans]


def _reached(
    spans: Sequence[tuple[float, float]], amounts: Sequence[Any]
) -> tuple[list[float], list[float]]:
    """The stretches' bounds, and what one run that ran from the first to each counts."""
    points = sorted({t for span in spans for t in span})
    at = {t: k for k, t in enumerate(points)}
    rate = [0.0] * len(points)  # change of the summed power at each point
    count = [0] * len(points)  # change of the number of runs
    for (start, end), amount in zip(spans, amounts, strict=True):
        power = amount / (end - start)
        rate[at[start]] += power
        rate[at[end]] -= power
        count[at[start]] += 1
        count[at[end]] -= 1
    # What one run that ran from the first point to each point counts: a stretch gives each
    # of its k runs its summed power x its length / k^2 (the mean power's energy, k ways).
    reached = [0.0] * len(points)
    power = total = 0.0
    k = 0
    for idx in range(len(points) - 1):
        power += rate[idx]
        k += count[idx]
        if k:
            total += power * (points[idx + 1] - points[idx]) / (k * k)
        else:
            power = 0.0  # no run: what rounding left
        reached[idx + 1] = total
    return points, reached


class StretchProfile:
    """When, within a group's time, a run of the group counts more or less of what it read.

    :func:`stretch_shares` gives a run of the group, over each stretch, its summed power over
    ``k`` squared times the stretch's length (:func:`stretch_profile`): a rate that changes
    from stretch to stretch (a run counts all of a stretch it ran alone, half of one shared
    with another...). A run inside a member of the group (a trial inside a sweep that ran in
    a thread, a fold inside a trial) read the same process over part of the member's span:
    at constant power it counts what the member counts over that part, so its factor is the
    member's scaled by the rate's mean over its own span against the mean over the member's
    (:meth:`prepare` works the means out, :attr:`known` holds them).

    Attributes:
        points: the stretches' bounds, s (Unix time), increasing.
        reached: what one run that ran from the first bound to each counts (the rate's
            integral), as many as ``points``.
    """

    __slots__ = ("known", "points", "reached")

    def __init__(self, points: Sequence[float], reached: Sequence[float]) -> None:
        self.points = points
        self.reached = reached
        #: run position -> the rate's mean over its span (:meth:`prepare`; ``None``: no span
        #: within the group's time)
        self.known: dict[int, float | None] = {}

    def prepare(self, positions: Sequence[int], starts: np.ndarray, ends: np.ndarray) -> None:
        """Work out the rate's mean over the spans of many runs at once, into :attr:`known`.

        Each span (its start and end, s; NaN: no span) is cut to the group's time; one that is
        then empty has no mean (``None``). A study of 25,000 trials in threads with 3 folds each
        asks for 100,000 means: one numpy pass instead of a search per run.
        """
        if not positions:
            return
        points = np.asarray(self.points, dtype=float)
        reached = np.asarray(self.reached, dtype=float)
        start = np.clip(starts, points[0], points[-1])
        end = np.clip(ends, points[0], points[-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (np.interp(end, points, reached) - np.interp(start, points, reached)) / (
                end - start
            )
        spanned = end > start  # False for NaN
        self.known.update(
            zip(
                positions,
                [m if ok else None for m, ok in zip(means.tolist(), spanned.tolist(), strict=True)],
                strict=True,
            )
        )

    def varying(self, starts: Sequence[float], ends: Sequence[float]) -> list[bool]:
        """Whether the rate changes within each span (stretches of other rates there).

        Beyond rounding: a rate summed from the same powers in another order is the same. One
        numpy pass for all the spans (25,000 trials in threads: 50 ms where a search per span
        took 0.4 s).
        """
        points = np.asarray(self.points, dtype=float)
        reached = np.asarray(self.reached, dtype=float)
        rates = np.diff(reached) / np.diff(points)  # one per stretch
        steps = np.abs(np.diff(rates)) > 1e-9 * np.maximum(np.abs(rates[1:]), np.abs(rates[:-1]))
        # changes[k]: how many of the first k bounds between stretches change the rate
        changes = np.concatenate(([0], np.cumsum(steps)))
        first = np.maximum(np.searchsorted(points, starts, side="right") - 1, 0)
        last = np.minimum(np.searchsorted(points, ends, side="left"), len(points) - 1)
        # a span covers stretches first .. last - 1, the bounds between them first .. last - 2
        inner = np.maximum(last - 1, first)
        return (changes[inner] - changes[first] > 0).tolist()


def stretch_profile(spans: Sequence[tuple[float, float]], amounts: Sequence[Any]) -> StretchProfile:
    """The rate at which a run of the group counts, stretch by stretch (:func:`stretch_shares`).

    Args:
        spans: ``(start, end)`` of each run, s (Unix time), each end after its start.
        amounts: what each run measured (kWh, kg CO2-eq), 0 or more.

    Returns:
        The :class:`StretchProfile` (a run counts the rate's mean over its span times its
        length).
    """
    points, reached = _reached(spans, amounts)
    return StretchProfile(points, reached)


def group_counts(spans: Sequence[tuple[float, float]], amounts: Sequence[Any]) -> list[Any]:
    """What each run of a group that read one process counts, at least the largest reading.

    :func:`stretch_shares`, its members scaled up alike to at least what the group's largest
    member read: that member read the whole process over part of the group's span, so the
    group spent at least that much; only readings that disagree (never at constant power)
    count less.

    Args:
        spans: ``(start, end)`` of each run, s (Unix time), each end after its start.
        amounts: what each run read (kWh, kg CO2-eq), each more than 0.

    Returns:
        Each run's count, in the order given (the same unit as ``amounts``).
    """
    got = stretch_shares(spans, amounts)
    largest, total = max(amounts), sum(got)
    if total < largest:
        got = [g * largest / total for g in got]
    return got


#: Runs of one group up to which :func:`stretch_shares` loops in Python (a few runs: 10 us);
#: above, numpy's fixed cost (30 us) is less than the loop's.
_STRETCHES_IN_PYTHON = 8


def _stretch_shares_array(
    spans: Sequence[tuple[float, float]], amounts: Sequence[Any]
) -> list[Any]:
    """:func:`stretch_shares` with numpy (many runs in a group)."""
    bounds = np.asarray(spans, dtype=float)
    points, where = np.unique(bounds, return_inverse=True)
    where = where.reshape(bounds.shape)
    power = np.asarray(amounts, dtype=float) / (bounds[:, 1] - bounds[:, 0])
    size = len(points)
    rate = np.bincount(where[:, 0], power, size) - np.bincount(where[:, 1], power, size)
    count = np.bincount(where[:, 0], minlength=size) - np.bincount(where[:, 1], minlength=size)
    summed, k = np.cumsum(rate)[:-1], np.cumsum(count)[:-1]
    part = np.zeros(len(points) - 1)
    running = k > 0
    part[running] = summed[running] * np.diff(points)[running] / (k[running] * k[running])
    reached = np.concatenate(([0.0], np.cumsum(part)))
    return (reached[where[:, 1]] - reached[where[:, 0]]).tolist()
