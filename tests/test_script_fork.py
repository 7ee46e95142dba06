"""A script run in a child of a fork server (``_script_fork``, ``_docs_fork``) is what
``python SCRIPT ARGS`` in its directory is: the outside checks' Lightning and Transformers
scripts run there, so a difference would change what those tests check."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import _docs_fork
import _script_fork
import greenprint as gp
from _clean_env import BIN, clean_env
from _docs_fork import ForkServer
from _report_cli import run_in

PROBE = """
import atexit, json, os, sys, __main__
atexit.register(lambda: print("atexit ran", flush=True))


def shown(value):
    return type(value).__name__ if value is not None else None


print(json.dumps({
    "argv": sys.argv, "path0": sys.path[0], "path": sys.path[1:], "file": __file__,
    "name": __name__, "cwd": os.getcwd(), "probe": os.environ.get("GP_PROBE"),
    "keys": sorted(vars(__main__)), "spec": shown(__spec__), "cached": __cached__,
    "package": __package__, "loader": shown(__loader__), "doc": __doc__,
    "stdin": sys.stdin.read(), "main": sys.modules["__main__"] is __main__,
    "greenprint": "greenprint" in sys.modules,
}), flush=True)
print("to stderr", file=sys.stderr)
mode = sys.argv[1]
if mode == "exit":
    sys.exit(3)
if mode == "raise":
    raise ValueError("boom")
if mode == "interrupt":
    raise KeyboardInterrupt
"""


@pytest.mark.parametrize("mode", ["end", "exit", "raise", "interrupt"])
def test_a_script_in_a_fork_server_child_is_what_python_script_is(tmp_path: Path, mode: str):
    """Same exit status, output, ``sys.argv``, ``sys.path``, ``__main__``, cwd, environment
    and atexit handlers as a fresh ``python probe.py MODE``; the traceback ends the same."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "probe.py").write_text(PROBE, encoding="utf-8")
    env = clean_env()
    env["GP_PROBE"] = "set"
    fresh = subprocess.run(
        [sys.executable, "probe.py", mode], cwd=home, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    server = ForkServer(tmp_path, clean_env(), [["json"]])
    try:
        forked = server.run_script("probe.py", [mode], home, env, timeout=60)
        again = server.run_script("probe.py", ["end"], home, env, timeout=60)
    finally:
        server.close()
    assert forked.args == [sys.executable, "probe.py", mode]
    assert forked.returncode == fresh.returncode
    assert forked.stdout == fresh.stdout
    seen = json.loads(fresh.stdout.splitlines()[0])
    assert seen["path0"] == str(home) and seen["argv"] == ["probe.py", mode]
    assert seen["file"] == str(home / "probe.py") and seen["probe"] == "set"
    assert not seen["greenprint"]
    assert forked.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1]
    assert ("Traceback" in forked.stderr) == ("Traceback" in fresh.stderr)
    assert again.returncode == 0 and json.loads(again.stdout.splitlines()[0])["main"]


def test_a_framework_script_run_as_a_new_user_runs_it_is_a_fork_servers_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """``run_in`` sends a script that imports a framework of ``PRELOADS`` to its server (the
    script's parent is not this process, and the server had imported the framework), and a
    script without one to a fresh process (its parent is this process). A stand-in framework
    (the standard library's ``csv``) keeps the test cheap: which one does not change how a
    script reaches its server.

    One OpenMP thread, as each pytest-xdist worker sets it (tests/conftest.py): with a thread
    per core numpy's pool starts at import, and a server with threads is not used."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(_script_fork, "PRELOADS", {"csv": [["csv"]]})
    monkeypatch.setattr(_docs_fork, "HEAVY", {"csv"})
    (tmp_path / "framework.py").write_text(
        "import os, sys\nloaded = 'csv' in sys.modules\nimport csv\n"
        "print(os.getppid(), loaded, sys.argv[1:])\n",
        "utf-8",
    )
    (tmp_path / "plain.py").write_text("import os\nprint(os.getppid())\n", "utf-8")
    try:
        done = run_in(tmp_path, sys.executable, "framework.py", "a", "b")
        assert done.returncode == 0, done.stderr
        parent, loaded, args = done.stdout.split(" ", 2)
        assert int(parent) != os.getpid() and loaded == "True" and args.strip() == "['a', 'b']"
        done = run_in(tmp_path, sys.executable, "plain.py")
        assert done.returncode == 0 and int(done.stdout) == os.getpid()
    finally:  # the stand-in's server only (a real framework's may serve the next tests)
        held = _script_fork._servers.pop(("csv",), None)
        if held is not None:
            held[0].close()


def _written(folder: Path) -> dict[str, object]:
    """Every file under ``folder`` by its relative path: the time the report was generated
    masked (the JSON's ``generated_at``, the pages' ``Generated 2026-12-03 14:48:26 UTC``)."""
    stamp = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
    files: dict[str, object] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".json":
            files[path.name] = {**json.loads(path.read_bytes()), "generated_at": None}
        else:
            files[path.relative_to(folder).as_posix()] = stamp.sub(b"<time>", path.read_bytes())
    return files


def test_a_report_drawn_in_a_fork_servers_child_is_what_greenprint_report_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """``run_in`` sends ``greenprint report`` drawing figures to the report's server (which
    imported matplotlib): the same exit status, output and files (every figure's SVG, PNG and
    PDF bytes) as a fresh ``greenprint report``, but for the time it was generated; a study
    the ledger lacks is the same one error line and exit status 2. ``--no-plots`` imports no
    matplotlib: a fresh process. One OpenMP thread, as in every pytest-xdist worker."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ledger = tmp_path / "greenprint.db"
    for k, lr in enumerate((0.1, 0.01, 0.001)):
        with gp.track(f"trial-{k}", study="s", ledger=ledger, params={"lr": lr}) as run:
            run.log(val_acc=0.8 + 0.05 * k)
    greenprint = str(BIN / "greenprint")

    def served() -> tuple[object, int]:
        """The report's server and how many commands it has run."""
        held = _script_fork._servers.get(_script_fork.REPORT_KEY)
        return (held[0], held[0]._count) if held is not None else (None, 0)

    def one_more(before: tuple[object, int]) -> bool:
        """The server ran one more command (a new one, if the environment changed since)."""
        server, count = served()
        return count == (before[1] + 1 if server is before[0] else 1)

    for study, status in (("s", 0), ("nope", 2)):
        args = [greenprint, "report", "--study", study, "--out", "rep"]
        fresh = subprocess.run(args, cwd=tmp_path, env=clean_env(), capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        if status == 0:
            shutil.move(tmp_path / "rep", tmp_path / "fresh")
        before = served()
        forked = run_in(tmp_path, *args)
        assert one_more(before)  # in a child of the report's server
        assert forked.args == args
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            fresh.returncode, fresh.stdout, fresh.stderr)  # fmt: skip
        assert forked.returncode == status, forked.stderr
    written = _written(tmp_path / "rep")
    assert any(name.endswith(".pdf") for name in written), sorted(written)
    assert written == _written(tmp_path / "fresh")
    before = served()
    done = run_in(tmp_path, greenprint, "report", "--study", "s", "--out", "bare", "--no-plots")
    assert done.returncode == 0 and served() == before  # a fresh process
