"""TEMPORARY: the context kit's names until pashmap.contexts lands on main (then removed)."""

from __future__ import annotations

try:
    from pashmap.contexts import (  # type: ignore[import-not-found,unused-ignore]
        BaseContext,
        Order,
        available_cpus,
        decode_exception,
        encode_exception,
        in_worker,
        progress_counts,
        run_share,
        worker_scope,
    )
except ImportError:  # pragma: no cover - before the kit
    from typing import Any

    from pashmap.allocation import Order  # type: ignore[no-redef]
    from pashmap.base_context import BaseContext  # type: ignore[no-redef]
    from pashmap.execution import run_share  # type: ignore[no-redef]
    from pashmap.progress import progress_counts  # type: ignore[no-redef]
    from pashmap.worker import worker_scope  # type: ignore[no-redef,assignment]
    from pashmap_shm import protocol

    def encode_exception(exc: BaseException, *, dumps: Any = None) -> bytes:  # type: ignore[misc]
        return protocol.encode_exception(exc)

    def decode_exception(payload: bytes, *, loads: Any = None) -> BaseException:  # type: ignore[misc]
        return protocol.decode_exception(payload)

    def available_cpus() -> int:
        import os

        return len(os.sched_getaffinity(0))

    def in_worker() -> bool:  # type: ignore[misc]
        from pashmap.worker import current_scope

        return current_scope() is not None


__all__ = [
    "BaseContext",
    "Order",
    "available_cpus",
    "decode_exception",
    "encode_exception",
    "in_worker",
    "progress_counts",
    "run_share",
    "worker_scope",
]
