"""The failed-runs section every format shows: runs that ended with an error, grouped by it.

:func:`failures` groups the runs; :mod:`greenprint.report._failure_text` says them (the
heading, the lead, the items each renderer escapes, the JSON report's ``failures``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenprint._jobs import job_status
from greenprint.report._model import Report, RunRow

__all__ = [
    "ERROR_LINE_CHARS",
    "FAILURE_GROUPS_SHOWN",
    "FAILURE_RUNS_SHOWN",
    "FailureGroup",
    "Failures",
    "failures",
]

#: Error groups the failed-runs section lists (the rest are counted on one line), and runs
#: named under each group (the rest are counted: "and 12 more").
FAILURE_GROUPS_SHOWN = 10
FAILURE_RUNS_SHOWN = 5
#: Characters of an error's first line shown; ``greenprint ledger show`` and the JSON report
#: have the whole text.
ERROR_LINE_CHARS = 160
#: The statuses of a run that ended with an error.
_ERROR_STATUSES = ("failed", "interrupted")
#: The statuses the section lists: those, and ``lost`` (its process stopped writing while it
#: ran: killed with SIGKILL or by the out-of-memory killer, its machine down), which recorded
#: no error but is as missing from the results.
_LISTED_STATUSES = ("failed", "interrupted", "lost")
# A number in an error's text: errors alike but for their numbers ("Tried to allocate 2.00
# GiB", "4.00 GiB") are one group, the numbers that differ shown as their range.
_NUMBER = re.compile(r"(0x[0-9a-fA-F]+|\d+(?:\.\d+)?)")
# A run's id in an error (a budget's "run 5b35dd43 is over budget", "study 's' (at run
# 01bafeb8)"): errors alike but for the run they name are one group too, the id as "ID" (each
# run's id is listed after it); 8 hex digits split into numbers and letters otherwise, so that
# three commands stopped by one budget were three groups.
_RUN_ID = re.compile(r"\brun [0-9a-f]{8}\b")
_AN_ID = "run \x00"  # a run id in a grouping key: no error's text holds a NUL
# The error of a run that says how its command ended (greenprint run's "exit status 1", with
# the last line of the command's stderr after it where one was captured: "exit status 1:
# ValueError: bad lr"): the exception a part inside it recorded says why, in full.
_ENDED = re.compile(r"(?:exit status -?\d+|killed by \S+)(?:: .*)?")
# A part's error that says only how it ended, not why: a script's sys.exit(3) inside its
# gp.track ("SystemExit: 3"), Ctrl-C, a signal. Where the command's error says why (its stderr's
# last line after "exit status 3: "), that stays: a script that printed "CUDA out of memory"
# and called sys.exit(3) in a fold read "SystemExit: 3" in the failed-runs section.
_ENDING_ONLY = re.compile(
    r"SystemExit(?:: -?\d+)?|KeyboardInterrupt|SIG[A-Z0-9]+|exit status -?\d+|killed by \S+"
)


@dataclass(frozen=True)
class FailureGroup:
    """Runs that ended with one error, as the failed-runs section lists them.

    Attributes:
        error: the error's first line (plain text), numbers that differ between the runs as
            their range (``"1.00–7.00"``), shortened to :data:`ERROR_LINE_CHARS` with ``…``
            (also when the error has more lines); ``None``: no run recorded an error (every
            lost run, which is a group of its own).
        runs: the runs, in start order.
        from_part: for a run that recorded no error of its own, the name of its failed part
            (fold, worker) whose error it shows, by run id.
        shared_params: parameters every run of the group has alike and some other run of
            their roles has not (``batch=512``); for a group of one run, its parameters;
            empty past the :data:`FAILURE_GROUPS_SHOWN` groups listed.
        stopped_at: for the group of lost runs, the earliest and the latest time their
            processes last wrote to the ledger (start plus the run time recorded, which ends
            at the last flush), seconds since the Unix epoch; ``None`` for other groups (or
            lost runs with no finite time).
    """

    error: str | None
    runs: tuple[RunRow, ...]
    from_part: Mapping[str, str]
    shared_params: Mapping[str, Any]
    stopped_at: tuple[float, float] | None = None


@dataclass(frozen=True)
class Failures:
    """The runs of a study that ended with an error, grouped by that error.

    Attributes:
        groups: every group, most runs first (then the earliest started); the lost runs'
            group among the first :data:`FAILURE_GROUPS_SHOWN` (the last of them at worst).
        runs: the runs listed (trials, baselines, the final run...; parts show under their run,
            a sweep under its failed trials), so ``sum(len(g.runs) for g in groups)``.
        interrupted: how many of them were interrupted.
        failed_parts: whether a part (a fold, a worker) of the study failed.
        lost: how many of them were lost (the others, neither interrupted nor lost, failed).
        parts: how many of them are parts (a fold, a worker, a helper such as an export)
            that failed inside a run that did not (its trial, the final run...), listed with
            the run they are in (``owners``).
        owners: for each part listed, by run id, the run it is part of (``None``: a part
            of no run, a step of the study).
        counted: the runs the price tag's table by status counts as failed, interrupted or
            lost (``by_status``): the listed runs, and the runs inside or around them
            whose cost is their failure's (``with_listed``).
        statuses: those of the price tag's statuses that ``counted`` sums, in its order.
        with_listed: the runs the price tag counts that the section does not list: the
            parts of a listed run (a failed trial's folds, finished or not: their cost is
            the trial's failure's), and runs around listed ones that ended with them (a
            sweep around failed trials, a run that re-raised its nested run's error, a lost
            run around a lost one), each with the run it is part of (``None``: not a part, or
            a part of no run); ``None`` when they could not be told apart.
    """

    groups: tuple[FailureGroup, ...]
    runs: int
    interrupted: int
    failed_parts: bool
    lost: int = 0
    parts: int = 0
    owners: Mapping[str, RunRow | None] = field(default_factory=dict)
    counted: int = 0
    statuses: tuple[str, ...] = ()
    with_listed: tuple[tuple[RunRow, RunRow | None], ...] | None = ()


def failures(report: Report) -> Failures:
    """The runs that failed, were interrupted or were lost, grouped by their error's first line.

    Lost runs (no error recorded: their process stopped writing) are one group of their own; a
    lost run with a lost run inside it (one process killed) is left out, the innermost listed.
    A part (a fold, a worker) of a run that failed too is not listed on its own: a run that
    recorded no error of its own, or only how its command ended (``greenprint run``'s
    ``"exit status 1"``, also followed by its stderr's last line), shows its first failed
    part's (in start order) where one has an error, unless the part's says only how it ended
    (``"SystemExit: 3"``, ``"KeyboardInterrupt"``) and the command's stderr line said why. A
    part that failed inside a run that did not (a helper ``gp.track("export")`` that raised
    inside a finished final run, a fold of a finished trial) is listed, as a part, with the run
    it is in: the price tag counts its cost as a failure's. A run whose failure is that of a
    listed run inside it (a sweep around failed trials, a run that re-raised its nested run's
    error) is left out; it is among ``with_listed``, as are the parts of listed runs, so that
    the listed runs and those add up to what the price tag's table by status counts as failed,
    interrupted or lost.
    """
    by_id = {row.id: row for row in report.runs}
    owner_of: dict[str, RunRow | None] = {}  # a part's run (None: a part of no run)

    def owner(row: RunRow) -> RunRow | None:
        if row.id in owner_of:
            return owner_of[row.id]
        seen = {row.id}
        at = by_id.get(row.parent_id or "")
        while at is not None and at.role == "part" and at.id not in seen:
            seen.add(at.id)
            at = by_id.get(at.parent_id or "")
        found = None if at is None or at.id in seen else at
        owner_of[row.id] = found
        return found

    def counted_status(row: RunRow) -> str:  # as the price tag's table by status counts it
        run = owner(row) if row.role == "part" else None
        return row.status if run is None else job_status((run.status, row.status))

    candidates = []
    parts: dict[str, RunRow | None] = {}  # the parts listed: their run, by id
    for row in report.runs:
        if row.status not in _LISTED_STATUSES:
            continue
        if row.role != "part":
            candidates.append(row)
            continue
        run = owner(row)
        if run is None or run.status not in _LISTED_STATUSES:  # failed inside a run that not
            candidates.append(row)
            parts[row.id] = run
    tag_statuses = tuple(s for s in report.price_tag.by_status if s in _LISTED_STATUSES)
    counted = sum(report.price_tag.by_status[s].runs for s in tag_statuses)
    if not candidates:
        return Failures((), 0, 0, False, 0, counted=counted, statuses=tag_statuses)
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
        if row.status == "lost":  # no error: its process stopped (a part's is not why)
            errors[row.id] = ("", False)
            continue
        own = first_line(row.error)
        if not own[0] or _ENDED.fullmatch(own[0]):
            part = _failed_part(row, children)
            said = first_line(part.error) if part is not None else ("", False)
            why = own[0].partition(": ")[2]  # the command's stderr line, where one was read
            if part is not None and not (why and _ENDING_ONLY.fullmatch(said[0])):
                own = said
                from_part[row.id] = part.name
        errors[row.id] = own
    # runs with a listed run inside them, and the first lines of those; with a lost run
    inside: dict[str, set[str]] = {}
    lost_inside: set[str] = set()
    for row in candidates:
        seen = {row.id}
        parent = by_id.get(row.parent_id or "")
        # a part's failure is that of the parts around it at most, not of its run (which
        # did not fail) or of a sweep around that
        while parent is not None and parent.id not in seen:
            if row.id in parts and parent.role != "part":
                break
            seen.add(parent.id)
            inside.setdefault(parent.id, set()).add(errors[row.id][0])
            if row.status == "lost":
                lost_inside.add(parent.id)
            parent = by_id.get(parent.parent_id or "")

    def explained(row: RunRow) -> bool:  # its failure is that of a listed run inside it
        if row.status == "lost":  # the stop of a lost run inside it (one process killed)
            return row.id in lost_inside
        found = inside.get(row.id)
        if found is None:
            return False
        line = errors[row.id][0]
        return row.role == "sweep" or not line or line in found

    listed = [row for row in candidates if not explained(row)]
    pieces: dict[str, list[str]] = {}  # first line -> its text and numbers, alternately
    grouped: dict[tuple[str, ...] | None, list[RunRow]] = {}  # None: the lost runs
    for row in listed:
        if row.status == "lost":
            grouped.setdefault(None, []).append(row)
            continue
        line = _RUN_ID.sub(_AN_ID, errors[row.id][0])
        split = pieces.get(line)
        if split is None:
            split = pieces[line] = _NUMBER.split(line)
        grouped.setdefault(tuple(split[0::2]), []).append(row)
    order = sorted(grouped.values(), key=lambda rows: (-len(rows), rows[0].started_at))
    lost_at = next((k for k, rows in enumerate(order) if rows[0].status == "lost"), None)
    if lost_at is not None and lost_at >= FAILURE_GROUPS_SHOWN:  # always listed: the runs
        order.insert(FAILURE_GROUPS_SHOWN - 1, order.pop(lost_at))  # missing without a word
    by_role: dict[str, list[Mapping[str, Any]]] = {}
    for row in report.runs:
        by_role.setdefault(row.role, []).append(row.params)
    groups = []
    for k, rows in enumerate(order):
        # the parameters only of the groups shown (a study of 100,000 failed runs)
        shared = _shared_params(rows, by_role) if k < FAILURE_GROUPS_SHOWN else {}
        if rows[0].status == "lost":
            # when the lost processes stopped writing: a job's head read lost for a node's run
            # that was lost (its own ended as it should) stopped when that run did
            ends = [
                run.started_at + (run.duration_s or 0.0)
                for row in rows
                for run in _lost_inside(row, children)
            ]
            ends = [end for end in ends if math.isfinite(end)]
            stopped = (min(ends), max(ends)) if ends else None
            groups.append(FailureGroup(None, tuple(rows), {}, shared, stopped))
            continue
        texts = list({errors[row.id][0]: None for row in rows})
        if len(texts) == 1:  # one text: as it is, its run's id in it
            text = texts[0]
        else:
            keys = {_RUN_ID.sub(_AN_ID, line): None for line in texts}
            text = _merged([pieces[key] for key in keys]).replace(_AN_ID, "run ID")
        more = any(errors[row.id][1] for row in rows)
        if len(text) > ERROR_LINE_CHARS:
            text, more = text[: ERROR_LINE_CHARS - 1].rstrip(), True
        groups.append(
            FailureGroup(
                error=(text + "…" if more else text) if text else None,
                runs=tuple(rows),
                from_part={row.id: from_part[row.id] for row in rows if row.id in from_part},
                shared_params=shared,
            )
        )
    failed_parts = any(row.role == "part" and row.status in _ERROR_STATUSES for row in report.runs)
    interrupted = sum(row.status == "interrupted" for row in listed)
    lost = sum(row.status == "lost" for row in listed)
    listed_ids = {row.id for row in listed}
    owners = {row.id: parts[row.id] for row in listed if row.id in parts}
    # the runs the price tag counts as failed, interrupted or lost that are not listed
    others = tuple(
        (row, owner(row) if row.role == "part" else None)
        for row in report.runs
        if row.id not in listed_ids and counted_status(row) in _LISTED_STATUSES
    )
    with_listed = others if len(listed) + len(others) == counted else None
    return Failures(
        tuple(groups),
        len(listed),
        interrupted,
        failed_parts,
        lost,
        parts=len(owners),
        owners=owners,
        counted=counted,
        statuses=tag_statuses,
        with_listed=with_listed,
    )


def _lost_inside(row: RunRow, children: Mapping[str, Sequence[RunRow]]) -> list[RunRow]:
    """The runs inside ``row`` (at any depth) recorded lost, else ``row`` itself."""
    return [run for run in _inside(row, children) if run.status == "lost"] or [row]


def _inside(
    row: RunRow, children: Mapping[str, Sequence[RunRow]], *, parts_only: bool = False
) -> Iterator[RunRow]:
    """The runs inside ``row``, depth first in start order (``parts_only``: through parts)."""
    stack = [c for c in reversed(children.get(row.id, ())) if not parts_only or c.role == "part"]
    seen = {row.id}
    while stack:
        run = stack.pop()
        if run.id in seen:
            continue
        seen.add(run.id)
        yield run
        stack.extend(
            c for c in reversed(children.get(run.id, ())) if not parts_only or c.role == "part"
        )


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
    return next(
        (
            part
            for part in _inside(row, children, parts_only=True)
            if part.status in _ERROR_STATUSES and part.error and part.error.strip()
        ),
        None,
    )


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
