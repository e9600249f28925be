"""Worker resets: what a package registers runs, in order, once per registration."""

from __future__ import annotations

import pytest

from pashmap import worker_reset
from pashmap.contexts import register_worker_reset, reset_worker_state


@pytest.fixture
def own_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_reset, "_resets", [])


@pytest.mark.usefixtures("own_resets")
def test_registered_resets_run_in_order_once_each() -> None:
    ran: list[str] = []

    def first() -> None:
        ran.append("first")

    def second() -> None:
        ran.append("second")

    register_worker_reset(first)
    register_worker_reset(second)
    register_worker_reset(first)  # twice: still once
    reset_worker_state()
    assert ran == ["first", "second"]


@pytest.mark.usefixtures("own_resets")
def test_a_failing_reset_does_not_stop_the_others() -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("another library's internals changed")

    register_worker_reset(broken)
    register_worker_reset(lambda: ran.append("after"))
    reset_worker_state()
    assert ran == ["after"]


def test_pashmap_xfel_registers_its_reset() -> None:
    # (Warm workers run it before each map: tests/xfel/test_warm_stale_files.py.)
    pytest.importorskip("pashmap_xfel")
    from pashmap_xfel import handles

    assert handles.forget_open_files in worker_reset._resets
