"""What a new user found wrong in the commands beyond ``run`` and ``report`` (session 22).

Each test runs greenprint as a stranger does: in an empty directory with a clean environment
(``_report_cli.run_in``), on a small study made there, reading what the command prints.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, cli_report, empty_home, run_in


def test_a_prometheus_host_without_a_port_is_refused_before_anything_runs(
    tmp_path_factory: pytest.TempPathFactory,
):
    """``greenprint run --prometheus-host 0.0.0.0 -- ...`` (the port forgotten) ran the command
    and served nothing, without a word: whoever scraped the machine found no metrics. It is
    refused like ``intensity --kind`` without ``--list``: one line, exit status 2, the command
    not run, no ledger written."""
    home = empty_home(tmp_path_factory, "s22-prom-host")
    done = run_in(
        home, GREENPRINT, "run", "--prometheus-host", "0.0.0.0", "--",
        sys.executable, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "greenprint: error: --prometheus-host only applies with --prometheus-port (the port "
        "to serve on) (see 'greenprint run --help')"
    ]
    assert sorted(p.name for p in home.iterdir()) == []
    # with the port, the host is taken (port 0: any free one), and the default host needs none
    done = run_in(
        home, GREENPRINT, "run", "-q", "--prometheus-host", "127.0.0.1", "--prometheus-port",
        "0", "--", sys.executable, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "greenprint: Prometheus metrics at http://127.0.0.1:" in done.stderr
    assert (home / "ran").is_file()


#: A configuration whose first attempt failed and was run again, and a second configuration.
ATTEMPTS = """
import greenprint as gp

try:
    with gp.track("lr=0.1", study="s", params={"lr": 0.1}) as first:
        sum(i * i for i in range(200_000))
        raise RuntimeError("out of memory")
except RuntimeError:
    pass
for lr in (0.1, 0.01):
    with gp.track(f"lr={lr}", study="s", params={"lr": lr}) as run:
        sum(i * i for i in range(300_000))
        run.log(accuracy=0.8 + lr)
print(first.id)
"""


def test_the_export_rows_that_add_up_to_the_price_tag_include_the_parts_measured_apart(
    tmp_path_factory: pytest.TempPathFactory,
):
    """``ledger export``'s help and docs/ledger.md said that summing the rows with no parent
    among them gives the price tag's total. After ``set-role part ID --part-of ID`` (as the
    docs advise for a crashed attempt run again) that sum left the part out: its row has a
    parent, and ``contained`` false, so its cost adds to its parent's. The rows with no parent
    and the rows with ``contained`` false add up to the report's total."""
    home = empty_home(tmp_path_factory, "s22-export-parts")
    (home / "search.py").write_text(ATTEMPTS, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr
    failed = done.stdout.split()[-1]
    runs = json.loads(run_in(home, GREENPRINT, "ledger", "ls", "--json").stdout)
    again = next(r["id"] for r in runs if r["name"] == "lr=0.1" and r["status"] == "finished")
    done = run_in(home, GREENPRINT, "ledger", "set-role", "part", failed[:8], "--part-of", again)
    assert done.returncode == 0, done.stderr
    help_text = " ".join(run_in(home, GREENPRINT, "ledger", "export", "--help").stdout.split())
    assert (
        "Summing the rows with no parent among them and those with contained false gives "
        "the price tag's energy and CO2-eq"
    ) in help_text
    done = run_in(home, GREENPRINT, "ledger", "export", "--out", "runs.csv")
    assert done.returncode == 0, done.stderr
    with (home / "runs.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    ids = {row["id"] for row in rows}
    part = next(row for row in rows if row["id"] == failed)
    assert (part["parent_id"], part["role"], part["contained"]) == (again, "part", "False")
    counted = [r for r in rows if r["parent_id"] not in ids or r["contained"] == "False"]
    total = cli_report(home, "--study", "s", "--format", "json")["price_tag"]["total"]
    for column in ("energy_kwh", "emissions_kg", "duration_s"):
        assert sum(float(r[column]) for r in counted) == pytest.approx(total[column], rel=1e-9)
    # the sum the page gave leaves the failed attempt out
    roots = sum(float(r["energy_kwh"]) for r in rows if r["parent_id"] not in ids)
    assert roots < total["energy_kwh"] - float(part["energy_kwh"]) / 2


def test_a_run_outside_its_hourly_file_is_told_so_in_utc_times(
    tmp_path_factory: pytest.TempPathFactory,
):
    """``greenprint run --intensity hourly.csv`` with a file of last year printed
    ``interval [1796321838.8606896, 1796321838.8907318] lies partly outside the intensity series
    ... (covers 1709251200.0-1709262000.0)``: Unix seconds with no unit, and "partly" for a run
    wholly outside. The times are UTC dates now, and the values used at the edges are named."""
    home = empty_home(tmp_path_factory, "s22-hourly-edge")
    (home / "hourly.csv").write_text(
        "timestamp,g_per_kwh\n2024-03-01T00:00:00Z,100\n2024-03-01T01:00:00Z,200\n"
        "2024-03-01T02:00:00Z,400\n",
        encoding="utf-8",
    )
    done = run_in(home, GREENPRINT, "run", "-q", "--intensity", "hourly.csv", "--", "true")
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("greenprint: energy drawn from 20")
    assert line.endswith(
        f"UTC falls outside the intensity series csv:{home / 'hourly.csv'}, which covers "
        "2024-03-01 00:00:00 to 2024-03-01 03:00:00 UTC; its nearest edge value is used there "
        "(100 g CO2-eq/kWh before it, 400 after)"
    )
    (run,) = json.loads(run_in(home, GREENPRINT, "ledger", "ls", "--json").stdout)
    assert run["emissions_kg"] == pytest.approx(run["energy_kwh"] * 400 / 1000)  # the last row


#: The repository's documentation pages.
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _meters_with_a_fix(text: str) -> set[str]:
    """The meters of ``greenprint hardware``'s text that are followed by a ``fix:`` line."""
    lines = text.splitlines()
    return {
        line.split()[0]
        for line, after in zip(lines, lines[1:], strict=False)
        if line.startswith("  ") and after.lstrip().startswith("fix:") and line.split()
    }


def test_the_hardware_page_shows_the_fix_the_command_prints_for_a_cpu_not_in_the_table(
    tmp_path_factory: pytest.TempPathFactory,
):
    """docs/hardware.md's first example (a VM with no RAPL and no GPU, a CPU not in the TDP
    table) left out the ``fix:`` line ``greenprint hardware`` prints under ``estimate:cpu``
    there (set GREENPRINT_CPU_TDP_W), and its table of fixes had no row for it."""
    home = empty_home(tmp_path_factory, "s22-hardware")
    done = run_in(home, GREENPRINT, "hardware")
    assert done.returncode == 0, done.stderr
    page = (DOCS / "hardware.md").read_text(encoding="utf-8")
    example = page.split("```console\n$ greenprint hardware\n", 1)[1].split("```", 1)[0]
    fix = (
        "fix: if you know the power at full load of the CPUs this machine sees, set "
        "GREENPRINT_CPU_TDP_W (or cpu_tdp_w in greenprint.toml)"
    )
    assert fix in example
    assert "is not in the TDP table: default 4 W per logical CPU` (estimate:cpu)" in page
    shape = ("CPU TDP   not in the shipped table", "GPUs      none visible", "  rapl          no ")
    if not all(s in done.stdout for s in shape):
        pytest.skip("this machine is not the page's example (a CPU in the table, a GPU or RAPL)")
    assert fix in done.stdout
    assert _meters_with_a_fix(example) == _meters_with_a_fix(done.stdout)


#: The models of docs/greener.md's command-line example.
MODELS = """
import torch
from torch import nn

def trained():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2)).eval()

def batches():
    x = torch.randn(128, 16)
    return [(x[i:i + 32], (x[i:i + 32].sum(dim=1) > 0).long()) for i in range(0, 128, 32)]
"""


def test_the_greener_table_names_the_pue_and_intensity_its_co2_column_is_priced_with(
    tmp_path_factory: pytest.TempPathFactory,
):
    """``greenprint greener ... --pue 1.2 --region DE --out DIR`` wrote greener.md and
    greener.json whose only word on the CO2-eq column's pricing was ``intensity:
    table:DE:2023 (...), pue: argument``: the PUE, 1.2, was nowhere in them, so the column
    could not be checked (or compared with another machine's). They give the values now."""
    pytest.importorskip("torch")
    home = empty_home(tmp_path_factory, "s22-greener-pue")
    (home / "models.py").write_text(MODELS, encoding="utf-8")
    done = run_in(
        home, GREENPRINT, "greener", "models.py:trained", "--data", "models.py:batches",
        "--variants", "prune-50", "--min-time", "0.02", "--pue", "1.2", "--region", "DE",
        "--out", "out",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads((home / "out" / "greener.json").read_text(encoding="utf-8"))
    line = (
        "intensity: 380.95 g CO2-eq/kWh (table:DE:2023 (Our World in Data / Ember)), "
        "pue: 1.2 (argument)"
    )
    assert line in (home / "out" / "greener.md").read_text(encoding="utf-8")
    rows = [row for row in result["rows"] if row["status"] == "measured"]
    assert [row["name"] for row in rows] == ["baseline", "prune-50"]
    for row in rows:
        assert row["energy_provenance"].endswith(line)
        # kWh x PUE x g/kWh = g CO2-eq, as the provenance says
        priced = row["energy_kwh_per_1000"] * 1.2 * 380.95 / 1000
        assert row["emissions_kg_per_1000"] == pytest.approx(priced, rel=1e-9)


def test_ledger_show_says_which_clock_its_times_are_on(tmp_path_factory: pytest.TempPathFactory):
    """In India (``TZ=Asia/Kolkata``) ``ledger show`` gave ``started 2026-12-03 23:43:45``,
    the local clock with no word of it, while ``whatif`` on the same run said ``actual 18:14
    UTC``: the same start read as two times. Its times carry their offset now."""
    home = empty_home(tmp_path_factory, "s22-show-zone")
    env = {**clean_env(), "TZ": "Asia/Kolkata"}
    done = run_in(home, GREENPRINT, "run", "-q", "--", "true", env=env)
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(run_in(home, GREENPRINT, "ledger", "ls", "--json", env=env).stdout)
    shown = run_in(home, GREENPRINT, "ledger", "show", run["id"][:8], env=env).stdout
    started = next(line for line in shown.splitlines() if line.startswith("  started "))
    local = dt.datetime.fromtimestamp(run["started_at"], dt.timezone(dt.timedelta(minutes=330)))
    assert started.split(None, 1)[1] == local.strftime("%Y-%m-%d %H:%M:%S UTC+05:30")
    for field in ("ended", "heartbeat"):
        line = next(line for line in shown.splitlines() if line.startswith(f"  {field} "))
        assert line.endswith(" UTC+05:30")


def test_the_pruning_page_names_every_option_of_the_pruners():
    """docs/pruning.md never named ``direction`` (how to prune on a loss) nor ``cost_unit``:
    a user reporting FPO read ``0.9 ≥ median 0.6 of 1 trial(s) at cost 4e+07 kWh``. Every
    keyword of ``CostAwarePruner`` and ``CostAwareOptunaPruner`` is on the page now, and
    ``cost_unit`` does what it says."""
    import inspect

    from greenprint.greener import CostAwareOptunaPruner, CostAwarePruner

    page = (DOCS / "pruning.md").read_text(encoding="utf-8")
    for cls in (CostAwarePruner, CostAwareOptunaPruner):
        for name in inspect.signature(cls).parameters:
            assert f"`{name}" in page or f" {name}=" in page, (cls.__name__, name)
    pruner = CostAwarePruner(n_startup_trials=1, cost_unit="FPO")
    for epoch in (1, 2, 3):
        pruner.report("wide", 1e7 * epoch, 0.2 * epoch)
    pruner.finish("wide")
    assert pruner.report("narrow", 4e7, 0.9) is False
    assert pruner.decision("narrow").reason == "0.9 ≥ median 0.6 of 1 trial at cost 40 MFPO"


#: Each command and the pages that document it.
PAGES = {
    "run": ("cli.md", "budgets.md", "prometheus.md", "carbon.md", "distributed.md", "ledger.md"),
    "ledger": ("ledger.md",),
    "whatif": ("whatif.md",),
    "greener": ("greener.md",),
    "intensity": ("carbon.md",),
    "hardware": ("hardware.md",),
}


def test_every_option_of_the_commands_is_on_their_pages():
    """``greenprint greener --threads``, ``--metric``, ``--mode``, ``--name`` and ``--ledger``,
    ``whatif --ledger`` and ``run --role``, ``--param`` and ``--quiet`` were on no page of
    their command: a user reading docs/greener.md could not learn how to score by a loss
    (``--mode min``). docs/cli.md now has a table of ``run``'s options."""
    import click

    from greenprint.cli import cli

    ctx = click.Context(cli)
    missing = []
    for name, pages in PAGES.items():
        text = "\n".join((DOCS / page).read_text(encoding="utf-8") for page in pages)
        command = cli.get_command(ctx, name)
        assert command is not None
        commands = (
            list(command.commands.values()) if isinstance(command, click.Group) else [command]
        )
        for each in commands:
            for param in each.params:
                for option in (*param.opts, *param.secondary_opts):
                    if option.startswith("--") and option != "--help" and option not in text:
                        missing.append(f"{name} {each.name} {option}")
    assert missing == []


@pytest.mark.parametrize(
    ("option", "value", "line"),
    [
        ("--study", "", "greenprint: error: --study needs a study name, not ''"),
        ("--study", "  ", "greenprint: error: --study needs a study name, not '  '"),
        ("--name", "", "greenprint: error: --name needs a run name, not ''"),
    ],
)
@pytest.mark.parametrize("command", ["run", "greener"])
def test_a_blank_study_or_name_is_refused_as_a_blank_ledger_or_region_is(
    tmp_path_factory: pytest.TempPathFactory, command: str, option: str, value: str, line: str
):
    """``greenprint run --study "$STUDY" -- ...`` with the variable unset ran the command into
    the study ``default`` (``--name ''``: the program's name) without a word, and ``--study
    '  '`` made a study whose name ``ledger ls`` shows blank; ``greenprint greener`` measured
    and recorded into ``default`` likewise. ``--ledger ''`` and ``--region ''`` were refused,
    and so are these now: one line, exit status 2, nothing run, measured or written."""
    home = empty_home(tmp_path_factory, "s22-blank")
    (home / "models.py").write_text(MODELS, encoding="utf-8")
    if command == "run":
        args = ["run", option, value, "--", sys.executable, "-c", "open('ran', 'w')"]
    else:
        args = ["greener", "models.py:trained", "--data", "models.py:batches", option, value]
    done = run_in(home, GREENPRINT, *args)
    assert (done.returncode, done.stderr.splitlines()) == (2, [line])
    assert sorted(p.name for p in home.iterdir()) == ["models.py"]


def test_a_mistyped_command_gets_the_nearest_name(tmp_path_factory: pytest.TempPathFactory):
    """``greenprint ledger lss`` said ``Did you mean 'ls'?`` but ``greenprint whatiff`` only
    ``No such command 'whatiff'``: the top-level commands are imported when invoked, and
    click suggested from the (empty) table of those already imported."""
    home = empty_home(tmp_path_factory, "s22-typo")
    for typed, line in [
        (["whatiff"], "No such command 'whatiff'. Did you mean 'whatif'? (see 'greenprint "),
        (["ledger", "lss"], "No such command 'lss'. Did you mean 'ls'? (see 'greenprint ledger "),
        (["zzzzz"], "No such command 'zzzzz' (see 'greenprint "),
    ]:
        done = run_in(home, GREENPRINT, *typed)
        expected = f"greenprint: error: {line}--help')"
        assert (done.returncode, done.stderr.splitlines()) == (2, [expected])


def test_which_config_file_applies_is_the_one_the_carbon_page_says(
    tmp_path_factory: pytest.TempPathFactory,
):
    """docs/carbon.md said "the nearest greenprint.toml or pyproject.toml" without saying which
    of the two wins in one folder, nor that a project's own pyproject.toml with no
    ``[tool.greenprint]`` is passed over. It says both now, as ``greenprint intensity`` does."""
    home = empty_home(tmp_path_factory, "s22-config")
    (home / "pyproject.toml").write_text('[tool.greenprint]\nregion = "PL"\n', encoding="utf-8")
    (home / "greenprint.toml").write_text('region = "FR"\n', encoding="utf-8")
    deep = home / "src"
    deep.mkdir()
    (deep / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    page = " ".join((DOCS / "carbon.md").read_text(encoding="utf-8").split())
    assert "(in one folder `greenprint.toml` wins; a `pyproject.toml` with no" in page
    for where, region, source in [
        (home, "FR", home / "greenprint.toml"),
        (deep, "FR", home / "greenprint.toml"),
    ]:
        done = run_in(where, GREENPRINT, "intensity", "--json")
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert (shown["region"], shown["source"].split(" -> ")[0]) == (region, f"file:{source}")
    (home / "greenprint.toml").unlink()
    shown = json.loads(run_in(deep, GREENPRINT, "intensity", "--json").stdout)
    assert shown["source"].startswith(f"file:{home / 'pyproject.toml'} -> table:PL:")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_greener_refuses_an_out_dir_it_cannot_make_before_measuring(
    tmp_path_factory: pytest.TempPathFactory,
):
    """docs/greener.md: an ``--out`` that cannot be written is refused "before anything is
    measured". ``--out /proc/gp`` (as root, or any folder whose permissions say yes but where
    no folder can be made) measured every variant, recorded them in the ledger, then failed
    to write. It is refused first now: one line, exit 2, no ledger."""
    pytest.importorskip("torch")
    home = empty_home(tmp_path_factory, "s22-greener-out")
    (home / "models.py").write_text(MODELS, encoding="utf-8")
    done = run_in(
        home, GREENPRINT, "greener", "models.py:trained", "--data", "models.py:batches",
        "--variants", "prune-50", "--min-time", "0.01", "--out", "/proc/greenprint-out",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("greenprint: error: ")
    assert "/proc/greenprint-out" in line
    assert sorted(p.name for p in home.iterdir()) == ["models.py"]
