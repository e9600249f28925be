"""The public API helps the user's type checker: mypy --strict on code written against it."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

USER_CODE = """
from collections.abc import Iterator
import numpy as np
import pashmap as pm
from pashmap.contexts import Context
from pashmap.targets import contiguous_ranges

def triple_it(worker_id: int, index: int, value: float) -> float:
    return 3 * value

def word_length(worker_id: int, index: int, word: str) -> int:
    return len(word)

squares: list[float] = pm.map(triple_it, [1.0, 2.0])
lengths: list[int] = pm.map(word_length, ["a", "bc"])
from_array: list[float] = pm.map(triple_it, np.zeros(3))
reveal_type(pm.map(word_length, ("x", "y")))

out = pm.array(10)
reveal_type(out)
acc = pm.zeros((4, 4), np.int64, per_worker=True)
like = pm.full_like(acc, 3)
ctx: Context = pm.get_default_context()
with pm.use_context("local") as local:
    reveal_type(local)
    local.map(triple_it, [1.0])

class Lines:
    def split(self, n: int) -> list[range]:
        return contiguous_ranges(3, n)

    def iterate(self, share: range) -> Iterator[tuple[int, str]]:
        return ((i, "line") for i in share)

target: pm.MapTarget[range] = Lines()
pm.map(word_length, target)
"""

WRONG_CODE = """
import pashmap as pm

def word_length(worker_id: int, index: int, word: str) -> int:
    return len(word)

pm.map(word_length, [1, 2, 3])          # values are ints, the kernel wants str
pm.map(lambda: None, [1])                # no worker_id/index parameters
pm.array(10, order="K")                  # not a memory order pashmap supports
"""


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    api = pytest.importorskip("mypy.api")
    cache = tmp_path_factory.mktemp("mypy-cache")

    def check(code: str, name: str) -> tuple[str, int]:
        path = Path(cache) / f"{name}.py"
        path.write_text(textwrap.dedent(code))
        stdout, stderr, status = api.run(
            ["--strict", "--cache-dir", str(cache / ".cache"), "--no-incremental", str(path)]
        )
        return stdout + stderr, status

    return check


@pytest.mark.slow
def test_correct_user_code_type_checks(mypy_run) -> None:  # type: ignore[no-untyped-def]
    output, _ = mypy_run(USER_CODE, "user_code")
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert errors == [], output
    assert re.search(r'Revealed type is "(builtins\.)?list\[(builtins\.)?int\]"', output), output
    assert "numpy.ndarray" in output
    assert "pashmap.context.Context" in output


@pytest.mark.slow
def test_wrong_user_code_is_flagged(mypy_run) -> None:  # type: ignore[no-untyped-def]
    output, status = mypy_run(WRONG_CODE, "wrong_code")
    assert status == 1
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert any(":7:" in line for line in errors), output
    assert any(":8:" in line for line in errors), output
    assert any(":9:" in line for line in errors), output
