"""`surge operator`: run the kopf operator with Surge's settings."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated

import typer

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
    max_rate: Annotated[
        float | None,
        typer.Option(help="Cluster-wide cap on any LoadTest's peak req/s [env SURGE_MAX_RATE]"),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between reconciles of a run in flight [env SURGE_INTERVAL_S]"),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="Glob a target host must match (repeatable) [env SURGE_ALLOWED_HOSTS]",
        ),
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
            max_rate=max_rate,
            allowed_hosts=tuple(allowed_host or ()),
            interval_s=interval,
        )
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
    asyncio.run(
        kopf.operator(
            clusterwide=not namespace,
            namespaces=list(namespace or ()),
            standalone=peering is None,
            # Naming a peering makes it mandatory in kopf, even with standalone set.
            peering_name=peering,
            liveness_endpoint=liveness,
            memo=kopf.Memo(surge=settings),
        )
    )


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
