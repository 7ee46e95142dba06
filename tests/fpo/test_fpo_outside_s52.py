"""An outside tester's findings (session 52): a count leaves the model as it was, the backward
work made in the backward pass is the model's, dataclass outputs, CPU attention's backward,
and the docs' figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.cli import main  # noqa: E402

# -- a count is a measurement: the model, inputs and RNG are left as they were ------------------


def _settled_batch_norm_model():
    """``Linear(4, 4)``, ``BatchNorm1d(4)`` whose statistics settled on its data (50 forwards)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    data = torch.randn(256, 4) * 5 + 3
    for _ in range(50):
        model(data)
    return model, data


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(model, before):
    now = model.state_dict()
    return now.keys() == before.keys() and all(torch.equal(now[k], before[k]) for k in before)


@pytest.mark.parametrize("backward", [True, False])
def test_counting_a_model_in_train_mode_leaves_its_batch_norm_statistics(backward):
    """The Quick start's call on a model in train mode (the default): a real forward moves the
    running statistics and ``num_batches_tracked`` (checked), a count does not, so the model's
    eval outputs are the same after it."""
    model, data = _settled_batch_norm_model()
    model.eval()
    outputs = model(data[:4]).detach()
    model.train()
    before = _state(model)
    assert model[1].num_batches_tracked.item() == 50
    example = torch.randn(8, 4)
    gp.count_fpo(model, example, backward=backward)
    assert _same_state(model, before)
    model.eval()
    assert torch.equal(model(data[:4]), outputs)
    model.train()
    model(example)  # what a forward does: the count undid exactly this
    assert model[1].num_batches_tracked.item() == 51
    assert not torch.equal(model[1].running_mean, before["1.running_mean"])


def test_counting_a_model_with_dropout_leaves_the_random_numbers_as_they_were():
    """Dropout draws from torch's CPU generator: the numbers drawn after a count are those
    drawn without it."""
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    x = torch.randn(4, 8)
    torch.manual_seed(1)
    expected = torch.rand(5)
    torch.manual_seed(1)
    result = gp.count_fpo(model, x)
    assert torch.equal(torch.rand(5), expected)
    assert "aten.bernoulli_" in result.by_op  # the dropout drew its mask


class _Steps(nn.Module):
    """A module that rebinds a buffer and registers another in its forward."""

    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.zeros(()))
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        self.steps = self.steps + 1
        self.register_buffer("cache", torch.ones(1), persistent=False)
        return self.linear(x)


def test_counting_leaves_parameters_vectors_and_rebound_buffers_as_they_were():
    """An ``Embedding(max_norm=...)`` renormalises the rows it looks up (its weight, in
    place), spectral norm's power iteration writes its vectors (``out=``), ``_Steps`` rebinds
    a buffer and registers one: after a count, the state dict is the same values, the same
    tensor objects hold them, and no buffer was added. A second count is the same count."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Embedding(10, 4, max_norm=0.5),
        nn.utils.parametrizations.spectral_norm(nn.Linear(4, 4)),
        _Steps(),
    )
    ids = torch.tensor([[1, 2, 3], [3, 4, 5]])
    before = _state(model)
    weight, steps = model[0].weight, model[2].steps
    first = gp.count_fpo(model, ids)
    assert _same_state(model, before)
    assert model[0].weight is weight and model[2].steps is steps
    assert "cache" not in model[2]._buffers and not hasattr(model[2], "cache")
    assert gp.count_fpo(model, ids).by_op == first.by_op
    model(ids)  # a real forward changes all three
    assert not torch.equal(model[0].weight, before["0.weight"])
    assert model[2].steps.item() == 1 and "cache" in model[2]._buffers


def test_counting_a_function_leaves_the_modules_it_calls_and_its_inputs_as_they_were():
    """A function's modules are kept from their first call; an input written in place too."""
    model, _ = _settled_batch_norm_model()
    before = _state(model)
    x = torch.randn(8, 4)
    given = x.clone()

    def step(batch):
        return model(batch.mul_(2))  # doubles the caller's tensor in place

    gp.count_fpo(step, x)
    assert _same_state(model, before)
    assert torch.equal(x, given)


def test_an_outer_counter_sees_neither_the_copies_nor_the_rule_readers_ops():
    """Counters nest: an outer one counts what the inner count counts, nothing of
    greenprint's own (the copies a count keeps, the embedding rule's reading of the rows)."""
    model = nn.Sequential(nn.Embedding(10, 4, max_norm=0.5), nn.Linear(4, 4), nn.BatchNorm1d(3))
    ids = torch.tensor([[1, 2, 3], [3, 4, 5]])
    with gp.FPOCounter() as outer:
        inner = gp.count_fpo(model, ids)
    assert outer.result.by_op == inner.by_op
    assert outer.result.calls == inner.calls


def test_training_fpo_on_the_model_takes_one_real_step_of_a_module_that_rebinds_a_buffer():
    """``on_meta=False``: the counted step is undone, rebinding included, then one real step
    is taken: the buffer counts one step, not two."""
    model = nn.Sequential(_Steps(), nn.BatchNorm1d(4))
    gp.training_fpo(model, torch.randn(8, 4), steps=10, on_meta=False)
    assert model[0].steps.item() == 1
    assert model[1].num_batches_tracked.item() == 1


# -- nodes made in the backward pass: the model's work ---------------------------------------


class _Block(nn.Module):
    def __init__(self, reentrant):
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.reentrant = reentrant

    def inner(self, x):
        return x + F.gelu(self.linear(x))  # a residual and a functional activation

    def forward(self, x):
        if self.reentrant is None:
            return self.inner(x)
        return checkpoint(self.inner, x, use_reentrant=self.reentrant)


class _Blocks(nn.Module):
    def __init__(self, reentrant):
        super().__init__()
        self.blocks = nn.ModuleList([_Block(reentrant), _Block(reentrant)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpointed_blocks_get_their_own_ops_backward_and_the_model_gets_all(reentrant):
    """Each block checkpoints ``x + gelu(linear(x))``. Against the same blocks run plainly:
    the forward is the same, each block's count is its plain count plus its recomputation
    (the reentrant checkpoint re-runs and back-propagates through its residual and gelu
    outside the Linear: those were ``(outside the model)`` before, 704 FPO of 5,824), and
    the model has all of it."""
    torch.manual_seed(0)
    model = _Blocks(reentrant)
    x = torch.randn(4, 8, requires_grad=True)
    result = gp.count_fpo(model, x)
    for block in model.blocks:
        block.reentrant = None
    plain = gp.count_fpo(model, x)
    assert plain.recompute_total == 0 and result.recompute_total > 0
    assert result.forward_total == plain.forward_total
    assert result.total == plain.total + result.recompute_total
    assert result.by_module[""] == result.total
    for name in ("blocks.0", "blocks.1"):
        assert result.by_module[name] == plain.by_module[name] + result.recompute_by_module[name]
        linear = f"{name}.linear"
        assert (
            result.by_module[linear]
            == plain.by_module[linear] + (result.recompute_by_module[linear])
        )


def test_a_reentrant_checkpoint_called_by_the_model_charges_its_functional_ops_to_it():
    """``checkpoint(lambda t: relu(a(t)))`` in the model's own forward: the relu's backward
    (12 FPO, one per element of the (3, 4) activation) re-made by the reentrant checkpoint is
    the model's, as the non-reentrant checkpoint's is."""
    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self, reentrant):
            super().__init__()
            self.a, self.b, self.reentrant = nn.Linear(4, 4), nn.Linear(4, 4), reentrant

        def forward(self, x):
            h = checkpoint(lambda t: torch.relu(self.a(t)), x, use_reentrant=self.reentrant)
            return self.b(h)

    x = torch.randn(3, 4, requires_grad=True)
    for reentrant in (True, False):
        result = gp.count_fpo(Model(reentrant), x)
        assert result.by_module[""] == result.total == 768
        assert result.by_op_phase["aten.threshold_backward"]["backward"] == 12


def test_a_gradient_penalty_charges_the_critics_second_order_backward_to_its_layers():
    """WGAN-GP's penalty on a critic Linear(4, 5), Tanh, Linear(5, 1), 3 samples (the maths
    of ``test_fpo_probe_s21``'s gradient-penalty test, 1,155 FPO in all), module by module.

    ``"0"`` (Linear(4, 5)): forward ``2*3*4*5 + 15`` = 135; ``autograd.grad``'s ``g = t @
    W1`` 120; the penalty's backward through it, t's and W1's products 120 + 120, through
    ``z = x W1^T + b`` x 120, W1 120, b 15, W1's two gradients summed 20: 770. ``"1"`` (Tanh):
    15; ``t = g_h * (1 - y^2)`` 45; then ``tanh_backward`` 45, ``g * (-2 y * g_h)`` 45 and
    ``y = tanh(z)`` 45: 195. ``"2"`` (Linear(5, 1)): ``2*3*5 + 3`` = 33, ``g_h = 1 @ W2`` 30,
    W2's 30: 93. Outside the critic: ``out.sum()`` 3 and the penalty 58 forward, its own
    backward 36: 97 (385 before: the critic's second-order backward was counted outside)."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1))
    x = torch.randn(3, 4, requires_grad=True)
    with gp.FPOCounter(critic) as counter:
        (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        ((g.norm(2, dim=1) - 1) ** 2).mean().backward()
    result = counter.result
    assert result.total == 1155
    assert result.by_module == {"": 1058, "0": 770, "1": 195, "2": 93}
    assert result.total - result.by_module[""] == 97


# -- outputs that are dataclasses --------------------------------------------------------------


@dataclasses.dataclass
class _Out:
    logits: torch.Tensor
    extra: tuple = ()


@dataclasses.dataclass
class _WithLoss:
    logits: torch.Tensor
    loss: torch.Tensor


class _Returns(nn.Module):
    def __init__(self, wrap):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.wrap = wrap

    def forward(self, x):
        return self.wrap(self.linear(x))


def test_backward_from_a_plain_dataclass_output_as_from_the_tensors_it_holds():
    """A dataclass not registered as a pytree is searched field by field (nested ones too):
    the count is that of the same model returning its tensors; with a ``loss`` field the
    backward starts from the loss, as from a Hugging Face output's."""
    x = torch.randn(2, 4)
    plain = gp.count_fpo(_Returns(lambda y: y), x)
    assert gp.count_fpo(_Returns(_Out), x).total == plain.total
    nested = gp.count_fpo(_Returns(lambda y: (_Out(y[:, :2], (_Out(y[:, 2:]),)),)), x)
    split = gp.count_fpo(_Returns(lambda y: (y[:, :2], y[:, 2:])), x)
    assert nested.total == split.total
    with_loss = gp.count_fpo(_Returns(lambda y: _WithLoss(y, (y * y).sum())), x)
    from_loss = gp.count_fpo(_Returns(lambda y: (y * y).sum()), x)
    assert with_loss.total == from_loss.total  # the logits field is not back-propagated


def test_an_output_greenprint_cannot_search_says_so_and_names_the_model():
    class Box:  # neither a pytree nor a dataclass
        def __init__(self, t):
            self.t = t

    with pytest.raises(gp.FPOInputError, match=r"output of the model _Returns, Box.*backward_from"):
        gp.count_fpo(_Returns(Box), torch.randn(2, 4))
    with pytest.raises(gp.FPOInputError, match=r"outputs of the model _Returns are int64 tensors"):
        gp.count_fpo(_Returns(lambda y: (y > 0).long()), torch.randn(2, 4))


def test_the_command_line_says_to_drop_backward_for_integer_outputs(capsys, tmp_path):
    factory = tmp_path / "intmodel.py"
    factory.write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.l = torch.nn.Linear(4, 4)\n"
        "    def forward(self, x):\n"
        "        return (self.l(x) > 0).int()\n"
    )
    rc = main(["fpo", f"{factory}:M", "--input-shape", "2,4", "--backward"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "outputs of the model M are int32 tensors" in err and "without --backward" in err


# -- CPU flash attention's backward: the three gradients it computes ---------------------------


def test_cpu_attention_backward_counts_the_three_gradients_its_kernel_computes():
    """``_scaled_dot_product_flash_attention_for_cpu_backward`` takes no mask and returns the
    gradients of q, k and v: with only q needing one, its gradient of k is computed all the
    same (checked against k's true gradient). So the CPU count is the full backward, 5,256
    FPO for (2, 3, 4, 6), whatever needs a gradient; the math path on meta runs only what is
    needed: with q only, less the dK and dV products (``2 b h s s d`` = 1,152 each) and K's
    gradient scaling (144, one per element): 2,808."""
    torch.manual_seed(0)
    shape = (2, 3, 4, 6)
    q, k, v = (torch.randn(shape) for _ in range(3))
    returned = {}

    from torch.utils._python_dispatch import TorchDispatchMode

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if "flash_attention_for_cpu_backward" in str(func):
                returned["grads"] = out
            return out

    with Spy():
        F.scaled_dot_product_attention(q.clone().requires_grad_(), k, v).sum().backward()
    k_grad = k.clone().requires_grad_()
    F.scaled_dot_product_attention(q, k_grad, v).sum().backward()
    torch.testing.assert_close(returned["grads"][1], k_grad.grad)

    def backward(device, needs):
        tensors = [
            t.detach().clone().to(device).requires_grad_(n)
            for t, n in zip((q, k, v), needs, strict=True)
        ]
        return gp.count_fpo(F.scaled_dot_product_attention, *tensors).backward_total

    assert backward("cpu", (True, True, True)) == backward("meta", (True, True, True)) == 5256
    assert backward("cpu", (True, False, False)) == backward("cpu", (True, False, True)) == 5256
    products = 2 * 2 * 3 * 4 * 4 * 6
    assert backward("meta", (True, False, False)) == 5256 - 2 * products - 144 == 2808
    assert backward("meta", (True, False, True)) == 5256 - products - 144 == 3960


# -- the docs' figures and the table's words ----------------------------------------------------


def test_batch_norm_in_eval_is_618_with_or_without_affine():
    """(4, 3, 5, 5), N = 300, C = 3: ``2N + 6C`` = 618, the kernel's ``x * alpha + beta``
    whatever the weight and bias (docs/fpo.md said 1,206 with affine)."""
    x = torch.randn(4, 3, 5, 5)
    for affine in (True, False):
        bn = nn.BatchNorm2d(3, affine=affine).eval()
        assert gp.count_fpo(bn, x, backward=False).total == 2 * 300 + 6 * 3 == 618


def test_a_pruned_layer_with_its_mask_counts_the_mask_product_and_its_gradient():
    """Linear(8, 4), ReLU, Linear(4, 2) on 3 samples: 588 FPO dense (forward ``192 + 12``,
    12, ``48 + 6``; backward from ones: the second layer's input and weight gradients 48 each
    and bias 6, the ReLU's 12, the first layer's weight 192 and bias 12). With the first layer's
    weight half pruned and the mask in place, each forward computes ``weight_orig * mask``
    (32 products) and the backward ``grad * mask`` for ``weight_orig`` (32 more): 652, charged
    to the pruned layer; after ``prune.remove`` the dense count again."""
    from torch.nn.utils import prune

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(3, 8)
    dense = gp.count_fpo(model, x)
    assert dense.total == 588
    prune.l1_unstructured(model[0], "weight", 0.5)
    masked = gp.count_fpo(model, x)
    assert masked.total == dense.total + 2 * 32 == 652
    assert masked.by_module["0"] == dense.by_module["0"] + 2 * 32
    assert masked.zero_weights == 16
    prune.remove(model[0], "weight")
    assert gp.count_fpo(model, x).total == dense.total


def test_the_table_says_one_op_in_the_singular():
    result = gp.count_fpo(lambda a: a.t() * 2, torch.randn(2, 3), backward=False)
    assert "0 FPO      1 op (aten.t)" in result.table().splitlines()
    several = gp.count_fpo(
        lambda a: a.t().reshape(-1).view(3, 2) * 2, torch.randn(2, 3), backward=False
    )
    assert any(
        line.startswith("0 FPO      ") and " ops (" in line for line in several.table().splitlines()
    )


def test_the_cli_names_the_model_and_its_own_option_when_backward_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``greenprint fpo M --backward`` of a model whose output has no gradient: one line that
    names the model, as the CLI's other errors do, and says to drop ``--backward`` (not the
    Python argument ``backward=False``)."""
    from greenprint.cli import main

    (tmp_path / "intmodel.py").write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.l = torch.nn.Linear(4, 4)\n"
        "    def forward(self, x):\n"
        "        return (self.l(x) > 0).int()\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["fpo", "intmodel:M", "--input-shape", "2,4", "--backward"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("greenprint: error: intmodel:M: backward=True")
    assert "(without --backward)" in err and "backward=False" not in err
