"""A password given in a PostgreSQL URL's query is masked like one in its user part (session 52).

libpq, psycopg and SQLAlchemy take ``?password=`` as well as ``user:password@``; only the latter
was masked: ``postgresql+psycopg://alice@/gp?host=/run/pg&password=...`` came out whole in the
CLI's errors, ``Ledger.url``, ``ledger merge``'s summary and every report's header.
"""

from __future__ import annotations

import json
import subprocess

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env
from _report_cli import empty_home
from greenprint.ledger._target import mask_passwords, mask_url
from greenprint.report import build_report, write_report

SECRET = "hunter2sekrit"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            f"postgresql+psycopg://alice@/gp?host=/run/pg&password={SECRET}",
            "postgresql+psycopg://alice@/gp?host=/run/pg&password=***",
        ),
        (
            f"postgresql://bob:{SECRET}@db/gp?password={SECRET}&sslmode=require",
            "postgresql://bob:***@db/gp?password=***&sslmode=require",
        ),
        (f"postgresql://db/gp?PASSWORD={SECRET}#x", "postgresql://db/gp?PASSWORD=***#x"),
        ("postgresql://db/gp?passwordless=1", "postgresql://db/gp?passwordless=1"),
        ("sqlite:////tmp/password=1/x.db", "sqlite:////tmp/password=1/x.db"),  # no query
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_a_command_line_keeps_no_query_password() -> None:
    line = f"python train.py --ledger 'postgresql://a@/gp?host=/x&password={SECRET}' --lr 1"
    assert mask_passwords(line) == (
        "python train.py --ledger 'postgresql://a@/gp?host=/x&password=***' --lr 1"
    )


def test_the_cli_error_of_a_server_that_is_down_keeps_it(tmp_path_factory) -> None:
    home = empty_home(tmp_path_factory, "query-password")
    url = f"postgresql+psycopg://alice@/gp?host={home}/no-server&password={SECRET}"
    done = subprocess.run(
        [str(BIN / "greenprint"), "ledger", "ls", "--ledger", url],
        cwd=home, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert SECRET not in done.stderr and "password=***" in done.stderr


def test_a_report_and_the_ledger_keep_it(pg_server, tmp_path) -> None:
    """A real server (trust authentication: the password is given and not needed)."""
    url = pg_server.new_database() + f"&password={SECRET}"
    with gp.track("fit", study="s", ledger=url) as run:
        run.log(accuracy=0.9)
    led = gp.Ledger(url, create=False)
    assert SECRET not in led.url and "password=***" in led.url
    files = write_report(
        build_report(url, "s"), tmp_path / "rep", formats=("json", "md"), plots=False
    )
    for path in files.values():
        assert SECRET not in path.read_text()
    assert "password=***" in json.loads(files["json"].read_text())["ledger"]
