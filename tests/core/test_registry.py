"""How map finds the target for an object and a context for a name.

Plugins are real distributions here: each test writes a ``*.dist-info`` folder with an
``entry_points.txt`` and a module next to it, and puts the folder on ``sys.path``, which
is exactly how an installed plugin is found.
"""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import pashmap as pm
import pashmap.targets
from pashmap import registry

pytestmark = pytest.mark.usefixtures("clean_registry")


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Install a throw-away plugin distribution: install_plugin(name, entry_points, module)."""
    added: list[str] = []

    def install(dist: str, entry_points: str, module_name: str, module_source: str) -> None:
        root = tmp_path / dist
        info = root / f"{dist}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        (root / f"{module_name}.py").write_text(textwrap.dedent(module_source))
        monkeypatch.syspath_prepend(str(root))
        added.append(module_name)
        registry.registrations.cache_clear()
        registry.target_factories.cache_clear()

    yield install
    for module_name in added:
        sys.modules.pop(module_name, None)


# ------------------------------------------------------------------ targets
def test_builtin_targets_are_registered_in_the_entry_point_group() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="pashmap.targets")}
    assert names["sequence"] == "pashmap.targets.sequence:SequenceTarget"
    assert names["ndarray"] == "pashmap.targets.ndarray:NdarrayTarget"
    assert names["dataarray"] == "pashmap.targets.dataarray:DataArrayTarget"
    found = registry.registrations(registry.TARGETS_GROUP)
    assert {"sequence", "ndarray", "dataarray"} <= set(found)
    assert found["sequence"].distribution == "pashmap-core"


def test_resolution_wraps_builtin_types() -> None:
    assert isinstance(registry.resolve_target([1, 2]), pm.SequenceTarget)
    assert isinstance(registry.resolve_target(range(3)), pm.SequenceTarget)
    assert isinstance(registry.resolve_target(np.zeros(3)), pm.NdarrayTarget)


def test_a_map_target_is_used_as_it_is() -> None:
    target = pm.NdarrayTarget(np.zeros((2, 3)), axis=1)
    assert registry.resolve_target(target) is target


class Grid:
    """An object naming its own target: iterate its rows, giving (index, row, row sum)."""

    def __init__(self) -> None:
        self.data = np.arange(6).reshape(3, 2)

    def __pashmap_target__(self) -> pm.MapTarget[range]:
        return pm.NdarrayTarget(self.data)


class GridList(list[int]):
    """A list whose own target wins over the registered SequenceTarget."""

    def __pashmap_target__(self) -> pm.MapTarget[range]:
        return pm.NdarrayTarget(np.asarray(self) * 10)


def test_pashmap_target_hook_wins() -> None:
    assert pm.map(lambda w, i, row: int(row.sum()), Grid()) == [1, 5, 9]
    assert pm.map(lambda w, i, v: int(v), GridList([1, 2])) == [10, 20]


def test_pashmap_target_hook_must_return_a_target() -> None:
    class Broken:
        def __pashmap_target__(self) -> object:
            return [1, 2]

    with pytest.raises(TypeError, match=r"__pashmap_target__\(\) must return a MapTarget"):
        pm.map(lambda w, i, v: v, Broken())


def test_unknown_type_error_names_type_accepted_types_and_how_to_write_a_target() -> None:
    with pytest.raises(TypeError) as info:
        pm.map(lambda w, i, v: v, {1: 2})
    message = str(info.value)
    assert "of type dict" in message
    assert "sequences (list, tuple, range" in message
    assert "numpy.ndarray" in message
    assert "xarray.DataArray" in message
    assert "split(n)" in message
    assert "iterate(share)" in message
    assert "__pashmap_target__" in message
    assert "list(d.items())" in message


def test_unknown_iterator_gets_the_list_hint() -> None:
    with pytest.raises(TypeError, match=r"map over list\(obj\)"):
        pm.map(lambda w, i, v: v, (x for x in range(3)))


def test_registered_plugin_target_is_found(install_plugin) -> None:  # type: ignore[no-untyped-def]
    install_plugin(
        "pm-test-words",
        """
        [pashmap.targets]
        words = pm_test_words:WordsTarget
        """,
        "pm_test_words",
        """
        import pashmap as pm

        class Sentence:
            def __init__(self, text):
                self.text = text

        class WordsTarget:
            description = "pm_test_words.Sentence"

            def __init__(self, sentence):
                self.words = sentence.text.split()

            @classmethod
            def accepts(cls, obj):
                return isinstance(obj, Sentence)

            def split(self, n):
                return pm.contiguous_ranges(len(self.words), n)

            def iterate(self, share):
                return ((i, self.words[i]) for i in share)
        """,
    )
    import pm_test_words  # type: ignore[import-not-found]

    sentence = pm_test_words.Sentence("to be or not")
    assert pm.map(lambda w, i, word: word.upper(), sentence) == ["TO", "BE", "OR", "NOT"]
    assert registry.registrations(registry.TARGETS_GROUP)["words"].distribution == "pm-test-words"
    with pytest.raises(TypeError, match=r"pm_test_words\.Sentence"):
        pm.map(lambda w, i, v: v, {})  # the plugin's description is listed among the accepted


def _install_list_plugin(install_plugin, name: str) -> None:  # type: ignore[no-untyped-def]
    """A plugin whose target claims every list (so lists become ambiguous)."""
    module = f"pm_test_{name}"
    install_plugin(
        f"pm-test-{name.replace('_', '-')}",
        f"""
        [pashmap.targets]
        {name} = {module}:ListTarget
        """,
        module,
        """
        import pashmap as pm

        class ListTarget(pm.SequenceTarget):
            @classmethod
            def accepts(cls, obj):
                return isinstance(obj, list)
        """,
    )


def test_ambiguous_targets_raise_naming_both(install_plugin) -> None:  # type: ignore[no-untyped-def]
    _install_list_plugin(install_plugin, "lists")
    with pytest.raises(TypeError, match="several targets accept it") as info:
        pm.map(lambda w, i, v: v, [1, 2])
    assert "'sequence'" in str(info.value)
    assert "'lists'" in str(info.value)
    assert "pm-test-lists" in str(info.value)
    # Wrapping explicitly resolves the ambiguity; tuples are still unambiguous.
    assert pm.map(lambda w, i, v: v, pm.SequenceTarget([1, 2])) == [1, 2]
    assert pm.map(lambda w, i, v: v, (1, 2)) == [1, 2]


def test_a_broken_target_plugin_warns_and_is_skipped(install_plugin) -> None:  # type: ignore[no-untyped-def]
    install_plugin(
        "pm-test-broken",
        """
        [pashmap.targets]
        broken = pm_test_broken:Nothing
        """,
        "pm_test_broken",
        "raise RuntimeError('this plugin is broken')\n",
    )
    with pytest.warns(RuntimeWarning, match="'broken' from pm-test-broken.*failed to load"):
        assert pm.map(lambda w, i, v: v, [5]) == [5]


def test_a_plugin_whose_accepts_raises_warns_and_is_skipped(install_plugin) -> None:  # type: ignore[no-untyped-def]
    install_plugin(
        "pm-test-raising",
        """
        [pashmap.targets]
        raising = pm_test_raising:Raising
        """,
        "pm_test_raising",
        """
        class Raising:
            @classmethod
            def accepts(cls, obj):
                raise ZeroDivisionError("oops")
        """,
    )
    with pytest.warns(RuntimeWarning, match="raised in accepts"):
        assert pm.map(lambda w, i, v: v, [5]) == [5]


def test_a_plugin_without_accepts_warns(install_plugin) -> None:  # type: ignore[no-untyped-def]
    install_plugin(
        "pm-test-noaccepts",
        "[pashmap.targets]\nnoaccepts = pm_test_noaccepts:Thing\n",
        "pm_test_noaccepts",
        "class Thing:\n    pass\n",
    )
    with pytest.warns(RuntimeWarning, match="has no accepts"):
        assert pm.map(lambda w, i, v: v, [5]) == [5]


def test_duplicate_names_warn_and_keep_the_first(install_plugin) -> None:  # type: ignore[no-untyped-def]
    install_plugin(
        "pm-test-dup",
        "[pashmap.targets]\nsequence = pm_test_dup:Other\n",
        "pm_test_dup",
        "class Other:\n    pass\n",
    )
    with pytest.warns(RuntimeWarning, match="registered in 'pashmap.targets' by both"):
        found = registry.registrations(registry.TARGETS_GROUP)
    assert found["sequence"].value == "pashmap.targets.sequence:SequenceTarget"


# The "pip install pashmap-xfel" hint for real EXtra-data objects is tested in a venv
# without pashmap-xfel: test_standalone_install.py.


# ----------------------------------------------------------------- contexts
def test_builtin_contexts_are_registered_in_the_entry_point_group() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="pashmap.contexts")}
    assert names["local"] == "pashmap.local:LocalContext"
    assert names["serial"] == "pashmap.local:LocalContext"


def test_plugin_context_by_name(install_plugin) -> None:  # type: ignore[no-untyped-def]
    install_plugin(
        "pm-test-ctx",
        "[pashmap.contexts]\nbackwards = pm_test_ctx:BackwardsContext\n",
        "pm_test_ctx",
        """
        import pashmap as pm

        class BackwardsContext(pm.LocalContext):
            '''Runs shares last to first; results still come back in index order.'''

            def run(self, kernel, target, **options):
                shares = target.split(4)
                done = {}
                for k in reversed(range(len(shares))):
                    done[k] = [kernel(0, *entry) for entry in target.iterate(shares[k])]
                return [r for k in range(len(shares)) for r in done[k]]
        """,
    )
    context = pm.set_default_context("backwards")
    assert type(context).__name__ == "BackwardsContext"
    order: list[int] = []
    assert pm.map(lambda w, i, v: order.append(i) or v * 2, list(range(8))) == [
        0,
        2,
        4,
        6,
        8,
        10,
        12,
        14,
    ]
    assert order == [6, 7, 4, 5, 2, 3, 0, 1]


def test_a_plugin_context_that_fails_to_import_says_so(install_plugin) -> None:  # type: ignore[no-untyped-def]
    install_plugin(
        "pm-test-badctx",
        "[pashmap.contexts]\nbad = pm_test_badctx:Bad\n",
        "pm_test_badctx",
        "raise RuntimeError('no GPU here')\n",
    )
    with pytest.raises(ImportError, match="'bad' context is registered by pm-test-badctx"):
        pm.set_default_context("bad")


def test_a_plugin_context_that_makes_no_context(install_plugin) -> None:  # type: ignore[no-untyped-def]
    install_plugin(
        "pm-test-notctx",
        "[pashmap.contexts]\nnotctx = pm_test_notctx:make\n",
        "pm_test_notctx",
        "def make():\n    return 42\n",
    )
    with pytest.raises(TypeError, match="not a pashmap Context"):
        pm.set_default_context("notctx")


def test_discovery_warnings_are_not_errors_for_good_plugins() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.target_factories()


def test_a_plugin_installed_after_a_map_over_a_list_is_still_asked(install_plugin) -> None:  # type: ignore[no-untyped-def]
    assert pm.map(lambda w, i, v: v, [1, 2]) == [1, 2]  # remembers: lists -> 'sequence'
    _install_list_plugin(install_plugin, "lists_later")
    with pytest.raises(TypeError, match="several targets accept it"):
        pm.map(lambda w, i, v: v, [1, 2])


def test_a_type_registered_at_run_time_is_mapped_over() -> None:
    class Frames:
        def __init__(self, *values: float) -> None:
            self.values = values

    unregister = pm.register_target(Frames, lambda frames: pm.NdarrayTarget(frames.values))
    try:
        assert pm.map(lambda w, i, v: 2 * v, Frames(1.0, 2.0)) == [2.0, 4.0]
    finally:
        unregister()
    with pytest.raises(TypeError, match="cannot map over"):
        pm.map(lambda w, i, v: v, Frames(1.0))


def test_a_registration_for_a_builtin_type_wins_and_a_predicate_works() -> None:
    unregister = pm.register_target(
        lambda obj: isinstance(obj, list) and obj[:1] == ["reversed"],
        lambda obj: pm.targets.SequenceTarget(obj[::-1]),
    )
    try:
        assert pm.map(lambda w, i, v: v, ["reversed", "b"]) == ["b", "reversed"]
        assert pm.map(lambda w, i, v: v, ["a", "b"]) == ["a", "b"]
    finally:
        unregister()
    assert pm.map(lambda w, i, v: v, ["reversed", "b"]) == ["reversed", "b"]


def test_register_target_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="a type or a predicate"):
        pm.register_target(3, lambda obj: obj)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable factory"):
        pm.register_target(int, None)  # type: ignore[arg-type]
    unregister = pm.register_target(int, lambda obj: obj)
    try:
        with pytest.raises(TypeError, match="must return a MapTarget"):
            pm.map(lambda w, i, v: v, 5)
    finally:
        unregister()


def test_a_dataframe_gets_dataframe_advice_in_short_lines() -> None:
    pandas = pytest.importorskip("pandas")
    with pytest.raises(TypeError) as info:
        pm.map(lambda w, i, v: v, pandas.DataFrame({"a": [1, 2]}))
    message = str(info.value)
    assert "df.to_numpy()" in message
    assert "df.itertuples()" in message
    assert "list(obj)" not in message  # which would give the column names
    assert max(len(line) for line in message.splitlines()) < 420
    assert message.splitlines()[0] == "cannot map over an object of type pandas.DataFrame."
