"""The ``greenprint`` command line: a thin layer over the library.

Subcommands live in their own private modules and are imported only when invoked, so that
``greenprint --help`` stays fast. Errors: any :class:`~greenprint.GreenprintError` (bad input) is
printed as one line on stderr with exit status 2; usage errors exit 2 too; ``greenprint run``
passes the wrapped command's exit status through.
"""

from __future__ import annotations

import errno
import importlib
import re
import sys
from collections.abc import Sequence
from typing import Any

import click

from greenprint._exceptions import GreenprintError
from greenprint._version import __version__

__all__ = ["main"]

# name -> (module defining `command`, one-line help shown by `greenprint --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("greenprint.cli._run", "Track a command's energy, CO2-eq and time into the ledger."),
    "fpo": ("greenprint.cli._fpo", "Count the FPO of a PyTorch model (forward, backward)."),
    "report": (
        "greenprint.cli._report",
        "Write a study's price-tag report (HTML/MD/LaTeX/JSON).",
    ),
    "ledger": ("greenprint.cli._ledger", "List, show, export and merge runs; give them roles."),
    "hardware": ("greenprint.cli._hardware", "Show this machine's hardware and usable meters."),
    "intensity": ("greenprint.cli._intensity", "Show the grid carbon intensity of a region."),
    "whatif": (
        "greenprint.cli._whatif",
        "Price a run's energy in other regions and at the best start hour.",
    ),
    "greener": (
        "greenprint.cli._greener",
        "Measure greener variants of a model side by side (int8, pruning, bf16, distillation).",
    ),
    "demo": ("greenprint.cli._demo", "Run a small Green AI study end to end and report it."),
}


#: click 8.2+ raises this for a group given no command (8.1 prints the help and exits 0)
_NO_ARGS_IS_HELP: type[click.UsageError] | tuple[()] = getattr(
    click.exceptions, "NoArgsIsHelpError", ()
)


#: click 8.2+ raises this for an unknown command (8.1 a plain UsageError, with no suggestion)
_NO_SUCH_COMMAND: Any = getattr(click.exceptions, "NoSuchCommand", ())


def _ledger_commands() -> list[str]:
    """The names of ``greenprint ledger``'s commands (``ls``, ``show``, ``export``...)."""
    ledger = importlib.import_module(COMMANDS["ledger"][0]).command
    return list(ledger.commands) if isinstance(ledger, click.Group) else []


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        try:
            module = importlib.import_module(entry[0])
        except ModuleNotFoundError as e:
            if e.name == entry[0]:  # the subcommand itself is not built (yet)
                return None
            raise
        command: click.Command = module.command
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, but a mistyped command gets the nearest names (``whatiff``: whatif).

        click suggests from ``self.commands``, which this group leaves empty (its commands are
        imported when invoked), so ``greenprint whatiff`` had no "Did you mean" where
        ``greenprint ledger lss`` had one. A command of ``greenprint ledger`` given without it
        (``greenprint ls``) gets the command it is under: ``greenprint ledger ls``.
        """
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            name = args[0] if args else None
            if name not in COMMANDS and name in _ledger_commands():
                # `greenprint ls` (as `greenprint ledger ls`): the command it is under
                raise click.UsageError(
                    f"No such command {name!r}. Did you mean 'greenprint ledger {name}'?", ctx=ctx
                ) from None
            if not isinstance(e, _NO_SUCH_COMMAND) or e.possibilities:
                raise
            raise _NO_SUCH_COMMAND(
                e.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="greenprint")
def cli() -> None:
    """greenprint: the price tag of every ML result (energy, CO2-eq, FPO, time)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return (and, as a script, exit with) the exit status."""
    # the arguments, for the messages below; click reads sys.argv itself when argv is None (on
    # Windows it expands wildcards there)
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="greenprint",
            standalone_mode=False,
        )
    except GreenprintError as e:
        click.echo(f"greenprint: error: {e}", err=True)
        return _exit(2, argv)
    except click.exceptions.Exit as e:
        return _exit(e.exit_code, argv)
    except _NO_ARGS_IS_HELP as e:
        # `greenprint` or `greenprint ledger` alone: the help, as --help gives it (exit 2)
        click.echo(e.format_message(), err=True)
        return _exit(e.exit_code, argv)
    except click.UsageError as e:
        # one line, like every other bad input: what is wrong and where the help is
        where = e.ctx.command_path if e.ctx is not None else _command_path(args)
        message = e.format_message().rstrip(".")
        if isinstance(e, click.NoSuchOption) and len(e.possibilities or ()) > 1:
            # click's "No such option '--studdy'. (Did you mean one of: '--status', '--study'?)":
            # the nearest first, in the sentence's own words
            *most, last = map(repr, e.possibilities or ())
            near = f"{', '.join(most)} or {last}"
            message = f"No such option {e.option_name!r}. Did you mean {near}?"
        elif e.ctx is not None and (hint := _extra_argument_hint(e.ctx, message)):
            from greenprint.ledger._target import mask_passwords

            message = mask_passwords(f"{message}. {hint}")  # a ledger URL given with its password
        click.echo(f"greenprint: error: {message} (see '{where} --help')", err=True)
        return _exit(e.exit_code, argv)
    except click.ClickException as e:
        e.show()
        return _exit(e.exit_code, argv)
    except click.Abort:
        click.echo("Aborted.", err=True)
        return _exit(130, argv)
    except UnicodeEncodeError as e:
        # an argument that is not UTF-8 where text is needed (most are refused as they are
        # parsed, naming their option: cli._common.TEXT): one line, not a traceback
        from greenprint.cli._common import not_utf8

        if e.encoding.replace("-", "").lower() != "utf8" and isinstance(e.object, str):
            # LC_ALL=C with PYTHONUTF8=0: file names and the environment are ASCII, and
            # `report --study étude` made the folder greenprint-report-étude
            text = e.object[e.start : e.end]
            click.echo(
                f"greenprint: error: {text!r} (in {e.object!r:.80}) cannot be written in this "
                f"locale's encoding, {e.encoding}; set PYTHONUTF8=1, or a UTF-8 locale such as "
                "LC_ALL=C.UTF-8",
                err=True,
            )
            return _exit(2, argv)
        shown = [text for text in map(not_utf8, args) if text is not None]
        if e.reason != "surrogates not allowed" or not shown:
            raise
        click.echo(
            f"greenprint: error: {shown[0]} is not valid UTF-8 text (is the terminal's "
            "encoding UTF-8?)",
            err=True,
        )
        return _exit(2, argv)
    except OSError as e:
        # a full disk under standard output (greenprint ledger ls > out.txt) or a file written:
        # one line, and no second error when Python flushes standard output at exit (a closed
        # pipe is click's own: exit status 1, nothing printed)
        if e.errno not in _WRITE_FAILED:
            raise
        if argv is None:  # the console script's own output, not a caller's
            from greenprint.cli._common import drop_stream

            drop_stream(sys.stdout)
        where = e.filename if e.filename is not None else "standard output"
        click.echo(f"greenprint: error: cannot write {where}: {e.strerror or e}", err=True)
        return _exit(1, argv)
    return _exit(rv if isinstance(rv, int) else 0, argv)


#: errno values of a write that failed for want of room: a full disk, a quota, a file too big
_WRITE_FAILED = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name)
)


#: click's usage error for one argument a command takes no place for
_EXTRA_ARGUMENT = re.compile(r"Got unexpected extra argument \((?P<arg>[^ ]+)\)")
#: File names a ledger usually has (``greenprint.db``): given where a study was expected
_LEDGER_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def _extra_argument_hint(ctx: click.Context, message: str) -> str | None:
    """The option a stray argument was meant for: ``greenprint report sweep`` is ``--study``.

    ``report``, ``ledger ls`` and ``ledger export`` take the study and the ledger as options
    only; a new user gives them as arguments (``greenprint report sweep``, ``greenprint report
    runs.db``) and was told only "Got unexpected extra argument (sweep)". A database URL or a
    file name a ledger has (``.db``, ``.sqlite``) is the ledger's; anything else the study's.
    """
    found = _EXTRA_ARGUMENT.fullmatch(message)
    if found is None:
        return None
    arg = found["arg"]
    options = {p.name for p in ctx.command.params if isinstance(p, click.Option)}
    if "ledger" in options and ("://" in arg or arg.lower().endswith(_LEDGER_SUFFIXES)):
        return f"Did you mean '--ledger {arg}'?"
    if "study" in options and not arg.startswith("-"):
        return f"Did you mean '--study {arg}'?"
    return None


def _command_path(args: Sequence[str]) -> str:
    """The command ``args`` invoke, as click names it in a usage error: ``greenprint ledger ls``.

    click gives some usage errors no context (``greenprint whatif --run`` with no value: "Option
    '--run' requires an argument"), which then pointed at ``greenprint --help`` rather than the
    help of the command whose option it is.
    """
    path = ["greenprint"]
    if args and args[0] in COMMANDS:
        path.append(args[0])
        if args[0] == "ledger" and len(args) > 1 and args[1] in _ledger_commands():
            path.append(args[1])
    return " ".join(path)


def _exit(code: int, argv: Sequence[str] | None) -> int:
    if argv is None:  # console-script entry point
        sys.exit(code)
    return code
