"""What the parts of the scikit-learn integration share: task names, run ids, params, scores.

Private: :mod:`greenprint.integrations.sklearn` is the public module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

_EVALUATION_TASK = "candidate-split-evaluation"


_REFIT_TASK = "refit-with-best-params"


_HALVING_TASK = "halving-iteration"


def _sample_count(X: Any) -> int | None:
    """How many samples ``X`` holds (rows of an array or data frame, items of a list).

    ``None`` when it cannot say: then no ``dataset_size`` is recorded, as before.
    """
    from sklearn.utils.validation import _num_samples

    try:
        count = _num_samples(X)
    except TypeError:  # not array-like (a callable, a generator...)
        return None
    return count if isinstance(count, int) and count > 0 else None


def trial_id(sweep_id: str, row: int) -> str:
    """The run id of the trial for row ``row`` of ``cv_results_`` in sweep ``sweep_id``."""
    return _derived(sweep_id, str(row))


def _refit_metric(search: Any, results: Mapping[str, Any] | None = None) -> str:
    """The scorer name whose mean test score ranks the candidates (``"score"`` for one).

    ``results``: the search's ``cv_results_`` (default: the attribute).
    """
    refit = search.refit
    if isinstance(refit, str):
        return refit
    results = search.cv_results_ if results is None else results
    keys = [k.removeprefix("mean_test_") for k in results if k.startswith("mean_test_")]
    return "score" if "score" in keys else keys[0]


def _score_name(
    search: Any, results: Mapping[str, Any] | None = None, metric: str | None = None
) -> str | None:
    """The name the trials' ``score`` is also logged under, ``None``: none (``score`` only).

    ``metric`` when given (:func:`~greenprint.integrations.sklearn.track_search`'s
    ``metric=``); else the scorer that ranks, by the name scikit-learn gives it: ``refit``'s
    (``mean_test_<refit>``), ``scoring`` when it is one scorer's name (``"accuracy"``,
    ``"neg_log_loss"``, kept negated as scikit-learn names it), or, with ``scoring=None``, the
    metric of the estimator's own ``score`` method where it is scikit-learn's classifier's
    (``"accuracy"``) or regressor's (``"r2"``), a pipeline's by its last step. A callable
    scorer, or an estimator with a ``score`` method of its own, has no name: ``None``.
    ``results``: the search's ``cv_results_`` (default: the attribute).
    """
    if metric is not None:
        return None if metric == "score" else metric
    refit = _refit_metric(search, results)
    if refit != "score":
        return refit
    scoring = search.scoring
    if isinstance(scoring, str):
        return None if scoring == "score" else scoring
    if scoring is None:
        return _default_score_name(search.estimator)
    return None


def _default_score_name(estimator: Any) -> str | None:
    """The metric of ``estimator.score`` where it is scikit-learn's own: accuracy or R^2."""
    from sklearn.base import ClassifierMixin, RegressorMixin

    while hasattr(estimator, "steps") and estimator.steps:  # a Pipeline scores by its last
        estimator = estimator.steps[-1][1]
    method = getattr(type(estimator), "score", None)
    if method is ClassifierMixin.score:
        return "accuracy"
    if method is RegressorMixin.score:
        return "r2"
    return None


def _refit_score(search: Any, results: Mapping[str, Any] | None = None) -> float | None:
    """The refit's score: the mean cross-validated score of the best candidate's parameters.

    scikit-learn's ``best_score_`` (the ``refit`` metric's, for several metrics); with a
    callable ``refit``, which sets no ``best_score_``, the best candidate's mean test score of
    the metric the trials log as ``score``. ``None`` when the search has neither.
    ``results``: the search's ``cv_results_`` (default: the attribute).
    """
    best = getattr(search, "best_score_", None)
    if best is None:
        index = getattr(search, "best_index_", None)
        if results is None:
            results = getattr(search, "cv_results_", None)
        if index is None or results is None:
            return None
        key = f"mean_test_{_refit_metric(search, results)}"
        if key not in results:
            return None
        best = results[key][int(index)]
    return float(best)


def _derived(seed: str, what: str) -> str:
    """A UUID4-shaped run id hashed from ``seed`` and ``what`` (the same in every process)."""
    raw = bytearray(hashlib.blake2b(f"{seed}:{what}".encode(), digest_size=16).digest())
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def _plain(value: Any) -> Any:
    """A parameter value as the ledger can store it: JSON scalars kept, anything else its repr.

    The repr on one line: scikit-learn pretty-prints a long estimator over several lines
    (a ``Pipeline``'s steps), which would stand in the ledger and its tables as line breaks
    and runs of spaces.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    text = " ".join(repr(value).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in params.items()}
