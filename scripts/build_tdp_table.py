"""Build greenprint's CPU TDP table from codecarbon's MIT-licensed ``cpu_power.csv``.

greenprint ships its own compact copy (``src/greenprint/meters/data/cpu_tdp.csv``) and never
imports codecarbon. Rebuild it with::

    cd /tmp && pip download --no-deps codecarbon==3.3.2
    python scripts/build_tdp_table.py /tmp/codecarbon-3.3.2-py3-none-any.whl

The source may be the wheel itself or the extracted ``codecarbon/data/hardware/cpu_power.csv``.

Cleaning (each step is counted and printed):

* names: Unicode NFKC, no-break and zero-width spaces to spaces, ``®``/``™`` removed, any
  parenthesised note removed (``(OEM Only)``, ``(AF)``, ``(95W)``, ``(9M Cache, ...)``), a
  trailing ``includes ...`` clause, ``Microsoft Surface Edition`` and the word ``Processor``
  removed, whitespace collapsed;
* TDP values that are not one positive number (``27.29.5``, ``0``) are dropped;
* generic, non-identifying names (``ARMv8 ...``) are dropped;
* names that become identical after cleaning keep the highest TDP (variants of the same part,
  e.g. a 95 W and a 125 W stepping of a Phenom II: the higher figure is the conservative one).

Columns: ``model`` (display name), ``tdp_w`` (W per socket) and ``key``: the name as
:func:`greenprint.meters._tdp.normalise_cpu_model` normalises it, written only where it differs
from the plain lower-cased name, so that loading the table needs no regular expressions.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import unicodedata
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from greenprint.meters._tdp import light_key, normalise_cpu_model  # noqa: E402

MEMBER = "codecarbon/data/hardware/cpu_power.csv"
DEFAULT_OUT = ROOT / "src/greenprint/meters/data/cpu_tdp.csv"
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_GENERIC = re.compile(r"^ARMv\d", re.IGNORECASE)


def clean_name(raw: str) -> str:
    """Return the cleaned model name (see the module docstring)."""
    name = unicodedata.normalize("NFKC", raw)
    name = name.replace("\u200b", "").replace("\xa0", " ")
    name = name.replace("®", "").replace("™", "")
    name = re.sub(r"\([^)]*\)", " ", name)
    name = re.sub(r"\bincludes\b.*$", " ", name, flags=re.IGNORECASE)
    name = re.sub(r"\bMicrosoft Surface Edition\b", " ", name, flags=re.IGNORECASE)
    name = re.sub(r"\bProcessor\b", " ", name, flags=re.IGNORECASE)
    return " ".join(name.split())


def read_source(path: Path) -> str:
    """Return the text of ``cpu_power.csv`` from a wheel or a plain CSV file."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(MEMBER).decode("utf-8")
    return path.read_text(encoding="utf-8")


def build(text: str) -> tuple[list[tuple[str, float]], dict[str, int]]:
    """Clean and deduplicate the rows; return ``(rows, counts)``."""
    counts = {"read": 0, "bad_tdp": 0, "generic": 0, "merged": 0, "conflicts": 0}
    best: dict[str, float] = {}
    display: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        counts["read"] += 1
        tdp_text = (row.get("TDP") or "").strip()
        if not _NUMBER.fullmatch(tdp_text) or float(tdp_text) <= 0:
            counts["bad_tdp"] += 1
            continue
        name = clean_name(row.get("Name") or "")
        if not name or _GENERIC.match(name):
            counts["generic"] += 1
            continue
        tdp_w = float(tdp_text)
        key = name.casefold()
        if key in best:
            counts["merged"] += 1
            if best[key] != tdp_w:
                counts["conflicts"] += 1
            best[key] = max(best[key], tdp_w)
        else:
            best[key] = tdp_w
            display[key] = name
    rows = sorted(((display[k], v) for k, v in best.items()), key=lambda r: r[0].casefold())
    return rows, counts


def write(rows: list[tuple[str, float]], out: Path) -> None:
    """Write ``model,tdp_w,key`` rows to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["model", "tdp_w", "key"])
        for name, tdp_w in rows:
            key = normalise_cpu_model(name)
            writer.writerow([name, f"{tdp_w:g}", "" if key == light_key(name) else key])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="codecarbon wheel or cpu_power.csv")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output CSV")
    args = parser.parse_args(argv)
    rows, counts = build(read_source(args.source))
    write(rows, args.out)
    print(
        f"read {counts['read']} rows; dropped {counts['bad_tdp']} with a malformed or zero TDP and "
        f"{counts['generic']} generic names; merged {counts['merged']} duplicates "
        f"({counts['conflicts']} with differing TDPs, highest kept); wrote {len(rows)} rows "
        f"to {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
