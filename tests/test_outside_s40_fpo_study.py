"""Session 40, an outside check: a Green AI paper's FPO, counted by hand and by greenprint.

A researcher's study as README and docs/fpo.md describe it: a plain PyTorch loop over two model
families (an MLP and a small CNN), each trial a ``gp.track`` run that adds, epoch by epoch, the
FPO of its training steps (``gp.training_fpo`` with the loop's own SGD optimizer, momentum 0.9)
and of its validation pass (``gp.count_fpo(..., backward=False)``). Every figure is derived here
from the layers' shapes, as the docs define FPO (every ADD and MUL; a product ``2mkn``, a bias
add 1 per output; backward: the weight and input gradients, the input's only where it needs
one; SGD with momentum 4 per parameter; a (2, 2) max pool 4 compares per output, its backward 1;
log-softmax ``6n - 1`` per row, its backward ``4n - 1``), never read from greenprint, and the
report's runs must carry the same totals.

A loop counted as it runs (``with gp.FPOCounter(model)`` around it, as docs/fpo.md shows) that
also called ``training_fpo`` and ``count_fpo`` counted, besides what it ran, the step
``training_fpo`` runs on a meta copy (which computed nothing: 672,647 FPO and the warm-up's
4,820 more per call for this MLP) and ``count_fpo``'s count of the zero weights (1 per weight).
Now a count on meta, and greenprint's reading of the weights, are counted by that count alone.

The mistake it found: a count of a real model given ``example_inputs(...)`` (meta by default,
as the README's "Inputs may be meta tensors" reads), or of a meta model given the real batch,
raised "the model cannot run on meta tensors ...: count it on real tensors", which sent the
user away from meta counting and never said that model and inputs were on two devices. Now the
error names both devices and which to move; following it gives the real count.

Run as a stranger runs it: in an empty directory with a clean environment.
"""

from __future__ import annotations

import json
import sys

import pytest

from _report_cli import GREENPRINT, empty_home, run_in

pytest.importorskip("torch")

B, IN, CLASSES, VAL, STEPS, EPOCHS = 64, 64, 10, 40, 3, 2

#: The researcher's script: two MLP and one CNN trial on synthetic 8x8 images, FPO per epoch;
#: then the hurried counts (a real model given meta inputs, a meta model given the batch) and
#: the counts their errors advise. Prints what it counted as JSON.
STUDY = f"""
import json
import sys
import torch
import torch.nn.functional as F
from torch import nn
import greenprint as gp
from greenprint.fpo import example_inputs

torch.manual_seed(0)
x, y = torch.randn(256, {IN}), torch.randint(0, {CLASSES}, (256,))
xv, yv = torch.randn({VAL}, {IN}), torch.randint(0, {CLASSES}, ({VAL},))


def make(model, width):
    if model == "mlp":
        return nn.Sequential(nn.Linear({IN}, width), nn.ReLU(), nn.Linear(width, {CLASSES}))
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, width, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(width * 16, {CLASSES}))


out = {{"trials": {{}}}}
# counted once before the first run: it imports sympy, not torch._dynamo (docs/analysis.md)
gp.training_fpo(make("mlp", 32), x[:{B}], steps=1, target=y[:{B}], loss_fn=F.cross_entropy,
                optimizer="sgd")
out["before"] = sorted(m for m in ("sympy", "torch._dynamo") if m in sys.modules)
for model, width, lr in (("mlp", 32, 0.1), ("mlp", 16, 0.01), ("cnn", 8, 0.1)):
    name = f"{{model}}-w{{width}}-lr{{lr}}"
    with gp.track(name, study="paper", role="trial",
                  params={{"model": model, "width": width, "lr": lr}}) as run:
        m = make(model, width)
        opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9)
        steps = gp.training_fpo(m, x[:{B}], steps={STEPS}, target=y[:{B}],
                                loss_fn=F.cross_entropy, optimizer=opt)
        for epoch in range({EPOCHS}):
            for s in range({STEPS}):
                opt.zero_grad()
                F.cross_entropy(m(x[s * {B}:(s + 1) * {B}]), y[s * {B}:(s + 1) * {B}]).backward()
                opt.step()
            run.add_fpo(steps)
            val = gp.count_fpo(m, xv, backward=False)
            run.add_fpo(val)
            with torch.no_grad():
                run.log(val_accuracy=(m(xv).argmax(1) == yv).float().mean().item(), step=epoch)
        if "imported" not in out:
            out["imported"] = "torch._dynamo" in sys.modules  # by making the SGD optimizer
    out["trials"][name] = {{"step": steps.total // steps.steps, "val": val.total,
                          "optimizer": steps.optimizer_total // steps.steps, "run": run.fpo}}

# a training loop counted as it runs, its steps also counted by training_fpo, then validated
mlp = make("mlp", 32)
opt = torch.optim.SGD(mlp.parameters(), lr=0.1, momentum=0.9)
with gp.FPOCounter(mlp) as loop:
    steps = gp.training_fpo(mlp, x[:{B}], steps={STEPS}, target=y[:{B}],
                            loss_fn=F.cross_entropy, optimizer=opt)
    for s in range({STEPS}):
        opt.zero_grad()
        F.cross_entropy(mlp(x[s * {B}:(s + 1) * {B}]), y[s * {B}:(s + 1) * {B}]).backward()
        opt.step()
    val = gp.count_fpo(mlp, xv, backward=False)
out["loop"] = [loop.total, steps.total, val.total]

real = gp.count_fpo(mlp, x[:{B}]).total
for label, model, inputs in (("meta inputs", mlp, example_inputs(({B}, {IN}))),
                             ("meta model", make("mlp", 32).to("meta"), (x[:{B}],))):
    try:
        gp.count_fpo(model, *inputs)
    except gp.FPOInputError as e:
        out[label] = str(e)
with torch.device("meta"):
    on_meta = make("mlp", 32)
out["advised"] = [real, gp.count_fpo(mlp.to("meta"), *example_inputs(({B}, {IN}))).total,
                  gp.count_fpo(on_meta, x[:{B}].to("meta")).total]
print(json.dumps(out))
"""


def nll(rows: int) -> int:
    """ATen's NLL forward, mean (docs: one subtract per target, the cascade sum's carries 2
    each, its 8 levels added, the mean's division)."""
    carries = sum(-(-rows // 16**k) for k in range(1, 8))
    return rows + 2 * carries + 8 + 1


def loss_step() -> int:
    """Cross-entropy of B rows of 10 classes, forward and backward (log-softmax along the last
    dimension 6n - 1 per row, backward 4n - 1; NLL backward: -(g / total) once, 2)."""
    return B * (6 * CLASSES - 1) + nll(B) + B * (4 * CLASSES - 1) + 2


def linear(rows: int, fan_in: int, fan_out: int) -> int:
    """A linear layer's forward: the product 2 rows fan_in fan_out, the bias 1 per output."""
    return 2 * rows * fan_in * fan_out + rows * fan_out


def mlp_step(h: int) -> int:
    """One SGD-momentum step of Linear(64, h), ReLU, Linear(h, 10) on B rows."""
    forward = linear(B, IN, h) + B * h + linear(B, h, CLASSES)
    backward = (
        2 * (2 * B * h * CLASSES)
        + B * CLASSES  # last layer: input and weight grads, bias sum
        + B * h  # ReLU's gradient mask
        + 2 * B * IN * h
        + B * h  # first layer: weight grad and bias sum; its input needs none
    )
    params = IN * h + h + h * CLASSES + CLASSES
    return forward + backward + loss_step() + 4 * params


def mlp_val(h: int) -> int:
    return linear(VAL, IN, h) + VAL * h + linear(VAL, h, CLASSES)


def cnn_forward(rows: int, c: int) -> int:
    """Conv2d(1, c, 3, padding=1) on 8x8 (64 positions), ReLU, MaxPool2d(2), Linear(16c, 10)."""
    conv = 2 * rows * c * 9 * 64 + rows * c * 64
    return conv + rows * c * 64 + 4 * rows * c * 16 + linear(rows, 16 * c, CLASSES)


def cnn_step(c: int) -> int:
    backward = (
        2 * (2 * B * 16 * c * CLASSES)
        + B * CLASSES  # linear: input and weight grads, bias
        + B * c * 16  # max pool: each gradient added into its window's max
        + B * c * 64  # ReLU
        + 2 * B * c * 9 * 64
        + B * c * 64  # conv: weight grad and bias sum; no input grad
    )
    params = c * 9 + c + 16 * c * CLASSES + CLASSES
    return cnn_forward(B, c) + backward + loss_step() + 4 * params


def test_a_studys_fpo_match_the_layers_by_hand_and_mixed_devices_are_named(tmp_path_factory):
    home = empty_home(tmp_path_factory, "fpo-study")
    (home / "study.py").write_text(STUDY)
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    by_hand = {
        "mlp-w32-lr0.1": (mlp_step(32), mlp_val(32), 4 * (IN * 32 + 32 + 32 * 10 + 10)),
        "mlp-w16-lr0.01": (mlp_step(16), mlp_val(16), 4 * (IN * 16 + 16 + 16 * 10 + 10)),
        "cnn-w8-lr0.1": (cnn_step(8), cnn_forward(VAL, 8), 4 * (8 * 10 + 128 * 10 + 10)),
    }
    assert by_hand["mlp-w32-lr0.1"][0] == 672_647  # as this check's digits study counted it
    for name, (step, val, optimizer) in by_hand.items():
        counted = out["trials"][name]
        assert (counted["step"], counted["val"], counted["optimizer"]) == (step, val, optimizer)
        assert counted["run"] == EPOCHS * (STEPS * step + val)

    # the report's runs carry the same totals, and none of them reads unknown
    report = run_in(home, GREENPRINT, "report", "--format", "json", "--out", "rep")
    assert report.returncode == 0, report.stderr
    runs = json.loads((home / "rep" / "report.json").read_text())["runs"]
    assert {r["name"]: r["fpo"] for r in runs} == {
        name: EPOCHS * (STEPS * step + val) for name, (step, val, _) in by_hand.items()
    }

    # the hurried counts: two devices named, and which to move; no "count on real tensors"
    assert out["meta inputs"].startswith("the model's parameters are on cpu and its inputs on meta")
    assert "the model on meta too (`model.to('meta')`" in out["meta inputs"]
    assert out["meta model"].startswith("the model's parameters are on meta and its inputs on cpu")
    assert "the inputs on meta too (`x.to('meta')`" in out["meta model"]
    for message in (out["meta inputs"], out["meta model"]):
        assert "count it on real tensors" not in message and "\n" not in message
    # and what they advise counts what the real model does
    assert out["advised"] == [out["advised"][0]] * 3

    # a loop counted as it ran: its steps and its validation, not training_fpo's step on a meta
    # copy (which computed nothing) nor count_fpo's reading of the weights; its first SGD step
    # copies the gradient into the momentum buffer (2 per parameter, not 4)
    params = IN * 32 + 32 + 32 * CLASSES + CLASSES
    assert out["loop"] == [
        STEPS * mlp_step(32) - 2 * params + mlp_val(32),
        STEPS * mlp_step(32),
        mlp_val(32),
    ]

    # counting once before the first trial took sympy's import out of it, not torch._dynamo's:
    # the trial's own SGD optimizer imported it (docs/analysis.md said a count would)
    assert out["before"] == ["sympy"] and out["imported"] is True


#: docs/analysis.md's advice for a one-off cost: ``import torch._dynamo`` and count once before
#: the first run; then nothing of either is imported inside the first trial.
ADVISED = """
import sys
import torch._dynamo
import torch
import torch.nn.functional as F
from torch import nn
import greenprint as gp

m, x, y = nn.Linear(8, 2), torch.randn(4, 8), torch.randint(0, 2, (4,))
gp.training_fpo(m, x, steps=1, target=y, loss_fn=F.cross_entropy, optimizer="sgd")
before = set(sys.modules)
with gp.track("first", study="advised", role="trial", params={"lr": 0.1}):
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    F.cross_entropy(m(x), y).backward()
    opt.step()
print(sorted(n for n in set(sys.modules) - before if n.startswith(("torch._dynamo", "sympy"))))
"""


def test_the_one_off_imports_leave_the_first_trial_as_the_docs_advise(tmp_path_factory):
    home = empty_home(tmp_path_factory, "one-off")
    (home / "advised.py").write_text(ADVISED)
    done = run_in(home, sys.executable, "advised.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
