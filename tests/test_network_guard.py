import socket
import subprocess
import sys

import pytest
from sitecustomize import NetworkGuardError


def test_guard_refuses_non_loopback_in_process(tmp_path, monkeypatch):
    log = tmp_path / "log"
    monkeypatch.setenv("GREENPRINT_NETWORK_GUARD_LOG", str(log))
    with socket.socket() as s, pytest.raises(NetworkGuardError):
        s.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
    assert "192.0.2.1" in log.read_text()


def test_guard_allows_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


def test_guard_is_active_in_subprocesses(tmp_path):
    log = tmp_path / "log"
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    env = {**__import__("os").environ, "GREENPRINT_NETWORK_GUARD_LOG": str(log)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "NetworkGuardError" in out.stdout
    assert "192.0.2.1" in log.read_text()


def test_guard_costs_a_process_that_connects_nowhere_no_more_imports():
    """Every Python process the suite starts loads the guard: what it needs only to judge an
    address (ipaddress) or to log a violation (traceback) is imported then, not at start-up."""
    code = "import sys; print(sorted({'ipaddress', 'traceback'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "127.0.0.2", "0.0.0.0", "localhost"])
def test_loopback_addresses_are_allowed(host):
    from sitecustomize import _is_loopback

    assert _is_loopback((host, 80))


@pytest.mark.parametrize("host", ["192.0.2.1", "2001:db8::1", "example.com", "128.0.0.1"])
def test_other_addresses_are_refused(host):
    from sitecustomize import _is_loopback

    assert not _is_loopback((host, 80))
