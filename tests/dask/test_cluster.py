"""Finding the cluster: explicit client/cluster/address/scheduler file, the current
Client, Dask's configuration, the embedded LocalCluster, and clear errors."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

import dask
import distributed
import numpy as np
import pytest

import pashmap as pm
from pashmap_dask import DaskContext
from pashmap_dask.cluster import ConnectionFailedError


def quick_guide(context: pm.Context) -> None:
    inp = np.random.rand(40)
    outp = context.array(40)

    def triple_it(worker_id: int, index: int, value: float) -> None:
        outp[index] = 3 * value

    context.map(triple_it, inp)
    np.testing.assert_allclose(outp, inp * 3)


def test_scheduler_file_of_command_line_processes(scheduler_file: Path) -> None:
    # The workers run with another sys.path: this module's kernels travel by value.
    with DaskContext(scheduler_file=str(scheduler_file)) as context:
        assert context.cluster_info()["workers"] == 2
        quick_guide(context)
        assert context.map(lambda w, i, v: v + 1, [1, 2]) == [2, 3]


def test_address_and_cluster_and_the_current_client(dask_cluster: Any, client: Any) -> None:
    with DaskContext(address=dask_cluster.scheduler_address) as context:
        quick_guide(context)
        own = context.client
    assert own.status == "closed"  # made by the context: closed with it
    with DaskContext(cluster=dask_cluster) as context:
        quick_guide(context)
    assert dask_cluster.status.name == "running"  # given: left running
    with distributed.Client(dask_cluster) as current, DaskContext() as context:
        assert context.client is current
        quick_guide(context)
    assert client.status == "running"


def test_dask_config_scheduler_address(dask_cluster: Any) -> None:
    with (
        dask.config.set({"scheduler-address": dask_cluster.scheduler_address}),
        DaskContext() as context,
    ):
        assert "scheduler tcp://" in repr(context)
        quick_guide(context)


@pytest.mark.timeout(120)
def test_embedded_local_cluster_is_owned_and_closed() -> None:
    with DaskContext(2) as context:
        assert "embedded LocalCluster" in repr(context)
        assert context.cluster_info()["workers"] >= 1
        quick_guide(context)
        cluster = context._connection.cluster  # type: ignore[union-attr]
    assert cluster.status.name == "closed"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_address_that_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    import pashmap_dask.cluster

    monkeypatch.setattr(pashmap_dask.cluster, "CONNECT_TIMEOUT", 1.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match="does not answer") as caught:
        DaskContext(address=address)
    assert address in str(caught.value)
    assert time.monotonic() - started < 15


def test_a_scheduler_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dask scheduler --scheduler-file"):
        DaskContext(scheduler_file=str(tmp_path / "nope.json"))


def test_more_than_one_way_to_the_cluster(client: Any, dask_cluster: Any) -> None:
    with pytest.raises(TypeError, match="one of"):
        DaskContext(client=client, address=dask_cluster.scheduler_address)


@pytest.mark.timeout(120)
def test_workers_that_cannot_import_pashmap_dask(dask_processes: Any, tmp_path: Path) -> None:
    # A real worker whose Python cannot import pashmap_dask: a preload hides it.
    hide = tmp_path / "hide_pashmap_dask.py"
    hide.write_text("import sys\nsys.modules['pashmap_dask'] = None\n")
    dask_processes.start_scheduler()
    dask_processes.start_worker("--preload", str(hide))
    dask_processes.wait_for_workers(1)
    with pytest.raises(pm.MissingPluginError, match="pip install pashmap-dask") as caught:
        DaskContext(scheduler_file=str(dask_processes.scheduler_file))
    assert sys.executable in str(caught.value)
    assert socket.gethostname() in str(caught.value)
