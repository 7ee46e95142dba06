"""``training_fpo`` takes the training's own optimizer, as a user writes it.

Before, ``gp.training_fpo(model, x, steps, optimizer=opt)`` with ``opt = torch.optim.SGD(...)``
raised "unknown optimizer SGD (" followed by the optimizer's 12-line repr. Counts derived by
hand: the model has 4 x 8 + 8 + 8 x 2 + 2 = 58 parameter elements; a plain SGD step is 2 FPO an
element (``p -= lr * g``: a multiply and an add), SGD with momentum 4 in the steady state (the
buffer's multiply and add, then the step's).
"""

from __future__ import annotations

import functools

import pytest

torch = pytest.importorskip("torch")

import greenprint as gp  # noqa: E402
from greenprint import FPOInputError  # noqa: E402

PARAMS = 58


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))


def _count(model, optimizer, **kwargs):
    x, target = torch.randn(3, 4), torch.tensor([0, 1, 1])
    loss = torch.nn.functional.cross_entropy
    return gp.training_fpo(model, x, 10, target=target, loss_fn=loss, optimizer=optimizer, **kwargs)


@pytest.mark.parametrize("on_meta", [True, False])
def test_the_trainings_own_optimizer_counts_its_class_and_settings(on_meta):
    model = _model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    assert _count(model, sgd, on_meta=on_meta).optimizer_total == 10 * 2 * PARAMS
    assert not sgd.state  # the optimizer given is not stepped
    momentum = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert _count(model, momentum, on_meta=on_meta).optimizer_total == 10 * 4 * PARAMS
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    factory = functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.1)
    assert (
        _count(model, adamw, on_meta=on_meta).total == _count(model, factory, on_meta=on_meta).total
    )


def test_each_parameter_group_counts_with_its_own_settings():
    model = _model()
    groups = torch.optim.SGD(
        [{"params": model[0].parameters(), "momentum": 0.9}, {"params": model[1].parameters()}],
        lr=0.1,
    )
    first, second = 4 * 8 + 8, 8 * 2 + 2
    assert _count(model, groups).optimizer_total == 10 * (4 * first + 2 * second)


def test_parameters_that_are_not_the_models_are_left_out():
    model = _model()
    temperature = torch.nn.Parameter(torch.ones(5))  # a loss's own parameter
    sgd = torch.optim.SGD([*model.parameters(), temperature], lr=0.1)
    assert _count(model, sgd).optimizer_total == 10 * 2 * PARAMS
    elsewhere = torch.optim.SGD([temperature], lr=0.1)
    with pytest.raises(FPOInputError, match=r"holds none of the model's trainable parameters"):
        _count(model, elsewhere)


def test_anything_else_is_one_line_naming_what_is_accepted():
    with pytest.raises(FPOInputError) as error:
        _count(_model(), object())
    assert "\n" not in str(error.value)
    assert str(error.value).startswith("unknown optimizer object; use one of ['adam'")
