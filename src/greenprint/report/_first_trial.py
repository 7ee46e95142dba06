"""The report's note on a first trial that carried a one-off cost of its process.

Everything a process does once lands in the run open at the time: torch importing
``torch._dynamo`` at the first optimizer a process makes (about 1.1 s of CPU), a compilation,
a dataset download. In a small search that one trial then costs many times its twins (1.04 mWh
against 0.034 mWh measured for the same model at another learning rate), which raises the mean
trial's cost the expected-best-score-against-energy curve is drawn with. The ledger does not say
what a run imported, so the note reads the pattern only where it stands out from like runs:
the first trial to start, finished, against the finished trials of its shape (its param names,
the same value of each param that is not a float, the same ``dataset_size``: a learning rate
or a weight decay may differ, a model's width or an epoch count may not), at least
:data:`MIN_TWINS` of them; it fires when it cost more than :data:`OVER_MEDIAN` times their
median and :data:`OVER_MAX` times the dearest of them, its excess over their median being
:data:`OF_TRIALS` of all the trials' cost or more (in a search of thousands of trials one such
trial bends nothing) and :data:`MIN_EXCESS_S` of run time or more (not a busy machine's hiccup
in a trial of milliseconds).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from greenprint._forest import RunForest
from greenprint._format import format_duration, format_energy, format_multiple

__all__ = ["first_trial_note"]

#: The finished trials of the first trial's shape needed beside it.
MIN_TWINS = 3
#: How many times their median the first trial must cost.
OVER_MEDIAN = 5.0
#: How many times the dearest of them.
OVER_MAX = 2.0
#: The least share of all the trials' cost its excess over their median must be.
OF_TRIALS = 0.1
#: The least run time (s) its excess over their median must be: a one-off import or
#: compilation takes a few tenths of a second or more, where a busy machine's hiccup in a trial
#: of milliseconds (one of twelve scikit-learn fits of 12 µWh read 88 µWh) takes hundredths.
MIN_EXCESS_S = 0.25

#: Where the docs say how to keep such a cost out of the first trial.
DOCS = "docs/analysis.md, 'A one-off cost in the first run'"


def _shape(run: Any) -> tuple[Any, ...]:
    """What makes runs alike in cost: param names, non-float values, ``dataset_size``."""
    params = run.params or {}
    fixed = tuple(
        (name, repr(value))
        for name, value in sorted(params.items())
        if not isinstance(value, float)
    )
    return tuple(sorted(params)), fixed, run.dataset_size


def _costs(forest: RunForest, first: int) -> tuple[list[float | None], str] | None:
    """Every run's energy with its parts' (kWh), else run time (s): the one ``first`` knows.

    A run whose amount is unknown (NaN in :meth:`RunForest.known_cost_sums`: no meter recorded
    it or a run inside it) or 0 has ``None``: there is no ratio to a median of 0.
    """
    energy = forest.known_cost_sums("energy_kwh")
    if _known(energy[first]):
        return [v if _known(v) else None for v in energy], "energy"
    times = forest.duration_sums
    if times.complete[first] and _known(times.inclusive[first]):
        known = zip(times.inclusive, times.complete, strict=True)
        return [v if done and _known(v) else None for v, done in known], "run time"
    return None


def _known(value: Any) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def first_trial_note(forest: RunForest, trials: Sequence[int]) -> str | None:
    """A note when the study's first trial cost far more than the trials like it, else ``None``.

    ``trials``: the positions of the study's trials in ``forest.runs``. See the module for the
    rule; the note names the run, both costs, and the docs' advice.
    """
    if len(trials) <= MIN_TWINS:
        return None
    runs, statuses = forest.runs, forest.column("status")
    started = [p for p in trials if runs[p].started_at]
    if not started:
        return None
    first = min(started, key=lambda p: runs[p].started_at)
    if statuses[first] != "finished" or (found := _costs(forest, first)) is None:
        return None
    costs, what = found
    cost = costs[first] or 0.0  # known: _costs reads what the first trial knows
    # its excess must be a tenth of the trials' cost: read before comparing shapes, so that a
    # study of 100,000 trials costs one sum here
    total = math.fsum(c for p in trials if (c := costs[p]) is not None)
    if cost < OF_TRIALS * total:
        return None
    shape = _shape(runs[first])
    twins = [
        p
        for p in trials
        if p != first
        and statuses[p] == "finished"
        and costs[p] is not None
        and _shape(runs[p]) == shape
    ]
    if len(twins) < MIN_TWINS:
        return None
    like = [costs[p] or 0.0 for p in twins]
    median = statistics.median(like)
    if (
        cost <= OVER_MEDIAN * median
        or cost <= OVER_MAX * max(like)
        or cost - median < OF_TRIALS * total
    ):
        return None
    times = forest.duration_sums
    if not all(times.complete[p] for p in (first, *twins)):
        return None  # no run time to tell a one-off step from a hiccup
    if times.inclusive[first] - statistics.median(times.inclusive[p] for p in twins) < MIN_EXCESS_S:
        return None
    say = format_energy if what == "energy" else format_duration
    run = runs[first]
    return (
        f"the first trial, {run.name} ({run.id[:8]}), cost {say(cost)} of {what}, "
        f"{format_multiple(cost / median)} the median of the {len(twins)} finished trials of its "
        f"shape ({say(median)}: the same params but for their float values, such as a learning "
        "rate): a one-off cost of its process (an import, a compilation, a warm-up) may have "
        "landed in it, and it raises the mean trial's cost that the expected best score against "
        f"energy is drawn with; to keep it out, do that step before the first run opens ({DOCS})"
    )
