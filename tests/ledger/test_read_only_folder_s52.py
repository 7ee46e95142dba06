"""A ledger in a folder this process cannot write is read as it is (session 52).

An archived ledger, a snapshot, a results volume mounted read-only in a container: the reading
commands (``ledger ls``, ``export``, ``report``, ``whatif``) and ``Ledger(..., create=False)``
failed on it with "cannot write ledger ...: unable to open database file", as SQLite creates the
WAL's ``-shm`` index beside the file when it opens it. Each test mounts the folder read-only in
a mount namespace of its own (``unshare``: a user namespace where the kernel allows it, else
root's), which binds root as much as anyone, and runs greenprint there as a new user does.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from _clean_env import BIN, clean_env
from greenprint.ledger import Ledger

from .fixtures.make_v5 import V5_PATH

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="mount namespaces are Linux's")


def _namespace() -> list[str]:
    """The ``unshare`` that gives a mount namespace here, else skip (fail under CI)."""
    for args in (["unshare", "-rm"], ["unshare", "-m"]):
        if shutil.which(args[0]) is None:
            break
        done = subprocess.run([*args, "true"], capture_output=True)
        if done.returncode == 0:
            return args
    reason = "no mount namespace here (unshare -rm and unshare -m both refused)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _read_only(folder: Path, commands: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``commands`` (bash) with ``folder`` mounted read-only, in a clean new user's env."""
    script = (
        f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}' || exit 99\n"
        + commands
    )
    return subprocess.run(
        [*_namespace(), "bash", "-c", script],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )


def _study(ledger: Path, cwd: Path) -> None:
    """Two runs of study ``s`` recorded the way a user does, the second a failure."""
    code = (
        "import greenprint as gp\n"
        f"with gp.track('fit', study='s', ledger={str(ledger)!r}) as run:\n"
        "    run.log(accuracy=0.9)\n"
        "try:\n"
        f"    with gp.track('broken', study='s', ledger={str(ledger)!r}):\n"
        "        raise ValueError('bad lr')\n"
        "except ValueError:\n"
        "    pass\n"
    )
    subprocess.run(
        [str(BIN / "python"), "-c", code], cwd=cwd, env=clean_env(), check=True, timeout=120
    )


def test_the_reading_commands_read_a_ledger_in_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    ledger = folder / "greenprint.db"
    _study(ledger, tmp_path)
    assert not Path(f"{ledger}-shm").exists()  # the writers closed: the file alone
    with Ledger(ledger, create=False) as led:
        expected = {r.id: (r.name, r.status, r.energy_kwh) for r in led.runs(study="s")}
    gp = BIN / "greenprint"
    done = _read_only(
        folder,
        f"'{gp}' ledger ls --ledger '{ledger}' --json > ls.json; echo ls=$?\n"
        f"'{gp}' ledger export --ledger '{ledger}' --format json > export.json; echo export=$?\n"
        f"'{gp}' report --ledger '{ledger}' --study s --format json --no-plots --out rep"
        " > /dev/null; echo report=$?\n"
        f"'{BIN / 'python'}' -c \"import greenprint as gp; "
        f"print(len(gp.Ledger('{ledger}', create=False).runs()))\"\n"
        f"'{gp}' ledger set-role baseline {next(iter(expected))} --ledger '{ledger}';"
        " echo set-role=$?\n"
        f"touch '{folder}/probe' 2> /dev/null; echo touch=$?\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[:4] == ["ls=0", "export=0", "report=0", "2"], (done.stdout, done.stderr)
    assert lines[-2:] == ["set-role=2", "touch=1"]  # the folder was read-only
    listed = json.loads((tmp_path / "ls.json").read_text())
    assert {r["id"]: (r["name"], r["status"], r["energy_kwh"]) for r in listed} == expected
    exported = json.loads((tmp_path / "export.json").read_text())
    assert sorted(r["id"] for r in exported["runs"]) == sorted(expected)
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert sorted(r["id"] for r in report["runs"]) == sorted(expected)
    # a write says why in one line, and nothing was written
    written = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(written) == 1 and "cannot write ledger" in written[0], done.stderr
    assert "Traceback" not in done.stderr
    with Ledger(ledger, create=False) as led:
        assert "baseline" not in {r.role for r in led.runs()}


def _pending(ledger: Path, copy: Path, *, with_shm: bool) -> None:
    """``copy``: ``ledger`` copied while a run written since its last checkpoint is in its
    ``-wal`` (the writer still open), with the ``-shm`` or without it."""
    conn = sqlite3.connect(ledger)
    try:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("UPDATE runs SET name = 'renamed' WHERE name = 'fit'")
        conn.commit()
        for suffix in ("", "-wal", *(("-shm",) if with_shm else ())):
            shutil.copyfile(f"{ledger}{suffix}", f"{copy}{suffix}")
    finally:
        conn.close()


@pytest.mark.parametrize("with_shm", [True, False], ids=["with-shm", "wal-alone"])
def test_a_copy_with_changes_in_its_wal(tmp_path: Path, with_shm: bool) -> None:
    """With its ``-shm``, the copy is read with the WAL's changes; without, it is not read
    (immutable would leave them out): one line that says what to copy."""
    _study(tmp_path / "live.db", tmp_path)
    folder = tmp_path / "copy"
    folder.mkdir()
    copy = folder / "greenprint.db"
    _pending(tmp_path / "live.db", copy, with_shm=with_shm)
    assert Path(f"{copy}-wal").stat().st_size > 0
    done = _read_only(
        folder,
        f"'{BIN / 'greenprint'}' ledger ls --ledger '{copy}' --json; echo rc=$?\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out, rc = done.stdout.rsplit("rc=", 1)
    if with_shm:
        assert rc.strip() == "0", done.stderr
        assert sorted(r["name"] for r in json.loads(out)) == ["broken", "renamed"]
    else:
        assert rc.strip() == "2"
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "greenprint.db-wal" in done.stderr and "greenprint.db-shm" in done.stderr
        assert "copy the file and its -wal" in done.stderr


def test_an_older_ledger_in_a_read_only_folder_says_it_needs_a_writable_copy(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    old = folder / "v5.db"
    shutil.copyfile(V5_PATH, old)
    done = _read_only(
        folder, f"'{BIN / 'greenprint'}' ledger ls --ledger '{old}'; echo rc=$?\n", tmp_path
    )
    assert done.stdout.split()[-1] == "rc=2", (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "older one (version 5" in done.stderr and "writable folder" in done.stderr
    assert old.read_bytes() == V5_PATH.read_bytes()  # untouched
