"""What the GPU meters say of a GPU, and their fallbacks for one that fails.

Split out of :mod:`greenprint.meters._gpu_meter`: the lines for a visible GPU left out of the
figures (lost, failed to open, refused, reporting nothing) and how a listing's line is told to
be one; a process tree's share of a GPU by the memory its processes hold, and its note; the
provenance without a note that does not apply; and the two fallbacks of a GPU that fails beside
GPUs that still read (its mean power so far, or its TDP). Shared by the NVML and amdsmi meters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

__all__ = [
    "estimate_from_tdp",
    "failed_gpu",
    "go_on_at_mean_power",
    "lost_gpu",
    "memory_share",
    "not_counted",
    "refused_gpu",
    "shared_note",
    "without_attribution_note",
]

logger = logging.getLogger("greenprint.meters._gpu_meter")


_NOT_COUNTED = "reports neither energy nor power: not counted"


_LOST = "has fallen off the bus"


def lost_gpu(index: int, why: str) -> str:
    """The line for a GPU the library cannot open because it is lost (``GPU_IS_LOST``).

    Example:
        >>> lost_gpu(1, "GPU is lost")
        'the GPU at NVML index 1 has fallen off the bus (NVML: GPU is lost): not counted; the others are numbered without it'
    """  # noqa: E501
    return (
        f"the GPU at NVML index {index} {_LOST} (NVML: {why}): not counted; the others are "
        "numbered without it"
    )


_FAILED = "failed to open"


def failed_gpu(label: str, why: str, library: str = "NVML") -> str:
    """The line for a visible GPU whose library calls failed at the start, beside GPUs that work.

    Example:
        >>> failed_gpu("GPU-1", "GPU is lost")
        'GPU-1 failed to open (NVML: GPU is lost): not counted'
    """
    return f"{label} {_FAILED} ({library}: {why}): not counted"


def refused_gpu(label: str, why: str, fix: str) -> str:
    """The line for a visible GPU that opens but refuses its readings, with what helps.

    Example:
        >>> refused_gpu("GPU-0", "its power reading is refused (NVML: ...)", "run as root")
        'GPU-0: its power reading is refused (NVML: ...): not counted (run as root)'
    """
    return f"{label}: {why}: not counted ({fix})"


def _not_counted_line(line: str) -> bool:
    """Whether a listing's line is a visible GPU left out of the figures (see ``left_out``)."""
    if line.endswith(_NOT_COUNTED):
        return True
    if line.startswith("the GPU at ") and _LOST in line:
        return True
    if ": not counted (" in line:  # refused_gpu
        return True
    return f" {_FAILED} (" in line and line.endswith(": not counted")


def not_counted(label: str, name: str) -> str:
    """The line for a visible GPU that reports neither energy nor power.

    ``greenprint hardware`` lists it; a meter of the other GPUs names it in its provenance
    (:attr:`SummedGpuMeter.left_out`), since its energy is missing from the figures.

    Example:
        >>> not_counted("GPU-1", "NVIDIA L4")
        'GPU-1 (NVIDIA L4) reports neither energy nor power: not counted'
    """
    return f"{label} ({name}) {_NOT_COUNTED}"


def without_attribution_note(text: str, meter: Any) -> str:
    """``text``, a GPU's provenance, without the note that ``meter`` did not attribute a GPU.

    For a run of machine scope, which counts every GPU whole: attribution to a process tree
    does not apply there, so "GPU-0 not attributed from the start: ..." would say something
    of a share the run never asked for. ``meter`` is the run's ``gpu`` meter (one vendor's,
    or the vendors' sum, each note after its vendor's name); other text is kept as it is.
    """
    vendors = getattr(meter, "meters", None)
    for one in vendors if isinstance(vendors, list) else [meter]:
        notes = getattr(one, "share_notes", None)
        if not isinstance(notes, list):
            notes = [getattr(one, "unattributed", "")]
        for note in notes:
            if not isinstance(note, str) or not note or note not in text:
                continue
            said = [note]
            if vendors is not None:  # the vendors' sum: "nvml GPU-0 not attributed ..."
                said.insert(0, f"{one.origin.source.split(':', 1)[0]} {note}")
            text = _without(text, said)
    return text


def _without(text: str, said: Sequence[str]) -> str:
    """``text`` without the first of ``said`` found as a note in it."""
    for candidate in said:
        for wrapped in (f" ({candidate})", f"; {candidate}", f"{candidate}; "):
            if wrapped in text:  # the only note, one after others, one before others
                return text.replace(wrapped, "", 1)
    return text


def memory_share(
    label: str,
    vendor: str,
    pid_list: Sequence[int],
    memory: Sequence[float | None],
    pids: frozenset[int],
) -> float | None:
    """This process tree's share of one GPU, by the memory its processes hold there.

    Args:
        label: the GPU, for the log (``"GPU-0"``).
        vendor: the library that listed the processes, for the log (``"NVML"``).
        pid_list: the ids of the processes on the GPU.
        memory: each one's memory on the GPU (any unit), ``None`` (or negative) when unknown.
        pids: the ids of the tree's processes.

    Returns:
        The share in [0, 1]: 0 with no process on the GPU; ``None`` when none of the ids is a
        process of this PID namespace (the GPU cannot be attributed from here).
    """
    if not pid_list:
        return 0.0
    import psutil  # only with a GPU: a run without one never imports psutil on Linux

    if not any(pid in pids or psutil.pid_exists(pid) for pid in pid_list):
        logger.info("%s: %s process ids are not in this PID namespace", label, vendor)
        return None
    if _by_memory(memory):
        weights = [float(m or 0) for m in memory]
    else:
        weights = [1.0] * len(pid_list)
    mine = sum(w for pid, w in zip(pid_list, weights, strict=True) if pid in pids)
    return mine / sum(weights)


def _by_memory(memory: Sequence[float | None]) -> bool:
    """Whether a share is taken by memory (every process's known, some held), else by count."""
    known = [m for m in memory if m is not None and m >= 0]
    return len(known) == len(memory) and bool(sum(known))


def shared_note(label: str, fewest: int, most: int, basis: str) -> str:
    """The provenance's line for a GPU the tree shared with other processes.

    Example:
        >>> shared_note("GPU-0", 1, 3, "GPU memory")
        "GPU-0 shared with up to 3 other processes: this process tree's share by GPU memory"
    """
    count = f"{most}" if fewest == most else f"up to {most}"
    plural = "process" if most == 1 else "processes"
    return f"{label} shared with {count} other {plural}: this process tree's share by {basis}"


def go_on_at_mean_power(gpu: Any, gpus: Sequence[Any], elapsed: float, err: Exception) -> bool:
    """Let ``gpu`` go on at its mean power so far, if other GPUs still read and it read some.

    ``gpu`` (and each of ``gpus``) has ``failed``, ``last_power_w``, ``total_j`` (J) and
    ``label``; ``elapsed``: seconds since the meter started to ``gpu``'s last good read. Sets
    its mean power (W) and why it failed. Shared by the NVML and amdsmi meters.

    Returns:
        False when the whole meter must fail instead (no other GPU left, or no energy read
        yet to take a mean power from).
    """
    if elapsed <= 1e-3 or not any(o is not gpu and not o.failed for o in gpus):
        return False
    gpu.last_power_w = gpu.total_j / elapsed
    gpu.failed = (
        f"failed after {elapsed:.0f} s ({err}): its mean power so far "
        f"({gpu.last_power_w:.0f} W) after"
    )
    logger.warning("%s; the other GPUs go on being read", f"{gpu.label} {gpu.failed}")
    return True


def estimate_from_tdp(gpu: Any, err: Exception, power_w: float, tdp_text: str) -> None:
    """Let ``gpu``, failed at its first read, go on at ``power_w`` (its TDP), full load.

    ``gpu`` has ``failed``, ``estimated``, ``last_power_w``, ``share``, ``name`` and ``label``;
    ``power_w`` is what it draws (W) before its ``share`` is applied; ``tdp_text`` names the
    share's TDP (W) and its source. Shared by the NVML and amdsmi meters.
    """
    gpu.last_power_w = power_w
    gpu.estimated = True
    why = str(err).removeprefix(f"{gpu.label}: ")
    gpu.failed = (
        f"failed at its first read ({why}): estimated from its TDP, {gpu.name} {tdp_text}, "
        "utilisation unknown: full load"
    )
    logger.warning("%s %s; the other GPUs are measured", gpu.label, gpu.failed)
