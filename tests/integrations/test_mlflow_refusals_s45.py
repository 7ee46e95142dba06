"""A call refused for want of an MLflow run leaves no MLflow store behind (session 45).

``MlflowClient()`` makes its tracking store as it is made: with no tracking URI set, MLflow 3's
default, a 1 MB ``mlflow.db`` in the working directory. ``autolog(run)``, ``log_run``,
``log_report`` and ``log_search`` made that default client first, then found no active run and
refused: a new user's first try, in an empty directory, left ``mlflow.db`` there (as a script
showed). Now the run to log to is found first; a client is made only when there is one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import greenprint as gp
from greenprint import ConfigError
from integrations._frameworks import need_installed

need_installed("mlflow", "mlflow")
need_installed("sklearn", "scikit-learn")


def test_refused_calls_make_no_store_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils as tracking_utils
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from greenprint.integrations import mlflow as gp_mlflow
    from greenprint.integrations.sklearn import track_search

    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # a new user's process: no tracking URI set (MLflow's default, ./mlflow.db), no run yet
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    last = fluent._last_active_run_id  # a thread-local: no run ended in this process yet
    monkeypatch.setattr(last, "get", lambda: None)
    assert mlflow.active_run() is None
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    ledger = tmp_path / "greenprint.db"

    with gp.track("train", study="s", ledger=ledger, meters=[]) as run:
        with pytest.raises(ConfigError, match="no active MLflow run"):
            gp_mlflow.autolog(run)
    with pytest.raises(ConfigError, match="no active MLflow run"):
        gp_mlflow.log_run(run)
    with pytest.raises(ConfigError, match="no active MLflow run"):
        gp_mlflow.log_report("s", ledger)
    search = GridSearchCV(LogisticRegression(), {"C": [1.0, 2.0]}, cv=2)
    X, y = [[0.0], [1.0], [0.1], [0.9]], [0, 1, 0, 1]
    sweep = track_search(search, X, y, ledger=ledger, study="grid", meters=[])
    with pytest.raises(ConfigError, match="no MLflow run began while the search ran"):
        gp_mlflow.log_search(search, sweep, ledger=ledger)
    assert list(work.iterdir()) == []  # no mlflow.db, no mlruns/
