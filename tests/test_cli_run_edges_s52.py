"""``greenprint run`` and ``ledger ls`` at their edges, as an outside check met them (session 52).

- ``--param "x=$(printf '\\xff')"`` was stored as a lone surrogate, and ``greenprint report`` then
  stopped with a UnicodeEncodeError traceback: it is refused as ``--name`` and ``--study`` are.
- A run name with a line break printed a second, made-up "greenprint: run ..." line in the
  price tag: it is escaped there as ``ledger ls`` escapes it.
- ``GREENPRINT_STUDY=' '`` (or ``study = "\\t"`` in greenprint.toml) made a blank-named study that
  ``--study ' '`` refuses: refused alike.
- ``ledger ls --study s --status interrupted`` matching nothing said the ledger had no runs.
"""

from __future__ import annotations

import os
import subprocess

import greenprint as gp
from _clean_env import BIN, clean_env
from _report_cli import empty_home

GREENPRINT = str(BIN / "greenprint")


def _run(home, *args: str | bytes, env: dict[str, str] | None = None):
    return subprocess.run(
        [GREENPRINT, *args], cwd=home, env=env or clean_env(), capture_output=True, timeout=120
    )


def test_a_param_that_is_not_utf8_is_refused_and_one_that_is_kept(tmp_path_factory) -> None:
    home = empty_home(tmp_path_factory, "param-bytes")
    done = _run(home, "run", "-q", "--study", "s", "--param", b"x=\xff", "--", "true")
    err = done.stderr.decode()
    assert done.returncode == 2 and err.count("\n") == 1, err
    assert "--param b'x=\\xff' is not valid UTF-8 text" in err
    assert not (home / "greenprint.db").exists()  # nothing recorded
    done = _run(home, "run", "-q", "--study", "s", "--param", "x=é", "--", "true")
    assert done.returncode == 0, done.stderr
    (run,) = gp.Ledger(str(home / "greenprint.db")).runs(study="s")
    assert run.params == {"x": "é"}


def test_a_name_with_a_line_break_prints_one_line(tmp_path_factory) -> None:
    home = empty_home(tmp_path_factory, "name-newline")
    fake = "x\ngreenprint: run 00000000 finished in 0 s"
    done = _run(home, "run", "--study", "s", "--name", fake, "--", "true")
    err = done.stderr.decode()
    assert done.returncode == 0, err
    heads = [line for line in err.splitlines() if line.startswith("greenprint: run ")]
    assert len(heads) == 1, err
    assert "'x\\ngreenprint: run 00000000 finished in 0 s'" in heads[0]


def test_a_blank_study_from_the_environment_or_a_file_is_refused(tmp_path_factory) -> None:
    home = empty_home(tmp_path_factory, "blank-study")
    env = {**clean_env(), "GREENPRINT_STUDY": " "}
    done = _run(home, "run", "-q", "--", "true", env=env)
    err = done.stderr.decode()
    assert done.returncode == 2 and err.count("\n") == 1, err
    assert "env:GREENPRINT_STUDY: study needs a study name, not ' '" in err
    (home / "greenprint.toml").write_text('study = "\\t"\n', encoding="utf-8")
    done = _run(home, "run", "-q", "--", "true")
    assert done.returncode == 2 and "study needs a study name, not '\\t'" in done.stderr.decode()
    assert not (home / "greenprint.db").exists()


def test_ls_says_which_runs_it_found_none_of(tmp_path_factory) -> None:
    home = empty_home(tmp_path_factory, "ls-filters")
    assert _run(home, "run", "-q", "--study", "s", "--", "true").returncode == 0
    done = _run(home, "ledger", "ls", "--study", "s", "--status", "interrupted")
    assert done.returncode == 0
    ledger = f"sqlite:///{os.path.realpath(home / 'greenprint.db')}"
    assert done.stderr.decode().strip() == f"no interrupted runs of study 's' in {ledger}"
    done = _run(home, "ledger", "ls", "--status", "running", "--status", "lost")
    assert done.stderr.decode().strip() == f"no running or lost runs in {ledger}"
