"""The failed-runs section every format shows: runs that ended with an error, grouped by it.

Plain strings, as :mod:`greenprint.report._tables`' (each renderer escapes them); the Markdown,
HTML and LaTeX reports and the notebook view of a report list what :func:`failure_items` gives.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from greenprint._format import count_of
from greenprint._jobs import job_status
from greenprint.report._model import Report, RunRow
from greenprint.report._tables import params_text

__all__ = [
    "ERROR_LINE_CHARS",
    "FAILURE_GROUPS_SHOWN",
    "FAILURE_RUNS_SHOWN",
    "FailureGroup",
    "FailureItem",
    "Failures",
    "failure_heading",
    "failure_intro",
    "failure_items",
    "failure_tally",
    "failures",
    "failures_json",
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
#: What a group of failed runs calls a run of each role (``"7 trials failed"``).
_ROLE_NOUNS = {
    "trial": "trial",
    "baseline": "baseline",
    "final": "final run",
    "learning-curve": "learning-curve run",
    "greener": "greener run",
    "sweep": "sweep",
    "part": "part",
}
#: Failed parts named in the line that says which runs inside or around the listed ones the
#: price tag counts too (the rest are counted: "and 3 more").
TALLY_NAMES_SHOWN = 5
# A number in an error's text: errors alike but for their numbers ("Tried to allocate 2.00
# GiB", "4.00 GiB") are one group, the numbers that differ shown as their range.
_NUMBER = re.compile(r"(0x[0-9a-fA-F]+|\d+(?:\.\d+)?)")
# The error of a run that says how its command ended (greenprint run's "exit status 1", with
# the last line of the command's stderr after it where one was captured: "exit status 1:
# ValueError: bad lr"): the exception a part inside it recorded says why, in full.
_ENDED = re.compile(r"(?:exit status -?\d+|killed by \S+)(?:: .*)?")


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


class FailureItem(NamedTuple):
    """One item of the failed-runs section, plain text (each renderer escapes it).

    Attributes:
        error: the error's first line (shown as code), ``None`` when the runs recorded none.
        note: what is shown instead when ``error`` is ``None`` (``"no error recorded"``,
            ``"lost: no error recorded (its process stopped writing at ...)"``), else ``None``.
        runs: which runs (``"7 trials failed: trial-1 (d3c4e5f6), ... and 2 more; all with
            batch=512"``).
    """

    error: str | None
    note: str | None
    runs: str


def failures(report: Report) -> Failures:
    """The runs that failed, were interrupted or were lost, grouped by their error's first line.

    Lost runs (no error recorded: their process stopped writing) are one group of their own; a
    lost run with a lost run inside it (one process killed) is left out, the innermost listed.
    A part (a fold, a worker) of a run that failed too is not listed on its own: a run that
    recorded no error of its own, or only how its command ended (``greenprint run``'s
    ``"exit status 1"``, also followed by its stderr's last line), shows its first failed
    part's (in start order) where one has an error. A part that failed inside a run that did
    not (a helper ``gp.track("export")`` that raised inside a finished final run, a fold of a
    finished trial) is listed, as a part, with the run it is in: the price tag counts its cost
    as a failure's. A run whose failure is that of a listed run inside it (a sweep around
    failed trials, a run that re-raised its nested run's error) is left out; it is among
    ``with_listed``, as are the parts of listed runs, so that the listed runs and those add up
    to what the price tag's table by status counts as failed, interrupted or lost.
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
            if part is not None:
                own = first_line(part.error)
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
        line = errors[row.id][0]
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
            ends = [row.started_at + row.duration_s for row in rows]
            ends = [end for end in ends if math.isfinite(end)]
            stopped = (min(ends), max(ends)) if ends else None
            groups.append(FailureGroup(None, tuple(rows), {}, shared, stopped))
            continue
        text = _merged([pieces[line] for line in {errors[row.id][0]: None for row in rows}])
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
    """``"Failed runs (9)"``, ``"Failed and interrupted runs (9)"``, ``"Lost runs (2)"``...

    Named by the statuses of the runs listed: ``"Failed, interrupted and lost runs (12)"``.
    """
    failed = found.runs - found.interrupted - found.lost
    words = [
        word
        for word, count in (
            ("failed", failed),
            ("interrupted", found.interrupted),
            ("lost", found.lost),
        )
        if count
    ]
    if not words:  # nothing listed
        words = ["failed"]
    what = ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]
    return f"{what[0].upper()}{what[1:]} runs ({found.runs})"


def failure_intro(found: Failures) -> str:
    """What the failed-runs section lists and where the whole error texts are."""
    text = (
        "Each error's first line, most runs first (numbers that differ between the runs as "
        "their range, … where the text goes on): greenprint ledger show ID prints a run's "
        "whole error, the JSON report every run's."
    )
    if found.failed_parts:
        text += (
            " A run that recorded no error of its own, or only its command's exit status, "
            "shows its first failed part's (a fold, a worker)."
        )
    if found.parts:
        text += (
            " A part (a fold, a worker, a helper run such as an export) that failed inside a "
            "run that did not is listed with the run it is in."
        )
    if found.lost:
        text += (
            " A lost run recorded no error: its process stopped writing to the ledger while it "
            "ran (killed with SIGKILL or by the out-of-memory killer, its machine down); it "
            "keeps the cost it recorded up to then."
        )
    tally = failure_tally(found)
    return text if tally is None else f"{tally} {text}"


def _statuses_text(statuses: Sequence[str]) -> str:
    """``"failed"``, ``"failed or lost"``, ``"failed, interrupted or lost"``."""
    words = list(statuses) or ["failed"]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def _names_in(pairs: Sequence[tuple[RunRow, RunRow | None]]) -> str:
    """The first :data:`TALLY_NAMES_SHOWN` runs, with the run they are in, and how many more.

    ``"fold1, fold2 (in trial-2), export (in final-model) and 3 more"``.
    """
    shown: dict[str | None, list[str]] = {}  # the run they are in (its id) -> names
    where: dict[str | None, str] = {}
    for row, run in pairs[:TALLY_NAMES_SHOWN]:
        key = None if run is None else run.id
        shown.setdefault(key, []).append(row.name)
        where[key] = "" if run is None else f" (in {run.name})"
    text = ", ".join(", ".join(names) + where[key] for key, names in shown.items())
    if len(pairs) > TALLY_NAMES_SHOWN:
        text += f" and {len(pairs) - TALLY_NAMES_SHOWN} more"
    return text


def failure_tally(found: Failures) -> str | None:
    """How the runs listed add up to the runs the price tag counts as failed (or lost...).

    ``"The price tag counts 5 runs as failed: the 3 listed here, and 2 parts of listed runs,
    whose cost counts as their run's failure: fold1, fold2 (in trial-2)."``; ``None`` when the
    listed runs are all it counts.
    """
    more = found.counted - found.runs
    if more <= 0:  # all it counts (fewer: a report whose runs were changed after its price tag)
        return None
    text = (
        f"The price tag counts {count_of(found.counted, 'run')} as "
        f"{_statuses_text(found.statuses)}: "
        + ("the 1 listed here" if found.runs == 1 else f"the {found.runs} listed here")
    )
    if found.with_listed is None:  # not told apart: say what they can be
        return (
            text + f", and {more} more inside or around them (their parts: folds, workers), "
            "whose cost counts as their failure."
        )
    parts = [(row, run) for row, run in found.with_listed if row.role == "part"]
    runs = [(row, run) for row, run in found.with_listed if row.role != "part"]
    pieces = []
    if parts:
        pieces.append(
            f"{count_of(len(parts), 'part')} of listed runs, whose cost counts as their run's "
            f"failure: {_names_in(parts)}"
        )
    if runs:
        pieces.append(
            f"{count_of(len(runs), 'run')} around listed runs that ended with them: "
            f"{_names_in(runs)}"
        )
    return text + ", and " + "; and ".join(pieces) + "."


def failures_json(report: Report) -> dict[str, Any]:
    """The failed-runs section as the JSON report gives it: every group's runs, by id.

    ``heading`` (``None``: no run failed, was interrupted or is lost), ``runs`` (listed),
    ``counted`` (what the price tag counts as ``statuses``), ``groups`` (``error``'s first line
    and the ids of its runs; ``error`` ``None`` for the lost runs or runs that recorded none),
    ``parts`` (each listed part's id -> the id of the run it failed inside), ``with_listed``
    (the ids of the runs the price tag counts with the listed ones; ``None``: not told apart)
    and ``tally`` (the sentence that adds them up, ``None`` when the listed are all).
    """
    found = failures(report)
    return {
        "heading": failure_heading(found) if found.runs else None,
        "runs": found.runs,
        "counted": found.counted,
        "statuses": list(found.statuses),
        "groups": [
            {"error": group.error, "runs": [row.id for row in group.runs]} for group in found.groups
        ],
        "parts": {k: None if run is None else run.id for k, run in found.owners.items()},
        "with_listed": None
        if found.with_listed is None
        else [row.id for row, _ in found.with_listed],
        "tally": failure_tally(found),
    }


def _when(at: float) -> str:
    """A time as the report's date line gives it: local time, ``2026-12-04 14:05:33 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(at))


def _lost_note(group: FailureGroup) -> str:
    """``"lost: no error recorded (its process stopped writing at 2026-12-04 14:05:33 UTC)"``."""
    note = "lost: no error recorded"
    if group.stopped_at is None:
        return note
    first, last = (_when(at) for at in group.stopped_at)
    if len(group.runs) == 1:
        return f"{note} (its process stopped writing at {first})"
    if first == last:
        return f"{note} (their processes stopped writing at {first})"
    day, _, _ = first.partition(" ")
    if last.startswith(day + " "):  # the same day: its date once
        last = last[len(day) + 1 :]
    return f"{note} (their processes stopped writing between {first} and {last})"


def failure_items(
    found: Failures, *, with_params: bool = True
) -> tuple[list[FailureItem], str | None]:
    """The section's items (error or the note said instead, which runs), and the line after.

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
            run = found.owners.get(row.id)
            if run is not None:  # a part that failed inside a run that did not
                detail += f", in {run.name}"
            names.append(f"{row.name} ({row.id[:8]}{detail})")
        text = f"{counted} {verb}: " + ", ".join(names)
        if len(group.runs) > FAILURE_RUNS_SHOWN:
            text += f" and {len(group.runs) - FAILURE_RUNS_SHOWN} more"
        if with_params and group.shared_params:
            every = "all " if len(group.runs) > 1 else ""
            text += f"; {every}with {params_text(group.shared_params)}"
        if group.error is not None:
            items.append(FailureItem(group.error, None, text))
        elif group.runs[0].status == "lost":
            items.append(FailureItem(None, _lost_note(group), text))
        else:
            items.append(FailureItem(None, "no error recorded", text))
    rest = found.groups[FAILURE_GROUPS_SHOWN:]
    after = None
    if rest:
        runs = sum(len(g.runs) for g in rest)
        after = (
            f"… and {count_of(len(rest), 'other error')} ({count_of(runs, 'run')}): "
            "the JSON report has every run's error."
        )
    return items, after


def items_html(items: Sequence[FailureItem], between: str) -> str:
    """The items as HTML list items, every text escaped (the report's page, a notebook's view).

    The error in ``<code>`` (or the note said instead in ``<em>``), then ``between`` and the runs.
    """

    def esc(text: object) -> str:
        return html.escape(str(text), quote=True)

    return "".join(
        "<li>"
        + (f"<em>{esc(note)}</em>" if error is None else f"<code>{esc(error)}</code>")
        + f"{between}{esc(runs)}</li>"
        for error, note, runs in items
    )


def notebook_html(report: Report) -> str:
    """Why runs failed, compactly, for a notebook's view of a report (``greenprint._reprs``).

    A caption and one line per error; ``""`` when no run failed, was interrupted or is lost.
    """
    found = failures(report)
    if not found.runs:
        return ""
    items, after = failure_items(found)
    heading = html.escape(failure_heading(found), quote=True)
    tally = failure_tally(found)  # the price tag above counts more: which
    return (
        f"<div><strong>{heading}</strong> "
        "(greenprint ledger show ID prints a run's whole error)</div>"
        + (f"<div>{html.escape(tally, quote=True)}</div>" if tally else "")
        + f'<ul style="margin-top:2px">{items_html(items, ": ")}</ul>'
        + (f"<p>{html.escape(after, quote=True)}</p>" if after else "")
    )
