"""Slurm through dask-jobqueue: the job script a SLURMCluster submits starts a worker that
can import pashmap_dask (no Slurm here: the script is read, and its Python asked)."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

dask_jobqueue = pytest.importorskip("dask_jobqueue")


def test_slurm_job_script_starts_a_worker_that_can_import_pashmap_dask() -> None:
    # Configured as docs/dask.md shows (no job is submitted: nothing is scaled).
    with dask_jobqueue.SLURMCluster(
        queue="exfel",
        cores=16,
        processes=16,
        memory="128GB",
        walltime="02:00:00",
        python=sys.executable,
        scheduler_options={"dashboard_address": ":0"},
    ) as cluster:
        script = cluster.job_script()
    assert "#SBATCH -p exfel" in script
    assert "#SBATCH --cpus-per-task=16" in script
    command = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    words = shlex.split(command)
    assert words[0] == sys.executable
    assert words[words.index("--nworkers") + 1] == "16"
    assert words[words.index("--nthreads") + 1] == "1"
    # The Python the job starts imports pashmap_dask, and the worker module it runs.
    done = subprocess.run(
        [words[0], "-c", "import pashmap_dask.task, distributed.cli.dask_worker"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
