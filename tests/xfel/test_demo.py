"""The European XFEL section of ``pashmap demo``."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from pashmap_xfel.demo import run_demo


def test_demo_is_registered_for_pashmap_demo() -> None:
    demos = {ep.name: ep.value for ep in entry_points(group="pashmap.demos")}
    assert demos.get("xfel") == "pashmap_xfel.demo:run_demo"


def test_demo_verifies_every_context(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo(workers=2) == 0
    out = capsys.readouterr().out
    assert "local" in out
    assert "WRONG" not in out
    assert "results verified" in out
