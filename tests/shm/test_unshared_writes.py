"""The NotSharedWarning: kernels writing to arrays the workers cannot share."""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pytest

import pashmap as pm
from pashmap_shm import NotSharedWarning, ProcessContext, ThreadContext
from pashmap_shm.unshared_writes import unshared_written_arrays

private_global = np.zeros(10)
read_only_input = np.arange(10.0)


def writes_global(worker_id: int, index: int, value: float) -> None:
    private_global[index] = value


def reads_global(worker_id: int, index: int, value: float) -> float:
    return float(read_only_input[index] * 2)


def test_warns_for_a_global_array_and_names_it() -> None:
    with pytest.warns(NotSharedWarning, match=r"'private_global'.*pm\.array") as record:
        ProcessContext(2).map(writes_global, range(10))
    assert record[0].filename == __file__  # points at the map call
    assert not private_global.any()  # the pitfall itself: the writes are lost


def test_warns_for_a_closure_array() -> None:
    results = np.zeros(5)

    def kernel(worker_id: int, index: int, value: int) -> None:
        results[index] += value

    pm.set_default_context("processes", num_workers=2)
    with pytest.warns(NotSharedWarning, match="'results'"):
        pm.map(kernel, range(5))


@pytest.mark.parametrize(
    "statement",
    [
        "out[i] = v",
        "out[i, ...] = v",
        "out[i][0] = v",
        "out.flat[i] = v",
        "out[i] += v",
        "np.copyto(out, v)",
        "np.multiply(v, 2, out=out)",
        "out.fill(v)",
        "np.add.at(out, i, v)",
    ],
)
def test_write_forms_are_recognised(statement: str) -> None:
    namespace: dict[str, object] = {"np": np, "out": np.zeros((4, 1))}
    source = f"def kernel(wid, i, v):\n    {statement}\n"
    path = f"<kernel {statement}>"
    import linecache

    linecache.cache[path] = (len(source), None, source.splitlines(True), path)
    exec(compile(source, path, "exec"), namespace)
    assert unshared_written_arrays(namespace["kernel"]) == ["out"]  # type: ignore[arg-type]


def _kernel_from_source(body: str, namespace: dict[str, object]) -> object:
    """``def kernel(wid, i, v):`` with ``body``, compiled with its source findable."""
    import linecache

    source = "def kernel(wid, i, v):\n" + textwrap.indent(body, "    ") + "\n"
    path = f"<kernel {body}>"
    linecache.cache[path] = (len(source), None, source.splitlines(True), path)
    exec(compile(source, path, "exec"), namespace)
    return namespace["kernel"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        # entries of a dict or list held by a global or closure variable
        ("arrays['out'][i] = v", ["arrays['out']"]),
        ("arrays['out'][i] += v", ["arrays['out']"]),
        ("arrays['out'] += v", ["arrays['out']"]),
        ("arrays['out'].fill(v)", ["arrays['out']"]),
        ("np.copyto(arrays['out'], v)", ["arrays['out']"]),
        ("np.multiply(v, 2, out=arrays['out'])", ["arrays['out']"]),
        ("outs[1][i] = v", ["outs[1]"]),
        ("outs[i % 2][i] = v", ["outs[0]", "outs[1]"]),  # any entry it may be
        ("nested['a']['b'][i] = v", ["nested['a']['b']"]),
        # local aliases of a global, a closure variable, an attribute or an entry
        ("o = out\no[i] = v", ["out"]),
        ("o = out\no += v", ["out"]),
        ("o = out\np = o\np.fill(v)", ["out"]),
        ("o = out\nnp.multiply(v, 2, out=o)", ["out"]),
        ("o = holder.out\no[i] = v", ["holder.out"]),
        ("o = arrays['out']\no[i] = v", ["arrays['out']"]),
        ("o: np.ndarray = out\no[i] = v", ["out"]),
        ("o = out if v else other\no[i] = v", ["other", "out"]),
        # tuple unpacking of them
        ("a, b = shared, out\nb[i] = v", ["out"]),
        ("a, b = outs\nb[i] = v", ["outs[1]"]),
        ("first, *rest = outs\nrest[0][i] = v", ["outs[0]", "outs[1]"]),
        # loops over them
        ("for o in outs:\n    o[i] = v", ["outs[0]", "outs[1]"]),
        ("for o in (shared, out):\n    o[i] = v", ["out"]),
        ("for key, o in arrays.items():\n    o[i] = v", ["arrays['out']"]),
        ("for o in arrays.values():\n    o[i] = v", ["arrays['out']"]),
        ("for k, o in enumerate(outs):\n    o[i] = v", ["outs[0]", "outs[1]"]),
    ],
)
def test_aliased_write_forms_are_recognised(body: str, names: list[str]) -> None:
    # Before: none of these was seen, and the writes were lost without a warning.
    import types

    namespace: dict[str, object] = {
        "np": np,
        "out": np.zeros(4),
        "other": np.zeros(4),
        "shared": ProcessContext(2).zeros(4),
        "arrays": {"out": np.zeros(4), "shared": ProcessContext(2).zeros(4)},
        "outs": [np.zeros(4), np.zeros(4)],
        "nested": {"a": {"b": np.zeros(4)}},
        "holder": types.SimpleNamespace(out=np.zeros(4)),
    }
    kernel = _kernel_from_source(body, namespace)
    assert unshared_written_arrays(kernel) == names  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        "arrays['shared'][i] = v",
        "o = shared\no[i] = v",
        "o = np.zeros(4)\no[i] = v",  # a local array: nothing to share
        "o = out\no = np.zeros(4)\nx = o",  # re-bound, never written
        "a, b = out, shared\nb[i] = v",
        "o = out[i]\nv = o",  # read only
    ],
)
def test_aliases_of_shared_or_unwritten_arrays_are_not_flagged(body: str) -> None:
    namespace: dict[str, object] = {
        "np": np,
        "out": np.zeros(4),
        "shared": ProcessContext(2).zeros(4),
        "arrays": {"shared": ProcessContext(2).zeros(4)},
    }
    kernel = _kernel_from_source(body, namespace)
    assert unshared_written_arrays(kernel) == []  # type: ignore[arg-type]


def test_warns_for_a_write_through_a_dict_entry_of_a_closure() -> None:
    arrays = {"out": np.zeros(5)}

    def kernel(worker_id: int, index: int, value: int) -> None:
        arrays["out"][index] = value

    with pytest.warns(NotSharedWarning, match=r"writes to \"arrays\['out'\]\""):
        ProcessContext(2).map(kernel, range(5))
    assert not arrays["out"].any()  # the pitfall: the writes are lost


def test_warns_for_a_write_through_a_local_alias() -> None:
    out = np.zeros(5)

    def kernel(worker_id: int, index: int, value: int) -> None:
        o = out
        o[index] = value

    with pytest.warns(NotSharedWarning, match="'out'"):
        ProcessContext(2).map(kernel, range(5))


def test_no_warning_for_shared_or_read_only_or_local_arrays() -> None:
    ctx = ProcessContext(2)
    shared = ctx.zeros(10)
    frozen = np.zeros(10)
    frozen.flags.writeable = False

    def kernel(worker_id: int, index: int, value: float) -> None:
        local = np.zeros(3)
        local[0] = read_only_input[index] + frozen[index]
        shared[index] = local[0]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx.map(kernel, range(10))
        ctx.map(reads_global, range(10))
    np.testing.assert_array_equal(shared, read_only_input)


def test_an_existing_array_copied_into_shared_memory_is_fine() -> None:
    existing = np.zeros(10)
    with pm.use_context("processes", num_workers=2):
        existing = pm.array(fill=existing)

        def kernel(worker_id: int, index: int, value: float) -> None:
            existing[index] = value

        pm.map(kernel, range(10))
    np.testing.assert_array_equal(existing, np.arange(10))


def test_no_warning_under_threads() -> None:
    ThreadContext(2).map(writes_global, range(10))
    np.testing.assert_array_equal(private_global, np.arange(10))
    private_global[:] = 0


def test_partial_and_bound_methods_are_checked() -> None:
    import functools

    class Holder:
        def __init__(self) -> None:
            self.out = np.zeros(3)

        def kernel(self, worker_id: int, index: int, value: int) -> None:
            private_global[index] = value

    assert unshared_written_arrays(functools.partial(writes_global)) == ["private_global"]
    assert unshared_written_arrays(Holder().kernel) == ["private_global"]


def test_kernels_without_source_are_not_guessed_at() -> None:
    namespace: dict[str, object] = {"out": np.zeros(3)}
    exec("def kernel(wid, i, v):\n    out[i] = v * 3 - 1\n", namespace)
    assert unshared_written_arrays(namespace["kernel"]) == []  # type: ignore[arg-type]
    assert unshared_written_arrays(print) == []


def write_into(worker_id: int, index: int, value: float, out: np.ndarray) -> None:
    out[index] = value


class Accumulator:
    def __init__(self, out: np.ndarray) -> None:
        self.out = out

    def kernel(self, worker_id: int, index: int, value: float) -> None:
        self.out[index] = value


def test_arrays_bound_by_partial_are_checked() -> None:
    import functools

    private = np.zeros(4)
    shared = ProcessContext(2).zeros(4)
    assert unshared_written_arrays(functools.partial(write_into, out=private)) == ["out"]
    assert unshared_written_arrays(functools.partial(write_into, out=shared)) == []
    with pytest.warns(NotSharedWarning, match="'out'"):
        ProcessContext(2).map(functools.partial(write_into, out=private), range(4))


def test_attributes_of_self_are_checked() -> None:
    assert unshared_written_arrays(Accumulator(np.zeros(4)).kernel) == ["self.out"]
    ctx = ProcessContext(2)
    accumulator = Accumulator(ctx.zeros(4))
    assert unshared_written_arrays(accumulator.kernel) == []
    ctx.map(accumulator.kernel, range(4))
    np.testing.assert_array_equal(accumulator.out, np.arange(4))


def test_properties_are_not_run() -> None:
    class Lazy:
        calls = 0

        @property
        def out(self) -> np.ndarray:
            Lazy.calls += 1
            return np.zeros(3)

        def kernel(self, worker_id: int, index: int, value: int) -> None:
            self.out[index] = value

    assert unshared_written_arrays(Lazy().kernel) == []
    assert Lazy.calls == 0


def test_the_source_is_not_read_when_every_array_named_is_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pashmap import kernel_writes

    ctx = ProcessContext(2)
    out = ctx.zeros(10)
    factor = 3.0

    def kernel(worker_id: int, index: int, value: float) -> None:
        out[index] = factor * value * np.pi

    def no_source(code: object) -> frozenset[tuple[str, ...]]:
        raise AssertionError("the source was read")

    monkeypatch.setattr(kernel_writes, "_written_paths", no_source)
    assert unshared_written_arrays(kernel) == []
    # An unshared array among the names: then the source is read.
    private = np.zeros(10)

    def writes_private(worker_id: int, index: int, value: float) -> None:
        private[index] = value

    with pytest.raises(AssertionError, match="the source was read"):
        unshared_written_arrays(writes_private)


def test_alternating_kernels_are_each_checked_with_their_own_names() -> None:
    # The names a kernel refers to are remembered for the kernel of the previous map
    # only; switching back and forth must never give one kernel the other's names.
    shared = ProcessContext(2).zeros(10)

    def writes_shared(worker_id: int, index: int, value: float) -> None:
        shared[index] = value

    for _ in range(3):
        assert unshared_written_arrays(writes_global) == ["private_global"]
        assert unshared_written_arrays(writes_shared) == []
        assert unshared_written_arrays(reads_global) == []
