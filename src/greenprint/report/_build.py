"""``build_report``: read a study from the ledger and turn it into a :class:`Report`.

The parts it calls, one module per concern: reading the study (:mod:`._study_read`), the notes
on the study (:mod:`._build_notes`), the model card's training type and held-out scores
(:mod:`._training`), the runs table's rows (:mod:`._run_rows`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import AnalysisError, ConfigError, ReportError
from greenprint._forest_beyond import beyond_sums
from greenprint._gc import gc_paused
from greenprint._metric_choice import pick_metric
from greenprint._records import RunRecord
from greenprint._version import __version__
from greenprint.analysis import PriceTag, study_trials
from greenprint.analysis._common import (
    Mode,
    Reduce,
    RunForest,
    check_choice,
    check_mode,
)
from greenprint.analysis._families import trial_family_labels
from greenprint.analysis._pricetag import forest_price_tag
from greenprint.report._curve_runs import one_run_curve_notes, one_run_curves
from greenprint.report._efficiency import efficiency_section
from greenprint.report._failure_text import failures_json
from greenprint.report._figure_inputs import EveryMetricNeeded
from greenprint.report._figures import (
    FigureInputs,
    evp_figures,
    family_hint,
    learning_curve_figure,
    pareto_figure,
    timeline_figure,
)
from greenprint.report._greener import greener_figure, greener_results
from greenprint.report._model import Figure, Report
from greenprint.report._prediction import prediction_summary
from greenprint.report._pruned import pruned_summary
from greenprint.report._searches_again import searches_run_again
from greenprint.report._text import (
    compute_statement,
    energy_provenance,
    hardware_descriptions,
    model_card_emissions,
    run_id_if_named_alike,
)
from greenprint.report._whatif import whatif_section

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Sequence

    from greenprint._types import LedgerSource

from greenprint.report._build_notes import (
    _apportioned_note,
    _budget_note,
    _fpo_assumptions_note,
    _objectives_note,
    _running_note,
    _scorer_note,
    _training_metric_note,
    _unscored_baselines_note,
)
from greenprint.report._first_trial import first_trial_note
from greenprint.report._run_rows import ROW_FIELD_ORDER as ROW_FIELD_ORDER
from greenprint.report._run_rows import _rows
from greenprint.report._study_read import _other_studies_inside, _pick_study, _read_study
from greenprint.report._study_read import several_studies as several_studies
from greenprint.report._training import _final_scores, _training_type
from greenprint.report._training import held_out_of_parts as held_out_of_parts

__all__ = ["build_report"]


logger = logging.getLogger(__name__)


def build_report(
    ledger: LedgerSource,
    study: str | None = None,
    *,
    metric: str | None = None,
    mode: Mode | None = None,
    final: str | None = None,
    reduce: Reduce = "last",
    training_type: str | None = None,
    max_sampled_runs: int = 300,
    group_by: str | None = None,
) -> Report:
    """Build the report of one study from a ledger.

    The ledger is only read: a path that holds no ledger raises, nothing is created.

    Every run's role (trial, part, baseline, final, learning-curve, sweep) is the one given when
    it was tracked, else inferred (:func:`greenprint.analysis.resolve_roles`; a note says so).
    Trial counts, expected max performance, the Pareto plot, the best trials and E·D·H take
    the trials only; a trial's score is its own, else the mean of its parts' (a note says how
    many). The price tag sums every root run once, by status and by role.

    Args:
        ledger: a :class:`~greenprint.Ledger`, a path or URL, or ``None`` for the configured
            ledger (``GREENPRINT_LEDGER``, ``greenprint.toml``, ``./greenprint.db``).
        study: the study's name; ``None`` when the ledger holds exactly one study.
        metric: the metric that ranks runs (e.g. ``"accuracy"``); ``None`` takes the metric
            logged by the most trials and final runs (else runs; a note says which). When no
            run logged any metric, the report has the price tag, power, provenance, model card
            and compute statement, and a note saying that ranking, EVP and Pareto need a logged
            score.
        mode: ``"max"`` if a higher ``metric`` is better, ``"min"`` if lower is; ``None``
            infers it from the name (``loss``, ``error``, ``perplexity``... are minimised, and a
            note says so).
        final: the id (or unique prefix) of the run behind the reported result; default the
            run with role ``final``, else the best finished trial by ``metric``.
        reduce: ``"last"`` (default) or ``"best"`` logged value of each run's metric.
        training_type: the model card's ``training_type`` (``"pre-training"``,
            ``"fine-tuning"``...); ``None`` takes the study's: the ``training_type`` parameter
            its runs set (``run.set(params={"training_type": "fine-tuning"})``; the final
            run's if runs disagree), else it reads ``"unknown"`` with how to set it.
        max_sampled_runs: read per-sample power for the timeline when the study has at most
            this many top-level runs; above, each run is drawn at its mean power.
        group_by: a dotted path such as ``"params.model"``: the EVP figures draw one curve per
            family of trials beside the whole search's (Dodge et al.); ``None``: one curve.

    Returns:
        The :class:`~greenprint.report.Report`.

    Raises:
        LedgerPathError: the ledger does not exist (it is not created).
        UnknownStudyError: no such study (the message lists the known ones).
        ReportError: no study given and the ledger holds several (or none).
        AnalysisError: no run logged a finite value of ``metric`` (when given), or ``final`` unknown
            or a run of another study (the message names both studies).
        ConfigError: a bad ``mode``, ``reduce`` or ``max_sampled_runs``.
    """
    from greenprint.ledger import Ledger, get_ledger

    mode = None if mode is None else check_mode(mode)
    reduce = "last" if check_choice(reduce, "reduce", ("last", "best")) == "last" else "best"
    if isinstance(max_sampled_runs, bool) or not isinstance(max_sampled_runs, int):
        raise ConfigError(f"max_sampled_runs must be an integer, not {max_sampled_runs!r}")
    opened = not isinstance(ledger, Ledger)
    led = get_ledger(ledger, create=False)
    try:
        study = _pick_study(led, study)
        runs, narrowed = _read_study(led, study, metric)
        if not runs:  # pragma: no cover - a study exists only through its runs
            raise ReportError(f"study {study!r} has no runs in ledger {led.url}")
        if final is not None:
            final = led.resolve_id(final)  # a run's name: the message gives its id
            if all(run.id != final for run in runs):
                other = led.run(final)
                raise AnalysisError(
                    f"the final run {final[:12]} ({other.name!r}) belongs to study "
                    f"{other.study!r}, not to study {study!r} that is being reported"
                )
        options: dict[str, Any] = {
            "study": study,
            "ledger_url": led.url,
            "metric": metric,
            "mode": mode,
            "final": final,
            "reduce": reduce,
            "training_type": training_type,
            "samples_of": led.samples,
            "max_sampled_runs": max_sampled_runs,
            "group_by": group_by,
            "final_whole": lambda final_id: (
                led.run(final_id),  # the run and its parts, every point: two queries
                *led._read(study=study, parent_id=final_id),
            ),
        }
        with gc_paused():  # hundreds of thousands of small acyclic objects (see gc_paused)
            try:
                report = _assemble(runs, narrowed=narrowed, **options)
            except EveryMetricNeeded:  # a note lists what runs logged beside the metric given
                runs = tuple(led._read(study=study, points="score"))
                report = _assemble(runs, **options)
            elsewhere = _other_studies_inside(led, study, runs, report.runs)
        if elsewhere:
            report = dataclasses.replace(report, notes=(*report.notes, *elsewhere))
        return report
    finally:
        if opened:
            led.close()


def _assemble(
    runs: tuple[RunRecord, ...],
    *,
    study: str,
    ledger_url: str,
    metric: str | None,
    mode: Mode | None,
    final: str | None,
    reduce: Reduce,
    training_type: str | None,
    samples_of: Any,
    max_sampled_runs: int,
    group_by: str | None = None,
    final_whole: Callable[[str], Sequence[RunRecord]] | None = None,
    narrowed: bool = False,
) -> Report:
    """The report of ``runs``.

    ``narrowed``: they hold the points of the metric given alone (else every metric's marked
    points): a note that lists what runs logged beside it raises :class:`EveryMetricNeeded`,
    and the caller reads them whole. ``final_whole``: the final run with its parts, every point
    of them read (a final run with no value of the metric states the held-out scores it or its
    parts logged: each one's last finite value); ``None``: those of ``runs``.
    """
    given_metric = metric  # a metric given by name: the runs may hold its points only
    forest = RunForest.build(runs)
    metric, metric_note = pick_metric(runs, metric, study, forest)
    # Scores of every run: its own, else the mean of its parts' (a last value that is infinite,
    # a diverged training, is no score, as a NaN: trials.diverged_note names those runs).
    trials = study_trials(forest, metric=metric, mode=mode, reduce=reduce)
    given_mode, mode = mode, trials.mode
    scores = {r.id: trials.scores[p].score for p, r in enumerate(forest.runs)}
    notes = [metric_note] if metric_note else []
    if objectives_note := _objectives_note(
        forest, trials.positions, metric, mode, study, given=given_mode is not None
    ):
        notes.append(objectives_note)
    if scorer_note := _scorer_note(forest, trials.roles.positions("sweep"), metric):
        notes.append(scorer_note)
    if given_metric is None and (training_note := _training_metric_note(forest, metric)):
        notes.append(training_note)
    for note in (
        trials.roles_note,
        trials.score_note,
        trials.diverged_note,
        _budget_note(runs),
        _running_note(runs),
        _apportioned_note(runs),
        _fpo_assumptions_note(runs),
    ):
        if note:
            notes.append(note)
    ranked = bool(trials.roles.positions("final")) or any(
        forest.column("status")[p] == "finished" and not math.isnan(trials.scores[p].score)
        for p in trials.positions
    )
    # what runs that ran on after the runs around them ended (workers left running when their
    # main process was stopped) spent after that end: read once, for the price tag and the
    # timeline, which draws what it counts; the power samples the split read (those runs',
    # a few) are kept for the timeline, which draws them, so each is read once
    kept: dict[str, Any] = {}

    def read_and_keep(run_id: str) -> Any:
        found = kept[run_id] = samples_of(run_id)
        return found

    def samples_once(run_id: str) -> Any:
        found = kept.get(run_id)
        return samples_of(run_id) if found is None else found

    beyond = beyond_sums(forest, read_and_keep)
    tag: PriceTag
    if final is not None or ranked:
        # the mode as given: the price tag notes a mode inferred from the metric's name
        tag = forest_price_tag(
            forest,
            metric=metric,
            mode=given_mode,
            final=final,
            reduce=reduce,
            trials=trials,
            beyond=beyond,
        )
    else:
        tag = forest_price_tag(forest, mode=mode, reduce=reduce, beyond=beyond)
        tag = dataclasses.replace(
            tag,
            metric=metric,
            notes=tuple(n for n in tag.notes if not n.startswith("no metric given")),
            mode_note=trials.mode_note,
        )
        if trials.mode_note:
            notes.append(trials.mode_note)
        if metric is not None:
            notes.append(
                f"no finished trial has a value of {metric!r} and no run has role 'final': "
                "the final run is not identified"
            )
    final_id = tag.final.run_id if tag.final is not None else None
    rule = tag.final.rule if tag.final is not None else None
    if again := searches_run_again(forest, trials.positions, final_rule=rule):
        notes.append(again)
    if tag.final is not None:
        named = run_id_if_named_alike(tag.final.name, tag.final.run_id, (r.name for r in runs))
        notes.append(f"final run: {tag.final.name}{named}, {tag.final.rule_text}")
    energy_lines = energy_provenance(tag.provenance)
    inputs = FigureInputs(
        runs=runs,
        forest=forest,
        trials=trials.positions,
        scores=scores,
        metric=metric or "",  # no metric: only the timeline is drawn
        mode=mode,
        reduce=reduce,
        price_tag=tag,
        final_id=final_id,
        energy_provenance=energy_lines,
        baselines=trials.roles.positions("baseline"),
        learning_curves=trials.roles.positions("learning-curve"),
        families=(
            tuple(trial_family_labels(forest, trials.positions, group_by))
            if group_by is not None
            else ()
        ),
        group_by=group_by,
        narrowed=narrowed,
    )
    figures: list[Figure] = []
    started = time.perf_counter()
    if metric is not None:  # else NO_METRIC_NOTE says why there is no score figure
        evp, evp_notes = evp_figures(inputs)
        figures.extend(evp)
        notes.extend(evp_notes)
        if evp and (first := first_trial_note(forest, trials.positions)):
            notes.append(first)  # a one-off cost of the process in it bends the curve on energy
        if evp and (hint := family_hint(inputs)):
            notes.append(hint)
        if unscored := _unscored_baselines_note(forest, inputs.baselines, scores, metric):
            if narrowed:  # it names what those baselines logged instead
                raise EveryMetricNeeded
            notes.append(unscored)
        for builder in (pareto_figure, learning_curve_figure):
            figure, why = builder(inputs)
            if figure is not None:
                figures.append(figure)
            elif why:
                notes.append(why)
        # a learning or validation curve logged as the steps of one run: said how it was read
        if curves := one_run_curves(forest, trials.positions, metric):
            drawn = any(f.id == "learning_curve" for f in figures)
            if not drawn and any(c.kind == "learning" for c in curves):
                notes = [n for n in notes if not n.startswith("no learning curve:")]
            notes.extend(one_run_curve_notes(forest, curves, metric, drawn=drawn))
    figure, why = timeline_figure(
        inputs, samples_once, max_sampled_runs=max_sampled_runs, beyond=beyond[0]
    )
    if figure is not None:
        figures.append(figure)
    elif why:
        notes.append(why)
    greener = greener_results(runs)  # greenprint.greener comparisons (role "greener")
    for index, result in enumerate(greener):
        figure = greener_figure(result, index)
        if figure is not None:
            figures.append(figure)
    logger.debug(
        "report figures of %d runs built in %.3f s", len(runs), time.perf_counter() - started
    )
    hardware = hardware_descriptions(runs)
    training_type, training_note = _training_type(runs, training_type, final_id)
    if training_note:
        notes.append(training_note)
    # the held-out scores of a final run with no value of the metric (or of its parts): each
    # one's last finite value, read from every point of them (the study's read kept of each
    # metric its marked points, and with a metric given, that metric's alone)
    final_run = next((r for r in runs if r.id == final_id), None)
    held_out: tuple[tuple[str, float], ...] = ()
    if final_run is not None and (metric is None or final_run.metric(metric) is None):
        if final_whole is not None:
            held_out = _final_scores(final_whole(final_run.id), final_id, metric, mode)
        else:
            held_out = _final_scores(runs, final_id, metric, mode)
    pareto = next((f for f in figures if f.id == "pareto"), None)
    front_ids = (
        ()
        if pareto is None
        else next((s.run_ids for p in pareto.panels for s in p.series if s.role == "front"), ())
    )
    efficiency, efficiency_note = efficiency_section(
        forest, trials, metric=metric, final_id=final_id, front_ids=front_ids, held_out=held_out
    )
    if efficiency_note:
        notes.append(efficiency_note)
    run_rows = _rows(trials, final_id)
    trial_runs = [forest.runs[p] for p in trials.positions]
    pruned_at = [
        p for p, r in zip(trials.positions, trial_runs, strict=True) if r.status == "pruned"
    ]
    if pruned_at:  # their costs as the price tag counts them (shared in threads)
        energies = forest.known_cost_sums("energy_kwh")
        emissions = forest.known_cost_sums("emissions_kg")
        counted = {forest.runs[p].id: (energies[p], emissions[p]) for p in pruned_at}
    pruning = pruned_summary(
        trial_runs, {r.id: r for r in run_rows}, tag, counted if pruned_at else None
    )
    report = Report(
        study=study,
        ledger=ledger_url,
        generated_at=time.time(),
        greenprint_version=__version__,
        metric=metric,
        mode=mode,
        reduce=reduce,
        price_tag=tag,
        runs=run_rows,
        figures=tuple(figures),
        hardware=hardware,
        model_card=model_card_emissions(
            tag, hardware=hardware, training_type=training_type, version=__version__
        ),
        compute_statement=compute_statement(
            tag, runs, study=study, hardware=hardware, version=__version__, final_scores=held_out
        ),
        final_scores=held_out,
        notes=tuple(notes) + tag.notes,
        greener=greener,
        prediction=prediction_summary(runs),
        whatif=whatif_section(runs, tag, forest=forest),
        efficiency=efficiency,
        pruning=pruning,
    )
    # the failed-runs section's JSON: its grouping reads the report's rows
    return dataclasses.replace(report, failures=failures_json(report))
