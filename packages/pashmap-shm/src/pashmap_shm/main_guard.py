"""Scripts that start maps without an ``if __name__ == "__main__":`` guard.

Under ``'forkserver'`` and ``'spawn'`` every worker starts by importing the main script
again (as module ``__mp_main__``), which runs its module-level code: a map started there
unguarded makes the worker try to start workers of its own instead of serving. Python's
multiprocessing documentation asks scripts to guard their entry point ("Safe importing
of main module"); these functions say so in place of a bare worker death.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import sys
from collections.abc import Iterator

from pashmap import WorkerDiedError

__all__ = ["explain_unguarded_main", "refuse_in_reimported_main"]


@contextlib.contextmanager
def explain_unguarded_main(start_method: str) -> Iterator[None]:
    """Turn a worker death caused by an unguarded main script into a ``RuntimeError``.

    A worker that failed while importing the script exits with status 1; when the map
    was started from module-level code of the script outside any ``if __name__ ...:``
    block, that is the likely reason, and the error says what to do.

    Raises:
        RuntimeError: such a death, with the ``WorkerDiedError`` as its cause.
    """
    try:
        yield
    except WorkerDiedError as exc:
        where = None
        if start_method != "fork" and exc.exitcode == 1:
            where = _unguarded_main_line()
        if where is None:
            raise
        raise RuntimeError(_unguarded_main_message(start_method, where, "each worker")) from exc


def refuse_in_reimported_main(start_method: str) -> None:
    """Refuse to start workers from a worker that is importing the main module.

    A worker started by ``'forkserver'`` or ``'spawn'`` runs the main script again, as
    module ``__mp_main__``, before it serves: code there that starts a map unguarded
    lands here, in the worker.

    Raises:
        RuntimeError: this is such a worker (what to do: guard the entry point).
    """
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            where = f"line {frame.f_lineno} of {frame.f_code.co_filename}"
            raise RuntimeError(_unguarded_main_message(start_method, where, "this worker"))
        frame = frame.f_back


def _unguarded_main_line() -> str | None:
    """Where the main script (directly or not) calls this map, when that is
    module-level code outside any ``if __name__ ...:`` block; else ``None``.

    Only used to explain workers that died: a script it misjudges still runs.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path:
        return None  # (interactive, or a notebook: workers do not run it again)
    frame = inspect.currentframe()
    while frame is not None and not (
        frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)
    ):
        frame = frame.f_back
    if frame is None:
        return None
    line = frame.f_lineno
    try:
        with open(path, "rb") as source:
            tree = ast.parse(source.read())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and node.lineno <= line <= (node.end_lineno or node.lineno)
            and any(
                isinstance(name, ast.Name) and name.id == "__name__" for name in ast.walk(node.test)
            )
        ):
            return None
    return f"line {line} of {path}"


def _unguarded_main_message(start_method: str, where: str, who: str) -> str:
    return (
        f"under start_method={start_method!r} every worker process starts by importing "
        "the main script again, which runs its module-level code; that code starts a "
        f"map ({where}), so {who} tried to start workers of its own instead of serving "
        "and exited. Protect the entry point of the script with "
        "if __name__ == '__main__': (the code that runs the maps goes in that block), as "
        "the 'Safe importing of main module' section of Python's multiprocessing "
        "documentation asks, or use start_method='fork'"
    )
