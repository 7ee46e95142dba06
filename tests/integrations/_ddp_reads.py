"""Checks shared by the tests of a model trained again under DDP (Lightning, Hugging Face).

Each training's node run (local rank 0) meters the node; each other rank's run is a part of its
training's node run with no energy of its own. A model trained in stages is one trial, its node
runs chained as parts (``contained`` false), and the price tag's total is every row's energy.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from tracking._meters import READ_LAG_S


def runs_by_name(runs: Sequence[gp.RunRecord]) -> dict[str, list[gp.RunRecord]]:
    """The runs by name, each name's in the order they started."""
    found: dict[str, list[gp.RunRecord]] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        found.setdefault(run.name, []).append(run)
    return found


def assert_ranks_are_parts_of_their_nodes(
    nodes: Sequence[gp.RunRecord], ranks: Sequence[gp.RunRecord], watts: float
) -> None:
    """Each rank 1 run (in the nodes' order) a part of its node run, within it, with 0 energy;
    each node run's energy ``watts`` x its duration (its node's constant meter)."""
    for node, rank in zip(nodes, ranks, strict=True):
        assert (rank.role, rank.parent_id) == ("part", node.id), rank.name
        assert node.ended_at is not None, node.name
        assert node.started_at <= rank.started_at <= node.ended_at, rank.name
        assert rank.energy_kwh == 0, rank.name
        measured_j = node.energy_kwh * 3.6e6  # the node's meter, over the node run's span
        assert measured_j == pytest.approx(watts * node.duration_s, abs=watts * READ_LAG_S)


def assert_two_trials_the_stages_one(runs: Sequence[gp.RunRecord], last: gp.RunRecord) -> None:
    """Two trials; the total every row's energy; the final trial ``last`` costs every run whose
    name starts with ``tune`` (its stages and their ranks)."""
    tag = price_tag(runs)
    assert set(tag.by_role) == {"trial"}
    assert (tag.total.trials, tag.total.runs) == (2, len(runs))
    every_kwh = sum(r.energy_kwh for r in runs)
    assert every_kwh > 0
    assert tag.total.energy_kwh == pytest.approx(every_kwh, rel=1e-9)
    tune_kwh = sum(r.energy_kwh for r in runs if r.name.startswith("tune"))
    final = price_tag(runs, final=last.id).final
    assert final is not None and final.energy_kwh == pytest.approx(tune_kwh, rel=1e-9)
    assert final.energy_share == pytest.approx(tune_kwh / every_kwh, rel=1e-9)
