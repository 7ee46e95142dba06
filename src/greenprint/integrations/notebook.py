"""Notebooks: ``%greenprint`` and ``%%greenprint`` track a line or a cell into the ledger.

Load the extension once per kernel, then prefix a cell::

    %load_ext greenprint.integrations.notebook

    %%greenprint --name train-small --study mnist --ledger greenprint.db
    model.fit(X, y)

or one statement: ``%greenprint --name eval model.score(X_test, y_test)``. A cell may
``await`` at top level, as any cell may (IPython's autoawait): IPython runs it on its event
loop, and the run spans it. Options (all optional, before the code; values with spaces in
quotes): ``--name`` (default ``cell``), ``--study``, ``--ledger``, ``--role``, ``--region``,
``--pue``. ``--`` ends the options of the line magic.

The cell runs as it would without the magic (its output and its last value shown, an exception
raised as usual, so "Run all" stops there); the run ends ``finished``, ``failed`` (an
exception, recorded) or ``interrupted`` (the stop button). A line under the cell gives the
cost; the run is then in the namespace as ``_greenprint_run``, and a cell whose last line is
that run, a price tag or a report shows it as a table (those have ``_repr_html_`` without
this extension).

Needs IPython (``pip install 'greenprint[notebook]'``).
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from typing import Any

from greenprint._imports import require

require("IPython", extra="notebook", purpose="greenprint.integrations.notebook", package="ipython")

from IPython.core.error import UsageError  # noqa: E402
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class  # noqa: E402

from greenprint._exceptions import GreenprintError  # noqa: E402
from greenprint._lifecycle import status_for  # noqa: E402

__all__ = ["GreenprintMagics", "load_ipython_extension", "unload_ipython_extension"]

#: The options the magics take (each with one value).
OPTIONS = ("name", "study", "ledger", "role", "region", "pue")

_OPTION = re.compile(r"""--([a-z_-]+)(?:=|\s+)("[^"]*"|'[^']*'|[^\s"']+)\s*""")


def parse_options(line: str) -> tuple[dict[str, str], str]:
    """Split a magic's line into its options and the code after them.

    Args:
        line: what follows ``%greenprint`` or ``%%greenprint``.

    Returns:
        The options (name -> value, quotes removed) and the rest of the line.

    Raises:
        UsageError: an unknown option, or one without a value.
    """
    options: dict[str, str] = {}
    rest = line.strip()
    while rest.startswith("--"):
        if rest == "--" or rest.startswith("-- "):
            rest = rest[2:].strip()
            break
        match = _OPTION.match(rest)
        if match is None:
            raise UsageError(f"greenprint: an option needs a value: {rest.split()[0]}")
        key = match.group(1).replace("-", "_")
        if key not in OPTIONS:
            raise UsageError(
                f"greenprint: unknown option --{match.group(1)}; options: "
                + ", ".join(f"--{o}" for o in OPTIONS)
            )
        value = match.group(2)
        if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
            value = value[1:-1]
        options[key] = value
        rest = rest[match.end() :]
    return options, rest


@magics_class
class GreenprintMagics(Magics):
    """The ``%greenprint`` line magic and ``%%greenprint`` cell magic."""

    @line_magic("greenprint")  # type: ignore[arg-type]  # IPython's stubs type it as Never
    def greenprint_line(self, line: str) -> Any:
        """Track one statement: ``%greenprint [--name N --study S ...] statement``.

        Returns the statement's value, as ``%time`` does.
        """
        options, code = parse_options(line)
        if not code:
            raise UsageError("greenprint: nothing to run: %greenprint [--name N ...] statement")
        return self._track(options, code)

    @cell_magic("greenprint")  # type: ignore[arg-type]
    def greenprint_cell(self, line: str, cell: str) -> Any:
        """Track a whole cell: ``%%greenprint [--name N --study S ...]`` as its first line.

        Returns the value of the cell's last expression, shown as the cell's output.
        """
        options, rest = parse_options(line)
        if rest:
            raise UsageError(f"greenprint: unexpected {rest!r} after the options of %%greenprint")
        return self._track(options, cell, first_line=2)

    @line_magic("greenprint_begin")  # type: ignore[arg-type]
    def greenprint_begin(self, line: str) -> None:
        """Start the run of a ``%%greenprint`` cell with top-level ``await`` (not typed by hand).

        The extension rewrites such a cell's first line into this (:func:`_async_cells`), so
        that IPython runs the cell's code itself, as a coroutine on its event loop; the run
        ends when the cell has run (IPython's ``post_run_cell`` event).
        """
        options, rest = parse_options(line)
        if rest:
            raise UsageError(f"greenprint: unexpected {rest!r} after the options of %%greenprint")
        run = self._start(options)
        shell = self.shell
        assert shell is not None

        def ended(result: Any) -> None:
            shell.events.unregister("post_run_cell", ended)
            error = result.error_before_exec or result.error_in_exec
            if error is None:
                run.stop()
            else:
                status, text = status_for(error)
                run.stop(status=status, error=text)
            self._ended(run)

        shell.events.register("post_run_cell", ended)

    def _start(self, options: dict[str, str]) -> Any:
        """The run the magic's options describe, started (a bad option: a UsageError)."""
        from greenprint.tracking import Run

        settings: dict[str, Any] = dict(options)
        name = settings.pop("name", "cell")
        if "pue" in settings:
            try:
                settings["pue"] = float(settings["pue"])
            except ValueError:
                pass  # a preset name: the run checks it
        try:
            run = Run(name, **settings)
            run.start()
        except GreenprintError as e:
            raise UsageError(f"greenprint: {e}") from e
        return run

    def _ended(self, run: Any) -> None:
        """Put the ended run in the namespace as ``_greenprint_run`` and print its cost."""
        from greenprint._format import format_duration, format_emissions, format_energy

        if self.shell is not None:
            self.shell.user_ns["_greenprint_run"] = run
        print(
            f"greenprint: {run.name} {run.status}: {format_energy(run.energy_kwh)}, "
            f"{format_emissions(run.emissions_kg)} in {format_duration(run.duration_s)} "
            f"(run {run.id[:8]})"
        )

    def _track(self, options: dict[str, str], code: str, *, first_line: int = 1) -> Any:
        run = self._start(options)
        try:
            value = self._execute(code, first_line=first_line)
        except BaseException as e:
            status, text = status_for(e)
            run.stop(status=status, error=text)
            raise
        finally:
            run.stop()
            self._ended(run)
        return value

    def _execute(self, code: str, *, first_line: int = 1) -> Any:
        """Run ``code`` in the user's namespace as %%time does: the last expression's value.

        ``None`` when the code ends in ``;``, as IPython hides a cell's value then
        (``plt.plot(...);``). A traceback names the cell (``Cell In[5]``) and its lines as typed:
        ``code`` starts on line ``first_line`` of the cell (2 under ``%%greenprint``).
        """
        from IPython.core.displayhook import DisplayHook

        shell = self.shell
        assert shell is not None
        source = "\n" * (first_line - 1) + shell.transform_cell(code)
        tree = shell.compile.ast_parse(source)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        filename = shell.compile.cache(source, _cell_number(shell))
        exec(shell.compile(tree, filename, "exec"), shell.user_ns)
        if last is None:
            return None
        value = eval(shell.compile(last, filename, "eval"), shell.user_ns)
        return None if DisplayHook.semicolon_at_end_of_expression(code) else value


def _cell_number(shell: Any) -> int:
    """The number of the cell running now (``In[5]``), for its code's tracebacks.

    The number IPython compiled the cell under, found from the frame running it (IPython 9
    counts ``execution_count`` on before the cell runs, IPython 8 after); else
    ``execution_count``.
    """
    names = getattr(shell.compile, "_filename_map", None) or {}
    frame = sys._getframe(1)
    while frame is not None:
        number = names.get(frame.f_code.co_filename)
        if number is not None:
            return int(number)
        frame = frame.f_back  # type: ignore[assignment]
    return int(shell.execution_count)


_CELL_MAGIC = re.compile(r"\s*%%greenprint(?:\s|$)")


def _async_cells(shell: Any) -> Any:
    """An input transformer: a ``%%greenprint`` cell whose code awaits at top level.

    The cell magic runs a cell's code itself, synchronously, where ``await`` outside a function
    is a ``SyntaxError`` (in Jupyter the kernel's event loop is already running, so the magic
    cannot wait for a coroutine either). Such a cell's first line becomes
    ``%greenprint_begin`` with the same options, which starts the run, and the rest of the cell
    is left to IPython, which runs it as any cell with top-level ``await`` (its value shown,
    its lines numbered as typed); the run ends when the cell has run. Other cells, and any
    cell while IPython's ``autoawait`` is off, are left as they are.
    """

    def transform(lines: list[str]) -> list[str]:
        if not lines or not _CELL_MAGIC.match(lines[0]) or not getattr(shell, "autoawait", False):
            return lines
        body = "".join(lines[1:])
        try:
            source = shell.transform_cell(body)
            code = compile(
                source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
            )
        except (SyntaxError, ValueError):
            return lines  # the magic says what is wrong, as for any cell
        if not code.co_flags & inspect.CO_COROUTINE:
            return lines
        options = lines[0].split("%%greenprint", 1)[1].strip()
        return [f"get_ipython().run_line_magic('greenprint_begin', {options!r})\n", *lines[1:]]

    transform.greenprint = True  # type: ignore[attr-defined]  # found again on a reload
    return transform


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext greenprint.integrations.notebook``).

    And the input transformer that lets a ``%%greenprint`` cell ``await`` at top level
    (:func:`_async_cells`), once per shell.
    """
    ipython.register_magics(GreenprintMagics)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and not any(getattr(t, "greenprint", False) for t in cleanup):
        cleanup.append(_async_cells(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo: IPython keeps registered magics until the kernel ends."""
