"""FPO rules for scaled dot product attention: its kernels, forward and backward.

Split out of :mod:`greenprint.fpo._rules_linalg` (matrix products and convolutions), whose
conventions these follow: FlopCounterMode's own formulas for the products (the full score
matrix, causal or not) as ``matmul_fpo``, and what the kernel does on top (the scaling, the
mask, the softmax, dropout) as ``other_fpo``; CPU flash attention, which FlopCounterMode does
not count, as a plain int. Loaded for effect by :mod:`greenprint.fpo.rules`.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import numel, register_rule

__all__: list[str] = []


# -- attention -------------------------------------------------------------------------------


def sdpa_products(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> int:
    """FlopCounterMode's attention count for ``(b, h, s, d)`` tensors: ``QK^T`` and ``PV``.

    The full score matrix is counted whether or not a causal mask hides part of it.
    """
    b, h, sq, d = q
    sk, dv = k[2], v[3]
    return 2 * b * h * sq * d * sk + 2 * b * h * sq * sk * dv


def sdpa_backward_products(
    g: tuple[int, ...], q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]
) -> int:
    """FlopCounterMode's fused attention backward: five products, the score matrix recomputed."""
    b, h, sq, d = q
    sk, dv = k[2], v[3]
    bh = b * h
    return 2 * bh * (sq * d * sk + sq * dv * sk + sk * sq * dv + sq * sk * d + d * sq * sk)


def _scores(q: tuple[int, ...], k: tuple[int, ...]) -> int:
    """Elements of the score matrix for ``(b, h, s, d)`` tensors."""
    return q[0] * q[1] * q[2] * k[2]


def attention_extras(
    q: tuple[int, ...], k: tuple[int, ...], *, masked: bool, dropout_p: Any = 0.0
) -> int:
    """What attention does besides its two products, as the math path writes it.

    Scale Q and K by sqrt(scale) (one multiply per element of each), add the mask (one per
    score, with a mask or ``is_causal``), ``_safe_softmax`` (6 per score less 1 per query row:
    ATen's softmax and a compare with ``-inf``; 5 per score in earlier versions), dropout (2
    per score).
    """
    s = _scores(q, k)
    rows = q[0] * q[1] * q[2]
    k_elems = q[0] * q[1] * k[2] * k[3]  # K broadcast to the query's heads (GQA)
    softmax = 6 * s - rows if s else 0
    return numel(q) + k_elems + (s if masked else 0) + softmax + (2 * s if dropout_p else 0)


def attention_backward_extras(
    q: tuple[int, ...], k: tuple[int, ...], *, dropout_p: Any = 0.0
) -> int:
    """Softmax backward, the two scalings' backward, dropout's backward.

    The softmax backward along the scores' last dimension is 4 per score less 1 per query row
    (ATen's kernel sums ``g y`` from its first product; 4 per score in earlier versions).
    """
    s = _scores(q, k)
    rows = q[0] * q[1] * q[2] if s else 0
    k_elems = q[0] * q[1] * k[2] * k[3]
    return 4 * s - rows + numel(q) + k_elems + (2 * s if dropout_p else 0)


@register_rule("aten._scaled_dot_product_flash_attention", matmul=True)
def sdpa_flash_rule(
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    dropout_p: Any = 0.0,
    is_causal: bool = False,
    *args: Any,
    **kwargs: Any,
) -> tuple[int, int]:
    """Products as FlopCounterMode; extras: scaling, causal mask, softmax, dropout."""
    extras = attention_extras(q, k, masked=bool(is_causal), dropout_p=dropout_p)
    return sdpa_products(q, k, v), extras


@register_rule(
    ["aten._scaled_dot_product_efficient_attention", "aten._scaled_dot_product_cudnn_attention"],
    matmul=True,
)
def sdpa_efficient_rule(
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    attn_bias: Any = None,
    compute_log_sumexp: Any = False,
    dropout_p: Any = 0.0,
    is_causal: bool = False,
    *args: Any,
    **kwargs: Any,
) -> tuple[int, int]:
    """Products as FlopCounterMode; extras: scaling, bias or causal mask, softmax, dropout."""
    masked = attn_bias is not None or bool(is_causal)
    return sdpa_products(q, k, v), attention_extras(q, k, masked=masked, dropout_p=dropout_p)


@register_rule(
    [
        "aten._scaled_dot_product_flash_attention_backward",
        "aten._scaled_dot_product_efficient_attention_backward",
        "aten._scaled_dot_product_cudnn_attention_backward",
    ],
    matmul=True,
)
def sdpa_fused_backward_rule(
    g: tuple[int, ...],
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    *args: Any,
    **kwargs: Any,
) -> tuple[int, int]:
    """Five products (scores recomputed, as FlopCounterMode), plus extras.

    Extras: recomputing the probabilities (subtract the log-sum-exp, exp: 2 per score), the
    softmax backward, the scalings and dropout's backward (2 per score, as the forward).
    """
    extras = 2 * _scores(q, k) + attention_backward_extras(q, k, dropout_p=_dropout_of(args))
    return sdpa_backward_products(g, q, k, v), extras


def _dropout_of(args: tuple[Any, ...]) -> Any:
    """The dropout probability among a fused attention backward's positional arguments.

    It is the only float the schemas pass positionally (the scale is keyword-only; sequence
    lengths are ints).
    """
    return next((a for a in args if isinstance(a, float)), 0.0)


@register_rule("aten._scaled_dot_product_flash_attention_for_cpu")
def sdpa_cpu_rule(
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    dropout_p: Any = 0.0,
    is_causal: bool = False,
    *,
    attn_mask: Any = None,
    **kwargs: Any,
) -> int:
    """CPU flash attention, which FlopCounterMode counts as 0: the math path's count.

    Two products, scaling, mask, softmax: so that a CPU run and a meta run agree.
    """
    masked = attn_mask is not None or bool(is_causal)
    return sdpa_products(q, k, v) + attention_extras(q, k, masked=masked, dropout_p=dropout_p)


@register_rule("aten._scaled_dot_product_fused_attention_overrideable")
def sdpa_overrideable_rule(
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    attn_bias: Any = None,
    dropout_p: Any = 0.0,
    is_causal: bool = False,
    *args: Any,
    **kwargs: Any,
) -> int:
    """Out-of-tree backends' fused attention (not counted by FlopCounterMode): as the CPU one."""
    masked = attn_bias is not None or bool(is_causal)
    return sdpa_products(q, k, v) + attention_extras(q, k, masked=masked, dropout_p=dropout_p)


@register_rule("aten._scaled_dot_product_flash_attention_for_cpu_backward")
def sdpa_cpu_backward_rule(
    g: tuple[int, ...],
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    out: Any,
    logsumexp: Any,
    dropout_p: Any = 0.0,
    *args: Any,
    **kwargs: Any,
) -> int:
    """The math path's backward of q, k and v: products dP, dV, dQ, dK, softmax backward.

    Four products, the softmax backward and the scalings.

    The CPU kernel computes the gradients of q, k and v whichever need one (the op takes no
    mask and returns all three), so all three are counted: with only some needing a gradient
    this is more than the math path (the meta device) runs, by the work of the others.
    """
    b, h, sq, d = q
    sk, dv = k[2], v[3]
    products = 2 * b * h * sq * sk * (2 * dv + 2 * d)
    # grouped-query attention: the math path repeats K and V per query head, and its backward
    # sums the repeated gradients back (one add per element of the repeated K and V)
    regroup = b * h * sk * (d + dv) if k[1] != h else 0
    return products + attention_backward_extras(q, k, dropout_p=dropout_p) + regroup


def _inner_bhsd(t: tuple[int, ...], cu_seqlens: Any, max_len: Any) -> tuple[int, ...]:
    """The inner flash/efficient kernels' ``(b, s, h, d)`` layout as ``(b, h, s, d)``.

    Nested (jagged) inputs, ``(total, h, d)`` or ``(1, total, h, d)`` with cumulative sequence
    lengths, are counted as a padded batch at the maximum length, as FlopCounterMode does on
    fake tensors.
    """
    if cu_seqlens is not None and isinstance(cu_seqlens, tuple) and isinstance(max_len, int):
        return (max(1, cu_seqlens[0] - 1), t[-2], max_len, t[-1])
    return (t[0], t[2], t[1], t[3])


@register_rule("aten._flash_attention_forward", matmul=True)
def flash_forward_rule(
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    cum_seq_q: Any = None,
    cum_seq_k: Any = None,
    max_q: Any = None,
    max_k: Any = None,
    dropout_p: Any = 0.0,
    is_causal: bool = False,
    *args: Any,
    **kwargs: Any,
) -> tuple[int, int]:
    """Products of the attention (full score matrix); extras as the fused overloads.

    FlopCounterMode reads these ``(b, s, h, d)`` shapes as ``(b, h, s, d)``; greenprint uses
    the real layout, so the two differ on direct calls of this inner kernel.
    """
    qh, kh, vh = (
        _inner_bhsd(t, cum_seq_q if t is q else cum_seq_k, max_q if t is q else max_k)
        for t in (q, k, v)
    )
    extras = attention_extras(qh, kh, masked=bool(is_causal), dropout_p=dropout_p)
    return sdpa_products(qh, kh, vh), extras


@register_rule("aten._efficient_attention_forward", matmul=True)
def efficient_forward_rule(
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    bias: Any = None,
    cu_seqlens_q: Any = None,
    cu_seqlens_k: Any = None,
    max_seqlen_q: Any = None,
    max_seqlen_k: Any = None,
    dropout_p: Any = 0.0,
    custom_mask_type: int = 0,
    *args: Any,
    **kwargs: Any,
) -> tuple[int, int]:
    """As :func:`flash_forward_rule`; masked with a bias or a causal mask type."""
    qh = _inner_bhsd(q, cu_seqlens_q, max_seqlen_q)
    kh = _inner_bhsd(k, cu_seqlens_k, max_seqlen_k)
    vh = _inner_bhsd(v, cu_seqlens_k, max_seqlen_k)
    masked = bias is not None or bool(custom_mask_type)
    return sdpa_products(qh, kh, vh), attention_extras(qh, kh, masked=masked, dropout_p=dropout_p)


@register_rule("aten._flash_attention_backward", matmul=True)
def flash_backward_rule(
    g: tuple[int, ...],
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    out: Any,
    logsumexp: Any,
    cum_seq_q: Any = None,
    cum_seq_k: Any = None,
    max_q: Any = None,
    max_k: Any = None,
    *args: Any,
    **kwargs: Any,
) -> tuple[int, int]:
    """Five products (scores recomputed); extras as the fused backward overloads."""
    seqs = (cum_seq_q, max_q), (cum_seq_k, max_k)
    return _varlen_backward(g, q, k, v, *seqs, dropout_p=_dropout_of(args))


@register_rule("aten._efficient_attention_backward", matmul=True)
def efficient_backward_rule(
    g: tuple[int, ...],
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    bias: Any,
    out: Any,
    cu_seqlens_q: Any = None,
    cu_seqlens_k: Any = None,
    max_seqlen_q: Any = None,
    max_seqlen_k: Any = None,
    *args: Any,
    **kwargs: Any,
) -> tuple[int, int]:
    """Five products (scores recomputed); extras as the fused backward overloads."""
    seqs = (cu_seqlens_q, max_seqlen_q), (cu_seqlens_k, max_seqlen_k)
    return _varlen_backward(g, q, k, v, *seqs, dropout_p=_dropout_of(args))


def _varlen_backward(
    g: tuple[int, ...],
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    seq_q: tuple[Any, Any],
    seq_k: tuple[Any, Any],
    *,
    dropout_p: Any = 0.0,
) -> tuple[int, int]:
    """Flash/efficient attention backward, padded or packed (variable-length) inputs.

    ``seq_q``/``seq_k`` are (cumulative sequence lengths, max length), ``(None, None)`` when padded.
    """
    qh, gh = _inner_bhsd(q, *seq_q), _inner_bhsd(g, *seq_q)
    kh, vh = _inner_bhsd(k, *seq_k), _inner_bhsd(v, *seq_k)
    extras = 2 * _scores(qh, kh) + attention_backward_extras(qh, kh, dropout_p=dropout_p)
    return sdpa_backward_products(gh, qh, kh, vh), extras
