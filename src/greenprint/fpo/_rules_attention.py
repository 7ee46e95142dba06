"""FPO rules for the fused transformer fast paths and the grouped matrix product of MoE layers.

``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` run one fused kernel in eval mode
under ``no_grad`` (``aten._native_multi_head_attention``, ``aten._transformer_encoder_layer_fwd``).
Each is counted as the sum of what the counter charges for the ops of the slow path the module
runs when the fast path is off (``torch.backends.mha.set_fastpath_enabled(False)``): the
projections, the attention, the norms, the feed-forward block and the residual adds. So an eval
count does not depend on which path torch picked.

``aten._grouped_mm`` (mixture-of-experts layers: one product per expert over that expert's
rows) is ``2mkn`` summed over the groups.

FlopCounterMode counts none of these ops, so, like CPU flash attention, they count in ``total``
and not in ``matmul_total`` (which stays equal to FlopCounterMode's total).
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule
from greenprint.fpo._rules_norm import cpu_lanes, layer_norm_forward_fpo

__all__: list[str] = []

_RELU, _GELU = 1, 5  # FPO per element, as the pointwise rules count relu and (erf) gelu


def _linear(rows: int, k: int, n: int) -> int:
    """``rows x k`` times ``k x n`` plus the bias add: ``2 rows k n + rows n``."""
    return 2 * rows * k * n + rows * n


def _attention_core(
    q: tuple[int, ...],
    k: tuple[int, ...],
    heads: int,
    *,
    masked: bool,
    need_weights: bool,
    average_weights: bool,
) -> int:
    """The attention between the projections, as the slow path of ``nn.MultiheadAttention``.

    ``q`` is ``(..., L, E)``, ``k`` is ``(..., S, E)``; ``B`` is the product of the leading
    dimensions and ``P = B * heads * L * S`` the number of scores. Both products are
    ``2 B L S E`` each.

    * ``need_weights=False`` (scaled-dot-product attention, counted as its math path): scale Q
      and K (one multiply per element of each), the mask add (``P``, when masked),
      ``_safe_softmax`` (``6P - R`` for ``R = B * heads * L`` rows: ATen's softmax and a
      compare with ``-inf`` per score).
    * ``need_weights=True`` (the explicit path that returns the weights): scale Q (one per
      element), the mask add (``P``, fused into ``baddbmm``), softmax (``5P - R``), and, when
      the weights are averaged over the heads, the mean (``P`` adds + ``B L S`` divisions).

    (Softmax was ``5P`` in both in earlier versions.)
    """
    length, embed = q[-2], q[-1]
    source = k[-2]
    batch = numel(q) // max(1, length * embed)
    scores = batch * heads * length * source
    rows = batch * heads * length if scores else 0
    total = 2 * (2 * batch * length * source * embed) + 5 * scores - rows
    total += scores if masked else 0
    if not need_weights:
        return total + scores + numel(q) + numel(k)
    total += numel(q)
    if average_weights:
        total += scores + batch * length * source
    return total


def multi_head_attention_fpo(
    q: tuple[int, ...],
    k: tuple[int, ...],
    v: tuple[int, ...],
    heads: int,
    *,
    masked: bool,
    need_weights: bool,
    average_weights: bool,
) -> int:
    """``nn.MultiheadAttention``'s slow path, projections included.

    In-projection of query, key and value (``2E + 1`` per element of each: the ``E x E``
    product and the bias), the attention (:func:`_attention_core`), the out-projection
    (``2E + 1`` per element of the output, shaped as the query).
    """
    embed = q[-1]
    projections = sum(_linear(numel(t) // embed, embed, embed) for t in (q, k, v))
    out_proj = _linear(numel(q) // embed, embed, embed)
    core = _attention_core(
        q, k, heads, masked=masked, need_weights=need_weights, average_weights=average_weights
    )
    return projections + core + out_proj


@register_rule("aten._native_multi_head_attention")
def native_multi_head_attention_rule(
    query: tuple[int, ...],
    key: tuple[int, ...],
    value: tuple[int, ...],
    embed_dim: int,
    num_head: int,
    qkv_weight: Any,
    qkv_bias: Any,
    proj_weight: Any,
    proj_bias: Any,
    mask: Any = None,
    need_weights: bool = True,
    average_attn_weights: bool = True,
    mask_type: Any = None,
    **kwargs: Any,
) -> int:
    """The fused ``nn.MultiheadAttention`` (eval, no grad): its slow path's count.

    See :func:`multi_head_attention_fpo`; the mask counts one add per score.
    """
    return multi_head_attention_fpo(
        tuple(query),
        tuple(key),
        tuple(value),
        int(num_head),
        masked=mask is not None,
        need_weights=bool(need_weights),
        average_weights=bool(average_attn_weights),
    )


def _layer_norm(n: int, rows: int) -> int:
    """Layer norm of float32 rows, as ``native_layer_norm`` counts it (ATen's CPU kernel)."""
    return layer_norm_forward_fpo(n, rows, cpu_lanes(4))


@register_rule("aten._transformer_encoder_layer_fwd")
def transformer_encoder_layer_rule(
    src: tuple[int, ...],
    embed_dim: int,
    num_heads: int,
    qkv_weight: Any,
    qkv_bias: Any,
    proj_weight: Any,
    proj_bias: Any,
    use_gelu: bool,
    norm_first: bool,
    eps: Any,
    norm_weight_1: Any,
    norm_bias_1: Any,
    norm_weight_2: Any,
    norm_bias_2: Any,
    ffn_weight_1: tuple[int, ...],
    ffn_bias_1: Any,
    ffn_weight_2: Any,
    ffn_bias_2: Any,
    mask: Any = None,
    mask_type: Any = None,
    **kwargs: Any,
) -> int:
    """The fused ``nn.TransformerEncoderLayer`` (eval, no grad): its slow path's count.

    Self-attention as :func:`multi_head_attention_fpo` without weights; two residual adds
    (``N`` each); two layer norms (as ``native_layer_norm``); the feed-forward block
    ``linear(E -> F)``, ReLU (1 per element) or GELU (5), ``linear(F -> E)``. ``N`` is the
    number of elements of ``src`` and a row is one token (``N / E`` rows).
    """
    src = tuple(src)
    n, embed = numel(src), src[-1]
    rows = n // max(1, embed)
    hidden = ffn_weight_1[0]
    attention = multi_head_attention_fpo(
        src,
        src,
        src,
        int(num_heads),
        masked=mask is not None,
        need_weights=False,
        average_weights=False,
    )
    activation = (_GELU if use_gelu else _RELU) * rows * hidden
    feed_forward = _linear(rows, embed, hidden) + activation + _linear(rows, hidden, embed)
    return attention + feed_forward + 2 * n + 2 * _layer_norm(n, rows)


def _group_end(a: Any, b: Any, offs: Any = None, *args: Any, **kwargs: Any) -> dict[str, int]:
    """Where the (real) groups end along the split dimension, ``offs[-1]``: ``{"used": n}``."""
    if offs is None or not offs.numel():
        return {}
    return {"used": int(offs.reshape(-1)[-1])}


@register_rule("aten._grouped_mm", reads=_group_end)
def grouped_mm_rule(
    a: tuple[int, ...],
    b: tuple[int, ...],
    offs: Any = None,
    bias: Any = None,
    out_dtype: Any = None,
    *,
    out_shape: Any = None,
    used: int | None = None,
    **kwargs: Any,
) -> int:
    """``2mkn`` summed over the groups (+ one add per output element with a bias).

    The four layouts of ``torch._grouped_mm(a, b, offs)`` (``offs``: the groups' cumulative
    end offsets along the dimension the groups split):

    * ``(M, K) x (G, K, N) -> (M, N)``, rows split (MoE experts): ``sum 2 m_g K N = 2MKN``;
    * ``(G, M, K) x (G, K, N) -> (G, M, N)``, no offsets: ``2GMKN``;
    * ``(M, K) x (K, N) -> (G, M, N)``, K split (the weight gradient): ``2MKN``;
    * ``(G, M, K) x (K, N) -> (M, N)``, columns split: ``2MKN``.

    Rows (or ``k``, or columns) past ``offs[-1]`` belong to no group and are not computed
    (a buffer padded to a capacity): ``offs[-1]`` is read from real tensors and only the rows
    up to it count. On meta or fake tensors, which have no values, every row is taken to
    belong to a group (an upper bound when the buffer is padded).
    """
    out = first_shape(out_shape)
    if used is not None and offs is not None:
        if len(a) == 2 and len(b) == 3:  # rows split: the first ``used`` rows of a
            return 2 * used * a[1] * b[-1] + (used * b[-1] if bias is not None else 0)
        if len(a) == 2 and len(b) == 2:  # k split
            return 2 * a[0] * used * b[1] + (numel(out) if bias is not None else 0)
        if len(a) == 3 and len(b) == 2:  # columns split
            return 2 * a[1] * a[2] * used + (a[1] * used if bias is not None else 0)
    return _grouped_products(a, b, out) + (numel(out) if bias is not None else 0)


def _grouped_products(a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...]) -> int:
    """``2mkn`` summed over the groups, for the four layouts of :func:`grouped_mm_rule`."""
    if len(a) == 2 and len(b) == 2:
        return 2 * a[0] * a[1] * b[1]
    if len(a) == 3 and len(b) == 2:
        return 2 * a[1] * a[2] * b[1]
    return 2 * a[-1] * numel(out)  # (M, K) x (G, K, N) and (G, M, K) x (G, K, N)


@register_rule("aten._scaled_grouped_mm")
def scaled_grouped_mm_rule(
    a: tuple[int, ...],
    b: tuple[int, ...],
    scale_a: Any,
    scale_b: Any,
    offs: Any = None,
    bias: Any = None,
    scale_result: Any = None,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """fp8 grouped product (MoE experts): as ``_grouped_mm``, + 2 per output element.

    Its scales are row-wise (one per row of ``a``, one per column of each expert's ``b``),
    constant along ``k``: each output element is multiplied by its two scales once after the
    sum (as ``_scaled_mm``); + 1 per output element for a bias and for ``scale_result``.
    """
    out = first_shape(out_shape)
    n = numel(out)
    extra = 2 * n + (n if bias is not None else 0) + (n if scale_result is not None else 0)
    return _grouped_products(a, b, out) + extra


@register_rule("aten._scaled_grouped_mm_v2")
def scaled_grouped_mm_v2_rule(
    a: tuple[int, ...],
    b: tuple[int, ...],
    scale_a: Any,
    recipe_a: Any,
    swizzle_a: Any,
    scale_b: Any,
    recipe_b: Any,
    swizzle_b: Any,
    offs: Any = None,
    bias: Any = None,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """``torch.nn.functional.scaled_grouped_mm``: as ``_grouped_mm`` + the scalings.

    Each output element sums over ``k = products / (2 outputs)`` values of its group; each
    operand's scales multiply it once (tensor-wise, row-wise) or once per ``k``-block
    (block-wise): see :func:`greenprint.fpo._rules_linalg.scale_multiplies`.
    """
    from greenprint.fpo._rules_linalg import scale_multiplies

    out = first_shape(out_shape)
    n = numel(out)
    products = _grouped_products(a, b, out)
    k = products // (2 * n) if n else 0
    scalings = scale_multiplies(n, k, recipe_a) + scale_multiplies(n, k, recipe_b)
    return products + scalings + (n if bias is not None else 0)
