"""Real Dask clusters for the pashmap-dask tests, started by the tests themselves.

* ``dask_cluster`` (in the suite's root conftest): a ``LocalCluster`` of 2 single-threaded
  worker processes for the whole session; ``client`` and ``ctx`` run on it.
* ``scheduler_file``: a scheduler and 2 workers started as separate OS processes with
  ``dask scheduler --scheduler-file`` / ``dask worker --scheduler-file``, the way a Slurm
  batch job starts them; they cannot import the test modules (their ``sys.path`` is not
  pytest's), like workers on another node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from pashmap_dask import DaskContext  # noqa: E402

# The EuXFEL mock runs of tests/xfel, for the XFEL tests here.
from tests.xfel.conftest import (  # noqa: E402, F401
    agipd_run,
    dssc_run,
    fxe_run,
    jungfrau_run,
    lpd_missed_run,
    reduced_spb_run,
    spb_run,
)

# The `dask` command of this environment (as a job script would call it).
DASK_COMMAND = str(Path(sys.executable).with_name("dask"))


_clients: dict[int, Any] = {}


@pytest.fixture
def client(dask_cluster: Any) -> Any:
    """A Client on the shared LocalCluster (not the default client of the process), made
    once per cluster and closed with it."""
    made = _clients.get(id(dask_cluster))
    if made is None or made.status == "closed":
        for old in _clients.values():
            old.close()
        _clients.clear()
        made = _clients[id(dask_cluster)] = distributed.Client(dask_cluster, set_as_default=False)
    return made


def close_clients() -> None:
    """Close the clients made here (before their cluster closes), and stop the
    command-line clusters: the tests of other folders count and kill children."""
    for made in _clients.values():
        made.close()
    _clients.clear()
    while _command_line_clusters:
        _command_line_clusters.pop().stop()


@pytest.fixture
def ctx(client: Any) -> Iterator[DaskContext]:
    """A DaskContext on the session's LocalCluster: 2 workers, so 8 worker ids."""
    with DaskContext(client=client) as context:
        yield context


class Processes:
    """Command-line Dask processes started by a test, stopped at its end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.started: list[subprocess.Popen[bytes]] = []
        self.scheduler: subprocess.Popen[bytes] | None = None

    def start(self, command: list[str]) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        log = self.directory / f"{command[1]}-{len(self.started)}.log"
        with open(log, "wb") as stream:
            process = subprocess.Popen(
                command,
                cwd=self.directory,  # not the repository: the tests package is not importable
                env=env,
                stdout=stream,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        """What a process printed (for the message of a failed start)."""
        k = self.started.index(process)
        return "\n".join(p.read_text() for p in self.directory.glob(f"*-{k}.log"))

    def start_scheduler(self) -> None:
        self.scheduler = self.start(
            [
                DASK_COMMAND,
                "scheduler",
                "--scheduler-file",
                str(self.scheduler_file),
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ]
        )
        deadline = time.monotonic() + 120
        while not self.scheduler_file.exists():
            if time.monotonic() > deadline or self.scheduler.poll() is not None:
                raise RuntimeError(
                    f"the dask scheduler did not write its scheduler file:\n"
                    f"{self.log(self.scheduler)}"
                )
            time.sleep(0.1)

    def start_worker(self, *extra: str) -> None:
        self.start(
            [
                DASK_COMMAND,
                "worker",
                "--scheduler-file",
                str(self.scheduler_file),
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--worker-port",
                "0",
                "--nanny-port",
                "0",
                *extra,
            ]
        )

    def wait_for_workers(self, n: int) -> None:
        address = json.loads(self.scheduler_file.read_text())["address"]
        with distributed.Client(address, set_as_default=False, timeout=30) as client:
            client.wait_for_workers(n, timeout=60)

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# Session-long command-line clusters, stopped with the shared LocalCluster when the
# tests leave the folders that use them (see the root conftest).
_command_line_clusters: list[Processes] = []


@pytest.fixture(scope="session")
def scheduler_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The scheduler file of a scheduler and 2 workers started with the dask commands."""
    processes = Processes(tmp_path_factory.mktemp("dask-cli"))
    _command_line_clusters.append(processes)
    try:
        processes.start_scheduler()
        processes.start_worker()
        processes.start_worker()
        processes.wait_for_workers(2)
        yield processes.scheduler_file
    finally:
        processes.stop()


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[Processes]:
    """Command-line Dask processes of one test (a scheduler to kill, a worker to break)."""
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.stop()
