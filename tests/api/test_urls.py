"""One URL, one parser (#25): what surge.api.urls approves is the host and port every client
the project uses connects to, each read with that client's own URL parser; what they could
read differently is refused."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import urllib3.util
import yarl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from surge.api.urls import Url, UrlError, parse_url
from surge.loadgen.http1 import Http1Client

DEFAULT = {"http": 80, "https": 443}


def _strip(host: str | None) -> str:
    """The host as compared: lower case, an IPv6 literal in its compressed form (`[0::]` and
    `[::]` are one address: parsers differ on the spelling, never on where they connect)."""
    text = (host or "").strip("[]").lower()
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text).compressed
        except ValueError:
            return text
    return text


def client_views(url: str) -> dict[str, tuple[str, int]]:
    """(host, port) each client connects to for `url`, by its own parser."""
    views: dict[str, tuple[str, int]] = {}
    split = urlsplit(url)
    views["urllib.parse"] = (_strip(split.hostname), split.port or DEFAULT[split.scheme.lower()])
    lean = Http1Client(url)
    views["lean client"] = (_strip(lean.host), lean.port)
    hx = httpx.URL(url)
    views["httpx"] = (_strip(hx.host), hx.port or DEFAULT[hx.scheme])
    y = yarl.URL(url)  # aiohttp's parser
    views["aiohttp/yarl"] = (_strip(y.host), int(y.port or 0))
    u3 = urllib3.util.parse_url(url)  # what requests' adapters connect with
    views["urllib3"] = (_strip(u3.host), u3.port or DEFAULT[str(u3.scheme)])
    try:
        prepared = requests.Request("GET", url).prepare().url  # requests rebuilds the URL first
    except UnicodeEncodeError:
        # Basic auth from user info outside Latin-1 ('%aa' decodes to U+FFFD): requests
        # refuses to build the request, so it connects nowhere (the Prometheus edge turns
        # that into a no-data reason, surge.results.prometheus).
        return views
    rq = urllib3.util.parse_url(str(prepared))
    views["requests"] = (_strip(rq.host), rq.port or DEFAULT[str(rq.scheme)])
    return views


ATTACKS = [
    "http://attacker.example\\@prom.monitoring:9090",
    "http://attacker.example\\\\@prom.monitoring:9090",
    "http://prom.monitoring:9090\\@attacker.example",
    "http://attacker.example@prom.monitoring:9090",
    "http://a@attacker.example@prom.monitoring:9090",
    "http://prom.monitoring:9090/tenants/a/../b",
    "http://prom.monitoring:9090/tenants/a/%2e%2e/b",
    "http://prom.monitoring:9090/tenants/a/.%2E/b",
    "http://prom.monitoring:9090/tenants/a%2f..%2fb",
    "http://prom.monitoring:9090/tenants/./a",
    "http://prom.monitoring%2eattacker.example:9090",
    "http://%70rom.monitoring:9090",
    "http://prom.monitoring\t:9090",
    "http://prom.monitoring\r\n:9090",
    "http://prom.monitoring\x00.attacker.example",
    "http://prom.monitoring :9090",
    "http://prom.monitoring./",
    "http://prоm.monitoring/",  # Cyrillic o
    "http://127.1/",
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",
    "http://2130706433/",
    "http://[::1%25eth0]/",
    "http://[::ffff:127.0.0.1/",
    "http://prom.monitoring:+9090",
    "http://prom.monitoring:/",
    "http://prom.monitoring:99999",
    "http://prom.monitoring#@attacker.example",
    "http:/prom.monitoring",
    "http:\\\\prom.monitoring",
    "//prom.monitoring",
    "file:///etc/passwd",
    "gopher://prom.monitoring:9090/",
    "",
]


@pytest.mark.parametrize("url", ATTACKS)
def test_exotic_spellings_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(UrlError) as err:
        parse_url(url)
    assert repr(url)[:12] in str(err.value) or not url  # the message quotes the URL
    if "\\" in url or url.count("@") > 1 or "%" in url or "\n" in url:
        with pytest.raises(UrlError):
            parse_url(url, allow_userinfo=True)


def test_user_info_only_where_asked_for_and_never_ambiguous() -> None:
    with pytest.raises(UrlError, match="user info"):
        parse_url("http://user:pw@prom.monitoring:9090")
    got = parse_url("http://user:p%40ss@alice:8080/x", allow_userinfo=True)
    assert (got.host, got.port, got.userinfo) == ("alice", 8080, "user:p%40ss")


def test_plain_urls_parse_into_their_parts() -> None:
    assert parse_url("HTTP://Prom.Monitoring:9090/api/?a=1") == Url(
        "http", "prom.monitoring", 9090, "/api/", "a=1"
    )
    assert parse_url("https://[::1]/x").hostport == "[::1]"
    assert parse_url("https://10.0.0.1:443").text() == "https://10.0.0.1"
    assert parse_url("http://alice:8080/x").with_host("10.1.2.3") == "http://10.1.2.3:8080/x"


_pieces = st.sampled_from(
    [
        "a", "Z", "0", "9", ".", "-", "_", "@", ":", "/", "\\", "%", "%2e", "%2f", "%40",
        "%00", "#", "?", "[", "]", "::1", "\t", "\n", " ", "é", "\u3002", "\uff0e", "0x",
        "127.0.0.1", "1", "prom", "evil", "..", "80", "443", "65536", "+",
    ]
)  # fmt: skip
_text = st.lists(_pieces, max_size=8).map("".join)


@st.composite
def spellings(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "hTtPs", "ftp"]))
    sep = draw(st.sampled_from(["://", "://", ":/", ":\\\\", ":///"]))
    user = draw(st.one_of(st.just(""), _text.map(lambda t: t + "@")))
    host = draw(st.one_of(_text, st.sampled_from(["prom.monitoring", "a-b.c_d", "[::1]"])))
    port = draw(st.one_of(st.just(""), _text.map(lambda t: ":" + t)))
    path = draw(st.one_of(st.just(""), _text.map(lambda t: "/" + t)))
    return f"{scheme}{sep}{user}{host}{port}{path}"


_label = st.from_regex(r"[a-z0-9]([a-z0-9_-]{0,6}[a-z0-9])?", fullmatch=True)
_host = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)
_safe = st.text("abcXYZ019._~!$&'()*+,;=:-%", max_size=6)


@st.composite
def near_valid(draw: st.DrawFn) -> str:
    """A valid URL, then (half the time) one tricky piece put in at any place."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP"]))
    user = draw(st.one_of(st.just(""), _safe.map(lambda t: t + "@")))
    host = draw(_host)
    port = draw(st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")))
    path = draw(st.lists(_safe, max_size=3).map(lambda parts: "".join("/" + p for p in parts)))
    url = f"{scheme}://{user}{host}{port}{path}"
    if draw(st.booleans()):
        at = draw(st.integers(0, len(url)))
        url = url[:at] + draw(_pieces) + url[at:]
    return url


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(spellings(), near_valid(), st.text(max_size=40)))
@example("http://attacker.example\\@prom.monitoring:9090")
@example("http://user:pw@alice:8080/x?y=1")
@example("https://[::1]:8443/")
@example("http://A_B.svc:80")
@example("HTTP://[0::]")
@example("http://::1%aa@prom.monitoring")  # found by a random run: requests cannot send it
def test_the_host_approved_is_the_host_every_client_connects_to(url: str) -> None:
    try:
        got = parse_url(url, allow_userinfo=True)
    except UrlError:
        return
    want = (got.host, got.port)
    views = client_views(url)
    assert views == dict.fromkeys(views, want), url
    # The canonical spelling requests are built from reads the same everywhere too.
    canonical = got.text()
    assert parse_url(canonical, allow_userinfo=True) == got
    assert client_views(canonical) == views
