"""What a new user stumbled on after ``make demo`` and the README's next steps (session 9).

A stranger cloned greenprint, ran ``make demo`` with a clean environment, read what it printed
against the report it wrote, then tracked a script of their own (``greenprint run``, ``ledger
ls``, ``ledger show``, ``greenprint report``). Each test is one thing that read wrong there:
two figures of one fact that disagree, a help text showing markup, a Python ``None`` where the
rest of the page writes ``-``. Session 8's findings are in tests/test_new_user_s8.py.
"""

from __future__ import annotations

import io
import json
import re
from types import SimpleNamespace

import pytest

import greenprint as gp
from greenprint.cli import main


def test_the_pruner_comparison_says_a_complete_trial_ran_every_epoch(tmp_path):
    """The demo printed 'Optuna trial 0 cnn complete ... after 14 epoch(s)' under 'the same
    random search of 24 trials (seed 0, up to 15 epochs)': a complete trial trains every epoch,
    and only the last one is never reported to the pruner (there is nothing left to stop)."""
    pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    from greenprint.demo._display import PlainDisplay
    from greenprint.demo._pruning import compare_pruners
    from greenprint.demo._study import _load_digits, random_search

    stream = io.StringIO()
    led = gp.Ledger(tmp_path / "p.db")
    data = _load_digits(0)
    random_search(led, "s", data, PlainDisplay(io.StringIO()), trials=2, max_epochs=2, seed=0)
    result = compare_pruners(led, "s", data, PlainDisplay(stream), seed=0)
    assert "up to 2 epochs" in result.lines()[0]
    complete = [x for x in stream.getvalue().splitlines() if " complete " in x]
    assert complete, stream.getvalue()
    for line in complete:
        assert re.search(r"after 2 epochs\b", line), line
    for line in stream.getvalue().splitlines():
        if " pruned " in line:  # stopped at a reported epoch, before the last
            assert re.search(r"after 1 epoch\b", line), line


def test_the_demo_summary_and_the_report_give_one_break_even():
    """The demo's closing lines read 'pays back its training after 45,122 inferences' and the
    report's greener table '45,123' for one variant: the terminal rounded 45,122.4, the report
    rounds up (after 45,122 inferences it has not yet paid back)."""
    from greenprint.demo._greener import add_to_summary
    from greenprint.greener._result import break_even_text

    base = SimpleNamespace(
        name="baseline", score=0.99, energy_kwh_per_1000=2e-5, training_energy_kwh=0.0,
        break_even_inferences=None, measured=True, within_noise=False,
    )  # fmt: skip
    student = SimpleNamespace(
        name="distilled-cnn4", score=0.95, energy_kwh_per_1000=6e-6, training_energy_kwh=4.73e-7,
        break_even_inferences=45_122.4, measured=True, within_noise=False,
    )  # fmt: skip
    # the same dense kernels 3% cheaper by the machine's noise: no saving claimed (session 42)
    pruned = SimpleNamespace(
        name="prune-50%", score=0.99, energy_kwh_per_1000=1.94e-5, training_energy_kwh=0.0,
        break_even_inferences=None, measured=True, within_noise=True,
    )  # fmt: skip
    result = SimpleNamespace(
        baseline="baseline", rows=[base, student, pruned], front=["distilled-cnn4"],
        row=lambda _: base,
    )  # fmt: skip
    text = add_to_summary("greenprint demo: done\n  report         r.html", result)
    assert break_even_text(student) == "45,123"
    assert "pays back its training after 45,123 inferences" in text, text
    assert "prune-50%: 0.990 (+0.000), 0.97x the energy per inference (within noise)" in text
    assert break_even_text(pruned) == "within noise"


@pytest.mark.parametrize("command", [["ledger", "ls"], ["ledger", "show"]])
def test_ledger_help_shows_no_markup(command, capsys):
    """``greenprint ledger ls --help`` read 'as the report does (``12.3 Wh``, ``4.7 g``)': the
    docstring's reStructuredText quotes, printed as they are by the terminal."""
    assert main([*command, "--help"]) in (0, None)
    out = capsys.readouterr().out
    assert "12.3 Wh" in out and "`" not in out, out


def test_ledger_show_writes_a_missing_hardware_figure_as_a_dash(tmp_path, capsys):
    """``ledger show`` of a run on a CPU the TDP table does not know read 'hardware.cpu_tdp_w
    None' among lines that write a missing figure as '-'."""
    path = tmp_path / "l.db"
    with gp.track("train.py", study="s", ledger=path) as run:
        pass
    led = gp.Ledger(path)
    record = led.run(run.id)
    led.close()
    assert main(["ledger", "show", run.id[:8], "--ledger", str(path)]) in (0, None)
    out = capsys.readouterr().out
    assert "None" not in out, out
    for key, value in record.hardware.items():
        if value is None:
            assert re.search(rf"hardware\.{key}\s+-$", out, re.M), out


def test_the_pruner_comparison_says_its_searches_are_not_in_the_price_tag():
    """The demo's report closes with 'pruner comparison: ... MedianPruner: 14/24 pruned,
    13.3 mWh ...; best val_accuracy 0.9833 (trial-13)' under a price tag of 25 mWh: a reader
    cannot tell that the 48 trials are two studies of their own, left out of that 25 mWh, nor
    that 'trial-13' is not the study's own trial-13-mlp. Since session 43 the per-epoch arm is
    the study's own search (in its price tag), the cost-aware one a study of its own."""
    from greenprint.demo._pruning import PrunerComparison, PrunerOutcome

    def outcome(label, study, best):
        return PrunerOutcome(label, study, 24, 14, 0.0133, 0.0064, 10**11, 9.0, 0.98, best)

    comparison = PrunerComparison(
        median=outcome("MedianPruner (per epoch)", "digits-demo", "trial-13-mlp"),
        cost_aware=outcome("CostAwarePruner (at equal FPO)", "digits-demo-cost-pruner", "trial-10"),
        trials=24,
        max_epochs=15,
        seed=0,
    )
    note = comparison.note()
    assert "this study's random search of 24 trials" in note, note
    assert "as study digits-demo-cost-pruner (not in this study's price tag)" in note, note
    assert "(trial-13-mlp of study digits-demo)" in note, note
    assert "(trial-10 of study digits-demo-cost-pruner)" in note, note


def test_latex_price_tag_says_what_at_least_means_when_every_run_counted_fpo(tmp_path):
    """The demo's LaTeX price tag read '$\\geq$: FPO of some runs unknown (not counted)' over
    '$\\geq$761' when every run had counted its FPO: the bound came from ops with no FPO rule
    (the int8 variants), which the compute statement above it says; the table by role carried
    the same mark with no word on it."""
    torch = pytest.importorskip("torch")
    from greenprint.report import build_report, render

    class Bessel(torch.nn.Module):  # aten.special_bessel_j0 has no FPO rule
        def forward(self, x):
            return torch.special.bessel_j0(x) * 2

    counted = gp.count_fpo(Bessel(), torch.randn(4, 4), backward=False)
    assert counted.unknown_ops
    path = tmp_path / "l.db"
    for name, role in (("logreg", "baseline"), ("trial-1", "trial")):
        with gp.track(name, study="s", ledger=path, role=role) as run:
            run.add_fpo(counted)
            run.log(accuracy=0.9)
    tex = render(build_report(path, "s", metric="accuracy"), "latex", plots=False)
    captions = [
        x for x in tex.splitlines() if x.startswith((r"\caption{Price tag", r"\caption{The same"))
    ]
    assert len(captions) == 2, captions
    for caption in captions:
        assert "unknown" not in caption, caption
        assert r"$\geq$: a lower bound (some runs counted ops with no FPO rule" in caption, caption


def test_the_demo_names_its_greener_variants_as_the_report_does(tmp_path):
    """After 'baseline-majority' and 'baseline-logreg', the demo printed 'baseline
    val_accuracy=0.989 ...': the unmodified best CNN of the greener comparison, which the
    report's runs table names 'greener-best-cnn:baseline'. Each line now carries that name."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from greenprint.demo._display import PlainDisplay
    from greenprint.demo._greener import BEST_CNN, run_greener
    from greenprint.demo._models import build_model
    from greenprint.demo._study import _load_digits

    torch.manual_seed(0)
    model = build_model({"model": "cnn", "channels": 4})
    stream = io.StringIO()
    led = gp.Ledger(tmp_path / "g.db")
    result = run_greener(
        led, "s", _load_digits(0), PlainDisplay(stream), (0.5, model, {"channels": 4}),
        metric="val_accuracy", seed=0, min_time_s=0.01,
    )  # fmt: skip
    names = {r.name for r in led.runs(study="s")}
    lines = [x for x in stream.getvalue().splitlines() if "val_accuracy=" in x]
    assert len(lines) == len(result.rows)
    for row, line in zip(result.rows, lines, strict=True):
        name = f"{BEST_CNN}:{row.name}"
        assert name in names
        assert re.search(rf"\d+/\d+ {re.escape(name)} ", line), line
        # the latency says of how large a batch (it read '1.57 ms/batch': session 32)
        assert row.batch_size == 128 and " ms per batch of 128" in line, line


def test_the_what_if_table_never_breaks_a_figure_from_its_unit(tmp_path):
    """At 1280 px the demo's 'What if it ran elsewhere?' table read '12 mg CO2-' over 'eq' and
    '11 mg CO2-eq (92' over '%)': its figures wrapped like text. They are numeric cells now
    (right-aligned, never wrapped), as in every other table of the report."""
    from greenprint.report import build_report, render
    from greenprint.report._html import _CSS

    path = tmp_path / "l.db"
    with gp.track("train.py", study="s", ledger=path, region="DE") as run:
        run.log(accuracy=0.9)
    html = render(build_report(path, "s", metric="accuracy"), "html", plots=False)
    section = html[html.index('<section id="whatif">') :]
    section = section[: section.index("</section>")]
    assert re.search(r"td\.num, th\.num \{[^}]*white-space: nowrap", _CSS)
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    assert len(rows) > 3
    for row in rows:
        cells = re.findall(r"<t[hd]( class=\"num\")?>(.*?)</t[hd]>", row)
        assert len(cells) == 5, row
        region, intensity, co2, difference, source = cells
        assert not region[0] and not source[0], row  # text: it may wrap
        assert intensity[0] and co2[0] and difference[0], row  # figures: never split


def test_whatif_help_gives_the_unit_the_table_writes(capsys):
    """``greenprint whatif --help`` said 'with the saving in kg and percent' over a table that
    writes '0.387 mg CO2-eq (89 %)': kg is what ``--json`` gives (saving_kg)."""
    assert main(["whatif", "--help"]) in (0, None)
    out = " ".join(capsys.readouterr().out.split())
    assert "saving in kg" not in out, out
    # session 37: the table writes µg and ng too (docs/whatif.md's run: '66.5 µg CO2-eq')
    assert "the saving in CO2-eq (ng to t as it fits; kg with --json)" in out, out


def test_ledger_ls_shows_one_metric_for_a_study(tmp_path, capsys):
    """``ledger ls`` of the demo's ledger read 'val_accuracy=0.1028' for baseline-majority and
    'train_loss=0.2237' for baseline-logreg: each run's first-logged metric. A study's rows
    show the metric most of its runs logged, where the run has it (the report's default)."""
    path = tmp_path / "l.db"
    with gp.track("baseline-logreg", study="s", ledger=path) as run:
        run.log(train_loss=0.22, step=0)
        run.log(val_accuracy=0.94)
    for name, score in (("trial-1", 0.95), ("trial-2", 0.97)):
        with gp.track(name, study="s", ledger=path) as run:
            run.log(val_accuracy=score)
    with gp.track("other", study="t", ledger=path) as run:  # another study: its own metric
        run.log(loss=0.5)
    assert main(["ledger", "ls", "--ledger", str(path)]) in (0, None)
    rows = {x.split()[2]: x.split()[-1] for x in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {
        "baseline-logreg": "val_accuracy=0.94",
        "trial-1": "val_accuracy=0.95",
        "trial-2": "val_accuracy=0.97",
        "other": "loss=0.5",
    }, rows
    assert main(["ledger", "ls", "--ledger", str(path), "--study", "s", "--json"]) in (0, None)
    listed = json.loads(capsys.readouterr().out)
    assert {r["main_metric"]["name"] for r in listed} == {"val_accuracy"}


def test_the_model_card_source_counts_the_runs_its_grams_cover(tmp_path):
    """The demo's model card gave 'emissions: 0.0120305' (grams, the whole study: 40 runs) with
    'source: "greenprint 0.1.0: 24 trials (failed and pruned included), ...': it read as the
    24 trials' grams, the baselines, final model, learning curve and greener runs unsaid."""
    from greenprint.report import build_report

    path = tmp_path / "l.db"
    for name, role in (("logreg", "baseline"), ("t1", "trial"), ("t2", "trial"), ("f", "final")):
        with gp.track(name, study="s", ledger=path, role=role) as run:
            run.log(accuracy=0.9)
    card = build_report(path, "s", metric="accuracy").model_card
    assert "2 trials (failed and pruned included) in 4 runs, energy" in card.source, card.source
