"""Real FPO of the common ops on complex tensors.

The rules count one FPO per element and ``2mkn`` per product, as for real tensors. On complex
numbers ``(a + bi)`` an op does more real arithmetic, and for the ops below the counter
multiplies the rule's count by how much more, so that a complex count is in real FPO (what a
rotary embedding written with ``torch.view_as_complex`` and one written with cos and sin
both count, or a Fourier neural operator's complex weights):

* ``(a + bi)(c + di) = (ac - bd) + (ad + bc)i``: 4 multiplies and 2 adds, 6 per element; a
  complex times a real ``(a + bi) c``: 2;
* a complex add or subtract: 2 (1 when one operand is real: only the real part changes);
  negation 2; a sum or mean over complex values 2 per element (both parts);
* ``(a + bi) / (c + di) = ((ac + bd) + (bc - ad)i) / (c^2 + d^2)``: 6 multiplies, 3 adds, 2
  divides, 11 per element; by a real: 2;
* ``|a + bi| = sqrt(a^2 + b^2)``: 4; ``exp(a + bi) = e^a (cos b + i sin b)``: 5; the angle
  ``atan2(b, a)``: 1; the conjugate made physical (``-b``): 1; ``sgn`` ``z / |z|`` and
  ``log`` ``log|z| + i atan2(b, a)``: 6; ``1 / (a + bi) = (a - bi) / (a^2 + b^2)``: 6;
* a complex product's multiply-add is 8 real FPO (a complex multiply 6 and an add 2) where a
  real one is 2: ``4 x 2mkn``; a complex matrix times a real one ``2 x 2mkn``. The added
  bias or ``alpha``/``beta`` scalings of ``addmm``/``baddbmm`` on complex output: 2 each.
  ``matmul_total`` keeps FlopCounterMode's ``2mkn`` (it does not know complex numbers); the
  rest is in ``total``.

Any other op on complex tensors is counted as if real and listed in ``complex_ops``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__: list[str] = []


def _is_complex(value: Any) -> bool:
    if isinstance(value, complex):
        return True
    is_complex = getattr(value, "is_complex", None)
    return bool(is_complex()) if callable(is_complex) else False


def _pair(args: Any, i: int = 0) -> tuple[bool, bool]:
    a = _is_complex(args[i]) if len(args) > i else False
    b = _is_complex(args[i + 1]) if len(args) > i + 1 else False
    return a, b


def _mul(args: Any) -> int:
    a, b = _pair(args)
    return 6 if a and b else 2


def _add(args: Any) -> int:
    a, b = _pair(args)
    return 2 if a and b else 1


def _div(args: Any) -> int:
    return 11 if _pair(args)[1] else 2


def _constant(n: int) -> Callable[[Any], int]:
    return lambda args: n


def _product(args: Any, first: int = 0) -> int:
    a, b = _pair(args, first)
    return 4 if a and b else 2


def _ops(names: str, factor: Callable[[Any], int]) -> dict[str, Callable[[Any], int]]:
    return {f"aten.{name}": factor for name in names.split()}


#: op -> the multiplier of its rule's count on complex tensors (a function of the op's args)
ELEMENTWISE: dict[str, Callable[[Any], int]] = {
    **_ops("mul mul_", _mul),
    **_ops("add add_ sub sub_ rsub", _add),
    **_ops("div div_", _div),
    **_ops("neg neg_ sum mean", _constant(2)),
    **_ops("abs", _constant(4)),
    **_ops("angle conj_physical conj_physical_ _conj_physical", _constant(1)),
    **_ops("sgn sgn_ log log_ reciprocal reciprocal_", _constant(6)),
    **_ops("exp exp_", _constant(5)),
    **_ops("dot vdot mv", _product),
}

#: product ops with a ``(matmul, other)`` rule -> (the products' multiplier, the other part's)
PRODUCTS: dict[str, Callable[[Any], tuple[int, int]]] = {
    "aten.mm": lambda args: (_product(args), 2),
    "aten.bmm": lambda args: (_product(args), 2),
    "aten.addmm": lambda args: (_product(args, 1), 2),
    "aten.baddbmm": lambda args: (_product(args, 1), 2),
}
