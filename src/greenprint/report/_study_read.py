"""Reading a study from the ledger for a report.

Which study, its runs, and the runs of other studies measured inside them (or holding them).
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from greenprint._exceptions import GreenprintError, ReportError
from greenprint._format import count_of
from greenprint._liveness import ANCESTORS_KEY, WRITER_KEY
from greenprint._metric_names import is_bookkeeping_metric, is_curve_x
from greenprint._prediction import is_reserved_metric
from greenprint._provenance import (
    distinct_provenances,
)
from greenprint._pruned import STEP_METRIC_KEY
from greenprint._records import RunRecord
from greenprint._role_rules import _not_a_score
from greenprint.analysis._common import (
    RunForest,
    own_tree_writer,
)
from greenprint.report._model import RunRow

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.ledger import Ledger


__all__ = ["several_studies"]


_STARTED_AT = operator.attrgetter("started_at")

logger = logging.getLogger(__name__)


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
        readers = _unscored_readers(runs, ids, parents)
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


def _unscored_readers(
    runs: Sequence[RunRecord], ids: set[str], parents: set[str | None]
) -> list[RunRecord]:
    """The top-level runs that read their own process's tree and have no child nor metric.

    Greenprint's own metrics aside: a search read as an unscored trial, its trials elsewhere.
    """
    return [  # the cheap tests first
        run
        for run in runs
        if run.scope == "process"
        and run.job_id is None
        and run.id not in parents
        and (run.parent_id is None or run.parent_id not in ids)
        and all(is_reserved_metric(point.name) for point in run.metrics)
        and _read_own_tree(run)
    ]


def _read_own_tree(run: RunRecord) -> bool:
    """Whether ``run`` read its own process's tree (not ``pid=`` another process's)."""
    return own_tree_writer(run.provenance) is not None


#: Roles given to runs that are never a study's trials, nor the parts that score one.
_NEVER_TRIALS = frozenset({"baseline", "final", "learning-curve", "sweep", "greener"})


class StudyRead(NamedTuple):
    """The runs a report reads (:func:`_read_study`).

    Attributes:
        runs: the study's runs, each with the points of the metrics read.
        narrowed: they hold the points of the metric given (and of those the report reads
            beside it) alone, not every metric's.
    """

    runs: tuple[RunRecord, ...]
    narrowed: bool = False


def _read_study(led: Ledger, study: str, metric: str | None) -> StudyRead:
    """The study's runs with the metric points a report reads, and whether they were narrowed.

    Of each metric only the points a score, a role or the choice of metric is read from
    (``points="score"``). A metric given by name: only its points and greenprint's reserved
    ones are read, so a study that logged a loss and a learning rate at every step is not
    fetched whole (100,000 runs of 43 points: a tenth of the points), where that read makes the
    report that choosing the metric makes (:func:`_narrow_read`); else every metric's.
    Narrowed (``True``): a note that lists what the runs logged beside the metric reads them
    again whole (:class:`~greenprint.report._figure_inputs.EveryMetricNeeded`).
    """
    if metric is not None and not is_reserved_metric(metric):
        narrowed = _narrow_read(led, study, metric)
        if narrowed is not None:
            return narrowed
    return StudyRead(tuple(led._read(study=study, points="score")))


def _narrow_read(led: Ledger, study: str, metric: str) -> StudyRead | None:
    """The study read with the points of ``metric`` only, or ``None``: every metric's is read.

    Only the points of ``metric``, of greenprint's own and of the metrics the report reads
    beside it: a curve's x (a training-set size, a param's value: :mod:`._curve_runs`), a
    name inside the metric's (``val_acc`` in ``best_val_acc``: a sweep's best child, read by
    the role rules) and the pruned trials' ``step_metric``. Every metric's where a trial was
    pruned with none (its last step is any metric's: their smallest step is in no mark, and a
    query of their marked points' steps costs what reading them does), where a run with no
    finite value of the metric logged another score (the role rules read it as a run that
    logged one, a retrain without its role), where the runs record a param of a metric's name
    (a validation curve inside a run), and where the report lists the metrics the runs logged:
    no run logged a value of ``metric`` (the error lists them), no finished or pruned one did
    (the note on the missing EVP curve lists what the trials logged), only runs given a role
    that is never a trial did (``--metric log_loss`` that the baselines logged, beside trials
    that logged ``neg_log_loss``), a baseline has none (the note on baselines drawn nowhere
    names what they logged: a Lightning baseline's ``eval_accuracy`` beside a search ranked by
    its ``objective``), or a top-level run that logged none of it may be a search read as an
    unscored trial whose trials are in another study (:func:`_other_studies_inside`). A note
    found listing them on the narrowed read has the report built again from the whole one.
    """
    others = [n for n in led._metric_names() if n != metric and not is_reserved_metric(n)]
    if others:  # another study's, perhaps (every run's names: 25 ms for 100,000 runs)
        others = [n for n in led._metric_names(study) if n != metric and not is_reserved_metric(n)]
    if not others:  # the study logged no other metric: the read of every metric's
        return StudyRead(tuple(led._read(study=study, points="score", metrics=(metric,))))
    # a curve's x, and a name inside the metric's (val_acc in best_val_acc: the children's
    # best that a sweep logged, _role_rules._logs_its_best_child)
    wanted = [metric, *(n for n in others if is_curve_x(n) or n in metric)]
    stepped = {p.get(STEP_METRIC_KEY) or None for p in led._provenances(study, "pruned")}
    if None in stepped or len(stepped) > 1:
        return None  # a pruned trial's last step is any metric's (or the trials' are several)
    wanted += [n for n in stepped if n is not None and n not in wanted]
    if led._unscored_logging(study, metric, [n for n in others if not _not_a_score(n)]):
        return None  # a run scored by another metric only: read as unscored (_role_rules)
    runs = tuple(led._read(study=study, points="score", metrics=wanted))
    params = {name for run in runs for name in run.params}
    if any(n in params and n not in wanted and not is_bookkeeping_metric(n) for n in others):
        return None  # a param's value logged as a metric: a validation curve inside a run
    if not all(_has_value(run, metric) for run in runs if run.role == "baseline") or not any(
        _has_value(run, metric)
        for run in runs
        if run.status in ("finished", "pruned") and run.role not in _NEVER_TRIALS
    ):
        return None
    if _unscored_readers(runs, {r.id for r in runs}, {r.parent_id for r in runs}) and any(
        name != study for name in led.studies()
    ):
        return None
    return StudyRead(runs, True)


def _has_value(run: RunRecord, metric: str) -> bool:
    """Whether ``run`` logged a value of ``metric`` that is not NaN."""
    return any(p.name == metric and p.value == p.value for p in run.metrics)


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
