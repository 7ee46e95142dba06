"""Network guard for greenprint's tests: any traffic outside loopback fails and is logged.

Loaded in the test process by ``conftest.py`` and, through ``PYTHONPATH``, in every Python
subprocess the tests start (``GREENPRINT_NETWORK_GUARD=1``). Violations are appended to the file in
``GREENPRINT_NETWORK_GUARD_LOG`` so that the test session fails even when the offending code
swallowed the exception.

Refused, for IPv4 and IPv6 sockets: ``connect``/``connect_ex`` to an address outside loopback, and
a datagram sent without connecting (``sendto``/``sendmsg`` with an address: statsd-style
telemetry). Refused too, because a DNS query leaves the machine: the name lookups of the
``socket`` module (``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``, ``gethostbyaddr``,
``getnameinfo``) of a name other than a loopback name or this machine's own host name
(``socket.gethostname()``, found in /etc/hosts: Ray and MLflow look it up, and
``socket.getfqdn()`` with no argument asks ``gethostbyaddr`` for it, as torch.distributed's
elastic agent does). Allowed: loopback, numeric addresses in a forward lookup (no query; a
connection to one is judged by ``connect``), AF_UNIX. A reverse lookup (``gethostbyaddr``,
``getnameinfo`` without ``NI_NUMERICHOST``) of an address outside loopback is a query: refused.

Not seen by the guard: code below Python's ``socket`` module (a C extension's own resolver or
sockets, such as gRPC's inside Ray).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported at start-up either
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

# socket is patched when it is first imported, not imported here: every Python process the suite
# starts loads this module, most of them never open a socket, and importing socket costs each
# ~8 ms of CPU (greenprint itself avoids it). ipaddress and traceback are imported when an address
# needs judging or a violation logging.

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


def _host_text(host: object) -> str | None:
    """A lookup's host as text (``None`` for no host: the passive or loopback address)."""
    if host is None:
        return None
    if isinstance(host, (bytes, bytearray)):
        return bytes(host).decode("ascii", "replace")
    return str(host)


def _numeric_ip(host: str):  # type: ignore[no-untyped-def]
    """The address written in ``host`` (IPv6 scope dropped), or ``None`` for a name."""
    import ipaddress

    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


def _stays_local(host: str | None) -> bool:
    """Whether looking ``host`` up queries no one: no host, a loopback name, this machine's."""
    if host is None:
        return True
    import socket  # imported: a lookup is being judged

    name = host.lower().rstrip(".")
    return name in _LOOPBACK_NAMES or name == socket.gethostname().lower()


def _forward_is_local(host: object) -> bool:
    """A name-to-address lookup: local for the names above and any numeric address."""
    text = _host_text(host)
    if text is None or text in ("127.0.0.1", "::1") or _stays_local(text):
        return True
    return _numeric_ip(text) is not None


def _reverse_is_local(host: object) -> bool:
    """An address-to-name lookup: local for the names above and loopback addresses."""
    text = _host_text(host)
    if text is None or text in ("127.0.0.1", "::1") or _stays_local(text):
        return True
    ip = _numeric_ip(text)
    return ip is not None and (ip.is_loopback or ip.is_unspecified)


def _record(what: str, target: object) -> None:
    import traceback

    log = os.environ.get("GREENPRINT_NETWORK_GUARD_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"pid {os.getpid()} {what} {target!r}\n")
            fh.write("".join(traceback.format_stack(limit=12)) + "\n")


def _refuse(what: str, target: object) -> NetworkGuardError:
    _record(what, target)
    return NetworkGuardError(f"greenprint tests: network {what} {target!r} refused")


def install() -> None:
    """Patch socket's connect and send-to methods and its name lookups (idempotent)."""
    import socket

    if getattr(socket.socket, "_greenprint_guarded", False):
        return
    inet = (socket.AF_INET, socket.AF_INET6)
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto
    original_sendmsg = socket.socket.sendmsg
    original_getaddrinfo = socket.getaddrinfo
    original_gethostbyname = socket.gethostbyname
    original_gethostbyname_ex = socket.gethostbyname_ex
    original_gethostbyaddr = socket.gethostbyaddr
    original_getnameinfo = socket.getnameinfo

    def connect(self: socket.socket, address: object) -> None:
        if self.family in inet and not _is_loopback(address):
            raise _refuse("connection to", address)
        return original_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        if self.family in inet and not _is_loopback(address):
            raise _refuse("connection to", address)
        return original_connect_ex(self, address)  # type: ignore[arg-type]

    def sendto(self: socket.socket, data: object, *args: object) -> int:
        # sendto(data, address) or sendto(data, flags, address)
        if self.family in inet and args and not _is_loopback(args[-1]):
            raise _refuse("datagram to", args[-1])
        return original_sendto(self, data, *args)  # type: ignore[arg-type,call-overload]

    def sendmsg(self: socket.socket, buffers: object, *args: object) -> int:
        # sendmsg(buffers[, ancdata[, flags[, address]]])
        if self.family in inet and len(args) >= 3 and args[2] is not None:
            if not _is_loopback(args[2]):
                raise _refuse("datagram to", args[2])
        return original_sendmsg(self, buffers, *args)  # type: ignore[arg-type]

    def getaddrinfo(
        host: object,
        port: object,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list:  # type: ignore[type-arg]
        if not flags & socket.AI_NUMERICHOST and not _forward_is_local(host):
            raise _refuse("name lookup of", host)
        return original_getaddrinfo(host, port, family, type, proto, flags)  # type: ignore[arg-type]

    def gethostbyname(hostname: str) -> str:
        if not _forward_is_local(hostname):
            raise _refuse("name lookup of", hostname)
        return original_gethostbyname(hostname)

    def gethostbyname_ex(hostname: str) -> tuple:  # type: ignore[type-arg]
        if not _forward_is_local(hostname):
            raise _refuse("name lookup of", hostname)
        return original_gethostbyname_ex(hostname)

    def gethostbyaddr(ip_address: str) -> tuple:  # type: ignore[type-arg]
        if not _reverse_is_local(ip_address):
            raise _refuse("address lookup of", ip_address)
        return original_gethostbyaddr(ip_address)

    def getnameinfo(sockaddr: tuple, flags: int) -> tuple:  # type: ignore[type-arg]
        if not flags & socket.NI_NUMERICHOST and sockaddr and not _reverse_is_local(sockaddr[0]):
            raise _refuse("address lookup of", sockaddr)
        return original_getnameinfo(sockaddr, flags)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = sendto  # type: ignore[assignment]
    socket.socket.sendmsg = sendmsg  # type: ignore[assignment]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.gethostbyaddr = gethostbyaddr
    socket.getnameinfo = getnameinfo  # type: ignore[assignment]
    socket.socket._greenprint_guarded = True  # type: ignore[attr-defined]


class _GuardSocketOnImport:
    """A meta path finder that lets the next finder find ``socket``, and guards it once loaded."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "socket":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        loader = spec.loader
        if isinstance(loader, type):  # a built-in or frozen socket: its importer serves others
            raise ImportError("greenprint tests' network guard: socket is not a source module")
        exec_module = loader.exec_module

        def exec_and_guard(module: ModuleType) -> None:
            exec_module(module)
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
            install()

        loader.exec_module = exec_and_guard  # type: ignore[method-assign]  # this spec's own
        return spec


if os.environ.get("GREENPRINT_NETWORK_GUARD") == "1":
    if "socket" in sys.modules:
        install()
    else:
        sys.meta_path.insert(0, _GuardSocketOnImport())
