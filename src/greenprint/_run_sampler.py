"""The sampler thread of a run: :class:`RunSampler`.

Every ``sample_interval_s`` the thread reads the meters (without the run's lock: ``run.log()``
and the live figures never wait on hardware), accounts the interval's energy and CO2-eq,
checks the budgets, and every ``flush_interval_s`` flushes to the ledger and calls the
listeners. The first sample is flushed at once, so that a run killed early has its cost and
heartbeat in the ledger (see :mod:`greenprint.tracking`). Where the run runs (host, git
commit, command) is collected once, before the meters start (:mod:`greenprint._run_lifecycle`).
The thread never dies of an error: it logs it and samples again.
"""

from __future__ import annotations

import logging
import time

from greenprint._run_state import RunState

__all__ = ["RunSampler"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")


class RunSampler(RunState):
    """Read the meters on a thread of the run's own, and flush what they read."""

    def _loop(self) -> None:
        next_flush = time.time()  # the first sample is flushed at once (see the module docstring)
        first = True
        if self._guard is not None and self._guard.needs_study:
            # the study's cost was read as the run started: a study already over budget is
            # acted on now (warned, its callable called: greenprint run stops its command),
            # not one sample interval later
            try:
                self._check_budgets()
            except Exception:  # the sampler thread must never die silently
                logger.exception("greenprint: checking run %s's budgets failed", self.id[:8])
        while not self._stop_lock.acquire(timeout=self._sample_s):
            try:
                if first:
                    if self._environment is None:  # collected at the start: see _begin
                        self._collect_environment()
                    first = False
                    self._warn_double_meter()
                with self._lock:
                    if self._state != "running":
                        return
                self._sample()
                self._check_budgets()
                if time.time() >= next_flush:
                    self._flush()
                    self._notify("flush")
                    next_flush = time.time() + self._flush_s
            except Exception:  # the sampler thread must never die silently: log, go on
                logger.exception("greenprint: sampling run %s failed; will retry", self.id[:8])

    def _warn_double_meter(self) -> None:
        """Warn when another live node meter of this job runs on this host (counted twice)."""
        job = self._job
        if not job.node_meter or job.job_id is None or self._ledger is None:
            return
        from greenprint._exceptions import LedgerError

        try:
            live = self._ledger.runs(study=self._study, status="running")
        except LedgerError as e:
            logger.debug("greenprint: could not look for other node meters: %s", e)
            return
        others = [
            r.id[:8]
            for r in live
            if r.id != self.id and r.node_meter and r.job_id == job.job_id and r.host == self._host
        ]
        if others:
            logger.warning(
                "greenprint: run %s and %s %s both meter host %s for job %s: the machine "
                "would be counted twice (the price tag counts it once and says so); give "
                "node_meter=False to the other ranks, or set GREENPRINT_SHARED_NODE=1",
                self.id[:8],
                "run" if len(others) == 1 else "runs",
                ", ".join(others),
                self._host,
                job.job_id,
            )

    def _collect_environment(self) -> None:
        from greenprint._environment import collect_environment

        environment = collect_environment(command=self._options.get("command"))
        with self._lock:
            self._environment = environment
            self._pending_fields.update(
                host=environment.host,
                command=environment.command,
                git_commit=environment.git_commit,
                git_dirty=environment.git_dirty,
                torch_version=environment.torch_version,
                env=environment.env,
            )

    def _sample(self, *, wait_s: float | None = None) -> None:
        """Read the meters and account the interval since the last sample.

        The meters are read without holding the run's lock, so ``run.log()``, the live figures
        and the end of the ``with`` block never wait on hardware; a meter read is bounded by the
        meter set's deadline and a meter that overruns it is replaced by its estimate.

        Args:
            wait_s: longest wait, in s, for a read already in progress on another thread
                (``None``: wait); when it passes, this sample is skipped.
        """
        if not self._sample_lock.acquire(timeout=-1 if wait_s is None else wait_s):
            logger.warning("greenprint: run %s: a meter read is still blocked", self.id[:8])
            return
        try:
            if self._account is None:  # pragma: no cover - only called while running
                return
            now = time.time()
            readings = self._meters.read()
            now = getattr(self._meters, "read_at", None) or now
            provenance = self._meter_sources()
            with self._lock:
                sample = self._account.add(now, readings)
                self._provenance.update(self._account.annotated(provenance))
                if sample is not None:
                    self._pending_samples.append(sample)
        finally:
            self._sample_lock.release()
