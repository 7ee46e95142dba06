"""``greenprint ledger``: list, show, export runs; give them roles afterwards; merge ledgers.

``ls``, ``show`` and ``export`` never create or change a ledger; ``set-role`` writes only the
roles (and parents) of the runs it is given; ``merge`` writes only its OUT.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from greenprint._exceptions import ConfigError
from greenprint._format import (
    count_of,
    format_duration,
    format_emissions,
    format_energy,
    format_fpo,
    json_safe,
)
from greenprint._provenance import FPO_ASSUMPTIONS_KEY, is_fpo_lower_bound
from greenprint._records import RUN_STATUSES, RunRecord
from greenprint._validate import FPO_MAX
from greenprint.cli._common import TEXT, applied_intensity, ledger_option, study_option

__all__ = ["command"]

_JSON_FIELDS = ("hardware", "env", "params", "provenance")
_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord))

#: Widest a name-like cell (study, name, metric) of ``ledger ls`` gets, in characters.
_MAX_CELL = 40
#: Characters escaped on the terminal besides the C0/C1 controls: line and paragraph separators
#: and the bidirectional overrides and isolates, which can reorder what a row shows.
_INVISIBLE = frozenset(
    "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: A CSV cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _open(ledger: str | None) -> Any:
    from greenprint.ledger import Ledger

    return Ledger(ledger, create=False)


# ---------------------------------------------------------------------------- formatting
def _safe(text: object, *, limit: int | None = None) -> str:
    r"""Text from a ledger as it may reach a terminal: one line, no control sequences.

    Control characters (``\n``, ``\r``, ``\x1b``...), line separators and bidirectional
    overrides are shown as escapes, so a run name cannot start a new row, move the cursor or
    colour the terminal. With ``limit``, text longer than ``limit`` characters is cut and ends
    with an ellipsis.
    """
    out = []
    for char in str(text):
        code = ord(char)
        if char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif char in _INVISIBLE:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    safe = "".join(out)
    if limit is not None and len(safe) > limit:
        safe = safe[: limit - 1] + "\u2026"
    return safe


def _cell(text: object) -> str:
    """A name-like cell of ``ledger ls``: escaped and at most :data:`_MAX_CELL` characters."""
    return _safe(text, limit=_MAX_CELL)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _energy(kwh: float | None) -> str:
    """An energy as the report writes it (``12.3 Wh``, ``0.873 mWh``); ``-`` when none."""
    return "-" if kwh is None else format_energy(kwh)


def _emissions(kg: float | None) -> str:
    """CO2-eq as the report writes it, without the unit's ``CO2-eq`` (the column says it)."""
    return "-" if kg is None else format_emissions(kg).removesuffix(" CO2-eq")


def _fpo_text(fpo: int | None) -> str:
    """An FPO as the report writes it (``3.1 PFPO``); one above the largest float as its digits.

    greenprint refuses to record such an FPO; one in a ledger was written by an older
    greenprint or by hand (``report`` names it and says how to repair it).
    """
    if fpo is None:
        return "unknown"  # not counted, as the report writes it
    if abs(fpo) > FPO_MAX:
        return f"an integer of {len(str(abs(fpo)))} digits (corrupt: above the largest float)"
    return format_fpo(fpo)


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def _put_meters(put: Any, meters: list[Any]) -> None:
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


def _when(timestamp: float | None) -> str:
    if timestamp is None or not math.isfinite(timestamp) or timestamp <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _when_zoned(timestamp: float | None) -> str:
    """``_when`` with the offset of the local clock then: ``2026-12-03 23:43:45 UTC+05:30``.

    A time read beside ``whatif``'s UTC hours then says which clock it is on.
    """
    when = _when(timestamp)
    if when == "-" or timestamp is None:
        return when
    return f"{when} {_zone(timestamp)}"


def _zone(timestamp: float) -> str:
    """The local clock's offset at ``timestamp`` (s since the epoch): ``UTC+05:30``, ``UTC``."""
    offset = time.localtime(timestamp).tm_gmtoff
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}" if offset else "UTC"


def _duration(seconds: float) -> str:
    """A duration (s) as the price tag and the report write it: ``0.04 s``, ``1m 35s``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    return format_duration(seconds)


def _main_metric(record: RunRecord, prefer: str | None = None) -> tuple[str, float] | None:
    """``prefer`` (its study's metric) when the run logged it, else its first-logged metric."""
    from greenprint._prediction import is_reserved_metric

    names = [n for n in record.metric_names if not is_reserved_metric(n)]  # not predictions
    if not names:
        return None
    name = prefer if prefer in names else names[0]
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


def _dump(value: Any) -> str:
    return json.dumps(json_safe(value), indent=2, allow_nan=False)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines)


def _record_dict(record: RunRecord) -> dict[str, Any]:
    out = dataclasses.asdict(record)
    out["metrics"] = [dataclasses.asdict(p) for p in record.metrics]
    return out


# ---------------------------------------------------------------------------- commands
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
    type=click.Choice(RUN_STATUSES),
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
    with _open(ledger) as led:
        # the runs shown, each metric's points a score is read from (its last value, as the
        # report reads it); the rest of their studies read only to choose a metric that a run
        # shown must choose between (:func:`_study_metrics`)
        records = led._read(study=study, status=statuses or None, points="score")
        metrics = _study_metrics(led, records, statuses=statuses)
        url = led.url
        roles = _tree_roles(led, records, statuses=statuses) if tree else {}
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
                    "duration_s": r.duration_s,
                    "energy_kwh": r.energy_kwh,
                    "emissions_kg": r.emissions_kg,
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
        click.echo(_dump(items))
        return
    if not records:
        click.echo(f"no runs in {_safe(url)}", err=True)
        return
    # START on the local clock, which the header names (START (UTC+05:30)); runs on either side
    # of a daylight-saving change are on two: each start then says its own, as `show` does
    zones = {_zone(r.started_at) for r in records if _when(r.started_at) != "-"}
    when = _when if len(zones) <= 1 else _when_zoned
    rows = []
    adding = False  # a run listed under another whose cost adds to it (--tree)
    for depth, r in listed:
        main = _main_metric(r, metrics.get(r.study))
        adds = tree and depth > 0 and roles[r.id][4] is False
        adding = adding or adds
        rows.append(
            [
                _safe(r.id[:8]),
                _cell(r.study),
                "  " * depth + _cell(r.name),
                *([_role_cell(*roles[r.id][:2])] if tree else []),
                _safe(r.status),
                when(r.started_at),
                _duration(r.duration_s),
                ("+" if adds else "") + _energy(r.energy_kwh),
                ("+" if adds else "") + _emissions(r.emissions_kg),
                _metric_cell(main, roles[r.id][5] if tree else None),
            ]
        )
    start = f"START ({zones.pop()})" if len(zones) == 1 else "START"
    header = ["ID", "STUDY", "NAME", "STATUS", start, "DURATION", "ENERGY", "CO2-EQ", "METRIC"]
    if tree:
        header.insert(3, "ROLE")
    click.echo(_table(header, rows))
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


def _metric_cell(main: tuple[str, float] | None, parts: tuple[str, float, int] | None) -> str:
    """The METRIC cell: the run's own value, else (--tree) its parts' mean, said so."""
    if main is None and parts is not None and parts[1] == parts[1]:  # a mean, not NaN
        from greenprint._format import count_of

        name, value, count = parts
        return f"{_cell(name)}={value:.4g} (mean of {count_of(count, 'part')})"
    return f"{_cell(main[0])}={main[1]:.4g}" if main else "-"


def _role_cell(role: str, inferred: bool) -> str:
    """A run's role in ``ledger ls --tree``: ``trial*`` when inferred."""
    return _safe(role) + ("*" if inferred else "")


def _tree_roles(
    led: Any, shown: Sequence[RunRecord], *, statuses: Sequence[str]
) -> dict[str, tuple[str, bool, str | None, bool, bool | None, tuple[str, float, int] | None]]:
    """``_roles`` of the runs shown, each read within its whole study (as the report reads it).

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
            found.update(_roles(runs, None, scores=True))
        except AnalysisError:
            found.update(
                (r.id, (r.role or "-", False, r.parent_id, False, r.contained, None)) for r in runs
            )
    return found


@command.command(
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
    (finished (its job exp7 reads failed: ... failed)).
    """
    with _open(ledger) as led:
        record = led.run(run_id)
        power = led.samples(record.id)
        job_read = None if as_json else _job_reading(led, record)
    if as_json:
        out = _record_dict(record)
        out["sample_count"] = len(power)
        click.echo(_dump(out))
        return
    lines: list[str] = []

    def put(label: str, value: Any) -> None:
        lines.append(f"  {_safe(label):<23} {_safe(value)}")

    def section(title: str) -> None:
        lines.append(_safe(title))

    section(f"run {record.id}")
    put("name", record.name)
    put("study", record.study)
    put(
        "status",
        record.status
        + (f" ({record.error})" if record.error else "")
        + (f" ({job_read})" if job_read else ""),
    )
    put("role", record.role or "- (none given: a report infers it; ledger set-role gives it)")
    put(
        "parent",
        (record.parent_id or "-")
        + (" (measured apart: its cost adds)" if record.contained is False else ""),
    )
    put("started", _when_zoned(record.started_at))
    put("ended", _when_zoned(record.ended_at))
    put("heartbeat", _when_zoned(record.heartbeat_at))
    put("duration", f"{_duration(record.duration_s)} ({record.duration_s:.3f} s)")
    section("where")
    put("host", record.host or "-")
    if record.job_id is not None:
        meter = "meters its node" if record.node_meter else "this process only"
        ranks = f"node {_rank(record.node_rank)}, local rank {_rank(record.local_rank)}"
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
            _put_meters(put, value)
        else:
            put(f"hardware.{key}", "-" if value is None else value)
    section("cost")
    put("scope", record.scope)
    for component in ("cpu", "gpu", "ram"):  # as the report writes them; --json has kWh
        put(f"energy {component}", _energy(getattr(record, f"energy_{component}_kwh")))
    put("energy", _energy(record.energy_kwh))
    put("machine energy", _energy(record.machine_energy_kwh))
    put("PUE", _num(record.pue))
    g_per_kwh, intensity_source = applied_intensity(
        energy_kwh=record.energy_kwh,
        pue=record.pue,
        emissions_kg=record.emissions_kg,
        recorded_g_per_kwh=record.intensity_g_per_kwh,
        source=record.intensity_source,
    )
    source = f" [{intensity_source}]" if intensity_source else ""
    shown = "-" if g_per_kwh is None else f"{_num(g_per_kwh)} g CO2-eq/kWh"
    put("intensity", shown + source)
    put("CO2-eq", "-" if record.emissions_kg is None else format_emissions(record.emissions_kg))
    fpo_shown = _fpo_text(record.fpo)
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
            put(name, f"{count}  " + "  ".join(_num(v) for v in values))
    click.echo("\n".join(lines))


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


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(json_safe(value))
    else:
        out[prefix] = value


def _roles(
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
    0), true for a job's run inside a reading above it (a rank under its node's meter, a rank
    its job linked under its rank 0 inside a sweep's process tree), else the one recorded.
    """
    from greenprint._exceptions import AnalysisError
    from greenprint._metric_choice import pick_metric
    from greenprint._study_roles import resolve_roles

    by_study: dict[str, list[RunRecord]] = {}
    for record in records:
        by_study.setdefault(record.study, []).append(record)
    resolved: dict[
        str, tuple[str, bool, str | None, bool, bool | None, tuple[str, float, int] | None]
    ] = {}
    for study, runs in by_study.items():
        try:
            ranked = pick_metric(runs, metric, study)[0]
        except AnalysisError:  # the study logged no value of it: its report cannot rank by it
            ranked = pick_metric(runs, None, study)[0]
        read = resolve_roles(runs, metric=ranked)
        forest = read.forest
        by_parts = _parts_scores(read, ranked) if scores else {}
        kinds = forest.kinds or ("nested",) * len(forest.runs)
        adding = forest.adds_to_the_total
        for pos, (run, role, inferred, parent, kind) in enumerate(
            zip(forest.runs, read.roles, read.inferred, forest.parents, kinds, strict=True)
        ):
            # the parent the report reads it under: a job's rank under its node's meter (its
            # cost inside it), another node's meter under the job's head (its cost adding)
            read_under = run.parent_id if parent is None else forest.runs[parent].id
            contained = run.contained
            if parent is not None and adding[pos]:  # its cost adds to the price tag's
                contained = False
            elif parent is not None and (run.job_id or kind == "remote"):
                # a rank inside its node meter's reading, or one its job linked under its
                # training's rank 0 inside a sweep's process tree (in the sweep's reading)
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


def _parts_scores(read: Any, metric: str | None) -> dict[int, tuple[str, float, int]]:
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


def _priced_at(record: RunRecord) -> tuple[float | None, str]:
    """The intensity an export gives for ``record``, g CO2-eq/kWh, and its source.

    What the run's CO2-eq was computed at, as ``ledger show``, ``whatif`` and the report's
    run rows give it: for a run priced by an hourly file (which records the file's plain
    mean), the energy-weighted mean over the run, its source ``"mean over the run; csv:..."``,
    so that ``energy_kwh * pue * intensity_g_per_kwh / 1000`` is the row's ``emissions_kg``;
    a constant intensity as recorded. Where the setting came from stays in
    ``provenance.intensity``.
    """
    return applied_intensity(
        energy_kwh=record.energy_kwh,
        pue=record.pue,
        emissions_kg=record.emissions_kg,
        recorded_g_per_kwh=record.intensity_g_per_kwh,
        source=record.intensity_source,
    )


def _csv(records: Sequence[RunRecord], metric: str | None) -> str:
    base = [
        f.name for f in dataclasses.fields(RunRecord) if f.name not in ("metrics", *_JSON_FIELDS)
    ]
    base.insert(base.index("role") + 1, "role_inferred")
    base.insert(base.index("parent_id") + 1, "parent_inferred")
    resolved = _roles(records, metric)
    rows: list[dict[str, Any]] = []
    extra: dict[str, list[str]] = {name: [] for name in (*_JSON_FIELDS, "metric")}
    for record in records:
        row: dict[str, Any] = {name: getattr(record, name) for name in base if name in _FIELDS}
        row["intensity_g_per_kwh"], row["intensity_source"] = _priced_at(record)
        (
            row["role"],
            row["role_inferred"],
            row["parent_id"],
            row["parent_inferred"],
            row["contained"],
            _,
        ) = resolved[record.id]
        for name in _JSON_FIELDS:
            flat: dict[str, Any] = {}
            _flatten(name, getattr(record, name), flat)
            row.update(flat)
            extra[name].extend(k for k in flat if k not in extra[name])
        for metric in record.metric_names:
            key = f"metric.{metric}"
            row[key] = record.metric(metric)
            if key not in extra["metric"]:
                extra["metric"].append(key)
        rows.append(row)
    columns = base + [c for group in extra.values() for c in sorted(group)]
    buffer = io.StringIO()
    # RFC 4180 line ends: the writer quotes any field holding \r or \n, so a name with a bare
    # carriage return cannot end a row early in a spreadsheet
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows and never runs.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
    Excel, LibreOffice and Google Sheets; as OWASP recommends, such text gets a leading single
    quote (``'=HYPERLINK(...)``). Numbers are left as they are, negative ones included, and so
    is text that is itself a plain number (``"-3.5"``), which no spreadsheet runs.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


@command.command(name="export")
@ledger_option
@study_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="CSV: one row per run, flattened columns. JSON: runs with metrics and power samples.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    default=None,
    help="Write to this file instead of standard output (-: standard output).",
)
@click.option(
    "--metric",
    type=TEXT,
    default=None,
    help="The metric the study's report ranks by, which inferred roles are judged by "
    "[default, and for a study that logged no value of it: the one the report chooses].",
)
def export_command(
    ledger: str | None, study: str | None, fmt: str, out: Path | None, metric: str | None
) -> None:
    """Export runs (all, or one study's) as CSV or JSON.

    Each run is exported as its study's report reads it:

    role: the role the report gives the run; role_inferred is true where none was given (roles
    are inferred from the nesting, judged by --metric or the metric the report chooses).

    parent_id: the run the report reads it under; parent_inferred is true where the ledger
    records another parent or none (a pool worker's run, a distributed job's rank).

    contained: false where the report adds the run's cost to the price tag outside every
    measurement above it (a part made with set-role --part-of, a child on another host, a
    job's other node); true where a measurement above it already holds its cost.

    Summing the rows with no parent among them and those with contained false gives the price
    tag's energy and CO2-eq, except for top-level runs that ran at the same time in threads of
    one process, each measuring all of it: the price tag counts each stretch of their time
    once, so their rows add up to more than its total. Where a parent recorded less than the
    runs inside it, the price tag takes their sum, or shares its own amount out among them.
    The price tag's notes name both cases (docs/ledger.md, "Export").
    """
    if out is not None and str(out) == "-":  # the usual name of standard output, not a file
        out = None
    with _open(ledger) as led:
        if out is not None and led.path is not None and _same_file(out, led.path):
            raise ConfigError(f"--out {out} is the ledger itself; choose another file")
        if out is not None:
            _refuse_a_database(out)
        records = led.runs(study=study)
        if fmt == "json":
            items = []
            resolved = _roles(records, metric)
            for record in records:
                item = _record_dict(record)
                item["intensity_g_per_kwh"], item["intensity_source"] = _priced_at(record)
                role, role_inferred, parent_id, parent_inferred, contained, _ = resolved[record.id]
                item.update(role=role, role_inferred=role_inferred, parent_id=parent_id)
                item["contained"] = contained
                item["parent_inferred"] = parent_inferred
                item["samples"] = [dataclasses.asdict(s) for s in led.samples(record.id)]
                items.append(item)
            text = _dump({"ledger": led.url, "schema_version": led.schema_version, "runs": items})
            text += "\n"
        else:
            text = _csv(records, metric)
    if out is None:
        click.echo(text, nl=False, color=True)  # data: never strip what looks like ANSI
        return
    try:
        out.write_text(text, encoding="utf-8", newline="")
    except FileNotFoundError as e:
        folder = out.parent
        if folder.is_dir():  # /proc/x.csv: the folder is there and takes no new file
            raise ConfigError(f"cannot write {out}: {e.strerror or e}") from e
        raise ConfigError(
            f"cannot write {out}: directory {folder} does not exist; create it first "
            f"(mkdir -p {folder}) or give a path in an existing one"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot write {out}: {e.strerror or e}") from e
    click.echo(f"wrote {count_of(len(records), 'run')} to {out}", err=True)


#: The first bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def _refuse_a_database(out: Path) -> None:
    """Refuse to write an export over a SQLite database: another ledger's runs would be lost.

    ``greenprint ledger export --ledger runs.db --out greenprint.db`` replaced the ledger
    ``greenprint.db`` with CSV text, every run it held gone.

    Raises:
        ConfigError: ``out`` is an existing SQLite database file.
    """
    try:
        with out.open("rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError:  # not there (the usual case), or unreadable: writing it says why
        return
    if head == _SQLITE_HEADER:
        raise ConfigError(
            f"--out {out} is a SQLite database (a ledger?); an export would replace it: "
            "choose another file, or remove it first"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


@command.command(
    name="set-role", short_help="Give runs that have ended a role (baseline, final, part...)."
)
@click.argument("role")
@click.argument("run_ids", nargs=-1, type=TEXT, required=True, metavar="RUN_ID...")
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
    role: str, run_ids: tuple[str, ...], part_of: str | None, ledger: str | None
) -> None:
    """Give runs that have ended a ROLE afterwards, without running them again.

    ROLE is one of trial, part, baseline, final, learning-curve, sweep, greener; RUN_ID a full
    id or a unique prefix of 4+ characters (from `ledger ls`). For the runs a report's notes
    name as read one way that may be another: `set-role baseline 3f2a` for a baseline read as a
    trial; `set-role part 9c1e --part-of 7b0d` for the failed attempt of a configuration that
    was run again (one trial, not two). Every run is checked before any is written: on bad input
    (an unknown role or run, a run still running, a part of another study's run or of itself,
    a part holding runs read as trials: they would read as its parts) nothing changes.
    """
    with _open(ledger) as led:
        records = [led.run(run_id) for run_id in run_ids]
        was = {record.id: record.role for record in records}
        studies = _StudyRoles(led)  # each study read once, for both of these
        if role == "part":
            _refuse_trials_inside(led, records, studies)
        read = _inferred_roles(studies, [r for r in records if r.role is None])
        for now in led.set_role(role, *(record.id for record in records), part_of=part_of):
            under = f", part of run {now.parent_id[:8]}" if part_of and now.parent_id else ""
            before = was[now.id] or (
                f"(none given, read as {read[now.id]})" if now.id in read else "(none given)"
            )
            click.echo(
                f"run {now.id[:8]} {_safe(now.name, limit=_MAX_CELL)} (study "
                f"{_safe(now.study, limit=_MAX_CELL)}): role {before} -> {now.role}{under}"
            )


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

            self._read[study] = resolve_roles(self._led.runs(study=study))
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
                f"run {record.id[:8]} ({_safe(record.name, limit=_MAX_CELL)}) holds "
                f"{count_of(len(inside), 'run')} read as trials ({shown}): as a part, they "
                "would read as its parts, no longer trials; if they are its parts, give it "
                f"role trial first (greenprint ledger set-role trial {record.id[:8]})"
            )


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
    """
    from greenprint.ledger import Ledger
    from greenprint.ledger._target import resolve_target

    path = resolve_target(out).path
    fresh = path is not None and not path.exists()
    try:
        led = Ledger(out)
        try:
            summary = led.merge(*inputs)
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
    click.echo(
        f"merged {len(inputs)} ledger(s) into {_safe(url)}: {summary.added} run(s) added, "
        f"{summary.updated} updated, {summary.unchanged} already there{kept} "
        f"({summary.metrics} metric points, {summary.samples} power samples written)"
    )
