"""pashmap's 'dask' context against the ways a Dask user writes the same jobs, in one run.

Everything runs on one ``distributed.LocalCluster`` of 2 single-threaded worker processes
started here (configured as DaskContext's embedded cluster: no statistical profiler in
the workers), side by side (variants interleaved round by round, medians compared), as
the machine is shared and noisy. Rows (issue 12):

* ``fixed``: a 16-element map (``out[index] = value``) vs ``client.map`` of 16 no-op
  tasks + ``gather``. Target: <= 2x.
* ``uniform``: pure-Python compute, ~3 s serial, 64 elements: LocalContext, the dask
  context, ``client.map`` over the same shares + ``gather``, ``dask.bag``, joblib's dask
  backend, and pashmap ``'processes'`` on this node. Target: dask context >= 1.7x
  faster than LocalContext.
* ``output``: a 256 MiB per-index output (rows of 256 KiB) vs ``client.map`` over the same
  shares returning arrays + ``np.concatenate``; the caller's peak RSS above what it held
  before (VmHWM, reset through /proc/self/clear_refs), per output size. Targets: >= 1.5x
  faster, peak <= 1.3x the output.
* ``xfel``: per-train mean image of a mock AGIPD module run: the serial ``trains()`` loop,
  the dask context, ``KeyData.dask_array(labelled=True).groupby('trainId').mean()``
  computed on the same cluster, and pashmap ``'processes'``. Targets: >= 1.5x the serial
  loop, >= 3x faster than the dask_array route.
* ``bytes``: one map writing a 1 GiB output (received by the caller) and one whose every
  share reads a 1 GiB input (sent, per worker), as the context counts them
  (``ctx.last_map_bytes``) and as Dask's workers count what they sent
  (``transfer_outgoing_bytes_total``). Targets: received <= 1.05 GiB; sent <= 1.1 GiB
  per worker.

Run:  hatch run bench:python benchmarks/dask_cluster.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from shm_common import interleave, report, timed
from xfel_keydata_mean import FRAME_SHAPE, KEY, SOURCE, read_all_files, write_run

MiB = 2**20
GiB = 2**30


def noop(x: Any) -> None:
    return None


# ------------------------------------------------------------------ fixed cost
def fixed_cost(ctx: Any, client: Any, rounds: int) -> dict[str, float]:
    out = ctx.zeros(16)

    def kernel(worker_id: int, index: int, value: int) -> None:
        out[index] = value

    def pashmap_dask() -> float:
        return timed(lambda: ctx.map(kernel, range(16)))

    def client_map() -> float:
        return timed(lambda: client.gather(client.map(noop, range(16), pure=False)))

    for _ in range(3):
        pashmap_dask(), client_map()
    results = interleave({"client.map+gather": client_map, "pashmap-dask": pashmap_dask}, rounds)
    return report("fixed: 16-element map", results, baseline="client.map+gather")


# ------------------------------------------------------------------ uniform
def spin(n: int) -> float:
    total = 0.0
    for k in range(n):
        total += k * 0.5
    return total


def uniform(ctx: Any, client: Any, rounds: int, seconds: float) -> dict[str, float]:
    import dask.bag
    import joblib

    import pashmap as pm

    elements = 64
    per_element = 20_000
    while timed(partial(spin, per_element)) * elements < seconds / 4:
        per_element *= 2
    per_element = int(per_element * seconds / (timed(partial(spin, per_element)) * elements))

    def kernel(worker_id: int, index: int, value: int) -> float:
        return spin(per_element)

    expected = [spin(per_element)] * elements
    shares = [range(k, min(k + 8, elements)) for k in range(0, elements, 8)]

    def run_share(share: range) -> list[float]:
        return [spin(per_element) for _ in share]

    try:
        from pashmap_shm import ProcessContext

        processes = ProcessContext(2)
    except ImportError:
        processes = None

    def check(values: list[float]) -> None:
        assert values == expected

    candidates: dict[str, Callable[[], float]] = {
        "LocalContext": lambda: timed(
            lambda: check(pm.LocalContext().map(kernel, range(elements)))
        ),
        "pashmap-dask": lambda: timed(lambda: check(ctx.map(kernel, range(elements)))),
        "client.map(shares)+gather": lambda: timed(
            lambda: check(
                [v for vs in client.gather(client.map(run_share, shares, pure=False)) for v in vs]
            )
        ),
        "dask.bag": lambda: timed(
            lambda: check(
                dask.bag.from_sequence(range(elements), npartitions=8)
                .map(lambda i: spin(per_element))
                .compute(scheduler=client.get)
            )
        ),
        "joblib-dask": lambda: timed(lambda: check(_joblib(joblib, client, per_element, elements))),
    }
    if processes is not None:
        candidates["pashmap-processes"] = lambda: timed(
            lambda: check(processes.map(kernel, range(elements)))
        )
    ctx.map(kernel, range(2))
    results = interleave(candidates, rounds)
    medians = report(f"uniform: pure-Python compute, {elements} elements", results, "LocalContext")
    print(
        f"  speedup of pashmap-dask over LocalContext: "
        f"{medians['LocalContext'] / medians['pashmap-dask']:.2f}x"
    )
    return medians


def _joblib(joblib: Any, client: Any, per_element: int, elements: int) -> list[float]:
    with joblib.parallel_backend("dask"):
        values: list[float] = joblib.Parallel()(
            joblib.delayed(spin)(per_element) for _ in range(elements)
        )
    return values


# ------------------------------------------------------------------ output
def peak_above(function: Callable[[], Any]) -> tuple[float, int]:
    """Seconds ``function`` took and the caller's peak RSS above its RSS before it."""
    with open("/proc/self/clear_refs", "w") as stream:
        stream.write("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    start = time.perf_counter()
    function()
    return time.perf_counter() - start, _status("VmHWM") - before


def _status(field: str) -> int:
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def output(ctx: Any, client: Any, rounds: int, nbytes: int) -> dict[str, float]:
    row = 32768  # float64: 256 KiB per index
    rows = nbytes // (row * 8)
    shares = [range(k, min(k + rows // 8, rows)) for k in range(0, rows, rows // 8)]
    peaks: dict[str, list[float]] = {"pashmap-dask": [], "client.map+concatenate": []}
    results: dict[str, list[float]] = {name: [] for name in peaks}

    def pashmap_dask() -> None:
        out = ctx.zeros((rows, row))

        def kernel(worker_id: int, index: int, value: int) -> None:
            out[index] = index

        ctx.map(kernel, range(rows))
        assert out[-1, 0] == rows - 1

    def make_rows(share: range) -> np.ndarray[Any, Any]:
        block = np.empty((len(share), row))
        for k, index in enumerate(share):
            block[k] = index
        return block

    def client_map() -> None:
        out = np.concatenate(client.gather(client.map(make_rows, shares, pure=False)))
        assert out[-1, 0] == rows - 1

    variants = {"pashmap-dask": pashmap_dask, "client.map+concatenate": client_map}
    for _ in range(rounds):
        for name, function in variants.items():
            seconds, peak = peak_above(function)
            results[name].append(seconds)
            peaks[name].append(peak / nbytes)
    medians = report(
        f"output: {nbytes // MiB} MiB per-index output", results, "client.map+concatenate"
    )
    for name, values in peaks.items():
        print(
            f"  {name:<34} caller peak RSS above start: {statistics.median(values):.2f}x the output"
        )
    speedup = medians["client.map+concatenate"] / medians["pashmap-dask"]
    print(f"  speedup of pashmap-dask: {speedup:.2f}x")
    return medians


# ------------------------------------------------------------------ xfel
def xfel(ctx: Any, client: Any, rounds: int, trains: int, frames: int) -> dict[str, float]:
    import extra_data

    import pashmap as pm

    with tempfile.TemporaryDirectory(prefix="pashmap-dask-bench-") as directory:
        path = Path(directory)
        write_run(path, trains, frames)
        read_all_files(path)
        run = extra_data.RunDirectory(directory, parallelize=False)
        kd = run[SOURCE, KEY]
        reference = np.stack([data.mean(axis=0) for _, data in kd.trains()])

        def serial() -> None:
            out = np.empty((trains, *FRAME_SHAPE), np.float32)
            for index, (_, data) in enumerate(kd.trains()):
                out[index] = data.mean(axis=0)
            np.testing.assert_allclose(out, reference, rtol=1e-5)

        def mean_image_map(context: Any) -> None:
            out = context.zeros((trains, *FRAME_SHAPE), np.float32)

            def kernel(worker_id: int, index: int, train_id: int, data: Any) -> None:
                out[index] = data.mean(axis=0)

            context.map(kernel, kd)
            np.testing.assert_allclose(out, reference, rtol=1e-5)

        def dask_array() -> None:
            frames_array = kd.dask_array(labelled=True)
            means = frames_array.groupby("trainId").mean("trainId")
            out = client.compute(means.data).result()
            np.testing.assert_allclose(out, reference, rtol=1e-5)

        candidates: dict[str, Callable[[], float]] = {
            "serial trains()": lambda: timed(serial),
            "pashmap-dask": lambda: timed(lambda: mean_image_map(ctx)),
            "KeyData.dask_array+groupby": lambda: timed(dask_array),
        }
        try:
            from pashmap_shm import ProcessContext

            processes = ProcessContext(2)
            candidates["pashmap-processes"] = lambda: timed(lambda: mean_image_map(processes))
        except ImportError:
            pass
        mean_image_map(ctx)
        results = interleave(candidates, rounds)
        medians = report(
            f"xfel: per-train mean image, {trains} trains x {frames} frames",
            results,
            "serial trains()",
        )
        mine = medians["pashmap-dask"]
        print(
            f"  pashmap-dask vs serial: {medians['serial trains()'] / mine:.2f}x faster;"
            f" vs dask_array: {medians['KeyData.dask_array+groupby'] / mine:.2f}x faster"
        )
        del pm
        return medians


# ------------------------------------------------------------------ bytes
def outgoing(client: Any) -> int:
    return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())


def bytes_per_map(ctx: Any, client: Any, nbytes: int) -> None:
    workers = len(client.scheduler_info()["workers"])
    row = 131072  # 1 MiB rows
    rows = nbytes // (row * 8)
    out = ctx.zeros((rows, row))

    def write(worker_id: int, index: int, value: int) -> None:
        out[index] = index

    before = outgoing(client)
    ctx.map(write, range(rows))
    sent_by_workers = outgoing(client) - before
    received = ctx.last_map_bytes["received"]
    print(f"\n## bytes: one map writing a {nbytes / GiB:.2f} GiB output")
    print(
        f"  received by the caller: {received / GiB:.4f} GiB (the context's count of what the "
        f"shares sent back), {sent_by_workers / GiB:.4f} GiB (Dask workers' count of bytes "
        f"they sent); {received / nbytes:.4f}x the output"
    )
    out[...] = 0

    data = np.random.default_rng(0).random(nbytes // 8)
    sums = ctx.zeros(64)

    def read(worker_id: int, index: int, value: int) -> None:
        sums[index] = data[index::64].sum()

    ctx.map(read, range(64))
    sent = ctx.last_map_bytes["sent"]
    print(f"\n## bytes: {ctx.num_workers} shares each reading a {nbytes / GiB:.2f} GiB input")
    print(
        f"  sent by the caller: {sent / GiB:.4f} GiB for {workers} workers = "
        f"{sent / workers / GiB:.4f} GiB per worker ({sent / workers / nbytes:.4f}x the input)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds")
    parser.add_argument("--rows", default="fixed,uniform,output,xfel,bytes")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    wanted = set(args.rows.split(","))

    import dask
    import distributed

    from pashmap_dask import DaskContext

    with (
        # As DaskContext's embedded cluster: without the workers' statistical profiler
        # (it samples the running task every 10 ms, holding the GIL), for every variant.
        dask.config.set({"distributed.worker.profile.enabled": False}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        # Both pashmap and the peers gather straight from the workers.
        distributed.Client(cluster, direct_to_workers=True) as client,
        DaskContext(client=client) as ctx,
    ):
        print(
            f"# pashmap 'dask' on a LocalCluster of 2 worker processes ({ctx!r}); "
            f"load average {os.getloadavg()}"
        )
        if "fixed" in wanted:
            fixed_cost(ctx, client, rounds * 6)
        if "uniform" in wanted:
            uniform(ctx, client, max(2, rounds // 2), 1.0 if args.quick else 3.0)
        if "output" in wanted:
            output(ctx, client, rounds, 32 * MiB if args.quick else 256 * MiB)
        if "xfel" in wanted:
            xfel(ctx, client, rounds, 20 if args.quick else 100, 16)
        if "bytes" in wanted:
            bytes_per_map(ctx, client, 64 * MiB if args.quick else GiB)
        print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
