"""Session 27: the ledger and tracking API as a user meets it, from the outside.

Each test failed before its fix:

* ``greenprint ledger show 447D`` (a run id copied in upper case) found no run; ``greenprint
  whatif --run ab`` said only "no run with id 'ab'", not that a prefix needs 4 characters;
* ``greenprint ledger ls --study cifar-sweep`` offered no "did you mean 'CIFAR-Sweep'?", and
  ``gp.track(STUDY=...)`` no "did you mean 'study'?";
* ``gp.track(study="étude")`` under ``LC_ALL=C PYTHONUTF8=0`` raised UnicodeEncodeError into
  the user's code (the study exported to child processes);
* a ledger another process keeps locked made ``greenprint ledger ls`` wait without a word;
* ``greenprint ledger set-role trial X X`` said "a run is given twice", not which;
* no public way to rename a run: ``run.set(name=...)`` was an unknown field;
* ``@gp.track`` on a nested function named its run ``test_x.<locals>.train``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env
from greenprint.cli import main


def _ledger(path: Path, *, study: str = "s", name: str = "train") -> str:
    """A ledger at ``path`` holding one finished run (closed: no handle left open); its id."""
    run_id = uuid.uuid4().hex
    with gp.Ledger(path) as led:
        led.start_run(gp.RunRecord(id=run_id, name=name, study=study, started_at=time.time()))
        led.flush(run_id, fields={"status": "finished", "energy_kwh": 0.001})
    return run_id


def _error(err: str) -> str:
    """The one line of a CLI error on stderr (no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("greenprint: error: "), err
    return lines[0]


def test_run_ids_are_found_in_any_case_and_a_short_prefix_says_four(home, capsys):
    ledger = home / "runs.db"
    run_id = _ledger(ledger)
    prefix = run_id[:6].upper()
    assert main(["ledger", "show", "--ledger", str(ledger), prefix]) == 0, capsys.readouterr()
    assert run_id in capsys.readouterr().out
    with gp.Ledger(ledger, create=False) as led:
        assert led.run(run_id.upper()).id == run_id
    # a short prefix of no run, and of the run (run ids are random: 'ab' was the run's 1 time
    # in 256, and the message then the second one)
    assert main(["whatif", "--ledger", str(ledger), "--run", "zz"]) == 2
    assert "a run id prefix needs at least 4 characters" in _error(capsys.readouterr().err)
    assert main(["whatif", "--ledger", str(ledger), "--run", run_id[:2]]) == 2
    assert "is too short: give at least 4 characters" in _error(capsys.readouterr().err)


def test_did_you_mean_ignores_case_and_keeps_the_real_spelling(home, capsys):
    ledger = home / "runs.db"
    _ledger(ledger, study="CIFAR-Sweep")
    assert main(["ledger", "ls", "--ledger", str(ledger), "--study", "cifar-sweep"]) == 2
    assert "did you mean 'CIFAR-Sweep'?" in _error(capsys.readouterr().err)
    with pytest.raises(gp.ConfigError, match="did you mean 'study'"):
        gp.track(STUDY="x")


def test_a_study_the_locale_cannot_encode_reaches_a_child_process(home):
    """Under ``LC_ALL=C`` (no UTF-8 mode) the environment holds ASCII; 'étude' went through
    ``os.environ`` and raised UnicodeEncodeError at the run's start."""
    script = home / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import subprocess, sys
            import greenprint as gp
            assert sys.getfilesystemencoding() == "ascii", sys.getfilesystemencoding()
            child = "import greenprint as gp\\nwith gp.track('child'):\\n    pass\\n"
            with gp.track("parent", study="\\u00e9tude") as run:
                subprocess.run([sys.executable, "-c", child], check=True)
                env = run.child_env()
            subprocess.run([sys.executable, "-c", child.replace("child", "by-env")], env=env,
                           check=True)
            print(run.id)
            """
        ),
        encoding="ascii",
    )
    env = {**clean_env(), "LC_ALL": "C", "PYTHONUTF8": "0", "LANG": "C"}
    done = subprocess.run(
        [str(BIN / "python"), str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    parent_id = done.stdout.split()[-1]
    with gp.Ledger(home / "greenprint.db", create=False) as led:
        runs = {r.name: r for r in led.runs()}
    assert set(runs) == {"parent", "child", "by-env"}
    for name in ("child", "by-env"):
        assert runs[name].study == "étude", runs[name]
        assert runs[name].parent_id == parent_id


def test_a_ledger_locked_by_another_process_is_said_once_while_waiting(home):
    ledger = home / "runs.db"
    run_id = _ledger(ledger)
    holder = sqlite3.connect(ledger, isolation_level=None)  # this process; the CLI is another
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("COMMIT")  # exclusive mode: the lock stays until the connection closes
        ls = subprocess.Popen(
            [str(BIN / "greenprint"), "ledger", "ls", "--ledger", str(ledger)],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(4.0)  # past the 3 s after which the wait is said
    finally:
        holder.close()
    out, err = ls.communicate(timeout=60)
    assert ls.returncode == 0, err
    assert run_id[:8] in out
    said = [line for line in err.splitlines() if "locked by another process" in line]
    assert len(said) == 1, err
    assert said[0].startswith(f"greenprint: ledger {ledger} is locked by another process")
    assert "waiting for it, at most" in said[0]


def test_set_role_names_the_run_given_twice(home, capsys):
    ledger = home / "runs.db"
    run_id = _ledger(ledger, name="fold-3")
    args = ["ledger", "set-role", "--ledger", str(ledger), "trial", run_id[:8], run_id[:6]]
    assert main(args) == 2
    line = _error(capsys.readouterr().err)
    assert f"a run is given twice: run {run_id[:8]} ('fold-3')" in line


def test_run_set_name_renames_the_run_in_the_ledger(home):
    ledger = home / "runs.db"
    with gp.track("first", ledger=str(ledger)) as run:
        run.set(name="lr=0.1")
        assert run.name == "lr=0.1"
        with gp.Ledger(ledger, create=False) as led:  # written at once, while it runs
            assert led.run(run.id).name == "lr=0.1"
        for bad in ("", "  ", 3, "a\x00b"):
            with pytest.raises(gp.ConfigError, match="name"):
                run.set(name=bad, role="trial")
        assert run.name == "lr=0.1" and run.role is None  # a bad name changes nothing
    run.set(name="lr=0.1 (final)")  # after its end
    with gp.Ledger(ledger, create=False) as led:
        assert led.run(run.id).name == "lr=0.1 (final)"


def test_a_nested_decorated_function_is_named_without_locals(home):
    @gp.track(ledger=str(home / "runs.db"))
    def train() -> str:
        run = gp.current_run()
        assert run is not None
        return run.name

    assert train() == f"{test_a_nested_decorated_function_is_named_without_locals.__name__}.train"
