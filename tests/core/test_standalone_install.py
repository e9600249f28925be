"""pashmap-core installs and works alone, in a fresh virtual environment.

These tests build real venvs with uv (from its cache, or PyPI), install the core package
from this checkout without the other pashmap packages, and run the quick guide there.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(a) for a in args], check=True, capture_output=True, text=True, **kwargs
    )


@pytest.fixture(scope="module")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh venv holding pashmap-core and its dependencies only."""
    uv = pytest.importorskip("uv").find_uv_bin()
    venv = tmp_path_factory.mktemp("core-only") / "venv"
    run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    run(uv, "pip", "install", "--quiet", "--python", python, REPO / "packages" / "pashmap-core")
    return python


def run_code(python: Path, code: str) -> str:
    return run(python, "-c", textwrap.dedent(code)).stdout


def test_only_core_and_its_dependencies_are_installed(core_python: Path) -> None:
    listed = run(
        core_python,
        "-c",
        "import importlib.metadata as m; "
        "print(sorted(d.metadata['Name'].lower() for d in m.distributions()))",
    ).stdout
    assert "pashmap-core" in listed
    assert "pashmap-shm" not in listed
    assert "pashmap-xfel" not in listed


def test_quick_guide_runs_with_core_alone(core_python: Path) -> None:
    out = run_code(
        core_python,
        """
        import numpy as np
        import pashmap as pm

        inp = np.random.rand(100)
        outp = pm.array(100)

        def triple_it(worker_id, index, value):
            outp[index] = 3 * value

        pm.map(triple_it, inp)
        np.testing.assert_allclose(outp, inp * 3)
        print("quick guide ok")
        """,
    )
    assert "quick guide ok" in out


@pytest.mark.parametrize("name", ["processes", "threads"])
def test_parallel_contexts_give_the_install_hint(core_python: Path, name: str) -> None:
    out = run_code(
        core_python,
        f"""
        import pashmap as pm
        try:
            pm.set_default_context({name!r}, num_workers=4)
        except pm.MissingPluginError as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        """,
    )
    assert out.strip() == (
        f"the {name!r} context needs the pashmap-shm package: pip install pashmap-shm "
        "(from a source checkout: pip install ./packages/pashmap-shm)"
    )


def test_unknown_context_lists_names_and_the_plugin(core_python: Path) -> None:
    out = run_code(
        core_python,
        """
        import pashmap as pm
        try:
            pm.set_default_context("gpu")
        except ValueError as exc:
            print(exc)
        """,
    )
    assert "'local', 'serial'" in out
    assert "pip install pashmap-shm" in out


def test_the_command_works_with_core_alone(core_python: Path) -> None:
    pashmap = core_python.parent / "pashmap"
    info = run(pashmap, "info").stdout
    assert "pashmap-core" in info
    assert "pashmap-shm" not in info
    demo = run(pashmap, "demo", "--size", "10000").stdout
    assert "all results verified" in demo
    bench = run(pashmap, "bench", "--quick", "--workloads", "latency", "overhead").stdout
    assert "overhead   local" in bench


def test_extra_data_objects_without_pashmap_xfel_say_what_to_install(
    core_python: Path, tmp_path: Path
) -> None:
    uv = pytest.importorskip("uv").find_uv_bin()
    run(uv, "pip", "install", "--quiet", "--python", core_python, "extra-data")
    out = run_code(
        core_python,
        f"""
        import extra_data
        from extra_data.tests.make_examples import make_fxe_run
        import pashmap as pm

        make_fxe_run({str(tmp_path)!r})
        run = extra_data.RunDirectory({str(tmp_path)!r})
        for obj in (run, run.select("*XGM*"), run["SA1_XTD2_XGM/DOOCS/MAIN"]):
            try:
                pm.map(lambda *args: None, obj)
            except TypeError as exc:
                assert isinstance(exc, pm.MissingPluginError)
                print(exc)
        """,
    )
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.endswith(
            "need the pashmap-xfel package: pip install pashmap-xfel "
            "(from a source checkout: pip install ./packages/pashmap-xfel)"
        )


def test_the_printed_checkout_command_installs_the_plugin(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """What the MissingPluginError says to run, from a source checkout, works as written."""
    uv = pytest.importorskip("uv").find_uv_bin()
    venv = tmp_path_factory.mktemp("core-then-shm") / "venv"
    run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    run(uv, "pip", "install", "--quiet", "--python", python, REPO / "packages" / "pashmap-core")
    message = run_code(
        python,
        """
        import pashmap as pm
        try:
            pm.set_default_context("processes")
        except pm.MissingPluginError as exc:
            print(exc)
        """,
    )
    command = message.split("from a source checkout: ")[1].rstrip(")\n")
    assert command == "pip install ./packages/pashmap-shm"
    arguments = command.split()[2:]
    run(uv, "pip", "install", "--quiet", "--python", python, *arguments, cwd=REPO)
    out = run_code(
        python,
        """
        import pashmap as pm
        with pm.use_context("processes", num_workers=2):
            print(pm.map(lambda w, i, v: v * 2, [1, 2, 3]))
        """,
    )
    assert out.strip() == "[2, 4, 6]"
