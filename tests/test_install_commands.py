"""Every install command the README and the docs give for a source checkout works.

The commands are read from the pages themselves (the README's install table, the shell
blocks of docs/ and of the package READMEs, and the install hint pashmap prints), so a
command that changes on a page is the command that is tested. Each runs in a fresh
virtual environment made with uv, from the repository root as the pages say, with
``pip install`` done by ``uv pip install``; then what it installed is used: the quick
guide under every context it registered (``progress=True`` where tqdm came along), and
``pashmap demo``, which with pashmap-xfel also maps over a mock EuXFEL run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pashmap-core", "pashmap-shm", "pashmap-xfel")

pytestmark = pytest.mark.slow

_CHECKOUT_INSTALL = re.compile(r"pip install (?:\./packages/[\w.-]+(?:\[[\w,]+\])?\s*)+")


def documented_commands() -> list[str]:
    """The ``pip install ./packages/...`` commands of the README and docs, once each."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    pages += sorted(REPO.glob("packages/*/README.md"))
    found: dict[str, None] = {}
    for page in pages:
        text = page.read_text().replace("\\\n", " ")  # shell line continuations
        for match in _CHECKOUT_INSTALL.finditer(text):
            found[" ".join(match.group(0).split())] = None
    return list(found)


COMMANDS = documented_commands()


def test_the_commands_are_found() -> None:
    """The README table's three rows are among them (the docs repeat the last)."""
    assert "pip install ./packages/pashmap-core" in COMMANDS
    assert "pip install ./packages/pashmap-core ./packages/pashmap-shm" in COMMANDS
    assert (
        "pip install ./packages/pashmap-core ./packages/pashmap-shm ./packages/pashmap-xfel"
        in COMMANDS
    )


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(  # type: ignore[call-overload]
        [str(a) for a in args], capture_output=True, text=True, cwd=REPO, **kwargs
    )
    assert done.returncode == 0, (
        f"{shlex.join(str(a) for a in args)} failed\n--- stdout\n{done.stdout}\n"
        f"--- stderr\n{done.stderr}"
    )
    return done  # type: ignore[no-any-return]


def fresh_venv(tmp_path: Path) -> Path:
    """A new venv; its python."""
    uv = pytest.importorskip("uv").find_uv_bin()
    venv = tmp_path / "venv"
    run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    return venv / "bin" / "python"


def pip_install(python: Path, command: str) -> None:
    """``command`` (``pip install ARGS``) as written, from the repository root."""
    uv = pytest.importorskip("uv").find_uv_bin()
    words = shlex.split(command)
    assert words[:2] == ["pip", "install"], command
    run(uv, "pip", "install", "--quiet", "--python", python, *words[2:])


def installed(python: Path) -> set[str]:
    listed = run(
        python,
        "-c",
        "import importlib.metadata as m; "
        "print(' '.join(d.metadata['Name'].lower() for d in m.distributions()))",
    ).stdout
    return {name for name in listed.split() if name.startswith("pashmap")}


USE_EVERY_CONTEXT = """
import importlib.util
import numpy as np
import pashmap as pm
from pashmap import registry

progress = importlib.util.find_spec("tqdm") is not None
for name in registry.context_names():
    options = {} if name in ("local", "serial") else {"num_workers": 2}
    with pm.use_context(name, **options):
        inp = np.random.rand(100)
        outp = pm.array(100)

        def triple_it(worker_id, index, value):
            outp[index] = 3 * value

        pm.map(triple_it, inp, progress=progress)
        np.testing.assert_allclose(outp, inp * 3)
    print(name, "ok")
"""


def contexts_work(python: Path) -> list[str]:
    """Run the quick guide under every registered context; the names that passed."""
    out = run(python, "-c", textwrap.dedent(USE_EVERY_CONTEXT)).stdout
    return [line.split()[0] for line in out.splitlines() if line.endswith(" ok")]


@pytest.mark.parametrize("command", COMMANDS)
def test_documented_install_command(command: str, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path)
    wanted = {Path(word.split("[")[0]).name for word in shlex.split(command)[2:]}
    if "pashmap-core" not in wanted:
        # a plugin alone: the hint that pashmap-core prints, so pashmap-core is there
        pip_install(python, "pip install ./packages/pashmap-core")
        wanted.add("pashmap-core")
    pip_install(python, command)
    assert installed(python) == wanted

    worked = contexts_work(python)
    assert "local" in worked
    if "pashmap-shm" in wanted:
        assert {"threads", "processes"} <= set(worked)
        # tqdm comes with pashmap-shm: the progress bar works out of the box
        run(python, "-c", "import tqdm")
    demo = run(python.parent / "pashmap", "demo", "--size", "20000").stdout
    assert "all results verified" in demo
    if "pashmap-xfel" in wanted:  # the mock EuXFEL run, mapped under every context
        assert "results verified against plain loops over trains()" in demo, demo


def test_the_printed_hints_complete_a_core_install(tmp_path: Path) -> None:
    """With pashmap-core alone, the commands its messages print add what is missing:
    the plugin hint (``pip install ./packages/pashmap-shm``, pashmap-core already there)
    and tqdm for ``progress=True``."""
    python = fresh_venv(tmp_path)
    pip_install(python, "pip install ./packages/pashmap-core")
    hint = run(
        python,
        "-c",
        "import pashmap as pm\n"
        "try:\n"
        "    pm.set_default_context('processes')\n"
        "except pm.MissingPluginError as exc:\n"
        "    print(exc)\n",
    ).stdout
    checkout = re.search(r"from a source checkout: (pip install \S+?)\)", hint)
    assert checkout is not None, hint
    pip_install(python, checkout.group(1))
    assert installed(python) == {"pashmap-core", "pashmap-shm"}
    assert {"threads", "processes"} <= set(contexts_work(python))

    core_only = fresh_venv(tmp_path / "core-only")
    pip_install(core_only, "pip install ./packages/pashmap-core")
    message = run(
        core_only,
        "-c",
        "import pashmap as pm\n"
        "try:\n"
        "    pm.map(lambda w, i, v: None, [1], progress=True)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n",
    ).stdout
    fix = re.search(r"pip install tqdm", message)
    assert fix is not None, message
    pip_install(core_only, fix.group(0))
    assert "local" in contexts_work(core_only)
