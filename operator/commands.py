"""`surge operator`: run the kopf operator with Surge's settings."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import Annotated, Any

import typer

from surge.operator.kube import leader
from surge.operator.kube.client import Kube
from surge.operator.settings import Settings, SettingsError, install


def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", help="Watch only these namespaces (repeatable); default: all"
        ),
    ] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(help="Default Prometheus for cluster metrics [env SURGE_PROMETHEUS_URL]"),
    ] = None,
    loadgen_image: Annotated[
        str | None, typer.Option(help="Default worker image [env SURGE_LOADGEN_IMAGE]")
    ] = None,
    worker_command: Annotated[
        str | None,
        typer.Option(help="Worker container command [env SURGE_WORKER_COMMAND]"),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="The cluster policy file (YAML; docs/security.md); default: the strict "
            "built-in policy [env SURGE_POLICY_FILE]"
        ),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between reconciles of a run in flight [env SURGE_INTERVAL_S]"),
    ] = None,
    peering: Annotated[
        str | None,
        typer.Option(
            help="kopf peering name for HA (needs kopf's peering CRDs); default: standalone"
        ),
    ] = None,
    liveness: Annotated[
        str | None,
        typer.Option(help="Serve liveness at this URL, e.g. http://0.0.0.0:8080/healthz"),
    ] = None,
    leader_elect: Annotated[
        bool,
        typer.Option(
            "--leader-elect",
            help="One of several replicas: act only while holding the leader Lease "
            "[env SURGE_LEADER_ELECT]",
        ),
    ] = False,
    leader_namespace: Annotated[
        str | None,
        typer.Option(
            help="Namespace of the leader Lease [env SURGE_LEADER_NAMESPACE, POD_NAMESPACE]"
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the LoadTest operator (kopf). Logs one JSON event per line when not on a TTY."""
    problem = credentials_problem()
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    import kopf

    try:
        settings = Settings.load(
            loadgen_image=loadgen_image,
            worker_command=tuple(worker_command.split()) if worker_command else None,
            prometheus_url=prometheus_url,
            policy_file=policy,
            interval_s=interval,
            leader_elect=leader_elect,
            leader_namespace=leader_namespace,
        )
        election = _election(settings)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    install(settings)  # before the handlers' module reads the interval at import

    import surge.operator.handlers  # noqa: F401  (registers the handlers)

    log_format = kopf.LogFormat.FULL if sys.stderr.isatty() else kopf.LogFormat.JSON
    kopf.configure(verbose=verbose, log_format=log_format)
    if not verbose:
        # kopf logs every timer tick of every object; transitions are logged by surge.operator.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kwargs: dict[str, Any] = {
        "clusterwide": not namespace,
        "namespaces": list(namespace or ()),
        "standalone": peering is None,
        # Naming a peering makes it mandatory in kopf, even with standalone set.
        "peering_name": peering,
        "liveness_endpoint": liveness,
        "memo": kopf.Memo(surge=settings),
    }
    if election is None:
        asyncio.run(kopf.operator(**kwargs))
        return
    if not asyncio.run(run_elected(election, kwargs, liveness)):
        raise typer.Exit(3)  # leadership lost: restart as a standby


def _election(settings: Settings) -> leader.Election | None:
    if not settings.leader_elect:
        return None
    if not settings.leader_namespace:
        raise SettingsError(
            "--leader-elect needs the Lease's namespace: --leader-namespace or POD_NAMESPACE"
        )
    identity = f"{socket.gethostname()}-{os.getpid()}"
    return leader.Election(
        namespace=settings.leader_namespace, identity=identity, duration_s=settings.leader_lease_s
    )


async def run_elected(
    election: leader.Election, kwargs: dict[str, Any], liveness: str | None
) -> bool:
    """Wait as a standby (liveness answered meanwhile), then run kopf while leading. Returns
    False when leadership was lost."""
    import kopf

    kube = Kube()
    probe = await _standby_liveness(liveness)
    try:
        await leader.acquire(kube, election)
    finally:
        if probe is not None:
            await probe.cleanup()
    lost = asyncio.Event()
    keeper = asyncio.create_task(leader.keep(kube, election, lost))
    try:
        await kopf.operator(**kwargs, stop_flag=lost)
    finally:
        keeper.cancel()
    return not lost.is_set()


async def _standby_liveness(url: str | None) -> Any:
    """A standby is alive too: answer the liveness URL until kopf takes it over."""
    if url is None:
        return None
    from urllib.parse import urlsplit

    from aiohttp import web

    async def alive(_: web.Request) -> web.Response:
        return web.Response(text="standby")

    parts = urlsplit(url)
    app = web.Application()
    app.router.add_get(parts.path or "/", alive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port or 80).start()
    return runner


def credentials_problem() -> str | None:
    """Why no Kubernetes API can be reached with the available credentials, or None.
    Checked before kopf starts, which would otherwise retry every minute with a traceback."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return None
    except ConfigException:
        pass
    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        return (
            f"no Kubernetes credentials: not running in a cluster, and the kubeconfig "
            f"failed ({exc}); set KUBECONFIG or run inside a pod with a ServiceAccount"
        )
    return None


def register(app: typer.Typer) -> None:
    app.command()(operator)
