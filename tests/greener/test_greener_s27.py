"""Spend less, as a new user meets it (session 27): a technique of one's own built from
``greenprint.greener``'s public names, what the int8 rows' executed FPO assume, and an
efficiency asked of a metric nobody logged.

Every figure is checked against a count by hand on a 16-8-2 MLP: per inference, the first
linear layer does 2 x 16 x 8 = 256 FPO of products and 8 bias additions, the ReLU 8, the
second layer 2 x 8 x 2 = 32 and 2: 306 FPO.
"""

from __future__ import annotations

import pytest

import greenprint as gp
from greenprint._records import MetricPoint, RunRecord
from greenprint.analysis import efficiencies, efficiency

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

#: FPO of one inference of the 16-8-2 MLP, by hand: products, bias additions, ReLU
PRODUCTS = 2 * 16 * 8 + 2 * 8 * 2
DENSE = PRODUCTS + (8 + 2) + 8

FAST = {"min_time_s": 0.0, "min_batches": 1, "warmup_batches": 0, "num_threads": 1}


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2)).eval()


def test_a_technique_of_ones_own_is_built_from_public_names_and_recorded(tmp_path):
    """docs/greener.md: 'Your own technique is a Variant(...) whose apply returns Applied(...)
    or raises VariantSkipped(reason)'. Before, only Variant was in greenprint.greener: the
    user had to import Applied and VariantSkipped from the private greenprint.greener._variants.
    """
    from greenprint.greener import Applied, Context, Variant, VariantSkipped, compare

    for cls in (Applied, Context, VariantSkipped):
        assert cls.__module__ == "greenprint.greener"
    torch.set_num_threads(1)

    def no_bias(m: nn.Module, context: Context) -> Applied:
        assert isinstance(context, Context) and context.example_inputs[0].shape == (4, 16)
        m[-1].bias = None
        return Applied(model=m, notes=("no bias in the last layer",))

    def not_here(m: nn.Module, context: Context) -> Applied:
        raise VariantSkipped("needs a GPU kernel")

    ledger = tmp_path / "greenprint.db"
    result = compare(
        _mlp(),
        None,
        torch.randn(4, 16),
        [
            Variant("no-bias", "custom", "last bias dropped", no_bias),
            Variant("gpu-only", "custom", "skips here", not_here),
        ],
        study="own",
        ledger=ledger,
        **FAST,
    )
    assert result.row("baseline").fpo_dense == DENSE
    assert result.row("no-bias").fpo_dense == DENSE - 2  # the last layer's 2 bias additions
    skipped = result.row("gpu-only")
    assert (skipped.status, skipped.reason) == ("skipped", "needs a GPU kernel")
    runs = {r.name: r for r in gp.Ledger(ledger).runs(study="own")}
    assert runs["greener:gpu-only"].status == "finished"  # the skip is recorded, not lost
    assert runs["greener:no-bias"].fpo and runs["greener"].status == "finished"


def test_int8_executed_fpo_is_what_the_int8_model_runs_and_says_so():
    """Dynamic int8 on the MLP: the products (288 FPO) become 288 integer ops. Executed: what
    the int8 model runs in float on a batch of 4 (session 28; before, the float model's 18 FPO
    less the products): per int8 linear 6 per input element (quantizing it), 2 per output
    element (rescaled, + bias, inside quantized.linear_dynamic) and 24 per call; the 8 ReLUs.
    Before session 27 the note read 'float work outside int8 kernels', which the bias additions
    are not."""
    from greenprint import greener

    torch.set_num_threads(1)
    result = greener.compare(
        _mlp(), None, torch.randn(4, 16), [greener.dynamic_int8()], ledger=False, **FAST
    )
    row = result.row("dynamic-int8")
    batch = (6 * 4 * 16 + 2 * 4 * 8 + 24) + 4 * 8 + (6 * 4 * 8 + 2 * 4 * 2 + 24)
    assert (row.fpo_dense, row.int_ops, row.fpo_executed) == (DENSE, PRODUCTS, batch / 4)
    assert "outside int8 kernels" not in row.fpo_note
    assert "counted on the int8 model as it runs" in row.fpo_note


def _run(run_id: str, **metrics: float) -> RunRecord:
    points = tuple(MetricPoint(name, value) for name, value in metrics.items())
    return RunRecord(
        id=run_id, name=run_id, study="s", status="finished", energy_kwh=2e-3, fpo=4 * 10**9,
        emissions_kg=1e-3, metrics=points, role="trial",
    )  # fmt: skip


def test_efficiency_by_hand_and_a_metric_nobody_logged_is_named():
    """Accuracy per kWh and per GFLOP by hand; ``efficiencies(runs, metric="acuracy")`` returned
    ``[]`` (read as 'no run has a score') where the report's CLI names the metrics logged."""
    runs = [_run("a", accuracy=0.9, loss=0.3), _run("b", accuracy=0.8)]
    (a, b) = efficiencies(runs, metric="accuracy")
    assert a.score_per_kwh == pytest.approx(0.9 / 2e-3)  # 450 accuracy per kWh
    assert a.score_per_gflop == pytest.approx(0.9 / 4)  # 4 GFLOP: 0.225 per GFLOP
    assert b.score_per_kg == pytest.approx(0.8 / 1e-3)
    with pytest.raises(gp.AnalysisError, match=r"'acuracy'; did you mean 'accuracy'\?") as info:
        efficiencies(runs, metric="acuracy")
    assert "metrics logged: 'accuracy', 'loss'" in str(info.value)
    with pytest.raises(gp.AnalysisError, match=r"the one run logged no metric 'acc'"):
        efficiency(runs[1], metric="acc")
    assert efficiency(runs[1], metric="accuracy").score_per_kwh == pytest.approx(400.0)
    # nothing scored yet (no metric at all) and no runs stay empty lists, as before
    assert efficiency(_run("c"), metric="accuracy").score is None
    assert efficiencies([_run("c")], metric="accuracy") == []
    assert efficiencies([], metric="accuracy") == []


def test_a_comparison_stopped_by_an_error_keeps_its_rows_and_the_report_says_so(tmp_path):
    """A technique that raises what compare does not take as a skip (here a KeyError) ends the
    comparison: the variants measured before stay in the ledger, and the report showed them as
    a complete comparison (the baseline on the front), with no word of the failure or of the
    variants that have no row."""
    from greenprint import greener
    from greenprint.report import build_report, render

    def broken(m: nn.Module, context: greener.Context) -> greener.Applied:
        raise KeyError("layer.weight")

    torch.set_num_threads(1)
    ledger = tmp_path / "greenprint.db"
    variants = [
        greener.prune_unstructured(0.5),
        greener.Variant("broken", "custom", "raises", broken),
        greener.half_precision("bfloat16"),
    ]
    with pytest.raises(KeyError):
        greener.compare(
            _mlp(), None, torch.randn(4, 16), variants, study="cut", ledger=ledger, **FAST
        )
    runs = {r.name: r for r in gp.Ledger(ledger).runs(study="cut")}
    assert runs["greener"].status == "failed" and runs["greener:prune-50%"].status == "finished"
    (result,) = greener.GreenerResult.from_records(runs.values())
    assert [r.name for r in result.rows] == ["baseline", "prune-50%"]
    # by hand: half of each layer's weights zero, half of the products skipped
    assert result.row("prune-50%").fpo_executed == DENSE - PRODUCTS / 2
    note = (
        "the comparison ended failed (KeyError: 'layer.weight'): the rows are the variants "
        "measured before; without a row: broken (failed); never measured: bf16"
    )
    assert result.notes[0] == note
    md = render(build_report(ledger, "cut"), "md", plots=False)
    assert note in md.replace("\\_", "_")


def test_a_student_or_smaller_model_that_is_no_module_is_refused_when_the_variant_is_made():
    """``greener.smaller(model.state_dict())`` was accepted; compare() then measured the
    baseline, recorded a failed comparison and raised ``AttributeError: 'collections.OrderedDict'
    object has no attribute 'eval'``. A distilled variant given no batches (``[]``) failed the
    same way, halfway. Both are ConfigErrors when the variant is made, before anything runs."""
    from greenprint import greener

    with pytest.raises(gp.ConfigError, match=r"OrderedDict: build the model and load_state_dict"):
        greener.smaller(_mlp().state_dict(), name="sd")
    with pytest.raises(gp.ConfigError, match="student must be a torch.nn.Module, not str"):
        greener.distilled("student.pt", [(torch.randn(2, 16), torch.tensor([0, 1]))])
    with pytest.raises(gp.ConfigError, match="no batches: data is empty"):
        greener.distilled(_mlp(), [])
