"""The error a map over European XFEL data raises when a file cannot be read."""

from __future__ import annotations

from typing import Any

import pashmap as pm

__all__ = ["DataReadError"]


class DataReadError(pm.PashmapError, OSError):
    """A train's data could not be read from its file.

    Raised by :class:`~pashmap_xfel.ExtraDataTarget` in place of the error HDF5, h5py or
    EXtra-data gave (chained as ``__cause__``), whose message often names neither the
    file nor the data ("truncated file", "wrong B-tree signature", "index 0 is out of
    bounds for axis 0 with size 0"). The message names the file, the source and key
    when known, and the train. An :class:`OSError`: the file is damaged, incomplete or
    changed while it was being read.

    Attributes:
        filename: the file's path, or ``None`` when the error cannot be tied to one
            file (then the message lists the files that hold the train).
        source: the source read, or ``None`` (a whole run or selection was read).
        key: the key read, or ``None``.
        train_id: the train being read, or ``None`` when not known.
    """

    def __init__(
        self,
        message: str,
        *,
        filename: str | None = None,
        source: str | None = None,
        key: str | None = None,
        train_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.filename = filename
        self.source = source
        self.key = key
        self.train_id = train_id

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        # Workers send it to the caller pickled: keep the keyword attributes.
        attributes = {
            "filename": self.filename,
            "source": self.source,
            "key": self.key,
            "train_id": self.train_id,
        }
        return (_rebuild, (type(self), self.args[0], attributes))


def _rebuild(kind: type[DataReadError], message: str, attributes: dict[str, Any]) -> DataReadError:
    return kind(message, **attributes)
