"""``Tuner.restore`` seen by the Ray Tune callback: the drivers this one resumes.

:class:`_RestoredDrivers`, a base of the callback: the first driver's sweep (whose name and
study the restored experiment keeps), the trial runs the earlier drivers wrote (indexed by
name, this sweep linked under the first), the trials restored ended, and the earlier
attempts of a trial that starts again, made ``part`` s of their sweep. :class:`_Resume` holds
what it knows.

Private: :mod:`greenprint.integrations.ray` is the public module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import GreenprintError
from greenprint.integrations._common import interrupted_at_heartbeat
from greenprint.integrations._ray_trials import (
    _attempt_key,
    _error_text,
    _trial_name,
    _TrialState,
)
from greenprint.integrations._ray_workers import _RUN_ID

#: Its messages keep the logger name they had in one module.
logger = logging.getLogger("greenprint.integrations.ray")

#: How far a worker node's clock may lag the driver's when a restore matches the trial runs its
#: workers started (in seconds): a run started that long before the first sweep is not its.
_WORKER_CLOCK_S = 60.0


@dataclass
class _Resume:
    """What the callback knows of the drivers it resumes (``Tuner.restore``)."""

    restored: bool = False  # Tune gave the state an earlier driver saved: Tuner.restore
    restored_sweep: str | None = None  # the first sweep, as Tune's saved state names it
    attempts: dict[str, list[str]] = field(default_factory=dict)  # attempt key -> names
    looked: bool = False  # the ledger was read for earlier runs
    root: str | None = None  # the first driver's sweep, this one's parent
    sweeps: list[Any] = field(default_factory=list)  # earlier sweeps, by start
    earlier: dict[str, list[tuple[str | None, Any]]] = field(default_factory=dict)  # name -> runs
    # the experiment's name, where it is not the sweep's study (a callback given a study, a
    # restore from a moved or copied folder): a trainable given no study writes its runs there
    moved: str | None = None
    # other studies the trial runs were written in (a trainable given a study of its own)
    elsewhere: set[str] = field(default_factory=set)


class _RestoredDrivers:
    """The drivers a restored experiment resumes: their sweeps and trial runs."""

    _options: dict[str, Any]
    _study: str | None
    _sweep: Any
    _trials: dict[str, _TrialState]
    _resume: _Resume

    if TYPE_CHECKING:  # pragma: no cover - the callback's own

        def _note_result(
            self, state: _TrialState, trial: Any, result: Mapping[str, Any]
        ) -> None: ...

    def _restored_ended(self, trials: list[Any]) -> None:
        """Note the trials a restored experiment did not run again, from their last results.

        Tune restores a trial that had ended (``TERMINATED``, ``ERROR``) with its last result;
        this driver never saw it run. Its status is judged with the others' at the end, by the
        same rule: how far it went counts in how far the experiment went (a rerun stopped early
        read ``finished`` when only this driver's trials were compared), and one whose driver
        died before the end (its worker's status kept: a trial a scheduler stopped read
        ``finished``) gets its status from Tune's.
        """
        seen = {state.run_id for state in self._trials.values()}
        for trial in trials:
            ended = {"TERMINATED": "complete", "ERROR": "error"}.get(getattr(trial, "status", ""))
            result = getattr(trial, "last_result", None)
            if ended is None or trial.trial_id in self._trials or not isinstance(result, dict):
                continue
            run_id = result.get(_RUN_ID)
            if not isinstance(run_id, str) or run_id in seen:
                continue
            state = self._trials[trial.trial_id] = _TrialState(run_id, ended=ended)
            self._note_result(state, trial, result)
            if ended == "error":
                state.error = _error_text(trial)

    def _first_sweep(self, ledger: Any) -> Any:
        """The first driver's sweep record, in the driver of ``Tuner.restore`` (else ``None``)."""
        first = self._resume.restored_sweep
        if ledger is None or first is None:
            return None
        try:
            return ledger.run(first)
        except GreenprintError as e:  # another ledger's, or deleted: as a new experiment
            logger.debug("greenprint: the restored experiment's sweep is not in the ledger: %s", e)
            return None

    def _find_earlier(self, ledger: Any, trials: list[Any]) -> None:
        """Index the trial runs of the drivers this one resumes (``Tuner.restore``) by name.

        Those are the trial runs under the first sweep of this experiment (the one Tune's
        saved state names, or, where it names none, the latest of the same name in the study
        started before this one; with the sweeps that resumed it), and the trial runs of the
        study no sweep adopted (their driver ended first) started since that sweep. The sweep
        of this driver becomes a child of the first sweep once one of them is a run of this
        experiment's trials (``contained`` false: a later measurement, added to it). Nothing
        found, or a ledger that cannot say: as a new experiment (a debug log says so).
        """
        sweep = self._sweep
        since = sweep.record.started_at
        resume = self._resume
        try:
            tops = ledger.runs(study=sweep.study, parent_id=None)
            # the sweep Tune's saved state names, and no other: an earlier experiment of the
            # same name (the same script run again, trial names of its own making) is not
            # this one. Where the state names none (Tune's last snapshot came before the first
            # trial started: a driver killed before the next one), the latest sweep of this
            # name started before this one
            named = resume.restored_sweep
            roots = [
                r
                for r in tops
                if r.role == "sweep"
                and r.id != sweep.id
                and r.started_at <= since
                and (r.id == named if named is not None else r.name == sweep.name)
            ]
            roots = sorted(roots, key=lambda r: r.started_at)[-1:]
            # unadopted trial runs since the first sweep started, less a worker's clock offset
            first = min((r.started_at - _WORKER_CLOCK_S for r in roots), default=since)
            found: list[tuple[str | None, Any]] = [
                (None, r) for r in tops if r.role == "trial" and first <= r.started_at < since
            ]
            for root in roots:
                resume.sweeps.append(root)
                below = [root.id]
                while below:
                    for run in ledger.runs(study=sweep.study, parent_id=below.pop()):
                        if run.role == "sweep":
                            resume.sweeps.append(run)
                            below.append(run.id)
                        elif run.role == "trial":
                            found.append((root.id, run))
        except GreenprintError as e:
            logger.debug("greenprint: no earlier drivers' runs read for this experiment: %s", e)
            return
        resume.sweeps.sort(key=lambda run: run.started_at)
        for root_id, run in found:
            resume.earlier.setdefault(run.name, []).append((root_id, run))
        restored = {_trial_name(t) for t in trials}
        for key_names in resume.attempts.values():
            restored.update(key_names)
        root = resume.restored_sweep if any(r.id == resume.restored_sweep for r in roots) else None
        if root is None:
            root = next(
                (rid for name in restored for rid, _ in resume.earlier.get(name, ()) if rid),
                None,
            )
        if root is None:
            logger.debug(
                "greenprint: no earlier run of this experiment's trials in the ledger: "
                "recorded as a new experiment"
            )
            return
        resume.root = root
        try:
            ledger.flush(sweep.id, fields={"parent_id": root, "contained": False})
        except GreenprintError as e:
            logger.warning("greenprint: could not link the sweep to the one it resumes: %s", e)
        # an earlier driver's sweep with no final status: that driver died (killed, its machine
        # lost), as its running trial attempts did; it ends interrupted with its cost so far,
        # as they do (else it read 'lost' beside its own restored experiment)
        for earlier in resume.sweeps:
            if earlier.status not in ("running", "lost"):
                continue
            try:
                ledger.flush(
                    earlier.id,
                    fields=interrupted_at_heartbeat(
                        earlier,
                        "the experiment's driver ended before the experiment; "
                        "Tuner.restore resumed it",
                    ),
                )
            except GreenprintError as e:
                logger.warning("greenprint: could not end the sweep it resumes: %s", e)

    def _supersede(self, ledger: Any, trial: Any) -> None:
        """Make the earlier drivers' attempts of a trial that starts again parts of its sweep.

        A trial Tune runs again after ``Tuner.restore`` (an errored one with
        ``resume_errored``/``restart_errored``, one still running when the driver died) is
        one configuration: the attempt that ends it is the trial, each earlier one a ``part``
        (its status, error and cost kept; one that was running when its driver died ends
        ``interrupted``). An attempt no sweep adopted goes under the earlier sweep that was
        running when it started, else under this one as not contained.
        """
        resume = self._resume
        names = {_trial_name(trial), *resume.attempts.get(_attempt_key(trial), ())}
        for name in sorted(names):
            for _, run in resume.earlier.pop(name, ()):
                fields_: dict[str, Any] = {"role": "part"}
                if run.parent_id is None:
                    under = [s for s in resume.sweeps if s.started_at <= run.started_at]
                    if under:
                        fields_["parent_id"] = under[-1].id
                    else:
                        fields_.update(parent_id=self._sweep.id, contained=False)
                if run.status in ("running", "lost"):  # its driver ended: no final status
                    fields_.update(
                        interrupted_at_heartbeat(
                            run,
                            "the experiment's driver ended before the trial; "
                            "Tuner.restore ran it again",
                        )
                    )
                try:
                    ledger.flush(run.id, fields=fields_)
                except GreenprintError as e:
                    logger.warning(
                        "greenprint: could not record trial run %s's resumption: %s", run.id, e
                    )
