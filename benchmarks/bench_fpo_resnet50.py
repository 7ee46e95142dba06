"""ResNet-50 (plain torch.nn, torchvision's layout), batch 1, 224x224, forward, eval mode.

greenprint against FlopCounterMode, fvcore, ptflops and thop in one run: each tool's number as
it reports it, its unit (MAC or FLOP), the number in FPO (a MAC is 2 FPO), counting time (median
of 5 after a warm-up call; CPU tools run the real forward pass), and a
reconstruction of every peer's number from element counts taken with forward hooks, which shows
exactly what each one counts and skips.

    .venv/bin/python benchmarks/bench_fpo_resnet50.py
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "fpo"))  # the model zoo shared with the tests


def timed(fn, repeats: int = 5):
    """(value, median seconds) of ``repeats`` calls after one warm-up call."""
    value = fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        seconds.append(time.perf_counter() - start)
    return value, statistics.median(seconds)


def element_counts(model, x) -> dict[str, tuple[int, int, int]]:
    """Module type -> (input elements, output elements, calls), summed over every call."""
    import torch

    stats: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])

    def hook(module, inputs, output):
        s = stats[type(module).__name__]
        s[0] += inputs[0].numel()
        s[1] += output.numel()
        s[2] += 1

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return {k: (v[0], v[1], v[2]) for k, v in stats.items()}


def main() -> None:
    import fpo_zoo
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import greenprint as gp
    from greenprint._format import format_fpo

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    model = fpo_zoo.resnet50().eval()
    x = torch.randn(1, 3, 224, 224)

    result, t_gp = timed(lambda: gp.count_fpo(model, x, backward=False))
    with torch.device("meta"):
        meta_model = fpo_zoo.resnet50().eval()
    meta, t_meta = timed(
        lambda: gp.count_fpo(meta_model, torch.empty(1, 3, 224, 224, device="meta"), backward=False)
    )
    assert meta.total == result.total

    def fcm_count():
        with FlopCounterMode(display=False) as f:
            model(x)
        return f

    fcm, t_fcm = timed(fcm_count)

    from fvcore.nn import FlopCountAnalysis

    def fvcore_count():
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return analysis, analysis.total()

    (fv, fv_total), t_fv = timed(fvcore_count)

    from ptflops import get_model_complexity_info

    def ptflops_count(**config):
        with contextlib.redirect_stdout(io.StringIO()):
            macs, _ = get_model_complexity_info(
                model,
                (3, 224, 224),
                as_strings=False,
                print_per_layer_stat=False,
                verbose=False,
                **config,
            )
        return int(macs)

    pt, t_pt = timed(ptflops_count)
    pt_modules = ptflops_count(backend_specific_config={"count_functional": False})

    import thop

    def thop_count():
        with contextlib.redirect_stdout(io.StringIO()):
            macs, _ = thop.profile(model, inputs=(x,), verbose=False)
        return int(macs)

    th, t_th = timed(thop_count)

    # element counts per module type, to reconstruct every number exactly
    e = element_counts(model, x)
    conv_mac = result.by_op_phase["aten.convolution"]["forward"] // 2  # no conv has a bias
    lin_in, lin_out, _ = e["Linear"]
    lin_mac = model.fc.in_features * lin_out
    bn, relu = e["BatchNorm2d"][0], e["ReLU"][1]
    mp_in, ap_in = e["MaxPool2d"][0], e["AdaptiveAvgPool2d"][0]
    ap_out = e["AdaptiveAvgPool2d"][1]
    fcm_total = fcm.get_total_flops()

    print("# ResNet-50 (plain torch.nn), batch 1, 3x224x224, forward, eval mode")
    print(f"torch {torch.__version__}, {result.params:,} parameters")
    print()
    print("| tool | reported | unit | in FPO | vs greenprint total | counting time |")
    print("|---|---:|---|---:|---:|---:|")
    rows = [
        ("greenprint (CPU tensors)", result.total, "FPO", result.total, t_gp),
        ("greenprint (meta tensors)", meta.total, "FPO", meta.total, t_meta),
        ("greenprint matmul_total", result.matmul_total, "FPO", result.matmul_total, None),
        ("FlopCounterMode", fcm_total, "FLOP", fcm_total, t_fcm),
        ("fvcore", fv_total, "MAC", 2 * fv_total, t_fv),
        ("ptflops (default)", pt, "MAC", 2 * pt, t_pt),
        ("ptflops (modules only)", pt_modules, "MAC", 2 * pt_modules, None),
        ("thop", th, "MAC", 2 * th, t_th),
    ]
    for name, reported, unit, fpo, t in rows:
        ts = f"{t:.2f} s" if t is not None else ""
        print(
            f"| {name} | {reported:,} | {unit} | {format_fpo(fpo)} | "
            f"{fpo / result.total:.4f} | {ts} |"
        )
    print()
    print(f"matmul_total == FlopCounterMode: {result.matmul_total == fcm_total}")
    print()
    print("greenprint by op (FPO):")
    print()
    print("| op | FPO | what |")
    print("|---|---:|---|")
    what = {
        "aten.convolution": "2 x conv MACs (no conv has a bias)",
        "aten.addmm": "fc: 2 x MACs + 1,000 bias adds",
        "aten._native_batch_norm_legit_no_training": (
            "eval BN: x * alpha + beta, 2 per element + 6 per channel"
        ),
        "aten.relu_": "1 per element",
        "aten.add": "16 residual adds, 1 per element",
        "aten.max_pool2d_with_indices": "a compare per tap inside the input (3x3, padding 1)",
        "aten.mean": "global average pool: 1 add per input + 1 division per output",
    }
    for op, n in sorted(result.by_op.items(), key=lambda kv: -kv[1]):
        if n:
            print(f"| {op} | {n:,} | {what.get(op, '')} |")
    print()
    print("Each peer reconstructed from hook element counts (must match exactly):")
    print()
    recon = [
        (
            "fvcore",
            fv_total,
            conv_mac + lin_mac + 2 * bn + ap_in,
            "conv MAC + fc MAC + 2 per batch-norm element + 1 per pooled input; skips the residual "
            f"adds and max pooling (unsupported: {dict(fv.unsupported_ops())}) and ReLU (ignored)",
        ),
        (
            "ptflops (default)",
            pt,
            conv_mac + lin_mac + lin_out + 2 * bn + 2 * relu + 2 * mp_in + 2 * ap_in,
            "conv MAC + fc MAC + bias + 2 per BN element; ReLU and both pools twice (module hook "
            "and patched torch.nn.functional both fire); residual adds invisible",
        ),
        (
            "ptflops (modules only)",
            pt_modules,
            conv_mac + lin_mac + lin_out + 2 * bn + relu + mp_in + ap_in,
            "the same with count_functional=False: ReLU and pools once",
        ),
        (
            "thop",
            th,
            conv_mac + lin_mac + 4 * bn + (ap_in + ap_out),
            "conv MAC + fc MAC (no bias) + 4 per BN element + (window + 1) per pooled output; "
            "ReLU and max pooling are zero ops, residual adds invisible",
        ),
    ]
    print("| tool | reported | reconstructed | equal | counts |")
    print("|---|---:|---:|---|---|")
    for name, reported, rebuilt, how in recon:
        print(f"| {name} | {reported:,} | {rebuilt:,} | {reported == rebuilt} | {how} |")


if __name__ == "__main__":
    main()
