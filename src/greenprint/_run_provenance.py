"""Where a run's figures come from: :class:`RunProvenance`.

The run's provenance names the meter of each component (with what a process share lacks),
the intensity, the PUE and the scope, the process whose tree it reads (``"pid N started T"``:
runs in threads of one process count their overlap once), the process that writes it, its
job, and whether its FPO are a lower bound and what their count assumed.
"""

from __future__ import annotations

import logging
import os

from greenprint._liveness import ANCESTORS_KEY, WRITER_KEY, ancestors, writer_identity
from greenprint._provenance import (
    FPO_ASSUMPTIONS_KEY,
    FPO_KEY,
    Provenance,
    fpo_assumptions_text,
    fpo_lower_bound,
)
from greenprint._run_state import RunState

__all__ = ["RunProvenance"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")


def _process_key(pid: int) -> str | None:
    """``"pid 4242 started 1796133461.76"``: the process whose tree a run's meters read.

    Recorded in the run's provenance (``"process"``): runs of one host with the same key that
    ran at the same time each read that process over their span (threads of one process), and
    the analysis counts each stretch of their time once (``RunForest.shared_sums``). The start
    time (s, Unix time) tells apart a pid used again. ``None`` when the process cannot be read.
    """
    global _own_process_key
    own = pid == os.getpid()
    if own and _own_process_key is not None and _own_process_key[0] == pid:
        return _own_process_key[1]  # the same text for every run of the process (below)
    import psutil

    try:
        started = psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None
    key = f"pid {pid} started {started:.2f}"
    if own:
        # read once per process: psutil derives the start time from the boot time, which
        # the kernel recomputes from the clock on each read (a step of the clock moves it), and
        # runs in threads of this process must name it the same way to be counted once
        _own_process_key = (pid, key)
    return key


#: This process's pid and key, once read (a forked child has another pid: it reads its own).
_own_process_key: tuple[int, str] | None = None


class RunProvenance(RunState):
    """Build a run's provenance."""

    def _note_fpo_bound(self) -> None:
        """Say in the provenance whether the FPO are a lower bound and what they assumed.

        ``provenance["fpo"]`` and ``provenance["fpo_assumptions"]``, each removed when there is
        nothing to say (the caller holds the lock).
        """
        for key, note in self._fpo_notes().items():
            if note is not None:
                self._provenance[key] = note
            else:
                self._provenance.pop(key, None)

    def _fpo_notes(self) -> dict[str, str | None]:
        """The FPO's provenance entries: a lower bound's note, the count's assumptions."""
        return {
            FPO_KEY: fpo_lower_bound(self._fpo_unknown_ops, self._fpo_complex_ops),
            FPO_ASSUMPTIONS_KEY: fpo_assumptions_text(self._fpo_assumptions),
        }

    def _meter_sources(self) -> dict[str, str]:
        """The meters' provenance, with what a process share lacks (processes not read).

        Of machine scope, no GPU "not attributed" note: the run asks for no share.
        """
        provenance = {f"{c}": p for c, p in self._meters.provenance.items()}
        if self._scope == "process":
            notes = getattr(self._meters, "attribution_notes", None) or {}
            for comp, note in notes.items():
                if comp in provenance:
                    provenance[comp] = str(Provenance.parse(provenance[comp]).with_note(note))
        if self._scope == "machine" and "gpu" in provenance:
            from greenprint.meters._gpu_meter import without_attribution_note

            provenance["gpu"] = without_attribution_note(
                provenance["gpu"], self._meters.meter("gpu")
            )
        return provenance

    def _build_provenance(self) -> dict[str, str]:
        provenance = self._meter_sources()
        provenance["intensity"] = self._intensity.source
        provenance["pue"] = self._pue.source
        provenance["scope"] = self._scope
        # which process: runs that read the same one at once (threads) count their overlap
        # once (analysis/_common.py); found before the meters started (_begin)
        if self._scope == "process" and self._measured_process is not None:
            provenance["process"] = self._measured_process
        for key, note in self._fpo_notes().items():
            if note is not None:  # FPO recorded before the run started
                provenance[key] = note
        provenance.update(self._pruned_notes)  # Run.prune(step=..., by=...) before it started
        writer = writer_identity()  # the process that writes the run: a reader on this machine
        if writer is not None:  # reads it lost at once when the process is gone
            provenance[WRITER_KEY] = writer
        job = self._job
        if job.job_id is None and (self.parent_id is None or not self._parent_here):
            # a pool's worker made before its parent process's run: read inside that run (its
            # parent, if any, from the environment the worker was started with: a run around
            # the whole script, `greenprint run`)
            started_under = ancestors()
            if started_under is not None:
                provenance[ANCESTORS_KEY] = started_under
        if job.job_id is not None:
            if job.node_meter:
                provenance["job"] = f"node meter of job {job.job_id} on {self._host}"
            elif job.shared:
                provenance["job"] = f"shared node: this process only, in job {job.job_id}"
            else:
                provenance["job"] = (
                    f"this process only; the node is metered by job {job.job_id}'s node meter "
                    f"on {self._host} (local rank 0)"
                )
        return provenance
