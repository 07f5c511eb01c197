"""One URL parser for every URL Surge checks and then contacts.

A URL that two parsers read differently is a way past a policy: `http://evil\\@prom:9090`
is host `prom` to urllib.parse and host `evil` to urllib3, which sends the request (and the
Authorization header) there. So a URL is parsed once, here, into scheme, host, port and
path, and anything a client could read another way is refused rather than guessed at:
backslashes, control characters, spaces and non-ASCII, user info (unless asked for, and then
only RFC 3986 user-info characters), percent signs or odd characters in the host, numeric
hosts that are not a canonical dotted quad (`127.1`, `0x7f.0.0.1`, `2130706433`), IPv6 zone
ids, empty or out-of-range ports, a trailing dot, dot segments in the path (`..`, `%2e%2e`),
encoded slashes and backslashes, and fragments. What passes is spelled so that every client
the project uses (the lean client, aiohttp/yarl, httpx, requests/urllib3) connects to the
same host and port: tests/api/test_urls.py checks that against each one's own parser.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_PORTS = {"http": 80, "https": 443}

_SHAPE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_USERINFO = re.compile(r"([A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-Fa-f]{2})*")
_PCHARS = re.compile(r"([A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*")
_QCHARS = re.compile(r"([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_ENCODED_SLASH = re.compile(r"%(2f|5c)", re.IGNORECASE)
_HINT = "write it plainly, e.g. http://alice.shop.svc:8080/path"


class UrlError(ValueError):
    """The URL is not one every client reads alike; the message says what and how to fix it."""


@dataclass(frozen=True)
class Url:
    """A checked http(s) URL. `host` is lower case, IPv6 without brackets; `port` is explicit
    or the scheme's default; `path` is "" or starts with "/"."""

    scheme: str
    host: str
    port: int
    path: str = ""
    query: str = ""
    userinfo: str = ""

    @property
    def hostport(self) -> str:
        """The authority as a client sends it in Host: the port only when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def text(self, *, with_userinfo: bool = True) -> str:
        """The URL, spelled canonically (what requests are built from)."""
        user = f"{self.userinfo}@" if self.userinfo and with_userinfo else ""
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{user}{self.hostport}{self.path}{query}"

    def with_host(self, host: str) -> str:
        """The same URL aimed at another host (a checked address), userinfo dropped."""
        return Url(self.scheme, host, self.port, self.path, self.query).text()


def _host(raw: str, url: str) -> str:
    if raw.startswith("["):
        if not raw.endswith("]") or "%" in raw:
            raise UrlError(f"{url!r}: a bracketed host must be a plain IPv6 address; {_HINT}")
        try:
            ip6 = ipaddress.IPv6Address(raw[1:-1])
        except ValueError:
            raise UrlError(f"{url!r}: {raw} is not an IPv6 address") from None
        return str(ip6)
    host = raw.lower()
    if not host:
        raise UrlError(f"{url!r} is not an http(s) URL with a host; write e.g. http://alice:8080")
    if host.endswith("."):
        raise UrlError(f"{url!r}: drop the trailing dot of the host")
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UrlError(
            f"{url!r}: host {raw!r} is not a DNS name or an IPv4 address "
            "(letters, digits, '-', '_' and dots only; no percent-encoding); " + _HINT
        )
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # Clients and resolvers read `127.1`, `0x7f.1` or `2130706433` as addresses, each
        # its own way: only the canonical dotted quad is an address here.
        try:
            ip4 = ipaddress.IPv4Address(host)
        except ValueError:
            ip4 = None
        if ip4 is None or str(ip4) != host:
            raise UrlError(f"{url!r}: write the address {raw!r} as a plain dotted quad")
    return host


def _port(raw: str | None, scheme: str, url: str) -> int:
    if raw is None:
        return DEFAULT_PORTS[scheme]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 5 or not 0 < int(raw) < 65536:
        raise UrlError(f"{url!r}: port {raw!r} is not a number from 1 to 65535")
    return int(raw)


def _path(raw: str, url: str) -> str:
    if not _PCHARS.fullmatch(raw):
        raise UrlError(f"{url!r}: the path has characters to percent-encode first")
    if _ENCODED_SLASH.search(raw):
        raise UrlError(f"{url!r}: the path has an encoded slash or backslash (%2F, %5C)")
    for segment in raw.split("/"):
        if segment.lower().replace("%2e", ".") in (".", ".."):
            raise UrlError(f"{url!r}: the path has a dot segment ({segment!r}); {_HINT}")
    return raw


def parse_url(url: str, *, allow_userinfo: bool = False) -> Url:
    """The checked parts of an http(s) URL, else UrlError saying why."""
    if not isinstance(url, str) or not url:
        raise UrlError("the URL is empty; " + _HINT)
    if not url.isascii() or not url.isprintable() or " " in url:
        raise UrlError(
            f"{url!r} has spaces, control or non-ASCII characters "
            "(write an international name in its xn-- form)"
        )
    if "\\" in url:
        raise UrlError(f"{url!r} has a backslash, which clients read differently; {_HINT}")
    shape = _SHAPE.fullmatch(url)
    scheme = shape["scheme"].lower() if shape else ""
    if shape is None or scheme not in DEFAULT_PORTS:
        raise UrlError(f"{url!r} is not an http(s) URL with a host; write e.g. http://alice:8080")
    authority, rest = shape["authority"], shape["rest"]
    userinfo, at, hostport = authority.rpartition("@")
    if at and not allow_userinfo:
        raise UrlError(f"{url!r}: user info ('...@') is not allowed here; {_HINT}")
    if at and not _USERINFO.fullmatch(userinfo):
        raise UrlError(f"{url!r}: the user info has characters to percent-encode first")
    raw_host, raw_port = hostport, None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end != -1 and hostport[end + 1 :].startswith(":"):
            raw_host, raw_port = hostport[: end + 1], hostport[end + 2 :]
    elif ":" in hostport:
        raw_host, _, raw_port = hostport.partition(":")
    host = _host(raw_host, url)
    port = _port(raw_port, scheme, url)
    path, hash_, fragment = rest.partition("#")
    if hash_:
        raise UrlError(f"{url!r}: drop the fragment ('#{fragment}'); it is never sent")
    path, question, query = path.partition("?")
    if not _QCHARS.fullmatch(query):
        raise UrlError(f"{url!r}: the query has characters to percent-encode first")
    return Url(scheme, host, port, _path(path, url), query if question else "", userinfo)


def check_url(url: str, *, allow_userinfo: bool = False) -> str:
    """url itself when parse_url accepts it; else ValueError (for pydantic validators)."""
    parse_url(url, allow_userinfo=allow_userinfo)
    return url
