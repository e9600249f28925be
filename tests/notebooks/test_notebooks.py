"""The quick guide and the XFEL guide as notebooks, on a real IPython kernel.

XFEL users work in Jupyter, where pashmap runs inside an ipykernel: a process with
threads of its own (heartbeat, IOPub, control) when the process context forks, whose
``sys.stdout`` is a ZMQ stream, and which the user interrupts with the stop button
(SIGINT to the kernel's whole process group, so the forked workers get it too). These
tests build notebooks from the docs pages' own blocks (one cell per block, so they stay
the pages' code) and execute them with nbclient, cell by cell, on a kernel started from
this interpreter:

- the quick guide (docs/getting-started.md): ``'processes'`` and ``'threads'`` from a
  kernel, every cell run twice (Run All, then Run All again) with the same results;
- a progress bar in notebook mode (``tqdm.auto`` picks ``tqdm.notebook`` in a kernel);
- a kernel interrupt while a cell runs a long map, under both contexts: the cell ends
  with a plain ``KeyboardInterrupt``, no worker process is left among the kernel's
  children, and the next cell's map is right;
- the XFEL guide (docs/xfel.md) on its mock runs, run twice too.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pashmap_shm")
psutil = pytest.importorskip("psutil")

from tests.docs.test_examples import DOCS, python_blocks, required_modules  # noqa: E402

KERNEL = "pashmap-test"
CELL_TIMEOUT = 60


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernel spec that starts an IPython kernel on this interpreter (the test env's)."""
    home = tmp_path_factory.mktemp("jupyter")
    spec = home / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "pashmap tests",
                "language": "python",
                "interrupt_mode": "signal",
            }
        )
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("JUPYTER_PATH", str(home))
        # No stray kernel-side config from the machine the tests run on.
        monkeypatch.setenv("IPYTHONDIR", str(home / "ipython"))
        monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(home / "config"))
        monkeypatch.setenv("MPLBACKEND", "Agg")
        yield KERNEL


def notebook(*sources: str) -> Any:
    """A notebook with one code cell per source."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


def page_notebook(page: str) -> tuple[Any, list[str]]:
    """The notebook of a docs page's Python blocks, and the modules the page needs."""
    text = (DOCS / page).read_text()
    return notebook(*(block.code for block in python_blocks(text))), required_modules(text)


class Session:
    """An nbclient client whose kernel stays up between the cells the test runs."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.nb = client.nb

    @property
    def kernel_pid(self) -> int:
        return int(self.client.km.provisioner.process.pid)

    def workers(self) -> list[Any]:
        """The kernel's child processes, living ones (zombies too: not reaped).

        Not counted: the resource trackers that EXtra-data's file opening (loky) and
        multiprocessing start once and keep for the kernel's lifetime.
        """
        kernel = psutil.Process(self.kernel_pid)
        return [
            child
            for child in kernel.children(recursive=True)
            if child.is_running() and "resource_tracker" not in " ".join(child.cmdline())
        ]

    def add(self, source: str, *, raises: bool = False) -> int:
        cell = nbformat.v4.new_code_cell(source)
        if raises:
            cell.metadata["tags"] = ["raises-exception"]
        self.nb.cells.append(cell)
        return len(self.nb.cells) - 1

    def run(self, index: int) -> list[Any]:
        """Execute cell ``index`` (again, if it ran before); return its outputs."""
        cell = self.nb.cells[index]
        cell.outputs = []
        self.client.execute_cell(cell, index)
        return list(cell.outputs)

    def run_all(self) -> None:
        for index in range(len(self.nb.cells)):
            outputs = self.run(index)
            assert_clean(outputs, f"cell {index}:\n{self.nb.cells[index].source}")

    def value(self, expression: str) -> Any:
        """The value of ``expression`` in the kernel (through its repr)."""
        index = self.add(expression)
        outputs = self.run(index)
        results = [o for o in outputs if o.output_type == "execute_result"]
        assert results, outputs
        return results[0]["data"]["text/plain"]


def assert_clean(outputs: list[Any], where: str) -> None:
    """No error and no warning or traceback printed by a cell."""
    for output in outputs:
        assert output.output_type != "error", f"{where}\n{output.ename}: {output.evalue}"
        if output.output_type == "stream" and output.name == "stderr":
            text = output.text
            assert "Traceback" not in text, f"{where}\n{text}"
            assert "Warning" not in text, f"{where}\n{text}"


@pytest.fixture(scope="module")
def kernel(kernel_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One running kernel for the module's tests (a kernel takes seconds to start)."""
    work = tmp_path_factory.mktemp("work")
    client = nbclient.NotebookClient(
        notebook(),
        kernel_name=kernel_name,
        timeout=CELL_TIMEOUT,
        startup_timeout=60,
        allow_errors=False,
        resources={"metadata": {"path": str(work)}},
    )
    with client.setup_kernel():
        client.work = work
        yield client


@pytest.fixture
def session(kernel: Any) -> Iterator[Session]:
    """The module's kernel, with an empty notebook; the default context back to local."""
    kernel.nb.cells = []
    session = Session(kernel)
    yield session
    kernel.nb.cells = []
    session.run(session.add("import pashmap as pm\npm.set_default_context('local')"))


def test_quick_guide_notebook_runs_twice(session: Session) -> None:
    """The quick guide, cell by cell, under local, processes and threads; then all again."""
    # The kernel forks with threads of its own running (heartbeat, IOPub, control).
    assert session.value("__import__('threading').active_count() > 1") == "True"
    guide, _ = page_notebook("getting-started.md")
    session.nb.cells.extend(guide.cells)
    session.run_all()  # each cell checks its map against numpy
    session.run_all()  # Run All again: same cells, same kernel (new random input)
    assert session.value("bool((outp == 3 * inp).all())") == "True"
    assert not session.workers()


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_rerun_cell_gives_the_same_map(session: Session, kind: str) -> None:
    """One cell re-run: the same map twice, the same result, no worker left."""
    session.add(
        "import numpy as np\n"
        "import pashmap as pm\n"
        f"pm.set_default_context({kind!r}, num_workers=2)\n"
        "results = []\n"
    )
    cell = session.add(
        "data = np.arange(1000.0)\n"
        "out = pm.zeros(len(data))\n"
        "def square(worker_id, index, value):\n"
        "    out[index] = value * value\n"
        "    return index\n"
        "returned = pm.map(square, data)\n"
        "results.append((out.copy(), returned))\n"
    )
    session.run_all()
    session.run(cell)
    assert session.value("len(results)") == "2"
    assert (
        session.value(
            "bool((results[0][0] == results[1][0]).all() and results[0][1] == results[1][1]"
            " and (results[1][0] == np.arange(1000.0) ** 2).all()"
            " and results[1][1] == list(range(1000)))"
        )
        == "True"
    )
    assert not session.workers()


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_progress_bar_in_notebook_mode(session: Session, kind: str) -> None:
    """``progress=True`` in a kernel draws tqdm's notebook widget, and the map is right."""
    pytest.importorskip("ipywidgets")
    session.add(
        "import time\n"
        "import numpy as np\n"
        "import pashmap as pm\n"
        f"pm.set_default_context({kind!r}, num_workers=2)\n"
    )
    bar = session.add(
        "out = pm.zeros(40)\n"
        "def slow(worker_id, index, value):\n"
        "    time.sleep(0.01)\n"
        "    out[index] = value + 1\n"
        "pm.map(slow, range(40), progress=True)\n"
        "assert (out == np.arange(40) + 1).all()\n"
    )
    session.run_all()
    outputs = session.nb.cells[bar].outputs
    widgets = [
        o
        for o in outputs
        if o.output_type == "display_data"
        and "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets, f"no tqdm notebook widget in the cell's outputs: {outputs}"


# How the interrupted cell maps: the context, and the map call (``slow`` over 2000
# elements, 20 s per worker, so the interrupt always comes first).
INTERRUPTED = {
    "processes": ("processes", "pm.map(slow, range(2000))"),
    "threads": ("threads", "pm.map(slow, range(2000))"),
    # the progress bar's thread and widget go too
    "processes-progress": ("processes", "pm.map(slow, range(2000), progress=True)"),
    "threads-progress": ("threads", "pm.map(slow, range(2000), progress=True)"),
    # warm workers kept between maps: the whole pool goes
    "processes-persistent": (
        "processes",
        "from pashmap_shm import ProcessContext\n"
        "with ProcessContext(2, persistent=True) as warm:\n"
        "    warm.map(slow, range(2000))",
    ),
}


@pytest.mark.parametrize("variant", list(INTERRUPTED))
def test_interrupt_during_a_map(session: Session, variant: str) -> None:
    """The stop button during a long map: KeyboardInterrupt, no worker left, next map right."""
    kind, call = INTERRUPTED[variant]
    started = session.client.work / f"started-{variant}"
    session.add(
        "import os, time\n"
        "import numpy as np\n"
        "import pashmap as pm\n"
        f"pm.set_default_context({kind!r}, num_workers=2)\n"
    )
    session.run_all()
    long_map = session.add(
        "def slow(worker_id, index, value):\n"
        "    if index == 0 or value == 1000:\n"
        f"        open('started-{variant}', 'w').close()\n"
        "    time.sleep(0.02)\n"
        f"{call}\n",
        raises=True,
    )
    after = session.add(
        "out = pm.zeros(500)\n"
        "def double(worker_id, index, value):\n"
        "    out[index] = 2 * value\n"
        "assert pm.map(double, np.arange(500.0)) == [None] * 500\n"
        "assert (out == 2 * np.arange(500.0)).all()\n"
        "'right'\n"
    )

    async def interrupt_when_started() -> None:
        client = session.client
        cell = session.nb.cells[long_map]
        task = asyncio.ensure_future(client.async_execute_cell(cell, long_map))
        give_up = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < give_up, "the long map did not start"
            assert not task.done(), cell.outputs
            await asyncio.sleep(0.02)
        if kind == "processes":
            assert session.workers(), "the map runs no worker process"
        await asyncio.sleep(0.2)
        await client.km.interrupt_kernel()
        await asyncio.wait_for(task, CELL_TIMEOUT)

    t0 = time.monotonic()
    nbclient.util.run_sync(interrupt_when_started)()
    assert time.monotonic() - t0 < 25, "the interrupt did not stop the map"

    outputs = session.nb.cells[long_map].outputs
    errors = [o for o in outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["KeyboardInterrupt"], outputs
    for output in outputs:  # nothing else: no worker's traceback, no warning
        if output.output_type == "stream":
            assert "Traceback" not in output.text, output.text
            assert "Error" not in output.text, output.text
    # Every worker is gone (reaped: not even a zombie), at once.
    deadline = time.monotonic() + 5
    while session.workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not session.workers(), [p.cmdline() for p in session.workers()]
    threads = "[t.name for t in __import__('threading').enumerate() if 'pashmap' in t.name]"
    assert session.value(threads) == "[]"  # no worker thread, no progress thread

    assert_clean(session.run(after), "the cell after the interrupt")
    assert "'right'" in str(session.nb.cells[after].outputs)
    assert not session.workers()


def test_xfel_guide_notebook_runs_twice(session: Session) -> None:
    """The XFEL guide on its mock runs, cell by cell; its map cells again, same kernel.

    (The first cell, which writes the mock runs, is not run again: it takes most of the
    time and maps nothing.)
    """
    guide, needs = page_notebook("xfel.md")
    for module in needs:
        pytest.importorskip(module)
    session.nb.cells.extend(guide.cells)
    session.run_all()
    for index, cell in enumerate(session.nb.cells):
        if "pm.map(" in cell.source:
            assert_clean(session.run(index), f"cell {index} again:\n{cell.source}")
    assert not session.workers()
