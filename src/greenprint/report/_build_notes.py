"""The report's notes on the study.

Its scorers and objectives, budgets that stopped runs, runs still running, apportioned energy
and the FPO counts' assumptions.
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from greenprint._format import count_of
from greenprint._metric_choice import is_held_out
from greenprint._metric_names import is_bookkeeping_metric
from greenprint._prediction import is_reserved_metric
from greenprint._provenance import (
    FPO_ASSUMPTIONS_KEY,
    distinct_provenances,
    fpo_assumptions_of,
    is_apportioned,
    recorded_objectives,
)
from greenprint._records import RunRecord
from greenprint._study_roles import recorded_direction
from greenprint.analysis._common import (
    Mode,
    RunForest,
)

if TYPE_CHECKING:  # pragma: no cover
    pass


#: How the name of a metric measured on the training data starts.
_TRAINING_PREFIXES = ("train_", "train/", "train-", "training_", "training/")


def _training_metric_note(forest: RunForest, metric: str | None) -> str | None:
    """A study ranked by a training metric because no run logged a held-out one.

    A Lightning fit without a validation loader, or a Trainer given no ``eval_dataset``,
    logs only its ``train_loss``: the report ranked the trials by it and named the run that
    fit its training data best as the final model, without a word that it is no held-out
    score. ``None`` when the metric is not a training metric or some run logged a held-out one
    (``val_*``, ``eval_*``, ``test_*``). For a metric the report chose: one given by name
    (``--metric train_loss``) is the user's choice, and its runs are read with its points only.
    """
    if metric is None or not metric.lower().startswith(_TRAINING_PREFIXES):
        return None
    if any(is_held_out(name) for run in forest.runs for name in run.metric_names):
        return None
    return (
        f"runs ranked by {metric!r}, a training metric: no run logged a held-out score "
        "(val_*, eval_*, test_*), so the best trial and the final run are those that fit "
        "their training data best, not those that generalise best; log a validation metric "
        "(Lightning: a validation_step and val_dataloaders; Hugging Face: an eval_dataset "
        "and an eval_strategy)"
    )


def _unscored_baselines_note(
    forest: RunForest, baselines: Sequence[int], scores: Mapping[str, float], metric: str | None
) -> str | None:
    """The baselines with no score of ``metric``: drawn nowhere, which a note must say.

    A baseline is a reference line on the expected-best-score and Pareto plots and a row of the
    efficiency table only with a score of the metric the trials are ranked by; a baseline that
    logged another (a Lightning fit's ``eval_accuracy`` beside a Hugging Face search ranked by
    its ``objective``) had been left out of all of them without a word. ``None`` when every
    baseline has a score, or no metric ranks the study.
    """
    if metric is None:
        return None
    missing = [
        forest.runs[p]
        for p in baselines
        if not math.isfinite(scores.get(forest.runs[p].id, math.nan))
    ]
    if not missing:
        return None
    logged = sorted(
        {
            point.name
            for run in missing
            for point in run.metrics
            if not is_bookkeeping_metric(point.name) and not is_reserved_metric(point.name)
        }
    )
    names = ", ".join(f"{run.name} ({run.id[:8]})" for run in missing[:5])
    if len(missing) > 5:
        names += f" and {len(missing) - 5} more"
    one = len(missing) == 1
    text = (
        f"{count_of(len(missing), 'baseline')} {'has' if one else 'have'} no score of "
        f"{metric!r}: no reference line is drawn for {'it' if one else 'them'} and no "
        f"efficiency table lists {'it' if one else 'them'}: {names}"
    )
    if logged:
        text += (
            f"; {'it' if one else 'they'} logged {', '.join(logged)} (log {metric!r} on "
            f"{'it' if one else 'them'} too, or rank the study by a metric every run logged "
            "with --metric)"
        )
    return text


def _scorer_note(forest: RunForest, sweeps: Sequence[int], metric: str | None) -> str | None:
    """Which scorer a scikit-learn search's ``score`` is, when the report ranks by ``score``.

    A search of several scorers (``scoring={"acc": ..., "f1": ...}, refit="f1"``) logs each
    candidate's ``score`` as its refit scorer's mean (the first scorer's with ``refit=False``);
    ``track_search`` records its column name as the sweep's param ``score_metric``. ``None``
    when the report ranks by another metric or no sweep recorded one.
    """
    if metric != "score":
        return None
    named = sorted(
        {str(found) for p in sweeps if (found := forest.runs[p].params.get("score_metric"))}
    )
    if not named:
        return None
    # refit=False (or a callable refit) names no scorer: the trials' score is the first's
    refits = {
        "first" if "refit" in forest.runs[p].params else "refit"
        for p in sweeps
        if forest.runs[p].params.get("score_metric")
    }
    which = {
        frozenset({"refit"}): "the search's refit scorer",
        frozenset({"first"}): "the search's first scorer, as it refit by none of them",
    }.get(frozenset(refits), "the search's refit scorer, else its first")
    return (
        f"'score' is scikit-learn's {' or '.join(named)} ({which}; each candidate's mean over "
        "its folds); the other scorers' means are logged as mean_test_<scorer>: rank by one "
        "with --metric"
    )


def _objectives_note(
    forest: RunForest,
    positions: Sequence[int],
    metric: str | None,
    mode: Mode,
    study: str,
    *,
    given: bool = False,
) -> str | None:
    """What the search the trials ran in optimised, against what the report ranks by.

    The objectives (each metric and its direction) a search recorded in its trials'
    provenance (``objectives``: greenprint's Optuna callback), the most trials' record: a
    study of several objectives is ranked by one metric, and a metric can be ranked the other
    way than the search's direction (Optuna minimises ``value`` by default). With a mode
    ``given`` by the user, a metric that is no objective is checked against the direction its
    runs recorded for it (``metric_directions``: a scikit-learn scorer's, which ranks every
    score highest first). ``None`` when no trial recorded either, or the metric is ranked as
    recorded and the search had one objective.
    """
    if metric is None:
        return None
    provenances = forest.column("provenance")
    recorded = recorded_objectives(provenances[p] for p in positions).most_common(1)
    objectives = recorded[0][0] if recorded else ()
    directions = dict(objectives)
    better = "higher" if mode == "max" else "lower"
    against = directions.get(metric)
    if against is None and given:  # without a mode given, the ranking followed the record
        found = recorded_direction([forest.runs[p] for p in positions], metric)
        if found is not None:
            against = "minimize" if found[0] == "min" else "maximize"
    wrong = against is not None and (against == "minimize") != (mode == "min")
    if len(objectives) <= 1 and not wrong:
        return None
    flag = {"maximize": "max", "minimize": "min"}
    done = {"maximize": "maximised", "minimize": "minimised"}
    text = ""
    if len(objectives) > 1:
        named = [f"{name} ({done[d]})" for name, d in objectives]
        text = (
            f"the search optimised {len(objectives)} objectives, {', '.join(named[:-1])} and "
            f"{named[-1]}: the report ranks the trials by one, {metric} ({better} is better)"
        )
        others = [f"--metric {name} --mode {flag[d]}" for name, d in objectives if name != metric]
        if others:
            text += f"; rank by another with {' or '.join(others)}"
        text += (
            f"; the score-against-energy figure's front is {metric} against energy, not the "
            "search's front over its objectives"
        )
    if wrong:
        way = against or "maximize"
        first = "highest" if mode == "max" else "lowest"
        which = f"the search {done[way]} {metric!r}, the report ranks it {first} first"
        fix = shlex.join(
            ["greenprint", "report", "--study", study, "--metric", metric, "--mode", flag[way]]
        )
        text = f"{text}; {which}: {fix}" if text else f"{which}: {fix}"
    return text


#: How the error of a run a "stop" budget ended begins (its status is ``interrupted``).
_BUDGET_STOP = "BudgetExceeded: "


def _budget_note(runs: Sequence[RunRecord]) -> str | None:
    """Which runs a budget stopped, and why: their status alone reads as a Ctrl-C's.

    A run stopped with the run it is nested in (a fold in its trial) is left to that run.
    """
    stopped = {
        r.id: r
        for r in runs
        if r.status == "interrupted" and r.error and r.error.startswith(_BUDGET_STOP)
    }
    if not stopped:
        return None
    shown = sorted(
        (r for r in stopped.values() if r.parent_id not in stopped), key=lambda r: r.started_at
    )
    reasons = "; ".join(f"{r.name}: {(r.error or '')[len(_BUDGET_STOP) :]}" for r in shown[:3])
    more = f"; and {len(shown) - 3} more" if len(shown) > 3 else ""
    count = "1 run was" if len(shown) == 1 else f"{len(shown)} runs were"
    spent = "what it spent" if len(shown) == 1 else "what they spent"
    return (
        f"{count} stopped by a budget (status interrupted; {spent} is in the price tag): "
        f"{reasons}{more}"
    )


def _running_note(runs: Sequence[RunRecord]) -> str | None:
    """Which runs were still running when the report was read: its figures are not final.

    A running run's cost, duration and metrics are what it last wrote to the ledger (every
    ``flush_interval_s``), so a report made while a study goes on prices it as of then and its
    totals will grow. Runs inside a running run are left to it.
    """
    running = {r.id: r for r in runs if r.status == "running"}
    if not running:
        return None
    shown = sorted(
        (r for r in running.values() if r.parent_id not in running), key=lambda r: r.started_at
    )
    names = ", ".join(f"{r.name} ({r.id[:8]})" for r in shown[:3])
    more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
    written = [r.heartbeat_at for r in shown if r.heartbeat_at is not None]
    when = (
        f" (the latest at {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(max(written)))})"
        if written
        else ""
    )
    one = len(shown) == 1
    return (
        f"{count_of(len(shown), 'run')} {'was' if one else 'were'} still running when this "
        f"report was made: {names}{more}; {'its' if one else 'their'} cost, time and scores are "
        f"what {'it' if one else 'they'} had written to the ledger by {'its' if one else 'their'} "
        f"last flush{when}, so the totals will grow: report again when "
        f"{'it ends' if one else 'they end'}"
    )


def _apportioned_note(runs: Sequence[RunRecord]) -> str | None:
    """Which runs' energy is a share of their search's, not metered run by run.

    scikit-learn's ``track_search(..., method="apportion")`` meters the search once and gives
    each candidate, fold and refit a share of it by their fit and score times: their energy
    reads as measured (the search's meters), but a run's own figure is an estimate of its share.
    """
    seen: dict[int, bool] = {}  # provenance dictionaries, most shared by many runs
    shares = []
    for run in runs:
        found = seen.get(id(run.provenance))
        if found is None:
            found = seen[id(run.provenance)] = is_apportioned(run.provenance)
        if found:
            shares.append(run)
    if not shares:
        return None
    ids = {r.id for r in shares}
    by_id = {r.id: r for r in runs}
    searches = sorted(
        {r.parent_id for r in shares if r.parent_id is not None and r.parent_id not in ids},
        key=lambda i: by_id[i].started_at if i in by_id else 0.0,
    )
    names = [repr(by_id[i].name) for i in searches if i in by_id]
    named = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    of = f"of {'search' if len(searches) == 1 else f'{len(searches)} searches'} {named}".rstrip()
    count = "1 run" if len(shares) == 1 else f"{len(shares)} runs"
    return (
        f"the energy of {count} (the candidates, folds and refit {of}, tracked with "
        "method='apportion') is not metered run by run: each is a share of its search's "
        "measured energy by its fit and score times (scikit-learn's cv_results_), and the "
        "shares add up to it; a run's own figure is an estimate"
    )


#: FFT libraries as :attr:`FPOResult.assumptions <greenprint.FPOResult>` names them -> as
#: people write them.
_FFT_LIBRARIES = {"mkl": "MKL", "pocketfft": "pocketfft", "cufft": "cuFFT"}


def _fpo_assumptions_note(runs: Sequence[RunRecord]) -> str | None:
    """What the study's counted FPO assumed, and for how many runs (once, for the whole study).

    A count of an FFT depends on the library that ran it (an ``rfft``'s normalisation: MKL
    and cuFFT 2 per one-sided complex value, pocketfft 1 per real input); the count records it
    (:attr:`FPOResult.assumptions <greenprint.FPOResult>`), and a run given the count keeps it
    in its provenance (``"fpo_assumptions"``). Each name and value is said with the number of
    runs with FPO that assumed it, most runs first. ``None`` when no run's FPO assumed anything.
    """
    counts: dict[tuple[str, str], int] = {}
    for provenance, many in distinct_provenances(
        r.provenance for r in runs if r.fpo is not None and FPO_ASSUMPTIONS_KEY in r.provenance
    ):
        for pair in fpo_assumptions_of(provenance).items():
            counts[pair] = counts.get(pair, 0) + many
    if not counts:
        return None
    parts = []
    for (name, value), many in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0])):
        if name == "fft_library":
            libraries = value.split("+")
            named = " and ".join(_FFT_LIBRARIES.get(one, one) for one in libraries)
            verb = "compute" if len(libraries) > 1 else "computes"
            what = f"count FFTs as {named} {verb} them ({name}={value})"
        elif " " in value:  # a sentence ("counted as ATen's CUDA grid_sampler_2d kernel ...")
            what = f"assume {name}: {value}"
        else:
            what = f"assume {name}={value}"
        parts.append(f"FPO of {count_of(many, 'run')} {what}")
    return (
        "; ".join(parts) + ": a count on another torch build or device can differ there (each "
        "run's provenance has what its FPO assumed, fpo_assumptions)"
    )
