"""What a new user read wrong in the reports of studies of their own (session 18).

Each test builds a study as a user does (a script run in an empty directory with a clean
environment, under ``greenprint run`` or tracked by the script itself), then reads
``greenprint report`` (Markdown, HTML, LaTeX, JSON) or the CLI as that user does: one thing
that read wrong each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, cli_report, empty_home, in_every_format, report_text, run_in


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
    report = cli_report(home, "--study", "s")
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


def test_the_notes_on_one_run_are_in_the_singular_and_the_final_rule_has_no_nested_brackets(
    tmp_path_factory: pytest.TempPathFactory,
):
    """One retrain read as a trial: the notes read '1 trial named like a final run ('final'):
    read as trials ..., if they are not, give them', '1 trial ('final') ... read as trials
    without a score, each counted as the worst', the EVP figures '1 of 3 trials had no score
    and count as the worst (0.8)' (which score?), and the final run 'lr=0.1 (the finished
    trial with the highest val_acc (no run has role 'final'))'."""
    home = empty_home(tmp_path_factory, "s18-singular")
    _run_script(home, RETRAIN)
    report = cli_report(home, "--study", "s")
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
    report = cli_report(home, "--study", "mo")
    assert (
        "the search optimised 2 objectives, values_0 (maximised) and values_1 (minimised): the "
        "report ranks the trials by one, values_0 (higher is better); rank by another with "
        "--metric values_1 --mode min; the score-against-energy figure's front is values_0 "
        "against energy, not the search's front over its objectives"
    ) in report["notes"]
    in_every_format(home, "the search optimised 2 objectives")
    report = cli_report(home, "--study", "mo", "--metric", "values_1")
    (note,) = [n for n in report["notes"] if "objectives" in n]
    assert note.endswith(
        "the search minimised 'values_1', the report ranks it highest first: greenprint "
        "report --study mo --metric values_1 --mode min"
    ), note
    report = cli_report(home, "--study", "mo", "--metric", "values_1", "--mode", "min")
    (note,) = [n for n in report["notes"] if "objectives" in n]
    assert "values_1 (lower is better); rank by another with --metric values_0 --mode max" in note
    assert "the report ranks it" not in note
