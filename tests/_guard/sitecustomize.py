"""Network guard for greenprint's tests: any connection outside loopback fails and is logged.

Loaded in the test process by ``conftest.py`` and, through ``PYTHONPATH``, in every Python
subprocess the tests start (``GREENPRINT_NETWORK_GUARD=1``). Violations are appended to the file in
``GREENPRINT_NETWORK_GUARD_LOG`` so that the test session fails even when the offending code
swallowed the exception.
"""

from __future__ import annotations

import os
import socket

# ipaddress and traceback are imported when an address needs them: every Python process the
# suite starts loads this module, and most of them connect nowhere (13 ms of CPU each)

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


class NetworkGuardError(OSError):
    """A connection to a non-loopback address was attempted during the tests."""


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and other families stay local
    host = str(address[0]).split("%")[0]
    if host in _LOOPBACK_NAMES or host in ("127.0.0.1", "::1"):
        return True
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name other than localhost would need DNS: refuse
    return ip.is_loopback or ip.is_unspecified


def _record(address: object) -> None:
    import traceback

    log = os.environ.get("GREENPRINT_NETWORK_GUARD_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"pid {os.getpid()} connect to {address!r}\n")
            fh.write("".join(traceback.format_stack(limit=12)) + "\n")


def install() -> None:
    """Patch socket connect methods (idempotent)."""
    if getattr(socket.socket, "_greenprint_guarded", False):
        return
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            _record(address)
            raise NetworkGuardError(f"greenprint tests: network connection to {address!r} refused")
        return original_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            _record(address)
            raise NetworkGuardError(f"greenprint tests: network connection to {address!r} refused")
        return original_connect_ex(self, address)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket._greenprint_guarded = True  # type: ignore[attr-defined]


if os.environ.get("GREENPRINT_NETWORK_GUARD") == "1":
    install()
