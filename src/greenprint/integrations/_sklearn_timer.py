"""What a search did while it was fitted: the candidates it evaluated, and when its refit began.

Private: :mod:`greenprint.integrations.sklearn` is the public module.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any


class _CandidatesTimer:
    """When a search's fit scored its last candidate, and which candidates it evaluated.

    scikit-learn's ``fit`` calls ``self._run_search(evaluate_candidates)``, which returns when
    every candidate is scored; the refit comes next. An attribute of the instance shadows the
    method for this fit, and :meth:`restore` removes it (or puts back one the instance had).
    ``params``: each candidate's parameters, in the order of the rows of ``cv_results_``, as
    ``evaluate_candidates`` received them (before any is fitted): a fit that raises sets no
    ``cv_results_``, and its candidates keep their parameters all the same.
    """

    def __init__(self, search: Any) -> None:
        self.search = search
        self.time: float | None = None
        self.params: list[Mapping[str, Any]] = []
        self.iterations: list[int] = []  # each row's call of evaluate_candidates
        self._had = search.__dict__.get("_run_search", _MISSING)
        run_search = search._run_search

        @functools.wraps(run_search)  # its signature: scikit-learn reads it (callback_ctx)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if args and callable(args[0]):
                args = (self._noting(args[0]), *args[1:])
            try:
                return run_search(*args, **kwargs)
            finally:
                self.time = time.time()

        search._run_search = timed

    def _noting(self, evaluate_candidates: Callable[..., Any]) -> Callable[..., Any]:
        """``evaluate_candidates`` noting the parameters of the candidates it evaluates."""

        def evaluate(candidate_params: Any, *args: Any, **kwargs: Any) -> Any:
            candidate_params = list(candidate_params)  # as scikit-learn does: one pass
            call = max(self.iterations, default=-1) + 1
            self.params.extend(p if isinstance(p, Mapping) else {} for p in candidate_params)
            self.iterations.extend(call for _ in candidate_params)
            return evaluate_candidates(candidate_params, *args, **kwargs)

        return evaluate

    def restore(self) -> None:
        """Give the search back its own ``_run_search``."""
        if self._had is _MISSING:
            self.search.__dict__.pop("_run_search", None)
        else:
            self.search._run_search = self._had


_MISSING = object()


def _refit_began(search: Any, earlier_best: Any) -> bool:
    """Whether this fit of ``search`` scored every candidate and chose the best.

    Its refit came next: ``best_params_`` set anew (not ``earlier_best``, a fit before this
    one's).
    """
    best = search.__dict__.get("best_params_")
    return best is not None and best is not earlier_best


def _scored_before_refit(
    search: Any, stopped_by: BaseException, earlier_best: Any
) -> Mapping[str, Any] | None:
    """The candidates' scores of a search stopped during its refit (a Ctrl-C), else ``None``.

    scikit-learn sets ``cv_results_`` only once the refit is done, but chooses the best
    candidate (``best_params_``, one of the results' ``params``) before it: the results it was
    to set are a local of its ``fit`` (``results``), which the traceback of what stopped it
    keeps. Taken only when its ``best_params_`` is one of them (so they are this fit's, every
    candidate scored); a scikit-learn that keeps them otherwise gets ``None``: the trials are
    then said to be scored, without their scores.
    """
    if not _refit_began(search, earlier_best):
        return None
    best = search.__dict__["best_params_"]
    traceback = stopped_by.__traceback__
    while traceback is not None:
        local = traceback.tb_frame.f_locals
        results = local.get("results") if local.get("self") is search else None
        if isinstance(results, dict) and any(p is best for p in results.get("params", ())):
            return results
        traceback = traceback.tb_next
    return None
