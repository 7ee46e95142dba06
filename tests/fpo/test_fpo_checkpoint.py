"""Activation checkpointing: the recomputed forward is backward work, shown as ``recompute``."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

import fpo_zoo as zoo  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import greenprint as gp  # noqa: E402


def _plain(model):
    """The same model without checkpointing: blocks called directly."""

    def forward(x):
        x = model.stem(x)
        for block in model.blocks:
            x = block(x)
        return model.head(x)

    return forward


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpointing_adds_exactly_the_recomputed_forward_and_the_model_gets_all(use_reentrant):
    torch.manual_seed(0)
    model = zoo.CheckpointedMLP(use_reentrant=use_reentrant, blocks=3)
    x = torch.randn(4, 4)
    result = gp.count_fpo(model, x)
    with gp.FPOCounter(model) as plain:
        _plain(model)(x).backward(torch.ones(4, 2))
    assert result.forward_total == plain.result.forward_total
    assert result.backward_total == plain.result.backward_total + result.recompute_total
    assert result.recompute_total > 0 and plain.result.recompute_total == 0
    assert result.by_module[""] == result.total
    blocks = [f"blocks.{i}" for i in range(3)]
    assert sum(result.recompute_by_module[b] for b in blocks) == result.recompute_total
    for b in blocks:  # each block: its own work as before, plus its recomputation
        assert result.by_module[b] == plain.result.by_module[b] + result.recompute_by_module[b]
    if use_reentrant:  # the whole block re-runs: its forward again
        assert result.recompute_by_module["blocks.1"] == result.forward_by_module["blocks.1"]


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_matmul_total_equals_flopcountermode_under_checkpointing(use_reentrant):
    torch.manual_seed(0)
    model = zoo.CheckpointedMLP(use_reentrant=use_reentrant)
    x = torch.randn(4, 4)
    result = gp.count_fpo(model, x)
    with FlopCounterMode(display=False) as f:
        model(x).backward(torch.ones(4, 2))
    assert result.matmul_total == f.get_total_flops()


def test_the_table_and_json_show_the_recomputation():
    model = zoo.CheckpointedMLP()
    result = gp.count_fpo(model, torch.randn(4, 4))
    header, model_row = result.table().splitlines()[:2]
    assert header.split() == ["module", "forward", "backward", "recompute", "total", "share"]
    assert model_row.split()[0] == "(model)" and model_row.endswith("100.0%")
    assert "recompute  2.3 kFPO (of backward" in result.table()
    data = json.loads(json.dumps(result.to_dict()))
    assert data["recompute_total"] == 2_304
    assert data["by_module_phase"]["blocks.0"]["recompute"] == 1_152
    assert result.times(10).recompute_total == 23_040
    plain = gp.count_fpo(zoo.mlp(), torch.randn(4, 12))
    assert "recompute" not in plain.table()  # no column without checkpointing


def test_a_functional_checkpoint_outside_any_module_is_counted_as_recompute():
    x = torch.randn(5, 3, requires_grad=True)
    with gp.FPOCounter() as c:
        y = checkpoint(lambda t: torch.sin(t * 2.0), x, use_reentrant=False)
        y.backward(torch.ones(5, 3))
    # forward: mul 15 + sin 15; backward: the re-run mul (sin's output is not needed), then
    # cos and mul for sin' (30), mul by 2 (15)
    assert c.result.forward_total == 30
    assert c.result.recompute_total == c.recompute_total == 15
    assert c.result.backward_total == 15 + 30 + 15


def test_a_create_graph_backward_is_not_recomputation():
    model = zoo.mlp()
    x = torch.randn(4, 12, requires_grad=True)
    with gp.FPOCounter(model) as c:
        (grad,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
        grad.pow(2).sum().backward()  # a gradient penalty
    assert c.result.recompute_total == 0 and c.result.backward_total > 0
    assert c.result.by_module[""] > 0


def test_training_fpo_of_a_checkpointed_model():
    model = zoo.CheckpointedMLP()
    step = gp.training_fpo(model, torch.randn(4, 4), 5, optimizer="sgd", strict=True)
    assert step.recompute_total == 5 * 2_304
    assert step.by_module[""] == step.total - step.optimizer_total


def test_selective_checkpointing_counts_only_what_it_recomputes():
    """Selective activation checkpointing saves the linears' outputs: only ReLU re-runs."""
    import functools

    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

    def policy(ctx, op, *args, **kwargs):
        saved = op == torch.ops.aten.addmm.default
        return CheckpointPolicy.MUST_SAVE if saved else CheckpointPolicy.PREFER_RECOMPUTE

    class Selective(zoo.CheckpointedMLP):
        def forward(self, x):
            x = self.stem(x)
            for block in self.blocks:
                context = functools.partial(create_selective_checkpoint_contexts, policy)
                x = checkpoint(block, x, use_reentrant=False, context_fn=context)
            return self.head(x)

    result = gp.count_fpo(Selective(), torch.randn(4, 4))
    assert result.recompute_total == 2 * 64  # ReLU over (4, 16), per block
    assert result.total == 16_208 - 2 * 1_152 + 2 * 64  # the zoo's hand count, less the linears
    assert result.by_module[""] == result.total
