"""The counter on whole models: FlopCounterMode parity, meta == real, modules, training."""

from __future__ import annotations

import copy
import functools
import json

import pytest

torch = pytest.importorskip("torch")

import fpo_zoo as zoo  # noqa: E402
from fcm_reference import (  # noqa: E402
    fixed_flop_counter,
    torch_overcounts_grouped_conv_backward,
)
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo import example_inputs  # noqa: E402
from greenprint.fpo._api import _OPTIMIZERS, meta_copy  # noqa: E402

# name -> (factory, inputs(device))
PARITY_MODELS = {
    "mlp": (zoo.mlp, lambda d: (torch.randn(4, 12, device=d),)),
    "cnn": (zoo.CNN, lambda d: (torch.randn(2, 3, 16, 16, device=d),)),
    "transformer_block": (zoo.TransformerBlock, lambda d: (torch.randn(2, 8, 16, device=d),)),
    "custom_function": (zoo.CustomFunctionModel, lambda d: (torch.randn(3, 10, device=d),)),
}
ZOO = {
    "resnet": (zoo.resnet_tiny, lambda d: (torch.randn(2, 3, 32, 32, device=d),)),
    "vit": (zoo.vit_tiny, lambda d: (torch.randn(2, 3, 16, 16, device=d),)),
    "gpt": (zoo.gpt_tiny, lambda d: (torch.zeros(2, 8, dtype=torch.long, device=d),)),
    "unet": (zoo.unet_tiny, lambda d: (torch.randn(1, 3, 16, 16, device=d),)),
    "lstm_lm": (zoo.lstm_tiny, lambda d: (torch.zeros(2, 7, dtype=torch.long, device=d),)),
    "graph": (zoo.graph_tiny, lambda d: zoo.graph_inputs(device=d)),
}


def build(factory, device):
    torch.manual_seed(0)
    return factory().to(device)


def fcm_total(model, inputs, backward, *, fixed=True):
    """FlopCounterMode's total; ``fixed``: with the grouped-conv backward fix (PR 183405)."""
    with fixed_flop_counter() if fixed else FlopCounterMode(display=False) as f:
        out = model(*inputs)
        if backward:
            out.backward(torch.ones_like(out))
    return f.get_total_flops()


# -- FlopCounterMode parity ----------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("name", sorted(PARITY_MODELS))
def test_matmul_total_equals_flopcountermode(name, backward, device):
    factory, inputs = PARITY_MODELS[name]
    model, x = build(factory, device), inputs(device)
    result = gp.count_fpo(model, *x, backward=backward)
    expected = fcm_total(model, x, backward)
    assert result.matmul_total == expected
    stock = fcm_total(model, x, backward, fixed=False)
    grouped_backward = name == "cnn" and backward  # zoo.CNN has a grouped conv
    if grouped_backward and torch_overcounts_grouped_conv_backward():
        assert stock > expected  # the installed FlopCounterMode overcounts grad_weight
    else:
        assert stock == expected
    assert result.total > result.matmul_total  # everything else is added on top
    assert not result.unknown_ops


def test_fused_kernels_flopcountermode_misses_are_counted():
    """On CPU an LSTM runs as one oneDNN op and SDPA as one flash op: FlopCounterMode counts
    both as 0; greenprint counts them, and the same as the op-by-op path meta runs."""
    lstm = build(lambda: torch.nn.LSTM(8, 16, num_layers=2), "cpu")
    x = torch.randn(5, 2, 8, requires_grad=True)
    with FlopCounterMode(display=False) as f:
        out, _ = lstm(x)
        out.backward(torch.ones_like(out))
    assert f.get_total_flops() == 0  # FlopCounterMode misses the fused LSTM layer
    cpu = gp.count_fpo(lstm, x)
    assert cpu.by_op["aten.mkldnn_rnn_layer"] > 0 and cpu.by_op["aten.mkldnn_rnn_layer_backward"]
    meta = gp.count_fpo(meta_copy(lstm), x.detach().to("meta").requires_grad_())
    assert "aten.mkldnn_rnn_layer" not in meta.by_op  # meta runs the recurrence op by op
    assert (cpu.forward_total, cpu.backward_total) == (meta.forward_total, meta.backward_total)

    q = torch.randn(1, 2, 4, 8, requires_grad=True)
    with FlopCounterMode(display=False) as f:
        torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
    assert f.get_total_flops() == 0  # FlopCounterMode misses CPU flash attention
    with gp.FPOCounter() as c:
        torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
    assert c.by_op["aten._scaled_dot_product_flash_attention_for_cpu"] > 2 * 2 * 4 * 4 * 8 * 2


# -- meta, fake and real tensors give the same counts ---------------------------------------------


@pytest.mark.parametrize("name", sorted({**PARITY_MODELS, **ZOO}))
def test_meta_counts_equal_real_counts(name):
    factory, inputs = {**PARITY_MODELS, **ZOO}[name]
    real = gp.count_fpo(build(factory, "cpu"), *inputs("cpu"))
    meta = gp.count_fpo(build(factory, "meta"), *inputs("meta"))
    assert real.total > 0 and not real.unknown_ops and not meta.unknown_ops
    assert (real.total, real.forward_total, real.backward_total) == (
        meta.total,
        meta.forward_total,
        meta.backward_total,
    )
    assert real.by_module == meta.by_module
    assert real.params == meta.params


def test_fake_tensors_count_like_meta():
    with FakeTensorMode():
        model = zoo.TransformerBlock()
        fake = gp.count_fpo(model, torch.randn(2, 8, 16))
    meta = gp.count_fpo(build(zoo.TransformerBlock, "meta"), torch.randn(2, 8, 16, device="meta"))
    assert fake.total == meta.total and fake.by_module == meta.by_module


def test_a_7b_shaped_layer_is_counted_on_meta_without_allocating():
    cfg = zoo.DecoderConfig(vocab=32000, dim=4096, layers=1, heads=32, hidden=11008)
    with torch.device("meta"):
        model = zoo.Decoder(cfg)
    result = gp.count_fpo(model, *example_inputs((1, 128), dtype="int64"))
    per_token_params = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 32000 * 4096  # matmuls
    assert result.params == per_token_params + 32000 * 4096 + 3 * 4096
    # 6 * params * tokens for the products, plus attention scores, is the classic estimate
    assert result.matmul_total >= 6 * per_token_params * 128


# -- module attribution ----------------------------------------------------------------------------


def test_modules_get_nested_dotted_names_and_their_backward():
    model = build(zoo.resnet_tiny, "cpu")
    r = gp.count_fpo(model, torch.randn(2, 3, 32, 32))
    assert r.by_module[""] == r.total  # every op ran inside the model
    assert {"layer1", "layer1.0", "layer1.0.conv1", "layer2.0.downsample.0", "fc"} <= set(
        r.by_module
    )
    phase = r.by_module_phase
    assert phase["layer1.0.conv1"]["backward"] > 0 and phase["fc"]["backward"] > 0
    for parent in ("layer1", "layer1.0", "layer2.0.downsample"):
        children = [
            v
            for k, v in r.by_module.items()
            if k.startswith(parent + ".") and "." not in k[len(parent) + 1 :]
        ]
        assert r.by_module[parent] >= sum(children) > 0
    top = [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "fc",
    ]
    assert sum(r.by_module.get(k, 0) for k in top) == r.total
    # the backward of conv1 is exactly its convolution_backward (+ nothing else)
    conv = model.conv1
    alone = gp.count_fpo(conv, torch.randn(2, 3, 32, 32))
    assert phase["conv1"]["backward"] == alone.backward_total


def test_containers_whose_forward_never_runs_are_still_totalled():
    model = build(zoo.gpt_tiny, "meta")
    r = gp.count_fpo(model, torch.zeros(2, 8, dtype=torch.long, device="meta"))
    assert r.by_module["layers"] == r.by_module["layers.0"] + r.by_module["layers.1"]
    assert r.by_module["layers.0"] == r.by_module["layers.1"] > 0
    assert r.backward_by_module["layers.0.w2"] == 2 * r.forward_by_module["layers.0.w2"]


def test_counter_without_a_model_names_modules_by_class():
    lin = torch.nn.Linear(4, 3)
    seq = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
    with gp.FPOCounter() as c:
        seq(lin(torch.randn(2, 4))).sum().backward()
    assert {"Linear", "Sequential", "Sequential.0", "Sequential.1"} <= set(c.by_module)
    assert c.params == 4 * 3 + 3 + 3 * 3 + 3
    assert c.result.by_module_phase["Linear"]["backward"] > 0


def test_loss_outside_the_model_is_in_the_total_not_in_the_model():
    model = build(zoo.mlp, "cpu")
    with gp.FPOCounter(model) as c:
        out = model(torch.randn(4, 12))
        torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    assert c.total > c.by_module[""]
    assert c.result.by_op["aten._log_softmax"] > 0


# -- count_fpo / FPOCounter behaviour -------------------------------------------------------------


def test_count_fpo_leaves_the_models_gradients_as_they_were():
    model = build(zoo.mlp, "cpu")
    assert all(p.grad is None for p in model.parameters())
    gp.count_fpo(model, torch.randn(4, 12))
    assert all(p.grad is None for p in model.parameters())


def test_backward_without_anything_requiring_grad_is_bad_input():
    model = build(zoo.mlp, "cpu").requires_grad_(False)
    with pytest.raises(gp.FPOInputError, match="requires grad"):
        gp.count_fpo(model, torch.randn(4, 12))
    assert gp.count_fpo(model, torch.randn(4, 12), backward=False).total > 0


def test_a_function_of_tensors_is_counted_as_a_model_would_be():
    # count_fpo(function, ...) raised AttributeError ('function' object has no attribute
    # 'named_modules') deep inside the counter; a function is counted like the model it calls
    model = build(zoo.mlp, "cpu")
    x = torch.randn(4, 12)
    as_model = gp.count_fpo(model, x)
    as_function = gp.count_fpo(lambda t: model(t), x)
    assert as_function.total == as_model.total > 0
    assert as_function.by_op == as_model.by_op
    assert as_function.params == as_model.params  # the modules it called
    # a functional op alone: (2, 3) @ (3, 5) is 2 x 5 dot products of 2k FPO (docs/fpo.md)
    a, b = torch.randn(2, 3, requires_grad=True), torch.randn(3, 5, requires_grad=True)
    assert gp.count_fpo(torch.matmul, a, b, backward=False).total == 2 * 5 * (2 * 3)
    assert gp.count_fpo(torch.matmul, a, b).backward_total == 2 * 60  # two matmuls back
    assert a.grad is None and b.grad is None  # a counted backward leaves no gradient behind
    with pytest.raises(gp.FPOInputError, match="a torch.nn.Module or a function"):
        gp.count_fpo("resnet50", x)


def test_a_function_leaves_the_gradients_of_the_model_it_calls_as_they_were():
    # before: count_fpo(lambda t: model(t), x) left the counted backward's gradients on the
    # model's parameters (a user's next optimizer step took them), and a second count added
    # the gradient accumulation: 4,763 FPO for a small MLP's 4,504 (259 of aten.add_)
    model = build(zoo.mlp, "cpu")
    x = torch.randn(4, 12)
    weight = torch.randn(12, 12, requires_grad=True)  # a closure's own leaf, in no module
    fresh = gp.count_fpo(lambda t: model(t @ weight), x)
    own = [torch.full_like(p, 0.5) for p in model.parameters()]
    for p, g in zip(model.parameters(), own, strict=True):
        p.grad = g
    for _ in range(2):
        again = gp.count_fpo(lambda t: model(t @ weight), x)
        assert again.total == fresh.total
        assert "aten.add_" not in again.by_op
        assert all(p.grad is g for p, g in zip(model.parameters(), own, strict=True))
        assert weight.grad is None
    assert gp.count_fpo(lambda t: model(t), x).total == gp.count_fpo(model, x).total


def test_keyword_inputs_reach_the_model():
    class TwoInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x, *, scale):
            return self.lin(x) * scale

    r = gp.count_fpo(TwoInputs(), torch.randn(2, 3), scale=torch.tensor(2.0), backward=False)
    assert r.total == 2 * 2 * 3 * 3 + 6 + 6


def test_counter_is_not_reentrant_and_resets_on_enter():
    c = gp.FPOCounter()
    with c:
        torch.randn(3) * 2
        with pytest.raises(gp.FPOError, match="re-entrant"):
            c.__enter__()
    assert c.total == 3
    with c:
        pass
    assert c.total == 0


def test_result_table_json_and_times():
    r = gp.count_fpo(build(zoo.mlp, "cpu"), torch.randn(4, 12))
    text = r.table(by="module", depth=1)
    assert "(model)" in text and "FlopCounterMode" in text and "forward" in text
    assert "aten.addmm" in r.table(by="op") and str(r) == r.table()
    data = json.loads(json.dumps(r.to_dict()))
    assert data["total"] == r.total and data["unit"] == "FPO"
    assert data["by_op_phase"]["aten.mm"]["backward"] > 0
    three = r.times(3)
    assert (three.total, three.matmul_total, three.steps) == (3 * r.total, 3 * r.matmul_total, 3)
    assert three.params == r.params
    with pytest.raises(gp.FPOInputError):
        r.times(0)
    with pytest.raises(gp.FPOInputError):
        r.table(by="layer")


def test_hand_written_updates_can_be_counted_as_optimizer_work():
    p = torch.nn.Parameter(torch.randn(10))
    with gp.FPOCounter() as c:
        (p * p).sum().backward()
        with c.phase("optimizer"), torch.no_grad():
            p.add_(p.grad, alpha=-0.1)
    r = c.result
    assert (r.forward_total, r.backward_total, r.optimizer_total) == (20, 30, 20)
    with pytest.raises(gp.FPOError):
        with c.phase("inference"):
            pass


# -- training_fpo ---------------------------------------------------------------------------------


def test_training_fpo_is_one_step_times_steps_with_the_optimizer():
    model = build(zoo.mlp, "cpu")
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(8, 12), torch.randint(0, 5, (8,))
    params = sum(p.numel() for p in model.parameters())
    one = gp.training_fpo(model, x, 1, target=y, loss_fn=torch.nn.functional.cross_entropy)
    run = gp.training_fpo(model, x, 1000, target=y, loss_fn=torch.nn.functional.cross_entropy)
    assert run.total == 1000 * one.total and run.steps == 1000 and run.params == params
    assert one.optimizer_total == 2 * params  # SGD: p -= lr * g
    assert one.total == one.forward_total + one.backward_total + one.optimizer_total
    assert all(
        torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)
    )  # meta copy
    assert next(model.parameters()).device.type == "cpu"


def test_training_fpo_optimizers_agree_across_implementations():
    model = build(zoo.mlp, "cpu")
    x = torch.randn(4, 12)
    params = sum(p.numel() for p in model.parameters())
    tensors = len(list(model.parameters()))
    for name, per_element in (("adam", 13), ("adamw", 14), ("sgd-momentum", 4)):
        r = gp.training_fpo(model, x, 1, optimizer=name)
        step_counters = tensors if name.startswith("adam") else 0  # step += 1 per tensor
        assert r.optimizer_total == per_element * params + step_counters, name
    kinds = [{"foreach": False}, {"foreach": True}, {"fused": True}]
    totals = {
        gp.training_fpo(
            model,
            x,
            1,
            optimizer=functools.partial(torch.optim.AdamW, weight_decay=0.1, **kw),
            on_meta=False,
        ).optimizer_total
        for kw in kinds
    }
    assert totals == {14 * params + tensors}


class _BNDropNet(torch.nn.Module):
    """Batch norm (running statistics) and dropout (random numbers) around two linears."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(6, 8)
        self.bn = torch.nn.BatchNorm1d(8)
        self.drop = torch.nn.Dropout(0.3)
        self.fc2 = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


@pytest.mark.parametrize(
    "optimizer",
    [
        "sgd-momentum",
        "adam",
        functools.partial(torch.optim.AdamW, lr=0.1, weight_decay=0.5),
        None,
    ],
)
def test_training_fpo_on_the_model_leaves_it_as_one_real_step_would(optimizer):
    torch.manual_seed(0)
    model = _BNDropNet()
    reference = copy.deepcopy(model)
    x, y = torch.randn(5, 6), torch.randint(0, 3, (5,))
    old_grad = torch.full_like(model.fc1.weight, 7.0)
    model.fc1.weight.grad = old_grad
    loss_fn = torch.nn.functional.cross_entropy

    torch.manual_seed(1)
    counted = gp.training_fpo(
        model, x, 3, target=y, loss_fn=loss_fn, optimizer=optimizer, on_meta=False, strict=True
    )
    after_counting = torch.rand(4)

    torch.manual_seed(1)  # one real step by hand, from the same state and random numbers
    loss_fn(reference(x), y).backward()
    if optimizer is not None:
        make = _OPTIMIZERS[optimizer] if isinstance(optimizer, str) else optimizer
        make(reference.parameters()).step()
    assert torch.equal(after_counting, torch.rand(4))  # the generator is where one step leaves it

    for (name, a), (_, b) in zip(
        model.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name  # parameters, running mean/var, num_batches_tracked
    assert model.fc1.weight.grad is old_grad and model.fc2.weight.grad is None
    on_meta = gp.training_fpo(model, x, 3, target=y, loss_fn=loss_fn, optimizer=optimizer)
    assert counted.total == on_meta.total and counted.by_op == on_meta.by_op


def test_training_fpo_on_the_model_restores_it_when_the_count_fails():
    class Odd(_BNDropNet):
        def forward(self, x):
            return torch.special.bessel_j0(super().forward(x))  # no FPO rule

    model = Odd()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(gp.UnknownOpError):
        gp.training_fpo(model, torch.randn(5, 6), 1, optimizer="adamw", on_meta=False, strict=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert all(p.grad is None for p in model.parameters())


def test_training_fpo_rejects_bad_input():
    model = build(zoo.mlp, "cpu")
    with pytest.raises(gp.FPOInputError):
        gp.training_fpo(model, torch.randn(2, 12), 0)
    with pytest.raises(gp.FPOInputError, match="optimizer"):
        gp.training_fpo(model, torch.randn(2, 12), 1, optimizer="lion")


def test_example_inputs():
    x, ids = example_inputs("2,3,8", (2, 5), dtype=["bf16", "int64"])
    assert x.shape == (2, 3, 8) and x.dtype == torch.bfloat16 and x.device.type == "meta"
    assert ids.dtype == torch.int64
    (real,) = example_inputs((4,), device="cpu", requires_grad=True)
    assert real.requires_grad and real.device.type == "cpu"
    for bad in ("", "2,0", "a,b", "-1"):
        with pytest.raises(gp.FPOInputError):
            example_inputs(bad)
    with pytest.raises(gp.FPOInputError, match="dtype"):
        example_inputs((2,), dtype="float33")
    with pytest.raises(gp.FPOInputError):
        example_inputs((2,), (3,), dtype=["float32"] * 3)
    with pytest.raises(gp.FPOInputError):
        example_inputs()


def test_nested_counters_both_see_the_inner_block():
    model = build(zoo.mlp, "cpu")
    with gp.FPOCounter() as outer:
        torch.randn(4, 4) @ torch.randn(4, 4)
        with gp.FPOCounter(model) as inner:
            model(torch.randn(2, 12)).sum().backward()
    assert outer.total == inner.total + 2 * 4 * 4 * 4
    assert inner.matmul_total == outer.matmul_total - 128


def test_docstring_examples_run():
    import doctest

    import greenprint.fpo
    import greenprint.fpo.rules

    for module in (greenprint.fpo, greenprint.fpo.rules):
        failures, tried = doctest.testmod(module, verbose=False)
        assert tried > 0 and failures == 0, module.__name__
