"""Several threads mapping on one context with warm workers: one map at a time on the
pool, each right, none interleaved with another (they share the workers' sockets)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from pashmap_shm import ProcessContext

MAPS_PER_THREAD = 200

WARM = {
    "persistent": lambda: ProcessContext(2, persistent=True),
    "with-block": lambda: ProcessContext(2),
}


def _map_in_threads(ctx: ProcessContext, threads: int) -> list[str]:
    """Run MAPS_PER_THREAD maps in each of ``threads`` threads; the wrong answers."""
    wrong: list[str] = []
    start = threading.Barrier(threads)

    def caller(number: int) -> None:
        start.wait()
        try:
            for attempt in range(MAPS_PER_THREAD):
                offset = number * 1000 + attempt
                got = ctx.map(lambda w, i, v, o=offset: v + o, range(16))
                if got != [v + offset for v in range(16)]:
                    wrong.append(f"thread {number}, map {attempt}: {got}")
        except BaseException as exc:  # reported by the test
            wrong.append(f"thread {number}: {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=caller, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return wrong


@pytest.mark.timeout(120)
@pytest.mark.parametrize("attempt", range(50))
@pytest.mark.parametrize("kind", WARM)
@pytest.mark.usefixtures("no_leaks")
def test_maps_from_two_threads_on_warm_workers_are_all_right(kind: str, attempt: int) -> None:
    make: Callable[[], ProcessContext] = WARM[kind]
    with make() as ctx:
        assert _map_in_threads(ctx, threads=2) == []
        assert ctx.map(lambda w, i, v: v * 2, range(4)) == [0, 2, 4, 6]


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("no_leaks")
def test_writes_into_shared_arrays_from_two_threads_are_all_seen() -> None:
    with ProcessContext(2, persistent=True) as ctx:
        outs = [ctx.zeros(64), ctx.zeros(64)]
        errors: list[BaseException] = []

        def fill(number: int) -> None:
            out = outs[number]
            try:
                for value in range(1, 51):
                    ctx.map(lambda w, i, v, x=value: out.__setitem__(i, x), range(64))
                    if not np.all(out == value):
                        raise AssertionError(f"thread {number}, value {value}: {out}")
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=fill, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
