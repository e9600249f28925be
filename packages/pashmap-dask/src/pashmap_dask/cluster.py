"""Finding the Dask cluster a context runs on, checking it, and describing it.

In order: the ``client=`` given; a Client on the ``cluster=`` given; a Client on the
scheduler at ``address=`` or in ``scheduler_file=``; the current Client of this process;
the scheduler named by Dask's configuration (``DASK_SCHEDULER_ADDRESS`` or
``scheduler-address``); else an embedded ``LocalCluster`` of worker processes on this
node. :class:`Connection` remembers what it created, to close only that.
"""

from __future__ import annotations

import atexit
import os
import weakref
from dataclasses import dataclass, field
from typing import Any

from pashmap import MissingPluginError, PashmapError

__all__ = ["Connection", "ConnectionFailedError", "connect", "describe_cluster"]

# Seconds to wait for a scheduler named by an address or a scheduler file to answer.
CONNECT_TIMEOUT = 10.0


class ConnectionFailedError(PashmapError, ConnectionError):
    """The Dask scheduler a context was pointed at cannot be reached."""


@dataclass
class Connection:
    """A Client and whatever the context created to get it.

    Attributes:
        client: the ``distributed.Client`` maps run through.
        owned_client: the context created the client (and closes it).
        cluster: the embedded LocalCluster the context started, if any.
        source: how the cluster was found, for ``repr`` and ``pashmap info``.
    """

    client: Any
    owned_client: bool
    cluster: Any = None
    source: str = ""
    closed: bool = field(default=False)

    def close(self) -> None:
        """Close the client and the cluster if the context created them. Safe twice."""
        if self.closed:
            return
        self.closed = True
        if self.owned_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def connect(
    *,
    client: Any = None,
    cluster: Any = None,
    address: str | None = None,
    scheduler_file: str | os.PathLike[str] | None = None,
    n_workers: int | None = None,
) -> Connection:
    """Find or start the cluster, and check that its workers can run pashmap maps.

    Raises:
        TypeError: more than one of client, cluster, address and scheduler_file.
        FileNotFoundError: the scheduler file does not exist.
        ConnectionFailedError: the scheduler does not answer.
        MissingPluginError: a worker cannot import pashmap_dask.
    """
    given = {
        "client": client,
        "cluster": cluster,
        "address": address,
        "scheduler_file": scheduler_file,
    }
    chosen = [name for name, value in given.items() if value is not None]
    if len(chosen) > 1:
        raise TypeError(
            f"DaskContext takes one of client=, cluster=, address=, scheduler_file=; "
            f"got {', '.join(chosen)}"
        )
    import distributed

    if client is not None:
        if not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
        connection = Connection(client, owned_client=False, source="client")
    elif cluster is not None:
        connection = Connection(
            # Results come straight from the workers, not through the scheduler.
            distributed.Client(cluster, set_as_default=False, direct_to_workers=True),
            owned_client=True,
            source=f"cluster {type(cluster).__name__}",
        )
    elif address is not None:
        connection = Connection(
            _client_at(address, f"the Dask scheduler at {address}"),
            owned_client=True,
            source=f"scheduler {address}",
        )
    elif scheduler_file is not None:
        path = os.path.expanduser(os.fspath(scheduler_file))
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"the scheduler file {path} does not exist: start the scheduler with "
                f"'dask scheduler --scheduler-file {path}' (in a Slurm job: srun ... dask "
                "scheduler ...), or point scheduler_file= at the file it wrote"
            )
        connection = Connection(
            _client_at(path, f"the Dask scheduler of {path}", scheduler_file=True),
            owned_client=True,
            source=f"scheduler file {path}",
        )
    else:
        connection = _default_connection(distributed, n_workers)
    try:
        check_workers(connection.client)
    except BaseException:
        connection.close()
        raise
    return connection


def _client_at(where: str, label: str, *, scheduler_file: bool = False) -> Any:
    import distributed

    kwargs: dict[str, Any] = {"scheduler_file": where} if scheduler_file else {"address": where}
    try:
        return distributed.Client(timeout=CONNECT_TIMEOUT, set_as_default=False, **kwargs)
    except (OSError, TimeoutError) as exc:
        raise ConnectionFailedError(
            f"{label} does not answer (waited {CONNECT_TIMEOUT:g} s): is it running, and "
            f"reachable from this host? ({exc})"
        ) from exc


def _default_connection(distributed: Any, n_workers: int | None) -> Connection:
    try:
        current = distributed.Client.current(allow_global=True)
    except ValueError:
        current = None
    if current is not None and current.status == "running":
        return Connection(current, owned_client=False, source="current client")
    import dask

    address = dask.config.get("scheduler-address", None)
    if address:
        return Connection(
            _client_at(address, f"the Dask scheduler at {address} (Dask's scheduler-address)"),
            owned_client=True,
            source=f"scheduler {address}",
        )
    from pashmap.contexts import available_cpus

    workers = n_workers if n_workers is not None else available_cpus()
    # The workers' statistical profiler (for the dashboard) samples the running task's
    # stack every 10 ms, holding the GIL: measurably slower kernels on a busy node, for
    # a dashboard that nobody opens on an embedded cluster.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: 8787 may be taken
            silence_logs=40,  # logging.ERROR: a worker restarted after a crash is not news
        )
    client = distributed.Client(cluster, set_as_default=False, direct_to_workers=True)
    connection = Connection(
        client, owned_client=True, cluster=cluster, source=f"embedded LocalCluster({workers})"
    )
    _close_at_exit(connection)
    return connection


def _close_at_exit(connection: Connection) -> None:
    reference = weakref.ref(connection)

    def close() -> None:
        alive = reference()
        if alive is not None:
            alive.close()

    atexit.register(close)


def _make_probe() -> Any:
    """A function asking a worker whether it can import pashmap_dask; nested, so that
    cloudpickle sends it by value to workers that cannot import this module."""

    def probe() -> tuple[bool, str, str, str]:
        import socket
        import sys

        try:
            import pashmap_dask

            version = pashmap_dask.__version__
            ok = True
        except ImportError:
            version = ""
            ok = False
        return ok, version, sys.executable, socket.gethostname()

    return probe


def check_workers(client: Any) -> None:
    """Raise MissingPluginError unless every worker can import pashmap_dask."""
    if not scheduler_info(client)["workers"]:
        return  # none yet (a cluster still scaling up): checked again at each map's start
    answers = client.run(_make_probe(), on_error="return")
    missing = {
        address: answer
        for address, answer in answers.items()
        if isinstance(answer, tuple) and not answer[0]  # (an exception: a worker leaving)
    }
    if not missing:
        return
    address, (_, _, python, host) = next(iter(sorted(missing.items())))
    others = f" (and {len(missing) - 1} other workers)" if len(missing) > 1 else ""
    from pashmap_dask import __version__

    raise MissingPluginError(
        f"the Dask worker {address}{others} cannot import pashmap_dask: install it where "
        f"the workers run, on {host} into the Python environment of {python}: "
        f"pip install pashmap-dask=={__version__} (the same version as here)",
        package="pashmap-dask",
    )


def describe_cluster(client: Any) -> dict[str, Any]:
    """Workers, threads and memory of the cluster behind ``client``."""
    info = scheduler_info(client)
    workers = info.get("workers", {})
    return {
        "scheduler": info.get("address", ""),
        "workers": len(workers),
        "threads": sum(w.get("nthreads", 0) for w in workers.values()),
        "memory": sum(w.get("memory_limit", 0) or 0 for w in workers.values()),
    }


def scheduler_info(client: Any) -> dict[str, Any]:
    """The scheduler's description of itself and of all its workers."""
    try:
        info: dict[str, Any] = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before 2025: all workers always
        info = client.scheduler_info()
    return info
