"""``powermetrics`` output read into samples: plists (``-f plist``) and the default text.

Split out of :mod:`greenprint.meters._apple` (which runs the process and meters from these
samples): one :class:`PowermetricsSample` per interval, energy in J per component. Pure
parsing, no process: what the tests replay recorded output through.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PowermetricsSample",
    "parse_powermetrics_plist",
    "parse_powermetrics_text",
    "sample_from_plist",
]

logger = logging.getLogger("greenprint.meters._apple")


@dataclass(frozen=True)
class PowermetricsSample:
    """One ``powermetrics`` sample.

    Attributes:
        elapsed_s: the interval it covers, in s.
        cpu_j: CPU energy over the interval, in J.
        gpu_j: GPU energy over the interval, in J.
        ane_j: Neural Engine energy over the interval, in J.
    """

    elapsed_s: float
    cpu_j: float
    gpu_j: float
    ane_j: float

    def energy_j(self, component: str) -> float:
        """Energy of ``"cpu"`` or ``"gpu"`` (GPU + Neural Engine) over the interval, in J."""
        return self.cpu_j if component == "cpu" else self.gpu_j + self.ane_j

    def power_w(self, component: str) -> float:
        """Mean power of ``"cpu"`` or ``"gpu"`` over the interval, in W."""
        return self.energy_j(component) / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value >= 0 else None


def sample_from_plist(data: Mapping[str, Any]) -> PowermetricsSample | None:
    """A sample from one parsed plist, or ``None`` when it holds no CPU figure.

    Power in mW times ``elapsed_ns`` is preferred; energy in mJ is the fallback (macOS 12).
    """
    elapsed_ns = _number(data.get("elapsed_ns"))
    processor = data.get("processor")
    if elapsed_ns is None or elapsed_ns <= 0 or not isinstance(processor, Mapping):
        return None
    elapsed_s = elapsed_ns / 1e9
    gpu_section = data.get("gpu")
    gpu_dict: Mapping[str, Any] = gpu_section if isinstance(gpu_section, Mapping) else {}

    def joules(unit: str, *sources: Mapping[str, Any]) -> float | None:
        for source in sources:
            mw = _number(source.get(f"{unit}_power"))
            if mw is not None:
                return mw / 1000.0 * elapsed_s
        for source in sources:
            mj = _number(source.get(f"{unit}_energy"))
            if mj is not None:
                return mj / 1000.0
        return None

    cpu = joules("cpu", processor)
    if cpu is None:
        return None
    gpu = joules("gpu", processor, gpu_dict)
    ane = joules("ane", processor)
    return PowermetricsSample(elapsed_s, cpu, gpu or 0.0, ane or 0.0)


def parse_powermetrics_plist(data: bytes) -> tuple[list[PowermetricsSample], bytes]:
    """Samples from ``powermetrics -f plist`` output: plists, each followed by a NUL byte.

    Args:
        data: the bytes read so far (may end in the middle of a plist).

    Returns:
        The samples of every complete plist, and the bytes after the last NUL (the start of
        the next one). A plist is complete at its NUL, or at its closing ``</plist>`` if the
        NUL has not come yet. A complete plist that does not parse, or holds no CPU figure, is
        skipped and logged.
    """
    import plistlib  # only where powermetrics runs: keeps detection light elsewhere
    from xml.parsers.expat import ExpatError

    *chunks, rest = data.split(b"\x00")
    if rest.rstrip().endswith(b"</plist>"):
        chunks.append(rest)
        rest = b""
    samples = []
    for chunk in chunks:
        if not chunk.strip():
            continue
        try:
            parsed = plistlib.loads(chunk.strip())
        except (plistlib.InvalidFileException, ExpatError, ValueError, TypeError) as e:
            logger.info("powermetrics sent a plist that does not parse: %s", e)
            continue
        sample = sample_from_plist(parsed) if isinstance(parsed, Mapping) else None
        if sample is None:
            logger.info("powermetrics sent a sample with no CPU power; skipped")
            continue
        samples.append(sample)
    return samples, rest


_HEADER = re.compile(r"^\*\*\* Sampled system activity \(.*\) \((?P<ms>[\d.]+)ms elapsed\) \*\*\*")


_POWER_LINE = re.compile(r"^(?P<unit>CPU|GPU|ANE) Power:\s*(?P<mw>[\d.]+)\s*mW\s*$")


def parse_powermetrics_text(text: str) -> list[PowermetricsSample]:
    """Samples from ``powermetrics`` text output (the default format).

    Each sample starts with ``*** Sampled system activity (<date>) (<ms>ms elapsed) ***`` and
    has ``CPU Power: <mW> mW``, ``GPU Power: <mW> mW`` and ``ANE Power: <mW> mW`` lines (the
    GPU line is repeated in the GPU section; the first of each counts). A sample without a CPU
    line is skipped.
    """
    samples: list[PowermetricsSample] = []
    elapsed_s: float | None = None
    powers: dict[str, float] = {}

    def flush() -> None:
        if elapsed_s is not None and "CPU" in powers:
            samples.append(
                PowermetricsSample(
                    elapsed_s,
                    powers["CPU"] / 1000.0 * elapsed_s,
                    powers.get("GPU", 0.0) / 1000.0 * elapsed_s,
                    powers.get("ANE", 0.0) / 1000.0 * elapsed_s,
                )
            )

    for line in text.splitlines():
        header = _HEADER.match(line.strip())
        if header:
            flush()
            elapsed_s, powers = float(header["ms"]) / 1000.0, {}
            continue
        power = _POWER_LINE.match(line.strip())
        if power and elapsed_s is not None:
            powers.setdefault(power["unit"], float(power["mw"]))
    flush()
    return samples
