"""Importing pashmap is cheap: no plugin, no xarray, no entry-point scan until needed."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout


def test_import_loads_no_plugin_and_no_entry_point_machinery() -> None:
    loaded = run("import sys, pashmap; print(' '.join(sorted(sys.modules)))").split()
    for heavy in ("pashmap_shm", "pashmap_xfel", "xarray", "extra_data", "h5py", "pandas"):
        assert heavy not in loaded, f"import pashmap imported {heavy}"
    # No entry point is read at import: that happens on the first map or context lookup.
    assert "importlib.metadata" not in loaded


def test_importtime_of_pashmap_itself_is_small() -> None:
    # Not a wall-clock bound: -X importtime's own accounting, in one run, of pashmap's
    # modules (their "self" times, which exclude what they import) against numpy's whole
    # import, which pashmap needs anyway. Both slow down alike on a busy machine; today
    # pashmap's part is about a tenth of numpy's, so half catches a real regression only.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pashmap"],
        check=True,
        capture_output=True,
        text=True,
    )
    own: dict[str, int] = {}
    cumulative: dict[str, int] = {}
    for line in result.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        name = parts[2]
        cumulative[name] = int(parts[1])
        if name.startswith("pashmap"):
            own[name] = int(parts[0].split(":")[-1])
    assert "pashmap" in own
    assert not any(name.startswith(("pashmap_shm", "pashmap_xfel")) for name in own)
    assert not any(name.startswith("pashmap.bench") for name in own)
    numpy = cumulative["numpy"]
    assert sum(own.values()) < numpy / 2, (
        f"pashmap's own modules took {sum(own.values())} us to import, numpy {numpy} us: "
        f"{sorted(own.items(), key=lambda item: -item[1])[:5]}"
    )


def test_plugins_load_on_first_use() -> None:
    loaded = run(
        "import sys, collections, pashmap as pm\n"
        "pm.map(lambda w, i, v: v, collections.UserList([1]))\n"
        "print(' '.join(sorted(sys.modules)))"
    ).split()
    assert "importlib.metadata" in loaded  # the targets were discovered
    assert "pashmap_shm" not in loaded  # a map on the local context needs no context plugin
