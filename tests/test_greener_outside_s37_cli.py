"""``greenprint greener --student``: on which batches the student is distilled (session 37).

The CLI distilled the student on the ``--data`` batches and then scored it on the same ones,
saying nothing: a training score in the row beside the model's, which a user may have held
out. ``--student-data MODULE:LOADER`` distils on other batches; without it the row says so.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.cli import main
from greenprint.cli._greener import SCORED_ON_ITS_TRAINING

pytest.importorskip("torch")

MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    def _data(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 16, generator=g)
        return x, (x.sum(dim=1) > 0).long()

    def trained():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2)).eval()

    def student():
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 2))

    def held_out():
        x, y = _data(64, 2)
        return [(x[i:i + 32], y[i:i + 32]) for i in range(0, 64, 32)]

    def train():
        x, y = _data(96, 3)
        return [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)]

    def nothing():
        return []
    """
)


@pytest.fixture
def module(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(MODULE)
    return "mine.py"


def _greener(capsys, module, *more):
    base = [f"{module}:trained", "--data", f"{module}:held_out", "--variants", "prune-50"]
    code = main(["greener", *base, "--min-time", "0", "--threads", "1", *more])
    out, err = capsys.readouterr()
    return code, out, err


def test_student_distilled_on_the_scored_batches_is_said_else_student_data(module, capsys):
    code, out, err = _greener(
        capsys, module, "--student", f"{module}:student", "--ledger", "a.db", "--out", "out"
    )
    assert code == 0, err
    # s41: the distilled row's notes start with what its training counts (not the teacher's)
    line = next(x for x in out.splitlines() if x.startswith("- distilled: "))
    assert line.endswith(f"; {SCORED_ON_ITS_TRAINING}")
    row = next(
        r for r in json.loads(open("out/greener.json").read())["rows"] if r["name"] == "distilled"
    )
    assert SCORED_ON_ITS_TRAINING in row["notes"]
    md = open("out/greener.md").read().replace("\\", "")
    assert SCORED_ON_ITS_TRAINING in md
    # the section's explanation: executed FPO of pruned weights are a sparse kernel's, not timed
    assert "zero weights skipped as a sparse kernel would, which the dense kernels timed" in md

    # --student-data: distilled on its 3 batches of 32, not on the 2 scored ones
    code, out, err = _greener(
        capsys,
        module,
        "--student",
        f"{module}:student",
        "--student-data",
        f"{module}:train",
        "--ledger",
        "b.db",
    )
    assert code == 0, err
    assert "distilled" in out and SCORED_ON_ITS_TRAINING not in out
    runs = gp.Ledger("b.db").runs()
    variant = next(r for r in runs if r.name == "greener:distilled")
    assert variant.params["greener.result"]["training_energy_kwh"] > 0
    # s41: what its training counts (the teacher's not in it) is its only note
    (note,) = variant.params["greener.result"]["notes"]
    assert note.startswith("training: the distillation only")
    fpo = [
        next(r for r in gp.Ledger(db).runs() if r.params.get("greener.step") == "distill").fpo
        for db in ("a.db", "b.db")
    ]
    assert fpo[1] == pytest.approx(fpo[0] * 3 / 2)  # the same batches' FPO, 3 of them


@pytest.mark.parametrize(
    ("more", "says"),
    [
        (["--student-data", "mine.py:train"], "--student-data applies only with --student"),
        (
            ["--student", "mine.py:student", "--student-data", "mine.py:nothing"],
            "--student-data mine.py:nothing returned no batch",
        ),
        (
            ["--student", "mine.py:student", "--student-data", "mine.py:nowhere"],
            "'mine.py' has no attribute 'nowhere'",
        ),
    ],
)
def test_bad_student_data_is_one_line_and_status_2(module, capsys, more, says):
    code, out, err = _greener(capsys, module, "--ledger", "c.db", *more)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and says in err


def test_a_model_that_fails_on_its_data_is_named_as_given(module, capsys):
    # it read 'the model fails on example_inputs', a word of the Python API the CLI has not
    (Path("shapes.py")).write_text(
        "import torch\ndef wrong():\n    return [(torch.zeros(4, 3), torch.zeros(4).long())]\n"
    )
    code, out, err = _greener(capsys, module, "--ledger", "d.db", "--data", "shapes.py:wrong")
    assert code == 2 and out == ""
    assert err.startswith(
        "greenprint: error: mine.py:trained fails on the first batch of --data shapes.py:wrong: "
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x3 and 16x32)"
    )
    assert err.count("\n") == 1
