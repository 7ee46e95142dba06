"""A Prometheus host that is no valid name (session 37's new user).

``greenprint run --prometheus-port 9464 --prometheus-host bad..host -- CMD`` (a typo: two dots)
printed a 40-line traceback from the IDNA codec (``UnicodeError: label empty or too long``)
and exit status 1; ``prometheus.serve(0, host=None)`` raised ``TypeError`` from ``socket``.
Both are bad input: one line and exit status 2 from the CLI, ``ConfigError`` from Python.
"""

from __future__ import annotations

import sys

import pytest

from _report_cli import GREENPRINT, empty_home, run_in
from greenprint import ConfigError, prometheus


def test_a_malformed_prometheus_host_is_one_error_line_and_status_2(
    tmp_path_factory: pytest.TempPathFactory,
):
    home = empty_home(tmp_path_factory, "s37-prom-host")
    done = run_in(
        home, GREENPRINT, "run", "--prometheus-port", "0", "--prometheus-host", "bad..host",
        "--", sys.executable, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "greenprint: error: cannot serve Prometheus metrics on bad..host:0: 'bad..host' is not "
        "a valid address or host name"
    ]
    assert not (home / "ran").exists()  # refused before the command started


@pytest.mark.parametrize("host", ["bad..host", "a" * 300, None, 127001])
def test_serve_refuses_a_host_that_is_no_name_with_config_error(host: object):
    with pytest.raises(ConfigError, match="host"):
        prometheus.serve(0, host)  # type: ignore[arg-type]


def test_serve_still_binds_loopback_by_default():
    with prometheus.serve(0) as server:
        assert server.host == "127.0.0.1"
        assert server.url.startswith("http://127.0.0.1:")
