"""``greenprint whatif``: options that do nothing, and runs with no energy to price (session 31).

``--timezone`` without ``--hourly`` was accepted and did nothing (exit 0, no word about the
zone: it only places the hourly profile's start hours on a clock). A run whose energy the
ledger holds as NaN was refused with ``energy must be a finite number of kWh >= 0, not nan``,
which reads as the user's mistake; it now says which run has no energy and why. Run as a new
user does: the CLI in an empty directory with a clean environment.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from _report_cli import GREENPRINT, empty_home, run_in
from greenprint._exceptions import AnalysisError
from greenprint._records import RunRecord
from greenprint.greener import whatif
from greenprint.ledger import Ledger

TRAIN = """\
import greenprint as gp

with gp.track("train", study="s31", region="DE") as run:
    sum(i * i for i in range(100_000))
print(run.id)
"""


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single error line of a command that exited 2 (no traceback)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == ""
    return lines[0]


def test_timezone_without_hourly_is_refused(tmp_path_factory: pytest.TempPathFactory):
    home = empty_home(tmp_path_factory, "s31-whatif-tz")
    (home / "train.py").write_text(TRAIN, encoding="utf-8")
    tracked = run_in(home, sys.executable, "train.py")
    assert tracked.returncode == 0, tracked.stderr
    run_id = tracked.stdout.split()[-1]

    done = run_in(home, GREENPRINT, "whatif", "--run", run_id, "--timezone", "Europe/Berlin")
    line = _one_line_error(done)
    assert "--timezone" in line and "--hourly" in line, line
    # with --json too: the zone is in the JSON only under "hourly"
    done = run_in(
        home, GREENPRINT, "whatif", "--run", run_id, "--timezone", "Asia/Kolkata", "--json"
    )
    assert "--hourly" in _one_line_error(done)
    # and the command without it still works
    assert run_in(home, GREENPRINT, "whatif", "--run", run_id).returncode == 0


@pytest.mark.parametrize("status", ["finished", "failed"])
def test_a_run_with_nan_energy_is_named_not_the_user(
    tmp_path_factory: pytest.TempPathFactory, status: str
):
    home = empty_home(tmp_path_factory, f"s31-whatif-nan-{status}")
    run = RunRecord(
        id="feed5eed00112233445566778899aabb",
        name="broken-meter",
        study="s31",
        status=status,
        started_at=1.7e9,
        duration_s=60.0,
        energy_kwh=math.nan,
        emissions_kg=math.nan,
        intensity_g_per_kwh=380.95,
        intensity_source="table:DE:2023",
    )
    with Ledger(home / "greenprint.db") as led:
        led.start_run(run)

    done = run_in(home, GREENPRINT, "whatif", "--run", "feed5eed", "--regions", "FR")
    line = _one_line_error(done)
    assert "feed5eed0011" in line and "broken-meter" in line and status in line, line
    assert "its energy is NaN (no reading was recorded)" in line, line
    assert "must be a finite number" not in line  # it blamed the input, not the run

    # from Python: the same, as an AnalysisError
    with pytest.raises(AnalysisError, match=r"feed5eed0011 .*energy is NaN"):
        whatif(run, regions=["FR"])


def test_a_record_with_no_energy_from_python():
    run = RunRecord(id="r0", name="empty", energy_kwh=None)  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="r0 .*energy was not recorded"):
        whatif(run, regions=["FR"])
