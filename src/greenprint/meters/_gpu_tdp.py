"""The GPU TDP model: the shipped table, its matching rules, and the TDP x utilisation meter.

Apart from :mod:`greenprint.meters._gpu_estimate` (which finds the GPUs no meter reads, through
NVML, the NVIDIA driver's listing and amdgpu's sysfs) so that the vendor meters can model their
own GPUs from their names (a meter that fails before its first read) without importing what
imports them. See :mod:`greenprint.meters._gpu_estimate` for the model and its sources.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from greenprint._provenance import Provenance
from greenprint.meters._base import Meter, MeterReading

__all__ = [
    "DEFAULT_GPU_TDP_W",
    "EstimatedGpu",
    "GPU_IDLE_FRACTION",
    "GpuTdpEstimateMeter",
    "GpuTdpMatch",
    "busy_fraction",
    "gpu_key",
    "gpu_tokens",
    "match_gpu_tdp",
    "tdp_for",
]

logger = logging.getLogger(__name__)

#: Idle floor of the model as a fraction of TDP: the CPU model's 10 %.
GPU_IDLE_FRACTION = 0.10
#: TDP when neither a power limit nor the table gives one, in W: the median of the table's vendor
#: rows (the whole table's is 250 W); A100 PCIe 80GB, V100 SXM2, A40, L40, MI210.
DEFAULT_GPU_TDP_W = 300.0
_DROP = {"nvidia", "amd", "geforce", "tesla", "instinct", "radeon", "quadro", "generation", "gpu"}
_SOURCE_RANK = {"vendor": 0, "green-algorithms": 1, "mlco2": 2}
#: Words of a GPU name that do not change its TDP: memory sizes and types.
_NOISE = re.compile(r"\d+gb?|hbm\d*e?")


def gpu_tokens(name: str) -> tuple[str, ...]:
    """The identifying words of a GPU name, lower case, brand words dropped.

    Example:
        >>> gpu_tokens("NVIDIA A100-SXM4-40GB")
        ('a100', 'sxm4', '40gb')
    """
    return tuple(t for t in re.findall(r"[a-z0-9]+", name.lower()) if t not in _DROP)


def gpu_key(name: str) -> str:
    """The table key of a name: its :func:`gpu_tokens`, sorted, space-joined."""
    return " ".join(sorted(gpu_tokens(name)))


@dataclass(frozen=True)
class GpuTdpMatch:
    """A row of the GPU TDP table.

    Attributes:
        model: the table's name for it.
        tdp_w: board power in W (per package for MI250/MI250X).
        source: ``"vendor"``, ``"green-algorithms"`` or ``"mlco2"``.
        url: where the figure comes from.
    """

    model: str
    tdp_w: float
    source: str
    url: str


@functools.cache
def _table() -> tuple[tuple[frozenset[str], GpuTdpMatch], ...]:
    from importlib import resources  # with a GPU only: it imports tempfile, shutil, zipfile...

    text = resources.files("greenprint.meters").joinpath("data/gpu_tdp.csv").read_text("utf-8")
    rows = []
    for row in csv.DictReader(text.splitlines()):
        match = GpuTdpMatch(row["model"], float(row["tdp_w"]), row["source"], row["url"])
        rows.append((frozenset(gpu_tokens(row["model"])), match))
    return tuple(rows)


def match_gpu_tdp(name: str) -> GpuTdpMatch | None:
    """The table row for a GPU name as NVML or amdsmi reports it, or ``None``.

    A row matches when every one of its words is in the name. The name's other words must be
    memory sizes (``40gb``, ``hbm3``) or words of another matching row (``MI250X / MI250``):
    ``RTX 3090 Ti`` is not ``RTX 3090``, ``P100-SXM2`` is not the generic ``P100``. The vendor's
    rows come first, then the most specific (most words); two best rows with different TDPs
    match nothing.

    Example:
        >>> match_gpu_tdp("NVIDIA A100-SXM4-40GB").tdp_w
        400.0
    """
    query = set(gpu_tokens(name))
    if not query:
        return None
    found = [
        (_SOURCE_RANK.get(m.source, 9), -len(words), m)
        for words, m in _table()
        if words and words <= query
    ]
    if not found:
        return None
    covered = set().union(*(gpu_tokens(m.model) for _, _, m in found))
    if any(not _NOISE.fullmatch(word) for word in query - covered):
        return None
    found.sort(key=lambda f: (f[0], f[1]))
    best = [m for rank, size, m in found if (rank, size) == found[0][:2]]
    if len({m.tdp_w for m in best}) > 1:
        return None
    return best[0]


@dataclass
class EstimatedGpu:
    """One GPU the estimate models.

    Attributes:
        label: ``"GPU-0"``.
        name: model name.
        tdp_w: power at full load, in W.
        tdp_source: where ``tdp_w`` came from: ``"power-limit"``, ``"table:<row>"``,
            ``"default"``.
        utilisation: returns the busy fraction in [0, 1] now, or ``None`` when unknown
            (then 1 is used); ``None`` for a GPU with no utilisation source at all.
        utilisation_source: ``"nvml"``, ``"sysfs"`` or ``""``.
        reads: utilisation reads made by the estimate.
        unknown_reads: those that gave no valid figure (full load used).
        counted: which GPUs were counted with this one and why, for the provenance (``""``:
            not said; see :func:`greenprint.meters._gpu_estimate.visible_nvidia_proc_gpus`).
    """

    label: str
    name: str
    tdp_w: float
    tdp_source: str
    utilisation: Callable[[], float | None] | None = None
    utilisation_source: str = ""
    reads: int = 0
    unknown_reads: int = 0
    counted: str = ""

    @property
    def utilisation_note(self) -> str:
        """Where utilisation came from, for the provenance.

        ``"utilisation nvml"``, ``"utilisation unknown: full load"``, or with missing reads
        ``"utilisation sysfs, unknown in 3 of 10 reads: full load then"``.
        """
        if not self.utilisation_source:
            return "utilisation unknown: full load"
        if self.unknown_reads:
            return (
                f"utilisation {self.utilisation_source}, unknown in {self.unknown_reads} of "
                f"{self.reads} reads: full load then"
            )
        return f"utilisation {self.utilisation_source}"


def busy_fraction(value: object) -> float | None:
    """A busy percentage as a fraction in [0, 1], or ``None`` when it is not a valid one.

    Valid: a whole number of percent in [0, 100], as an int or its decimal text. ``65535``
    (0xFFFF, what amdgpu's ``gpu_busy_percent`` reads when the firmware has no figure),
    negative numbers, fractions, booleans and anything else are missing values.

    Example:
        >>> busy_fraction(" 40 "), busy_fraction("65535"), busy_fraction("0xFFFF")
        (0.4, None, None)
    """
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isdigit() and text.isascii() else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value / 100.0 if 0 <= value <= 100 else None


def tdp_for(name: str, *, limit_w: float | None = None) -> tuple[float, str]:
    """``(W, source)`` for a GPU: its power limit, else the table, else the default."""
    if limit_w is not None and limit_w > 0:
        return float(limit_w), "power-limit"
    match = match_gpu_tdp(name)
    if match is not None:
        per_device = match.tdp_w / 2 if "MI250" in name.upper() else match.tdp_w
        return per_device, f"table:{match.model}"
    return DEFAULT_GPU_TDP_W, "default"


class GpuTdpEstimateMeter(Meter):
    """Modelled energy of GPUs that are present but cannot be metered.

    Args:
        gpus: the GPUs modelled.
        clock: monotonic clock in s.
        idle_fraction: idle floor as a fraction of each TDP.
        close: called once by :meth:`close` (to shut NVML down), or ``None``.
        started_at: clock time energy is counted from (default: when :meth:`start` is called;
            a meter taking over from a failed one starts at its last good read).
    """

    component = "gpu"

    def __init__(
        self,
        gpus: Sequence[EstimatedGpu],
        *,
        clock: Callable[[], float] = time.monotonic,
        idle_fraction: float = GPU_IDLE_FRACTION,
        close: Callable[[], None] | None = None,
        started_at: float | None = None,
    ) -> None:
        self.gpus = list(gpus)
        self._started_at = started_at
        self._clock = clock
        self._idle_fraction = idle_fraction
        self._close = close
        self._machine_j = 0.0
        self._t_last = 0.0
        self._last_w: list[float] = []

    @property
    def origin(self) -> Provenance:
        """``estimate:gpu-tdp:GPU-0 (NVIDIA A100-PCIE-40GB 250 W table:..., utilisation nvml)``."""
        labels = "+".join(g.label for g in self.gpus)
        parts = [
            f"{g.label} {g.name} {g.tdp_w:g} W {g.tdp_source}, {g.utilisation_note}"
            for g in self.gpus
        ]
        parts.extend(dict.fromkeys(g.counted for g in self.gpus if g.counted))
        detail = "; ".join(parts)
        return Provenance("estimate", f"gpu-tdp:{labels}", detail)

    @property
    def provenance(self) -> str:
        """See :attr:`origin`."""
        return str(self.origin)

    def power_w(self) -> list[float]:
        """Modelled power of each GPU now, in W.

        The utilisation readers return ``None`` when they cannot read; that counts as full load.
        """
        out = []
        for g in self.gpus:
            u = None
            if g.utilisation is not None:
                u = g.utilisation()  # readers never raise
                g.reads += 1
                if u is None or not 0.0 <= u <= 1.0:
                    g.unknown_reads += 1
                    u = None
            u = 1.0 if u is None else u
            idle = self._idle_fraction * g.tdp_w
            out.append(idle + (g.tdp_w - idle) * u)
        return out

    def start(self) -> None:
        """Take the first power sample."""
        self._t_last = self._clock() if self._started_at is None else self._started_at
        self._last_w = self.power_w()
        self._machine_j = 0.0

    def read(self) -> MeterReading:
        """Cumulative modelled energy since :meth:`start`, in J (never raises)."""
        if not self._last_w:
            self.start()
        now = self._clock()
        power = self.power_w()
        dt = max(now - self._t_last, 0.0)
        self._machine_j += sum(0.5 * (a + b) * dt for a, b in zip(power, self._last_w, strict=True))
        self._t_last, self._last_w = now, power
        return MeterReading(self._machine_j, None)

    def close(self) -> None:
        """Release what the utilisation sources hold (once)."""
        close, self._close = self._close, None
        if close is not None:
            close()
