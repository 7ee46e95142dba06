"""The scikit-learn callback that measures each fold fit and the refit where it runs.

Private: :mod:`greenprint.integrations.sklearn` is the public module.
"""

from __future__ import annotations

import sys
from typing import Any

from greenprint._lifecycle import status_for
from greenprint.integrations._sklearn_common import (
    _EVALUATION_TASK,
    _HALVING_TASK,
    _REFIT_TASK,
    _plain_params,
    _refit_score,
    trial_id,
)


# ---------------------------------------------------------------------- the callback
class _FoldCallback:
    """A scikit-learn callback that measures each fold fit and the refit as a run.

    It travels to joblib's worker processes with the search (pickled), and writes its runs
    from there, straight to the ledger; each fold's parent is its trial, whose id is derived
    from the sweep's id and the candidate's row in ``cv_results_`` (the trial itself is
    written when the search is done).
    """

    def __init__(
        self,
        *,
        sweep_id: str,
        ledger_url: str,
        study: str,
        name: str,
        options: dict[str, Any],
        dataset_size: int | None = None,
    ) -> None:
        self.sweep_id = sweep_id
        self.ledger_url = ledger_url
        self.study = study
        self.name = name
        self.options = options
        self.dataset_size = dataset_size  # the refit's: it trains on the whole of X
        self._runs: dict[int, tuple[Any, BaseException | None]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_runs"] = {}
        return state

    def setup(self, estimator: Any, context: Any) -> None:
        """Nothing to do: the sweep run is started by :func:`track_search`."""

    def teardown(self, estimator: Any, context: Any) -> None:
        """End any run a stopped fit left open (the refit's: its end is not called then).

        scikit-learn calls this in a ``finally`` block: what stopped the search, propagating
        now, ends the run as it ends a fold's (a Ctrl-C: ``interrupted``).
        """
        raised = sys.exc_info()[1]
        for run, around in list(self._runs.values()):
            if raised is None or raised is around:
                run.stop(status="failed", error="the search stopped during this fit")
            else:
                status, error = status_for(raised)
                run.stop(status=status, error=error)
        self._runs.clear()

    def on_fit_task_begin(self, estimator: Any, context: Any) -> None:
        """Start a run for a fold fit or the refit."""
        from greenprint.tracking import Run

        task = context.task_name
        if task == _EVALUATION_TASK:
            row, fold = _position(estimator, context)
            run = Run(
                f"{self.name}-c{row}-fold{fold}",
                study=self.study,
                ledger=self.ledger_url,
                role="part",
                parent=trial_id(self.sweep_id, row),
                params={"fold": fold},
                **self.options,
            )
        elif task == _REFIT_TASK:
            best = getattr(estimator, "best_params_", None) or {}
            run = Run(
                f"{self.name}-refit",
                study=self.study,
                ledger=self.ledger_url,
                role="final",
                parent=self.sweep_id,
                params=_plain_params(best),
                dataset_size=self.dataset_size,
                **self.options,
            )
            score = _refit_score(estimator)
            if score is not None:  # the trials' metric, and cv_score as before
                run.log(score=score, cv_score=score)
        else:
            return
        # the exception being handled around the search now, if any (track_search called in
        # an except block): on_fit_task_end tells a fit that raised from it
        self._runs[id(context)] = (run.start(), sys.exc_info()[1])

    def on_fit_task_end(self, estimator: Any, context: Any) -> bool:
        """End the run of a fold fit or the refit. Never asks the search to stop.

        scikit-learn calls this in a ``finally`` block, also for a fit that raised with
        ``error_score="raise"``: that exception, propagating now, ends the run ``failed``
        with its error (with a numeric ``error_score`` it was handled before, and the scores
        mark the fold failed when the search is done).
        """
        entry = self._runs.pop(id(context), None)
        if entry is not None:
            run, around = entry
            raised = sys.exc_info()[1]
            if raised is None or raised is around:
                run.stop()
            else:
                status, error = status_for(raised)
                run.stop(status=status, error=error)
        return False


def _position(search: Any, context: Any) -> tuple[int, int]:
    """The row in ``cv_results_`` and the fold of one candidate-split evaluation."""
    candidate, fold = divmod(int(context.task_id), int(search.n_splits_))
    parent = getattr(context, "parent", None)
    if parent is not None and parent.task_name == _HALVING_TASK:
        candidate += sum(search.n_candidates_[: int(parent.task_id)])
    return candidate, fold
