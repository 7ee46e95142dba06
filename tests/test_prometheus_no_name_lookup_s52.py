"""The /metrics endpoint binds without looking its host's name up (session 52).

``http.server.HTTPServer.server_bind`` calls ``socket.getfqdn(host)``: for ``serve(0, "::1")``
(the IPv6 loopback, which /etc/hosts seldom lists) the C resolver sent a PTR query to the
network's DNS server, from a server meant to be loopback only. greenprint opens no connection
of its own beyond loopback; this one went past the suite's guard, which watches Python's
sockets, not the resolver's.
"""

from __future__ import annotations

import socket
import urllib.request

import pytest

from greenprint import prometheus


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_serving_asks_no_name_and_answers(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    asked: list[str] = []
    monkeypatch.setattr(socket, "getfqdn", lambda name="": asked.append(name) or name)
    try:
        server = prometheus.serve(0, host)
    except OSError as e:  # an IPv6 stack without ::1 configured
        pytest.skip(f"cannot bind {host}: {e}")
    try:
        assert asked == []
        with urllib.request.urlopen(server.url, timeout=30) as answer:
            assert answer.status == 200
            assert b"greenprint_runs_active" in answer.read()
    finally:
        server.close()
