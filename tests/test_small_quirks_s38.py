"""Two small input quirks left by session 37, fixed in session 38.

- ``greenprint intensity 350`` (a number typed where a region goes, as GREENPRINT_INTENSITY
  takes it) answered only "unknown region '350'": the message now says how an intensity in
  g CO2-eq/kWh is given, from the CLI and from GREENPRINT_REGION alike.
- A budget overshot by a hair (1e-12 relative) read ``1 Wh > 1 Wh``: the amounts now take up
  to 17 significant figures, so a spent amount above its limit never reads as equal to it.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint._budget import _amounts

HINT = (
    "a region is a code or a name (DE, US-CA, aws:us-east-1); a grid intensity in g "
    "CO2-eq/kWh is given as GREENPRINT_INTENSITY=350 or `greenprint run --intensity 350`"
)


def test_a_number_given_as_a_region_is_told_how_an_intensity_is_given(
    tmp_path_factory: pytest.TempPathFactory,
):
    home = empty_home(tmp_path_factory, "s38-intensity-number")
    done = run_in(home, GREENPRINT, "intensity", "350")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert f"unknown region '350': {HINT}" in done.stderr
    env = clean_env()
    env["GREENPRINT_REGION"] = "350"
    done = run_in(home, GREENPRINT, "intensity", env=env)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "env:GREENPRINT_REGION: unknown region '350'" in done.stderr and HINT in done.stderr
    done = run_in(home, GREENPRINT, "intensity", "Germny")  # a name: suggestions, no hint
    assert done.returncode == 2 and "did you mean DE" in done.stderr, done.stderr
    assert "GREENPRINT_INTENSITY" not in done.stderr


@pytest.mark.parametrize(
    ("key", "spent", "limit", "texts"),
    [
        ("kwh", 1e-3 * (1 + 1e-12), 1e-3, ("1.000000000001 Wh", "1 Wh")),
        ("kwh", 0.10004, 0.1, ("100.04 Wh", "100 Wh")),
        ("s", 5.000000000001, 5.0, ("5.000000000001 s", "5 s")),
        ("s", 12.5, 10.0, ("12.5 s", "10 s")),
    ],
)
def test_a_budget_overshoot_reads_its_amounts_apart(key, spent, limit, texts):
    assert _amounts(key, spent, limit) == texts


@given(
    key=st.sampled_from(["kwh", "kg", "fpo", "s"]),
    limit=st.floats(min_value=1e-9, max_value=1e15, allow_nan=False),
    ulps=st.integers(min_value=1, max_value=1000),
)
def test_a_spent_amount_above_its_limit_never_reads_as_equal(key, limit, ulps):
    spent = limit
    for _ in range(ulps):
        spent = math.nextafter(spent, math.inf)
    over, at = _amounts(key, spent, limit)
    assert over != at
