"""Coverage: realistic models from plain torch.nn run forward and backward with no unknown op."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import fpo_zoo as zoo  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo import example_inputs  # noqa: E402

ZOO = {
    "resnet": (zoo.resnet_tiny, lambda d: (torch.randn(2, 3, 32, 32, device=d),)),
    "vit": (zoo.vit_tiny, lambda d: (torch.randn(2, 3, 16, 16, device=d),)),
    "gpt_rmsnorm_swiglu": (
        zoo.gpt_tiny,
        lambda d: (torch.zeros(2, 8, dtype=torch.long, device=d),),
    ),
    "unet_transposed_interp": (zoo.unet_tiny, lambda d: (torch.randn(1, 3, 16, 16, device=d),)),
    "lstm_lm": (zoo.lstm_tiny, lambda d: (torch.zeros(2, 7, dtype=torch.long, device=d),)),
    "message_passing": (zoo.graph_tiny, lambda d: zoo.graph_inputs(device=d)),
}


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_forward_backward_and_a_training_step_have_a_rule_for_every_op(name, device):
    factory, inputs = ZOO[name]
    torch.manual_seed(0)
    model = factory().to(device)
    result = gp.count_fpo(model, *inputs(device), strict=True)
    assert result.unknown_ops == {}
    assert result.forward_total > 0 and result.backward_total > result.forward_total / 2
    assert result.by_module[""] == result.total
    step = gp.training_fpo(model, inputs(device), 10, optimizer="adamw", strict=True)
    assert step.unknown_ops == {} and step.optimizer_total > 0


def test_resnet50_forward_at_224_matches_flopcountermode_and_the_known_size():
    with torch.device("meta"):
        model = zoo.resnet50().eval()
    (x,) = example_inputs((1, 3, 224, 224))
    result = gp.count_fpo(model, x, backward=False, strict=True)
    with FlopCounterMode(display=False) as f:
        model(x)
    assert result.matmul_total == f.get_total_flops()
    assert result.params == 25_557_032  # torchvision's resnet50
    assert 8.1e9 < result.matmul_total < 8.3e9  # the well-known 4.1 GMAC
    assert result.total > result.matmul_total  # + batch norm, ReLU, pooling, bias adds
