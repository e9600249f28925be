"""What reaches the caller when a kernel fails in a way pickling is part of: exception
classes of the caller's ``__main__`` (issue 13, item 15) and return values that cannot be
pickled (item 16), under every kind of process worker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pashmap_shm import ProcessContext

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("pool_helper_processes")]

WORKERS = [
    pytest.param({}, id="fork"),
    pytest.param({"persistent": True}, id="persistent"),
    pytest.param({"start_method": "forkserver"}, id="forkserver"),
]

# Classes of __main__ raised by kernels, under each kind of worker, twice each. The
# 'late' class is defined after the warm workers started, as in a notebook; it must
# arrive as itself the first time as much as the second.
SCRIPT = """
import json
import sys

from pashmap_shm import ProcessContext


class EarlyError(Exception):
    pass


def warm_up(worker_id, index, value):
    return None


def outcome(ctx, raising):
    answers = []
    for _ in range(2):
        try:
            ctx.map(raising, range(4))
        except Exception as exc:
            answers.append([type(exc).__name__, type(exc) is raising.error, str(exc)[:4]])
        else:
            answers.append(["no error"])
    return answers


def early(worker_id, index, value):
    raise EarlyError(f"early {index}")


early.error = EarlyError


def run(ctx):
    ctx.map(warm_up, range(4))  # the workers start before LateError exists
    exec("class LateError(Exception):\\n    pass\\n", globals())

    def late(worker_id, index, value):
        raise LateError(f"late {index}")

    late.error = LateError
    return {"early": outcome(ctx, early), "late": outcome(ctx, late)}


if __name__ == "__main__":
    how = sys.argv[1]
    if how == "with":
        with ProcessContext(2) as ctx:
            print(json.dumps(run(ctx)))
    elif how == "persistent":
        print(json.dumps(run(ProcessContext(2, persistent=True))))
    elif how == "forkserver":
        print(json.dumps(run(ProcessContext(2, start_method="forkserver"))))
    else:
        print(json.dumps(run(ProcessContext(2, start_method="forkserver", persistent=True))))
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("main_classes") / "main_classes.py"
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize("how", ["forkserver", "persistent", "with", "forkserver-persistent"])
def test_exception_classes_of_main_arrive_as_themselves(script: Path, how: str) -> None:
    """Whatever the workers' history, the caller catches its own class, every time."""
    done = subprocess.run(
        [sys.executable, str(script), how], capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers == {
        "early": [["EarlyError", True, "earl"]] * 2,
        "late": [["LateError", True, "late"]] * 2,
    }


def locked(worker_id: int, index: int, value: int) -> object:
    return threading.Lock() if index == 5 else index


def generator(worker_id: int, index: int, value: int) -> Iterator[int]:
    return (index for _ in range(2))


class Groups:
    """A target whose shares are tuples of names, not ranges of indices."""

    def split(self, n: int) -> list[tuple[str, ...]]:
        return [("a", "b"), ("c", "d")]

    def iterate(self, share: tuple[str, ...]) -> Iterator[tuple[str, str]]:
        for name in share:
            yield name, name.upper()


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("options", WORKERS)
def test_an_unpicklable_return_value_is_named(options: dict[str, object]) -> None:
    """It is the kernel's return value, for element 5, and the message says what to do."""
    ctx = ProcessContext(2, **options)  # type: ignore[arg-type]
    try:
        for _ in range(2):
            with pytest.raises(TypeError) as caught:
                ctx.map(locked, range(10))
            message = str(caught.value)
            assert message.startswith(
                "the kernel's return value for element 5 (_thread.lock) cannot be sent to "
                "the caller, which needs it pickled (TypeError: cannot pickle '_thread.lock' "
                "object); "
            )
            assert "pm.array" in message
            assert "return plain data" in message
        # The workers are fine for the next map.
        assert ctx.map(lambda w, i, v: i, range(10)) == list(range(10))
    finally:
        ctx.close()


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("options", WORKERS)
def test_a_returned_generator_is_named(options: dict[str, object]) -> None:
    """A kernel returning a generator: the message says what to return instead."""
    ctx = ProcessContext(2, **options)  # type: ignore[arg-type]
    try:
        with pytest.raises(TypeError, match=r"\(generator\) .*; a generator cannot be sent"):
            ctx.map(generator, range(3))
    finally:
        ctx.close()


@pytest.mark.usefixtures("no_leaks")
def test_an_unpicklable_value_in_a_share_of_another_target() -> None:
    """Shares that are not ranges: the value's position in its share."""

    def kernel(worker_id: int, name: str, upper: str) -> object:
        return threading.Lock() if name == "d" else upper

    with ProcessContext(2) as ctx, pytest.raises(TypeError) as caught:
        ctx.map(kernel, Groups())
    assert str(caught.value).startswith(
        "the kernel's return value for element 1 of its share (_thread.lock) cannot be sent"
    )
