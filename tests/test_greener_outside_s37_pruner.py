"""CostAwarePruner's bad input, as a stranger gives it: a specific ConfigError (session 37)."""

from __future__ import annotations

import pytest

from greenprint import ConfigError
from greenprint.greener import CostAwarePruner


@pytest.mark.parametrize("unit", ["", "  ", None, 3])
def test_a_cost_unit_that_is_no_name_is_refused(unit):
    # '' was taken: every reason then read 'at cost 4 ' and the repr 'min_cost=0 ', no unit
    with pytest.raises(ConfigError, match="^cost_unit must be text such as 'kWh'"):
        CostAwarePruner(cost_unit=unit)


def test_reasons_carry_the_unit():
    pruner = CostAwarePruner(n_startup_trials=1, cost_unit="FPO")
    pruner.report("a", 4.0, 0.5)
    pruner.finish("a")
    assert pruner.report("b", 4.0, 0.1)
    assert pruner.decision("b").reason.endswith("at cost 4 FPO")


@pytest.mark.parametrize("point", [(1,), (1, 0.5, 2), 5, "ab"])
def test_restore_points_that_are_no_pairs(point):
    # (1,) was ValueError: not enough values to unpack
    with pytest.raises(ConfigError, match=r"^points must be \(cost, score\) pairs"):
        CostAwarePruner().restore("done", [(0.5, 0.1), point])
