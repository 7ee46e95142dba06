"""The first count in a process does not import ``torch._dynamo`` (s30).

torch wraps a dispatch mode's ``__torch_dispatch__`` in ``torch._disable_dynamo``, which imports
``torch._dynamo`` on its first call: the counter's first count cost about 1.2 s of CPU (torch
2.13, CPU build) against 0.1 s after it, charged to the run active then (the first trial of a
search whose objective counts FPO, the first point of a learning curve). The counter now
disables Dynamo only once ``torch._dynamo`` has been imported. Each check runs in a fresh
interpreter, since the test process has imported ``torch._dynamo`` long before.
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
import greenprint as gp

model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
x = torch.randn(3, 4)
forward = gp.count_fpo(model, x, backward=False)
after_forward = "torch._dynamo" in sys.modules
# a distillation (s42): its Adam's __init__, zero_grad and step imported torch._dynamo, and the
# count of its KL loss (xlogy) torch.broadcast_shapes' sympy: 1.7 s of CPU for 0.03 s of work
from greenprint import greener
y = torch.randint(0, 2, (3,))
student = torch.nn.Sequential(torch.nn.Linear(4, 2))
greener.distill(model, student, [(x, y)], epochs=2, ledger=False)
distilled = ["torch._dynamo" in sys.modules, "sympy" in sys.modules]
both = gp.count_fpo(model, x, backward=True)
after_backward = "torch._dynamo" in sys.modules
# the backward of a (3, 2) output from gradients of ones: torch.autograd.backward checked their
# shapes with torch.fx.experimental.symbolic_shapes, importing sympy (0.6 s of CPU) (s42)
backward_sympy = "sympy" in sys.modules
compiled = gp.count_fpo(torch.compile(model, backend="aot_eager"), x, backward=True)
print(json.dumps({
    "totals": [forward.total, forward.backward_total, both.forward_total, both.backward_total],
    "compiled": [compiled.forward_total, compiled.backward_total],
    "dynamo": [after_forward, after_backward, "torch._dynamo" in sys.modules],
    "distilled": distilled,
    "backward_sympy": backward_sympy,
}))
"""


def test_the_first_count_in_a_process_does_not_import_torch_dynamo_and_counts_the_same():
    """A forward count and a forward + backward count of Linear(4, 8), ReLU, Linear(8, 2) on a
    (3, 4) batch leave ``torch._dynamo`` unimported; the counts are those derived in
    ``test_fpo_probe_s19`` (forward ``3*8*(2*4 + 1)`` 216 + relu 24 + ``3*2*(2*8 + 1)`` 102 =
    342, backward 438). A distillation (its Adam, its KL loss counted) and the backward count
    leave both ``torch._dynamo`` and sympy unimported too. Once ``torch.compile`` has imported it, a
    compiled model counted in the same process (the counter then disables Dynamo in its
    dispatch, as torch would) counts the same eager program."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["totals"] == [342, 0, 342, 438]
    assert seen["compiled"] == [342, 438]
    assert seen["dynamo"] == [False, False, True]
    assert seen["distilled"] == [False, False]  # neither torch._dynamo nor sympy imported
    assert seen["backward_sympy"] is False
