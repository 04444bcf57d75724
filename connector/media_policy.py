"""Which media URIs an event may name, and turning an allowed one into a local file.

Events come from other teams' producers: a URI is untrusted input. Local paths must resolve
(symlinks included) inside a configured root; a `file://` URI is the same path spelled as a URI and
gets exactly the same resolution and errors (`resolve_media_uri`, which the API reuses to re-check
a stored `media_uri` at request time). http(s) is off by default and, when on, limited to
allow-listed hosts whose addresses are all public (no SSRF into the private network, including
IPv6 forms that carry a private IPv4 address), with a size limit and a deadline on the whole
download. The connection goes to the address that was checked (no second DNS lookup to rebind),
and proxy variables and .netrc are ignored.
"""

from __future__ import annotations

import ipaddress
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

import httpx

from vidsearch.connector.errors import MediaPolicyError
from vidsearch.core.settings import MediaPolicySettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes whose low 32 bits are an IPv4 address that some gateway or stack will reach:
# NAT64's well-known prefix (RFC 6052), IPv4-translated (RFC 2765) and the deprecated
# IPv4-compatible form (RFC 4291). IPv4-mapped, 6to4 and Teredo have accessors in `ipaddress`.
_LOW32_V4 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
# The local-use NAT64 prefix (RFC 8215): the operator chooses the prefix length and so where the
# IPv4 address sits; it cannot be verified, and it is never globally meaningful. Refused outright.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return "a symlink loop" if "loop" in str(exc).lower() else str(exc)


def resolve_local(raw: str, policy: MediaPolicySettings) -> Path:
    """The real path of the absolute path `raw`, which must lie inside a media root. A missing
    file is not an error here (the decoder reports it); a path the file system refuses to resolve
    (a name too long, no permission on a directory, a symlink loop) is."""
    if "\x00" in raw:
        raise MediaPolicyError("media path contains a NUL byte")
    if not policy.roots:
        raise MediaPolicyError("local media is disabled: no media roots are configured")
    candidate = Path(raw)
    if ".." in candidate.parts:
        raise MediaPolicyError(f"media path {raw!r} contains '..'")
    if not candidate.is_absolute():
        raise MediaPolicyError(f"media path {raw!r} must be absolute")
    try:
        roots = tuple(r.resolve() for r in policy.roots)
        resolved = candidate.resolve()  # follows symlinks: a link out of the root is an escape
    except (OSError, RuntimeError) as exc:  # Python 3.11 reports a symlink loop as RuntimeError
        raise MediaPolicyError(f"media path {raw!r} cannot be resolved: {_reason(exc)}") from exc
    if not _inside(resolved, roots):
        raise MediaPolicyError(f"media path {raw!r} resolves outside the allowed roots")
    try:
        resolved.stat()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise MediaPolicyError(f"media path {raw!r} cannot be resolved: {_reason(exc)}") from exc
    return resolved


def _local_path(uri: str) -> str | None:
    """The path a local URI names (a plain path, or a `file:` URI percent-decoded), None for a
    URI with another scheme."""
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise MediaPolicyError(f"malformed media URI: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme == "":
        return uri  # a path is taken literally: '%2e' in a file name is three characters
    if scheme != "file":
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        # urlsplit silently drops tabs and newlines; in a URI they must be percent-encoded
        raise MediaPolicyError("file URI contains control characters (percent-encode them)")
    if parts.netloc not in ("", "localhost"):
        raise MediaPolicyError(f"file URI with a remote host {parts.netloc!r}")
    if parts.query or parts.fragment:
        raise MediaPolicyError("file URI with a query or fragment (percent-encode '?' and '#' in names)")
    try:
        return unquote(parts.path, errors="strict")
    except UnicodeDecodeError as exc:
        raise MediaPolicyError(f"file URI percent-encodes bytes that are not UTF-8: {exc.reason}") from exc


def resolve_media_uri(uri: str, policy: MediaPolicySettings) -> Path:
    """The resolved local file of a local media URI: an absolute path or a `file://` URI, which
    behave identically (same checks, same errors). Anything else is a `MediaPolicyError`. The
    API calls this at request time, so a stored `media_uri` is judged by today's policy."""
    raw = _local_path(uri)
    if raw is None:
        raise MediaPolicyError(f"scheme {urlsplit(uri).scheme.lower()!r} is not a local media URI")
    return resolve_local(raw, policy)


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to through a translator or tunnel."""
    found = [ipaddress.IPv4Address(int(addr) & 0xFFFF_FFFF)] if any(addr in n for n in _LOW32_V4) else []
    if addr.ipv4_mapped:
        found.append(addr.ipv4_mapped)
    if addr.sixtofour:
        found.append(addr.sixtofour)
    if addr.teredo:
        found.extend(addr.teredo)  # (server, client); either being private is a way in
    return found


def non_public_reason(addr: IPAddress) -> str | None:
    """Why `addr` must not be fetched from, or None when it is a public unicast address.
    `is_global` alone misses IPv6 forms that embed an IPv4 address (NAT64 64:ff9b::a9fe:a9fe is
    169.254.169.254, the cloud metadata service), so each embedded address is checked too."""
    if addr.is_multicast or not addr.is_global:
        return f"non-public address {addr}"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr in _NAT64_LOCAL:
            return f"non-public address {addr} (local-use NAT64 prefix)"
        for v4 in _embedded_ipv4(addr):
            if v4.is_multicast or not v4.is_global:
                return f"non-public address {addr} (embeds IPv4 {v4})"
    return None


def _check_host(host: str, port: int, policy: MediaPolicySettings) -> list[IPAddress]:
    """Resolve an allow-listed host once; every address must be public. Returns them, so the
    download connects to a checked address instead of resolving the name again."""
    if host.lower() not in {h.lower() for h in policy.http_hosts}:
        raise MediaPolicyError(f"host {host!r} is not in the allow-list")
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise MediaPolicyError(f"cannot resolve host {host!r}: {exc}") from exc
    addrs: list[IPAddress] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])  # drop an IPv6 zone id
        reason = non_public_reason(addr)
        if reason and not policy.allow_private_networks:
            raise MediaPolicyError(f"host {host!r} resolves to {reason}")
        if addr not in addrs:
            addrs.append(addr)
    if not addrs:
        raise MediaPolicyError(f"host {host!r} has no address")
    return addrs


def _download(uri: str, addr: IPAddress, policy: MediaPolicySettings, out: IO[bytes]) -> None:
    """GET `uri` from the already-checked `addr` into `out`.

    DNS rebinding: letting httpx resolve the name again could yield a different (private) address
    than the one checked. So the request URL carries the checked IP, the Host header carries the
    original host, and for https the `sni_hostname` extension makes httpcore send that name as SNI
    and verify the certificate against it, so TLS still authenticates the named host. This uses
    httpx's documented request extension instead of a hand-written transport.

    The deadline: httpx's timeouts are per connect/read/write, so a server dripping one byte per
    read timeout could hold a download for ever. The elapsed time is checked after every chunk,
    and each single wait is capped at the total, so a download ends within the total deadline
    plus at most one read timeout.
    """
    url = httpx.URL(uri)
    started = time.monotonic()
    total = policy.http_total_timeout_s
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    timeout = httpx.Timeout(min(policy.http_timeout_s, total))
    # trust_env=False: no HTTP(S)_PROXY/ALL_PROXY (a proxy would make the address check moot), no .netrc
    with (
        httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout) as client,
        client.stream(
            "GET", url.copy_with(host=str(addr)), headers={"Host": url.netloc.decode("ascii")}, extensions=extensions
        ) as resp,
    ):
        if resp.status_code != 200:
            raise MediaPolicyError(f"download failed with HTTP {resp.status_code}")
        size = 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > policy.http_max_bytes:
                raise MediaPolicyError(f"download exceeds {policy.http_max_bytes} bytes")
            if time.monotonic() - started > total:
                raise MediaPolicyError(f"download took longer than {total:.0f}s")
            out.write(chunk)
    if time.monotonic() - started > total:
        raise MediaPolicyError(f"download took longer than {total:.0f}s")


@contextmanager
def local_media(uri: str, policy: MediaPolicySettings) -> Iterator[Path]:
    """A local path for `uri` for the duration of the block (downloads are removed after)."""
    raw = _local_path(uri)
    if raw is not None:
        yield resolve_local(raw, policy)
        return
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise MediaPolicyError(f"scheme {scheme!r} is not allowed")
    if not policy.allow_http:
        raise MediaPolicyError("http(s) media is disabled")
    try:
        hostname, port = parts.hostname, parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:  # a port that is not a number or out of range
        raise MediaPolicyError(f"malformed URI {uri!r}: {exc}") from exc
    if not hostname:
        raise MediaPolicyError(f"URI {uri!r} has no host")
    addrs = _check_host(hostname, port, policy)  # in the resolver's preference order (RFC 6724)
    with tempfile.NamedTemporaryFile(dir=policy.download_dir, suffix=Path(parts.path).suffix[:8]) as tmp:
        try:
            _download(uri, addrs[0], policy, tmp)
        except httpx.HTTPError as exc:
            raise MediaPolicyError(f"download failed: {type(exc).__name__}: {exc}") from exc
        except httpx.InvalidURL as exc:
            raise MediaPolicyError(f"malformed URI {uri!r}: {exc}") from exc
        tmp.flush()
        yield Path(tmp.name)
