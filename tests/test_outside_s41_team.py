"""Outside check s41: a team's study beyond one machine, a PostgreSQL ledger shared by workers.

The study as a team runs it from the README and docs: a PostgreSQL ledger (a real server, the
``pg_server`` fixture), Optuna workers launched with ``greenprint run`` into it, a Ray Tune sweep
(``tests/integrations/test_ray.py``: the cluster is that module's), a baseline and a retrained
final run, ``greenprint report`` and the exports. What it found wrong is tested here where it
is Optuna's (Ray Tune's beside the other Ray tests, on their cluster).
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import empty_home, run_in
from integrations._frameworks import need_installed

#: A search script as a team member writes it from docs/integrations.md (Optuna), its ledger the
#: team's PostgreSQL URL (the first argument), its study in a shared Optuna storage.
SEARCH = """
import sys
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(study_name="team", storage="sqlite:///optuna.db", load_if_exists=True)
cb = GreenprintCallback(ledger=sys.argv[1])
study.optimize(cb.track(lambda t: (t.suggest_float("x", -1, 1) - 0.5) ** 2), n_trials=2,
               callbacks=[cb])
print("searched", len(study.trials))
"""


@pytest.mark.postgres
def test_a_mistyped_postgresql_url_stops_the_search_before_its_first_trial(
    tmp_path_factory: pytest.TempPathFactory, pg_server: object
) -> None:
    """``GreenprintCallback(ledger=".../teem?...")`` for the team's ``.../team``: a database
    that does not exist on the server.

    The callback checked a path but never reached a server: it was accepted, the first trial's
    run raised ``LedgerPathError`` inside ``study.optimize`` (Optuna printed it twice with its
    traceback), left that trial ``FAIL`` in the team's shared Optuna storage, and ended the
    search. Now the callback connects where it is made and raises there: one exception, naming
    the URL (password masked) and what the server said, and no trial in Optuna's storage.
    """
    need_installed("optuna", "optuna")
    home = empty_home(tmp_path_factory, "s41-mistyped-url")
    (home / "search.py").write_text(SEARCH, encoding="utf-8")
    good = pg_server.new_database()  # type: ignore[attr-defined]
    bad = good.replace("/gp_test_", "/no_such_team_db_", 1)  # .../team for .../teem

    done = run_in(home, sys.executable, "search.py", bad)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("greenprint.LedgerPathError: cannot use ledger postgresql+psycopg://")
    assert 'database "no_such_team_db_' in last and '" does not exist' in last
    assert done.stderr.count("LedgerPathError") == 1  # raised once, not once per trial
    assert "Trial 0 failed" not in done.stderr
    with sqlite3.connect(home / "optuna.db") as db:
        assert db.execute("SELECT count(*) FROM trials").fetchone() == (0,)

    # the right URL: the same script searches, every trial in the team's ledger
    done = run_in(home, sys.executable, "search.py", good)
    assert done.returncode == 0, done.stderr
    runs = gp.Ledger(good).runs(study="team")
    assert sorted((r.name, r.status) for r in runs) == [
        ("trial-0", "finished"),
        ("trial-1", "finished"),
    ]


@pytest.mark.postgres
def test_a_mistyped_postgresql_url_is_refused_by_every_integration_setup(
    tmp_path: Path, pg_server: object
) -> None:
    """The same check where any integration is set up (``check_run_options``): Optuna's here;
    a ledger this process already wrote to is left to fall back mid-study, as before."""
    need_installed("optuna", "optuna")
    from greenprint.integrations.optuna import GreenprintCallback

    good = pg_server.new_database()  # type: ignore[attr-defined]
    bad = good.replace("/gp_test_", "/gp_missing_", 1)
    with pytest.raises(gp.LedgerPathError, match="does not exist"):
        GreenprintCallback(ledger=bad)
    GreenprintCallback(ledger=good)  # reached: taken
    GreenprintCallback(ledger=False)  # no ledger: nothing to reach
    GreenprintCallback(ledger=tmp_path / "gp.db")  # a path: checked as before, not created
    assert not (tmp_path / "gp.db").exists()
