"""A new user counts the FPO of the models people train, and every figure is proved (s19).

Each expected count is derived by hand from the op's maths in a comment beside it, under the
conventions of docs/fpo.md: a multiply-accumulate is 2 FPO (``2mkn`` for a product), reducing
n values costs n adds, one FPO per elementwise arithmetic op or elementary function, a bias add
1 per output element. Tiny models on CPU; transformers models built from config objects.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread: the tensors are tiny, and FPO are counted from shapes."""
    with one_thread():
        yield


# -- recurrent layers: a padded batch packed inside the model's forward ------------------------


def _lstm_token(i: int, h: int) -> int:
    """One LSTM step for one token, op by op (what the packed path runs per token).

    gates = x W_ih^T + b_ih (``2*I*4H + 4H``) + (h W_hh^T + b_hh) (``2*H*4H + 4H``), their sum
    ``4H``; sigmoid of three gates ``3H``, tanh of the fourth ``H``; ``c' = f*c + i*g`` ``3H``;
    ``h' = o * tanh(c')`` ``2H``.
    """
    return 8 * i * h + 4 * h + 8 * h * h + 4 * h + 4 * h + 4 * h + 3 * h + 2 * h


def _gru_token(i: int, h: int) -> int:
    """One GRU step for one token, op by op.

    gi = x W_ih^T + b_ih (``2*I*3H + 3H``), gh = h W_hh^T + b_hh (``2*H*3H + 3H``);
    ``r = sigmoid(i_r + h_r)`` 2H, ``z = sigmoid(i_z + h_z)`` 2H, ``n = tanh(i_n + r*h_n)`` 3H,
    ``h' = n + z*(h - n)`` 3H.
    """
    return 6 * i * h + 3 * h + 6 * h * h + 3 * h + 2 * h + 2 * h + 3 * h + 3 * h


@pytest.mark.parametrize(("cls", "per_token"), [(nn.LSTM, _lstm_token), (nn.GRU, _gru_token)])
def test_a_batch_packed_in_the_forward_counts_its_tokens_and_no_unknown_op(cls, per_token):
    """A user's tagger packs its padded batch inside ``forward``: lengths 5, 3, 2 (10 tokens).

    ``aten._pack_padded_sequence`` had no rule, so every such count was listed as a lower bound
    (``unknown_ops``); it is a gather of the real tokens: 0 FPO.
    Forward, 2 layers x 2 directions: ``2 * 10 * (token(I=3) + token(I=2H=8))``. Padded steps
    cost nothing: the same batch padded to 9 steps counts the same, forward and backward.
    """

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True)
            self.head = nn.Linear(8, 2)

        def forward(self, x, lengths):
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
            return self.head(out)

    model = Tagger()
    lengths = torch.tensor([3, 5, 2])
    results = []
    for steps in (5, 9):
        x = torch.randn(3, steps, 3, requires_grad=True)
        results.append(gp.count_fpo(model, x, lengths))
    five, nine = results
    assert five.unknown_ops == {} and "aten._pack_padded_sequence" in five.zero_ops
    assert five.forward_by_module["rnn"] == 2 * 10 * (per_token(3, 4) + per_token(8, 4))
    # the head runs on the unpacked output: 3 x 5 positions (2 x 8 products + a bias)
    assert five.forward_by_module["head"] == 3 * 5 * 2 * (2 * 8 + 1)
    assert five.by_module["rnn"] == nine.by_module["rnn"]
    assert five.backward_by_module["rnn"] == nine.backward_by_module["rnn"] > 0
