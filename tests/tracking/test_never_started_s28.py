"""A run logged to but never started says so: ``run = gp.track(...)`` used as ``wandb.init()``.

Before, ``run = gp.track("x", study="s")`` then ``run.log(accuracy=0.9)`` (no ``with``, no
``start()``) recorded nothing and said nothing: the script ended with exit status 0 and an
empty ledger.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import greenprint as gp
from _clean_env import clean_env


def _script(home: Path, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        cwd=home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_values_logged_to_a_run_never_started_are_said_to_go_nowhere(tmp_path: Path) -> None:
    done = _script(
        tmp_path,
        """
        import greenprint as gp
        for lr in (0.1, 0.2, 0.3):  # a loop of them: said once
            run = gp.track(f"lr={lr}", study="sweep")
            run.set(params={"lr": lr})
            run.log(accuracy=0.9, loss=0.2)
        print(run.status)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["new"]
    lines = [line for line in done.stderr.splitlines() if "never started" in line]
    assert lines == [
        "greenprint: run 'lr=0.1' (study 'sweep') was never started: its 2 logged values went "
        "nowhere; measure and record a run with `with gp.track(...) as run:`, `@gp.track`, or "
        "run.start() ... run.stop() (later runs never started are not reported)"
    ], done.stderr
    assert not (tmp_path / "greenprint.db").exists()  # nothing was written anywhere


def test_a_run_logged_to_before_it_starts_records_the_values_and_says_nothing(
    tmp_path: Path,
) -> None:
    done = _script(
        tmp_path,
        """
        import greenprint as gp
        run = gp.track("early", study="s")
        run.log(warmup_loss=1.5)
        with run:
            run.log(accuracy=0.9)
        bare = gp.track("unused", study="s")  # made and dropped, nothing logged: no word
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "never started" not in done.stderr, done.stderr
    with gp.Ledger(tmp_path / "greenprint.db", create=False) as led:
        (run,) = led.runs(study="s")
    assert run.name == "early" and run.status == "finished"
    assert run.metric_names == ["warmup_loss", "accuracy"]
