"""CPU time of the first ``gp.track`` start+stop in a fresh process, and where it goes.

The figure: in a fresh interpreter, after ``import greenprint``, the process CPU time
(``time.process_time``: every thread of the process, user + system) of

    with gp.track("startup", ledger=<new file>):
        pass

Everything that first run triggers counts: the modules it imports (meters, the ledger,
the carbon tables...), hardware detection, the TDP table, opening and creating the ledger, the
run's rows, the git call's share in this process. ``import greenprint`` itself is not counted
(it is measured by ``bench_tracking.py``; its CPU time is reported beside, and the two
together). Median over ``--runs`` fresh interpreters, after one
warm-up interpreter that writes the bytecode caches (``PYTHONDONTWRITEBYTECODE`` is removed for
the children, so every measured run imports from ``.pyc`` files, as an installed package does).

Two places are measured: the repository root (a git checkout with a ``pyproject.toml``: git is
asked for the commit, the config file is parsed) and an empty temporary directory (a new user's
first run: no git, no config).

The breakdown (on unless ``--no-breakdown``) splits the figure, again in fresh interpreters,
into the imports the run triggers (imported first, each timed, summed by package) and the work
that follows, and lists the greenprint functions that take the most of that work (cProfile,
cumulative, imports already done; profiling inflates each figure, so read them as shares).

Usage: ``.venv/bin/python benchmarks/bench_startup.py [--runs 15] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One child: measure the first start+stop, print JSON. argv: mode, ledger, modules file.
_CHILD = r"""
import json, sys, time
mode, ledger, modules_file = sys.argv[1], sys.argv[2], sys.argv[3]
i0 = time.process_time()
import greenprint as gp
out = {"import_ms": 1000 * (time.process_time() - i0)}
before = list(sys.modules)
if mode in ("split", "profile"):
    # the modules the run imports, stdlib and others first, then psutil, then greenprint's in
    # the order they finished importing (so that each import loads little more than itself)
    names = json.load(open(modules_file))
    rank = lambda n: 2 if n.startswith("greenprint") else 1 if n.startswith("psutil") else 0
    names = sorted(names, key=rank)  # stable: keeps the recorded order within each group
    by_module = {}
    c0 = time.process_time()
    for name in names:
        t0 = time.process_time()
        try:
            __import__(name)
        except Exception:
            pass
        by_module[name] = 1000 * (time.process_time() - t0)
    out["imports_ms"] = 1000 * (time.process_time() - c0)
    out["import_ms_by_module"] = by_module
profile = None
if mode == "profile":
    import cProfile
    profile = cProfile.Profile()
    profile.enable()
c0 = time.process_time()
with gp.track("startup", ledger=ledger):
    pass
out["cpu_ms"] = 1000 * (time.process_time() - c0)
if profile is not None:
    profile.disable()
    import pstats
    stats = pstats.Stats(profile).stats
    rows = []
    for (path, line, func), (cc, nc, tt, ct, callers) in stats.items():
        if "/greenprint/" in path and not func.startswith("<"):
            short = path.split("/greenprint/", 1)[1]
            rows.append((ct * 1000, f"{short}:{func}"))
    out["profile"] = sorted(rows, reverse=True)[:25]
seen = set(before)
out["modules"] = [m for m in sys.modules if m not in seen]
print(json.dumps(out))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENPRINT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def child(mode: str, cwd: Path, modules_file: str = "-") -> dict:
    """One fresh interpreter; its JSON answer."""
    with tempfile.TemporaryDirectory(prefix="gp-startup-") as tmp:
        ledger = str(Path(tmp) / "ledger.db")
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, mode, ledger, modules_file],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _package(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "greenprint":
        return ".".join(parts[:2])
    return "psutil" if parts[0] == "psutil" else "stdlib and others"


def by_package(splits: list[dict]) -> list[tuple[float, str]]:
    """Median over runs of the import CPU time (ms) of each package's modules."""
    per_run = []
    for s in splits:
        totals: dict[str, float] = {}
        for module, ms in s["import_ms_by_module"].items():
            totals[_package(module)] = totals.get(_package(module), 0.0) + ms
        per_run.append(totals)
    keys = {k for t in per_run for k in t}
    return sorted(
        ((statistics.median(t.get(k, 0.0) for t in per_run), k) for k in keys), reverse=True
    )


def measure(cwd: Path, runs: int, breakdown: bool) -> dict:
    child("plain", cwd)  # warm-up: bytecode caches, page cache
    plain = [child("plain", cwd) for _ in range(runs)]
    figures: dict = {
        "cwd": str(cwd),
        "runs": runs,
        "cpu_ms_median": statistics.median(p["cpu_ms"] for p in plain),
        "cpu_ms_min": min(p["cpu_ms"] for p in plain),
        "cpu_ms_max": max(p["cpu_ms"] for p in plain),
        "import_ms_median": statistics.median(p["import_ms"] for p in plain),
        "with_import_ms_median": statistics.median(p["import_ms"] + p["cpu_ms"] for p in plain),
        "modules_imported": len(plain[0]["modules"]),
    }
    if not breakdown:
        return figures
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(plain[0]["modules"], fh)
        modules_file = fh.name
    try:
        split = [child("split", cwd, modules_file) for _ in range(max(5, runs // 2))]
        figures["work_profile_ms"] = child("profile", cwd, modules_file)["profile"][:15]
    finally:
        os.unlink(modules_file)
    figures["imports_ms_median"] = statistics.median(s["imports_ms"] for s in split)
    figures["work_ms_median"] = statistics.median(s["cpu_ms"] for s in split)
    figures["import_ms_by_package"] = by_package(split)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per place")
    parser.add_argument("--no-breakdown", action="store_true", help="the figure only")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gp-empty-") as empty:
        places = {"repository root": ROOT, "empty directory": Path(empty)}
        results = {
            name: measure(cwd, args.runs, not args.no_breakdown) for name, cwd in places.items()
        }
    for name, fig in results.items():
        print(f"== first start+stop in a fresh process, {name} ({fig['runs']} runs)")
        print(
            f"CPU {fig['cpu_ms_median']:.1f} ms median "
            f"({fig['cpu_ms_min']:.1f}-{fig['cpu_ms_max']:.1f}); "
            f"{fig['modules_imported']} modules imported"
        )
        print(
            f"  import greenprint before it {fig['import_ms_median']:.1f} ms CPU; the two in one "
            f"interpreter {fig['with_import_ms_median']:.1f} ms (medians)"
        )
        if "imports_ms_median" in fig:
            print(
                f"  imports it triggers {fig['imports_ms_median']:.1f} ms, "
                f"then the work {fig['work_ms_median']:.1f} ms (medians)"
            )
            print("  imports by package (CPU ms, median):")
            for ms, key in fig["import_ms_by_package"]:
                if ms >= 0.5:
                    print(f"    {ms:6.1f}  {key}")
            print("  work: greenprint functions, cumulative (cProfile, ms, inflated):")
            for ms, func in fig["work_profile_ms"]:
                print(f"    {ms:6.1f}  {func}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
