"""A fresh engineer's review of session 9's changes: each defect found, reproduced first.

1. SIGTERM held during a write transaction of the main thread (71c623d) was acted on with the
   ledger's write lock still held: the run's sampler, waiting on that lock to flush, could not
   stop (``sampler did not stop within 0.6 s; leaving it behind``), and once the handler had
   written the run ``interrupted`` and the process went on (a previous handler that does not
   exit: ``SIG_IGN``, a framework's flag-setting one), the sampler's flush, its fields taken
   before the stop, overwrote the record: ``status='running'``, the cost of a second earlier;
   the run was later read ``lost``.
2. ``greenprint run -- python -O train.py`` (536d325 names a run after its script) read
   python's ``-O`` (optimise, no value) as the shell's ``-O shopt`` (which takes one): it
   skipped ``train.py`` as its value and named the run ``python``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from greenprint.cli import main

# ------------------------------------------------------------------ 1. SIGTERM, sampler flushing
SIGTERM_WHILE_SAMPLER_FLUSHES = textwrap.dedent(
    """
    import os, signal, sys, time
    import greenprint as gp

    db = sys.argv[1]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the process goes on after the handler
    run = gp.track("trial", ledger=db, flush_interval_s=0.05, sample_interval_s=0.05).start()
    time.sleep(0.3)

    def slow(conn):  # a write of the main thread; the sampler wants to flush meanwhile
        conn.execute("UPDATE runs SET name = 'renamed' WHERE id = ?", (run.id,))
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
        return "done"

    print(run.ledger._store.transaction(slow, write=True), run.status, flush=True)
    time.sleep(0.5)  # a sampler left behind would write now
    print(run.duration_s, flush=True)
    """
)


def test_sigterm_held_in_a_transaction_lets_the_sampler_stop_before_the_final_record(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_WHILE_SAMPLER_FLUSHES, str(db)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0].split() == ["done", "interrupted"]
    (record,) = gp.Ledger(db).runs()
    assert (record.name, record.status, record.error) == ("renamed", "interrupted", "SIGTERM")
    assert record.duration_s == pytest.approx(float(lines[1]))
    assert "did not stop" not in done.stderr


# ------------------------------------------------------------------ 2. python -O train.py
@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["-O", "train.py"], "train.py"),
        (["-OO", "-u", "train.py", "--lr", "0.1"], "train.py"),
        (["-W", "ignore", "-X", "dev", "train.py"], "train.py"),
        (["bash", "-O", "extglob", "-o", "errexit", "train.py"], "train.py"),
    ],
)
def test_a_python_run_with_options_before_its_script_is_named_after_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("print('trained')\n" if args[0] != "bash" else "true\n")
    db = str(tmp_path / "g.db")
    cmd = args if args[0] == "bash" else [sys.executable, *args]
    assert main(["run", "--ledger", db, "-q", "--", *cmd]) == 0
    (record,) = gp.Ledger(db).runs()
    assert record.name == name
