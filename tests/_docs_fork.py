"""A fork server for one Markdown page's Python examples (``test_docs_examples.py``).

Most of a documentation example's time is importing torch, torch._dynamo, lightning or
transformers, not greenprint. A page's server is a ``python -c SERVER`` started in the page's
directory with the examples' environment; it imports only the heavy third-party modules that the
page's Python blocks import (found with :mod:`ast`; never greenprint or anything of this
project), then forks one child per example. The child is what a fresh ``python -c RUNNER`` is
for the example: its cwd and environment set (``os.environ`` cleared and filled), fds 0/1/2 its
own (the example's source, and files the test reads), ``sys.argv`` as ``python -c`` sets it, a
fresh ``__main__``, import caches invalidated, and a normal interpreter exit (atexit handlers
run) with the exit status ``python -c`` would give. The server never calls a torch function.
"""

from __future__ import annotations

import ast
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Third-party packages worth importing once per page (top-level names). Not Ray (it starts
#: threads and processes of its own), not scikit-learn (~1 s to import; its joblib workers and
#: OpenBLAS's threads are not worth a fork), not greenprint: its state must be fresh.
HEAVY = {"torch", "lightning", "pytorch_lightning", "transformers", "optuna", "mlflow"}


def heavy_imports(codes: Iterable[str]) -> list[list[str]]:
    """``[module, *names]`` for each heavy ``import``/``from ... import`` of the codes, in order.

    ``torch._dynamo`` follows torch (greenprint's FPO counter imports it). Names are what a
    ``from`` import takes (transformers loads its classes lazily, on that access).
    """
    found: list[list[str]] = []
    for code in codes:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [[a.name] for a in node.names if a.name.split(".")[0] in HEAVY]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if node.module.split(".")[0] in HEAVY:
                    found.append([node.module, *(a.name for a in node.names if a.name != "*")])
    found = [item for item in found if ".experimental" not in item[0]]  # side effects
    if any(item[0].split(".")[0] == "torch" for item in found):
        found.append(["torch._dynamo"])
    unique: list[list[str]] = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


# The server: imports the page's heavy modules, answers "ready", then per request line (JSON:
# env, cwd, argv, stdin/stdout/stderr paths) forks a child, answers "pid N" and, when the child
# has ended, "exit STATUS" (subprocess's return code: -N for a signal). The child leaves the loop
# and runs the request's code at the top level, as ``python -c`` runs it. A request with
# "serve" (more modules to import, a socket, a log) forks a server of more frameworks: the child
# connects to the test's socket, imports them beside what this server holds and serves there (as
# a server started with all of them would); this one answers "pid N" and goes on serving, and
# waits for those children before it exits.
SERVER = r"""
import gc, importlib, json, os, sys

# the answers go to the test on a descriptor of their own; what the imports print (a framework's
# banner: "[INFO] Running in WANDB offline mode") goes to the server's log with its stderr
_answers = os.dup(1)
os.dup2(2, 1)
_in = 0
_preload = json.loads(sys.argv[1])
while True:  # this server, then (in a child) each server of more frameworks forked from it
    for _item in _preload:
        try:
            _module = importlib.import_module(_item[0])
            for _name in _item[1:]:
                if not hasattr(_module, _name):
                    importlib.import_module(_item[0] + "." + _name)
        except Exception:
            pass  # the example meets the same error itself
    # the preloaded objects out of the collector's reach: a child's every gc.collect() walked
    # them (the HF Trainer collects at each train() and evaluate(): 0.22 s of CPU each with
    # torch, transformers and optuna loaded; outside shapes 10: 69 -> 60 s of CPU, 3 runs each)
    gc.collect()
    gc.freeze()
    _mine = sorted(m for m in sys.modules if m.split(".")[0] in ("greenprint", "_clean_env"))
    _threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0
    _ready = {"ready": True, "project_modules": _mine, "threads": _threads}
    os.write(_answers, (json.dumps(_ready) + "\n").encode())

    _servers = []
    _buffer = b""
    while True:
        while b"\n" not in _buffer:
            _chunk = os.read(_in, 65536)
            if not _chunk:  # the test process closed its end (its servers of ours first)
                for _pid in _servers:
                    os.waitpid(_pid, 0)
                sys.exit(0)
            _buffer += _chunk
        _line, _buffer = _buffer.split(b"\n", 1)
        _request = json.loads(_line)
        sys.stdout.flush()
        sys.stderr.flush()
        _pid = os.fork()
        if _pid == 0:
            break
        os.write(_answers, f"pid {_pid}\n".encode())
        if "serve" in _request:
            _servers.append(_pid)
            continue
        _, _status = os.waitpid(_pid, 0)
        os.write(_answers, f"exit {os.waitstatus_to_exitcode(_status)}\n".encode())
    if "serve" not in _request:
        break
    # a server of more frameworks: the test's socket its requests and answers, its own log, and
    # the directory and environment a server started fresh would have
    import socket

    os.close(_answers)
    _null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(_null, 0)
    os.close(_null)
    _log = os.open(_request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(_log, 1)
    os.dup2(_log, 2)
    os.close(_log)
    _socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _socket.connect(_request["socket"])
    _in = _answers = _socket.detach()
    os.chdir(_request["cwd"])
    os.environ.clear()
    os.environ.update(_request["env"])
    importlib.invalidate_caches()
    _preload = _request["serve"]

# the child: what `python -c CODE ARGS...` in cwd with env would be
os.close(_answers)
os.chdir(_request["cwd"])
os.environ.clear()
os.environ.update(_request["env"])
if "tempfile" in sys.modules:  # read from TMPDIR again: the server's imports may have read it
    sys.modules["tempfile"].tempdir = None
for _fd, (_path, _flags) in enumerate([
    (_request["stdin"], os.O_RDONLY),
    (_request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    (_request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
]):
    _opened = os.open(_path, _flags, 0o600)
    os.dup2(_opened, _fd)
    os.close(_opened)
_encoding = sys.stdout.encoding
sys.stdin = sys.__stdin__ = open(0, "r", encoding=_encoding, closefd=False)
sys.stdout = sys.__stdout__ = open(1, "w", encoding=_encoding, closefd=False)
sys.stderr = sys.__stderr__ = open(
    2, "w", encoding=_encoding, errors="backslashreplace", buffering=1, closefd=False
)
sys.argv[:] = _request["argv"]
importlib.invalidate_caches()
_main = type(sys)("__main__")
_main.__dict__["__builtins__"] = __builtins__
if "path" in _request:
    # `python PATH ARGS...`: argv[0] the path as given, the script's folder first on sys.path
    # (where `python -c` has ""), __file__ its absolute path, its source's own encoding
    import importlib.machinery

    _path = os.path.abspath(_request["path"])
    sys.path[0] = os.path.dirname(_path)
    with open(_path, "rb") as _file:
        _code = compile(_file.read(), _path, "exec", dont_inherit=True)
    _main.__file__ = _path
    _main.__cached__ = None
    _main.__loader__ = importlib.machinery.SourceFileLoader("__main__", _path)
    _main.__annotations__ = {}
else:
    _code = compile(_request["code"], "<string>", "exec")
sys.modules["__main__"] = _main
exec(_code, _main.__dict__)
"""


@dataclass
class StartedChild:
    """A child of a :class:`ForkServer` started and not yet waited for."""

    #: Its process id
    pid: int
    #: ``sys.argv`` in the child
    argv: list[str]
    #: Its stdin, stdout and stderr files (``"stdin"``, ``"stdout"``, ``"stderr"``)
    paths: dict[str, Path]


class ForkServer:
    """One page's server: started on first use, closed by :meth:`close`.

    With ``parent``, a server of more frameworks forked from that one (which holds a part of
    ``preload``, such as torch for Lightning's or Transformers' server): it imports only what
    the parent has not, in ``cwd`` with ``env`` as a new server would, and talks to the test
    over a Unix socket; its parent must stay open until it is closed. torch with torch._dynamo
    is then imported once for the docs' torch, Lightning and Transformers servers (~3.5 s of
    CPU each time).
    """

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        preload: list[list[str]],
        parent: ForkServer | None = None,
    ) -> None:
        self._io = Path(tempfile.mkdtemp(prefix="gp-docs-fork-"))
        self._buffer = b""
        self._count = 0
        self.parent = parent
        self.process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        if parent is None:
            self._log = open(self._io / "server.err", "wb")  # closed in close()
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVER, json.dumps(preload)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                cwd=cwd,
                env=env,
            )
            self.pid = self.process.pid
        else:
            self._log = open(os.devnull, "wb")  # the server writes its own log
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
                listener.bind(str(self._io / "socket"))
                listener.listen(1)
                listener.settimeout(60)
                request = {"serve": preload, "socket": str(self._io / "socket"), "cwd": str(cwd)}
                request.update(env=env, log=str(self._io / "server.err"))
                parent._send(request)
                self.pid = int(parent._line(timeout=60).split()[1])
                try:
                    self._socket, _ = listener.accept()
                except TimeoutError:
                    os.kill(self.pid, signal.SIGKILL)
                    raise
            self._socket.settimeout(None)
        self.ready = json.loads(self._line(timeout=240))

    def _fd(self) -> int:
        if self._socket is not None:
            return self._socket.fileno()
        assert self.process is not None and self.process.stdout is not None
        return self.process.stdout.fileno()

    def _send(self, request: dict[str, Any]) -> None:
        data = json.dumps(request).encode() + b"\n"
        if self._socket is not None:
            self._socket.sendall(data)
            return
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def _line(self, timeout: float) -> str:
        fd = self._fd()
        while b"\n" not in self._buffer:
            if not _readable(fd, timeout):
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                log = (self._io / "server.err").read_text(errors="replace")
                raise RuntimeError(f"the docs' fork server ended:\n{log[-4000:]}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def run(
        self,
        code: str,
        argv: list[str],
        stdin: str,
        cwd: Path,
        env: dict[str, str],
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        """``python -c code ARGS`` (``argv`` is ``["-c", *ARGS]``) fed ``stdin``, in a child."""
        return self._run({"code": code, "argv": argv}, stdin, cwd, env, timeout)

    def run_script(
        self, path: str, args: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """``python path ARGS`` in ``cwd``, in a child (its stdin empty, as at end of file)."""
        done = self._run({"path": path, "argv": [path, *args]}, "", cwd, env, timeout)
        done.args = [sys.executable, path, *args]
        return done

    def start_script(
        self, path: str, args: list[str], cwd: Path, env: dict[str, str]
    ) -> StartedChild:
        """``python path ARGS`` in ``cwd`` started in a child and not waited for (its stdin
        empty): its pid, to signal it as a test signals a process it started, and the file its
        stdout goes to. End it with :meth:`wait`; the server serves nothing else until then."""
        return self._start({"path": path, "argv": [path, *args]}, "", cwd, env)

    def _start(
        self, request: dict[str, Any], stdin: str, cwd: Path, env: dict[str, str]
    ) -> StartedChild:
        self._count += 1
        paths = {k: self._io / f"{self._count}.{k}" for k in ("stdin", "stdout", "stderr")}
        paths["stdin"].write_text(stdin)  # as subprocess encodes text input
        request = {**request, "cwd": str(cwd), "env": env}
        request.update({k: str(p) for k, p in paths.items()})
        self._send(request)
        pid = int(self._line(timeout=60).split()[1])
        return StartedChild(pid, list(request["argv"]), paths)

    def wait(self, child: StartedChild, timeout: float) -> subprocess.CompletedProcess[str]:
        """The end of a child of :meth:`start_script`: its exit status (``-N`` for a signal, as
        :mod:`subprocess` gives), stdout and stderr. Killed after ``timeout`` s
        (``subprocess.TimeoutExpired``)."""
        argv, paths = child.argv, child.paths
        try:
            status = int(self._line(timeout=timeout).split()[1])
        except TimeoutError:
            os.kill(child.pid, signal.SIGKILL)
            self._line(timeout=60)
            raise subprocess.TimeoutExpired(
                [sys.executable, "-c", "...", *argv[1:]],
                timeout,
                paths["stdout"].read_text(errors="replace"),
                paths["stderr"].read_text(errors="replace"),
            ) from None
        out, err = paths["stdout"].read_text(), paths["stderr"].read_text()
        for path in paths.values():
            path.unlink()
        return subprocess.CompletedProcess(
            [sys.executable, "-c", "...", *argv[1:]], status, out, err
        )

    def _run(
        self, request: dict[str, Any], stdin: str, cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        return self.wait(self._start(request, stdin, cwd, env), timeout)

    def close(self) -> None:
        """End the server (close its servers of more frameworks first: it waits for them)."""
        if self._socket is not None:
            self._socket.shutdown(socket.SHUT_WR)  # the server reads the end of its requests
            if not _readable(self._socket.fileno(), 30) or self._socket.recv(1):  # not ended
                # in 30 s
                os.kill(self.pid, signal.SIGKILL)
            self._socket.close()
        elif self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()
        for path in self._io.iterdir():
            path.unlink()
        self._io.rmdir()


def _readable(fd: int, timeout: float) -> bool:
    """Whether ``fd`` has something to read within ``timeout`` s.

    ``poll``, not ``select``: a pytest worker of the whole suite may hold more than 1,024
    descriptors (ledgers the tests' runs opened), and ``select`` refuses a descriptor above
    ``FD_SETSIZE`` (``ValueError: filedescriptor out of range in select()``: 15 errors in one
    run of the suite at 392475a).
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(max(timeout, 0.0) * 1000))
