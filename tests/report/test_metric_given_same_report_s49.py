"""A report ranked by a metric given by name is the report that chose that metric itself.

``greenprint report --metric accuracy`` reads only the points of ``accuracy`` (and greenprint's
own), a tenth of a study that logged a loss at every step; the report it writes must still be
the one ``greenprint report`` writes when it chooses ``accuracy`` itself, but for the note on
that choice. It was not: the pruned trials' steps were counted on ``accuracy``'s alone (a
trial pruned at step 5 of its loss read as stopped at step 3), a learning curve logged inside
each run (``run.log(train_size=n, accuracy=s)``) went unnoted, a retrain scored on a test split
only read as a run that logged nothing, a sweep that logged its best child's ``val_acc`` as
``best_val_acc`` read as a trial, and a final run scored by its folds lost its held-out scores.
Here on any study (nested runs, every role and status, NaN and infinite values, scores logged
by parts only, in-run curves by a size or a param, pruned trials with and without their step
metric, runs of another study, ledgers read through the marks or point by point; and searches
as users log them): the report given the metric it chooses is the chosen one, and the report
given any metric the runs logged, read narrowed, is the one read with every metric's points.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _clean_env import BIN
from _report_cli import GREENPRINT, run_in
from greenprint import GreenprintError, MetricPoint, RunRecord
from greenprint._pruned import PRUNED_STEP_KEY, STEP_METRIC_KEY
from greenprint.ledger import Ledger
from greenprint.report import _study_read, build_report

NAMES = ["accuracy", "loss", "train_size", "C", "val_acc", "best_val_acc", "test_accuracy", "lr"]
ROLES = [None, None, None, "trial", "part", "baseline", "final", "learning-curve", "sweep"]
STATUSES = ["finished", "finished", "finished", "pruned", "failed"]


def _without_choice(document: dict[str, Any]) -> dict[str, Any]:
    """The report but its time and the notes on a metric it chose (none when given)."""
    document = dict(document)
    document.pop("generated_at")
    document["notes"] = [
        n
        for n in document["notes"]
        if not n.startswith("runs ranked by ")  # the choice, and a training metric's
    ]
    return document


def _same_report(ledger: Path, study: str) -> str | None:
    chosen = build_report(ledger, study=study)
    if chosen.metric is None:
        return None
    given_report = build_report(ledger, study=study, metric=chosen.metric)
    given_doc, chosen_doc = (
        _without_choice(given_report.to_dict()),
        _without_choice(chosen.to_dict()),
    )
    assert given_doc["notes"] == chosen_doc["notes"]
    assert given_doc == chosen_doc
    return chosen.metric


def _report_or_error(ledger: Path, study: str, metric: str) -> Any:
    try:
        document = build_report(ledger, study=study, metric=metric).to_dict()
    except GreenprintError as e:
        return type(e), str(e)
    document.pop("generated_at")
    return document


def _same_as_read_whole(ledger: Path, study: str, metric: str) -> None:
    """The report given ``metric``, read narrowed, is the one read with every metric's points.

    The read of every metric is the report's own where it does not narrow (``_narrow_read``
    answering ``None``): the reference, any metric the runs logged.
    """
    narrowed = _report_or_error(ledger, study, metric)
    with patch.object(_study_read, "_narrow_read", lambda *args: None):
        whole = _report_or_error(ledger, study, metric)
    if isinstance(whole, dict) and isinstance(narrowed, dict):
        assert narrowed["notes"] == whole["notes"]
    assert narrowed == whole


@st.composite
def studies(draw: st.DrawFn) -> list[RunRecord]:
    count = draw(st.integers(2, 8))
    many = draw(st.booleans())  # several points a metric: read through the marks
    runs = []
    for k in range(count):
        parent = draw(st.none() | st.integers(0, k - 1)) if k else None
        status = draw(st.sampled_from(STATUSES))
        points = []
        for name in draw(st.lists(st.sampled_from(NAMES), max_size=4, unique=True)):
            values = draw(
                st.lists(
                    st.sampled_from([0.5, 0.7, 0.9, 1.0, 100.0, 400.0, math.nan]),
                    min_size=1,
                    max_size=5 if many else 2,
                )
            )
            start = draw(st.integers(0, 2))
            stepped = draw(st.booleans())
            points += [
                MetricPoint(name, v, start + i if stepped else None, 1000.0 + 20 * k + i / 10)
                for i, v in enumerate(values)
            ]
        points.sort(key=lambda p: p.time)
        provenance: dict[str, Any] = {}
        if status == "pruned" and draw(st.booleans()):
            provenance[STEP_METRIC_KEY] = draw(st.sampled_from(["accuracy", "loss"]))
        if status == "pruned" and draw(st.booleans()):
            provenance[PRUNED_STEP_KEY] = draw(st.integers(0, 4))
        runs.append(
            RunRecord(
                id=f"run{k:02d}",
                name=f"run{k:02d}",
                study="s",
                parent_id=None if parent is None else f"run{parent:02d}",
                role=draw(st.sampled_from(ROLES)),
                status=status,
                started_at=1000.0 + 20 * k,  # one after another
                ended_at=1010.0 + 20 * k,
                duration_s=10.0,
                energy_kwh=0.001 * (k + 1),
                params=draw(st.sampled_from([{}, {"C": 1.0}, {"model": "a"}, {"model": "b"}])),
                dataset_size=draw(st.none() | st.sampled_from([100, 200])),
                provenance=provenance,
                metrics=tuple(points),
            )
        )
    return runs


@st.composite
def searches(draw: st.DrawFn) -> list[RunRecord]:
    """A search as users log one: trials logging ``accuracy`` a few times and a loss at each
    step (read through the marks), some pruned (with their ``step_metric`` or not) or failed,
    folds inside some, a baseline, a final retrain scored on a test split."""
    runs: list[RunRecord] = []

    def add(parent: str | None, role: str | None, status: str, points: list[Any], **kw: Any):
        k = len(runs)
        runs.append(
            RunRecord(
                id=f"run{k:02d}",
                name=f"run{k:02d}",
                study="s",
                parent_id=parent,
                role=role,
                status=status,
                started_at=1000.0 + 20 * k,  # one after another
                ended_at=1010.0 + 20 * k,
                duration_s=10.0,
                energy_kwh=0.001 * (k + 1),
                metrics=tuple(
                    MetricPoint(name, v, step, 1000.0 + 20 * k + i / 10)
                    for i, (name, v, step) in enumerate(points)
                ),
                **kw,
            )
        )
        return runs[-1].id

    def training(scored: bool, steps: int) -> list[Any]:
        points: list[Any] = []
        for step in range(1, steps + 1):
            points.append(("loss", 1.0 / (step + draw(st.integers(0, 3))), step))
            if scored and step % 2 == 0:
                points.append(("accuracy", draw(st.sampled_from([0.5, 0.7, 0.9, math.nan])), step))
        return points

    for _ in range(draw(st.integers(2, 6))):
        status = draw(st.sampled_from(["finished", "finished", "pruned", "failed"]))
        provenance: dict[str, Any] = {}
        if status == "pruned" and draw(st.booleans()):
            provenance[STEP_METRIC_KEY] = "accuracy"
        steps = draw(st.integers(0, 6))
        folds = draw(st.integers(0, 2))
        trial = add(
            None,
            draw(st.sampled_from([None, "trial"])),
            status,
            [] if status == "failed" else training(folds == 0, steps),
            params={"lr": draw(st.sampled_from([0.1, 0.01])), "model": "a"},
            provenance=provenance,
        )
        for _ in range(folds):
            add(trial, None, "finished", training(True, draw(st.integers(2, 4))))
    if draw(st.booleans()):
        add(None, "baseline", "finished", training(draw(st.booleans()), 4))
    if draw(st.booleans()):
        extra = [("test_accuracy", 0.8, None)] if draw(st.booleans()) else []
        add(None, "final", "finished", training(draw(st.booleans()), 4) + extra)
    return runs


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs=studies() | searches(), other=st.booleans(), data=st.data())
def test_the_metric_given_reads_as_chosen(
    tmp_path: Path, runs: list[RunRecord], other: bool, data: st.DataObject
) -> None:
    """Given the metric the report chooses, the report is the chosen one; given any metric
    the runs logged, it is the report read with every metric's points."""
    path = tmp_path / f"l{abs(hash(tuple(r.id + str(r.metrics) for r in runs)))}.db"
    with Ledger(path) as led:
        for run in runs:
            led.start_run(run)
        if other:  # another study in the ledger: the workers' check reads it
            led.start_run(RunRecord(id="elsewhere", name="w", study="other", status="finished"))
    try:
        _same_report(path, "s")
        names = sorted({p.name for run in runs for p in run.metrics})
        if names:
            _same_as_read_whole(path, "s", data.draw(st.sampled_from(names), label="metric"))
    finally:
        path.unlink()


def _case(k: int, role: str | None, points: dict[str, list[float]], **fields: Any) -> RunRecord:
    return RunRecord(
        id=f"c{k}",
        name=f"c{k}",
        study="s",
        role=role,
        status="finished",
        started_at=1000.0 + k,
        ended_at=1001.0 + k,
        duration_s=1.0,
        energy_kwh=0.001,
        metrics=tuple(
            MetricPoint(name, v, i, 1000.0 + k + i / 10)
            for name, values in points.items()
            for i, v in enumerate(values)
        ),
        **fields,
    )


#: Studies whose report, ranked by ``accuracy``, has a note listing what runs logged instead:
#: read with ``accuracy``'s points alone, the report is built again from the study read whole.
LISTING = {
    # every trial's accuracy diverged (infinite: no score): the EVP note lists their metrics
    "no scored trial": (
        [
            _case(k, "trial", {"accuracy": [math.inf] * 3, "loss": [1.0, 0.5, 0.2]})
            for k in range(3)
        ],
        "metrics they logged: 'accuracy', 'loss'",
    ),
    # learning-curve runs that logged a loss only: the note names it
    "learning curve of another metric": (
        [_case(k, "trial", {"accuracy": [0.5, 0.6 + k / 10]}) for k in range(3)]
        + [
            _case(3 + k, "learning-curve", {"loss": [1.0, 0.5 / (k + 1)]}, dataset_size=100 * k)
            for k in range(1, 3)
        ],
        "they logged loss",
    ),
    # a baseline whose accuracy is infinite: drawn nowhere, the note names what it logged
    "baseline with no score": (
        [_case(k, "trial", {"accuracy": [0.5, 0.6 + k / 10]}) for k in range(3)]
        + [_case(3, "baseline", {"accuracy": [math.inf, math.inf], "f1": [0.4, 0.5]})],
        "it logged accuracy, f1",
    ),
}


@pytest.mark.parametrize("case", sorted(LISTING))
def test_a_note_listing_what_was_logged_reads_every_metric(tmp_path: Path, case: str) -> None:
    runs, listed = LISTING[case]
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        for run in runs:
            led.start_run(run)
    assert _same_report(path, "s") == "accuracy"
    notes = build_report(path, study="s", metric="accuracy").notes
    assert any(listed in note for note in notes), notes


def _cli_reports(home: Path) -> list[list[str]]:
    """The Markdown report without and with ``--metric accuracy``, but the choice's note."""
    texts = []
    for extra in ([], ["--metric", "accuracy"]):
        out = home / f"out{len(extra)}"
        done = run_in(home, GREENPRINT, "report", "--format", "md", "--out", str(out), *extra)
        assert done.returncode == 0, done.stderr
        (found,) = out.glob("*.md")
        texts.append(
            [
                line
                for line in found.read_text().splitlines()
                if "runs ranked by" not in line and "Generated" not in line
            ]
        )
    return texts


def _run_script(home: Path, text: str) -> None:
    (home / "study.py").write_text(text)
    done = run_in(home, str(BIN / "python"), "study.py")
    assert done.returncode == 0, done.stderr


def test_a_new_users_in_run_curves(home: Path) -> None:
    """A learning curve logged in each run's steps (``run.log(train_size=n, accuracy=s)``)
    beside a loss: noted with ``--metric accuracy`` as when the report chooses accuracy."""
    _run_script(
        home,
        "import greenprint as gp\n"
        "for t in range(3):\n"
        "    with gp.track(study='s', name=f't{t}') as run:\n"
        "        for i, n in enumerate((100, 200, 400)):\n"
        "            run.log(train_size=n, accuracy=0.6 + 0.1 * i - 0.01 * t, step=i)\n"
        "            run.log(loss=1.0 / (i + 1), step=i)\n",
    )
    chosen, given_text = _cli_reports(home)
    assert sum("logged train\\_size (100 to 400) with accuracy" in line for line in chosen) == 3
    assert given_text == chosen


def test_a_new_users_pruned_trials(home: Path) -> None:
    """Trials logging a loss at each step and accuracy at three, two pruned (``run.prune()``,
    no step): stopped at the loss's last step (5) with ``--metric accuracy`` too, not at 3."""
    _run_script(
        home,
        "import greenprint as gp\n"
        "for t in range(6):\n"
        "    with gp.track(study='s', name=f't{t}', params={'lr': 0.01 * (t + 1)}) as run:\n"
        "        for step in range(1, 6):\n"
        "            if step <= 3:\n"
        "                run.log(accuracy=0.5 + 0.05 * step + 0.01 * t, step=step)\n"
        "            run.log(loss=1.0 / (step + t), step=step)\n"
        "        if t % 3 == 2:\n"
        "            run.prune()\n",
    )
    chosen, given_text = _cli_reports(home)
    assert any("Stopped at step 5" in line for line in chosen), chosen
    assert given_text == chosen


def test_a_sweep_that_logged_its_best_childs_score_given_that_metric(tmp_path: Path) -> None:
    """``--metric best_val_acc`` that a hand-written search logged (its best trial's
    ``val_acc``), its trials logging a ``best_val_acc`` of their own too (the best of their
    epochs, none the search's): the trials' ``val_acc`` is read too, which makes the search
    their sweep."""
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.start_run(_case(0, None, {"best_val_acc": [0.9]}))
        for k, (lr, acc) in enumerate(((0.1, 0.7), (0.01, 0.9), (0.001, 0.8)), start=1):
            points = {"val_acc": [acc - 0.1, acc], "best_val_acc": [acc - 0.25]}
            led.start_run(_case(k, None, points, parent_id="c0", params={"lr": lr}))
    _same_as_read_whole(path, "s", "best_val_acc")
    report = build_report(path, study="s", metric="best_val_acc")
    assert [r.role for r in report.runs] == ["sweep", "trial", "trial", "trial"]
