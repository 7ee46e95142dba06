"""Measure one variant: score, latency, throughput, energy per inference, FPO, size on disk.

Every variant goes through :func:`measure` the same way:

1. the user's ``evaluate(model)`` gives the score;
2. FPO are counted on one batch by greenprint's counter (:func:`greenprint.count_fpo`) on the
   variant's float twin (the same weights before int8 conversion or a dtype cast): the dense
   FPO; and the FPO executed: the twin's (or an int8 variant's own, counted as its int8 model
   runs: quantize and dequantize steps, the kernels' float scaling and bias) less the products
   of weights pruned to zero, which a sparse kernel would skip (each weight of a linear or
   convolution layer takes part in the same number of multiply-adds, so a layer's product
   shrinks exactly with its share of nonzero weights); the int8 layers' products are integer
   operations;
3. parameters (and nonzero ones) are counted and the ``state_dict`` saved with ``torch.save``
   to an in-memory buffer to size it (:func:`saved_size_bytes`);
4. a few warm-up batches, then the timed loop (at least ``min_batches`` batches and
   ``min_time_s`` seconds) under :func:`greenprint.track`: the loop's energy and CO2-eq, with
   their provenance, divided by the inferences it made.
"""

from __future__ import annotations

import io
import logging
import math
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from greenprint.greener._variants import Applied, quiet_torch_ao, weighted_modules

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = [
    "Figures",
    "count_variant_fpo",
    "measure",
    "provenance_line",
    "saved_size_bytes",
    "unknown_ops_kept",
]


class _DropUnknownOps(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "have no FPO rule" not in str(record.msg)


@contextmanager
def unknown_ops_kept() -> Iterator[None]:
    """Keep the counter's "no FPO rule" warning off the terminal: the row's notes list them."""
    counter_logger = logging.getLogger("greenprint.fpo._counter")
    drop = _DropUnknownOps()
    counter_logger.addFilter(drop)
    try:
        yield
    finally:
        counter_logger.removeFilter(drop)


@dataclass(frozen=True)
class Figures:
    """What :func:`measure` found (see :class:`~greenprint.greener.GreenerRow`)."""

    latency_s: float
    throughput_per_s: float
    energy_kwh_per_1000: float
    emissions_kg_per_1000: float
    fpo_dense: float
    fpo_executed: float
    int_ops: float
    fpo_note: str
    param_count: int
    nonzero_param_count: int
    size_bytes: int
    measured_inferences: int
    loop_duration_s: float
    energy_provenance: str
    run_fpo: int
    #: the one-batch count ``run_fpo`` is made of (its ops with no rule or on complex tensors
    #: make ``run_fpo`` a lower bound: :func:`~greenprint.greener._counted.counted_as`), or ``None``
    run_fpo_count: Any = None


def saved_size_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(model.state_dict())`` to an in-memory buffer, bytes.

    A buffer, not a file: torch.save names every entry of its zip archive after the file's
    stem (``model/data.pkl``), so a file's size varies with its name; a random temporary name
    (``greenprint-size-k3j2x9.pt``) made the column differ from run to run and from the user's
    ``model.pt``. Saved to a buffer, the archive is always named ``archive``: the size is that
    of a file saved as ``archive.pt`` (a few bytes more or less per entry under another name).
    """
    import torch

    buffer = io.BytesIO()
    with quiet_torch_ao():
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def count_variant_fpo(
    twin: nn.Module,
    inputs: tuple[Any, ...],
    int8_modules: frozenset[str],
    model: nn.Module | None = None,
) -> tuple[int, int, int, str, list[str], int, Any]:
    """FPO of one batch: dense, executed, int8 ops, a note, unknown ops, kernels', the count.

    ``dense`` is the float ``twin``'s count. ``executed`` the FPO the variant's kernels run on
    one batch, less the products of weights pruned to zero (dense kernels multiply zeros too; a
    linear or convolution layer's FPO are ``2 * multiply-adds`` plus one per output element for
    its bias, and each weight takes part in the same number of multiply-adds, so its products
    shrink exactly with its share of nonzero weights). For a variant with int8 layers
    (``int8_modules``) the int8 ``model`` itself is counted as it runs
    (:mod:`greenprint.fpo._rules_quantized`): quantizing activations, the int8 kernels' float
    scaling, bias and fused ReLU, dequantizing, the layers left in float and the activations;
    the int8 layers' products are integer operations (``int8 ops``: the twin's products of
    those layers, times their share of nonzero weights), not FPO. ``kernels'`` are the FPO of
    one batch as the kernels run it (zero weights multiplied), and the count result its ops
    with no rule come from (:func:`~greenprint.greener._counted.counted_as`).
    """
    counted, layers, outputs = _count_layers(twin, inputs)
    dense = int(counted.total)
    unknown = set(counted.unknown_ops)
    int_ops = 0.0
    for layer_name in int8_modules & layers.keys():
        module = layers[layer_name]
        int_ops += _products(counted, module, layer_name, outputs) * _density(module)
    notes = []
    if int8_modules and model is not None:
        # the counter applies the int8 rules itself, the static kernels' requantization too
        # (their tensors are all quantized), as gp.count_fpo does for a user: they agree
        real, layers, outputs = _count_layers(model, inputs)
        kernels_fpo = int(real.total)
        unknown |= set(real.unknown_ops)
        skipped = _zero_weight_products(real, layers, outputs)
        executed = int(round(kernels_fpo - skipped))
        kernel, count = kernels_fpo, real
        notes.append(
            "executed: counted on the int8 model as it runs (quantize and dequantize steps, "
            "the int8 kernels' float scaling and bias, float layers and activations); the int8 "
            "layers' products are integer ops"
        )
    else:
        skipped = _zero_weight_products(counted, layers, outputs)
        executed = int(round(dense - skipped))
        kernel, count = dense, counted
    if skipped:
        notes.insert(0, "executed: products with zero weights skipped, as a sparse kernel would")
    note = "; ".join(notes) or "executed = dense (dense kernels, no zero weights)"
    return dense, executed, int(round(int_ops)), note, sorted(unknown), kernel, count


def _count_layers(
    model: nn.Module, inputs: tuple[Any, ...]
) -> tuple[Any, dict[str, nn.Module], dict[str, int]]:
    """Count one forward of ``model``; its linear and convolution layers; their outputs' sizes."""
    import torch

    from greenprint.fpo import count_fpo

    layers = dict(weighted_modules(model))
    outputs: dict[str, int] = {}
    handles = []
    for layer_name, module in layers.items():

        def hook(_m: Any, _i: Any, out: Any, key: str = layer_name) -> None:
            outputs[key] = int(out.numel()) if isinstance(out, torch.Tensor) else 0

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad(), unknown_ops_kept(), quiet_torch_ao():
            counted = count_fpo(model, *inputs, backward=False)
    finally:
        for handle in handles:
            handle.remove()
    return counted, layers, outputs


def _products(counted: Any, module: nn.Module, layer_name: str, outputs: dict[str, int]) -> int:
    """A linear or convolution layer's products: its FPO less one per output for its bias."""
    layer_fpo = counted.by_module.get(layer_name, 0)
    bias = outputs.get(layer_name, 0) if getattr(module, "bias", None) is not None else 0
    return int(max(layer_fpo - bias, 0))


def _density(module: nn.Module) -> float:
    """The layer's share of nonzero weights."""
    import torch

    weight = _weight(module)
    return float(torch.count_nonzero(weight)) / max(weight.numel(), 1)


def _zero_weight_products(
    counted: Any, layers: dict[str, nn.Module], outputs: dict[str, int]
) -> float:
    """The products of the float layers' zero weights, which a sparse kernel would not compute."""
    return sum(
        _products(counted, module, layer_name, outputs) * (1.0 - _density(module))
        for layer_name, module in layers.items()
    )


def _weight(module: nn.Module) -> torch.Tensor:
    return cast("torch.Tensor", module.weight).detach()


def provenance_line(
    provenance: dict[str, str], *, g_per_kwh: float | None = None, pue: float | None = None
) -> str:
    """``"cpu: estimate:..., ram: ..., intensity: 480.6 g CO2-eq/kWh (...), pue: 1.2 (...)"``.

    Args:
        provenance: the run's provenance (component meters, intensity, PUE).
        g_per_kwh: the grid intensity applied, g CO2-eq/kWh, shown beside its source (not for
            an hourly series, whose value varies over the run).
        pue: the PUE applied, shown beside its source: the CO2-eq column is priced with it.
    """
    shown = dict(provenance)
    intensity = shown.get("intensity")
    if intensity and g_per_kwh is not None and "csv:" not in intensity:
        shown["intensity"] = f"{g_per_kwh:.5g} g CO2-eq/kWh ({intensity})"
    if shown.get("pue") and pue is not None:
        shown["pue"] = f"{pue:g} ({shown['pue']})"
    keys = ("cpu", "gpu", "ram", "intensity", "pue")
    return ", ".join(f"{k}: {shown[k]}" for k in keys if shown.get(k))


def measure(
    applied: Applied,
    inputs: tuple[Any, ...],
    *,
    batch_size: int,
    min_time_s: float,
    min_batches: int,
    warmup_batches: int,
    track: Any,
    checked_batches: int = 0,
) -> tuple[Figures, list[str]]:
    """Measure a variant (see the module docstring); returns the figures and unknown FPO ops.

    Args:
        applied: the technique's output.
        inputs: one batch of positional inputs.
        batch_size: examples in the batch.
        min_time_s: the timed loop runs at least this long, s.
        min_batches: and at least this many batches.
        warmup_batches: untimed batches first.
        track: opens the tracked run of the loop (``track()`` -> a run context manager).
        checked_batches: batches the variant already ran on the inputs (for ``run_fpo``).
    """
    import torch

    model = applied.model
    twin = applied.float_twin if applied.float_twin is not None else model
    dense, executed, int_ops, note, unknown, kernel, count = count_variant_fpo(
        twin, inputs, applied.int8_modules, model
    )
    params = list(twin.parameters())
    param_count = sum(p.numel() for p in params)
    nonzero = sum(int(torch.count_nonzero(p.detach())) for p in params)
    size = saved_size_bytes(model)
    times: list[float] = []
    with quiet_torch_ao(), torch.inference_mode():
        for _ in range(warmup_batches):
            model(*inputs)
        with track() as run:
            started = time.perf_counter()
            while len(times) < min_batches or time.perf_counter() - started < min_time_s:
                t0 = time.perf_counter()
                model(*inputs)
                times.append(time.perf_counter() - t0)
            loop_s = time.perf_counter() - started
    inferences = len(times) * batch_size
    per = 1000.0 / inferences
    figures = Figures(
        latency_s=statistics.median(times),
        throughput_per_s=inferences / loop_s if loop_s > 0 else math.inf,
        energy_kwh_per_1000=run.energy_kwh * per,
        emissions_kg_per_1000=run.emissions_kg * per,
        fpo_dense=dense / batch_size,
        fpo_executed=executed / batch_size,
        int_ops=int_ops / batch_size,
        fpo_note=note,
        param_count=param_count,
        nonzero_param_count=nonzero,
        size_bytes=size,
        measured_inferences=inferences,
        loop_duration_s=loop_s,
        energy_provenance=provenance_line(
            run.provenance, g_per_kwh=run.intensity_g_per_kwh, pue=run.pue
        ),
        # the counted forwards (the twin's; an int8 model's own too), then the warm-up and
        # timed batches as the kernels run them
        run_fpo=dense
        + (kernel if applied.int8_modules else 0)
        + kernel * (checked_batches + warmup_batches + len(times)),
        run_fpo_count=count,
    )
    return figures, unknown
