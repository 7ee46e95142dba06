"""NLL loss (cross-entropy's second half) against a port of ATen's CPU kernel that counts every
operation (audit s35).

``nll_loss_out_frame`` and ``nll_loss2d_forward_out_frame`` (``native/LossNLL.cpp``,
``LossNLL2d.cpp``) sum the picked log-probabilities in a cascade of 8 partial sums: each kept
target is subtracted into level 0 (with class weights ``-= data * w`` and the weight added into
the weights' level 0), then, while the ``j``-th group of 4 bits of its flat position is 0, level
``j`` is carried into level ``j + 1`` for the loss and the weights alike (2 adds); at the end
both sets of 8 partial sums are added into 0 (the weights' only with weights: without, the total
weight is the kept count, an integer) and the mean divides. The port below is that loop written
with :class:`Counted` floats; its value is checked against torch's and its count equals the
counter's on CPU tensors (the kept targets and their positions read from the target) and, with
every target kept, on meta.

Before s35 the rule counted 1 per target (3 with weights) + the mean's division: the carries
(14 after the first target, 2 more after every 16th, 2 more again after every 256th...) and the
8 (16) final adds were left out, "as a reduction's". The backward (one scalar ``-(g / total)``,
then a copy or a product per kept target) and ``reduction="none"`` (``-x * w`` per target) were
already the kernel's.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo._rules_loss import cascade_carries  # noqa: E402

LEVELS, LEVEL_POWER = 8, 4


def nll_forward(picked, weights, reduction):
    """The kernel's reduced path over the flat targets: ``picked[i]`` the log-probability at
    the target of position ``i`` (None when ``ignore_index``), ``weights[i]`` its class
    weight (None without weights). Returns the loss value."""
    zero = Counted(0.0)
    loss, weight_sums = [zero] * LEVELS, [zero] * LEVELS
    kept = 0
    for i, data in enumerate(picked):
        if data is None:
            continue
        kept += 1
        if weights is not None:
            loss[0] = loss[0] - data * weights[i]
            weight_sums[0] = weight_sums[0] + weights[i]
        else:
            loss[0] = loss[0] - data
        for j in range(LEVELS - 1):
            if i & ((2**LEVEL_POWER - 1) << (j * LEVEL_POWER)):
                break
            weight_sums[j + 1] = weight_sums[j + 1] + weight_sums[j]
            loss[j + 1] = loss[j + 1] + loss[j]
            weight_sums[j], loss[j] = zero, zero
    total = zero
    if weights is not None:
        for w in weight_sums:
            total = total + w
    else:
        total = Counted(float(kept))
    out = zero
    for partial in loss:
        out = out + partial
    return out / total if reduction == "mean" else out


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 300),
    classes=st.integers(2, 5),
    weighted=st.booleans(),
    reduction=st.sampled_from(["mean", "sum"]),
    ignored=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
)
def test_nll_loss_equals_the_ported_kernel(n, classes, weighted, reduction, ignored, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.log_softmax(torch.randn(n, classes, generator=gen, dtype=torch.float64), 1)
    target = torch.randint(0, classes, (n,), generator=gen)
    target[torch.rand(n, generator=gen) < ignored] = -100
    target[0] = 0  # at least one kept target, so that the mean is a number
    weight = torch.rand(classes, generator=gen, dtype=torch.float64) + 0.5 if weighted else None
    picked = [None if t < 0 else Counted(x[i, t].item()) for i, t in enumerate(target.tolist())]
    weights = None
    if weighted:
        weights = [Counted(weight[t].item()) if t >= 0 else None for t in target.tolist()]
    Counted.ops = 0
    value = nll_forward(picked, weights, reduction)
    expected = F.nll_loss(x, target, weight=weight, reduction=reduction)
    torch.testing.assert_close(torch.tensor(float(value), dtype=torch.float64), expected)

    def loss(t, y):
        return F.nll_loss(t, y, weight=weight, reduction=reduction)

    counted = gp.count_fpo(loss, x, target, backward=False).by_op["aten.nll_loss_forward"]
    assert counted == Counted.ops
    # on meta every target counts: the kept ones' count with the carries of all n positions
    meta_weight = None if weight is None else weight.to("meta")
    meta = gp.count_fpo(
        lambda t, y: F.nll_loss(t, y, weight=meta_weight, reduction=reduction),
        x.to("meta"),
        target.to("meta"),
        backward=False,
    ).by_op["aten.nll_loss_forward"]
    per_target = 3 if weighted else 1
    assert meta == n * per_target + 2 * cascade_carries(n) + 8 * (2 if weighted else 1) + (
        reduction == "mean"
    )


def test_the_cascade_carries_by_hand():
    """After position 0 every level carries (7); after 16, 32, ... once; after 256, 512, ...
    twice: 300 targets carry 7 + 18 + 1 = 26 times (``ceil(300 / 16) + ceil(300 / 256) + 5``
    for the powers whose only multiple below 300 is 0)."""
    assert cascade_carries(1) == 7
    assert cascade_carries(16) == 7
    assert cascade_carries(17) == 8
    assert cascade_carries(300) == 19 + 2 + 5 == 26
    assert cascade_carries(0) == 0


def test_a_segmentation_loss_runs_the_same_cascade_over_its_pixels():
    """``nll_loss2d`` of (2, 3, 4, 5) log-probabilities, 40 pixels, 6 labelled 255 and ignored:
    the carries follow each kept pixel's flat position ``b * H W + elem``."""
    gen = torch.Generator().manual_seed(3)
    x = torch.log_softmax(torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64), 1)
    target = torch.randint(0, 3, (2, 4, 5), generator=gen)
    target.view(-1)[torch.tensor([0, 5, 16, 17, 30, 39])] = 255
    flat = target.reshape(-1).tolist()
    picked = [
        None if t == 255 else Counted(x[i // 20, t, (i % 20) // 5, i % 5].item())
        for i, t in enumerate(flat)
    ]
    Counted.ops = 0
    value = nll_forward(picked, None, "mean")
    result = gp.count_fpo(lambda t: F.nll_loss(t, target, ignore_index=255), x, backward=False)
    torch.testing.assert_close(
        torch.tensor(float(value), dtype=torch.float64), F.nll_loss(x, target, ignore_index=255)
    )
    # 34 kept; position 0 is ignored (no carries), 32 carries once: 34 + 2 + 8 + 1
    assert result.by_op["aten.nll_loss2d_forward"] == Counted.ops == 34 + 2 + 8 + 1
