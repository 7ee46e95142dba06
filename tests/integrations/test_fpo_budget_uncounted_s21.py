"""A framework callback's FPO budget without ``count_fpo=True`` is named where it is made.

The Hugging Face and Lightning callbacks record FPO only when they count them; before, a
``GreenprintCallback(budget_fpo=...)`` without ``count_fpo=True`` trained unchecked and the run's
end said only "record its FPO with run.add_fpo(...)", advice a Trainer's user cannot follow.
"""

from __future__ import annotations

import warnings

import pytest

import greenprint as gp
from integrations._frameworks import need

MODULES = {
    "transformers": ("greenprint.integrations.transformers", "transformers"),
    "lightning": ("greenprint.integrations.lightning", "lightning"),
}


def _callback(framework: str):
    need(MODULES[framework][1], MODULES[framework][1])
    module = need(MODULES[framework][0], MODULES[framework][1])
    return module.GreenprintCallback


@pytest.mark.parametrize("framework", sorted(MODULES))
@pytest.mark.parametrize(
    "options",
    [{"budget_fpo": 1e12}, {"budget": gp.Budget(fpo=1e12, on_exceed="stop")}],
    ids=["budget_fpo", "Budget"],
)
def test_an_fpo_budget_without_count_fpo_is_warned_at_the_users_line(framework, options):
    callback = _callback(framework)
    uncounted = r"budget_fpo without count_fpo=True acts only on FPO you record"
    with pytest.warns(UserWarning, match=uncounted) as seen:
        callback(study="s", **options)
    assert seen[0].filename == __file__  # the warning points at the user's line


@pytest.mark.parametrize("framework", sorted(MODULES))
@pytest.mark.parametrize(
    "options",
    [
        {"budget_fpo": 1e12, "count_fpo": True},
        {"budget": gp.Budget(fpo=1e12, per="study")},  # the study's other runs may hold FPO
        {"budget_kwh": 1.0},
    ],
    ids=["counted", "study", "energy"],
)
def test_no_warning_where_the_budget_can_act(framework, options):
    callback = _callback(framework)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback(study="s", **options)
