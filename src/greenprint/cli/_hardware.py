"""``greenprint hardware [--json]``: this machine, and which meters work here (and how to fix)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from greenprint._format import count_of

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._provenance import Provenance
    from greenprint.hardware import HardwareInfo

__all__ = ["command", "hardware_report"]


def _detect() -> tuple[HardwareInfo, dict[str, Provenance]]:
    """The hardware and, per component, where the meter chosen for it gets its figures."""
    from greenprint.hardware import detect_hardware  # keep --help fast
    from greenprint.meters import detect_meters
    from greenprint.meters._discovery import with_configured_tdp
    from greenprint.meters._estimate import configured_cpu_tdp

    hw = detect_hardware()
    meters = detect_meters(hardware=hw)
    # its estimate:cpu entry gives the configured TDP, as the meters take it (not the table's)
    hw = with_configured_tdp(hw, configured_cpu_tdp())
    try:
        in_use = {component: meters.meter(component).origin for component in meters.components}
    finally:
        meters.close()
    return hw, in_use


def _as_dict(hw: HardwareInfo, in_use: dict[str, Provenance]) -> dict[str, Any]:
    report = hw.to_dict()
    report.update(_estimate_tdp(hw))  # beside cpu_tdp_w (the table's: null when not in it)
    report["in_use"] = {component: str(origin) for component, origin in in_use.items()}
    return report


def _estimate_tdp(hw: HardwareInfo) -> dict[str, Any]:
    """The TDP the CPU estimate uses here, and where it came from, as the meters take it.

    ``cpu_tdp_w`` is the shipped table's figure per socket, ``null`` for a model not in it,
    while the estimate then uses the per-core default (or a configured ``cpu_tdp_w``, which
    wins over both): ``cpu_estimate_tdp_w`` (the whole machine's, all sockets),
    ``cpu_estimate_tdp_source`` (``"table:<row>"``, ``"default-per-core"`` or
    ``"configured:<setting>"``, e.g. ``"configured:env:GREENPRINT_CPU_TDP_W"``) and
    ``cpu_estimate_tdp_detail`` (how it was reached: ``"4 W/core x 2; ..."``).
    """
    from greenprint.meters._discovery import cpu_estimate_for
    from greenprint.meters._estimate import CpuEstimateMeter, configured_cpu_tdp

    configured = configured_cpu_tdp()
    meter = cpu_estimate_for(hw, configured=configured)
    assert isinstance(meter, CpuEstimateMeter)
    origin = meter.origin
    if configured is not None:
        source = f"configured:{configured[1]}"
    elif origin.source.startswith("tdp:"):
        source = "table:" + origin.source.removeprefix("tdp:")
    else:
        source = origin.source  # "default-per-core"
    return {
        "cpu_estimate_tdp_w": round(meter.tdp_w, 6),
        "cpu_estimate_tdp_source": source,
        "cpu_estimate_tdp_detail": origin.detail,
    }


def hardware_report() -> dict[str, Any]:
    """The hardware as a dict, plus ``"in_use"``: component -> provenance of the chosen meter."""
    return _as_dict(*_detect())


def _text(hw: HardwareInfo, in_use: dict[str, Provenance]) -> str:
    report = _as_dict(hw, in_use)
    lines = [
        f"CPU       {report['cpu_model']}",
        f"          {count_of(report['sockets'], 'socket')}, "
        f"{count_of(report['physical_cores'], 'physical core')}, "
        f"{count_of(report['logical_cores'], 'logical CPU')}",
        f"RAM       {report['ram_gb']:.1f} GB",
    ]
    gpus = report["gpus"]
    if not gpus and "gpu" in in_use:  # an Intel card (hwmon) or Apple silicon (powermetrics)
        lines.append(f"GPUs      none listed by NVML or amdsmi; gpu metered by {in_use['gpu']}")
    elif not gpus:
        lines.append("GPUs      none visible")
    for i, gpu in enumerate(gpus):
        counter = "energy counter" if gpu["has_energy_counter"] else "no energy counter"
        vendor = "AMD " if gpu.get("vendor") == "amd" else ""  # amdsmi numbers its own GPUs
        lines.append(
            f"{'GPUs' if i == 0 else '':<10}{vendor}GPU-{gpu['index']} {gpu['name']}, "
            f"{gpu['memory_gb']:.0f} GB, {counter} ({gpu['uuid']})"
        )
    configured = None
    cpu = in_use.get("cpu")
    if cpu is not None and cpu.is_estimate and cpu.source == "configured-tdp":
        from greenprint.meters._estimate import configured_cpu_tdp

        configured = configured_cpu_tdp()
    if configured is not None:
        from greenprint.meters._discovery import configured_instead

        watts, source = configured
        lines.append(
            f"CPU TDP   {watts:g} W configured ({source}), used instead of {configured_instead(hw)}"
        )
    elif hw.cpu_tdp_w is not None:
        row = hw.cpu_tdp_origin.source
        lines.append(f"CPU TDP   {hw.cpu_tdp_w:g} W per socket (shipped table: {row})")
    else:
        lines.append("CPU TDP   not in the shipped table: per-core default (see estimate:cpu)")
    lines += ["", "Meters"]
    width = max(len(m["name"]) for m in report["meters"]) + 2
    for m in report["meters"]:
        lines.append(f"  {m['name']:<{width}}{'yes' if m['usable'] else 'no':<5}{m['reason']}")
        if m["fix"]:
            lines.append(f"  {'':<{width}}{'':<5}fix: {m['fix']}")
    lines += ["", "In use"]
    for component, provenance in report["in_use"].items():
        lines.append(f"  {component:<5}{provenance}")
    return "\n".join(lines)


@click.command("hardware")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def command(as_json: bool) -> None:
    """Show this machine's hardware and which energy meters work here.

    For each meter: usable or not, why, and the exact fix (file permissions, driver, package).
    """
    hw, in_use = _detect()
    if as_json:
        click.echo(json.dumps(_as_dict(hw, in_use), indent=2))
    else:
        click.echo(_text(hw, in_use))
