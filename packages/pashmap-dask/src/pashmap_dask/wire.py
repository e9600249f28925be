"""What travels to the workers for one map: the kernel, the target and their inputs.

The caller pickles the kernel and the target with cloudpickle, protocol 5: numpy arrays
they refer to (inputs) become out-of-band buffers, sent once per worker with the map's
:class:`MapPayload` and read in place on the worker (a share unpickles the kernel without
copying them). A context array met while pickling is not pickled at all: it becomes a
persistent id, an :class:`~pashmap_dask.writes.ArraySpec` (and, when the caller filled it,
its contents among the buffers), from which each share makes its own tracked copy.
Kernels from modules the workers cannot import travel by value.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import cloudpickle
import numpy as np
from numpy.typing import NDArray

from pashmap_dask.writes import ArraySpec, TrackedArray, Writes, track, uniform_value

__all__ = ["ArrayTable", "MapPayload", "pickled", "pickled_by_value"]


class ArrayTable:
    """The context arrays one map refers to, numbered as the pickler meets them.

    Args:
        owner: ``owner(array) -> (root, per_worker) | None``: the context array that
            ``array`` is or is a view of.
    """

    def __init__(self, owner: Callable[[NDArray[Any]], tuple[NDArray[Any], bool] | None]) -> None:
        self.owner = owner
        self.roots: list[NDArray[Any]] = []
        self.specs: list[ArraySpec] = []
        self._keys: dict[int, int] = {}

    def token(self, obj: NDArray[Any]) -> tuple[Any, ...] | None:
        """The persistent id of a context array or a view of one, else ``None``."""
        found = self.owner(obj)
        if found is None:
            return None
        root, per_worker = found
        key = self._keys.get(id(root))
        if key is None:
            key = len(self.roots)
            self._keys[id(root)] = key
            self.roots.append(root)
            order = "C" if root.flags.c_contiguous else "F"
            self.specs.append(
                ArraySpec(key, root.shape, root.dtype, order, uniform_value(root), per_worker)
            )
        if obj is root:
            return (key, -1, (), (), None)
        offset = obj.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        return (key, offset, obj.shape, obj.strides, obj.dtype)


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, table: ArrayTable, buffers: list[Any]) -> None:
        super().__init__(file, protocol=5, buffer_callback=buffers.append)
        self.table = table

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray) and obj.size:
            return self.table.token(obj)
        return None


def pickled(obj: Any, table: ArrayTable) -> tuple[bytes, list[NDArray[np.uint8]]]:
    """Pickle ``obj``; context arrays become persistent ids, other arrays buffers."""
    file = io.BytesIO()
    raw: list[pickle.PickleBuffer] = []
    _Pickler(file, table, raw).dump(obj)
    return file.getvalue(), [np.frombuffer(buffer.raw(), np.uint8) for buffer in raw]


@contextmanager
def pickled_by_value(modules: list[Any]) -> Iterator[None]:
    """Pickle what ``modules`` define by value while the block runs."""
    registered = []
    try:
        for module in modules:
            try:
                cloudpickle.register_pickle_by_value(module)
            except ValueError:
                continue  # already registered
            registered.append(module)
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


class _Unpickler(pickle.Unpickler):
    def __init__(
        self, data: bytes, buffers: list[Any], load: Callable[[Any], NDArray[Any]]
    ) -> None:
        super().__init__(io.BytesIO(data), buffers=buffers)
        self.resolve = load

    def persistent_load(self, pid: Any) -> Any:
        return self.resolve(pid)


class MapPayload:
    """One map's kernel, target and inputs; sent once to every worker that runs a share.

    Attributes:
        kernel, target: the pickles of the kernel and the target.
        buffers: the out-of-band buffers of both pickles.
        specs: the context arrays the kernel and the target refer to.
        contents: the contents of the context arrays the caller filled (not uniform),
            by key; ``per_worker`` ones travel with each share instead.
        event: the map's token, by which the caller stops its running shares.
        deadline: the map's deadline as ``time.time()``, or None.
    """

    def __init__(
        self,
        kernel: bytes,
        kernel_buffers: list[NDArray[np.uint8]],
        target: bytes,
        target_buffers: list[NDArray[np.uint8]],
        specs: list[ArraySpec],
        contents: dict[int, NDArray[Any]],
        event: str,
        deadline: float | None,
    ) -> None:
        self.kernel = kernel
        self.kernel_buffers = kernel_buffers
        self.target = target
        self.target_buffers = target_buffers
        self.specs = specs
        self.contents = contents
        self.event = event
        self.deadline = deadline
        self._init_cache()

    def _init_cache(self) -> None:
        self._lock = threading.Lock()
        self._target: Any = None
        self._loaded = False
        self._writable: dict[int, NDArray[Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_target", "_loaded", "_writable"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_cache()

    @property
    def nbytes(self) -> int:
        """The bytes of the payload's pickles and buffers (what one worker receives)."""
        return (
            len(self.kernel)
            + len(self.target)
            + sum(b.nbytes for b in self.kernel_buffers)
            + sum(b.nbytes for b in self.target_buffers)
            + sum(a.nbytes for a in self.contents.values())
        )

    # ------------------------------------------------------------ on the worker
    def shared_contents(self, key: int) -> NDArray[Any]:
        """A filled context array's contents on this worker, writable, made once."""
        with self._lock:
            array = self._writable.get(key)
            if array is None:
                array = self.contents[key]
                if not array.flags.writeable:
                    array = array.copy(order="K")
                self._writable[key] = array
            return array

    def load_target(self) -> Any:
        """The target, unpickled once per worker process (shared by its shares)."""
        with self._lock:
            if not self._loaded:
                self._target = _Unpickler(
                    self.target, list(self.target_buffers), self._plain_array
                ).load()
                self._loaded = True
            return self._target

    def _plain_array(self, pid: Any) -> NDArray[Any]:
        key, *view = pid
        spec = self.specs[key]
        root = self.contents[key] if key in self.contents else spec.blank()
        return _view(root, *view)

    def load_kernel(
        self, worker_id: int, own_slices: dict[int, NDArray[Any]]
    ) -> tuple[Any, dict[int, Writes]]:
        """The kernel for one share, with tracked copies of the context arrays.

        Args:
            worker_id: the share's worker id.
            own_slices: the share's own slice of each filled ``per_worker`` array.

        Returns:
            The kernel, and what it writes, by array key (filled in as it runs).
        """
        records: dict[int, Writes] = {}
        roots: dict[int, NDArray[Any]] = {}

        def load(pid: Any) -> NDArray[Any]:
            key, *view = pid
            root = roots.get(key)
            if root is None:
                spec = self.specs[key]
                if key in self.contents:
                    memory = self.shared_contents(key)
                else:
                    memory = spec.blank()
                    if key in own_slices:
                        own = memory[worker_id] if spec.order == "C" else memory[..., worker_id]
                        own[...] = own_slices[key]
                root, records[key] = track(memory, per_worker=spec.per_worker)
                roots[key] = root
            return _view(root, *view)

        kernel = _Unpickler(self.kernel, list(self.kernel_buffers), load).load()
        return kernel, records


def _view(
    root: NDArray[Any],
    offset: int,
    shape: tuple[int, ...],
    strides: tuple[int, ...],
    dtype: np.dtype[Any] | None,
) -> NDArray[Any]:
    """The view of ``root`` the caller's kernel referred to (``root`` itself for -1)."""
    if offset < 0:
        return root
    memory = root.view(np.ndarray).ravel(order="K")
    view: NDArray[Any] = np.ndarray(shape, dtype, buffer=memory, offset=offset, strides=strides)
    if isinstance(root, TrackedArray):
        tracked = view.view(TrackedArray)
        tracked._writes = root._writes
        return tracked
    return view
