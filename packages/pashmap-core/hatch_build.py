"""Keep the repository's .gitignore out of the sdist.

hatchling adds the VCS ignore file it finds above the package directory to every sdist
(to reproduce the exclusions), which puts the monorepo's own .gitignore into this
package's archive, where it means nothing.
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class NoGitignore(BuildHookInterface):  # type: ignore[type-arg]
    """Drop .gitignore from the files the sdist forces in."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        forced = build_data.get("force_include", {})
        for source in [s for s, target in forced.items() if target == ".gitignore"]:
            del forced[source]
