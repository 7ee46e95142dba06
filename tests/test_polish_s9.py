"""API and CLI input hygiene a new user met (session 9), fixed one by one.

Every test runs in an empty working directory with no greenprint configuration above it and no
``GREENPRINT_*`` variable (``conftest.py`` strips them; :func:`_clean_env.clean_env` for the
subprocess), as a new user meets greenprint.

1. ``run.log(loss="0.5")`` is refused (a metric value is a number); a tensor that requires grad
   is read without torch's warning.
2. ``gp.Run("x", studdy=1)`` and ``gp.track(..., studdy=1)`` name the nearest option.
3. ``Ledger.runs(study="typo")`` names the nearest study first and lists a few, not hundreds.
4. A ledger path in a folder that does not exist says what to do (``mkdir -p DIR``).
5. ``greenprint ledger show`` writes energy, CO2-eq and FPO as the report does; ``--json`` raw.
6. A budget's over-budget message: 3 significant figures, units as the report writes them.
7. ``pareto_runs`` takes the cost names ``evp_by_budget`` takes (``"kwh"``...); others listed.
8. ``price_tag(runs, metric="acc")`` when no run logged ``acc`` lists the metrics logged.
9. ``greenprint report`` without ``--out`` in a ledger of several studies writes each study's
   report to ``./greenprint-report-STUDY`` (the second replaced the first's files silently);
   a report of another study replaced in ``./greenprint-report`` is said on stderr.
10. ``greenprint greener --pue`` (the API took ``pue=``; the command had no option).
"""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import greenprint as gp
from greenprint._exceptions import ConfigError
from greenprint._records import MetricPoint, RunRecord
from greenprint.analysis import evp_by_budget, pareto_runs, price_tag
from greenprint.cli import main


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """The CLI's error: exit status 2, one line on stderr, nothing on stdout, no traceback."""
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.startswith("greenprint: error: ") and err.count("\n") == 1, err
    return err


# 1. metric values -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0.5", b"0.5", None, 1j, np.array([0.5, 0.25]), [0.5]])
def test_log_refuses_a_value_that_is_not_a_number(home, value):
    with gp.track("x", ledger=False) as run:
        with pytest.raises(ConfigError) as err:
            run.log(loss=value)
        run.log(accuracy=0.5)  # the run goes on
    assert "'loss'" in str(err.value) and type(value).__name__ in str(err.value)
    # nothing of the refused call was recorded
    assert [(p.name, p.value) for p in run.metrics] == [("accuracy", 0.5)]


def test_log_takes_numbers_numpy_scalars_and_one_value_tensors(home):
    torch = pytest.importorskip("torch")
    weight = torch.tensor(2.0, requires_grad=True)
    values = {
        "a": 1,
        "b": 0.25,
        "c": True,
        "d": np.float32(0.5),
        "e": np.int64(3),
        "f": torch.tensor(0.75),
        "g": weight * 3,  # a loss straight from the forward pass: requires grad
    }
    with gp.track("x", ledger=False) as run:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's "Converting a tensor with requires_grad"
            run.log(**values)
    logged = {p.name: p.value for p in run.metrics}
    assert logged == {"a": 1.0, "b": 0.25, "c": 1.0, "d": 0.5, "e": 3.0, "f": 0.75, "g": 6.0}
    assert weight.grad is None  # reading the loss did not touch the graph


# 2. unknown options -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [gp.Run, gp.track], ids=["Run", "track"])
def test_an_unknown_option_names_the_nearest(home, make):
    with pytest.raises(ConfigError) as err:
        make("x", studdy="s")
    assert str(err.value) == "unknown option(s) ['studdy'] for a run; did you mean 'study'?"
    with pytest.raises(ConfigError) as err:
        make("x", colour="green")
    assert str(err.value) == "unknown option(s) ['colour'] for a run"  # nothing close
    assert list(home.iterdir()) == []  # refused before any ledger is made


# 3. a study typed wrong -------------------------------------------------------------------------


def _record(run_id: str, study: str, **fields: object) -> RunRecord:
    return RunRecord(id=run_id, name=run_id, study=study, status="finished", **fields)


def test_an_unknown_study_names_the_nearest_first_and_lists_a_few(home):
    studies = [f"study-{k:02d}" for k in range(30)] + ["cifar-sweep"]
    with gp.Ledger("greenprint.db") as led:
        for k, study in enumerate(studies):
            led.start_run(_record(f"r{k:02d}", study))
        with pytest.raises(gp.UnknownStudyError) as err:
            led.runs(study="cifar-swep")
        message = str(err.value)
        assert message.startswith(
            f"no study 'cifar-swep' in ledger {led.url}; did you mean 'cifar-sweep'? "
            "Its studies: 'cifar-sweep', 'study-00', "
        )
        assert message.count("'study-") == 9 and message.endswith(
            " and 21 more (Ledger.studies() lists them all)"
        )
        with pytest.raises(gp.UnknownStudyError) as err:  # nothing close: the first ten
            led.runs(study="zzz")
        assert "did you mean" not in str(err.value)
        assert "; its studies: 'cifar-sweep', 'study-00', 'study-01'," in str(err.value)


# 4. a ledger in a folder that does not exist ----------------------------------------------------


def test_a_ledger_in_a_missing_folder_says_what_to_do(home, capsys):
    with pytest.raises(gp.LedgerPathError) as err:
        gp.Ledger("my runs/sweep/runs.db")
    folder = home / "my runs" / "sweep"
    assert str(err.value).endswith(
        f"directory {folder} does not exist; create it first (mkdir -p '{folder}') or give a "
        "path in an existing one"
    )
    code = main(["run", "--ledger", "my runs/sweep/runs.db", "--", sys.executable, "-c", "pass"])
    assert _one_line_error(capsys, code).endswith(
        f"(mkdir -p '{folder}') or give a path in an existing one\n"
    )
    assert list(home.iterdir()) == []


# 5. ledger show in the report's units -----------------------------------------------------------


def test_ledger_show_writes_the_report_units_and_json_keeps_the_numbers(home, capsys):
    fields = {
        "energy_kwh": 0.0123,
        "energy_cpu_kwh": 0.01,
        "energy_ram_kwh": 1.156e-08,
        "machine_energy_kwh": 1.5,
        "emissions_kg": 0.0047,
        "fpo": 3_100_000_000_000_000,
        "pue": 1.0,
        "intensity_g_per_kwh": 382.1,
    }
    with gp.Ledger("greenprint.db") as led:
        led.start_run(_record("a1b2c3d4e5", "s", **fields))
    assert main(["ledger", "show", "a1b2c3d4"]) == 0
    shown = dict(
        line.strip().split("  ", 1) for line in capsys.readouterr().out.splitlines() if "  " in line
    )
    shown = {label: value.strip() for label, value in shown.items()}
    assert shown["energy cpu"] == "10 Wh"
    assert shown["energy gpu"] == "-"
    assert shown["energy ram"] == "11.6 µWh"  # 1.156e-08 kWh
    assert shown["energy"] == "12.3 Wh"
    assert shown["machine energy"] == "1.5 kWh"
    assert shown["CO2-eq"] == "4.7 g CO2-eq"
    assert shown["FPO"] == "3.1 PFPO"
    assert main(["ledger", "show", "a1b2c3d4", "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert {key: raw[key] for key in fields} == fields


# 6. over budget: 3 significant figures, the report's units -------------------------------------


def _significant(number: str) -> int:
    return len(number.replace(".", "").lstrip("0"))


def test_over_budget_reads_three_figures_in_the_report_units(home):
    with pytest.raises(gp.BudgetExceeded) as err:
        with gp.track("x", ledger=False, budget_fpo=1e9, on_exceed="stop") as run:
            run.add_fpo(1_063_770_000)
    assert str(err.value).endswith("is over budget: FPO 1.06 GFPO > budget_fpo 1 GFPO")
    with pytest.raises(gp.BudgetExceeded) as err:
        with gp.track("x", ledger=False, budget_s=0.05, on_exceed="stop") as run:
            time.sleep(0.12)
            run.log(loss=1.0)
    found = re.search(r"is over budget: time (\S+) s > budget_s 0.05 s$", str(err.value))
    assert found is not None, str(err.value)
    assert float(found[1]) >= 0.12 and _significant(found[1]) <= 3
    # a spend that 3 figures would round to the limit is written with the figures that differ
    with pytest.raises(gp.BudgetExceeded) as err:
        with gp.track("x", ledger=False, budget_fpo=1e9, on_exceed="stop") as run:
            run.add_fpo(1_000_400_000)
    assert str(err.value).endswith("FPO 1.0004 GFPO > budget_fpo 1 GFPO")


# 7. one set of cost names across the analysis API ----------------------------------------------


def _study() -> list[RunRecord]:
    """Four trials: accuracy against energy, the front is t0, t1, t3 (t2 is dominated)."""
    rows = [(0.8, 0.10), (0.9, 0.20), (0.85, 0.30), (0.95, 0.50)]
    return [
        _record(
            f"t{k}",
            "s",
            energy_kwh=kwh,
            emissions_kg=kwh * 0.4,
            duration_s=kwh * 1000,
            fpo=int(kwh * 1e15),
            started_at=float(k),
            ended_at=k + 0.5,
            metrics=[MetricPoint("accuracy", acc, None, k + 0.5)],
        )
        for k, (acc, kwh) in enumerate(rows)
    ]


def test_pareto_runs_takes_the_cost_names_evp_by_budget_takes(home):
    runs = _study()
    for names in (("energy_kwh", "kwh", "KWh"), ("emissions_kg", "kg"), ("duration_s", "s")):
        fronts = [[r.id for r in pareto_runs(runs, metric="accuracy", cost=n)] for n in names]
        assert fronts == [["t3", "t1", "t0"]] * len(names), names
        curves = [evp_by_budget(runs, n, metric="accuracy").budget.tolist() for n in names]
        assert curves[1:] == curves[:1] * (len(names) - 1)
    listed = "'energy_kwh', 'kwh', 'emissions_kg', 'kg', 'fpo', 'duration_s', 's'"
    with pytest.raises(ConfigError) as err:
        pareto_runs(runs, metric="accuracy", cost="joules")
    assert str(err.value) == f"cost must be one of {listed}, not 'joules'"
    with pytest.raises(ConfigError) as err:
        evp_by_budget(runs, "joules", metric="accuracy")
    assert str(err.value) == f"costs must be one of 'trials', {listed}, not 'joules'"


# 8. price_tag with a metric nobody logged ------------------------------------------------------


def test_price_tag_with_a_metric_no_run_logged_lists_the_logged_ones(home):
    runs = _study()
    runs[1] = replace(runs[1], metrics=[*runs[1].metrics, MetricPoint("loss", 0.3, None, 1.5)])
    with pytest.raises(gp.AnalysisError) as err:
        price_tag(runs, metric="acc")
    assert str(err.value) == (
        "no finished trial has a value of metric 'acc' to rank by, and no run has role 'final'; "
        "metrics logged: 'accuracy', 'loss'"
    )
    with pytest.raises(gp.AnalysisError, match="metrics logged: none$"):
        price_tag([replace(r, metrics=[]) for r in runs], metric="acc")


# 9. greenprint report's default folder ----------------------------------------------------------


def _ledger_of(path: str, *studies: str) -> None:
    with gp.Ledger(path) as led:
        for study in studies:
            for run in _study():
                led.start_run(replace(run, id=f"{study[:4]}-{run.id}", study=study))


def _reported(folder: Path) -> str:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))["study"]


def test_report_of_each_study_keeps_its_own_default_folder(home, capsys):
    _ledger_of("greenprint.db", "cifar", "mnist sweep/2")
    args = ["report", "--format", "json,md", "--no-plots", "--study"]
    assert main([*args, "cifar"]) == 0
    assert main([*args, "mnist sweep/2"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert _reported(home / "greenprint-report-cifar") == "cifar"
    assert _reported(home / "greenprint-report-mnist-sweep-2") == "mnist sweep/2"
    assert not (home / "greenprint-report").exists()
    # explicit --out as before: where it says
    assert main([*args, "cifar", "--out", "mine"]) == 0
    assert _reported(home / "mine") == "cifar"


def test_report_into_the_default_folder_says_it_replaced_another_study(home, capsys):
    _ledger_of("one.db", "cifar")
    _ledger_of("two.db", "mnist")
    args = ["report", "--format", "json", "--no-plots", "--ledger"]
    assert main([*args, "one.db"]) == 0  # one study: ./greenprint-report, as before
    assert "note:" not in capsys.readouterr().err
    assert main([*args, "one.db"]) == 0  # the same study again: nothing to say
    assert "note:" not in capsys.readouterr().err
    assert main([*args, "two.db"]) == 0
    assert capsys.readouterr().err == (
        "note: replaced the report of study 'cifar' in greenprint-report (give --out DIR to "
        "keep both)\n"
    )
    assert _reported(home / "greenprint-report") == "mnist"


# 10. greenprint greener --pue -------------------------------------------------------------------

MODELS = """
import torch
from torch import nn

def trained():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 2)).eval()

def batches():
    x = torch.randn(8, 4)
    return [(x, (x.sum(dim=1) > 0).long())]
"""


def test_greener_takes_pue_as_the_api_does(home, capsys):
    pytest.importorskip("torch")
    (home / "models.py").write_text(MODELS)
    argv = ["greener", "models.py:trained", "--data", "models.py:batches", "--min-time", "0"]
    argv += ["--variants", "prune-50", "--study", "g", "--region", "DE"]
    err = _one_line_error(capsys, main([*argv, "--pue", "7"]))
    assert "PUE must be a finite number with 1 <= x <= 3, got '7'" in err
    assert not (home / "greenprint.db").exists()  # refused before anything was measured
    assert main([*argv, "--pue", "1.5"]) == 0, capsys.readouterr().err
    with gp.Ledger("greenprint.db") as led:
        runs = led.runs(study="g")
    assert runs and {r.pue for r in runs} == {1.5}
    for run in runs:  # CO2-eq = IT energy x PUE x intensity
        intensity_kg = run.intensity_g_per_kwh / 1000
        assert run.emissions_kg == pytest.approx(run.energy_kwh * 1.5 * intensity_kg, rel=1e-6)
