"""Session 27: the command line as a new user meets it, from the outside.

Bad input is one line on stderr and exit status 2, nothing recorded is lost, and output that
cannot be written ends in one line, not a traceback. Each test failed before its fix:

* a mistyped option near several (``--studdy``) read "No such option '--studdy'. (Did you
  mean one of: '--status', '--study'?) (see ...)";
* an option given without its value (``greenprint whatif --run``) said "see 'greenprint
  --help'", the top-level help, not the help of the command whose option it is;
* a study name, run id or metric that is not UTF-8 (a Latin-1 terminal typing ``étude``)
  ended ``ledger ls``, ``ledger show``, ``ledger export``, ``whatif``, ``set-role`` and
  ``report`` in a UnicodeEncodeError traceback from the ledger's query (``report
  --training-type`` after writing part of the report); under ``LC_ALL=C`` with
  ``PYTHONUTF8=0`` a UTF-8 ``étude`` was such a name too;
* ``greenprint ledger export --out other.db`` replaced the ledger ``other.db`` with CSV text,
  every run in it gone; ``--out`` in a folder that does not exist said only "No such file or
  directory"; ``--out -`` wrote a file named ``-`` (and ``report``, ``greener``, ``demo
  --out -`` a folder named ``-``);
* ``greenprint run -- ./models`` (a directory), ``greenprint run -- ''``, ``greenprint run --
  -q python train.py`` (an option after the ``--``) and ``greenprint run -- -- python train.py``
  said "command not found: ./models", "command not found: ", "command not found: -q" with no
  reason; a script whose ``#!`` interpreter is missing said "No such file or directory:
  './train.sh'", naming the script that is there;
* ``greenprint run -- python $'\\xe9t\\xe9.py'`` (a script whose file name is not UTF-8) did not
  run the script: its default run name and recorded command were refused by the ledger;
* ``greenprint ledger ls > out.txt`` on a full disk ended in a traceback and "Exception
  ignored ... OSError" (exit status 120);
* ``greenprint run -- CMD 2>&1 | head``, the reader gone before the price tag: greenprint
  exited 120, not with CMD's status;
* ``greenprint demo --trials abc``: "'abc' is not a valid integer range" (click's name);
* ``--help`` left some options' defaults unsaid (``ledger ls --study``: every study).

The ledger that is not one (a text file, a truncated SQLite file, another program's database)
was already refused and left as it was; that test keeps it so.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT
from greenprint.cli import main

#: How Python hands greenprint an argument that is not UTF-8: b"\xe9tude" (Latin-1 "étude")
LATIN1_ETUDE = os.fsdecode(b"\xe9tude")


def _ledger(path: Path, study: str = "s") -> str:
    """A ledger at ``path`` holding one finished run of ``study``; its run id."""
    with gp.track("train", study=study, ledger=str(path)) as run:
        run.log(val_loss=0.5)
    return run.id


def _one_line(err: str) -> str:
    """The one line of an error on stderr (asserting it is one, with no traceback)."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("greenprint: error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["whatif", "--run"], "greenprint whatif"),
        (["ledger", "ls", "--study"], "greenprint ledger ls"),
        (["run", "--budget-s"], "greenprint run"),
        (["report", "--format"], "greenprint report"),
    ],
)
def test_an_option_without_its_value_points_at_its_commands_help(args, command, home, capsys):
    assert main(args) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"Option '{args[-1]}' requires an argument" in line
    assert line.endswith(f"(see '{command} --help')")


def test_a_mistyped_option_gets_the_nearest_names_in_one_sentence(home, capsys):
    """click's "No such option '--studdy'. (Did you mean one of: '--status', '--study'?)"
    (sorted, a sentence in brackets, then the help's in brackets too)."""
    assert main(["ledger", "ls", "--studdy", "x"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "greenprint: error: No such option '--studdy'. Did you mean '--study' or '--status'? "
        "(see 'greenprint ledger ls --help')"
    )
    assert main(["run", "--budget", "3", "--", "true"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "Did you mean '--budget-s', '--budget-kg' or '--budget-kwh'?" in line, line


def test_a_whole_number_option_given_text_says_it_wants_an_integer(home, capsys):
    """click's IntRange said "'abc' is not a valid integer range" and ``--depth INTEGER
    RANGE`` in the help."""
    assert main(["demo", "--trials", "abc"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "greenprint: error: Invalid value for '--trials': 'abc' is not a valid integer "
        "(see 'greenprint demo --help')"
    )
    assert main(["fpo", "--help"]) == 0
    assert "--depth INTEGER " in capsys.readouterr().out


def test_names_that_are_not_utf8_are_one_line_exit_2_and_nothing_is_written(home, capsys):
    ledger = home / "runs.db"
    run_id = _ledger(ledger)
    before = ledger.read_bytes()
    bad = os.fsdecode(b"\xff\xfe\xfd\xfc")  # a run id prefix that is not UTF-8
    cases = [
        (["ledger", "ls", "--study", LATIN1_ETUDE], "--study"),
        (["ledger", "export", "--study", LATIN1_ETUDE], "--study"),
        (["ledger", "export", "--metric", LATIN1_ETUDE], "--metric"),
        (["ledger", "show", bad], "RUN_ID"),
        (["whatif", "--run", bad], "--run"),
        (["ledger", "set-role", "trial", run_id[:8], "--part-of", bad], "--part-of"),
        (["report", "--training-type", LATIN1_ETUDE, "--out", "rep"], "--training-type"),
        (["report", "--final", bad, "--out", "rep"], "--final"),
        (["run", "-q", "--study", LATIN1_ETUDE, "--", "true"], "--study"),
    ]  # fmt: skip
    for args, option in cases:
        at = 2 if args[0] == "ledger" else 1  # after the command's name
        assert main([*args[:at], "--ledger", str(ledger), *args[at:]]) == 2, args
        line = _one_line(capsys.readouterr().err)
        assert f"Invalid value for '{option}'" in line, line
        assert "is not valid UTF-8 text" in line and "b'\\x" in line, line  # its bytes shown
    assert not (home / "rep").exists()  # refused before the report was begun
    assert ledger.read_bytes() == before  # no run recorded, no role given


def test_utf8_names_under_an_ascii_locale_are_read_as_typed(home):
    """``LC_ALL=C`` with ``PYTHONUTF8=0``: Python decodes ``étude`` as ASCII, its two bytes
    escaped. ``ledger ls --study étude`` ended in a traceback; it finds the study now. ``run
    --study étude`` (passed on in the command's environment, which is ASCII there) is one line
    that says how to set a UTF-8 locale, not a traceback and a run recorded ``failed``; so is
    ``report --study étude``, whose folder's name ASCII cannot hold (a traceback from mkdir)."""
    ledger = home / "runs.db"
    _ledger(ledger, study="étude")
    _ledger(ledger, study="baseline")  # two studies: a report's folder is named after its study
    env = {**clean_env(), "LC_ALL": "C", "PYTHONUTF8": "0"}
    env.pop("PYTHONIOENCODING", None)
    listed = subprocess.run(
        [GREENPRINT, "ledger", "ls", "--ledger", "runs.db", "--study", "étude", "--json"],
        cwd=home, env=env, capture_output=True,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr.decode(errors="replace")
    assert [r["study"] for r in json.loads(listed.stdout)] == ["étude"]
    before = ledger.read_bytes()
    run = subprocess.run(
        [GREENPRINT, "run", "-q", "--ledger", "runs.db", "--study", "étude", "--", "true"],
        cwd=home, env=env, capture_output=True,
    )  # fmt: skip
    err = run.stderr.decode("ascii", errors="replace")
    assert run.returncode == 2, err
    assert _one_line(err).endswith("set PYTHONUTF8=1, or a UTF-8 locale such as LC_ALL=C.UTF-8")
    assert ledger.read_bytes() == before  # no run recorded
    report = subprocess.run(  # its folder, greenprint-report-étude, is an ASCII file name there
        [GREENPRINT, "report", "--ledger", "runs.db", "--study", "étude", "--no-plots"],
        cwd=home, env=env, capture_output=True,
    )  # fmt: skip
    err = report.stderr.decode("ascii", errors="replace")
    assert report.returncode == 2, err
    assert _one_line(err).endswith("set PYTHONUTF8=1, or a UTF-8 locale such as LC_ALL=C.UTF-8")


def test_run_of_a_script_whose_file_name_is_not_utf8_runs_and_is_recorded(home, capsys):
    """``greenprint run -- python $'\\xe9t\\xe9.py'`` (a Latin-1 file name): the run's default
    name and command held lone surrogates, which the ledger refused, and the script did not run
    at all; now it runs, named and recorded with the bytes escaped."""
    script = os.fsdecode(b"\xe9t\xe9.py")
    (home / script).write_text("print('ran')\n", encoding="utf-8")
    assert main(["run", "-q", "--", sys.executable, script]) == 0
    assert capsys.readouterr().err == ""
    (record,) = gp.Ledger("greenprint.db").runs()
    assert (record.name, record.status) == ("\\xe9t\\xe9.py", "finished")
    assert record.command.endswith("\\xe9t\\xe9.py")


def test_export_does_not_replace_another_ledger(home, capsys):
    _ledger(home / "runs.db")
    other_id = _ledger(home / "other.db", study="kept")
    before = (home / "other.db").read_bytes()
    args = ["ledger", "export", "--ledger", "runs.db"]
    assert main([*args, "--out", "other.db"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--out other.db is a SQLite database" in line and "remove it first" in line
    assert (home / "other.db").read_bytes() == before
    assert [r.id for r in gp.Ledger("other.db").runs()] == [other_id]

    assert main([*args, "--out", "no-such-dir/runs.csv"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "directory no-such-dir does not exist" in line and "mkdir -p no-such-dir" in line
    if os.path.isdir("/proc"):  # a folder that is there but takes no new file: not "create it"
        assert main([*args, "--out", "/proc/runs.csv"]) == 2
        line = _one_line(capsys.readouterr().err)
        assert line == "greenprint: error: cannot write /proc/runs.csv: No such file or directory"

    assert main([*args, "--out", "-"]) == 0  # '-': standard output, as for most tools
    assert capsys.readouterr().out.startswith("id,name,study,")
    assert not (home / "-").exists()

    # a CSV already there is an export's own output: written again
    (home / "runs.csv").write_text("old\n")
    assert main([*args, "--out", "runs.csv"]) == 0
    assert (home / "runs.csv").read_text().startswith("id,name,study,")


@pytest.mark.parametrize("command", ["report", "greener", "demo"])
def test_out_dash_is_refused_where_a_folder_of_files_is_written(command, home, capsys):
    """``greenprint report --format json --out -`` wrote the report into a new folder ``./-``."""
    assert main([command, "--out", "-"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "greenprint: error: Invalid value for '--out': '-' (standard output) cannot hold the "
        f"several files this command writes; give a folder's name (see 'greenprint {command} "
        "--help')"
    )
    assert not (home / "-").exists()


def test_run_of_a_directory_an_empty_name_or_an_option_says_why(home, capsys):
    (home / "models").mkdir()
    assert main(["run", "-q", "--", "./models"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "greenprint: error: command not found: ./models (./models is a directory)"
    )
    assert main(["run", "-q", "--", ""]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "greenprint: error: command not found: '' (an empty command name)"
    )
    assert main(["run", "--", "-q", "true"]) == 2  # greenprint's option after the '--'
    assert _one_line(capsys.readouterr().err) == (
        "greenprint: error: command not found: -q (-q is an option: greenprint run's options "
        "go before the '--' that starts the command)"
    )
    assert main(["run", "-q", "--", "--", "true"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "greenprint: error: command not found: -- (a second '--': the first one starts the command)"
    )
    assert not (home / "greenprint.db").exists()  # nothing ran, nothing recorded


def test_run_of_a_script_that_cannot_start_says_why(home, capsys):
    """A script whose ``#!`` interpreter is missing said "[Errno 2] No such file or directory:
    './train.sh'", the script that is there; one without a ``#!`` line "[Errno 8] Exec format
    error" with nothing to do about it."""
    for name, text in {"train.sh": "#!/no/such/bash\necho x\n", "prep.sh": "echo x\n"}.items():
        (home / name).write_text(text)
        (home / name).chmod(0o755)
    assert main(["run", "-q", "--", "./train.sh"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "greenprint: error: could not start ./train.sh: its interpreter /no/such/bash (its #! "
        "line) does not exist; fix that line or run it with one that does (bash ./train.sh)"
    )
    assert main(["run", "-q", "--", "./prep.sh"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.endswith("a script without a #! line? run it with its interpreter: bash ./prep.sh)")
    runs = gp.Ledger("greenprint.db").runs()  # each recorded, failed, with the same reason
    assert [r.status for r in runs] == ["failed", "failed"]
    assert "its interpreter /no/such/bash" in runs[0].error


def test_output_that_cannot_be_written_is_one_line_not_a_traceback(home):
    """A closed pipe (``| head -1``) ends quietly; a full disk says so in one line."""
    args = [GREENPRINT, "intensity", "--list"]  # 457 lines; no ledger needed
    reader = subprocess.Popen(
        args, cwd=home, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # the reader is gone before greenprint writes
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 1
    assert err == ""  # no traceback, no "Exception ignored"

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here (Linux has it): the full-disk half is not checked")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            args, cwd=home, env=clean_env(), stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert done.returncode == 1
    assert done.stderr == (
        "greenprint: error: cannot write standard output: No space left on device\n"
    )


def test_run_whose_price_tag_meets_a_closed_pipe_exits_with_its_commands_status(home):
    """``greenprint run -- CMD 2>&1 | head``: the reader gone before the price tag is printed.
    greenprint exited 1 (click's closed pipe), then 120 (Python's flush at exit), not CMD's."""
    run = subprocess.Popen(
        [GREENPRINT, "run", "--name", "piped", "--", "sh", "-c", "exit 3"],
        cwd=home, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert run.stderr is not None
    run.stderr.close()  # the reader is gone before greenprint writes
    assert run.wait(timeout=60) == 3
    (record,) = gp.Ledger(home / "greenprint.db").runs()
    assert (record.name, record.status, record.error) == ("piped", "failed", "exit status 3")


def test_a_ledger_that_is_not_one_is_refused_and_left_as_it_was(home, capsys):
    """A text file, a truncated SQLite file, another program's database: one line each."""
    whole = home / "whole.db"
    _ledger(whole)
    con = sqlite3.connect(whole)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # its runs in the file, not the -wal
    con.close()
    cases = {
        "notes.db": b"hello\n",
        "truncated.db": whole.read_bytes()[:5000],
    }
    for name, data in cases.items():
        (home / name).write_bytes(data)
    con = sqlite3.connect(home / "app.db")
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    for name in (*cases, "app.db"):
        before = (home / name).read_bytes()
        for args in (["ledger", "ls"], ["run", "-q", "--name", "x"]):
            extra = ["--", "true"] if args[0] == "run" else []
            assert main([*args, "--ledger", name, *extra]) == 2, (name, args)
            line = _one_line(capsys.readouterr().err)
            assert str(home / name) in line, line
        assert (home / name).read_bytes() == before, name


@pytest.mark.parametrize(
    ("command", "option", "says"),
    [
        (["ledger", "ls"], "--study", "[default: every study]"),
        (["ledger", "ls"], "--status", "[default: every status]"),
        (["ledger", "export"], "--study", "[default: every study]"),
        (["fpo"], "--depth", "[default: every level]"),
        (["greener"], "--region", "else the world average]"),
        (["greener"], "--min-time S", "Seconds"),
        (["run"], "--prometheus-port", "[default: no endpoint]"),
        (["report"], "--final", "[default: the run with role final, else the best finished"),
    ],
)
def test_help_says_each_options_default_and_unit(command, option, says, capsys):
    """``--study TEXT  Study name.`` in ``ledger ls --help`` did not say that without it every
    study is listed; ``greener --region``, ``fpo --depth``, ``--prometheus-port`` gave no
    default, ``greener --min-time FLOAT`` no unit in its metavar."""
    assert main([*command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # the help's wrapping undone
    entry = text[text.index(f" {option} ") :]
    assert says in entry[:400], entry[:400]
