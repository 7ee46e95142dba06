"""Spend less: greener variants of a model, measured side by side on the user's own task.

:func:`compare` applies each technique (dynamic and static int8 quantization, magnitude pruning,
bf16/fp16, knowledge distillation, a smaller architecture) to a copy of a PyTorch model and
measures every variant the same way: task score, latency and throughput, energy and CO2-eq per
1,000 inferences (tracked), FPO (dense and executed), parameters and size on disk. The result
holds a Pareto front (score against energy per inference) and each variant's break-even point
(after how many inferences its extra training cost pays for itself). :func:`distill` trains a
smaller student on a teacher's outputs and records its cost as a run.

:class:`CostAwarePruner` (and :class:`CostAwareOptunaPruner`, for Optuna) stops trials whose
score is dominated at equal energy or FPO, not at equal step (``docs/pruning.md``);
:func:`whatif` prices a run's measured energy in other regions and at the best start hour of
an hourly intensity profile (``docs/whatif.md``).

Needs the ``torch`` extra; importing this package imports neither torch nor the tracker (names
are loaded on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenprint import _lazy

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.greener._compare import compare
    from greenprint.greener._distill import DistillResult, distill
    from greenprint.greener._optuna_pruner import CostAwareOptunaPruner
    from greenprint.greener._pruner import CostAwarePruner, PruneDecision
    from greenprint.greener._result import GreenerResult, GreenerRow, break_even_inferences
    from greenprint.greener._students import distilled, smaller
    from greenprint.greener._variants import (
        Applied,
        Context,
        Variant,
        VariantSkipped,
        dynamic_int8,
        half_precision,
        prune_structured,
        prune_unstructured,
        static_int8,
    )
    from greenprint.greener._whatif import HourOption, RegionPrice, WhatIf, whatif

# name -> module that defines it, imported on first attribute access (PEP 562)
_LAZY = {
    # cost-aware early stopping (docs/pruning.md); CostAwareOptunaPruner needs the optuna extra
    "CostAwareOptunaPruner": "greenprint.greener._optuna_pruner",
    "CostAwarePruner": "greenprint.greener._pruner",
    "PruneDecision": "greenprint.greener._pruner",
    # where and when (docs/whatif.md)
    "HourOption": "greenprint.greener._whatif",
    "RegionPrice": "greenprint.greener._whatif",
    "WhatIf": "greenprint.greener._whatif",
    "whatif": "greenprint.greener._whatif",
    "DistillResult": "greenprint.greener._distill",
    "GreenerResult": "greenprint.greener._result",
    "GreenerRow": "greenprint.greener._result",
    # your own technique (docs/greener.md): Variant(name, technique, description, apply), where
    # apply(model_copy, context: Context) returns Applied(...) or raises VariantSkipped(reason)
    "Applied": "greenprint.greener._variants",
    "Context": "greenprint.greener._variants",
    "Variant": "greenprint.greener._variants",
    "VariantSkipped": "greenprint.greener._variants",
    "break_even_inferences": "greenprint.greener._result",
    "compare": "greenprint.greener._compare",
    "distill": "greenprint.greener._distill",
    "distilled": "greenprint.greener._students",
    "dynamic_int8": "greenprint.greener._variants",
    "half_precision": "greenprint.greener._variants",
    "prune_structured": "greenprint.greener._variants",
    "prune_unstructured": "greenprint.greener._variants",
    "smaller": "greenprint.greener._students",
    "static_int8": "greenprint.greener._variants",
}

__all__ = [
    "Applied",
    "Context",
    "CostAwareOptunaPruner",
    "CostAwarePruner",
    "DistillResult",
    "GreenerResult",
    "GreenerRow",
    "HourOption",
    "PruneDecision",
    "RegionPrice",
    "Variant",
    "VariantSkipped",
    "WhatIf",
    "break_even_inferences",
    "compare",
    "distill",
    "distilled",
    "dynamic_int8",
    "half_precision",
    "prune_structured",
    "prune_unstructured",
    "smaller",
    "static_int8",
    "whatif",
]


__getattr__, __dir__ = _lazy.exports(__name__, globals(), _LAZY)
