"""FPO rules for matrix products and convolutions (attention: :mod:`~greenprint.fpo._rules_sdpa`).

The ops FlopCounterMode counts are registered with ``matmul=True`` and return
``(matmul_fpo, other_fpo)``: the first part uses FlopCounterMode's own formulas (``2mkn`` for an
``(m x k) @ (k x n)`` product, the full score matrix for attention, causal or not), so that
``matmul_total`` equals its total, except where its formula is wrong: the grad_weight term of a
grouped convolution's backward (see :func:`convolution_backward_rule`). The second part is what
the op does on top (a bias add, an ``alpha``/``beta`` scaling, the softmax inside attention).
Products FlopCounterMode does not know (``mv``, ``dot``, CPU flash attention) return a plain
int.
"""

from __future__ import annotations

import math
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule

__all__: list[str] = []


# -- matrix products -------------------------------------------------------------------------


def mm_fpo(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """``2mkn`` for an ``(m x k) @ (k x n)`` product."""
    m, k = a
    _, n = b
    return 2 * m * k * n


def bmm_fpo(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """``2bmkn`` for a batch of ``(m x k) @ (k x n)`` products."""
    batch, m, k = a
    return 2 * batch * m * k * b[-1]


def _scalings(n: int, alpha: Any, beta: Any, has_input: bool) -> int:
    """``beta * input + alpha * product``: the add, and each scaling that is not 1."""
    if not has_input or beta == 0:
        return n if alpha != 1 else 0
    return n + (n if alpha != 1 else 0) + (n if beta != 1 else 0)


@register_rule("aten.mm", matmul=True)
def mm_rule(a: tuple[int, ...], b: tuple[int, ...], *args: Any, **kwargs: Any) -> tuple[int, int]:
    """``2mkn``."""
    return mm_fpo(a, b), 0


@register_rule("aten.addmm", matmul=True)
def addmm_rule(
    self: Any,
    a: tuple[int, ...],
    b: tuple[int, ...],
    *args: Any,
    beta: Any = 1,
    alpha: Any = 1,
    out_shape: Any = None,
    **kwargs: Any,
) -> tuple[int, int]:
    """``2mkn``; on top: the bias add (``mn``) and each of alpha, beta that is not 1 (``mn``)."""
    return mm_fpo(a, b), _scalings(a[0] * b[1], alpha, beta, True)


@register_rule("aten.bmm", matmul=True)
def bmm_rule(a: tuple[int, ...], b: tuple[int, ...], *args: Any, **kwargs: Any) -> tuple[int, int]:
    """``2bmkn``."""
    return bmm_fpo(a, b), 0


@register_rule("aten.baddbmm", matmul=True)
def baddbmm_rule(
    self: Any,
    a: tuple[int, ...],
    b: tuple[int, ...],
    *args: Any,
    beta: Any = 1,
    alpha: Any = 1,
    out_shape: Any = None,
    **kwargs: Any,
) -> tuple[int, int]:
    """``2bmkn``; on top: the add (``bmn``) and each of alpha, beta that is not 1."""
    return bmm_fpo(a, b), _scalings(a[0] * a[1] * b[2], alpha, beta, True)


@register_rule("aten._scaled_mm", matmul=True)
def scaled_mm_rule(
    a: tuple[int, ...],
    b: tuple[int, ...],
    scale_a: Any,
    scale_b: Any,
    bias: Any = None,
    scale_result: Any = None,
    *args: Any,
    **kwargs: Any,
) -> tuple[int, int]:
    """``2mkn``; on top: the two scalings, the bias add and ``scale_result`` (``mn`` each).

    fp8 products (``out = (a @ b) * scale_a * scale_b + bias``): a tensor-wise or row-wise
    scale is constant along ``k``, so it multiplies each output element once, after the sum.
    """
    n = a[0] * b[1]
    extra = (n if bias is not None else 0) + (n if scale_result is not None else 0)
    return mm_fpo(a, b), 2 * n + extra


# ScalingType (torch.nn.functional.ScalingType) -> the scale's block along k; None: constant
# along k (TensorWise 0, RowWise 1); BlockWise1x16 2, 1x32 3, 1x128 4, 128x128 5.
_SCALE_BLOCK_K: dict[int, int | None] = {0: None, 1: None, 2: 16, 3: 32, 4: 128, 5: 128}


def scale_multiplies(outputs: int, k: int, recipes: Any) -> int:
    """The multiplies by the decoding scales of one operand of a scaled product.

    ``out[i, j] = sum over k-blocks of sa(i, blk) sb(blk, j) sum_{k in blk} a[i, k] b[k, j]``:
    a scale constant along ``k`` (tensor-wise, row-wise) multiplies each of the ``outputs``
    elements once after the sum; a block-wise one (``BlockWise1xβ``, MX and NVFP4 formats)
    multiplies each block's partial sum, ``ceil(k / β)`` per output element. The partial sums
    are added into the output as the ``2k`` of the product already counts (one add per
    multiply). One term per scale of the operand (NVFP4 has a block and a tensor-wise one).
    """
    total = 0
    for recipe in recipes if isinstance(recipes, list) else [recipes]:
        block = _SCALE_BLOCK_K.get(int(recipe)) if recipe is not None else None
        total += outputs * (1 if not block else -(-k // block))
    return total


@register_rule("aten._scaled_mm_v2")
def scaled_mm_v2_rule(
    a: tuple[int, ...],
    b: tuple[int, ...],
    scale_a: Any,
    recipe_a: Any,
    swizzle_a: Any,
    scale_b: Any,
    recipe_b: Any,
    swizzle_b: Any,
    bias: Any = None,
    out_dtype: Any = None,
    contraction_dim: Any = None,
    *args: Any,
    **kwargs: Any,
) -> int:
    """``torch.nn.functional.scaled_mm``: ``2mkn`` + the scalings + ``mn`` for a bias.

    The scalings by :func:`scale_multiplies` for each operand's scales: tensor-wise and
    row-wise ``mn`` each (as ``_scaled_mm``), block-wise ``mn ceil(k / β)``. FlopCounterMode
    does not count this op, so neither does ``matmul_total``.
    """
    dims = list(contraction_dim) if contraction_dim else [len(a) - 1, 0]
    k = a[dims[0]]
    m, n = a[1 - dims[0]], b[1 - dims[1]]
    outputs = m * n
    scalings = scale_multiplies(outputs, k, recipe_a) + scale_multiplies(outputs, k, recipe_b)
    return 2 * outputs * k + scalings + (outputs if bias is not None else 0)


@register_rule("aten.addbmm")
def addbmm_rule(
    self: Any,
    a: tuple[int, ...],
    b: tuple[int, ...],
    *args: Any,
    beta: Any = 1,
    alpha: Any = 1,
    **kwargs: Any,
) -> int:
    """``beta * input + alpha * sum_b (a_b @ b_b)``, as ATen's ``addbmm_impl_`` runs it.

    One ``addmm_`` per batch (not counted by FlopCounterMode): each is the product (``2mkn``),
    the add into the output (``mn``; none for the first when ``beta`` is 0) and ``alpha``'s
    scaling when it is not 1 (``mn``); ``beta``'s scaling (not 0 or 1) once, in the first.
    So ``2bmkn + bmn`` for plain ``addbmm`` (it was ``2bmkn + bmn + mn``: the add into the
    input counted twice).
    """
    batches, mn = a[0], a[1] * b[2]
    adds = batches * mn - (mn if beta == 0 and batches else 0)
    scalings = (batches * mn if alpha != 1 else 0) + (mn if beta not in (0, 1) else 0)
    return bmm_fpo(a, b) + adds + scalings


@register_rule(["aten.addmm_", "aten.baddbmm_", "aten.addbmm_"])
def inplace_product_rule(
    self: Any, a: tuple[int, ...], b: tuple[int, ...], *args: Any, **kw: Any
) -> int:
    """``out.addmm_(a, b)`` and the batched forms: as their out-of-place ops.

    The product, the add, the scalings. FlopCounterMode does not count the in-place forms, so
    neither does ``matmul_total``.
    """
    if len(a) == 2:
        return sum(addmm_rule(self, a, b, *args, **kw))
    if len(self) == 3:
        return sum(baddbmm_rule(self, a, b, *args, **kw))
    return addbmm_rule(self, a, b, *args, **kw)


@register_rule(["aten.mv", "aten.addmv", "aten.addmv_"])
def mv_rule(*args: Any, out_shape: Any = None, beta: Any = 1, alpha: Any = 1, **kw: Any) -> int:
    """``2mn`` (+ the add and scalings for addmv); not counted by FlopCounterMode."""
    shapes = [a for a in args if isinstance(a, tuple)]
    mat = next(s for s in shapes if len(s) == 2)
    product = 2 * mat[0] * mat[1]
    return product + (_scalings(mat[0], alpha, beta, True) if len(shapes) == 3 else 0)


@register_rule(["aten.dot", "aten.vdot"])
def dot_rule(a: tuple[int, ...], b: tuple[int, ...], **kwargs: Any) -> int:
    """``2n``; not counted by FlopCounterMode."""
    return 2 * numel(a)


@register_rule(["aten.addr", "aten.addr_"])
def addr_rule(
    self: Any, a: tuple[int, ...], b: tuple[int, ...], *, beta: Any = 1, alpha: Any = 1, **k: Any
) -> int:
    """Outer product ``mn`` + the add and scalings."""
    n = numel(a) * numel(b)
    return n + _scalings(n, alpha, beta, True)


@register_rule("aten._addmm_activation")
def addmm_activation_rule(
    self: Any,
    a: tuple[int, ...],
    b: tuple[int, ...],
    beta: Any = 1,
    alpha: Any = 1,
    use_gelu: bool = False,
    **kwargs: Any,
) -> int:
    """Fused linear + ReLU/GELU (CUDA): ``2mkn`` + bias + activation (1 or 5 per element)."""
    n = a[0] * b[1]
    return mm_fpo(a, b) + _scalings(n, alpha, beta, True) + (5 if use_gelu else 1) * n


# -- convolutions ----------------------------------------------------------------------------


def conv_fpo(
    x: tuple[int, ...], w: tuple[int, ...], out: tuple[int, ...], transposed: bool = False
) -> int:
    """The products of a convolution: ``2 * N * numel(weight) * positions``.

    Every multiply-accumulate pairs one weight element with one input element at one position,
    so a convolution does ``N * numel(weight) * positions`` of them, 2 FPO each. ``positions``
    is the output's spatial size for a convolution, the input's for a transposed one (each
    input position is scattered through the whole kernel). ``numel(weight)`` is
    ``C_out * C_in/groups * kernel`` (``C_in * C_out/groups * kernel`` transposed): the groups
    are already in the weight's shape. Stride, padding and dilation act through ``positions``.
    Padded zeros count: every kernel tap at every output position (input position, transposed)
    is one multiply-accumulate, whether it lands on padding or not (FlopCounterMode's
    convention).
    """
    spatial = (x if transposed else out)[2:]
    return 2 * x[0] * math.prod(w) * math.prod(spatial)


@register_rule(
    ["aten.convolution", "aten._convolution", "aten.convolution_overrideable"], matmul=True
)
def convolution_rule(
    x: tuple[int, ...],
    w: tuple[int, ...],
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> tuple[int, int]:
    """The products (:func:`conv_fpo`); on top: the bias add, one per output element."""
    out = first_shape(out_shape)
    return conv_fpo(x, w, out, bool(transposed)), numel(out) if bias is not None else 0


@register_rule("aten.cudnn_convolution", matmul=True)
def cudnn_convolution_rule(
    x: tuple[int, ...], w: tuple[int, ...], *args: Any, out_shape: Any = None, **kwargs: Any
) -> tuple[int, int]:
    """The products (cuDNN's convolution has no bias; it is never transposed).

    FlopCounterMode reads this op's ``benchmark`` argument as ``transposed``, so on a direct
    call with ``benchmark=True`` it counts input positions, not output positions (``stride**d``
    times too many).
    """
    return conv_fpo(x, w, first_shape(out_shape), False), 0


@register_rule("aten._slow_conv2d_forward", matmul=True)
def slow_conv2d_rule(
    x: tuple[int, ...],
    w: tuple[int, ...],
    kernel_size: Any,
    bias: Any = None,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> tuple[int, int]:
    """The products; on top: the bias add (FlopCounterMode's formula fails on this op)."""
    out = first_shape(out_shape)
    return conv_fpo(x, w, out, False), numel(out) if bias is not None else 0


@register_rule("aten.convolution_backward", matmul=True)
def convolution_backward_rule(
    grad_out: tuple[int, ...],
    x: tuple[int, ...],
    w: tuple[int, ...],
    bias_sizes: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: int,
    output_mask: Any,
    *,
    out_shape: Any = None,
    **kwargs: Any,
) -> tuple[int, int]:
    """Convolution backward: grad_input and grad_weight, the forward's products each.

    Each multiply-accumulate of the forward, ``out[o] += w[k] * x[i]``, becomes one in
    grad_input (``gx[i] += w[k] * g[o]``) and one in grad_weight (``gw[k] += x[i] * g[o]``):
    each term is exactly :func:`conv_fpo` of the forward, for any groups, stride, padding,
    dilation, output padding, transposed or not. grad_bias, on top: one add per element of the
    output gradient.

    FlopCounterMode (torch 2.13, 2.14) counts grad_weight as a convolution over all ``C_in``
    input channels instead of ``C_in/groups``: ``groups`` times too many for a grouped or
    depthwise convolution (PyTorch pull request 183405 divides it by the groups).
    """
    mask = list(output_mask)
    products = conv_fpo(x, w, grad_out, bool(transposed)) * (bool(mask[0]) + bool(mask[1]))
    other = numel(grad_out) if len(mask) > 2 and mask[2] else 0
    return products, other
