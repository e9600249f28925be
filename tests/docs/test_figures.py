"""docs/figures.py: the benchmark section of "Choosing a context", from results JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pashmap_docs_figures", FIGURES)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_without_results_the_page_says_they_are_pending(
    figures: ModuleType, tmp_path: Path
) -> None:
    rendered = figures.render(tmp_path / "results.json")
    assert "Results pending" in rendered.markdown
    assert "pashmap bench --json" in rendered.markdown
    assert rendered.images == {}


def test_results_of_pashmap_bench(figures: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "results.json"
    path.write_text(
        json.dumps(
            {
                "python": "3.11.7",
                "cpus": "2 usable",
                "quick": True,
                "results": [
                    {"workload": "overhead", "context": "local", "workers": 1, "seconds": 0.2},
                    {"workload": "overhead", "context": "processes", "workers": 2, "seconds": 0.1},
                ],
            }
        )
    )
    rendered = figures.render(path)
    assert "| implementation (workers) | overhead |" in rendered.markdown
    assert "| processes (2) | 100 ms (2.00x) |" in rendered.markdown
    assert "`--quick`" in rendered.markdown
    assert set(rendered.images) == {"speedup.png"}
    assert rendered.images["speedup.png"].startswith(PNG_SIGNATURE)


def test_results_of_the_peer_suite(figures: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "results.json"
    scaling = {"10000": 300.0, "1000000": 60.0}
    path.write_text(
        json.dumps(
            {
                "date": "2026-11-25",
                "machine": "a test machine",
                "versions": {"pasha": "0.1.2"},
                "workers": 2,
                "quick": False,
                "results": {
                    "uniform": {
                        "serial": [{"seconds": 3.0}, {"seconds": 2.0}, {"seconds": 2.2}],
                        "pashmap-processes": [{"seconds": 1.1, "workers": 2}],
                        "pasha": [{"error": "failed"}],
                    },
                    "scaling": {
                        "pashmap-processes": [
                            {"seconds": 1.0, "workers": 2, "ns_per_element": scaling}
                        ]
                    },
                },
            }
        )
    )
    rendered = figures.render(path)
    assert "| serial | 2.2 s (1.00x) |" in rendered.markdown
    assert "| pashmap-processes (2) | 1.1 s (2.00x) |" in rendered.markdown
    assert "| pasha |" not in rendered.markdown  # its only run failed
    assert "Versions: pasha 0.1.2." in rendered.markdown
    assert set(rendered.images) == {"speedup.png", "scaling.png"}
    assert "(figures/scaling.png)" in rendered.markdown
