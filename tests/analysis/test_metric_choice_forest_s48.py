"""The metric a report chooses is the same whether the caller built the runs' forest or not.

``pick_metric`` resolved the study's roles from the runs, and the report (and ``ledger export``'s
roles) then built the same forest again; now the caller hands it the forest it built. Its choice
and its note must be those of the runs alone, on any study: nested runs, roles given or not, any
status, NaN values, greenprint's reserved metrics, a metric given that no run logged, parents
forming a cycle (the same error). The names a run logged (``_logged_names``, now one dict of its
points' names) must be those of the definition it replaced.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import MetricPoint, RunRecord
from greenprint._exceptions import AnalysisError
from greenprint._forest import RunForest
from greenprint._metric_choice import _logged_names, pick_metric
from greenprint._prediction import is_reserved_metric
from greenprint._records import RUN_ROLES, RUN_STATUSES

IDS = ["a", "b", "c", "d", "e", "f"]
NAMES = ["acc", "loss", "score", "objective", "greenprint.predicted_energy_kwh", "lr"]


@st.composite
def studies(draw: st.DrawFn) -> list[RunRecord]:
    count = draw(st.integers(1, len(IDS)))
    runs = []
    for rid in IDS[:count]:
        parent = draw(st.none() | st.sampled_from([*IDS[:count], "gone"]))
        points = draw(
            st.lists(
                st.builds(
                    MetricPoint,
                    st.sampled_from(NAMES),
                    st.sampled_from([0.5, 0.9, math.nan, math.inf, -1.0]),
                    st.none() | st.integers(0, 3),
                ),
                max_size=5,
            )
        )
        runs.append(
            RunRecord(
                id=rid,
                name=rid,
                parent_id=None if parent == rid else parent,
                role=draw(st.none() | st.sampled_from(RUN_ROLES)),
                status=draw(st.sampled_from(RUN_STATUSES)),
                metrics=tuple(points),
            )
        )
    return runs


def _choice(runs: list[RunRecord], metric: str | None, forest: Any) -> Any:
    try:
        if forest is None:
            return pick_metric(runs, metric, "s")
        return pick_metric(runs, metric, "s", forest)
    except AnalysisError as e:
        return ("error", str(e))


@settings(max_examples=200, deadline=None)
@given(runs=studies(), metric=st.none() | st.sampled_from(["acc", "nope", "loss"]))
def test_the_choice_with_the_forest_is_the_choice_from_the_runs(
    runs: list[RunRecord], metric: str | None
) -> None:
    try:
        forest = RunForest.build(runs)
    except AnalysisError as e:  # parents in a cycle: the runs alone say so too
        assert _choice(runs, None, None) == ("error", str(e))
        return
    assert _choice(runs, metric, forest) == _choice(runs, metric, None)


def _names_before(run: RunRecord) -> list[str]:
    """``_logged_names`` as it was written before."""
    names = [p.name for p in run.metrics if p.value == p.value]
    if len(names) > 1:
        names = list(dict.fromkeys(names))
    return [name for name in names if not is_reserved_metric(name)]


@settings(max_examples=150, deadline=None)
@given(runs=studies())
def test_a_runs_logged_names_are_as_before(runs: list[RunRecord]) -> None:
    for run in runs:
        assert _logged_names(run) == _names_before(run)
