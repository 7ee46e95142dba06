"""The "spend less" commands as a user meets them: defects left after issue 15, fixed.

* ``greenprint greener --variants``: an empty or blank list, a repeated name or an unknown one is
  one line, exit 2, that lists the known names (with "did you mean" for a near miss).
* Numeric options (``greener --min-time``, ``run --sample-interval/--flush-interval/--budget-*``)
  refuse NaN, infinities and out-of-range values naming the option the user typed, not the API
  parameter behind it.
* ``greenprint whatif``: an unknown region suggests the nearest; ``--timezone`` puts the best
  start hour on the user's clock (checked from first principles, half-hour zones and daylight
  saving time included).
* ``greenprint run`` and ``greenprint ledger show`` print the intensity that applied to a run
  priced by an hourly file (its energy-weighted mean over the run), not the file's mean.
* ``greenprint report --final`` with a run of another study names both studies.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import greenprint as gp
from greenprint._exceptions import ConfigError
from greenprint._records import RunRecord
from greenprint.carbon import Intensity
from greenprint.cli import main
from greenprint.greener import whatif
from greenprint.ledger import Ledger
from test_cli_whatif import DAY, RUN  # 10 kWh from 22:30 UTC, 5.7 kg (tests/)

JULY = dt.datetime(2024, 7, 1, tzinfo=dt.timezone.utc).timestamp()

MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn

    def trained():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 2)).eval()

    def batches():
        x = torch.randn(8, 4)
        return [(x, (x.sum(dim=1) > 0).long())]
    """
)


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.startswith("greenprint: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    with Ledger(path) as led:
        led.start_run(RUN)
    return path


@pytest.fixture
def hourly(tmp_path: Path) -> Path:
    """Two days from 2024-03-01: 100 + 10 h then 200 + 10 h g/kWh at UTC hour h.

    The profile is 150 + 10 h g/kWh at UTC hour h.
    """
    path = tmp_path / "hourly.csv"
    rows = [f"{DAY + k * 3600:.0f},{100 * (1 + k // 24) + 10 * (k % 24)}" for k in range(48)]
    path.write_text("timestamp,g_per_kwh\n" + "\n".join(rows) + "\n")
    return path


#: the same two days as the ``hourly`` file, as a series
SERIES = Intensity(
    g_per_kwh=205.0,
    source="test:two-days",
    series=tuple((DAY + k * 3600, 100.0 * (1 + k // 24) + 10.0 * (k % 24)) for k in range(48)),
)


def _profile(utc_hour: float) -> float:
    return 150.0 + 10.0 * (math.floor(utc_hour) % 24)


def _mean_from_first_principles(start_utc_h: float, duration_h: float) -> float:
    """The profile's mean over a span, integrated in steps of a minute (exact at :00 and :30)."""
    steps = round(duration_h * 60)
    return sum(_profile(start_utc_h + (k + 0.5) / 60) for k in range(steps)) / steps


# ------------------------------------------------------------------------- greener --variants


@pytest.fixture
def models(tmp_path: Path) -> str:
    pytest.importorskip("torch")
    path = tmp_path / "polish_models.py"
    path.write_text(MODELS)
    return str(path)


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ("", "--variants needs at least one variant name, not ''"),
        ("   ", "--variants needs at least one variant name, not '   '"),
        (" , ,", "--variants needs at least one variant name"),
        ("bf16,BF16", "--variants names 'bf16' twice"),
        ("prune-50,prune-050", "--variants names 'prune-50' twice"),
        ("prune-ch30", "unknown variant 'prune-ch30' in --variants; did you mean 'prune-ch-30'"),
        ("dynamic-int", "did you mean 'dynamic-int8'"),
        ("fp61", "did you mean 'fp16'"),
        ("xyz", "unknown variant 'xyz' in --variants (known: "),
        ("prune-100", "--variants prune-100: the percentage must be 1-99"),
    ],
)
def test_bad_variants_are_one_line_listing_the_known_names(
    models, tmp_path, capsys, variants, message
):
    db = tmp_path / "l.db"
    argv = ["greener", f"{models}:trained", "--data", f"{models}:batches", "--ledger", str(db)]
    err = _one_line_error(capsys, main([*argv, "--variants", variants, "--min-time", "0"]))
    assert message in err
    assert "known: dynamic-int8, static-int8, prune-N, prune-ch-N (N in 1-99), bf16, fp16" in err
    assert not db.exists()  # nothing measured, nothing recorded


def test_parse_variants_keeps_order_and_skips_empty_items():
    pytest.importorskip("torch")
    from greenprint.cli._greener import parse_variants

    chosen = parse_variants(" FP16 ,, prune-ch-030 ,dynamic-int8,")
    assert [v.name for v in chosen] == ["fp16", "prune-ch-30", "dynamic-int8"]


# --------------------------------------------------------------------------- numeric options


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "-0.5"])
def test_greener_min_time_names_the_option(models, tmp_path, capsys, value):
    db = tmp_path / "l.db"
    argv = ["greener", f"{models}:trained", "--data", f"{models}:batches", "--ledger", str(db)]
    err = _one_line_error(capsys, main([*argv, "--variants", "fp16", f"--min-time={value}"]))
    assert "--min-time must be a finite number of s with x >= 0" in err
    assert "min_time_s" not in err
    assert not db.exists()


@pytest.mark.parametrize("option", ["--threads", "--epochs"])
@pytest.mark.parametrize("value", ["nan", "inf", "0", "-3"])
def test_greener_integer_options_name_the_option(models, tmp_path, capsys, option, value):
    argv = ["greener", f"{models}:trained", "--data", f"{models}:batches"]
    err = _one_line_error(capsys, main([*argv, "--ledger", str(tmp_path / "l.db"), option, value]))
    assert f"'{option}'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample-interval", "nan"], "--sample-interval must be a finite number of s with x > 0"),
        (["--sample-interval", "inf"], "--sample-interval must be"),
        (["--sample-interval", "0"], "--sample-interval must be"),
        (["--sample-interval", "-1"], "--sample-interval must be"),
        (["--flush-interval", "nan"], "--flush-interval (at least --sample-interval) must be"),
        (["--flush-interval", "inf"], "--flush-interval (at least --sample-interval) must be"),
        (["--sample-interval", "2", "--flush-interval", "1"], "with x >= 2, got 1.0"),
        (["--budget-kwh", "nan"], "--budget-kwh must be a finite number of kWh with x > 0"),
        (["--budget-kg", "inf"], "--budget-kg must be a finite number of kg CO2-eq with x > 0"),
        (["--budget-s", "-5"], "--budget-s must be a finite number of s with x > 0"),
        (["--budget-s", "0"], "--budget-s must be"),
        (["--budget-kwh", "1", "--budget-grace-s", "nan"], "--budget-grace-s must be"),
        (["--budget-kwh", "1", "--budget-grace-s", "-1"], "--budget-grace-s must be"),
    ],
)
def test_run_numeric_options_name_the_option(tmp_path, capsys, args, message):
    db = tmp_path / "l.db"
    code = main(["run", "--ledger", str(db), *args, "--", sys.executable, "-c", "pass"])
    err = _one_line_error(capsys, code)
    assert message in err
    assert "interval_s" not in err and "budget_" not in err  # no API parameter names
    assert not db.exists()


# ------------------------------------------------------------------------ whatif: regions


@pytest.mark.parametrize(
    ("region", "suggestion"),
    [
        ("Frnace", "did you mean FR (France)"),
        ("germny", "did you mean DE (Germany)"),
        ("aws:eu-nort-1", "did you mean aws:eu-north-1"),
    ],
)
def test_whatif_unknown_region_suggests_the_nearest(ledger, capsys, region, suggestion):
    code = main(["whatif", "--run", RUN.id, "--ledger", str(ledger), "--regions", f"FR,{region}"])
    err = _one_line_error(capsys, code)
    assert f"unknown region {region!r}" in err and suggestion in err


# ----------------------------------------------------------------------- whatif: --timezone


def test_default_hours_are_utc_and_say_so(ledger, hourly, capsys):
    argv = ["whatif", "--run", RUN.id, "--ledger", str(ledger), "--regions", "FR"]
    assert main([*argv, "--hourly", str(hourly)]) == 0
    out = capsys.readouterr().out
    # the profile is cleanest at 00:00 UTC: 2 h from there average 155 g/kWh
    assert "best start  00:00 UTC: 2.33 kg CO2-eq (mean 155.0 g CO2-eq/kWh" in out
    assert "actual      22:30 UTC:" in out and "by starting at 00:00 UTC" in out
    assert "time zone" not in out


def test_hours_on_the_users_clock(ledger, hourly, capsys):
    """Berlin in March is UTC+1: the cleanest start, 00:00 UTC, is 01:00 on the user's clock."""
    argv = ["whatif", "--run", RUN.id, "--ledger", str(ledger), "--hourly", str(hourly)]
    assert main([*argv, "--regions", "FR", "--timezone", "Europe/Berlin"]) == 0
    out = capsys.readouterr().out
    assert "time zone   Europe/Berlin (UTC+01:00 when the run started)" in out
    assert "best start  01:00 Europe/Berlin (00:00 UTC): 2.33 kg CO2-eq" in out
    # the run started 22:30 UTC = 23:30 in Berlin; the saving does not depend on the clock
    assert "actual      23:30 Europe/Berlin: 4.8 kg CO2-eq; saving 2.47 kg CO2-eq (52 %)" in out
    assert "by starting at 01:00 Europe/Berlin" in out
    assert "the offset changes during the year" in out  # Berlin keeps summer time


def test_a_half_hour_zone_starts_on_its_own_whole_hours(ledger, hourly, capsys):
    """Kolkata is UTC+05:30: its whole hours are half past UTC hours, priced as such.

    Starting 06:00 IST (00:30 UTC), a 2-h run spends 0.5 h at 150, 1 h at 160 and 0.5 h at
    170 g/kWh: mean 160, 15 kWh x 160 g = 2.4 kg. 05:00 IST (23:30 UTC) would average 210.
    """
    argv = ["whatif", "--run", RUN.id, "--ledger", str(ledger), "--hourly", str(hourly)]
    assert main([*argv, "--regions", "FR", "--timezone", "Asia/Kolkata", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["hourly"]
    assert data["timezone"] == "Asia/Kolkata" and data["utc_offset_s"] == 5.5 * 3600
    assert data["best"] == {
        "start_hour": 6,
        "mean_g_per_kwh": pytest.approx(160.0),
        "emissions_kg": pytest.approx(2.4),
    }
    for option in data["hours"]:
        utc = option["start_hour"] - 5.5
        assert option["mean_g_per_kwh"] == pytest.approx(_mean_from_first_principles(utc, 2.0))
        assert option["emissions_kg"] == pytest.approx(15.0 * option["mean_g_per_kwh"] / 1000)
    assert data["actual_start_hour"] == pytest.approx(4.0)  # 22:30 UTC is 04:00 IST
    assert data["actual_start_hour_utc"] == pytest.approx(22.5)
    assert data["saving_kg"] == pytest.approx(4.8 - 2.4)


def test_daylight_saving_time_takes_the_offset_of_the_runs_date(hourly):
    """A run in July in Berlin (UTC+2): the same profile's best start is 02:00 on that clock."""
    summer = RunRecord(
        id="s1",
        name="summer",
        started_at=JULY,
        duration_s=3600.0,
        energy_kwh=1.0,
        emissions_kg=0.4,
        intensity_g_per_kwh=400.0,
    )
    result = whatif(summer, regions=["FR"], hourly=hourly, timezone="Europe/Berlin")
    assert (result.timezone, result.utc_offset_s) == ("Europe/Berlin", 7200.0)
    assert result.best is not None and result.best.start_hour == 2
    assert result.actual_start_hour == pytest.approx(2.0)  # 00:00 UTC
    assert any("UTC+02:00" in note for note in result.notes)


@settings(max_examples=40, deadline=None)
@example(offset_h=0, start_h=23.999999999999993)  # a float that rounds to midnight
@given(offset_h=st.integers(min_value=-12, max_value=14), start_h=st.floats(0, 48))
def test_a_whole_hour_zone_rotates_the_utc_hours(offset_h, start_h):
    """Under a fixed offset of k hours, local hour h is UTC hour h - k: same figures."""
    run = RunRecord(
        id="p",
        name="p",
        started_at=DAY + start_h * 3600,
        duration_s=5400.0,
        energy_kwh=2.0,
        pue=1.1,
        emissions_kg=1.0,
        intensity_g_per_kwh=450.0,
    )
    zone = dt.timezone(dt.timedelta(hours=offset_h))
    utc = whatif(run, regions=["FR"], hourly=SERIES)
    local = whatif(run, regions=["FR"], hourly=SERIES, timezone=zone)
    assert local.utc_offset_s == offset_h * 3600
    for option in local.hours:
        same = utc.hours[(option.start_hour - offset_h) % 24]
        assert option.emissions_kg == pytest.approx(same.emissions_kg, rel=1e-12)
    assert local.actual_start_emissions_kg == pytest.approx(utc.actual_start_emissions_kg)
    assert local.hour_saving_kg == pytest.approx(utc.hour_saving_kg)
    # hours on a 24-hour circle: 23.999999999999993 and 0.0 are the same instant to the clock
    apart = (local.actual_start_hour - (start_h + offset_h)) % 24
    assert min(apart, 24 - apart) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        (
            "Europe/Berln",
            "--timezone: unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'",
        ),
        ("europe/paris", "did you mean 'Europe/Paris'?"),
        ("Berlin", "did you mean 'Europe/Berlin'?"),
        ("Mars/Olympus", "unknown time zone 'Mars/Olympus' (an IANA name such as"),
        ("../../etc/passwd", "unknown time zone '../../etc/passwd'"),
        (" ", "--timezone: timezone must be an IANA time-zone name"),
    ],
)
def test_a_bad_zone_is_one_line(ledger, hourly, capsys, zone, message):
    argv = ["whatif", "--run", RUN.id, "--ledger", str(ledger), "--hourly", str(hourly)]
    err = _one_line_error(capsys, main([*argv, "--timezone", zone]))
    assert message in err


def test_a_zone_without_an_hourly_file_is_refused(ledger, capsys):
    """--timezone only places the hourly profile's start hours: alone it did nothing (s31)."""
    for zone in ("Nowhere/X", "utc"):
        code = main(["whatif", "--run", RUN.id, "--ledger", str(ledger), "--timezone", zone])
        assert "--timezone applies only with --hourly" in _one_line_error(capsys, code)


def test_without_time_zone_data_the_error_says_what_to_install(ledger, hourly, tmp_path):
    """No system zoneinfo (an empty TZPATH), no tzdata package: UTC works, a name says why not."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["tzdata"] = None  # what import reads as "not installed"
        from greenprint.cli import main
        base = ["whatif", "--run", {RUN.id!r}, "--ledger", {str(ledger)!r},
                "--hourly", {str(hourly)!r}, "--regions", "FR"]
        print("UTC", main([*base, "--timezone", "UTC"]), flush=True)
        print("Berlin", main([*base, "--timezone", "Europe/Berlin"]), flush=True)
        """
    )
    empty = tmp_path / "no-zoneinfo"
    empty.mkdir()
    env = {**os.environ, "PYTHONTZPATH": str(empty)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert "UTC 0" in done.stdout and "Berlin 2" in done.stdout, done.stderr
    assert done.stderr == (
        "greenprint: error: --timezone: no time-zone data on this machine to read "
        "'Europe/Berlin': install the system's tzdata package or 'pip install tzdata' "
        "(UTC needs none)\n"
    )


def test_the_api_takes_a_name_or_a_tzinfo_and_refuses_junk(hourly):
    by_name = whatif(RUN, regions=["FR"], hourly=hourly, timezone="America/New_York")
    by_tzinfo = whatif(
        RUN, regions=["FR"], hourly=hourly, timezone=dt.timezone(dt.timedelta(hours=-5))
    )
    assert by_name.utc_offset_s == by_tzinfo.utc_offset_s == -5 * 3600  # EST on 2024-03-01
    assert by_name.best is not None and by_name.best.start_hour == 19  # 00:00 UTC
    assert by_name.to_dict()["hourly"]["best"] == by_tzinfo.to_dict()["hourly"]["best"]
    assert whatif(RUN, regions=["FR"]).timezone == "UTC"
    for junk in ("", 5, "Not/AZone"):
        with pytest.raises(ConfigError):
            whatif(RUN, regions=["FR"], timezone=junk)  # type: ignore[arg-type]


# ------------------------------------------------- the intensity that applied to an hourly run


def test_run_summary_and_ledger_show_print_the_runs_own_intensity(tmp_path, capsys):
    """A real ``greenprint run`` across an hour boundary of an hourly file.

    The file holds 100 g/kWh until the boundary (1 s from now; the command is busy until 0.4 s
    after it), 500 after it and 1900 an hour later: the file's mean, 833.3 g/kWh, is not what
    the run was charged. The run's own intensity is its CO2-eq over its facility energy, and
    from first principles the energy-weighted mean of the samples' intensities, each sample
    split at the boundary.
    """
    # to the millisecond the file writes, so that the test splits the samples where the run did
    boundary = round(time.time() + 1.0, 3)
    csv = tmp_path / "hourly.csv"
    csv.write_text(
        "timestamp,g_per_kwh\n"
        f"{boundary - 3600:.3f},100\n{boundary:.3f},500\n{boundary + 3600:.3f},1900\n"
    )
    db = tmp_path / "l.db"
    busy = f"import time\nwhile time.time() < {boundary + 0.4}: pass"  # busy across the boundary
    argv = ["run", "--ledger", str(db), "--name", "across", "--intensity", str(csv), "--pue", "1.2"]
    fast = ["--sample-interval", "0.05", "--flush-interval", "0.1"]
    assert main([*argv, *fast, "--", sys.executable, "-c", busy]) == 0
    summary = capsys.readouterr().err
    (record,) = Ledger(db).runs()
    assert record.started_at < boundary < record.started_at + record.duration_s
    assert record.intensity_g_per_kwh == pytest.approx(2500 / 3)  # what the record keeps
    applied = record.emissions_kg * 1000 / (record.energy_kwh * record.pue)
    assert 100 < applied < 500  # energy drawn on both sides of the boundary
    # from first principles: each sample's energy at 100 before the boundary, 500 after
    grams = kwh = 0.0
    for s in Ledger(db).samples(record.id):
        watts = sum(w or 0.0 for w in (s.cpu_w, s.gpu_w, s.ram_w))
        before = min(max(boundary - s.t0, 0.0), s.t1 - s.t0)
        grams += watts * (before * 100 + (s.t1 - s.t0 - before) * 500)
        kwh += watts * (s.t1 - s.t0)
    assert applied == pytest.approx(grams / kwh, rel=1e-3)
    line = next(x for x in summary.splitlines() if "intensity" in x)
    assert line.strip() == (
        f"intensity {applied:.0f} g CO2-eq/kWh [mean over the run; csv:{csv.resolve()}]"
    )
    assert "833" not in summary
    assert main(["ledger", "show", record.id, "--ledger", str(db)]) == 0
    shown = next(x for x in capsys.readouterr().out.splitlines() if "intensity" in x)
    assert f"{applied:.4g} g CO2-eq/kWh [mean over the run; csv:{csv.resolve()}]" in shown
    assert "833" not in shown


def test_a_constant_intensity_is_shown_as_recorded(tmp_path, capsys):
    db = tmp_path / "l.db"
    argv = ["run", "--ledger", str(db), "--region", "FR", "--sample-interval", "0.05"]
    assert main([*argv, "--flush-interval", "0.1", "--", sys.executable, "-c", "pass"]) == 0
    assert "intensity 56 g CO2-eq/kWh [table:FR:2023" in capsys.readouterr().err
    (record,) = Ledger(db).runs()
    assert main(["ledger", "show", record.id, "--ledger", str(db)]) == 0
    shown = next(x for x in capsys.readouterr().out.splitlines() if "intensity" in x)
    assert shown.split()[1:5] == ["56.04", "g", "CO2-eq/kWh", "[table:FR:2023"]


# ------------------------------------------------------------ report --final of another study


def test_report_final_of_another_study_names_both(tmp_path, capsys):
    db = tmp_path / "l.db"
    ids = {}
    for study in ("cifar", "mnist"):
        with gp.track(f"t-{study}", study=study, ledger=db, sample_interval_s=0.05) as run:
            run.log(accuracy=0.9)
        ids[study] = run.id
    out = tmp_path / "report"
    argv = ["report", "--ledger", str(db), "--study", "cifar", "--out", str(out)]
    err = _one_line_error(capsys, main([*argv, "--final", ids["mnist"][:10]]))
    assert f"the final run {ids['mnist'][:12]} ('t-mnist') belongs to study 'mnist'" in err
    assert "not to study 'cifar' that is being reported" in err
    assert not out.exists()
    assert main([*argv, "--final", ids["cifar"], "--no-plots"]) == 0
