"""The report's efficiency section on studies built as users build them (session 20).

* a sweep script under ``greenprint run --role sweep`` whose trials are child runs, two of them
  tied on the best score at different costs, a baseline and a final retrain scored on its own
  split (a scikit-learn search's tied candidates read the same way);
* a study whose meter measured nothing and that counted no FPO;
* a final retrain that logged no score.

Each row is checked against :func:`greenprint.analysis.efficiencies` and a Pareto front found
by brute force; every format is written (the JSON validated against docs/report-schema.json).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in  # tests/_report_cli.py
from _set_energy import Joules  # tests/_set_energy.py
from greenprint.analysis import efficiencies
from greenprint.meters._base import MeterReading
from greenprint.report import build_report, write_report

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "report-schema.json"

#: A hand-written search: trial-1 and trial-3 tie on 0.8, trial-3 at a fifth of the CPU time
SWEEP_SCRIPT = """
import time
import greenprint as gp


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


with gp.track("majority", role="baseline") as run:
    busy(0.01)
    run.log(accuracy=0.2)
for k, (score, seconds) in enumerate([(0.6, 0.02), (0.8, 0.15), (0.7, 0.08), (0.8, 0.03)]):
    with gp.track(f"trial-{k}", role="trial") as trial:
        busy(seconds)
        trial.add_fpo(int(seconds * 1e10))
        trial.log(accuracy=score)
with gp.track("retrain", role="final") as run:
    busy(0.05)
    run.add_fpo(10**9)
    run.log(test_accuracy=0.79)
"""


class Power:
    """``watts`` by the clock, all of it the process's (0 W: a meter that measured nothing)."""

    components = ("cpu",)
    provenance = {"cpu": "test:constant"}

    def __init__(self, watts: float) -> None:
        self.watts = watts

    def start(self):
        self.t0 = time.time()

    def read(self):
        joules = self.watts * (time.time() - self.t0)
        return {"cpu": MeterReading(machine_j=joules, process_j=joules)}

    def close(self):
        pass


def _written(report, out: Path) -> dict[str, str]:
    """Every format written; the JSON validated against the documented schema."""
    jsonschema = pytest.importorskip("jsonschema")
    files = write_report(report, out, "html,md,latex,json")
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    jsonschema.validate(data, json.loads(SCHEMA.read_text(encoding="utf-8")))
    return {fmt: path.read_text(encoding="utf-8") for fmt, path in files.items()}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory):
    home = empty_home(tmp_path_factory, "eff-sweep")
    (home / "search.py").write_text(SWEEP_SCRIPT, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "sw", "--role", "sweep",
                  "--name", "job", "--", sys.executable, "search.py")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ledger = str(home / "greenprint.db")
    with gp.Ledger(ledger) as led:
        runs = list(led.runs(study="sw"))
    return home, runs, build_report(ledger, "sw")


def test_a_tie_on_the_best_score_names_the_cheaper_trial_best(sweep, tmp_path):
    # the script's trial-1 and trial-3 both score 0.8; trial-1 took five times the CPU. The
    # section read "trial-1 | best trial" (the first of the tie), a costlier twin of the front
    # trial trial-3, where the best-trials table lists trial-3 first
    _, runs, report = sweep
    section = report.efficiency
    assert section is not None and report.metric == "accuracy"
    eff = {e.name: e for e in efficiencies(runs, metric="accuracy", statuses=None)}
    trials = [e for e in eff.values() if e.role == "trial" and e.status == "finished"]
    front = sorted(
        (
            e
            for e in trials
            if not any(
                o.score >= e.score
                and o.energy_kwh <= e.energy_kwh
                and (o.score > e.score or o.energy_kwh < e.energy_kwh)
                for o in trials
                if o is not e
            )
        ),
        key=lambda e: e.energy_kwh,
    )
    assert eff["trial-3"].energy_kwh < eff["trial-1"].energy_kwh
    assert [e.name for e in front][-1] == "trial-3" and "trial-1" not in [e.name for e in front]
    names = [r.name for r in section.rows]
    assert names[0] == "retrain" and names[1] == "trial-3" and names[-1] == "majority"
    assert "trial-1" not in names and section.front_size == len(front)
    assert section.rows[1].why == ("best trial", "Pareto front")
    assert set(names[1:-1]) == {e.name for e in front}
    for row in section.rows[1:]:  # each ratio as the public API's
        e = eff[row.name]
        assert (row.score, row.energy_kwh, row.fpo) == (e.score, e.energy_kwh, e.fpo)
        assert row.score_per_kwh == pytest.approx(e.score_per_kwh, rel=1e-12)
        assert row.score_per_gflop == e.score_per_gflop or row.score_per_gflop == pytest.approx(
            e.score_per_gflop, rel=1e-12
        )
    final = next(r for r in runs if r.name == "retrain")
    assert section.rows[0].score_per_kwh == pytest.approx(0.79 / final.energy_kwh, rel=1e-12)
    text = _written(report, tmp_path / "out")
    assert "| trial-3 | best trial, Pareto front | 0.8 |" in text["md"]
    assert "| trial-1 |" not in text["md"].split("## Efficiency")[1].split("\n## ")[0]
    # the baseline counted no FPO: its dash is explained
    assert "| majority | baseline | 0.2 |" in text["md"] and "A dash: no ratio" in text["md"]
    paper = text["latex"][text["latex"].index("BEGIN PAPER") : text["latex"].index("END PAPER")]
    assert "retrain $\\star$ & 0.79 (test\\_accuracy)" in paper
    # each row marked with what the other formats' "why" column says (session 21: the best
    # trial and the front were unmarked, the caption naming only the final run and baselines)
    assert "trial-3 $\\ddagger$ $\\circ$ & 0.8 &" in paper and "majority $\\dagger$ &" in paper
    assert (
        "$\\star$: the final run, $\\ddagger$: the best trial, $\\circ$: a trial on the Pareto "
        "front, $\\dagger$: a baseline; per unit of energy and of FPO." in paper
    )


def test_a_study_that_measured_no_energy_and_counted_no_fpo_has_a_note_not_a_table(tmp_path):
    # a meter that read 0 J (or runs imported with no energy) and no FPO: the section was rows
    # of dashes under "score per Wh", each energy "0 mWh", beside a front of trials tied at 0
    ledger = str(tmp_path / "zero.db")
    with gp.track("majority", study="z", ledger=ledger, role="baseline", meters=Power(0)) as r:
        r.log(accuracy=0.3)
    for k in range(3):
        with gp.track(f"t{k}", study="z", ledger=ledger, role="trial", meters=Power(0)) as r:
            r.log(accuracy=0.5 + 0.1 * k)
    report = build_report(ledger, "z")
    assert report.efficiency is None
    note = next(n for n in report.notes if n.startswith("no efficiency table:"))
    assert "measured energy or counted FPO" in note
    text = _written(report, tmp_path / "out")
    assert "## Efficiency" not in text["md"] and note in text["md"].replace("\\", "")
    assert json.loads(text["json"])["efficiency"] is None


def test_a_final_retrain_without_a_score_is_a_row_that_says_so(tmp_path):
    # a final retrain that logged nothing (no accuracy, no held-out score): it was left out of
    # the section without a word, so the reader saw no final run at all
    ledger = str(tmp_path / "final.db")

    def track(name, role, joules):
        return gp.track(name, study="f", ledger=ledger, role=role, meters=Joules(joules),
                        sample_interval_s=0.01)  # fmt: skip

    for k in range(3):
        with track(f"t{k}", "trial", 72.0 * (k + 1)) as r:
            r.add_fpo(10**8 * (k + 1))
            r.log(accuracy=0.5 + 0.1 * k)
    with track("retrain", "final", 108.0) as r:
        r.add_fpo(10**9)
    report = build_report(ledger, "f")
    section = report.efficiency
    assert section is not None and report.price_tag.final.name == "retrain"
    row = section.rows[0]
    assert (row.name, row.why, row.score) == ("retrain", ("final run",), None)
    assert row.score_per_kwh is None and row.score_per_gflop is None and row.fpo == 10**9
    assert [r.name for r in section.rows[1:]] == ["t2", "t0", "t1"]  # best, then the front
    assert "The final run logged no accuracy nor a score of its own: no ratio." in (
        section.caption()
    )
    text = _written(report, tmp_path / "out")
    assert "| retrain | final run | no score |" in text["md"]
    assert "retrain $\\star$ & no score & - & -" in text["latex"]
    data = json.loads(text["json"])["efficiency"]["rows"][0]
    assert data["name"] == "retrain" and data["score"] is None


def test_a_tie_that_holds_the_final_run_names_it_best_trial(tmp_path):
    # no run has role 'final' (a Hugging Face Trainer's trainings, each a trial): the report
    # takes the cheapest of the tied best trials as final (t-b; session 21: the earliest, t-a,
    # before). 3f8f973's tie to the cheaper one read "t-a | final run" and "t-b | best trial",
    # two bests of one score; the final run is the best trial, and the costlier twin t-a is
    # not on the front
    ledger = str(tmp_path / "tie.db")
    for name, joules in (("t-a", 540.0), ("t-b", 72.0), ("t-c", 36.0)):
        with gp.track(name, study="t", ledger=ledger, role="trial", meters=Joules(joules),
                      sample_interval_s=0.01) as run:  # fmt: skip
            run.log(accuracy=0.5 if name == "t-c" else 0.9)
    report = build_report(ledger, "t")
    assert report.price_tag.final.name == "t-b"
    rows = {r.name: r.why for r in report.efficiency.rows}
    assert rows == {"t-b": ("final run", "best trial", "Pareto front"),
                    "t-c": ("Pareto front",)}  # fmt: skip


def _front(runs, metric="accuracy"):
    """The finished trials no other finished trial beats on score and energy (brute force)."""
    trials = [
        e for e in efficiencies(runs, metric=metric) if e.role == "trial" and e.status == "finished"
    ]
    return {
        e.name
        for e in trials
        if not any(
            o.score >= e.score
            and o.energy_kwh <= e.energy_kwh
            and (o.score > e.score or o.energy_kwh < e.energy_kwh)
            for o in trials
            if o is not e
        )
    }


def test_a_best_trial_past_the_ten_cheapest_of_the_front_is_said_to_be_on_it(tmp_path):
    # twelve trials, each better for more energy: all on the front. The rows were the ten
    # cheapest and "t11 | final run, best trial", as if the best trial were off the front
    ledger = str(tmp_path / "front.db")
    for k in range(12):
        with gp.track(f"t{k:02d}", study="fr", ledger=ledger, role="trial",
                      meters=Joules(72.0 * (k + 1)), sample_interval_s=0.01) as run:  # fmt: skip
            run.log(accuracy=0.5 + 0.01 * k)
    with gp.Ledger(ledger) as led:
        front = _front(led.runs(study="fr"))
    report = build_report(ledger, "fr")
    section = report.efficiency
    assert section.front_size == len(front) > 10 and "t11" in front
    for row in section.rows:
        assert ("Pareto front" in row.why) == (row.name in front)
    assert section.rows[0].name == "t11"
    assert section.rows[0].why == ("final run", "best trial", "Pareto front")
    listed = sum(1 for r in section.rows if "Pareto front" in r.why)
    assert listed == 11
    assert (
        f"11 of the {len(front)} finished trials on the Pareto front of score against energy "
        "(the 10 cheapest and the best)"
    ) in section.caption()


def test_a_pruned_trial_is_never_the_best_trial(tmp_path):
    # an Optuna-style search whose pruned trial's last intermediate accuracy (0.9, a training
    # stopped early) beats every finished trial's: the section listed "b | best trial | 0.9"
    # with no status, beside "a | final run" (the best finished trial, as the report chose)
    ledger = str(tmp_path / "pruned.db")
    for name, score in (("a", 0.7), ("b", 0.9), ("c", 0.6)):
        with gp.track(name, study="p", ledger=ledger, role="trial", meters=Power(3600.0),
                      sample_interval_s=0.01) as run:  # fmt: skip
            time.sleep(0.02)
            run.log(accuracy=score)
            if name == "b":
                run.prune()
    report = build_report(ledger, "p")
    assert report.price_tag.final.name == "a"
    rows = {r.name: r.why for r in report.efficiency.rows}
    assert "b" not in rows and rows["a"][:2] == ("final run", "best trial")


def _lower_bound(fpo: int) -> gp.FPOResult:
    """Counted FPO that ran an op with no rule: a lower bound, as count_fpo returns them."""
    return gp.FPOResult(total=fpo, forward_total=fpo, backward_total=0, matmul_total=fpo,
                        params=1, by_op={}, by_module={}, unknown_ops={"aten.foo": 2})  # fmt: skip


def test_a_lower_bound_on_fpo_reads_at_most_in_every_format(tmp_path):
    # folds that counted FPO with an op that has no rule: the trial's FPO are a lower bound and
    # its score per GFPO an upper bound. Markdown and HTML said "at least 300 MFPO" and
    # "at most 2.33"; the LaTeX table (no FPO column) wrote "$\leq$2.33" with no word of why
    ledger = str(tmp_path / "bound.db")
    for name, score, bound in (("exact", 0.6, False), ("bound", 0.7, True)):
        joules = 72.0 if name == "exact" else 180.0
        with gp.track(name, study="b", ledger=ledger, role="trial", meters=Joules(2 * joules),
                      sample_interval_s=0.01):  # fmt: skip
            for k in range(2):
                with gp.track(f"{name}/fold-{k}", study="b", ledger=ledger,
                              meters=Joules(joules), sample_interval_s=0.01) as fold:  # fmt: skip
                    fold.add_fpo(_lower_bound(15 * 10**7) if bound else 5 * 10**7)
                    fold.log(accuracy=score)
    with gp.Ledger(ledger) as led:
        runs = list(led.runs(study="b"))
    report = build_report(ledger, "b")
    rows = {r.name: r for r in report.efficiency.rows}
    assert rows["bound"].fpo == 3 * 10**8 and rows["bound"].fpo_lower_bound
    assert rows["bound"].score_per_gflop == pytest.approx(0.7 / 0.3, rel=1e-12)
    assert not rows["exact"].fpo_lower_bound and rows["exact"].fpo == 10**8
    eff = {e.name: e for e in efficiencies(runs, metric="accuracy")}
    assert rows["bound"].score_per_gflop == pytest.approx(eff["bound"].score_per_gflop, rel=1e-12)
    text = _written(report, tmp_path / "out")
    assert "| bound | final run, best trial, Pareto front | 0.7 |" in text["md"]
    assert "| at least 300 MFPO |" in text["md"] and "| at most 2.33 |" in text["md"]
    # the runs table: the trial's row, its folds' sum, reads "at least" as its folds' rows do
    # (it read "300 MFPO" under folds of "at least 150 MFPO")
    (trial_row,) = [r for r in report.runs if r.name == "bound"]
    assert trial_row.fpo == 3 * 10**8 and trial_row.fpo_lower_bound
    assert not next(r for r in report.runs if r.name == "exact").fpo_lower_bound
    runs_table = text["md"][text["md"].index("## Runs") :]
    assert re.search(r"\| bound ★ \| finished \| 0\.7 [^\n]*\| at least 300 MFPO \|", runs_table)
    assert '<td class="num">at most 2.33</td>' in text["html"]
    tex = text["latex"]
    paper = tex[tex.index("BEGIN PAPER") : tex.index("% ---- END PAPER")]
    assert "bound $\\star$ $\\ddagger$ $\\circ$ & 0.7 &" in paper and "$\\leq$2.33" in paper
    assert "$\\leq$: at most, as the run's FPO counted are a lower bound." in paper
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        return  # the rest needs pdflatex (tests/report/test_latex_layout.py says how)
    start = paper.index("\\caption{Score per unit of cost")  # the section's table alone
    body = paper[paper.rindex("\\begin{table}", 0, start) : paper.index("\\end{table}", start)]
    body += "\\end{table}"
    out = tmp_path / "out"  # beside the report's figures
    (out / "paper.tex").write_text(
        "\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n"
        "\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
        + "Some text of the paper around the table.\n"
        + body
        + "\n\\end{document}\n",
        encoding="utf-8",
    )
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
                          cwd=out, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    log = (out / "paper.log").read_text(encoding="utf-8", errors="replace")
    assert "Overfull" not in log


@pytest.mark.parametrize("logged", [("test_loss", "test_accuracy"), ("test_loss",)])
def test_a_final_runs_held_out_loss_is_no_efficiency(tmp_path, logged):
    # a final retrain that logs its test loss first, then its test accuracy (or the loss
    # alone): the row read "final | final run | 0.31 (test_loss) | ... | 14.1": a loss per Wh,
    # which the section refuses for the trials' metric
    ledger = str(tmp_path / "held.db")

    def track(name, role):
        return gp.track(name, study="h", ledger=ledger, role=role, meters=Power(3600.0),
                        sample_interval_s=0.01)  # fmt: skip

    for k in range(2):
        with track(f"t{k}", "trial") as run:
            time.sleep(0.02 * (k + 1))
            run.log(accuracy=0.5 + 0.1 * k)
    with track("final", "final") as run:
        time.sleep(0.02)
        run.log(**dict(zip(logged, (0.31, 0.88), strict=False)))
    with gp.Ledger(ledger) as led:
        final = next(r for r in led.runs(study="h") if r.name == "final")
    report = build_report(ledger, "h")
    section = report.efficiency
    row = section.rows[0]
    assert row.name == "final" and row.why == ("final run",)
    text = _written(report, tmp_path / "out")
    if "test_accuracy" in logged:
        assert (row.metric, row.score) == ("test_accuracy", 0.88)
        assert row.score_per_kwh == pytest.approx(0.88 / final.energy_kwh, rel=1e-12)
        assert "| final | final run | 0.88 (test\\_accuracy) |" in text["md"]
    else:
        assert (row.metric, row.score) == ("test_loss", 0.31)
        assert row.score_per_kwh is None and row.score_per_gflop is None
        assert "The final run's test_loss is better lower: no ratio." in section.caption()
        line = next(x for x in text["md"].splitlines() if x.startswith("| final | final run |"))
        assert line.endswith("| - | - |") and "0.31 (test\\_loss)" in line
