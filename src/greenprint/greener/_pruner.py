"""Cost-aware early stopping: judge a trial by its score at equal energy (or FPO), not equal step.

A step-based pruner (Optuna's ``MedianPruner``) compares trial A after epoch 5 with the other
trials after epoch 5. When trials cost different amounts per step (a wide CNN against a small
MLP, a large batch against a small one), that is unfair both ways: a cheap trial is stopped for
scoring less than an expensive one did with ten times its energy, and an expensive trial is kept
because it beats the cheap ones at the same step while having spent far more.

:class:`CostAwarePruner` compares at equal cost instead. Every trial reports
``(cost so far, score)`` pairs; the cost is cumulative (kWh from the tracker, FPO from the
counter, or anything that only grows). To judge trial A at cost ``c``:

1. A's score is its best score so far (the running max, or min when minimising).
2. Each reference trial (every *completed* trial, and every other *running* one) gives its own
   best-so-far curve's value at ``c``, interpolated linearly between its two reports around
   ``c``. A completed trial that finished below ``c`` keeps its final best (it reached that with
   less); a running trial that has not reached ``c`` yet, and any trial whose first report came
   after ``c``, gives nothing. Pruned and failed trials are not references.
3. The threshold is the median of those values (``rule="median"``) or a percentile
   (``rule="percentile"``: ``percentile=25`` keeps the best 25 %, as Optuna's
   ``PercentilePruner``). A is pruned when its score is worse than the threshold.

Warm-up: nothing is pruned before ``n_startup_trials`` trials have completed, before a trial has
made ``n_warmup_reports`` reports (Optuna's ``n_warmup_steps``) or spent ``min_cost``, or with
fewer than ``n_min_trials`` references at that cost.

Example:
    >>> from greenprint.greener import CostAwarePruner
    >>> pruner = CostAwarePruner(n_startup_trials=1)
    >>> for kwh, acc in [(0.1, 0.50), (0.2, 0.70), (0.4, 0.80)]:
    ...     _ = pruner.report("a", kwh, acc)
    >>> pruner.finish("a")
    >>> pruner.report("b", 0.2, 0.40)  # 0.40 at 0.2 kWh where "a" had 0.70: dominated
    True
    >>> pruner.report("c", 0.3, 0.76)  # "a" had 0.75 at 0.3 kWh: kept
    False
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from greenprint._exceptions import ConfigError
from greenprint._format import count_of, format_energy, format_fpo
from greenprint._validate import finite_number

__all__ = ["CostAwarePruner", "PruneDecision", "TrialStatus", "percentile_of"]

Direction = Literal["maximize", "minimize"]
Rule = Literal["median", "percentile"]
TrialStatus = Literal["running", "complete", "pruned", "failed"]
_STATUSES: tuple[str, ...] = ("running", "complete", "pruned", "failed")


def percentile_of(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` with linear interpolation (numpy's default).

    Args:
        values: at least one finite number.
        q: the percentile, ``0 <= q <= 100``.

    Returns:
        The interpolated value: ``q=0`` the minimum, ``q=50`` the median, ``q=100`` the maximum.
    """
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class PruneDecision:
    """Why a report was (or was not) pruned.

    Attributes:
        trial_id: the trial judged.
        cost: its cost so far (kWh, FPO... whatever the caller reports).
        score: its best score so far.
        prune: whether it should stop.
        threshold: the median or percentile of the references at ``cost`` (``None``: not
            computed, see ``reason``).
        references: how many trials gave a value at ``cost``.
        reason: one sentence, e.g. ``"0.4 < median 0.7 of 3 trials at cost 200 Wh"``.
    """

    trial_id: Hashable
    cost: float
    score: float
    prune: bool
    threshold: float | None
    references: int
    reason: str


@dataclass
class _Curve:
    """One trial's reports: cumulative costs (non-decreasing) and best-so-far scores."""

    costs: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    status: str = "running"
    reports: int = 0  # finite scores reported

    def add(self, cost: float, score: float, maximize: bool) -> None:
        self.reports += 1
        if self.best:
            previous = self.best[-1]
            score = max(previous, score) if maximize else min(previous, score)
        if self.costs and cost == self.costs[-1]:  # same cost reported again: keep the best
            self.best[-1] = score
            return
        self.costs.append(cost)
        self.best.append(score)

    def at(self, cost: float) -> float | None:
        """The best-so-far score at ``cost``, interpolated; ``None``: the curve says nothing."""
        if not self.costs or cost < self.costs[0]:
            return None
        if cost >= self.costs[-1]:
            if cost == self.costs[-1] or self.status == "complete":
                return self.best[-1]
            return None  # a running trial has not got this far yet
        i = bisect.bisect_right(self.costs, cost) - 1
        c0, c1 = self.costs[i], self.costs[i + 1]
        b0, b1 = self.best[i], self.best[i + 1]
        return b0 + (b1 - b0) * (cost - c0) / (c1 - c0)


class CostAwarePruner:
    """Stop trials whose score is dominated at equal cost (energy or FPO), median or percentile.

    Usable alone: call :meth:`report` after each evaluation of a trial and stop the trial when
    it returns ``True``; call :meth:`finish` when a trial ends otherwise. For Optuna, use
    :class:`~greenprint.greener.CostAwareOptunaPruner`, which wraps this class. Thread-safe.

    Args:
        direction: ``"maximize"`` (accuracy) or ``"minimize"`` (loss).
        rule: ``"median"`` (prune below the median of the references at equal cost) or
            ``"percentile"`` (prune outside the best ``percentile`` %).
        percentile: with ``rule="percentile"``, the share of trials kept, ``0 < p < 100``
            (25: only trials in the best quarter at their cost continue).
        n_startup_trials: completed trials needed before anything is pruned.
        min_cost: a trial is never pruned before it has spent this much (same unit as the
            reported cost; e.g. 0.001 kWh).
        n_warmup_reports: a trial is never pruned at its first ``n_warmup_reports`` reports
            (judged from the next one on).
        n_min_trials: references needed at the trial's cost to judge it.
        cost_unit: the cost's unit, for messages only (``"kWh"``, ``"FPO"``).

    Raises:
        ConfigError: an unknown direction or rule, a percentile outside (0, 100), a negative or
            non-finite ``min_cost``, counts that are not non-negative integers (``n_min_trials``
            at least 1), or a ``cost_unit`` that is no name.
    """

    def __init__(
        self,
        *,
        direction: Direction = "maximize",
        rule: Rule = "median",
        percentile: float = 50.0,
        n_startup_trials: int = 5,
        min_cost: float = 0.0,
        n_warmup_reports: int = 0,
        n_min_trials: int = 1,
        cost_unit: str = "kWh",
    ) -> None:
        if direction not in ("maximize", "minimize"):
            raise ConfigError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
        if rule not in ("median", "percentile"):
            raise ConfigError(f"rule must be 'median' or 'percentile', not {rule!r}")
        p = finite_number(
            "percentile", percentile, low=0.0, high=100.0, low_open=True, high_open=True, text=False
        )
        if rule == "median" and p != 50.0:
            raise ConfigError("rule='median' keeps the best 50 %: give rule='percentile'")
        self.direction: Direction = direction
        self.rule: Rule = rule
        self.percentile = p
        self.n_startup_trials = _count("n_startup_trials", n_startup_trials, low=0)
        self.n_min_trials = _count("n_min_trials", n_min_trials, low=1)
        self.n_warmup_reports = _count("n_warmup_reports", n_warmup_reports, low=0)
        self.min_cost = finite_number("min_cost", min_cost, low=0.0, text=False)
        if not isinstance(cost_unit, str) or not cost_unit.strip():
            # '' wrote every reason without a unit: 'at cost 4 ', 'min_cost=0 '
            raise ConfigError(f"cost_unit must be text such as 'kWh', not {cost_unit!r}")
        self.cost_unit = cost_unit
        self._curves: dict[Hashable, _Curve] = {}
        self._decisions: dict[Hashable, PruneDecision] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        rule = "median" if self.rule == "median" else f"percentile={self.percentile:g}"
        return (
            f"CostAwarePruner({self.direction}, {rule}, n_startup_trials={self.n_startup_trials}, "
            f"min_cost={self.min_cost:g} {self.cost_unit}, "
            f"n_warmup_reports={self.n_warmup_reports}, n_min_trials={self.n_min_trials})"
        )

    # ------------------------------------------------------------------ reporting
    def report(self, trial_id: Hashable, cost: float, score: float) -> bool:
        """Record a trial's score at its cost so far, and say whether it should stop.

        A trial judged ``True`` is recorded as pruned: it is no longer a reference, and further
        reports for it raise.

        Args:
            trial_id: any hashable id of the trial (its number, a name).
            cost: cumulative cost so far (kWh, FPO, ...; finite, ``>= 0``, never less than the
                trial's previous report).
            score: the trial's score now. NaN is ignored (never pruned for it).

        Returns:
            Whether the trial should stop now.

        Raises:
            ConfigError: a bad cost or score, a cost below the trial's previous one, or a trial
                already finished.
        """
        cost_value = finite_number("cost", cost, low=0.0, text=False)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ConfigError(f"score must be a number, not {score!r}")
        score_value = float(score)
        if math.isinf(score_value):
            raise ConfigError(f"score must be finite (or NaN to skip), not {score!r}")
        with self._lock:
            curve = self._curves.setdefault(trial_id, _Curve())
            if curve.status != "running":
                raise ConfigError(f"trial {trial_id!r} is already {curve.status}: start a new one")
            if curve.costs and cost_value < curve.costs[-1]:
                raise ConfigError(
                    f"cost of trial {trial_id!r} went down from {curve.costs[-1]:g} to "
                    f"{cost_value:g} {self.cost_unit}: report the cumulative cost so far"
                )
            if math.isnan(score_value):
                decision = PruneDecision(
                    trial_id, cost_value, score_value, False, None, 0, "score is NaN: not judged"
                )
            else:
                curve.add(cost_value, score_value, self.direction == "maximize")
                decision = self._judge(trial_id, curve, cost_value)
                if decision.prune:
                    curve.status = "pruned"
            self._decisions[trial_id] = decision
            return decision.prune

    def finish(self, trial_id: Hashable, status: TrialStatus = "complete") -> None:
        """Record how a trial ended: ``"complete"`` (a reference from now on), pruned or failed.

        A trial that never reported anything is remembered without a curve (it counts towards
        nothing). Finishing a trial again with another status changes it.

        Raises:
            ConfigError: an unknown status, or ``"running"``.
        """
        if status not in _STATUSES or status == "running":
            raise ConfigError(f"status must be 'complete', 'pruned' or 'failed', not {status!r}")
        with self._lock:
            self._curves.setdefault(trial_id, _Curve()).status = status

    def restore(self, trial_id: Hashable, points: Iterable[tuple[float, float]]) -> bool:
        """Add a trial that completed elsewhere (an earlier session, another worker) as a reference.

        Its points are judged by no one: they are the ``(cost, score)`` pairs it reported, in
        the order of cost, and the trial is recorded as complete, as if each had been given to
        :meth:`report` and then :meth:`finish`. NaN scores are skipped, as :meth:`report` skips
        them.

        Args:
            trial_id: the trial's id; a trial already known is left as it is.
            points: ``(cost, score)`` pairs (cumulative costs, finite, ``>= 0``).

        Returns:
            Whether the trial was added (``False``: already known).

        Raises:
            ConfigError: a point that is no ``(cost, score)`` pair, a bad cost or an infinite
                score.
        """
        checked = []
        for point in points:
            if not isinstance(point, (tuple, list)) or len(point) != 2:  # was a bare ValueError
                raise ConfigError(f"points must be (cost, score) pairs, not {point!r}")
            cost, score = point
            cost_value = finite_number("cost", cost, low=0.0, text=False)
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise ConfigError(f"score must be a number, not {score!r}")
            if math.isinf(score):
                raise ConfigError(f"score must be finite (or NaN to skip), not {score!r}")
            if not math.isnan(score):
                checked.append((cost_value, float(score)))
        checked.sort(key=lambda point: point[0])  # stable: equal costs keep their order
        with self._lock:
            if trial_id in self._curves:
                return False
            curve = _Curve()
            for cost_value, score_value in checked:
                curve.add(cost_value, score_value, self.direction == "maximize")
            curve.status = "complete"
            self._curves[trial_id] = curve
            return True

    # ------------------------------------------------------------------ reading
    def decision(self, trial_id: Hashable) -> PruneDecision | None:
        """The decision on the trial's last report (``None``: it never reported)."""
        with self._lock:
            return self._decisions.get(trial_id)

    def status(self, trial_id: Hashable) -> TrialStatus | None:
        """``"running"``, ``"complete"``, ``"pruned"``, ``"failed"``, or ``None`` if unknown."""
        with self._lock:
            curve = self._curves.get(trial_id)
            return None if curve is None else curve.status  # type: ignore[return-value]

    def curve(self, trial_id: Hashable) -> tuple[tuple[float, float], ...]:
        """The trial's ``(cost, best score so far)`` points, in order of cost.

        Raises:
            ConfigError: the trial is unknown.
        """
        with self._lock:
            curve = self._curves.get(trial_id)
            if curve is None:
                raise ConfigError(f"unknown trial {trial_id!r}")
            return tuple(zip(curve.costs, curve.best, strict=True))

    def score_at(self, cost: float, *, exclude: Hashable | None = None) -> list[float]:
        """The references' best-so-far scores at ``cost`` (what a trial there is compared with).

        Args:
            cost: the cost to read the curves at.
            exclude: a trial left out (the one being judged).

        Returns:
            One value per completed or running trial whose curve covers ``cost``.
        """
        cost_value = finite_number("cost", cost, low=0.0, text=False)
        with self._lock:
            return self._references(cost_value, exclude)

    def running(self, *, exclude: Hashable | None = None) -> list[Hashable]:
        """The trials still running (reported, not finished nor pruned), but ``exclude``."""
        with self._lock:
            return [t for t, c in self._curves.items() if c.status == "running" and t != exclude]

    @property
    def n_complete(self) -> int:
        """Trials finished as complete."""
        with self._lock:
            return sum(1 for c in self._curves.values() if c.status == "complete")

    # ------------------------------------------------------------------ internals
    def _references(self, cost: float, exclude: Hashable | None) -> list[float]:
        values = []
        for other, curve in self._curves.items():
            if other == exclude or curve.status not in ("complete", "running"):
                continue
            value = curve.at(cost)
            if value is not None:
                values.append(value)
        return values

    def _amount(self, cost: float) -> str:
        """A cost as a reason writes it.

        Energy and FPO as the report writes them (``13.4 µWh``, ``38.3 MFPO``, where a reason
        read ``1.34177e-08 kWh``), another unit as given (``4 GPU-h``).
        """
        if self.cost_unit == "kWh":
            return format_energy(cost)
        if self.cost_unit == "FPO":
            return format_fpo(cost)
        return f"{cost:.6g} {self.cost_unit}"

    def _judge(self, trial_id: Hashable, curve: _Curve, cost: float) -> PruneDecision:
        score = curve.best[-1]
        amount = self._amount

        def keep(reason: str, threshold: float | None = None, n: int = 0) -> PruneDecision:
            return PruneDecision(trial_id, cost, score, False, threshold, n, reason)

        complete = sum(1 for c in self._curves.values() if c.status == "complete")
        if complete < self.n_startup_trials:
            return keep(f"warm-up: {complete} of {self.n_startup_trials} startup trials complete")
        if curve.reports <= self.n_warmup_reports:
            return keep(f"warm-up: report {curve.reports} of {self.n_warmup_reports} unjudged")
        if cost < self.min_cost:
            return keep(f"warm-up: cost {amount(cost)} < min_cost {amount(self.min_cost)}")
        values = self._references(cost, trial_id)
        if len(values) < self.n_min_trials:
            return keep(
                f"{count_of(len(values), 'trial')} reached cost {amount(cost)}; "
                f"{self.n_min_trials} needed to judge",
                n=len(values),
            )
        maximize = self.direction == "maximize"
        q = 100.0 - self.percentile if maximize else self.percentile
        threshold = percentile_of(values, q)
        worse = score < threshold if maximize else score > threshold
        name = "median" if self.rule == "median" else f"{q:g}th percentile"
        sign = ("<" if maximize else ">") if worse else ("≥" if maximize else "≤")
        reason = (
            f"{score:.6g} {sign} {name} {threshold:.6g} of {count_of(len(values), 'trial')} "
            f"at cost {amount(cost)}"
        )
        return PruneDecision(trial_id, cost, score, worse, threshold, len(values), reason)


def _count(name: str, value: object, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, not {value!r}")
    return value
