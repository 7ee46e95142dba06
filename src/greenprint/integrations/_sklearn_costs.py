"""A search's trials costed: a candidate's rows and folds linked and summed, or shared out.

Private: :mod:`greenprint.integrations.sklearn` is the public module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from greenprint._format import count_of
from greenprint._provenance import APPORTIONED, TRIAL_KEY
from greenprint._records import MetricPoint, RunRecord
from greenprint.integrations._sklearn_common import _derived, _plain_params

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run


#: The error of a measured fold scored NaN whose fit did not raise (a fit that raised ends its
#: run with its own error, read where scikit-learn keeps it: tests/integrations/
#: test_integrations_s27_i.py checks that it still does): its scorer raised, or found the
#: score undefined (``roc_auc`` on a test fold of one class).
NO_SCORE_MEASURED = (
    "no score: its score is NaN though its fit did not raise (the scorer raised or found the "
    "score undefined, e.g. roc_auc on a test fold of one class: scikit-learn's warning says why)"
)

#: The error of an apportioned fold scored ``error_score`` (nothing tells its fit from its score).
NO_SCORE = "no score (error_score): its fit or its scoring failed"


def _last_rows(params: Any, iters: list[int], resource: Any = None) -> list[int]:
    """For each row of a halving search, the row of the same candidate at its last iteration.

    A candidate kept for iteration ``i + 1`` is the same ``params`` dict as its row of
    iteration ``i`` (scikit-learn passes the dicts on); equal parameters link rows otherwise,
    but for ``resource``, an estimator's parameter that the search sets anew each iteration
    (``resource="n_estimators"``: 2, 4, 8; its rows are copies then).
    """
    plain = [{k: v for k, v in _plain_params(p).items() if k != resource} for p in params]
    by_iter: dict[int, list[int]] = {}
    for row, it in enumerate(iters):
        by_iter.setdefault(it, []).append(row)
    following: dict[int, int] = {}
    for it, members in by_iter.items():
        free = list(by_iter.get(it - 1, ()))
        for row in members:
            match = next((r for r in free if params[r] is params[row]), None)
            if match is None:
                match = next((r for r in free if plain[r] == plain[row]), None)
            if match is not None:
                free.remove(match)
                following[match] = row
    last = list(range(len(iters)))
    for row in range(len(iters)):
        while last[row] in following:
            last[row] = following[last[row]]
    return last


def _with_parts(trial: RunRecord, parts: list[RunRecord]) -> RunRecord:
    """``trial`` with the cost of its earlier iterations (its parts) added.

    Its time (run-seconds): the sum of its rows' (each row's: its folds' span with measured
    folds, its time share when apportioned), not the span from its first iteration to its last,
    in which the other candidates ran.
    """
    if not parts:
        return trial
    every = [trial, *parts]
    started = min(r.started_at for r in every)
    ended = max(r.ended_at or r.started_at for r in every)
    provenance = dict(trial.provenance)
    note = provenance.get(TRIAL_KEY, "")
    provenance[TRIAL_KEY] = f"{note}; with its {len(parts)} earlier halving iteration(s)"
    return replace(
        trial,
        started_at=started,
        ended_at=ended,
        heartbeat_at=ended,
        duration_s=sum(r.duration_s for r in every),
        provenance=provenance,
        **_cost_sums(every),
    )


def _cost_sums(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """The cost fields of ``runs`` added up (kWh, kg CO2-eq).

    A component none of them measured stays ``None``; energy and CO2-eq are 0 without runs.
    """

    def total(attr: str) -> float | None:
        values = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
        return sum(values) if values else None

    return {
        "energy_cpu_kwh": total("energy_cpu_kwh"),
        "energy_gpu_kwh": total("energy_gpu_kwh"),
        "energy_ram_kwh": total("energy_ram_kwh"),
        "energy_kwh": total("energy_kwh") or 0.0,
        "machine_energy_kwh": total("machine_energy_kwh"),
        "emissions_kg": total("emissions_kg") or 0.0,
    }


def _score_folds(
    ledger: Any,
    sweep: Run,
    reading: RunRecord,
    results: Mapping[str, Any],
    row: int,
    tid: str,
    measured: list[RunRecord],
    refit: str,
    n_splits: int,
    now: float,
    shares: list[float] | None,
    alias: str | None = None,
) -> None:
    """Give each fold its test scores (measured folds), or write apportioned folds.

    ``reading``: the search's record its trials were apportioned from (the folds share it);
    ``alias``: the name the score is also logged under, as its trial's (``accuracy``).
    """
    folds = {int(r.params.get("fold", -1)): r for r in measured}
    for fold in range(n_splits):
        key = f"split{fold}_test_{refit}"
        if key not in results:
            continue
        score = float(results[key][row])
        metrics = [MetricPoint("score", score, None, now)]
        if alias:
            metrics.append(MetricPoint(alias, score, None, now))
        prefix = f"split{fold}_"
        for name, values in results.items():
            if name.startswith((f"{prefix}test_", f"{prefix}train_")):
                metric = name.removeprefix(prefix)
                metrics.append(MetricPoint(metric, float(values[row]), None, now))
        failed = not math.isfinite(score)
        status = "failed" if failed else "finished"
        error = (NO_SCORE_MEASURED if shares is None else NO_SCORE) if failed else None
        if shares is not None:
            record = _apportioned(
                reading,
                _derived(tid, f"fold{fold}"),
                f"{sweep.name}-c{row}-fold{fold}",
                sweep,
                shares[row] / n_splits,
                {"fold": fold},
            )
            ledger.start_run(
                replace(
                    record,
                    parent_id=tid,
                    role="part",
                    metrics=tuple(metrics),
                    status=status,
                    error=error,
                )
            )
        elif fold in folds:
            # a fit that raised under error_score ended its run failed with its own error
            # (kept); a score that is not finite fails a fold that ended otherwise
            own = folds[fold].status == "failed" and bool(folds[fold].error)
            fields = {"status": status, "error": error} if failed and not own else None
            ledger.flush(folds[fold].id, fields=fields, metrics=metrics)


def _summed(
    base: RunRecord,
    run_id: str,
    name: str,
    parent_id: str,
    parts: list[RunRecord],
    status: str,
    params: dict[str, Any],
    metrics: tuple[MetricPoint, ...],
) -> RunRecord:
    """A trial whose cost is the sum of its measured folds'."""
    started = min((p.started_at for p in parts), default=base.started_at)
    ended = max((p.ended_at or p.started_at for p in parts), default=started)
    provenance = dict(parts[0].provenance) if parts else dict(base.provenance)
    provenance[TRIAL_KEY] = f"sum of {count_of(len(parts), 'measured fold run')}"
    # a sum, not a reading of the process over the trial's span (a halving candidate's spans
    # its iterations, interleaved with others'): never read as threads sharing the process
    provenance.pop("process", None)
    return replace(
        base,
        id=run_id,
        name=name,
        parent_id=parent_id,
        role="trial",
        status=status,
        started_at=started,
        ended_at=ended,
        heartbeat_at=ended,
        duration_s=max(ended - started, 0.0),
        params=params,
        provenance=provenance,
        metrics=metrics,
        **_cost_sums(parts),
    )


def _apportioned(
    base: RunRecord, run_id: str, name: str, sweep: Run, share: float, params: dict[str, Any]
) -> RunRecord:
    """A run whose cost is ``share`` of the sweep's measured cost in ``base``.

    ``base`` is one reading of the sweep (its record, taken once): the trials, their folds and
    the refit are shares of the same reading, so that a trial's folds sum to it (the sweep's
    sampler moves its live record on while they are written).
    """
    record = base

    def part(value: float | None) -> float | None:
        return None if value is None else value * share

    provenance = dict(record.provenance)
    provenance[TRIAL_KEY] = (
        f"{APPORTIONED} {share:.4g} of the search's measured cost, by cv_results_ fit+score times"
    )
    provenance.pop("process", None)  # a share of the search's reading, not one of its own
    return replace(
        base,
        id=run_id,
        name=name,
        parent_id=sweep.id,
        role="trial",
        status="finished",
        ended_at=record.heartbeat_at,
        heartbeat_at=record.heartbeat_at,
        duration_s=record.duration_s * share,
        params=params,
        energy_cpu_kwh=part(record.energy_cpu_kwh),
        energy_gpu_kwh=part(record.energy_gpu_kwh),
        energy_ram_kwh=part(record.energy_ram_kwh),
        energy_kwh=record.energy_kwh * share,
        machine_energy_kwh=part(record.machine_energy_kwh),
        emissions_kg=record.emissions_kg * share,
        provenance=provenance,
    )


def _time_shares(
    search: Any, results: Mapping[str, Any], refit_s: float | None = None
) -> list[float]:
    """Each candidate's share of the search's time, then the refit's (last).

    The refit's time is scikit-learn's ``refit_time_``, or ``refit_s`` (s, from the
    candidates' end to the stop) for a refit stopped before it set one (a Ctrl-C).
    """
    n_splits = int(search.n_splits_)
    times = [
        (float(f) + float(s)) * n_splits
        for f, s in zip(results["mean_fit_time"], results["mean_score_time"], strict=True)
    ]
    refit_time = getattr(search, "refit_time_", None) if refit_s is None else refit_s
    times.append(float(refit_time or 0.0))
    whole = sum(times)
    if whole <= 0:
        return [1.0 / len(times)] * len(times)
    return [t / whole for t in times]
