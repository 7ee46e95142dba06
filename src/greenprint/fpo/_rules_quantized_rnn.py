"""int8 and fp16 FPO rules of the dynamic recurrent layers (``quantize_dynamic`` of LSTM, GRU).

``torch.ao.quantization.quantize_dynamic`` turns ``nn.LSTM`` and ``nn.GRU`` into layers that
run ``aten.quantized_lstm`` and ``aten.quantized_gru`` (and ``nn.LSTMCell``, ``GRUCell``,
``RNNCell`` into ``quantized.quantized_*_cell_dynamic``): one op, whose kernel (ATen's
``RNN.cpp``) runs the cells' float math around dynamic linears. On the CPU a layer applies its
input linear to the whole sequence at once (``FullLayer``: one ``linear_ih`` of ``T x B`` rows,
then per step ``linear_hh`` of ``B`` rows and the cell's elementwise steps). Each linear is the
packed weights' ``apply_dynamic``: the int8 one counted as ``quantized.linear_dynamic`` (its
input's min, max and quantization 6 per element, per output element the multiplier, the float
bias and per-channel scales, 24 per call), the fp16 one as ``quantized.linear_dynamic_fp16``
(``2MNK`` + the bias). The cells, per hidden value and step: LSTM 22 (the gates' sum 4, three
sigmoids of 4, two tanh, ``f * c + i * g`` 3, ``o * tanh(c)`` 1), GRU 16 (two sums, two
sigmoids of 4, ``r * h_n`` and its sum, tanh, ``(h - n) * z + n`` 3), a tanh or ReLU cell 2
(the sum, the nonlinearity); each float op as its float rule (a sigmoid 4, ATen's kernel
``(1 + exp(-x)).reciprocal()``: LSTM 13 and GRU 10 in earlier versions, the sigmoid as 1).
Conventions as in :mod:`greenprint.fpo._rules_quantized`.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import numel, register_rule
from greenprint.fpo._rules_quantized_base import (
    DYNAMIC_INPUT_PER_ELEMENT,
    DYNAMIC_PER_CALL,
    _torch,
    onednn_assumed,
)

__all__: list[str] = []

#: per hidden value and step, the cells' elementwise float ops
CELL_FPO = {"lstm": 22, "gru": 16, "rnn": 2}
#: gates per cell: the linears' output width is ``GATES * hidden_size``
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _linear(kind: str, rows: int, k: int, n: int, bias: bool, per_channel: bool, calls: int) -> int:
    """One packed linear's ``apply_dynamic`` over ``rows`` rows, ``calls`` calls in all."""
    if kind == "quantized_fp16":
        return 2 * rows * n * k + int(bias) * rows * n
    per_output = 1 + int(bias) + int(per_channel)
    return DYNAMIC_INPUT_PER_ELEMENT * rows * k + per_output * rows * n + DYNAMIC_PER_CALL * calls


def _packed(packed: Any) -> tuple[bool, bool] | None:
    """``(bias, per_channel)`` of a ``LinearPackedParamsBase`` (its ``unpack()``), or None."""
    try:
        weight, bias = packed.unpack()[:2]
        per_channel = weight.is_quantized and str(weight.qscheme()).startswith("torch.per_channel")
    except (RuntimeError, AttributeError, TypeError, ValueError):
        return None
    return bias is not None, bool(per_channel)


def _cell_params(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"cells": [(kind, (bias, per_channel) of w_ih, of w_hh), ...]}`` of the layer's params.

    The params are the call's list of ``CellParamsBase`` (third argument of ``.input``, fourth of
    ``.data``); each says its kind (``quantized_dynamic``, ``quantized_fp16``) and holds its two
    packed linears in its state. With int8 weights that PyTorch runs on oneDNN's kernels (the
    ``onednn`` engine's), the count, FBGEMM's, says so (``FPOResult.assumptions["onednn_int8"]``).
    """
    script_object = _torch().ScriptObject
    params = next(
        (a for a in args if isinstance(a, (list, tuple)) and a and isinstance(a[0], script_object)),
        None,
    )
    if params is None:
        return {}
    cells = []
    assumed: dict[str, Any] = {}
    try:
        for param in params:
            state = param.__getstate__()[0]
            ih, hh = (_packed(p) for p in state[-1])
            if ih is None or hh is None:
                return {}
            cells.append((str(state[0]), ih, hh))
            for packed in state[-1]:
                assumed = assumed or onednn_assumed(packed)
    except (RuntimeError, AttributeError, TypeError, ValueError, IndexError):
        return {}
    return {"cells": cells, **assumed}


def _layers(
    cell: str,
    x: tuple[int, ...],
    hidden: int,
    steps: int,
    rows: int,
    num_layers: int,
    bidirectional: bool,
    has_biases: bool,
    cells: list[Any] | None,
) -> int:
    directions = 2 if bidirectional else 1
    gates = GATES[cell] * hidden
    total = 0
    for index in range(num_layers * directions):
        layer = index // directions
        k = x[-1] if layer == 0 else directions * hidden
        if cells and index < len(cells):
            kind, (bias_ih, pc_ih), (bias_hh, pc_hh) = cells[index]
        else:
            kind, bias_ih, pc_ih, bias_hh, pc_hh = (
                "quantized_dynamic",
                has_biases,
                False,
                has_biases,
                False,
            )
        total += _linear(kind, rows, k, gates, bias_ih, pc_ih, calls=1)  # the whole sequence
        total += _linear(kind, rows, hidden, gates, bias_hh, pc_hh, calls=steps)  # per step
        total += CELL_FPO[cell] * rows * hidden
    return total


def _recurrent(cell: str, args: tuple[Any, ...], cells: list[Any] | None) -> int:
    """The ``.input`` and ``.data`` overloads: ``(x, hx, params, has_biases, num_layers, ...)``."""
    x, rest = args[0], list(args[1:])
    packed = bool(rest) and isinstance(rest[0], tuple) and len(rest[0]) == 1 and len(x) == 2
    if packed:  # .data: (data, batch_sizes, hx, params, ...), the data R x input_size
        steps, rows = rest[0][0], x[0]
        rest = rest[1:]
    hx = rest[0]
    h_shape = hx[0] if isinstance(hx, list) else hx
    hidden = h_shape[-1]
    has_biases, num_layers, bidirectional = bool(rest[2]), int(rest[3]), bool(rest[6])
    if not packed:
        batch_first = bool(rest[7]) if len(rest) > 7 else False
        batch, steps = (x[0], x[1]) if batch_first else (x[1], x[0])
        rows = steps * batch
    return _layers(cell, x, hidden, steps, rows, num_layers, bidirectional, has_biases, cells)


@register_rule(["aten.quantized_lstm"], reads=_cell_params)
def quantized_lstm_rule(*args: Any, out_shape: Any = (), cells: Any = None, **kwargs: Any) -> int:
    """``quantize_dynamic``'s ``nn.LSTM``: the linears and 22 per hidden value and step.

    Per layer and direction the input linear over the whole sequence, per step the hidden
    linear and the cell (see the module docstring). The weights' kind (int8 or fp16), bias and
    scheme are read from the cell params; without them int8, per tensor, biased as
    ``has_biases``.
    """
    return _recurrent("lstm", args, cells)


@register_rule(["aten.quantized_gru"], reads=_cell_params)
def quantized_gru_rule(*args: Any, out_shape: Any = (), cells: Any = None, **kwargs: Any) -> int:
    """``quantize_dynamic``'s ``nn.GRU``: as ``aten.quantized_lstm``, 16 per value and step."""
    return _recurrent("gru", args, cells)


def _cell_packed(x: Any, hx: Any, w_ih: Any, w_hh: Any, *args: Any, **kwargs: Any) -> Any:
    """``{"ih": (bias, per_channel), "hh": ...}`` of a dynamic cell's two packed linears.

    With weights that PyTorch runs on oneDNN's kernels, the count says so, as the layers'.
    """
    ih, hh = _packed(w_ih), _packed(w_hh)
    if ih is None or hh is None:
        return {}
    return {"ih": ih, "hh": hh, **(onednn_assumed(w_ih) or onednn_assumed(w_hh))}


def _dynamic_cell(cell: str, x: tuple[int, ...], hx: Any, ih: Any, hh: Any) -> int:
    h_shape = hx[0] if isinstance(hx, list) else hx
    hidden = h_shape[-1]
    rows = numel(x) // x[-1] if x and x[-1] else 0
    gates = GATES[cell] * hidden
    ih_bias, ih_pc = ih or (True, False)
    hh_bias, hh_pc = hh or (True, False)
    return (
        _linear("quantized_dynamic", rows, x[-1], gates, ih_bias, ih_pc, calls=1)
        + _linear("quantized_dynamic", rows, hidden, gates, hh_bias, hh_pc, calls=1)
        + CELL_FPO[cell] * rows * hidden
    )


def _cell_rule(cell: str) -> Any:
    def rule(
        x: tuple[int, ...], hx: Any, *args: Any, ih: Any = None, hh: Any = None, **kwargs: Any
    ) -> int:
        return _dynamic_cell(cell, x, hx, ih, hh)

    rule.__doc__ = (
        f"``quantize_dynamic``'s ``nn.{cell.upper()}Cell``-like cell: the input and hidden "
        f"dynamic int8 linears (bias and scheme read from the packed weights) and "
        f"{CELL_FPO[cell]} per hidden value (see the module docstring)."
    )
    rule.__name__ = f"quantized_{cell}_cell_dynamic_rule"
    return rule


for _cell, _names in (
    ("lstm", ["quantized.quantized_lstm_cell_dynamic"]),
    ("gru", ["quantized.quantized_gru_cell_dynamic"]),
    (
        "rnn",
        ["quantized.quantized_rnn_tanh_cell_dynamic", "quantized.quantized_rnn_relu_cell_dynamic"],
    ),
):
    register_rule(_names, reads=_cell_packed)(_cell_rule(_cell))
