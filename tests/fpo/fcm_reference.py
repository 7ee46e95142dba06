"""torch's FlopCounterMode, as installed and with the grouped-convolution backward fix.

FlopCounterMode (torch 2.13 and 2.14) counts a convolution's grad_weight term over all ``C_in``
input channels instead of ``C_in/groups``; PyTorch pull request 183405 divides it by the groups.
``fixed_flop_counter()`` is FlopCounterMode with exactly that division (its own formula
otherwise), so greenprint's ``matmul_total`` equals its total on any code; the tests and the
zoo benchmark compare against both, and :func:`torch_overcounts_grouped_conv_backward` says
which relation the installed torch should show.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

aten = torch.ops.aten


def conv_backward_fixed(
    grad_out_shape: Any,
    x_shape: Any,
    w_shape: Any,
    _bias: Any,
    _stride: Any,
    _padding: Any,
    _dilation: Any,
    transposed: bool,
    _output_padding: Any,
    groups: int,
    output_mask: Any,
    out_shape: Any,
    **kwargs: Any,
) -> int:
    """torch's ``conv_backward_flop`` with the grad_weight term divided by ``groups``."""

    def t(shape: Any) -> list[int]:
        return [shape[1], shape[0], *shape[2:]]

    flops = 0
    if output_mask[0]:
        flops += conv_flop_count(grad_out_shape, w_shape, out_shape[0], not transposed)
    if output_mask[1]:
        gw = out_shape[1]
        if transposed:
            term = conv_flop_count(t(grad_out_shape), t(x_shape), t(gw), transposed=False)
        else:
            term = conv_flop_count(t(x_shape), t(grad_out_shape), t(gw), transposed=False)
        flops += term // groups
    return flops


def fixed_flop_counter() -> FlopCounterMode:
    """FlopCounterMode with the grouped-convolution backward fix (PyTorch PR 183405)."""
    return FlopCounterMode(
        display=False, custom_mapping={aten.convolution_backward: conv_backward_fixed}
    )


@functools.cache
def torch_overcounts_grouped_conv_backward() -> bool:
    """Whether the installed FlopCounterMode counts a depthwise conv's backward ``groups`` x."""
    conv = torch.nn.Conv2d(4, 4, 3, groups=4, bias=False, device="meta")
    x = torch.empty(1, 4, 5, 5, device="meta", requires_grad=True)
    totals = []
    for counter in (FlopCounterMode(display=False), fixed_flop_counter()):
        with counter:
            conv(x).sum().backward()
        totals.append(counter.get_total_flops())
    return totals[0] != totals[1]
