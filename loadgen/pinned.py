"""The addresses a worker checked its target against, pinned for every connection it makes.

A worker resolves its target once, where it runs, and refuses addresses outside the
cluster policy's networks (surge.loadgen.worker.check_target_addresses). Without a pin each
new connection would resolve the name again, and a name whose DNS answers differently
(TTL 0, rebinding) would take the load elsewhere. One process, one target: a small
process-wide map, written once before the first request and read at each connect.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from typing import Any

_pins: dict[str, Iterator[str]] = {}


def pin(host: str, addresses: list[str]) -> None:
    """Connections to `host` go to these addresses, in turn (the name is still sent as
    Host and, for https, as SNI)."""
    if addresses:
        _pins[host.lower()] = itertools.cycle(list(addresses))


def unpin_all() -> None:
    _pins.clear()


def address_for(host: str) -> str:
    """The address to connect to for `host`: a pinned one, else the name itself."""
    addresses = _pins.get(host.lower())
    return next(addresses) if addresses is not None else host


def make_resolver() -> Any:
    """An aiohttp resolver that answers pinned names with their pinned addresses and
    resolves the rest as aiohttp does by default."""
    from aiohttp.abc import AbstractResolver
    from aiohttp.resolver import DefaultResolver

    class PinnedResolver(AbstractResolver):
        def __init__(self) -> None:
            self.default = DefaultResolver()

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[Any]:
            if host.lower() not in _pins:
                return await self.default.resolve(host, port, family)
            address = address_for(host)
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
            entry = {"hostname": host, "host": address, "port": port, "family": fam}
            return [{**entry, "proto": 0, "flags": flags}]

        async def close(self) -> None:
            await self.default.close()

    return PinnedResolver()
