"""``greenprint run -- CMD ...``: track a command's whole process tree.

Signals follow the rule in :mod:`greenprint._process`: Ctrl-C (SIGINT, and SIGQUIT) from the
terminal reaches the command once, straight from the terminal, and greenprint waits while it
cleans up; SIGTERM and SIGHUP sent to greenprint are forwarded once each. On Linux the command
gets SIGTERM if greenprint itself is killed. A command that dies of a signal is recorded by the
signal's name (``killed by SIGSEGV``) and greenprint exits with 128+N. A failed command's error
goes on with the line of its stderr that says why (``exit status 1: ValueError: bad lr``), read
through a relay when stderr is not a terminal (see :mod:`greenprint._stderr_tail`).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from typing import Any, Literal, cast

import click

from greenprint import _process, _stderr_tail
from greenprint._exceptions import ConfigError, GreenprintError
from greenprint._records import RUN_ROLES
from greenprint.cli._cells import safe
from greenprint.cli._common import (
    TEXT,
    Choice,
    IntRange,
    applied_intensity,
    drop_stream,
    ledger_option,
    pue_option,
)
from greenprint.cli._run_args import (
    as_text,
    check_environment_holds,
    check_prometheus_host,
    check_values,
    default_name,
    missing_script,
    parsed_params,
    script_hint,
    start_failure,
)

__all__ = ["command", "format_price_tag"]


@click.command(
    "run",
    context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False},
)
@click.option(
    "--name",
    type=TEXT,
    default=None,
    help="Run name [default: the program's name; for python or a shell, the script's "
    "(train.py) or python's -m module].",
)
@click.option(
    "--study",
    type=TEXT,
    default=None,
    help="Study name [default: the parent run's, GREENPRINT_STUDY, config, 'default'].",
)
@ledger_option
@click.option(
    "--region",
    default=None,
    help="Grid region, e.g. DE, US-CA, aws:eu-west-1; not with --intensity [default: the "
    "parent run's, else as configured (GREENPRINT_INTENSITY or GREENPRINT_REGION, config), "
    "else the world average].",
)
@click.option(
    "--intensity",
    default=None,
    metavar="G_PER_KWH|CSV",
    help="Grid intensity in g CO2-eq/kWh, or an hourly CSV (timestamp,g_per_kwh); not with "
    "--region [default: the parent run's, else as configured (GREENPRINT_INTENSITY or "
    "GREENPRINT_REGION, config), else the world average].",
)
@pue_option
@click.option(
    "--scope",
    type=Choice(["process", "machine"]),
    default=None,
    help="Attribute energy to the command's process tree, or record the whole machine "
    "[default: process; machine for a node meter].",
)
@click.option(
    "--node-meter/--no-node-meter",
    default=None,
    help="In a distributed job (srun, torchrun), whether this run meters its node "
    "[default: local rank 0 does, on a node the job has to itself].",
)
@click.option(
    "--sample-interval",
    "sample_s",
    type=float,
    default=1.0,
    show_default=True,
    metavar="S",
    help="Seconds between two meter samples (and energy and CO2-eq budget checks).",
)
@click.option(
    "--flush-interval",
    "flush_s",
    type=float,
    default=None,
    metavar="S",
    help="Seconds between two writes to the ledger (cost so far, heartbeat); at least "
    "--sample-interval.  [default: 10, or --sample-interval when longer]",
)
@click.option(
    "--role",
    type=Choice(RUN_ROLES),
    default=None,
    help="What the run is in its study [default: inferred when the study is analysed].",
)
@click.option(
    "--param",
    "param_texts",
    multiple=True,
    metavar="KEY=VALUE",
    help="A hyper-parameter of the run, e.g. --param lr=0.1 --param model=cnn (repeat it); "
    "integers, decimals and true/false are recorded as such, the rest as text. With one, "
    "the run is the trial that a gp.track run of its script scores, as its part (without, "
    "the script's one scored run is the trial and this one a sweep around it).",
)
@click.option(
    "--dataset-size",
    type=IntRange(min=0),
    default=None,
    metavar="N",
    help="Training examples the command trains on: E x D x H's D, a learning curve's x "
    "(a --role learning-curve run given one is a point of the curve) [default: none; a "
    "gp.track run inside may set its own].",
)
@click.option(
    "--prometheus-port",
    type=IntRange(0, 65535),
    default=None,
    metavar="PORT",
    help="Serve the run's live figures at http://HOST:PORT/metrics while it runs (0: a free "
    "port, printed) [default: no endpoint].",
)
@click.option(
    "--prometheus-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics endpoint binds (0.0.0.0: every IPv4 interface; ::1, :: IPv6).",
)
@click.option(
    "--prometheus-textfile-dir",
    default=None,
    metavar="DIR",
    envvar="GREENPRINT_PROMETHEUS_TEXTFILE_DIR",
    help="Keep a node_exporter textfile of the live figures in DIR (removed at the end).",
)
@click.option(
    "--budget-kwh",
    type=float,
    default=None,
    metavar="KWH",
    help="Energy budget: over it, the command gets SIGTERM (then SIGKILL after the grace).",
)
@click.option(
    "--budget-kg", type=float, default=None, metavar="KG", help="CO2-eq budget, likewise."
)
@click.option(
    "--budget-fpo",
    type=float,
    default=None,
    metavar="FPO",
    help="FPO budget: what the command's runs record (add_fpo, set(fpo=...)), read from the "
    "ledger every --flush-interval; over it, SIGTERM likewise.",
)
@click.option(
    "--budget-s", type=float, default=None, metavar="S", help="Wall-time budget, likewise."
)
@click.option(
    "--study-budget-kwh",
    type=float,
    default=None,
    metavar="KWH",
    help="Energy budget of the whole study (its price tag: every run of it in the ledger, "
    "this one's live): over it, the command gets SIGTERM likewise.",
)
@click.option(
    "--study-budget-kg", type=float, default=None, metavar="KG", help="Study CO2-eq budget."
)
@click.option(
    "--study-budget-fpo", type=float, default=None, metavar="FPO", help="Study FPO budget."
)
@click.option(
    "--study-budget-s",
    type=float,
    default=None,
    metavar="S",
    help="Study run-time budget (run-seconds, summed over its runs).",
)
@click.option(
    "--budget-grace-s",
    type=float,
    default=10.0,
    show_default=True,
    metavar="S",
    help="Seconds between SIGTERM and SIGKILL when a budget is exceeded.",
)
@click.option("--quiet", "-q", is_flag=True, help="Do not print the price tag.")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def command(
    name: str | None,
    study: str | None,
    ledger: str | None,
    region: str | None,
    intensity: str | None,
    pue: str | None,
    scope: str | None,
    node_meter: bool | None,
    sample_s: float,
    flush_s: float | None,
    role: str | None,
    param_texts: tuple[str, ...],
    dataset_size: int | None,
    prometheus_port: int | None,
    prometheus_host: str,
    prometheus_textfile_dir: str | None,
    budget_kwh: float | None,
    budget_kg: float | None,
    budget_fpo: float | None,
    budget_s: float | None,
    study_budget_kwh: float | None,
    study_budget_kg: float | None,
    study_budget_fpo: float | None,
    study_budget_s: float | None,
    budget_grace_s: float,
    quiet: bool,
    cmd: tuple[str, ...],
) -> int:
    """Run CMD, measuring its energy, CO2-eq and time, and record it in the ledger.

    The command's exit status is passed through (128+N if a signal N ended it). Ctrl-C reaches
    it once, from the terminal, and greenprint waits while it cleans up; SIGTERM and SIGHUP sent
    to greenprint are forwarded once. The run is then recorded as interrupted, with its cost so
    far. On Linux, if greenprint is killed the command gets SIGTERM. Over a budget
    (--budget-kwh, --budget-kg, --budget-fpo, --budget-s, or the study's: --study-budget-kwh...)
    the command
    gets SIGTERM, then SIGKILL after --budget-grace-s, and the run is recorded as interrupted
    with the reason. A failed command's error ends with the line of its stderr that says why
    (exit status 1: ValueError: bad lr) when stderr is not a terminal (a log file, a pipe).

    Example: greenprint run --study sweep --region DE --param lr=0.1 -- python train.py --lr 0.1
    """
    from greenprint.tracking import track

    check_values(
        name=name,
        study=study,
        ledger=ledger,
        region=region,
        intensity=intensity,
        pue=pue,
        prometheus_host=prometheus_host,
        prometheus_textfile_dir=prometheus_textfile_dir,
    )
    if region is not None and intensity is not None:  # each alone prices the run
        raise click.UsageError(
            f"give --region or --intensity, not both: --intensity {intensity} alone would "
            f"price the run, and --region {region} would be ignored"
        )
    check_prometheus_host(prometheus_port)
    for option, given, what in (("--name", name, "run"), ("--study", study, "study")):
        if given is not None and not given.strip():  # as --ledger '' and --region '' are
            raise ConfigError(f"{option} needs a {what} name, not {given!r}")
    if study is not None:
        check_environment_holds("--study", study)
    params = parsed_params(param_texts)
    program = cmd[0]
    if not program.strip():
        raise ConfigError(f"command not found: {program!r} (an empty command name)")
    if shutil.which(program) is None:
        raise ConfigError(f"command not found: {program}{script_hint(program)}")
    if (no_script := missing_script(cmd)) is not None:
        raise ConfigError(no_script)
    from greenprint._validate import finite_number

    stopper = None
    budgets = []
    # checked before anything runs, named as the user wrote them (a grace without a budget too)
    grace_s = finite_number("--budget-grace-s", budget_grace_s, low=0.0, unit="s")
    limits = {
        "run": (budget_kwh, budget_kg, budget_fpo, budget_s),
        "study": (study_budget_kwh, study_budget_kg, study_budget_fpo, study_budget_s),
    }
    for per, values in limits.items():
        prefix = "--budget" if per == "run" else "--study-budget"
        for option, value, unit in zip(
            (f"{prefix}-kwh", f"{prefix}-kg", f"{prefix}-fpo", f"{prefix}-s"),
            values,
            ("kWh", "kg CO2-eq", "FPO", "s"),
            strict=True,
        ):
            if value is not None:
                finite_number(option, value, low=0.0, low_open=True, unit=unit)
    finite_number("--sample-interval", sample_s, low=0.0, low_open=True, unit="s")
    if flush_s is None:
        from greenprint.tracking import default_flush_interval_s

        flush_s = default_flush_interval_s(sample_s)
    finite_number("--flush-interval (at least --sample-interval)", flush_s, low=sample_s, unit="s")
    if any(v is not None for values in limits.values() for v in values):
        from greenprint._budget import Budget

        stopper = _process.ChildStopper(grace_s, say=lambda line: click.echo(line, err=True))
        request = stopper.request
        for per, (kwh, kg, fpo, s) in limits.items():
            if (kwh, kg, fpo, s) != (None, None, None, None):
                budgets.append(
                    Budget(
                        kwh=kwh,
                        kg=kg,
                        fpo=fpo,
                        s=s,
                        per=per,  # type: ignore[arg-type]
                        on_exceed=lambda _run, exceeded: request(str(exceeded)),
                        warn_predicted=False,
                    )
                )
    run = track(
        name or as_text(default_name(cmd)),
        study=study,
        ledger=ledger,
        region=region,
        intensity=intensity,
        pue=pue,
        scope=cast(Literal["process", "machine"] | None, scope),  # click checked it
        node_meter=node_meter,
        command=as_text(subprocess.list2cmdline(cmd)),
        sample_interval_s=sample_s,
        flush_interval_s=flush_s,
        role=role,
        params=params,
        dataset_size=dataset_size,
        budget=budgets or None,
    )
    with contextlib.ExitStack() as exporters:
        textfile = _start_prometheus(
            exporters, prometheus_port, prometheus_host, prometheus_textfile_dir, flush_s
        )
        return _run_command(run, cmd, program, quiet=quiet, stopper=stopper, textfile=textfile)


def _start_prometheus(
    stack: contextlib.ExitStack,
    port: int | None,
    host: str,
    textfile_dir: str | None,
    interval_s: float,
) -> Any:
    """Start the opt-in Prometheus exporters (closed by ``stack``) before the command starts.

    The textfile is written now (a directory it cannot be written in is refused before the run
    starts), then every ``interval_s`` (the run's flush interval); returned (``None`` without
    one) so that it is written again as soon as the run has started.
    """
    if port is None and not textfile_dir:
        return None
    from greenprint import prometheus

    if port is not None:
        server = stack.enter_context(prometheus.serve(port, host))
        click.echo(f"greenprint: Prometheus metrics at {server.url}", err=True)
    if textfile_dir:
        return stack.enter_context(prometheus.start_textfile(textfile_dir, interval_s=interval_s))
    return None


def _run_command(
    run: Any,
    cmd: tuple[str, ...],
    program: str,
    *,
    quiet: bool,
    stopper: _process.ChildStopper | None = None,
    textfile: Any = None,
) -> int:
    """Start the run and the command, wait for it, stop the run; the exit status to return.

    ``textfile``: the Prometheus textfile exporter, written again once the run has started (its
    first file, written before, held no run: ``greenprint_runs_active 0`` for a flush interval).

    A wall-time budget (``--budget-s``, or the study's ``--study-budget-s``) is checked when
    it runs out, not at the next meter sample (up to ``--sample-interval`` later): a watcher
    thread calls :meth:`Run.check_budgets` then (:func:`_watch_time_budgets`).
    """
    import threading

    run.start()
    if textfile is not None:
        try:
            textfile.write()
        except GreenprintError as e:  # written before the run started: its next try logs too
            click.echo(f"greenprint: {e}", err=True)
    deadline: threading.Event | None = None
    tail = _stderr_tail.StderrTail.open()
    with _process.SignalRelay() as relay:
        try:
            child = _process.start(
                cmd,
                stdout=tail.fd if tail is not None and tail.stdout_too else None,
                stderr=None if tail is None else tail.fd,
            )
        except OSError as e:
            if tail is not None:
                tail.finish()
            why = start_failure(program, e)
            run.stop(status="failed", error=f"could not start {program}: {why}")
            raise ConfigError(f"could not start {program}: {why}") from e
        finally:
            if tail is not None:
                tail.started()
        relay.attach(child)
        if stopper is not None:
            stopper.attach(child, program)
            if run._time_budget_left_s() is not None:  # time is known exactly: no sample
                deadline = threading.Event()
                threading.Thread(
                    target=_watch_time_budgets,
                    args=(run, deadline),
                    name="greenprint-time-budget",
                    daemon=True,
                ).start()
        try:
            returncode = relay.wait(child)
        finally:
            if deadline is not None:
                deadline.set()
            if stopper is not None:
                stopper.close()
            said = tail.finish() if tail is not None else None
        status, error = _outcome(returncode, relay.received, said)
        stopped = stopper.describe() if stopper is not None else None
        if stopper is not None and stopped is not None:  # even if the command then exits 0
            status, error = "interrupted", stopped + _then(stopper.sent[-1], returncode)
        run.stop(status=status, error=error)
    if not quiet:
        try:
            click.echo(format_price_tag(run, error=error), err=True)
        except BrokenPipeError:  # `2>&1 | head`: the reader is gone; the run is recorded and
            drop_stream(sys.stderr)  # greenprint exits with the command's status, not 120
    return _process.exit_status(returncode)


#: Seconds after a wall-time budget runs out that it is checked: over it, not at it.
_DEADLINE_MARGIN_S = 0.005


def _watch_time_budgets(run: Any, done: Any) -> None:
    """Check ``run``'s wall-time budgets as each runs out, until one is crossed or ``done``.

    The run's own time is known exactly; the study's grows by each of its live runs' at once
    (and its other runs' read from the ledger from time to time), so the wait is the least
    that can be left and the check is repeated until the limit is crossed.

    Args:
        run: the running :class:`~greenprint.Run`.
        done: a :class:`threading.Event` set when the command has ended.
    """
    while (left_s := run._time_budget_left_s()) is not None:
        if done.wait(left_s + _DEADLINE_MARGIN_S):
            return
        run.check_budgets()
        if run.over_budget:
            return


def _outcome(
    returncode: int, received: list[int], stderr_tail: bytes | None = None
) -> tuple[str, str | None]:
    """The run's final status and error text from the command's return code.

    A failure (a non-zero exit status, or a death by a signal other than SIGKILL, which nothing
    the command wrote explains) is followed by the line of its stderr that says why
    (:func:`greenprint._stderr_tail.last_line`), passwords in URLs masked: ``"exit status 1:
    ValueError: bad lr"``, as ``gp.track`` records the exception (``"ValueError: bad lr"``). An
    interruption keeps the signal as its reason.

    Args:
        returncode: :attr:`subprocess.Popen.returncode` (negative: killed by that signal).
        received: the signals greenprint received while the command ran.
        stderr_tail: the end of the command's stderr, ``None`` when it was not captured.
    """
    if returncode == 0:
        return "finished", None
    ended = _process.describe_exit(returncode)
    if received:
        return "interrupted", _process.signal_name(received[0]) + _then(received[0], returncode)
    if -returncode in _process.STOP_SIGNALS:
        return "interrupted", ended
    if stderr_tail and -returncode != getattr(signal, "SIGKILL", 9):
        from greenprint.ledger._target import mask_passwords

        line = _stderr_tail.last_line(stderr_tail, mask=mask_passwords)
        if line is not None:
            return "failed", f"{ended}: {line}"
    return "failed", ended


def _then(sent: int, returncode: int) -> str:
    """How the command ended after signal ``sent`` reached it, to follow that signal's name.

    ``", which killed the command"`` when ``sent`` did (said once: "SIGTERM, then killed by
    SIGTERM" said it twice), else ``", then exit status 1"`` or ``", then killed by SIGKILL"``.
    """
    if returncode == -sent:
        return ", which killed the command"
    return f", then {_process.describe_exit(returncode)}"


def format_price_tag(run: Any, *, error: str | None = None) -> str:
    """A short, human price tag of a finished run: energy, CO2-eq, time, and their provenance.

    Args:
        run: the stopped run.
        error: how it went wrong (``"killed by SIGSEGV"``), shown after its status.
    """
    from greenprint._format import format_duration, format_emissions, format_energy

    prov = run.provenance
    g_per_kwh, intensity_source = applied_intensity(
        energy_kwh=run.energy_kwh,
        pue=run.pue,
        emissions_kg=run.emissions_kg,
        recorded_g_per_kwh=run.intensity_g_per_kwh,
        source=prov.get("intensity", "?"),
    )
    intensity = "-" if g_per_kwh is None else f"{g_per_kwh:.0f}"
    parts = [
        # a component at 0 in its neighbours' unit ('gpu 0 µWh' beside 'cpu 1.2 µWh')
        f"{component} {format_energy(kwh, unit_of=(run.energy_kwh or None) if kwh == 0 else None)}"
        f" [{prov.get(component, '?')}]"
        for component, kwh in sorted(run.energy_by_component.items())
    ]
    ledger = run.ledger.url if run.ledger is not None else "(not recorded)"
    if run.ledger is not None and not run._final_written:  # a full disk: kept, see the warnings
        ledger += " (refused the run's final record: kept to be written, see above and below)"
    lines = [
        f"greenprint: run {run.id[:8]} '{safe(run.name)}' (study {safe(run.study)}) {run.status}"
        f"{f' ({error})' if error else ''} in {format_duration(run.duration_s)}",
        f"  energy  {format_energy(run.energy_kwh)}",
        *(f"            {part}" for part in parts),
        f"  CO2-eq  {format_emissions(run.emissions_kg)}",
        f"            intensity {intensity} g CO2-eq/kWh [{intensity_source}]",
        f"            PUE {run.pue:g} [{prov.get('pue', '?')}]",
        f"  ledger  {ledger}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(command())
