"""What a count assumed, and whether it is a lower bound, survive greener's training runs and
reach the JSON report's rows.

``greener.compare`` kept a variant's fine-tuning and distillation FPO as an int
(``ctx.fpo``): the variant's run and the comparison's summed it with their own counts, and a
fine-tuning that ran an op with no FPO rule, or an FFT (whose count assumes the FFT library),
left them reading exact and assuming nothing, while the fine-tuning's own run said both. The
JSON report's runs gave ``fpo_lower_bound`` but not what a run's FPO assumed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import greenprint as gp

torch = pytest.importorskip("torch")

from greenprint import greener  # noqa: E402
from greenprint.greener._variants import VariantSkipped  # noqa: E402
from greenprint.report import build_report, render  # noqa: E402

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "report-schema.json"
BESSEL = "aten.special_bessel_j0"  # an op with no FPO rule


class Spectral(torch.nn.Module):
    """A teacher that reads a signal's spectrum (``rfft``) and a Bessel function of it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(5, 3)

    def forward(self, x):
        spectrum = torch.fft.rfft(x, norm="ortho").abs()
        return self.lin(spectrum) + torch.special.bessel_j0(x[:, :3])


def _library() -> str:
    """The FFT library this torch build's CPU count assumes (``mkl`` or ``pocketfft``)."""
    return gp.count_fpo(Spectral(), torch.randn(4, 8)).assumptions["fft_library"]


def _fine_tune(model) -> None:
    """A training step whose loss adds a spectral penalty: an FFT and an op with no rule."""
    x = torch.randn(4, 8)
    penalty = torch.fft.rfft(model(x), dim=0).abs().mean() + torch.special.bessel_j0(x).mean()
    (model(x).pow(2).mean() + penalty).backward()


def _tuned_then_dropped() -> greener.Variant:
    """A technique that fine-tunes a copy through the context, counts it, then does not apply."""

    def apply(model, ctx):
        with ctx.track("fine-tune", "fine-tune") as run, gp.FPOCounter() as counter:
            _fine_tune(model)
        run.add_fpo(counter.result)
        ctx.fpo.append(counter.result)
        raise VariantSkipped("the tuned copy lost too much accuracy")

    return greener.Variant("tuned-then-dropped", "custom", "fine-tuned, then skipped", apply)


_FAST = {"min_time_s": 0, "min_batches": 1, "warmup_batches": 0}


def _by_name(ledger, study):
    return {r.name: r for r in gp.Ledger(ledger).runs(study=study)}


def test_a_variants_fine_tuning_makes_its_and_the_comparisons_fpo_a_lower_bound_and_assume_it(
    tmp_path,
):
    library = _library()
    torch.manual_seed(0)
    plain = torch.nn.Linear(8, 3)  # no FFT, every op with a rule: its own counts are exact
    ledger = tmp_path / "ft.db"
    greener.compare(
        plain,
        None,
        torch.randn(4, 8),
        [greener.prune_unstructured(0.5, fine_tune=_fine_tune), _tuned_then_dropped()],
        ledger=ledger,
        study="ft",
        **_FAST,
    )
    runs = _by_name(ledger, "ft")
    assumed = f"fft_library={library}"
    for name in ("prune-50%/fine-tune", "tuned-then-dropped/fine-tune"):  # as before
        assert runs[name].provenance["fpo_assumptions"] == assumed
        assert BESSEL in runs[name].provenance["fpo"]
    # before: the variants' runs and the comparison's read exact, assuming nothing
    for name in ("greener:prune-50%", "greener:tuned-then-dropped", "greener"):
        run = runs[name]
        assert run.provenance.get("fpo_assumptions") == assumed, name
        assert BESSEL in run.provenance.get("fpo", ""), name
    assert runs["greener:baseline"].provenance.get("fpo_assumptions") is None
    assert runs["greener:tuned-then-dropped"].fpo == runs["tuned-then-dropped/fine-tune"].fpo

    # the JSON report's rows say both for each run (the baseline's: nothing)
    report = json.loads(render(build_report(ledger, "ft"), "json"))
    rows = {row["name"]: row for row in report["runs"]}
    for name in ("greener:prune-50%", "greener:tuned-then-dropped", "greener"):
        assert rows[name]["fpo_lower_bound"] is True, name
        assert rows[name]["fpo_assumptions"] == {"fft_library": library}, name
    assert rows["greener:baseline"]["fpo_lower_bound"] is False
    assert rows["greener:baseline"]["fpo_assumptions"] == {}
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8"))).validate(report)


def test_a_distillations_fpo_reach_the_variants_run(tmp_path):
    library = _library()
    torch.manual_seed(0)
    data = [(torch.randn(8, 8), torch.randint(0, 3, (8,)))]
    student = torch.nn.Linear(8, 3)  # measured: no FFT, every op with a rule
    ledger = tmp_path / "kd.db"
    greener.compare(
        Spectral(),
        None,
        torch.randn(4, 8),
        [greener.distilled(student, data)],
        ledger=ledger,
        study="kd",
        **_FAST,
    )
    runs = _by_name(ledger, "kd")
    taught = runs["distill"]  # the teacher's forward: an FFT, an op with no rule
    assert taught.provenance["fpo_assumptions"] == f"fft_library={library}"
    variant = runs["greener:distilled"]
    assert variant.fpo > taught.fpo
    # before: exact, assuming nothing (the student has no FFT)
    assert variant.provenance.get("fpo_assumptions") == f"fft_library={library}"
    assert variant.provenance.get("fpo") == taught.provenance["fpo"]


def test_a_sweeps_row_of_its_trials_fpo_says_what_they_assumed(tmp_path):
    library = _library()
    counted = gp.count_fpo(Spectral(), torch.randn(4, 8))
    ledger = tmp_path / "sweep.db"
    with gp.track("sweep", study="s", ledger=ledger):  # counts none of its own
        for lr in (0.1, 0.01):
            with gp.track(f"lr{lr}", study="s", ledger=ledger) as run:
                run.add_fpo(counted)
                run.log(accuracy=0.5 + lr)
    with gp.track("exact", study="s", ledger=ledger) as run:
        run.set(fpo=1000)
        run.log(accuracy=0.4)
    rows = {
        row["name"]: row for row in json.loads(render(build_report(ledger, "s"), "json"))["runs"]
    }
    assert rows["lr0.1"]["fpo_assumptions"] == {"fft_library": library}
    assert rows["sweep"]["fpo"] == 2 * counted.total  # its trials' sum: what they assumed
    assert rows["sweep"]["fpo_assumptions"] == {"fft_library": library}
    assert rows["sweep"]["fpo_lower_bound"] is True
    assert rows["exact"]["fpo_assumptions"] == {}
