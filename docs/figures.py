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


# Cells the suites leave empty on purpose, and why (implementation substring, workload).
_NOT_RUN = {
    ("threads", "uniform"): "a pure-Python kernel holds the GIL: threads cannot beat serial",
    ("threads", "skewed"): "a pure-Python kernel holds the GIL: threads cannot beat serial",
}


def _failures(data: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(workload, implementation) whose runs all failed, with the first error."""
    results = data["results"]
    failed: dict[tuple[str, str], str] = {}
    if isinstance(results, dict):
        for workload, by_implementation in results.items():
            for implementation, runs in by_implementation.items():
                if runs and not any("seconds" in run for run in runs):
                    failed[(workload, implementation)] = str(runs[0].get("error", "failed"))
    return failed


def blank_reason(implementation: str, workload: str, failed: dict[tuple[str, str], str]) -> str:
    """Why the table has no time for ``implementation`` on ``workload``."""
    if (workload, implementation) in failed:
        return f"failed ({failed[(workload, implementation)]})"
    for (kind, skipped), reason in _NOT_RUN.items():
        if kind in implementation and skipped == workload:
            return f"not run: {reason}"
    return "not measured"


def table(data: dict[str, Any]) -> str:
    """The results as a Markdown table: one row per implementation, one column per workload.

    Each cell is the median time and, for throughput workloads, the speedup over the
    baseline; ``latency`` (the fixed cost of one map) shows the time only. The scaling
    series is left to :func:`scaling_figure`. A cell without a time holds a dash with a
    numbered note under the table that says why (not run on purpose, failed, or not
    measured).
    """
    cells: dict[str, dict[str, str]] = {}
    names: dict[str, str] = {}
    workloads: list[str] = []
    for row in rows(data):
        names.setdefault(_label(row), str(row["implementation"]))
    for workload, label, seconds, speedup in _speedups(data):
        if workload == "scaling":
            continue
        if workload not in workloads:
            workloads.append(workload)
        text = _seconds(seconds)
        if workload != "latency":
            text += f" ({_ratio(speedup)})"
        cells.setdefault(label, {})[workload] = text
    failed = _failures(data)
    notes: list[str] = []
    lines = [
        "| implementation (workers) | " + " | ".join(workloads) + " |",
        "| --- |" + " ---: |" * len(workloads),
    ]
    for label, row in cells.items():
        shown = []
        for workload in workloads:
            if workload in row:
                shown.append(row[workload])
                continue
            reason = blank_reason(names[label], workload, failed)
            if reason not in notes:
                notes.append(reason)
            shown.append(f"— ({notes.index(reason) + 1})")
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    if notes:
        lines.append("")
        lines.extend(
            f"{'Dashes: ' if k == 0 else ''}({k + 1}) {note}" + (";" if k < len(notes) - 1 else ".")
            for k, note in enumerate(notes)
        )
    return "\n".join(lines)


def _ratio(speedup: float) -> str:
    """A speedup as text that stays readable when small (0.0014x, not 0.00x)."""
    if speedup != speedup:  # nan
        return "n/a"
    return f"{speedup:.2f}x" if speedup >= 0.1 else f"{speedup:.2g}x"


def _seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


# One colour and one marker per implementation, the same in both figures, and never
# two series alike: matplotlib's default cycle repeats after 10 colours.
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
    "#8c6d31", "#843c39", "#7b4173", "#3182bd",
)  # fmt: skip
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


def styles(labels: list[str]) -> dict[str, tuple[str, str]]:
    """A distinct (colour, marker) for each label, in order (unique up to 16 x 12)."""
    return {
        label: (_PALETTE[k % len(_PALETTE)], _MARKERS[(k // len(_PALETTE) + k) % len(_MARKERS)])
        for k, label in enumerate(dict.fromkeys(labels))
    }


SPEEDUP_CAPTION = (
    "Speedup over the baseline per workload (median times, log scale). Bars start at "
    "1x: to the right the implementation is faster than the baseline, to the left "
    "slower; each bar is labelled with its value. The per-map latency is in the table."
)
SCALING_CAPTION = (
    "Time per element against the number of elements N, for the `scaling` workload "
    "(log-log): the fixed cost of a map is spread over more elements as N grows, and "
    "each curve flattens at the implementation's cost per element."
)


def speedup_bars(data: dict[str, Any]) -> list[tuple[str, str, float]]:
    """The bars of the speedup figure: (workload, implementation label, speedup)."""
    return [
        (w, label, s)
        for w, label, _, s in _speedups(data)
        if w not in ("latency", "scaling") and s == s and s > 0
    ]


def speedup_figure(data: dict[str, Any]) -> bytes:
    """A grouped bar chart of the speedup over the baseline, per workload.

    Log scale, bars drawn from 1x, so that 0.02x is as visible as 50x, and each bar
    carries its value. The per-map latency and the scaling series are left to the table
    and to :func:`scaling_figure`: a ratio of latencies says little about throughput.
    """
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = speedup_bars(data)
    workloads = list(dict.fromkeys(r[0] for r in bars))
    labels = list(dict.fromkeys(r[1] for r in bars))
    style = styles(labels)
    width = 0.8 / max(1, len(labels))
    height = 1.6 + 0.16 * len(workloads) * max(1, len(labels)) + 0.2 * len(labels) / 3
    fig, ax = plt.subplots(figsize=(6.5, height))
    values = [s for _, _, s in bars] or [1.0]
    low, high = min(min(values), 1.0), max(max(values), 1.0)
    for k, label in enumerate(labels):
        mine = {w: s for w, lab, s in bars if lab == label}
        positions = [i + k * width for i, w in enumerate(workloads) if w in mine]
        speedups = [mine[w] for w in workloads if w in mine]
        ax.barh(
            positions,
            [s - 1.0 for s in speedups],
            width * 0.9,
            left=1.0,
            color=style[label][0],
            label=label,
        )
        for y, value in zip(positions, speedups, strict=True):
            ax.annotate(
                _ratio(value),
                (value, y),
                xytext=(3 if value >= 1 else -3, 0),
                textcoords="offset points",
                ha="left" if value >= 1 else "right",
                va="center",
                fontsize=7,
            )
    # A slot without a bar says why (threads on pure-Python workloads: not run).
    names = {_label(row): str(row["implementation"]) for row in rows(data)}
    failed = _failures(data)
    for k, label in enumerate(labels):
        for i, workload in enumerate(workloads):
            if not any(w == workload and lab == label for w, lab, _ in bars):
                reason = blank_reason(names.get(label, label), workload, failed)
                ax.annotate(
                    f"{label}: " + ("not run (GIL)" if "GIL" in reason else reason.split(":")[0]),
                    (1.0, i + k * width),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                    color="0.4",
                )
    ax.set_xscale("log")
    ax.set_xlim(low / 3, high * 3)  # room for the labels at both ends
    ax.set_yticks([i + width * (len(labels) - 1) / 2 for i in range(len(workloads))])
    ax.set_yticklabels(workloads)
    ax.set_ylim(len(workloads) - 0.1, -0.1 - width)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.set_xlabel("speedup over the baseline (log scale; right of 1x is faster)")
    ax.grid(True, axis="x", which="major", alpha=0.3)
    _legend_below(ax, len(labels))
    fig.tight_layout()
    return _png(fig)


def _legend_below(ax: Any, entries: int) -> None:
    """The legend under the axes, in columns: it never covers a bar or a curve, and the
    plot keeps the page's whole width (a legend beside it shrank the figure)."""
    below = 0.6 / (ax.figure.get_figheight() * 0.8)  # about 0.6 in under the axes
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -below),
        ncol=min(3, max(1, entries)),
        fontsize="small",
        frameon=False,
    )


def scaling_series(data: dict[str, Any]) -> list[tuple[str, list[tuple[int, float]]]]:
    """The curves of the scaling figure: (label, [(N, ns per element), ...]).

    Only the ``scaling`` workload's rows: others (``overhead``) may carry a per-element
    cost of their own, at one N, which is not a curve. One curve per label.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows(data):
        if row.get("workload") != "scaling" or not isinstance(row.get("ns_per_element"), dict):
            continue
        points = sorted((int(n), float(ns)) for n, ns in row["ns_per_element"].items())
        series.setdefault(_label(row), points)
    return list(series.items())


def scaling_figure(data: dict[str, Any]) -> bytes | None:
    """Per-element cost against N for the ``scaling`` workload, or ``None`` without it."""
    series = scaling_series(data)
    if not series:
        return None
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = styles([label for label, _ in series])
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    for label, points in series:
        colour, marker = style[label]
        ax.plot(
            [n for n, _ in points],
            [ns for _, ns in points],
            marker=marker,
            color=colour,
            label=label,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("elements N")
    ax.set_ylabel("time per element (ns)")
    _legend_below(ax, len(series))  # inside, it covered the start of the curves
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _figure(name: str, alt: str, caption: str) -> str:
    """A figure with its caption (Material's ``<figure markdown>``, md_in_html)."""
    return (
        f'<figure markdown="span">\n'
        f"  ![{alt}](figures/{name})\n"
        f"  <figcaption>{_inline_code(caption)}</figcaption>\n"
        f"</figure>\n"
    )


def _inline_code(text: str) -> str:
    """`code` spans as HTML, since a figcaption's content is not Markdown."""
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if k % 2 else p for k, p in enumerate(parts))


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
    parts.append(_figure(SPEEDUP_PNG, "Speedup per workload", SPEEDUP_CAPTION))
    scaling = scaling_figure(data)
    if scaling is not None:
        images[SCALING_PNG] = scaling
        parts.append(_figure(SCALING_PNG, "Per-element cost against N", SCALING_CAPTION))
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
