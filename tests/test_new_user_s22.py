"""What a new user found wrong in the commands beyond ``run`` and ``report`` (session 22).

Each test runs greenprint as a stranger does: in an empty directory with a clean environment
(``_report_cli.run_in``), on a small study made there, reading what the command prints.
"""

from __future__ import annotations

import sys

import pytest

from _report_cli import GREENPRINT, empty_home, run_in


def test_a_prometheus_host_without_a_port_is_refused_before_anything_runs(
    tmp_path_factory: pytest.TempPathFactory,
):
    """``greenprint run --prometheus-host 0.0.0.0 -- ...`` (the port forgotten) ran the command
    and served nothing, without a word: whoever scraped the machine found no metrics. It is
    refused like ``intensity --kind`` without ``--list``: one line, exit status 2, the command
    not run, no ledger written."""
    home = empty_home(tmp_path_factory, "s22-prom-host")
    done = run_in(
        home, GREENPRINT, "run", "--prometheus-host", "0.0.0.0", "--",
        sys.executable, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "greenprint: error: --prometheus-host only applies with --prometheus-port (the port "
        "to serve on) (see 'greenprint run --help')"
    ]
    assert sorted(p.name for p in home.iterdir()) == []
    # with the port, the host is taken (port 0: any free one), and the default host needs none
    done = run_in(
        home, GREENPRINT, "run", "-q", "--prometheus-host", "127.0.0.1", "--prometheus-port",
        "0", "--", sys.executable, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "greenprint: Prometheus metrics at http://127.0.0.1:" in done.stderr
    assert (home / "ran").is_file()
