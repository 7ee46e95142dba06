"""How a run's score is read, and the options that say how: :func:`run_score`, :func:`resolve_mode`.

The metric's direction (``"max"`` or ``"min"``, inferred from its name by
:func:`lower_is_better`), a run's last or best value of it, and a float for JSON. Pure Python at
import (``greenprint ledger ls`` chooses its metric with them, no numpy);
:mod:`greenprint._forest` and :mod:`greenprint.analysis._common` re-export these names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Literal

from greenprint._exceptions import ConfigError
from greenprint._records import RunRecord

__all__ = [
    "LOWER_IS_BETTER_WORDS",
    "Mode",
    "Reduce",
    "check_choice",
    "check_mode",
    "infinite_last",
    "json_float",
    "lower_is_better",
    "resolve_mode",
    "run_score",
    "score_of",
]

Mode = Literal["max", "min"]
Reduce = Literal["last", "best"]


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ConfigError`."""
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, options))}, not {value!r}")
    return value


def check_mode(mode: object) -> Mode:
    """Validate an optimisation mode: ``"max"`` (higher is better) or ``"min"``."""
    return "max" if check_choice(mode, "mode", ("max", "min")) == "max" else "min"


#: Words that, in a metric's name, say that lower is better.
LOWER_IS_BETTER_WORDS = frozenset(
    {
        "loss", "losses", "error", "errors", "err", "perplexity", "ppl", "nll", "rmse", "mse",
        "mae", "mape", "smape", "msle", "rmsle", "wer", "cer", "ter", "bpc", "bpd", "regret",
        "fid", "kid", "eer", "brier", "logloss", "xent", "crossentropy", "latency", "distance",
        "bpb", "bpw", "ce", "bce",
    }
)  # fmt: skip
#: A rate of information a model needs, lower better: ``bits_per_byte``, ``nats_per_token``.
_INFORMATION_UNITS = frozenset({"bits", "nats"})
#: Words that negate the metric named after them (scikit-learn's ``neg_log_loss``).
_NEGATED = frozenset({"neg", "negative", "negated"})
#: Words that make a ``rank`` no rank to minimise: a reciprocal rank, a rank correlation.
_NOT_A_RANK = frozenset({"reciprocal", "correlation", "corr", "coefficient"})
#: Words that, after a word of :data:`LOWER_IS_BETTER_WORDS`, name a quantity better higher:
#: scikit-learn's scores (``d2_absolute_error_score``), how much a loss fell (``error_reduction``,
#: ``loss_drop``). The last such word or lower-is-better word of a name decides (the head of
#: the compound: ``brier_score_loss`` is a loss).
_HIGHER_HEADS = frozenset(
    {
        "score", "scores", "reduction", "reductions", "reduced", "decrease", "decreases", "drop",
        "drops", "improvement", "improvements", "gain", "gains", "saving", "savings", "saved",
    }
)  # fmt: skip


def lower_is_better(metric: str) -> bool:
    """Whether a metric's name says lower is better (``val_loss``, ``test/error``, ``ppl``...).

    The name is split into words (``_``, ``-``, ``/``, ``.``, spaces, camelCase). Lower is
    better when it has a word of :data:`LOWER_IS_BETTER_WORDS` (``val_bpb``, ``loss_ce``), or
    bits or nats per something (``bits_per_byte``, ``nats_per_token``), or is a rank (a word
    ``rank``: scikit-learn's ``rank_test_r2``, 1 the best; not a ``rank 1`` cut-off, a
    reciprocal rank nor a rank correlation), that no negation word (``neg``, ``negative``,
    ``negated``) comes before: scikit-learn's negated scorers are better higher wherever their
    name starts (``neg_log_loss``, ``mean_test_neg_mean_squared_error``, ``test_neg_log_loss``),
    while a ``loss_neg`` is a loss. A negated log-likelihood (``negative_log_likelihood``) is a
    loss. A word after the lower-is-better one that names a quantity better higher
    (:data:`_HIGHER_HEADS`: ``d2_absolute_error_score``, ``error_reduction``, ``loss_drop``)
    makes the name better higher, unless another lower-is-better word follows it
    (``brier_score_loss``); a rank and a rate of information are of what follows them
    (``rank_test_score``).
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", metric)
    words = [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]
    ranked = not _NOT_A_RANK.intersection(words)
    lower = False  # the verdict of the last deciding word so far
    headed = False  # by a word of LOWER_IS_BETTER_WORDS, which a _HIGHER_HEADS word after undoes
    for k, word in enumerate(words):
        if word in _NEGATED and not lower:  # what follows is negated: better higher
            rest = words[k + 1 :]
            return "loglikelihood" in rest or any(
                a == "log" and b == "likelihood" for a, b in zip(rest, rest[1:], strict=False)
            )
        if word in LOWER_IS_BETTER_WORDS:
            lower = headed = True
        elif (word in _INFORMATION_UNITS and words[k + 1 : k + 2] == ["per"]) or (
            word == "rank" and ranked and not (k + 1 < len(words) and words[k + 1].isdigit())
        ):
            # a rate of information, a rank: of what follows (``rank_test_score``, 1 the best)
            return True
        elif headed and word in _HIGHER_HEADS:
            lower = headed = False
    return lower


def resolve_mode(metric: str | None, mode: object = None) -> tuple[Mode, str | None]:
    """The optimisation mode, and a note when it was inferred from the metric's name.

    Args:
        metric: the metric's name (``None``: no metric).
        mode: ``"max"``, ``"min"``, or ``None`` to infer: a name that says lower is better
            (:func:`lower_is_better`) is minimised, any other maximised.

    Returns:
        ``(mode, note)``; the note is ``None`` unless a metric was minimised by its name.

    Raises:
        ConfigError: an unknown ``mode``.
    """
    if mode is not None:
        return check_mode(mode), None
    if metric is not None and lower_is_better(metric):
        return "min", (
            f"{metric!r} is minimised: its name says lower is better "
            "(to maximise it: --mode max, or mode='max' in Python)"
        )
    return "max", None


def run_score(run: RunRecord, metric: str, *, mode: Mode = "max", reduce: Reduce = "last") -> float:
    """The score of one run: its last logged value of ``metric``, or its best one.

    Args:
        run: the run.
        metric: metric name, e.g. ``"accuracy"``.
        mode: ``"max"`` if higher is better, ``"min"`` if lower is better (used by
            ``reduce="best"``).
        reduce: ``"last"`` takes the last logged value (the model the run ended with);
            ``"best"`` the best finite value over all steps (the best checkpoint).

    Returns:
        The score, or NaN when the run never logged a (finite, for ``"best"``) value of it, or
        when its last value is infinite: a training that diverged (a loss of ``inf``) produced
        no model to score, as one whose loss went NaN (:func:`infinite_last` tells them apart).
    """
    check_choice(reduce, "reduce", ("last", "best"))
    return score_of(run, metric, "last" if reduce == "last" else mode)


def score_of(run: RunRecord, metric: str, how: Literal["last", "max", "min"]) -> float:
    """:func:`run_score` with its options checked already: ``how`` is ``RunRecord.metric``'s mode.

    For loops over many runs (a study's scores), which check their options once.
    """
    value: float | None = None
    if how == "last":  # RunRecord.metric's last value, found from the end
        for point in reversed(run.metrics):
            if point.name == metric:
                value = point.value
                break
    else:
        value = run.metric(metric, mode=how)
    if value is None:
        return math.nan
    value = float(value)
    return math.nan if math.isinf(value) else value


def infinite_last(run: RunRecord, metric: str) -> bool:
    """Whether the last logged value of ``metric`` is infinite (the run diverged)."""
    for point in reversed(run.metrics):
        if point.name == metric:
            return math.isinf(point.value)
    return False


def json_float(value: float | None) -> float | None:
    """A float for JSON: NaN and infinities become ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
