"""Session 40, an outside check: one study's report gave two costs for "the final model".

A paper's study built as its README says: two scikit-learn searches through ``track_search``
(each search's refit is a run of role ``final``, inside its sweep), two baselines and the
user's own retrain on all training data (``gp.track(..., role="final")``, scored on a held-out
test split). The report chose the retrain as its final run (by role) and said it cost 139 µWh,
1/34 of the study; its price tag by role had a "final model" row of 3 runs and 328 µWh: the
retrain and both refits, summed once each but named as if they were the final model. Now the
row says what it holds ("final + 2 refits") and a sentence under it, in every format, names the
final run with the headline's figure and the refits with theirs; the JSON splits
``by_role.final`` in ``price_tag.final_role`` (schema: docs/report-schema.json). A study whose
one run of role ``final`` is the final run reads as before.

Each runs greenprint as a stranger does: in an empty directory with a clean environment.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, empty_home, run_in, without_fit_guard
from greenprint._format import format_energy
from integrations._frameworks import need_installed

need_installed("sklearn", "sklearn")

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "report-schema.json"

#: The researcher's script: study "paper" (two searches, two baselines, a retrain of role
#: final), study "one-search" (a search alone: its refit is the final run) and study
#: "retrains" (trials and a retrain per model family, both of role final).
STUDY = """
from sklearn.datasets import load_digits
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RandomizedSearchCV, train_test_split

import greenprint as gp
from greenprint.integrations.sklearn import track_search

X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X[:300], y[:300], test_size=0.25, random_state=0)
for strategy in ("most_frequent", "stratified"):
    with gp.track(strategy, study="paper", role="baseline") as run:
        model = DummyClassifier(strategy=strategy, random_state=0).fit(Xtr, ytr)
        run.log(accuracy=model.score(Xte, yte))
logreg = RandomizedSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0, 10.0]},
                            n_iter=2, cv=3, random_state=0)
forest = RandomizedSearchCV(RandomForestClassifier(random_state=0),
                            {"n_estimators": [4, 8], "max_depth": [4, 8]},
                            n_iter=2, cv=3, random_state=0)
track_search(logreg, Xtr, ytr, study="paper")
track_search(forest, Xtr, ytr, study="paper")
with gp.track("retrain-logreg", study="paper", role="final") as run:
    run.set(params={"model": "logreg", **logreg.best_params_})
    model = LogisticRegression(max_iter=300, **logreg.best_params_).fit(Xtr, ytr)
    run.log(accuracy=model.score(Xte, yte))

track_search(RandomizedSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0]},
                                n_iter=2, cv=3, random_state=0), Xtr, ytr, study="one-search")

for c in (0.1, 1.0):
    with gp.track(f"logreg-C{c}", study="retrains", role="trial") as run:
        run.set(params={"model": "logreg", "C": c})
        run.log(accuracy=LogisticRegression(C=c, max_iter=300).fit(Xtr, ytr).score(Xte, yte))
for name, model in (("logreg", LogisticRegression(max_iter=300)),
                    ("forest", RandomForestClassifier(n_estimators=8, random_state=0))):
    with gp.track(f"retrain-{name}", study="retrains", role="final") as run:
        run.log(accuracy=model.fit(Xtr, ytr).score(Xte, yte))
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three studies, recorded by the script in an empty directory."""
    home = empty_home(tmp_path_factory, "s40-final-role")
    (home / "study.py").write_text(STUDY, encoding="utf-8")
    made = run_in(home, sys.executable, "study.py")
    assert made.returncode == 0, made.stderr
    return home


def _report(home: Path, study: str, out: str, *args: str) -> tuple[dict, dict[str, str]]:
    """``greenprint report`` in all four formats: the JSON parsed, and each format's text."""
    done = run_in(home, GREENPRINT, "report", "--study", study, "--no-plots", "--out", out, *args)
    assert done.returncode == 0, done.stderr
    texts = {
        ext: (home / out / f"report.{ext}").read_text(encoding="utf-8")
        for ext in ("json", "md", "html", "tex")
    }
    report = json.loads(texts["json"])
    import jsonschema

    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text("utf-8"))).validate(report)
    return report, texts


def _row(cells: list[str], fmt: str) -> str:
    """A table row's first cells as the format writes them."""
    if fmt == "md":
        return "| " + " | ".join(cells) + " |"
    if fmt == "tex":
        return " & ".join(cells) + " & "
    name, runs = cells
    return f"<td>{html.escape(name, quote=True)}</td><td class=num>{runs}</td>"


def test_the_final_model_row_says_it_holds_the_searches_refits(home: Path):
    report, texts = _report(home, "paper", "rep")
    tag = report["price_tag"]
    final, whole, split = tag["final"], tag["by_role"]["final"], tag["final_role"]
    runs = {r["id"]: r for r in report["runs"]}
    refits = sorted(i for i, r in runs.items() if r["name"].endswith("-refit"))
    assert final["name"] == "retrain-logreg" and final["rule"] == "role"
    # the JSON: by_role.final unchanged (every run of role final once), split in final_role
    assert whole["runs"] == 3
    assert split["label"] == "final + 2 refits"
    assert sorted(split["refit_run_ids"]) == refits and all(
        runs[i]["role"] == "final" and runs[runs[i]["parent_id"]]["role"] == "sweep" for i in refits
    )
    assert split["retrains"] is None and split["retrain_run_ids"] == []
    assert split["final_run"]["runs"] == 1 and split["refits"]["runs"] == 2
    assert split["final_run"]["energy_kwh"] == pytest.approx(final["energy_kwh"], rel=1e-12)
    for key in ("energy_kwh", "emissions_kg", "duration_s"):
        assert split["final_run"][key] + split["refits"][key] == pytest.approx(whole[key])
    # no cost dropped, none counted twice: the roles still add up to the study
    assert sum(c["energy_kwh"] for c in tag["by_role"].values()) == pytest.approx(
        tag["total"]["energy_kwh"]
    )

    mine, theirs = format_energy(final["energy_kwh"]), format_energy(split["refits"]["energy_kwh"])
    names = sorted(runs[i]["name"] for i in refits)
    sentence = (
        f"The price tag by role's row 'final + 2 refits' (3 runs, "
        f"{format_energy(whole['energy_kwh'])}) holds every run of role 'final', each counted "
        f"once: the final run retrain-logreg ({mine}, the final model's cost) and 2 refits "
        f"inside searches ({theirs}: "
    )
    assert split["text"].startswith(sentence)
    assert all(name in split["text"] for name in names)
    assert split["text"].endswith(
        "the models the searches (their sweeps) fitted again with the best parameters they found."
    )
    # every format: the row named by what it holds, the sentence, the headline's same figure
    row = ["final + 2 refits", "3"]
    assert _row(row, "md") in texts["md"] and split["text"] in texts["md"]
    assert f"cost {mine} of energy" in texts["md"]  # the final run's sentence: the same figure
    assert _row(row, "html") in texts["html"]
    assert f"<p>{html.escape(split['text'], quote=True)}</p>" in texts["html"]
    assert _row(row, "tex") in texts["tex"]
    assert f"final + 2 refits {tag_share(texts['md'])}\\%" in texts["tex"]
    assert split["text"] in texts["tex"]  # the caption of the table by role
    for fmt in ("md", "html", "tex"):
        assert "| final model |" not in texts[fmt] and "final model &" not in texts[fmt]
        # the EVP-against-energy caption names what it leaves out as the row does
        assert f"the final model and 2 refits ({format_energy(whole['energy_kwh'])})" in (
            html.unescape(texts[fmt])
        )


def tag_share(md: str) -> str:
    """The row's energy share as the Markdown table gives it (``"30.2"``)."""
    (line,) = [ln for ln in md.splitlines() if ln.startswith("| final + 2 refits |")]
    return line.rstrip(" |").rsplit("|", 1)[1].strip().removesuffix(" %")


def test_the_row_fits_one_column_of_a_two_column_paper(home: Path, require_component):
    pdflatex = shutil.which("pdflatex")
    require_component(pdflatex is not None, "pdflatex is not installed")
    assert pdflatex is not None
    _, texts = _report(home, "paper", "rep-tex")
    tex = texts["tex"]
    start = tex.index("\\label{tab:gp-price-tag-roles-")
    table = tex[tex.rindex("\\begin{table}", 0, start) : tex.index("\\end{table}", start) + 11]
    assert "final + 2 refits &" in table
    work = home / "paper-tex"
    work.mkdir()
    (work / "paper.tex").write_text(
        "\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n"
        "\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
        + without_fit_guard(table)
        + "\n\\end{document}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=work,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    log = (work / "paper.log").read_text(encoding="utf-8", errors="replace")
    assert "Overfull \\hbox" not in log


def test_a_final_run_named_apart_leaves_the_row_to_role_final(home: Path):
    first, _ = _report(home, "paper", "rep-first")
    best = max(
        (r for r in first["runs"] if r["role"] == "trial"), key=lambda r: (r["score"], r["id"])
    )
    report, texts = _report(home, "paper", "rep-named", "--final", best["id"])
    split = report["price_tag"]["final_role"]
    assert split["label"] == "3 others (role final)" and split["final_run"] is None
    (retrain,) = [r["id"] for r in report["runs"] if r["name"] == "retrain-logreg"]
    assert split["retrain_run_ids"] == [retrain] and len(split["refit_run_ids"]) == 2
    assert "and 1 retrain (" in split["text"] and "retrain-logreg), not chosen" in split["text"]
    assert split["text"].endswith(f"; none of them is the final run, {best['name']}.")
    assert _row(["3 others (role final)", "3"], "md") in texts["md"]


def test_a_retrain_per_family_names_the_other_retrain(home: Path):
    report, texts = _report(home, "retrains", "rep")
    tag = report["price_tag"]
    split = tag["final_role"]
    scores = {r["name"]: r["score"] for r in report["runs"] if r["role"] == "final"}
    chosen = max(scores, key=lambda name: scores[name])
    (other,) = set(scores) - {chosen}
    assert tag["final"]["name"] == chosen
    assert split["label"] == "final + 1 retrain" and split["refits"] is None
    assert f"the final run {chosen} (" in split["text"]
    assert (
        f"and 1 other retrain ({format_energy(split['retrains']['energy_kwh'])}: {other})"
        in (split["text"])
    )
    assert _row(["final + 1 retrain", "2"], "md") in texts["md"] and split["text"] in texts["md"]


def test_a_search_alone_keeps_its_final_model_row(home: Path):
    """The ordinary case: the one run of role final (the refit) is the final run."""
    report, texts = _report(home, "one-search", "rep")
    tag = report["price_tag"]
    assert tag["final"]["name"].endswith("-refit") and tag["final"]["rule"] == "role"
    assert tag["by_role"]["final"]["runs"] == 1 and tag["final_role"] is None
    assert _row(["final model", "1"], "md") in texts["md"]
    assert _row(["final model", "1"], "html") in texts["html"]
    assert "final model & 1 & " in texts["tex"]
    for text in texts.values():
        assert "holds every run of role" not in text and "final +" not in text
