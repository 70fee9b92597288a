"""Every Python block of the docs' guides runs, in order, in a fresh folder (one namespace per page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDES = [*sorted((DOCS / "guides").glob("*.md")), DOCS / "batch-inference.md"]


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_code_blocks_run(page, tmp_path, monkeypatch):
    needs = {"custom-architecture": ("plugformers_distilbert", "plugformers_vit", "plugformers_wav2vec2",
                                     "plugformers_resnet", "plugformers_maskformer"),
             "batch-inference": ("plugformers_distilbert",)}
    for module in needs.get(page.stem, ()):
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLUGFORMERS_HOME", str(tmp_path / ".plugformers-home"))
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict[str, object] = {"__name__": f"guide_{page.stem.replace('-', '_')}"}
    blocks = _blocks(page)
    assert blocks, f"{page.name} has no python blocks"
    for i, code in enumerate(blocks):
        first = code.split("\n", 1)[0]
        if first.startswith("# file: "):
            target = tmp_path / first[len("# file: ") :].strip()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code.split("\n", 1)[1] if "\n" in code else "", encoding="utf-8")
            continue
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.name} block {i} failed: {type(exc).__name__}: {exc}\n{code}") from exc
