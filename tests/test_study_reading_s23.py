"""Session 23: the report and the CLI read a study the same way.

Each study is built as a user builds it (a script with ``gp.track`` or ``track_search``,
``greenprint run``) in an empty directory with a new user's environment, and read with the
command line; each test failed before its fix:

* several finished ``final`` runs: the report named the last started (a LogisticRegression
  refit beside a better SVC refit in one study); now the best by the ranked metric and its
  direction (of a tie, the last started), and its rule says so in every format;
* ``greenprint ledger ls`` showed the first-logged ``train_loss`` (``loss``) where the report
  ranks by ``val_loss`` (``eval_loss``); now the report's metric;
* a lost run killed before its first flush inside ``greenprint run`` (whose reading of its
  process tree holds it) was said to be "in no total";
* ``greenprint ls`` (``show``, ``export``, ``merge``...) said "No such command" alone.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, cli_report, empty_home, report_text, run_in


def _script(home: Path, name: str, text: str) -> None:
    """``text`` (dedented) run as ``python name`` in ``home``, as a user runs a script."""
    (home / name).write_text(textwrap.dedent(text), encoding="utf-8")
    done = run_in(home, sys.executable, name)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def _every_format(home: Path, text: str) -> None:
    """``text`` stands in the Markdown, HTML (unescaped) and LaTeX reports and the JSON's notes."""
    for fmt in ("md", "html", "latex"):
        page = report_text(home, fmt)
        assert text in (html.unescape(page) if fmt == "html" else page), (fmt, text)
    notes = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))["notes"]
    assert any(text in note for note in notes), notes


# ---------------------------------------------------------------------- several final runs
_TWO_SEARCHES = """
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    from greenprint.integrations.sklearn import track_search

    X, y = load_iris(return_X_y=True)
    X = X + np.random.RandomState(0).normal(0, 0.6, X.shape)  # a harder iris: the models differ
    svc = GridSearchCV(SVC(), {"C": [0.1, 1.0]}, cv=3)  # refit=True: a 'final' refit run
    track_search(svc, X, y, study="two-families")
    lr = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 1.0]}, cv=3)
    track_search(lr, X, y, study="two-families")  # the last refit: the worse one
    print(round(svc.best_score_, 4), round(lr.best_score_, 4))
"""


def test_of_two_refits_the_report_names_the_better_one(tmp_path_factory):
    """Two scikit-learn searches in one study, each refitting its best candidate (an SVC refit
    scoring 0.8867, then a LogisticRegression refit scoring 0.86): the report named the
    LogisticRegression refit (the last started) as the final model, its 'study / final model'
    and efficiency rows that model's. Now the SVC refit, and every format says the rule."""
    pytest.importorskip("sklearn", reason="the two searches are scikit-learn's")
    home = empty_home(tmp_path_factory, "s23-two-refits")
    _script(home, "search.py", _TWO_SEARCHES)
    report = cli_report(home)
    final = report["price_tag"]["final"]
    assert final["name"] == "GridSearchCV-SVC-refit", final
    rule = "the run with the highest score of the 2 runs with role 'final'"
    assert final["rule_text"] == rule
    _every_format(home, f"final run: GridSearchCV-SVC-refit, {rule}")
    assert f"Final run GridSearchCV-SVC-refit ({rule})" in report_text(home, "md")


@pytest.mark.parametrize(
    ("logged", "chosen", "rule"),
    [
        (  # a loss is better lower: the first retrain, though the other came after
            ("val_loss", 0.30, 0.50),
            "retrain-a",
            "the run with the lowest val_loss of the 2 runs with role 'final'",
        ),
        (  # a tie: the last started
            ("accuracy", 0.90, 0.90),
            "retrain-b",
            "the last started of the 2 runs with role 'final', which tie on the highest accuracy",
        ),
        (  # no retrain scored as the trials are: the last started, and the rule says why
            ("test_accuracy", 0.95, 0.80),
            "retrain-b",
            "the last started of the 2 runs with role 'final', none with a value of 'accuracy'",
        ),
    ],
)
def test_the_final_of_several_by_the_metric_and_its_direction(
    tmp_path_factory, logged: tuple[str, float, float], chosen: str, rule: str
):
    """Two retrains (role 'final') after three trials: the better by the report's metric and
    its direction; of a tie, or when neither logged it, the last started. Before, always the
    last started, the rule saying only 'the last started of the 2 runs'."""
    name, a, b = logged
    trial_metric = "val_loss" if name == "val_loss" else "accuracy"
    home = empty_home(tmp_path_factory, "s23-finals")
    _script(
        home,
        "study.py",
        f"""
        import greenprint as gp
        for k, score in enumerate((0.6, 0.7, 0.65)):
            with gp.track(f"t{{k}}", study="s", role="trial", params={{"k": k}}) as run:
                run.log({trial_metric}=score)
        for rid, score in (("retrain-a", {a}), ("retrain-b", {b})):
            with gp.track(rid, study="s", role="final") as run:
                run.log({name}=score)
        """,
    )
    report = cli_report(home, "--format", "json")
    assert report["price_tag"]["metric"] == trial_metric
    assert report["price_tag"]["final"]["name"] == chosen
    assert report["price_tag"]["final"]["rule_text"] == rule
    assert f"final run: {chosen}, {rule}" in report["notes"]


# ------------------------------------------------------------------ ledger ls's metric
@pytest.mark.parametrize(("train", "held_out"), [("train_loss", "val_loss"), ("loss", "eval_loss")])
def test_ledger_ls_shows_the_metric_the_report_ranks_by(tmp_path_factory, train, held_out):
    """Each run logs a training and a held-out loss every epoch (the training one first, as
    a Hugging Face Trainer logs ``loss`` before ``eval_loss``): ``greenprint ledger ls``
    showed the training loss (first logged of two logged as often) while the report ranks by
    the held-out one. Now ls shows the report's metric, in its table and its JSON, whatever
    statuses it lists."""
    home = empty_home(tmp_path_factory, f"s23-ls-{train}")
    _script(
        home,
        "train.py",
        f"""
        import greenprint as gp
        for k, lr in enumerate((0.1, 0.01, 0.001)):
            with gp.track(f"lr{{lr}}", study="curves", params={{"lr": lr}}) as run:
                for epoch in range(3):
                    run.log({train}=1.0 / (epoch + 1 + k), step=epoch)
                    run.log({held_out}=1.25 / (epoch + 1 + k), step=epoch)
        """,
    )
    report = cli_report(home, "--format", "json")
    assert report["price_tag"]["metric"] == held_out
    done = run_in(home, GREENPRINT, "ledger", "ls")
    assert done.returncode == 0, done.stderr
    shown = [line.split()[-1] for line in done.stdout.splitlines()[1:]]
    assert shown == [f"{held_out}=0.4167", f"{held_out}=0.3125", f"{held_out}=0.25"], done.stdout
    for extra in ((), ("--status", "finished")):
        done = run_in(home, GREENPRINT, "ledger", "ls", "--json", *extra)
        assert done.returncode == 0, done.stderr
        assert {r["main_metric"]["name"] for r in json.loads(done.stdout)} == {held_out}


def test_ledger_ls_stays_light(tmp_path_factory):
    """ls now asks the report's code which metric a study ranks by: it must not draw in the
    figures' matplotlib (an import of a second or more)."""
    home = empty_home(tmp_path_factory, "s23-ls-light")
    _script(
        home,
        "train.py",
        """
        import greenprint as gp
        with gp.track("one", study="s") as run:
            run.log(train_loss=0.5, val_loss=0.6)
        """,
    )
    check = (
        "import sys\nfrom greenprint.cli import main\n"
        "assert main(['ledger', 'ls']) == 0\n"
        "assert 'matplotlib' not in sys.modules, 'ledger ls imported matplotlib'\n"
    )
    done = run_in(home, sys.executable, "-c", check)
    assert done.returncode == 0, done.stderr
    assert "val_loss=0.6" in done.stdout


# ------------------------------------------------------------------ a lost run's note
_KILLED = """
    import os, signal
    import greenprint as gp

    run = gp.track("{name}", study="k")
    run.__enter__()
    sum(i * i for i in range(200_000))
    os.kill(os.getpid(), signal.SIGKILL)  # killed before its first flush (10 s)
"""


def test_a_lost_run_inside_greenprint_run_is_in_the_totals(tmp_path_factory):
    """A script's ``gp.track`` killed (kill -9) before its first flush under ``greenprint run``:
    the run reads 0 of its own, and the note said up to a flush interval of it 'is in no
    total', though ``greenprint run`` measured its process tree, the script in it, and ended
    after it. Now the note says its cost is in the totals, inside that run; a script killed on
    its own (nothing measuring around it) keeps the note that it is in no total."""
    home = empty_home(tmp_path_factory, "s23-lost")
    (home / "inner.py").write_text(textwrap.dedent(_KILLED.format(name="inner")))
    (home / "alone.py").write_text(textwrap.dedent(_KILLED.format(name="alone")))
    wrapped = run_in(home, GREENPRINT, "run", "--name", "outer", "--study", "k", "--",
                     sys.executable, "inner.py")  # fmt: skip
    assert wrapped.returncode == 137, wrapped.stderr  # the child's status, passed through
    alone = subprocess.run([sys.executable, "alone.py"], cwd=home, env=clean_env(), check=False)
    assert alone.returncode == -9
    report = cli_report(home, "--study", "k")
    ids = {r["name"]: r["id"][:8] for r in report["runs"]}
    statuses = {r["name"]: r["status"] for r in report["runs"]}
    assert statuses == {"outer": "failed", "inner": "lost", "alone": "lost"}, statuses
    inside = (
        f"1 lost run ({ids['inner']}) recorded no cost (killed before its first flush), but "
        f"its cost is in the totals: it ran inside run {ids['outer']} ('outer'), which measured "
        "its own process tree and went on after it"
    )
    _every_format(home, inside)
    missing = f"1 lost run ({ids['alone']}) recorded no cost (killed before its first flush): "
    _every_format(home, missing + "up to one flush interval (10 s) of it is in no total")
    assert not any(ids["inner"] in n and "no total" in n for n in report["notes"])


# ------------------------------------------------------------ ledger commands without ledger
@pytest.mark.parametrize("name", ["ls", "show", "export", "merge", "set-role"])
def test_a_ledger_command_without_ledger_names_it(tmp_path_factory, name):
    """``greenprint ls`` said "No such command 'ls'" (``export``: "Did you mean 'report'?");
    now it names the command, one line, exit 2, as other usage errors."""
    home = empty_home(tmp_path_factory, "s23-no-ledger")
    done = run_in(home, GREENPRINT, name, "--help")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"Did you mean 'greenprint ledger {name}'?" in done.stderr
    assert "Traceback" not in done.stderr
    assert re.fullmatch(rf"greenprint: error: No such command '{name}'\. .*\n", done.stderr)


def test_the_final_rule_says_what_it_left_out():
    """Of three retrains, one failed and one logged no score, or two of three tied: the rule
    says which it took and why (``analysis.choose_final``, what the report writes)."""
    import greenprint as gp
    from greenprint.analysis import choose_final, study_trials

    def run(rid: str, started: float, role: str = "final", status: str = "finished", **m):
        points = tuple(gp.MetricPoint(k, v) for k, v in m.items())
        return gp.RunRecord(id=rid, name=rid, study="s", role=role, status=status,
                            started_at=started, metrics=points)  # fmt: skip

    trials = [run(f"t{k}", k, role="trial", acc=0.5 + k / 10) for k in range(3)]
    cases = {
        "a": [run("a", 10, acc=0.8), run("b", 11, status="failed"), run("c", 12)],
        "c": [run("a", 10, acc=0.8), run("b", 11, acc=0.7), run("c", 12, acc=0.8)],
        "b": [run("a", 10, status="failed", acc=0.9), run("b", 11), run("c", 12, status="lost")],
    }
    said = {}
    for chosen, finals in cases.items():
        choice = choose_final(study_trials([*trials, *finals], metric="acc"))
        assert finals[choice.position - 3].id == chosen and choice.rule == "role"
        said[chosen] = choice.text
    assert said == {
        "a": "the run with the highest acc of the 3 runs with role 'final', 1 not finished "
        "and 1 with no value of it",
        "c": "the last started of the 2 tied on the highest acc of the 3 runs with role 'final'",
        "b": "the only finished one of the 3 runs with role 'final'",
    }
