"""Session 23's polish: what a user saw that read wrong, each test failing before its fix."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env  # tests/_clean_env.py
from _set_energy import Joules  # tests/_set_energy.py
from greenprint._format import format_multiple, format_share


def _study(db: Path, final_joules: float) -> None:
    """Three trials of 1,000 J each and a final retrain of ``final_joules`` J."""
    for k, score in enumerate((0.8, 0.9, 0.85)):
        with gp.track(f"t{k}", ledger=db, study="s", role="trial", meters=Joules(1000.0)) as r:
            r.log(accuracy=score)
    with gp.track("retrain", ledger=db, study="s", role="final", meters=Joules(final_joules)) as r:
        r.log(accuracy=0.91)


@pytest.mark.parametrize("final_joules", [530.0, 30.0])
def test_the_study_multiple_reads_as_the_final_share_does(tmp_path: Path, final_joules: float):
    """A study of 3,530 J whose final model took 530 J: the price tag said 'study / final
    model: 7x the energy' beside the sentence's '15% of the whole study's energy' (and the
    demo's '6.66x' for the same figure). The multiple now has the share's precision: three
    significant figures up to 10x (as the sentence's percent), a whole number above (its 1/N).
    """
    db = tmp_path / "l.db"
    _study(db, final_joules)
    out = tmp_path / "r"
    subprocess.run(
        [BIN / "greenprint", "report", "--ledger", db, "--format", "md", "--out", out],
        check=True, cwd=tmp_path, env=clean_env(), capture_output=True,
    )  # fmt: skip
    md = (out / "report.md").read_text()
    said = re.search(r"\*\*study / final model\*\*: (\S+) the energy", md)
    share = re.search(r": (\S+) of the whole study's energy", md)
    assert said and share, md
    whole = 3000.0 + final_joules
    assert share.group(1) == format_share(final_joules / whole)
    assert said.group(1) == format_multiple(whole / final_joules)
    if final_joules == 530.0:
        assert (said.group(1), share.group(1)) == ("6.66x", "15%"), md
    else:  # one figure, two forms: 1/N and Nx
        assert (said.group(1), share.group(1)) == ("101x", "1/101"), md


def test_format_multiple() -> None:
    assert [format_multiple(m) for m in (6.6225, 10.0, 10.4, 1224.4, 1.0, 1.5)] == [
        "6.62x", "10x", "10x", "1,224x", "1x", "1.5x"
    ]  # fmt: skip


def test_merge_leaves_its_input_as_it_found_it(tmp_path: Path) -> None:
    """``greenprint ledger merge team.db mine.db`` left ``mine.db-wal`` and ``mine.db-shm``
    next to the user's file (a read-only connection cannot checkpoint, so SQLite keeps them);
    now the input's folder holds what it held, and the file its bytes."""
    team, mine = tmp_path / "team" / "greenprint.db", tmp_path / "mine" / "greenprint.db"
    team.parent.mkdir()
    mine.parent.mkdir()
    for db in (team, mine):  # written by a process that has ended, as a user's script
        script = f"import greenprint as gp\nwith gp.track({db.parent.name!r}, study='s'): pass"
        subprocess.run([BIN / "python", "-c", script], cwd=db.parent, env=clean_env(), check=True)
    before = hashlib.sha256(mine.read_bytes()).hexdigest()
    listing = sorted(p.name for p in mine.parent.iterdir())
    done = subprocess.run(
        [BIN / "greenprint", "ledger", "merge", team, mine],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 run added" in done.stdout
    assert sorted(p.name for p in mine.parent.iterdir()) == listing == ["greenprint.db"]
    assert hashlib.sha256(mine.read_bytes()).hexdigest() == before
    assert {r.name for r in gp.Ledger(team).runs()} == {"team", "mine"}


def test_a_run_saved_apart_from_a_vanished_ledger_says_why(tmp_path: Path) -> None:
    """A run whose ledger file and folder were deleted while it ran is saved apart; the
    warning read 'could not be written to its ledger .../gone.db (None)': the reason was
    never kept when the file could not be recreated. It now gives it. (Since session 35 the
    run goes on in its ledger's fallback file, ``greenprint-unsaved-<key>.db``, at once,
    not only at exit: the warning that says so gives the reason.)"""
    script = """
import os, shutil, time
import greenprint as gp
with gp.track("victim", ledger="runs/gone.db", flush_interval_s=0.2, sample_interval_s=0.1):
    shutil.rmtree("runs")
    time.sleep(0.6)
"""
    (tmp_path / "runs").mkdir()
    env = {**clean_env(), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [BIN / "python", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (saved,) = [line for line in done.stderr.splitlines() if "they are saved in" in line]
    assert "(None)" not in saved, saved
    assert f"(cannot create it: directory {tmp_path / 'runs'} does not exist" in saved, saved
    assert list(tmp_path.glob("greenprint-*/greenprint-unsaved-*.db")), done.stderr
