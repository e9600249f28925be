"""ExtraDataTarget: map a kernel over the trains of European XFEL data read with EXtra-data.

This module is what the ``pashmap.targets`` entry point loads to ask ``accepts``, so it
never imports EXtra-data at module level: ``accepts`` looks the library up in
``sys.modules`` (no EXtra-data object can exist before EXtra-data was imported), and the
methods that read data import what they need when they run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

import numpy as np

from pashmap.targets import RangeShares, qualified_name
from pashmap_xfel.errors import DataReadError
from pashmap_xfel.handles import close_inherited_files
from pashmap_xfel.layout import TrainLayout

__all__ = ["ExtraDataTarget", "Kind"]

Kind = Literal["DataCollection", "SourceData", "KeyData", "detector"]

# The options of each kind, with EXtra-data's own defaults for the matching trains()
# call, except KeyData's include_empty (see the class docstring).
_OPTIONS: Final[Mapping[Kind, Mapping[str, Any]]] = {
    "DataCollection": {"require_all": False, "flat_keys": False, "keep_dims": False},
    "SourceData": {"require_all": False, "keep_dims": False},
    "KeyData": {"keep_dims": False, "include_empty": True},
    "detector": {"require_all": True},
}
_XTDF_OPTIONS: Final[Mapping[str, Any]] = {"require_all": True, "pulses": None}

# What HDF5, h5py and EXtra-data raise for a damaged, incomplete or changed file.
_READ_ERRORS = (OSError, IndexError, KeyError, ValueError, RuntimeError)

_SUPPORTED = (
    "a DataCollection (run, run.select(...), run.select_trains(...)), a SourceData "
    "(run['SRC']), a KeyData (run['SRC', 'key']) or a multi-module detector of "
    "extra_data.components (AGIPD1M, LPD1M, DSSC1M, JUNGFRAU, ...)"
)


class ExtraDataTarget(RangeShares):
    """Map over the trains of an EXtra-data object, in shares of neighbouring trains.

    The kernel is called as ``kernel(worker_id, index, train_id, data)`` for each train,
    where ``index`` is the position of ``train_id`` in ``obj.train_ids`` (so results can
    be written to ``out[index]`` of an array of ``len(obj.train_ids)``) and ``data``
    depends on what ``obj`` is:

    * a ``DataCollection`` (a run, ``run.select(...)``, ``run.select_trains(...)``): the
      train's ``{source: {key: value}}`` dict, as ``obj.trains()`` gives it (with each
      source's ``'metadata'`` entry; a source without data in the train has only that);
    * a ``SourceData`` (``run['SRC']``, ``run['SRC'].select_keys(...)``): that source's
      ``{key: value}`` dict for the train, i.e. ``data[source]`` of the dict above;
    * a ``KeyData`` (``run['SRC', 'key']``): the key's numpy array for the train.
      Trains without data for the key are visited too, with an empty array (length 0
      on the first axis), so that every index of ``obj.train_ids`` is visited;
    * a multi-module detector of ``extra_data.components`` (``AGIPD1M``, ``LPD1M``,
      ``DSSC1M``, ``JUNGFRAU``, ...): the ``{key: xarray.DataArray}`` dict of the
      train's data stacked across modules, as the detector's ``trains()`` gives it.

    ``pm.map(kernel, obj)`` wraps ``obj`` in this target by itself; construct it
    explicitly to pass options. The options are those of EXtra-data's ``trains()``
    methods, with the same meaning and defaults; each applies to the kinds listed, and
    giving one to another kind raises ``TypeError``:

    Args:
        obj: the EXtra-data object to map over (see above).
        require_all: skip trains that lack data for any selected source (for a
            detector: any module), as ``trains(require_all=True)`` does. Skipped trains
            are not visited; the other trains keep their index. DataCollection and
            SourceData (default ``False``), detectors (default ``True``).
        keep_dims: keep the first axis of a value with a single entry in the train
            (e.g. control data), instead of dropping it. DataCollection, SourceData and
            KeyData; default ``False``.
        flat_keys: give ``data`` as a flat ``{(source, key): value}`` dict.
            DataCollection only; default ``False``.
        include_empty: visit trains without data for the key, with an empty array.
            KeyData only; default ``True`` (``KeyData.trains()`` defaults to ``False``,
            which would leave holes in ``index``); ``False`` skips them.
        pulses: the pulses to include in each train, as for ``AGIPD1M.trains(pulses=...)``
            (a slice, an array, ``by_index[...]`` or ``by_id[...]``). Detectors with
            pulse-resolved data (AGIPD, LPD, DSSC); default: all pulses.

    Raises:
        TypeError: ``obj`` is not one of the kinds above, or an option was given that
            does not apply to its kind (the message lists those that do).
        ValueError: ``obj`` is a SourceData of an auxiliary section (REDUCTION, ERRATA);
            its keys (KeyData) can be mapped over.

    A file that cannot be read raises :class:`~pashmap_xfel.DataReadError` naming the
    file, the source and key, and the train (the error from HDF5, h5py or EXtra-data is
    its ``__cause__``).

    Under the ``'processes'`` context, each worker process closes the HDF5 files it
    inherited from the caller before its first read, so that it reads through files it
    opened itself (see :func:`pashmap_xfel.close_inherited_files`). Under ``'threads'``
    the workers share the caller's files; h5py lets one thread at a time into HDF5.
    """

    description: ClassVar[str] = (
        "EXtra-data runs and selections (DataCollection), run['SRC'] (SourceData), "
        "run['SRC', 'key'] (KeyData) and multi-module detectors (AGIPD1M, LPD1M, ...)"
    )
    kernel_arguments: ClassVar[tuple[str, ...]] = ("index", "train_id", "data")

    def __init__(
        self,
        obj: Any,
        *,
        require_all: bool | None = None,
        keep_dims: bool | None = None,
        flat_keys: bool | None = None,
        include_empty: bool | None = None,
        pulses: Any = None,
    ) -> None:
        kind = _kind_of(obj)
        if kind is None:
            raise TypeError(
                f"ExtraDataTarget cannot map over {qualified_name(type(obj))}; it maps over "
                f"{_SUPPORTED}.{_hint_for(obj)}"
            )
        if kind == "SourceData" and obj.section not in ("CONTROL", "INSTRUMENT"):
            raise ValueError(
                f"cannot map over {obj.source!r} as a whole: it is an auxiliary "
                f"({obj.section}) source; map over one of its keys instead, "
                "e.g. run.auxiliary[source][key]"
            )
        given = {
            "require_all": require_all,
            "keep_dims": keep_dims,
            "flat_keys": flat_keys,
            "include_empty": include_empty,
            "pulses": pulses,
        }
        defaults = _XTDF_OPTIONS if kind == "detector" and _is_xtdf(obj) else _OPTIONS[kind]
        wrong = sorted(name for name, value in given.items() if value is not None)
        wrong = [name for name in wrong if name not in defaults]
        if wrong:
            what = qualified_name(type(obj)).rpartition(".")[2]
            allowed = ", ".join(defaults)
            raise TypeError(
                f"option(s) {', '.join(wrong)} do not apply to {what}; "
                f"the options for {what} are: {allowed}"
            )
        self.obj: Any = obj
        self.kind: Kind = kind
        self.options: dict[str, Any] = {
            name: default if given[name] is None else given[name]
            for name, default in defaults.items()
        }
        self.train_ids: np.ndarray[Any, np.dtype[np.uint64]] = np.asarray(
            obj.train_ids, dtype=np.uint64
        )
        # KeyData only: found by split() in the caller, so forked workers inherit it.
        self._layout: TrainLayout | None = None
        self._layout_found = kind != "KeyData"

    @classmethod
    def accepts(cls, obj: object) -> bool:
        """Whether ``obj`` is an EXtra-data object; never imports EXtra-data.

        Args:
            obj: any object that ``pm.map`` was asked to map over.

        Returns:
            True for the kinds this target maps over, and also for any other object
            of a type defined by EXtra-data, so that the constructor can say what to map
            over instead (rather than a misleading "install pashmap-xfel"). False for
            everything else, and always when EXtra-data has not been imported.
        """
        if "extra_data" not in sys.modules:
            return False
        return _kind_of(obj) is not None or _type_module(obj).partition(".")[0] == "extra_data"

    def __len__(self) -> int:
        return len(self.train_ids)

    def __repr__(self) -> str:
        options = "".join(f", {name}={value!r}" for name, value in self.options.items())
        return f"ExtraDataTarget(<{self.kind} of {len(self)} trains>{options})"

    def split(self, n: int, /) -> list[range]:
        """Cut the trains into at most ``n`` contiguous ranges of train positions.

        Neighbouring trains are stored next to each other in the same files, so a
        worker walking a range reads its files sequentially.

        Args:
            n: the number of shares wanted, ``>= 1``.

        Returns:
            Ranges of positions in ``obj.train_ids``, in order; fewer than ``n`` when
            there are fewer trains, none for an object without trains.

        Raises:
            ValueError: ``n < 1``.
        """
        shares = super().split(n)
        self._find_layout()  # here, in the caller, for forked workers to inherit
        return shares

    def split_sizes(self, sizes: Sequence[int], /) -> list[range]:
        """Cut the trains into contiguous ranges of the given sizes (GuidedTarget).

        Args:
            sizes: the number of trains of each share, all ``>= 1``, adding up to
                ``len(self)``.

        Returns:
            Ranges of positions in ``obj.train_ids``, in order.

        Raises:
            ValueError: a size is smaller than 1, or the sizes do not add up.
        """
        shares = super().split_sizes(sizes)
        self._find_layout()
        return shares

    def iterate(self, share: range, /) -> Iterator[tuple[int, int, Any]]:
        """Read the trains of one share, in order.

        Run in a worker: in a forked worker it first closes the HDF5 files inherited
        from the caller, so that the reads go through files opened by the worker.

        Args:
            share: one of the ranges returned by :meth:`split`.

        Returns:
            An iterator of ``(index, train_id, data)``, one per train visited; ``data``
            as described in the class docstring. ``train_id`` is a Python ``int``.

        Raises:
            DataReadError: a train's data could not be read (when the iterator gets to
                it); the message names the file, source, key and train.
        """
        close_inherited_files()
        if not share:
            return iter(())
        layout = self._find_layout()
        if layout is not None:
            return self._iterate_layout(share, layout)
        section = self.obj.select_trains(np.s_[share.start : share.stop])
        if self.kind == "KeyData":
            return self._iterate_key_data(share, section)
        if self.kind == "SourceData":
            return self._iterate_source_data(share, section)
        if self.kind == "DataCollection":
            return self._indexed(share, section.trains(**self.options))
        return self._indexed(share, _detector_trains(section, self.options))

    # ---------------------------------------------------------------- per kind
    def _find_layout(self) -> TrainLayout | None:
        if not self._layout_found:
            self._layout = TrainLayout.of(self.obj)
            self._layout_found = True
        return self._layout

    def _iterate_layout(self, share: range, layout: TrainLayout) -> Iterator[tuple[int, int, Any]]:
        """KeyData, reading each train's entries straight from their dataset."""
        keep_dims = self.options["keep_dims"]
        include_empty = self.options["include_empty"]
        empty = np.empty((0, *self.obj.entry_shape), dtype=self.obj.dtype)
        rows = slice(share.start, share.stop)
        tid = number = -1
        try:
            for index, tid, number, first, count in zip(
                share,
                self.train_ids[rows].tolist(),
                layout.file_number[rows].tolist(),
                layout.first[rows].tolist(),
                layout.count[rows].tolist(),
                strict=True,
            ):
                if count == 0:
                    if include_empty:
                        yield index, tid, empty
                    continue
                # No local name for the array: holding it while the next one is read
                # would keep two trains' buffers alive and make the allocator map fresh
                # memory.
                if count == 1 and not keep_dims:
                    yield index, tid, layout.read(number, first, count)[0]
                else:
                    yield index, tid, layout.read(number, first, count)
        except _READ_ERRORS as exc:
            files = [layout.files[number]] if number >= 0 else None
            raise self._read_error(exc, tid if tid >= 0 else None, files) from exc

    def _indexed(
        self, share: range, trains: Iterable[tuple[Any, Any]]
    ) -> Iterator[tuple[int, int, Any]]:
        position = _positions(self.train_ids, share)
        tid = -1
        try:
            for train_id, data in trains:
                tid = int(train_id)
                yield position[tid], tid, data
                # Let go of this train's data before the next one is read (see
                # _iterate_layout).
                del data
        except _READ_ERRORS as exc:
            # The train being read is the one after the last one given.
            after = position.get(tid, share.start - 1) + 1
            reading = int(self.train_ids[after]) if after < share.stop else None
            raise self._read_error(exc, reading, None, after=tid) from exc

    def _iterate_source_data(self, share: range, section: Any) -> Iterator[tuple[int, int, Any]]:
        from extra_data import DataCollection

        source = section.source
        collection = DataCollection(
            section.files,
            sources_data={source: section},
            train_ids=section.train_ids,
            inc_suspect_trains=section.inc_suspect_trains,
            is_single_run=section.is_single_run,
        )
        for index, tid, data in self._indexed(share, collection.trains(**self.options)):
            yield index, tid, data[source]
            del data

    def _iterate_key_data(self, share: range, section: Any) -> Iterator[tuple[int, int, Any]]:
        """KeyData without a layout: one ``train_from_id`` per train (slower, but general)."""
        keep_dims = self.options["keep_dims"]
        include_empty = self.options["include_empty"]
        empty_ndim = 1 + len(section.entry_shape)
        tid = None
        try:
            for index, tid in zip(
                share, self.train_ids[share.start : share.stop].tolist(), strict=True
            ):
                found = section.train_from_id(tid, keep_dims=keep_dims)
                # EXtra-data returns (train_id, array), or only an empty array for a
                # train that no file has.
                value = found[1] if isinstance(found, tuple) else found
                empty = np.ndim(value) == empty_ndim and np.shape(value)[0] == 0
                if empty and not include_empty:
                    continue
                yield index, tid, value
                del found, value
        except _READ_ERRORS as exc:
            raise self._read_error(exc, tid, None) from exc

    def _read_error(
        self, exc: BaseException, train_id: int | None, files: list[Any] | None, after: int = -1
    ) -> BaseException:
        """``exc`` again, as a :class:`DataReadError` naming the file, data and train."""
        if isinstance(exc, DataReadError):
            return exc
        source = getattr(self.obj, "source", None) if self.kind != "detector" else None
        key = getattr(self.obj, "key", None) if self.kind == "KeyData" else None
        if source is not None and key is not None:
            what = f"{source} {key}"
        elif source is not None:
            what = f"source {source}"
        else:
            sources = sorted(getattr(self.obj, "all_sources", ()))
            shown = ", ".join(sources[:3]) + (
                f" and {len(sources) - 3} more" if sources[3:] else ""
            )
            what = f"the {self.kind} of {shown}" if sources else f"the {self.kind}"
        if train_id is not None:
            train = f"train {train_id}"
        elif after >= 0:
            train = f"the train after {after}"
        else:
            train = "a train"
        if files is None:
            files = _files_holding(self.obj, train_id)
        names = [str(getattr(file, "filename", file)) for file in files]
        if len(names) == 1:
            where = f"from {names[0]}"
        elif names:
            where = f"from one of the files holding it: {', '.join(names)}"
        else:
            where = "(no file holds it)"
        hint = ""
        if isinstance(exc, IndexError):
            hint = (
                " (a dataset shorter than the INDEX section says: the file is incomplete "
                "or damaged)"
            )
        elif "truncated" in str(exc):
            hint = " (the file is shorter than HDF5 expects: still being written, or cut short)"
        return DataReadError(
            f"cannot read {what} for {train} {where}: {type(exc).__name__}: {exc}{hint}",
            filename=names[0] if len(names) == 1 else None,
            source=source,
            key=key,
            train_id=train_id,
        )


def _detector_trains(detector: Any, options: Mapping[str, Any]) -> Iterable[tuple[Any, Any]]:
    kwargs = {"require_all": options["require_all"]}
    if options.get("pulses") is not None:
        kwargs["pulses"] = options["pulses"]
    trains: Iterable[tuple[Any, Any]] = detector.trains(**kwargs)
    return trains


def _files_holding(obj: Any, train_id: int | None) -> list[Any]:
    """The files of ``obj`` that hold ``train_id`` (all of them when it is not known)."""
    files = getattr(obj, "files", None)
    if files is None:  # a detector: its DataCollection's files
        files = getattr(getattr(obj, "data", None), "files", None) or []
    if train_id is None:
        return list(files)
    return [file for file in files if train_id in np.asarray(file.train_ids)]


def _positions(train_ids: np.ndarray[Any, Any], share: range) -> dict[int, int]:
    """Map each train ID of the share to its index in the whole target."""
    return {int(tid): share.start + i for i, tid in enumerate(train_ids[share.start : share.stop])}


def _kind_of(obj: object) -> Kind | None:
    extra_data = sys.modules.get("extra_data")
    if extra_data is None:
        return None
    if isinstance(obj, extra_data.KeyData):
        return "KeyData"
    if isinstance(obj, extra_data.SourceData):
        return "SourceData"
    if isinstance(obj, extra_data.DataCollection):
        return "DataCollection"
    components = sys.modules.get("extra_data.components")
    if components is not None and isinstance(obj, components.MultimodDetectorBase):
        return "detector"
    return None


def _is_xtdf(detector: object) -> bool:
    components = sys.modules.get("extra_data.components")
    return components is not None and isinstance(detector, components.XtdfDetectorBase)


def _hint_for(obj: object) -> str:
    if "Iterator" in type(obj).__name__ or hasattr(obj, "__next__"):
        return (
            " For a trains() iterator, map over the run (or the selection) itself, e.g. "
            "pm.map(kernel, detector): the workers read the trains; list(obj) would read "
            "them all into memory first."
        )
    components = sys.modules.get("extra_data.components")
    if components is not None and isinstance(obj, components.MultimodKeyData):
        return (
            " For one key of a detector, map over the detector and use data[key], "
            "or over one module's run[source, key]."
        )
    return ""


def _type_module(obj: object) -> str:
    module = type(obj).__module__
    return module if isinstance(module, str) else ""
