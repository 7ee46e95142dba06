"""The demo's greener section: the best CNN of the search, distilled, quantized and pruned.

:func:`run_greener` compares greener variants of the best finished CNN trial
(:func:`greenprint.greener.compare`, recorded in the demo's study with role ``greener``): int8
(dynamic and static), magnitude pruning (single weights and whole channels), bfloat16, and a
CNN with a quarter of the channels distilled from it, whose training is the price the
break-even pays back. The report shows the table, its front and the break-evens.
"""

from __future__ import annotations

import math
from typing import Any

from greenprint._format import format_energy
from greenprint.demo._display import Display

__all__ = ["BEST_CNN", "add_to_summary", "run_greener"]

#: The name of the comparison's run.
BEST_CNN = "greener-best-cnn"
_BATCH = 128
_DISTILL_EPOCHS = 8


def run_greener(
    led: Any,
    study: str,
    data: Any,
    show: Display,
    best_cnn: tuple[float, Any, dict[str, Any]] | None,
    *,
    metric: str,
    seed: int,
    min_time_s: float = 0.5,
) -> Any:
    """Compare greener variants of the best CNN; ``None`` when no CNN trial finished."""
    if best_cnn is None:
        show.message("greener variants: no CNN trial finished, nothing to compare")
        return None
    import torch

    from greenprint import greener
    from greenprint.demo._models import build_model

    _, model, params = best_cnn
    channels = int(params["channels"])
    torch.manual_seed(seed)
    student = build_model({"model": "cnn", "channels": max(1, channels // 4)})
    batches = [
        (data.x_train[i : i + 64], data.y_train[i : i + 64]) for i in range(0, data.n_train, 64)
    ]

    def accuracy(m: Any) -> float:
        with torch.inference_mode():
            return float((m(data.x_val).argmax(dim=1) == data.y_val).float().mean())

    variants = [
        greener.dynamic_int8(),
        greener.static_int8(),
        greener.prune_unstructured(0.5),
        greener.prune_structured(0.3),
        greener.half_precision("bfloat16"),
        greener.distilled(
            student,
            batches,
            epochs=_DISTILL_EPOCHS,
            lr=1e-2,
            name=f"distilled-{student_name(student)}",
        ),
    ]
    show.phase("greener variants", len(variants) + 1)
    show.status(f"best CNN ({channels} channels): {len(variants)} variants, measured alike")
    result = greener.compare(
        model.eval(),
        accuracy,
        data.x_val[:_BATCH],
        variants,
        name=BEST_CNN,
        study=study,
        ledger=led,
        metric=metric,
        calibration=[x for x, _ in batches[:4]],
        min_time_s=min_time_s,
        num_threads=1,
    )
    for row in result.rows:
        name = f"{BEST_CNN}:{row.name}"  # the run's name in the ledger and the report
        if not row.measured:
            show.done(f"{name:<32} skipped: {row.reason}")
            continue
        mark = "  (front)" if row.on_front else ""
        show.done(
            f"{name:<32} {metric}={row.score:.3f}  "
            f"{format_energy(row.energy_kwh_per_1000):>8} per 1,000 inferences  "  # type: ignore[arg-type]
            f"{row.latency_s * 1e3:.3g} ms per batch of {row.batch_size}{mark}"  # type: ignore[operator]
        )
    return result


def student_name(student: Any) -> str:
    """``"cnn2"`` for a CNN with 2 channels."""
    conv = next((m for m in student.modules() if hasattr(m, "out_channels")), None)
    return f"cnn{conv.out_channels}" if conv is not None else "student"


def add_to_summary(summary: str, result: Any) -> str:
    """The demo's closing note with the greener lines before its ``report`` line."""
    if result is None:
        return summary
    base = result.row(result.baseline)
    lines = [f"best CNN variants, front: {', '.join(result.front) or '-'}"]
    for row in result.rows[1:]:
        if not row.measured or base.energy_kwh_per_1000 is None:
            continue
        ratio = row.energy_kwh_per_1000 / base.energy_kwh_per_1000
        text = (
            f"{row.name}: {row.score:.3f} ({row.score - base.score:+.3f}), "
            f"{ratio:.2f}x the energy per inference"
        )
        if row.within_noise:  # 0.97x or 1.03x of the same work is the machine's noise
            text += " (within noise" + (
                ": no saving told apart to pay back its training)"
                if row.training_energy_kwh
                else ")"
            )
        elif row.training_energy_kwh:
            even = row.break_even_inferences
            text += (
                ", never pays back its training"
                if even is None
                else f", pays back its training after {math.ceil(even):,} inferences"
            )
        lines.append(text)
    block = "\n".join([f"  greener        {lines[0]}", *(f"{'':17}{x}" for x in lines[1:])])
    head, found, tail = summary.rpartition("\n  report ")
    return f"{head}\n{block}{found}{tail}" if found else f"{summary}\n{block}"
