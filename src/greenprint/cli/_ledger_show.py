"""``greenprint ledger show``: everything the ledger knows about one run, as the report reads it."""

from __future__ import annotations

from typing import Any

import click

from greenprint._format import format_emissions, format_step
from greenprint._provenance import FPO_ASSUMPTIONS_KEY, is_fpo_lower_bound
from greenprint._pruned import pruned_at
from greenprint._records import RunRecord
from greenprint.cli._cells import (
    duration_text,
    energy_text,
    fpo_text,
    json_text,
    num_text,
    open_ledger,
    rank_text,
    record_dict,
    safe,
    unmetered,
    zoned_time,
)
from greenprint.cli._common import TEXT, applied_intensity, ledger_option

__all__ = ["show_command"]


@click.command(
    name="show", short_help="Show everything about one run (its id, or 4+ characters of it)."
)
@click.argument("run_id", type=TEXT)
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
def show_command(run_id: str, ledger: str | None, as_json: bool) -> None:
    """Show everything about one run (RUN_ID: full id or a unique prefix of 4+ characters).

    Energy, CO2-eq and FPO are written as the report writes them (12.3 Wh, 4.7 g CO2-eq,
    3.1 PFPO); --json gives the raw numbers (kWh, kg, FPO) for scripts. A run of a
    distributed job whose job the report reads with another status says so beside its own
    (finished (its job exp7 reads failed: ... failed)); a pruned run, where and by what it was
    stopped (pruned (at step 7, by Optuna MedianPruner)).
    """
    with open_ledger(ledger) as led:
        record = led.run(run_id)
        power = led.samples(record.id)
        job_read = None if as_json else _job_reading(led, record)
    if as_json:
        out = record_dict(record)
        out["sample_count"] = len(power)
        click.echo(json_text(out))
        return
    lines: list[str] = []

    def put(label: str, value: Any) -> None:
        lines.append(f"  {safe(label):<23} {safe(value)}")

    def section(title: str) -> None:
        lines.append(safe(title))

    section(f"run {record.id}")
    put("name", record.name)
    put("study", record.study)
    put(
        "status",
        record.status
        + (f" ({record.error})" if record.error else "")
        + (f" ({pruned})" if (pruned := _pruned_text(record)) else "")
        + (f" ({job_read})" if job_read else ""),
    )
    put("role", record.role or "- (none given: a report infers it; ledger set-role gives it)")
    put(
        "parent",
        (record.parent_id or "-")
        + (" (measured apart: its cost adds)" if record.contained is False else ""),
    )
    put("started", zoned_time(record.started_at))
    put("ended", zoned_time(record.ended_at))
    put("heartbeat", zoned_time(record.heartbeat_at))
    known = duration_text(record.duration_s)
    # none recorded: "-" alone (a record without one holds 0.0), not "- (0.000 s)"
    put("duration", known if known == "-" else f"{known} ({record.duration_s:.3f} s)")
    section("where")
    put("host", record.host or "-")
    if record.job_id is not None:
        meter = "meters its node" if record.node_meter else "this process only"
        ranks = f"node {rank_text(record.node_rank)}, local rank {rank_text(record.local_rank)}"
        put("job", f"{record.job_id} ({ranks}; {meter})")
    if record.contained is False:
        put("contained", "no: outside its parent's measurement (its cost adds to the parent's)")
    put("command", record.command or "-")
    dirty = "" if record.git_dirty is None else (" (dirty)" if record.git_dirty else " (clean)")
    put("git", (record.git_commit or "-") + dirty)
    put("python", record.python_version or "-")
    put("greenprint", record.greenprint_version or "-")
    put("torch", record.torch_version or "-")
    for key, value in record.hardware.items():
        if key == "meters" and isinstance(value, list):
            put_meters(put, value)
        else:
            put(f"hardware.{key}", "-" if value is None else value)
    section("cost")
    put("scope", record.scope)
    for component in ("cpu", "gpu", "ram"):  # as the report writes them; --json has kWh
        put(f"energy {component}", energy_text(getattr(record, f"energy_{component}_kwh")))
    unknown = unmetered(record)  # no energy meter (meters=[]): unknown, never "0 mWh"
    put("energy", "unknown (no energy meter)" if unknown else energy_text(record.energy_kwh))
    put("machine energy", energy_text(unknown.get("machine_energy_kwh", record.machine_energy_kwh)))
    put("PUE", num_text(record.pue))
    g_per_kwh, intensity_source = applied_intensity(
        energy_kwh=record.energy_kwh,
        pue=record.pue,
        emissions_kg=record.emissions_kg,
        recorded_g_per_kwh=record.intensity_g_per_kwh,
        source=record.intensity_source,
    )
    source = f" [{intensity_source}]" if intensity_source else ""
    shown = "-" if g_per_kwh is None else f"{num_text(g_per_kwh)} g CO2-eq/kWh"
    put("intensity", shown + source)
    put(
        "CO2-eq",
        "unknown (no energy meter)"
        if unknown
        else "-"
        if record.emissions_kg is None
        else format_emissions(record.emissions_kg),
    )
    fpo_shown = fpo_text(record.fpo)
    said = []  # what the figure is: a lower bound, counted assuming an FFT library...
    if record.fpo is not None and is_fpo_lower_bound(record.provenance):
        fpo_shown = f"at least {fpo_shown}"
        said.append("a lower bound: see provenance")
    if record.fpo is not None and (assumed := record.provenance.get(FPO_ASSUMPTIONS_KEY)):
        said.append(f"counted assuming {assumed}")
    if said:
        fpo_shown += f" ({'; '.join(said)})"
    put("FPO", fpo_shown)
    put("parameters", "-" if record.param_count is None else f"{record.param_count:,}")
    put("dataset size", "-" if record.dataset_size is None else f"{record.dataset_size:,}")
    put("power samples", len(power))
    if record.provenance:
        section("provenance")
        for key, value in record.provenance.items():
            put(key, value)
    if record.params:
        section("params")
        for key, value in record.params.items():
            put(key, value)
    if record.metrics:
        section("metrics (points, last, min, max)")
        for name in record.metric_names:
            count = sum(1 for p in record.metrics if p.name == name)
            values = [record.metric(name, mode=m) for m in ("last", "min", "max")]
            put(name, f"{count}  " + "  ".join(num_text(v) for v in values))
    click.echo("\n".join(lines))


def put_meters(put: Any, meters: list[Any]) -> None:
    """One line per meter detected at the start: usable or not, and why."""
    if not meters:
        put("hardware.meters", "-")
    for meter in meters:
        if not isinstance(meter, dict):
            put("hardware.meters", meter)
            continue
        state = "usable" if meter.get("usable") else "not usable"
        reason = f": {meter['reason']}" if meter.get("reason") else ""
        put(f"meter {meter.get('name', '?')}", state + reason)
        if meter.get("fix") and not meter.get("usable"):
            put("", f"fix: {meter['fix']}")


def _pruned_text(record: RunRecord) -> str | None:
    """Where and by what a pruned run was stopped, from its provenance (docs/pruning.md).

    ``at step 7, by Optuna MedianPruner``; a step it did not record is its last logged one
    (``at step 7, its last logged step``); a recorded unit is named
    (``at 200 resources of 800, by HalvingGridSearchCV``). ``None`` for a run that was not
    pruned, or a pruned one that recorded and logged no step and no stopper.
    """
    if record.status != "pruned":
        return None

    where = pruned_at(record)
    said = []
    if where.step is not None:
        step = format_step(where.step)
        at = f"at {step} {where.unit}" if where.unit else f"at step {step}"
        if where.full_steps is not None:
            at += f" of {format_step(where.full_steps)}"
        said.append(at if where.recorded else f"{at}, its last logged step")
    if where.by:
        said.append(f"by {where.by}")
    return ", ".join(said) or None


#: How runs that ended so are said in ``show``'s job status, one and several (else the status).
_ENDED_AS = {
    "running": ("is still running", "are still running"),
    "lost": ("was lost", "were lost"),
    "pruned": ("was pruned", "were pruned"),
}


def _job_reading(led: Any, record: RunRecord) -> str | None:
    """How the report reads the job of a run of a distributed job, where not as the run ended.

    A report reads a job (a training over nodes) with its head's status, which is the job's:
    a head that finished while another node's run failed reads ``failed``
    (:attr:`~greenprint._forest.RunForest.job_statuses`). ``show`` of any run of that job
    whose own status differs says so, naming the runs that ended as the job reads
    (``its job exp7 reads failed: 'train-node-b' (1f0c2a9d, node 1) failed``); ``None`` for a
    run outside a job, or one that ended as its job reads. Reads the run's study (its runs,
    no metric points), as the report links its job.
    """
    if record.job_id is None:
        return None
    from greenprint._exceptions import AnalysisError
    from greenprint._forest import RunForest

    runs = led._read(study=record.study, points="score", metrics=())
    try:
        forest = RunForest.build(runs)
    except AnalysisError:  # parents in a cycle: the report says so; show shows the run
        return None
    at = forest.index.get(record.id)
    if at is None:  # pragma: no cover - the run was just read from this study
        return None

    def linked(pos: int) -> bool:
        """Whether the run at ``pos`` is linked to its parent by its job (a node or rank)."""
        parent = forest.parents[pos]
        return (
            parent is not None
            and forest.runs[parent].job_id == record.job_id
            and (forest.virtual[pos] or forest.kinds[pos] in ("peer", "remote"))
        )

    head = at
    while linked(head):
        head = forest.parents[head]  # type: ignore[assignment]  # linked: not None
    status = forest.column("status")[head]
    if status == record.status:
        return None
    training, stack = [], [head]  # the head and the runs its job links below it
    while stack:
        pos = stack.pop()
        training.append(pos)
        stack.extend(c for c in forest.children[pos] if linked(c))
    ended = sorted(
        (p for p in training if p != at and forest.runs[p].status == status),
        key=lambda p: (forest.runs[p].started_at, forest.runs[p].id),
    )
    named = []
    for pos in ended[:3]:
        run = forest.runs[pos]
        node = f"node {run.node_rank}" if run.node_rank is not None else f"host {run.host or '?'}"
        named.append(f"{run.name!r} ({run.id[:8]}, {node})")
    more = f" and {len(ended) - 3} more" if len(ended) > 3 else ""
    verb = _ENDED_AS.get(status, (status, status))[len(ended) > 1]
    why = f": {', '.join(named)}{more} {verb}" if named else ""
    return f"its job {record.job_id} reads {status}{why}"
