"""Issue 12 checked from outside (session 32): a search script run under ``greenprint run``.

A new user's study, in an empty directory with a clean environment: ``greenprint run --study
s32 -- python study.py`` around a script that tracks a baseline, a search (``role="sweep"``)
of five trials with their cross-validation folds as child runs (one model family whose only
trial fails, folds of one family counting FPO and the others not) and a final retrain. The
reports must read it right:

* the script's search is a sweep inside the command's run (itself read as a sweep): the runs
  table marks it ``(sweep)``, as it marks the run around it (it was left unmarked, read as one
  more trial of the command's run);
* the E x D x H sentence gives FPO per example over the trials that counted FPO and says how
  many of the trials those are (it read as the FPO of all five);
* with ``--group-by params.model``, a family none of whose trials has a score (every trial
  crashed) gets no EVP curve, and the note says why (it was drawn at the study's worst score,
  a result that family never had).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import report_text as _text

SCRIPT = """
import greenprint as gp

# model, C, fold accuracies (None: the fold raises); logreg's folds count their FPO
TRIALS = [("logreg", 0.1, [0.90, 0.92, 0.94]), ("logreg", 1.0, [0.95, 0.93, 0.94]),
          ("svc", 1.0, [0.97, 0.96, 0.98]), ("svc", 10.0, [0.96, 0.97, 0.95]),
          ("mlp", 1.0, [None])]
with gp.track("majority", role="baseline", params={"model": "majority"}) as run:
    run.log(accuracy=0.1)
with gp.track("search", role="sweep"):
    for k, (model, c, scores) in enumerate(TRIALS):
        try:
            with gp.track(f"trial-{k}", role="trial", params={"model": model, "C": c},
                          dataset_size=1000):
                for f, score in enumerate(scores):
                    with gp.track(f"trial-{k}-fold{f}", role="part",
                                  params={"model": model, "C": c, "fold": f}) as fold:
                        if score is None:
                            raise ValueError(f"unknown model {model!r}")
                        fold.log(accuracy=score)
                        if model == "logreg":
                            fold.add_fpo(1_000_000)
        except ValueError:
            pass
with gp.track("final-model", role="final", params={"model": "svc", "C": 1.0}) as run:
    run.log(test_accuracy=0.97)
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The study run under ``greenprint run``, and its report by family (every format)."""
    home = _empty(tmp_path_factory, "s32-study")
    (home / "study.py").write_text(SCRIPT)
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "s32", "--", "python", "study.py")
    assert done.returncode == 0, done.stderr
    report = _report(home, "--study", "s32", "--group-by", "params.model", "--no-plots")
    return home, report


def test_the_scripts_sweep_inside_the_commands_run_is_marked_a_sweep(study):
    home, report = study
    roles = {row["name"]: row["role"] for row in report["runs"]}
    assert roles["study.py"] == roles["search"] == "sweep"
    assert report["price_tag"]["total"]["trials"] == 5  # folds, baseline, final: no trials
    md, html = _text(home, "md"), _text(home, "html")
    assert "| study.py (sweep) |" in md
    assert "|   ↳ search (sweep) |" in md  # was "↳ search |": a trial of the command's run
    assert "↳ search (sweep)</td>" in html
    assert "|     ↳ trial-0 |" in md  # its trials stay unmarked


def test_fpo_per_example_says_over_how_many_trials(study):
    home, report = study
    edh = report["price_tag"]["edh"]
    assert edh["trials"] == 5 and edh["dataset_size"] == 1000
    # the 2 logreg trials' 6 folds counted 1 MFPO each: 6 MFPO over 2 x 1,000 examples
    assert edh["fpo_per_example"] == 3000
    said = "per example (3 kFPO, over the 2 of these 5 trials that counted FPO) x 1,000"
    assert said in _text(home, "md")
    assert said in _text(home, "html")


def test_a_family_whose_every_trial_failed_gets_no_curve(study):
    _, report = study
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    labels = [s["label"] for panel in evp["panels"] for s in panel["series"]]
    assert "logreg (2)" in labels and "svc (2)" in labels
    assert not [label for label in labels if label.startswith("mlp")]
    (note,) = [n for n in evp["notes"] if n.startswith("one curve per params.model")]
    assert note == (
        "one curve per params.model (with replacement): logreg (2 trials), svc (2 trials); "
        "no curve for mlp (1 trial, none with a score: failed, interrupted, lost or never "
        "logged it)"
    )
    # the whole search's curve still counts the failed trial as the worst score
    assert "1 of 5 trials had no score and counts as the worst accuracy (0.92)" in evp["notes"]
    energy = next(f for f in report["figures"] if f["id"] == "evp_energy")
    assert not [s for p in energy["panels"] for s in p["series"] if s["label"].startswith("mlp")]


def test_the_final_runs_row_shows_its_held_out_score(study):
    """The retrain logged test_accuracy only: its row shows that score, named, not "-"."""
    home, report = study
    assert report["final_scores"] == {"test_accuracy": 0.97}
    (final,) = [row for row in report["runs"] if row["is_final"]]
    assert final["name"] == "final-model" and final["score"] is None  # no accuracy of its own
    md = _text(home, "md")
    assert "|   ↳ final-model ★ | finished | 0.97 (test\\_accuracy) |" in md
    assert "finished</span></td><td class=num>0.97 (test_accuracy)</td>" in _text(home, "html")
    tex = _text(home, "latex")
    assert r"final-model $\star$ & finished & 0.97 (test\_accuracy) & " in tex
    assert r"$\star$ marks the final run (its score is of its own held-out split, named" in tex


def test_every_float_of_the_paper_part_has_a_caption_and_it_compiles(study, require_component):
    """Pasted into a two-column paper, each table and figure floats: each needs its caption
    (the what-if table had none, and floated away from its section with no word of what it is).
    """
    home, _ = study
    tex = _text(home, "latex")
    body = tex[tex.index("\n", tex.index("BEGIN PAPER")) + 1 : tex.index("% ---- END PAPER")]
    floats = re.findall(r"\\begin\{(table|figure)\*?\}(.*?)\\end\{\1\*?\}", body, re.S)
    assert len(floats) >= 5 and [kind for kind, _ in floats].count("table") >= 4
    assert all("\\caption{" in inside for _, inside in floats)
    assert "\\caption{What if it ran elsewhere: the study's energy priced at" in body
    pdflatex = shutil.which("pdflatex")
    require_component(pdflatex is not None, "pdflatex is not installed (texlive-latex-recommended)")
    assert pdflatex is not None
    work = home / "paper"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(home / "rep", work)
    (work / "paper.tex").write_text(
        "\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n"
        "\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
        + body
        + "\n\\end{document}\n",
        encoding="utf-8",
    )
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
                          cwd=work, capture_output=True, text=True, errors="replace",
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]


FIT = """
import sys
import greenprint as gp

for f, loss in enumerate(map(float, sys.argv[1:])):  # the command's folds: its parts
    with gp.track(f"fold{f}", params={"fold": f}) as run:
        run.log(loss=loss)
"""

FINAL = """
import greenprint as gp

with gp.track("fit") as run:  # the retrain's score, in a run of its own inside the command's
    run.log(test_loss=0.031)
try:
    with gp.track("export"):  # a helper that fails: no failed trial
        raise RuntimeError("no exporter installed")
except RuntimeError:
    pass
"""


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each trial a ``greenprint run`` of a script whose folds are child runs; the final run a
    ``greenprint run --role final`` whose script logs its test loss in a run inside it."""
    home = _empty(tmp_path_factory, "s32-commands")
    (home / "fit.py").write_text(FIT)
    (home / "final.py").write_text(FINAL)
    for name, losses in (("lr-0.1", ["0.30", "0.32", "0.34"]), ("lr-1", ["0.20", "0.22", "0.24"])):
        done = run_in(home, GREENPRINT, "run", "-q", "--study", "cmd", "--name", name,
                      "--param", f"lr={name[3:]}", "--", "python", "fit.py", *losses)  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "cmd", "--role", "final",
                  "--name", "retrain", "--", "python", "final.py")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return home


@pytest.mark.parametrize("given", [(), ("--metric", "loss")], ids=["metric-chosen", "metric-given"])
def test_a_final_command_is_scored_by_the_run_its_script_scored_in(commands, given):
    """The retrain's test loss is its part's: the sentence, its row and the compute statement
    say it (they said nothing of its score: the final run's own metrics only were read)."""
    report = _report(commands, "--study", "cmd", "--no-plots", *given)
    assert report["price_tag"]["total"]["trials"] == 2
    assert report["price_tag"]["by_status"]["failed"]["trials"] == 0  # the helper: no trial
    assert report["price_tag"]["final"]["rule_text"] == "the run with role 'final'"
    assert report["final_scores"] == {"test_loss": 0.031}
    md = _text(commands, "md")
    assert "Final run retrain (the run with role 'final') scored test\\_loss = 0.031 (not " in md
    assert "| retrain ★ | finished | 0.031 (test\\_loss) |" in md
    assert "(run “retrain”, test_loss = 0.031)" in report["compute_statement"]


def test_a_final_run_named_with_the_flag_says_so(commands):
    """``--final ID`` (a trial, over the run with role final): the sentence says the rule, as
    the note does (it read "(chosen)", by no one named)."""
    report = _report(commands, "--study", "cmd", "--no-plots", "--format", "json")
    (trial,) = [row["id"] for row in report["runs"] if row["name"] == "lr-1"]
    report = _report(commands, "--study", "cmd", "--no-plots", "--final", trial[:8])
    assert report["price_tag"]["final"]["rule"] == "given"
    md = _text(commands, "md")
    assert "Final run lr-1 (the run named as final) scored loss = 0.22 and cost " in md
    assert "- final run: lr-1, the run named as final\n" in md
