"""https through the lean HTTP/1.1 client: TLS on the loop's own transport, verified as
aiohttp verifies (Python's default context: the system CAs, or SSL_CERT_FILE). The
target is the bench's "fast" server in its own process with a self-signed certificate
made for the test (openssl)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

import pytest

from surge.bench import targets
from surge.bench.rate import self_signed
from surge.loadgen import http1
from surge.loadgen.engine import Engine
from surge.loadgen.plan import WorkerPlan, build_plan
from tests.loadgen.conftest import make_spec

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def tls_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(https URL, certificate file) of a TLS target on 127.0.0.1."""
    pair = self_signed(tmp_path_factory.mktemp("tls"))
    if pair is None:
        pytest.skip("no openssl to make a certificate")
    proc, url = targets.start("fast", tls=pair)
    try:
        yield url, pair[0]
    finally:
        targets.stop(proc)


async def test_the_lean_client_speaks_tls_and_keeps_the_connection(
    tls_target: tuple[str, str],
) -> None:
    url, cert = tls_target
    lean = http1.Http1Client(url + "/", ssl.create_default_context(cafile=cert))
    assert lean.port == int(url.rsplit(":", 1)[1]) and lean.tls is not None
    try:
        for _ in range(20):
            assert await asyncio.wait_for(lean.request("GET", {}, None), 5) == 200
        assert len(lean._idle) == 1  # one kept-alive TLS connection served all 20
    finally:
        lean.close()


async def test_an_untrusted_certificate_is_refused(tls_target: tuple[str, str]) -> None:
    url, _ = tls_target
    lean = http1.Http1Client(url + "/", ssl.create_default_context())  # system CAs only
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.wait_for(lean.request("GET", {}, None), 5)
    finally:
        lean.close()
    assert http1.Http1Client("https://example.com/").port == 443


@pytest.mark.parametrize("path", ["lean", "aiohttp"])
async def test_both_client_paths_refuse_an_untrusted_certificate_as_connect(
    tls_target: tuple[str, str], path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = tls_target
    monkeypatch.setenv("SURGE_HTTP_CLIENT", path)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    refused = await Engine(_plan(url)).run()
    assert refused.counts["sent"] == refused.counts["connect"] == 50, refused.counts


async def test_a_worker_trusts_the_ca_file_it_is_given(
    tls_target: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # SSL_CERT_FILE (a mounted CA bundle) is read when the lean client is made, so a
    # worker's own environment is what counts. (aiohttp reads it once, at import: in
    # this process it was imported long before, hence the lean path alone here.)
    url, cert = tls_target
    monkeypatch.setenv("SURGE_HTTP_CLIENT", "lean")
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    trusted = await Engine(_plan(url)).run()
    assert trusted.counts["sent"] == trusted.counts["ok"] == 50, trusted.counts


def _plan(url: str) -> WorkerPlan:
    spec = make_spec(
        url,
        scenario={"method": "GET", "path": "/", "timeout": "5s"},
        load={"model": "constant", "stages": [{"duration": "1s", "target": 50}]},
    )
    return build_plan(spec, name="tls", namespace="t", run_id="1")
