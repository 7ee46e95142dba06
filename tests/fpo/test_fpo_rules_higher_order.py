"""torch.cond and while_loop under the counter: counted through their branches, never a crash."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch._higher_order_ops.scan import scan  # noqa: E402
from torch._higher_order_ops.while_loop import while_loop  # noqa: E402

import greenprint as gp  # noqa: E402


def count(fn, **kwargs):
    with gp.FPOCounter(**kwargs) as c:
        out = fn()
    return c.result, out


def nonzero(by_op):
    return {op: fpo for op, fpo in by_op.items() if fpo}


def product(x):
    return x @ x  # 4 x 4: 2 * 4 * 4 * 4 = 128


def plus_one(x):
    return x + 1  # 16


X = torch.randn(4, 4)


@pytest.mark.parametrize(
    ("taken", "expected"), [(True, {"aten.mm": 128}), (False, {"aten.add": 16})]
)
def test_cond_counts_the_branch_that_runs(taken, expected):
    pred = torch.tensor(taken)
    r, out = count(lambda: torch.cond(pred, product, plus_one, (X,)))
    assert nonzero(r.by_op) == expected
    assert torch.equal(out, product(X) if taken else plus_one(X))
    assert r.unknown_ops == {}


@pytest.mark.parametrize("order", ["product first", "add first"])
def test_cond_on_meta_counts_the_larger_branch(order):
    """The predicate of a meta tensor cannot be read: both branches run, the larger (the
    product, 128) is kept whichever side it is on, an upper bound like FlopCounterMode's."""
    x = X.to("meta")
    branches = (product, plus_one) if order == "product first" else (plus_one, product)
    pred = torch.empty((), dtype=torch.bool, device="meta")
    r, out = count(lambda: torch.cond(pred, *branches, (x,)))
    assert nonzero(r.by_op) == {"aten.mm": 128}
    assert r.calls.get("aten.add") is None
    assert out.shape == (4, 4) and out.device.type == "meta"


class Gated(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cond(x.sum() > 0, lambda x: self.lin(x), lambda x: x.cos(), (x,))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_cond_inside_a_module_is_attributed_to_it(device):
    """(2, 4) input of ones: the sum (8) and its compare (1), then the Linear branch (2*2*4*4 +
    8 bias = 72), taken on CPU and the larger branch on meta (the cosine is 8)."""
    model = Gated().to(device)
    r = gp.count_fpo(model, torch.ones(2, 4, device=device), backward=False, strict=True)
    assert r.total == 8 + 1 + 72
    assert r.by_module == {"": 81, "lin": 72}


def test_while_loop_counts_every_iteration():
    """Three iterations of v @ v (128 each); the integer counter and its test are not floating."""

    def cond_fn(i, v):
        return i < 3

    def body_fn(i, v):
        return i + 1, v @ v

    r, (i, v) = count(lambda: while_loop(cond_fn, body_fn, (torch.tensor(0), X)))
    assert nonzero(r.by_op) == {"aten.mm": 3 * 128}
    assert int(i) == 3
    squared = X
    for _ in range(3):  # the same three products in the same order: no rounding difference
        squared = squared @ squared
    assert torch.allclose(v, squared)


def test_while_loop_on_meta_is_unknown_not_a_crash():
    def cond_fn(i, v):
        return i < 3

    def body_fn(i, v):
        return i + 1, v @ v

    start = (torch.zeros((), dtype=torch.long, device="meta"), X.to("meta"))
    r, out = count(lambda: while_loop(cond_fn, body_fn, start))
    assert r.unknown_ops == {"higher_order.while_loop": 1}
    assert [o.shape for o in out] == [s.shape for s in start]
    with pytest.raises(gp.UnknownOpError):
        count(lambda: while_loop(cond_fn, body_fn, start), strict=True)


def test_other_higher_order_ops_run_uncounted_and_are_listed_as_unknown():
    def combine(carry, x):
        new = carry + x
        return new, new.clone()

    init, xs = torch.zeros(3), torch.randn(5, 3)
    expected = scan(combine, init, xs)
    r, out = count(lambda: scan(combine, init, xs))
    assert r.unknown_ops == {"higher_order.scan": 1}
    assert torch.allclose(out[0], expected[0]) and torch.allclose(out[1], expected[1])


def test_cond_on_fake_tensors_counts_the_larger_branch():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.randn(4, 4)
        pred = x.sum() > 0
    r, out = count(lambda: torch.cond(pred, plus_one, product, (x,)))
    assert nonzero(r.by_op) == {"aten.mm": 128}
    assert out.shape == (4, 4)
