"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any, TextIO

import click

from greenprint.carbon._intensity import applied_intensity

__all__ = [
    "TEXT",
    "IntRange",
    "applied_intensity",
    "drop_stream",
    "folder_out",
    "ledger_option",
    "not_utf8",
    "pue_option",
    "study_option",
]


def drop_stream(stream: TextIO | None) -> None:
    """Point ``stream`` (standard output or error) at the null device, after a write failed.

    Python flushes both again at exit, and a write that fails there printed "Exception ignored
    ... BrokenPipeError" (or OSError) and made the exit status 120, whatever greenprint meant to
    return (the remedy the ``signal`` module's documentation gives for a closed pipe). What the
    stream still takes is flushed first.
    """
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        stream.flush()
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, stream.fileno())
        finally:
            os.close(null)


def folder_out(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A ``--out DIR`` option's callback: ``-`` is refused, not made a folder named ``-``.

    ``greenprint report --format json --out -`` (standard output, for most tools) wrote the
    report into a new folder ``./-``.
    """
    if value is not None and value.strip() == "-":
        raise click.BadParameter(
            "'-' (standard output) cannot hold the several files this command writes; "
            "give a folder's name",
            ctx=ctx,
            param=param,
        )
    return value


def not_utf8(text: str) -> str | None:
    r"""How ``text`` shows its bytes (``b'\xe9tude'``) when it is not valid UTF-8, else ``None``.

    Python decodes an argument that is not UTF-8 (a terminal in Latin-1 typing ``étude``) with
    lone surrogates, which no ledger can store or look up.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return repr(os.fsencode(text))
    return None


class _Utf8Text(click.types.StringParamType):
    r"""Text that names something in a ledger (a study, a run id, a metric): valid UTF-8.

    ``greenprint ledger ls --study $'\xe9tude'`` ended in a UnicodeEncodeError traceback from
    the ledger's query; refused here, it is one line naming the option, exit status 2. Bytes
    that are UTF-8 but were decoded otherwise (``LC_ALL=C`` with ``PYTHONUTF8=0``: ASCII, the
    rest escaped) are read as the UTF-8 text they are (``étude``).
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = super().convert(value, param, ctx)
        shown = not_utf8(text) if isinstance(text, str) else None
        if shown is None:
            return text
        try:
            return os.fsencode(text).decode("utf-8")
        except UnicodeDecodeError:
            self.fail(
                f"{shown} is not valid UTF-8 text (is the terminal's encoding UTF-8?)", param, ctx
            )


#: The type of an option whose value names something in a ledger: UTF-8 text.
TEXT = _Utf8Text()


class IntRange(click.IntRange):
    """click's IntRange, named as what it takes: an integer.

    click's own said "'abc' is not a valid integer range" (``greenprint demo --trials abc``)
    and showed ``--depth INTEGER RANGE`` in the help.
    """

    name = "integer"


class Choice(click.Choice):
    """click's Choice, whose refusal names the nearest choice (one line, exit status 2).

    ``greenprint run --role trail`` said only "'trail' is not one of 'trial', 'part', ...",
    while ``ledger set-role trail`` and ``gp.track(role="trail")`` say "did you mean 'trial'?".
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            from greenprint._suggest import nearest, suggestion

            choices = [str(c) for c in self.choices]
            hint = suggestion(nearest(value, choices)) if isinstance(value, str) else ""
            if not hint:
                raise
            listed = ", ".join(map(repr, choices))
            self.fail(f"{value!r} is not one of {listed}{hint}", param, ctx)


ledger_option = click.option(
    "--ledger",
    "ledger",
    default=None,
    metavar="PATH|URL",
    help="Ledger file or database URL [default: GREENPRINT_LEDGER, config, ./greenprint.db].",
)
study_option = click.option(
    "--study", type=TEXT, default=None, help="Study name [default: every study]."
)
pue_option = click.option(
    "--pue",
    default=None,
    metavar="PUE|PRESET",
    help="Data-centre PUE, a number in [1, 3] or a preset (google, aws, azure...) "
    "[default: the parent run's, GREENPRINT_PUE, config, 1.0].",
)
