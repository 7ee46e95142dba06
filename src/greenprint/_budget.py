"""Budgets that act: limits on a run's or a study's energy, CO2-eq, FPO and time.

A :class:`Budget` sets one or more limits (``kwh``, ``kg``, ``fpo``, ``s``) on a run
(``per="run"``) or on its whole study (``per="study"``: the cost of every top-level run of the
study, read from the ledger, plus the live cost of this process's runs, each root counted once),
and what happens when one is crossed (``on_exceed``):

* ``"warn"``: one warning (logged once per budget);
* ``"stop"``: the warning, then :class:`~greenprint.BudgetExceeded` is raised in the user's code
  at the next ``run.log()``, ``run.step()``, ``run.progress()`` or ``run.add_fpo()``; the run then
  ends ``interrupted`` with ``"BudgetExceeded: <reason>"`` as its error and its cost recorded
  (also when the exception is caught and the run goes on to end normally, and when the limit is
  crossed only at the final check ``run.stop()`` makes before deciding the status);
  ``run.check_budgets()`` returns the exception instead of raising it, for code that stops its
  own way (the Hugging Face and Lightning callbacks);
* a callable ``on_exceed(run, exceeded)``: called once per budget instead of the warning, on the
  thread that noticed (the sampler thread, or the user's thread in one of those calls); an
  exception it raises is logged, not raised. ``greenprint run --budget-kwh`` uses one to signal
  its command.

A run with progress reports also warns once per budget when its *predicted* total (see
:mod:`greenprint._prediction`) goes over a limit before the cost does (``warn_predicted``); a
run with no energy meter (``meters=[]``) predicts no energy or CO2-eq, so only its time can.

A run's budget covers the runs nested in it: its energy, CO2-eq and time are measured over its
span, theirs inside; its FPO is its own with theirs (:mod:`greenprint._run_tree`, the report's
rule), and a ``"stop"`` is raised in a nested run's calls as in its own.

:class:`BudgetGuard` does the bookkeeping for one run; the run feeds it what it has spent and
acts on the events it returns (outside its lock).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from greenprint._exceptions import BudgetExceeded, ConfigError
from greenprint._format import format_emissions, format_energy, format_fpo
from greenprint._validate import finite_number

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._prediction import Prediction

__all__ = ["LIMITS", "Budget", "BudgetEvent", "BudgetGuard", "OnExceed", "Spent"]

logger = logging.getLogger(__name__)

#: the study FPO budgets said to be unchecked already (a sweep's trials share one Budget:
#: said once, not at every trial's end)
_STUDY_FPO_SAID: weakref.WeakSet[Budget] = weakref.WeakSet()
#: the energy and CO2-eq budgets said to be unchecked by a run with no energy meter
_UNMETERED_SAID: weakref.WeakSet[Budget] = weakref.WeakSet()

OnExceed = Literal["warn", "stop"] | Callable[[Any, BudgetExceeded], Any]

#: limit field -> (option name, unit, quantity word, Prediction field or None)
LIMITS: dict[str, tuple[str, str, str, str | None]] = {
    "kwh": ("budget_kwh", "kWh", "energy", "energy_kwh"),
    "kg": ("budget_kg", "kg CO2-eq", "CO2-eq", "emissions_kg"),
    "fpo": ("budget_fpo", "FPO", "FPO", None),
    "s": ("budget_s", "s", "time", "duration_s"),
}


class Spent(NamedTuple):
    """What has been spent: energy (kWh), CO2-eq (kg), floating-point operations, wall time (s)."""

    kwh: float = 0.0
    kg: float = 0.0
    fpo: float = 0.0
    s: float = 0.0

    def __add__(self, other: object) -> Spent:  # type: ignore[override]
        if not isinstance(other, Spent):
            return NotImplemented
        return Spent(*(a + b for a, b in zip(self, other, strict=True)))

    def __sub__(self, other: Spent) -> Spent:
        return Spent(*(a - b for a, b in zip(self, other, strict=True)))


@dataclass(frozen=True)
class Budget:
    """Limits on a run's or a study's cost, and what to do when one is crossed.

    Example::

        study_cap = gp.Budget(kwh=5.0, per="study", on_exceed="stop")
        with gp.track("trial-3", study="sweep", budget=study_cap) as run:
            ...

    Attributes:
        kwh: energy limit in kWh (IT energy, before PUE).
        kg: CO2-eq limit in kg.
        fpo: floating-point operations limit (those recorded with ``run.set(fpo=...)`` or
            ``run.add_fpo``; for a run, with the runs nested in it: see
            :mod:`greenprint._run_tree`).
        s: wall-time limit in s (for a study: the summed wall time of its top-level runs).
        per: ``"run"`` (this run's cost) or ``"study"`` (the whole study's, read from the ledger).
        on_exceed: ``"warn"``, ``"stop"`` or a callable ``on_exceed(run, exceeded)``.
        warn_predicted: warn once when the run's predicted total goes over a limit.

    Raises:
        ConfigError: no limit, a limit that is not a finite number > 0, an unknown ``per`` or
            ``on_exceed``.
    """

    kwh: float | None = None
    kg: float | None = None
    fpo: float | None = None
    s: float | None = None
    per: Literal["run", "study"] = "run"
    on_exceed: OnExceed = field(default="warn", compare=False)
    warn_predicted: bool = True

    def __post_init__(self) -> None:
        for key, (option, unit, _, _) in LIMITS.items():
            value = getattr(self, key)
            if value is not None:
                checked = finite_number(
                    option, value, low=0.0, low_open=True, unit=unit, text=False
                )
                object.__setattr__(self, key, checked)
        if all(getattr(self, key) is None for key in LIMITS):
            raise ConfigError("a Budget needs at least one limit: kwh, kg, fpo or s")
        if self.per not in ("run", "study"):
            raise ConfigError(f"a budget's per must be 'run' or 'study', not {self.per!r}")
        check_on_exceed(self.on_exceed)
        if not isinstance(self.warn_predicted, bool):
            raise ConfigError(f"warn_predicted must be True or False, not {self.warn_predicted!r}")

    @property
    def limits(self) -> dict[str, float]:
        """The limits set, by field (``{"kwh": 1.0}``)."""
        return {key: getattr(self, key) for key in LIMITS if getattr(self, key) is not None}


def check_on_exceed(on_exceed: Any) -> None:
    """Refuse an ``on_exceed`` that is neither ``"warn"``, ``"stop"`` nor callable.

    Raises:
        ConfigError: it is none of them.
    """
    if on_exceed in ("warn", "stop") or (callable(on_exceed) and not isinstance(on_exceed, str)):
        return
    raise ConfigError(f"on_exceed must be 'warn', 'stop' or a callable, not {on_exceed!r}")


@dataclass(frozen=True)
class BudgetEvent:
    """Something a run must do about its budgets, outside its lock.

    Attributes:
        kind: ``"exceeded"`` (a limit crossed) or ``"predicted"`` (a limit predicted to be).
        budget: the budget concerned.
        message: the one-line warning.
        error: the exception of an ``"exceeded"`` event.
    """

    kind: Literal["exceeded", "predicted"]
    budget: Budget
    message: str
    error: BudgetExceeded | None = None


class BudgetGuard:
    """One run's budgets and what has happened to them. Not thread-safe: the run locks it.

    Args:
        budgets: the budgets, each acted on at most once for exceeding and once for a prediction.
        run_id: the run's id (for messages), set when it starts.
        study: the run's study.
    """

    def __init__(self, budgets: Sequence[Budget], *, study: str) -> None:
        self.budgets = tuple(budgets)
        self.study = study
        self.run_id = ""
        #: whether a budget is on the whole study (its cost is then read from the ledger)
        self.needs_study = any(b.per == "study" for b in self.budgets)
        #: whether a budget limits FPO, the run's or its study's (its children's in other
        #: processes are then read from the ledger: see :mod:`greenprint._run_tree`; a study's
        #: read leaves them out with their live parent, whose figure holds them)
        self.counts_fpo = any(b.fpo is not None for b in self.budgets)
        self.study_base = Spent()  # the study's other top-level runs, from the ledger
        self.study_roots: frozenset[str] = frozenset()  # live runs here that are top-level
        self._exceeded: set[int] = set()
        self._predicted: set[int] = set()
        # (index, budget, per run?, ((position in Spent, key, limit), ...)) of budgets not yet
        # exceeded: what check() walks on every run.log() (kept small and flat)
        fields = list(Spent._fields)
        self._open = [
            (i, b, b.per == "run", tuple((fields.index(k), k, v) for k, v in b.limits.items()))
            for i, b in enumerate(self.budgets)
        ]
        self.stop_error: BudgetExceeded | None = None  # the first "stop" that fired
        self._raised = False

    @classmethod
    def from_options(
        cls,
        options: dict[str, Any],
        *,
        study: str,
    ) -> BudgetGuard | None:
        """The guard for a run's options (``budget_kwh`` ... ``on_exceed``, ``budget``).

        Returns:
            The guard, or ``None`` when no budget is set.

        Raises:
            ConfigError: a bad limit, ``on_exceed`` or ``budget``.
        """
        on_exceed = options.get("on_exceed", "warn")
        check_on_exceed(on_exceed)
        budgets: list[Budget] = []
        kwh, kg, fpo, s = (options.get(LIMITS[key][0]) for key in LIMITS)
        if any(value is not None for value in (kwh, kg, fpo, s)):
            budgets.append(Budget(kwh=kwh, kg=kg, fpo=fpo, s=s, on_exceed=on_exceed))
        given = options.get("budget")
        if isinstance(given, Budget):
            budgets.append(given)
        elif isinstance(given, (list, tuple)) and all(isinstance(b, Budget) for b in given):
            budgets.extend(given)
        elif given is not None:
            raise ConfigError(
                f"budget must be a greenprint.Budget or a list of them, not {given!r}"
            )
        return cls(budgets, study=study) if budgets else None

    @property
    def exceeded(self) -> bool:
        """Whether any limit has been crossed."""
        return bool(self._exceeded)

    def take_stop(self) -> BudgetExceeded | None:
        """The ``"stop"`` exception to raise now in the user's code (once), else ``None``."""
        if self.stop_error is None or self._raised:
            return None
        self._raised = True
        return self.stop_error

    def check(self, run: Spent, live_roots: Spent) -> list[BudgetEvent]:
        """Compare what is spent with every budget not yet exceeded.

        Args:
            run: this run's cost so far.
            live_roots: the live cost of this process's active top-level runs of the study
                (added to :attr:`study_base` for study budgets).

        Returns:
            One event per budget that has just been exceeded.
        """
        events = []
        for entry in self._open:
            index, budget, per_run, limits = entry
            spent = run if per_run else self.study_base + live_roots
            for position, key, limit in limits:
                value = spent[position]
                if value > limit:
                    self._exceeded.add(index)
                    error = self._error(budget, key, value, limit)
                    if budget.on_exceed == "stop" and self.stop_error is None:
                        self.stop_error = error
                    events.append(BudgetEvent("exceeded", budget, self._message(error), error))
                    break
        if events:
            self._open = [entry for entry in self._open if entry[0] not in self._exceeded]
        return events

    def seconds_left(self, run: Spent, live_roots: Spent) -> float | None:
        """The least time left (s) before a wall-time limit not yet exceeded is crossed.

        For a run's limit that is the time it will take; for a study's, at least that long
        (the study's time grows by each of its live runs' at once): a watcher that waits this
        long and checks again meets the limit as it is crossed, not at the next meter sample.

        Args:
            run: this run's cost so far.
            live_roots: the live cost of this process's active top-level runs of the study.

        Returns:
            Seconds (0 when a limit is already crossed but not yet checked), or ``None``
            when no budget not yet exceeded limits time.
        """
        position = Spent._fields.index("s")
        left: float | None = None
        for _, _, per_run, limits in self._open:
            spent = run if per_run else self.study_base + live_roots
            for at, _, limit in limits:
                if at == position:
                    here = max(limit - spent[position], 0.0)
                    left = here if left is None else min(left, here)
        return left

    def unchecked_fpo(self, run: Spent, live_roots: Spent | None = None) -> list[str]:
        """Warnings for the FPO budgets that never saw a figure: no FPO was recorded.

        An FPO budget counts what ``run.add_fpo``/``run.set(fpo=...)`` recorded (the run's and
        its nested runs'); a run that recorded none ran unchecked by it, which the user should
        hear of once, at its end. A study's FPO budget is unchecked while no run of the study
        has recorded any (a scikit-learn sweep that counts none): said once per budget in this
        process, at the end of the first run that finds it so, not at every trial's.

        Args:
            run: the run's final cost.
            live_roots: the live cost of this process's active top-level runs of the study
                (with :attr:`study_base`, the study's figure); ``None``: run budgets only.
        """
        if run.fpo > 0:
            return []
        study_fpo = None if live_roots is None else (self.study_base + live_roots).fpo
        messages = []
        for _, budget, per_run, _ in self._open:
            if budget.fpo is None:
                continue
            if not per_run:
                if study_fpo is None or study_fpo > 0 or budget in _STUDY_FPO_SAID:
                    continue
                _STUDY_FPO_SAID.add(budget)
            amount = _amount("fpo", budget.fpo)
            said = (
                f"{self._whose(budget)} recorded no FPO, so its budget_fpo {amount} was never "
                "checked"
                if per_run
                else f"no run of study {self.study!r} has recorded FPO (run {self.run_id[:8]} "
                f"ended with none), so its budget_fpo {amount} has not been checked"
            )
            messages.append(
                f"greenprint: {said}: record its FPO with run.add_fpo(...) or run.set(fpo=...) "
                "(greenprint.count_fpo or training_fpo count a PyTorch model's)"
            )
        return messages

    def unmetered(self) -> list[str]:
        """Warnings for the energy and CO2-eq budgets of a run with no energy meter.

        A run tracked with ``meters=[]`` records no energy and no CO2-eq (unknown, never 0):
        its ``budget_kwh`` and ``budget_kg`` can never be crossed, and a study budget on them
        counts none of its cost. Said at the run's start, once per budget in this process.
        """
        messages = []
        for _, budget, per_run, _ in self._open:
            limits = [
                f"{LIMITS[key][0]} {_amount(key, getattr(budget, key))}"
                for key in ("kwh", "kg")
                if getattr(budget, key) is not None
            ]
            if not limits or budget in _UNMETERED_SAID:
                continue
            _UNMETERED_SAID.add(budget)
            run = f"run {self.run_id[:8]}"
            whose = (
                f"its {' and '.join(limits)} can never be crossed"
                if per_run
                else f"the {' and '.join(limits)} of study {self.study!r} "
                f"{'count' if len(limits) > 1 else 'counts'} none of its cost"
            )
            messages.append(
                f"greenprint: {run} has no energy meter (meters=[]): its energy and CO2-eq are "
                f"unknown, so {whose}; leave meters out to measure them"
            )
        return messages

    @property
    def idle(self) -> bool:
        """Whether nothing is left to check or raise (every budget exceeded, any stop raised)."""
        return not self._open and (self.stop_error is None or self._raised)

    def check_predicted(
        self, prediction: Prediction, run: Spent, live_roots: Spent
    ) -> list[BudgetEvent]:
        """Warn (once per budget) about a limit the run's predicted total goes over.

        For a study budget the run's predicted remainder is added to the study's cost so far.
        A run with no energy meter predicts no energy or CO2-eq (``None``: unknown): its
        ``kwh`` and ``kg`` limits are not checked against a prediction, never found within
        budget by a predicted 0 (:meth:`unmetered` said so at the run's start).
        """
        events = []
        for index, budget in enumerate(self.budgets):
            if not budget.warn_predicted or index in self._predicted or index in self._exceeded:
                continue
            spent = run if budget.per == "run" else self.study_base + live_roots
            for key, limit in budget.limits.items():
                quantity = LIMITS[key][3]
                if quantity is None:
                    continue
                estimate = getattr(prediction, quantity)
                if estimate is None:  # no energy meter: nothing predicted to compare
                    continue
                total = getattr(spent, key) - getattr(run, key) + estimate.value
                if total > limit:
                    self._predicted.add(index)
                    events.append(
                        BudgetEvent(
                            "predicted",
                            budget,
                            self._predicted_message(
                                budget, key, total, limit, estimate, prediction.fraction
                            ),
                        )
                    )
                    break
        return events

    def _whose(self, budget: Budget) -> str:
        run = f"run {self.run_id[:8]}"
        return run if budget.per == "run" else f"study {self.study!r} (at {run})"

    def _error(self, budget: Budget, key: str, value: float, limit: float) -> BudgetExceeded:
        option, unit, word, _ = LIMITS[key]
        option = option if budget.per == "run" else f"study {option}"
        spent_text, limit_text = _amounts(key, value, limit)
        return BudgetExceeded(
            f"{self._whose(budget)} is over budget: {word} {spent_text} > {option} {limit_text}",
            limit=option,
            budget=limit,
            spent=value,
            per=budget.per,
            run_id=self.run_id,
            study=self.study,
        )

    def _message(self, error: BudgetExceeded) -> str:
        return f"greenprint: {error}"

    def _predicted_message(
        self, budget: Budget, key: str, total: float, limit: float, estimate: Any, fraction: float
    ) -> str:
        option, _, word, _ = LIMITS[key]
        interval = (
            f" ({_amount(key, estimate.low)} to {_amount(key, estimate.high)} for the run)"
            if estimate.low is not None
            else ""
        )
        total_text, limit_text = _amounts(key, total, limit)
        return (
            f"greenprint: {self._whose(budget)} is predicted to go over budget: {word} "
            f"{total_text} in all{interval}, {option} {limit_text} ({fraction:.0%} done)"
        )


def _amount(key: str, value: float, digits: int = 3) -> str:
    """A budget's quantity as the report writes it, ``digits`` significant figures.

    Energy ``12.3 Wh``, CO2-eq ``4.7 g CO2-eq``, FPO ``3.1 PFPO``, time in seconds ``1.06 s``
    (``1234 s`` rather than ``1.23e+03 s``).
    """
    if key == "kwh":
        return format_energy(value, digits=digits)
    if key == "kg":
        return format_emissions(value, digits=digits)
    if key == "fpo":
        return format_fpo(value, digits=digits)
    text = f"{value:.{digits}g}"
    return f"{value:.0f} s" if "e+" in text else f"{text} s"


def _amounts(key: str, spent: float, limit: float) -> tuple[str, str]:
    """``spent`` and ``limit`` at 3 significant figures, more where 3 would read the same.

    100.04 Wh against 100 Wh reads ``100.04 Wh > 100 Wh``, not ``100 Wh > 100 Wh``.
    A float just over its limit (1e-12 relative) reads in as many as 17 (every float apart).
    """
    for digits in range(3, 18):
        pair = _amount(key, spent, digits), _amount(key, limit, digits)
        if pair[0] != pair[1]:
            return pair
    return pair
