"""Where a run sits among runs and processes: :class:`RunLineage`.

Its job and node (:mod:`greenprint._jobs`: a node meter records the whole machine), the
earlier attempt of a job a scheduler started again (:mod:`greenprint._resume`), and what its
child processes inherit: its id, study, ledger, process tree and the carbon settings it was
given (``GREENPRINT_PARENT_*``, :mod:`greenprint._lineage`), exported while it runs and
restored at its end. The parent itself is resolved by :class:`greenprint.tracking.Run`,
which knows what a run is.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING

from greenprint import _lineage
from greenprint._exceptions import GreenprintError
from greenprint._lifecycle import registry
from greenprint._run_state import RunState

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self


__all__ = ["RunLineage"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")


class RunLineage(RunState):
    """Place a run in its job and process tree; hand its lineage to child processes."""

    def _continue_restarted(self) -> None:
        """A top-level run of a job a scheduler started again continues the earlier attempt.

        See :func:`greenprint._resume.link_restarted`; the ledger is read only in a restart.
        """
        from greenprint import _jobs

        if not any(_jobs.restart_counts()):
            return
        from greenprint._resume import link_restarted

        try:
            link_restarted(self, job_id=self._job.job_id)
        except Exception:  # never raise into user code: the run goes on as a run of its own
            logger.exception("greenprint: linking run %s to its earlier attempt failed", self.id)

    def _join_job(self) -> None:
        """Record the run's job and containment; a node meter records the whole machine."""
        from greenprint import _jobs

        self._host = _jobs.node_host()
        self._contained = None
        if self.parent_id is not None:
            if self._parent_here:
                self._contained = True  # nested in this process
            elif self.parent_id == _lineage.inherited_parent():
                self._contained = _jobs.tree_contains(
                    _lineage.inherited_tree(), host=self._host, pid=self._options.get("pid")
                )
        self._job = _jobs.job_info(
            node_meter=self._options.get("node_meter"), nested=bool(self._contained)
        )
        if self._job.node_meter and not self._scope_given:
            self._scope = "machine"
        if self._job.node_meter and self._scope != "machine":
            self._job = replace(self._job, node_meter=False)  # scope="process" was asked for
        elif self._job.job_id is not None and self._scope == "machine" and not self._contained:
            # a machine-scope run of a job meters its node, whatever its rank: two of them on
            # one host are the double-count hazard, warned about and counted once
            self._job = replace(self._job, node_meter=True)

    def _measures_process(self) -> bool:
        """Whether this run measures this process: machine scope, or its own process tree."""
        pid = self._options.get("pid")
        return self._scope == "machine" or pid is None or pid == os.getpid()

    def _export_env(self) -> None:
        self._saved_env = _lineage.export_env(*self._child_env(), ancestors=self._ancestor_ids())

    def _ancestor_ids(self: Self) -> frozenset[str]:
        """The ids of this run's ancestors known in this process (its parent's, and so on)."""
        ids: set[str] = set()
        run: Self | None = self
        while run is not None and run.parent_id and run.parent_id not in ids:
            ids.add(run.parent_id)
            run = run._parent_run
        return frozenset(ids)

    def child_env(self) -> dict[str, str]:
        """The environment for a child process of this run, with this run as its parent.

        ``subprocess.run(cmd, env=run.child_env())``: the child's runs (``gp.track`` there,
        ``greenprint run``) are this run's children. Without it a child inherits the
        process-wide environment, which names this run while it is the innermost run live in
        the process; while runs of other threads are live too (a thread pool of trials), it
        names their closest common run (a sweep around them), or none, since a child cannot
        tell which thread started it.

        Returns:
            A copy of ``os.environ`` with this run's id, study, ledger and process tree in the
            ``GREENPRINT_PARENT_*`` variables.

        Raises:
            GreenprintError: the run has not started, or has ended.
        """
        if self._state != "running":
            raise GreenprintError(
                f"run {self.name!r} is {self._state}: child_env() names a running run; call it "
                "inside the run (with gp.track(...) as run:)"
            )
        return _lineage.child_environ(*self._child_env())

    def _child_env(self) -> tuple[str, str, str | None, str, str | None]:
        """What a child process inherits from this run.

        Its id, study, ledger URL, process tree, and the intensity, region and PUE it was given
        (JSON, ``None`` when none).
        """
        url = None
        if self._ledger is not None:
            url = getattr(self._ledger, "url_unmasked", self._ledger.url)
        from greenprint._jobs import parent_tree_value

        root = self._options.get("pid") or os.getpid()
        carbon = json.dumps(self._carbon_given, sort_keys=True) if self._carbon_given else None
        tree = parent_tree_value(self._scope, root, self._host)
        return self.id, self._study, url, tree, carbon

    def _release(self) -> None:
        _lineage.restore_env(self._saved_env)
        self._saved_env = {}
        if self._ctx_token is not None:
            _lineage.leave(self, self._ctx_token)
            self._ctx_token = None
        registry.discard(self)
