"""Discovery of contexts and targets through entry points, and target resolution.

Two entry-point groups make pashmap extensible:

* ``pashmap.contexts``: name -> Context class, e.g. ``processes = "pashmap_shm:ProcessContext"``;
* ``pashmap.targets``: name -> TargetFactory (usually a MapTarget class with an
  ``accepts`` classmethod).

The built-in contexts and targets are registered the same way (by pashmap-core's own
metadata), and are also known here so that they work from a source checkout. Discovery
runs once, on first use, so ``import pashmap`` loads no plugin. A target plugin that
fails to load is reported with a warning and skipped, never fatal.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from pashmap.context import Context
from pashmap.errors import MissingPluginError, MissingTargetPluginError
from pashmap.remote_exceptions import qualified_name
from pashmap.target import MapTarget, TargetFactory

__all__ = [
    "CONTEXTS_GROUP",
    "TARGETS_GROUP",
    "Registration",
    "context_names",
    "create_context",
    "is_map_target",
    "register_target",
    "registrations",
    "resolve_target",
    "target_factories",
]

CONTEXTS_GROUP = "pashmap.contexts"
TARGETS_GROUP = "pashmap.targets"

_BUILTINS: Mapping[str, Mapping[str, str]] = {
    CONTEXTS_GROUP: {
        "local": "pashmap.local:LocalContext",
        "serial": "pashmap.local:LocalContext",
    },
    TARGETS_GROUP: {
        "sequence": "pashmap.targets.sequence:SequenceTarget",
        "ndarray": "pashmap.targets.ndarray:NdarrayTarget",
        "dataarray": "pashmap.targets.dataarray:DataArrayTarget",
    },
}

# Names and libraries that pashmap's own plugins provide, for "pip install" hints.
_CONTEXT_PLUGINS = {"threads": "pashmap-shm", "processes": "pashmap-shm", "dask": "pashmap-dask"}
_TARGET_PLUGINS = {"extra_data": ("pashmap-xfel", "EXtra-data objects (runs, sources, keys)")}
# Iterators whose library has a target for the object they came from: map over that
# object, which the workers read piece by piece, never over list(iterator).
_ITERATOR_HINTS = {
    "extra_data": (
        "For EXtra-data's trains() iterator, map over the run (or the selection) itself: "
        "pm.map(kernel, run) gives the kernel (index, train_id, data) per train, read in "
        "the workers; list(run.trains()) would read the whole run into memory first."
    )
}


@dataclass(frozen=True)
class Registration:
    """One entry of a registry: a name, the object path, and who registered it.

    Attributes:
        name: the registered name (a context name, or a target's short name).
        value: ``"module:attribute"`` of the registered object.
        distribution: the distribution that declared it, ``None`` if unknown.
    """

    name: str
    value: str
    distribution: str | None

    def load(self) -> Any:
        """Import and return the registered object."""
        module_name, _, attribute = self.value.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ():
            obj = getattr(obj, part)
        return obj


@functools.cache
def registrations(group: str) -> Mapping[str, Registration]:
    """Everything registered in an entry-point group, built-ins first.

    Args:
        group: ``"pashmap.contexts"`` or ``"pashmap.targets"``.

    Returns:
        A mapping from name to :class:`Registration`. A name registered twice with
        different objects keeps the first registration and warns.
    """
    from importlib.metadata import entry_points

    found = {
        name: Registration(name, value, "pashmap-core")
        for name, value in _BUILTINS.get(group, {}).items()
    }
    for entry in entry_points(group=group):
        distribution = entry.dist.name if entry.dist is not None else None
        existing = found.get(entry.name)
        if existing is None:
            found[entry.name] = Registration(entry.name, entry.value, distribution)
        elif existing.value != entry.value:
            warnings.warn(
                f"pashmap: {entry.name!r} is registered in {group!r} by both "
                f"{existing.distribution} ({existing.value}) and {distribution} "
                f"({entry.value}); using the first",
                RuntimeWarning,
                stacklevel=2,
            )
    return found


# ----------------------------------------------------------------- contexts
def create_context(name: str, /, **kwargs: Any) -> Context:
    """Create a context from its registered name.

    Args:
        name: ``'local'`` (alias ``'serial'``), or a name registered by a plugin, e.g.
            ``'threads'`` and ``'processes'`` from pashmap-shm. Case-insensitive.
        **kwargs: passed to the context class, e.g. ``num_workers=4``.

    Returns:
        A new context of the kind registered under ``name``.

    Raises:
        MissingPluginError: the name belongs to a pashmap package that is not installed
            (the message says what to ``pip install``).
        ValueError: the name is unknown (the message lists the known names).
        ImportError: the plugin that registered the name failed to import.
    """
    key = name.strip().lower()
    known = registrations(CONTEXTS_GROUP)
    registration = known.get(key)
    if registration is None:
        package = _CONTEXT_PLUGINS.get(key)
        if package is not None:
            raise MissingPluginError(
                f"the {name!r} context needs the {package} package: {install_command(package)}",
                package=package,
            )
        names = ", ".join(repr(n) for n in sorted(known))
        missing = sorted({p for n, p in _CONTEXT_PLUGINS.items() if n not in known})
        hint = "".join(f" (more with: {install_command(p)})" for p in missing)
        raise ValueError(f"unknown context {name!r}; known contexts are {names}{hint}")
    try:
        factory = registration.load()
    except Exception as exc:
        raise ImportError(
            f"the {name!r} context is registered by {registration.distribution} "
            f"({registration.value}) but failed to import: {exc}"
        ) from exc
    context = factory(**kwargs)
    if not isinstance(context, Context):
        raise TypeError(
            f"{registration.value} (registered as context {name!r}) made a "
            f"{type(context).__name__}, which is not a pashmap Context"
        )
    return context


def context_names() -> list[str]:
    """The registered context names, leaving out aliases (e.g. ``'serial'`` for ``'local'``).

    Returns:
        Names in registration order, built-ins first: ``['local', ...]``.
    """
    seen: set[str] = set()
    names = []
    for name, registration in registrations(CONTEXTS_GROUP).items():
        if registration.value not in seen:
            seen.add(registration.value)
            names.append(name)
    return names


# ------------------------------------------------------------------ targets
@functools.cache
def target_factories() -> tuple[tuple[Registration, TargetFactory], ...]:
    """The registered target factories that loaded, built-ins first.

    A factory that fails to import, or has no ``accepts`` method, is skipped with a
    ``RuntimeWarning`` naming it and the distribution that registered it.
    """
    loaded: list[tuple[Registration, TargetFactory]] = []
    for registration in registrations(TARGETS_GROUP).values():
        try:
            factory = registration.load()
        except Exception as exc:
            warnings.warn(
                f"pashmap: target {registration.name!r} from {registration.distribution} "
                f"({registration.value}) failed to load and is ignored: {exc!r}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        if not isinstance(factory, TargetFactory):
            warnings.warn(
                f"pashmap: target {registration.name!r} from {registration.distribution} "
                f"({registration.value}) has no accepts() method or is not callable; ignored",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        loaded.append((registration, factory))
    return tuple(loaded)


# Targets registered at run time (register_target): (accepts, factory), oldest first.
_registered: list[tuple[Callable[[object], bool], Callable[[Any], MapTarget[Any]]]] = []


def register_target(
    kind: type | Callable[[object], bool],
    factory: Callable[[Any], MapTarget[Any]],
    /,
) -> Callable[[], None]:
    """Map over objects of ``kind`` with ``factory``, from now on in this process.

    For a type you do not own, in a notebook or a script, without a package and its
    ``pashmap.targets`` entry point. Registrations made here are asked first, the latest
    first, before ``__pashmap_target__`` and every installed target:

    ```python
    pm.register_target(pandas.DataFrame, lambda df: pm.NdarrayTarget(df.to_numpy()))
    ```

    Args:
        kind: a type (its instances, subclasses included, are taken), or a predicate
            ``accepts(obj) -> bool``.
        factory: called as ``factory(obj)``; returns the MapTarget to walk over.

    Returns:
        A function that undoes the registration.

    Raises:
        TypeError: ``kind`` is neither a type nor callable, or ``factory`` is not
            callable.
    """
    accepts: Callable[[object], bool]
    if isinstance(kind, type):
        klass = kind

        def accepts_instances(obj: object) -> bool:
            return isinstance(obj, klass)

        accepts = accepts_instances
    elif callable(kind):
        accepts = kind
    else:
        raise TypeError(f"register_target() takes a type or a predicate, got {kind!r}")
    if not callable(factory):
        raise TypeError(f"register_target() needs a callable factory(obj), got {factory!r}")
    entry = (accepts, factory)
    _registered.append(entry)

    def unregister() -> None:
        if entry in _registered:
            _registered.remove(entry)

    return unregister


def resolve_target(obj: object, /) -> MapTarget[Any]:
    """Wrap ``obj`` in the MapTarget that ``map`` walks over.

    In order: a factory registered at run time with :func:`register_target` (the latest
    first); ``obj.__pashmap_target__()`` if its type defines it; ``obj`` itself if it is
    already a MapTarget; else the one registered factory whose ``accepts(obj)`` is true.

    Returns:
        The MapTarget to walk over.

    Raises:
        TypeError: no factory accepts ``obj`` (the message names its type, the types
            pashmap accepts and how to write a MapTarget), several do (it names them), or
            ``__pashmap_target__`` returned something that is not a MapTarget.
        MissingTargetPluginError: ``obj`` comes from a library whose pashmap plugin is
            not installed (a ``TypeError`` that says what to ``pip install``).
    """
    global _memo_for
    if _registered:
        for accepts, make in reversed(_registered):
            if accepts(obj):
                made = make(obj)
                if not is_map_target(made):
                    raise TypeError(
                        f"the target factory registered with register_target() for "
                        f"{qualified_name(type(obj))} must return a MapTarget, got "
                        f"{qualified_name(type(made))}"
                    )
                return made
    kind = type(obj)
    factories = target_factories()
    if _memo_for is factories:
        factory = _memo.get(kind)
        if factory is not None and (kind is not _ndarray() or obj.ndim):  # type: ignore[attr-defined]
            return factory(obj)
    hook = getattr(kind, "__pashmap_target__", None)
    if hook is not None:
        target = hook(obj)
        if not is_map_target(target):
            raise TypeError(
                f"{qualified_name(type(obj))}.__pashmap_target__() must return a MapTarget "
                "(an object with split(n) and iterate(share) methods), got "
                f"{qualified_name(type(target))}"
            )
        return target
    if is_map_target(obj):
        return obj
    matches = [(reg, factory) for reg, factory in factories if _accepts(reg, factory, obj)]
    if len(matches) == 1:
        if kind in _MEMO_TYPES or kind is _ndarray():
            if _memo_for is not factories:
                _memo.clear()
                _memo_for = factories
            _memo[kind] = matches[0][1]
        return matches[0][1](obj)
    if matches:
        names = ", ".join(
            f"{reg.name!r} ({reg.value}, from {reg.distribution})" for reg, _ in matches
        )
        raise TypeError(
            f"cannot tell how to map over {qualified_name(type(obj))}: several targets accept it: "
            f"{names}; wrap it in the one you mean, e.g. pm.map(kernel, SomeTarget(obj))"
        )
    raise _unknown_target_error(obj, factories)


# The types mapped over most, whose factory is remembered once a map over one found
# exactly one (so that a plugin claiming them still makes the map ambiguous): a map
# over a list or an array then calls no factory's accepts(). (A factory deciding by the
# value of a list, not its type, would be asked only about the first one.)
_MEMO_TYPES = frozenset({list, tuple, range})
_memo: dict[type, TargetFactory] = {}
_memo_for: object = None  # the target_factories() the memo belongs to


@functools.cache
def _ndarray() -> type:
    import numpy as np

    return np.ndarray


def is_map_target(obj: object, /) -> TypeGuard[MapTarget[Any]]:
    """Whether ``obj`` is a :class:`~pashmap.MapTarget`: ``isinstance(obj, MapTarget)``.

    The same answer as the runtime protocol check (both methods present and not
    ``None``), at a small part of its cost (benchmarks/code_figures.py): ``map``
    asks it at every call, and under a process context every object touched between
    forks costs a page copy.
    """
    return getattr(obj, "split", None) is not None and getattr(obj, "iterate", None) is not None


def install_command(package: str) -> str:
    """The command that installs one of pashmap's own packages, for error messages.

    In a source checkout (pashmap-core installed editable from ``packages/``), the path
    of the package's directory there; otherwise the index name, with the checkout form
    beside it, since the packages install by name only once they are published.
    """
    here = Path(__file__).resolve()
    if len(here.parents) > 3:  # .../packages/pashmap-core/src/pashmap/registry.py
        directory = here.parents[3] / package
        if (directory / "pyproject.toml").is_file():
            return f"pip install {directory}"
    return f"pip install {package} (from a source checkout: pip install ./packages/{package})"


def _accepts(registration: Registration, factory: TargetFactory, obj: object) -> bool:
    try:
        return bool(factory.accepts(obj))
    except Exception as exc:
        warnings.warn(
            f"pashmap: target {registration.name!r} from {registration.distribution} "
            f"raised in accepts() and is skipped: {exc!r}",
            RuntimeWarning,
            stacklevel=3,
        )
        return False


def _unknown_target_error(
    obj: object, factories: tuple[tuple[Registration, TargetFactory], ...]
) -> TypeError:
    installed = {registration.distribution for registration, _ in factories}
    for klass in type(obj).__mro__:
        library = klass.__module__.partition(".")[0]
        if library in _TARGET_PLUGINS:
            package, what = _TARGET_PLUGINS[library]
            if package in installed:
                break  # the plugin is there but does not take this type: the general error
            return MissingTargetPluginError(
                f"cannot map over {qualified_name(type(obj))}: {what} need the {package} package: "
                f"{install_command(package)}",
                package=package,
            )
    accepted = "; ".join(
        str(getattr(factory, "description", registration.name))
        for registration, factory in factories
    )
    lines = [f"cannot map over an object of type {qualified_name(type(obj))}."]
    hint = _hint_for(obj)
    if hint:
        lines.append(hint)
    lines.append(f"pashmap maps over: {accepted}.")
    lines.append(
        "To map over anything else, pass a MapTarget (split(n) returning shares, "
        "iterate(share) yielding (index, ...) tuples), give its type a "
        "__pashmap_target__() method, or register a factory with "
        "pm.register_target(type, factory); see help(pashmap.MapTarget)."
    )
    return TypeError("\n".join(lines))


def _hint_for(obj: object) -> str:
    """What to map over instead, for the objects people try first."""
    kind = type(obj)
    if kind.__module__.partition(".")[0] == "pandas":  # (told without importing pandas)
        if kind.__name__ == "DataFrame":
            return (
                "For a pandas DataFrame, map over df.to_numpy() (each row an array) or "
                "list(df.itertuples()) (each row a named tuple); list(df) would give the "
                "column names."
            )
        if kind.__name__ == "Series":
            return "For a pandas Series, map over series.to_numpy()."
    if isinstance(obj, Mapping):
        return "For a dict, map over list(d.items()) or list(d.values())."
    if hasattr(obj, "__next__") or hasattr(obj, "__iter__"):
        hint = _ITERATOR_HINTS.get(_library_of_iterator(obj), "")
        return hint or "For an iterator, generator or set, map over list(obj)."
    return ""


def _library_of_iterator(obj: object) -> str:
    """The top-level package that made a generator or iterator (without importing it).

    A generator's type is builtins.generator: its code's module tells where it came from.
    """
    frame = getattr(obj, "gi_frame", None)
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    if not module:
        code = getattr(obj, "gi_code", None)
        filename = getattr(code, "co_filename", "")
        for library in _ITERATOR_HINTS:
            if f"/{library}/" in filename.replace("\\", "/"):
                return library
        module = type(obj).__module__
    return str(module).partition(".")[0]
