"""The collectives of ``torch.distributed`` count 0 FPO for every counter, not only the HF one.

Before, only the Hugging Face callback's live count gave them a rule; anyone else counting a
training step in a DDP process (``FPOCounter``, ``count_fpo``) got ``c10d.allreduce_`` as an op
without a rule, so the count read as a lower bound ("at least"). The expected count is derived
by hand: DDP runs the model's own ops, then (once the gradients are in their buckets) divides
them by the world size, one multiply per parameter element, and all-reduces them (0 by rule).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

#: A step counted on the plain model and on DDP around it (gloo, one process, a FileStore: no
#: socket), each from gradients set to None; prints what the test compares.
SCRIPT = r"""
import json, os, sys, tempfile
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from greenprint.fpo import FPOCounter
torch.set_num_threads(1)
store = dist.FileStore(os.path.join(tempfile.mkdtemp(), "store"), 1)
dist.init_process_group("gloo", store=store, rank=0, world_size=1)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
x = torch.randn(3, 4)
with FPOCounter(model) as plain:
    model(x).sum().backward()
model.zero_grad(set_to_none=True)
ddp = DDP(model)
with FPOCounter(ddp) as wrapped:
    ddp(x).sum().backward()
dist.destroy_process_group()
print(json.dumps({
    "plain": plain.result.total, "ddp": wrapped.result.total,
    "unknown": wrapped.result.unknown_ops, "zero": wrapped.result.zero_ops,
    "mul": wrapped.result.by_op.get("aten.mul", 0) - plain.result.by_op.get("aten.mul", 0),
    "params": sum(p.numel() for p in model.parameters()),
}))
"""


def test_a_ddp_step_counts_its_model_and_the_gradient_division_with_no_unknown_op():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    # the model's own ops are the plain count (the rules' own tests derive them); what DDP
    # adds is one multiply per parameter element (1 / world size), the all-reduce counting 0
    assert got["params"] == 4 * 8 + 8 + 8 * 2 + 2 == 58
    assert got["unknown"] == {}
    assert "c10d.allreduce_" in got["zero"]
    assert got["mul"] == 58
    assert got["ddp"] == got["plain"] + 58


def test_every_collective_has_the_zero_rule():
    from greenprint.fpo._rules_misc import COLLECTIVES
    from greenprint.fpo.rules import RULES

    assert "c10d.allreduce_" in COLLECTIVES and "_c10d_functional.all_reduce" in COLLECTIVES
    for op in COLLECTIVES:
        assert RULES[op].fn(out_shape=(1024,)) == 0, op
