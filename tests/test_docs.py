"""Every Python block of the docs' guides runs, in order, in a fresh folder (one namespace per page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDES = sorted((Path(__file__).resolve().parents[1] / "docs" / "guides").glob("*.md"))


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_code_blocks_run(page, tmp_path, monkeypatch):
    needs = {"custom-architecture": ("plugformers_distilbert", "plugformers_vit", "plugformers_wav2vec2",
                                     "plugformers_resnet", "plugformers_maskformer")}
    for module in needs.get(page.stem, ()):
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"guide_{page.stem.replace('-', '_')}"}
    blocks = _blocks(page)
    assert blocks, f"{page.name} has no python blocks"
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.name} block {i} failed: {type(exc).__name__}: {exc}\n{code}") from exc
