"""A script without ``if __name__ == "__main__":`` under forkserver/spawn (issue 13, item 17).

Workers started by ``'forkserver'`` or ``'spawn'`` import the main script again before
they serve; a map at its module level then runs in each of them too. The caller used to
report "exited with status 1 ... os._exit() in the kernel?", and each worker printed
multiprocessing's message about ``freeze_support()``. Both now say what happened and
what Python's documentation asks for: guard the entry point of the script.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.timeout(180), pytest.mark.parametrize("method", ["forkserver", "spawn"])]

GUARD = "if __name__ == '__main__':"


def run_script(path: Path, source: str, method: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a script; check that nothing it started outlives it."""
    path.write_text(textwrap.dedent(source))
    child = subprocess.Popen(
        [sys.executable, str(path), method],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    session = child.pid

    def in_session() -> list[psutil.Process]:
        left = []
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == session:
                    left.append(process)
            except (ProcessLookupError, PermissionError):
                pass
        return left

    _, alive = psutil.wait_procs(in_session(), timeout=10)
    assert not alive, "processes of the script outlived it"
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def assert_explained(done: subprocess.CompletedProcess[str], script: Path, line: int) -> None:
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: under start_method="), done.stderr
    assert GUARD in last
    assert f"line {line} of {script}" in last
    assert "Safe importing of main module" in last
    assert "os._exit()" not in last
    # The workers say it too, instead of multiprocessing's advice on freeze_support().
    # (Their tracebacks go to the same stderr at the same time and interleave in pieces
    # smaller than a line, even "RuntimeError" and ": " apart from the message: a CI run
    # on 3.12 under load had none of the workers' "RuntimeError: under ..." whole. The
    # message itself is written in one piece.)
    assert "freeze_support" not in done.stderr
    assert "so this worker tried to start workers of its own" in done.stderr


def test_a_map_at_module_level(tmp_path: Path, method: str) -> None:
    script = tmp_path / "unguarded.py"
    done = run_script(
        script,
        """
        import sys
        from pashmap_shm import ProcessContext

        ctx = ProcessContext(2, start_method=sys.argv[1])
        print(ctx.map(lambda wid, i, v: v * 2, range(4)))
        """,
        method,
    )
    assert_explained(done, script, line=6)


def test_a_main_function_called_unguarded(tmp_path: Path, method: str) -> None:
    script = tmp_path / "unguarded_main.py"
    done = run_script(
        script,
        """
        import sys
        import pashmap as pm

        def main():
            pm.set_default_context("processes", num_workers=2, start_method=sys.argv[1])
            return pm.map(lambda wid, i, v: v * 2, range(4))

        print(main())
        """,
        method,
    )
    assert_explained(done, script, line=9)


def test_the_guarded_script_runs(tmp_path: Path, method: str) -> None:
    done = run_script(
        tmp_path / "guarded.py",
        f"""
        import sys
        import pashmap as pm

        def main():
            pm.set_default_context("processes", num_workers=2, start_method=sys.argv[1])
            return pm.map(lambda wid, i, v: v * 2, range(4))

        {GUARD}
            print(main())
        """,
        method,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 2, 4, 6]"
