"""Example inputs from shapes and dtypes, so a model can be counted without data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import FPOInputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["example_inputs", "parse_dtype", "parse_shape"]

_DTYPE_ALIASES = {
    "float": "float32",
    "fp32": "float32",
    "half": "float16",
    "fp16": "float16",
    "bf16": "bfloat16",
    "double": "float64",
    "fp64": "float64",
    "long": "int64",
    "int": "int32",
}


def parse_shape(shape: str | Sequence[int]) -> tuple[int, ...]:
    """A shape from ``"1,3,224,224"`` (or ``"1x3x224x224"``) or a sequence of ints.

    Args:
        shape: the shape.

    Returns:
        The shape as a tuple of positive ints.

    Raises:
        FPOInputError: empty, not integers, or a dimension < 1.
    """
    if isinstance(shape, str):
        text = shape.strip().strip("()[]").replace(" ", "")
        parts = text.split("," if "," in text or "x" not in text else "x")
        if text.endswith(","):  # "(3,)"
            parts = parts[:-1]
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise FPOInputError(
                f"bad shape {shape!r}: expected comma-separated integers like 1,3,224,224"
            ) from None
    else:
        if isinstance(shape, (bool, int)) or not isinstance(shape, Sequence):
            raise FPOInputError(f"bad shape {shape!r}: expected a sequence of integers")
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise FPOInputError(f"bad shape {shape!r}: every dimension must be an integer")
        dims = tuple(int(d) for d in shape)
    if not dims:
        raise FPOInputError(f"bad shape {shape!r}: no dimensions")
    if any(d < 1 for d in dims):
        raise FPOInputError(f"bad shape {shape!r}: every dimension must be >= 1")
    return dims


def parse_dtype(dtype: Any) -> torch.dtype:
    """A torch dtype from a name (``"float32"``, ``"bf16"``, ``"int64"``) or a dtype.

    Args:
        dtype: the dtype or its name.

    Returns:
        The torch dtype.

    Raises:
        FPOInputError: not a dtype torch knows.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        name = dtype.strip().lower().removeprefix("torch.")
        name = _DTYPE_ALIASES.get(name, name)
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype):
            return value
    raise FPOInputError(f"unknown dtype {dtype!r} (e.g. float32, bfloat16, int64)")


def example_inputs(
    *shapes: str | Sequence[int],
    dtype: Any = "float32",
    device: Any = "meta",
    requires_grad: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Tensors of the given shapes to count a model with, on the meta device by default.

    Floating tensors are drawn from a normal distribution (zeros on meta); integer tensors
    (token ids, class labels) are zeros, a valid index for any embedding.

    Args:
        *shapes: one shape per input, e.g. ``(1, 3, 224, 224)`` or ``"1,3,224,224"``.
        dtype: one dtype for all inputs, or a sequence with one per input.
        device: where to create them; ``"meta"`` allocates nothing.
        requires_grad: make the floating inputs require grad (counts their gradients too).

    Returns:
        One tensor per shape.

    Raises:
        FPOInputError: no shape, a bad shape or dtype, or a dtype list of the wrong length.
    """
    import torch

    if not shapes:
        raise FPOInputError("example_inputs needs at least one shape")
    dims = [parse_shape(s) for s in shapes]
    if isinstance(dtype, (list, tuple)):
        if len(dtype) not in (1, len(dims)):
            raise FPOInputError(f"{len(dtype)} dtypes given for {len(dims)} input shapes")
        dtypes = [parse_dtype(d) for d in dtype] * (len(dims) if len(dtype) == 1 else 1)
    else:
        dtypes = [parse_dtype(dtype)] * len(dims)
    tensors = []
    for shape, dt in zip(dims, dtypes, strict=True):
        if dt.is_floating_point or dt.is_complex:
            t = torch.randn(shape, dtype=dt, device=device)
            t.requires_grad_(requires_grad)
        else:
            t = torch.zeros(shape, dtype=dt, device=device)
        tensors.append(t)
    return tuple(tensors)
