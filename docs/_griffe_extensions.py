"""Griffe extensions for the docs build (loaded by the mkdocstrings handler, see mkdocs.yml; not a page).

The docstrings use roles such as :class:`Foo` and :meth:`bar`, which Markdown does not know; each becomes
the code span `Foo`, so the API reference does not print the role's name. A paragraph ending in ``::``
(reST's "a literal block follows") loses one colon; the indented block after it is already a Markdown code
block. The Auto model classes, made by a factory call, are shown as the classes they are at run time.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const):`~?([^`]+)`")
_LITERAL_MARKER = re.compile(r"(?<=\S):(?=:\n\n[ \t])")


class RestHabitsAsMarkdown(griffe.Extension):
    """Rewrite :role:`target` to `target` and "text::" before a literal block to "text:" in every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _ROLE.sub(r"`\1`", obj.docstring.value)
            obj.docstring.value = _LITERAL_MARKER.sub("", text)


class AutoModelFactoryAsClasses(griffe.Extension):
    """Show ``AutoModel = _auto_model("AutoModel", "doc")`` in ``plugformers.auto`` as the class it makes.

    Static analysis sees those names as plain assignments; at run time each is a subclass of
    ``_BaseAutoModelClass`` with that docstring, which is what the reference should show.
    """

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        if mod.path != "plugformers.auto":
            return
        for name, member in list(mod.members.items()):
            value = None if member.is_alias or not member.is_attribute else member.value
            if not (isinstance(value, griffe.ExprCall) and str(value.function) == "_auto_model"):
                continue
            doc = value.arguments[1] if len(value.arguments) > 1 else ""
            cls = griffe.Class(
                name,
                lineno=member.lineno,
                endlineno=member.endlineno,
                bases=[griffe.ExprName("_BaseAutoModelClass", parent=mod)],
            )
            cls.docstring = griffe.Docstring(str(doc).strip("'\""), parent=cls)
            del mod.members[name]
            mod.set_member(name, cls)
