"""``build_report``: read a study from the ledger and turn it into a :class:`Report`."""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
import shlex
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import AnalysisError, ConfigError, GreenprintError, ReportError
from greenprint._format import count_of
from greenprint._frozen import slot_constructor
from greenprint._gc import gc_paused
from greenprint._liveness import ANCESTORS_KEY, WRITER_KEY
from greenprint._metric_choice import NO_SCORE_STATUSES, is_held_out, pick_metric
from greenprint._prediction import is_reserved_metric
from greenprint._provenance import (
    FPO_ASSUMPTIONS_KEY,
    FPO_KEY,
    Provenance,
    distinct_provenances,
    fpo_assumptions_of,
    is_apportioned,
    is_fpo_lower_bound,
    merge_fpo_assumptions,
    recorded_objectives,
)
from greenprint._records import RunRecord
from greenprint._study_roles import recorded_direction
from greenprint._version import __version__
from greenprint.analysis import PriceTag, StudyTrials, price_tag, score_per_cost, study_trials
from greenprint.analysis._common import (
    Mode,
    Reduce,
    RunForest,
    check_choice,
    check_mode,
    own_tree_writer,
)
from greenprint.analysis._roles import TrialScore, trial_family_labels
from greenprint.carbon._intensity import applied_intensity
from greenprint.report._curve_runs import one_run_curve_notes, one_run_curves
from greenprint.report._efficiency import efficiency_section
from greenprint.report._failure_text import failures_json
from greenprint.report._figures import (
    FigureInputs,
    evp_figures,
    family_hint,
    learning_curve_figure,
    pareto_figure,
    timeline_figure,
)
from greenprint.report._greener import greener_figure, greener_results
from greenprint.report._model import NOTHING_ASSUMED, Figure, Report, RunRow
from greenprint.report._prediction import prediction_summary
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
    from greenprint._types import LedgerSource
    from greenprint.ledger import Ledger

__all__ = ["build_report"]

_STARTED_AT = operator.attrgetter("started_at")

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
        runs = _read_study(led, study, metric)
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
        with gc_paused():  # hundreds of thousands of small acyclic objects (see gc_paused)
            report = _assemble(
                runs,
                study=study,
                ledger_url=led.url,
                metric=metric,
                mode=mode,
                final=final,
                reduce=reduce,
                training_type=training_type,
                samples_of=led.samples,
                max_sampled_runs=max_sampled_runs,
                group_by=group_by,
                run_of=led.run,
            )
            elsewhere = _other_studies_inside(led, study, runs, report.runs)
        if elsewhere:
            report = dataclasses.replace(report, notes=(*report.notes, *elsewhere))
        return report
    finally:
        if opened:
            led.close()


def _other_studies_inside(
    led: Ledger, study: str, runs: Sequence[RunRecord], rows: Sequence[RunRow]
) -> list[str]:
    """Notes naming top-level runs of one study measured inside runs of another.

    A pool made before a search (``multiprocessing.Pool``) whose worker's ``gp.track`` gives
    no ``study=`` (or another): the workers' runs land in that study (``default``), top-level,
    while the search's run read their process tree. The search's study then reads the search
    as an unscored trial, nothing says where its trials went, and the workers' study's total
    is inside the search's too. Such runs are found by the rule that reads a pool's workers'
    runs inside the run open in their parent process
    (:class:`~greenprint.analysis._common.RunForest`), applied to this study's candidates and
    the other studies' top-level runs; a note per other study names them and the runs that
    hold their cost. They are not linked across studies (never guessed): the price tag stays
    this study's runs'.

    Other studies are read only when the ledger holds other studies and this study has either
    side's candidate: a top-level run that read its own process's tree, has no child and
    logged no metric (the search read as an unscored trial), or top-level runs that the report
    reads as roots, of at least two processes started under one process that wrote no run of
    this study (a pool's workers, whose parent's run is elsewhere). Any other study's report
    reads nothing more.
    """
    try:  # the ledger's study names first: one indexed query (13 ms for 100,000 runs) where
        # looking for candidates among the study's runs takes 0.2 s
        others = [name for name in led.studies() if name != study]
        if not others:
            return []
        ids = {run.id for run in runs}
        parents = {run.parent_id for run in runs}
        readers = [  # the cheap tests first
            run
            for run in runs
            if run.scope == "process"
            and run.job_id is None
            and run.id not in parents
            and (run.parent_id is None or run.parent_id not in ids)
            and all(is_reserved_metric(point.name) for point in run.metrics)
            and _read_own_tree(run)
        ]
        workers = _orphan_workers(runs, rows)
        if not readers and not workers:
            return []
        found = [
            run
            for other in others
            for run in led._read(study=other, parent_id=None, points="score")
            if (readers and ANCESTORS_KEY in run.provenance)
            or (workers and run.scope == "process" and _read_own_tree(run))
        ]
        forest = RunForest.build([*readers, *workers, *found]) if found else None
    except GreenprintError as e:  # another study's corrupt row: this study's report stands
        logger.debug("greenprint: the other studies were not read for the note: %s", e)
        return []
    if forest is None:
        return []
    inside: dict[tuple[str, str], list[str]] = {}  # (worker's study, holder's) -> names
    holders: dict[tuple[str, str], set[str]] = {}
    for pos, run in enumerate(forest.runs):
        parent = forest.parents[pos]
        if parent is None or forest.runs[parent].study == run.study:
            continue
        holder = forest.runs[parent]
        if study not in (run.study, holder.study):
            continue
        inside.setdefault((run.study, holder.study), []).append(run.name)
        holders.setdefault((run.study, holder.study), set()).add(holder.id[:8])
    notes = []
    for (theirs, held_by), names in inside.items():
        by = sorted(holders[theirs, held_by])
        listed = sorted(set(names))
        shown = ", ".join(listed[:3]) + (f" and {len(listed) - 3} more" if len(listed) > 3 else "")
        runs_by = f"{'run' if len(by) == 1 else 'runs'} {', '.join(by[:3])}" + (
            f" and {len(by) - 3} more" if len(by) > 3 else ""
        )
        if held_by == study:
            notes.append(
                f"{count_of(len(names), 'top-level run')} of study {theirs!r} ({shown}) ran in "
                f"worker processes inside {runs_by} of this study (e.g. a multiprocessing.Pool "
                "made before the search, whose workers' gp.track gave no study=): this study's "
                "energy holds their cost, so adding both studies' totals counts it twice, and "
                f"they are not read as this study's trials; give the workers' gp.track "
                f"study={study!r} (or parent=) to read them as its trials"
            )
        else:
            notes.append(
                f"{count_of(len(names), 'top-level run')} of this study ({shown}) ran in worker "
                f"processes inside {runs_by} of study {held_by!r}, which measured their process "
                "tree (e.g. a multiprocessing.Pool made before a search, whose workers' "
                f"gp.track gave no study=): study {held_by!r}'s energy holds their cost too, so "
                "adding both studies' totals counts it twice; if they are its trials, give the "
                f"workers' gp.track study={held_by!r}"
            )
    return notes


_PROVENANCE = operator.attrgetter("provenance")


def _orphan_workers(runs: Sequence[RunRecord], rows: Sequence[RunRow]) -> list[RunRecord]:
    """Root runs of processes that ran at once under one process that wrote no run here.

    Top-level runs the report reads as roots (no parent found in the study), grouped by the
    process each was started under (the first of its ancestors), where two of different
    processes overlap in time: a pool's workers whose parent's run is elsewhere (not a shell
    loop's scripts, one after another). Text comparisons only.
    """
    distinct = distinct_provenances(map(_PROVENANCE, runs))
    if not any(isinstance(p.get(ANCESTORS_KEY), str) for p, _ in distinct):
        return []  # no run recorded the process it was started under (each object read once)
    roots = {row.id for row in rows if row.parent_id is None}
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for run in runs:
        up = run.provenance.get(ANCESTORS_KEY)
        if not isinstance(up, str) or run.scope != "process" or run.job_id is not None:
            continue
        if run.id in roots:
            groups.setdefault((run.host, up.split(";", 1)[0].strip()), []).append(run)
    pools = []
    for key, group in groups.items():
        if len(group) < 2:
            continue
        group.sort(key=_STARTED_AT)  # in start order already: one pass
        reach, by = -math.inf, None  # the latest end so far, and its process
        for run in group:
            writer = run.provenance.get(WRITER_KEY)
            if run.started_at < reach and writer != by:
                pools.append((key, group))
                break
            ended = math.inf if run.ended_at is None else run.ended_at
            if ended > reach:
                reach, by = ended, writer
    if not pools:
        return []
    wrote = {  # "pid N tick T" of each process that wrote a run of the study, by host
        (run.host, " ".join(text.split()[:4]))
        for run in runs
        if isinstance(text := run.provenance.get(WRITER_KEY), str)
    }
    return [run for key, group in pools if key not in wrote for run in group]


def _read_own_tree(run: RunRecord) -> bool:
    """Whether ``run`` read its own process's tree (not ``pid=`` another process's)."""
    return own_tree_writer(run.provenance) is not None


def _read_study(led: Ledger, study: str, metric: str | None) -> tuple[RunRecord, ...]:
    """The study's runs with the metric points a report reads.

    Of each metric only the points a score, a role or the choice of metric is read from
    (``points="score"``). A metric given by name: only its points and greenprint's reserved
    ones are read at all (the report reads no other metric then: roles and scores are judged
    by it, predictions by the reserved ones), so a study that logged a loss and a learning rate
    at every step is not fetched whole (100,000 runs of 43 points: a tenth of the points).
    When no run logged a value of that metric, the study is read again with every metric, so
    the error lists the metrics that were logged; so it is when no finished or pruned run did
    (only failed runs did: the note on the missing EVP curve lists what the trials logged).
    """
    if metric is None or is_reserved_metric(metric):
        return tuple(led._read(study=study, points="score"))
    runs = tuple(led._read(study=study, points="score", metrics=(metric,)))
    for run in runs:
        if run.status in ("finished", "pruned"):
            for p in run.metrics:
                if p.name == metric and p.value == p.value:
                    return runs
    return tuple(led._read(study=study, points="score"))


def _pick_study(led: Ledger, study: str | None) -> str:
    if study is not None:
        if not isinstance(study, str) or not study:
            raise ReportError(f"a study name must be a non-empty string, not {study!r}")
        return study
    known = led.studies()
    if len(known) == 1:
        return str(known[0])
    if not known:
        raise ReportError(f"ledger {led.url} holds no runs: nothing to report")
    raise several_studies(led.url, known)


def several_studies(url: str, known: Sequence[str], *, how: str = "") -> ReportError:
    """The refusal to guess which of a ledger's studies to report.

    ``how``: how to choose, in the caller's words (``" with --study"``: the command's).
    """
    return ReportError(
        f"ledger {url} holds {len(known)} studies; choose one{how}: "
        + ", ".join(repr(s) for s in known)
    )


#: The score of a run of those statuses in the runs table: none.
_NO_SCORE_OF_RUN = TrialScore(math.nan, "none")


def _final_scores(
    runs: Sequence[RunRecord], final_id: str | None, metric: str | None
) -> tuple[tuple[str, float], ...]:
    """The held-out scores the final run logged when it has none of ``metric``.

    A final model retrained on all the data is scored on a test split the trials never saw
    (the demo's ``test_accuracy``): the number a paper reports, which the report must state
    although the trials are ranked by another metric. Each held-out metric's last finite value.
    A final run that logged none of its own but whose finished parts did (``greenprint run
    --role final -- python final.py``, the script scoring its model in a ``gp.track`` run of
    its own, inside the command's) has their mean, per metric, as a trial has its folds'.
    """
    final = next((r for r in runs if r.id == final_id), None)
    if final is None or (metric is not None and final.metric(metric) is not None):
        return ()
    found = _held_out(final, metric)
    if found:
        return tuple(found.items())
    values = held_out_of_parts((run for run in runs if run.parent_id == final_id), metric)
    return tuple((name, math.fsum(v) / len(v)) for name, v in values.items())


def held_out_of_parts(parts: Iterable[RunRecord], metric: str | None) -> dict[str, list[float]]:
    """The held-out values (:func:`_held_out`) of the finished ``parts``, by metric name.

    What a final run that logged none of its own is scored by, their mean per metric (the
    report's sentence on the final model, ``ledger ls --tree``'s METRIC cell).
    """
    values: dict[str, list[float]] = {}
    for run in parts:
        if run.status == "finished":
            for name, value in _held_out(run, metric).items():
                values.setdefault(name, []).append(value)
    return values


def _held_out(run: RunRecord, metric: str | None) -> dict[str, float]:
    """The run's held-out metrics (not ``metric``, not greenprint's own): last finite values."""
    found: dict[str, float] = {}
    for point in run.metrics:
        name = point.name
        if (
            name != metric
            and is_held_out(name)
            and not is_reserved_metric(name)
            and math.isfinite(point.value)
        ):
            found[name] = point.value
    return found


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
    run_of: Any = None,
) -> Report:
    metric, metric_note = pick_metric(runs, metric, study)
    forest = RunForest.build(runs)
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
    for note in (
        trials.roles_note,
        trials.score_note,
        trials.diverged_note,
        _budget_note(runs),
        _apportioned_note(runs),
        _fpo_assumptions_note(runs),
    ):
        if note:
            notes.append(note)
    ranked = bool(trials.roles.positions("final")) or any(
        forest.column("status")[p] == "finished" and not math.isnan(trials.scores[p].score)
        for p in trials.positions
    )
    tag: PriceTag
    if final is not None or ranked:
        # the mode as given: the price tag notes a mode inferred from the metric's name
        tag = price_tag(
            runs,
            metric=metric,
            mode=given_mode,
            final=final,
            reduce=reduce,
            trials=trials,
            samples_of=samples_of,
        )
    else:
        tag = price_tag(runs, mode=mode, reduce=reduce, samples_of=samples_of)
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
    if again := searches_run_again(forest, trials.positions):
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
    )
    figures: list[Figure] = []
    started = time.perf_counter()
    if metric is not None:  # else NO_METRIC_NOTE says why there is no score figure
        evp, evp_notes = evp_figures(inputs)
        figures.extend(evp)
        notes.extend(evp_notes)
        if evp and (hint := family_hint(inputs)):
            notes.append(hint)
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
    figure, why = timeline_figure(inputs, samples_of, max_sampled_runs=max_sampled_runs)
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
    held_out = _final_scores(runs, final_id, metric)
    if not held_out and run_of is not None and final_id is not None and tag.final is not None:
        if tag.final.score is None:  # a metric given: the runs were read with its points only
            parts = [run_of(r.id) for r in runs if r.parent_id == final_id]
            held_out = _final_scores((run_of(final_id), *parts), final_id, metric)
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
    report = Report(
        study=study,
        ledger=ledger_url,
        generated_at=time.time(),
        greenprint_version=__version__,
        metric=metric,
        mode=mode,
        reduce=reduce,
        price_tag=tag,
        runs=_rows(trials, final_id),
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
    )
    # the failed-runs section's JSON: its grouping reads the report's rows
    return dataclasses.replace(report, failures=failures_json(report))


def _scorer_note(forest: RunForest, sweeps: Sequence[int], metric: str | None) -> str | None:
    """Which scorer a scikit-learn search's ``score`` is, when the report ranks by ``score``.

    A search of several scorers (``scoring={"acc": ..., "f1": ...}, refit="f1"``) logs each
    candidate's ``score`` as its refit scorer's mean (the first scorer's with ``refit=False``);
    ``track_search`` records its column name as the sweep's param ``score_metric``. ``None``
    when the report ranks by another metric or no sweep recorded one.
    """
    if metric != "score":
        return None
    named = sorted(
        {str(found) for p in sweeps if (found := forest.runs[p].params.get("score_metric"))}
    )
    if not named:
        return None
    # refit=False (or a callable refit) names no scorer: the trials' score is the first's
    refits = {
        "first" if "refit" in forest.runs[p].params else "refit"
        for p in sweeps
        if forest.runs[p].params.get("score_metric")
    }
    which = {
        frozenset({"refit"}): "the search's refit scorer",
        frozenset({"first"}): "the search's first scorer, as it refit by none of them",
    }.get(frozenset(refits), "the search's refit scorer, else its first")
    return (
        f"'score' is scikit-learn's {' or '.join(named)} ({which}; each candidate's mean over "
        "its folds); the other scorers' means are logged as mean_test_<scorer>: rank by one "
        "with --metric"
    )


def _objectives_note(
    forest: RunForest,
    positions: Sequence[int],
    metric: str | None,
    mode: Mode,
    study: str,
    *,
    given: bool = False,
) -> str | None:
    """What the search the trials ran in optimised, against what the report ranks by.

    The objectives (each metric and its direction) a search recorded in its trials'
    provenance (``objectives``: greenprint's Optuna callback), the most trials' record: a
    study of several objectives is ranked by one metric, and a metric can be ranked the other
    way than the search's direction (Optuna minimises ``value`` by default). With a mode
    ``given`` by the user, a metric that is no objective is checked against the direction its
    runs recorded for it (``metric_directions``: a scikit-learn scorer's, which ranks every
    score highest first). ``None`` when no trial recorded either, or the metric is ranked as
    recorded and the search had one objective.
    """
    if metric is None:
        return None
    provenances = forest.column("provenance")
    recorded = recorded_objectives(provenances[p] for p in positions).most_common(1)
    objectives = recorded[0][0] if recorded else ()
    directions = dict(objectives)
    better = "higher" if mode == "max" else "lower"
    against = directions.get(metric)
    if against is None and given:  # without a mode given, the ranking followed the record
        found = recorded_direction([forest.runs[p] for p in positions], metric)
        if found is not None:
            against = "minimize" if found[0] == "min" else "maximize"
    wrong = against is not None and (against == "minimize") != (mode == "min")
    if len(objectives) <= 1 and not wrong:
        return None
    flag = {"maximize": "max", "minimize": "min"}
    done = {"maximize": "maximised", "minimize": "minimised"}
    text = ""
    if len(objectives) > 1:
        named = [f"{name} ({done[d]})" for name, d in objectives]
        text = (
            f"the search optimised {len(objectives)} objectives, {', '.join(named[:-1])} and "
            f"{named[-1]}: the report ranks the trials by one, {metric} ({better} is better)"
        )
        others = [f"--metric {name} --mode {flag[d]}" for name, d in objectives if name != metric]
        if others:
            text += f"; rank by another with {' or '.join(others)}"
        text += (
            f"; the score-against-energy figure's front is {metric} against energy, not the "
            "search's front over its objectives"
        )
    if wrong:
        way = against or "maximize"
        first = "highest" if mode == "max" else "lowest"
        which = f"the search {done[way]} {metric!r}, the report ranks it {first} first"
        fix = shlex.join(
            ["greenprint", "report", "--study", study, "--metric", metric, "--mode", flag[way]]
        )
        text = f"{text}; {which}: {fix}" if text else f"{which}: {fix}"
    return text


#: How the error of a run a "stop" budget ended begins (its status is ``interrupted``).
_BUDGET_STOP = "BudgetExceeded: "


def _budget_note(runs: Sequence[RunRecord]) -> str | None:
    """Which runs a budget stopped, and why: their status alone reads as a Ctrl-C's.

    A run stopped with the run it is nested in (a fold in its trial) is left to that run.
    """
    stopped = {
        r.id: r
        for r in runs
        if r.status == "interrupted" and r.error and r.error.startswith(_BUDGET_STOP)
    }
    if not stopped:
        return None
    shown = sorted(
        (r for r in stopped.values() if r.parent_id not in stopped), key=lambda r: r.started_at
    )
    reasons = "; ".join(f"{r.name}: {(r.error or '')[len(_BUDGET_STOP) :]}" for r in shown[:3])
    more = f"; and {len(shown) - 3} more" if len(shown) > 3 else ""
    count = "1 run was" if len(shown) == 1 else f"{len(shown)} runs were"
    spent = "what it spent" if len(shown) == 1 else "what they spent"
    return (
        f"{count} stopped by a budget (status interrupted; {spent} is in the price tag): "
        f"{reasons}{more}"
    )


def _apportioned_note(runs: Sequence[RunRecord]) -> str | None:
    """Which runs' energy is a share of their search's, not metered run by run.

    scikit-learn's ``track_search(..., method="apportion")`` meters the search once and gives
    each candidate, fold and refit a share of it by their fit and score times: their energy
    reads as measured (the search's meters), but a run's own figure is an estimate of its share.
    """
    seen: dict[int, bool] = {}  # provenance dictionaries, most shared by many runs
    shares = []
    for run in runs:
        found = seen.get(id(run.provenance))
        if found is None:
            found = seen[id(run.provenance)] = is_apportioned(run.provenance)
        if found:
            shares.append(run)
    if not shares:
        return None
    ids = {r.id for r in shares}
    by_id = {r.id: r for r in runs}
    searches = sorted(
        {r.parent_id for r in shares if r.parent_id is not None and r.parent_id not in ids},
        key=lambda i: by_id[i].started_at if i in by_id else 0.0,
    )
    names = [repr(by_id[i].name) for i in searches if i in by_id]
    named = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    of = f"of {'search' if len(searches) == 1 else f'{len(searches)} searches'} {named}".rstrip()
    count = "1 run" if len(shares) == 1 else f"{len(shares)} runs"
    return (
        f"the energy of {count} (the candidates, folds and refit {of}, tracked with "
        "method='apportion') is not metered run by run: each is a share of its search's "
        "measured energy by its fit and score times (scikit-learn's cv_results_), and the "
        "shares add up to it; a run's own figure is an estimate"
    )


#: FFT libraries as :attr:`FPOResult.assumptions <greenprint.FPOResult>` names them -> as
#: people write them.
_FFT_LIBRARIES = {"mkl": "MKL", "pocketfft": "pocketfft", "cufft": "cuFFT"}


def _fpo_assumptions_note(runs: Sequence[RunRecord]) -> str | None:
    """What the study's counted FPO assumed, and for how many runs (once, for the whole study).

    A count of an FFT depends on the library that ran it (an ``rfft``'s normalisation: MKL
    and cuFFT 2 per one-sided complex value, pocketfft 1 per real input); the count records it
    (:attr:`FPOResult.assumptions <greenprint.FPOResult>`), and a run given the count keeps it
    in its provenance (``"fpo_assumptions"``). Each name and value is said with the number of
    runs with FPO that assumed it, most runs first. ``None`` when no run's FPO assumed anything.
    """
    counts: dict[tuple[str, str], int] = {}
    for provenance, many in distinct_provenances(
        r.provenance for r in runs if r.fpo is not None and FPO_ASSUMPTIONS_KEY in r.provenance
    ):
        for pair in fpo_assumptions_of(provenance).items():
            counts[pair] = counts.get(pair, 0) + many
    if not counts:
        return None
    parts = []
    for (name, value), many in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0])):
        if name == "fft_library":
            libraries = value.split("+")
            named = " and ".join(_FFT_LIBRARIES.get(one, one) for one in libraries)
            verb = "compute" if len(libraries) > 1 else "computes"
            what = f"count FFTs as {named} {verb} them ({name}={value})"
        elif " " in value:  # a sentence ("counted as ATen's CUDA grid_sampler_2d kernel ...")
            what = f"assume {name}: {value}"
        else:
            what = f"assume {name}={value}"
        parts.append(f"FPO of {count_of(many, 'run')} {what}")
    return (
        "; ".join(parts) + ": a count on another torch build or device can differ there (each "
        "run's provenance has what its FPO assumed, fpo_assumptions)"
    )


#: The model card's ``training_type`` when neither the caller nor the study gives one.
UNKNOWN_TRAINING_TYPE = "unknown"


def _training_type(
    runs: Sequence[RunRecord], given: str | None, final_id: str | None
) -> tuple[str, str | None]:
    """The model card's ``training_type``: given, else the study's, else unknown (with a note)."""
    if given is not None:
        if not isinstance(given, str) or not given.strip():
            raise ConfigError(f"training_type must be a non-empty string, not {given!r}")
        return given.strip(), None
    found: dict[str, None] = {}
    final_value = None
    for run in runs:
        value = run.params.get("training_type")
        if isinstance(value, str) and value.strip():
            found[value.strip()] = None
            if run.id == final_id:
                final_value = value.strip()
    if len(found) == 1:
        return next(iter(found)), None
    if final_value is not None:
        return final_value, (
            f"model card training_type {final_value!r} is the final run's; the study's runs "
            f"set {', '.join(repr(v) for v in found)}"
        )
    if found:
        return UNKNOWN_TRAINING_TYPE, (
            f"model card training_type unknown: the study's runs set several "
            f"({', '.join(repr(v) for v in found)}); choose with --training-type"
        )
    return UNKNOWN_TRAINING_TYPE, (
        "model card training_type unknown: give it with greenprint report --training-type "
        "(pre-training, fine-tuning...) or a run parameter training_type"
    )


def _energy_source(run: RunRecord, memo: dict[tuple[Any, ...], str]) -> str:
    # by the provenance dictionary's id (a study's runs share a few: the ledger decodes each
    # distinct text once), then by its content
    key = (
        id(run.provenance),
        run.energy_cpu_kwh is None,
        run.energy_gpu_kwh is None,
        run.energy_ram_kwh is None,
    )
    found = memo.get(key)
    if found is None:
        content = (
            key[1:],
            run.provenance.get("cpu"),
            run.provenance.get("gpu"),
            run.provenance.get("ram"),
        )
        found = memo.get(content)
        if found is None:
            found = memo[content] = _energy_source_of(run)
        memo[key] = found
    return found


def _energy_source_of(run: RunRecord) -> str:
    kinds = set()
    for component, kwh in (
        ("cpu", run.energy_cpu_kwh),
        ("gpu", run.energy_gpu_kwh),
        ("ram", run.energy_ram_kwh),
    ):
        if kwh is None:
            continue
        source = run.provenance.get(component)
        if source is None:
            kinds.add("unknown")
        else:
            kinds.add("estimated" if Provenance.parse(source).is_estimate else "measured")
    if not kinds:
        return "unknown"
    return kinds.pop() if len(kinds) == 1 else "mixed"


_INF = math.inf
#: FPO below this divide to a finite GFLOP (every int FPO that is not astronomically large).
_BIG_FPO = 10**300


#: ``RunRow(*values)`` at half the cost, every field given (``_frozen.slot_constructor``).
_make_row = slot_constructor(RunRow)
#: The order ``_rows`` gives RunRow's fields in (positionally: keywords cost 0.1 s per 100,000
#: rows); a test checks that it is the dataclass's.
ROW_FIELD_ORDER = (
    "id",
    "name",
    "parent_id",
    "depth",
    "is_trial",
    "status",
    "score",
    "started_at",
    "duration_s",
    "energy_kwh",
    "emissions_kg",
    "fpo",
    "dataset_size",
    "param_count",
    "params",
    "energy_source",
    "pue",
    "intensity_g_per_kwh",
    "intensity_source",
    "score_per_kwh",
    "score_per_gflop",
    "error",
    "is_final",
    "role",
    "role_inferred",
    "score_source",
    "fpo_lower_bound",
    "job_id",
    "node_rank",
    "local_rank",
    "node_meter",
    "contained",
    "fpo_assumptions",
)


def _fpo_with_children(forest: RunForest) -> dict[int, int]:
    """Position -> FPO of each run with children, where the price tag counts more than its own.

    A run's FPO as the price tag counts them (:meth:`~greenprint.analysis._common.RunForest.
    known_sums`), when they are known: at least its nested children's sum (a sweep container
    that counted none of its own; a trial that counted 1 GFPO of its own while its two folds
    counted 1 GFPO each: its row read 1 GFPO and 0.9 per GFLOP, where the price tag counted 2),
    plus what children outside it add (workers in other processes). The root rows then add up
    to the price tag's FPO.
    """
    if not forest.inner_order:
        return {}
    fpos = forest.column("fpo")
    sums = forest.fpo_sums
    return {
        position: int(sums.inclusive[position])
        for position in forest.inner_order
        if sums.complete[position] and sums.inclusive[position] != fpos[position]
    }


def _bounded_within(forest: RunForest, positions: Collection[int]) -> set[int]:
    """Of ``positions`` (rows showing FPO with their children's), those that are a lower bound.

    A run inside them, or they, counted ops with no rule: their row reads "at least", as
    their children's rows do.
    """
    cache: dict[int, bool] = {}  # id(provenance) -> a lower bound (runs share provenances)

    def own(p: int) -> bool:
        run = forest.runs[p]
        if run.fpo is None or FPO_KEY not in run.provenance:
            return False
        key = id(run.provenance)
        found = cache.get(key)
        if found is None:
            found = cache[key] = is_fpo_lower_bound(run.provenance)
        return found

    children = forest.children
    bounded: dict[int, bool] = {}
    for p in forest.inner_order:  # children before parents
        bounded[p] = own(p) or any(bounded[c] if c in bounded else own(c) for c in children[p])
    return {p for p in positions if bounded.get(p)}


def _assumed_within(
    forest: RunForest, positions: Collection[int], own: Callable[[RunRecord], Mapping[str, str]]
) -> dict[int, Mapping[str, str]]:
    """Of ``positions`` (rows showing FPO with their children's), what those FPO assumed.

    Their own counts' assumptions merged with those of every run inside them
    (:func:`~greenprint._provenance.merge_fpo_assumptions`: ``mkl`` and ``cufft`` read
    ``cufft+mkl``); a position none of them assumed anything is left out. ``own`` gives a
    run's own (:data:`~greenprint.report._model.NOTHING_ASSUMED` when none).
    """
    runs, children = forest.runs, forest.children
    merged: dict[int, Mapping[str, str]] = {}
    for p in forest.inner_order:  # children before parents
        parts = [merged[c] if c in merged else own(runs[c]) for c in children[p]]
        parts = [part for part in (own(runs[p]), *parts) if part]
        if parts:
            merged[p] = parts[0] if len(parts) == 1 else merge_fpo_assumptions(*parts)
    return {p: merged[p] for p in positions if p in merged}


def _rows(trials: StudyTrials, final_id: str | None) -> tuple[RunRow, ...]:
    forest = trials.forest
    roles = trials.roles
    depth = [0] * len(forest.runs)
    for position in reversed(forest.order):  # parents before children
        for child in forest.children[position]:
            depth[child] = depth[position] + 1
    rows = []
    sources: dict[tuple[Any, ...], str] = {}
    index = forest.index
    role_of, inferred, scores = roles.roles, roles.inferred, trials.scores
    row = _make_row
    counted_by_children = _fpo_with_children(forest)
    # a row showing its children's FPO reads "at least" when one of them counted in part
    bounded = _bounded_within(forest, counted_by_children) if counted_by_children else set()
    # what a run's FPO assumed (an FFT library), read once per distinct provenance (a study's
    # runs share a few); a row showing its children's FPO merges theirs
    assumed_by: dict[int, Mapping[str, str]] = {}

    def assumed(run: RunRecord) -> Mapping[str, str]:
        provenance = run.provenance
        if run.fpo is None or FPO_ASSUMPTIONS_KEY not in provenance:
            return NOTHING_ASSUMED
        found = assumed_by.get(id(provenance))
        if found is None:
            found = assumed_by[id(provenance)] = fpo_assumptions_of(provenance) or NOTHING_ASSUMED
        return found

    assumed_within = (
        _assumed_within(forest, counted_by_children, assumed) if counted_by_children else {}
    )
    lower_is_better = trials.mode == "min"
    runs, parents = forest.runs, forest.parents
    adding = forest.adds_to_the_total
    statuses = forest.column("status")  # a job's head: its job's (another node failed)
    for position, run in enumerate(runs):
        scored = scores[position]
        status = statuses[position]
        if status in NO_SCORE_STATUSES and scored.source != "none":
            # a failed, interrupted or lost run produced no model: what it logged before it
            # ended is no score (a killed trial's last intermediate value read as its score,
            # while EVP, the best trials and the final run's choice left it out)
            scored = _NO_SCORE_OF_RUN
        score = scored.score
        known = None if score != score else score  # NaN: no score
        fpo = run.fpo
        if counted_by_children:
            fpo = counted_by_children.get(position, fpo)
        energy_kwh = run.energy_kwh
        provenance = run.provenance
        parent_id = run.parent_id
        linked = parents[position]
        if linked is not None:  # a job's node or rank, under its counter; a reused worker's
            parent_id = runs[linked].id  # run, under the run open when it started
        if parent_id is not None and parent_id not in index:
            parent_id = None  # its parent is not in the study: a root here
        source = sources.get(
            (
                id(provenance),
                run.energy_cpu_kwh is None,
                run.energy_gpu_kwh is None,
                run.energy_ram_kwh is None,
            )
        ) or _energy_source(run, sources)
        # score_per_cost, without a call in the common case (finite score, positive energy);
        # a score that is better lower (a loss) per kWh or per GFLOP means nothing: None
        if known is None or lower_is_better:
            per_kwh = per_gflop = None
        else:
            finite = 0.0 <= known < _INF  # a negative score per cost is no efficiency
            if finite and type(energy_kwh) is float and 0.0 < energy_kwh < _INF:
                per_kwh = known / energy_kwh
            else:
                per_kwh = score_per_cost(known, energy_kwh)
            if fpo is None:
                per_gflop = None
            elif finite and type(fpo) is int and 0 < fpo < _BIG_FPO:
                per_gflop = known / (fpo / 1e9)
            else:
                per_gflop = score_per_cost(known, fpo / 1e9)
        # an hourly series' intensity: its energy-weighted mean over the run (unpacked here:
        # a call with *applied_intensity(...) in it cost 0.025 s per 100,000 rows more)
        intensity, intensity_source = applied_intensity(
            energy_kwh=energy_kwh,
            pue=run.pue,
            emissions_kg=run.emissions_kg,
            recorded_g_per_kwh=run.intensity_g_per_kwh,
            source=provenance.get("intensity") or run.intensity_source,
        )
        rows.append(
            row(  # in ROW_FIELD_ORDER
                run.id,  # id
                run.name,  # name
                parent_id,  # parent_id
                depth[position],  # depth
                role_of[position] == "trial",  # is_trial
                status,  # status
                known,  # score
                run.started_at,  # started_at
                run.duration_s,  # duration_s
                energy_kwh,  # energy_kwh
                run.emissions_kg,  # emissions_kg
                fpo,  # fpo
                run.dataset_size,  # dataset_size
                run.param_count,  # param_count
                run.params,  # params
                source,  # energy_source
                run.pue,  # pue
                intensity,  # intensity_g_per_kwh
                intensity_source,  # intensity_source
                per_kwh,  # score_per_kwh
                per_gflop,  # score_per_gflop
                run.error,  # error
                run.id == final_id,  # is_final
                role_of[position],  # role
                inferred[position],  # role_inferred
                scored.source,  # score_source
                # its FPO counted with ops it could not count in full: "at least"
                (run.fpo is not None and FPO_KEY in provenance and is_fpo_lower_bound(provenance))
                or position in bounded,
                run.job_id,  # job_id
                run.node_rank,  # node_rank
                run.local_rank,  # local_rank
                run.node_meter,  # node_meter
                # false where its cost adds to the price tag's (another host, another node
                # of its job, a rank its job linked under a root rank 0); true inside a
                # measurement above it (nested, a rank under its node's meter, a rank its
                # job linked under its rank 0 inside a sweep's process tree)
                None if parent_id is None else not adding[position],  # contained
                # what its FPO assumed (as fpo: with its children's when fpo is their sum)
                assumed_within.get(position)
                or (
                    assumed(run)
                    if run.fpo is not None and FPO_ASSUMPTIONS_KEY in provenance
                    else NOTHING_ASSUMED
                ),
            )
        )
    return tuple(rows)
