"""Benchmark table and figures for the "Choosing a context" page.

Reads ``benchmarks/results.json`` at the repository root, in either of the two formats
the project writes:

* the peer suite's (``benchmarks/suite.py --write``): ``{"date", "machine", "versions",
  "workers", "quick", "results": {workload: {implementation: [run, ...]}}}``, where each
  run is ``{"seconds": ..., ...}`` or ``{"error": ...}``;
* ``pashmap bench --json FILE``'s: ``{"python", "cpus", "quick", "results": [row, ...]}``,
  one row per workload and context, ``{"workload", "context", "workers", "seconds", ...}``.

Times are medians over the runs. Speedups are the baseline's time divided by the
implementation's, per workload; the baseline is ``serial`` (a plain loop) when it was
measured, else ``local``, else the first implementation listed. Rows of the ``scaling``
workload carry ``"ns_per_element"``, ``{N: nanoseconds}``, and get a figure of their own.

The documentation build calls :func:`render` through ``docs/hooks.py``; nothing generated
is written into ``docs/``. To look at the figures without building the site::

    python docs/figures.py [--results benchmarks/results.json] [--out /tmp/figures]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
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
    if not isinstance(data, dict) or not isinstance(data.get("results"), (list, dict)):
        raise ValueError(f"{path}: expected a JSON object with 'results'")
    return data


_BASELINES = ("serial", "local", "pashmap-local")


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The results as flat rows ``{workload, implementation, workers, seconds, ...}``.

    Runs that failed are left out; several runs of one implementation become one row
    with the median time.
    """
    results = data["results"]
    if isinstance(results, list):
        return [
            {**row, "implementation": str(row.get("implementation") or row.get("context"))}
            for row in results
            if "seconds" in row
        ]
    flat = []
    for workload, by_implementation in results.items():
        for implementation, runs in by_implementation.items():
            good = [run for run in runs if "seconds" in run]
            if not good:
                continue
            row = dict(good[-1])
            row.update(
                workload=workload,
                implementation=implementation,
                seconds=statistics.median(float(run["seconds"]) for run in good),
            )
            flat.append(row)
    return flat


def _label(row: dict[str, Any]) -> str:
    name = str(row["implementation"])
    workers = row.get("workers")
    return f"{name} ({workers})" if workers and workers != 1 else name


def _speedups(data: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """(workload, implementation label, seconds, speedup over the baseline), in file order."""
    flat = rows(data)
    baseline: dict[str, float] = {}
    for workload in dict.fromkeys(row["workload"] for row in flat):
        times = {
            row["implementation"]: float(row["seconds"])
            for row in flat
            if row["workload"] == workload
        }
        name = next((b for b in _BASELINES if b in times), next(iter(times)))
        baseline[workload] = times[name]
    out = []
    for row in flat:
        seconds = float(row["seconds"])
        speedup = baseline[row["workload"]] / seconds if seconds else float("nan")
        out.append((str(row["workload"]), _label(row), seconds, speedup))
    return out


def table(data: dict[str, Any]) -> str:
    """The results as a Markdown table: one row per implementation, one column per workload.

    Each cell is the median time and, for throughput workloads, the speedup over the
    baseline; ``latency`` (the fixed cost of one map) shows the time only. The scaling
    series is left to :func:`scaling_figure`.
    """
    cells: dict[str, dict[str, str]] = {}
    workloads: list[str] = []
    for workload, label, seconds, speedup in _speedups(data):
        if workload == "scaling":
            continue
        if workload not in workloads:
            workloads.append(workload)
        text = _seconds(seconds)
        if workload != "latency":
            text += f" ({speedup:.2f}x)" if speedup >= 0.01 else " (<0.01x)"
        cells.setdefault(label, {})[workload] = text
    lines = [
        "| implementation (workers) | " + " | ".join(workloads) + " |",
        "| --- |" + " ---: |" * len(workloads),
    ]
    for label, row in cells.items():
        lines.append(f"| {label} | " + " | ".join(row.get(w, "") for w in workloads) + " |")
    return "\n".join(lines)


def _seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def speedup_figure(data: dict[str, Any]) -> bytes:
    """A grouped bar chart of the speedup over the baseline, per workload.

    The per-map latency and the scaling series are left to the table and to
    :func:`scaling_figure`: a ratio of latencies says little about throughput.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [r for r in _speedups(data) if r[0] not in ("latency", "scaling")]
    workloads = list(dict.fromkeys(r[0] for r in bars))
    labels = list(dict.fromkeys(r[1] for r in bars))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(workloads) * max(1, len(labels)) / 2))
    for k, label in enumerate(labels):
        values = {w: s for w, lab, _, s in bars if lab == label}
        positions = [i + k * width for i, w in enumerate(workloads) if w in values]
        ax.barh(positions, [values[w] for w in workloads if w in values], width, label=label)
    ax.set_yticks([i + width * (len(labels) - 1) / 2 for i in range(len(workloads))])
    ax.set_yticklabels(workloads)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("speedup over the baseline (higher is better)")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return _png(fig)


def scaling_figure(data: dict[str, Any]) -> bytes | None:
    """Per-element cost against N for the ``scaling`` workload, or ``None`` without it."""
    series = [r for r in rows(data) if isinstance(r.get("ns_per_element"), dict)]
    if not series:
        return None
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for row in series:
        points = sorted((int(n), float(ns)) for n, ns in row["ns_per_element"].items())
        ax.plot([n for n, _ in points], [ns for _, ns in points], marker="o", label=_label(row))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
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
            '!!! note "Results pending"\n'
            "    No benchmark results have been recorded for this build yet "
            f"(`{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}` is "
            "missing). Measure your own node with `pashmap bench` (see below); to show the "
            "numbers here, save them with `pashmap bench --json benchmarks/results.json` "
            "and rebuild the site.\n",
            {},
        )
    meta = "; ".join(
        f"{key}: {data[key]}"
        for key in ("date", "machine", "workers", "python", "cpus")
        if data.get(key)
    )
    parts = []
    if data.get("quick"):
        parts.append("These are `--quick` results (small sizes): indicative only.\n")
    if meta:
        parts.append(f"Conditions: {meta}.\n")
    versions = data.get("versions")
    if isinstance(versions, dict) and versions:
        listed = ", ".join(f"{name} {version}" for name, version in versions.items())
        parts.append(f"Versions: {listed}.\n")
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
