"""The Ray Tune callback's ledger plumbing: the trial runs under the sweep.

:class:`_TrialLedger`, a base of the callback: whether a worker is inside the sweep's process
tree, a trial run adopted as the sweep's child in its study (one study per experiment), a run
the driver writes from the record its result carries, and, at the experiment's end, the runs
of trials that reported nothing (ended first, or a resumed stretch with no result), the
earlier stretches of paused trials, and the wait for workers still writing.

Private: :mod:`greenprint.integrations.ray` is the public module.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import fields
from numbers import Real
from typing import Any

from greenprint import _jobs
from greenprint._exceptions import GreenprintError
from greenprint.integrations._common import (
    WarnOnce,
    interrupted_at_heartbeat,
)
from greenprint.integrations._ray_restore import _WORKER_CLOCK_S, _Resume
from greenprint.integrations._ray_trials import (
    _error_text,
    _trial_name,
    _TrialState,
)
from greenprint.integrations._ray_workers import (
    _RECORD,
    _TUNE_KEYS,
    FIGURE_PREFIX,
    _host,
    _params,
)

#: Its messages keep the logger name they had in one module.
logger = logging.getLogger("greenprint.integrations.ray")

#: How long, in s, the callback waits at the end for workers still writing their final record.
_SETTLE_S = 5.0


class _TrialLedger:
    """The trial runs made the sweep's children, found, ended."""

    _options: dict[str, Any]
    _study: str | None
    _sweep: Any
    _trials: dict[str, _TrialState]
    _resume: _Resume
    _paused: list[str]
    _started: set[str]
    _attempt_times: dict[str, tuple[float, float | None]]
    _ended: dict[str, str]
    _warn: WarnOnce
    _experiment: str
    _study_checked: bool

    def _contained(self, worker: str) -> bool | None:
        """Whether the worker process ``"<host> <pid>"`` is inside the sweep's process tree."""
        host, _, pid = worker.rpartition(" ")
        if not pid.isdigit():
            return None
        scope = str(self._options.get("scope") or "process")
        sweep_tree = _jobs.parent_tree_value(scope, os.getpid(), _host())
        return _jobs.tree_contains(sweep_tree, host=host, pid=int(pid))

    def _link_fields(self, state: _TrialState) -> dict[str, Any]:
        # the sweep's study: its worker may have written it under another (see _one_study)
        fields_: dict[str, Any] = {
            "parent_id": self._sweep.id,
            "role": "trial",
            "study": self._sweep.study,
        }
        contained = self._contained(state.worker)
        if contained is not None:
            fields_["contained"] = contained
        return fields_

    def _adopt(self, state: _TrialState) -> None:
        """Make a run the worker wrote a child of the sweep, in the sweep's study."""
        ledger = self._sweep.ledger
        if ledger is None:
            return
        if not self._study_checked:
            self._study_checked = True
            self._one_study(ledger.run(state.run_id).study)
        ledger.flush(state.run_id, fields=self._link_fields(state))

    def _one_study(self, study: str) -> None:
        """Keep the experiment in one study when its trial runs were written in ``study``.

        The sweep is the container of the trials: they are recorded in its study. A trainable
        given no study writes under the experiment's name (its default): moved into the
        sweep's study as they are adopted. A trainable given a study of its own: with a
        callback given none (and no earlier driver's sweep to follow), the sweep moves into
        that study, the one the user named; with a callback given another, the two name two
        studies for one experiment (a warning, once), and the trials are moved into the
        sweep's, the callback's.
        """
        sweep = self._sweep
        if study == sweep.study or study == self._experiment:
            return
        ledger = sweep.ledger
        if self._study is None and not self._resume.restored and ledger is not None:
            try:
                sweep._move_to_study(study)
            except GreenprintError as e:
                logger.warning("greenprint: could not move the sweep into study %r: %s", study, e)
                return
            self._resume.moved = self._experiment
            return
        self._resume.elsewhere.add(study)
        self._warn(
            "studies",
            f"greenprint: trainable(study={study!r}) and the GreenprintTuneCallback's study "
            f"{sweep.study!r} name two studies for one experiment; its trials are recorded "
            f"in the sweep's study {sweep.study!r}: give both the same study, or only one",
        )

    def _write_relayed(self, state: _TrialState, result: Mapping[str, Any]) -> None:
        """Write a run the worker keeps in memory from the record its result carries."""
        from greenprint._records import MetricPoint, RunRecord

        ledger = self._sweep.ledger
        if ledger is None:
            return
        data = json.loads(result[_RECORD])
        known = {f.name for f in fields(RunRecord)}
        values = {k: v for k, v in data.items() if k in known and k != "metrics"}
        if not self._study_checked and isinstance(values.get("study"), str):
            self._study_checked = True
            self._one_study(values["study"])
        values.update(self._link_fields(state))
        step = result.get("training_iteration")
        now = time.time()
        metrics = [
            MetricPoint(key, float(value), step if isinstance(step, int) else None, now)
            for key, value in result.items()
            if key not in _TUNE_KEYS
            and not key.startswith(FIGURE_PREFIX)
            and isinstance(value, Real)  # NumPy's float32, int64 too (not int or float)
            and not isinstance(value, bool)
        ]
        if not state.written:
            ledger.start_run(RunRecord(**values))
            state.written = True
            if metrics:
                ledger.flush(state.run_id, metrics=metrics)
            return
        values.pop("id", None)
        ledger.flush(state.run_id, fields=values, metrics=metrics)

    def _study_runs(self, ledger: Any) -> list[Any]:
        """The sweep's study's runs, read once at the experiment's end.

        :meth:`_find_silent` and :meth:`_find_tails` look among them; none when the ledger
        cannot be read (a warning says so).
        """
        try:
            return self._workers_runs(ledger)
        except GreenprintError as e:
            logger.warning("greenprint: could not look for the trials' runs: %s", e)
            return []

    def _workers_runs(self, ledger: Any) -> list[Any]:
        """The sweep's study's runs, and those the workers wrote under another study.

        The experiment's name (a trainable given no study, where the sweep's study is another)
        and a trainable's own study (see :meth:`_one_study`).

        Raises:
            GreenprintError: the ledger cannot be read.
        """
        from greenprint._exceptions import UnknownStudyError

        runs = list(ledger.runs(study=self._sweep.study))
        others = {self._resume.moved, *self._resume.elsewhere} - {None, self._sweep.study}
        for study in sorted(s for s in others if s is not None):
            try:
                runs += ledger.runs(study=study)
            except UnknownStudyError:  # no run written under it (yet)
                pass
        return runs

    def _find_silent(self, ledger: Any, trials: list[Any], candidates: list[Any]) -> None:
        """Adopt the runs of trials that ended before their first result (a worker wrote them).

        Such a run is found among ``candidates`` (the sweep's study's runs) by its name, the
        trial's name, among the runs no other sweep has adopted and no trial of this one has (a
        ``trial_name_creator`` may give trials one name: ``f"lr={t.config['lr']}"`` with
        ``num_samples=2``).
        """
        silent: dict[str, list[Any]] = {}
        for t in trials:
            if t.trial_id not in self._trials:
                silent.setdefault(_trial_name(t), []).append(t)
        if not silent:
            return
        known = {s.run_id for s in self._trials.values()}
        for run in candidates:
            named = silent.get(run.name)
            adopted = run.parent_id not in (None, self._sweep.id)  # another sweep's (resumed)
            if not named or run.role != "trial" or adopted or run.id in known:
                continue
            # of trials sharing the name, the one whose config gave the run its params
            trial = next((t for t in named if _params(t.config) == run.params), named[-1])
            state = self._trials[trial.trial_id] = _TrialState(run.id)
            state.ended = self._silent_end(trial)
            if state.ended == "error":
                state.error = _error_text(trial)
            try:
                self._adopt(state)
            except GreenprintError as e:
                logger.warning("greenprint: could not adopt trial run %s: %s", run.id, e)
        for trials_named in silent.values():  # failed before its first result, in no ledger
            for t in trials_named:
                if (
                    t.trial_id not in self._trials
                    and t.trial_id in self._started
                    and self._silent_end(t) == "error"
                ):
                    recorded = self._record_unwritten(ledger, t, "trial")
                    if recorded is not None:
                        self._trials[t.trial_id] = recorded

    def _silent_end(self, trial: Any) -> str | None:
        """How a trial whose results this driver never saw ended: ``"error"``, ``"complete"``.

        ``None``: this driver started it and Tune never said it ended, so it was still running
        when the experiment ended (``time_budget_s``, Ctrl-C: Tune then marks it ``TERMINATED``
        without calling :meth:`on_trial_complete`), and it is recorded ``interrupted``. A trial
        another driver ran (an experiment restored) keeps the status Tune restored.
        """
        if str(getattr(trial, "status", "")) == "ERROR":
            return "error"
        if trial.trial_id in self._started and trial.trial_id not in self._ended:
            return None
        return "complete"

    def _segments_before(self, earlier: _TrialState) -> None:
        """Make the run of a trial's earlier stretch a ``part`` of the sweep.

        A trial Tune pauses and resumes from its checkpoint (PBT's exploit, HyperBand's
        brackets) calls the function again: a run per stretch, each named as the trial. The
        trial is one configuration: the run that reports its last result is the trial, each
        earlier one a ``part`` of the sweep (its status and cost kept), not one more trial.
        """
        ledger = self._sweep.ledger
        if ledger is None:
            return
        self._paused.append(earlier.run_id)
        try:
            ledger.flush(earlier.run_id, fields={**self._link_fields(earlier), "role": "part"})
        except GreenprintError as e:
            logger.warning(
                "greenprint: could not record trial run %s's resumption: %s", earlier.run_id, e
            )

    def _end_paused(self, ledger: Any) -> None:
        """End ``interrupted`` the earlier stretches whose worker ended before their last write.

        Tune ends the worker of a trial it pauses (PBT, HyperBand): a run whose final write did
        not come (it read ``lost``) ends at its last heartbeat with its cost so far, a later
        run of the trial having resumed it.
        """
        for run_id in self._paused:
            try:
                current = ledger.run(run_id)
                if current.status in ("running", "lost"):
                    ledger.flush(
                        run_id,
                        fields=interrupted_at_heartbeat(
                            current,
                            "Ray Tune paused the trial and ended its worker before the run "
                            "ended; a later run of the trial resumed it",
                        ),
                    )
            except GreenprintError as e:
                logger.warning("greenprint: could not end trial run %s: %s", run_id, e)

    def _find_tails(self, ledger: Any, trials: list[Any], candidates: list[Any]) -> None:
        """Make the runs of trials' stretches that reported nothing ``part`` s of the sweep.

        A trial resumed from a checkpoint taken at its last step (PBT pauses it there to
        exploit) calls the function once more, which returns at once: a run named as the
        trial with no result, never adopted, beside the run that reported the trial's last
        result (the trial). Found by the trial's name among ``candidates`` (the sweep's study's
        runs, read before :meth:`_find_silent` adopted any: those it adopted are trials' runs
        now): the trial runs not adopted by another sweep, started since this one (less a
        worker's clock offset), that are no trial's run: trials may share a name (a
        ``trial_name_creator`` of ``f"lr={t.config['lr']}"`` with ``num_samples=2``), each its
        own trial.
        """
        names = {_trial_name(t) for t in trials if t.trial_id in self._trials}
        if not names:
            return
        known = {s.run_id for s in self._trials.values()}
        sweep = self._sweep
        since = sweep.record.started_at - _WORKER_CLOCK_S
        for run in candidates:
            if (
                run.name not in names
                or run.role != "trial"
                or run.parent_id not in (None, sweep.id)
                or run.started_at < since
                or run.id in known
            ):
                continue
            try:
                fields_ = {"parent_id": sweep.id, "role": "part", "study": sweep.study}
                ledger.flush(run.id, fields=fields_)
            except GreenprintError as e:
                logger.warning("greenprint: could not adopt trial run %s: %s", run.id, e)

    def _record_unwritten(self, ledger: Any, trial: Any, role: str) -> _TrialState | None:
        """A run for an attempt that failed before its first result and that no worker wrote.

        Where the driver writes the trials' runs (``write="driver"``, or a worker on another
        host than a SQLite ledger's) a worker keeps its run in memory and its results carry it:
        an attempt that raised before its first result carried none, so it was in no ledger
        and the study had a trial fewer than Tune ran (Tune: 6 trials, 1 of them ``ERROR``; the
        report: 5 trials, all finished). It is recorded from what the driver knows: the trial's
        name, params and error, ``failed``, in the sweep's study under the sweep, from the
        attempt's start to its failure as Tune told them; its cost was not measured (0, its
        provenance says so). ``None``
        when the ledger refuses it (a warning).
        """
        from greenprint._records import RunRecord
        from greenprint._run_lifecycle import _new_run_id

        now = time.time()
        started, ended = self._attempt_times.get(trial.trial_id, (now, None))
        ended = now if ended is None else ended
        location = getattr(getattr(trial, "temporary_state", None), "location", None)
        host = getattr(location, "hostname", None)
        error = _error_text(trial)
        record = RunRecord(
            id=_new_run_id(),
            name=_trial_name(trial),
            study=self._sweep.study,
            parent_id=self._sweep.id,
            role=role,
            status="failed",
            started_at=started,
            ended_at=ended,
            heartbeat_at=ended,
            duration_s=max(0.0, ended - started),
            host=host if isinstance(host, str) else "",
            params=_params(getattr(trial, "config", None) or {}),
            error=error,
            contained=False,
            provenance={
                "cost": "not measured: the trial failed before its first result, which would "
                "have carried its run to the driver that writes it"
            },
        )
        try:
            ledger.start_run(record)
        except GreenprintError as e:
            logger.warning("greenprint: could not record failed trial %s: %s", record.name, e)
            return None
        return _TrialState(record.id, ended="error", error=error, written=True, relayed=True)

    def _silent_attempt(self, ledger: Any, trial: Any) -> _TrialState | None:
        """The run of an attempt that failed before its first result, or ``None``.

        Found by the trial's name, as :meth:`_find_silent` finds a trial's, among the runs not
        known already (the latest if several).
        """
        name = _trial_name(trial)
        known = {s.run_id for s in self._trials.values()}
        try:
            runs = self._workers_runs(ledger)
        except GreenprintError as e:
            logger.warning("greenprint: could not look for a retried trial's run: %s", e)
            return None
        found = [
            run
            for run in runs
            if run.name == name
            and run.role == "trial"
            and run.parent_id in (None, self._sweep.id)
            and run.id not in known
        ]
        if not found:
            return None
        return _TrialState(max(found, key=lambda run: run.started_at).id)

    def _settle(self, ledger: Any) -> None:
        """Wait a little for workers still writing their final record (Tune does not wait)."""
        deadline = time.monotonic() + _SETTLE_S
        pending = [s.run_id for s in self._trials.values() if not s.relayed]
        while pending and time.monotonic() < deadline:
            try:
                pending = [r for r in pending if ledger.run(r).status == "running"]
            except GreenprintError:
                return
            if pending:
                time.sleep(0.1)
