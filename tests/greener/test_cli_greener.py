"""``greenprint greener``: the table, the files, the ledger; bad input is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import greenprint as gp
from greenprint.cli import main

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
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
        x, y = _data(256, 1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(40):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return model.eval()

    def student():
        return nn.Sequential(nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 2))

    def batches():
        x, y = _data(128, 2)
        return [(x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)]

    def error_rate(model, batches):
        wrong = sum(int((model(x).argmax(-1) != y).sum()) for x, y in batches)
        return wrong / sum(len(y) for _, y in batches)

    def not_a_model():
        return 42

    def broken_loader():
        raise RuntimeError("no data here")

    def not_batches():
        return 5

    def wrong_shape():
        return [(torch.zeros(4, 3), torch.zeros(4).long())]

    def bad_evaluate(model, batches):
        raise KeyError("label")
    """
)


@pytest.fixture
def module(tmp_path):
    path = tmp_path / "greener_models.py"
    path.write_text(MODULE)
    return str(path)


def _run(capsys, *argv):
    code = main(["greener", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compares_records_and_writes_the_files(module, tmp_path, capsys):
    ledger = tmp_path / "l.db"
    out_dir = tmp_path / "out"
    code, out, err = _run(
        capsys,
        f"{module}:trained",
        "--data",
        f"{module}:batches",
        "--variants",
        "dynamic-int8,prune-40,prune-ch-25,bf16",
        "--student",
        f"{module}:student",
        "--epochs",
        "2",
        "--ledger",
        str(ledger),
        "--study",
        "cli",
        "--out",
        str(out_dir),
        "--min-time",
        "0.02",
        "--threads",
        "1",
    )
    assert code == 0, err
    for name in ("baseline", "dynamic-int8", "prune-40", "prune-ch-25", "bf16", "distilled"):
        assert name in out
    assert "recorded: run" in out
    document = json.loads((out_dir / "greener.json").read_text())
    rows = {r["name"]: r for r in document["rows"]}
    assert set(rows) == {"baseline", "dynamic-int8", "prune-40", "prune-ch-25", "bf16", "distilled"}
    assert all(r["status"] == "measured" and 0 <= r["score"] <= 1 for r in rows.values())
    assert rows["distilled"]["training_energy_kwh"] > 0
    assert rows["prune-40"]["fpo_executed"] < rows["prune-40"]["fpo_dense"]
    assert "| variant |" in (out_dir / "greener.md").read_text()
    runs = gp.Ledger(ledger).runs(study="cli")
    assert {r.role for r in runs} == {"greener"}
    assert any(r.params.get("greener.step") == "distill" for r in runs)
    # the study's report shows the comparison again
    out = ["--out", str(tmp_path / "r"), "--no-plots"]
    code = main(["report", "--ledger", str(ledger), "--study", "cli", *out])
    capsys.readouterr()
    assert code == 0
    assert "Greener variants" in (tmp_path / "r" / "report.md").read_text()


def test_evaluate_and_mode(module, tmp_path, capsys):
    code, out, err = _run(
        capsys,
        f"{module}:trained",
        "--data",
        f"{module}:batches",
        "--evaluate",
        f"{module}:error_rate",
        "--metric",
        "error",
        "--mode",
        "min",
        "--variants",
        "fp16",
        "--ledger",
        str(tmp_path / "l.db"),
        "--min-time",
        "0",
    )
    assert code == 0, err
    assert "fp16" in out
    (container,) = [r for r in gp.Ledger(tmp_path / "l.db").runs() if r.parent_id is None]
    assert container.params["greener.mode"] == "min"
    assert container.params["greener.metric"] == "error"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere_module_x:f", "--data", "{m}:batches"], "cannot import 'nowhere_module_x'"),
        (["{m}:trained", "--data", "{m}:batches", "--variants", "int3"], "unknown variant 'int3'"),
        (["{m}:trained", "--data", "{m}:batches", "--variants", "prune-0"], "1-99"),
        (["{m}:trained", "--data", "{m}:batches", "--variants", "bf16,bf16"], "twice"),
        (["{m}:not_a_model", "--data", "{m}:batches"], "returned int, not a torch.nn.Module"),
        (["{m}:trained", "--data", "{m}:broken_loader"], "RuntimeError: no data here"),
        (["{m}:trained", "--data", "{m}:not_batches"], "expected batches of (inputs, targets)"),
        (
            ["{m}:trained", "--data", "{m}:wrong_shape"],
            ":trained fails on the first batch of --data ",
        ),
        (
            ["{m}:trained", "--data", "{m}:batches", "--evaluate", "{m}:bad_evaluate"],
            "KeyError",
        ),
        (["{m}:trained", "--data", "{m}:nothing"], "has no attribute 'nothing'"),
        (["{m}:trained"], "Missing option '--data'"),
        (["{m}:trained", "--data", "{m}:batches", "--min-time", "-1"], "--min-time"),
        (["{m}:trained", "--data", "{m}:batches", "--threads", "0"], "--threads"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(module, tmp_path, capsys, args, message):
    argv = [a.replace("{m}", module) for a in args]
    if "--variants" not in argv:
        argv += ["--variants", "fp16"]
    if "--min-time" not in argv:
        argv += ["--min-time", "0"]
    code, _, err = _run(capsys, *argv, "--ledger", str(tmp_path / "l.db"))
    assert code == 2
    assert err.startswith("greenprint: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err


def test_an_unwritable_out_dir_is_one_line(module, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _run(
        capsys,
        f"{module}:trained",
        "--data",
        f"{module}:batches",
        "--variants",
        "fp16",
        "--ledger",
        str(tmp_path / "l.db"),
        "--min-time",
        "0",
        "--out",
        str(blocker / "sub"),
    )
    assert code == 2 and err.count("\n") == 1
    # checked before anything is measured: nothing recorded
    assert err.startswith(f"greenprint: error: output path {blocker / 'sub'} is under file")
    assert not (tmp_path / "l.db").exists()


def test_without_torch_the_command_and_compare_name_the_extra():
    script = textwrap.dedent(
        """
        import contextlib, io, json, sys
        sys.modules["torch"] = None  # what import reads as "not installed"
        import greenprint as gp
        from greenprint.cli import main
        from greenprint import greener  # importing the package needs no torch
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(["greener", "m:f", "--data", "m:d"])
        try:
            greener.compare(object(), None, None)
            raised = None
        except gp.MissingDependencyError as e:
            raised = e.extra
        print(json.dumps({"rc": rc, "stderr": err.getvalue(), "extra": raised}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["rc"] == 2 and out["extra"] == "torch"
    assert out["stderr"] == (
        "greenprint: error: greenprint greener needs torch, which is not installed: "
        "pip install 'greenprint[torch]'\n"
    )


def test_epochs_without_a_student_is_refused_before_anything_runs(module, tmp_path, capsys):
    """Found as a new user: `greenprint greener ... --epochs 3` without `--student` measured
    every variant, trained nothing and said nothing; now one line, exit 2, nothing recorded."""
    ledger = tmp_path / "l.db"
    argv = [f"{module}:trained", "--data", f"{module}:batches", "--epochs", "3"]
    code, out, err = _run(capsys, *argv, "--ledger", str(ledger), "--min-time", "0")
    assert code == 2 and out == ""
    assert err.startswith("greenprint: error: --epochs applies only with --student"), err
    assert err.count("\n") == 1, err
    assert not ledger.exists() or gp.Ledger(ledger).runs() == []


def test_the_help_says_epochs_are_the_students(capsys):
    assert main(["greener", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--epochs INTEGER Epochs of the distillation of --student (needs it)." in out, out
