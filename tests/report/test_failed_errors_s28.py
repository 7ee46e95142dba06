"""The Markdown, HTML and LaTeX reports say why runs failed, not only how many.

A sweep is tracked as users track one (``gp.track`` around each trial, exceptions raised inside;
``greenprint run -- python script.py`` whose script fails): each error's first line is listed
once with the runs it ended (errors alike but for their numbers are one), escaped for each
format, and capped (a sweep of hundreds of failures is not hundreds of items).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser

import pytest

import greenprint as gp
from greenprint.report import build_report, render, write_report
from greenprint.report._escape import html_text, latex_text, markdown_text
from greenprint.report._failures import ERROR_LINE_CHARS, FAILURE_GROUPS_SHOWN, failures

#: An error text with every character a format could read as markup, a tab; and what TeX
#: would typeset as quotes (``q`` as “q“, '' as ”, ,, as „).
HOSTILE = "<b>boom</b> | `x` $y$ 50% {a_b} \\ & # ^ ~ **z** [l](u)\tend ``q`` '' a,,b"
#: Its first line as the reports show it (the tab a space, the surrogate's byte escaped).
SHOWN = "ValueError: " + HOSTILE.replace("\t", " ") + " \\xff"
LONG = "ValueError: " + "x" * 3000
OTHERS = 12  # distinct errors beyond the listed groups' cap (FAILURE_GROUPS_SHOWN)


def _track(db, name, study, exc=None, *, role=None, **params):
    try:
        with gp.track(name, study=study, ledger=db, role=role, sample_interval_s=0.5) as run:
            if params:
                run.set(params=params)
            if exc is not None:
                raise exc
            run.log(acc=0.5)
    except (Exception, KeyboardInterrupt) as e:  # the sweep goes on, as a search's loop does
        assert e is exc


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One study tracked with gp.track: 7 trials out of memory (each its own size), a hostile,
    a multi-line and a very long error, one interrupted, a trial failed by its fold, more
    distinct errors than the section lists, finished trials and a baseline."""
    root = tmp_path_factory.mktemp("failed")
    db = str(root / "gp.db")
    _track(db, "majority", "s", None)
    for k in range(14):
        exc = None
        if k % 2:
            exc = RuntimeError(
                f"CUDA out of memory. Tried to allocate {k}.00 GiB (GPU 0; 79.15 GiB total)\n"
                "See documentation for Memory Management"
            )
        _track(db, f"trial-{k}", "s", exc, lr=10.0 ** -(k % 3), batch=512 if k % 2 else 64)
    # a lone surrogate (a file name that is not UTF-8): the ledger keeps its byte as "\xff"
    _track(db, "hostile", "s", ValueError(HOSTILE + " \udcff\nsecond line"), lr=0.5)
    _track(db, "long", "s", ValueError("x" * 3000))
    _track(db, "stopped", "s", KeyboardInterrupt())
    # a trial that records no error of its own: its fold's is the reason
    trial = gp.track("by-its-fold", study="s", ledger=db).start()
    _track(db, "fold-0", "s", None, role="part")
    _track(db, "fold-1", "s", KeyError("label column missing"), role="part")
    trial.stop(status="failed")
    for k in range(OTHERS):
        _track(db, f"other-{k}", "s", OSError(f"disk {'abcdefghijklmnop'[k]} is gone"))
    _track(db, "fine", "ok", None)
    report = build_report(db, "s", metric="acc")
    return report, write_report(report, root / "out", plots=False), db


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_markdown_lists_each_error_once_with_its_runs(sweep):
    report, files, _ = sweep
    md = files["md"].read_text(encoding="utf-8")
    part = _section(md, "## Failed and interrupted runs (", "## Runs")
    listed = 7 + 3 + 1 + OTHERS  # out of memory, hostile/long/interrupted, the fold's, others
    assert f"## Failed and interrupted runs ({listed})" in part
    items = [line for line in part.splitlines() if line.startswith("- ")]
    assert len(items) == FAILURE_GROUPS_SHOWN  # capped, the rest counted on one line
    oom = items[0]  # the most runs first; the sizes that differ as their range
    assert oom.startswith(
        "- **RuntimeError: CUDA out of memory. Tried to allocate 1.00–13.00 GiB (GPU 0; "
        "79.15 GiB total)…**: 7 trials failed: trial-1 ("
    )
    assert "and 2 more; all with batch=512" in oom  # 5 named; what they shared
    assert "Memory Management" not in md  # the first line only
    # 17 errors (out of memory, 3 of their own, the fold's, 12 others): 10 listed
    assert "… and 7 other errors (7 runs): the JSON report has every run's error." in part
    # the hostile text is shown as written: escaped, on one line, no markup of its own
    hostile = next(line for line in items if "hostile (" in line)
    assert markdown_text(SHOWN) + "…**" in hostile
    assert "<b>" not in md and "second line" not in md
    assert len(re.findall(r"(?<!\\)[|`*]", hostile.split("**: ")[0][4:])) == 0
    fold = next(line for line in items if "by-its-fold" in line)
    assert fold.startswith("- **KeyError: 'label column missing'**: 1 trial failed")
    assert "the error of its part fold-1" in fold
    # the sweep's other, finished study has no such section
    assert "## Failed" not in render(build_report(sweep[2], "ok"), "md", plots=False)


def test_a_long_error_is_shortened_an_interruption_named_and_the_json_keeps_all(sweep):
    report, files, _ = sweep
    md = files["md"].read_text(encoding="utf-8")
    groups = failures(report).groups
    long = next(g for g in groups if g.error and g.error.startswith("ValueError: xx"))
    assert len(long.error) == ERROR_LINE_CHARS and long.error.endswith("…")
    stopped = next(g for g in groups if g.runs[0].name == "stopped")
    assert stopped.error == "KeyboardInterrupt"
    assert "1 trial interrupted: stopped" in md.replace("\\", "")
    # the JSON report keeps every error whole
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    errors = {r["name"]: r["error"] for r in data["runs"]}
    assert errors["long"] == LONG[:2000] and "See documentation" in errors["trial-1"]
    # a report built in memory from a run that was never saved may hold a lone surrogate
    rows = tuple(
        dataclasses.replace(r, error="OSError: bad name b'\udcff.csv'") if r.name == "long" else r
        for r in report.runs
    )
    for fmt in ("md", "html", "latex"):
        text = render(dataclasses.replace(report, runs=rows), fmt, plots=False)
        assert "OSError: bad name b" in text.encode("utf-8").decode("utf-8"), fmt


class _Strict(HTMLParser):
    """Every opened element closed in order (void elements aside)."""

    VOID = {"meta", "br", "img", "input", "hr", "link", "path", "rect", "line", "circle"}

    def __init__(self):
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag, tag


def test_html_shows_the_errors_escaped_and_linked(sweep):
    _, files, _ = sweep
    html = files["html"].read_text(encoding="utf-8")
    assert '<a href="#failed">Failed and interrupted runs</a>' in html
    part = _section(html, '<section id="failed">', "</section>")
    assert part.count("<li>") == FAILURE_GROUPS_SHOWN
    first = html_text(SHOWN) + "…"
    assert f"<code>{first}</code>" in part
    assert "<b>" not in html
    parser = _Strict()
    parser.feed(part + "</section>")
    assert parser.open == []
    # the section sits before the runs table: the runs table is still the page's last table
    assert html.index('id="failed"') < html.index('<section id="runs">')


@pytest.mark.slow
def test_latex_lists_the_errors_and_compiles(sweep, require_component, tmp_path):
    _, files, _ = sweep
    tex = files["latex"].read_text(encoding="utf-8")
    # outside the part pasted into a paper
    assert tex.index("END PAPER") < tex.index(r"\section*{Failed and interrupted runs (")
    hostile = latex_text(SHOWN)
    assert r"\texttt{" + hostile in tex.replace(r"\allowbreak{}", "")
    assert "<b>" not in tex and "50% " not in tex
    pdflatex = shutil.which("pdflatex")
    require_component(pdflatex is not None, "pdflatex is not installed")
    assert pdflatex is not None
    work = tmp_path / "tex"
    shutil.copytree(files["latex"].parent, work)
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
        cwd=work,
        capture_output=True,
        text=True,
        errors="replace",  # pdflatex echoes T1 bytes (a µ of µWh as 0xb5), not UTF-8
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    log = (work / "report.log").read_text(encoding="utf-8", errors="replace")
    # a 3000-character error breaks across lines, and typewriter lines are ragged
    overfull = re.findall(r"Overfull \\hbox.*\n(.*)", log)
    assert not [line for line in overfull if "lmtt" in line or "cmtt" in line], overfull
    # the PDF shows the error as raised: backticks, two quotes, two commas (not TeX's quotes)
    pdftotext = shutil.which("pdftotext")
    require_component(pdftotext is not None, "pdftotext is not installed (poppler-utils)")
    assert pdftotext is not None
    text = subprocess.run(
        [pdftotext, str(work / "report.pdf"), "-"], capture_output=True, text=True, timeout=60
    ).stdout
    flat = "".join(text.split())
    start = flat.index("ValueError:<b>boom</b>")
    shown = flat[start : flat.index("...", start)]  # \ldots
    assert shown.endswith("end``q``’’a,,b\\xff"), shown


def test_greenprint_run_of_a_failing_script_shows_the_scripts_exception(tmp_path, monkeypatch):
    """``greenprint run -- python train.py`` whose script raises inside gp.track: the report
    gives the exception, not only the wrapper's "exit status 1"."""
    from greenprint.cli import main

    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(
        "import greenprint as gp\n"
        "with gp.track('fit', study='job'):\n"
        "    raise MemoryError('Unable to allocate 3.2 GiB for an array')\n",
        encoding="utf-8",
    )
    db = str(tmp_path / "gp.db")
    argv = ["run", "-q", "--study", "job", "--ledger", db]
    assert main([*argv, "--name", "job-1", "--", sys.executable, str(script)]) == 1
    # given role trial, its script's run is its part: the part's exception is the reason
    assert main([*argv, "--name", "job-2", "--role", "trial", "--", sys.executable, str(script)])
    md = render(build_report(db, "job"), "md", plots=False)
    part = _section(md, "## Failed runs (2)", "## Runs")
    assert (
        "- **MemoryError: Unable to allocate 3.2 GiB for an array**: 2 trials failed: fit (" in part
    )
    assert re.search(r"job-2 \([0-9a-f]{8}, the error of its part fit\)", part), part
    # the sweep around the first failed because of it; the second's own error says less
    items = "\n".join(line for line in part.splitlines() if line.startswith("- "))
    assert "exit status 1" not in part and "job-1" not in items
    # the price tag counts it as failed: the lead says so, by name
    assert "The price tag counts 4 runs as failed: the 2 listed here, and 1 part of " in part
    assert "fit (in job-2); and 1 run around listed runs that ended with them: job-1." in part


def test_the_notebook_view_of_a_report_lists_the_errors(sweep):
    """A Jupyter cell whose last line is the report shows why runs failed, as the HTML does."""
    report, _, _ = sweep
    markup = report._repr_html_()
    part = markup[markup.index("<strong>Failed and interrupted runs (") :]
    part = part[: part.index("</ul>")]
    assert part.count("<li>") == FAILURE_GROUPS_SHOWN
    assert (
        "<li><code>RuntimeError: CUDA out of memory. Tried to allocate 1.00–13.00 GiB (GPU 0; "
        "79.15 GiB total)…</code>: 7 trials failed: trial-1 (" in part
    )
    assert f"<code>{html_text(SHOWN)}…</code>" in part and "<b>" not in markup
    assert "… and 7 other errors (7 runs)" in markup
    # before the runs table, as in the HTML report
    assert markup.index("Failed and interrupted runs") < markup.index("runs (")


#: A trial of a user's sweep (argv: ledger, trial name, sweep name or ""), the sweep around
#: it, killed with SIGKILL once what they measured is flushed.
KILLED = textwrap.dedent(
    """
    import contextlib, os, signal, sys, time
    import greenprint as gp
    db, name, sweep = sys.argv[1:]
    kw = dict(study="k", ledger=db, sample_interval_s=0.2, flush_interval_s=0.4)
    with contextlib.ExitStack() as stack:
        ids = [stack.enter_context(gp.track(sweep, role="sweep", **kw)).id] if sweep else []
        ids.append(stack.enter_context(gp.track(name, role="trial", params={"n": name}, **kw)).id)
        led = gp.Ledger(db)
        deadline = time.time() + 30
        while time.time() < deadline and None in [led.run(i).heartbeat_at for i in ids]:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_lost_runs_are_listed_with_when_their_process_stopped(tmp_path):
    """Runs whose process was killed -9 recorded no error: the section lists them as lost, with
    the time they last wrote, so a user missing trials finds them there."""
    db = str(tmp_path / "gp.db")
    _track(db, "trial-c", "k", RuntimeError("NaN loss at step 40"), role="trial", lr=1.0)
    before = time.time()
    procs = [
        subprocess.Popen([sys.executable, "-c", KILLED, db, "trial-a", "search"]),
        subprocess.Popen([sys.executable, "-c", KILLED, db, "trial-b", ""]),
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [-9, -9]
    led = gp.Ledger(db)
    runs = {r.name: r for r in led.runs(study="k")}
    assert {n: r.status for n, r in runs.items()} == {
        "trial-c": "failed",
        "search": "lost",
        "trial-a": "lost",
        "trial-b": "lost",
    }
    report = build_report(db, "k")
    found = failures(report)
    # the sweep is left out: its stop is that of the trial inside it
    assert (found.runs, found.lost, found.interrupted) == (3, 2, 0)
    lost = next(g for g in found.groups if g.error is None)
    assert sorted(r.name for r in lost.runs) == ["trial-a", "trial-b"]  # in start order
    assert lost.stopped_at is not None
    beats = sorted(runs[n].heartbeat_at or 0.0 for n in ("trial-a", "trial-b"))
    assert lost.stopped_at == pytest.approx(tuple(beats), abs=1e-3)
    assert before < beats[0] <= beats[1] < time.time()
    when = [time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(b)) for b in beats]
    if when[0] == when[1]:
        stopped = f"their processes stopped writing at {when[0]}"
    else:
        last = when[1].split(" ", 1)[1] if when[0][:10] == when[1][:10] else when[1]
        stopped = f"their processes stopped writing between {when[0]} and {last}"
    md = render(report, "md", plots=False)
    part = _section(md, "## Failed and lost runs (3)", "## Runs")
    item = next(line for line in part.splitlines() if line.startswith("- *lost"))
    assert item.startswith(f"- *lost: no error recorded ({stopped})*: 2 trials lost: trial-")
    assert "trial-a (" in item and "trial-b (" in item
    items = "\n".join(line for line in part.splitlines() if line.startswith("- "))
    assert "SIGKILL" in part and "search" not in items  # the intro says what lost means
    assert "counts 4 runs as failed or lost: the 3 listed here, and 1 run around" in part
    assert "- **RuntimeError: NaN loss at step 40**: 1 trial failed: trial-c (" in part
    html = render(report, "html", plots=False)
    assert '<a href="#failed">Failed and lost runs</a>' in html
    assert f"<em>lost: no error recorded ({html_text(stopped)})</em>" in html
    assert f"<em>lost: no error recorded ({stopped})</em>: 2 trials lost" in report._repr_html_()
    tex = render(report, "latex", plots=False)
    assert r"\emph{lost: no error recorded (" + latex_text(stopped) + ")}" in tex
