"""A griffe extension: Sphinx roles in the docstrings become links in the API pages.

The packages' docstrings are Google style, with the odd reStructuredText cross-reference
(``:class:`~pashmap.MapTarget```, ``:func:`pashmap.array```) so that ``help()`` and IDEs
read well. mkdocstrings would print those roles verbatim; this turns each one into an
*optional* autorefs link: a link when the object is rendered somewhere on the site, plain
code otherwise (never a broken-link warning, which ``--strict`` would turn into an error).
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

# :role:`target` or :role:`~target` or :role:`title <target>`
_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj|const):"
    r"`(?:(?P<title>[^`<]+?)\s*<(?P<explicit>[^`>]+)>|(?P<tilde>~?)(?P<target>[^`]+))`"
)


def _link(match: re.Match[str]) -> str:
    if match["explicit"]:
        identifier, title = match["explicit"].strip(), match["title"].strip()
    else:
        identifier = match["target"].strip()
        title = identifier.rpartition(".")[2] if match["tilde"] else identifier
    identifier = identifier.removesuffix("()")
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def convert_roles(text: str) -> str:
    """Replace every Sphinx cross-reference role in ``text`` with an optional autoref."""
    return _ROLE.sub(_link, text)


class SphinxRoles(Extension):
    """Rewrite Sphinx roles in every docstring as it is loaded."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = convert_roles(obj.docstring.value)
