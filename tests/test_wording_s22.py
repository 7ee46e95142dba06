"""One wording for one figure across the commands (session 22: what a new user noticed).

The price tag said ``g/kWh`` where ``whatif`` and ``intensity`` said ``g CO2-eq/kWh``; ``ledger
ls`` wrote ``0.3s`` where everything else writes ``0.3 s``, and its START column named no clock;
a tiny run's CO2-eq read ``2.62e-06 mg``; ``--pue gogle`` said ``(argument)`` where ``--pue
0.5`` did not; ``greenprint demo``'s ``--trials``, ``--epochs``, ``--fractions`` and ``--seed``
were hidden from every page. Each test runs greenprint as a stranger does: in an empty
directory with a clean environment (``_report_cli.run_in``).
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, pdf_text, report_text, run_in
from greenprint import Ledger, RunRecord
from greenprint._format import format_duration, format_emissions

README = Path(__file__).resolve().parents[1] / "README.md"

#: "g/kWh" said without what the grams are of
_BARE_G_PER_KWH = re.compile(r"(?<!CO2-eq)(?<!CO\$_2\$-eq)/kWh")


def _bare_intensity_units(text: str) -> list[str]:
    """Every ``g/kWh`` in ``text`` not written ``g CO2-eq/kWh`` (the intensity's one unit)."""
    return [text[max(m.start() - 20, 0) : m.end()] for m in _BARE_G_PER_KWH.finditer(text)]


def _record(ledger: Path, run_id: str, name: str, **fields: object) -> None:
    with Ledger(ledger) as led:
        led.start_run(RunRecord(id=run_id * 32, name=name, study="s", status="finished", **fields))


def test_the_grid_intensity_reads_g_co2_eq_per_kwh_in_every_command(
    tmp_path_factory: pytest.TempPathFactory,
):
    """``greenprint run``'s price tag and ``ledger show`` wrote the intensity in ``g/kWh``,
    ``whatif`` and ``intensity`` in ``g CO2-eq/kWh``: the same figure, two units. Every command
    and every report format now says ``g CO2-eq/kWh``."""
    home = empty_home(tmp_path_factory, "s22-intensity-unit")
    done = run_in(home, GREENPRINT, "run", "--region", "FR", "--", sys.executable, "-c", "pass")
    assert done.returncode == 0, done.stderr
    assert "intensity 56 g CO2-eq/kWh [table:FR:2023" in done.stderr
    assert _bare_intensity_units(done.stderr) == []
    run_id = re.search(r"greenprint: run ([0-9a-f]{8}) ", done.stderr)[1]  # type: ignore[index]
    shown = run_in(home, GREENPRINT, "ledger", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.split()[:1] == ["intensity"])
    assert line.split()[1:5] == ["56.04", "g", "CO2-eq/kWh", "[table:FR:2023"]
    assert _bare_intensity_units(shown.stdout) == []
    for args in (("whatif", "--run", run_id, "--regions", "DE"), ("intensity", "FR")):
        out = run_in(home, GREENPRINT, *args)
        assert out.returncode == 0, out.stderr
        assert "g CO2-eq/kWh" in out.stdout and _bare_intensity_units(out.stdout) == []
    done = run_in(home, GREENPRINT, "report", "--out", "rep")
    assert done.returncode == 0, done.stderr
    tex = report_text(home, "latex")
    assert "What if it ran elsewhere?" in tex  # the what-if table, whose header said g/kWh
    for fmt in ("md", "html", "latex"):
        assert _bare_intensity_units(report_text(home, fmt)) == [], fmt


def test_ledger_ls_writes_a_duration_as_the_price_tag_does(
    tmp_path_factory: pytest.TempPathFactory,
):
    """``ledger ls`` wrote ``0.3s`` and ``1m35s`` where the price tag, ``show``, ``whatif`` and
    the report write ``0.3 s`` and ``1m 35s``: now one style, a number then its unit."""
    home = empty_home(tmp_path_factory, "s22-durations")
    done = run_in(home, GREENPRINT, "run", "--", sys.executable, "-c", "pass")
    assert done.returncode == 0, done.stderr
    tag = re.search(r"finished in (\S+ s)\n", done.stderr)
    assert tag is not None, done.stderr
    _record(home / "greenprint.db", "b", "long", started_at=1.7e9, duration_s=95.0)
    listed = run_in(home, GREENPRINT, "ledger", "ls")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    at = header.index("DURATION")
    cells = {row.split()[2]: row[at : header.index("ENERGY")].strip() for row in rows}
    assert cells == {"python": tag[1], "long": "1m 35s"}
    assert format_duration(95.0) == "1m 35s"


def test_ledger_ls_names_the_clock_of_its_start_column(tmp_path_factory: pytest.TempPathFactory):
    """``ledger ls``'s START was local time with no word of which clock (``ledger show`` says
    ``UTC+05:30``). The header names it; runs on either side of a daylight-saving change are on
    two clocks, and each start then says its own, as ``show`` writes it."""
    home = empty_home(tmp_path_factory, "s22-start-clock")
    winter = 1_704_103_200.0  # 2024-01-01 10:00 UTC
    summer = 1_719_828_000.0  # 2024-07-01 10:00 UTC
    _record(home / "l.db", "a", "winter", started_at=winter, duration_s=1.0)
    india = {**clean_env(), "TZ": "Asia/Kolkata"}
    listed = run_in(home, GREENPRINT, "ledger", "ls", "--ledger", "l.db", env=india)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:6] == ["ID", "STUDY", "NAME", "STATUS", "START", "(UTC+05:30)"]
    assert "2024-01-01 15:30:00" in row  # 10:00 UTC on the header's clock
    shown = run_in(home, GREENPRINT, "ledger", "show", "a" * 8, "--ledger", "l.db", env=india)
    assert "2024-01-01 15:30:00 UTC+05:30" in shown.stdout
    _record(home / "l.db", "b", "summer", started_at=summer, duration_s=1.0)
    paris = {**clean_env(), "TZ": "Europe/Paris"}
    listed = run_in(home, GREENPRINT, "ledger", "ls", "--ledger", "l.db", env=paris)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[4:6] == ["START", "DURATION"]
    starts = sorted(re.search(r"2024-\S+ \S+ UTC\S+", r)[0] for r in rows)  # type: ignore[index]
    assert starts == ["2024-01-01 11:00:00 UTC+01:00", "2024-07-01 12:00:00 UTC+02:00"]


def test_a_tiny_runs_co2_eq_reads_in_micrograms_and_nanograms(
    tmp_path_factory: pytest.TempPathFactory,
):
    """A run of µWh read ``2.62e-06 mg`` in ``ledger ls`` and ``whatif``: the units stopped at
    mg. They go on to µg and ng, as energy goes on to µWh; the Markdown, HTML and LaTeX reports
    say the same, and the LaTeX compiles with its µ."""
    home = empty_home(tmp_path_factory, "s22-nanograms")
    # 0.00688 µWh (a run of a few ms, RAM only) x PUE 1 x 380.95 g CO2-eq/kWh = 2.62 ng CO2-eq
    _record(
        home / "greenprint.db", "c", "tiny", started_at=1.7e9, ended_at=1.7e9 + 0.3,
        duration_s=0.3, energy_kwh=6.88e-12, pue=1.0, intensity_g_per_kwh=380.95,
        intensity_source="table:DE:2023", emissions_kg=6.88e-12 * 380.95 / 1000,
    )  # fmt: skip
    assert format_emissions(6.88e-12 * 380.95 / 1000) == "2.62 ng CO2-eq"
    listed = run_in(home, GREENPRINT, "ledger", "ls")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert row[header.index("CO2-EQ") :].startswith("2.62 ng  ")
    whatif = run_in(home, GREENPRINT, "whatif", "--run", "cccc", "--regions", "FR")
    assert whatif.returncode == 0, whatif.stderr
    assert "recorded  2.62 ng CO2-eq at 380.95 g CO2-eq/kWh" in whatif.stdout
    assert "e-0" not in whatif.stdout + listed.stdout
    shown = run_in(home, GREENPRINT, "ledger", "show", "cccc")
    assert "  CO2-eq                  2.62 ng CO2-eq" in shown.stdout.splitlines()
    # the LaTeX price tag's columns read "2.62e-06" under (mg): they go on to µWh and ng too
    done = run_in(home, GREENPRINT, "report", "--study", "s", "--out", "rep", "--format", "latex")
    assert done.returncode == 0, done.stderr
    tex = report_text(home, "latex")
    assert "2.62 ng CO2-eq" in tex and "(ng)" in tex and "e-0" not in tex
    shutil.rmtree(home / "rep")
    # a real run priced at a clean grid: micrograms, in every report format
    (home / "train.py").write_text(
        "import greenprint as gp\n"
        "with gp.track('train', study='clean', intensity=20) as run:\n"
        "    sum(i * i for i in range(300_000))\n"
        "print(repr(run.emissions_kg))\n"
    )
    done = run_in(home, sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    text = format_emissions(float(done.stdout.split()[-1]))
    assert text.split()[1] in ("µg", "ng"), text  # hundreds of µWh at 20 g CO2-eq/kWh
    done = run_in(home, GREENPRINT, "report", "--study", "clean", "--out", "rep")
    assert done.returncode == 0, done.stderr
    for fmt in ("md", "html", "latex"):
        assert text in report_text(home, fmt), fmt
        assert " mg CO2-eq" not in report_text(home, fmt)
    pdflatex, pdftotext = shutil.which("pdflatex"), shutil.which("pdftotext")
    if pdflatex and pdftotext:  # the µ typesets (utf8 input: \textmu)
        assert text.replace(" CO2-eq", "") in pdf_text(home / "rep", pdflatex, pdftotext)


def test_a_bad_pue_is_worded_one_way(tmp_path_factory: pytest.TempPathFactory):
    """``--pue 0.5`` read ``PUE must be ...``, ``--pue gogle`` read ``PUE 'gogle' (argument) is
    neither ...``: ``(argument)`` is greenprint's provenance tag, not a word to the user who
    typed it. Neither says it now; a value from the environment still names where it came from.
    """
    home = empty_home(tmp_path_factory, "s22-pue")
    for pue in ("0.5", "gogle"):
        done = run_in(home, GREENPRINT, "run", "--pue", pue, "--", sys.executable, "-c", "pass")
        assert done.returncode == 2
        (line,) = done.stderr.splitlines()
        assert line.startswith("greenprint: error: PUE ") and "(argument)" not in line, line
        assert "3" in line and "1" in line  # the range it must be in
    assert "did you mean google?" in line
    env = {**clean_env(), "GREENPRINT_PUE": "gogle"}
    done = run_in(home, GREENPRINT, "run", "--", sys.executable, "-c", "pass", env=env)
    assert done.returncode == 2
    assert "PUE 'gogle' (env:GREENPRINT_PUE) is neither" in done.stderr
    assert sorted(p.name for p in home.iterdir()) == []


def test_the_demos_options_are_in_its_help_and_the_readme(tmp_path_factory: pytest.TempPathFactory):
    """``greenprint demo``'s ``--trials``, ``--epochs``, ``--fractions`` and ``--seed`` were
    hidden: on no page. Its help lists them with their defaults, the README's demo paragraph
    names them, and a bad ``--fractions`` is refused at once (it ran the whole search first,
    about 30 s, then failed at the learning curve)."""
    home = empty_home(tmp_path_factory, "s22-demo")
    done = run_in(home, GREENPRINT, "demo", "--help")
    assert done.returncode == 0, done.stderr
    flat = " ".join(done.stdout.split())
    for option, default in (
        ("--trials", "24"), ("--epochs", "15"), ("--fractions", "0.1,0.25,0.5,1"), ("--seed", "0")
    ):  # fmt: skip
        assert re.search(rf"{option} .*?\[default: {re.escape(default)}\b", flat), option
    readme = README.read_text(encoding="utf-8")
    paragraph = readme[readme.index("`greenprint demo` trains baselines") :].split("\n\n")[0]
    for option in ("--trials", "--epochs", "--fractions", "--seed"):
        assert f"`{option}`" in paragraph, option
    started = time.monotonic()
    done = run_in(home, GREENPRINT, "demo", "--fractions", "0,2", "--out", "out")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "greenprint: error: --fractions must each be in (0, 1]: '0,2'"
    ]
    assert time.monotonic() - started < 20  # refused before any training
    assert sorted(p.name for p in home.iterdir()) == []
