"""The "spend less" features checked from outside, as a researcher on a budget (session 10).

Each figure greenprint prints is checked against first principles: the training CO2-eq of a
distilled variant against its energy x PUE x the region's intensity, the lag of an FPO budget
over a child process against the child's flush interval, and what a report says about the runs
a budget stopped.
"""

from __future__ import annotations

import pytest

from greenprint.carbon import lookup_region


def test_distilled_training_is_priced_at_the_comparisons_region_and_pue():
    # greenprint greener --student ... --region FR --pue 1.2 printed "training 0.516 mWh,
    # 0.248 mg CO2-eq": the distillation's run was priced at the world average and PUE 1
    # (480 g/kWh), while every variant's inference was priced at FR x 1.2
    torch = pytest.importorskip("torch")
    from torch import nn

    from greenprint import greener

    torch.manual_seed(0)
    x = torch.randn(32, 8)
    y = (x.sum(dim=1) > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    student = nn.Sequential(nn.Linear(8, 2))
    result = greener.compare(
        model,
        None,
        x,
        [greener.distilled(student, [(x, y)], epochs=2)],
        ledger=False,
        region="FR",
        pue=1.2,
        min_time_s=0.01,
        min_batches=2,
        warmup_batches=1,
    )
    row = result.row("distilled")
    fr = lookup_region("FR").g_per_kwh
    assert row.training_energy_kwh > 0
    assert row.training_emissions_kg == pytest.approx(
        row.training_energy_kwh * 1.2 * fr / 1000, rel=1e-6
    )
    assert row.emissions_kg_per_1000 == pytest.approx(
        row.energy_kwh_per_1000 * 1.2 * fr / 1000, rel=1e-6
    )
