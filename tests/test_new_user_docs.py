"""A researcher with their own code who adopts greenprint from the docs pages, page by page.

``test_docs_examples.py`` runs every example as written; these tests run what a reader does
next: the same step in a slightly different situation (another study name, a ledger in a
subfolder, a flag typed wrong or left without its value, a short run, the command a warning
tells them to run), in an empty directory with a clean environment (no ``GREENPRINT_*``, no
config), through the installed ``greenprint`` command. Each test is one thing a stranger met:
bad input is one ``greenprint: error: ...`` line with exit status 2 and a hint that helps, a
help text says what the code does, and a command greenprint prints runs when pasted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env, configured_above
from conftest import require

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GREENPRINT = str(BIN / "greenprint")


def run_in(directory: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        list(args),
        cwd=directory,
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``greenprint: error:`` line of a refused command (exit status 2)."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("greenprint: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """The reader's project folder: empty, no greenprint configuration above it."""
    directory = tmp_path_factory.mktemp("docs-reader")
    found = configured_above(directory)
    require(not found, f"greenprint configuration above the temporary dir: {found}")
    return directory


def fresh(home: Path, name: str) -> Path:
    directory = home / name
    directory.mkdir()
    return directory


# ---------------------------------------------------------------- integrations.md: Optuna

OPTUNA_STUDY = """
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)
cb = GreenprintCallback(ledger="runs/optuna.db")
study = optuna.create_study(study_name="my quadratic")
study.optimize(cb.track(lambda t: (t.suggest_float("x", -10, 10) - 2) ** 2), n_trials=3,
               callbacks=[cb])
"""


def test_an_optuna_study_that_minimises_value_is_reported_lowest_first(home):
    """integrations.md: Optuna minimises ``value`` by default, and the report ranks it the way
    the study did (its trials record the direction), with a note; the reader's own study name
    (with a space) and ledger, no ``--mode`` given. The callback warned instead, and the
    report ranked the worst trial best unless given the command the warning named."""
    pytest.importorskip("optuna")
    directory = fresh(home, "optuna")
    (directory / "runs").mkdir()
    done = run_in(directory, sys.executable, "-c", OPTUNA_STUDY)
    assert done.returncode == 0, done.stderr
    assert "greenprint report" not in done.stderr
    report = run_in(
        directory, str(BIN / "greenprint"), "report", "--ledger", "runs/optuna.db",
        "--study", "my quadratic", "--no-plots", "--format", "md",
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    text = (directory / "greenprint-report" / "report.md").read_text()
    assert "Study **my quadratic**: 3 trials, ranked by **value** (lower is better)" in text
    assert "'value' is minimised, as the search that ran the trials minimised it" in text


# ---------------------------------------------------------------- the first command typed


@pytest.mark.parametrize("command", [[], ["ledger"]])
def test_a_command_typed_alone_shows_its_help(home, command):
    """`greenprint` alone (the first thing a reader types) and `greenprint ledger` printed
    their whole help as an error, 'greenprint: error: Usage: ...', its last line cut and glued
    to "(see 'greenprint --help')". They print the help as `--help` does (on stderr, exit
    status 2: no command was given)."""
    done = run_in(home, GREENPRINT, *command)
    assert done.returncode == 2
    assert "greenprint: error" not in done.stderr
    assert done.stderr == run_in(home, GREENPRINT, *command, "--help").stdout


# ---------------------------------------------------------------- cli.md: greenprint run


@pytest.mark.parametrize("option", ["--study", "--name", "--ledger", "--region"])
def test_an_option_left_without_its_value_is_refused_not_recorded(home, option):
    """`greenprint run --study -- python train.py` (the study name forgotten): click took
    `--` as the study's name, ran the command and recorded a run of study '--'. It is one
    error line naming the option, and nothing runs or is written."""
    directory = fresh(home, f"no-value{option}")
    done = run_in(directory, GREENPRINT, "run", option, "--", "touch", "ran")
    line = one_error_line(done)
    assert f"{option} needs a value" in line
    assert list(directory.iterdir()) == []


def test_run_help_says_where_the_study_comes_from(home):
    """`greenprint run --help` gave `--study TEXT  Study name.` with no default, beside
    `--ledger`'s 'GREENPRINT_LEDGER, config, ./greenprint.db'; a run without one lands in the
    study 'default', or GREENPRINT_STUDY's (which no page named)."""
    directory = fresh(home, "study-default")
    help_text = " ".join(run_in(directory, GREENPRINT, "run", "--help").stdout.split())
    assert "--study TEXT Study name [default: the parent run's, GREENPRINT_STUDY, config," in (
        help_text
    )
    assert "'default']" in help_text
    assert run_in(directory, GREENPRINT, "run", "-q", "--", "true").returncode == 0
    env = {"GREENPRINT_STUDY": "from-env"}
    assert run_in(directory, GREENPRINT, "run", "-q", "--", "true", env=env).returncode == 0
    with gp.Ledger(directory / "greenprint.db", create=False) as led:
        assert sorted(led.studies()) == ["default", "from-env"]


def test_run_help_gives_the_carbon_settings_their_order(home):
    """carbon.md: intensity, region and PUE are taken from the argument, then
    GREENPRINT_INTENSITY / GREENPRINT_REGION / GREENPRINT_PUE, then the config file, then the
    default. `greenprint run --help` said `--pue PUE|PRESET  Data-centre PUE [default: 1.0]`
    (with GREENPRINT_PUE=1.5 set, a run without --pue records 1.5) and gave --region and
    --intensity no default at all: each names the variable and the config file it reads."""
    help_text = " ".join(run_in(home, GREENPRINT, "run", "--help").stdout.split())
    help_text = help_text.split(" Options: ", 1)[1]
    for option, variable in (
        ("--region", "GREENPRINT_REGION"),
        ("--intensity", "GREENPRINT_INTENSITY"),
        ("--pue", "GREENPRINT_PUE"),
    ):
        described = help_text.split(f" {option} ", 1)[1].split(" --scope", 1)[0]
        default = described.split("[default: ", 1)[1].split("]", 1)[0]
        assert variable in default and "config" in default, (option, described)
    directory = fresh(home, "pue-env")
    env = {"GREENPRINT_PUE": "1.5"}
    assert run_in(directory, GREENPRINT, "run", "-q", "--", "true", env=env).returncode == 0
    with gp.Ledger(directory / "greenprint.db", create=False) as led:
        assert [r.pue for r in led.runs()] == [1.5]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["python", "train.py", "--lr", "0.1"], "train.py"),
        (["python3", "-u", "train.py"], "train.py"),
        (["python", "-m", "json.tool", "--help"], "json.tool"),
        (["python", "-c", "pass"], "python"),
        (["bash", "run.sh"], "run.sh"),
        (["true"], "true"),
    ],
)
def test_a_run_is_named_after_the_script_it_runs(home, command, name):
    """README/cli.md: `greenprint run --study sweep -- python train.py --lr 0.1`. Every such
    run was named 'python' (the program), so a study of five learning rates listed five runs
    'python' in `ledger ls` and the report. An interpreter's run is named after its script
    (or module); other programs keep their own name."""
    directory = fresh(home, f"named-{name}-{len(command)}")
    (directory / "train.py").write_text("print('training')\n")
    (directory / "run.sh").write_text("true\n")
    done = run_in(directory, GREENPRINT, "run", "-q", "--", *command)
    assert done.returncode == 0, done.stderr
    with gp.Ledger(directory / "greenprint.db", create=False) as led:
        (run,) = led.runs()
    assert run.name == name


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        ("train.py", "train.py is a file here, not a command on PATH: run python train.py"),
        ("./train.py", "./train.py is not executable: run python ./train.py (or chmod +x"),
    ],
)
def test_a_script_given_as_the_command_gets_a_hint(home, command, hint):
    """cli.md: `greenprint run [OPTIONS] -- CMD...`. A reader who writes their script as the
    command (`-- train.py`, `-- ./train.py` without its execute bit) got 'command not found:
    train.py' for a file right there; the line says how to run it."""
    directory = fresh(home, f"script-{len(command)}")
    (directory / "train.py").write_text("print('training')\n")
    line = one_error_line(run_in(directory, GREENPRINT, "run", "--", command, "--lr", "0.1"))
    assert hint in line
    assert sorted(p.name for p in directory.iterdir()) == ["train.py"]


def test_a_ledger_set_in_the_project_config_is_one_ledger_for_the_project(home):
    """ledger.md: with no location, greenprint uses `ledger = ...` in the nearest
    greenprint.toml. A relative path there was taken from the working directory: the same
    project file put `runs.db` in every folder a command ran from, while carbon.md's relative
    CSV path in that file is relative to the file. Both are relative to the file now."""
    project = fresh(home, "project")
    (project / "greenprint.toml").write_text('ledger = "runs.db"\nstudy = "proj"\n')
    (project / "src").mkdir()
    done = run_in(project / "src", GREENPRINT, "run", "-q", "--", "true")
    assert done.returncode == 0, done.stderr
    assert not (project / "src" / "runs.db").exists()
    listed = run_in(project, GREENPRINT, "ledger", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["study"] for r in json.loads(listed.stdout)] == ["proj"]


# ---------------------------------------------------------------- ledger.md


def test_ledger_ls_gives_a_short_run_its_duration(home):
    """`greenprint ledger ls` wrote a 40 ms run's duration as `0.0s` (a run that took no time),
    where the printed price tag and the report say `0.04 s`."""
    directory = fresh(home, "ls-short")
    with gp.track("short", study="quick", ledger=directory / "l.db") as run:
        sum(i * i for i in range(200_000))
    assert 0 < run.duration_s < 1
    done = run_in(directory, GREENPRINT, "ledger", "ls", "--ledger", "l.db")
    assert done.returncode == 0, done.stderr
    row = done.stdout.splitlines()[1].split()
    assert row[6:8] == [f"{run.duration_s:.2g}", "s"] != ["0.0", "s"]  # "0.04 s", as the price tag


def test_a_ledger_in_a_folder_says_the_folder_must_exist(home):
    """ledger.md lists `runs/ledger.db` as a location; in a fresh project `--ledger
    runs/ledger.db` is refused (greenprint creates no folders). The page says so, and the
    refusal is one line naming the folder; once it exists the same command works."""
    row = next(line for line in (DOCS / "ledger.md").read_text().splitlines() if "runs/" in line)
    assert "must exist" in row
    directory = fresh(home, "subfolder")
    line = one_error_line(
        run_in(directory, GREENPRINT, "run", "--ledger", "runs/ledger.db", "--", "true")
    )
    assert f"directory {directory / 'runs'} does not exist" in line
    (directory / "runs").mkdir()
    done = run_in(directory, GREENPRINT, "run", "-q", "--ledger", "runs/ledger.db", "--", "true")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        ["report"],
        ["ledger", "ls"],
        ["ledger", "show"],
        ["ledger", "export"],
        ["whatif"],
        ["greener"],
    ],
)
def test_every_ledger_option_says_its_default(home, command):
    """Every command that reads or writes the configured ledger says where that is: `greener`
    said only `--ledger PATH  Ledger to record into.` (and `--study` no default), though it
    records where `gp.track` does, and takes a URL too."""
    help_text = " ".join(run_in(home, GREENPRINT, *command, "--help").stdout.split())
    assert (
        "--ledger PATH|URL Ledger file or database URL [default: GREENPRINT_LEDGER, config, "
        "./greenprint.db]" in help_text
    )


# ---------------------------------------------------------------- distributed.md: torchrun

TRAIN_RANK = """
import greenprint as gp

with gp.track("train") as run:
    sum(i * i for i in range(200_000))
    run.log(accuracy=0.9)
"""


def test_the_torchrun_example_records_the_job_the_page_names(home):
    """distributed.md: the job key is `torchrun:<TORCHELASTIC_RUN_ID>` ('give torchrun
    --rdzv-id'), and its example ran `torchrun --nproc-per-node 2 --rdzv-id exp7 train.py`.
    On one node torchrun replaces that id with a random one (no rendezvous endpoint given), so
    the job was `torchrun:<uuid>`, not exp7. The page's command, run as written, records both
    ranks under the job it names, rank 0 metering the node."""
    require(shutil.which("torchrun", path=str(BIN)) is not None, "torchrun is not installed")
    text = (DOCS / "distributed.md").read_text()
    (example,) = re.findall(r"^\$ (.*torchrun .*?)\s+#", text, re.M)
    named = re.search(r"GREENPRINT_JOB_ID=(\S+)", example)  # the job key, as the page says
    job = named.group(1) if named else "torchrun:" + re.findall(r"--rdzv-id (\S+)", example)[0]
    directory = fresh(home, "torchrun")
    (directory / "train.py").write_text(TRAIN_RANK)
    done = run_in(directory, "bash", "-c", example)
    assert done.returncode == 0, done.stderr
    with gp.Ledger(directory / "greenprint.db", create=False) as led:
        runs = sorted(led.runs(), key=lambda r: r.local_rank)
    assert [(r.job_id, r.local_rank, r.node_meter) for r in runs] == [
        (job, 0, True),
        (job, 1, False),
    ]


# ---------------------------------------------------------------- whatif.md and the others


def _python_blocks(page: Path):
    text = page.read_text()
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        yield text[: match.start()].count("\n") + 1, match.group(1)


def test_examples_import_only_public_names():
    """whatif.md imported `RunRecord` from `greenprint._records`, a private module, where
    ledger.md and distributed.md use the public `gp.RunRecord`: a reader copies the import."""
    private = re.compile(r"^\s*(?:from|import)\s+greenprint(?:\.\w+)*\._\w+", re.M)
    found = [
        f"{page.name}:{line}"
        for page in sorted(DOCS.glob("*.md"))
        for line, code in _python_blocks(page)
        if private.search(code)
    ]
    assert found == []


# ---------------------------------------------------------------- fpo.md and greener.md


def test_the_fpo_command_on_the_quick_start_model_counts_what_the_page_says(home):
    """fpo.md: `count_fpo` counts forward and backward by default (the Quick start's `c.total`),
    `greenprint fpo` an inference unless `--backward`: the page gives both counts for the Quick
    start's model in `models.py`, and the command prints them. A factory name typed wrong
    (`small_cn`) said only that 'models' has no attribute 'small_cn'; it now names the nearest
    functions of the module (the same loader serves `greenprint greener`)."""
    text = (DOCS / "fpo.md").read_text()
    _, quick_start = next(_python_blocks(DOCS / "fpo.md"))
    model = quick_start.split("model = ", 1)[1].split("\nc = ", 1)[0]
    directory = fresh(home, "fpo")
    (directory / "models.py").write_text(
        f"from torch import nn\n\n\ndef small_cnn():\n    return {model}\n"
    )
    section = text.split("## Command line", 1)[1]
    claimed = re.search(r"`greenprint fpo\s+models:small_cnn --input-shape 8,3,32,32` counts "
                        r"([\d,]+) FPO.*?with `--backward` ([\d,]+)", section, re.S)  # fmt: skip
    assert claimed, "the Command line section gives the command's counts"
    inference, training = (int(n.replace(",", "")) for n in claimed.groups())
    # the API's default, which test_docs_examples checks (one CLI run of torch is enough here)
    assert f"c.total            # {training}:" in quick_start
    done = run_in(directory, GREENPRINT, "fpo", "models:small_cnn", "--input-shape", "8,3,32,32",
                  "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == inference
    line = one_error_line(
        run_in(directory, GREENPRINT, "fpo", "models:small_cn", "--input-shape", "1,3")
    )
    assert "'models' has no attribute 'small_cn'; did you mean 'small_cnn'" in line


# ---------------------------------------------------------------- integrations.md: options


def test_an_integration_option_typed_wrong_names_the_option_meant():
    """integrations.md: 'an unknown option ... is refused when the callback is made'. The
    Optuna callback's message for `ledgr=` listed the run options without `ledger` (the
    callback's own argument), and the Lightning and Hugging Face callbacks' said only
    "unknown option(s) ['studdy'] for a run": each names the option meant."""
    optuna = pytest.importorskip("greenprint.integrations.optuna")
    with pytest.raises(
        gp.ConfigError, match=r"unknown option\(s\) \['ledgr'\]; did you mean 'ledger'"
    ):
        optuna.GreenprintCallback(ledgr="x.db")
    # the Lightning and Hugging Face callbacks check their options through the same function
    # (importing Lightning here would take seconds)
    from greenprint.integrations._common import check_run_options

    with pytest.raises(gp.ConfigError, match=r"\['studdy'\]; did you mean 'study'"):
        check_run_options({"studdy": "s"}, where="GreenprintCallback", name="fit", allowed=None)


# ---------------------------------------------------------------- report.md: greenprint demo


def test_the_demo_refusing_a_ledger_names_options_its_help_lists(home):
    """report.md: `greenprint demo --ledger PATH` records into PATH 'if that ledger has no
    study digits-demo yet'. A second demo into the same ledger is refused with 'give a new
    --ledger or --study', but `--study` was hidden from `greenprint demo --help`."""
    directory = fresh(home, "demo-again")
    with gp.track("old", study="digits-demo", ledger=directory / "d.db"):
        pass
    line = one_error_line(run_in(directory, GREENPRINT, "demo", "--ledger", "d.db", "--quiet"))
    assert "already holds a study 'digits-demo'" in line
    named = re.findall(r"--[a-z][a-z-]*", line.split("digits-demo'", 1)[1])
    assert named == ["--ledger", "--study"]
    help_text = " ".join(run_in(directory, GREENPRINT, "demo", "--help").stdout.split())
    for option in named:
        assert f" {option} " in help_text, option
    assert "--study TEXT Study to record into (a new one in a ledger given with --ledger)." in (
        help_text
    )
    with gp.Ledger(directory / "d.db", create=False) as led:
        assert [r.name for r in led.runs()] == ["old"]  # nothing added
    assert not (directory / "greenprint-report").exists()  # no empty report folder left


def test_greener_checks_its_output_folder_before_measuring(home):
    """greener.md: bad input is one line and exit status 2. `--out` naming a file measured
    every variant, recorded the comparison in the ledger, printed the table and only then
    failed ('cannot write to ...: File exists'), exit 2 after the work was done. It is
    checked before any model is built, as `greenprint report` checks its output first."""
    directory = fresh(home, "greener-out")
    (directory / "models.py").write_text(
        "def trained():\n    raise SystemExit('built')\n\n"
        "def batches():\n    raise SystemExit('loaded')\n"
    )
    (directory / "notes.txt").write_text("mine\n")
    done = run_in(directory, GREENPRINT, "greener", "models.py:trained", "--data",
                  "models.py:batches", "--out", "notes.txt")  # fmt: skip
    line = one_error_line(done)
    assert "notes.txt exists and is not a directory" in line
    assert sorted(p.name for p in directory.iterdir()) == ["models.py", "notes.txt"]
    assert (directory / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("option", "value"), [("--out", "notes.txt"), ("--min-time", "-1"), ("--pue", "0.5")]
)
def test_greener_refuses_bad_input_before_importing_torch(home, option, value):
    """Bad input to `greenprint greener` is refused before torch is imported: saying that
    `--out` names a file took torch's import first (2 s of CPU), the model not yet built."""
    directory = fresh(home, f"greener-no-torch{option}")
    (directory / "notes.txt").write_text("mine\n")
    code = (
        "import sys\nfrom greenprint.cli import main\n"
        "rc = main(['greener', 'models.py:trained', '--data', 'models.py:batches', "
        f"{option!r}, {value!r}])\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    done = run_in(directory, sys.executable, "-c", code)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert done.stderr.startswith("greenprint: error: "), done.stderr


def test_log_report_with_the_ledger_first_says_the_order(home, monkeypatch):
    """report.md builds a report as `build_report("report-demo.db", "sweep")`, ledger first;
    integrations.md logs one to MLflow as `log_report("mlflow-demo", "greenprint.db")`, study
    first. A reader who kept report.md's order got 'no ledger at .../sweep' (the study taken
    for the ledger); the error says which comes first, before any MLflow run is needed."""
    gp_mlflow = pytest.importorskip("greenprint.integrations.mlflow")
    directory = fresh(home, "mlflow-order")
    with gp.track("t", study="sweep", ledger=directory / "report-demo.db") as run:
        run.log(accuracy=0.9)
    monkeypatch.chdir(directory)
    with pytest.raises(gp.ConfigError, match=r"log_report\('sweep', 'report-demo.db'\)"):
        gp_mlflow.log_report("report-demo.db", "sweep")
    assert sorted(p.name for p in directory.iterdir() if "mlruns" in p.name) == []
