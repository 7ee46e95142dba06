"""What a new user stumbled on after ``make demo`` and the README's next steps (session 8).

Each test is one thing a stranger who just cloned greenprint met, read the way a paper author
reads a report: figures that must add up, sentences that must say what a number is, help texts
that must say the unit the docs give.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import greenprint as gp
from greenprint._format import format_energy
from greenprint.report import build_report, render


@pytest.fixture(scope="module")
def study_with_roles(tmp_path_factory):
    """A study as the demo makes one: baselines, trials, a learning curve and a final model."""
    path = tmp_path_factory.mktemp("roles") / "roles.db"
    plan = [
        ("baseline-majority", "baseline", 0.1, {}),
        ("trial-1", "trial", 0.8, {"lr": 0.1}),
        ("trial-2", "trial", 0.9, {"lr": 0.01}),
        ("curve-0.5", "learning-curve", 0.85, {"fraction": 0.5}),
        ("final", "final", None, {"lr": 0.01}),
    ]
    for name, role, score, params in plan:
        with gp.track(name, study="s", ledger=path, role=role) as run:
            started = time.perf_counter()
            while time.perf_counter() - started < 0.05:
                sum(i * i for i in range(1000))
            run.set(params=params, dataset_size=100, fpo=10**6)
            if score is not None:
                run.log(accuracy=score)
    return build_report(path, "s", metric="accuracy")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_the_price_tag_by_role_is_in_every_format_and_sums_to_the_total(study_with_roles):
    """The search alone is not the study: a reader sees what the trials, the baselines, the
    learning curve and the final model each cost, and the parts add up to the total."""
    report = study_with_roles
    tag = report.price_tag
    assert set(tag.by_role) == {"trial", "baseline", "learning-curve", "final"}
    md = render(report, "md", plots=False)
    rows = {}
    for line in md.splitlines():
        cells = _cells(line)
        if line.startswith("|") and cells[0] in (
            "trials (the search)",
            "baselines",
            "learning curve",
            "final model",
            "total",
        ):
            rows.setdefault(cells[0], []).append(cells)
    for role, label in [
        ("trial", "trials (the search)"),
        ("baseline", "baselines"),
        ("learning-curve", "learning curve"),
        ("final", "final model"),
    ]:
        (cells,) = rows[label]
        assert cells[1] == str(tag.by_role[role].runs)
        assert cells[2] == format_energy(tag.by_role[role].energy_kwh)
    shares = [float(rows[label][0][-1].rstrip(" %")) for label in rows if label != "total"]
    assert sum(shares) == pytest.approx(100, abs=0.5)
    assert sum(c.energy_kwh for c in tag.by_role.values()) == pytest.approx(tag.total.energy_kwh)
    html = render(report, "html", plots=False)
    assert "<th>role</th>" in html and "trials (the search)" in html and "final model" in html
    assert "<th class=num>energy share</th>" in html  # right-aligned, as the numbers are
    tex = render(report, "latex", plots=False)
    paper = tex[tex.index("BEGIN PAPER") : tex.index("END PAPER")]
    assert "by role" in paper and "final model" in paper


def test_the_edh_sentence_says_its_energy_is_the_trials_not_the_study(study_with_roles):
    """E x D x H equals the trials' energy, which is less than the price tag's total: the
    sentence says so, else a reader finds two totals that disagree."""
    report = study_with_roles
    md = render(report, "md", plots=False)
    (line,) = [ln for ln in md.splitlines() if ln.startswith("E x D x H")]
    edh = report.price_tag.edh
    assert edh.energy_kwh < report.price_tag.total.energy_kwh
    whole = format_energy(report.price_tag.total.energy_kwh)
    assert re.search(rf"the energy of these 2 trials \(of the study's {re.escape(whole)}\)", line)


def test_a_final_run_scored_on_the_test_split_does_not_make_the_training_loss_the_metric(
    tmp_path,
):
    """The demo's study: trials log ``train_loss`` and ``val_accuracy``, the final retrain
    ``train_loss`` and ``test_accuracy``. ``greenprint report`` on the demo's ledger (without
    ``--metric``, as the README's next step runs it) ranked the trials by their training loss,
    because the final run's ``train_loss`` made it the most logged metric by one."""
    path = tmp_path / "demo.db"
    for k, (loss, acc) in enumerate([(0.5, 0.8), (0.2, 0.95), (0.1, 0.9)]):
        with gp.track(f"trial-{k}", study="d", ledger=path, role="trial") as run:
            run.log(train_loss=loss)
            run.log(val_accuracy=acc)
    with gp.track("final-retrain", study="d", ledger=path, role="final") as run:
        run.log(train_loss=0.05)
        run.log(test_accuracy=0.97)
    report = build_report(path, "d")
    assert (report.metric, report.mode) == ("val_accuracy", "max")
    best = max((r for r in report.runs if r.is_trial), key=lambda r: r.score)
    assert best.name == "trial-1"


def test_the_energy_axis_caption_says_what_it_leaves_out_and_how_much(study_with_roles):
    """The EVP-against-energy axis counts the trials only. Its caption named a fixed list (the
    sweep, the final model, the baselines, the learning curve) whatever the study held: the
    demo's greener variants (22% of its energy) were left out without a word, and a sweep
    that was not there was named. It now names the roles the study has, each with its energy,
    and the total left out."""
    report = study_with_roles
    (figure,) = [f for f in report.figures if f.id == "evp_energy"]
    tag = report.price_tag
    left = tag.total.energy_kwh - tag.by_role["trial"].energy_kwh
    caption = figure.caption
    assert f"leaves out {format_energy(left)} of the study's" in caption
    for role, words in [
        ("baseline", "the baselines"),
        ("final", "the final model"),
        ("learning-curve", "the learning curve"),
    ]:
        assert f"{words} ({format_energy(tag.by_role[role].energy_kwh)})" in caption
    assert "sweep" not in caption  # the study has none


def test_the_demo_never_prunes_a_trial_after_its_last_epoch(tmp_path):
    """The demo printed ``trial-15-mlp  pruned ... (stopped after epoch 15)`` for trials of 15
    epochs: a trial that ran every epoch was marked pruned (left off the Pareto front and out
    of the choice of the final configuration) though stopping it saved nothing."""
    torch = pytest.importorskip("torch")
    from greenprint.demo._models import Data, MedianPruner, build_model, train

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 64, generator=gen)
    y = torch.randint(0, 10, (64,), generator=gen)
    data = Data(x[:48], y[:48], x[48:], y[48:])
    params = {"model": "mlp", "lr": 1e-3, "batch": 16, "wd": 0.0, "epochs": 3}
    params.update(hidden=16, layers=1, dropout=0.0)
    # every finished trial scored 1.0 after each epoch: this one is below the median at each
    history = {epoch: [1.0, 1.0] for epoch in (1, 2, 3)}
    for epochs, pruned_at in [(3, 2), (2, None)]:
        pruner = MedianPruner(startup_trials=2, warmup_epochs=2, history=dict(history))
        with gp.track("t", study="s", ledger=tmp_path / "l.db") as run:
            outcome = train(
                build_model(params), {**params, "epochs": epochs}, data, run, seed=0, pruner=pruner
            )
        assert outcome.pruned is (pruned_at is not None)
        assert outcome.epochs == (pruned_at or epochs)
        assert run.status == ("pruned" if pruned_at else "finished")


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_takes_torch_from_the_cpu_index_only_when_asked(tmp_path):
    """README: from PyPI, Linux's ``torch==2.13.0`` is the CUDA build (a fresh clone's
    ``make demo`` on a machine reading PyPI made a 5.1 GB .venv with nvidia-* and triton);
    ``TORCH_INDEX=https://download.pytorch.org/whl/cpu`` takes the CPU build there. By default
    nothing is looked up on that index: a machine that cannot reach it (CI, this project's
    machines, whose configured wheels hold the CPU build) would wait on pip's retries."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").touch()

    def torch_steps(*args: str) -> list[str]:
        done = subprocess.run(
            ["make", "-n", "demo", *args], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return [ln for ln in done.stdout.splitlines() if "install -q" in ln and "torch==" in ln]

    (default,) = torch_steps()
    assert "download.pytorch.org" not in default and '"torch==2.13.0"' in default
    cpu = "https://download.pytorch.org/whl/cpu"
    only, deps = torch_steps(f"TORCH_INDEX={cpu}")
    # torch alone from the CPU index (a machine that cannot reach it retries once, not once per
    # dependency), then its dependencies from the usual indexes
    assert "--no-deps" in only and f"--extra-index-url {cpu}" in only
    assert "download.pytorch.org" not in deps and "--no-deps" not in deps
    assert all('"torch==2.5.1"' in line for line in torch_steps("TORCH_SPEC=torch==2.5.1"))


def _help(*command: str) -> str:
    from click.testing import CliRunner

    from greenprint.cli import cli

    done = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert done.exit_code == 0, done.output
    return " ".join(done.output.split())


def test_run_help_says_what_the_intervals_are_and_their_unit():
    """``greenprint run --help`` showed ``--sample-interval FLOAT [default: 1.0]`` and
    ``--flush-interval FLOAT [default: 10.0]``: no word of what they are nor of their unit."""
    text = _help("run")
    assert re.search(r"--sample-interval S\s+Seconds between two meter samples", text)
    assert re.search(r"--flush-interval S\s+Seconds between two writes to the ledger", text)


def test_demo_help_says_what_the_demo_does_and_how_long_it_takes():
    """``greenprint demo --help`` said "a few minutes on a laptop CPU" (the docs: 45 s on 2
    cores) and left out the final model, the greener variants and the pruner comparison."""
    text = _help("demo")
    assert "a few minutes" not in text
    # as README measured it (40-110 s until session 43 dropped the comparison's third search)
    assert "30-80 s on a 2-vCPU machine" in text
    for part in ("final model", "greener variants", "pruner comparison"):
        assert part in text, part


def test_the_runs_table_does_not_dump_a_nested_parameter(tmp_path):
    """The demo's runs table showed each greener variant's ``greener.result`` parameter as a
    Python dict of 20 keys, cut at 300 characters (``{'name': 'baseline', 'technique': ...``):
    a wall of text in every greener row. A nested value shows its size; the JSON keeps it."""
    from greenprint.report._tables import params_text

    result = {f"key{k}": k / 7 for k in range(20)}
    text = params_text({"greener.step": "variant", "greener.result": result, "lr": 0.1})
    assert text == "greener.step=variant, greener.result={20 keys}, lr=0.1"
    assert params_text({"sizes": [1, 2], "opt": {"name": "adam"}}) == (
        "sizes=[1, 2], opt={'name': 'adam'}"
    )  # short ones stay as they are
    assert params_text({"layers": list(range(40))}) == "layers=[40 items]"


def test_the_demo_closing_note_reads_right(study_with_roles, tmp_path):
    """The demo's closing note said ``whole study    24 trials (7 finished, 17 pruned): 25.8
    mWh`` (the 25.8 mWh is 40 runs': the search was 14.3) and ``measured       energy
    estimated``: a label that contradicts its line."""
    from greenprint.demo._study import _summary

    report = study_with_roles
    tag = report.price_tag
    files = {"html": tmp_path / "report.html"}
    lines = _summary(report, files, tmp_path / "l.db", "s", 1.0).splitlines()
    (whole,) = [ln for ln in lines if ln.startswith("  whole study")]
    assert whole.startswith(
        f"  whole study    {tag.total.runs} runs, 2 of them trials (2 finished)"
    )
    search = tag.by_role["trial"].energy_kwh
    share = search / tag.total.energy_kwh
    assert f"the search {format_energy(search)} ({share:.0%})" in whole
    (how,) = [ln for ln in lines if "grid intensity" in ln]
    assert how.startswith("  provenance     energy estimated;")
    assert not any(ln.startswith("  measured") for ln in lines)


def test_a_demo_of_one_trial_says_one_trial(tmp_path):
    """``greenprint demo --trials 1`` closed with 'whole study    8 runs, 1 of them trials (1
    finished)'."""
    from greenprint.demo._study import _summary

    path = tmp_path / "one.db"
    for name, role in (("baseline-majority", "baseline"), ("trial-01-mlp", "trial")):
        with gp.track(name, study="s", ledger=path, role=role, meters=[]) as run:
            run.log(accuracy=0.5)
    report = build_report(path, "s", metric="accuracy")
    lines = _summary(report, {"html": tmp_path / "r.html"}, path, "s", 1.0).splitlines()
    (whole,) = [ln for ln in lines if ln.startswith("  whole study")]
    assert whole.startswith("  whole study    2 runs, one of them a trial (1 finished)"), whole


def test_compute_statement_and_what_if_read_right_for_a_paper(study_with_roles):
    """The compute statement, pasted into a paper, said "in 5 runs, all counted in the figures
    that follow": a paper's figures are its plots. The what-if section priced "the study's
    measured energy" of a study whose energy was 100% estimated."""
    report = study_with_roles
    statement = report.compute_statement
    assert "figures that follow" not in statement
    assert "in 5 runs, every one counted in the totals that follow, on " in statement
    md = render(report, "md", plots=False)
    assert report.price_tag.provenance.measured_share == 0  # no RAPL, no NVML here
    assert "measured energy" not in md
    assert "The study's energy as recorded (with its PUE) priced at" in md
    assert "measured energy" not in _help("whatif")


def test_a_variant_that_costs_more_per_inference_never_breaks_even():
    """The demo's greener table gave dynamic-int8 (1.04x the baseline's energy per inference,
    no training) a break-even of 0 inferences, under a legend that reads "never: it saves
    nothing": a reader takes 0 for "pays off at once". It reads "never"; a variant without
    training that saves energy still reads 0."""
    from greenprint.greener._result import GreenerRow, finish, table_cells

    def row(name: str, wh_per_1000: float, training_wh: float = 0.0) -> GreenerRow:
        return GreenerRow(
            name=name,
            technique=name,
            score=0.9,
            energy_kwh_per_1000=wh_per_1000 / 1e3,
            training_energy_kwh=training_wh / 1e3,
        )

    rows = [row("baseline", 2.0), row("costlier", 2.1), row("cheaper", 1.0), row("same", 2.0)]
    result = finish(rows, metric="accuracy", mode="max", baseline="baseline")
    _, body = table_cells(result)
    even = {cells[0].lstrip("◆ "): cells[-1] for cells in body}
    assert even == {"baseline": "-", "costlier": "never", "cheaper": "0", "same": "never"}


def test_the_runs_table_marks_greener_runs(tmp_path):
    """The demo's runs table listed ``greener-best-cnn`` (5.79 mWh, top-level) with no mark,
    under a legend naming baselines, learning-curve runs and sweeps only: a reader took it for
    one more trial. A run with role greener is marked, and the legend says what it is."""
    from greenprint.report._tables import ROLE_MARKS_LEGEND, runs_table

    path = tmp_path / "g.db"
    for name, role, accuracy in [("t1", "trial", 0.6), ("t2", "trial", 0.5)]:
        with gp.track(name, study="g", ledger=path, role=role) as run:
            run.log(accuracy=accuracy)  # t1 the best (a tie goes to the cheaper trial)
    with gp.track("greener-best", study="g", ledger=path, role="greener"):
        with gp.track("greener-best:int8", study="g", ledger=path, role="greener"):
            pass
    report = build_report(path, "g")
    _, rows = runs_table(report)
    labels = [cells[0] for cells in rows]
    # the comparison is marked, its variants indented under it
    assert labels == ["t1 ★", "t2", "greener-best (greener)", "  ↳ greener-best:int8"]
    assert "(greener) a greener variant of a model, or their comparison" in ROLE_MARKS_LEGEND


def test_a_learning_curve_of_one_run_per_size_does_not_say_mean(tmp_path):
    """The demo's learning curve caption read "Mean val_accuracy (left) and energy per run" for
    four runs, one per training-set size: there is no mean to take."""
    path = tmp_path / "lc.db"
    for k, size in enumerate((100, 200, 400)):
        with gp.track(f"lc-{size}", study="lc", ledger=path, role="learning-curve") as run:
            run.set(dataset_size=size)
            run.log(accuracy=0.5 + 0.1 * k)
    with gp.track("t", study="lc", ledger=path, role="trial") as run:
        run.log(accuracy=0.7)
    report = build_report(path, "lc")
    (figure,) = [f for f in report.figures if f.id == "learning_curve"]
    assert figure.caption.startswith(
        "Each run's accuracy (left) and energy (right) against the number of training examples,"
        " from 3 runs with role 'learning-curve'"
    )


def test_latex_figure_captions_start_each_note_as_a_sentence(study_with_roles):
    """A LaTeX figure caption joined its notes after the provenance as "... of each trial. the
    shaded band is ±1 standard deviation, clipped to the observed scores. one curve per ...":
    sentences that begin in lower case."""
    tex = render(study_with_roles, "latex", plots=False)
    captions = re.findall(r"\\caption\{(.*?)\}\n", tex)
    assert captions
    for caption in captions:
        assert not re.search(r"\. [a-z]", caption.replace("e.g. ", "")), caption
    assert "The shaded band is" in tex


def test_the_greener_table_says_what_throughput_counts_without_exponents():
    """The greener table's ``throughput (/s)`` column read ``7.788e+04``: per second of what,
    and in a notation no other column of the report uses for counts."""
    from greenprint.greener._result import GreenerRow, finish, table_cells

    rows = [
        GreenerRow(
            name="baseline",
            technique="baseline",
            score=0.9,
            energy_kwh_per_1000=1e-6,
            throughput_per_s=77_880.4,
        ),
        GreenerRow(
            name="slow",
            technique="x",
            score=0.9,
            energy_kwh_per_1000=2e-6,
            throughput_per_s=312.46,
        ),
    ]
    header, body = table_cells(finish(rows, metric="accuracy", mode="max", baseline="baseline"))
    column = header.index("throughput (inferences/s)")
    assert [cells[column] for cells in body] == ["77,880", "312"]


@pytest.mark.slow
def test_the_price_tag_by_role_fits_one_column_of_a_paper(
    study_with_roles, tmp_path, require_component
):
    """The LaTeX price tag by role goes in the paper part, one column wide like the table by
    status: pasted into a two-column paper, without the report's scale-down guard, no table
    overflows its column."""
    from _report_cli import without_fit_guard

    pdflatex = shutil.which("pdflatex")
    require_component(pdflatex is not None, "pdflatex is not installed")
    assert pdflatex is not None
    tex = render(study_with_roles, "latex", plots=False)
    body = tex[tex.index("\n", tex.index("BEGIN PAPER")) + 1 : tex.index("% ---- END PAPER")]
    assert "The same price tag by role" in body
    unguarded = without_fit_guard(body)
    paper = (
        "\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n"
        "\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
        + unguarded
        + "\n\\end{document}\n"
    )
    (tmp_path / "paper.tex").write_text(paper, encoding="utf-8")
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    log = (tmp_path / "paper.log").read_text(encoding="utf-8", errors="replace")
    # a tabular wider than its column is reported as an overfull box around its line
    assert "Overfull \\hbox" not in log, log[log.find("Overfull") :][:500]


@pytest.mark.chromium
def test_the_runs_table_fits_a_laptop_screen(tmp_path, chromium_path, require_component):
    """On a 1280-pixel-wide window the demo's runs table was 129 px wider than the page: its
    run ids were off screen behind a horizontal scroll bar, because the long run names and the
    long words of the parameters (``greener.technique=prune-unstructured``) never wrapped; its
    greener table of twelve columns was 39 px wider (break-even cut)."""
    import importlib.util

    require_component(
        importlib.util.find_spec("playwright") is not None,
        "the playwright package is not installed (pip install playwright; no browser download)",
    )
    from playwright.sync_api import sync_playwright

    from greenprint.report import write_report

    path = tmp_path / "wide.db"
    with gp.track("greener-best-cnn", study="w", ledger=path, role="greener") as parent:
        parent.set(params={"greener.step": "compare", "greener.metric": "val_accuracy"})
        for name in ("prune-ch-30%", "dynamic-int8"):
            with gp.track(f"greener-best-cnn:{name}", study="w", ledger=path, role="greener") as r:
                r.set(
                    params={
                        "greener.step": "variant",
                        "greener.technique": "prune-unstructured-channels",
                        "greener.result": {f"k{k}": k for k in range(28)},
                    },
                    fpo=26_500_000_000,
                )
                r.log(val_accuracy=0.9889)
    for k, fraction in enumerate((0.25, 0.5)):
        with gp.track(
            f"learning-curve-{fraction}", study="w", ledger=path, role="learning-curve"
        ) as r:
            r.set(
                params={"fraction": fraction, "model": "cnn", "lr": 0.022661, "wd": 2.0723e-05},
                dataset_size=268 * (k + 1),
                fpo=10_800_000_000,
            )
            r.log(val_accuracy=0.95)
    # and a greener comparison: its table of twelve columns was 39 px wider than the page
    torch = pytest.importorskip("torch")
    from torch import nn

    from greenprint import greener

    torch.manual_seed(0)
    x = torch.randn(64, 16)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    variants = [greener.dynamic_int8(), greener.prune_unstructured(0.5)]
    variants.append(greener.prune_structured(0.3))
    greener.compare(
        model,
        lambda m: float((m(x).argmax(dim=1) == 0).float().mean()),
        x,
        variants,
        study="w",
        ledger=str(path),
        metric="val_accuracy",
        min_time_s=0.02,
        num_threads=1,
    )
    html = write_report(build_report(path, "w"), tmp_path / "out", "html")["html"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(html.as_uri(), wait_until="load")
            hidden = page.evaluate(
                "[...document.querySelectorAll('.scroll')].map(box => [box.closest('section').id,"
                " box.scrollWidth - box.clientWidth])"
            )
        finally:
            browser.close()
    assert {section for section, _ in hidden} >= {"runs", "greener"}
    for section, pixels in hidden:
        assert pixels <= 0, f"the {section} table is {pixels} px wider than the page"


def test_the_report_states_the_final_models_held_out_score(tmp_path):
    """The demo's final model is scored on the held-out test split (``test_accuracy = 0.9833``,
    the number a paper reports): the terminal said so, but no format of the report did. Its row
    read ``-`` under ``val_accuracy``, and the price tag and the compute statement gave its cost
    without its score. They now give the held-out score it logged."""
    path = tmp_path / "demo.db"
    for k, (loss, acc) in enumerate([(0.5, 0.8), (0.2, 0.95)]):
        with gp.track(f"trial-{k}", study="d", ledger=path, role="trial") as run:
            run.log(train_loss=loss)
            run.log(val_accuracy=acc)
    with gp.track("final-retrain", study="d", ledger=path, role="final") as run:
        run.log(train_loss=0.05)
        run.log(test_accuracy=0.9833)
    # the demo gives its metric: the report then reads no other metric of the trials
    report = build_report(path, "d", metric="val_accuracy")
    assert "(run “final-retrain”, test_accuracy = 0.9833) alone used" in report.compute_statement
    report = build_report(path, "d")
    assert report.metric == "val_accuracy" and report.final.score is None
    assert "(run “final-retrain”, test_accuracy = 0.9833) alone used" in report.compute_statement
    md = render(report, "md", plots=False)
    assert (
        "Final run final-retrain (the run with role 'final') scored test\\_accuracy = 0.9833 "
        "(not val\\_accuracy, the trials' metric) and cost" in md
    )
    for fmt in ("html", "latex"):
        assert "0.9833" in render(report, fmt, plots=False), fmt


def test_a_bad_pue_on_the_command_line_reads_plainly(tmp_path):
    """``greenprint run --pue 0 -- true`` said "PUE (argument) must be a finite number ...":
    "(argument)" is greenprint's provenance tag, not a word a user typed."""
    from _report_cli import GREENPRINT, run_in

    done = run_in(tmp_path, GREENPRINT, "run", "--pue", "0", "--", "true")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("greenprint: error: PUE must be a finite number"), line
    assert not (tmp_path / "greenprint.db").exists()


def test_report_json_carries_the_final_models_held_out_scores(tmp_path):
    """The held-out score a final retrain logged is in report.json too (``final_scores``), not
    only in its sentences: a script reading the JSON gets the number a paper reports."""
    import json

    from greenprint.report import write_report

    path = tmp_path / "demo.db"
    with gp.track("trial-0", study="d", ledger=path, role="trial") as run:
        run.log(val_accuracy=0.95)
    with gp.track("final-retrain", study="d", ledger=path, role="final") as run:
        run.log(test_accuracy=0.9833)
    out = write_report(build_report(path, "d"), tmp_path / "out", "json")
    document = json.loads(Path(out["json"]).read_text(encoding="utf-8"))
    assert document["final_scores"] == {"test_accuracy": 0.9833}
    with gp.track("trial-1", study="e", ledger=path, role="trial") as run:
        run.log(val_accuracy=0.9)
    out = write_report(build_report(path, "e"), tmp_path / "out2", "json")
    assert json.loads(Path(out["json"]).read_text(encoding="utf-8"))["final_scores"] == {}
