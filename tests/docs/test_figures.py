"""docs/figures.py: the benchmark section of "Choosing a context", from results JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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


def _suite_results(path: Path) -> Path:
    """A peer-suite file shaped like the real one: overhead rows that carry a per-element
    cost too, threads left out of the pure-Python workloads, peers far below 1x."""
    overhead = {"1000000": 170.0}
    scaling = {"10000": 900.0, "100000": 150.0, "1000000": 90.0}

    def run(seconds: float, per_element: dict[str, float] | None = None) -> list[Any]:
        entry: dict[str, Any] = {"seconds": seconds, "workers": 2}
        if per_element is not None:
            entry["ns_per_element"] = per_element
        return [entry]

    peers = ["pasha", "mp-pool", "futures", "joblib", "mpire"]
    path.write_text(
        json.dumps(
            {
                "workers": 2,
                "results": {
                    "overhead": {
                        "serial": run(0.17, overhead),
                        "pashmap-threads": run(0.2),
                        "pashmap-processes": run(0.1),
                        **{peer: run(3.0 + k, overhead) for k, peer in enumerate(peers)},
                    },
                    "uniform": {
                        "serial": run(1.5),
                        "pashmap-processes": run(0.8),
                        **{peer: run(0.9) for peer in peers},
                    },
                    "scaling": {
                        name: run(1.0, scaling)
                        for name in ["serial", "pashmap-local", "pashmap-threads", "pasha"]
                    },
                },
            }
        )
    )
    return path


def test_scaling_figure_has_one_series_per_implementation(
    figures: ModuleType, tmp_path: Path
) -> None:
    """Only the scaling workload's curves: serial and pasha once each (issue 14)."""
    data = figures.load(_suite_results(tmp_path / "results.json"))
    labels = [label for label, _ in figures.scaling_series(data)]
    assert [label.split()[0] for label in labels] == [
        "serial",
        "pashmap-local",
        "pashmap-threads",
        "pasha",
    ]
    assert len(set(labels)) == len(labels)


def test_every_series_has_its_own_colour_and_marker(figures: ModuleType) -> None:
    labels = [f"implementation {k}" for k in range(16)]
    style = figures.styles(labels)
    assert len({colour for colour, _ in style.values()}) == 16  # more than the 10 of tab10
    assert len(set(style.values())) == 16
    again = figures.styles(labels[:3])
    assert all(again[label] == style[label] for label in labels[:3])  # same in both figures


def test_figures_have_captions(figures: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rendered = figures.render(_suite_results(tmp_path / "results.json"))
    assert set(rendered.images) == {"speedup.png", "scaling.png"}
    for name in rendered.images:
        figure = rendered.markdown[rendered.markdown.index(f"(figures/{name})") :]
        caption = figure[: figure.index("</figure>")]
        assert "<figcaption>" in caption
        assert len(caption) > 80


def test_blank_cells_are_explained(figures: ModuleType, tmp_path: Path) -> None:
    rendered = figures.render(_suite_results(tmp_path / "results.json"))
    threads = next(
        line for line in rendered.markdown.splitlines() if line.startswith("| pashmap-threads")
    )
    assert "| — (1) |" in threads  # uniform: not run
    assert "(1) not run: a pure-Python kernel holds the GIL" in rendered.markdown


def test_small_speedups_are_drawn_and_readable(figures: ModuleType, tmp_path: Path) -> None:
    """Peers at 0.02-0.06x: bars on a log scale from 1x, labelled with their value."""
    data = figures.load(_suite_results(tmp_path / "results.json"))
    small = [s for w, _, s in figures.speedup_bars(data) if s < 0.1]
    assert small  # the peers' overhead bars are in the figure
    assert figures._ratio(0.0234) == "0.023x"
    assert figures._ratio(0.0014) == "0.0014x"
    assert "0.057x" in figures.table(data)  # 0.17 s / 3 s, not '0.06x' or '<0.01x'


def test_the_real_results_render(figures: ModuleType) -> None:
    """benchmarks/results.json, as the site shows it: no repeated series, captions."""
    pytest.importorskip("matplotlib")
    data = figures.load()
    if data is None:
        pytest.skip("no benchmarks/results.json")
    labels = [label for label, _ in figures.scaling_series(data)]
    assert len(labels) == len(set(labels))
    style = figures.styles(labels)
    assert len({colour for colour, _ in style.values()}) == len(labels)
    rendered = figures.render()
    assert rendered.markdown.count("<figcaption>") == len(rendered.images)
