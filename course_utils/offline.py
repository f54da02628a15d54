"""A network guard for the test run: any connection beyond this machine fails at once.

The lessons must run offline (in CI nothing may touch the network). ``block_network()``
patches the socket layer of the current process so that connecting to, or resolving, any
host other than the loopback interface raises ``NetworkBlockedError`` straight away,
instead of hanging until a time-out. Unix sockets and loopback (127.0.0.0/8, ::1,
``localhost``) stay allowed, so Jupyter kernels and a local JupyterLab keep working.

The test suite turns the guard on in its own process and, through ``sitecustomize`` and
the environment variable ``COURSE_OFFLINE=1``, in every Python process it starts
(notebook kernels included).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

ENV_VAR = "COURSE_OFFLINE"
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}

_originals: dict[str, Any] = {}


class NetworkBlockedError(ConnectionRefusedError):
    """Raised when code under test tries to reach a host other than this machine."""


def _is_local(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").split("%")[0].lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.is_loopback or address.is_unspecified:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(mapped is not None and mapped.is_loopback)


def _refuse(what: str) -> NetworkBlockedError:
    return NetworkBlockedError(
        f"network access is blocked in the course's offline test run: tried to {what}. "
        "Lessons must work without internet: load from the cache or from data the course makes, "
        f"and fall back with a clear message when a download is impossible ({ENV_VAR}=1)."
    )


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_local(host):
        raise _refuse(f"connect to {address!r}")


def block_network() -> None:
    """Refuse every connection and name lookup that leaves this machine (idempotent)."""
    if _originals:
        return
    _originals["connect"] = socket.socket.connect
    _originals["connect_ex"] = socket.socket.connect_ex
    _originals["getaddrinfo"] = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check_address(self, address)
        return _originals["connect"](self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_address(self, address)
        return _originals["connect_ex"](self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local(host) and host != socket.gethostname():
            raise _refuse(f"look up the host name {host!r}")
        return _originals["getaddrinfo"](host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def unblock_network() -> None:
    """Undo ``block_network()``."""
    if not _originals:
        return
    socket.socket.connect = _originals.pop("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = _originals.pop("connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = _originals.pop("getaddrinfo")  # type: ignore[assignment]


def network_blocked() -> bool:
    """True while the guard is on in this process."""
    return bool(_originals)
