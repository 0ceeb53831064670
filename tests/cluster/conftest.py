"""A real Ray cluster on this machine (a head and two worker nodes) and the loopback image server.

The head has no CPUs, so every task runs on a worker node, as on a real cluster where the head
holds the driver and the run's coordinator. Object stores are kept small: Ray keeps them in /dev/shm.

Every node, the driver and the run's coordinator listen on loopback, as every server of the tests does: by
default Ray binds the address other machines reach this one by. `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` is Ray's
switch for a cluster kept on one machine; Ray reads it when first imported, which is after this file.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.download.conftest import server  # noqa: F401 - the download tests' per-test fault server
from tests.download.fault_server import running_fault_server

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

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
    assert ray.util.get_node_ip_address() == "127.0.0.1", "Ray was imported before tests/cluster/conftest.py"
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def image_server():
    """One loopback image server for the module (tests that count hits use paths of their own)."""
    with running_fault_server() as images:
        yield images
