"""Forking while other threads run: the deliberate handling of Python 3.12's warning."""

from __future__ import annotations

import threading
import warnings

import numpy as np

from pashmap_shm import ProcessContext


def test_map_while_another_python_thread_runs() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no DeprecationWarning escapes, on any Python
            ctx = ProcessContext(2)
            out = ctx.zeros(100)
            ctx.map(lambda wid, i, v: out.__setitem__(i, v), range(100))
    finally:
        stop.set()
        thread.join()
    np.testing.assert_array_equal(out, np.arange(100))


def test_map_called_from_a_thread() -> None:
    results: list[object] = []

    def run() -> None:
        try:
            results.append(ProcessContext(2).map(lambda wid, i, v: v * 2, range(10)))
        except BaseException as exc:  # reported below
            results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert results == [[v * 2 for v in range(10)]]
