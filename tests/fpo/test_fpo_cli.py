"""``greenprint fpo MODULE:FACTORY --input-shape ...`` through main() and a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from greenprint.cli import main

ZOO_FILE = str(Path(__file__).parent / "fpo_zoo.py")
GREENPRINT = str(Path(sys.executable).parent / "greenprint")


def run(capsys, *args):
    rc = main(["fpo", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_table_by_module_with_depth(capsys):
    rc, out, err = run(
        capsys, f"{ZOO_FILE}:resnet_tiny", "--input-shape", "1,3,32,32", "--depth", "1"
    )
    assert rc == 0, err
    assert "(model)" in out and "layer1" in out and "layer1.0" not in out
    assert "forward" in out and "(1,3,32,32) torch.float32, meta, forward" in out


def test_by_op_with_backward_and_an_integer_input(capsys):
    rc, out, err = run(
        capsys,
        f"{ZOO_FILE}:gpt_tiny",
        "--input-shape",
        "2,8",
        "--dtype",
        "int64",
        "--backward",
        "--by",
        "op",
    )
    assert rc == 0, err
    assert "aten.mm" in out and "aten._safe_softmax" in out and "backward" in out


def test_json_has_exact_counts_and_several_inputs(capsys):
    rc, out, err = run(
        capsys,
        f"{ZOO_FILE}:graph_tiny",
        "--input-shape",
        "7,6",
        "--input-shape",
        "2,12",
        "--dtype",
        "float32",
        "--dtype",
        "int64",
        "--json",
        "--backward",
        "--device",
        "cpu",
    )
    assert rc == 0, err
    data = json.loads(out)
    assert data["total"] == data["forward_total"] + data["backward_total"] > 0
    assert data["unknown_ops"] == {} and data["device"] == "cpu" and data["params"] > 0
    assert data["by_module"]["layers.0.message"] > 0


def test_a_module_on_the_path_from_the_current_directory(capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    rc, out, err = run(capsys, "fpo_zoo:mlp", "--input-shape", "4,12", "--json")
    assert rc == 0, err
    assert (
        json.loads(out)["total"]
        == 2 * 4 * (12 * 32 + 32 * 32 + 32 * 5) + 4 * (32 + 32 + 5) + 4 * 64
    )


@pytest.mark.parametrize(
    ("target", "args", "message"),
    [
        ("no_such_module_xyz:f", [], "cannot import 'no_such_module_xyz'"),
        (f"{ZOO_FILE}:nope", [], "has no attribute 'nope'"),
        (f"{ZOO_FILE}:LLAMA_7B", [], "is not callable"),
        ("nofile.py:f", [], "no such file"),
        ("just_a_module", [], "expected MODULE:FACTORY"),
        (f"{ZOO_FILE}:mlp", ["--input-shape", "4,x"], "bad shape"),
        (f"{ZOO_FILE}:mlp", ["--input-shape", "4,0"], "bad shape"),
        (f"{ZOO_FILE}:mlp", ["--dtype", "float33"], "unknown dtype"),
        (f"{ZOO_FILE}:mlp", ["--input-shape", "4,13"], "failed on inputs (4,13)"),
        (f"{ZOO_FILE}:rope_tables", [], "failed: TypeError"),
        (f"{ZOO_FILE}:graph_inputs", [], "not a torch.nn.Module"),
        (f"{ZOO_FILE}:mlp", ["--device", "gpu9"], "unknown device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, target, args, message):
    shape = [] if "--input-shape" in args else ["--input-shape", "4,12"]
    rc, out, err = run(capsys, target, *shape, *args)
    assert rc == 2
    assert err.startswith("greenprint: error: ") and message in err
    assert err.count("\n") == 1 and out == ""


_RAISING = """
import torch


class Picky(torch.nn.Module):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def forward(self, x):
        raise self.error


def factory_assert():
    assert False, "Input height (16) doesn't match model (224)."


def factory_keyerror():
    raise KeyError("vit_b_99")


def factory_custom():
    class WeirdError(Exception):
        pass

    raise WeirdError("weird")


def forward_assert():
    return Picky(AssertionError("Input image height (16) doesn't match model (224)."))


def forward_keyerror():
    return Picky(KeyError("pos_embed"))


def forward_notimplemented():
    return Picky(NotImplementedError("no meta kernel"))


def forward_zerodivision():
    return Picky(ZeroDivisionError("division by zero"))
"""


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("factory_assert", "failed: AssertionError: Input height (16) doesn't match"),
        ("factory_keyerror", "failed: KeyError: 'vit_b_99'"),
        ("factory_custom", "failed: WeirdError: weird"),
        ("forward_assert", "failed on inputs (1,3,16,16) torch.float32: AssertionError: Input"),
        ("forward_keyerror", "failed on inputs (1,3,16,16) torch.float32: KeyError: 'pos_embed'"),
        ("forward_notimplemented", "NotImplementedError: no meta kernel"),
        ("forward_zerodivision", "ZeroDivisionError: division by zero"),
    ],
)
def test_a_factory_or_forward_that_raises_anything_is_one_line_and_exit_2(
    capsys, tmp_path, factory, message
):
    (tmp_path / "raising.py").write_text(_RAISING)
    target = f"{tmp_path / 'raising.py'}:{factory}"
    rc, out, err = run(capsys, target, "--input-shape", "1,3,16,16", "--backward")
    assert rc == 2 and out == ""
    assert err.startswith(f"greenprint: error: {target} ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_forward_assertion_through_a_real_subprocess(tmp_path):
    (tmp_path / "raising.py").write_text(_RAISING)
    done = subprocess.run(
        [GREENPRINT, "fpo", "raising:forward_assert", "--input-shape", "1,3,16,16"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("greenprint: error: raising:forward_assert failed on inputs")
    assert "AssertionError" in done.stderr and done.stderr.count("\n") == 1


def test_missing_input_shape_is_a_usage_error(capsys):
    rc, _, err = run(capsys, f"{ZOO_FILE}:mlp")
    assert rc == 2 and "--input-shape" in err


def test_strict_fails_on_an_op_without_a_rule(capsys, tmp_path):
    (tmp_path / "odd.py").write_text(
        "import torch\n"
        "class Odd(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.special.bessel_j0(x)\n"
    )
    rc, out, err = run(capsys, f"{tmp_path / 'odd.py'}:Odd", "--input-shape", "3")
    assert rc == 0 and "NO RULE" in out and "aten.special_bessel_j0 x1" in out
    rc, out, err = run(capsys, f"{tmp_path / 'odd.py'}:Odd", "--input-shape", "3", "--strict")
    assert rc == 2 and "no FPO rule for aten.special_bessel_j0" in err


def test_real_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(
        [
            GREENPRINT,
            "fpo",
            "fpo_zoo:unet_tiny",
            "--input-shape",
            "1,3,16,16",
            "--backward",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["unknown_ops"] == {} and data["by_module"]["up2"] > 0
    bad = subprocess.run(
        [GREENPRINT, "fpo", "fpo_zoo:unet_tiny", "--input-shape", "1;3"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("greenprint: error: bad shape")


def test_a_device_torch_was_not_built_for_is_bad_input(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rc, out, err = run(capsys, f"{ZOO_FILE}:mlp", "--input-shape", "4,12", "--device", "cuda")
    assert rc == 2 and err.startswith("greenprint: error: cannot create inputs on 'cuda'")
