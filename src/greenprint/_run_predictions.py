"""A run's progress and its predicted totals: :class:`RunPredictions`.

``run.progress(fraction)`` (or ``expect`` and ``step``) feeds a
:class:`~greenprint._prediction.Predictor`, which predicts the whole run's energy, CO2-eq and
time with intervals (see :mod:`greenprint._prediction` for the method). The predictions are
logged as ``greenprint.predicted_*`` metrics every 1 % of progress at most, a budget they go
over warns once, and a run that finishes at fraction 1 records how far its first prediction
was from the truth.
"""

from __future__ import annotations

import logging
import time

from greenprint._exceptions import ConfigError
from greenprint._prediction import Prediction, Predictor, metric_name
from greenprint._records import MetricPoint
from greenprint._run_state import RunState

__all__ = ["RunPredictions"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")


def _prediction_points(prediction: Prediction | None, step: int, now: float) -> list[MetricPoint]:
    """A prediction as ``greenprint.predicted_*`` metric points (and ``greenprint.progress``).

    A run with no energy meter (``meters=[]``) predicts its time only: no energy or CO2-eq
    point (they are unknown, :class:`~greenprint._prediction.Prediction` holds ``None``).
    """
    if prediction is None:  # pragma: no cover - a report was taken
        return []
    points = [MetricPoint(metric_name("progress"), prediction.fraction, step, now)]
    for quantity, estimate in prediction.items():  # the quantities predicted
        name = metric_name(f"predicted_{quantity}")
        points.append(MetricPoint(name, estimate.value, step, now))
        if estimate.low is not None and estimate.high is not None:
            points.append(MetricPoint(f"{name}_low", estimate.low, step, now))
            points.append(MetricPoint(f"{name}_high", estimate.high, step, now))
    return points


#: Least progress (a fraction of the run) between two predictions logged as metrics.
_PREDICTION_LOG_EVERY = 0.01


class RunPredictions(RunState):
    """Follow a run's progress and predict its totals."""

    def progress(self, fraction: float) -> None:
        """Tell the run how far it is (0 < fraction <= 1), e.g. ``(epoch + 1) / epochs``.

        Each report predicts the whole run's energy, CO2-eq and time with an interval that
        narrows as the run goes (see :mod:`greenprint._prediction` for the method); the
        prediction is logged as ``greenprint.predicted_*`` metrics (every 1 % of progress at
        most), a budget the prediction goes over warns once, and a run that finishes with
        ``fraction`` 1 records how far its first prediction was from the truth. Reports before
        the first meter sample (one ``sample_interval_s`` into the run; a run with no meter
        predicts its time alone, from its first report) and reports that do not move forward
        are not used for the prediction.

        Raises:
            ConfigError: fraction outside (0, 1].
            BudgetExceeded: a budget with ``on_exceed="stop"`` was crossed (raised once).
        """
        if isinstance(fraction, bool) or not (
            isinstance(fraction, (int, float)) and 0 < fraction <= 1
        ):  # progress(True) is no fraction (it read 1.0: "done")
            raise ConfigError(f"progress must be a fraction in (0, 1], not {fraction!r}")
        self._report_progress(float(fraction))

    def expect(self, total_steps: int) -> None:
        """Say how many steps the run will take; then :meth:`step` reports progress.

        Raises:
            ConfigError: ``total_steps`` is not a positive integer.
        """
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
            raise ConfigError(f"total_steps must be a positive integer, not {total_steps!r}")
        with self._lock:
            self._total_steps = total_steps

    def step(self, n: int = 1) -> None:
        """Count ``n`` steps done (after :meth:`expect`: progress is steps / total_steps).

        Cheap enough for every training step: the prediction's statistics take O(1) time and
        its metrics are logged every 1 % of progress at most. Steps beyond ``total_steps`` are
        counted but no longer predict.

        Raises:
            ConfigError: ``n`` is not a positive integer.
            BudgetExceeded: a budget with ``on_exceed="stop"`` was crossed (raised once).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ConfigError(f"a step count must be a positive integer, not {n!r}")
        with self._lock:
            self._steps += n
            total = self._total_steps
            steps = self._steps
        if total is not None and steps <= total:
            self._report_progress(steps / total)
        elif self._guard is not None or self._guarded_up:
            self._enforce_budgets()

    @property
    def prediction(self) -> Prediction | None:
        """The latest prediction of the whole run's totals, with intervals; else ``None``.

        A run with no energy meter (``meters=[]``) predicts its time only: the prediction's
        ``energy_kwh`` and ``emissions_kg`` are ``None`` (unknown, never an estimate of 0).
        """
        with self._lock:
            return None if self._predictor is None else self._predictor.predict()

    @property
    def first_prediction(self) -> Prediction | None:
        """The run's first prediction (the one its recorded error is about); else ``None``.

        Its ``energy_kwh`` and ``emissions_kg`` are ``None`` as :attr:`prediction`'s.
        """
        with self._lock:
            return None if self._predictor is None else self._predictor.first

    @property
    def predicted_energy_kwh(self) -> float | None:
        """Energy of the whole run in kWh, predicted from :meth:`progress`; else ``None``.

        ``None`` too for a run with no energy meter (``meters=[]``): unknown, never 0.
        """
        estimate = None if (prediction := self.prediction) is None else prediction.energy_kwh
        return None if estimate is None else estimate.value

    @property
    def predicted_emissions_kg(self) -> float | None:
        """CO2-eq of the whole run in kg, predicted from :meth:`progress`; else ``None``.

        ``None`` too for a run with no energy meter (``meters=[]``): unknown, never 0.
        """
        estimate = None if (prediction := self.prediction) is None else prediction.emissions_kg
        return None if estimate is None else estimate.value

    @property
    def predicted_duration_s(self) -> float | None:
        """Wall time of the whole run in s, predicted from :meth:`progress`; else ``None``."""
        prediction = self.prediction
        return None if prediction is None else prediction.duration_s.value

    def _report_progress(self, fraction: float) -> None:
        """Feed the predictor, log the prediction (every 1 %), warn of predicted overruns."""
        now = time.time()
        prediction = None
        with self._lock:
            if self._state != "running" or self._account is None:
                return
            if self._account.last_t <= self._started_at and not self._unmetered:
                # no meter sample yet: nothing to extrapolate energy from. A run with no meter
                # predicts its time alone, from the clock: at once (a fit whose epochs all
                # ended before the first sample predicted nothing)
                return
            if self._predictor is None:
                self._predictor = Predictor(metered=not self._unmetered)
            predictor = self._predictor
            kwh, kg = self._live_figures(now)
            taken = predictor.observe(fraction, kwh, kg, max(now - self._started_at, 0.0))
            if taken and (
                predictor.reports == 1
                or fraction - self._logged_fraction >= _PREDICTION_LOG_EVERY
                or fraction >= 1.0
            ):
                prediction = predictor.predict()
                self._logged_fraction = fraction
                points = _prediction_points(prediction, self._prediction_step(), now)
                self._metrics.extend(points)
                self._pending_metrics.extend(points)
        guard = self._guard
        if guard is not None and prediction is not None:
            live = self._live_roots()
            with self._lock:
                events = guard.check_predicted(prediction, self._spent(), live)
            self._act_on_budgets(events)
        if guard is not None or self._guarded_up:
            self._enforce_budgets()

    def _prediction_step(self) -> int:
        """The step of prediction metrics: steps done after :meth:`expect`, else reports."""
        if self._total_steps is not None:
            return self._steps
        return self._predictor.reports if self._predictor is not None else 0

    def _live_figures(self, now: float) -> tuple[float, float]:
        """Energy (kWh) and CO2-eq (kg) at ``now``, for a progress report (caller holds the lock).

        The last sample's figures, carried on at the rate of the samples before it, so that
        reports between two samples differ as the work they follow does.
        """
        account = self._account
        if account is None:  # pragma: no cover - only called while running
            return 0.0, 0.0
        t, kwh, kg = account.last_t, account.energy_kwh, account.emissions_kg
        if t != self._live_t:
            t0 = self._live_t or self._started_at
            kwh0, kg0 = self._live_cost
            if t > t0:
                self._live_rate = ((kwh - kwh0) / (t - t0), (kg - kg0) / (t - t0))
            self._live_t, self._live_cost = t, (kwh, kg)
        ahead = max(now - t, 0.0)
        return kwh + self._live_rate[0] * ahead, kg + self._live_rate[1] * ahead

    def _record_prediction_error(self, status: str) -> None:
        """Log how far the first prediction was from the truth (caller holds the lock).

        Only for a run that finished after reporting all of its progress (fraction 1): the
        relative error ``(predicted - actual) / actual`` of energy, CO2-eq and time (time only
        for a run with no energy meter: it predicted no energy), and the fraction at which the
        first prediction was made.
        """
        predictor = self._predictor
        if predictor is None or predictor.first is None:
            return
        if status != "finished" or predictor.fraction < 1.0 - 1e-9:
            logger.debug(
                "greenprint: run %s ended %s at %.0f%% of its progress: no prediction error",
                self.id[:8],
                status,
                100 * predictor.fraction,
            )
            return
        first = predictor.first
        actual = {
            "energy_kwh": self.energy_kwh,
            "emissions_kg": self.emissions_kg,
            "duration_s": self.duration_s,
        }
        now = time.time()
        step = self._prediction_step()
        points = [MetricPoint(metric_name("prediction_first_fraction"), first.fraction, step, now)]
        for quantity, estimate in first.items():
            truth = actual[quantity]
            if truth > 0:
                error = (estimate.value - truth) / truth
                points.append(
                    MetricPoint(metric_name(f"prediction_error_{quantity}"), error, step, now)
                )
        self._metrics.extend(points)
        self._pending_metrics.extend(points)
