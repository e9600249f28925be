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
    # Not a timing assertion: -X importtime's own accounting of pashmap's modules, which
    # excludes numpy, is checked to be a small part of the whole import.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pashmap"],
        check=True,
        capture_output=True,
        text=True,
    )
    own = {}
    for line in result.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2].lstrip().startswith("pashmap"):
            own[parts[2].strip()] = int(parts[0].split(":")[-1])
    assert "pashmap" in own
    assert not any(name.startswith(("pashmap_shm", "pashmap_xfel")) for name in own)


def test_plugins_load_on_first_use() -> None:
    loaded = run(
        "import sys, collections, pashmap as pm\n"
        "pm.map(lambda w, i, v: v, collections.UserList([1]))\n"
        "print(' '.join(sorted(sys.modules)))"
    ).split()
    assert "importlib.metadata" in loaded  # the targets were discovered
    assert "pashmap_shm" not in loaded  # a map on the local context needs no context plugin
