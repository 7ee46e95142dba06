"""FPO rules for fused recurrent layers (oneDNN's CPU LSTM layer, cuDNN's RNN).

FlopCounterMode counts these fused kernels as 0. greenprint counts each one as the same
recurrence written op by op, which is what runs on the meta device (and on CPU for GRU and
plain RNNs), so a fused CPU run and a meta run of the same model give the same count. The
formulas below are that op-by-op count under greenprint's conventions, for one layer and one
direction, ``T`` steps, batch ``B``, input size ``I``, hidden size ``H`` and ``G`` gates
(LSTM 4, GRU 3, RNN 1):

* forward: ``T * (2G*B*I*H + 2G*B*H^2 + e_f*B*H)``, + ``2G*T*B*H`` for the two biases;
* backward: ``4G*T*B*I*H + (4G*T - 2G)*B*H^2 + e_b*T*B*H - c*B*H + G*(T-1)*(H^2 + I*H)``,
  + ``2G*T*B*H + 2G*(T-1)*H`` with biases, - ``B*H`` for each of the final hidden and cell
  states that gets no gradient, and ``- 2G*T*B*I*H`` when the layer's input needs no
  gradient (the first layer's input is data): the op-by-op backward, as a Linear layer's,
  then skips the input-gradient product ``dgates @ W_ih``, which the fused kernels compute
  anyway. Likewise a frozen parameter's gradient is not counted: ``W_ih``'s is
  ``2G*T*B*I*H + G*(T-1)*I*H`` (the per-step products and their sum over the steps),
  ``W_hh``'s ``2G*T*B*H^2 + G*(T-1)*H^2``, each bias's ``G*T*B*H + G*(T-1)*H``. An initial
  state that needs a gradient adds its gradient: ``dh_0 = da_1 @ W_hh``, ``2G*B*H^2``, and the
  ``c*B*H`` of the first step (LSTM: ``dc_0 = dc_1 * f_1`` for the cell state; GRU: the
  ``z * dh`` part of the hidden state's); by default, as in a language model, it needs none.

``e_f``/``e_b``/``c`` are the gate nonlinearities and cell updates: LSTM 22/23/1, GRU 16/17/1,
RNN-tanh 2/4/0, RNN-ReLU 2/2/0 (a sigmoid is 4 forward, ATen's kernel ``(1 + exp(-x))
.reciprocal()``, its backward 3 from the output: LSTM 13 and GRU 10 forward in earlier
versions, the sigmoid as 1). A packed batch (cuDNN, sequences of different lengths) counts
its tokens in place of ``T*B``, its sequences in place of ``B`` where a term is per sequence,
and its longest sequence as ``T``.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import numel, register_rule

__all__ = ["rnn_layer_backward_fpo", "rnn_layer_forward_fpo"]

# gates -> (e_f, e_b, c); G = 1 is RNN-tanh unless the mode says ReLU
_ELEMENTWISE = {4: (22, 23, 1), 3: (16, 17, 1), 1: (2, 4, 0)}
_RELU = (2, 2, 0)
_CUDNN_GATES = {0: 1, 1: 1, 2: 4, 3: 3}  # cuDNN modes: RNN_RELU, RNN_TANH, LSTM, GRU


def _constants(gates: int, relu: bool) -> tuple[int, int, int]:
    if relu and gates == 1:
        return _RELU
    return _ELEMENTWISE.get(gates, _ELEMENTWISE[4])


def rnn_layer_forward_fpo(
    steps: int,
    batch: int,
    inp: int,
    hidden: int,
    gates: int,
    *,
    bias: bool,
    relu: bool = False,
    tokens: int | None = None,
) -> int:
    """Forward FPO of one recurrent layer, one direction (see the module docstring).

    Args:
        steps: sequence length T.
        batch: batch size B.
        inp: input features I.
        hidden: hidden size H.
        gates: 4 (LSTM), 3 (GRU) or 1 (RNN).
        bias: the layer has biases.
        relu: an RNN with ReLU instead of tanh.
        tokens: the tokens of a packed batch (sequences of different lengths), in place of
            ``T * B``; every token costs the same.

    Returns:
        FPO.
    """
    e_f, _, _ = _constants(gates, relu)
    n, i, h, g = steps * batch if tokens is None else tokens, inp, hidden, gates
    total = n * (2 * g * i * h + 2 * g * h * h + e_f * h)
    return total + (2 * g * n * h if bias else 0)


def rnn_layer_backward_fpo(
    steps: int,
    batch: int,
    inp: int,
    hidden: int,
    gates: int,
    *,
    bias: bool,
    relu: bool = False,
    grad_hy: bool = True,
    grad_cy: bool = True,
    tokens: int | None = None,
    grad_input: bool = True,
    grad_params: tuple[bool, bool, bool, bool] = (True, True, True, True),
    grad_hx: bool = False,
    grad_cx: bool = False,
) -> int:
    """Backward FPO of one recurrent layer, one direction (see the module docstring).

    Args:
        steps: sequence length T.
        batch: batch size B.
        inp: input features I.
        hidden: hidden size H.
        gates: 4 (LSTM), 3 (GRU) or 1 (RNN).
        bias: the layer has biases.
        relu: an RNN with ReLU instead of tanh.
        grad_hy: the final hidden state receives a gradient (it is used after the layer).
        grad_cy: the final cell state receives a gradient (LSTM only).
        tokens: the tokens of a packed batch, in place of ``T * B``; ``batch`` is then the
            number of sequences (each one's first step has no ``dh_{t-1}`` product) and
            ``steps`` the longest one (the weight gradients are summed over the steps).
        grad_input: the layer's input needs a gradient: the product ``dgates @ W_ih``,
            ``2G * I * H`` per token, is counted.
        grad_params: which of ``W_ih``, ``W_hh``, ``b_ih``, ``b_hh`` need a gradient: a
            frozen one's gradient is not counted (the op-by-op recurrence does not compute
            it; the fused kernels do).
        grad_hx: the initial hidden state needs a gradient.
        grad_cx: the initial cell state (LSTM) needs a gradient.

    Returns:
        FPO.
    """
    _, e_b, c = _constants(gates, relu)
    unused = (not grad_hy) + (gates == 4 and not grad_cy)
    t, b, i, h, g = steps, batch, inp, hidden, gates
    n = t * b if tokens is None else tokens
    total = (
        4 * g * n * i * h
        + (4 * g * n - 2 * g * b) * h * h
        + e_b * n * h
        - c * b * h
        + g * (t - 1) * (h * h + i * h)
        - unused * b * h
        - (0 if grad_input else 2 * g * n * i * h)
    )
    total += 2 * g * b * h * h if grad_hx else 0
    total += c * b * h if (grad_cx if gates == 4 else grad_hx) else 0
    w_ih, w_hh, b_ih, b_hh = grad_params
    total -= (0 if w_ih else 2 * g * n * i * h + g * (t - 1) * i * h) + (
        0 if w_hh else 2 * g * n * h * h + g * (t - 1) * h * h
    )
    if not bias:
        return total
    return total + (int(b_ih) + int(b_hh)) * (g * n * h + g * (t - 1) * h)


def _mkldnn_dims(
    input: tuple[int, ...], w_ih: tuple[int, ...], hx: tuple[int, ...], hidden_size: int
) -> tuple[int, int, int, int]:
    batch = hx[0] if hx else 1
    inp = w_ih[1]
    steps = numel(input) // max(1, batch * inp)
    return steps, batch, inp, w_ih[0] // max(1, hidden_size)


@register_rule("aten.mkldnn_rnn_layer")
def mkldnn_rnn_layer_rule(
    input: tuple[int, ...],
    w_ih: tuple[int, ...],
    w_hh: Any,
    b_ih: Any,
    b_hh: Any,
    hx: tuple[int, ...],
    cx: Any,
    reverse: bool,
    batch_sizes: Any,
    mode: int,
    hidden_size: int,
    num_layers: int,
    has_biases: bool,
    *args: Any,
    **kwargs: Any,
) -> int:
    """The fused CPU LSTM layer (oneDNN): :func:`rnn_layer_forward_fpo`."""
    t, b, i, g = _mkldnn_dims(input, w_ih, hx, hidden_size)
    return rnn_layer_forward_fpo(t, b, i, hidden_size, g, bias=bool(has_biases))


@register_rule("aten.mkldnn_rnn_layer_backward", grad_mask=True)
def mkldnn_rnn_layer_backward_rule(
    input: tuple[int, ...],
    w_ih: tuple[int, ...],
    w_hh: Any,
    b_ih: Any,
    b_hh: Any,
    hx: tuple[int, ...],
    cx: Any,
    output: Any,
    hy: Any,
    cy: Any,
    grad_output: Any,
    grad_hy: Any,
    grad_cy: Any,
    reverse: bool,
    mode: int,
    hidden_size: int,
    num_layers: int,
    has_biases: bool,
    *args: Any,
    needs_input_grad: tuple[bool, ...] | None = None,
    **kwargs: Any,
) -> int:
    """Its backward: :func:`rnn_layer_backward_fpo`.

    Without the input's gradient when the layer's input needs none (``needs_input_grad[0]``
    False: the first layer on data), and without a frozen weight's or bias's
    (``needs_input_grad[1:5]``), and with the initial states' when they need one
    (``needs_input_grad[5:7]``; none outside a backward pass), as the op-by-op recurrence.
    """
    t, b, i, g = _mkldnn_dims(input, w_ih, hx, hidden_size)
    needs = tuple(bool(n) for n in needs_input_grad or ())

    def needed(k: int, default: bool) -> bool:
        return needs[k] if k < len(needs) else default

    return rnn_layer_backward_fpo(
        t,
        b,
        i,
        hidden_size,
        g,
        bias=bool(has_biases),
        grad_hy=grad_hy is not None,
        grad_cy=grad_cy is not None,
        grad_input=needed(0, True),
        grad_params=(needed(1, True), needed(2, True), needed(3, True), needed(4, True)),
        grad_hx=needed(5, False),
        grad_cx=needed(6, False),
    )


def _cudnn_layers(
    input: tuple[int, ...],
    weights: Any,
    stride: int,
    hx: tuple[int, ...],
    mode: int,
    hidden_size: int,
    batch_sizes: Any = None,
) -> list[tuple[int, int, int, int, bool, bool, int]]:
    """(T, B, I, gates, bias, relu, tokens) for every layer and direction of a cuDNN RNN call.

    A packed input (``batch_sizes``: sequences still running at each step) is the ``tokens``
    of all its sequences, ``T`` the longest, ``B`` the number of sequences.
    """
    gates = _CUDNN_GATES.get(mode, 4)
    batch = hx[1] if len(hx) == 3 else 1
    shapes = list(weights) if isinstance(weights, list) else []
    stride = max(1, int(stride))
    packed = [int(n) for n in batch_sizes] if isinstance(batch_sizes, list) else []
    tokens = numel(input) // max(1, input[-1])  # every row of the input is one token
    steps = len(packed) if packed else tokens // max(1, batch)
    layers = []
    for start in range(0, len(shapes), stride):
        w_ih = shapes[start]
        layers.append((steps, batch, w_ih[1], gates, stride >= 4, mode == 0, tokens))
    return layers


@register_rule("aten._cudnn_rnn")
def cudnn_rnn_rule(
    input: tuple[int, ...],
    weight: Any,
    weight_stride0: int,
    weight_buf: Any,
    hx: tuple[int, ...],
    cx: Any,
    mode: int,
    hidden_size: int,
    proj_size: Any = 0,
    num_layers: Any = 1,
    batch_first: Any = False,
    dropout: Any = 0.0,
    train: Any = True,
    bidirectional: Any = False,
    batch_sizes: Any = None,
    *args: Any,
    **kwargs: Any,
) -> int:
    """The fused cuDNN RNN (all layers and directions): the sum of the per-layer forwards."""
    return sum(
        rnn_layer_forward_fpo(t, b, i, hidden_size, g, bias=bias, relu=relu, tokens=n)
        for t, b, i, g, bias, relu, n in _cudnn_layers(
            input, weight, weight_stride0, hx, mode, hidden_size, batch_sizes
        )
    )


@register_rule("aten._cudnn_rnn_backward")
def cudnn_rnn_backward_rule(
    input: tuple[int, ...],
    weight: Any,
    weight_stride0: int,
    weight_buf: Any,
    hx: tuple[int, ...],
    cx: Any,
    output: Any,
    grad_output: Any,
    grad_hy: Any,
    grad_cy: Any,
    mode: int,
    hidden_size: int,
    proj_size: Any = 0,
    num_layers: Any = 1,
    batch_first: Any = False,
    dropout: Any = 0.0,
    train: Any = True,
    bidirectional: Any = False,
    batch_sizes: Any = None,
    *args: Any,
    **kwargs: Any,
) -> int:
    """Its backward: the sum of the per-layer backwards.

    ``output_mask[0]`` False (the input needs no gradient): the first layer's directions
    without the input-gradient product, as the op-by-op recurrence; ``output_mask[3]``
    False (no weight needs one): without the weights' and biases' gradients, which cuDNN then
    skips (it computes all of them when any weight needs one).
    """
    mask = args[-1] if args and isinstance(args[-1], list) else kwargs.get("output_mask")
    grad_input = not mask or bool(mask[0])
    grad_weights = not mask or len(mask) < 4 or bool(mask[3])
    grad_hx, grad_cx = (bool(mask[1]), bool(mask[2])) if mask and len(mask) >= 3 else (False,) * 2
    directions = 2 if bidirectional else 1
    layers = _cudnn_layers(input, weight, weight_stride0, hx, mode, hidden_size, batch_sizes)
    return sum(
        rnn_layer_backward_fpo(
            t,
            b,
            i,
            hidden_size,
            g,
            bias=bias,
            relu=relu,
            grad_hy=grad_hy is not None,
            grad_cy=grad_cy is not None,
            tokens=n,
            grad_input=grad_input or k >= directions,
            grad_params=(grad_weights,) * 4,
            grad_hx=grad_hx,
            grad_cx=grad_cx,
        )
        for k, (t, b, i, g, bias, relu, n) in enumerate(layers)
    )
