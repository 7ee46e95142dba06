"""``greenprint ledger``: list, show, export runs; give them roles afterwards; merge ledgers.

``ls``, ``show`` and ``export`` never create or change a ledger; ``set-role`` writes only the
roles (and parents) of the runs it is given; ``merge`` writes only its OUT. ``ls`` and
``merge`` are here; ``show`` (:mod:`._ledger_show`), ``export`` (:mod:`._ledger_export`) and
``set-role`` (:mod:`._ledger_roles`) in modules of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from greenprint._format import count_of, known_duration
from greenprint._gc import gc_paused_call
from greenprint._records import RUN_STATUSES, RunRecord
from greenprint.cli._cells import (
    aligned_table,
    clock_zone,
    duration_text,
    emissions_text,
    energy_text,
    json_text,
    local_time,
    name_cell,
    open_ledger,
    safe,
    zoned_time,
)
from greenprint.cli._common import Choice, ledger_option, study_option
from greenprint.cli._ledger_export import export_command
from greenprint.cli._ledger_roles import roles_as_read, set_role_command
from greenprint.cli._ledger_show import show_command

__all__ = ["command"]


@click.group(name="ledger")
def command() -> None:
    """List, show and export the runs in a ledger; give runs roles; merge ledgers into one."""


@command.command(
    name="ls", short_help="List runs: cost, status and score (--tree: nested, with roles)."
)
@ledger_option
@study_option
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=Choice(RUN_STATUSES),
    help="Only runs with this status (repeatable) [default: every status].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--tree",
    is_flag=True,
    help="List each run under the run its study's report reads it under (folds under their "
    "trial, trials under their sweep), with ROLE: the role the report gives it (trial, part, "
    "sweep, baseline...; * where inferred, not given).",
)
@gc_paused_call
def ls_command(
    ledger: str | None, study: str | None, statuses: tuple[str, ...], as_json: bool, tree: bool
) -> None:
    """List runs: id, study, name, status, start, duration, energy, CO2-eq, main metric.

    The table writes energy, CO2-eq and duration as the report does (12.3 Wh, 4.7 g, 1m 35s),
    and START on the local clock its header names (START (UTC+05:30)); --json gives the raw
    numbers (energy_kwh in kWh, emissions_kg in kg, started_at in s since the epoch) for
    scripts. The metric is the one the study's report ranks by (greenprint report's choice),
    where the run logged it (else the run's first). --tree nests the runs and adds their roles
    (--json: depth, role, role_inferred and contained). STATUS is each run's own; a report reads a
    distributed job with its job's status, which ledger show gives beside the run's.
    """
    from greenprint._run_fallback import waiting

    with open_ledger(ledger) as led:
        # the runs shown, each metric's points a score is read from (its last value, as the
        # report reads it); the rest of their studies read only to choose a metric that a run
        # shown must choose between (:func:`_study_metrics`)
        records = led._read(study=study, status=statuses or None, points="score")
        metrics = _study_metrics(led, records, statuses=statuses)
        url = led.url
        roles = _tree_roles(led, records, statuses=statuses) if tree else {}
        note = waiting(led)
    if note is not None:  # runs its ledger could not take, in its fallback file
        click.echo(note, err=True)
    listed: list[tuple[int, RunRecord]] = [(0, r) for r in records]
    if tree:
        from greenprint.cli._ledger_tree import depth_first

        parents = {run_id: read[2] for run_id, read in roles.items()}
        listed = depth_first([r.id for r in records], records, parents)
    if as_json:
        items = []
        for depth, r in listed:
            main = _main_metric(r, metrics.get(r.study))
            items.append(
                {
                    "id": r.id,
                    "study": r.study,
                    "name": r.name,
                    "status": r.status,
                    "parent_id": r.parent_id,
                    "started_at": r.started_at,
                    "duration_s": known_duration(r.duration_s),  # null: none recorded
                    "energy_kwh": r.energy_kwh if r.energy_recorded else None,  # null: no
                    "emissions_kg": r.emissions_kg if r.energy_recorded else None,  # meter
                    "main_metric": {"name": main[0], "value": main[1]} if main else None,
                }
            )
            if tree:
                role, inferred = roles[r.id][:2]
                items[-1].update(depth=depth, role=role, role_inferred=inferred)
                # false where the table marks its cost "+" (it adds to the run above it), as
                # `ledger export`'s column
                items[-1]["contained"] = roles[r.id][4]
                if main is None and (parts := roles[r.id][5]) is not None:
                    # the score the report gives it: its parts' mean (e.g. folds)
                    items[-1]["main_metric"] = {
                        "name": parts[0],
                        "value": parts[1],
                        "source": "parts",
                        "parts": parts[2],
                    }
        click.echo(json_text(items))
        return
    if not records:  # of the filters given: the ledger may hold other runs
        which = f"{' or '.join(statuses)} runs" if statuses else "runs"
        where = f" of study {safe(study)!r}" if study is not None else ""
        click.echo(f"no {which}{where} in {safe(url)}", err=True)
        return
    # START on the local clock, which the header names (START (UTC+05:30)); runs on either side
    # of a daylight-saving change are on two: each start then says its own, as `show` does
    zones = {clock_zone(r.started_at) for r in records if local_time(r.started_at) != "-"}
    when = local_time if len(zones) <= 1 else zoned_time
    rows = []
    adding = False  # a run listed under another whose cost adds to it (--tree)
    for depth, r in listed:
        main = _main_metric(r, metrics.get(r.study))
        adds = tree and depth > 0 and roles[r.id][4] is False
        adding = adding or adds
        rows.append(
            [
                safe(r.id[:8]),
                name_cell(r.study),
                "  " * depth + name_cell(r.name),
                *([_role_cell(*roles[r.id][:2])] if tree else []),
                safe(r.status),
                when(r.started_at),
                duration_text(r.duration_s),
                # "-": no energy meter (meters=[]), unknown, never "0 mWh"
                ("+" if adds else "") + energy_text(r.energy_kwh if r.energy_recorded else None),
                ("+" if adds else "")
                + emissions_text(r.emissions_kg if r.energy_recorded else None),
                _metric_cell(main, roles[r.id][5] if tree else None),
            ]
        )
    start = f"START ({zones.pop()})" if len(zones) == 1 else "START"
    header = ["ID", "STUDY", "NAME", "STATUS", start, "DURATION", "ENERGY", "CO2-EQ", "METRIC"]
    if tree:
        header.insert(3, "ROLE")
    click.echo(aligned_table(header, rows))
    if tree and any(roles[r.id][1] for r in records):
        click.echo(
            "* inferred (no role given), as `greenprint report` reads the study; "
            "give one with `greenprint ledger set-role ROLE RUN_ID...`"
        )
    if adding:
        click.echo(
            "+ adds to the run above it: it ran outside that run's measurement (an earlier "
            "attempt it resumed, a part given with set-role --part-of, a node on another "
            "host); a run's other parts are inside its figures"
        )
    if any(r.status == "running" for _, r in listed):
        # a running run's row is what it last flushed (1.0 s into a run 3 s old): not its end
        click.echo(
            "running: DURATION, ENERGY, CO2-EQ and METRIC as of the run's last flush to the "
            "ledger (every flush interval, 10 s by default); they grow until it ends"
        )


def _metric_cell(main: tuple[str, float] | None, parts: tuple[str, float, int] | None) -> str:
    """The METRIC cell: the run's own value, else (--tree) its parts' mean, said so."""
    if main is None and parts is not None and parts[1] == parts[1]:  # a mean, not NaN
        from greenprint._format import count_of

        name, value, count = parts
        return f"{name_cell(name)}={value:.4g} (mean of {count_of(count, 'part')})"
    return f"{name_cell(main[0])}={main[1]:.4g}" if main else "-"


def _role_cell(role: str, inferred: bool) -> str:
    """A run's role in ``ledger ls --tree``: ``trial*`` when inferred."""
    return safe(role) + ("*" if inferred else "")


def _tree_roles(
    led: Any, shown: Sequence[RunRecord], *, statuses: Sequence[str]
) -> dict[str, tuple[str, bool, str | None, bool, bool | None, tuple[str, float, int] | None]]:
    """``roles_as_read`` of the runs shown, each read within its whole study, as a report does.

    Under a status filter the rest of each study is read too: a fold is a part because of the
    trial above it, listed or not. A study the report cannot read (parents on a cycle, in a
    hand-edited ledger) lists its runs under their recorded parents with their given roles.
    """
    from greenprint._exceptions import AnalysisError

    by_study: dict[str, list[RunRecord]] = {}
    for r in shown:
        by_study.setdefault(r.study, []).append(r)
    found: dict[
        str, tuple[str, bool, str | None, bool, bool | None, tuple[str, float, int] | None]
    ] = {}
    for name, runs in by_study.items():
        if statuses:
            runs = led._read(study=name, points="score")
        try:
            found.update(roles_as_read(runs, None, scores=True))
        except AnalysisError:
            found.update(
                (r.id, (r.role or "-", False, r.parent_id, False, r.contained, None)) for r in runs
            )
    return found


def _main_metric(record: RunRecord, prefer: str | None = None) -> tuple[str, float] | None:
    """``prefer`` (its study's metric) when the run logged it, else its first-logged score.

    Its first-logged held-out score (``test_loss``, ``eval_accuracy``), else its first score,
    before the bookkeeping a framework logs (a Hugging Face training's ``train_runtime``, first
    logged by a final model retrained and scored on a test split: its METRIC cell read
    ``train_runtime=0.0603``), which only a run that logged nothing else shows.
    """
    from greenprint._metric_choice import is_held_out
    from greenprint._metric_names import is_bookkeeping_metric
    from greenprint._prediction import is_reserved_metric

    names = [n for n in record.metric_names if not is_reserved_metric(n)]  # not predictions
    if not names:
        return None
    scores = [n for n in names if not is_bookkeeping_metric(n)] or names
    held_out = [n for n in scores if is_held_out(n)]
    name = prefer if prefer in names else (held_out or scores)[0]
    value = record.metric(name)
    return (name, value) if value is not None else None


def _study_metrics(
    led: Any, shown: Sequence[RunRecord], *, statuses: Sequence[str] = ()
) -> dict[str, str | None]:
    """The metric each study's report ranks by (``greenprint report``'s choice), where it matters.

    Only for a study with a run shown that logged two metrics or more (predictions aside): a
    run that logged one shows it whatever the study's metric, so no other study is read again.
    The choice is the report's own (:func:`greenprint._metric_choice.pick_metric`, pure Python:
    no numpy), over every run of the study as the report reads them (of each metric, the points
    a score is read from): ``shown``, and under a status filter the study's other runs, read
    once (those of the other statuses; before, the whole study was read again: ``ledger ls
    --study S --status finished`` read most of the study twice). A study the report cannot
    read (a parent cycle) has the metric most of its runs logged.

    Args:
        led: the open ledger.
        shown: the runs listed, read with their score points, in the ledger's order.
        statuses: the status filter ``shown`` was read with; empty: ``shown`` holds every run
            of their studies.
    """
    from greenprint._prediction import is_reserved_metric

    wanted: list[str] = []
    for r in shown:
        if r.study not in wanted and sum(not is_reserved_metric(n) for n in r.metric_names) > 1:
            wanted.append(r.study)
    if not wanted:
        return {}
    from greenprint._exceptions import GreenprintError
    from greenprint._metric_choice import pick_metric

    chosen: dict[str, str | None] = {}
    for study in wanted:
        runs = [r for r in shown if r.study == study]
        if statuses:
            # a run stored as running reads running or lost by its heartbeat's age, which may
            # change between the two reads: read again whichever was shown, and kept once
            rest = (set(RUN_STATUSES) - set(statuses)) | {"running", "lost"}
            seen = {r.id for r in runs}
            runs += [
                r
                for r in led._read(study=study, status=sorted(rest), points="score")
                if r.id not in seen
            ]
            runs.sort(key=lambda r: (r.started_at, r.id))  # the ledger's order (Ledger.runs)
        try:
            chosen[study] = pick_metric(runs, None, study)[0]
        except GreenprintError:  # the report cannot read it: ls lists it all the same
            chosen[study] = _most_logged(runs)
    return chosen


def _most_logged(records: Sequence[RunRecord]) -> str | None:
    """The metric most of ``records`` logged, bookkeeping (``epoch``) only when nothing else."""
    from greenprint._metric_names import is_bookkeeping_metric
    from greenprint._prediction import is_reserved_metric

    counts: dict[str, int] = {}
    for r in records:
        for n in r.metric_names:
            if not is_reserved_metric(n):
                counts[n] = counts.get(n, 0) + 1
    scores = {n: c for n, c in counts.items() if not is_bookkeeping_metric(n)} or counts
    return max(scores, key=scores.__getitem__) if scores else None


@command.command(
    name="merge", short_help="Merge ledgers (per-node SQLite files, or URLs) into OUT."
)
@click.argument("out")
@click.argument("inputs", nargs=-1, required=True)
def merge_command(out: str, inputs: tuple[str, ...]) -> None:
    """Merge the ledgers INPUTS (per-node SQLite files, or URLs) into OUT (created if missing).

    Idempotent: runs already in OUT are left alone; a run still running in one ledger and
    finished in another keeps its finished state. Any other difference between two copies of a
    run is a conflict: it is named, exit status 2, and nothing is written. INPUTS are not
    modified.

    An input may be a file greenprint saved runs in when their ledger could not take them
    (greenprint-unsaved-*.db): the warning that named it, and ledger ls or report of that
    ledger, give the merge command to paste.
    """
    from greenprint.ledger import Ledger
    from greenprint.ledger._merge import read_inputs, write_merged
    from greenprint.ledger._target import resolve_target

    target = resolve_target(out)
    # every input read (and checked against the others) before OUT is opened: an input that
    # cannot be merged leaves OUT as it was, also an empty PostgreSQL database, in which
    # opening OUT makes greenprint's tables
    merged = read_inputs(target, inputs)
    path = target.path
    fresh = path is not None and not path.exists()
    try:
        led = Ledger(out)
        try:
            summary = write_merged(led, merged)
            url = led.url
        finally:
            led.close()
    except BaseException:
        if fresh and path is not None:  # a failed merge leaves no empty OUT behind
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
        raise
    kept = (
        f", {summary.roles_kept} of them with the role given here kept"
        if summary.roles_kept
        else ""
    )
    where = "an input" if len(inputs) == 1 else "the inputs"
    taken = (
        f" ({summary.roles_taken} to the role given later in {where})"
        if summary.roles_taken
        else ""
    )
    click.echo(
        f"merged {count_of(len(inputs), 'ledger')} into {safe(url)}: "
        f"{count_of(summary.added, 'run')} added, "
        f"{summary.updated} updated{taken}, {summary.unchanged} already there{kept} "
        f"({count_of(summary.metrics, 'metric point')}, "
        f"{count_of(summary.samples, 'power sample')} written)"
    )


for _sub in (show_command, export_command, set_role_command):
    command.add_command(_sub)
