"""The scikit-learn callback that measures each fold fit and the refit where it runs.

Private: :mod:`greenprint.integrations.sklearn` is the public module.
"""

from __future__ import annotations

import re
import sys
from types import FrameType
from typing import Any

from greenprint._lifecycle import status_for
from greenprint._run_fallback import vouch
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
        # checked where the search was set up: failing here (a joblib worker), mid-search, its
        # fits fall back, never fail (greenprint._run_fallback)
        vouch(self.ledger_url)
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
                # a fit that raised under a numeric error_score: scikit-learn handled it (its
                # fold scores error_score), and the run says which error it was
                failure = _fit_error()
                if failure is None:
                    run.stop()
                else:
                    run.stop(status="failed", error=failure)
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


#: How far up from :meth:`_FoldCallback.on_fit_task_end` scikit-learn's ``_fit_and_score`` is
#: looked for (it calls the callback context, which calls the callback: two frames today).
_FIT_FRAMES = 6


def _fit_error() -> str | None:
    """The error of the fold fit ending now, when scikit-learn handled it (``error_score``).

    With a numeric ``error_score`` (``np.nan``, the default, or ``0``), a fit that raises is
    caught in ``_fit_and_score``, which scores the fold ``error_score`` and keeps the formatted
    traceback in its ``result["fit_error"]`` (``None`` for a fit that worked) before it calls
    the callbacks' ``on_fit_task_end``: nothing else tells a callback that the fit failed
    (``cv_results_`` holds only the scores, and a score of ``0`` reads as a real one). Read
    from that frame; ``None`` where no such frame is found (another scikit-learn, the refit).

    Returns:
        The exception's own line(s) (``"ValueError: ..."``, at most 2,000 characters), or
        ``None``.
    """
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_FIT_FRAMES):
        if frame is None:
            return None
        if frame.f_code.co_name == "_fit_and_score":
            result = frame.f_locals.get("result")
            text = result.get("fit_error") if isinstance(result, dict) else None
            return _exception_lines(text) if isinstance(text, str) and text.strip() else None
        frame = frame.f_back
    return None


def _exception_lines(traceback_text: str) -> str:
    r"""The exception's own text at the end of a formatted traceback: what follows its frames.

    ``"Traceback ...\n  File ..., line 3, in fit\n    code\nValueError: bad C"`` gives
    ``"ValueError: bad C"``; a message of several lines is joined with spaces, and a class
    named with its module's path (``sklearn.exceptions.NotFittedError: ...``) by its name.
    """
    lines = traceback_text.rstrip().splitlines()
    last_frame = max((i for i, line in enumerate(lines) if line.startswith(" ")), default=-1)
    own = " ".join(line.strip() for line in lines[last_frame + 1 :] if line.strip())
    # the class as a run's error names it (``status_for``), not with its module's path
    # (``sklearn.utils._param_validation.InvalidParameterError: ...``)
    own = _QUALIFIED.sub(r"\1", own or lines[-1].strip())
    return own[:2000]


#: A traceback's exception line that names its class with the module's path.
_QUALIFIED = re.compile(r"^(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)(?=:|$)")
