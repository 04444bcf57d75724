"""Media URI policy hardening: IPv6 forms that embed a private IPv4 address, `file://` URIs and
plain paths resolving identically, file-system errors as policy errors, and downloads that ignore
proxy variables, connect to the address that was checked and stop at a total deadline.

Name resolution is faked (no DNS); downloads go to a real HTTP server on the loopback interface
inside this process, which the policy only reaches with `allow_private_networks`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import pytest

from vidsearch.connector import media_policy
from vidsearch.connector.errors import MediaPolicyError
from vidsearch.core.settings import MediaPolicySettings

pytestmark = pytest.mark.unit

BODY = os.urandom(64 * 1024)


def _teredo(server: str, client: str) -> str:
    """A Teredo address (RFC 4380): prefix, server IPv4, flags, obfuscated port and client IPv4."""
    s, c = int(ipaddress.IPv4Address(server)), int(ipaddress.IPv4Address(client))
    return str(ipaddress.IPv6Address((0x2001_0000 << 96) | (s << 64) | (0x8000 << 48) | (0xFFFF ^ 40000) << 32 | (c ^ 0xFFFF_FFFF)))


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 well-known prefix: cloud metadata
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b::a01:203", "10.1.2.3"),
        ("64:ff9b::6464:64c8", "100.100.100.200"),  # shared address space
        ("::ffff:169.254.169.254", None),  # IPv4-mapped
        ("::ffff:10.0.0.1", None),
        ("::ffff:0:a9fe:a9fe", "169.254.169.254"),  # IPv4-translated
        ("::a9fe:a9fe", "169.254.169.254"),  # deprecated IPv4-compatible
        ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4
        ("2002:c0a8:101::1", "192.168.1.1"),
        (_teredo("65.54.227.120", "10.0.0.7"), None),  # Teredo
        ("64:ff9b:1::a9fe:a9fe", None),  # local-use NAT64: never verifiable
        ("64:ff9b:1::808:808", None),
        ("ff02::1", None),
        ("224.0.0.1", None),
        ("169.254.169.254", None),
        ("fe80::1", None),
        ("::1", None),
    ],
)
def test_non_public_addresses_are_refused(address: str, embedded: str | None) -> None:
    reason = media_policy.non_public_reason(ipaddress.ip_address(address))
    assert reason is not None and reason.startswith(f"non-public address {ipaddress.ip_address(address)}"), reason
    if embedded:
        assert f"embeds IPv4 {embedded}" in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_pass(address: str) -> None:
    """NAT64 and 6to4 of a public IPv4 address stay allowed: only what they lead to matters."""
    assert media_policy.non_public_reason(ipaddress.ip_address(address)) is None


def test_python_is_global_alone_misses_nat64() -> None:
    """Why the embedded address is checked: ipaddress calls the NAT64 form of 169.254.169.254 global."""
    assert ipaddress.ip_address("64:ff9b::a9fe:a9fe").is_global


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Fake DNS: names map to address lists; every lookup of a name is recorded under '_calls'.
    Address literals go to the real getaddrinfo (no DNS involved: the socket layer looks up even
    the literal it connects to)."""
    table: dict[str, list[str]] = {"_calls": []}
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            ipaddress.ip_address(host)
            return real(host, port, *args, **kwargs)
        except ValueError:
            pass
        table["_calls"].append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"fake resolver has no {host!r}")
        out = []
        for addr in table[host]:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            sockaddr = (addr, int(port), 0, 0) if family == socket.AF_INET6 else (addr, int(port))
            out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out

    monkeypatch.setattr(media_policy.socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "::ffff:127.0.0.1", "2002:a00:1::1", "64:ff9b:1::102:304"])
def test_host_resolving_to_an_embedded_private_address_is_refused(
    resolver: dict[str, list[str]], address: str
) -> None:
    resolver["cdn.example"] = ["93.184.215.14", address]  # one bad answer among good ones is enough
    policy = MediaPolicySettings(allow_http=True, http_hosts=("cdn.example",))
    with pytest.raises(MediaPolicyError, match="resolves to non-public address"):
        with media_policy.local_media("http://cdn.example/a.mp4", policy):
            pytest.fail("the block must not run")


# ---- file:// URIs and plain paths ------------------------------------------------------------

@pytest.fixture
def root(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "a b.mp4").write_bytes(b"\x00video")
    (media / "%2e%2e").mkdir()  # a directory literally named %2e%2e
    (media / "%2e%2e" / "x.mp4").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("s3cr3t")
    os.symlink(tmp_path / "secret.txt", media / "escape.mp4")
    os.symlink(media / "loop2", media / "loop1")
    os.symlink(media / "loop1", media / "loop2")
    return media


CASES = {
    "inside": lambda r: f"{r}/a b.mp4",
    "missing-inside": lambda r: f"{r}/sub/none.mp4",
    "literal-percent-dir": lambda r: f"{r}/%2e%2e/x.mp4",
    "outside": lambda r: f"{r.parent}/secret.txt",
    "symlink-escape": lambda r: f"{r}/escape.mp4",
    "dotdot": lambda r: f"{r}/sub/../a b.mp4",
    "relative": lambda r: "media/a b.mp4",
    "nul": lambda r: f"{r}/a b.mp4\x00.txt",
    "name-too-long": lambda r: f"{r}/{'n' * 300}.mp4",
    "symlink-loop": lambda r: f"{r}/loop1",
    "not-a-directory": lambda r: f"{r}/a b.mp4/x.mp4",
}


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except MediaPolicyError as exc:
        return ("refused", str(exc))


@pytest.mark.parametrize("case", list(CASES))
def test_file_uri_and_plain_path_resolve_identically(root: Path, case: str) -> None:
    raw = CASES[case](root)
    uri = ("file://" if raw.startswith("/") else "file:") + quote(raw)
    policy = MediaPolicySettings(roots=(root,))
    plain = _outcome(lambda: media_policy.resolve_media_uri(raw, policy))
    as_uri = _outcome(lambda: media_policy.resolve_media_uri(uri, policy))
    assert plain == as_uri
    with_local_media = _outcome(lambda: media_policy.local_media(uri, policy).__enter__())
    assert with_local_media == plain
    expected_ok = {"inside", "missing-inside", "literal-percent-dir"}
    assert (plain[0] == "ok") == (case in expected_ok), plain


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("name-too-long", "cannot be resolved: File name too long"),
        ("symlink-loop", "cannot be resolved: a symlink loop"),
        ("not-a-directory", "cannot be resolved: Not a directory"),
    ],
)
def test_file_system_errors_are_policy_errors(root: Path, case: str, reason: str) -> None:
    with pytest.raises(MediaPolicyError, match=reason) as exc:
        media_policy.resolve_media_uri(CASES[case](root), MediaPolicySettings(roots=(root,)))
    assert exc.value.stage == "media_policy"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("file:///media/a.mp4?x=1", "query or fragment"),
        ("file:///media/a.mp4#t=3", "query or fragment"),
        ("file:///media/a\nb.mp4", "control characters"),
        ("file:///media/%ff.mp4", "not UTF-8"),
        ("https://example.com/a.mp4", "scheme 'https' is not a local media URI"),
        ("file://host/media/a.mp4", "remote host 'host'"),
    ],
)
def test_malformed_local_uris(uri: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(MediaPolicyError, match=message):
        media_policy.resolve_media_uri(uri, MediaPolicySettings(roots=(tmp_path,)))


def test_api_media_path_accepts_file_uris(root: Path) -> None:
    """A stored media_uri written as file:// is re-checked and resolved like a path."""
    from vidsearch.ops.api.thumbnails import media_path

    policy = MediaPolicySettings(roots=(root,))
    assert media_path((root / "a b.mp4").as_uri(), policy) == (root / "a b.mp4").resolve()
    with pytest.raises(MediaPolicyError, match="outside the allowed roots"):
        media_path((root / "escape.mp4").as_uri(), policy)


# ---- downloads -------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    hosts: ClassVar[list[str]] = []  # each test's server gets its own subclass and list
    drip_s: float = 0.0

    def do_GET(self) -> None:
        type(self).hosts.append(self.headers.get("Host", ""))
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        step = 256 if self.drip_s else len(BODY)
        for i in range(0, len(BODY), step):
            try:
                self.wfile.write(BODY[i : i + step])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            time.sleep(self.drip_s)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"hosts": [], "drip_s": 0.0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], handler
    httpd.shutdown()
    httpd.server_close()


def _policy(**kw: Any) -> MediaPolicySettings:
    return MediaPolicySettings(allow_http=True, allow_private_networks=True, http_hosts=("media.test",), **kw)


def test_download_connects_to_the_checked_address_without_resolving_again(
    server: tuple[int, type[_Handler]], resolver: dict[str, list[str]]
) -> None:
    """`media.test` exists only in the fake resolver: had httpx looked the name up again (where
    rebinding would happen) it would have failed, and the lookup count would be 2."""
    port, handler = server
    resolver["media.test"] = ["127.0.0.1"]
    with media_policy.local_media(f"http://media.test:{port}/clip.mp4", _policy()) as path:
        assert path.read_bytes() == BODY and path.suffix == ".mp4"
    assert resolver["_calls"] == ["media.test"]
    assert handler.hosts == [f"media.test:{port}"]
    assert not path.exists()  # removed after the block


def test_download_ignores_proxy_environment(
    server: tuple[int, type[_Handler]], resolver: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = server
    resolver["media.test"] = ["127.0.0.1"]
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    import httpx

    with pytest.raises((httpx.ConnectError, httpx.ProxyError)):  # control: honouring them fails (the server is up)
        httpx.get(f"http://127.0.0.1:{port}/clip.mp4", timeout=5)
    with media_policy.local_media(f"http://media.test:{port}/clip.mp4", _policy()) as path:
        assert path.read_bytes() == BODY


def test_download_has_a_total_deadline(server: tuple[int, type[_Handler]], resolver: dict[str, list[str]]) -> None:
    """The server sends 256 bytes every 50 ms (256 chunks, ~13 s): no single read ever waits
    longer than the 5 s per-operation timeout, the total deadline of 0.5 s stops it."""
    port, handler = server
    handler.drip_s = 0.05
    resolver["media.test"] = ["127.0.0.1"]
    # "took longer than" is the total deadline's own error (a per-read timeout says otherwise)
    with pytest.raises(MediaPolicyError, match="took longer than"):
        with media_policy.local_media(
            f"http://media.test:{port}/slow.mp4", _policy(http_timeout_s=5.0, http_total_timeout_s=0.5)
        ):
            pytest.fail("the block must not run")


def test_download_size_limit_and_http_errors(server: tuple[int, type[_Handler]], resolver: dict[str, list[str]]) -> None:
    port, _ = server
    resolver["media.test"] = ["127.0.0.1"]
    with pytest.raises(MediaPolicyError, match="exceeds 1000 bytes"):
        with media_policy.local_media(f"http://media.test:{port}/a.mp4", _policy(http_max_bytes=1000)):
            pass
    with pytest.raises(MediaPolicyError, match="malformed URI"):
        with media_policy.local_media("http://media.test:99999/a.mp4", _policy()):
            pass
