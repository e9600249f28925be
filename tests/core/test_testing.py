"""pashmap.testing: the suite passes the reference context and catches broken ones."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from pashmap.contexts import BaseContext, LocalContext
from pashmap.targets import MapTarget
from pashmap.testing import ContextConformance, check_context

R = TypeVar("R")


def test_importing_pashmap_imports_neither_the_suite_nor_pytest() -> None:
    code = "import sys, pashmap; print(sorted({'pashmap.testing', 'pytest'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_check_context_runs_every_check_on_the_local_context() -> None:
    outcomes = check_context(lambda num_workers: LocalContext())
    checks = [name for name in vars(ContextConformance) if name.startswith("test_")]
    assert list(outcomes) == checks
    assert outcomes["test_quick_guide_under_use_context"] == "passed"
    assert outcomes["test_every_index_once_with_the_shares_option"].startswith("skipped: ")
    assert all(
        outcome == "passed" or outcome.startswith("skipped: ") for outcome in outcomes.values()
    )


class _Recording(LocalContext):
    """Records how the suite opens and closes it."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def __enter__(self) -> _Recording:
        self.events.append("enter")
        return self

    def close(self) -> None:
        self.events.append("close")


def test_check_context_makes_one_context_per_check_and_closes_it() -> None:
    asked: list[int] = []
    events: list[str] = []

    def make_context(num_workers: int) -> _Recording:
        asked.append(num_workers)
        return _Recording(events)

    outcomes = check_context(make_context, num_workers=3)
    assert asked == [3] * len(outcomes)
    assert events.count("enter") == 0
    assert events.count("close") == len(outcomes) + 1  # test_close_twice closes once more
    events.clear()
    check_context(make_context, use_with_block=True)
    assert events.count("enter") == len(outcomes)


class _TwoWorkers(LocalContext):
    """Runs in the caller but claims two workers, handing out worker_id 0 and 1."""

    @property
    def num_workers(self) -> int:
        return 2


class _ResultsReversed(LocalContext):
    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        return super().run(kernel, target, **options)[::-1]


class _FirstShareTwice(LocalContext):
    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        shares = target.split(4)
        if shares:
            for entry in target.iterate(shares[0]):
                kernel(0, *entry)
        return super().run(kernel, target, **options)


class _WorkerIdOutOfRange(_TwoWorkers):
    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        return super().run(lambda w, *entry: kernel(w + 2, *entry), target, **options)


class _ExceptionsWrapped(LocalContext):
    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        try:
            return super().run(kernel, target, **options)
        except Exception as exc:
            raise RuntimeError(f"the kernel failed: {exc}") from None


class _TimeoutIgnored(LocalContext):
    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        options.pop("timeout", None)
        return super().run(kernel, target, **options)


class _OptionsIgnored(LocalContext):
    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        known = {name: options[name] for name in ("progress", "timeout") if name in options}
        return super().run(kernel, target, **known)


class _NoWorkerScope(LocalContext):
    def run(self, kernel: Callable[..., R], target: MapTarget[Any], /, **options: Any) -> list[R]:
        return [kernel(0, *entry) for share in target.split(1) for entry in target.iterate(share)]


def _fails(check: str, context: BaseContext) -> bool:
    try:
        getattr(ContextConformance(), check)(context)
    except (Exception, pytest.fail.Exception):
        return True
    return False


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        (_ResultsReversed, "test_return_values_in_index_order"),
        (_ResultsReversed, "test_list"),
        (_FirstShareTwice, "test_every_index_once_with_skewed_costs"),
        (_FirstShareTwice, "test_every_index_once_in_many_small_shares"),
        (_FirstShareTwice, "test_ndarray_1d"),
        (_WorkerIdOutOfRange, "test_every_index_once_in_many_small_shares"),
        (_WorkerIdOutOfRange, "test_per_worker_arrays"),
        (_ExceptionsWrapped, "test_kernel_exception_keeps_its_type_and_message"),
        (_ExceptionsWrapped, "test_kernel_exception_traceback_names_the_kernel"),
        (_TimeoutIgnored, "test_timeout_raises_map_timeout_error"),
        (_OptionsIgnored, "test_unknown_option"),
        (_NoWorkerScope, "test_per_worker_values"),
        (_NoWorkerScope, "test_accumulator_sum"),
    ],
)
def test_the_suite_catches_a_broken_context(broken: type[BaseContext], check: str) -> None:
    assert not _fails(check, LocalContext()), "the reference context passes"
    assert _fails(check, broken())
