"""distill() and the distilled/smaller variants: training recorded as runs, its cost the price."""

from __future__ import annotations

import pytest

import greenprint as gp

torch = pytest.importorskip("torch")

from greenprint import greener  # noqa: E402
from greenprint.analysis import price_tag  # noqa: E402
from greenprint.analysis._common import RunForest  # noqa: E402
from greenprint.fpo import count_fpo  # noqa: E402

F = torch.nn.functional

from . import _greener_models as models  # noqa: E402


@pytest.fixture(scope="module")
def teacher():
    return models.trained()


def test_distill_records_a_run_with_role_and_cost(teacher, tmp_path):
    torch.manual_seed(0)
    student = models.cnn(channels=2, hidden=8)
    data = models.batches(128, seed=2)
    result = greener.distill(teacher, student, data, 6, study="kd", ledger=tmp_path / "kd.db")
    assert result.student is student and not student.training
    assert result.epochs == 6 and result.examples == 128 and len(result.losses) == 6
    assert result.losses[-1] < result.losses[0]  # it learns
    assert result.energy_kwh > 0 and result.emissions_kg > 0 and result.duration_s > 0
    (run,) = gp.Ledger(tmp_path / "kd.db").runs(study="kd")
    assert run.id == result.run_id and run.role == "greener" and run.status == "finished"
    assert run.params["greener.step"] == "distill" and run.params["epochs"] == 6
    assert run.params["student_params"] == sum(p.numel() for p in student.parameters())
    assert run.energy_kwh == pytest.approx(result.energy_kwh)
    assert run.dataset_size == 128
    assert [m.step for m in run.metrics if m.name == "distill_loss"] == [1, 2, 3, 4, 5, 6]
    # FPO: per example, the whole training step, each piece counted alone on one batch: the
    # student's forward + backward, the teacher's forward and its softened softmax, the loss
    # (KL + cross-entropy) and its gradient down to the logits, the Adam step; times examples
    # and epochs. Before, the loss and the optimizer step were left out (2,435,000 FPO against
    # 2,488,378 on a real step of a user's model) while the FPO was recorded as exact.
    x, y = data[0]
    torch.manual_seed(0)
    fresh = models.cnn(2, 8)
    with torch.no_grad():
        logits = fresh(x).requires_grad_()
    with gp.FPOCounter() as softened, torch.no_grad():
        soft = F.softmax(teacher(x) / 2.0, dim=-1)
    with gp.FPOCounter() as loss:
        kd = F.kl_div(F.log_softmax(logits / 2.0, dim=-1), soft, reduction="batchmean")
        (0.5 * 4.0 * kd + 0.5 * F.cross_entropy(logits, y)).backward()
    fresh(x).sum().backward()
    adam = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    with gp.FPOCounter() as step:
        adam.step()
    params = sum(p.numel() for p in fresh.parameters())
    assert step.total >= 13 * params  # Adam: 13 FPO per parameter element (docs/fpo.md)
    teacher_forward = count_fpo(teacher, x, backward=False).total
    assert softened.total > teacher_forward  # the softmax of t / T on top
    per_example = (
        count_fpo(models.cnn(2, 8), x, backward=True).total
        + softened.total
        + loss.total
        + step.total
    ) / x.shape[0]
    assert result.fpo == run.fpo == round(per_example * 128 * 6)
    assert result.fpo_count is None  # exact: every op of the step has a rule


def test_distill_takes_a_generator_for_several_epochs(teacher):
    batches = iter(models.batches(64, seed=5))
    result = greener.distill(teacher, models.cnn(2, 8), batches, 2, ledger=False)
    assert result.examples == 64 and len(result.losses) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"temperature": 0}, "temperature"),
        ({"alpha": 1.5}, "alpha"),
        ({"lr": float("nan")}, "lr"),
    ],
)
def test_distill_refuses_bad_options(teacher, kwargs, message):
    options = {"epochs": 1, **kwargs}
    epochs = options.pop("epochs")
    with pytest.raises(gp.ConfigError, match=message):
        greener.distill(
            teacher, models.cnn(2, 8), models.batches(32), epochs, ledger=False, **options
        )
    with pytest.raises(gp.ConfigError, match=message):
        greener.distilled(models.cnn(2, 8), models.batches(32), epochs=epochs, **options)


def test_distill_refuses_bad_data(teacher):
    with pytest.raises(gp.ConfigError, match="empty"):
        greener.distill(teacher, models.cnn(2, 8), [], ledger=False)
    with pytest.raises(gp.ConfigError, match=r"\(inputs, targets\)"):
        greener.distill(teacher, models.cnn(2, 8), [torch.zeros(2, 1, 8, 8)], ledger=False)
    with pytest.raises(gp.ConfigError, match="student must be"):
        greener.distill(teacher, "small", models.batches(32), ledger=False)


def test_distilled_variant_pays_its_training_back_after_the_break_even(teacher, tmp_path):
    torch.manual_seed(1)
    ledger = tmp_path / "g.db"
    x, _ = models.data(models.BATCH)
    result = greener.compare(
        teacher,
        models.accuracy,
        x,
        [greener.distilled(models.cnn(2, 8), models.batches(256, seed=6), epochs=4)],
        study="g",
        ledger=ledger,
        min_time_s=0.05,
    )
    row = result.row("distilled")
    runs = {r.id: r for r in gp.Ledger(ledger).runs(study="g")}
    (training_id,) = row.training_run_ids
    training = runs[training_id]
    # the distillation is a run of its own, inside the variant's run, with its cost
    assert training.params["greener.step"] == "distill" and training.role == "greener"
    assert training.parent_id == row.run_id
    assert row.training_energy_kwh == pytest.approx(training.energy_kwh, rel=1e-9)
    assert row.training_energy_kwh > 0
    assert row.param_count == sum(p.numel() for p in models.cnn(2, 8).parameters())
    assert row.fpo_dense == models.dense_fpo_per_example(2, 8)
    # break-even by hand from the row's own figures
    base = result.row("baseline").energy_kwh_per_1000 / 1000
    own = row.energy_kwh_per_1000 / 1000
    # within twice the baseline's two timed loops' distance: no saving told apart
    assert row.within_noise is (abs(base - own) <= 2 * result.noise_fraction * base)
    if row.within_noise:
        assert row.break_even_inferences is None
    elif own < base:
        assert row.break_even_inferences == pytest.approx(row.training_energy_kwh / (base - own))
    else:
        assert row.break_even_inferences is None
    # the study's price tag holds the training once: inside the comparison's run
    tag = price_tag(list(runs.values()))
    container = runs[result.run_id]
    assert set(tag.by_role) == {"greener"}
    # one root, the comparison's run: the study's cost is its cost with what ran inside it
    # counted once (analysis.RunForest.nested_sum: the larger of its own reading and its
    # children's; runs of one process share one sample series, so the training nests)
    forest = RunForest.build(list(runs.values()))
    assert [forest.runs[p].id for p in forest.roots] == [container.id]
    inclusive, _ = forest.nested_sum([r.energy_kwh for r in forest.runs])
    assert tag.total.energy_kwh == pytest.approx(inclusive[forest.index[container.id]], rel=1e-9)
    assert tag.total.energy_kwh < container.energy_kwh + training.energy_kwh
    assert container.energy_kwh > training.energy_kwh


def test_smaller_variant_carries_its_training_runs(teacher, tmp_path):
    ledger = tmp_path / "s.db"
    small = models.trained(channels=2, hidden=8, steps=30)
    with gp.track("train-small", study="s", ledger=ledger) as run:
        models.trained(channels=2, hidden=8, steps=30)
    result = greener.compare(
        teacher,
        models.accuracy,
        models.data(models.BATCH)[0],
        [greener.smaller(small, name="small-cnn", training=[run])],
        ledger=False,
        min_time_s=0.02,
    )
    row = result.row("small-cnn")
    assert row.technique == "smaller"
    assert row.training_energy_kwh == run.energy_kwh > 0
    assert row.training_run_ids == (run.id,)
    assert row.score == pytest.approx(models.accuracy(small))
