"""``greenprint report --metric`` with a metric name typed wrong says which one was meant.

The message listed the metrics logged, but not the nearest one first, as the unknown-study
message and ``evp_by_budget``'s do: ``--metric acuracy`` now reads "did you mean
'accuracy'?" before the list, on one line with exit status 2.
"""

from __future__ import annotations

import subprocess
import sys

from _clean_env import clean_env
from _report_cli import empty_home

SCRIPT = """
import greenprint as gp
for k in range(2):
    with gp.track(f"t{k}", study="s") as run:
        run.log(val_accuracy=0.5 + k / 10, train_loss=1.0)
"""


def test_a_metric_typed_wrong_names_the_nearest_logged_one(tmp_path_factory):
    home = empty_home(tmp_path_factory, "metric-typo")
    env = clean_env()
    (home / "make.py").write_text(SCRIPT, encoding="utf-8")
    made = subprocess.run([sys.executable, "make.py"], cwd=home, env=env, capture_output=True)
    assert made.returncode == 0, made.stderr[-2000:]
    cli = [sys.executable, "-m", "greenprint", "report", "--study", "s", "--format", "md"]
    done = subprocess.run([*cli, "--metric", "val_acuracy"], cwd=home, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "greenprint: error: no run of study 's' logged a value of metric 'val_acuracy' to rank "
        "by; did you mean 'val_accuracy'?; metrics logged: 'val_accuracy', 'train_loss'\n"
    )
    done = subprocess.run([*cli, "--metric", "bleu"], cwd=home, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "did you mean" not in done.stderr
    assert not (home / "greenprint-report").exists()
