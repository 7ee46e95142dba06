"""A user's Lightning or Transformers script run as ``python SCRIPT ARGS`` without importing
the framework again for each script (``_report_cli.run_in``).

Most of such a script's CPU is importing the frameworks, not what it runs: Lightning (with
torch, torch._dynamo, torchmetrics) about 7 s of CPU, the Transformers ``Trainer`` about 6 s, in
every script the outside checks run. A fork server (:mod:`_docs_fork`, as the docs' examples
use) imports the heavy third-party modules a script imports, once per pytest process and set of
frameworks, never greenprint or anything of this project; each script runs in a child of it,
which is what ``python SCRIPT ARGS`` in the directory would be: its cwd, exactly the new user's
environment (``clean_env()``), ``sys.argv`` as given, the script's folder first on
``sys.path``, ``__main__`` with the script's ``__file__``, its own stdout and stderr, a normal
exit with atexit handlers run, and the exit status Python gives.

A script is sent to a server only when it imports Lightning or Transformers (Ray, scikit-learn
and the rest start threads or processes of their own, or are cheap to import), is run with the
environment ``run_in`` gives by default, and the server has no thread but its main one (a fork
copies one thread; under pytest-xdist each worker's ``OMP_NUM_THREADS`` keeps torch's pools
unstarted). Anything else runs in a fresh process, as before.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _docs_fork import ForkServer, heavy_imports

#: The frameworks whose import a server saves (top-level names), with what their server
#: imports: torch with torch._dynamo (both frameworks import torch; an optimizer's first step
#: imports dynamo) and the framework as the outside checks' scripts use it. A script importing
#: none of them runs in a fresh process; Optuna, MLflow and the rest a script imports itself,
#: so that one server serves every Lightning script (and one every Transformers script)
#: whatever else it imports.
PRELOADS = {
    "lightning": [["torch"], ["torch._dynamo"], ["lightning.pytorch"]],
    "pytorch_lightning": [["torch"], ["torch._dynamo"], ["pytorch_lightning"]],
    "transformers": [
        ["torch"],
        ["torch._dynamo"],
        ["transformers", "Trainer", "TrainingArguments"],
    ],
}

#: Servers kept at once in one pytest process (each holds 300-450 MB): the least recently
#: used is closed when another set of frameworks needs one.
MAX_SERVERS = 2

#: Environment variables that differ from test to test and that no framework reads at import.
_PER_TEST = ("PYTEST_CURRENT_TEST",)

_servers: dict[tuple[str, ...], tuple[ForkServer, dict[str, str]]] = {}
#: Sets of frameworks (with the environment they were asked for in) whose server could not
#: serve: each such script runs in a fresh process without trying again
_refused: set[tuple[tuple[str, ...], frozenset[tuple[str, str]]]] = set()
#: The servers' own working directory while they import: empty (``python -c`` puts it first on
#: ``sys.path``), made on first use
_cwd: list[Path] = []


def _environment(env: dict[str, str]) -> frozenset[tuple[str, str]]:
    """What a server's imports may have read of ``env``."""
    return frozenset((k, v) for k, v in env.items() if k not in _PER_TEST)


def _server(key: tuple[str, ...], preload: list[list[str]], env: dict[str, str]) -> ForkServer:
    """The running server of ``key`` started with ``env``, else a new one (LRU of
    :data:`MAX_SERVERS`); raises ``LookupError`` when a server cannot serve (threads, project
    modules imported)."""
    if (key, _environment(env)) in _refused:
        raise LookupError(key)
    held = _servers.pop(key, None)
    if held is not None:
        server, started = held
        if server.process.poll() is not None or _environment(started) != _environment(env):
            server.close()
            held = None
    if held is None:
        while len(_servers) >= MAX_SERVERS:
            oldest = next(iter(_servers))
            _servers.pop(oldest)[0].close()
        if not _cwd:
            _cwd.append(Path(tempfile.mkdtemp(prefix="gp-script-fork-")))
        server = ForkServer(_cwd[0], env, preload)
        if server.ready["project_modules"] or server.ready["threads"] != 1:
            server.close()
            _refused.add((key, _environment(env)))
            raise LookupError(key)
        held = (server, env)
    _servers[key] = held  # most recently used last
    return held[0]


def run_script(
    directory: Path, args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str] | None:
    """``args`` (``[sys.executable, SCRIPT, *ARGS]``) run in ``directory`` in a child of a
    fork server, or ``None`` when the command is not such a script (run it yourself)."""
    if len(args) < 2 or args[0] != sys.executable or not args[1].endswith(".py"):
        return None
    script = directory / args[1]
    try:
        source = script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    key = tuple(sorted({m[0].split(".")[0] for m in heavy_imports([source])} & set(PRELOADS)))
    if not key:
        return None
    preload = [m for name in key for m in PRELOADS[name]]
    preload = [m for i, m in enumerate(preload) if m not in preload[:i]]
    try:
        server = _server(key, preload, env)
    except LookupError:
        return None
    try:
        return server.run_script(args[1], list(args[2:]), directory, env, timeout)
    except subprocess.TimeoutExpired:
        raise  # the child was killed and its end read: the server serves on
    except BaseException:
        # interrupted while its child ran (pytest-timeout, Ctrl-C): its answers are no longer
        # in step with the requests, so no other script goes to it
        if _servers.get(key, (None,))[0] is server:
            _servers.pop(key)
            server.process.kill()
            server.close()
        raise


@atexit.register
def close_all() -> None:
    """Close every server (the pytest process is ending)."""
    while _servers:
        _servers.popitem()[1][0].close()
    for folder in _cwd:
        shutil.rmtree(folder, ignore_errors=True)
