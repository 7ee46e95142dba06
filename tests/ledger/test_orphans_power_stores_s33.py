"""A worker that ran on after its main run ended, split by its samples on every store (s33).

The study of ``tests/test_orphans_power_s33.py`` (the main run 61 J; two workers doubling
their power at its end, one sample straddling it: 108 J by hand) written to SQLite and to
PostgreSQL: the study budget's read (each store's queries, the samples read in its
transaction) and the price tag over the store's records and samples give the hand's joules.
"""

from __future__ import annotations

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from greenprint.ledger._study_cost import study_cost
from test_orphans_power_s33 import BY_TIME_J, TRUTH_J, TRUTH_KG, J, _hand_built


def test_each_store_splits_the_workers_by_their_samples(ledger_url: str):
    with gp.Ledger(ledger_url) as led:
        _hand_built(led)
        spent = study_cost(led, "ddp")
        runs = led.runs(study="ddp")
        tag = price_tag(runs, samples_of=led.samples)
    assert spent.energy_kwh == pytest.approx(TRUTH_J * J, rel=1e-12, abs=0)
    assert spent.emissions_kg == pytest.approx(TRUTH_KG, rel=1e-12, abs=0)
    assert tag.total.energy_kwh == pytest.approx(spent.energy_kwh, rel=1e-12, abs=0)
    assert price_tag(runs).total.energy_kwh == pytest.approx(BY_TIME_J * J, rel=1e-12)
