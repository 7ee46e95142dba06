"""The final run of a price tag: the run behind the reported result, and its share of the cost.

:class:`FinalRun` (its label and its sentence for the reports, its JSON), and what
:func:`~greenprint.analysis._pricetag.price_tag` says when no run can be the final one: the runs
that logged the metric (:func:`_logged_by`) and the metrics logged (:func:`_logged_metrics`).
The rules that choose it are :func:`choose_final`'s (the run named, else the ``final`` run,
else the best finished trial), with the rule in words (:class:`FinalChoice`);
:mod:`greenprint.analysis._pricetag` re-exports :class:`FinalRun`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from greenprint._format import format_duration, format_emissions, format_energy, format_share
from greenprint._prediction import is_reserved_metric
from greenprint._records import RunRecord
from greenprint.analysis._common import json_float
from greenprint.analysis._roles import StudyTrials


@dataclass(frozen=True)
class FinalRun:
    """The run behind the reported result, and its share of the whole study's cost.

    Shares are final / study (``None`` when the study's amount is 0 or the final's is unknown);
    the final run's cost includes its children's.

    Attributes:
        run_id: the run's id.
        name: its name.
        status: its status.
        chosen: ``True`` when the caller named it, ``False`` when a rule chose it.
        metric: the metric it was ranked by (``None`` if chosen without one).
        score: its value of ``metric`` (``None`` if none): its own, else the mean of its parts'.
        energy_kwh: its IT energy in kWh.
        emissions_kg: its emissions in kg CO2-eq.
        fpo: its FPO with its children's (``None`` unless known: its own is known, or every
            child inside it is, recursively; see :mod:`greenprint.analysis._pricetag`).
        duration_s: its duration in s, with its children's; NaN when unknown (it recorded
            none, nor did every run inside it: ``to_dict`` writes ``None``).
        energy_share: its energy / the study's.
        emissions_share: its emissions / the study's.
        fpo_share: its FPO / the study's known FPO.
        duration_share: its duration / the study's summed durations (``None`` when its own
            is unknown).
        role: its role (``"final"``, ``"trial"``...).
        rule: what chose it: ``"given"`` (the caller), ``"role"`` (the run with role
            ``final``) or ``"best-trial"`` (the best finished trial by ``metric``).
        rule_text: that rule in words, for the report.
        score_source: ``"own"``, ``"parts"`` (the mean of its parts' scores) or ``"none"``.
        fpo_lower_bound: ``True`` when its FPO are a lower bound (it, or a run inside it,
            counted ops with no rule or on complex tensors).
        name_shared: ``True`` when another run of the study has its name (a search run twice
            into one study: two ``trial-3``): the texts name it with its id too.
    """

    run_id: str
    name: str
    status: str
    chosen: bool
    metric: str | None
    score: float | None
    energy_kwh: float
    emissions_kg: float
    fpo: int | None
    duration_s: float
    energy_share: float | None
    emissions_share: float | None
    fpo_share: float | None
    duration_share: float | None
    role: str = "trial"
    rule: str = "best-trial"
    rule_text: str = ""
    score_source: str = "own"
    fpo_lower_bound: bool = False
    name_shared: bool = False

    @property
    def study_multiple(self) -> float | None:
        """How many times the final run's energy the whole study cost (``1 / energy_share``)."""
        share = self.energy_share
        return 1.0 / share if share else None

    def label(self) -> str:
        """Its name, with its id when another run has that name, and its score.

        ``"trial-3 (val_acc=0.9312)"``; ``"trial-3 (run 1dc72494, val_acc=0.9312)"`` in a study
        of a search run twice. 4 significant digits, as the reports and ``ledger ls`` write a
        score.
        """
        said = [f"run {self.run_id[:8]}"] if self.name_shared else []
        if self.score is not None:
            said.append(f"{self.metric}={self.score:.4g}")
        return self.name + (f" ({', '.join(said)})" if said else "")

    def describe(self) -> str:
        """One sentence, e.g. ``"the final model cost 1/37 of the study's energy (...)"``."""
        for what, share, shown, own in (
            ("energy", self.energy_share, format_energy, self.energy_kwh),
            ("CO2-eq", self.emissions_share, format_emissions, self.emissions_kg),
            ("time", self.duration_share, None, self.duration_s),
        ):
            if share:
                total = own / share
                # the part in its whole's unit: "0.83 mWh of 25.8 mWh", not "830 µWh of ..."
                part, whole = (
                    (format_duration(own), format_duration(total))
                    if shown is None
                    else (shown(own, unit_of=total), shown(total))
                )
                return (
                    f"the final model cost {format_share(share)} of the study's {what} "
                    f"({part} of {whole})"
                )
        return "the study's cost is zero or unknown, so the final model's share is unknown"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "status": self.status,
            "chosen": self.chosen,
            "metric": self.metric,
            "score": json_float(self.score),
            "energy_kwh": json_float(self.energy_kwh),
            "emissions_kg": json_float(self.emissions_kg),
            "fpo": self.fpo,
            "duration_s": json_float(self.duration_s),
            "energy_share": json_float(self.energy_share),
            "emissions_share": json_float(self.emissions_share),
            "fpo_share": json_float(self.fpo_share),
            "duration_share": json_float(self.duration_share),
            "study_multiple": json_float(self.study_multiple),
            "text": self.describe(),
            "role": self.role,
            "rule": self.rule,
            "rule_text": self.rule_text,
            "score_source": self.score_source,
            "fpo_lower_bound": self.fpo_lower_bound,
        }


def _logged_by(runs: Sequence[RunRecord], metric: str) -> str:
    """The runs that logged a value of ``metric``, with their statuses (``""``: none did).

    ``'trial-3' (interrupted), 'trial-4' (failed)``: the first three, then how many more.
    """
    holders = [r for r in runs if any(p.name == metric and p.value == p.value for p in r.metrics)]
    shown = ", ".join(f"{r.name!r} ({r.status})" for r in holders[:3])
    return shown + (f" and {len(holders) - 3} more" if len(holders) > 3 else "")


def _logged_metrics(runs: Sequence[RunRecord]) -> str:
    """The metrics the runs logged a value of, as ``build_report``'s error lists them.

    In the order first logged, NaN values and greenprint's own metrics (predictions) left out;
    ``"none"`` when there is none.
    """
    names = {
        p.name: None
        for run in runs
        for p in run.metrics
        if p.value == p.value and not is_reserved_metric(p.name)
    }
    return ", ".join(map(repr, names)) or "none"


@dataclass(frozen=True)
class FinalChoice:
    """Which run is the final one, and the rule that chose it.

    Attributes:
        position: its position in the set (``None``: none could be chosen).
        rule: ``"given"`` (named by the caller), ``"role"`` (the run with role ``final``) or
            ``"best-trial"`` (the best finished trial by the metric); ``None`` with no run.
        text: the rule in words, for the report.
    """

    position: int | None
    rule: Literal["given", "role", "best-trial"] | None
    text: str


def choose_final(trials: StudyTrials, *, final: str | None = None) -> FinalChoice:
    """The final run: the one named, else the ``final`` run, else the best finished trial.

    Among several ``final`` runs (two model families, each retrained) the finished one with the
    best score by the metric and its direction is taken; of a tie, or when none has a score,
    the last started (the text says which rule and how many there were). When no ``final``
    run finished (a retrain that failed, was interrupted or is still running), there is no
    final model: the best finished trial is taken, and the text
    says what became of the ``final`` runs (the unfinished one stays the choice only when no
    trial can be ranked). The best trial is ranked by its score (own, or the mean of its
    parts'); of a tie, the one that used the least energy (its own with its parts', as the price
    tag counts it: the cheaper of equal results), then the earliest started (the report's best
    trials table and efficiency section break ties alike); a sweep, a part, a baseline or a
    learning-curve run is never chosen by a rule.

    Args:
        trials: the study's trials and scores (:func:`study_trials`).
        final: the id of a run the caller names (wins over every rule).

    Returns:
        The :class:`FinalChoice` (``position`` ``None`` when no rule applies).

    Raises:
        KeyError: ``final`` is not among the runs.
    """
    forest = trials.forest
    if final is not None:
        position = forest.index[final]
        return FinalChoice(position, "given", "the run named as final")
    finals = trials.roles.positions("final")
    unfinished = ""
    if finals:
        runs, statuses = forest.runs, forest.column("status")  # a job's: its job's
        position, text = _best_final(trials, finals)
        if statuses[position] == "finished":
            return FinalChoice(position, "role", text)
        # no final model came out (a retrain that failed): the best trial is the result
        # no brackets in these texts: the report writes the rule in brackets after the name
        ordered = sorted(finals, key=lambda p: (runs[p].started_at, p))
        how = [_UNFINISHED.get(statuses[p], statuses[p]) for p in ordered]
        ended = [f"{runs[p].name!r} {h}" for p, h in zip(ordered, how, strict=True)]
        listed = ", ".join(ended[:3]) + (", ..." if len(ended) > 3 else "")
        unfinished = (
            f"{runs[ordered[0]].name!r}, the run with role 'final', {how[0]}"
            if len(ended) == 1
            else f"no run with role 'final' finished: {listed}"
        )
        best = _best_trial(trials, unfinished)
        if best.position is not None:
            return best
        though = f"it {how[0]}" if len(ended) == 1 else f"none finished: {listed}"
        return FinalChoice(position, "role", f"{text}, though {though}")
    return _best_trial(trials, "no run has role 'final'")


def _best_final(trials: StudyTrials, finals: Sequence[int]) -> tuple[int, str]:
    """Which of the ``final`` runs (positions) is the final model, and the rule in words.

    The finished one with the best score by the metric and its direction (a study of two
    model families, each retrained: the better retrain, not the last one run); of a tie, or
    when none has a score, the last started (when none has a score, of those not inside a
    sweep if some are: a search's refit beside the study's own retrain). When none finished,
    the last started (whose fate :func:`choose_final` words). The text has no brackets: the
    report writes it in some.
    """
    runs = trials.forest.runs
    n = len(finals)
    if n == 1:
        return finals[0], "the run with role 'final'"
    of = f"of the {n} runs with role 'final'"

    def latest(positions: Sequence[int]) -> int:
        return max(positions, key=lambda p: (runs[p].started_at, p))

    statuses = trials.forest.column("status")  # a job's head: its job's
    finished = [p for p in finals if statuses[p] == "finished"]
    if not finished or (len(finished) == 1 and latest(finals) in finished):
        return latest(finals), f"the last started {of}"  # e.g. a retrain run again, finished
    if len(finished) == 1:
        return finished[0], f"the only finished one {of}"
    metric = trials.metric
    scored = [p for p in finished if not math.isnan(trials.scores[p].score)]
    if metric is None or not scored:
        that = " that finished" if len(finished) < n else ""
        none = "" if metric is None else f", none with a value of {metric!r}"
        # a final run inside a sweep is that search's refit (track_search's, scored by its
        # cross-validation); one run on its own is the study's retrain: that one, whichever
        # started last (merged ledgers of several machines start in no order of meaning)
        parents = trials.forest.parents
        alone = [p for p in finished if parents[p] is None]
        if alone and len(alone) < len(finished):
            which = "the one" if len(alone) == 1 else "the last started"
            return latest(alone), f"{which} not inside a sweep {of}{that}{none}"
        return latest(finished), f"the last started {of}{that}{none}"
    sign = 1.0 if trials.mode == "max" else -1.0
    top = max(sign * trials.scores[p].score for p in scored)
    best = [p for p in scored if sign * trials.scores[p].score == top]
    better = "highest" if trials.mode == "max" else "lowest"
    if len(best) == n:  # a retrain run again: the same score
        text = f"the last started {of}, which tie on the {better} {metric}"
    elif len(best) > 1:
        text = f"the last started of the {len(best)} tied on the {better} {metric} {of}"
    else:
        text = f"the run with the {better} {metric} {of}"
    left = []  # the runs the rule could not rank
    if len(finished) < n:
        left.append(f"{n - len(finished)} not finished")
    if len(scored) < len(finished):
        left.append(f"{len(finished) - len(scored)} with no value of it")
    return latest(best), text + (f", {' and '.join(left)}" if left else "")


#: How the final-run rule says a ``final`` run that did not finish ended.
_UNFINISHED = {"running": "is still running", "lost": "was lost"}


def _best_trial(trials: StudyTrials, why: str) -> FinalChoice:
    """The best finished trial by the metric (:func:`choose_final`), ``why`` no final run."""
    forest = trials.forest
    if trials.metric is None:
        return FinalChoice(None, None, f"{why} and no metric ranks the trials")
    # The best score first, then the least energy, then the earliest start among the trials
    # that have it: the smallest (sign * score, energy, started_at, position), as a scan
    # comparing those keys finds (scores compare as == and < do in a tuple; NaN scores are left
    # out), without a key per trial (100,000 trials: 27 -> 12 ms CPU); the energies are read
    # for a tie only.
    statuses = forest.column("status")
    finished = [p for p in trials.positions if statuses[p] == "finished"]
    values = np.array([trials.scores[p].score for p in finished], dtype=float)
    scored = values[~np.isnan(values)]
    if not scored.size:
        return FinalChoice(
            None, None, f"no finished trial has a value of {trials.metric!r} to rank by"
        )
    top = scored.max() if trials.mode == "max" else scored.min()
    started = forest.column("started_at")
    tied = [finished[k] for k in np.flatnonzero(values == top).tolist()]
    if len(tied) > 1:
        # an energy no meter recorded is unknown (NaN), never the 0 its record holds: a known
        # energy wins the tie over it, as the cheaper of results known to be equal
        energy = forest.known_cost_sums("energy_kwh")
        best = min(
            (1, 0.0, started[p], p) if math.isnan(energy[p]) else (0, energy[p], started[p], p)
            for p in tied
        )[2:]
    else:
        best = (started[tied[0]], tied[0])
    better = "highest" if trials.mode == "max" else "lowest"
    if len(trials.positions) == 1:  # one training: no trial it was chosen among
        return FinalChoice(best[1], "best-trial", f"the study's one trial, as {why}")
    return FinalChoice(
        best[1],
        "best-trial",
        f"the finished trial with the {better} {trials.metric}, as {why}",
    )
