"""``plugformers demo --small``: every installed family end to end, from what the registry says of it."""

from __future__ import annotations

import json
import re

from plugformers.cli import main
from plugformers.plugins import get_registry

# The installed families, read at collection: before any test registers families of its own at run time.
FAMILIES = sorted(t for t, s in get_registry().families.items() if s.models)


def test_small_demo_runs_every_installed_family(tmp_path, capsys):
    families = FAMILIES
    args = ["demo", "--small", "--output-dir", str(tmp_path)]
    for family in families:
        args += ["--family", family]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{len(families)} of {len(families)} famil" in out and "FAILED" not in out
    registry = get_registry()
    for family in families:
        spec = registry.families[family]
        section = out.split(f"== {family} (plugin {spec.plugin})")[1].split("\n== ")[0]
        # The tiny config was used and saved, and the host's sample of the family's modality ran through the model.
        saved = json.loads((tmp_path / family / "config.json").read_text(encoding="utf-8"))
        for key, value in spec.tiny_config.items():
            if key == "num_labels":  # written as its labels
                assert len(saved["id2label"]) == value, family
            elif not isinstance(value, dict):
                assert saved[key] == value, (family, key)
        assert "forward" in section and "outputs" in section
        if spec.modality == "text":
            tokens = re.search(r"tokens\s+(\[.*\])", section)
            assert tokens and "[UNK]" not in tokens.group(1), section


def test_a_family_without_example_data_still_builds_saves_and_reloads(tmp_path, capsys):
    # The host's test family registers no tiny_config, example inputs or preprocessor.
    assert main(["demo", "--family", "tiny-test", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "build TinyModel" in out and "AutoModel.from_pretrained" in out
    assert "no example preprocessor registered" in out
