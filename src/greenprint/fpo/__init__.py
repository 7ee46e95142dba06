"""Count the floating-point operations (FPO) of PyTorch code: every aten op, forward and backward.

``count_fpo(model, *inputs)`` and ``FPOCounter`` run the code under a ``TorchDispatchMode`` and
price every aten op with a shape-only rule from :mod:`greenprint.fpo.rules`, attributing it to
the module that ran it, in the forward pass and in the backward pass. Ops with no rule are
listed in ``unknown_ops`` with their call counts, never silently counted as zero. Meta and
FakeTensor inputs work, so a 7B-parameter model is counted without allocating its weights.
Needs the ``torch`` extra; importing this package does not import torch.

Conventions (FPO = floating-point operations: every ADD and MUL, Schwartz et al., Green AI):

* A multiply-accumulate is 2 FPO. An ``(m x k) @ (k x n)`` product is ``2mkn``, a batched one
  ``2bmkn``, exactly as ``torch.utils.flop_counter.FlopCounterMode`` counts them.
* ``matmul_total`` is the sum over the ops FlopCounterMode counts (mm, bmm, the products of
  addmm and baddbmm, convolutions and their backward, the fused scaled-dot-product attention
  overloads), computed with its formulas where they are right: it equals FlopCounterMode's
  total on the same code, except a grouped convolution's backward, whose grad_weight torch
  2.13 and 2.14 count ``groups`` times (PyTorch PR 183405 fixes it). A convolution, its
  grad_input and its grad_weight are ``2 * N * numel(weight) * positions`` each, padded zeros
  included. Attention counts the full score matrix, causal mask or not, as FlopCounterMode.
* Activation checkpointing: the forward re-run in backward is backward work, reported on its
  own as ``recompute_total`` and charged to its modules and the model.
* Everything else is added on top: bias adds and alpha/beta scalings of addmm/baddbmm (one FPO
  per output element each), elementwise ops, activations, reductions, softmax, norms, losses,
  pooling, interpolation, cumulative ops, optimizer updates run inside the counter, and fused
  kernels FlopCounterMode misses (CPU flash attention, the fused CPU LSTM layer).
* Elementwise: 1 FPO per output element for each arithmetic op, compare, min/max and elementary
  function (exp, log, sqrt, rsqrt, tanh, erf, sin, ...); sigmoid 4 (its kernel's negation, exp,
  add and reciprocal); ``add`` with ``alpha != 1``
  2; ``addcmul``/``addcdiv`` 3 (2 when value is 1); ``lerp`` 3; composite activations count the
  elementary ops of their formula: relu 1, silu 4, leaky_relu 2, hardtanh 2, hardsigmoid 4,
  hardswish 5, mish 4, softplus 6, gelu 5 (tanh approximation 9), elu 2 or 5 (a vector
  of values >= 0, or one with a value below 0: both branches); their backward: relu
  1, sigmoid and tanh 3, silu 9 (autograd's decomposition), softplus 7, gelu 11 (tanh form
  20).
* Reductions: n FPO to reduce n elements (sum, prod, max, argmax, cumsum); mean adds one
  division per output element; var (Welford's update) 6 per element + 3 per
  output (into one output two passes, 4 per element + 5); logsumexp 4 per element + 4 per
  output.
* Softmax as ATen's CPU kernels run it: 5 per element (max, subtract, exp, sum, scale) less 1
  per row (the max and the sum start from their first values; ``1 / sum`` once per row);
  log-softmax 6 per element (max, subtract, exp, sum, then ``x - max - log(sum)``: two
  subtractions) less 1 per row along the last dimension, + 1 per row along another; their
  backward 4 per element, less 1 per row along the last dimension. The math attention path's
  ``_safe_softmax`` + 1 compare per element; the masked softmax skips masked elements.
* Norms: RMS norm 3 per element + 3 per row + 1 for the weight. Batch norm, layer norm and
  group norm as ATen's CPU kernels run them, affine or not: batch norm training 7 per element
  + 9 per channel (+ 9 running statistics), eval 2 per element (``x * alpha + beta``) + 6 per
  channel, backward 4 per element whatever is asked + 6 (channels-last kernel 10) for the
  input gradient; layer norm Welford moments (6 per element + their merges per row) and 4
  per element, backward 10 per element for the input gradient, 4 and 1 for weight and bias;
  group norm layer norm's moments per group + 4, then 2 per element (+ 4 per channel with a
  weight or bias; channels-last: sums of ``x`` and ``x * x``, 5 per element + 4 per channel),
  backward 3 per element whatever is asked + 4 for the input gradient (channels-last 7 or
  8 with it), 4 and 1 per channel and sample for weight and bias.
* Attention besides its two products: scaling Q and K (1 per element of each), the mask add (1
  per score), softmax (``_safe_softmax``: 6 per score less 1 per query row), dropout (2 per
  score); backward: softmax backward (4 per score less 1 per query row), the scalings and
  dropout (2 per score; 1 on CPU, whose dropout makes the rescaled
  mask in the forward). The fused GPU backward overloads also recompute the probabilities
  (2 per score) and, as in FlopCounterMode, the score product.
* Losses: mse 2 per element (+ the reduction); nll 1 per target (3 with class weights) + its
  cascade sum's carries and final adds;
  cross-entropy is log-softmax + nll; binary cross-entropy 13 per element (the kernel's
  range checks of input and target, 4, and torch's formula, 9).
* Pooling: max pooling one compare per window element per output; average pooling one add per
  window element + one division per output (+ 1, the add into the zeroed output, on a
  contiguous input); adaptive pooling uses the exact windows; the channels-last backwards
  divide per window element (2 per window element), as ATen's kernels.
* Interpolation per output element, as ATen's kernels write it (``t_0 w_0 + ... + t_{k-1}
  w_{k-1}``, ``2k - 1`` per k-tap interpolation): nearest 0, linear 3, bilinear 9 (7 in the
  kernel a small output runs), trilinear 21, bicubic 35 (five 4-tap interpolations, 7 each);
  antialiased resizes in one pass per resized dimension over the filter's exact window
  (stretched by the scale when downsampling); backward: each tap's weights times the
  gradient added (nearest: 1 add). Plus the weights, computed where the kernel computes them:
  per output index along each axis in the forward, again inside the backward's loops.
* Dropout 2 per element (mask multiply and rescale); drawing random numbers is 0.
* Optimizers: whatever ops ``torch.optim`` runs (``add_``, ``lerp_``, ``addcdiv_``, foreach
  ops); the fused kernels count as the op-by-op versions do: Adam 13 per parameter element
  (+2 L2 weight decay, AdamW +1, +1 AMSGrad), SGD 2 (+2 momentum, +2 weight decay).
* 0 by rule (registered explicitly, so "0 by rule" differs from "no rule"): views, reshapes,
  copies, dtype casts, indexing and gather, masking (``where``, ``masked_fill``), embedding
  lookup, cat/stack/split, padding, tensor creation, random number generation, boolean logic.
* Integer and boolean arithmetic (index math, masks) is not floating point: an op whose tensors
  are all integer or boolean counts 0 (the matmul family excepted, to match FlopCounterMode).

Example:
    >>> import torch
    >>> import greenprint as gp
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU())
    >>> c = gp.count_fpo(model, torch.randn(4, 8), backward=False)
    >>> c.matmul_total, c.total  # 2*4*8*16 products; + 64 bias adds + 64 relu
    (1024, 1152)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenprint import _imports, _lazy

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.fpo._api import count_fpo, training_fpo
    from greenprint.fpo._counter import FPOCounter
    from greenprint.fpo._inputs import example_inputs
    from greenprint.fpo._registry import register_rule
    from greenprint.fpo._result import FPOResult

__all__ = [
    "FPOCounter",
    "FPOResult",
    "count_fpo",
    "example_inputs",
    "register_rule",
    "training_fpo",
]

# name -> (module, needs torch)
_LAZY = {
    "count_fpo": ("greenprint.fpo._api", True),
    "training_fpo": ("greenprint.fpo._api", True),
    "FPOCounter": ("greenprint.fpo._counter", True),
    "FPOResult": ("greenprint.fpo._result", False),
    "example_inputs": ("greenprint.fpo._inputs", True),
    "register_rule": ("greenprint.fpo.rules", False),
}


def _need_torch() -> None:
    _imports.require("torch", extra="torch", purpose="FPO counting")


__getattr__, __dir__ = _lazy.exports(__name__, globals(), _LAZY, needs=_need_torch)
