"""What ``greenprint run`` reads of its command line: the run's name, params, checked values.

The run is named after the program, or the script an interpreter runs (``python train.py``:
``train.py``); ``--param KEY=VALUE`` values are read as numbers where they are numbers; values
that the ledger or the environment could not hold are refused before the command starts, each
with a one-line error; a command that cannot start says why, with the fix where one is known.
"""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
import sys
from typing import Any

import click

from greenprint._exceptions import ConfigError
from greenprint.cli._common import not_utf8

__all__ = [
    "as_text",
    "check_environment_holds",
    "check_prometheus_host",
    "check_values",
    "default_name",
    "missing_script",
    "parsed_params",
    "script_hint",
    "start_failure",
]

#: Interpreters whose run is named after the script they run; the options of theirs that take
#: a value (skipped with it); the option that runs a module (python's -m).
_INTERPRETER = re.compile(r"(?:python|pypy)[0-9.]*|bash|sh|dash|zsh")
_TAKES_VALUE = {"-W", "-X"}  # python's (its -O, optimise, takes none)
_SHELL_TAKES_VALUE = {"-o", "-O", "+o", "+O"}


def default_name(cmd: tuple[str, ...]) -> str:
    """The run's name when none is given: the program's, or its script's for an interpreter.

    ``python train.py --lr 0.1`` is ``train.py`` (every script run was ``python`` before),
    ``python -m pkg.train`` is ``pkg.train``; ``python -c CODE``, a shell's ``-c`` and an
    interpreter reading standard input keep the program's name.
    """
    program = cmd[0].rsplit("/", 1)[-1]
    if not _INTERPRETER.fullmatch(program):
        return program
    python = program.startswith(("python", "pypy"))
    takes_value = _TAKES_VALUE if python else _SHELL_TAKES_VALUE
    args = iter(cmd[1:])
    for arg in args:
        if arg == "-m" and program.startswith(("python", "pypy")):
            return next(args, program)
        if arg.startswith("-m") and len(arg) > 2 and program.startswith(("python", "pypy")):
            return arg[2:]
        if arg in takes_value:
            next(args, None)
        elif arg == "--":
            return next(args, program).rsplit("/", 1)[-1] or program
        elif arg == "-" or arg.startswith("-c"):
            return program
        elif not arg.startswith(("-", "+")):
            return arg.rsplit("/", 1)[-1] or program
    return program


def missing_script(cmd: tuple[str, ...]) -> str | None:
    """Why a Python command cannot run its script: the file is not there; else ``None``.

    ``greenprint run -- python trian.py`` (a typo, or a path from another folder) started
    Python, which failed to open the script: a failed run with Python's message in the study,
    counted as a failed trial. Such a command is refused before anything runs. Only the script
    of a Python interpreter is looked for (``-c``, ``-m`` and standard input run none; a shell
    looks its script up on ``PATH`` too).
    """
    program = cmd[0].rsplit("/", 1)[-1]
    if not program.startswith(("python", "pypy")) or not _INTERPRETER.fullmatch(program):
        return None
    args = iter(cmd[1:])
    script = None
    for arg in args:
        if arg == "--":
            script = next(args, None)
            break
        if arg in _TAKES_VALUE or arg == "--check-hash-based-pycs":
            next(args, None)
        elif arg == "-" or not arg.startswith("-"):
            script = arg
            break
        elif arg.startswith("--help") or arg == "--version":
            return None
        elif not arg.startswith("--"):  # a cluster of flags: -u, -OO, -uc CODE, -Wignore
            for at, flag in enumerate(arg[1:], start=1):
                if flag in "cmhV?":  # code, a module, help or version: no script
                    return None
                if flag in "WX":  # its value follows, here or in the next word
                    if at == len(arg) - 1:
                        next(args, None)
                    break
    if script is None or script == "-" or os.path.exists(script):
        return None
    where = "" if os.path.isabs(script) else f" in {os.getcwd()}"
    return f"no such script: {script} (no file {script}{where} for {program} to run)"


def as_text(name: str) -> str:
    r"""The default run name or the recorded command line, as text a ledger stores.

    A script whose file name is not UTF-8 (``\xe9t\xe9.py`` from a Latin-1 system) gave the
    run a name and a command with lone surrogates, which the ledger refused: ``greenprint run
    -- python \xe9t\xe9.py`` did not run the script at all. UTF-8 bytes decoded otherwise
    (``LC_ALL=C`` with ``PYTHONUTF8=0``) are read as UTF-8 (``été.py``); other bytes are written
    as escapes (``\xe9t\xe9.py``), as ``gp.track`` records a script's command line. The command
    itself runs with its arguments as they were given.
    """
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:  # text the file-system encoding cannot hold: no bytes in it
        return name
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="backslashreplace")


def start_failure(program: str, error: OSError) -> str:
    """Why ``program``, found and executable, could not be started, as a user reads it.

    A script whose ``#!`` interpreter is missing failed with "[Errno 2] No such file or
    directory: './train.sh'", naming the script that is there; a file that is no program
    ("[Errno 8] Exec format error") did not say what to do.
    """
    path = shutil.which(program)
    guess = {".py": "python", ".sh": "bash"}.get(os.path.splitext(program)[1])
    how = f"{guess} {program}" if guess else f"python {program}, bash {program}"
    if isinstance(error, FileNotFoundError) and path is not None:
        try:
            with open(path, "rb") as f:
                first = f.readline(256)
        except OSError:
            first = b""
        if first.startswith(b"#!"):
            words = first[2:].split()
            interpreter = os.fsdecode(words[0]) if words else "(none)"
            return (
                f"its interpreter {interpreter} (its #! line) does not exist; fix that line "
                f"or run it with one that does ({how})"
            )
    if error.errno == errno.ENOEXEC:
        return (
            f"{error.strerror}: it is not a program this machine runs (a script without a #! "
            f"line? run it with its interpreter: {how})"
        )
    return error.strerror or str(error)


def script_hint(program: str) -> str:
    """How to run ``program`` when it is a file here that is not a command (a script)."""
    if program == "--":  # `greenprint run -- -- python train.py`
        return " (a second '--': the first one starts the command)"
    if program.startswith("-"):  # `greenprint run -- -q python train.py`
        return (
            f" ({program} is an option: greenprint run's options go before the '--' that "
            "starts the command)"
        )
    if os.path.isdir(program):
        return f" ({program} is a directory)"
    if not os.path.isfile(program):
        return ""
    interpreter = {".py": "python", ".sh": "bash"}.get(os.path.splitext(program)[1])
    if "/" not in program:
        how = f"{interpreter} {program}" if interpreter else f"./{program}"
        return f" ({program} is a file here, not a command on PATH: run {how})"
    if os.access(program, os.X_OK):
        return ""
    how = f"run {interpreter} {program} (or chmod +x {program})" if interpreter else ""
    return f" ({program} is not executable: {how or f'chmod +x {program}'})"


def check_values(**values: str | None) -> None:
    """Refuse an option whose value is ``--``: its value was left out before the command.

    ``greenprint run --study -- python train.py`` gives ``--study`` the value ``--`` (click
    takes the next word), and the run would be recorded in a study named ``--``.
    """
    for key, value in values.items():
        if value == "--":
            option = "--" + key.replace("_", "-")
            raise click.UsageError(
                f"{option} needs a value (it took '--', which starts the command): "
                f"{option} VALUE -- CMD...",
                ctx=click.get_current_context(),
            )


def check_environment_holds(option: str, text: str) -> None:
    """Refuse ``text`` when the command's environment cannot carry it (the study is passed on).

    Under ``LC_ALL=C`` with ``PYTHONUTF8=0`` Python's file-system encoding is ASCII, and
    ``greenprint run --study étude`` ended in a UnicodeEncodeError traceback from setting
    ``GREENPRINT_STUDY``, the run recorded ``failed``.

    Raises:
        ConfigError: ``text`` cannot be encoded in the file-system encoding.
    """
    encoding = sys.getfilesystemencoding()
    try:
        text.encode(encoding, errors="surrogateescape")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{option} {text!r} cannot be passed to the command's environment: Python's "
            f"file-system encoding here is {encoding} (a C or POSIX locale without UTF-8 mode); "
            "set PYTHONUTF8=1, or a UTF-8 locale such as LC_ALL=C.UTF-8"
        ) from None


def check_prometheus_host(port: int | None) -> None:
    """Refuse ``--prometheus-host`` given without ``--prometheus-port``: nothing would be served.

    ``--prometheus-host 0.0.0.0`` alone would start no endpoint and say nothing, and whoever
    scrapes the machine would find no metrics.
    """
    from click.core import ParameterSource

    ctx = click.get_current_context()
    if port is None and ctx.get_parameter_source("prometheus_host") not in (
        None,
        ParameterSource.DEFAULT,
    ):
        raise click.UsageError(
            "--prometheus-host only applies with --prometheus-port (the port to serve on)",
            ctx=ctx,
        )


def parsed_params(texts: tuple[str, ...]) -> dict[str, Any]:
    """The ``--param KEY=VALUE`` options as the run's params, each value as the text reads.

    ``42`` is an integer, ``0.1`` or ``1e-3`` a float, ``true``/``false`` a bool, anything
    else (``cnn``, ``nan``, ``1e999``, ``007``, ``1_000``) text. A key given twice keeps its last
    value, as a later option does.

    Raises:
        ConfigError: an option without ``=`` or with an empty key, or not UTF-8 text.
    """
    params: dict[str, Any] = {}
    for text in texts:
        if not_utf8(text) is not None:  # as --name and --study read it: no lone surrogates
            try:
                text = os.fsencode(text).decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(
                    f"--param {not_utf8(text)} is not valid UTF-8 text (is the terminal's "
                    "encoding UTF-8?)"
                ) from None
        key, equals, value = text.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"--param {text!r}: give it as KEY=VALUE, e.g. --param lr=0.1")
        params[key.strip()] = _param_value(value)
    return params


#: How an integer and a decimal number read on the command line (not ``007``, ``1_000``).
_INTEGER = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _param_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        number = float(text)  # 1e999 overflows: text, as nan and inf are
        return number if math.isfinite(number) else text
    return text
