"""Fork safety: a forked worker must not read through HDF5 files its parent opened.

EXtra-data keeps one ``FileAccess`` object per file path, each caching an open
``h5py.File``. A process forked from the caller inherits those open files: the file
descriptors (shared with the parent, with their file locks), and a copy of HDF5's state
for them (its metadata and chunk caches, its table of open files). HDF5 is not written
for that: opening the same path again in the child does not help, because HDF5 finds the
file already open and hands back the inherited one (EXtra-data issue 97, h5py's parallel
docs: "avoid opening the file and then forking").

:func:`close_inherited_files` is what a worker runs before reading: in a process other
than the one whose handles EXtra-data's registry holds, it closes every inherited handle,
so that EXtra-data opens each file afresh, in the worker, on its next read. Closing them
in the child touches only the child's copies: the parent's HDF5 ids live in the parent's
memory and stay open, and the files are read-only, so closing them writes nothing.

:func:`forget_open_files` is what a warm worker runs before each map, so that files
rewritten since the last map are read as they are now.

This module does not import EXtra-data; it looks for it in ``sys.modules``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any

from pashmap.contexts import register_worker_reset

__all__ = ["close_inherited_files", "forget_open_files", "handles_pid"]

# The process whose open files EXtra-data's FileAccess registry holds. A forked child
# inherits this value, sees a different os.getpid() and knows its handles are inherited.
_handles_pid = os.getpid()
# The lock below and the process it was made in: a lock held by another thread at fork
# time would stay locked forever in the child, so a child makes its own. (Checked by
# pid, not reset by an at-fork hook, which every fork of the program would run.)
_lock = threading.Lock()
_lock_pid = _handles_pid


def _process_lock() -> threading.Lock:
    global _lock, _lock_pid
    pid = os.getpid()
    if pid != _lock_pid:
        _lock = threading.Lock()
        _lock_pid = pid
    return _lock


def handles_pid() -> int:
    """The id of the process that opened the HDF5 handles EXtra-data currently holds.

    Returns:
        ``os.getpid()`` of that process: the caller's own once
        :func:`close_inherited_files` has run in it (or if it never forked).
    """
    return _handles_pid


def close_inherited_files() -> int:
    """Close the HDF5 files that this process inherited from its parent through EXtra-data.

    Call it in a worker before reading EXtra-data objects; :class:`ExtraDataTarget` does
    so at the start of every share. It is cheap when there is nothing to do: one
    ``os.getpid()`` call in the process that opened the files, and in a worker after the
    first call. Only ``FileAccess`` handles are closed (all opened read-only by
    EXtra-data); other ``h5py.File`` objects, e.g. an output file the caller opened for
    writing, are left alone. Thread-safe.

    Returns:
        The number of inherited files closed; 0 in the process that opened them, on any
        later call in the same worker, or when EXtra-data has not been imported.
    """
    global _handles_pid
    pid = os.getpid()
    if pid == _handles_pid:
        return 0
    with _process_lock():
        if pid == _handles_pid:
            return 0
        closed = 0
        file_access = sys.modules.get("extra_data.file_access")
        if file_access is not None:
            for handle in list(file_access.file_access_registry.values()):
                closed += _close_handle(handle, file_access)
        _handles_pid = pid
    return closed


def _close_handle(handle: Any, file_access: Any) -> int:
    h5file = getattr(handle, "_file", None)
    if h5file is None:
        return 0
    # Forget it first: FileAccess.file opens a fresh h5py.File when _file is None.
    handle._file = None
    file_access.open_files_limiter.closed(handle.filename)
    # A strong close (h5py closes every object of the file, then the file), as a weak one
    # leaves the file open in HDF5 while any dataset of it is referenced, and HDF5 would
    # then hand the inherited file back when EXtra-data reopens the path.
    with contextlib.suppress(Exception):  # an already invalid id is as good as closed
        h5file.close()
    return 1


def forget_open_files() -> None:
    """Let the next map open EXtra-data's files afresh, as they are now on disk.

    EXtra-data keeps one ``FileAccess`` per path in a registry, with the file's index
    and an open HDF5 handle, and unpickling one hands back the registry's object for
    that path when there is one. A warm worker still holds the objects of earlier maps
    (and, forked from the caller, those the caller had then), so a file rewritten since
    would be read through its old index and handle. Each handle is closed strongly
    (every HDF5 object of the file too: HDF5 would otherwise hand an open file back
    when the path is opened again) and the registry emptied; the next map unpickles
    fresh objects from the caller's current state. Not imported here: looked for in
    ``sys.modules``.
    """
    file_access = sys.modules.get("extra_data.file_access")
    if file_access is None:
        return
    registry = file_access.file_access_registry
    for handle in list(registry.values()):
        h5file = getattr(handle, "_file", None)
        if h5file is not None:
            handle._file = None
            with contextlib.suppress(Exception):  # an invalid id is as good as closed
                h5file.close()
        with contextlib.suppress(Exception):
            file_access.open_files_limiter.closed(handle.filename)
    registry.clear()


register_worker_reset(forget_open_files)
