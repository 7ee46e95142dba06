"""What an FPO count assumed (``FPOResult.assumptions``) reaches the run, the ledger and the report.

A count of an FFT depends on the FFT library that ran it (an ``rfft``'s normalisation: MKL and
cuFFT 2 FPO per one-sided complex value, pocketfft 1 per real input value), and the count says
which it assumed (``{"fft_library": "mkl"}``). ``run.add_fpo(result)`` and ``run.set(fpo=result)``
kept only the total: the ledger, ``greenprint ledger show``, the notebook table and the report
could not say that a run's FPO were counted assuming MKL's FFT, and ``greener``'s merged counts
dropped it too. Now the run's provenance keeps it (``"fpo_assumptions": "fft_library=mkl"``).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

import greenprint as gp

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from greenprint.cli import cli  # noqa: E402
from greenprint.greener._result import counted_as  # noqa: E402
from greenprint.report import build_report, write_report  # noqa: E402

_NAMES = {"mkl": "MKL", "pocketfft": "pocketfft", "cufft": "cuFFT"}


class Spectral(torch.nn.Module):
    """A classifier on a signal's spectrum: ``rfft`` magnitudes, then a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(5, 3)

    def forward(self, x):
        return self.lin(torch.fft.rfft(x, norm="ortho").abs())


@pytest.fixture(scope="module")
def counted():
    """A training step's count of :class:`Spectral` on a (4, 8) batch, and its FFT library."""
    torch.manual_seed(0)
    result = gp.count_fpo(Spectral(), torch.randn(4, 8))
    library = result.assumptions["fft_library"]  # the CPU library of this torch build
    assert library in ("mkl", "pocketfft")
    return result, library


def _show(ledger, run_id) -> str:
    done = CliRunner().invoke(cli, ["ledger", "show", "--ledger", str(ledger), run_id])
    assert done.exit_code == 0, done.output
    (line,) = [line for line in done.output.splitlines() if line.strip().startswith("FPO ")]
    return line


def test_a_runs_fpo_say_what_their_count_assumed_in_the_ledger_and_ledger_show(counted, tmp_path):
    result, library = counted
    ledger = tmp_path / "fft.db"
    with gp.track("spectral", study="s", ledger=ledger) as run:
        run.add_fpo(result)  # two training steps
        run.add_fpo(result)
    assert run.fpo == 2 * result.total
    assert run.provenance["fpo_assumptions"] == f"fft_library={library}"
    (record,) = gp.Ledger(ledger).runs(study="s")
    assert record.provenance["fpo_assumptions"] == f"fft_library={library}"
    assert "fpo" not in record.provenance  # exact: no lower bound
    line = _show(ledger, record.id)
    assert line.endswith(f"(counted assuming fft_library={library})"), line
    assert f"(assuming fft_library={library})" in run._repr_html_()  # a notebook's table

    # a total given as a number replaces the count and what it assumed
    with gp.track("given", study="s", ledger=ledger) as run:
        run.set(fpo=result)
        assert run.provenance["fpo_assumptions"] == f"fft_library={library}"
        run.set(fpo=7)
    given = gp.Ledger(ledger).run(run.id)
    assert given.fpo == 7 and "fpo_assumptions" not in given.provenance
    assert "assuming" not in _show(ledger, run.id)


def test_counts_with_other_assumptions_merge_and_a_late_count_is_written(counted, tmp_path):
    result, library = counted
    # the same model counted on a CUDA tensor (cuFFT) with a cuDNN grid sampler, as a GPU
    # machine's counter reports it
    sampler = "counted as ATen's CUDA grid_sampler_2d kernel (cuDNN's is closed source)"
    on_gpu = dataclasses.replace(
        result, assumptions={"fft_library": "cufft", "cudnn_grid_sampler": sampler}
    )
    with gp.FPOCounter() as bessel:  # an op with no rule: a lower bound
        torch.special.bessel_j0(torch.randn(5)) * 2
    ledger = tmp_path / "mixed.db"
    with gp.track("mixed", study="s", ledger=ledger) as run:
        run.add_fpo(result)
        run.add_fpo(bessel.result)
        run.add_fpo(3)  # a number adds to the total and keeps what the counts said
    assert run.provenance["fpo_assumptions"] == f"fft_library={library}"
    run.add_fpo(on_gpu)  # after the run's end (an evaluation on the GPU): written at once
    merged = "+".join(sorted(("cufft", library)))
    expected = f"cudnn_grid_sampler={sampler}; fft_library={merged}"
    assert run.provenance["fpo_assumptions"] == expected
    record = gp.Ledger(ledger).run(run.id)
    assert record.fpo == 2 * result.total + bessel.result.total + 3
    assert record.provenance["fpo_assumptions"] == expected
    line = _show(ledger, run.id)
    assert "at least" in line
    assert line.endswith(f"(a lower bound: see provenance; counted assuming {expected})"), line
    # the report names each assumption with its runs (a sentence after a colon)
    assert (
        f"FPO of 1 run assume cudnn_grid_sampler: {sampler}; FPO of 1 run count FFTs as "
        f"{' and '.join(_NAMES[one] for one in merged.split('+'))} compute them "
        f"(fft_library={merged}): a count on another"
    ) in " ".join(build_report(ledger, "s").notes)


def test_the_report_says_once_what_the_studys_fpo_assumed_in_every_format(counted, tmp_path):
    result, library = counted
    ledger = tmp_path / "study.db"
    for lr in (0.1, 0.01, 0.001):
        with gp.track(f"lr{lr}", study="sweep", ledger=ledger, params={"lr": lr}) as run:
            run.add_fpo(result.times(10))  # ten steps: times() keeps the assumptions
            run.log(accuracy=0.5 + lr)
    with gp.track("no-fft", study="sweep", ledger=ledger) as run:
        run.set(fpo=1000)
        run.log(accuracy=0.4)
    report = build_report(ledger, "sweep")
    notes = [n for n in report.notes if "fpo_assumptions" in n]
    assert notes == [
        f"FPO of 3 runs count FFTs as {_NAMES[library]} computes them (fft_library={library}): "
        "a count on another torch build or device can differ there (each run's provenance has "
        "what its FPO assumed, fpo_assumptions)"
    ]
    files = write_report(report, tmp_path / "out", "html,md,latex,json", plots=False)
    said = f"FPO of 3 runs count FFTs as {_NAMES[library]} computes them"
    for fmt, path in files.items():
        text = path.read_text(encoding="utf-8")
        assert text.count(said) == 1, fmt
    assert notes[0] in json.loads(files["json"].read_text(encoding="utf-8"))["notes"]


def test_greener_merges_the_assumptions_of_its_counts_and_distill_records_them(counted):
    result, library = counted
    on_gpu = dataclasses.replace(result, assumptions={"fft_library": "cufft"})
    # before: the first count's assumptions (or none, an int, when every op had a rule)
    merged = counted_as(2 * result.total + 5, [result, on_gpu, 5])
    assert merged.total == 2 * result.total + 5
    assert merged.assumptions == {"fft_library": "+".join(sorted(("cufft", library)))}
    assert counted_as(9, [3, 6]) == 9  # nothing assumed, nothing missed: the int

    from greenprint import greener

    torch.manual_seed(0)
    data = [(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))]
    distilled = greener.distill(Spectral(), torch.nn.Linear(8, 3), data, 1, ledger=False)
    assert distilled.fpo is not None and distilled.fpo > 0
    assert distilled.provenance["fpo_assumptions"] == f"fft_library={library}"
