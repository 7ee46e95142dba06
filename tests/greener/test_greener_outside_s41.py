"""Outside check (s41) of ``greenprint greener`` as a paper's author uses it, on digits.

A model in train mode is measured in eval mode and the result says so; a distilled row says
that its training is the distillation only (the teacher's own training is not in it); a model
on the meta device is one line and exit status 2, with advice that works (``.cpu()`` of a meta
tensor fails), and the ledger keeps its runs. The FPO are checked by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import greenprint as gp

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn
    from sklearn.datasets import load_digits

    def _data():
        d = load_digits()
        x = torch.tensor(d.data[:512], dtype=torch.float32) / 16.0
        return x, torch.tensor(d.target[:512])

    def train_batches():
        x, y = _data()
        return [(x[i:i + 64], y[i:i + 64]) for i in range(0, 384, 64)]

    def test_batches():
        x, y = _data()
        return [(x[i:i + 64], y[i:i + 64]) for i in range(384, 512, 64)]

    def in_train_mode():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))

    def student():
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))

    def on_meta():
        with torch.device("meta"):
            return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    """
)


def _greenprint(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``greenprint`` in ``cwd`` with a clean environment, as a user runs it."""
    bin_dir = str(Path(sys.executable).parent)
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [str(Path(bin_dir) / "greenprint"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_mode_distilled_and_meta_read_right(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text(MODULE)
    done = _greenprint(
        tmp_path,
        "greener",
        "models.py:in_train_mode",
        "--data",
        "models.py:test_batches",
        "--variants",
        "prune-50,dynamic-int8",
        "--student",
        "models.py:student",
        "--student-data",
        "models.py:train_batches",
        "--epochs",
        "1",
        "--min-time",
        "0.01",
        "--threads",
        "1",
        "--study",
        "digits",
        "--out",
        "out",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / "greener.json").read_text())
    assert any("given in train mode" in n and "eval mode" in n for n in result["notes"])
    rows = {r["name"]: r for r in result["rows"]}
    assert any("the distillation only" in n and "teacher" in n for n in rows["distilled"]["notes"])
    assert "teacher" in (tmp_path / "out" / "greener.md").read_text()
    # by hand: Linear(64, 32) 2*64*32 + 32, ReLU 32, Dropout 0 in eval, Linear(32, 10) 2*32*10 + 10
    assert rows["baseline"]["fpo_dense"] == 4096 + 32 + 32 + 640 + 10
    # prune-50: half of each layer's weights are 0 and skipped (1,024 and 160 products kept)
    assert rows["prune-50"]["nonzero_param_count"] == 1024 + 32 + 160 + 10
    assert rows["prune-50"]["fpo_executed"] == 2 * 1024 + 32 + 32 + 2 * 160 + 10
    # dynamic int8: the products are integer ops; 6 per input element and 2 per output
    # element per linear, the ReLU in float, plus the per-call steps (under 1 per inference)
    assert rows["dynamic-int8"]["int_ops"] == 4096 + 640
    assert 64 * 6 + 32 * 2 + 32 + 32 * 6 + 10 * 2 <= rows["dynamic-int8"]["fpo_executed"] < 693
    runs = gp.Ledger(tmp_path / "greenprint.db").runs(study="digits")
    before = [r.id for r in runs]
    # each variant's run records the break-even the table shows (it read null, the documented
    # "never", for every row), and the comparison's run the front
    recorded = {r.name: r.params["greener.result"] for r in runs if "greener.result" in r.params}
    for name, row in rows.items():
        assert recorded[f"greener:{name}"]["break_even_inferences"] == row["break_even_inferences"]
        assert recorded[f"greener:{name}"]["within_noise"] is row["within_noise"]
        assert "on_front" not in recorded[f"greener:{name}"]
    assert rows["distilled"]["break_even_inferences"] is None or (
        rows["distilled"]["break_even_inferences"] > 0
    )
    (container,) = [r for r in runs if r.params.get("greener.step") == "compare"]
    assert container.params["greener.front"] == result["front"]

    bad = _greenprint(
        tmp_path,
        "greener",
        "models.py:on_meta",
        "--data",
        "models.py:test_batches",
        "--variants",
        "prune-50",
        "--study",
        "digits",
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "the model is on the meta device" in bad.stderr and ".cpu()" not in bad.stderr
    assert "load_state_dict" in bad.stderr
    after = [r.id for r in gp.Ledger(tmp_path / "greenprint.db").runs(study="digits")]
    assert after[: len(before)] == before


def test_meta_inputs_named_by_the_api() -> None:
    from torch import nn

    from greenprint import greener

    model = nn.Linear(4, 2)
    says = r"^compare measures on the CPU, and example_inputs is on the meta device"
    with pytest.raises(gp.ConfigError, match=says):
        greener.compare(
            model, None, torch.zeros(2, 4, device="meta"), [], ledger=False, min_time_s=0.01
        )


@pytest.mark.parametrize(
    ("amount", "says"),
    [
        (50, r"not 50 \(for 50% give 0.5\)$"),
        (1.5, r"not 1.5 \(for 1.5% give 0.015\)$"),
        (100, r"not 100$"),
        (0, r"not 0$"),
    ],
)
def test_a_percentage_given_as_the_amount_says_the_fraction(amount: float, says: str) -> None:
    from greenprint import greener

    for make in (greener.prune_unstructured, greener.prune_structured):
        with pytest.raises(gp.ConfigError, match=says):
            make(amount)
