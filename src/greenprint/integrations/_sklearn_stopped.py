"""The trials of a search stopped before its end (a raising fit, a Ctrl-C): no ``cv_results_``.

Private: :mod:`greenprint.integrations.sklearn` is the public module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import GreenprintError
from greenprint._lifecycle import status_for
from greenprint._records import RunRecord
from greenprint.integrations._common import interrupted_at_heartbeat
from greenprint.integrations._sklearn_common import _plain, _plain_params, trial_id
from greenprint.integrations._sklearn_costs import _last_rows, _summed, _with_parts
from greenprint.integrations._sklearn_timer import _refit_began

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run

logger = logging.getLogger(__name__)


def _write_stopped(
    sweep: Run,
    search: Any,
    name: str,
    stopped_by: BaseException | None,
    earlier_best: Any,
    candidates: Sequence[Mapping[str, Any]],
    iterations: Sequence[int],
) -> None:
    """The trials of a search whose fit raised before it set ``cv_results_`` (no scores).

    One trial per candidate whose folds were measured, with its params. ``failed`` when a fold
    of its own raised; ``interrupted`` when another candidate's fit raised
    (``error_score="raise"``), or a Ctrl-C or a budget stopped the search; ``failed``
    otherwise. A halving search's candidate is one trial as in a whole fit: its row of the
    last iteration it reached, its earlier rows its parts (``finished``, scored then, the scores
    lost with the search); eliminated at an iteration before the one the search stopped in, it
    is ``pruned``.
    """
    ledger = sweep.ledger
    assert ledger is not None
    base = replace(sweep.record, metrics=(), error=None, fpo=None, param_count=None)
    measured: dict[int, list[RunRecord]] = {}  # row -> its fold runs
    for run in ledger.runs(study=sweep.study):
        if run.role == "part" and run.name.startswith(f"{name}-c") and run.parent_id:
            label = run.name[len(name) + 2 :].partition("-fold")[0]
            row = int(label) if label.isdigit() else -1
            if run.parent_id == trial_id(sweep.id, row):
                measured.setdefault(row, []).append(run)
    ended, why = status_for(stopped_by)  # how the search's fit ended, for each candidate
    for parts in measured.values():  # fits whose worker joblib killed as the search stopped
        parts[:] = [_ended_with_search(ledger, part, why) for part in parts]
    # a candidate's own fit raised (error_score="raise"): the others were only stopped
    raised = any(p.status == "failed" and p.error for ps in measured.values() for p in ps)
    # a halving search (its n_candidates_ per iteration): a candidate's rows are one trial
    halving = isinstance(getattr(search, "n_candidates_", None), list)
    halving = halving and len(iterations) == len(candidates)
    last_row = list(range(len(candidates)))
    if halving:
        resource = getattr(search, "resource", None)
        last_row = _last_rows(list(candidates), list(iterations), resource)
    stopped_in = max(iterations, default=0)
    earlier: dict[int, list[int]] = {}  # a candidate's trial row -> its earlier rows measured
    for row in measured:
        last = last_row[row] if 0 <= row < len(last_row) else row
        if last != row:
            earlier.setdefault(last, []).append(row)
    n_resources = getattr(search, "n_resources_", None)

    def params_of(row: int) -> dict[str, Any]:
        params = _plain_params(candidates[row]) if 0 <= row < len(candidates) else {}
        if halving and 0 <= row < len(iterations):
            params["iter"] = int(iterations[row])
            if isinstance(n_resources, list) and iterations[row] < len(n_resources):
                params["n_resources"] = _plain(n_resources[iterations[row]])
        return params

    went_on = {row for rows in earlier.values() for row in rows}  # a later row is the trial
    for trial_row in sorted((set(measured) - went_on) | set(earlier)):
        parts = measured.get(trial_row, [])
        failed = [p.error for p in parts if p.status == "failed" and p.error]
        status = ended
        if failed or (not raised and status != "interrupted"):
            status = "failed"
            error: str | None = (
                failed[0] if failed else "the search failed before this candidate was scored"
            )
        elif halving and 0 <= trial_row < len(iterations) and iterations[trial_row] < stopped_in:
            status, error = "pruned", None  # eliminated before the iteration that stopped
        elif raised:  # nothing of its own failed: another candidate's fit stopped the search
            status = "interrupted"
            error = (
                f"{why} in another candidate's fit (the search stopped before this candidate "
                "was scored)"
            )
        elif _refit_began(search, earlier_best):  # scored, but the scores are lost
            error = (
                f"{why} (scored, then the search was interrupted during its refit, before "
                "scikit-learn kept the scores)"
            )
        else:  # a Ctrl-C or a "stop" budget ended the search: nothing failed
            error = f"{why} (the search stopped before this candidate was scored)"
        tid = trial_id(sweep.id, trial_row)
        rows = []
        for row in sorted(earlier.get(trial_row, [])):  # its earlier iterations: its parts
            run_id, run_name = trial_id(sweep.id, row), f"{name}-c{row}"
            run = _summed(
                base, run_id, run_name, tid, measured[row], "finished", params_of(row), ()
            )
            rows.append(replace(run, role="part"))
        trial = _summed(
            base, tid, f"{name}-c{trial_row}", sweep.id, parts, status, params_of(trial_row), ()
        )
        ledger.start_run(replace(_with_parts(trial, rows), error=error))
        for run in rows:
            ledger.start_run(run)


def _ended_with_search(ledger: Any, part: RunRecord, why: str | None) -> RunRecord:
    """A fold fit's run whose worker process ended as the search stopped, ``interrupted``.

    joblib's process workers (loky) are killed when a fit raises (``error_score="raise"``) or
    the search is interrupted: a fit running in another worker then ends with no final
    write, and would read ``lost`` (its cost so far, 0 kWh before its first flush, is in the
    sweep's, which measured the workers). Any other part is returned as it is.
    """
    if part.status != "lost":
        return part
    fields = interrupted_at_heartbeat(
        part, f"its worker process was ended when the search stopped ({why or 'an error'})"
    )
    try:
        ledger.flush(part.id, fields=fields)
    except GreenprintError as e:
        logger.warning("greenprint: could not end run %s: %s", part.id[:8], e)
        return part
    return replace(part, **fields)
