"""What a greener step's FPO was counted with: the int, or a count result saying it is a bound.

:func:`counted_as` makes the value a run records with ``run.add_fpo``: the FPO of a variant's
inferences, of a distillation or of a smaller model's training, carrying the ops its counts
could not count in full (a lower bound) or what they assumed. Plain data, no torch at import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from greenprint._provenance import merge_fpo_assumptions

__all__ = ["counted_as"]


def _integer_int8_ops() -> frozenset[str]:
    """The int8 ops that do no float arithmetic at all (packing int8 weights, reading integers).

    Listed with no rule, they miss no FPO, so a count is not made a lower bound for them. Every
    other op with no rule, int8 or not, is: an int8 kernel with no rule (``quantized.clamp``,
    ``quantized.linear_tanh``...) dequantizes, computes in float and requantizes like those the
    int8 rules count (``greenprint.fpo._rules_quantized`` and its sibling modules).
    """
    from greenprint.fpo._rules_quantized import INTEGER_INT8_OPS

    return INTEGER_INT8_OPS


def counted_as(fpo: int, counts: Sequence[Any]) -> Any:
    """``fpo`` as a count result carrying what ``counts`` could not count or assumed, or the int.

    ``counts``: the :class:`~greenprint.FPOResult` (or ints, which add nothing) that ``fpo`` was
    made of. When any ran ops with no rule or on complex tensors, ``run.add_fpo(counted_as(...))``
    records ``fpo`` with the provenance that says it is a lower bound; when any assumed
    something (:attr:`~greenprint.FPOResult.assumptions`: an FFT library), with what they all
    assumed (merged: ``"mkl"`` and ``"cufft"`` read ``"cufft+mkl"``); else it records the int.
    """
    unknown: dict[str, int] = {}
    complex_ops: dict[str, int] = {}
    results = [c for c in counts if not isinstance(c, int) and c is not None]
    integer_only = _integer_int8_ops() if results else frozenset()
    for result in results:
        for ops, more in ((unknown, result.unknown_ops), (complex_ops, result.complex_ops)):
            for op, calls in more.items():
                if op in integer_only:  # no float arithmetic: no FPO missed
                    continue
                ops[op] = ops.get(op, 0) + calls
    assumptions = merge_fpo_assumptions(*(r.assumptions for r in results))
    if not (unknown or complex_ops or assumptions):
        return fpo
    return replace(
        results[0],
        total=fpo,
        unknown_ops=unknown,
        complex_ops=complex_ops,
        assumptions=assumptions,
    )
