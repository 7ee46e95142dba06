"""LLaMA-7B-shaped decoder on the meta device, forward + backward at sequence length 2048.

greenprint's FPO counter against torch's FlopCounterMode in the same run: counting time (wall
and CPU, median of alternating repeats), peak RSS (each counter in a fresh subprocess, and the
baseline of importing torch and building the meta model without counting), the two totals,
and the op-by-op difference (what greenprint adds on top of FlopCounterMode's matmul count).

    .venv/bin/python benchmarks/bench_fpo_llama7b.py [--repeats 3] [--seq 2048]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "fpo"))  # the model zoo shared with the tests


def build(seq: int):
    import fpo_zoo
    import torch

    with torch.device("meta"):
        model = fpo_zoo.Decoder(fpo_zoo.LLAMA_7B)
    ids = torch.zeros(1, seq, dtype=torch.long, device="meta")
    return model, ids


def count_greenprint(model, ids):
    import greenprint as gp

    return gp.count_fpo(model, ids)


def count_fcm(model, ids):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as f:
        out = model(ids)
        out.backward(torch.ones_like(out))
    return f


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(which: str, seq: int) -> None:
    """Run one counter (or none) in this fresh process and print its peak RSS."""
    model, ids = build(seq)
    if which == "greenprint":
        count_greenprint(model, ids)
    elif which == "fcm":
        count_fcm(model, ids)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def rss_of(which: str, seq: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--seq", str(seq)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def fmt(n: float) -> str:
    from greenprint._format import format_fpo

    return format_fpo(n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--child", choices=["greenprint", "fcm", "none"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seq)
        return

    import torch

    model, ids = build(args.seq)
    params = sum(p.numel() for p in model.parameters())
    # warm-up (first-call caches in torch and in both counters), then alternate
    count_greenprint(model, ids)
    count_fcm(model, ids)
    times: dict[str, list[tuple[float, float]]] = {"greenprint": [], "fcm": []}
    result = fcm = None
    for _ in range(args.repeats):
        result, wall, cpu = timed(count_greenprint, model, ids)
        times["greenprint"].append((wall, cpu))
        fcm, wall, cpu = timed(count_fcm, model, ids)
        times["fcm"].append((wall, cpu))
    assert result is not None and fcm is not None

    wall_gp = statistics.median(w for w, _ in times["greenprint"])
    wall_fcm = statistics.median(w for w, _ in times["fcm"])
    cpu_gp = statistics.median(c for _, c in times["greenprint"])
    cpu_fcm = statistics.median(c for _, c in times["fcm"])
    rss = {which: rss_of(which, args.seq) for which in ("none", "greenprint", "fcm")}
    fcm_total = fcm.get_total_flops()

    print(f"# LLaMA-7B-shaped decoder, meta device, batch 1, seq {args.seq}, forward + backward")
    print(f"torch {torch.__version__}, {params:,} parameters, {args.repeats} alternating repeats")
    print()
    print("| | greenprint | FlopCounterMode | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| counting time, wall (median) | {wall_gp:.2f} s | {wall_fcm:.2f} s | "
        f"{wall_gp / wall_fcm:.2f} |"
    )
    print(
        f"| counting time, CPU (median) | {cpu_gp:.2f} s | {cpu_fcm:.2f} s | "
        f"{cpu_gp / cpu_fcm:.2f} |"
    )
    print(
        f"| peak RSS (fresh process) | {rss['greenprint']:.0f} MB | {rss['fcm']:.0f} MB | "
        f"{rss['greenprint'] / rss['fcm']:.2f} |"
    )
    print(f"| total | {result.total:,} | {fcm_total:,} | {result.total / fcm_total:.5f} |")
    print(
        f"| matmul_total vs FlopCounterMode | {result.matmul_total:,} | {fcm_total:,} | "
        f"{'equal' if result.matmul_total == fcm_total else 'DIFFERENT'} |"
    )
    print(
        f"| forward / backward | {fmt(result.forward_total)} / {fmt(result.backward_total)} | | |"
    )
    print()
    print(f"Baseline RSS (import torch, build the meta model, count nothing): {rss['none']:.0f} MB")
    print(f"unknown ops: {result.unknown_ops or 'none'}")
    print()
    extra = result.total - result.matmul_total
    print(
        f"greenprint counts {fmt(extra)} more ({100 * extra / fcm_total:.3f}% of the matmul "
        "count); op by op:"
    )
    print()
    fcm_by_op = {str(k): v for k, v in fcm.get_flop_counts().get("Global", {}).items()}
    print("| op | FlopCounterMode | greenprint | difference | forward | backward |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = sorted(result.by_op.items(), key=lambda kv: -(kv[1] - fcm_by_op.get(kv[0], 0)))
    for op, n in rows:
        theirs = fcm_by_op.get(op, 0)
        if n == 0 and theirs == 0:
            continue
        phase = result.by_op_phase[op]
        print(
            f"| {op} | {theirs:,} | {n:,} | {n - theirs:,} | {fmt(phase['forward'])} | "
            f"{fmt(phase['backward'])} |"
        )
    zero = sorted(result.zero_ops)
    print()
    print(f"0 FPO (data movement by rule, or integer-only; {len(zero)} ops): {', '.join(zero)}")


if __name__ == "__main__":
    main()
