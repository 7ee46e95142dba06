"""Issue 12 as a new user meets it: real studies, read right by ``greenprint report``.

Every study is built the way users build one, in a fresh empty directory with a clean
environment (no ``GREENPRINT_*`` variable, no configuration: the ledger is ``./greenprint.db``):

* **Optuna + scikit-learn**: 15 Optuna trials (``GreenprintCallback``), each a 3-fold
  cross-validation through ``track_search`` (so each trial holds a scikit-learn sweep, its
  candidate and three folds, all given roles by the integration), a median pruner, two trials
  that fail, then a final model retrained on all the data (``role="final"``);
* **``greenprint run`` around scripts**: two baselines (``--role baseline``), a search whose
  trials are child runs in a child process with their folds as grandchildren (a sweep container:
  no role, no score), some folds counting FPO and the rest not, and a retrain (``--role final``);
  the metric is ``val_loss`` and no ``--mode`` is given.

Then ``greenprint report`` (HTML, Markdown, LaTeX, JSON) and ``greenprint ledger export`` (CSV,
JSON) are checked for what a reader relies on: the trial counts Optuna and the scripts ran, the
final run and the sentence saying why, EVP and Pareto over trials only (never folds), baselines
as reference lines and marked rows, one EVP curve per family, a minimised loss with a visible
note, unknown FPO as "unknown" with its run count (never 0), units after the numbers of the
sentences, the LaTeX paper part compiled in a two-column article, every run in the HTML (and in
a PDF Chromium prints), and the model card block with exactly Hugging Face's keys.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import report_text as _text
from greenprint.analysis import expected_max_performance

#: Hugging Face's model card metadata, ``co2_eq_emissions`` (huggingface_hub's ModelCardData).
HF_KEYS = ["emissions", "source", "training_type", "geographical_location", "hardware_used"]

OPTUNA_SCRIPT = """
import json
import optuna
import greenprint as gp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.svm import SVC
from greenprint.integrations.optuna import GreenprintCallback
from greenprint.integrations.sklearn import track_search

optuna.logging.set_verbosity(optuna.logging.ERROR)
X, y = load_digits(return_X_y=True)
X, X_test, y, y_test = train_test_split(X[:450], y[:450], test_size=0.2, random_state=0)
FAIL = {4, 9}


def make(model, c):
    return LogisticRegression(C=c, max_iter=200) if model == "logreg" else SVC(C=c)


def objective(trial):
    model = trial.suggest_categorical("model", ["logreg", "svc"])
    c = trial.suggest_float("C", 1e-4, 10, log=True)
    if trial.number in FAIL:
        raise FloatingPointError("solver diverged")
    search = GridSearchCV(make(model, c), {"C": [c]}, cv=3, refit=False)
    track_search(search, X, y, name=f"cv-{trial.number}")
    accuracy = float(search.cv_results_["mean_test_score"][0])
    trial.report(accuracy, 0)
    if trial.should_prune():
        raise optuna.TrialPruned()
    return accuracy


cb = GreenprintCallback(metric_names=["accuracy"])
study = optuna.create_study(
    study_name="digits", direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
    pruner=optuna.pruners.MedianPruner(n_startup_trials=3),
)
study.optimize(cb.track(objective), n_trials=15, callbacks=[cb], catch=(FloatingPointError,))
best = study.best_params
with gp.track("retrain", study="digits", role="final", params=best) as run:
    clf = make(best["model"], best["C"]).fit(X, y)
    run.log(accuracy=float(clf.score(X_test, y_test)))
print(json.dumps([
    {"number": t.number, "state": t.state.name, "value": t.value,
     "last": t.intermediate_values.get(0), "run": t.user_attrs.get("greenprint_run_id")}
    for t in study.trials
]))
"""

BASELINE_SCRIPT = """
import sys
import greenprint as gp

name, loss = sys.argv[1], float(sys.argv[2])
with gp.track(f"{name}-eval") as run:  # a child of the `greenprint run` run
    run.log(val_loss=loss)
"""

SEARCH_SCRIPT = """
import greenprint as gp

# 6 trials of 3-fold CV; trial 2 is pruned after one fold, trial 3 fails in its second fold
FOLDS = {0: [0.40, 0.42, 0.44], 1: [0.30, 0.34, 0.32], 2: [0.90], 3: [0.50, None],
         4: [0.36, 0.38, 0.40], 5: [0.33, 0.35, 0.31]}
MODEL = {0: "mlp", 1: "cnn", 2: "mlp", 3: "cnn", 4: "cnn", 5: "mlp"}
for k, losses in FOLDS.items():
    try:
        with gp.track(f"trial-{k}", params={"model": MODEL[k], "lr": 10.0 ** -k}) as trial:
            for f, loss in enumerate(losses):
                with gp.track(f"trial-{k}-fold{f}") as fold:
                    if loss is None:
                        raise FloatingPointError("loss diverged")
                    if k % 2 == 0:
                        fold.add_fpo(10**9 * (k + 1))  # FPO counted for some runs only
                    fold.log(val_loss=loss)
                if k == 2:
                    trial.prune()
                    break
    except FloatingPointError:
        pass
"""

RETRAIN_SCRIPT = """
import greenprint as gp

with gp.track("retrain-fit", params={"training_type": "fine-tuning"}) as run:
    run.log(val_loss=0.29)
"""

#: The losses of the folds that finished, by trial (trial 3 failed: it has no score).
FOLDS = {
    0: [0.40, 0.42, 0.44],
    1: [0.30, 0.34, 0.32],
    2: [0.90],
    4: [0.36, 0.38, 0.40],
    5: [0.33, 0.35, 0.31],
}


@pytest.fixture(scope="module")
def optuna_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict]:
    """The Optuna + scikit-learn study: (its directory, Optuna's trials, the JSON report)."""
    pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    home = _empty(tmp_path_factory, "new-user-optuna")
    (home / "study.py").write_text(OPTUNA_SCRIPT, encoding="utf-8")
    built = run_in(home, sys.executable, "study.py")
    assert built.returncode == 0, built.stderr
    trials = json.loads(built.stdout.splitlines()[-1])
    return home, trials, _report(home)


@pytest.fixture(scope="module")
def cli_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Baselines, a search and a retrain, each through ``greenprint run``; the JSON report."""
    home = _empty(tmp_path_factory, "new-user-cli")
    for name, text in (
        ("baseline.py", BASELINE_SCRIPT),
        ("search.py", SEARCH_SCRIPT),
        ("retrain.py", RETRAIN_SCRIPT),
    ):
        (home / name).write_text(text, encoding="utf-8")
    study = ["--study", "cifar", "-q"]
    for args in (
        ["--role", "baseline", "--name", "majority", "--", "baseline.py", "majority", "0.69"],
        ["--role", "baseline", "--name", "logreg", "--", "baseline.py", "logreg", "0.52"],
        ["--name", "search", "--", "search.py"],  # no role: a sweep, inferred
        ["--role", "final", "--name", "retrain", "--", "retrain.py"],
    ):
        split = args.index("--")
        command = [*args[: split + 1], sys.executable, *args[split + 1 :]]
        done = run_in(home, GREENPRINT, "run", *study, *command)
        assert done.returncode == 0, done.stderr
    # no plots: no test reads this study's figures, only their data (the JSON) and the text
    # around them (the optuna study's report keeps them, for the PDF Chromium prints and LaTeX)
    return home, _report(home, "--study", "cifar", "--group-by", "params.model", "--no-plots")


def _runs(home: Path, study: str) -> dict[str, gp.RunRecord]:
    with gp.Ledger(home / "greenprint.db", create=False) as led:
        return {r.name: r for r in led.runs(study=study)}


def _rows(report: dict) -> dict[str, dict]:
    return {row["name"]: row for row in report["runs"]}


def _script_report(tmp_path_factory, name: str, script: str, *args: str) -> dict:
    """``script`` run as a new user runs it (an empty directory, a clean environment), then
    ``greenprint report --format json --no-plots`` there (``args`` added): the JSON."""
    home = _empty(tmp_path_factory, name)
    (home / "script.py").write_text(script, encoding="utf-8")
    done = run_in(home, sys.executable, "script.py")
    assert done.returncode == 0, done.stderr
    return _report(home, *args, "--format", "json", "--no-plots")


def _counted_under(runs: Iterable[gp.RunRecord], roles: dict[str, str]) -> dict[str, list[str]]:
    """Status -> the names of the runs whose cost the table by status counts under it.

    From first principles: a run's own status, or for a part, the status of the run it is part
    of (the nearest run above it that is not a part) or its own, whichever ended worse.
    """
    by_id = {r.id: r for r in runs}
    worse = ("lost", "failed", "interrupted", "running", "pruned", "finished")
    out: dict[str, list[str]] = {}
    for run in by_id.values():
        owner = run
        while roles[owner.id] == "part" and owner.parent_id in by_id:
            owner = by_id[owner.parent_id]
        status = min(run.status, owner.status, key=worse.index)
        out.setdefault(status, []).append(run.name)
    return out


def _fpo_unknown_runs(runs: Iterable[gp.RunRecord]) -> set[str]:
    """The names of the runs whose FPO is unknown, by the rule, from first principles.

    A run is unknown when it counted no FPO, has no child (a run with children that counted
    none is counted as them) and no run above it counted its own (which contains it). These
    studies run on one host: every child is inside its parent.
    """
    by_id = {r.id: r for r in runs}
    parents = {r.parent_id for r in by_id.values()}

    def counted_above(run: gp.RunRecord) -> bool:
        parent = by_id.get(run.parent_id or "")
        return parent is not None and (parent.fpo is not None or counted_above(parent))

    return {
        r.name
        for r in by_id.values()
        if r.fpo is None and r.id not in parents and not counted_above(r)
    }


def _figure(report: dict, key: str) -> dict:
    return next(f for f in report["figures"] if f["id"] == key)


def _series(figure: dict, role: str) -> list[dict]:
    return [s for panel in figure["panels"] for s in panel["series"] if s["role"] == role]


def _tree_order_holds(md: str, report: dict) -> None:
    """In the Markdown runs table every run is listed, each indented right under its parent."""
    parent = {row["id"][:8]: (row["parent_id"] or "")[:8] for row in report["runs"]}
    table = md[md.index("## Runs") :].split("\n\n", 2)[2]
    stack: list[str] = []  # the ids of the rows above, one per depth
    listed = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = line.split("|")
        depth = (len(cells[1]) - len(cells[1].lstrip(" ")) - 1) // 2
        run_id = cells[-2].strip()
        del stack[depth:]
        assert (stack[-1] if stack else "") == parent[run_id], line
        stack.append(run_id)
        listed.append(run_id)
    assert sorted(listed) == sorted(parent)


def _paper_compiles(home: Path, tex: str, require_component) -> str:
    """The LaTeX report's paper part pasted into a two-column article; pdflatex's log."""
    pdflatex = shutil.which("pdflatex")
    require_component(pdflatex is not None, "pdflatex is not installed (texlive-latex-recommended)")
    assert pdflatex is not None
    start = tex.index("\n", tex.index("BEGIN PAPER")) + 1
    body = tex[start : tex.index("% ---- END PAPER")]
    work = home / "paper"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(home / "rep", work)
    (work / "paper.tex").write_text(
        "\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n"
        "\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
        "\\section{Results}\nThe paper's text.\n" + body + "\n\\end{document}\n",
        encoding="utf-8",
    )
    for name in ("paper.tex", "report.tex"):  # pasted into a paper, and as written
        done = subprocess.run(
            [pdflatex, "-interaction=nonstopmode", "-halt-on-error", name],
            cwd=work,
            capture_output=True,
            text=True,
            errors="replace",  # pdflatex echoes T1 bytes (a µ of µWh as 0xb5), not UTF-8
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-3000:]
    return (work / "paper.log").read_text(encoding="utf-8", errors="replace")


# --------------------------------------------------------------------- Optuna + scikit-learn
def test_optuna_trials_are_optunas_not_the_folds_or_the_sklearn_candidates(optuna_study):
    home, trials, report = optuna_study
    states = {"COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "failed"}
    by_status: dict[str, int] = {}
    for t in trials:
        by_status[states[t["state"]]] = by_status.get(states[t["state"]], 0) + 1
    assert by_status["failed"] == 2 and by_status.get("pruned", 0) >= 1
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 15
    assert {s: v["trials"] for s, v in tag["by_status"].items() if v["trials"]} == by_status
    rows = _rows(report)
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == sorted(
        f"trial-{t['number']}" for t in trials
    )
    assert {rows[f"trial-{t['number']}"]["id"] for t in trials} == {t["run"] for t in trials}
    # the scikit-learn sweep, candidate and folds inside each trial are its parts (the ledger
    # keeps the roles the integration gave; the report says it read them as parts)
    runs = _runs(home, "digits")
    assert runs["cv-0"].role == "sweep" and runs["cv-0-c0"].role == "trial"
    for name, row in rows.items():
        if name.startswith("cv-"):
            assert row["role"] == "part" and not row["is_trial"]
            # the folds were given "part"; the sweep and candidate were read as parts
            assert row["role_inferred"] is ("fold" not in name), name
    assert tag["roles"]["counts"]["trial"] == 15 and tag["roles"]["counts"]["final"] == 1
    assert any("were given a role but ran inside a trial" in n for n in report["notes"])
    # ranked by the trials' metric (accuracy), not by the folds' (score), higher is better
    assert report["metric"] == "accuracy" and report["mode"] == "max"
    md = _text(home, "md")
    assert "15 trials, ranked by **accuracy** (higher is better)" in md
    assert re.search(r"\n\| total \| \d+ \| 15 \|", md)


def test_optuna_final_run_evp_and_pareto_read_trials_only(optuna_study):
    home, trials, report = optuna_study
    rows = _rows(report)
    final = report["price_tag"]["final"]
    assert final["name"] == "retrain" and final["rule"] == "role"
    assert final["score"] == pytest.approx(rows["retrain"]["score"]) and final["score"] > 0.5
    sentence = "Final run retrain (the run with role 'final') scored accuracy = "
    for fmt in ("md", "html", "latex"):
        assert sentence in _text(home, fmt).replace("&#x27;", "'"), fmt
    # EVP from Optuna's own results: a completed trial's value, a pruned one's last reported
    # value, a failed one the worst (it cost a trial and produced nothing)
    scores = [
        math.nan
        if t["state"] == "FAIL"
        else (t["value"] if t["state"] == "COMPLETE" else t["last"])
        for t in trials
    ]
    reference = expected_max_performance(scores, mode="max")
    evp = _figure(report, "evp_trials")
    assert "from the 15 trials" in evp["caption"]
    (mean,) = _series(evp, "mean")
    assert mean["y"] == pytest.approx(reference.mean.tolist(), abs=1e-12)
    assert mean["x"] == list(map(float, range(1, 16)))
    # Pareto: trials (and the starred final run), never a fold or a scikit-learn candidate
    pareto = _figure(report, "pareto")
    plotted = {i for p in pareto["panels"] for s in p["series"] for i in s.get("run_ids", ())}
    by_id = {row["id"]: row for row in report["runs"]}
    assert plotted and all(by_id[i]["is_trial"] or by_id[i]["is_final"] for i in plotted)
    assert [by_id[i]["name"] for i in _series(pareto, "final")[0]["run_ids"]] == ["retrain"]
    tex = _text(home, "latex")
    table = tex[tex.index("best trials by accuracy") :].split("\\end{tabular}", 1)[0]
    names = [line.split(" & ")[0] for line in table.splitlines() if " & " in line][2:]
    finished = sum(t["state"] in ("COMPLETE", "PRUNED") for t in trials)
    assert len(names) == min(10, finished) + 1 and names[-1] == "retrain $\\star$"
    assert all(n.startswith("trial-") for n in names[:-1])
    assert f"The {len(names) - 1} best trials by accuracy out of 15" in tex


def test_optuna_runs_table_is_a_tree_and_exports_sum_to_the_price_tag(optuna_study):
    home, _, report = optuna_study
    md = _text(home, "md")
    _tree_order_holds(md, report)
    assert md.index("| trial-0 |") < md.index("↳ cv-0 |") < md.index("↳ cv-0-c0 |")
    assert md.index("↳ cv-0-c0 |") < md.index("↳ cv-0-c0-fold0 |")
    done = run_in(home, GREENPRINT, "ledger", "export", "--study", "digits", "--out", "runs.csv")
    assert done.returncode == 0, done.stderr
    with (home / "runs.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    total = report["price_tag"]["total"]
    assert len(rows) == total["runs"]
    # the root rows sum to the price tag, each root counted as the larger of what it recorded
    # and what its children add up to (a nested run's estimate can exceed its parent's by a
    # few percent in runs of milliseconds: the price tag then says so in a note)
    children: dict[str, list[dict]] = {}
    for r in rows:
        children.setdefault(r["parent_id"], []).append(r)

    def nested(row: dict, key: str) -> float:
        inner = sum(nested(c, key) for c in children.get(row["id"], ()))
        return max(float(row[key]), inner)

    for key in ("energy_kwh", "emissions_kg"):
        roots = sum(nested(r, key) for r in children[""])
        assert roots == pytest.approx(total[key], rel=1e-12), key
    recorded = sum(float(r["energy_kwh"]) for r in children[""])
    if recorded != pytest.approx(total["energy_kwh"], rel=1e-12):
        assert recorded < total["energy_kwh"]
        assert any("less energy than their children" in n for n in report["notes"])
    assert sum(r["role"] == "trial" for r in rows) == 15
    assert {r["role"] for r in rows if r["name"].startswith("cv-")} == {"part"}
    # unknown FPO: no run counted any, so every figure says unknown with the count, never 0;
    # counted: the runs with no run inside them (the folds...), not the trials and the
    # sweep, which are their children (all unknown, each counted once)
    assert total["fpo_unknown"] == len(_fpo_unknown_runs(_runs(home, "digits").values()))
    assert total["fpo_unknown"] == len(rows) - len(children) + 1  # runs without children
    assert f"FPO unknown (none of the {total['runs']} runs counted FPO)" in md
    # the pruned trials' line is what they cost, their finished folds included, and their
    # folds' FPO is unknown: the line counts them, never 0
    runs = _runs(home, "digits").values()
    under = _counted_under(runs, {row["id"]: row["role"] for row in rows})
    unknown = _fpo_unknown_runs(runs)
    pruned = next(line for line in md.splitlines() if line.startswith("| pruned |"))
    assert pruned.startswith(f"| pruned | {len(under['pruned'])} | 5 |")
    assert unknown & set(under["pruned"])  # none of them counted FPO: said of them all
    assert f"| FPO unknown (none of the {len(under['pruned'])} runs counted FPO) |" in pruned
    assert not re.search(r"(?<![\d.])0 FPO", md)
    # the model card: exactly Hugging Face's keys; training_type unknown and how to set it
    card = report["model_card"]["co2_eq_emissions"]
    assert list(card) == HF_KEYS and card["training_type"] == "unknown"
    assert card["emissions"] == pytest.approx(total["emissions_kg"] * 1000)  # grams
    assert any("--training-type" in n for n in report["notes"])


@pytest.mark.slow
@pytest.mark.chromium
def test_optuna_html_prints_every_run(optuna_study, chromium_path, require_component, tmp_path):
    pdftotext = shutil.which("pdftotext")
    require_component(pdftotext is not None, "pdftotext is not installed (poppler-utils)")
    assert pdftotext is not None
    home, _, report = optuna_study
    html = home / "rep" / "report.html"
    assert "@media print" in html.read_text(encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    done = subprocess.run(
        [chromium_path, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert pdf.exists(), done.stderr[-2000:]
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60
    ).stdout
    ids = {row["id"][:8] for row in report["runs"]}
    assert ids <= set(re.findall(r"\b[0-9a-f]{8}\b", text))


# ----------------------------------------------------------- greenprint run around scripts
def test_cli_study_roles_trials_and_the_final_run(cli_study):
    home, report = cli_study
    runs = _runs(home, "cifar")
    search = runs["search"]
    assert all(runs[f"trial-{k}"].parent_id == search.id for k in range(6))  # across processes
    assert runs["majority"].role == "baseline" and runs["search"].role is None
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 6 and tag["total"]["runs"] == len(runs) == 28
    assert {s: v["trials"] for s, v in tag["by_status"].items()} == {
        "finished": 4,
        "failed": 1,
        "pruned": 1,
    }
    assert tag["roles"]["counts"] == {
        "trial": 6,
        "part": 18,
        "baseline": 2,
        "final": 1,
        "sweep": 1,
    }
    rows = _rows(report)
    assert rows["search"]["role"] == "sweep" and rows["search"]["role_inferred"]
    # a trial's score is the mean of its finished folds; a failed trial has none
    for k, losses in FOLDS.items():
        row = rows[f"trial-{k}"]
        assert row["score"] == pytest.approx(sum(losses) / len(losses), abs=1e-12)
        assert row["score_source"] == "parts"
    assert rows["trial-3"]["score"] is None and rows["trial-3-fold0"]["score"] == 0.5
    note = "5 of 6 trials logged no 'val_loss' of their own: their score is the mean of their "
    assert any(n.startswith(note) and n.endswith("; 1 more has no score (1 failed)")
               for n in report["notes"])  # fmt: skip
    final = tag["final"]
    assert final["name"] == "retrain" and final["rule"] == "role"
    assert final["score"] == 0.29 and final["score_source"] == "parts"
    assert "final run: retrain, the run with role 'final'" in report["notes"]
    by_role = tag["by_role"]
    assert set(by_role) == {"trial", "baseline", "final", "sweep"}
    for key in ("energy_kwh", "emissions_kg", "duration_s"):
        assert sum(v[key] for v in by_role.values()) == pytest.approx(tag["total"][key])


def test_cli_study_minimises_val_loss_and_says_so_everywhere(cli_study):
    home, report = cli_study
    assert report["metric"] == "val_loss" and report["mode"] == "min"
    note = "'val_loss' is minimised: its name says lower is better"
    assert any(n.startswith(note) for n in report["notes"])
    for fmt in ("md", "html", "latex"):
        text = _text(home, fmt).replace("&#x27;", "'").replace("\\_", "_")
        assert note in text, fmt
    for fmt in ("md", "html"):
        assert "(lower is better)" in _text(home, fmt), fmt
    # the best trial by loss is the lowest: trial-1 (mean 0.32), first in the LaTeX table
    tex = _text(home, "latex")
    table = tex[tex.index("best trials by val\\_loss") :].split("\\end{tabular}", 1)[0]
    names = [line.split(" & ")[0] for line in table.splitlines() if " & " in line][2:]
    assert names == [
        "trial-1",
        "trial-5",
        "trial-4",
        "trial-0",
        "trial-2",
        "retrain $\\star$",
        "majority $\\dagger$",
        "logreg $\\dagger$",
    ]  # the failed trial-3 produced no model: not a "best trial"
    assert "The 5 best trials by val\\_loss out of 6" in tex


def test_cli_study_evp_per_family_with_baselines_as_reference_lines(cli_study):
    home, report = cli_study
    scores = {k: sum(v) / len(v) for k, v in FOLDS.items()}
    evp = _figure(report, "evp_trials")
    (mean,) = _series(evp, "mean")
    every = [scores.get(k, math.nan) for k in range(6)]  # trial-3 failed: the worst
    reference = expected_max_performance(every, mode="min")
    assert mean["y"] == pytest.approx(reference.mean.tolist(), abs=1e-12)
    families = {s["label"]: s for panel in evp["panels"] for s in panel["series"]}
    mlp = expected_max_performance([scores[k] for k in (0, 2, 5)], mode="min")
    assert families["mlp (3)"]["y"] == pytest.approx(mlp.mean.tolist(), abs=1e-12)
    # the failed cnn trial-3 counts as the study's worst (0.9, as the figure's note says) in
    # the cnn curve too, not as the cnn family's worst
    cnn = expected_max_performance([scores[1], 0.9, scores[4]], mode="min")
    assert families["cnn (3)"]["y"] == pytest.approx(cnn.mean.tolist(), abs=1e-12)
    note = f"1 of 6 trials had no score and counts as the worst {report['metric']} (0.9)"
    assert note in evp["notes"]
    assert "one curve per params.model" in evp["caption"]
    energy = _figure(report, "evp_energy")
    # what the axis leaves out: the roles this study has, each with its energy
    for left_out in ("the sweep's own overhead (", "the baselines (", "the final model ("):
        assert left_out in energy["caption"], left_out
    for key in ("evp_trials", "evp_energy", "pareto"):
        figure = _figure(report, key)
        lines = {s["label"]: s["y"] for s in _series(figure, "baseline")}
        assert lines == {
            "baseline majority (0.69)": [0.69, 0.69],
            "baseline logreg (0.52)": [0.52, 0.52],
        }, key
        assert "horizontal lines are the baselines" in figure["caption"], key
    pareto = _figure(report, "pareto")
    by_id = {row["id"]: row for row in report["runs"]}
    plotted = [by_id[i] for s in pareto["panels"][0]["series"] for i in s.get("run_ids", ())]
    assert {r["name"] for r in plotted if r["is_trial"]} == {f"trial-{k}" for k in FOLDS}
    assert [r["name"] for r in plotted if not r["is_trial"]] == ["retrain"]
    for fmt, mark in (("md", "majority (baseline)"), ("html", "majority (baseline)")):
        assert mark in _text(home, fmt), fmt
    _tree_order_holds(_text(home, "md"), report)


def test_cli_study_fpo_unknown_counts_and_units_in_sentences(cli_study):
    home, report = cli_study
    runs = _runs(home, "cifar")
    total = report["price_tag"]["total"]
    # unknown: the runs that counted no FPO, have no run inside them and are inside no run
    # that counted its own: the folds of trials 1, 3, 5 and the baselines' and retrain's
    # runs (a trial, a sweep or a `greenprint run` wrapper that counted none is its children)
    unknown = _fpo_unknown_runs(runs.values())
    assert total["fpo"] == 3 * 10**9 + 3 * 10**9 + 3 * 5 * 10**9 and len(unknown) == 11
    assert {n for n in unknown if "fold" in n} == {
        *(f"trial-1-fold{f}" for f in range(3)),
        *(f"trial-3-fold{f}" for f in range(2)),
        *(f"trial-5-fold{f}" for f in range(3)),
    }
    assert total["fpo_unknown"] == len(unknown)
    rows = _rows(report)  # a trial whose folds all counted FPO counts as their sum
    assert [rows[f"trial-{k}"]["fpo"] for k in range(6)] == [
        3 * 10**9,
        None,
        3 * 10**9,
        None,
        3 * 5 * 10**9,
        None,
    ]
    md = _text(home, "md")
    assert "**FPO**: 21 GFPO + unknown for 11 runs" in md
    # failed: trial 3 and its 2 folds (one failed), whose FPO is unknown: what the failure cost
    under = _counted_under(runs.values(), {row["id"]: row["role"] for row in report["runs"]})
    assert sorted(under["failed"]) == ["trial-3", "trial-3-fold0", "trial-3-fold1"]
    assert "| failed | 3 | 1 |" in md and "FPO unknown (none of the 3 runs counted FPO) |" in md
    # trial 2 (pruned) did nothing beyond its fold, which counted its FPO: 3 GFPO, the pruned
    # trial's (it read "0 FPO" with the fold's 3 GFPO under "finished", the fold's status)
    pruned = next(line for line in md.splitlines() if line.startswith("| pruned |"))
    assert pruned.startswith("| pruned | 2 | 1 |") and "| 3 GFPO |" in pruned
    assert rows["trial-2"]["fpo"] == 3 * 10**9 and rows["trial-2"]["status"] == "pruned"
    assert not re.search(r"(?<![\d.])0 FPO", md.replace(pruned, ""))
    statement = md[md.index("## Compute statement") :].split("\n\n")[1]
    assert "21 GFPO (floating-point operations), not counting 11 runs whose FPO" in statement
    number = r"\d[\d.]*(?:e[+-]?\d+)?"
    sentence = md[md.index("Final run retrain") :].split("\n", 1)[0]
    assert re.fullmatch(
        rf"Final run retrain \(the run with role 'final'\) scored val\\_loss = 0\.29 and cost "
        rf"{number} (?:n|µ|m|k)?Wh of energy, {number} (?:ng|µg|mg|g|kg) CO2-eq, FPO unknown and "
        rf"{number} (?:s|min|h) of run time: (?:1/[\d,]+|[\d.]+%) of the whole study's energy "
        rf"\({number} (?:n|µ|m|k)?Wh\)\.",
        sentence,
    ), sentence
    # every number of the compute statement is followed by its unit (or is a count of things)
    units = {"nWh", "µWh", "mWh", "Wh", "kWh", "ng", "µg", "mg", "g", "kg", "s", "hours", "GFPO",
             "GB", "CO2-eq/kWh"}  # fmt: skip
    counted = {"trials", "finished,", "failed,", "pruned)", "runs,", "runs", "logical"}
    for found in re.finditer(rf"(?<![\w.:]){number}(%?)\s*(\S*)", statement):
        value, percent, after = found.group(0), found.group(1), found.group(2)
        if percent or after.startswith("/") or value.startswith("0.1.0"):  # a share, the version
            continue
        if statement[: found.start()].endswith(("a PUE of ", "= ")):  # a ratio, a score
            continue
        assert after in units | counted or after.startswith("("), (value, after, statement)


def test_cli_study_model_card_training_type_from_the_study(cli_study, tmp_path):
    home, report = cli_study
    card = report["model_card"]["co2_eq_emissions"]
    assert list(card) == HF_KEYS
    assert card["training_type"] == "fine-tuning"  # set by the retrain as a run parameter
    assert card["emissions"] == pytest.approx(report["price_tag"]["total"]["emissions_kg"] * 1e3)
    md = _text(home, "md")
    block = md[md.index("```yaml\nco2_eq_emissions:") :].split("```", 2)[1]
    keys = [line.split(":")[0].strip() for line in block.splitlines()[2:] if line.strip()]
    assert keys == HF_KEYS
    extras = {k: v for k, v in report["model_card"].items() if k != "co2_eq_emissions"}
    assert all(not set(v) & set(HF_KEYS) for v in extras.values())  # extras kept apart
    done = run_in(
        home, GREENPRINT, "report", "--study", "cifar", "--format", "json", "--no-plots",
        "--out", str(tmp_path), "--training-type", "pre-training",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    given = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert given["model_card"]["co2_eq_emissions"]["training_type"] == "pre-training"


def test_cli_study_latex_fits_a_two_column_paper(cli_study, optuna_study, require_component):
    for home in (cli_study[0], optuna_study[0]):
        log = _paper_compiles(home, _text(home, "latex"), require_component)
        assert not re.search(r"Overfull \\hbox .* in alignment", log)


def test_cli_study_html_holds_every_run_and_prints_them(cli_study):
    home, report = cli_study
    html = _text(home, "html")
    runs_section = html[html.index('<section id="runs">') :]
    for row in report["runs"]:
        assert f"<td>{row['id'][:8]}</td>" in runs_section
    assert 'class="final"' in runs_section and "retrain ★" in runs_section
    css = html[: html.index("</style>")]
    assert re.search(r"@media print \{[^@]*\.scroll[^}]*max-height: none", css)


def test_cli_study_exports_carry_parent_and_role(cli_study):
    home, report = cli_study
    done = run_in(home, GREENPRINT, "ledger", "export", "--study", "cifar", "--format", "json")
    assert done.returncode == 0, done.stderr
    items = {i["name"]: i for i in json.loads(done.stdout)["runs"]}
    assert items["trial-0-fold0"]["parent_id"] == items["trial-0"]["id"]
    assert items["trial-0"]["parent_id"] == items["search"]["id"]
    assert (items["search"]["role"], items["search"]["role_inferred"]) == ("sweep", True)
    assert (items["majority"]["role"], items["majority"]["role_inferred"]) == ("baseline", False)
    assert items["retrain-fit"]["role"] == "part"
    roots = [i for i in items.values() if i["parent_id"] is None]
    total = report["price_tag"]["total"]
    assert sum(i["energy_kwh"] for i in roots) == pytest.approx(total["energy_kwh"])
    assert len(roots) == 4  # two baselines, the search, the retrain


OPTUNA_CHILD_SCRIPT = """
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
cb = GreenprintCallback(metric_names=["val_loss"])  # Optuna minimises; the name says so too
study = optuna.create_study(study_name="quad", sampler=optuna.samplers.RandomSampler(seed=0))
study.optimize(cb.track(lambda t: (t.suggest_float("x", -3, 3) - 1) ** 2), n_trials=5,
               callbacks=[cb])
print(study.best_trial.number)
"""


def test_greenprint_run_around_an_optuna_script(tmp_path_factory):
    pytest.importorskip("optuna")
    home = _empty(tmp_path_factory, "new-user-quad")
    (home / "opt.py").write_text(OPTUNA_CHILD_SCRIPT, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "quad", "--name", "search", "--",
                  sys.executable, "opt.py")  # fmt: skip
    assert done.returncode == 0, done.stderr
    best = int(done.stdout.split()[-1])
    report = _report(home, "--format", "json,md", "--no-plots")
    runs = _runs(home, "quad")
    assert all(runs[f"trial-{k}"].parent_id == runs["search"].id for k in range(5))
    rows = _rows(report)
    assert rows["search"]["role"] == "sweep" and rows["search"]["role_inferred"]
    assert report["price_tag"]["total"]["trials"] == 5 and report["mode"] == "min"
    final = report["price_tag"]["final"]
    assert final["name"] == f"trial-{best}" and final["rule"] == "best-trial"
    md = _text(home, "md")
    assert f"Final run trial-{best} (the finished trial with the lowest val\\_loss" in md
    # the final trial is a tiny share of the study (the sweep's own start-up dominates): its
    # share and run time are small numbers, never "0.0%" or "0.0 s"
    statement = md[md.index("## Compute statement") :].split("\n\n")[1]
    # (about 0.5% on a quiet machine; 1.9% was seen with the machine loaded five-fold)
    assert final["energy_share"] < 0.1
    assert "0.0%" not in statement and "0.0 s" not in statement, statement


def test_a_group_by_that_makes_no_families_says_why(cli_study, tmp_path):
    home, _ = cli_study
    done = run_in(home, GREENPRINT, "report", "--study", "cifar", "--format", "json",
                  "--no-plots", "--out", str(tmp_path), "--group-by", "study")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    why = "no curve per study: every trial is in one family (cifar)"
    for key in ("evp_trials", "evp_energy"):
        figure = _figure(report, key)
        assert why in figure["notes"] and "one curve per" not in figure["caption"], key


def test_a_group_by_key_no_trial_has_is_an_error_naming_the_keys_they_have(cli_study, tmp_path):
    # a typo (params.modle) once gave a report whose EVP figures said "no curve per ...":
    # now one line, exit status 2, the keys the trials have and the nearest one, nothing written
    home, _ = cli_study
    for path, nearest in (("params.modle", "params.model"), ("params.nothing", None)):
        out = tmp_path / path
        done = run_in(home, GREENPRINT, "report", "--study", "cifar", "--format", "json",
                      "--no-plots", "--out", str(out), "--group-by", path)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert f"group_by {path!r}: no trial (nor any of its parts) has a value" in done.stderr
        assert "the trials have params." in done.stderr and "params.model" in done.stderr
        assert (f"did you mean {nearest!r}?" in done.stderr) == bool(nearest), done.stderr
        assert not out.exists() or not any(out.iterdir())


WRAPPED_OPTUNA_SCRIPT = """
import optuna
import greenprint as gp
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
cb = GreenprintCallback(metric_names=["accuracy"])
study = optuna.create_study(study_name="wrapped", direction="maximize",
                            sampler=optuna.samplers.RandomSampler(seed=0))
with gp.track("study", study="wrapped") as run:  # no role; it logs the best score
    study.optimize(cb.track(lambda t: 1 - (t.suggest_float("x", -1, 1)) ** 2), n_trials=4,
                   callbacks=[cb])
    run.log(accuracy=study.best_value)
"""


def test_optuna_inside_a_tracked_run_that_logs_the_best_score(tmp_path_factory):
    pytest.importorskip("optuna")
    report = _script_report(tmp_path_factory, "new-user-wrapped", WRAPPED_OPTUNA_SCRIPT)
    rows = _rows(report)
    # the wrapper is the trials' sweep (they were tracked as trials), not one trial of four parts
    assert rows["study"]["role"] == "sweep" and rows["study"]["role_inferred"]
    assert report["price_tag"]["total"]["trials"] == 4
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == [
        f"trial-{k}" for k in range(4)
    ]
    assert report["price_tag"]["final"]["rule"] == "best-trial"


MANUAL_CV_SCRIPT = """
import greenprint as gp

# a hand-written 3-fold cross-validation: each trial's folds log val_acc, the trial nothing;
# a baseline, and the final model retrained and scored on the test split (test_acc only)
FOLDS = {0.1: [0.90, 0.91, 0.92], 0.01: [0.81, 0.82, 0.83], 0.001: [0.70, 0.74, 0.72]}
with gp.track("majority", study="cv", role="baseline") as run:
    run.log(val_acc=0.10)
for lr, accs in FOLDS.items():
    with gp.track(f"lr={lr}", study="cv", params={"lr": lr}):
        for k, acc in enumerate(accs):
            with gp.track(f"fold{k}", study="cv") as fold:
                fold.log(val_acc=acc)
with gp.track("final", study="cv", role="final", params={"lr": 0.1}) as run:
    run.log(test_acc=0.93)
"""


def test_a_hand_written_cv_is_ranked_by_its_folds_metric_not_the_finals(tmp_path_factory):
    """Trials that log nothing themselves are scored by their folds' val_acc: that is the
    study's metric, not the test_acc only the final retrain logged (the report once ranked by
    test_acc: every trial unscored, no EVP, no Pareto), and the final's test_acc is stated."""
    report = _script_report(tmp_path_factory, "new-user-manual-cv", MANUAL_CV_SCRIPT)
    assert report["metric"] == "val_acc" and report["mode"] == "max"
    rows = _rows(report)
    for lr, mean in ((0.1, 0.91), (0.01, 0.82), (0.001, 0.72)):
        row = rows[f"lr={lr}"]
        assert row["is_trial"] and row["score_source"] == "parts"
        assert row["score"] == pytest.approx(mean)
    assert report["price_tag"]["total"]["trials"] == 3
    assert report["price_tag"]["final"]["run_id"] == rows["final"]["id"]
    assert report["final_scores"] == {"test_acc": pytest.approx(0.93)}
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    mean = next(s for p in evp["panels"] for s in p["series"] if s["role"] == "mean")
    assert mean["y"] == pytest.approx(expected_max_performance([0.91, 0.82, 0.72]).mean.tolist())
    assert any("ranked by 'val_acc'" in n for n in report["notes"])


SEARCH_LOGS_BEST_SCRIPT = """
import greenprint as gp

# a hand-written search: a run around trials of their own lr, which logs the best at the end
ACCS = {0.3: [0.5, 0.6, 0.7], 0.1: [0.6, 0.7, 0.75], 0.03: [0.6, 0.75, 0.85],
        0.01: [0.5, 0.55, 0.6]}
best = 0.0
with gp.track("search", study="hand", params={"n_trials": 4, "sampler": "grid"}) as search:
    for lr, accs in ACCS.items():
        with gp.track(f"lr={lr}", params={"lr": lr}) as trial:
            for epoch, acc in enumerate(accs):
                trial.log(val_loss=1 - acc, val_acc=acc, step=epoch)
        best = max(best, accs[-1])
    search.log(val_acc=best)
"""


def test_a_hand_written_search_that_logs_its_best_reads_as_its_trials(tmp_path_factory):
    """The search's run logged the best trial's val_acc: it was read as one trial of four parts
    (1 trial, the search itself the final run at 100% of the study); it is their sweep."""
    report = _script_report(tmp_path_factory, "new-user-search-logs-best", SEARCH_LOGS_BEST_SCRIPT)
    rows = _rows(report)
    assert rows["search"]["role"] == "sweep" and rows["search"]["role_inferred"]
    assert report["price_tag"]["total"]["trials"] == 4
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == [
        "lr=0.01", "lr=0.03", "lr=0.1", "lr=0.3"
    ]  # fmt: skip
    # ranked by what the search logged (its trials logged val_loss as often)
    assert report["metric"] == "val_acc" and report["mode"] == "max"
    assert report["price_tag"]["final"]["run_id"] == rows["lr=0.03"]["id"]
    assert report["price_tag"]["final"]["energy_share"] < 1
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    mean = next(s for p in evp["panels"] for s in p["series"] if s["role"] == "mean")
    expected = expected_max_performance([0.7, 0.75, 0.85, 0.6]).mean
    assert mean["y"] == pytest.approx(expected.tolist())
    assert any("the one the sweep logged (its best)" in n for n in report["notes"])


SEEDS_AND_FAMILIES_SCRIPT = """
import greenprint as gp

# each configuration over three seeds, one run a seed; the configuration's run logs nothing
for lr, acc in {0.1: 0.7, 0.01: 0.8, 0.001: 0.75}.items():
    with gp.track(f"lr={lr}", study="seeds", params={"lr": lr}):
        for seed in range(3):
            with gp.track(f"lr={lr}-seed{seed}", params={"lr": lr, "seed": seed}) as run:
                run.log(val_acc=acc + 0.01 * seed)

# a search per model family, each around trials of its own C, each a 3-fold cross-validation
ACCS = {"svc": {0.1: 0.9, 1.0: 0.95}, "logreg": {0.1: 0.85, 1.0: 0.88}}
with gp.track("search", study="families"):
    for model, by_c in ACCS.items():
        with gp.track(model, params={"model": model}):
            for c, acc in by_c.items():
                with gp.track(f"{model}-C={c}", params={"model": model, "C": c}):
                    for k in range(3):
                        with gp.track(f"{model}-C={c}-fold{k}", params={"fold": k}) as fold:
                            fold.log(val_acc=acc + 0.01 * k)
"""


def test_seeds_and_a_search_per_family_read_as_their_configurations(tmp_path_factory):
    """Seeds as child runs of a configuration that logs nothing were 9 trials in 3 sweeps (the
    best seed the final run); a search per model family was 2 trials (the families, each
    scored by the mean over all its C's folds, the family the final run)."""
    home = _empty(tmp_path_factory, "new-user-seeds-families")
    (home / "study.py").write_text(SEEDS_AND_FAMILIES_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    report = _report(home, "--study", "seeds", "--format", "json", "--no-plots")
    rows = _rows(report)
    assert report["price_tag"]["total"]["trials"] == 3
    assert {r["name"] for r in report["runs"] if r["is_trial"]} == {"lr=0.1", "lr=0.01", "lr=0.001"}
    assert {rows[f"lr=0.01-seed{s}"]["role"] for s in range(3)} == {"part"}
    assert report["price_tag"]["final"]["run_id"] == rows["lr=0.01"]["id"]
    assert any(
        "differ only by a seed or fold" in n and "role='trial'" in n for n in report["notes"]
    )
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    mean = next(s for p in evp["panels"] for s in p["series"] if s["role"] == "mean")
    assert mean["y"] == pytest.approx(expected_max_performance([0.71, 0.81, 0.76]).mean.tolist())

    report = _report(home, "--study", "families", "--format", "json", "--no-plots")
    rows = _rows(report)
    assert [rows[n]["role"] for n in ("search", "svc", "logreg")] == ["sweep"] * 3
    assert report["price_tag"]["total"]["trials"] == 4
    assert report["price_tag"]["final"]["run_id"] == rows["svc-C=1.0"]["id"]
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    mean = next(s for p in evp["panels"] for s in p["series"] if s["role"] == "mean")
    expected = expected_max_performance([0.91, 0.96, 0.86, 0.89]).mean
    assert mean["y"] == pytest.approx(expected.tolist())
