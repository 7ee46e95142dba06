"""A number typed as a region is told how an intensity is given, only as one that is taken.

``greenprint intensity 0`` (or 5000) answered "...is given as GREENPRINT_INTENSITY=0 or
`greenprint run --intensity 0`", which those then refused (``0 < x <= 2000``). A number outside
the range is now told the range instead (session 52).
"""

from __future__ import annotations

import pytest

from _report_cli import GREENPRINT, empty_home, run_in
from greenprint._exceptions import UnknownRegionError
from greenprint.carbon._regions import lookup


@pytest.mark.parametrize("typed", ["0", "5000", "2000.5", "0.0"])
def test_a_number_no_intensity_can_be_gets_the_range(typed: str) -> None:
    with pytest.raises(UnknownRegionError) as raised:
        lookup(typed)
    message = str(raised.value)
    assert "0 < x <= 2000" in message
    assert f"GREENPRINT_INTENSITY={typed}" not in message and f"--intensity {typed}`" not in message


@pytest.mark.parametrize("typed", ["350", "2000", "0.5"])
def test_a_number_that_is_a_grid_intensity_gets_the_way_to_give_it(typed: str) -> None:
    with pytest.raises(UnknownRegionError) as raised:
        lookup(typed)
    assert f"GREENPRINT_INTENSITY={typed} or `greenprint run --intensity {typed}`" in str(
        raised.value
    )


def test_the_cli_says_the_range_in_one_line(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = empty_home(tmp_path_factory, "s52-intensity-zero")
    done = run_in(home, GREENPRINT, "intensity", "0")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "g CO2-eq/kWh, 0 < x <= 2000" in done.stderr
    taken = run_in(home, GREENPRINT, "run", "--intensity", "0", "--", "true")
    assert taken.returncode == 2  # what the old hint told the user to do is refused
