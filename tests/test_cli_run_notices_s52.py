"""A failed command's recorded reason is never greenprint's own notice (session 52).

A script under ``greenprint run`` that imports greenprint and asks ``gp.current_run()`` gets a
notice on stderr (``greenprint: gp.current_run() is None: this process runs inside run ...``);
when it then failed without writing anything, the run's error, the price tag, ``ledger show``
and the report gave that notice as the reason: ``exit status 3: greenprint: gp.current_run()
is None...``. The CLI's own errors (``greenprint: error: ...``, a command that is greenprint)
are still the reason.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env
from _report_cli import empty_home
from greenprint import _stderr_tail

GREENPRINT = str(BIN / "greenprint")
WARNING = (
    "train.py:3: UserWarning: greenprint: trials run in parallel threads\n  study.optimize(f)\n"
)


@pytest.mark.parametrize(
    ("tail", "line"),
    [
        ("greenprint: gp.current_run() is None: this process runs inside run 4cc29bff\n", None),
        ("epoch 3 diverged\ngreenprint: a notice after it\n", "epoch 3 diverged"),
        (WARNING, None),  # the warning and its line of source
        ("lr too high\n" + WARNING + "\n", "lr too high"),
        (
            "greenprint: error: no study 'nope' in ledger x.db\n",
            "greenprint: error: no study 'nope' in ledger x.db",
        ),
        ("my greenprint: note\n", "my greenprint: note"),  # not at the start: the command's
    ],
)
def test_greenprints_own_notices_are_not_the_reason(tail: str, line: str | None) -> None:
    assert _stderr_tail.last_line(tail.encode()) == line


@pytest.mark.skipif(sys.platform == "win32", reason="greenprint run's stderr relay is POSIX")
def test_a_script_that_asked_for_its_run_and_exited_3_records_exit_status_3(tmp_path_factory):
    home = empty_home(tmp_path_factory, "notice")
    (home / "train.py").write_text(
        "import sys\n"
        "import greenprint as gp\n"
        "run = gp.current_run()  # None under greenprint run: a notice on stderr\n"
        "if run is not None:\n"
        "    run.log(accuracy=0.9)\n"
        "sys.exit(3)\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [GREENPRINT, "run", "--study", "s", "--", sys.executable, "train.py"],
        cwd=home, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3
    assert "greenprint: gp.current_run() is None" in done.stderr  # the notice, still shown
    (run,) = gp.Ledger(str(home / "greenprint.db")).runs()
    assert (run.status, run.error) == ("failed", "exit status 3")
    assert "failed (exit status 3) in " in done.stderr  # the price tag printed
