"""How many parameters a fine-tuning trains, beside how many the model has.

``FPOResult.params`` counts every parameter, frozen ones included: a LoRA fine-tuning of a
frozen layer read as training all of them. ``trainable_params`` counts those that require a
gradient (a parameter shared by two modules once), in the result, its dict, its table and on the
counter; ``times`` keeps it.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import greenprint as gp  # noqa: E402


class LoRALinear(nn.Module):
    """A frozen ``d x d`` layer with a trainable rank-``r`` update ``B @ A``."""

    def __init__(self, d: int, r: int) -> None:
        super().__init__()
        self.base = nn.Linear(d, d)
        self.base.requires_grad_(False)
        self.a = nn.Parameter(torch.randn(r, d) * 0.01)
        self.b = nn.Parameter(torch.zeros(d, r))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + x @ self.a.T @ self.b.T


def test_a_lora_layer_trains_its_adapters_only_and_every_view_says_so() -> None:
    model = LoRALinear(16, 2)
    counted = gp.count_fpo(model, torch.randn(4, 16))
    assert counted.params == 16 * 16 + 16 + 2 * 16 + 16 * 2 == 336
    assert counted.trainable_params == 2 * 16 + 16 * 2 == 64
    assert counted.to_dict()["trainable_params"] == 64
    assert "params     336 (64 trainable)" in counted.table()
    assert counted.times(10).trainable_params == 64  # a count of parameters, not of steps
    with gp.FPOCounter(model) as counter:
        model(torch.randn(4, 16)).sum().backward()
    assert (counter.params, counter.trainable_params) == (336, 64)


def test_a_model_training_everything_says_params_once_and_shares_count_once() -> None:
    shared = nn.Linear(8, 8)
    model = nn.Sequential(shared, nn.ReLU(), shared)  # one layer applied twice
    counted = gp.count_fpo(model, torch.randn(2, 8))
    assert counted.params == counted.trainable_params == 8 * 8 + 8
    assert "params     72\n" in counted.table() + "\n"  # no "(... trainable)" when all are
