"""FPO rules for quantization-aware training: fake quantization and its fused observer.

``torch.ao.quantization``'s ``FakeQuantize`` modules (``prepare_qat``), the fused
``FusedMovingAvgObsFakeQuantize`` of its default QAT configurations, and the learnable (LSQ)
fake quantization run one aten op each. The counts follow ATen's kernels
(``FakeQuantPerTensorAffine.cpp``, ``FakeQuantPerChannelAffine.cpp``,
``fused_obs_fake_quant.cpp``); compares made on integers (the gradient mask) are not floating
point and count 0, as elsewhere. Conventions as in :mod:`greenprint.fpo._rules_misc`.

Fake quantization of one element, with ``inv_scale = 1 / scale`` computed once per scale:

    q = round(x * inv_scale) + zero_point          # multiply, round, add: 3
    out = (min(max(q, q_min), q_max) - zero_point) * scale   # two compares, subtract, multiply: 4

7 FPO per element + 1 per scale value.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import numel, register_rule

__all__: list[str] = []

#: per element: ``round(x * inv_scale) + zp``, clamp (2 compares), ``- zp``, ``* scale``
FAKE_QUANT_PER_ELEMENT = 7
#: per scale value: choosing the observer's scale and zero point from its running min and max:
#: ``min(min, 0)``, ``max(max, 0)``, ``scale = (max - min) / (q_max - q_min)``, ``max(scale, eps)``,
#: ``zero_point = q_min - min / scale`` (2), round, clamp (2): 10
CHOOSE_QPARAMS = 10
#: per scale value: the moving averages of min and max, ``r + c * (x - r)``, 3 each
MOVING_AVERAGE = 6


def _fake_quant(self: tuple[int, ...], scale: Any) -> int:
    scales = numel(scale) if isinstance(scale, tuple) else 1
    return FAKE_QUANT_PER_ELEMENT * numel(self) + scales


@register_rule(["aten.fake_quantize_per_tensor_affine_cachemask"])
def fake_quantize_per_tensor_rule(
    self: tuple[int, ...], scale: Any = 1.0, *args: Any, **kwargs: Any
) -> int:
    """``7N + 1``: per element round, shift, clamp, unshift, rescale (the module); ``1 / scale``.

    The gradient mask (``q_min <= q <= q_max``) compares integers: 0.
    """
    return _fake_quant(self, scale)


def _enabled(
    self: Any, scale: Any, zero_point: Any, fake_quant_enabled: Any, *a: Any, **k: Any
) -> dict[str, bool]:
    """Whether the (real) ``fake_quant_enabled`` flag is set: ``{"enabled": bool}``."""
    return {"enabled": bool(int(fake_quant_enabled.reshape(-1)[0]) == 1)}


@register_rule(["aten._fake_quantize_per_tensor_affine_cachemask_tensor_qparams"], reads=_enabled)
def fake_quantize_tensor_qparams_rule(
    self: tuple[int, ...],
    scale: Any = None,
    *args: Any,
    enabled: bool = True,
    **kwargs: Any,
) -> int:
    """``7N + 1`` as ``fake_quantize_per_tensor_affine``; 0 when ``fake_quant_enabled`` is 0.

    ``FakeQuantize.disable_fake_quant()`` passes the input through (a copy). The flag is read
    from real tensors; on meta or fake tensors the quantization is counted (an upper bound).
    """
    return _fake_quant(self, scale) if enabled else 0


@register_rule(["aten.fake_quantize_per_channel_affine_cachemask"])
def fake_quantize_per_channel_rule(
    self: tuple[int, ...], scale: Any = None, *args: Any, **kwargs: Any
) -> int:
    """``7N + C``: as per tensor, with one ``1 / scale`` per channel (``C`` scales)."""
    return _fake_quant(self, scale)


def _observer_flags(
    self: Any, observer_on: Any, fake_quant_on: Any, *a: Any, **k: Any
) -> dict[str, bool]:
    """The (real) flags of the fused observer: ``{"observe": bool, "quantize": bool}``."""
    return {
        "observe": bool(int(observer_on.reshape(-1)[0]) == 1),
        "quantize": bool(int(fake_quant_on.reshape(-1)[0]) == 1),
    }


@register_rule(["aten._fused_moving_avg_obs_fq_helper"], reads=_observer_flags)
def fused_moving_avg_obs_fq_rule(
    self: tuple[int, ...],
    observer_on: Any = None,
    fake_quant_on: Any = None,
    running_min: Any = None,
    running_max: Any = None,
    scale: Any = None,
    zero_point: Any = None,
    averaging_const: Any = None,
    quant_min: Any = None,
    quant_max: Any = None,
    ch_axis: int = 0,
    per_row_fake_quant: bool = False,
    *args: Any,
    observe: bool = True,
    quantize: bool = True,
    **kwargs: Any,
) -> int:
    """``FusedMovingAvgObsFakeQuantize`` (the default QAT observer): observe, then quantize.

    Observing (``observer_on``): the min and max of the input, 2 compares per element
    (``aminmax``, per channel for a per-channel observer); their moving averages
    ``r + c (x - r)``, 3 each, 6 per channel; the scale and zero point chosen from them, 10 per
    channel (see ``CHOOSE_QPARAMS``). Quantizing (``fake_quant_on``): ``7N + C`` as
    ``fake_quantize_per_channel_affine``. ``C`` is the number of channels, the input's size
    along ``ch_axis`` (1 per tensor).

    The flags are read from real tensors; on meta or fake tensors both are counted (an upper
    bound when an observer or the quantization is disabled). The first observation, which
    copies the min and max instead of averaging, is counted as the others (6 FPO too many).
    """
    n = numel(self)
    # per channel: the input's size along ch_axis (the scale is resized to it by the first call,
    # which a meta kernel does not do)
    channels = self[ch_axis] if per_row_fake_quant and self else 1
    fpo = 0
    if observe:
        fpo += 2 * n + (MOVING_AVERAGE + CHOOSE_QPARAMS) * channels
    if quantize:
        fpo += FAKE_QUANT_PER_ELEMENT * n + channels
    return fpo


@register_rule(["aten._fake_quantize_learnable_per_tensor_affine"])
def learnable_per_tensor_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """LSQ forward, per tensor: ``7N + 4``.

    The zero point is rounded and clamped to ``[q_min, q_max]`` (3), then the input is fake
    quantized (``7N + 1``).
    """
    return FAKE_QUANT_PER_ELEMENT * numel(self) + 4


@register_rule(["aten._fake_quantize_learnable_per_channel_affine"])
def learnable_per_channel_rule(
    self: tuple[int, ...], scale: Any = None, *args: Any, **kwargs: Any
) -> int:
    """LSQ forward, per channel: ``7N + 4C`` (each zero point rounded and clamped; ``1/scale``)."""
    channels = numel(scale) if isinstance(scale, tuple) else 1
    return FAKE_QUANT_PER_ELEMENT * numel(self) + 4 * channels


def _count_clipped(x: Any, scale: Any, zero_point: Any, q_min: int, q_max: int) -> int:
    x, scale, zero_point = x.detach(), scale.detach(), zero_point.detach()  # no autograd graph
    q = (x * (1.0 / scale)).round() + zero_point
    return int(((q < q_min) | (q > q_max)).sum())


def _clipped_per_tensor(
    grad: Any, x: Any, scale: Any, zero_point: Any, q_min: int, q_max: int, *a: Any, **k: Any
) -> dict[str, int]:
    """How many (real) inputs quantize outside ``[q_min, q_max]``: ``{"clipped": n}``.

    The zero point is rounded half up and clamped, as ATen's backward does.
    """
    z = (zero_point.detach().reshape(-1)[0] + 0.5).clamp(q_min, q_max).floor()
    return {"clipped": _count_clipped(x, scale.reshape(-1)[0], z, q_min, q_max)}


def _clipped_per_channel(
    grad: Any,
    x: Any,
    scale: Any,
    zero_point: Any,
    axis: int,
    q_min: int,
    q_max: int,
    *a: Any,
    **k: Any,
) -> dict[str, int]:
    """As :func:`_clipped_per_tensor`, with one scale and zero point per channel of ``axis``."""
    view = [1] * x.dim()
    view[axis] = -1
    z = zero_point.detach().reshape(view).round().clamp(q_min, q_max)
    return {"clipped": _count_clipped(x, scale.reshape(view), z, q_min, q_max)}


@register_rule(
    ["aten._fake_quantize_learnable_per_tensor_affine_backward"], reads=_clipped_per_tensor
)
def learnable_per_tensor_backward_rule(
    grad: tuple[int, ...], *args: Any, clipped: int = 0, **kwargs: Any
) -> int:
    """LSQ backward, per tensor: ``14N`` + 1 per clipped element + 4.

    Per element (ATen's kernel): ``q = round(x * inv_scale) + zp`` (3); ``dx = dy * mask`` (1);
    ``x_fq = (clamp(q) - zp) * scale`` (4); inside the range ``dscale = dy (x_fq - x) inv_scale
    grad_factor`` (4), outside it ``dzp = dy (-1) scale grad_factor`` (3) and ``dscale = dy
    (q_bound - zp) grad_factor`` (2): 12, or 13 for an element quantized outside the range
    (read from real tensors; on meta or fake tensors none is, a lower bound by 1 per such
    element). Then the two sums of ``dscale`` and ``dzp`` over the elements (2N), and per call
    ``1 / scale`` and the zero point's ``+ 0.5`` and clamp (4).
    """
    return 14 * numel(grad) + clipped + 4


@register_rule(
    ["aten._fake_quantize_learnable_per_channel_affine_backward"], reads=_clipped_per_channel
)
def learnable_per_channel_backward_rule(
    grad: tuple[int, ...], x: Any = None, scale: Any = None, *args: Any, clipped: int = 0, **kw: Any
) -> int:
    """LSQ backward, per channel: ``17N`` + 1 per clipped element + 3C.

    As per tensor, with the channel's ``1 / scale``, ``q_min - zp`` and ``q_max - zp``
    computed in the kernel for each element (+3: 15 per element), the sums over each
    channel's elements (2N), and each zero point's ``+ 0.5`` and clamp (3 per channel).
    """
    channels = numel(scale) if isinstance(scale, tuple) else 1
    return 17 * numel(grad) + clipped + 3 * channels
