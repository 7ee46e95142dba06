"""Outside check s41: a study made from the command line on two "nodes", as a student makes it.

Each trial is ``greenprint run --study S ... -- python train.py ...`` around a script whose three
cross-validation folds are its parts (``gp.track`` in the script, or child processes that
inherit ``GREENPRINT_PARENT_RUN``); each node has its own SQLite ledger (``--ledger``, or
``GREENPRINT_LEDGER``), merged with ``greenprint ledger merge``, a final retrain given its role
with ``greenprint ledger set-role``, then ``greenprint report`` and the exports. Every command
runs in an empty directory with a new user's environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, export_reads_as_the_report, run_in

#: A trial's script: three folds, each a gp.track run; ``exit`` as the second argument makes
#: the second fold print why it stops and call sys.exit(3), as a script that catches its error;
#: ``ctrl-c`` makes it raise KeyboardInterrupt, as a Ctrl-C there does.
TRAIN = """
import sys
import greenprint as gp

lr = float(sys.argv[1])
for fold in range(3):
    with gp.track(f"fold{fold}", params={"fold": fold}) as run:
        if fold == 1 and sys.argv[2:] == ["exit"]:
            print("CUDA out of memory (fake): lower the batch size", file=sys.stderr)
            sys.exit(3)
        if fold == 1 and sys.argv[2:] == ["ctrl-c"]:
            raise KeyboardInterrupt
        run.log(val_accuracy=round(0.9 - abs(lr - 0.1) + 0.002 * fold, 4))
"""

#: The same folds as child processes of the script, each inheriting GREENPRINT_PARENT_RUN.
TRAIN_SUB = """
import subprocess
import sys

FOLD = '''
import sys
import greenprint as gp
lr, fold = float(sys.argv[1]), int(sys.argv[2])
with gp.track(f"fold{fold}") as run:
    run.log(val_accuracy=round(0.9 - abs(lr - 0.1) + 0.002 * fold, 4))
'''
for fold in range(3):
    subprocess.run([sys.executable, "-c", FOLD, sys.argv[1], str(fold)], check=True)
"""


def _gp(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = run_in(home, GREENPRINT, *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Node A: three trials with ``--ledger``, one failing in a fold, one interrupted; node B: a
    trial with
    its folds in child processes, and the final retrain, with ``GREENPRINT_LEDGER``; merged."""
    home = empty_home(tmp_path_factory, "s41-cli-study")
    (home / "train.py").write_text(TRAIN, encoding="utf-8")
    (home / "train_sub.py").write_text(TRAIN_SUB, encoding="utf-8")
    for node in ("nodeA", "nodeB"):
        (home / node).mkdir()
    a = home / "nodeA"
    for lr, crash, status in (("0.1", (), 0), ("0.01", ("exit",), 3), ("0.3", ("ctrl-c",), 130)):
        done = run_in(
            a, GREENPRINT, "run", "-q", "--study", "S", "--ledger", "gpA.db", "--role", "trial",
            "--param", f"lr={lr}", "--", "python", "../train.py", lr, *crash,
        )  # fmt: skip
        assert done.returncode == status, done.stderr
    b = home / "nodeB"
    env = {**clean_env(), "GREENPRINT_LEDGER": str(b / "gpB.db")}
    _gp(b, "run", "-q", "--study", "S", "--param", "lr=0.2", "--", "python", "../train_sub.py",
        "0.2", env=env)  # fmt: skip
    _gp(b, "run", "-q", "--study", "S", "--name", "final-retrain", "--param", "lr=0.1", "--",
        "python", "../train.py", "0.1", env=env)  # fmt: skip
    first = _gp(home, "ledger", "merge", "merged.db", "nodeA/gpA.db", "nodeB/gpB.db")
    assert "18 runs added" in first  # 5 commands and their folds: 3 each, 2 in the cut short
    again = _gp(home, "ledger", "merge", "merged.db", "nodeB/gpB.db", "nodeA/gpA.db")
    assert "0 runs added, 0 updated, 18 already there" in again
    final = gp.Ledger(home / "merged.db").runs(study="S")
    (retrain,) = [r for r in final if r.name == "final-retrain"]
    _gp(home, "ledger", "set-role", "final", retrain.id[:8], "--ledger", "merged.db")
    return home


def test_a_fold_that_printed_why_and_exited_keeps_its_reason_in_the_report(study: Path) -> None:
    """A fold that printed ``CUDA out of memory`` and called ``sys.exit(3)`` inside its
    ``gp.track``: ``greenprint run`` recorded ``exit status 3: CUDA out of memory ...`` (its
    stderr's last line), but the report's failed runs showed the fold's ``SystemExit: 3`` (the
    error of its part fold1) in its place, the reason gone. The command's line now stays; a
    part's exception that says why (``ValueError: ...``) still replaces ``exit status 1``."""
    done = run_in(
        study, GREENPRINT, "report", "--ledger", "merged.db", "--study", "S", "--format", "json",
        "--out", "rep",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((study / "rep" / "report.json").read_text(encoding="utf-8"))
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 4
    by_status = {s: row["trials"] for s, row in tag["by_status"].items()}
    assert by_status == {"finished": 2, "failed": 1, "interrupted": 1}
    assert tag["final"]["name"] == "final-retrain" and tag["final"]["rule"] == "role"
    errors = [group["error"] for group in report["failures"]["groups"]]
    assert errors == ["exit status 3: CUDA out of memory (fake): lower the batch size",
                      "KeyboardInterrupt"]  # fmt: skip
    assert "SystemExit" not in json.dumps(report["failures"])
    # the trials without a score are counted apart from those scored by their folds, each
    # status by its name (was '2 without a score (failed, or no part scored)': the interrupted
    # trial called failed, and the 2 read as if they were not among those that logged none)
    assert (
        "2 of 4 trials logged no 'val_accuracy' of their own: their score is the mean of their "
        "parts' (e.g. cross-validation folds); 2 more have no score (1 failed, 1 interrupted)"
    ) in report["notes"]
    # each run counted once after the merge: the exports' root rows sum to the price tag
    export_reads_as_the_report(study, "S", report, "--ledger", "merged.db")


def test_merging_a_ledger_into_itself_through_a_link_is_refused(study: Path) -> None:
    """``ln -s merged.db link.db``, then ``greenprint ledger merge merged.db link.db`` (or a hard
    link, or OUT the link): merged as another ledger, exit status 0, 'every run already
    there'. The same file by another name is the ledger itself: one line, exit status 2."""
    (study / "link.db").symlink_to("merged.db")
    os.link(study / "merged.db", study / "hard.db")
    before = (study / "merged.db").read_bytes()
    for out, inputs in (
        ("merged.db", ("link.db",)),
        ("link.db", ("nodeA/gpA.db", "merged.db")),
        ("hard.db", ("merged.db",)),
    ):
        done = run_in(study, GREENPRINT, "ledger", "merge", out, *inputs)
        assert done.returncode == 2, done.stdout
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"greenprint: error: cannot merge ledger {study / out} into itself")
    assert (study / "merged.db").read_bytes() == before


def test_a_script_path_that_does_not_exist_is_refused_before_anything_runs(study: Path) -> None:
    """``greenprint run ... -- python trian.py`` (a typo, or the path from another folder):
    Python started and failed to open it, and the study gained a failed trial ('exit status 2:
    python: can't open file ...'), counted in the failed runs and as a worst score, with nine
    lines on stderr. Refused now in one line, exit status 2, nothing recorded."""
    a = study / "nodeA"
    before = len(gp.Ledger(a / "gpA.db").runs())
    for cmd in (("python", "trian.py"), ("python3", "-u", "train.py"), ("python", "-X", "dev",
                "../trian.py", "0.1")):  # fmt: skip
        done = run_in(
            a, GREENPRINT, "run", "--study", "S", "--ledger", "gpA.db", "--param", "lr=0.3",
            "--", *cmd,
        )  # fmt: skip
        assert done.returncode == 2
        (line,) = done.stderr.splitlines()
        script = cmd[-1] if cmd[-1] != "0.1" else cmd[-2]
        assert line == (
            f"greenprint: error: no such script: {script} (no file {script} in {a} for "
            f"{cmd[0]} to run)"
        )
    assert len(gp.Ledger(a / "gpA.db").runs()) == before
    # -c, -m and a script that is there run as before
    done = run_in(a, GREENPRINT, "run", "-q", "--ledger", "gpA.db", "--study", "other", "--",
                  "python", "-c", "pass")  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_a_role_given_in_a_nodes_file_after_the_merge_reaches_the_merged_ledger(
    study: Path,
) -> None:
    """The student merged, then named the baseline where it was recorded: ``greenprint ledger
    set-role baseline ID --ledger nodeB/gpB.db``, and merged that file again. The merge kept
    the merged ledger's old role ('1 of them with the role given here kept', exit status 0):
    the merged report still read the baseline as a trial. The role given last now wins, either
    way: set-role on the merged ledger afterwards stands against the node's file merged again.
    """
    b = study / "nodeB"
    (sub,) = [r for r in gp.Ledger(b / "gpB.db").runs(study="S") if r.name == "train_sub.py"]
    _gp(study, "ledger", "set-role", "baseline", sub.id[:8], "--ledger", "nodeB/gpB.db")
    said = _gp(study, "ledger", "merge", "merged.db", "nodeB/gpB.db")
    assert "1 updated (1 to the role given later in an input)" in said
    merged = gp.Ledger(study / "merged.db")
    assert merged.run(sub.id).role == "baseline"
    assert sum(r.role == "baseline" for r in merged.runs(study="S")) == 1  # one copy of it
    # the merged ledger given a role later keeps it when the node's file is merged again
    _gp(study, "ledger", "set-role", "trial", sub.id[:8], "--ledger", "merged.db")
    said = _gp(study, "ledger", "merge", "merged.db", "nodeB/gpB.db", "nodeA/gpA.db")
    assert "2 of them with the role given here kept" in said  # and the final retrain's
    assert gp.Ledger(study / "merged.db").run(sub.id).role == "trial"


def test_a_command_given_no_param_around_named_folds_says_how_to_make_it_one_trial(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``greenprint run --study N -- python train_sub.py 0.2`` with no ``--param``: the script's
    three folds, ``gp.track(f"fold{k}")`` in child processes with no params, were read as three
    trials of a sweep (the final run a fold), and no note said why or how to fix it. A note now
    names the command's run and the command that makes it one trial of three parts."""
    home = empty_home(tmp_path_factory, "s41-no-param")
    (home / "train_sub.py").write_text(TRAIN_SUB, encoding="utf-8")
    _gp(home, "run", "-q", "--study", "N", "--", "python", "train_sub.py", "0.2")
    (command,) = gp.Ledger(home / "greenprint.db").runs(study="N", parent_id=None)
    _gp(home, "report", "--study", "N", "--format", "json", "--out", "rep")
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    assert report["price_tag"]["total"]["trials"] == 3  # as documented: a sweep of its runs
    fix = f"greenprint ledger set-role trial {command.id[:8]}: one trial scored by its folds' mean"
    (note,) = [n for n in report["notes"] if fix in n]
    assert f"1 run with no params ({command.id[:8]} ('train_sub.py')) holds runs named as " in note
    assert "('fold0', 'fold1', 'fold2'): read as a sweep of 3 trials, one per fold" in note
    _gp(home, "ledger", "set-role", "trial", command.id[:8])
    _gp(home, "report", "--study", "N", "--format", "json", "--out", "rep")
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    assert report["price_tag"]["total"]["trials"] == 1
    assert report["price_tag"]["final"]["run_id"] == command.id
    assert report["price_tag"]["final"]["score"] == pytest.approx(0.8 + 0.002)  # folds' mean
    assert not [n for n in report["notes"] if "folds or seeds" in n]
