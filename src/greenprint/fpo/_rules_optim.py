"""FPO rules for optimizer updates: the ``_foreach`` ops, the fused optimizers and GradScaler.

Split out of :mod:`greenprint.fpo._rules_pointwise` (elementwise ops, activations, "0 by
rule"): what ``optimizer.step()`` runs, per parameter element (each rule's docstring derives
its count from ATen's CPU kernel), and ``torch.amp.GradScaler``'s unscale and scale update.
Loaded for effect by :mod:`greenprint.fpo.rules`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule, shapes_in, zero
from greenprint.fpo._rules_nn import _norm_path, vector_norm_fpo
from greenprint.fpo._rules_pointwise import _ops

__all__: list[str] = []


# -- optimizer updates ------------------------------------------------------------------------


def _foreach(cost: int) -> Callable[..., int]:
    def rule(tensors: Any, *args: Any, **kwargs: Any) -> int:
        return cost * sum(numel(s) for s in shapes_in(tensors))

    rule.__doc__ = f"{cost} FPO per element of every tensor in the first list."
    rule.__name__ = rule.__qualname__ = f"foreach_{cost}"
    return rule


_FOREACH_ONE = """
    mul div sqrt neg reciprocal maximum minimum clamp_min clamp_max exp log abs sign pow rsqrt
    sigmoid tanh
"""

register_rule(_ops(*(f"_foreach_{name}" for name in _FOREACH_ONE.split())))(_foreach(1))


def _reads_foreach_norm(
    tensors: Any, ord: Any = 2, dtype: Any = None, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """Each tensor's vector-norm kernel (``_rules_nn._norm_path``, over every dimension)."""
    try:
        return {"paths": [_norm_path(t, None, dtype) for t in tensors]}
    except (AttributeError, RuntimeError, TypeError, ValueError, IndexError):
        return {}


_reads_foreach_norm.metadata_only = True  # type: ignore[attr-defined]


@register_rule("aten._foreach_norm", reads=_reads_foreach_norm)
def foreach_norm_rule(
    tensors: Any, ord: Any = 2, *args: Any, paths: Any = None, **kwargs: Any
) -> int:
    """Each tensor's vector norm, as ``linalg_vector_norm`` counts it (``_rules_nn.norm_rule``).

    The CPU kernel runs ``linalg_vector_norm`` over every dimension of each tensor: p=2 on a
    dense float tensor (a parameter's gradient) the vectorised kernel, ``2N + 8`` (double
    ``2N + 4``), else ``2N + 1``; p=0, 1 or inf ``2N``; other p ``3N + 2``.
    ``clip_grad_norm_`` with ``foreach=True`` thus counts as with ``foreach=False``.
    """
    shapes = list(shapes_in(tensors))
    reads = paths if paths is not None and len(paths) == len(shapes) else [{}] * len(shapes)
    return sum(
        vector_norm_fpo(numel(shape), 1, ord, **read)
        for shape, read in zip(shapes, reads, strict=True)
    )


register_rule(_ops("_foreach_lerp"))(_foreach(3))


def _elements(tensors: Any) -> int:
    return sum(numel(s) for s in shapes_in(tensors))


@register_rule(_ops("_foreach_add", "_foreach_sub"))
def foreach_add_rule(tensors: Any, *args: Any, alpha: Any = 1, **kwargs: Any) -> int:
    """As ``add`` for every tensor of the list: 1 FPO per element, 2 when ``alpha`` is not 1."""
    return (1 if alpha == 1 else 2) * _elements(tensors)


@register_rule(_ops("_foreach_addcmul", "_foreach_addcdiv"))
def foreach_addcmul_rule(tensors: Any, t1: Any, t2: Any, value: Any = 1, **kwargs: Any) -> int:
    """As ``addcmul``/``addcdiv`` for every tensor: 3 FPO per element, 2 when value is 1."""
    return (2 if value == 1 else 3) * _elements(tensors)


register_rule(["aten._foreach_zero_", "aten._foreach_copy_"])(zero)


# -- mixed precision: torch.amp.GradScaler ----------------------------------------------------


@register_rule(_ops("_amp_foreach_non_finite_check_and_unscale"))
def amp_unscale_rule(grads: Any, *args: Any, **kwargs: Any) -> int:
    """``GradScaler.unscale_``: 2 FPO per gradient element.

    The kernel tests each element for inf/NaN (1, a comparison) and multiplies it by the
    inverse scale (1): ``found_inf |= !isfinite(g); g *= inv_scale``.
    """
    return 2 * _elements(grads)


@register_rule(_ops("_amp_update_scale"))
def amp_update_scale_rule(scale: Any, *args: Any, **kwargs: Any) -> int:
    """``GradScaler.update``: 2 FPO per element of the scale (one element).

    The kernel tests ``found_inf`` (1) and multiplies the scale by the backoff factor, or by the
    growth factor once ``growth_interval`` steps have passed without one (1); the growth
    tracker is an integer.
    """
    return 2 * numel(first_shape(scale))


def _adam(
    params: Any,
    weight_decay: float,
    amsgrad: bool,
    decay_cost: int,
    maximize: bool,
    grad_scale: Any,
) -> int:
    per = 13 + (decay_cost if weight_decay else 0) + (1 if amsgrad else 0)
    per += (1 if maximize else 0) + (1 if grad_scale is not None else 0)
    return per * sum(numel(s) for s in shapes_in(params))


@register_rule(["aten._fused_adam", "aten._fused_adam_"])
def fused_adam_rule(
    params: Any,
    *args: Any,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
    grad_scale: Any = None,
    **kwargs: Any,
) -> int:
    """Adam step, ATen's FusedAdamKernel (CPU): 13 FPO per parameter element.

    First moment ``exp_avg.lerp_(g, 1 - beta1)`` 3 (``fmadd(w, g - m, m)``; the weight's test
    and ``w - 1`` are on the constant), second moment ``v * beta2 + (1 - beta2) * g * g`` 4,
    denominator ``sqrt(v) / sqrt(bc2) + eps`` 3, update ``p + (-step_size) * m / denom`` 3;
    L2 weight decay ``g + p * wd`` +2; AMSGrad (maximum) +1; ``maximize`` (``g * -1``) +1,
    as the op-by-op steps' ``neg``; a ``GradScaler``'s ``grad_scale`` (``g / scale``) +1
    (the op-by-op steps unscale in ``_amp_foreach_non_finite_check_and_unscale_`` instead;
    with a fused optimizer the scaler runs that too, with a scale of 1, to find infs).
    Before s35 ``maximize`` and ``grad_scale`` were not counted.
    """
    return _adam(params, weight_decay, amsgrad, 2, maximize, grad_scale)


@register_rule(["aten._fused_adamw", "aten._fused_adamw_"])
def fused_adamw_rule(
    params: Any,
    *args: Any,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
    grad_scale: Any = None,
    **kwargs: Any,
) -> int:
    """AdamW step: Adam's 13 FPO per element, ATen's FusedAdamKernel in its ADAMW mode.

    Decoupled weight decay ``p *= 1 - lr * wd`` +1; ``maximize`` +1 and ``grad_scale`` +1, as
    :func:`fused_adam_rule`.
    """
    return _adam(params, weight_decay, amsgrad, 1, maximize, grad_scale)


@register_rule(["aten._fused_adagrad", "aten._fused_adagrad_"])
def fused_adagrad_rule(
    params: Any,
    *args: Any,
    weight_decay: float = 0.0,
    maximize: bool = False,
    grad_scale: Any = None,
    **kwargs: Any,
) -> int:
    """Adagrad step, as the op-by-op implementation counts: 7 FPO per parameter element.

    ATen's FusedAdagradKernel:
    ``state_sum += g * g`` 2, ``std = sqrt(state_sum) + eps`` 2, ``p -= clr * g / std`` 3 (the
    step size ``clr = lr / (1 + (step - 1) lr_decay)`` is one scalar per tensor); weight
    decay ``g += wd * p`` +2, ``maximize`` (``-g``) +1, a ``GradScaler``'s ``grad_scale``
    (``g / scale``) +1.
    """
    per = 7 + (2 if weight_decay else 0) + (1 if maximize else 0)
    per += 1 if grad_scale is not None else 0
    return per * sum(numel(s) for s in shapes_in(params))


@register_rule(["aten._fused_sgd", "aten._fused_sgd_"])
def fused_sgd_rule(
    params: Any,
    *args: Any,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    is_first_step: bool = False,
    maximize: bool = False,
    grad_scale: Any = None,
    **kwargs: Any,
) -> int:
    """SGD step, ATen's FusedSGDKernel (CPU): ``p += g * -lr`` is 2 FPO per element.

    Momentum ``buf = buf * m + g * (1 - dampening)`` +2 (+1 with dampening: the kernel
    multiplies by ``1 - dampening`` always, a multiply by 1 not counted, as ``add``'s
    ``alpha`` of 1; nothing on the first step, which copies g), Nesterov ``g + buf * m`` +2
    (with momentum), weight decay ``g + p * wd`` +2, ``maximize`` (``g * -1``) +1, a
    ``GradScaler``'s ``grad_scale`` (``g / scale``) +1. Before s35 ``maximize`` and
    ``grad_scale`` were not counted.
    """
    per = 2 + (2 if nesterov and momentum else 0) + (2 if weight_decay else 0)
    per += (1 if maximize else 0) + (1 if grad_scale is not None else 0)
    if momentum and not is_first_step:
        per += 2 + (1 if dampening else 0)
    return per * sum(numel(s) for s in shapes_in(params))
