"""Choosing the context: by object, by name, for the whole program or for one block."""

from __future__ import annotations

import importlib.util

import pytest

import pashmap as pm

shm_installed = importlib.util.find_spec("pashmap_shm") is not None


def test_the_initial_default_is_a_local_context() -> None:
    context = pm.get_default_context()
    assert isinstance(context, pm.LocalContext)
    assert context.num_workers == 1
    assert isinstance(context, pm.Context)


@pytest.mark.parametrize("name", ["local", "serial", "LOCAL", " Serial "])
def test_local_by_name_and_alias(name: str) -> None:
    context = pm.set_default_context(name)
    assert isinstance(context, pm.LocalContext)
    assert pm.get_default_context() is context


def test_set_default_context_with_an_object_or_a_class() -> None:
    mine = pm.LocalContext()
    assert pm.set_default_context(mine) is mine
    assert pm.get_default_context() is mine
    made = pm.set_default_context(pm.LocalContext, num_workers=1)
    assert isinstance(made, pm.LocalContext)
    assert made is not mine


def test_keyword_arguments_with_an_object_are_an_error() -> None:
    with pytest.raises(TypeError, match="only apply when naming a context"):
        pm.set_default_context(pm.LocalContext(), num_workers=4)


def test_not_a_context() -> None:
    with pytest.raises(TypeError, match="expected a context name"):
        pm.set_default_context(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a context name"):
        pm.set_default_context(dict)  # type: ignore[arg-type]


def test_unknown_name_lists_the_known_names() -> None:
    with pytest.raises(ValueError, match="unknown context 'gpu'") as info:
        pm.set_default_context("gpu")
    assert "'local'" in str(info.value)
    assert "'serial'" in str(info.value)
    assert not isinstance(info.value, pm.MissingPluginError)
    assert isinstance(pm.get_default_context(), pm.LocalContext)  # unchanged


@pytest.mark.skipif(
    shm_installed, reason="pashmap-shm is installed here; see test_standalone_install"
)
@pytest.mark.parametrize("name", ["threads", "processes"])
def test_shm_names_without_shm_say_what_to_install(name: str) -> None:
    with pytest.raises(pm.MissingPluginError, match="pip install pashmap-shm") as info:
        pm.set_default_context(name, num_workers=4)
    assert isinstance(info.value, ImportError)
    assert info.value.package == "pashmap-shm"


def test_local_context_has_one_worker() -> None:
    with pytest.raises(ValueError, match="exactly 1 worker"):
        pm.LocalContext(num_workers=4)
    assert pm.LocalContext(num_workers=1).num_workers == 1


def test_use_context_is_scoped() -> None:
    before = pm.get_default_context()
    with pm.use_context("serial") as context:
        assert pm.get_default_context() is context
        assert context is not before
    assert pm.get_default_context() is before


def test_use_context_restores_on_exception() -> None:
    before = pm.get_default_context()
    with pytest.raises(ZeroDivisionError), pm.use_context(pm.LocalContext()):
        1 / 0  # noqa: B018
    assert pm.get_default_context() is before


def test_use_context_nests() -> None:
    outer, inner = pm.LocalContext(), pm.LocalContext()
    with pm.use_context(outer):
        with pm.use_context(inner):
            assert pm.get_default_context() is inner
        assert pm.get_default_context() is outer


def test_use_context_with_a_bad_name_changes_nothing() -> None:
    before = pm.get_default_context()
    with pytest.raises(ValueError, match="unknown context"), pm.use_context("nope"):
        pass
    assert pm.get_default_context() is before


def test_context_is_a_context_manager() -> None:
    with pm.LocalContext() as context:
        assert context.map(lambda w, i, v: v + 1, [1]) == [2]
    assert repr(context) == "LocalContext(num_workers=1)"
