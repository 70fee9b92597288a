"""The host names no model family in its code: families are data its plugins register.

Docstrings and comments may name a family as an example; string literals and identifiers may not (a
family's name in code is a special case a sixth family would not get).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

HOST = Path(__file__).resolve().parents[1] / "host" / "plugformers"
# The grep, plus "vit" as a piece of an identifier (`plugformers_vit`, `ViTModel`), which \b misses.
FAMILY = re.compile(r"(?i:distilbert|wav2vec2|maskformer|resnet|convnext|\bvit\b)|(?<![A-Za-z])[vV]i[tT](?![a-z])")


def family_names_in_code(source: str, filename: str = "<source>") -> list[str]:
    """``"file:line: text"`` for each string literal (not a docstring) or identifier naming a family."""
    tree = ast.parse(source, filename)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }
    found = []
    for node in ast.walk(tree):
        texts: list[str | None] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            texts.append(node.value)
        elif isinstance(node, ast.Name):
            texts.append(node.id)
        elif isinstance(node, ast.Attribute):
            texts.append(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            texts.append(node.name)
        elif isinstance(node, ast.arg):
            texts.append(node.arg)
        elif isinstance(node, ast.keyword):
            texts.append(node.arg)
        elif isinstance(node, ast.alias):
            texts += [node.name, node.asname]
        elif isinstance(node, ast.ImportFrom):
            texts.append(node.module)
        found += [f"{filename}:{node.lineno}: {t!r}" for t in texts if t and FAMILY.search(t)]  # type: ignore[attr-defined]
    return found


def test_the_checker_sees_literals_and_identifiers_but_not_docs():
    source = '''
"""Module doc naming DistilBERT."""
import plugformers_vit  # a comment naming Wav2Vec2 is fine
def f(resnet_size=1):
    """Docstring: MaskFormer."""
    x = "convnext"
    return arch.startswith("Wav2Vec2"), model_type == "wav2vec2", ViTModel, f"{x}-vit", g(vit=1)
'''
    found = family_names_in_code(source)
    texts = [line.split(": ", 1)[1] for line in found]
    assert texts.count("'plugformers_vit'") == 1 and "'resnet_size'" in texts and "'convnext'" in texts
    assert "'Wav2Vec2'" in texts and "'wav2vec2'" in texts and "'ViTModel'" in texts and "'-vit'" in texts
    assert "'vit'" in texts  # the keyword argument
    assert not any("DistilBERT" in t or "MaskFormer" in t for t in texts)
    assert not family_names_in_code("activity = navigate(vitamin=Vital)\n")


@pytest.mark.parametrize("path", sorted(HOST.rglob("*.py")), ids=lambda p: str(p.relative_to(HOST)))
def test_host_code_names_no_family(path: Path):
    found = family_names_in_code(path.read_text(encoding="utf-8"), str(path.relative_to(HOST.parent)))
    assert not found, "the host names a family in code (move it into the plugin's registration):\n" + "\n".join(found)
