"""What the failed-runs section says: its heading, its lead, its items, the JSON's ``failures``.

Plain strings, as :mod:`greenprint.report._tables`' (each renderer escapes them); the Markdown,
HTML and LaTeX reports and the notebook view of a report list what :func:`failure_items` gives,
of the groups :func:`~greenprint.report._failures.failures` makes.
"""

from __future__ import annotations

import html
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

from greenprint._format import and_list, count_of
from greenprint._records import ROLE_NOUNS
from greenprint.report._failures import (
    FAILURE_GROUPS_SHOWN,
    FAILURE_RUNS_SHOWN,
    FailureGroup,
    Failures,
    failures,
)
from greenprint.report._model import Report, RunRow
from greenprint.report._tables import params_text

__all__ = [
    "TALLY_NAMES_SHOWN",
    "FailureItem",
    "failure_heading",
    "failure_intro",
    "failure_items",
    "failure_tally",
    "failures_json",
    "items_html",
    "notebook_html",
]

#: Failed parts named in the line that says which runs inside or around the listed ones the
#: price tag counts too (the rest are counted: "and 3 more").
TALLY_NAMES_SHOWN = 5


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
    what = and_list(words)
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
            "shows its first failed part's (a fold, a worker), unless that says only how the "
            "part ended (its exit status alone) where the command's last error line says why."
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
        nouns = Counter(ROLE_NOUNS.get(row.role, f"{row.role} run") for row in group.runs)
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
