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

``greenprint report`` drawing its figures (those of the outside checks' and new-user tests'
reports that do not pass ``--no-plots``: those in outside shapes 3, 4 and 9, new user s18 and
new user reports) goes to a server too, the same way: the virtual environment's
``greenprint`` script run as ``python SCRIPT ARGS`` runs it (what its shebang does), in a child
of a server that imported matplotlib, its Agg, SVG and PDF backends, numpy and fontTools'
subsetter (which the PDF figures use): about 1 s of CPU of each such report's 3-4 s. Not a
report with ``--no-plots`` (it imports no matplotlib), nor one run where a ``matplotlibrc``
would be read (its directory's, read when matplotlib is imported: the server's directory is
empty).

``torchrun``'s launcher (:func:`run_torchrun`, for the tests that launch a job with an
environment of their own) runs in a child of a server that imported torch and
``torch.distributed.run``: about 2.6 s of CPU of each launch's 12; the ranks are the new
processes it starts, as ever.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _clean_env import BIN
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

#: The modules ``greenprint report`` imports to draw its figures (in SVG, PNG and PDF: the
#: PDF's fonts are subset with fontTools), imported by the report's server.
REPORT_PRELOAD = [
    ["numpy"],
    ["matplotlib"],
    ["matplotlib.figure"],
    ["matplotlib.backends.backend_agg"],
    ["matplotlib.backends.backend_svg"],
    ["matplotlib.backends.backend_pdf"],
    ["fontTools.subset"],
]

#: The key of the report's server (no framework is named so)
REPORT_KEY = ("greenprint report",)

#: Servers kept at once in one pytest process (a framework's holds 300-450 MB, the report's
#: about 100 MB): the least recently used is closed when another needs one. Three: a file of
#: the outside checks alternates Lightning scripts, Transformers scripts and reports.
MAX_SERVERS = 3

#: Environment variables that differ from test to test, or that the pytest process sets itself
#: mid-session, and that no framework reads at import: ``TORCHINDUCTOR_CACHE_DIR`` is written
#: into ``os.environ`` when the pytest process first imports torch._dynamo (an in-process test's
#: optimizer step or FPO count), which made every server started before it look started with
#: another environment: closed and started again, its framework imported once more (about 4 s
#: of CPU for Transformers', 5 s for Lightning's); ``PYTORCH_NVML_BASED_CUDA_CHECK``, which
#: Lightning's import writes there (a server importing Lightning sets it in itself as well).
#: A child gets the whole request environment either way (``os.environ`` cleared and filled).
_PER_TEST = ("PYTEST_CURRENT_TEST", "TORCHINDUCTOR_CACHE_DIR", "PYTORCH_NVML_BASED_CUDA_CHECK")

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
    """``args`` (``[sys.executable, SCRIPT, *ARGS]``, or ``[greenprint, "report", *ARGS]``
    drawing figures) run in ``directory`` in a child of a fork server, or ``None`` when the
    command is not such a script (run it yourself)."""
    if _draws_a_report(directory, args):
        key, preload, script, rest = REPORT_KEY, REPORT_PRELOAD, args[0], list(args[1:])
    else:
        if len(args) < 2 or args[0] != sys.executable or not args[1].endswith(".py"):
            return None
        try:
            source = (directory / args[1]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        names = {m[0].split(".")[0] for m in heavy_imports([source])} & set(PRELOADS)
        key = tuple(sorted(names))
        if not key:
            return None
        preload = [m for name in key for m in PRELOADS[name]]
        preload = [m for i, m in enumerate(preload) if m not in preload[:i]]
        script, rest = args[1], list(args[2:])
    try:
        server = _server(key, preload, env)
    except LookupError:
        return None
    try:
        done = server.run_script(script, rest, directory, env, timeout)
        if key == REPORT_KEY:
            done.args = list(args)  # as the test gave it: greenprint report ...
        return done
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


def run_script_beside(
    key: tuple[str, ...],
    more: list[list[str]],
    directory: Path,
    script: str,
    env: dict[str, str],
    timeout: float,
) -> subprocess.CompletedProcess[str] | None:
    """``python SCRIPT`` in ``directory`` in a child of a server forked, for this script only,
    from the server of ``key`` (started if need be) and importing ``more`` beside it: a script
    of two frameworks whose file already runs the first's scripts (Lightning's, then one of
    Lightning and Transformers) imports torch, torch._dynamo and the first framework once, not
    again in a server of both. ``None`` when no server can serve (run it yourself)."""
    try:
        parent = _server(key, [m for name in key for m in PRELOADS[name]], env)
    except LookupError:
        return None
    server = ForkServer(_cwd[0], env, more, parent=parent)  # imports in an empty directory
    try:
        if server.ready["project_modules"] or server.ready["threads"] != 1:
            return None
        return server.run_script(script, [], directory, env, timeout)
    finally:
        server.close()


#: The key and imports of the server of ``torchrun``'s launcher (no framework is named so):
#: torch and the launcher's module, about 2.6 s of CPU of each launch's 12 (the ranks it starts
#: are new processes of their own, as ``torchrun``'s are)
TORCHRUN_KEY = ("torchrun",)
TORCHRUN_PRELOAD = [["torch"], ["torch.distributed.run"]]


def run_torchrun(
    directory: Path, args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``torchrun ARGS`` (the virtual environment's) in ``directory`` with ``env``: the
    launcher in a child of a server that imported torch and the launcher's module, what the
    ``torchrun`` script (``python .venv/bin/torchrun ARGS``, its shebang) would be there; its
    ranks are the new ``python`` processes it starts, as ever. A fresh process when no server
    can serve. The server's own environment is ``env`` without its ``GREENPRINT_*`` variables
    (torch reads none at import): the launches of a file's jobs, each with its job's variables,
    share it."""
    script = str(BIN / "torchrun")
    started = {k: v for k, v in env.items() if not k.startswith("GREENPRINT_")}
    try:
        server = _server(TORCHRUN_KEY, TORCHRUN_PRELOAD, started)
    except LookupError:
        server = None
    if server is not None:
        try:
            done = server.run_script(script, args, directory, env, timeout)
            done.args = [script, *args]
            return done
        except subprocess.TimeoutExpired:
            raise
        except BaseException:
            if _servers.get(TORCHRUN_KEY, (None,))[0] is server:
                _servers.pop(TORCHRUN_KEY)
                assert server.process is not None
                server.process.kill()
                server.close()
            raise
    return subprocess.run(
        [script, *args], cwd=directory, env=env, capture_output=True, text=True, timeout=timeout
    )


def _draws_a_report(directory: Path, args: list[str]) -> bool:
    """Whether ``args`` is the virtual environment's ``greenprint report`` drawing figures, in
    a directory without a ``matplotlibrc`` (which a fresh process would read)."""
    return (
        len(args) >= 2
        and args[0] == str(BIN / "greenprint")
        and args[1] == "report"
        and "--no-plots" not in args
        and not (directory / "matplotlibrc").exists()
    )


@atexit.register
def close_all() -> None:
    """Close every server (the pytest process is ending)."""
    while _servers:
        _servers.popitem()[1][0].close()
    for folder in _cwd:
        shutil.rmtree(folder, ignore_errors=True)
