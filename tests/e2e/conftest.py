"""Fixtures of the e2e tests on a real control plane (docs/cluster.md).

- ``cluster`` (session): the cluster of $KUBECONFIG when it answers, else the local one of
  hack/cluster, started when it is not running and stopped at the end unless --keep-cluster.
  Sets $KUBECONFIG for the session, so subprocesses (the operator) find the same cluster.
- ``api_client`` (session): a kubernetes ApiClient for it.
- ``crds`` (session; used automatically by every test marked ``cluster``): every CRD in the
  repo's crds/*.yaml, applied and Established.
- ``namespace`` (function): a fresh ``e2e-<uuid>`` namespace whose default ServiceAccount
  exists; deleted after the test.
- ``pod_runner`` (session): tests/support/podrunner.py running the pods bound to local-0.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import cluster as support
from tests.support.podrunner import PodRunner


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[support.Cluster]:
    env_kubeconfig = os.environ.get("KUBECONFIG")
    started_here = False
    if env_kubeconfig and support.answers(Path(env_kubeconfig)):
        kubeconfig = Path(env_kubeconfig)
    else:
        kubeconfig = support.LOCAL_KUBECONFIG
        # state.json is written last by up.sh: without it the cluster is half-started.
        if not (support.answers(kubeconfig) and support.read_state()):
            try:
                support.cluster_up()
            except Exception as exc:
                pytest.fail(f"cannot start the local cluster ({exc}); run `make cluster-build`")
            started_here = True
    local = kubeconfig.resolve() == support.LOCAL_KUBECONFIG.resolve()
    os.environ["KUBECONFIG"] = str(kubeconfig)
    api = support.api_client_for(kubeconfig)
    try:
        yield support.Cluster(
            kubeconfig=kubeconfig,
            api_client=api,
            state=support.read_state() if local else {},
            started_here=started_here,
        )
    finally:
        api.close()  # type: ignore[no-untyped-call]
        if env_kubeconfig is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = env_kubeconfig
        if started_here and not request.config.getoption("--keep-cluster"):
            support.cluster_down()


@pytest.fixture(scope="session")
def api_client(cluster: support.Cluster) -> client.ApiClient:
    return cluster.api_client


@pytest.fixture(scope="session")
def crds(api_client: client.ApiClient) -> list[str]:
    """Names of the CRDs of crds/*.yaml, applied once per session and Established."""
    paths = sorted((support.REPO_ROOT / "crds").glob("*.yaml"))
    return support.apply_crds(api_client, paths)


@pytest.fixture(autouse=True)
def _crds_for_cluster_tests(request: pytest.FixtureRequest) -> None:
    # Only tests marked `cluster` need (and start) the cluster; pure tests here stay pure.
    if request.node.get_closest_marker("cluster") is not None:
        request.getfixturevalue("crds")


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def default_sa() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # Pods are refused until the ServiceAccount controller made "default".
    support.wait_until(default_sa, timeout_s=30, what=f"ServiceAccount {name}/default")
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(scope="session")
def pod_runner(cluster: support.Cluster) -> Iterator[PodRunner]:
    with PodRunner(cluster.api_client, kubeconfig=str(cluster.kubeconfig)) as runner:
        yield runner
