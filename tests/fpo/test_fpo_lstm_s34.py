"""The fused LSTM backward of stacked and bidirectional layers, by hand (audit s34).

``test_first_principles_s9`` proves the forward of every layout and the backward of one
unidirectional layer (oneDNN's ``mkldnn_rnn_layer_backward`` on CPU). A stacked or
bidirectional LSTM runs one such backward per layer and direction; what joins them is
derived here, so the whole layer's backward is proved, with the input needing a gradient or
not.

Per layer and direction, ``T`` steps, batch ``B``, input width ``I_l`` (``I``, then ``D H`` for
a later layer, ``D`` directions), ``G = 4H`` gate rows (s9's derivation):

- products: ``dx_t = da_t W_ih`` and ``dW_ih += da_t^T x_t`` (``2 G B I_l`` each per step; the
  first only when the layer's input needs a gradient: always for a later layer, for the first
  when ``x`` does), ``dW_hh += da_t^T h_{t-1}`` every step and ``dh_{t-1} = da_t W_hh`` from the
  second step: ``(4T - 2) G B H``;
- the weight gradients summed over the steps: ``(T - 1) G (I_l + H)``;
- per hidden unit and step 23, less ``3 B H`` (s9);
- biases: ``da_t`` summed over the batch and the steps, ``2 (G B T + (T - 1) G)``.

Joins: a bidirectional layer's input feeds both directions, so its gradient is the sum of the
two directions' ``dx`` (``T B I_l`` adds, when it needs one); a later layer's input is the
concatenation of the previous layer's two outputs, whose gradients are its slices (0).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import greenprint as gp  # noqa: E402


def _layer_direction(steps, batch, inp, hidden, bias, input_grad):
    gates = 4 * hidden
    products = (4 if input_grad else 2) * gates * batch * inp * steps
    products += (4 * steps - 2) * gates * batch * hidden
    sums = (steps - 1) * gates * (inp + hidden)
    units = 23 * steps * batch * hidden - 3 * batch * hidden
    biases = 2 * (gates * batch * steps + (steps - 1) * gates) if bias else 0
    return products + sums + units + biases


def lstm_backward_by_hand(steps, batch, inp, hidden, layers, bidirectional, bias, x_grad):
    directions = 2 if bidirectional else 1
    total = 0
    for layer in range(layers):
        width = inp if layer == 0 else directions * hidden
        input_grad = x_grad or layer > 0
        total += directions * _layer_direction(steps, batch, width, hidden, bias, input_grad)
        if directions == 2 and input_grad:
            total += steps * batch * width  # the two directions' input gradients summed
    return total


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(1, 3),
    batch=st.integers(1, 2),
    inp=st.integers(1, 3),
    hidden=st.integers(1, 3),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    bias=st.booleans(),
    x_grad=st.booleans(),
)
def test_stacked_and_bidirectional_lstm_backward_by_hand(
    steps, batch, inp, hidden, layers, bidirectional, bias, x_grad
):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(inp, hidden, num_layers=layers, bidirectional=bidirectional, bias=bias)
    x = torch.randn(steps, batch, inp, requires_grad=x_grad)
    with gp.FPOCounter() as c:
        out = lstm(x)[0]
        out.backward(torch.ones_like(out))
    expected = lstm_backward_by_hand(steps, batch, inp, hidden, layers, bidirectional, bias, x_grad)
    assert c.result.unknown_ops == {}
    assert c.result.backward_total == expected


def test_a_two_layer_bidirectional_lstm_by_hand_on_cpu_and_meta():
    """LSTM(3, 4, num_layers=2, bidirectional=True), (5, 2, 3) input needing a gradient: per
    direction the first layer 6,016 (products 4,224, sums 448, units 896, biases 448), the
    second (input 8) 9,536; + 80 and 30 adds joining the directions' input gradients: 31,214.
    The meta device runs the recurrence op by op (no oneDNN): the same count."""
    assert lstm_backward_by_hand(5, 2, 3, 4, 2, True, True, True) == 31_214
    totals = []
    for device in ("cpu", "meta"):
        with torch.device(device):
            lstm = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
            x = torch.randn(5, 2, 3, requires_grad=True)
        totals.append(gp.count_fpo(lambda x: lstm(x)[0], x).backward_total)  # noqa: B023
    assert totals == [31_214, 31_214]
