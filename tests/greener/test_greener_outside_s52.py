"""Outside check (s52) of the greener harness, as its users build the situations.

Structured pruning keeps the layer that makes the output (found by running the model), not the
last one defined; ``greenprint greener`` refuses ``--metric``/``--mode`` that misname its default
accuracy; distillation's FPO count the optimizer step once per batch, whatever the batch sizes,
and give the teacher back in its own mode; the size column does not depend on a temporary file's
name; default variant names state the amount as given.
"""

from __future__ import annotations

import copy
import io

import pytest

import greenprint as gp
from greenprint import greener
from greenprint.cli import main

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


def _zero_rows(layer: nn.Module) -> int:
    """Output channels (rows) of a layer whose weights are all zero."""
    return int((layer.weight.detach().abs().sum(dim=1) == 0).sum())


class HeadFirst(nn.Module):
    """A classifier whose head is defined before its body (it runs last)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(32, 4)  # the classes, defined first
        self.body = nn.Linear(16, 32)  # defined second, runs first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


class TwoHeads(nn.Module):
    """A body and two heads returned together; the body is defined last."""

    def __init__(self) -> None:
        super().__init__()
        self.classes = nn.Linear(32, 4)
        self.boxes = nn.Linear(32, 2)
        self.body = nn.Linear(16, 32)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.body(x))
        return self.classes(h), self.boxes(h)


class Untraceable(HeadFirst):
    """A head-first model whose output leaves autograd's graph (computed detached)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).detach()


def _pruned(model: nn.Module, variant: greener.Variant) -> tuple[greener.GreenerRow, nn.Module]:
    """Compare ``model`` with one ``variant``; its row and the pruned model it scored."""
    scored: list[nn.Module] = []

    def evaluate(m: nn.Module) -> float:
        scored.append(m)
        return 0.0

    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    result = greener.compare(model, evaluate, x, [variant], ledger=False, min_time_s=0.0)
    return result.row(variant.name), scored[-1]


def test_structured_pruning_keeps_the_head_defined_before_the_body():
    torch.manual_seed(0)
    row, pruned = _pruned(HeadFirst(), greener.prune_structured(0.5, name="ch"))
    assert row.status == "measured"
    # the head (the classes) whole; the body, which runs first, loses half of its 32 rows
    assert _zero_rows(pruned.head) == 0
    assert _zero_rows(pruned.body) == 16
    assert "(output layer kept)" in row.description
    assert "output layer kept whole: head (traced back from the output through autograd)" in (
        row.notes
    )


def test_structured_pruning_keeps_every_head_and_frozen_weights_stay_frozen():
    torch.manual_seed(0)
    model = TwoHeads()
    for p in model.parameters():  # a frozen model: its output still traces back to its heads
        p.requires_grad_(False)
    seen: list[bool] = []

    def fine_tune(m: nn.Module) -> None:
        seen.extend(p.requires_grad for p in m.parameters())

    row, pruned = _pruned(model, greener.prune_structured(0.5, name="ch", fine_tune=fine_tune))
    assert _zero_rows(pruned.classes) == 0 and _zero_rows(pruned.boxes) == 0
    assert _zero_rows(pruned.body) == 16
    assert any(note.startswith("output layers kept whole: classes, boxes (") for note in row.notes)
    assert seen and not any(seen)  # the weights' flags given back before the fine-tuning


def test_structured_pruning_falls_back_to_the_last_layer_run_and_says_so():
    torch.manual_seed(0)
    row, pruned = _pruned(Untraceable(), greener.prune_structured(0.5, name="ch"))
    assert _zero_rows(pruned.head) == 0 and _zero_rows(pruned.body) == 16
    (kept,) = [note for note in row.notes if "kept whole" in note]
    assert kept.startswith(
        "output layer kept whole: head (the last linear or convolution layer run"
    )
    assert "does not trace back" in kept


def test_structured_pruning_of_a_sequential_keeps_its_last_layer_as_before():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    row, pruned = _pruned(model, greener.prune_structured(0.25, name="ch"))
    assert _zero_rows(pruned[2]) == 0 and _zero_rows(pruned[0]) == 8
    assert any(note.startswith("output layer kept whole: 2 (traced back") for note in row.notes)


MODELS = """
import torch
from torch import nn

def trained():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2)).eval()

def batches():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    return [(x[i:i + 32], (x[i:i + 32].sum(dim=1) > 0).long()) for i in range(0, 64, 32)]

def loss(model, batches):
    with torch.no_grad():
        return sum(float(nn.functional.cross_entropy(model(x), y)) for x, y in batches)
"""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--metric", "loss", "--mode", "min"], "--metric loss needs --evaluate"),
        (["--metric", "loss"], "--metric loss needs --evaluate"),
        (["--mode", "min"], "--mode min needs --evaluate"),
    ],
)
def test_cli_refuses_a_metric_or_mode_that_misnames_the_default_accuracy(
    tmp_path, capsys, options, message
):
    (tmp_path / "s52_models.py").write_text(MODELS)
    module = str(tmp_path / "s52_models.py")
    ledger = tmp_path / "l.db"
    argv = [f"{module}:trained", "--data", f"{module}:batches", "--variants", "prune-50"]
    code = main(["greener", *argv, *options, "--min-time", "0", "--ledger", str(ledger)])
    out, err = capsys.readouterr()
    assert code == 2
    assert message in err and "accuracy" in err and len(err.strip().splitlines()) == 1
    assert out == "" and not ledger.exists()  # refused before anything is measured


def test_cli_takes_metric_and_mode_with_evaluate_and_accuracy_without(tmp_path, capsys):
    (tmp_path / "s52_models.py").write_text(MODELS)
    module = str(tmp_path / "s52_models.py")
    argv = [f"{module}:trained", "--data", f"{module}:batches", "--variants", "prune-50"]
    common = ["--min-time", "0", "--ledger", str(tmp_path / "l.db")]
    given = ["--evaluate", f"{module}:loss", "--metric", "loss", "--mode", "min"]
    assert main(["greener", *argv, *given, *common]) == 0
    assert "score (loss, lower is better)" in capsys.readouterr().out
    assert main(["greener", *argv, "--metric", "accuracy", "--mode", "max", *common]) == 0
    capsys.readouterr()


def _distill_step_by_step(teacher: nn.Module, student: nn.Module, data: list) -> int:
    """FPO of distill()'s training, every step counted as it runs (its defaults: T=2, alpha=.5)."""
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    teacher.eval()
    total = 0
    for x, y in data:
        with gp.FPOCounter(student) as counter:
            with torch.no_grad():
                soft = F.softmax(teacher(x) / 2.0, dim=-1)
            logits = student(x)
            kd = F.kl_div(F.log_softmax(logits / 2.0, dim=-1), soft, reduction="batchmean")
            loss = 0.5 * 4.0 * kd + 0.5 * F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        total += counter.total
    return total


@pytest.mark.parametrize("first", [1, 64])
def test_distill_fpo_count_the_optimizer_step_per_batch_whatever_the_first_batch(first):
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    student = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 2))
    x = torch.randn(first + 256, 16, generator=torch.Generator().manual_seed(3))
    y = (x.sum(dim=1) > 0).long()
    data = [(x[:first], y[:first]), (x[first:], y[first:])]
    kd = greener.distill(teacher, copy.deepcopy(student), data, 2, ledger=False)
    brute = 2 * _distill_step_by_step(teacher, copy.deepcopy(student), data)
    # a first batch of 1 scaled its Adam step (13 FPO per parameter) by every example: x3.8
    assert kd.fpo == pytest.approx(brute, rel=0.01)


def test_distill_gives_the_teacher_back_in_its_own_modes():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(16, 32), nn.Dropout(0.1), nn.Linear(32, 2)).train()
    teacher[1].eval()  # a mixed model: each module's own mode comes back
    x = torch.randn(32, 16)
    data = [(x, (x.sum(dim=1) > 0).long())]
    greener.distill(teacher, nn.Linear(16, 2), data, 1, ledger=False)
    assert [m.training for m in teacher.modules()] == [True, True, False, True]


def test_size_column_is_torch_save_of_the_state_dict_whatever_the_file_name(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))
    # torch.save writes the file's stem into each zip entry; to a buffer it names it "archive"
    torch.save(model.state_dict(), tmp_path / "archive.pt")
    on_disk = (tmp_path / "archive.pt").stat().st_size
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert len(buffer.getvalue()) == on_disk
    result = greener.compare(model, None, torch.randn(4, 16), [], ledger=False, min_time_s=0.0)
    assert result.row("baseline").size_bytes == on_disk


@pytest.mark.parametrize(
    ("variant", "name", "share"),
    [
        (greener.prune_unstructured(0.125), "prune-12.5%", "12.5%"),
        (greener.prune_unstructured(0.004), "prune-0.4%", "0.4%"),
        (greener.prune_unstructured(0.07), "prune-7%", "7%"),
        (greener.prune_unstructured(0.5), "prune-50%", "50%"),
        (greener.prune_structured(0.995), "prune-ch-99.5%", "99.5%"),
        (greener.prune_structured(0.3), "prune-ch-30%", "30%"),
    ],
)
def test_default_names_state_the_amount_as_given(variant, name, share):
    assert variant.name == name
    assert f" {share} of each layer's" in variant.description


def test_amounts_a_rounding_made_one_name_are_two_rows():
    variants = [greener.prune_unstructured(0.125), greener.prune_unstructured(0.12)]
    result = greener.compare(
        nn.Linear(4, 2), None, torch.randn(2, 4), variants, ledger=False, min_time_s=0.0
    )
    assert [r.name for r in result.rows] == ["baseline", "prune-12.5%", "prune-12%"]
