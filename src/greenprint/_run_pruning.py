"""Pruning a run: :class:`RunPruning`.

``run.prune(step=, by=, metric=)``: the run ends ``pruned`` instead of ``finished``, and its
provenance records where and by what it was stopped (``pruned_at_step``, ``pruned_by``,
``step_metric``; see :mod:`greenprint._pruned`), which the report's "Pruned trials" section
reads. The integrations (Optuna, Ray Tune, scikit-learn's halving searches) record theirs with
:meth:`RunPruning._note_pruned`. A run is pruned once.
"""

from __future__ import annotations

from collections.abc import Mapping

from greenprint._exceptions import GreenprintError
from greenprint._pruned import pruned_provenance
from greenprint._run_state import RunState

__all__ = ["RunPruning"]


class RunPruning(RunState):
    """Mark a run pruned, with where and by what it was stopped."""

    def prune(
        self, *, step: float | None = None, by: str | None = None, metric: str | None = None
    ) -> None:
        """Mark the run as pruned (early-stopped); it ends ``pruned`` instead of ``finished``.

        Args:
            step: the step it was stopped at, its last reported step (an epoch, an
                iteration), >= 0; recorded in its provenance as ``pruned_at_step``.
            by: what stopped it (``"MedianPruner"``, ``"patience 3 on val_loss"``); recorded
                as ``pruned_by``.
            metric: the metric whose logged steps ``step`` counts (``"val_loss"``, logged
                at each epoch), when the run logs others at steps of their own (a loss at
                each global step): the report then reads finished trials' steps of it alone;
                recorded as ``step_metric``.

        The report's "Pruned trials" section reads both: at which steps trials were stopped
        against the steps of finished ones, and what they would have cost run to the end
        (docs/pruning.md). A run pruned without ``step`` is read at its last logged step.

        A run is pruned once: calling it again with nothing new does nothing.

        Raises:
            ConfigError: a ``step`` that is not a finite number >= 0, or an empty ``by`` or
                ``metric``.
            GreenprintError: the run has ended (its status is final), or it was pruned
                already at another step, by another stopper or on another metric.
        """
        notes = pruned_provenance(step=step, by=by, metric=metric)
        with self._lock:
            if self._state == "stopped":
                raise GreenprintError(
                    f"run.prune() after run {self.name!r} ended ({self.status}): its status is "
                    "final; call it before the run ends (inside its with block)"
                )
            if self._prune_requested:
                _check_pruned_once(self.name, self._pruned_notes, notes)
            self._prune_requested = True
        self._note_pruned(notes)

    def _note_pruned(self, notes: dict[str, str]) -> None:
        """Put where and why the run was pruned in its provenance (written with its next flush).

        Integrations call it with :func:`~greenprint._pruned.pruned_provenance`'s entries.
        """
        if not notes:
            return
        with self._lock:
            self._pruned_notes.update(notes)
            if self._state != "new":  # else _begin's provenance takes them
                self._provenance.update(notes)


#: What ``run.prune`` records, by provenance key: the argument that gave it, and how it reads.
_PRUNED_SAID = {
    "pruned_at_step": ("step={}", "at step {}"),
    "pruned_by": ("by={!r}", "by {!r}"),
    "step_metric": ("metric={!r}", "on metric {!r}"),
}


def _check_pruned_once(name: str, recorded: Mapping[str, str], notes: Mapping[str, str]) -> None:
    """Raise when a second ``run.prune`` would move what the first recorded.

    A second call that says nothing new (the same step, or no step) is harmless; one that gives
    another step, stopper or metric would silently replace the first's.
    """
    moved = [
        key for key in _PRUNED_SAID if key in notes and recorded.get(key, notes[key]) != notes[key]
    ]
    if not moved:
        return
    given = ", ".join(_PRUNED_SAID[k][0].format(notes[k]) for k in moved)
    before = " ".join(_PRUNED_SAID[k][1].format(recorded[k]) for k in moved)
    raise GreenprintError(
        f"run.prune({given}): run {name!r} was pruned {before} already; a run is pruned once"
    )
