"""The user's API in ``pashmap``; the authors' kits in ``pashmap.contexts`` / ``.targets``."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import pashmap as pm
import pashmap.contexts
import pashmap.targets

PACKAGES = Path(__file__).parents[2] / "packages"
PUBLIC_CORE = {"pashmap", "pashmap.contexts", "pashmap.targets", "pashmap.testing"}
# A plugin's benchmark module (its workloads for `pashmap bench`) may use the bench kit too;
# its runtime modules may not.
PUBLIC_BENCH = {"pashmap.bench.workloads"}
# The command hands `pashmap bench` to pashmap.bench lazily (test_cli: info and demo don't).
CLI = PACKAGES / "pashmap-core" / "src" / "pashmap" / "cli.py"


def test_the_user_api_leaves_author_types_to_the_kits() -> None:
    for name in ("BaseContext", "Context", "GuidedTarget", "ColumnarTarget", "TargetFactory"):
        assert name not in pm.__all__
    assert {"BaseContext", "Context", "LocalContext", "split_target"} <= set(
        pashmap.contexts.__all__
    )
    assert {"MapTarget", "GuidedTarget", "ranges_of_sizes"} <= set(pashmap.targets.__all__)
    for name in ("map", "array", "zeros", "Accumulator", "PerWorker", "MapTarget", "KernelError"):
        assert name in pm.__all__
    # Older code that imported them from pashmap still runs.
    assert pm.BaseContext is pashmap.contexts.BaseContext


def test_every_exported_name_exists_and_is_documented() -> None:
    for module in (pm, pashmap.contexts, pashmap.targets):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isfunction(value) or inspect.isclass(value):
                assert inspect.getdoc(value), f"{module.__name__}.{name} has no docstring"


@pytest.mark.parametrize(
    "function", [pm.array, pm.empty, pm.zeros, pm.ones, pm.full, pm.zeros_like, pm.full_like]
)
def test_module_level_helpers_show_no_self(function: object) -> None:
    parameters = list(inspect.signature(function).parameters)  # type: ignore[arg-type]
    assert parameters[0] != "self"
    assert "self" not in (inspect.getdoc(function) or "").split("(")[0]


def test_map_documents_its_options() -> None:
    doc = inspect.getdoc(pm.map) or ""
    assert "progress" in doc
    assert "timeout" in doc


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", ["pashmap-shm", "pashmap-xfel", "pashmap-dask"])
def test_plugins_import_only_public_core_names(package: str) -> None:
    sources = sorted((PACKAGES / package / "src").rglob("*.py"))
    if not sources:
        pytest.skip(f"{package} is not in this checkout")
    for path in sources:
        public = PUBLIC_CORE | PUBLIC_BENCH if _is_bench(path) else PUBLIC_CORE
        core = {m for m in _imports(path) if m == "pashmap" or m.startswith("pashmap.")}
        assert core <= public, f"{path.relative_to(PACKAGES)} imports {core - public}"


def _is_bench(path: Path) -> bool:
    return path.stem == "bench" or "bench" in path.parent.parts[-1:]


@pytest.mark.parametrize("package", ["pashmap-core", "pashmap-shm", "pashmap-xfel", "pashmap-dask"])
def test_the_runtime_never_imports_benchmark_code(package: str) -> None:
    sources = sorted((PACKAGES / package / "src").rglob("*.py"))
    if not sources:
        pytest.skip(f"{package} is not in this checkout")
    for path in sources:
        if _is_bench(path) or path == CLI:
            continue
        benches = {m for m in _imports(path) if m.endswith(".bench") or ".bench." in m}
        assert not benches, f"{path.relative_to(PACKAGES)} imports {benches}"
