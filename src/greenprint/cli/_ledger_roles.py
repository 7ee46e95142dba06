"""Runs' roles as a report reads them, for ``ledger ls --tree`` and ``export``; ``set-role``.

:func:`roles_as_read` gives each run the role and parent its study's report gives it;
``greenprint ledger set-role`` gives runs that have ended a role afterwards, refusing what
would change how other runs read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from greenprint._exceptions import ConfigError
from greenprint._format import count_of
from greenprint._gc import gc_paused_call
from greenprint._records import RunRecord, check_role
from greenprint.cli._cells import MAX_CELL, open_ledger, safe
from greenprint.cli._common import TEXT, ledger_option

__all__ = ["parts_scores", "roles_as_read", "set_role_command"]


@gc_paused_call  # a study's forest and roles: many small acyclic objects (0.69 -> 0.36 s)
def roles_as_read(
    records: Sequence[RunRecord], metric: str | None, *, scores: bool = False
) -> dict[str, tuple[str, bool, str | None, bool, bool | None, tuple[str, float, int] | None]]:
    """Each run's role and parent as its study's report reads them, by run id.

    ``(role, role inferred, parent id, parent inferred, contained, parts' score)``. The parts'
    score (with ``scores``): ``(metric, the mean of its parts' values, how many)`` for a run the
    report scores by its parts' mean (a trial whose folds logged the metric, not the trial),
    else ``None``. The
    role given, or
    inferred within the runs of its study (a run whose parent is in another study is a root
    there), a root run
    with children being a sweep when it logged no value of the metric the report ranks by
    (``metric``, else, or where the study logged no value of it, the one the report chooses for
    the study), so both say the same role. The parent: the one recorded, or the run the report
    reads it under (``parent inferred``): a pool worker's run under the run open in the process
    it was started under, a reused worker's under the run its process had open
    (:class:`~greenprint._forest.RunForest`), a distributed job's rank under its
    node's meter and another node's meter under the job's head, as the report's rows read them.
    ``contained``: false exactly where the run's cost adds to the price tag's, outside every
    measurement above it (:attr:`~greenprint._forest.RunForest.adds_to_the_total`: a child given
    its parent's id on another host, a node adding to its job's head, a rank under a root rank
    0), true for any other run read under a parent (inside a reading above it: a nested run,
    a rank under its node's meter, a rank its job linked under its rank 0 inside a sweep's
    process tree), as the report's rows say; for a root, the one recorded.
    """
    from greenprint._exceptions import AnalysisError
    from greenprint._forest import RunForest
    from greenprint._metric_choice import pick_metric
    from greenprint._study_roles import resolve_roles

    by_study: dict[str, list[RunRecord]] = {}
    for record in records:
        by_study.setdefault(record.study, []).append(record)
    resolved: dict[
        str, tuple[str, bool, str | None, bool, bool | None, tuple[str, float, int] | None]
    ] = {}
    for study, runs in by_study.items():
        forest = RunForest.build(runs)  # once: the choice of metric reads its roles too
        try:
            ranked = pick_metric(runs, metric, study, forest)[0]
        except AnalysisError:  # the study logged no value of it: its report cannot rank by it
            ranked = pick_metric(runs, None, study, forest)[0]
        read = resolve_roles(forest, metric=ranked)
        by_parts = parts_scores(read, ranked) if scores else {}
        adding = forest.adds_to_the_total
        for pos, (run, role, inferred, parent) in enumerate(
            zip(forest.runs, read.roles, read.inferred, forest.parents, strict=True)
        ):
            # the parent the report reads it under: a job's rank under its node's meter (its
            # cost inside it), another node's meter under the job's head (its cost adding)
            read_under = run.parent_id if parent is None else forest.runs[parent].id
            contained = run.contained
            if parent is not None and adding[pos]:  # its cost adds to the price tag's
                contained = False
            elif parent is not None:
                # inside a reading above it, as the report's row says: a nested run (a fold
                # recorded in a joblib worker, which recorded none), a rank inside its node
                # meter's reading, or one its job linked under its training's rank 0 inside a
                # sweep's process tree (in the sweep's reading)
                contained = True
            resolved[run.id] = (
                role,
                inferred,
                read_under,
                read_under != run.parent_id,
                contained,
                by_parts.get(pos),
            )
    return resolved


def parts_scores(read: Any, metric: str | None) -> dict[int, tuple[str, float, int]]:
    """Positions of the runs the report scores by their parts' mean and logged no ``metric``.

    Position -> ``(metric, the mean, the number of parts' scores in it)``, as
    :func:`greenprint.analysis.study_trials` scores them (a trial whose folds logged the
    metric; a failed trial gets none). A run that logged the metric itself shows its own
    value, as every other run. A final run that logged nothing has its finished parts' mean of
    the first held-out metric they logged (``test_accuracy``), as the report states it.
    """
    import math

    from greenprint._exceptions import AnalysisError, ConfigError
    from greenprint._prediction import is_reserved_metric

    if metric is None:
        return {}
    from greenprint.analysis._roles import study_trials
    from greenprint.report._build import held_out_of_parts

    try:
        scores = study_trials(read, metric=metric).scores
    except (AnalysisError, ConfigError):  # an infinite score: the report refuses the study
        return {}
    runs = read.forest.runs
    found = {
        pos: (metric, score.score, score.parts)
        for pos, score in enumerate(scores)
        if score.source == "parts" and runs[pos].metric(metric) is None
    }
    for pos in read.positions("final"):
        if pos not in found and not any(not is_reserved_metric(n) for n in runs[pos].metric_names):
            # a final run that logged nothing, scored by its finished parts on a held-out split
            # (greenprint run --role final -- python final.py, the script's own run scoring
            # it): their mean, as the report's sentence on the final model gives it
            kids = (runs[kid] for kid in read.forest.children[pos])
            if values := held_out_of_parts(kids, metric):
                name, held = next(iter(values.items()))
                found[pos] = (name, math.fsum(held) / len(held), len(held))
    return found


@click.command(
    name="set-role", short_help="Give runs that have ended a role (baseline, final, part...)."
)
@click.argument("role", required=False, default=None, metavar="ROLE")
@click.argument("run_ids", nargs=-1, type=TEXT, metavar="RUN_ID...")
@click.option(
    "--part-of",
    "part_of",
    type=TEXT,
    default=None,
    metavar="RUN_ID",
    help="Make the runs parts of this run, measured apart (their cost added to it once).",
)
@ledger_option
def set_role_command(
    role: str | None, run_ids: tuple[str, ...], part_of: str | None, ledger: str | None
) -> None:
    """Give runs that have ended a ROLE afterwards, without running them again.

    ROLE is one of trial, part, baseline, final, learning-curve, sweep, greener; RUN_ID a full
    id or a unique prefix of 4+ characters (from `ledger ls`). For the runs a report's notes
    name as read one way that may be another: `set-role baseline 3f2a` for a baseline read as a
    trial; `set-role part 9c1e --part-of 7b0d` for the failed attempt of a configuration that
    was run again (one trial, not two).

    A part never makes the run it is given to a sweep; where that run reads otherwise
    afterwards (its mean of its parts' takes the new part's score) a second line says how.
    Every run is checked before any is written: on bad input (an unknown role or run, a run
    still running, a part of another study's run or of itself, a part holding runs read as
    trials: they would read as its parts) nothing changes.
    """
    role = _check_arguments(role, run_ids)  # before the ledger is looked for
    with open_ledger(ledger) as led:
        records = [led.run(run_id) for run_id in run_ids]
        was = {record.id: record.role for record in records}
        studies = _StudyRoles(led)  # each study read once, for both of these
        if role == "part":
            _refuse_trials_inside(led, records, studies)
        read = _inferred_roles(studies, [r for r in records if r.role is None])
        # the run they become parts of, as its report reads it before and after (its score
        # may take theirs: the mean of its parts')
        parent = led.run(part_of) if part_of is not None and role == "part" else None
        parent_was = _read_of(led, parent) if parent is not None else None
        for now in led.set_role(role, *(record.id for record in records), part_of=part_of):
            under = f", part of run {now.parent_id[:8]}" if part_of and now.parent_id else ""
            before = was[now.id] or (
                f"(none given, read as {read[now.id]})" if now.id in read else "(none given)"
            )
            click.echo(
                f"run {now.id[:8]} {safe(now.name, limit=MAX_CELL)} (study "
                f"{safe(now.study, limit=MAX_CELL)}): role {before} -> {now.role}{under}"
            )
        if parent is not None and parent_was is not None:
            if said := _parent_read(parent, parent_was, _read_of(led, parent)):
                click.echo(said)


def _check_arguments(role: str | None, run_ids: tuple[str, ...]) -> str:
    """``role``, checked with the runs given, else ConfigError (one line: exit status 2).

    A role forgotten (``set-role 2236``: the run id where the role goes) names the missing
    role and the roles, not click's "Missing argument 'RUN_ID...'"; a role typed wrong names
    the nearest role and the roles (:func:`check_role`).

    Raises:
        ConfigError: no role, an unknown role, or no run given.
    """
    from greenprint._records import RUN_ROLES
    from greenprint._suggest import nearest

    roles = ", ".join(RUN_ROLES)
    if role is None:
        raise ConfigError(
            f"missing the run role and the runs: greenprint ledger set-role ROLE RUN_ID...; "
            f"roles: {roles}"
        )
    if not run_ids and role not in RUN_ROLES and not nearest(role, RUN_ROLES):
        # the run id is where the role goes: the role was forgotten
        raise ConfigError(
            f"missing the run role before run {safe(role, limit=MAX_CELL)!r}: greenprint "
            f"ledger set-role ROLE {safe(role, limit=MAX_CELL)}; roles: {roles}"
        )
    check_role(role)  # a role typed wrong, with the nearest role
    if not run_ids:
        raise ConfigError(
            f"no run given role {role!r}: greenprint ledger set-role {role} RUN_ID... "
            "(run ids from greenprint ledger ls)"
        )
    return role


_Read = tuple[str, bool, "tuple[str, float, int] | None"]


def _read_of(led: Any, run: RunRecord) -> _Read:
    """``run``'s role, whether inferred, and its parts' score, as its study's report reads it."""
    runs = led._read(study=run.study, points="score")  # the points a report reads
    role, inferred, *_, parts = roles_as_read(runs, None, scores=True)[run.id]
    return role, inferred, parts


def _parent_read(run: RunRecord, was: _Read, now: _Read) -> str | None:
    """A line on how ``run`` reads now that it has new parts, if not as before (else ``None``).

    "run 97beb44b lr=0.2 (study cv): still read as trial; its accuracy, the mean of its
    parts', 0.8222 (3 parts) -> 0.8069 (4 parts)": a part of another configuration that
    logged the metric counts in a trial's mean of its parts'.
    """
    if was == now:
        return None
    (role_was, _, score_was), (role, inferred, score) = was, now
    how = "read as" if inferred else "role"
    text = (
        f"run {run.id[:8]} {safe(run.name, limit=MAX_CELL)} (study "
        f"{safe(run.study, limit=MAX_CELL)}): "
    )
    text += f"still {how} {role}" if role == role_was else f"{how} {role_was} -> {role}"
    if score != score_was and score is not None:
        metric, value, parts = score
        old = f"{score_was[1]:.4g} ({count_of(score_was[2], 'part')})" if score_was else "none"
        text += (
            f"; its {safe(metric, limit=MAX_CELL)}, the mean of its parts', {old} -> "
            f"{value:.4g} ({count_of(parts, 'part')})"
        )
    return text


class _StudyRoles:
    """The roles a report infers in each study, each study read from the ledger at most once.

    Read as ``greenprint report`` reads the study with no metric named (the metric it picks
    may read a top-level run with children otherwise: a sweep or a trial).
    """

    def __init__(self, led: Any) -> None:
        self._led = led
        self._read: dict[str, Any] = {}

    def of(self, study: str) -> Any:
        """``resolve_roles`` of the runs of ``study`` (a :class:`StudyRoles`)."""
        if study not in self._read:
            from greenprint._study_roles import resolve_roles

            self._read[study] = resolve_roles(self._led._read(study=study, points="score"))
        return self._read[study]


def _inferred_roles(studies: _StudyRoles, records: Sequence[RunRecord]) -> dict[str, str]:
    """The role a report infers for each of ``records`` (runs given none), by run id.

    ``set-role`` says what a run was read as: "role none given -> baseline" did not say it was
    a trial.
    """
    found: dict[str, str] = {}
    for record in records:
        resolved = studies.of(record.study)
        if record.id in resolved.forest.index:
            found[record.id] = resolved.role_of(record.id)
    return found


def _refuse_trials_inside(led: Any, records: Sequence[RunRecord], studies: _StudyRoles) -> None:
    """Refuse to make a part of a run that holds runs its study reads as trials.

    A part's runs are its parts: a search's sweep made a part (the earlier attempt of a search
    run again) would take its trials out of the trials, with nothing said, and a parent given
    cannot be taken back. Made a trial first (its runs then read as its parts, as the command
    says), it can be made a part.

    Raises:
        ConfigError: such a run, naming a few of the trials inside it.
    """
    for record in records:
        if not led.runs(study=record.study, parent_id=record.id):
            continue  # no run inside it: nothing else is read otherwise
        resolved = studies.of(record.study)
        forest = resolved.forest
        inside, stack = [], list(forest.children[forest.index[record.id]])
        while stack:
            pos = stack.pop()
            if resolved.roles[pos] == "trial":
                inside.append(forest.runs[pos].id[:8])
            stack.extend(forest.children[pos])
        if inside:
            shown = ", ".join(sorted(inside)[:3]) + (", ..." if len(inside) > 3 else "")
            raise ConfigError(
                f"run {record.id[:8]} ({safe(record.name, limit=MAX_CELL)}) holds "
                f"{count_of(len(inside), 'run')} read as trials ({shown}): as a part, they "
                "would read as its parts, no longer trials; if they are its parts, give it "
                f"role trial first (greenprint ledger set-role trial {record.id[:8]})"
            )
