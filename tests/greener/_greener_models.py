"""Small models and data for the greener tests: a CNN that learns a separable task in a second."""

from __future__ import annotations

import torch
from torch import nn

#: input shape of one example (channels, height, width)
SHAPE = (1, 8, 8)
BATCH = 32


def data(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is the sign of their mean brightness (two classes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *SHAPE, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return x, y


def batches(
    n: int = 256, seed: int = 0, size: int = BATCH
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = data(n, seed)
    return [(x[i : i + size], y[i : i + size]) for i in range(0, n, size)]


def cnn(channels: int = 8, hidden: int = 32) -> nn.Module:
    """conv 3x3 (1 -> channels) + ReLU + linear (channels*36 -> hidden) + ReLU + linear (-> 2)."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * 36, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 2),
    )


def trained(channels: int = 8, hidden: int = 32, steps: int = 60, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = cnn(channels, hidden)
    x, y = data(512, seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def accuracy(model: nn.Module, n: int = 256, seed: int = 7) -> float:
    x, y = data(n, seed)
    with torch.inference_mode():
        return float((model(x).argmax(dim=-1) == y).float().mean())


def dense_fpo_per_example(channels: int = 8, hidden: int = 32) -> int:
    """FPO of one example through :func:`cnn`, from first principles (a MAC is 2 FPO).

    conv: 36 positions x channels x 9 MACs, + bias 36 x channels; ReLU: 1 per element;
    linear: in x out MACs + out bias adds; flatten: 0.
    """
    conv = 2 * 36 * channels * 9 + 36 * channels
    relu1 = 36 * channels
    fc1 = 2 * channels * 36 * hidden + hidden
    relu2 = hidden
    fc2 = 2 * hidden * 2 + 2
    return conv + relu1 + fc1 + relu2 + fc2


def products_per_example(channels: int = 8, hidden: int = 32) -> dict[str, int]:
    """The matrix-product FPO (no bias) of each weighted layer of :func:`cnn`, by module name."""
    return {
        "0": 2 * 36 * channels * 9,
        "3": 2 * channels * 36 * hidden,
        "5": 2 * hidden * 2,
    }
