"""Session 41, an outside check of the sentences the session's docs changes added.

docs/pruning.md said that a user who reports FPO to a ``CostAwarePruner`` left at its default
``cost_unit="kWh"`` reads ``at cost 40 MWh`` (the page's earlier wording: ``at cost 4e+07
kWh``, the 4e7 FPO of its ``at cost 40 MFPO`` taken for kilowatt-hours). Since the reasons
write a cost in kWh as the report does, 4e7 read as kWh is written ``40,000 MWh``: a thousand
times the figure the page quoted. The page now quotes what the pruner writes.
"""

from __future__ import annotations

from pathlib import Path

from greenprint.greener import CostAwarePruner

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _reason(cost_unit: str) -> str:
    """The reason for a trial that reports 4e7 (FPO, as the user meant) beside one reference."""
    pruner = CostAwarePruner(n_startup_trials=1, cost_unit=cost_unit)
    for epoch in (1, 2, 3):
        pruner.report("wide", 1e7 * epoch, 0.2 * epoch)
    pruner.finish("wide")
    pruner.report("narrow", 4e7, 0.9)
    return pruner.decision("narrow").reason


def test_fpo_reported_as_kwh_reads_as_the_pruning_page_says():
    page = (DOCS / "pruning.md").read_text(encoding="utf-8")
    assert _reason("kWh").endswith(" at cost 40,000 MWh")
    assert _reason("FPO").endswith(" at cost 40 MFPO")
    assert "`at cost 40,000 MWh`" in page
    assert "`at cost 40 MFPO`" in page
    assert "`at cost 40 MWh`" not in page
