"""Tables and sentences every format shows, as plain strings (each renderer escapes them)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._format import (
    count_of,
    format_duration,
    format_emissions,
    format_energy,
    format_fpo,
    format_multiple,
    format_share,
)
from greenprint.report._model import Report, RunRow
from greenprint.report._text import fpo_text

__all__ = [
    "ERROR_LINE_CHARS",
    "FAILURE_GROUPS_SHOWN",
    "FAILURE_RUNS_SHOWN",
    "RANK_HEADER",
    "ROLE_LABELS",
    "ROLE_MARKS_LEGEND",
    "FailureGroup",
    "Failures",
    "edh_sentence",
    "failure_heading",
    "failure_intro",
    "failure_items",
    "failures",
    "final_sentence",
    "headline",
    "params_text",
    "price_tag_role_table",
    "price_tag_table",
    "rank_text",
    "ranking_text",
    "role_label",
    "run_label",
    "runs_table",
    "score_text",
    "scored_by_parts",
    "top_runs",
    "tree_rows",
]


def score_text(value: float | None) -> str:
    """A score with 4 significant digits, ``"-"`` when there is none."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def params_text(params: Mapping[str, Any], *, limit: int | None = 80) -> str:
    """``"lr=0.01, model=mlp"``, shortened to ``limit`` characters.

    A nested value (a dict or list, such as the result a greener variant records) longer than
    40 characters shows its size (``{20 keys}``, ``[40 items]``): the JSON report has it whole.
    """
    parts = []
    for key, value in params.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        if isinstance(value, (dict, list, tuple)) and len(shown) > 40:
            many = f"{len(value)} keys" if isinstance(value, dict) else f"{len(value)} items"
            shown = "{" + many + "}" if isinstance(value, dict) else "[" + many + "]"
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def tree_rows(rows: Sequence[RunRow]) -> list[RunRow]:
    """The rows in tree order: each run right after its parent (children in the order given).

    A run indented under a run that is not its parent misreads the study (a scikit-learn trial's
    record can start after its first fold's), so every run table lists runs this way.
    """
    ids = {row.id for row in rows}
    children: dict[str | None, list[RunRow]] = {}
    for row in rows:
        parent = row.parent_id if row.parent_id in ids else None
        children.setdefault(parent, []).append(row)
    if len(children) == 1:  # no run has its parent here: the order given
        return list(rows)
    out: list[RunRow] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        row = stack.pop()
        out.append(row)
        stack.extend(reversed(children.get(row.id, ())))
    return out


def run_label(row: RunRow) -> str:
    """The run's name, indented by its nesting depth."""
    return "  " * row.depth + ("↳ " if row.depth else "") + row.name


def headline(report: Report) -> list[tuple[str, str]]:
    """The study's key figures: (label, value) pairs."""
    total = report.price_tag.total
    out = [
        ("energy (IT)", format_energy(total.energy_kwh)),
        ("emissions", format_emissions(total.emissions_kg)),
        (
            "trials",
            str(total.trials) + (f" (of {total.runs} runs)" if total.runs != total.trials else ""),
        ),
        ("run time", format_duration(total.duration_s)),
        # under the label FPO: "unknown for 3 runs", not "FPO: FPO unknown for 3 runs"
        (
            "FPO",
            fpo_text(
                total.fpo,
                total.fpo_unknown,
                total.fpo_lower_bound,
                none_of=0 if total.fpo_known else total.runs,
            ).removeprefix("FPO "),
        ),
    ]
    final = report.price_tag.final
    if final is not None and final.study_multiple is not None:
        out.append(("study / final model", f"{format_multiple(final.study_multiple)} the energy"))
    return out


def ranking_text(report: Report) -> str:
    """How the runs are ranked: ``"ranked by accuracy (higher is better)"``, or why not."""
    if report.metric is None:
        return "not ranked: no run logged a metric (log a score with run.log(accuracy=...))"
    better = "higher" if report.mode == "max" else "lower"
    return f"ranked by {report.metric} ({better} is better)"


def final_sentence(report: Report) -> str:
    """What the final run scored and cost, against the whole study."""
    final = report.price_tag.final
    if final is None and report.metric is None:
        return (
            "No final run is identified: no run logged a metric and none has role 'final' "
            "(gp.track(..., role='final'))."
        )
    if final is None:
        return (
            "The final run is not identified (no finished trial has a score and no run has "
            "role 'final')."
        )
    how = (
        "chosen"
        if final.chosen
        else (final.rule_text or f"the best finished run by {final.metric}")
    )
    score = "" if final.score is None else f" scored {final.metric} = {final.score:.4g} and"
    if final.score is None and report.final_scores:  # a retrain scored on a test split
        scored = ", ".join(f"{name} = {value:.4g}" for name, value in report.final_scores)
        score = f" scored {scored} (not {final.metric}, the trials' metric) and"
    fpo = fpo_text(final.fpo, lower_bound=final.fpo_lower_bound)
    text = (
        f"Final run {final.name} ({how}){score} cost {format_energy(final.energy_kwh)} of "
        f"energy, {format_emissions(final.emissions_kg)}, {fpo} and "
        f"{format_duration(final.duration_s)} of run time"
    )
    share = final.energy_share
    if share:
        whole = format_energy(report.price_tag.total.energy_kwh)
        text += f": {format_share(share)} of the whole study's energy ({whole})"
    return text + "."


def edh_sentence(report: Report) -> str | None:
    """Green AI's Cost = E x D x H for the trials that carry a dataset size, if any."""
    edh = report.price_tag.edh
    if edh is None:
        return None
    fpo = "" if edh.fpo_per_example is None else f" ({format_fpo(edh.fpo_per_example)})"
    # a count as counts are written ('53,333', not '5.333e+04'); a mean says it is one
    sizes = (
        ""
        if edh.dataset_size_min == edh.dataset_size_max
        else f" (a mean: {edh.dataset_size_min:,} to {edh.dataset_size_max:,})"
    )
    text = (
        f"E x D x H: {format_energy(edh.energy_kwh_per_example)} per example{fpo} x "
        f"{edh.dataset_size:,.0f} examples per trial{sizes} x {edh.trials} trials = "
        f"{format_energy(edh.energy_kwh)}"
    )
    whole = report.price_tag.total.energy_kwh
    if edh.energy_kwh < whole * (1 - 1e-9):
        # the trials are not the whole study: say whose energy this is, else two totals disagree
        these = "this trial" if edh.trials == 1 else f"these {edh.trials} trials"
        text += f", the energy of {these} (of the study's {format_energy(whole)})"
    text += "."
    if edh.note:
        text += f" {edh.note}."
    return text


def _fpo_cell(cost: Any) -> str:
    # a set none of whose runs counted FPO: "FPO unknown (none of the 12 runs counted FPO)",
    # not "0 FPO" nor "FPO unknown for 8 runs" (its innermost); "FPO unknown for N runs"
    # when others counted
    if not cost.fpo_known:
        return fpo_text(None, none_of=cost.runs)
    return fpo_text(cost.fpo, cost.fpo_unknown, getattr(cost, "fpo_lower_bound", 0))


def price_tag_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """The price tag by status, then the total: header and rows.

    ``runs`` counts every run of the status (trials, their parts, sweeps, baselines...),
    ``trials`` the trials among them: the header says so ("pruned: 8, 4" read as two counts
    of one thing).
    """
    header = ["status", "runs (any role)", "of them trials", "energy", "CO2-eq", "FPO", "run time"]
    rows = []
    tag = report.price_tag
    for status, cost in [*tag.by_status.items(), ("total", tag.total)]:
        rows.append(
            [
                status,
                str(cost.runs),
                str(cost.trials),
                format_energy(cost.energy_kwh),
                format_emissions(cost.emissions_kg),
                _fpo_cell(cost),
                format_duration(cost.duration_s),
            ]
        )
    return header, rows


#: How the price tag by role names each role (a reader's words; the JSON keeps the role).
ROLE_LABELS = {
    "trial": "trials (the search)",
    "sweep": "sweep overhead",
    "baseline": "baselines",
    "learning-curve": "learning curve",
    "final": "final model",
    "greener": "greener variants",
    "part": "parts",
}


def role_label(role: str) -> str:
    """A role as the price tag by role names it (``"final"`` -> ``"final model"``)."""
    return ROLE_LABELS.get(role, role)


def price_tag_role_table(report: Report) -> tuple[list[str], list[list[str]]] | None:
    """The same total split by role, with each role's share of the energy.

    Each run's parts count under its role. ``None`` for a study of one role (the table by
    status says it all).
    """
    tag = report.price_tag
    if len(tag.by_role) < 2:
        return None
    header = ["role", "runs", "energy", "CO2-eq", "FPO", "run time", "energy share"]
    whole = tag.total.energy_kwh
    rows = []
    for role, cost in [*tag.by_role.items(), ("total", tag.total)]:
        share = "-" if not whole > 0 else f"{100 * cost.energy_kwh / whole:.1f} %"
        rows.append(
            [
                "total" if role == "total" else role_label(role),
                str(cost.runs),
                format_energy(cost.energy_kwh),
                format_emissions(cost.emissions_kg),
                _fpo_cell(cost),
                format_duration(cost.duration_s),
                share,
            ]
        )
    return header, rows


#: What the runs table writes after a run's name for each role that is not a trial or a part
#: (a part is indented under its run; the final run has its star).
_ROLE_MARKS = {
    "baseline": " (baseline)",
    "learning-curve": " (learning curve)",
    "sweep": " (sweep)",
    "greener": " (greener)",
}
#: The runs table's legend for those marks.
ROLE_MARKS_LEGEND = (
    "★ marks the final run, (baseline) a baseline, (learning curve) a learning-curve run, "
    "(sweep) a sweep around trials, (greener) a greener variant of a model, or their "
    "comparison, (part) a sub-step of the run it is listed under, not a "
    "trial (a trial's folds are not marked)"
)


def runs_table(
    report: Report,
    rows: Sequence[RunRow] | None = None,
    *,
    with_id: bool = True,
    params_limit: int | None = 80,
) -> tuple[list[str], list[list[str]]]:
    """One line per run: header and rows (all runs by default, in tree order: :func:`tree_rows`).

    In a study with a distributed job's runs, a ``node/local rank`` column before the params
    says which node and which process on it ran each run (``1/0``: node 1, local rank 0;
    ``-`` for a run of no job); other studies have no such column.
    """
    score = report.metric if report.metric is not None else "score"
    header = ["run", "status", score, "energy", "CO2-eq", "FPO", "time", "examples"]
    jobs = any(row.job_id is not None for row in report.runs)
    if jobs:
        header.append(RANK_HEADER)
    header += ["params"] + (["id"] if with_id else [])
    out = []
    role_of = {row.id: row.role for row in report.runs}
    for row in tree_rows(report.runs) if rows is None else rows:
        mark = _ROLE_MARKS.get(row.role or "", "")
        if mark and role_of.get(row.parent_id or "") == row.role:
            mark = ""  # a greener comparison's variants: its mark says it once
        if row.role == "part" and role_of.get(row.parent_id or "") not in ("trial", "part"):
            # among a sweep's trials (an attempt Ray Tune retried) or under a baseline it reads
            # as one of them unless marked
            mark = " (part)"
        cells = [
            run_label(row) + (" ★" if row.is_final else "") + mark,
            row.status,
            score_text(row.score) + (_PARTS_MEAN_MARK if scored_by_parts(row) else ""),
            format_energy(row.energy_kwh),
            format_emissions(row.emissions_kg).replace(" CO2-eq", ""),
            # not counted: "unknown", as the price tag and the totals write it (not "-")
            "unknown" if row.fpo is None else fpo_text(row.fpo, lower_bound=row.fpo_lower_bound),
            format_duration(row.duration_s),
            "-" if row.dataset_size is None else f"{row.dataset_size:,}",
        ]
        if jobs:
            cells.append(rank_text(row))
        cells += [params_text(row.params, limit=params_limit)]
        if with_id:
            cells.append(row.id[:8])
        out.append(cells)
    return header, out


#: The runs table's column of a job's ranks (only in a study with a job's runs).
RANK_HEADER = "node/local rank"


def rank_text(row: RunRow) -> str:
    """Which node and process of its job ran the run: ``"1/0"`` (node 1, local rank 0).

    ``"-"`` for a run of no job; a rank the launcher did not give reads ``?``.
    """
    if row.job_id is None:
        return "-"
    node = "?" if row.node_rank is None else str(row.node_rank)
    local = "?" if row.local_rank is None else str(row.local_rank)
    return f"{node}/{local}"


#: After the score of a trial that logged none of its own: it is its parts' mean (its folds').
#: ``ledger ls`` and ``ledger show`` give that trial no score, the runs table this mean.
_PARTS_MEAN_MARK = " (mean of its parts)"


def scored_by_parts(row: RunRow) -> bool:
    """Whether the row's score is the mean of its parts' (a trial that logged no score)."""
    return row.is_trial and row.score_source == "parts" and score_text(row.score) != "-"


def top_runs(report: Report, count: int) -> list[RunRow]:
    """The ``count`` best-scoring trials (the final run always included), best first.

    Only finished and pruned trials rank: a failed, interrupted or lost one produced no model
    (the expected-max-performance curves count it as the worst score). Of equal scores, the
    one that used less energy first, then the earlier started: the final-run rule's order
    (``analysis.choose_final``).
    """
    sign = -1.0 if report.mode == "max" else 1.0
    scored = [
        r
        for r in report.runs
        if r.is_trial and r.score is not None and r.status in ("finished", "pruned")
    ]
    scored.sort(key=lambda r: (sign * (r.score or 0.0), r.energy_kwh, r.started_at))
    chosen = scored[:count]
    final = report.final
    if final is not None and final not in chosen:
        chosen.append(final)
    return chosen


# ------------------------------------------------------------------------- failed runs
#: Error groups the failed-runs section lists (the rest are counted on one line), and runs
#: named under each group (the rest are counted: "and 12 more").
FAILURE_GROUPS_SHOWN = 10
FAILURE_RUNS_SHOWN = 5
#: Characters of an error's first line shown; ``greenprint ledger show`` and the JSON report
#: have the whole text.
ERROR_LINE_CHARS = 160
#: The statuses of a run that ended with an error.
_ERROR_STATUSES = ("failed", "interrupted")
#: What a group of failed runs calls a run of each role (``"7 trials failed"``).
_ROLE_NOUNS = {
    "trial": "trial",
    "baseline": "baseline",
    "final": "final run",
    "learning-curve": "learning-curve run",
    "greener": "greener run",
    "sweep": "sweep",
}
# A number in an error's text: errors alike but for their numbers ("Tried to allocate 2.00
# GiB", "4.00 GiB") are one group, the numbers that differ shown as their range.
_NUMBER = re.compile(r"(0x[0-9a-fA-F]+|\d+(?:\.\d+)?)")
# The error of a run that only says how its command ended (greenprint run's "exit status 1"):
# the exception a part inside it recorded says why.
_ENDED = re.compile(r"exit status -?\d+|killed by \S+")


@dataclass(frozen=True)
class FailureGroup:
    """Runs that ended with one error, as the failed-runs section lists them.

    Attributes:
        error: the error's first line (plain text), numbers that differ between the runs as
            their range (``"1.00–7.00"``), shortened to :data:`ERROR_LINE_CHARS` with ``…``
            (also when the error has more lines); ``None``: no run recorded an error.
        runs: the runs, in start order.
        from_part: for a run that recorded no error of its own, the name of its failed part
            (fold, worker) whose error it shows, by run id.
        shared_params: parameters every run of the group has alike and some other run of
            their roles has not (``batch=512``); for a group of one run, its parameters;
            empty past the :data:`FAILURE_GROUPS_SHOWN` groups listed.
    """

    error: str | None
    runs: tuple[RunRow, ...]
    from_part: Mapping[str, str]
    shared_params: Mapping[str, Any]


@dataclass(frozen=True)
class Failures:
    """The runs of a study that ended with an error, grouped by that error.

    Attributes:
        groups: every group, most runs first (then the earliest started).
        runs: the runs listed (trials, baselines, the final run...; parts show under their run,
            a sweep under its failed trials), so ``sum(len(g.runs) for g in groups)``.
        interrupted: how many of them were interrupted (the others failed).
        failed_parts: whether a part (a fold, a worker) of the study failed.
    """

    groups: tuple[FailureGroup, ...]
    runs: int
    interrupted: int
    failed_parts: bool


def failures(report: Report) -> Failures:
    """The runs that failed or were interrupted, grouped by the first line of their error.

    Parts are not listed on their own: a run that recorded no error of its own, or only how
    its command ended (``greenprint run``'s ``"exit status 1"``), shows its first failed
    part's (in start order) where one has an error. A run whose failure is that of a listed
    run inside it (a sweep around failed trials, a run that re-raised its nested run's error)
    is left out.
    """
    by_id = {row.id: row for row in report.runs}
    candidates = [
        row for row in report.runs if row.status in _ERROR_STATUSES and row.role != "part"
    ]
    if not candidates:
        return Failures((), 0, 0, False)
    children: dict[str, list[RunRow]] = {}
    for row in report.runs:
        if row.parent_id is not None and row.parent_id in by_id:
            children.setdefault(row.parent_id, []).append(row)
    lines: dict[str, tuple[str, bool]] = {}  # error text -> (first line, more text)

    def first_line(error: str | None) -> tuple[str, bool]:
        if not error:
            return "", False
        found = lines.get(error)
        if found is None:
            found = lines[error] = _first_line(error)
        return found

    errors: dict[str, tuple[str, bool]] = {}
    from_part: dict[str, str] = {}
    for row in candidates:
        own = first_line(row.error)
        if not own[0] or _ENDED.fullmatch(own[0]):
            part = _failed_part(row, children)
            if part is not None:
                own = first_line(part.error)
                from_part[row.id] = part.name
        errors[row.id] = own
    # runs with a listed run inside them, and the first lines of those
    inside: dict[str, set[str]] = {}
    for row in candidates:
        seen = {row.id}
        parent = by_id.get(row.parent_id or "")
        while parent is not None and parent.id not in seen:
            seen.add(parent.id)
            inside.setdefault(parent.id, set()).add(errors[row.id][0])
            parent = by_id.get(parent.parent_id or "")

    def explained(row: RunRow) -> bool:  # its failure is that of a listed run inside it
        found = inside.get(row.id)
        if found is None:
            return False
        line = errors[row.id][0]
        return row.role == "sweep" or not line or line in found

    listed = [row for row in candidates if not explained(row)]
    pieces: dict[str, list[str]] = {}  # first line -> its text and numbers, alternately
    grouped: dict[tuple[str, ...], list[RunRow]] = {}
    for row in listed:
        line = errors[row.id][0]
        split = pieces.get(line)
        if split is None:
            split = pieces[line] = _NUMBER.split(line)
        grouped.setdefault(tuple(split[0::2]), []).append(row)
    order = sorted(grouped.values(), key=lambda rows: (-len(rows), rows[0].started_at))
    by_role: dict[str, list[Mapping[str, Any]]] = {}
    for row in report.runs:
        if row.role != "part":
            by_role.setdefault(row.role, []).append(row.params)
    groups = []
    for k, rows in enumerate(order):
        text = _merged([pieces[line] for line in {errors[row.id][0]: None for row in rows}])
        more = any(errors[row.id][1] for row in rows)
        if len(text) > ERROR_LINE_CHARS:
            text, more = text[: ERROR_LINE_CHARS - 1].rstrip(), True
        # the parameters only of the groups shown (a study of 100,000 failed runs)
        shown = k < FAILURE_GROUPS_SHOWN
        groups.append(
            FailureGroup(
                error=(text + "…" if more else text) if text else None,
                runs=tuple(rows),
                from_part={row.id: from_part[row.id] for row in rows if row.id in from_part},
                shared_params=_shared_params(rows, by_role) if shown else {},
            )
        )
    failed_parts = any(row.role == "part" and row.status in _ERROR_STATUSES for row in report.runs)
    interrupted = sum(row.status == "interrupted" for row in listed)
    return Failures(tuple(groups), len(listed), interrupted, failed_parts)


def _first_line(error: str) -> tuple[str, bool]:
    r"""An error's first non-blank line, and whether more text follows it.

    A lone surrogate (a file name that is not UTF-8) becomes a ``\udcff`` escape: no output
    format can encode it.
    """
    line, _, rest = error.partition("\n")
    line = line.strip()
    if line and line.isprintable():  # a first line of text, no surrogate (most errors)
        return (" ".join(line.split()) if "  " in line else line), bool(rest.strip())
    text = error.encode("utf-8", "backslashreplace").decode("utf-8")
    found = [line.strip() for line in text.splitlines() if line.strip()]
    if not found:
        return "", False
    return " ".join(found[0].split()), len(found) > 1


def _failed_part(row: RunRow, children: Mapping[str, Sequence[RunRow]]) -> RunRow | None:
    """The first failed part inside ``row`` (depth first, in start order) that has an error."""
    stack = [c for c in reversed(children.get(row.id, ())) if c.role == "part"]
    seen: set[str] = set()
    while stack:
        part = stack.pop()
        if part.id in seen:
            continue
        seen.add(part.id)
        if part.status in _ERROR_STATUSES and part.error and part.error.strip():
            return part
        stack.extend(c for c in reversed(children.get(part.id, ())) if c.role == "part")
    return None


def _merged(pieces: Sequence[Sequence[str]]) -> str:
    """Lines alike but for their numbers as one: a number that differs as its range.

    ``pieces`` are the lines split by :data:`_NUMBER` (text and numbers, alternately).
    """
    out = []
    for k, piece in enumerate(pieces[0]):
        values = [p[k] for p in pieces]
        if k % 2 == 0 or all(v == piece for v in values):
            out.append(piece)
        elif any(v.startswith("0x") for v in values):  # addresses: no range means anything
            out.append("0x…")
        else:
            low, high = min(values, key=float), max(values, key=float)
            out.append(low if float(low) == float(high) else f"{low}–{high}")
    return "".join(out)


_MISSING = object()


def _shared_params(
    rows: Sequence[RunRow], by_role: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Mapping[str, Any]:
    """The parameters all ``rows`` have alike that another run of their roles has not.

    ``by_role``: the parameters of every run (parts aside), by role: a trial's are told
    against the other trials'. For one run, all its parameters.
    """
    first = rows[0].params
    if len(rows) == 1:
        return first
    shared = {
        key: value
        for key, value in first.items()
        if all(row.params.get(key, _MISSING) == value for row in rows[1:])
    }
    roles = {row.role for row in rows}
    # the group's own runs have the value: any run that has not is another
    return {
        key: value
        for key, value in shared.items()
        if any(params.get(key, _MISSING) != value for role in roles for params in by_role[role])
    }


def failure_heading(found: Failures) -> str:
    """``"Failed runs (9)"``, ``"Failed and interrupted runs (9)"`` or ``"Interrupted runs"``."""
    if found.interrupted == found.runs:
        what = "Interrupted runs"
    elif found.interrupted:
        what = "Failed and interrupted runs"
    else:
        what = "Failed runs"
    return f"{what} ({found.runs})"


def failure_intro(found: Failures) -> str:
    """What the failed-runs section lists and where the whole error texts are."""
    text = (
        "Each error's first line, most runs first (numbers that differ between the runs as "
        "their range, … where the text goes on): greenprint ledger show ID prints a run's "
        "whole error, the JSON report every run's."
    )
    if found.failed_parts:
        text += (
            " Parts (folds, workers) are listed under their run: a run that recorded no error "
            "of its own, or only its command's exit status, shows its first failed part's."
        )
    return text


def failure_items(
    found: Failures, *, with_params: bool = True
) -> tuple[list[tuple[str | None, str]], str | None]:
    """The section's items, (error or ``None``, which runs) each, and the line after them.

    ``"7 trials failed: trial-1 (d3c4e5f6), ... and 2 more; all with batch=512"``; the line
    after the items counts the groups not shown (``None``: all shown). ``with_params=False``
    leaves the parameters out (a report that shows no parameters elsewhere).
    """
    items = []
    for group in found.groups[:FAILURE_GROUPS_SHOWN]:
        nouns = Counter(_ROLE_NOUNS.get(row.role, f"{row.role} run") for row in group.runs)
        counted = " and ".join(count_of(n, noun) for noun, n in nouns.items())
        statuses = {row.status for row in group.runs}
        verb = "failed or interrupted" if len(statuses) > 1 else statuses.pop()
        names = []
        for row in group.runs[:FAILURE_RUNS_SHOWN]:
            part = group.from_part.get(row.id)
            detail = f", the error of its part {part}" if part is not None else ""
            names.append(f"{row.name} ({row.id[:8]}{detail})")
        text = f"{counted} {verb}: " + ", ".join(names)
        if len(group.runs) > FAILURE_RUNS_SHOWN:
            text += f" and {len(group.runs) - FAILURE_RUNS_SHOWN} more"
        if with_params and group.shared_params:
            every = "all " if len(group.runs) > 1 else ""
            text += f"; {every}with {params_text(group.shared_params)}"
        items.append((group.error, text))
    rest = found.groups[FAILURE_GROUPS_SHOWN:]
    after = None
    if rest:
        runs = sum(len(g.runs) for g in rest)
        after = (
            f"… and {count_of(len(rest), 'other error')} ({count_of(runs, 'run')}): "
            "the JSON report has every run's error."
        )
    return items, after
