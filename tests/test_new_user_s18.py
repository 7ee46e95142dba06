"""What a new user read wrong in the reports of studies of their own (session 18).

Each test builds a study as a user does (a script run in an empty directory with a clean
environment, under ``greenprint run`` or tracked by the script itself), then reads
``greenprint report`` (Markdown, HTML, LaTeX, JSON) or the CLI as that user does: one thing
that read wrong each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, cli_report, empty_home, in_every_format, run_in


def _run_script(home: Path, text: str, *args: str) -> None:
    """``text`` written to ``home/search.py`` and run there under ``greenprint run --study s``."""
    (home / "search.py").write_text(text, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "--study", "s", *args, "--", sys.executable, "search.py")
    assert done.returncode == 0, done.stderr


#: Seven configurations, each over three seeds as its child runs; the first four log their
#: seeds' mean as their own score, the last three log none (their parts' mean is theirs).
REPEATS = """
import greenprint as gp

for i in range(7):
    with gp.track(f"cfg-{i}", params={"lr": 0.01 * (i + 1)}) as trial:
        scores = []
        for seed in range(3):
            with gp.track(f"cfg-{i}-s{seed}", params={"seed": seed}) as run:
                scores.append(0.8 + 0.01 * i + 0.001 * seed)
                run.log(acc=scores[-1])
        if i < 4:
            trial.log(acc=sum(scores) / 3)
"""


def test_the_repeats_note_counts_the_trials_scored_by_their_mean_and_by_their_own(
    tmp_path_factory: pytest.TempPathFactory,
):
    """The note read '7 trials held child runs that differ only by a seed or fold ... the
    trial scored by their mean', beside '3 of 7 trials logged no 'acc' of their own ...; 4
    scored by their own': four of the seven were scored by the value they logged."""
    home = empty_home(tmp_path_factory, "s18-repeats")
    _run_script(home, REPEATS)
    report = cli_report(home, "--study", "s")
    sources = {r["name"]: r["score_source"] for r in report["runs"] if r["role"] == "trial"}
    assert sorted(sources.values()) == ["own"] * 4 + ["parts"] * 3
    note = next(n for n in report["notes"] if "differ only by a seed or fold" in n)
    assert "the trial scored by their mean" not in note
    assert (
        "7 trials hold child runs that differ only by a seed or fold param (seed, fold, "
        "random_state, *_seed...): read as repeats of each trial's configuration, its parts: "
        "3 of them are scored by their parts' mean, 4 of them are scored by their own logged "
        "'acc'; to rank each as a trial of its own, give those runs role='trial'"
    ) in note
    in_every_format(home, "3 of them are scored by their parts")
