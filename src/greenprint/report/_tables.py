"""Tables and sentences every format shows, as plain strings (each renderer escapes them)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from greenprint._format import (
    count_of,
    format_emissions,
    format_energy,
    format_fpo,
    format_multiple,
    format_share,
    percent_shares,
    run_emissions_text,
    run_energy_text,
    run_time_text,
)
from greenprint.analysis._pricetag_model import PriceTag
from greenprint.report._model import Report, RunRow
from greenprint.report._text import fpo_text, run_id_if_named_alike, run_time_of

__all__ = [
    "RANK_HEADER",
    "ROLE_LABELS",
    "ROLE_MARKS_LEGEND",
    "edh_sentence",
    "final_score_text",
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


def final_score_text(report: Report, row: RunRow) -> str | None:
    """The score cell of the final run scored on its own split only: ``"0.9911 (test_accuracy)"``.

    A retrain scored on a held-out split logs no value of the metric the trials are ranked by;
    its row in a runs table shows that held-out score, named, rather than ``-`` (which reads as
    a final model with no score). The held-out score named after the metric first
    (``test_accuracy`` for ``accuracy``), else the first logged. ``None`` for any other row.
    """
    if not row.is_final or row.score is not None or not report.final_scores:
        return None
    metric = report.metric or ""
    name, value = next(
        (s for s in report.final_scores if metric and metric in s[0]), report.final_scores[0]
    )
    return f"{score_text(value)} ({name})"


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
        # "2.54 mWh + unknown for 3 runs", "unknown (none of the 3 runs recorded energy)"
        ("energy (IT)", total.energy_text()),
        ("emissions", total.emissions_text()),
        (
            "trials",
            str(total.trials) + (f" (of {total.runs} runs)" if total.runs != total.trials else ""),
        ),
        (
            "run time",  # "1m 35s + unknown for 2 runs": never a sum that leaves runs out
            "unknown (no run recorded one)"
            if total.duration_text() == "unknown"
            else total.duration_text(),
        ),
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
        return (
            "not ranked: no run logged a metric (log a score with run.log(accuracy=...); a "
            "script run by greenprint run logs it in a gp.track run of its own, and the "
            "command's --param makes the command the trial that run scores)"
        )
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
    # the rule in words ("the run named as final": --final, final= in Python), as the note
    # says it; "chosen" alone did not say by whom
    how = final.rule_text or (
        "chosen" if final.chosen else f"the best finished run by {final.metric}"
    )
    score = "" if final.score is None else f" scored {final.metric} = {final.score:.4g} and"
    if final.score is None and report.final_scores:  # a retrain scored on a test split
        scored = ", ".join(f"{name} = {value:.4g}" for name, value in report.final_scores)
        score = f" scored {scored} (not {final.metric}, the trials' metric) and"
    fpo = fpo_text(final.fpo, lower_bound=final.fpo_lower_bound)
    named = run_id_if_named_alike(final.name, final.run_id, (row.name for row in report.runs))
    # one bracket: "trial-3 (run 1dc72494; the finished trial ...)", not two in a row
    how = f"{named.strip()[1:-1]}; {how}" if named else how
    energy = (  # NaN: no meter recorded it (nor every run inside it)
        f"{format_energy(final.energy_kwh)} of energy, {format_emissions(final.emissions_kg)}"
        if math.isfinite(final.energy_kwh)
        else "an unknown energy and CO2-eq (no meter recorded them)"
    )
    text = (
        f"Final run {final.name} ({how}){score} cost {energy}, {fpo} and "
        f"{run_time_of(final.duration_s)}"
    )
    share = final.energy_share
    if share:
        whole = format_energy(report.price_tag.total.energy_kwh)
        text += f": {format_share(share)} of the whole study's energy ({whole})"
    return text + "."


def edh_sentence(report: Report) -> str | None:
    """Green AI's Cost = E x D x H for the trials that carry a dataset size, if any.

    Trials none of which recorded a dataset size get a sentence saying why there is no line
    (the line alone went missing); a study with no trial gets none.
    """
    edh = report.price_tag.edh
    if edh is None:
        # trials none of which recorded a dataset size: the line is missing for a reason
        trials = sum(1 for row in report.runs if row.is_trial)
        if not trials:
            return None
        which = (
            "the study's one trial did not record"
            if trials == 1
            else f"none of the {trials} trials recorded"
        )
        return (
            f"E x D x H is not given: {which} a dataset size (D, the examples a trial trains "
            "on: run.set(dataset_size=...), or dataset_size= where an integration takes it)."
        )
    fpo = "" if edh.fpo_per_example is None else f" ({format_fpo(edh.fpo_per_example)}"
    if fpo:
        # FPO per example is over the trials that know their FPO (with their parts'): where
        # that is some of them only, say so, else it reads as the E of all H trials
        counted = sum(
            1
            for row in report.runs
            if row.is_trial and (row.dataset_size or 0) > 0 and row.fpo is not None
        )
        if 0 < counted < edh.trials:
            fpo += f", over the {counted} of these {edh.trials} trials that counted FPO"
        fpo += ")"
    # a count as counts are written ('53,333', not '5.333e+04'); a mean says it is one
    sizes = (
        ""
        if edh.dataset_size_min == edh.dataset_size_max
        else f" (a mean: {edh.dataset_size_min:,} to {edh.dataset_size_max:,})"
    )
    size = f"{edh.dataset_size:,.0f}"
    examples = "example" if size == "1" else "examples"  # "1 example per trial x 1 trial"
    if not math.isfinite(edh.energy_kwh):  # no trial with a size had an energy meter
        return (
            f"E x D x H: energy unknown (no energy meter) x {size} {examples} per trial{sizes} "
            f"x {count_of(edh.trials, 'trial')}{fpo}. {edh.note}."
        )
    text = (
        f"E x D x H: {format_energy(edh.energy_kwh_per_example)} per example{fpo} x "
        f"{size} {examples} per trial{sizes} x {count_of(edh.trials, 'trial')} = "
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
                cost.energy_text(),
                cost.emissions_text() if cost.energy_known else "unknown",
                _fpo_cell(cost),
                cost.duration_text(),
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


def role_label(role: str, tag: PriceTag | None = None) -> str:
    """A role as the price tag by role names it (``"final"`` -> ``"final model"``).

    With ``tag``, the row of role ``final`` says what it holds when that is more than the final
    run (``"final + 2 refits"``: :attr:`PriceTag.final_role`), so that its cost is not
    read as the final model's alone.
    """
    if role == "final" and tag is not None and tag.final_role is not None:
        return tag.final_role.label
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
    shares = [f"{share:.1f} %" for share in role_energy_shares(report)]
    rows = []
    for (role, cost), share in zip(
        [*tag.by_role.items(), ("total", tag.total)],
        shares or ["-"] * (len(tag.by_role) + 1),
        strict=True,
    ):
        rows.append(
            [
                "total" if role == "total" else role_label(role, tag),
                str(cost.runs),
                cost.energy_text(),
                cost.emissions_text() if cost.energy_known else "unknown",
                # a sweep's 0 FPO around trials that counted theirs: none counted, no count of 0
                (role != "total" and tag.uncounted_fpo_text(role)) or _fpo_cell(cost),
                cost.duration_text(),
                share,
            ]
        )
    return header, rows


def role_energy_shares(report: Report) -> list[float]:
    """Each role's percent of the study's energy, then the total's (100), as every format shows.

    Rounded to one decimal so that the roles' add up to the 100.0 shown under them
    (:func:`~greenprint._format.percent_shares`); empty when the study used no energy, or
    when some run's energy is unknown (no meter): no share of a whole that is not known.
    """
    if report.price_tag.total.energy_unknown:
        return []
    shares = percent_shares([cost.energy_kwh for cost in report.price_tag.by_role.values()])
    return [] if shares is None else [*shares, 100.0]


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
        if row.role == "greener" and role_of.get(row.parent_id or "") == "greener":
            mark = ""  # a greener comparison's variants: its mark says it once (a sweep in a
            # sweep, a search per model family or a script's search under greenprint run, is
            # marked: it is no trial of the sweep around it)
        if row.role == "part" and role_of.get(row.parent_id or "") not in ("trial", "part"):
            # among a sweep's trials (an attempt Ray Tune retried) or under a baseline it reads
            # as one of them unless marked
            mark = " (part)"
        cells = [
            run_label(row) + (" ★" if row.is_final else "") + mark,
            row.status,
            final_score_text(report, row)
            or score_text(row.score) + (_PARTS_MEAN_MARK if scored_by_parts(row) else ""),
            # NaN: the run recorded no energy (no meter): "unknown", as FPO, never "0 mWh"
            run_energy_text(row.energy_kwh),
            run_emissions_text(row.emissions_kg).replace(" CO2-eq", ""),
            # not counted: "unknown", as the price tag and the totals write it (not "-")
            "unknown" if row.fpo is None else fpo_text(row.fpo, lower_bound=row.fpo_lower_bound),
            run_time_text(row.duration_s),  # "-": none recorded, not "0.0 s"
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
    scored.sort(  # an unknown energy (NaN: no meter) after every known one
        key=lambda r: (
            sign * (r.score or 0.0),
            r.energy_kwh if r.energy_kwh == r.energy_kwh else math.inf,
            r.started_at,
        )
    )
    chosen = scored[:count]
    final = report.final
    if final is not None and final not in chosen:
        chosen.append(final)
    return chosen
