"""The price tag of a study: what every run cost, and what the final result cost against it.

Nesting and double counting. A run started inside another records it as its parent, and the
parent's measurement contains the child's (same process tree, same time span). A child on another
host or outside its parent's process tree (``contained`` false), and the nodes of a distributed
job under its head, add to their parent instead; the ranks of a node under its node meter are
inside it for energy but add their FPO (see :class:`~greenprint.analysis._common.RunForest`). So:

* totals sum the *roots* (runs whose parent is not in the set): each root's cost already contains
  its descendants';
* the by-status breakdown gives each run its *exclusive* cost: its own cost minus its children's
  (clamped at 0), attributed to its own status. A failed child inside a finished parent counts
  as failed, and the parent's remainder (its own overhead) as finished;
* both agree: the by-status amounts add up to the totals. If children add up to more than their
  parent recorded (inconsistent data), the children's sum wins and a note says so;
* children that ran *at the same time* inside their parent (threads of one process: Optuna's
  ``n_jobs > 1``) each measured the whole process over their span, so their energies add up to
  more than the parent measured: the parent's measurement wins, children that ran alone
  beside them keep their amounts, and the energy and CO2-eq of those that ran together are
  scaled to the rest, each in proportion to what it measured (a note says by how much; see
  :meth:`~greenprint.analysis._common.RunForest.shared_sums`). Durations still add up
  (run-seconds), and FPO, counted per run, are never scaled;
* a child that ran on after its parent ended (a worker process left running when its main
  process got SIGTERM or crashed) was inside its parent's measurement only until that end:
  what it measured after the end of every run around it (its energy and CO2-eq split there
  by its power samples, ``samples_of``; prorated by time over its span where it has none)
  adds, once, to the totals and to its own exclusive cost, with a note saying which
  (:func:`beyond_sums`; not for a thread of its parent's own process, a run that names no
  process, nor a distributed job's runs, whose amounts the rules above read);
* the by-status and by-role breakdowns add up to the totals too: each run's exclusive cost goes
  to its status and role, except a part's, which goes to the role of the run it is part of
  (its trial, baseline, final run...) and to that run's status or its own, whichever ended
  worse (lost, failed, interrupted, running, pruned, finished): a pruned trial's folds, which
  finished, are what the pruned trial cost (``by_status["pruned"]``), a failed fold of a
  finished trial is the cost of a failure (``by_status["failed"]``). So
  ``by_role["trial"]`` is the search's trials with their folds, ``by_role["sweep"]`` what the
  sweep containers spent around them, ``by_role["baseline"]``, ``["final"]`` and
  ``["learning-curve"]`` the rest.

Unknown FPO. A run that counted no FPO of its own but has children inside it (a sweep over
trials, a trial over its folds) counts as the sum of those children, so it is not unknown; those
of its children that are unknown are counted, each once, not the container too. ``fpo_unknown``
counts the runs whose FPO is unknown that no parent's known FPO contains and that have no child
inside them (a run whose children all add to it, such as a node meter over its ranks, and that
counted no FPO, stays unknown). A run's FPO with its children's (the final run's, a trial's in
E·D·H) is known only when its own FPO is known or every child inside it is known, recursively,
and so is every run that adds to it (:meth:`~greenprint.analysis._common.RunForest.known_sums`).

Unknown run time. A run that recorded no duration (``RunRecord.duration_s`` 0.0: a run built
by hand through the ledger API, or imported) is read by the same rule: its time is in no sum,
``duration_unknown`` counts it (when no parent's known time contains it and no child is inside
it), a group none of whose runs knows its time has ``duration_known`` false (its JSON
``duration_s`` null), and the final run's time is NaN (null) unless it or every run inside it
knows its own. The texts say ``"1m 35s + unknown for 2 runs"``, never a sum that leaves them out
without a word.

Unknown energy. A run that recorded no energy (tracked with no meter, ``meters=[]``:
:attr:`~greenprint._records.RunRecord.energy_recorded` false) holds 0.0 kWh and 0.0 kg, read
by the same rule: ``energy_unknown`` counts it, a group none of whose runs recorded energy has
``energy_known`` false (its JSON ``energy_kwh`` and ``emissions_kg`` null), the final run's
energy and CO2-eq are NaN (null) unless it or every run inside it recorded its own, and its
shares are ``None`` while some run's energy is unknown. CO2-eq is unknown where energy is.

Trials: the runs with role ``trial`` (given, or inferred: see :mod:`greenprint.analysis._roles`);
never a part (a fold), a sweep, a baseline, the final run or a learning-curve run. ``runs``
counts every run.

The parts: :func:`price_tag` is here; what it hands back is in
:mod:`~greenprint.analysis._pricetag_model` (:class:`PriceTag`, :class:`CostTotals`,
:class:`EDH`, :class:`ProvenanceSummary`) and :mod:`~greenprint.analysis._final_run`
(:class:`FinalRun`), re-exported here; how it sums a group of runs (by status, by role, E·D·H)
in :mod:`~greenprint.analysis._pricetag_sums`; where the energy came from in
:mod:`~greenprint.analysis._pricetag_provenance`; the notes beside the figures in
:mod:`~greenprint.analysis._pricetag_notes`; what runs spent after their main run ended in
:mod:`~greenprint._forest_beyond`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from greenprint._exceptions import AnalysisError
from greenprint._forest_beyond import BeyondSums, SamplesOf, beyond_sums
from greenprint._forest_sums import KnownSums
from greenprint._jobs import job_notes
from greenprint._provenance import is_fpo_lower_bound
from greenprint._records import RUN_ROLES, RUN_STATUSES, RunRecord
from greenprint.analysis._common import Mode, Reduce, RunForest, check_logged, run_end
from greenprint.analysis._final_role import (
    FinalRoleRuns,
    final_role_groups,
    listed_names,
    named,
)
from greenprint.analysis._final_run import FinalRun, _logged_by, _logged_metrics, choose_final
from greenprint.analysis._pricetag_model import EDH, CostTotals, PriceTag, ProvenanceSummary
from greenprint.analysis._pricetag_notes import _beyond_note, _shared_notes, _unflushed_note
from greenprint.analysis._pricetag_provenance import _provenance
from greenprint.analysis._pricetag_sums import (
    _counts_fpo,
    _edh,
    _knows,
    _knows_fpo,
    _owner_statuses,
    _picker,
    _positions_of,
    _ratio,
    _unknown_if_none_knows,
    _with_descendants,
)
from greenprint.analysis._roles import StudyRoles, StudyTrials, study_trials

__all__ = [
    "EDH",
    "BeyondSums",
    "CostTotals",
    "FinalRoleRuns",
    "FinalRun",
    "PriceTag",
    "ProvenanceSummary",
    "beyond_sums",
    "forest_price_tag",
    "price_tag",
]

logger = logging.getLogger(__name__)


def price_tag(
    runs: Iterable[RunRecord],
    *,
    metric: str | None = None,
    mode: Mode | None = None,
    final: str | None = None,
    reduce: Reduce = "last",
    trials: StudyTrials | None = None,
    samples_of: SamplesOf | None = None,
) -> PriceTag:
    """The price tag of a set of runs (a study): every run counted, none twice.

    The final run is the one named by ``final``, else the run with role ``final``, else the best
    *finished trial* by ``metric`` (ties: the least energy, then the earliest started; a trial
    that logged no score of its own is ranked by the mean of its parts'); never a sweep or a
    part by a rule.

    Args:
        runs: the runs, any status (e.g. ``ledger.runs(study="sweep")``).
        metric: the metric that ranks the trials.
        mode: ``"max"`` if higher ``metric`` is better, ``"min"`` if lower is; ``None`` infers
            it from the name (``loss``, ``error``, ``perplexity``... are minimised, with a note).
        final: the id of the final run, chosen by the caller (wins over every rule).
        reduce: ``"last"`` (default) or ``"best"`` logged value of a run's metric.
        trials: :func:`study_trials` of these same runs with the same ``metric``, ``mode``
            and ``reduce``, when the caller has it already (``runs`` is then not read again).
        samples_of: a run's power samples by its id (``ledger.samples``): a run that ran on
            after the runs around it ended (a worker left running when its main process was
            stopped) is split at that end by what it measured, its samples; without them (or
            for a run that recorded none), its energy and CO2-eq are prorated by time over
            its span (exact at constant power), and a note says which. Read only for such
            runs.

    Returns:
        The :class:`PriceTag`.

    Raises:
        AnalysisError: no runs, duplicate ids, a parent cycle, ``final`` not among the runs, or
            a ``metric`` no run logged a value of (a name typed wrong: the message lists those
            logged), with no ``final`` run, or with one while the runs logged other metrics.
            A metric logged only by trials that did not finish
            (all stopped by a budget, failed or pruned) is no error: the price tag has no final
            run, and a note says why.
        ConfigError: an unknown ``mode`` or ``reduce``.
    """
    forest = RunForest.build(runs) if trials is None else trials.forest
    return forest_price_tag(
        forest,
        metric=metric,
        mode=mode,
        final=final,
        reduce=reduce,
        trials=trials,
        samples_of=samples_of,
    )


def forest_price_tag(
    forest: RunForest,
    *,
    metric: str | None = None,
    mode: Mode | None = None,
    final: str | None = None,
    reduce: Reduce = "last",
    trials: StudyTrials | None = None,
    samples_of: SamplesOf | None = None,
    beyond: tuple[BeyondSums, BeyondSums] | None = None,
) -> PriceTag:
    """:func:`price_tag` of runs already arranged, with what ran on when the caller has it.

    The report builds its study's forest once and reads :func:`beyond_sums` of it once, for
    the price tag and for its timeline, which draws what they count (the power samples of the
    runs that ran on after the runs around them ended are then read once, not by each).

    Args:
        forest: the runs' :class:`RunForest` (``trials.forest`` when ``trials`` is given).
        metric: as :func:`price_tag`'s.
        mode: as :func:`price_tag`'s.
        final: as :func:`price_tag`'s.
        reduce: as :func:`price_tag`'s.
        trials: :func:`study_trials` of ``forest``, as :func:`price_tag`'s.
        samples_of: as :func:`price_tag`'s; not read when ``beyond`` is given.
        beyond: ``beyond_sums(forest, samples_of)`` (energy, CO2-eq) when the caller has it;
            ``None``: read here.

    Returns:
        The :class:`PriceTag`, as :func:`price_tag`'s of ``forest.runs``.

    Raises:
        AnalysisError: as :func:`price_tag`.
        ConfigError: as :func:`price_tag`.
    """
    items = forest.runs
    if not items:
        raise AnalysisError("no runs: the price tag needs at least one run")
    if trials is None:
        trials = study_trials(forest, metric=metric, mode=mode, reduce=reduce)
    mode = trials.mode
    roles = trials.roles
    notes: list[str] = [trials.mode_note] if trials.mode_note else []
    # Field by field over the runs (RunForest.column), each figure in one pass; the sums run
    # in position order, as they always did, so every total is the same float.
    # energy and CO2-eq: concurrent children share their parent's measurement out
    # and what runs spent after the runs around them ended (a worker that ran on after its
    # main process was stopped): outside every measurement of theirs, it adds (beyond_sums)
    energy_beyond, co2_beyond = beyond_sums(forest, samples_of) if beyond is None else beyond
    energy, co2 = energy_beyond.sums, co2_beyond.sums
    energy_in, energy_ex = energy_beyond.inclusive, energy_beyond.exclusive
    energy_far = energy_beyond.far  # what is far below each run (None: no run adds)
    co2_in, co2_ex = co2_beyond.inclusive, co2_beyond.exclusive
    # run time: a run that recorded none (0.0: built by hand, imported) is unknown, as a run
    # that counted no FPO: not in the sums, counted in duration_unknown (RunForest.known_sums)
    durations = forest.column("duration_s")
    times: KnownSums | None = None
    if all(d > 0 for d in durations):  # every run knows its time (False for NaN too)
        time_in, time_ex = forest.nested_sum(durations)
    else:
        times = forest.duration_sums
        time_in, time_ex = times.inclusive, times.exclusive
    time_unknown = times.unknown if times is not None and True in times.unknown else None
    # energy and CO2-eq of a run with no meter (meters=[]): 0.0 in the sums above, unknown by
    # the same rule (counted in energy_unknown; a group none of whose runs recorded it unknown)
    watts = None if forest.energy_all_recorded else forest.energy_sums
    energy_unknown = watts.unknown if watts is not None and True in watts.unknown else None
    fpo = forest.fpo_sums  # the FPO rule (unknown, complete): RunForest.known_sums
    fpo_in, fpo_ex = fpo.inclusive, fpo.exclusive
    notes.extend(forest.notes)
    if forest.column("job_id").count(None) != len(items):
        notes.extend(job_notes(items))
    if "lost" in forest.column("status"):
        notes.extend(_unflushed_note(forest))
    if energy_beyond.counted:
        notes.append(_beyond_note(forest, energy_beyond))
    if energy.scaled or energy.roots is not None:
        # runs in groups count scaled amounts, their descendants with them (a trial in threads
        # counts its stretches' mean power): a parent is compared with what the runs inside
        # it recorded, not with their scaled amounts
        short_in, short_far = forest.recorded_sums("energy_kwh")
        short_beyond: Mapping[int, Any] = {}
    else:
        short_in, short_far, short_beyond = energy_in, energy_far, energy_beyond.inside
    if any(
        short_in[p] - forest.outside(p, short_in, short_far) - short_beyond.get(p, 0)
        > items[p].energy_kwh * (1 + 1e-9) + 1e-12
        for p in forest.inner_order
        if p not in energy.shares  # shared out: a floored one has its own note
        and items[p].energy_recorded  # no meter: its children's sum is its energy
    ):
        notes.append(
            "some parent runs recorded less energy than their children: the children's sum is used"
        )
        logger.warning("price_tag: parent runs with less energy than their children")
    if any(sums.scaled or sums.nonfinite or sums.roots for sums in (energy, co2)):
        notes.extend(_shared_notes(forest, roles.roles, energy, co2))

    # One pass per figure over the positions of a group, picked in C (itemgetter).
    is_trial = [role == "trial" for role in roles.roles]
    fpo_unknown = fpo.unknown
    # runs whose FPO (counted in the sums) are a lower bound, as their provenance says
    bound = [
        "fpo" in r.provenance and r.fpo is not None and is_fpo_lower_bound(r.provenance)
        for r in items
    ]
    any_bound = any(bound)

    def totals(positions: Sequence[int]) -> CostTotals:
        pick = _picker(positions)
        return CostTotals(
            runs=len(positions),
            trials=sum(pick(is_trial)),
            energy_kwh=float(sum(pick(energy_ex))),
            emissions_kg=float(sum(pick(co2_ex))),
            fpo=int(sum(pick(fpo_ex))),
            fpo_unknown=sum(pick(fpo_unknown)),
            duration_s=float(sum(pick(time_ex))),
            fpo_lower_bound=sum(pick(bound)) if any_bound else 0,
            duration_unknown=sum(pick(time_unknown)) if time_unknown else 0,
            energy_unknown=sum(pick(energy_unknown)) if energy_unknown else 0,
        )

    total = totals(range(len(items)))
    order = {s: k for k, s in enumerate(RUN_STATUSES)}
    status_of = forest.column("status")
    of_role: Mapping[str, Sequence[int]]
    if roles.positions("part"):  # a part's cost goes to the run it is part of: its role, and
        # its status or the part's own, whichever ended worse (a pruned trial's finished folds
        # are what the pruned trial cost; a failed fold or a lost rank stays a failure's cost)
        of_status = _positions_of(_owner_statuses(status_of, roles.owners))
        of_role = _positions_of(list(map(roles.roles.__getitem__, roles.owners)))
    else:  # every run its own owner: the role's positions, kept by roles
        of_status = _positions_of(status_of)
        of_role = {r: roles.positions(r) for r in RUN_ROLES if roles.positions(r)}
    if final is not None and final not in forest.index:
        raise AnalysisError(f"final run {final!r} is not among the runs")
    choice = choose_final(trials, final=final)
    chosen = choice.position
    # by_role["final"] split when it holds more than the final run (searches' refits beside
    # a retrain): the final run's, the refits' and the other retrains' positions
    of_final = final_role_groups(forest, roles, of_role.get("final", ()), chosen) or {}
    statuses = sorted(of_status, key=lambda s: (order.get(s, len(order)), s))
    # a group of every run (a study of trials only...) sums what the total summed
    by_status = {
        s: total if len(of_status[s]) == len(items) else totals(of_status[s]) for s in statuses
    }
    by_role = {
        r: total if len(of_role[r]) == len(items) else totals(of_role[r])
        for r in RUN_ROLES
        if r in of_role
    }
    by_final = {group: totals(positions) for group, positions in of_final.items()}

    def unknown_where_none_knows(
        value: Literal["fpo", "duration_s", "energy_kwh"], knows: list[bool]
    ) -> None:
        """Each group's total marked unknown in ``value`` where no run of it ``knows`` its own."""
        nonlocal total, by_status, by_role, by_final

        def mark(cost: CostTotals, positions: Sequence[int], knows: list[bool]) -> CostTotals:
            return _unknown_if_none_knows(cost, positions, knows, value)

        whole, total = total, mark(total, range(len(items)), knows)
        by_status = {
            s: total if c is whole else mark(c, of_status[s], knows) for s, c in by_status.items()
        }
        by_role = {
            r: total if c is whole else mark(c, of_role[r], knows) for r, c in by_role.items()
        }
        by_final = {g: mark(c, of_final[g], knows) for g, c in by_final.items()}

    if total.fpo_unknown:  # else every 0 is a count: an unknown FPO would be counted
        unknown_where_none_knows("fpo", _knows_fpo(forest))
    if total.duration_unknown and times is not None:  # a group's 0 s may mean unknown
        unknown_where_none_knows("duration_s", _knows(forest, times, durations))
    if total.energy_unknown and watts is not None:  # a group's 0 kWh may mean unknown
        recorded = [r.energy_recorded for r in items]
        unknown_where_none_knows("energy_kwh", _knows(forest, watts, recorded, own=recorded))

    started = min(forest.column("started_at"))
    ends = forest.column("ended_at")
    ended = max(ends if None not in ends else list(map(run_end, items)))

    if chosen is None and metric is not None and not _logged_by(items, metric):
        raise AnalysisError(
            f"no finished trial has a value of metric {metric!r} to rank by, and no run has "
            f"role 'final'; metrics logged: {_logged_metrics(items)}"
        )
    if chosen is not None and metric is not None:
        # a final run by its role (or final=): a name typed wrong would go through with it
        # unscored, the roles judged by a metric no run has (pareto_runs' check)
        check_logged(items, metric)
    final_run = None
    if chosen is not None:
        run = items[chosen]
        final_fpo = int(fpo_in[chosen]) if fpo.complete[chosen] else None
        final_time_known = times is None or times.complete[chosen]
        final_energy_known = watts is None or watts.complete[chosen]  # NaN (null) if not
        scored = trials.scores[chosen]
        score = scored.score
        final_run = FinalRun(
            run_id=run.id,
            name=run.name,
            status=run.status,
            chosen=final is not None,
            metric=metric,
            score=None if math.isnan(score) else score,
            energy_kwh=float(energy_in[chosen]) if final_energy_known else math.nan,
            emissions_kg=float(co2_in[chosen]) if final_energy_known else math.nan,
            fpo=final_fpo,
            # NaN: its time unknown (it recorded none, nor did every run inside it)
            duration_s=float(time_in[chosen]) if final_time_known else math.nan,
            energy_share=_ratio(energy_in[chosen], total.energy_kwh)
            if final_energy_known and not total.energy_unknown
            else None,
            emissions_share=_ratio(co2_in[chosen], total.emissions_kg)
            if final_energy_known and not total.energy_unknown
            else None,
            fpo_share=None if final_fpo is None else _ratio(final_fpo, total.fpo),
            duration_share=_ratio(time_in[chosen], total.duration_s) if final_time_known else None,
            role=roles.roles[chosen],
            rule=choice.rule or "given",
            rule_text=choice.text,
            score_source=scored.source,
            fpo_lower_bound=final_fpo is not None
            and any_bound
            and any(bound[p] for p in _with_descendants(forest, chosen)),
            name_shared=forest.column("name").count(run.name) > 1,
        )
    elif metric is not None:  # logged, but by no finished trial (stopped by a budget, failed)
        notes.append(
            f"no finished trial has a value of {metric!r} and no run has role 'final': the "
            f"final run is not identified (runs that logged it: {_logged_by(items, metric)})"
        )
    else:  # say how to identify it (the report chooses a metric itself; this does not)
        logged = _logged_metrics(items)
        how = (
            "no run logged a metric"
            if logged == "none"
            else f"give metric=, one of the metrics logged: {logged}"
        )
        notes.append(f"no metric given: the final run is not identified ({how})")

    # a row of runs none of which counted FPO (nor lies inside one that did) and whose FPO
    # are known, 0: a sweep that counted none around trials that counted theirs, its FPO
    # read as theirs; its 0 is that rule's, not a count (the report says "none counted")
    counts = _counts_fpo(forest)
    fpo_uncounted = tuple(
        r
        for r, c in by_role.items()
        if c is not total
        and c.fpo_known
        and not c.fpo
        and not c.fpo_unknown
        and not any(counts[p] for p in of_role[r])
    )
    final_role = None
    if by_final and chosen is not None:
        final_role = _final_role(forest, roles, of_final, by_final, by_role["final"], chosen)
    return PriceTag(
        studies=tuple(sorted(set(forest.column("study")))),
        total=total,
        by_status=by_status,
        elapsed_s=max(ended - started, 0.0),
        started_at=started,
        ended_at=ended,
        final=final_run,
        edh=_edh(
            forest,
            roles.trials,
            energy_in,
            co2_in,
            fpo_in,
            fpo.complete,
            None if watts is None else watts.complete,
        ),
        provenance=_provenance(forest, energy_in, energy_far),
        metric=metric,
        mode=mode,
        notes=tuple(notes),
        by_role=by_role,
        roles=roles,
        mode_note=trials.mode_note,
        roles_note=trials.roles_note,
        final_role=final_role,
        fpo_uncounted_roles=fpo_uncounted,
    )


def _final_role(
    forest: RunForest,
    roles: StudyRoles,
    of_final: Mapping[str, Sequence[int]],
    by_final: Mapping[str, CostTotals],
    whole: CostTotals,
    chosen: int,
) -> FinalRoleRuns:
    """``by_role["final"]`` split: the final run's, the refits' and the retrains' costs."""
    owners = roles.owners

    def heads(group: str) -> list[int]:  # the group's runs, not their parts
        return [p for p in of_final.get(group, ()) if owners[p] == p]

    refits, retrains = heads("refits"), heads("retrains")
    return FinalRoleRuns(
        whole=whole,
        final_run=by_final.get("final_run"),
        final_name=named(forest, chosen),
        refits=by_final.get("refits"),
        refit_ids=tuple(forest.runs[p].id for p in refits),
        refit_names=listed_names(forest, refits),
        retrains=by_final.get("retrains"),
        retrain_ids=tuple(forest.runs[p].id for p in retrains),
        retrain_names=listed_names(forest, retrains),
    )
