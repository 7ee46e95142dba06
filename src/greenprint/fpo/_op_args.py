"""What the FPO counter reads of an op's arguments: shapes, dtypes, devices, gradients.

Tensors become shapes for the rules (:func:`_shapes`, nested tensors padded); whether the
arguments have values (not meta, not fake), are on the meta device, are quantized; which inputs
of the autograd node running need a gradient; and whether the quantized engine picks an int8
op's kernel. Used by :class:`~greenprint.fpo.FPOCounter` and its dispatch mode.
"""

from __future__ import annotations

from typing import Any

import torch

# The int8 kernels' namespace (quantized.linear, quantized.conv2d_relu...): their tensors are
# all quantized (quint8, qint8), yet they scale, add a float bias and requantize in floating
# point, which their rules (greenprint.fpo._rules_quantized) count; so a rule of this namespace
# counts whatever its tensors' dtypes. An aten op given a quantized tensor runs its QuantizedCPU
# kernel: those that dequantize, compute in float and requantize (aten.sigmoid, avg_pool2d, cat...)
# are counted by the rules of _rules_quantized.ON_QUANTIZED in place of the float rule; any other
# op on quantized or integer tensors only (aten.relu on quint8 clamps integers) is integer work: 0,
# listed in by_op.
_INT8_KERNELS = "quantized."
# The int8 rules of ops that the quantized engine decides the kernel of (with the quantized.*
# ones, and _ON_QUANTIZED's on quantized tensors): under "qnnpack" the count says they were
# counted as the x86 kernels (_rules_quantized_base.qnnpack_engine)
_INT8_ENGINE_OPS = frozenset({"aten.quantized_lstm", "aten.quantized_gru"})


def _needs_input_grad() -> tuple[bool, ...] | None:
    """Which inputs of the autograd node running now need a gradient (None outside backward).

    A node's ``next_functions`` has None where its forward op's input needs no gradient (data,
    a frozen weight).
    """
    node = torch._C._current_autograd_node()
    if node is None:
        return None
    return tuple(fn is not None for fn, _ in node.next_functions)


def _reads_metadata(reads: Any) -> bool:
    """Whether a rule's ``reads`` reads only metadata (dtype, strides, device), not values.

    Such a reader (marked ``metadata_only = True``, as the upsampling rules' readers of the
    dtype and the memory format are) is called on meta and fake tensors too, which carry
    their metadata; a reader of values is called on real tensors only.
    """
    return bool(getattr(reads, "metadata_only", False))


def _has_values(args: Any, kwargs: Any) -> bool:
    """Whether every tensor among the arguments has values (none is meta or fake)."""
    from torch._subclasses.fake_tensor import FakeTensor
    from torch.utils._pytree import tree_leaves

    return not any(
        isinstance(t, torch.Tensor) and (t.device.type == "meta" or isinstance(t, FakeTensor))
        for t in tree_leaves((args, kwargs))
    )


def _on_meta(args: Any, kwargs: Any) -> bool:
    """Whether a tensor among the arguments is on the meta device (a fake one included)."""
    from torch.utils._pytree import tree_leaves

    return any(
        isinstance(t, torch.Tensor) and t.device.type == "meta" for t in tree_leaves((args, kwargs))
    )


def _engine_decides(name: str, on_quantized: bool) -> bool:
    """Whether the quantized engine picks the kernel of the int8 op ``name``.

    See :data:`_INT8_ENGINE_OPS`; the embeddings' and fp16 weights' kernels are FBGEMM's or
    ATen's under every engine.
    """
    if on_quantized or name in _INT8_ENGINE_OPS:
        return True
    return name.startswith(_INT8_KERNELS) and "embedding" not in name and "_fp16" not in name


def _quantized(args: Any) -> bool:
    """Whether a quantized tensor is among the op's positional arguments (or in a list of them).

    A composite op with a rule is not decomposed on quantized tensors: torch's Python
    decompositions do not take quantized dtypes (``interpolate`` on ``quint8`` raised "Invalid
    dtype!" under the counter), while the op's own kernel calls the quantized backend's; its
    rule counts it (0 on quantized tensors only, as integer work).
    """
    for value in args:
        if isinstance(value, (list, tuple)):
            if any(isinstance(v, torch.Tensor) and v.is_quantized for v in value):
                return True
        elif isinstance(value, torch.Tensor) and value.is_quantized:
            return True
    return False


def _shapes(value: Any, floating: list[bool]) -> Any:
    """Tensors -> shapes (tuples), lists/tuples -> lists.

    Notes in ``floating`` whether any tensor is floating or complex (``[0]``) and whether any
    is complex (``[1]``).
    """
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            floating[0] = floating[1] = True
        elif value.is_floating_point():
            floating[0] = True
        try:
            return value.shape
        except RuntimeError:
            if not value.is_nested:
                raise
            return _padded_shape(value)
    if isinstance(value, (list, tuple)):
        return [_shapes(v, floating) for v in value]
    return value


def _padded_shape(value: torch.Tensor) -> tuple[int, ...]:
    """A strided nested tensor's shape once padded: ``(B, *largest component size)``.

    Nested tensors (``nn.TransformerEncoder`` in eval with a padding mask) have no shape; they
    are counted as the padded batch the slow path computes on.
    """
    sizes = value._nested_tensor_size()
    if sizes.numel() == 0:
        return (int(sizes.shape[0]),)
    return (int(sizes.shape[0]), *(int(n) for n in sizes.amax(dim=0).tolist()))
