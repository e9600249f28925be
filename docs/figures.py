"""Benchmark table and figures for the "Choosing a context" page.

Reads the JSON that ``pashmap bench --json FILE`` writes (by default from
``benchmarks/results.json`` at the repository root)::

    {"python": "3.11.7", "cpus": "...", "quick": false,
     "results": [{"workload": "overhead", "context": "processes", "workers": 2,
                  "seconds": 0.41, "speedup": 2.3, "peak_rss_mb": 80.1, ...}, ...]}

Rows may name an ``"implementation"`` instead of a ``"context"`` (peer benchmarks), and
may leave out ``"speedup"``: it is then the first row of the same workload's time divided
by the row's time. The ``scaling`` workload's rows carry ``"ns_per_element"``,
``{N: nanoseconds}``.

The documentation build calls :func:`render` through ``docs/hooks.py``; nothing generated
is written into ``docs/``. To look at the figures without building the site::

    python docs/figures.py [--results benchmarks/results.json] [--out /tmp/figures]
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"

# The figures, by file name under the site's figures/ directory.
SPEEDUP_PNG = "speedup.png"
SCALING_PNG = "scaling.png"


@dataclass
class Rendered:
    """What the page shows: Markdown for the results section, and the PNG files it uses."""

    markdown: str
    images: dict[str, bytes]


def load(path: Path = RESULTS) -> dict[str, Any] | None:
    """The results in ``path``, or ``None`` when there is no such file.

    Raises:
        ValueError: the file is not JSON with a ``results`` list.
    """
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"{path}: expected a JSON object with a 'results' list")
    return data


def _label(row: dict[str, Any]) -> str:
    name = str(row.get("implementation") or row.get("context") or "?")
    workers = row.get("workers")
    return f"{name} ({workers})" if workers and name not in ("local", "serial") else name


def _speedups(rows: list[dict[str, Any]]) -> list[tuple[str, str, float, float]]:
    """(workload, implementation label, seconds, speedup) for every row, in file order."""
    first: dict[str, float] = {}
    out = []
    for row in rows:
        workload = str(row["workload"])
        seconds = float(row["seconds"])
        first.setdefault(workload, seconds)
        speedup = row.get("speedup")
        if speedup is None:
            speedup = first[workload] / seconds if seconds else float("nan")
        out.append((workload, _label(row), seconds, float(speedup)))
    return out


def table(data: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| workload | implementation (workers) | median time | speedup |",
        "| --- | --- | ---: | ---: |",
    ]
    for workload, label, seconds, speedup in _speedups(data["results"]):
        lines.append(f"| {workload} | {label} | {_seconds(seconds)} | {speedup:.3g}x |")
    return "\n".join(lines)


def _seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def speedup_figure(data: dict[str, Any]) -> bytes:
    """A grouped bar chart of the speedup over the first implementation, per workload.

    The per-map latency and the scaling series are left to the table and to
    :func:`scaling_figure`: a ratio of latencies says little about throughput.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in _speedups(data["results"]) if r[0] not in ("latency", "scaling")]
    workloads = list(dict.fromkeys(r[0] for r in rows))
    labels = list(dict.fromkeys(r[1] for r in rows))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(workloads) * max(1, len(labels)) / 2))
    for k, label in enumerate(labels):
        values = {w: s for w, lab, _, s in rows if lab == label}
        positions = [i + k * width for i, w in enumerate(workloads) if w in values]
        ax.barh(positions, [values[w] for w in workloads if w in values], width, label=label)
    ax.set_yticks([i + width * (len(labels) - 1) / 2 for i in range(len(workloads))])
    ax.set_yticklabels(workloads)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speedup over the first implementation (higher is better)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return _png(fig)


def scaling_figure(data: dict[str, Any]) -> bytes | None:
    """Per-element cost against N for the ``scaling`` workload, or ``None`` without it."""
    rows = [r for r in data["results"] if isinstance(r.get("ns_per_element"), dict)]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for row in rows:
        points = sorted((int(n), float(ns)) for n, ns in row["ns_per_element"].items())
        ax.plot([n for n, _ in points], [ns for _, ns in points], marker="o", label=_label(row))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("elements N")
    ax.set_ylabel("time per element (ns)")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    # No timestamp or software tag in the file, so equal results give equal bytes.
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def render(path: Path = RESULTS) -> Rendered:
    """The Markdown of the results section and its figures, for the file at ``path``."""
    data = load(path)
    if data is None:
        return Rendered(
            "!!! note \"Results pending\"\n"
            "    No benchmark results have been recorded for this build yet "
            f"(`{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}` is "
            "missing). Measure your own node with `pashmap bench` (see below); to show the "
            "numbers here, save them with `pashmap bench --json benchmarks/results.json` "
            "and rebuild the site.\n",
            {},
        )
    meta = ", ".join(
        f"{key} {data[key]}" for key in ("date", "machine", "python", "cpus") if data.get(key)
    )
    parts = []
    if data.get("quick"):
        parts.append("These are `--quick` results (small sizes): indicative only.\n")
    if meta:
        parts.append(f"Recorded with {meta}.\n")
    parts.append(table(data) + "\n")
    images = {SPEEDUP_PNG: speedup_figure(data)}
    parts.append(f"![Speedup per workload](figures/{SPEEDUP_PNG})\n")
    scaling = scaling_figure(data)
    if scaling is not None:
        images[SCALING_PNG] = scaling
        parts.append(f"![Per-element cost against N](figures/{SCALING_PNG})\n")
    return Rendered("\n".join(parts), images)


def main(argv: list[str] | None = None) -> int:
    """Write the figures (and the Markdown) for a results file into a directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results JSON")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output directory")
    args = parser.parse_args(argv)
    rendered = render(args.results)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, png in rendered.images.items():
        (args.out / name).write_bytes(png)
    (args.out / "results.md").write_text(rendered.markdown)
    print(f"wrote {len(rendered.images)} figure(s) and results.md to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
