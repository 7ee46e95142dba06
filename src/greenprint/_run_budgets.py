"""A run's budgets, checked and acted on: :class:`RunBudgets`.

The limits and their verdicts are :class:`~greenprint._budget.BudgetGuard`'s; this module
feeds it the run's cost (its FPO with its children's: :mod:`greenprint._run_tree`), the live
cost of the study's top-level runs in this process and the study's cost read from the ledger,
and acts on what was crossed: on the sampler thread (a warning or the callable
``on_exceed``), on the user's thread (``log``, ``step``, ``progress``, ``add_fpo`` raise a
``"stop"`` budget's :class:`~greenprint.BudgetExceeded`, once), through
:meth:`RunBudgets.check_budgets` for code that stops its own way, and once more at the end,
where a crossed ``"stop"`` budget decides the status. A budget on a run covers the runs of
this process nested in it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from greenprint._budget import BudgetEvent, Spent
from greenprint._exceptions import BudgetExceeded
from greenprint._lifecycle import registry, status_for
from greenprint._run_state import RunState

__all__ = ["RunBudgets"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")


def _counted_once(group: list[tuple[float, Spent]], now: float) -> Spent:
    """What live runs that read one process since their starts spent, each stretch once.

    Energy and CO2-eq by :func:`~greenprint._forest_stretches.group_counts` (each stretch
    once, at least the largest reading) over the runs that read some (a run that read nothing
    yet is no reading of the process), as the ledger's read counts them; FPO and run time
    summed.
    """
    from greenprint._forest_stretches import group_counts

    figures = []
    for field in ("kwh", "kg"):
        amounts = [(start, getattr(spent, field)) for start, spent in group]
        read = [(start, amount) for start, amount in amounts if amount > 0]
        if len(read) < 2:
            figures.append(sum(amount for _, amount in amounts))
            continue
        figures.append(sum(group_counts([(start, now) for start, _ in read], [a for _, a in read])))
    return Spent(
        figures[0],
        figures[1],
        sum(spent.fpo for _, spent in group),
        sum(spent.s for _, spent in group),
    )


def _active_runs() -> list[RunBudgets]:
    """The runs being measured in this process: :func:`greenprint.tracking.active_runs`.

    Read from the registry that holds them (only runs are added to it), without importing the
    module that defines the run.
    """
    return [run for run in registry.active() if isinstance(run, RunBudgets)]


class RunBudgets(RunState):
    """Check a run's budgets (and those of the runs it is nested in) and act on them."""

    @property
    def over_budget(self) -> bool:
        """True once any budget of the run (or its study) has been exceeded."""
        with self._lock:
            return self._guard is not None and self._guard.exceeded

    def check_budgets(self) -> BudgetExceeded | None:
        """Check the budgets now and return a ``"stop"`` budget's verdict instead of raising it.

        For code that stops the work its own way: a training framework's callback sets its
        stop flag (Hugging Face's ``control.should_training_stop``, Lightning's
        ``trainer.should_stop``) and the training ends cleanly, its model usable. A limit just
        crossed is warned about (or its callable called) as at :meth:`log`. From the first
        call on, the stop is the caller's: :meth:`log`, :meth:`step`, :meth:`progress` and
        :meth:`add_fpo` no longer raise :class:`~greenprint.BudgetExceeded` (a limit they find
        crossed is returned by the next call here); the run still ends ``interrupted`` with
        the reason. A budget on a run covers the runs nested in it: when none of this run's
        own ``"stop"`` budgets was crossed, that of a run of this process it is nested in is
        returned (once returned, this run ends ``interrupted`` with it too).

        Returns:
            The :class:`~greenprint.BudgetExceeded` of the first ``"stop"`` budget crossed (the
            same one at every later call), or ``None`` when none has been.
        """
        guard = self._guard
        if guard is None and not self._guarded_up:
            return None
        self._stop_owned = True
        if guard is not None:
            events: list[BudgetEvent] = []
            if not guard.idle and self._state == "running" and self._pid == os.getpid():
                live = self._live_roots()
                with self._lock:
                    events = guard.check(self._spent(), live)
                    guard.take_stop()
            self._act_on_budgets(events)
            if guard.stop_error is not None:
                return guard.stop_error
        for outer in self._guarded_up:  # a budget on a run this one is nested in covers it
            outer._check_guard(take=False)
            if outer._guard is not None and outer._guard.stop_error is not None:
                self._outer_stop = outer._guard.stop_error
                return self._outer_stop
        return None

    def _time_budget_left_s(self) -> float | None:
        """Seconds before this run's (or its study's) wall-time budget is crossed, at least.

        ``None`` when no such budget is left to check, or the run is not running here. See
        :meth:`~greenprint._budget.BudgetGuard.seconds_left`; ``greenprint run`` waits this
        long, then calls :meth:`check_budgets`, so that a time budget stops the command when
        it runs out rather than at the next meter sample.
        """
        guard = self._guard
        if guard is None or self._state != "running" or self._pid != os.getpid():
            return None
        live = self._live_roots()
        with self._lock:
            return guard.seconds_left(self._spent(), live)

    def _check_budgets(self) -> None:
        """On the sampler thread: compare the cost with the budgets and act on what was crossed.

        A study's cost is re-read from the ledger every flush interval, or less often when a
        read takes more than 1 % of that (a big study): at most 1 % of a core goes to it.
        """
        guard = self._guard
        if guard is None:
            return
        if guard.needs_study and time.time() >= self._study_read_at + self._study_read_every_s:
            self._read_study_cost()
        if guard.counts_fpo and self._node is not None:  # children in other processes
            self._node.read_outside(self._ledger, every_s=self._flush_s)
        live = self._live_roots()
        with self._lock:
            events = guard.check(self._spent(), live)
        self._act_on_budgets(events)

    def _enforce_budgets(self) -> None:
        """On the user's thread (log, step, progress, add_fpo): check, act, raise a "stop".

        The budgets of the runs of this process this one is nested in are checked too (they
        count its FPO), and their "stop" is raised here, once in each nested run, unless this
        run's stop is its caller's (:meth:`check_budgets`) or theirs is: a fold running in
        another thread when its trial's budget was crossed, or started after, stops too.
        """
        error = self._check_guard(take=not self._stop_owned)
        if error is None and not self._stop_owned and self._outer_stop is None:
            for outer in self._guarded_up:
                error = outer._check_guard(take=not outer._stop_owned)
                crossed = outer._guard.stop_error if outer._guard is not None else None
                if error is None and crossed is not None and not outer._stop_owned:
                    error = crossed  # raised in another nested run (a thread): here too, once
                if error is not None:
                    self._outer_stop = error
                    break
        if error is not None:
            raise error

    def _check_guard(self, *, take: bool) -> BudgetExceeded | None:
        """Check this run's budgets now and act on them; with ``take``, the "stop" to raise.

        Returns:
            A ``"stop"`` budget's exception not raised yet (then marked raised), with ``take``;
            else ``None``.
        """
        guard = self._guard
        if guard is None or guard.idle or self._state != "running" or self._pid != os.getpid():
            return None  # (a forked child's copy of its parent's run: the parent checks it)
        live = self._live_roots()
        with self._lock:
            events = guard.check(self._spent(), live)
            error = guard.take_stop()
        self._act_on_budgets(events)  # the warning before the exception
        return error if take else None

    def _final_budget_check(self) -> None:
        """At the end, after the final sample: act on a limit crossed since the last check.

        Nothing is raised; a ``"stop"`` budget crossed here decides the status as one crossed
        earlier does (see :meth:`_final_status`).
        """
        guard = self._guard
        if guard is None or guard.idle:
            return
        if guard.counts_fpo and self._node is not None:  # children in other processes, ended
            self._node.read_outside(self._ledger, every_s=0.0, force=True)
        live = self._live_roots()
        with self._lock:
            spent = self._spent()
            events = guard.check(spent, live)
        self._act_on_budgets(events)
        for message in guard.unchecked_fpo(spent, live):
            logger.warning("%s", message)

    def _final_status(self, status: str, error: str | None) -> tuple[str, str | None]:
        """The status and error to record, given those asked for and the budgets' verdict.

        ``"finished"`` becomes ``"pruned"`` after :meth:`prune`. A ``"stop"`` budget crossed at
        any time, its exception raised, caught or never raised (crossed in the last interval),
        makes a run that would end ``finished`` or ``pruned`` end ``interrupted`` with
        ``"BudgetExceeded: <reason>"`` as its error, as an uncaught :class:`BudgetExceeded`
        does; ``failed`` and ``interrupted`` (an exception, a signal) keep their own error.
        """
        if status == "finished" and self._prune_requested:
            status = "pruned"
        stopped_by = self._guard.stop_error if self._guard is not None else None
        stopped_by = stopped_by or self._outer_stop
        if stopped_by is not None and status in ("finished", "pruned"):
            status, error = status_for(stopped_by)
        return status, error

    def _spent(self) -> Spent:
        """This run's cost so far (the caller holds the lock).

        Its FPO is with its children's (:class:`~greenprint._run_tree.RunNode`): energy,
        CO2-eq and time are measured over its span, its children's inside.
        """
        node = self._node
        fpo = float(node.fpo() if node is not None else (self._fpo or 0))
        account = self._account
        if account is None:
            return Spent(0.0, 0.0, fpo, self.duration_s)
        return Spent(account.energy_kwh, account.emissions_kg, fpo, self.duration_s)

    def _live_roots(self) -> Spent:
        """The live cost of this process's running top-level runs of the study (study budgets).

        Runs of scope ``"process"`` that read the same process (threads of it) count each
        stretch of their time once, as the ledger's read of them does (:func:`_counted_once`).
        Each run's lock is taken on its own, never while holding this run's.
        """
        guard = self._guard
        if guard is None or not guard.needs_study:
            return Spent()
        total = Spent()
        roots = guard.study_roots
        now = time.time()
        # runs that read one process (threads of it: Optuna n_jobs=2 with no sweep run) each
        # read all of it since their start: each stretch of their time is counted once, as the
        # ledger's read counts them (greenprint._forest_stretches)
        reads: dict[Any, list[tuple[float, Spent]]] = {}
        for run in _active_runs():
            if run._study == self._study and (run.parent_id is None or run.id in roots):
                with run._lock:
                    spent, started = run._spent(), run._started_at
                    process = run._options.get("pid") or os.getpid()
                    if run._scope != "process" or not 0.0 < started < now:
                        process = None
                if process is None:
                    total = total + spent
                else:
                    reads.setdefault(process, []).append((started, spent))
        for group in reads.values():
            total = total + (group[0][1] if len(group) == 1 else _counted_once(group, now))
        return total

    def _read_study_cost(self) -> None:
        """Read the cost of the study's runs not live here: the price tag's total of them.

        :mod:`greenprint.ledger._study_cost` reads it (one query of sums where that is exact,
        else the price tag's rule over a few columns: nested runs inside their parents, folds'
        FPO in their trial, children on other hosts added); this process's live runs of the
        study are left out, those that are top-level with every run nested in them, and those
        are added live by :meth:`_live_roots` (their figures from memory hold their children).
        """
        from greenprint._exceptions import LedgerError
        from greenprint.ledger._study_cost import study_cost

        started = time.perf_counter()
        self._study_read_at = time.time()
        guard = self._guard
        if guard is None or self._ledger is None:
            return
        here = [run.id for run in _active_runs() if run._study == self._study and run.id]
        try:
            cost = study_cost(self._ledger, self._study, exclude=here)
        except LedgerError as e:  # the next read tries again; the last figures stand
            logger.warning("greenprint: could not read study %r's cost: %s", self._study, e)
            return
        took_s = time.perf_counter() - started
        self._study_read_every_s = max(self._flush_s, 100 * took_s)
        base = Spent(cost.energy_kwh, cost.emissions_kg, cost.fpo, cost.duration_s)
        with self._lock:
            guard.study_base = base
            guard.study_roots = cost.top_level

    def _act_on_budgets(self, events: list[BudgetEvent]) -> None:
        """Warn, or call a callable ``on_exceed`` (its exceptions logged, never raised)."""
        for event in events:
            on_exceed = event.budget.on_exceed
            if event.error is None or not callable(on_exceed) or isinstance(on_exceed, str):
                logger.warning("%s", event.message)
            else:  # the callable is in charge of telling the user (greenprint run does)
                try:
                    on_exceed(self, event.error)
                except Exception:  # the user's callback must not kill the sampler thread
                    logger.exception("greenprint: on_exceed of run %s failed", self.id[:8])
