"""What a new user found wrong in session 36, reading the README and docs/ with every number.

* The price tag by role (every format) gave shares that did not add up to the 100.0 % printed
  under them: the demo's read 56.5 + 4.1 + 6.0 + 10.7 + 22.8 = 100.1 %, each rounded alone.
* The LaTeX report's price tag by role gave no shares, where docs/report.md says every format
  gives each role its share of the energy (Markdown and HTML did): its caption gives them (a
  column more is wider than a paper's column).
* The E x D x H sentence of a study of one trial read "x 1 trials" (the README's own report
  quickstart, one trial with a dataset size), and of one example per trial "1 examples".
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

import greenprint as gp
from greenprint._format import percent_shares
from greenprint.report import build_report, render

T0 = 1_700_000_000.0

# Wh per role: rounded one by one the shares read 10.5 + 20.5 + 30.5 + 38.6 = 100.1 %; of
# the three equal remainders (0.6) the two larger parts take the units missing
ROLES = [
    ("trial-1", "trial", 10.46),
    ("majority", "baseline", 20.46),
    ("retrain", "final", 30.46),
    ("curve-0.5", "learning-curve", 38.62),
]


def _study(path: Path, plan: list[tuple[str, str, float]], *, dataset_size: int = 100) -> None:
    with gp.Ledger(path) as led:
        for k, (name, role, wh) in enumerate(plan):
            run_id = f"id-{name}"
            led.start_run(
                gp.RunRecord(
                    id=run_id,
                    name=name,
                    study="s",
                    role=role,
                    started_at=T0 + 10 * k,
                    params={"lr": 0.1},
                    dataset_size=dataset_size,
                )
            )
            led.flush(
                run_id,
                fields={
                    "status": "finished",
                    "ended_at": T0 + 10 * k + 5,
                    "heartbeat_at": T0 + 10 * k + 5,
                    "duration_s": 5.0,
                    "energy_kwh": wh / 1000,
                    "emissions_kg": wh / 1000 * 0.4,
                },
                metrics=[gp.MetricPoint("accuracy", 0.9)],
            )


def test_percent_shares_add_up_to_100_and_stay_within_a_unit_of_the_exact_share():
    exact = [56.461, 4.079, 6.010, 10.690, 22.760]  # the demo's energy by role, in %
    assert [round(x, 1) for x in exact] == [56.5, 4.1, 6.0, 10.7, 22.8]  # 100.1 one by one
    shares = percent_shares(exact)
    assert shares == [56.5, 4.1, 6.0, 10.7, 22.7]
    assert sum(Decimal(str(s)) for s in shares) == 100
    assert all(abs(s - x) < 0.1 for s, x in zip(shares, exact, strict=True))
    assert percent_shares([1, 1, 1], decimals=0) == [33.0, 33.0, 33.0]  # equal stay equal
    # two equal parts for one unit: as each rounds alone (7.545 tenths: 8 each)
    assert percent_shares([7208960, 262144, 131072, 131072, 9502720, 65536, 65792, 5200]) == [
        41.5, 1.5, 0.8, 0.8, 54.7, 0.4, 0.4, 0.0,
    ]  # fmt: skip
    assert percent_shares([0.0, 0.0]) is None  # no energy: no share to give
    assert percent_shares([1.0, float("nan")]) is None


def _md_shares(md: str) -> dict[str, str]:
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 7 and cells[-1].endswith(" %"):
            rows[cells[0]] = cells[-1]
    return rows


def test_the_price_tag_by_role_shows_shares_that_add_up_to_its_total_in_every_format(tmp_path):
    _study(tmp_path / "s.db", ROLES)
    report = build_report(tmp_path / "s.db", "s", metric="accuracy")
    md = render(report, "md", plots=False)
    shares = _md_shares(md)
    assert shares == {
        "trials (the search)": "10.4 %",
        "baselines": "20.5 %",
        "final model": "30.5 %",
        "learning curve": "38.6 %",
        "total": "100.0 %",
    }
    html = render(report, "html", plots=False)
    for share in shares.values():
        assert f"<td class=num>{share}</td>" in html
    tex = render(report, "latex", plots=False)
    paper = tex[tex.index("BEGIN PAPER") : tex.index("END PAPER")]
    (caption,) = re.findall(r"\\caption\{The same price tag by role[^\n]*", paper)
    # in its caption: a column more made the table wider than a paper's column
    assert caption.endswith(
        "; shares of the energy: trials (the search) 10.4\\%, baselines 20.5\\%, "
        "final model 30.5\\%, learning curve 38.6\\%.}"
    )
    given = [Decimal(s) for s in re.findall(r"([\d.]+)\\%", caption)]
    assert sum(given) == Decimal("100.0")


@pytest.mark.parametrize(
    ("plan", "size", "sentence"),
    [
        (ROLES[:1], 100, "x 100 examples per trial x 1 trial = 10.5 Wh."),
        (ROLES[:1], 1, "x 1 example per trial x 1 trial = 10.5 Wh."),
        (
            [("t1", "trial", 1.0), ("t2", "trial", 3.0)],
            100,
            "x 100 examples per trial x 2 trials = 4 Wh.",
        ),
    ],
)
def test_the_edh_sentence_counts_one_trial_and_one_example_in_the_singular(
    tmp_path, plan, size, sentence
):
    """The README's report quickstart (one trial with a dataset size) read "x 1 trials"."""
    _study(tmp_path / "s.db", plan, dataset_size=size)
    report = build_report(tmp_path / "s.db", "s", metric="accuracy")
    for fmt in ("md", "html"):
        (line,) = re.findall(r"E x D x H: [^\n<]*", render(report, fmt, plots=False))
        assert line.endswith(sentence), line


def _share_rows(table: str) -> list[tuple[int, str, Decimal]]:
    """(indent level, label, share) of each row of an FPO table, the header left out."""
    out = []
    for line in table.splitlines()[1:]:
        if not line.strip():
            break
        label = line.split("  ")[0] if not line.startswith(" ") else line.strip().split()[0]
        level = (len(line) - len(line.lstrip(" "))) // 2
        out.append((level, label, Decimal(line.rsplit(None, 1)[-1].rstrip("%"))))
    return out


def test_the_fpo_tables_shares_add_up_to_100_and_each_row_to_the_rows_under_it():
    """docs/fpo.md's model: its eight modules' shares read 100.1% (0.572% and 0.358% both
    rounded up), its ops' 99.9%, where the page says the table's rows add up to the total."""
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, groups=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    c = gp.count_fpo(model, torch.randn(8, 3, 32, 32))
    assert c.total == 45_793_040  # as docs/fpo.md shows it
    rows = _share_rows(c.table(depth=1))
    assert rows[0][0] == 0 and rows[0][2] == 100
    modules = [share for level, _, share in rows if level == 1]
    assert modules == [Decimal(x) for x in "31.5 4.9 0.6 0.3 62.1 0.3 0.3 0.0".split()]
    assert sum(modules) == 100
    ops = [share for _, _, share in _share_rows(c.table(by="op"))]
    assert sum(ops) == 100 and ops == sorted(ops, reverse=True)  # largest first, still

    # nested, with a module's own ops, a loss outside the model and the optimizer
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(7, 7), nn.Linear(7, 7)

        def forward(self, x):
            return self.b(self.a(x)) + x.tanh()  # its own ops: the tanh and the add

    net = nn.Sequential(Block(), nn.Sequential(nn.Linear(7, 3), nn.ReLU()), nn.Linear(3, 3))
    counted = gp.training_fpo(
        net, torch.randn(5, 7), loss_fn=lambda out: out.square().mean(), steps=1
    )
    table = counted.table()
    assert "(own ops)" in table and "(optimizer)" in table
    rows = _share_rows(table)
    assert sum(share for level, _, share in rows if level == 0) == 100
    for k, (level, label, share) in enumerate(rows):
        under = []
        for deeper, _, part in rows[k + 1 :]:
            if deeper <= level:
                break
            if deeper == level + 1:
                under.append(part)
        assert not under or sum(under) == share, (label, share, under)


def test_whatif_docs_name_the_units_its_text_prints(tmp_path, capsys):
    """docs/whatif.md said the saving reads in "mg, g, kg or t"; the page's own example prints
    µg (a run of 146 µWh: "56.7 µg CO2-eq (85 %)"), and a shorter one ng."""
    from greenprint.cli import main

    with gp.Ledger(tmp_path / "l.db") as led:
        led.start_run(
            gp.RunRecord(
                id="abcd1234ef",
                name="train",
                status="finished",
                started_at=T0,
                duration_s=0.3,
                energy_kwh=146e-9,
                pue=1.2,
                intensity_g_per_kwh=380.95,
                intensity_source="table:DE:2023",
                emissions_kg=146e-9 * 1.2 * 380.95 / 1000,
            )
        )
    args = ["whatif", "--run", "abcd", "--ledger", str(tmp_path / "l.db"), "--regions", "FR"]
    assert main(args) == 0
    (fr,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FR ")]
    assert "9.82 µg CO2-eq" in fr and "56.9 µg CO2-eq (85 %)" in fr
    page = (Path(__file__).parents[1] / "docs" / "whatif.md").read_text(encoding="utf-8")
    assert "saving in CO2-eq (from ng to t, as it fits" in page


def test_runs_stopped_by_one_budget_are_one_group_of_the_failed_runs_section(tmp_path):
    """cli.md's budget example run three times: the report listed three groups, one per run,
    because each error names its run ("run 977a7684 is over budget"), whose 8 hex digits split
    into other text and numbers; errors alike but for their run's id are one group, as errors
    alike but for their numbers are."""
    budget = (
        "BudgetExceeded: run {} is over budget: time {} s > budget_s 0.5 s; SIGTERM sent, "
        "which killed the command"
    )
    plan = [
        ("977a7684f1e1", budget.format("977a7684", "0.505"), "interrupted"),
        ("7aab4b1ad6cc", budget.format("7aab4b1a", "0.517"), "interrupted"),
        ("b980e19958c5", budget.format("b980e199", "0.505"), "interrupted"),
        ("efdde80458ed", "killed by SIGSEGV", "failed"),
        ("12345678abcd", "study 'capped' (at run 12345678) is over budget", "interrupted"),
    ]
    with gp.Ledger(tmp_path / "l.db") as led:
        for k, (run_id, error, status) in enumerate(plan):
            led.start_run(gp.RunRecord(id=run_id, name="train.py", study="s", started_at=T0 + k))
            led.flush(
                run_id,
                fields={"status": status, "error": error, "energy_kwh": 1e-6, "duration_s": 0.5},
            )
    report = build_report(tmp_path / "l.db", "s")
    md = render(report, "md", plots=False)
    section = md[md.index("## Failed") : md.index("## Runs")]
    items = [line for line in section.splitlines() if line.startswith("- **")]
    assert items == [
        "- **BudgetExceeded: run ID is over budget: time 0.505–0.517 s \\> budget\\_s 0.5 s; "
        "SIGTERM sent, which killed the command**: 3 trials interrupted: train.py (977a7684), "
        "train.py (7aab4b1a), train.py (b980e199)",
        "- **killed by SIGSEGV**: 1 trial failed: train.py (efdde804)",
        # alone in its group, an error keeps the id it names
        "- **study 'capped' (at run 12345678) is over budget**: 1 trial interrupted: "
        "train.py (12345678)",
    ], items
    (group, *_) = render_json_failures(report)
    assert group["error"].startswith("BudgetExceeded: run ID is over budget") and group["runs"] == [
        "977a7684f1e1",
        "7aab4b1ad6cc",
        "b980e19958c5",
    ]


def render_json_failures(report) -> list[dict]:
    import json

    return json.loads(render(report, "json", plots=False))["failures"]["groups"]


@pytest.mark.parametrize(
    ("source", "place"),
    [
        ("table:DE:2023 (Our World in Data / Ember)", "DE"),
        (
            "default:world:2023 (generation-weighted mean of the country table; set a region "
            "or intensity)",
            "unknown (no region set: world-average grid intensity)",
        ),
    ],
)
def test_the_hugging_face_cards_location_is_a_place_as_the_reports_card_says_it(
    tmp_path, source, place
):
    """The Trainer callback's card read `geographical_location: default:world:2023` (a run
    with no region: integrations.md's own example), where the report of the same run reads
    "unknown (no region set: ...)", and `table:DE:2023` where the report reads "DE"."""
    pytest.importorskip("huggingface_hub")
    from greenprint.integrations._hf_model_card import model_card_co2

    record = gp.RunRecord(
        id="abcd1234ef", name="bert", study="s", status="finished", started_at=T0,
        duration_s=1.0, energy_kwh=1e-3, emissions_kg=4.8e-4, intensity_source=source,
        metrics=(gp.MetricPoint("accuracy", 0.9),),
    )  # fmt: skip
    with gp.Ledger(tmp_path / "l.db") as led:
        led.start_run(record)
    report = build_report(tmp_path / "l.db", "s")
    assert report.model_card.geographical_location == place
    assert model_card_co2(record)["geographical_location"] == place
    given = model_card_co2(record, geographical_location="Quebec, Canada")
    assert given["geographical_location"] == "Quebec, Canada"


def test_the_energy_provenance_line_gives_whole_percents_that_add_up_to_100():
    """33.5% measured, 33.6% estimated and 32.9% of unknown origin read 34% + 34% + 33%."""
    from greenprint.analysis import ProvenanceSummary
    from greenprint.report._text import _share_text

    mixed = ProvenanceSummary(measured_kwh=0.335, estimated_kwh=0.336, unknown_kwh=0.329)
    assert _share_text(mixed) == (
        "energy: 33% measured by hardware counters, 34% estimated, 33% of unknown origin"
    )
    # equal parts keep equal shares (34% + 33% + 33% would say one third is more)
    thirds = ProvenanceSummary(measured_kwh=1.0, estimated_kwh=1.0, unknown_kwh=1.0)
    assert _share_text(thirds) == (
        "energy: 33% measured by hardware counters, 33% estimated, 33% of unknown origin"
    )
    nearly = ProvenanceSummary(measured_kwh=0.996, estimated_kwh=0.004)
    assert _share_text(nearly) == "energy: 100% measured by hardware counters, <1% estimated"
    some = ProvenanceSummary(measured_kwh=0.993, estimated_kwh=0.007)
    assert _share_text(some) == "energy: 99% measured by hardware counters, 1% estimated"
    assert _share_text(ProvenanceSummary()) == "energy: none recorded"


def test_a_price_tag_without_a_metric_says_how_to_identify_the_final_run():
    """The README's `price_tag(runs)` said "no metric given: the final run is not identified",
    and nothing of how, while the report of the same study names it (it chooses 'accuracy')."""
    from greenprint.analysis import price_tag

    scored = [
        gp.RunRecord(id=f"t{k}", name=f"t{k}", study="s", status="finished", energy_kwh=1.0,
                     metrics=(gp.MetricPoint("accuracy", 0.5 + k / 10),))
        for k in range(2)
    ]  # fmt: skip
    (note,) = [n for n in price_tag(scored).notes if n.startswith("no metric given")]
    assert note == (
        "no metric given: the final run is not identified (give metric=, one of the metrics "
        "logged: 'accuracy')"
    )
    assert price_tag(scored, metric="accuracy").final.name == "t1"
    unscored = [gp.RunRecord(id="u", name="u", study="s", status="finished", energy_kwh=1.0)]
    assert "no metric given: the final run is not identified (no run logged a metric)" in (
        price_tag(unscored).notes
    )


@pytest.mark.parametrize(
    ("sizes", "note"),
    [
        ((50_000, None, None, None), "3 of 4 trials have no dataset_size and are not in E x D x H"),
        ((100, None), "1 of 2 trials has no dataset_size and is not in E x D x H"),
    ],
)
def test_the_edh_note_names_e_x_d_x_h_as_its_sentence_does(sizes, note):
    """The README's report read "E x D x H: ... 3 of 4 trials have no dataset_size and are not
    in E*D*H", two spellings in one sentence (and "1 of 2 trials have ... are")."""
    from greenprint.analysis import price_tag

    runs = [
        gp.RunRecord(id=f"t{k}", name=f"t{k}", study="s", status="finished", energy_kwh=1.0,
                     dataset_size=size, metrics=(gp.MetricPoint("accuracy", 0.5),))
        for k, size in enumerate(sizes)
    ]  # fmt: skip
    assert price_tag(runs, metric="accuracy").edh.note == note


@pytest.mark.parametrize(
    ("pues", "said"), [((1.0, 1.2), "PUEs of 1-1.2"), ((1.2,), "a PUE of 1.2")]
)
def test_the_compute_statement_gives_several_pues_as_it_gives_several_intensities(
    tmp_path, pues, said
):
    """The README's study (one run at PUE 1.2, the others at 1) read "with grid intensities of
    380.9-480.6 g CO2-eq/kWh (...) and a PUE of 1, 1.2"."""
    with gp.Ledger(tmp_path / "l.db") as led:
        for k, pue in enumerate(pues):
            led.start_run(
                gp.RunRecord(
                    id=f"t{k}", name=f"t{k}", study="s", status="finished", started_at=T0 + k,
                    duration_s=1.0, energy_kwh=1e-3, pue=pue, intensity_g_per_kwh=400.0,
                    emissions_kg=4e-4 * pue, metrics=(gp.MetricPoint("accuracy", 0.5),),
                )
            )  # fmt: skip
    statement = build_report(tmp_path / "l.db", "s").compute_statement
    assert f"a grid intensity of 400 g CO2-eq/kWh (unrecorded) and {said}; and" in statement


def test_export_says_a_nested_run_is_contained_as_the_report_does(tmp_path, capsys):
    """integrations.md's GridSearchCV: the report's rows read each trial and fold `contained`
    true, the export null (the value recorded), so the rows whose `contained` is not true,
    summed as docs/report.md says, gave 5.04 µWh against the price tag's 4.37 µWh."""
    import csv
    import io
    import json

    from greenprint.cli import main

    plan = [  # name, parent, kWh
        ("search", None, 10.0),
        ("c0", "search", 4.0),
        ("c0-fold0", "c0", 2.0),
        ("c0-fold1", "c0", 1.5),
        ("c1", "search", 3.0),
        ("refit", "search", 1.0),
    ]
    with gp.Ledger(tmp_path / "l.db") as led:
        for k, (name, parent, kwh) in enumerate(plan):
            led.start_run(
                gp.RunRecord(
                    id=f"id-{name}", name=name, study="cv", status="finished",
                    parent_id=None if parent is None else f"id-{parent}", started_at=T0 + k,
                    duration_s=1.0, energy_kwh=kwh, emissions_kg=kwh * 0.4,
                    params={"C": k} if parent == "search" else {},
                    metrics=() if parent is None else (gp.MetricPoint("score", 0.5),),
                )
            )  # fmt: skip
    report = build_report(tmp_path / "l.db", "cv")
    assert report.price_tag.total.energy_kwh == 10.0
    by_report = {row.name: row.contained for row in report.runs}
    args = ["ledger", "export", "--ledger", str(tmp_path / "l.db"), "--study", "cv"]
    assert main([*args, "--format", "json"]) == 0
    items = json.loads(capsys.readouterr().out)["runs"]
    assert {i["name"]: i["contained"] for i in items} == by_report
    assert by_report == dict.fromkeys([n for n, _, _ in plan[1:]], True) | {"search": None}
    assert sum(i["energy_kwh"] for i in items if i["contained"] is not True) == 10.0
    assert main([*args, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["name"]: r["contained"] for r in rows} == {
        n: str(c) if c is not None else "" for n, c in by_report.items()
    }
