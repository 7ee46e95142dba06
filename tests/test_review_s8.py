"""Review of session 8's changes: reproducers of the defects found, each with its fix.

1. Optuna ``n_jobs > 1``: while trials run at once, a child process started by one trial is
   linked to their common parent (the run around ``study.optimize``, or none), never to
   another trial's run. The trials' own runs did not export themselves (the callback named a
   trial only while it ran alone), so a run nested inside one trial (``gp.track`` in the
   objective, a Lightning or Hugging Face callback's run) was the only leaf the environment
   saw, and a child process of the *other* trial was linked to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import greenprint as gp
from greenprint import _lineage

optuna = pytest.importorskip("optuna")

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.2}

CHILD = textwrap.dedent(
    """
    import sys
    import greenprint as gp
    with gp.track(sys.argv[1], ledger=sys.argv[2], study=sys.argv[3], role="part",
                  sample_interval_s=0.05, flush_interval_s=0.2):
        pass
    """
)


@pytest.mark.parametrize("sweep", [True, False], ids=["sweep", "no-sweep"])
def test_a_child_of_one_optuna_trial_never_links_to_a_run_nested_in_another(
    tmp_path: Path, sweep: bool
) -> None:
    from greenprint.integrations.optuna import GreenprintCallback

    db, script = tmp_path / "g.db", tmp_path / "child.py"
    script.write_text(CHILD)
    cb = GreenprintCallback(ledger=db, study="nested", **FAST)
    both, done = threading.Barrier(2, timeout=120), threading.Barrier(2, timeout=120)
    before = {k: os.environ.get(k) for k in _lineage._KEYS}

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 0:  # a run of its own inside the trial (a training loop's)
            with gp.track("inner", ledger=db, study="nested", **FAST):
                both.wait()
                done.wait()
        else:  # the other trial starts a child process while trial 0's inner run is live
            both.wait()
            cmd = [sys.executable, str(script), "child", str(db), "nested"]
            subprocess.run(cmd, cwd=tmp_path, check=True, timeout=120)
            done.wait()
        return 1.0

    study = optuna.create_study(study_name="nested", direction="maximize")
    with pytest.warns(UserWarning, match="parallel threads"):
        if sweep:
            with gp.track("search", ledger=db, study="nested", role="sweep", **FAST) as run:
                study.optimize(cb.track(objective), n_trials=2, n_jobs=2, callbacks=[cb])
            expected: str | None = run.id
        else:
            study.optimize(cb.track(objective), n_trials=2, n_jobs=2, callbacks=[cb])
            expected = None
    runs = gp.Ledger(db).runs(study="nested")
    names = {r.id: r.name for r in runs}
    (child,) = (r for r in runs if r.name == "child")
    # their common parent (the sweep, or no run): never trial 0's inner run
    assert child.parent_id == expected, names.get(child.parent_id or "")
    assert {k: os.environ.get(k) for k in _lineage._KEYS} == before
