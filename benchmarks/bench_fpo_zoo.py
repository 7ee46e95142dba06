"""The FPO test zoo on the meta device, forward + backward: greenprint beside FlopCounterMode.

For each model: counting time of ``gp.count_fpo`` and of torch's FlopCounterMode (median of
alternating repeats after a warm-up call, and their ratio), greenprint's ``matmul_total`` beside
FlopCounterMode's total as installed and with the grouped-convolution backward fix of PyTorch
pull request 183405 (``tests/fpo/fcm_reference.py``), every difference explained op by op, and
``total / matmul_total`` (what greenprint counts beyond the matrix products and convolutions).

The models are the zoo test's (``tests/fpo/test_fpo_zoo.py``, tiny configurations, so that new
entries are benchmarked as they land) and ResNet-50 at 224x224.

    .venv/bin/python benchmarks/bench_fpo_zoo.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "fpo"))  # the model zoo shared with the tests


def models() -> dict[str, tuple[Callable[[], Any], Callable[[str], tuple[Any, ...]]]]:
    import fpo_zoo
    import torch
    from test_fpo_zoo import ZOO

    entries = dict(ZOO)
    entries["resnet50@224"] = (fpo_zoo.resnet50, lambda d: (torch.randn(1, 3, 224, 224, device=d),))
    return entries


def backward_from(output: Any) -> None:
    """As ``count_fpo``: back-propagate from every floating output that requires grad, ones."""
    import torch
    from torch.utils._pytree import tree_leaves

    tensors = [
        t
        for t in tree_leaves(output)
        if isinstance(t, torch.Tensor) and t.requires_grad and t.is_floating_point()
    ]
    torch.autograd.backward(tensors, grad_tensors=[torch.ones_like(t) for t in tensors])


def count_greenprint(model: Any, inputs: tuple[Any, ...]) -> Any:
    import greenprint as gp

    return gp.count_fpo(model, *inputs)


def count_fcm(model: Any, inputs: tuple[Any, ...], *, fixed: bool = False) -> Any:
    from fcm_reference import fixed_flop_counter
    from torch.utils.flop_counter import FlopCounterMode

    with fixed_flop_counter() if fixed else FlopCounterMode(display=False) as f:
        backward_from(model(*inputs))
    for p in model.parameters():
        p.grad = None
    return f


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def by_op(f: Any) -> dict[str, int]:
    return {str(k): v for k, v in f.get_flop_counts().get("Global", {}).items()}


def explain(result: Any, stock: Any, fixed: Any) -> str:
    """Why greenprint's matmul_total and FlopCounterMode's total differ (or 'equal')."""
    ours, theirs, repaired = result.matmul_total, stock.get_total_flops(), fixed.get_total_flops()
    if ours == theirs:
        return "equal"
    parts = []
    stock_ops, fixed_ops = by_op(stock), by_op(fixed)
    changed = {
        op
        for op in stock_ops.keys() | fixed_ops.keys()
        if stock_ops.get(op, 0) != fixed_ops.get(op, 0)
    }
    if changed == {"aten.convolution_backward"}:
        excess = theirs - repaired
        parts.append(
            f"grouped-conv grad_weight: FlopCounterMode +{excess:,} "
            f"({100 * excess / ours:.1f}% of greenprint's); with PR 183405 "
            + ("equal" if ours == repaired else f"still {repaired - ours:+,}")
        )
    if ours != repaired:
        parts.append(f"UNEXPLAINED {repaired - ours:+,}")
    return "; ".join(parts)


def beyond(result: Any) -> str:
    """The ops FlopCounterMode has no formula for that make up 10% or more of the total."""
    from torch.utils.flop_counter import flop_registry

    known = {str(k) for k in flop_registry}
    big = [
        f"{op} {100 * n / result.total:.0f}%"
        for op, n in sorted(result.by_op.items(), key=lambda kv: -kv[1])
        if op not in known and n >= 0.1 * result.total
    ]
    return ", ".join(big) or "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import torch

    rows = []
    for name, (factory, make_inputs) in models().items():
        torch.manual_seed(0)
        with torch.device("meta"):
            model = factory()
        inputs = make_inputs("meta")
        count_greenprint(model, inputs)  # warm-up: first-call caches in torch and both counters
        count_fcm(model, inputs)
        gp_times, fcm_times = [], []
        result = stock = None
        for _ in range(args.repeats):
            result, seconds = timed(count_greenprint, model, inputs)
            gp_times.append(seconds)
            stock, seconds = timed(count_fcm, model, inputs)
            fcm_times.append(seconds)
        assert result is not None and stock is not None
        fixed = count_fcm(model, inputs, fixed=True)
        rows.append(
            (name, result, stock, fixed, statistics.median(gp_times), statistics.median(fcm_times))
        )

    print("# FPO zoo on the meta device, forward + backward: greenprint vs FlopCounterMode")
    print()
    print(
        f"torch {torch.__version__}; time: median of {args.repeats} alternating repeats after a "
        "warm-up call."
    )
    print()
    print(
        "| model | greenprint | FlopCounterMode | time ratio | matmul_total | FlopCounterMode "
        "total | difference explained | total / matmul | ops >= 10% FlopCounterMode has no "
        "formula for | unknown ops |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---|---|")
    ratios = []
    for name, result, stock, fixed, t_gp, t_fcm in rows:
        ratios.append(t_gp / t_fcm)
        print(
            f"| {name} | {1e3 * t_gp:.1f} ms | {1e3 * t_fcm:.1f} ms | {t_gp / t_fcm:.2f} | "
            f"{result.matmul_total:,} | {stock.get_total_flops():,} | "
            f"{explain(result, stock, fixed)} | {result.total / result.matmul_total:.4f} | "
            f"{beyond(result)} | {result.unknown_ops or 'none'} |"
        )
    print()
    print(
        f"time ratio: median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-"
        f"{max(ratios):.2f} over {len(ratios)} models"
    )


if __name__ == "__main__":
    main()
