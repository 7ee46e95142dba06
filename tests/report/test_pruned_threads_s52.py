"""The pruned trials' section of a study whose trials ran in threads reads one footing (session 52).

``study.optimize(n_jobs=2)``: two trials at a time in threads of one process, each measuring the
whole process over its span. The price tag counts each stretch of their time once; the section
said "They spent" from the price tag but took each pruned trial's cost, which its "would have
cost" and "saved" are made of, from what the trial measured (about twice as much). Its three
figures did not add up (spent 197 µWh, would have cost 1.09 mWh, saved 727 µWh in an outside
check). Now every figure of the section is the price tag's.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import optuna
import pytest

from greenprint.integrations.optuna import GreenprintCallback
from greenprint.report import build_report, write_report

_UNITS = {"nWh": 1e-12, "µWh": 1e-9, "mWh": 1e-6, "Wh": 1e-3, "kWh": 1.0}


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(2000))


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0, 1)
    for step in range(3):
        _busy(0.1)
        trial.report(x + step, step)
        if trial.number % 2 and step == 0:  # every odd trial stopped at its first step
            raise optuna.TrialPruned()
    return x


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """The report (JSON, Markdown) of 6 trials run two at a time, 3 of them pruned."""
    where = tmp_path_factory.mktemp("threads")
    ledger = where / "p.db"
    callback = GreenprintCallback(ledger=str(ledger))
    searched = optuna.create_study(study_name="par-pruned")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with pytest.warns(UserWarning, match="parallel threads"):
        searched.optimize(callback.track(_objective), n_trials=6, n_jobs=2, callbacks=[callback])
    files = write_report(
        build_report(ledger, "par-pruned", metric="value"),
        where / "out",
        formats=("json", "md"),
        plots=False,
    )
    return json.loads(Path(files["json"]).read_text()), Path(files["md"]).read_text()


def test_spent_run_to_the_end_and_saved_add_up(study: tuple[dict, str]) -> None:
    report, _ = study
    pruning = report["pruning"]
    assert pruning["pruned"] == 3
    assert [r["scale"] for r in pruning["rows"]] == [3.0, 3.0, 3.0]  # a third of 3 steps each
    spent = pruning["energy_kwh"]
    saved = pruning["estimate"]["saved_energy_kwh"]
    # each pruned trial's cost x (3 - 1): saved is twice what they spent, on one footing
    assert saved == pytest.approx(2 * spent, rel=1e-9)
    assert pruning["estimate"]["saved_emissions_kg"] == pytest.approx(
        2 * pruning["emissions_kg"], rel=1e-9
    )
    # what they spent is the price tag's pruned total
    assert spent == pytest.approx(report["price_tag"]["by_status"]["pruned"]["energy_kwh"])


def test_the_table_rows_add_up_to_the_sentence(study: tuple[dict, str]) -> None:
    _, markdown = study
    section = markdown.split("pruned by Optuna MedianPruner", 1)[1].split("\n## ", 1)[0]
    sentence = section.split("\n", 1)[0]
    spent = re.search(r"They spent ([\d.]+) (\w+Wh)", sentence)
    would = re.search(r"would have cost about ([\d.]+) (\w+Wh)", sentence)
    saved = re.search(r"pruning saved about ([\d.]+) (\w+Wh)", sentence)
    assert spent and would and saved, sentence
    kwh = {
        k: float(m[1]) * _UNITS[m[2]]
        for k, m in (("spent", spent), ("would", would), ("saved", saved))
    }
    assert kwh["spent"] + kwh["saved"] == pytest.approx(kwh["would"], rel=0.01)
    rows = re.findall(
        r"^\| trial-\d+ \| 0 \| Optuna MedianPruner \| ([\d.]+) (\w+Wh) \|", section, re.M
    )
    assert len(rows) == 3
    assert sum(float(v) * _UNITS[u] for v, u in rows) == pytest.approx(kwh["spent"], rel=0.01)


def test_a_saving_of_nothing_reads_in_the_unit_beside_it(tmp_path: Path) -> None:
    """A pruned trial stopped at the last step a finished one reached saved nothing: "0 µWh"
    beside "38.5 µWh", not "0 mWh" (session 52, an outside check)."""
    import greenprint as gp
    from greenprint.report import render

    ledger = str(tmp_path / "z.db")
    for k in range(2):
        with gp.track(f"t{k}", study="s", ledger=ledger, role="trial", params={"lr": k}) as run:
            _busy(0.03)
            for step in range(3):
                run.log(accuracy=0.5 + 0.1 * k, step=step)
            if k == 1:
                run.prune()
    markdown = render(build_report(ledger, "s"), "md", plots=False)
    (line,) = [line for line in markdown.splitlines() if "pruning saved" in line]
    would = re.search(r"would have cost about [\d.]+ (\w+Wh)", line)
    assert would is not None, line
    assert f"pruning saved about 0 {would[1]} and 0 " in line, line
    assert "0 mg CO2-eq" not in line or would[1] == "mWh"
