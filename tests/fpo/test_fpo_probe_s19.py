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


# -- the per-module table adds up to the total -------------------------------------------------


def _rows(table: str) -> dict[str, list[str]]:
    """The table's rows by label (stripped), each the cells after the label."""
    rows = {}
    for line in table.split("\n\n", 1)[0].splitlines()[1:]:
        label, *cells = line.strip().split("  ")
        rows[label.strip()] = [c.strip() for c in cells if c.strip()]
    return rows


def _fpo(cell: str) -> int:
    """'14 FPO' -> 14 (the tests keep every figure under 1,000 FPO, which prints exactly)."""
    assert cell.endswith(" FPO") and cell[0].isdigit(), cell
    return int(cell.removesuffix(" FPO"))


def test_the_module_table_shows_own_ops_the_loss_and_the_optimizer_so_its_rows_add_up():
    """A residual block ``x + lin2(relu(lin1(x)))`` with ``F.relu``, an MSE loss and SGD.

    The table listed the model (its share under 100%), lin1 and lin2, and nothing for the relu
    and the residual add (in the block's own forward), the loss or the optimizer: its rows did
    not add up to the total. Now: ``(own ops)`` forward relu 8 + add 6 = 14, backward relu 8
    (the residual's gradient is passed through: 0); lin1 forward ``2*4*(2*3 + 1)`` = 56,
    backward grad_weight ``2*2*3*4`` 48 + bias 8 (the input needs no grad) = 56; lin2 forward
    ``2*3*(2*4 + 1)`` = 54, backward grad_input 48 + grad_weight 48 + bias 6 = 102;
    ``(optimizer)`` SGD ``p - lr*g`` 2 per parameter element, 2 * 31 = 62;
    ``(outside the model)`` the loss, the rest.
    """

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin1, self.lin2 = nn.Linear(3, 4), nn.Linear(4, 3)

        def forward(self, x):
            return x + self.lin2(torch.nn.functional.relu(self.lin1(x)))

    model = Block()
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with gp.FPOCounter(model) as counter:
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    result = counter.result
    rows = _rows(result.table())
    assert list(rows) == [
        "(model)", "(own ops)", "lin1", "lin2", "(outside the model)", "(optimizer)"
    ]  # fmt: skip
    forward, backward, total = (_fpo(c) for c in rows["(own ops)"][:3])
    assert (forward, backward, total) == (14, 8, 22)
    assert [_fpo(c) for c in rows["lin1"][:3]] == [56, 56, 112]
    assert [_fpo(c) for c in rows["lin2"][:3]] == [54, 102, 156]
    assert rows["(optimizer)"][:3] == ["-", "-", "62 FPO"]
    model_total = _fpo(rows["(model)"][2])
    assert model_total == 22 + 112 + 156 == result.by_module[""]
    outside = _fpo(rows["(outside the model)"][2])
    assert model_total + outside + 62 == result.total
    assert rows["(model)"][3] != "100.0%"  # the model's share is less than all of it


def test_a_module_whose_only_fpo_are_in_the_backward_is_listed_under_its_parent():
    """GPT-2's token and position embeddings do arithmetic only in the backward (their
    gradients), so they were listed last, after ``lm_head``, indented as if inside it; each
    module is now listed under its parent."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=100, n_embd=32, n_layer=1, n_head=2, n_positions=16, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(config)
    result = gp.count_fpo(model, torch.randint(0, 100, (2, 6)))
    labels = [line.split()[0] for line in result.table(depth=2).split("\n\n")[0].splitlines()]
    assert labels[-1] == "lm_head" and labels.index("wte") < labels.index("lm_head")
    assert labels[labels.index("transformer") + 1 : labels.index("lm_head")] == [
        "(own", "drop", "h", "ln_f", "wpe", "wte"
    ]  # fmt: skip


# -- torch.compile ------------------------------------------------------------------------------


def test_a_compiled_model_counts_its_eager_program_without_a_warning_about_the_counters_hooks():
    """``torch.compile(model)`` counted inside the counter runs its eager code (docs/fpo.md,
    Limits): Linear(4, 8), ReLU, Linear(8, 2) on a (3, 4) batch is forward ``3*8*(2*4 + 1)``
    216 + relu 24 + ``3*2*(2*8 + 1)`` 102 = 342, backward grad_weight ``2*3*4*8`` 192 + bias
    24, relu 24, grad_input and grad_weight ``2*3*8*2`` 96 each + bias 6 = 438, as uncompiled.

    torch warned, from inside greenprint, that the 'global hooks on modules' fire an extra time
    for the compiled wrapper: the counter's hooks, which only track the module stack. The
    warning is no longer shown while counting (and still is elsewhere).
    """
    import warnings

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    compiled = torch.compile(model)
    x = torch.randn(3, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = gp.count_fpo(compiled, x)
    assert (result.forward_total, result.backward_total, result.unknown_ops) == (342, 438, {})
    assert result.by_module["0"] == 216 + 192 + 24
    assert not [w for w in caught if "global hooks" in str(w.message)], caught[0].message
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("Using `torch.compile(module)` when there are global hooks", stacklevel=1)
    assert len(caught) == 1  # the filter ended with the count


# -- mixed precision ----------------------------------------------------------------------------


def test_a_mixed_precision_step_with_a_grad_scaler_is_counted_in_full():
    """The AMP recipe: autocast float16, ``GradScaler`` scale, backward, step, update.

    The scaler's two kernels had no rule, so every such training step was a lower bound.
    Linear(4, 2) has 10 parameter elements: unscale tests and multiplies each gradient element
    (2 x 10 = 20), update tests ``found_inf`` and multiplies the one-element scale (2); AdamW
    14 per element + 1 per parameter tensor for its step count (140 + 2). The linear layer:
    forward ``3*2*(2*4 + 1)`` = 54, backward grad_weight ``2*3*4*2`` 48 + bias 6 (the input
    needs no grad).
    """
    model = nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x, y = torch.randn(3, 4), torch.randn(3, 2)
    with gp.FPOCounter(model) as counter:
        with torch.autocast("cpu", dtype=torch.float16):
            loss = torch.nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    result = counter.result
    assert result.unknown_ops == {}
    assert result.by_op["aten._amp_foreach_non_finite_check_and_unscale_"] == 20
    assert result.by_op["aten._amp_update_scale_"] == 2
    assert result.optimizer_total == 14 * 10 + 2  # the step was taken: no inf at this scale
    assert (result.forward_by_module[""], result.backward_by_module[""]) == (54, 54)


# -- an optimizer step with a closure -----------------------------------------------------------


@pytest.mark.parametrize("name", ["SGD", "LBFGS"])
def test_a_closure_passed_to_the_optimizer_counts_as_forward_and_backward_of_the_model(name):
    """``optimizer.step(closure)`` (LBFGS needs one; any optimizer takes one) runs the forward,
    loss and backward inside the step: all of it was counted as the optimizer's, and none of it
    charged to the model (``by_module`` empty, a table of one '(optimizer)' row).

    Per closure call, Linear(4, 2) on (3, 4): forward ``3*2*(2*4 + 1)`` = 54; MSE loss 2 per
    element (subtract, square) + the sum's 6 adds + the mean's division = 19; backward: the
    loss's ``2 (x - y) g / n`` 4 per element = 24, the layer's grad_weight ``2*3*4*2`` 48 +
    bias 6 = 54. SGD's update ``p - lr*g`` is 2 per parameter element: 20.
    """
    model = nn.Linear(4, 2)
    x, y = torch.randn(3, 4), torch.randn(3, 2)
    optimizer = getattr(torch.optim, name)(model.parameters(), lr=0.01)
    calls = []

    def closure():
        calls.append(1)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    with gp.FPOCounter(model) as counter:
        optimizer.step(closure)
    result, k = counter.result, len(calls)
    assert result.unknown_ops == {}
    assert (result.forward_total, result.backward_total) == (73 * k, 78 * k)
    assert result.by_module[""] == (54 + 54) * k
    if name == "SGD":
        assert k == 1 and result.optimizer_total == 20
    else:  # LBFGS's own arithmetic (directions, dot products) between the calls
        assert k > 1 and result.optimizer_total == result.total - (73 + 78) * k > 0
