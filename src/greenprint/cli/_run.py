"""``greenprint run -- CMD ...``: track a command's whole process tree."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from typing import Any

import click

from greenprint._exceptions import ConfigError
from greenprint.cli._common import ledger_option, study_option

__all__ = ["command", "format_price_tag"]


@click.command(
    "run",
    context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False},
)
@click.option("--name", default=None, help="Run name [default: the command's program name].")
@study_option
@ledger_option
@click.option("--region", default=None, help="Grid region, e.g. DE, US-CA, aws:eu-west-1.")
@click.option(
    "--intensity",
    default=None,
    metavar="G_PER_KWH|CSV",
    help="Grid intensity in g CO2-eq/kWh, or an hourly CSV (timestamp,g_per_kwh).",
)
@click.option("--pue", default=None, metavar="PUE|PRESET", help="Data-centre PUE [default: 1.0].")
@click.option(
    "--scope",
    type=click.Choice(["process", "machine"]),
    default="process",
    show_default=True,
    help="Attribute energy to the command's process tree, or record the whole machine.",
)
@click.option("--sample-interval", "sample_s", type=float, default=1.0, show_default=True)
@click.option("--flush-interval", "flush_s", type=float, default=10.0, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="Do not print the price tag.")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def command(
    name: str | None,
    study: str | None,
    ledger: str | None,
    region: str | None,
    intensity: str | None,
    pue: str | None,
    scope: str,
    sample_s: float,
    flush_s: float,
    quiet: bool,
    cmd: tuple[str, ...],
) -> int:
    """Run CMD, measuring its energy, CO2-eq and time, and record it in the ledger.

    The command's exit status is passed through (128+N if a signal N ended it). SIGINT and
    SIGTERM are forwarded to it; the run is then recorded as interrupted, with its cost so far.

    Example: greenprint run --study sweep --region DE -- python train.py --lr 0.1
    """
    from greenprint.tracking import track

    program = cmd[0]
    if shutil.which(program) is None:
        raise ConfigError(f"command not found: {program}")
    run = track(
        name or program.rsplit("/", 1)[-1],
        study=study,
        ledger=ledger,
        region=region,
        intensity=intensity,
        pue=pue,
        scope=scope,  # type: ignore[arg-type]
        command=subprocess.list2cmdline(cmd),
        sample_interval_s=sample_s,
        flush_interval_s=flush_s,
    )
    run.start()
    forwarded: list[int] = []
    try:
        child = subprocess.Popen(list(cmd))
    except OSError as e:
        run.stop(status="failed", error=f"could not start {program}: {e}")
        raise ConfigError(f"could not start {program}: {e}") from e

    def forward(signum: int, frame: Any) -> None:
        forwarded.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if returncode == 0:
        run.stop(status="finished")
    elif forwarded or returncode in (-signal.SIGINT, -signal.SIGTERM):
        sig_name = signal.Signals(forwarded[0] if forwarded else -returncode).name
        run.stop(status="interrupted", error=f"{sig_name} (exit status {returncode})")
    else:
        run.stop(status="failed", error=f"exit status {returncode}")
    if not quiet:
        click.echo(format_price_tag(run), err=True)
    return 128 - returncode if returncode < 0 else returncode


def format_price_tag(run: Any) -> str:
    """A short, human price tag of a finished run: energy, CO2-eq, time, and their provenance."""
    from greenprint._format import format_duration, format_emissions, format_energy

    prov = run.provenance
    parts = [
        f"{component} {format_energy(kwh)} [{prov.get(component, '?')}]"
        for component, kwh in sorted(run.energy_by_component.items())
    ]
    ledger = run.ledger.url if run.ledger is not None else "(not recorded)"
    lines = [
        f"greenprint: run {run.id[:8]} '{run.name}' (study {run.study}) {run.status} "
        f"in {format_duration(run.duration_s)}",
        f"  energy  {format_energy(run.energy_kwh)}",
        *(f"            {part}" for part in parts),
        f"  CO2-eq  {format_emissions(run.emissions_kg)}",
        f"            intensity {run.intensity_g_per_kwh:.0f} g/kWh [{prov.get('intensity', '?')}]",
        f"            PUE {run.pue:g} [{prov.get('pue', '?')}]",
        f"  ledger  {ledger}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(command())
