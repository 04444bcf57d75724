"""Which loopback ports the stack needs, and who holds them."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import psutil

from vidsearch.core.errors import ConfigError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def port_of_url(url: str, service: str) -> int:
    """Port a local service must listen on for `url` to reach it; refuses non-loopback hosts
    because the stack only ever starts services on 127.0.0.1."""
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.hostname not in LOCAL_HOSTS:
        raise ConfigError(f"{service}: the local stack only serves 127.0.0.1, not {url!r}")
    if parts.port is None:
        raise ConfigError(f"{service}: no port in {url!r}")
    return parts.port


def is_listening(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def can_bind(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str:
    """Best-effort description of the process listening on `port` (needs privileges to see
    other users' sockets; says 'unknown process' otherwise)."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                try:
                    proc = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({proc.name()})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except psutil.Error:
        pass
    return "an unknown process"


def listening_pids(port: int) -> set[int]:
    try:
        return {
            c.pid
            for c in psutil.net_connections(kind="inet")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid
        }
    except psutil.Error:
        return set()
