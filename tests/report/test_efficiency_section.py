"""The report's efficiency section: score per kWh and per GFPO of the runs a reader compares.

A study is written as a user writes one (``gp.track`` with roles: a baseline, trials whose
cross-validation folds are child runs and count the FPO, a pruned and a failed trial, a final
retrain scored on its own test split), metered by a meter that reads a set energy. Every row is
checked against first principles: the rows chosen (final run, best trial by the mean of its
folds, the Pareto front found by brute force over the finished trials, the baselines), each
ratio as the score over the trial's energy and FPO with its folds', and the tables' units.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, run_in  # tests/_report_cli.py
from _set_energy import Joules  # tests/_set_energy.py
from greenprint.report import build_report, write_report

STUDY = "cv-search"
#: (name, fold scores, seconds per fold, FPO per fold, status): the trials of the search
TRIALS = (
    ("t-cheap", (0.80, 0.84), 0.02, 10**8, "finished"),
    ("t-mid", (0.90, 0.92), 0.05, 4 * 10**8, "finished"),
    ("t-big", (0.95, 0.93), 0.12, 3 * 10**9, "finished"),
    ("t-waste", (0.85, 0.83), 0.10, 2 * 10**9, "finished"),  # beaten by t-mid on both
    ("t-pruned", (0.70,), 0.02, 10**8, "pruned"),
)


def track(name, ledger, joules, **kw):
    return gp.track(name, study=STUDY, ledger=ledger, meters=Joules(joules),
                    sample_interval_s=0.01, **kw)  # fmt: skip


def write_study(ledger: str, *, metric: str = "accuracy") -> None:
    with track("majority", ledger, 36.0, role="baseline") as run:
        run.log(**{metric: 0.5})
    for name, folds, seconds, fpo, status in TRIALS:
        joules = 3600.0 * seconds  # a fold's energy: 3600 W for its seconds
        # the trial measured its folds and a little more of its own
        with track(name, ledger, joules * len(folds) + 1.0, role="trial") as trial:
            for k, score in enumerate(folds):
                with track(f"{name}/fold-{k}", ledger, joules) as fold:
                    fold.add_fpo(fpo)
                    fold.log(**{metric: score})
            if status == "pruned":
                trial.prune()
    with pytest.raises(RuntimeError), track("t-failed", ledger, 36.0, role="trial"):
        raise RuntimeError("out of memory")
    with track("final-retrain", ledger, 216.0, role="final") as run:
        run.add_fpo(4 * 10**9)
        run.log(test_accuracy=0.91)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    ledger = str(tmp_path_factory.mktemp("efficiency") / "ledger.db")
    write_study(ledger)
    with gp.Ledger(ledger) as led:
        runs = led.runs(study=STUDY)
    return ledger, runs, build_report(ledger, STUDY, metric="accuracy")


def _by_hand(runs):
    """Each trial's score (its folds' mean), energy and FPO with its folds', by name."""
    by_id = {r.id: r for r in runs}
    out = {}
    for run in runs:
        if run.parent_id is not None:
            continue
        folds = [r for r in runs if r.parent_id == run.id]
        scores = [f.metric("accuracy") for f in folds if f.metric("accuracy") is not None]
        own_score = run.metric("accuracy")
        score = (
            own_score if own_score is not None else (sum(scores) / len(scores) if scores else None)
        )
        energy = max(run.energy_kwh, math.fsum(f.energy_kwh for f in folds))
        fpo = (run.fpo or 0) + sum(f.fpo or 0 for f in folds)
        out[run.name] = (score, energy, fpo, run.status, by_id[run.id].role)
    return out


def test_the_rows_are_the_final_run_best_trial_front_and_baselines(study):
    _, runs, report = study
    hand = _by_hand(runs)
    section = report.efficiency
    assert section is not None and section.metric == "accuracy"
    finished = {n: v for n, v in hand.items() if v[4] == "trial" and v[3] == "finished"}
    # the front by brute force: no other finished trial scores at least as high for no more
    # energy, better on one of the two
    front = sorted(
        (
            n
            for n, (s, e, *_rest) in finished.items()
            if not any(
                s2 >= s and e2 <= e and (s2 > s or e2 < e)
                for m, (s2, e2, *_r) in finished.items()
                if m != n
            )
        ),
        key=lambda n: finished[n][1],
    )
    assert "t-waste" not in front and {"t-cheap", "t-mid", "t-big"} <= set(front)
    scored = {n: v for n, v in hand.items() if v[4] == "trial" and v[3] in ("finished", "pruned")}
    best = max(scored, key=lambda n: scored[n][0])
    assert best == "t-big"
    names = [r.name for r in section.rows]
    assert names[0] == "final-retrain" and section.rows[0].why == ("final run",)
    # the best trial (the front's priciest here) right after the final run, then the rest of
    # the front, cheapest first, then the baseline
    assert names[1:] == [best, *(n for n in front if n != best), "majority"]
    assert next(r for r in section.rows if r.name == best).why == ("best trial", "Pareto front")
    assert section.rows[-1].why == ("baseline",) and section.front_size == len(front)
    assert "t-failed" not in names and "t-pruned" not in names  # no model, not on the front


def test_each_ratio_is_the_score_over_the_trials_cost_with_its_folds(study):
    _, runs, report = study
    hand = _by_hand(runs)
    for row in report.efficiency.rows:
        if row.name == "final-retrain":  # scored on its own split: its held-out metric
            final = next(r for r in runs if r.name == "final-retrain")
            assert (row.metric, row.score) == ("test_accuracy", 0.91)
            assert row.score_per_kwh == pytest.approx(0.91 / final.energy_kwh, rel=1e-12)
            assert row.score_per_gflop == pytest.approx(0.91 / 4.0, rel=1e-12)
            continue
        score, energy, fpo, *_ = hand[row.name]
        assert row.metric == "accuracy" and row.score == pytest.approx(score, rel=1e-12)
        assert row.energy_kwh == pytest.approx(energy, rel=1e-9)
        assert row.score_per_kwh == pytest.approx(score / energy, rel=1e-9)
        if row.name == "majority":  # counted no FPO: no ratio, never infinitely efficient
            assert row.fpo is None and row.score_per_gflop is None
        else:
            assert row.fpo == fpo
            assert row.score_per_gflop == pytest.approx(score / (fpo / 1e9), rel=1e-12)


def test_every_format_shows_the_table_in_one_unit_per_column(study, tmp_path):
    ledger, _, report = study
    section = report.efficiency
    # the units hold the rows' median energy and FPO: a ratio reads about the score or more
    energies = sorted(r.energy_kwh for r in section.rows)
    assert section.energy_unit_kwh >= energies[len(energies) // 2] > section.energy_unit_kwh / 1e3
    files = write_report(report, tmp_path / "out", "html,md,latex,json")
    md = files["md"].read_text(encoding="utf-8")
    header = f"| run | why | score | energy | FPO | score per {section.energy_unit} |"
    assert "## Efficiency: score per unit of cost" in md and header in md
    cheap = next(r for r in section.rows if r.name == "t-cheap")
    per_unit = cheap.score_per_kwh * section.energy_unit_kwh
    line = next(x for x in md.splitlines() if x.startswith("| t-cheap | Pareto front |"))
    assert f"| {per_unit:.3g} |" in line or f"| {per_unit:,.0f} |" in line
    assert "| final-retrain | final run | 0.91 (test\\_accuracy) |" in md
    html = files["html"].read_text(encoding="utf-8")
    assert '<section id="efficiency">' in html and 'href="#efficiency"' in html
    tex = files["latex"].read_text(encoding="utf-8")
    paper = tex[tex.index("BEGIN PAPER") : tex.index("END PAPER")]
    # the score's metric under it: the table is as wide as one column of an A4 paper
    assert r"final-retrain $\star$ & \begin{tabular}[t]{@{}r@{}}0.91 \\ (test\_accuracy)" in paper
    assert "majority $\\dagger$" in paper
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    assert data["efficiency"] == json.loads(json.dumps(section.to_dict()))
    assert [r["name"] for r in data["efficiency"]["rows"]] == [r.name for r in section.rows]


def test_a_loss_gets_no_efficiency_table_and_a_note_says_why(tmp_path):
    ledger = str(tmp_path / "loss.db")
    write_study(ledger, metric="val_loss")
    report = build_report(ledger, STUDY)  # a loss: minimised, as its name says
    assert report.mode == "min" and report.efficiency is None
    assert any(n.startswith("no efficiency table: val_loss is better lower") for n in report.notes)
    files = write_report(report, tmp_path / "out", "md,json")
    assert "## Efficiency" not in files["md"].read_text(encoding="utf-8")
    assert json.loads(files["json"].read_text(encoding="utf-8"))["efficiency"] is None


def test_a_new_users_report_command_writes_the_section(study, tmp_path):
    ledger, _, _ = study
    home = tmp_path / "empty"
    home.mkdir()
    done = run_in(home, GREENPRINT, "report", "--ledger", ledger, "--format", "md", "--no-plots")
    assert done.returncode == 0, done.stderr
    md = (Path(home) / "greenprint-report" / "report.md").read_text(encoding="utf-8")
    assert "## Efficiency: score per unit of cost" in md
    assert "| t-mid | Pareto front |" in md
