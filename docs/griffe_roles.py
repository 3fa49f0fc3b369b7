"""A griffe extension for the API reference (mkdocs.yml: mkdocstrings' ``extensions``).

bumphunt's docstrings name other objects with Sphinx roles, ``:func:`run_scan```,
``:class:`~bumphunt.models.ShapeModel```, which mkdocstrings would show as they are written.
Each becomes the name in code, linked to its entry in the API reference where it has one:
the name is resolved in the scope of the object the docstring belongs to (as Sphinx would),
and the link is an optional cross-reference of mkdocs-autorefs, which stays plain code where
the object is not rendered instead of warning. ``~`` shows the last part of the name only.
Only the text griffe hands to mkdocstrings changes; the source is left as it is.
"""

from __future__ import annotations

import html
import re

import griffe

ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|obj|exc|const):`(?P<short>~?)(?P<name>[A-Za-z_][\w.]*)`")


def _canonical(obj: griffe.Object, name: str) -> tuple[str, str]:
    """The path of the object ``name`` means in the docstring of ``obj``: (canonical, as resolved)."""
    head, _, rest = name.partition(".")
    try:
        path = obj.resolve(head) + (f".{rest}" if rest else "")
    except (griffe.NameResolutionError, AttributeError, KeyError):
        path = name
    try:
        target = obj.modules_collection[path]
        canonical = target.final_target.path if target.is_alias else target.path
    except (KeyError, AttributeError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        canonical = path
    return canonical, path


def _replace(obj: griffe.Object, text: str) -> str:
    def reference(match: re.Match) -> str:
        name = match["name"]
        shown = name.rsplit(".", 1)[-1] if match["short"] else name
        canonical, path = _canonical(obj, name)
        slug = f' slug="{html.escape(path)}"' if path != canonical else ""
        code = f"<code>{html.escape(shown)}</code>"
        return f'<autoref identifier="{html.escape(canonical)}"{slug} optional>{code}</autoref>'

    return ROLE.sub(reference, text)


class SphinxRoles(griffe.Extension):
    """Sphinx roles in docstrings -> optional cross-references of mkdocs-autorefs."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self._convert(pkg, set())

    def _convert(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = _replace(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._convert(member, seen)
