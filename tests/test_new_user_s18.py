"""What a new user read wrong in the reports of studies of their own (session 18).

Each test builds a study as a user does (a script run in an empty directory with a clean
environment, under ``greenprint run`` or tracked by the script itself), then reads
``greenprint report`` (Markdown, HTML, LaTeX, JSON) or the CLI as that user does: one thing
that read wrong each. A report that only its text is read from is written with
``--no-plots`` (the notes, the figures' notes included, are the same without the images); the
retrain study's report draws its figures, whose fonts the LaTeX test reads.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _report_cli import (
    GREENPRINT,
    cli_report,
    empty_home,
    in_every_format,
    pdf_text,
    report_text,
    run_in,
)


def _run_script(home: Path, text: str, *args: str) -> None:
    """``text`` written to ``home/search.py`` and run there under ``greenprint run --study s``."""
    (home / "search.py").write_text(text, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "--study", "s", *args, "--", sys.executable, "search.py")
    assert done.returncode == 0, done.stderr


#: Seven configurations, each over three seeds as its child runs; the first four log their
#: seeds' mean as their own score, the last three log none (their parts' mean is theirs).
REPEATS = """
import greenprint as gp

for i in range(7):
    with gp.track(f"cfg-{i}", params={"lr": 0.01 * (i + 1)}) as trial:
        scores = []
        for seed in range(3):
            with gp.track(f"cfg-{i}-s{seed}", params={"seed": seed}) as run:
                scores.append(0.8 + 0.01 * i + 0.001 * seed)
                run.log(acc=scores[-1])
        if i < 4:
            trial.log(acc=sum(scores) / 3)
"""


def test_the_repeats_note_counts_the_trials_scored_by_their_mean_and_by_their_own(
    tmp_path_factory: pytest.TempPathFactory,
):
    """The note read '7 trials held child runs that differ only by a seed or fold ... the
    trial scored by their mean', beside '3 of 7 trials logged no 'acc' of their own ...; 4
    scored by their own': four of the seven were scored by the value they logged."""
    home = empty_home(tmp_path_factory, "s18-repeats")
    _run_script(home, REPEATS)
    report = cli_report(home, "--study", "s", "--no-plots")
    sources = {r["name"]: r["score_source"] for r in report["runs"] if r["role"] == "trial"}
    assert sorted(sources.values()) == ["own"] * 4 + ["parts"] * 3
    note = next(n for n in report["notes"] if "differ only by a seed or fold" in n)
    assert "the trial scored by their mean" not in note
    assert (
        "7 trials hold child runs that differ only by a seed or fold param (seed, fold, "
        "random_state, *_seed...): read as repeats of each trial's configuration, its parts: "
        "3 of them are scored by their parts' mean, 4 of them are scored by their own logged "
        "'acc'; to rank each as a trial of its own, give those runs role='trial'"
    ) in note
    in_every_format(home, "3 of them are scored by their parts")


#: Two trials and the best configuration retrained under the name "final" with no role, scored
#: on a test split only: a trial (inferred) without the trials' score.
RETRAIN = """
import greenprint as gp

for i, lr in enumerate((0.01, 0.1)):
    with gp.track(f"lr={lr}", params={"lr": lr}) as run:
        run.log(val_acc=0.8 + i / 10)
with gp.track("final", params={"lr": 0.1}) as run:
    run.log(test_acc=0.91)
"""


@pytest.fixture(scope="module")
def retrain_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The RETRAIN study under ``greenprint run`` and its report in all four formats, built once
    for the tests that only read them (one copies the study before it changes a role)."""
    home = empty_home(tmp_path_factory, "s18-retrain")
    _run_script(home, RETRAIN)
    return home, cli_report(home, "--study", "s")


def test_the_notes_on_one_run_are_in_the_singular_and_the_final_rule_has_no_nested_brackets(
    retrain_study: tuple[Path, dict],
):
    """One retrain read as a trial: the notes read '1 trial named like a final run ('final'):
    read as trials ..., if they are not, give them', '1 trial ('final') ... read as trials
    without a score, each counted as the worst', the EVP figures '1 of 3 trials had no score
    and count as the worst (0.8)' (which score?), and the final run 'lr=0.1 (the finished
    trial with the highest val_acc (no run has role 'final'))'."""
    home, report = retrain_study
    notes = " ".join(report["notes"])
    assert (
        "1 trial named like a final run ('final'): read as a trial, as no role was given; "
        "if it is not, give it role='baseline' or role='final'"
    ) in notes
    assert (
        "1 trial ('final') logged no 'val_acc' but test_acc, and ran after a trial with the same "
        "params had ended (e.g. 'lr=0.1'): read as a trial without a score, counted as the "
        "worst; if it is the final model"
    ) in notes
    assert "read as trials" not in notes and "each counted" not in notes
    rule = "the finished trial with the highest val_acc, as no run has role 'final'"
    assert report["price_tag"]["final"]["rule_text"] == rule
    for figure in report["figures"]:
        if figure["id"].startswith("evp"):
            assert (
                "1 of 3 trials had no score and counts as the worst val_acc (0.8)"
                in (figure["notes"])
            ), figure["notes"]
    in_every_format(home, "counts as the worst val", "as no run has role")
    for page in (report_text(home, fmt) for fmt in ("md", "html", "latex")):
        assert "(no run has role" not in page


#: A two-objective Optuna study through greenprint's callback: accuracy maximised, latency
#: minimised, under Optuna's default names (values_0, values_1).
OPTUNA_MO = """
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)
cb = GreenprintCallback()


def objective(trial):
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    width = trial.suggest_int("width", 8, 64)
    return 0.9 - abs(lr - 0.01) - 0.001 * (64 - width), width * 0.1


study = optuna.create_study(study_name="mo", directions=["maximize", "minimize"],
                            sampler=optuna.samplers.RandomSampler(seed=0))
study.optimize(cb.track(objective), n_trials=6, callbacks=[cb])
"""


def test_a_two_objective_optuna_study_is_named_with_the_objective_the_report_ranks_by(
    tmp_path_factory: pytest.TempPathFactory,
):
    """The report ranked an Optuna study of two objectives by values_0 and never said the
    study had two, nor that values_1 was minimised (ranked by ``--metric values_1`` alone, it
    read highest first); the trials record the objectives now, and a note names them, the
    one ranked by, the flags that rank by the other, and what the Pareto figure's front is."""
    pytest.importorskip("optuna")
    import greenprint as gp

    home = empty_home(tmp_path_factory, "s18-optuna-mo")
    (home / "study.py").write_text(OPTUNA_MO, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    runs = gp.Ledger(home / "greenprint.db").runs(study="mo")
    assert {r.provenance.get("objectives") for r in runs} == {
        "values_0: maximize; values_1: minimize"
    }
    report = cli_report(home, "--study", "mo", "--no-plots")
    assert (
        "the search optimised 2 objectives, values_0 (maximised) and values_1 (minimised): the "
        "report ranks the trials by one, values_0 (higher is better); rank by another with "
        "--metric values_1 --mode min; the score-against-energy figure's front is values_0 "
        "against energy, not the search's front over its objectives"
    ) in report["notes"]
    in_every_format(home, "the search optimised 2 objectives")
    # both objectives were logged by every trial: the ranking note does not call values_0
    # 'the metric logged by the most trials'
    assert any(
        n.startswith(
            "runs ranked by 'values_0', the first logged of 2 metrics logged by as many trials"
        )
        for n in report["notes"]
    ), report["notes"]
    # ranked by the other objective: the way the study optimised it (its recorded direction)
    report = cli_report(home, "--study", "mo", "--metric", "values_1", "--no-plots")
    assert report["mode"] == "min"
    assert any(
        n.startswith("'values_1' is minimised, as the search that ran the trials minimised it")
        for n in report["notes"]
    ), report["notes"]
    (note,) = [n for n in report["notes"] if "objectives" in n]
    assert "the report ranks it" not in note
    # ranked the other way than the study, when asked: the note gives the command
    report = cli_report(
        home, "--study", "mo", "--metric", "values_1", "--mode", "max", "--no-plots"
    )
    (note,) = [n for n in report["notes"] if "objectives" in n]
    assert note.endswith(
        "the search minimised 'values_1', the report ranks it highest first: greenprint "
        "report --study mo --metric values_1 --mode min"
    ), note
    report = cli_report(
        home, "--study", "mo", "--metric", "values_1", "--mode", "min", "--no-plots"
    )
    (note,) = [n for n in report["notes"] if "objectives" in n]
    assert "values_1 (lower is better); rank by another with --metric values_0 --mode max" in note
    assert "the report ranks it" not in note


#: scikit-learn's learning_curve called inside one tracked run, each point logged as a step.
LEARNING_CURVE_IN_ONE_RUN = """
import warnings
import greenprint as gp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import learning_curve

warnings.filterwarnings("ignore")
X, y = load_digits(return_X_y=True)
with gp.track("learning-curve", params={"model": "logreg"}) as run:
    sizes, _, val = learning_curve(LogisticRegression(max_iter=100), X[:300], y[:300],
                                   train_sizes=[0.25, 0.5, 1.0], cv=3)
    for step, (n, scores) in enumerate(zip(sizes, val)):
        run.log(train_size=int(n), val_acc=float(scores.mean()), step=step)
"""

#: Two trials of a search over C, then scikit-learn's validation_curve over C in one run.
VALIDATION_CURVE_IN_ONE_RUN = """
import warnings
import greenprint as gp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, validation_curve

warnings.filterwarnings("ignore")
X, y = load_digits(return_X_y=True)
X, y = X[:300], y[:300]
for C in (0.1, 1.0):
    with gp.track(f"C={C}", params={"C": C}) as run:
        run.log(val_acc=float(cross_val_score(LogisticRegression(C=C, max_iter=100), X, y,
                                              cv=3).mean()))
with gp.track("validation-curve") as run:
    Cs = [0.01, 0.1, 1.0]
    _, val = validation_curve(LogisticRegression(max_iter=100), X, y, param_name="C",
                              param_range=Cs, cv=3)
    for step, (C, scores) in enumerate(zip(Cs, val)):
        run.log(C=C, val_acc=float(scores.mean()), step=step)
"""


def test_a_curve_logged_as_the_steps_of_one_run_is_named_with_the_api_that_records_one(
    tmp_path_factory: pytest.TempPathFactory,
):
    """scikit-learn's learning_curve inside one ``gp.track`` run, each size logged as a step:
    the report said 'no learning curve: fewer than two training-set sizes among the runs'
    (true, but the user logged four); a validation_curve over C in one run beside the trials
    of a search over C read as a third trial, the final run by its last C, with no word. Each
    note now says how the run was read and the API that records such a curve."""
    pytest.importorskip("sklearn")
    home = empty_home(tmp_path_factory, "s18-curves")
    _run_script(home, LEARNING_CURVE_IN_ONE_RUN)
    report = cli_report(home, "--study", "s", "--no-plots")
    (note,) = [n for n in report["notes"] if n.startswith("no learning curve")]
    assert note.startswith(
        "no learning curve: 'learning-curve' logged train_size (50 to 200) with val_acc at "
        "each step: a learning curve inside one run, read as one trial"
    ), note
    assert "greenprint.analysis.run_learning_curve(fn, fractions, study=...)" in note
    assert "gp.track(..., role='learning-curve') run per size with run.set(dataset_size=n)" in (
        note
    )
    in_every_format(home, "a learning curve inside one run")

    (home / "greenprint.db").unlink()
    _run_script(home, VALIDATION_CURVE_IN_ONE_RUN)
    report = cli_report(home, "--study", "s", "--no-plots")
    assert report["price_tag"]["total"]["trials"] == 3
    (note,) = [n for n in report["notes"] if "validation curve" in n]
    assert note == (
        "'validation-curve' logged C (0.01 to 1) with val_acc at each step: a validation curve "
        "inside one run (e.g. scikit-learn's validation_curve), read as one trial, scored by "
        "its last val_acc (its last C) among the search's trials; to rank each C as a trial, "
        "track each value in a run of its own (gp.track(..., params={'C': value}) logging "
        "val_acc)"
    )
    in_every_format(home, "a validation curve inside one run")


#: A search over two model families, three learning rates each.
FAMILIES = """
import greenprint as gp

for model, base in (("mlp", 0.80), ("cnn", 0.85)):
    for k, lr in enumerate((0.001, 0.01, 0.1)):
        with gp.track(f"{model}-lr{lr}", params={"model": model, "lr": lr}) as run:
            run.log(val_acc=base + 0.02 * k)
"""


def test_a_search_over_model_families_is_told_the_flag_that_draws_a_curve_per_family(
    tmp_path_factory: pytest.TempPathFactory,
):
    """The trials vary params.model (mlp, cnn), and the report drew one expected-best-score
    curve over both, never saying that ``--group-by params.model`` draws one per family, as
    Dodge et al. draw them; a note says so now, and is gone once the flag is given."""
    home = empty_home(tmp_path_factory, "s18-families")
    _run_script(home, FAMILIES)
    report = cli_report(home, "--study", "s", "--no-plots")
    hint = (
        "the trials vary params.model (cnn, mlp): greenprint report --group-by params.model "
        "draws one expected-best-score curve per model"
    )
    assert hint in report["notes"]
    in_every_format(home, "draws one expected-best-score curve per model")
    report = cli_report(home, "--study", "s", "--group-by", "params.model", "--no-plots")
    assert not [n for n in report["notes"] if "--group-by" in n]
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    labels = {s["label"] for panel in evp["panels"] for s in panel["series"]}
    assert {"mlp (3)", "cnn (3)"} <= labels, labels


def test_the_latex_report_is_set_in_type1_fonts_that_keep_their_fi_ligatures(
    retrain_study: tuple[Path, dict], require_component
):
    """``\\usepackage[T1]{fontenc}`` without Latin Modern sets Computer Modern's T1 fonts as
    bitmaps (Type 3, which paper submission systems refuse), and the PDF's text lost each
    "fi" ligature: 'nal run', 'rst'. The report loads lmodern where it is installed."""
    home, _ = retrain_study
    tex = report_text(home, "latex")
    preamble = tex[: tex.index(r"\begin{document}")]
    lmodern = r"\IfFileExists{lmodern.sty}{\usepackage{lmodern}}{}"
    assert preamble.index(r"\usepackage[T1]{fontenc}") < preamble.index(lmodern), preamble
    tools = [shutil.which(t) for t in ("pdflatex", "pdftotext", "pdffonts", "kpsewhich")]
    require_component(None not in tools, "pdflatex, pdftotext, pdffonts or kpsewhich missing")
    pdflatex, pdftotext, pdffonts, kpsewhich = (str(t) for t in tools)
    found = subprocess.run([kpsewhich, "lmodern.sty"], capture_output=True, text=True).stdout
    require_component(bool(found.strip()), "the lmodern LaTeX package is not installed")
    rep = home / "rep-pdf"  # LaTeX's files beside a copy: the shared report stays as written
    shutil.copytree(home / "rep", rep)
    text = pdf_text(rep, pdflatex, pdftotext)
    fonts = subprocess.run([pdffonts, "report.pdf"], cwd=rep, capture_output=True, text=True)
    assert "Type 3" not in fonts.stdout, fonts.stdout
    words = set(re.findall(r"[A-Za-z]+", text))
    assert {"final", "finished"} <= words and not words & {"nal", "nished", "rst"}, text


def test_small_wordings_of_the_report_and_set_role(
    retrain_study: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory
):
    """The status table read 'finished | 5 | 3' under 'runs | trials' (two counts of what?),
    the compute statement '0.0113 hours in total', the price tag 'study / final model:
    1.22e+03x the energy' beside the final sentence's '1/1224', the runs tables '-' for an FPO
    the price tag calls 'unknown', and ``ledger set-role`` 'role none given -> baseline' for a
    run read as a trial."""
    home, report = retrain_study
    md = report_text(home, "md")
    assert "| status | runs (any role) | of them trials |" in md
    assert "(runs of any role, and the trials among them)" in report_text(home, "latex")
    assert " hours" not in md and re.search(r"They ran for [\d.]+ s in total \(run time", md), md
    multiple = re.search(r"\*\*study / final model\*\*: (\S+) the energy", md)
    share = re.search(r" 1/([\d,]+) of the whole study's energy", md)
    assert multiple and share, md
    assert multiple.group(1) == f"{share.group(1)}x", (multiple.group(1), share.group(1))
    rows = [x for x in md[md.index("## Runs") :].splitlines() if "↳ lr=" in x]
    assert rows and all(" | unknown | " in x for x in rows), rows
    tex = report_text(home, "latex")
    assert [x for x in tex.splitlines() if x.startswith("lr=") and " & unknown & " in x], tex

    final = next(r for r in report["runs"] if r["name"] == "final")
    shared, home = home, empty_home(tmp_path_factory, "s18-wording")
    for part in shared.glob("greenprint.db*"):  # the role set on a copy of the ledger
        shutil.copy(part, home / part.name)
    done = run_in(home, GREENPRINT, "ledger", "set-role", "final", final["id"][:8])
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"run {final['id'][:8]} final (study s): role (none given, read as trial) -> final\n"
    )
    shown = run_in(home, GREENPRINT, "ledger", "show", final["id"][:8]).stdout
    assert re.search(r"^\s*FPO\s+unknown$", shown, flags=re.M), shown
