"""A value typed wrong for an option of fixed choices names the one meant, as a new user meets it.

``greenprint run --role trail`` said only "'trail' is not one of 'trial', 'part', ...", while
``ledger set-role trail`` (and ``gp.track(role="trail")``) said "did you mean 'trial'?". Every
option of fixed choices now names the nearest one when one is close: one line, exit status 2,
nothing written. Run in an empty folder with a clean environment.
"""

from __future__ import annotations

import subprocess

import pytest

from _report_cli import GREENPRINT, empty_home, run_in

ROLES = "'trial', 'part', 'baseline', 'final', 'learning-curve', 'sweep', 'greener'"

CASES = [
    (
        ["run", "--role", "trail", "--", "true"],
        f"Invalid value for '--role': 'trail' is not one of {ROLES}; did you mean 'trial'? "
        "(see 'greenprint run --help')",
    ),
    (
        ["ledger", "ls", "--status", "finshed"],
        "Invalid value for '--status': 'finshed' is not one of 'running', 'finished', 'failed', "
        "'interrupted', 'pruned', 'lost'; did you mean 'finished'? "
        "(see 'greenprint ledger ls --help')",
    ),
    (
        ["report", "--mode", "maxx"],
        "Invalid value for '--mode': 'maxx' is not one of 'max', 'min'; did you mean 'max'? "
        "(see 'greenprint report --help')",
    ),
    (
        ["ledger", "export", "--format", "jsn"],
        "Invalid value for '--format': 'jsn' is not one of 'csv', 'json'; did you mean 'json'? "
        "(see 'greenprint ledger export --help')",
    ),
    (
        ["intensity", "--kind", "contry"],
        "Invalid value for '--kind': 'contry' is not one of 'world', 'country', 'subdivision', "
        "'zone', 'cloud'; did you mean 'country'? (see 'greenprint intensity --help')",
    ),
    # nothing close: click's own words, unchanged
    (
        ["run", "--role", "xyz", "--", "true"],
        f"Invalid value for '--role': 'xyz' is not one of {ROLES} (see 'greenprint run --help')",
    ),
]


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize(("args", "said"), CASES, ids=[" ".join(a[:3]) for a, _ in CASES])
def test_a_choice_typed_wrong_names_the_one_meant(tmp_path_factory, args, said):
    home = empty_home(tmp_path_factory, "choice")
    assert _one_line_error(run_in(home, GREENPRINT, *args)) == f"greenprint: error: {said}"
    assert list(home.iterdir()) == []  # nothing written, no ledger made
