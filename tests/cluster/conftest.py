"""A real Ray cluster on this machine (a head and two worker nodes) and the loopback image server.

The head has no CPUs, so every task runs on a worker node, as on a real cluster where the head
holds the driver and the run's coordinator. Object stores are kept small: Ray keeps them in /dev/shm.
"""

from __future__ import annotations

import shutil

import pytest

from tests.download.conftest import server  # noqa: F401 - the download tests' per-test fault server
from tests.download.fault_server import running_fault_server

STORE_BYTES = 80 * 2**20  # Ray's floor is 75 MiB per node
WORKER_CPUS = 2


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")
    from ray.cluster_utils import Cluster

    if shutil.disk_usage("/dev/shm").free < 4 * STORE_BYTES:
        pytest.skip("Ray needs /dev/shm for its object stores: less than 320 MiB free")
    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={"num_cpus": 0, "object_store_memory": STORE_BYTES, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=WORKER_CPUS, object_store_memory=STORE_BYTES)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def image_server():
    """One loopback image server for the module (tests that count hits use paths of their own)."""
    with running_fault_server() as images:
        yield images
