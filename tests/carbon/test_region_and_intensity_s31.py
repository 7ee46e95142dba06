"""A region and an intensity given together are refused, not one silently dropped (session 31).

``greenprint run --region DE --intensity 300`` priced the run at 300 g/kWh and recorded no
region: ``--region DE`` did nothing and nothing said so; ``gp.track(region=..., intensity=...)``
and ``resolve_intensity(region=..., intensity=...)`` the same. Each names one way to price the
run, so the pair contradicts itself: the CLI now exits 2 with one line naming both options, the
API raises ConfigError, before anything runs or any ledger is created. Run as a new user does:
the CLI and a script in an empty directory with a clean environment.
"""

from __future__ import annotations

import sys

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint._exceptions import ConfigError
from greenprint.carbon import resolve_intensity

SCRIPT = """\
import sys

import greenprint as gp

try:
    gp.track("both", region="DE", intensity=300)
except gp.ConfigError as e:
    print(type(e).__name__, e)
    sys.exit(3)
"""


@pytest.mark.parametrize("intensity", ["300", "hourly.csv"])
def test_run_refuses_region_and_intensity(tmp_path_factory: pytest.TempPathFactory, intensity: str):
    home = empty_home(tmp_path_factory, "s31-run-both")
    (home / "hourly.csv").write_text("timestamp,g_per_kwh\n2024-03-01T00:00:00Z,100\n")
    done = run_in(
        home, GREENPRINT, "run", "--region", "DE", "--intensity", intensity,
        "--", sys.executable, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "--region" in lines[0] and "--intensity" in lines[0], lines[0]
    assert not (home / "ran").exists()  # the command did not run
    assert not (home / "greenprint.db").exists()  # and no ledger was created
    # either alone still works
    for option, value in (("--region", "DE"), ("--intensity", intensity)):
        done = run_in(home, GREENPRINT, "run", "-q", option, value, "--", sys.executable, "-c", "0")
        assert done.returncode == 0, done.stderr


def test_track_refuses_region_and_intensity(tmp_path_factory: pytest.TempPathFactory):
    home = empty_home(tmp_path_factory, "s31-track-both")
    (home / "both.py").write_text(SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "both.py")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert done.stdout.startswith("ConfigError ") and "region" in done.stdout, done.stdout
    assert not (home / "greenprint.db").exists()


def test_resolve_intensity_refuses_both():
    with pytest.raises(ConfigError, match="not both"):
        resolve_intensity(intensity=42, region="US-CA")
    with pytest.raises(ConfigError, match="not both"):
        gp.track("both", region="FR", intensity=56.0, ledger=False)
    assert resolve_intensity(intensity=42).g_per_kwh == 42.0
    assert resolve_intensity(region="US-CA").region == "US-CA"
