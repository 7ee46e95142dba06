"""A meta count and ``training_fpo`` do not import ``torch._dynamo`` on their first call (s31).

torch imports ``torch._dynamo`` (about 1.1 s of CPU, torch 2.13 CPU build) from the wrappers it
puts around the ``torch._refs`` that run ops on meta tensors (``torch._disable_dynamo``) and
around ``torch.optim``'s ``Optimizer.add_param_group``, ``zero_grad`` and ``step``: a process's
first meta count or ``training_fpo`` call paid it, charged to the run active then. Each check
runs in a fresh interpreter, since the test process imported ``torch._dynamo`` long before.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

_SCRIPT = """
import json, sys
import torch
from torch import nn
import greenprint as gp
from greenprint.fpo import _no_dynamo

def mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

seen = {}
with torch.device("meta"):
    model = mlp()
x = torch.empty(3, 4, device="meta")
c = gp.count_fpo(model, x, backward=True)
seen["meta"] = [c.forward_total, c.backward_total, "torch._dynamo" in sys.modules]

torch.manual_seed(0)
real = mlp()
before = [p.detach().clone() for p in real.parameters()]
step_before = torch.optim.SGD.step
runs = {}
for name, on_meta in (("sgd", True), ("sgd-momentum", True), ("adamw", True), ("sgd", False)):
    r = gp.training_fpo(real, torch.randn(3, 4), steps=5, optimizer=name, on_meta=on_meta)
    runs[f"{name} {on_meta}"] = [r.total, r.optimizer_total]
seen["training"] = runs
seen["training_dynamo"] = "torch._dynamo" in sys.modules
# on_meta=False took one real SGD step (lr 1e-3) from a gradient of ones at the output
seen["moved"] = any(not torch.equal(a, b) for a, b in zip(before, real.parameters()))
# torch left as it was: no wrapper tag of ours left, SGD's class step unchanged
seen["tags_left"] = sum(
    isinstance(fn.__dict__.get("__dynamo_disable"), _no_dynamo._Lazy)
    for fn, _ in _no_dynamo._targets()
)
# (torch's profiling wrapper, put on the class by the first SGD made, around torch's own)
seen["class_step_same"] = torch.optim.SGD.step.__wrapped__ is step_before

import torch._dynamo  # the same counts once it is imported (torch's own wrappers then)
c = gp.count_fpo(model, x, backward=True)
seen["meta_after"] = [c.forward_total, c.backward_total]
runs = {}
for name, on_meta in (("sgd", True), ("sgd-momentum", True), ("adamw", True), ("sgd", False)):
    r = gp.training_fpo(real, torch.randn(3, 4), steps=5, optimizer=name, on_meta=on_meta)
    runs[f"{name} {on_meta}"] = [r.total, r.optimizer_total]
seen["training_after"] = runs
print(json.dumps(seen))
"""


def test_a_first_meta_count_and_training_fpo_do_not_import_torch_dynamo_and_count_the_same():
    """Linear(4, 8), ReLU, Linear(8, 2) on a (3, 4) batch, 58 parameters: forward 342 and
    backward 438 (derived in ``test_fpo_probe_s19``), on meta as on CPU. One training step
    without a loss (backward from the output seeded with ones) is 342 + 438 + the update:
    SGD ``p - lr g`` 2 per parameter element (116), momentum ``b = m b + g`` 2 more (232),
    AdamW 14 per element (weight decay 1, ``m.lerp_(g, 1 - b1)`` 3, ``v * b2 + (1 - b2) g g``
    4, ``sqrt(v) / c2 + eps`` 3, ``p - s m / denom`` 3: 812) + its step counter, 1 per
    parameter tensor (4): 816; times 5 steps. ``torch._dynamo`` stays unimported throughout,
    the model is trained one step as ``on_meta=False`` promises, torch's wrappers are left as
    they were, and the counts are the same once ``torch._dynamo`` is imported."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["meta"] == [342, 438, False]
    step = 342 + 438
    expected = {
        "sgd True": [5 * (step + 116), 5 * 116],
        "sgd-momentum True": [5 * (step + 232), 5 * 232],
        "adamw True": [5 * (step + 816), 5 * 816],
        "sgd False": [5 * (step + 116), 5 * 116],
    }
    assert seen["training"] == expected
    assert seen["training_dynamo"] is False
    assert seen["moved"] is True
    assert seen["tags_left"] == 0
    assert seen["class_step_same"] is True
    assert seen["meta_after"] == [342, 438]
    assert seen["training_after"] == expected


def test_an_optimizer_whose_factory_gave_it_a_step_of_its_own_keeps_it():
    """``training_fpo`` gives the optimizer it makes a ``step`` that does not import
    ``torch._dynamo``, unless the factory gave it one (a wrapper of the training's): that one
    runs, for the warm-up and the counted step, and the count is SGD's (2 per parameter
    element, 58 parameters: 116 a step)."""
    import torch
    from torch import nn

    import greenprint as gp

    calls = []

    def factory(params):
        opt = torch.optim.SGD(params, lr=0.1)
        step = opt.step

        def wrapped(*args, **kwargs):
            calls.append(1)
            return step(*args, **kwargs)

        opt.step = wrapped
        return opt

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    run = gp.training_fpo(model, torch.randn(3, 4), steps=1, optimizer=factory)
    assert len(calls) == 2
    assert run.optimizer_total == 116
