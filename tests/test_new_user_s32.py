"""What a new user found reading ``make demo``'s output, the README and ``--help`` (session 32).

Each test runs greenprint as a stranger does: in an empty directory with a clean environment
(``_report_cli.run_in``), reading what the command prints.
"""

from __future__ import annotations

import re
import sys

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, cli_report, empty_home, report_text, run_in


@pytest.mark.parametrize("columns", ["80", "200"])
def test_every_command_list_gives_each_summary_whole(
    tmp_path_factory: pytest.TempPathFactory, columns: str
):
    """``greenprint ledger --help`` listed its commands with summaries cut short by click:
    'List runs: id, study, name, status, start, duration, energy,...', 'Merge the ledgers INPUTS
    (per-node SQLite files, or URLs)...', 'Give runs that have ended a ROLE afterwards, without
    running...', 'Show everything about one run (RUN_ID: full id or a unique...'. Each group's
    list gives every command with a whole summary, at 80 columns as at 200."""
    home = empty_home(tmp_path_factory, "s32-help")
    env_columns = {"COLUMNS": columns}
    for group in ([], ["ledger"]):
        done = run_in(home, GREENPRINT, *group, "--help", env={**clean_env(), **env_columns})
        assert done.returncode == 0, done.stderr
        listing = done.stdout.split("Commands:\n", 1)[1]
        names = re.findall(r"^  (\S+)", listing, re.M)
        assert len(names) >= 5, listing
        assert "..." not in listing.replace("part...", ""), listing  # click's cut marks
    ledger = run_in(home, GREENPRINT, "ledger", "--help", env={**clean_env(), **env_columns})
    for name, summary in {
        "ls": "List runs: cost, status and score (--tree: nested, with roles).",
        "show": "Show everything about one run (its id, or 4+ characters of it).",
        "merge": "Merge ledgers (per-node SQLite files, or URLs) into OUT.",
        "set-role": "Give runs that have ended a role (baseline, final, part...).",
        "export": "Export runs (all, or one study's) as CSV or JSON.",
    }.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(summary)}$", ledger.stdout, re.M), (
            ledger.stdout
        )


COMMANDS = [
    ["run"], ["report"], ["fpo"], ["hardware"], ["intensity"], ["whatif"], ["greener"],
    ["demo"], ["ledger", "ls"], ["ledger", "show"], ["ledger", "export"], ["ledger", "merge"],
    ["ledger", "set-role"],
]  # fmt: skip


def test_no_help_page_is_one_wall_of_text(tmp_path_factory: pytest.TempPathFactory):
    """``greenprint ledger export --help`` was one sentence of about 260 words (role_inferred,
    parent_inferred, contained and the sum that gives the price tag, in nested parentheses).
    Each field has its paragraph now, and no command's description has a paragraph of over
    120 words (run's, the longest, has 118)."""
    home = empty_home(tmp_path_factory, "s32-walls")
    env = {**clean_env(), "COLUMNS": "200"}
    for command in COMMANDS:
        done = run_in(home, GREENPRINT, *command, "--help", env=env)
        assert done.returncode == 0, done.stderr
        description = done.stdout.split("\nOptions:", 1)[0]
        paragraphs = [p.split() for p in description.split("\n\n")]
        longest = max(len(p) for p in paragraphs)
        assert longest <= 120, (command, longest)
    export = run_in(home, GREENPRINT, "ledger", "export", "--help", env=env).stdout
    starts = [p.strip().split(":", 1)[0] for p in export.split("\n\n")]
    assert {"role", "parent_id", "contained"} <= set(starts), export


STUDY = """\
import greenprint as gp

with gp.track("base", study="s", role="baseline") as run:
    run.log(accuracy=0.5)
for k, lr in enumerate((0.1, 0.01)):
    with gp.track(f"trial-{k}", study="s", params={"lr": lr}) as run:
        sum(i * i for i in range(200_000))
        run.log(accuracy=0.8 + k / 10)
"""


def test_the_html_reports_links_reach_every_section(tmp_path_factory: pytest.TempPathFactory):
    """The HTML report's links under its title (Price tag, Figures, Efficiency, Greener
    variants, Runs, Model card, Compute statement) left out 'What if it ran elsewhere?' and
    'Notes', which every demo report has: a reader of the long page found them by scrolling.
    Every section has its link, in the page's order."""
    home = empty_home(tmp_path_factory, "s32-nav")
    (home / "study.py").write_text(STUDY, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    done = run_in(
        home, GREENPRINT, "report", "--study", "s", "--format", "html", "--no-plots",
        "--out", "rep",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = (home / "rep" / "report.html").read_text(encoding="utf-8")
    nav = re.search(r"<nav>(.*?)</nav>", page, re.S)
    assert nav is not None
    links = re.findall(r'<a href="#([^"]+)">', nav.group(1))
    sections = re.findall(r'<section id="([^"]+)"><h2>', page)
    assert {"whatif", "notes"} <= set(sections), sections
    assert links == sections, (links, sections)


def test_report_help_names_what_the_report_holds(tmp_path_factory: pytest.TempPathFactory):
    """``greenprint report --help`` listed the price tag by status, EVP, the Pareto front, the
    learning curve, power over time, the model card and the compute statement: not the price
    tag by role, the efficiency table, the greener variants, the what-if table nor the runs,
    which the demo's report has (its sections' links: Efficiency, Greener variants, What if,
    Runs)."""
    home = empty_home(tmp_path_factory, "s32-report-help")
    done = run_in(home, GREENPRINT, "report", "--help", env={**clean_env(), "COLUMNS": "200"})
    text = " ".join(done.stdout.split("Options:", 1)[0].split())
    for part in (
        "by run status and by role",
        "efficiency (score per mWh and per GFPO)",
        "greener variants",
        "in other regions",
        "every run",
        "model-card block",
        "compute statement",
    ):
        assert part in text, (part, text)


def test_report_of_a_ledger_of_several_studies_names_the_option_to_choose_one(
    tmp_path_factory: pytest.TempPathFactory,
):
    """A new user's second study in ./greenprint.db: `greenprint report` refuses to guess, in
    one line that names --study (it said only 'choose one:'), and writes nothing."""
    home = empty_home(tmp_path_factory, "s32-studies")
    for study in ("mnist", "cifar"):
        script = f"import greenprint as gp\nwith gp.track('r', study={study!r}) as r:\n"
        (home / f"{study}.py").write_text(script + "    r.log(accuracy=0.5)\n")
        assert run_in(home, sys.executable, f"{study}.py").returncode == 0
    done = run_in(home, GREENPRINT, "report", "--format", "md")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "holds 2 studies; choose one with --study: 'cifar', 'mnist'" in done.stderr
    assert not list(home.glob("greenprint-report*"))
    done = run_in(home, GREENPRINT, "report", "--format", "md", "--study", "cifar")
    assert done.returncode == 0, done.stderr


OPTUNA_TWICE = """\
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)
cb = GreenprintCallback(study="tune")


def objective(trial):
    x = trial.suggest_float("x", -10, 10)
    return (x - 2) ** 2


study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=int(__import__("sys").argv[1])))
study.optimize(cb.track(objective), n_trials=3, callbacks=[cb])
"""


def test_a_search_run_twice_names_its_final_run_apart_from_its_namesake(
    tmp_path_factory: pytest.TempPathFactory,
):
    """An in-memory Optuna study re-created by running the script again: the greenprint study
    holds two trial-0..trial-2 (both searches cost energy, both are counted). The report's
    'final run: trial-1' did not say which of the two: each place it names the final run
    gives its id too."""
    from integrations._frameworks import need_installed

    need_installed("optuna", "optuna")
    home = empty_home(tmp_path_factory, "s32-twice")
    (home / "tune.py").write_text(OPTUNA_TWICE, encoding="utf-8")
    for seed in ("1", "2"):
        done = run_in(home, sys.executable, "tune.py", seed)
        assert done.returncode == 0, done.stderr
    report = cli_report(home)
    final = next(r for r in report["runs"] if r["is_final"])
    named = f"{final['name']} (run {final['id'][:8]})"
    assert f"final run: {named}, " in " ".join(report["notes"])
    assert (
        f"The final model (run “{final['name']}”, id {final['id'][:8]},"
        in (report["compute_statement"])
    )
    # one bracket: "Final run trial-2 (run c3f41d3c; the finished trial ...)"
    assert f"Final run {final['name']} (run {final['id'][:8]}; " in report_text(home, "md")
    # the namesake the id tells it from: the other search's trial of that name
    (other,) = [r for r in report["runs"] if r["name"] == final["name"] and not r["is_final"]]
    assert other["id"][:8] != final["id"][:8]
