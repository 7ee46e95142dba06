"""Build greenprint's GPU TDP table (``src/greenprint/meters/data/gpu_tdp.csv``).

Three sources, the first that has a model wins:

1. **vendor**: the rows in :data:`VENDOR_ROWS` below, each the board power NVIDIA, AMD or
   Intel publish on the product page cited beside it (entered by hand; the data-centre parts ML
   runs on);
2. **green-algorithms**: ``data/latest/TDP_gpu.csv`` of GreenAlgorithms/green-algorithms-tool
   (CC BY 4.0, Lannelongue et al., *Advanced Science* 2021);
3. **mlco2**: ``data/gpus.csv`` of mlco2/impact, the ML CO2 Impact calculator (MIT; Lacoste et
   al., "Quantifying the Carbon Emissions of Machine Learning", 2019), rows of type ``gpu``.

Rebuild (the two files from the repositories at the commits named in ``SOURCES.md``)::

    git -C green-algorithms-tool show HEAD:data/latest/TDP_gpu.csv > /tmp/ga_TDP_gpu.csv
    git -C impact show HEAD:data/gpus.csv > /tmp/mlco2_gpus.csv
    python scripts/build_gpu_tdp_table.py /tmp/ga_TDP_gpu.csv /tmp/mlco2_gpus.csv

Columns: ``model`` (display name), ``tdp_w`` (W per board; per package for MI250/MI250X, which
greenprint halves per GCD), ``source`` (``vendor``, ``green-algorithms`` or ``mlco2``) and ``url``.
Names are cleaned (whitespace, a leading ``NVIDIA``/``AMD`` added where the source omits it);
rows whose TDP is not one positive number, that name no single model (``Any``) or a TPU are
dropped;
duplicates after cleaning keep the row of the better source. Every step is counted and printed.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from greenprint.meters._gpu_estimate import gpu_key  # noqa: E402

DEFAULT_OUT = ROOT / "src/greenprint/meters/data/gpu_tdp.csv"
_NUMBER = re.compile(r"\d+(?:\.\d+)?")

_H100 = "https://www.nvidia.com/en-us/data-center/h100/"
_H200 = "https://www.nvidia.com/en-us/data-center/h200/"
_A100 = "https://www.nvidia.com/en-us/data-center/a100/"
_V100 = "https://www.nvidia.com/en-us/data-center/v100/"
_MI300 = "https://www.amd.com/en/products/accelerators/instinct/mi300"
_MI200 = "https://www.amd.com/en/products/accelerators/instinct/mi200"
_ARC = "https://www.intel.com/content/www/us/en/products/details/discrete-gpus/arc.html"
_MAX = (
    "https://www.intel.com/content/www/us/en/products/details/discrete-gpus/data-center-gpu/"
    "max-series.html"
)

#: (model, W, page): maximum board power as the vendor's product page gives it.
VENDOR_ROWS: list[tuple[str, float, str]] = [
    ("NVIDIA B200", 1000, "https://www.nvidia.com/en-us/data-center/hgx/"),
    ("NVIDIA H200", 700, _H200),  # SXM
    ("NVIDIA H200 NVL", 600, _H200),
    ("NVIDIA H100 80GB HBM3", 700, _H100),  # SXM5, as NVML names it
    ("NVIDIA H100 SXM5", 700, _H100),
    ("NVIDIA H100 PCIe", 350, _H100),
    ("NVIDIA H100 NVL", 400, _H100),
    ("NVIDIA A100 SXM4", 400, _A100),
    ("NVIDIA A100 PCIe 40GB", 250, _A100),
    ("NVIDIA A100 80GB PCIe", 300, _A100),
    ("NVIDIA A30", 165, "https://www.nvidia.com/en-us/data-center/products/a30-gpu/"),
    ("NVIDIA A10", 150, "https://www.nvidia.com/en-us/data-center/products/a10-gpu/"),
    ("NVIDIA A40", 300, "https://www.nvidia.com/en-us/data-center/a40/"),
    ("NVIDIA L4", 72, "https://www.nvidia.com/en-us/data-center/l4/"),
    ("NVIDIA L40", 300, "https://www.nvidia.com/en-us/data-center/l40/"),
    ("NVIDIA L40S", 350, "https://www.nvidia.com/en-us/data-center/l40s/"),
    ("NVIDIA T4", 70, "https://www.nvidia.com/en-us/data-center/tesla-t4/"),
    ("NVIDIA V100 SXM2", 300, _V100),
    ("NVIDIA V100 PCIe", 250, _V100),
    ("NVIDIA V100S PCIe", 250, _V100),
    ("NVIDIA RTX A6000", 300, "https://www.nvidia.com/en-us/design-visualization/rtx-a6000/"),
    ("NVIDIA RTX 6000 Ada Generation", 300, "https://www.nvidia.com/en-us/design-visualization/rtx-6000/"),
    ("NVIDIA GeForce RTX 4090", 450, "https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/rtx-4090/"),
    ("NVIDIA GeForce RTX 3090", 350, "https://www.nvidia.com/en-us/geforce/graphics-cards/30-series/rtx-3090-3090ti/"),
    ("AMD Instinct MI325X", 1000, f"{_MI300}/mi325x.html"),
    ("AMD Instinct MI300X", 750, f"{_MI300}/mi300x.html"),
    ("AMD Instinct MI300A", 550, f"{_MI300}/mi300a.html"),
    ("AMD Instinct MI250X", 560, f"{_MI200}/mi250x.html"),
    ("AMD Instinct MI250", 560, f"{_MI200}/mi250.html"),
    ("AMD Instinct MI210", 300, f"{_MI200}/mi210.html"),
    # Intel: total board power; named as greenprint names a card from pci.ids ("Intel " + the
    # bracketed name), for discrete cards without an energy counter (meters/_intel_gpu.py)
    ("Intel Arc A770", 225, _ARC),
    ("Intel Arc A750", 225, _ARC),
    ("Intel Arc B580", 190, _ARC),
    ("Intel Arc B570", 150, _ARC),
    ("Intel Data Center GPU Max 1550", 600, _MAX),
    ("Intel Data Center GPU Max 1100", 300, _MAX),
    ("AMD Instinct MI100", 300, "https://www.amd.com/en/products/accelerators/instinct/mi100.html"),
]  # fmt: skip

_BRANDS = {"tesla", "titan", "quadro", "geforce", "gtx", "rtx", "jetson", "a100", "t4", "l4"}


def clean_name(raw: str) -> str:
    """The model name with whitespace collapsed and the vendor prefixed where missing."""
    name = " ".join(raw.replace("\xa0", " ").split())
    low = name.lower()
    if low.startswith(("nvidia ", "amd ", "intel ")):
        return name
    if low.startswith(("amd", "radeon", "rx")):
        return name if low.startswith("amd") else f"AMD {name}"
    first = low.split(" ", 1)[0]
    if first in _BRANDS or first[:1] in "aghktlpv" and any(c.isdigit() for c in first):
        return f"NVIDIA {name}"
    return name


def read_rows(text: str, *, name_col: str, tdp_col: str, kind_col: str | None = None):
    """``(name, tdp_text, url)`` of each row (Green Algorithms' file has a units line first)."""
    lines = text.splitlines()
    if lines and lines[0].lower().startswith("index,"):
        lines = lines[1:]
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        if kind_col and (row.get(kind_col) or "").strip() != "gpu":
            continue
        yield (
            (row.get(name_col) or ""),
            (row.get(tdp_col) or "").strip(),
            (row.get("source") or "").strip(),
        )


def build(ga_text: str, mlco2_text: str) -> tuple[list[tuple[str, float, str, str]], dict]:
    """Merge the sources; return ``(rows, counts)``."""
    counts = {"vendor": 0, "green-algorithms": 0, "mlco2": 0, "bad_tdp": 0, "not_gpu": 0}
    counts["shadowed"] = 0
    best: dict[str, tuple[str, float, str, str]] = {}
    for name, watts, url in VENDOR_ROWS:
        best[gpu_key(name)] = (name, float(watts), "vendor", url)
        counts["vendor"] += 1
    for source, rows in (
        ("green-algorithms", read_rows(ga_text, name_col="model", tdp_col="TDP")),
        ("mlco2", read_rows(mlco2_text, name_col="name", tdp_col="tdp_watts", kind_col="type")),
    ):
        for raw, tdp_text, url in rows:
            name = clean_name(raw)
            if not _NUMBER.fullmatch(tdp_text) or float(tdp_text) <= 0 or name.lower() == "any":
                counts["bad_tdp"] += 1
                continue
            if name.upper().startswith("TPU"):  # not a GPU: greenprint meters no TPU
                counts["not_gpu"] += 1
                continue
            key = gpu_key(name)
            if key in best:
                counts["shadowed"] += 1
                continue
            best[key] = (name, float(tdp_text), source, url)
            counts[source] += 1
    rows = sorted(best.values(), key=lambda r: r[0].lower())
    return rows, counts


def main(argv: list[str] | None = None) -> int:
    """Build the table and print what each step did."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("green_algorithms_csv", type=Path)
    parser.add_argument("mlco2_csv", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    rows, counts = build(
        args.green_algorithms_csv.read_text(encoding="utf-8"),
        args.mlco2_csv.read_text(encoding="utf-8"),
    )
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["model", "tdp_w", "source", "url"])
        for name, watts, source, url in rows:
            writer.writerow([name, f"{watts:g}", source, url])
    print(f"rows: {counts} -> {len(rows)} written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
