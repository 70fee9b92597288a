"""The README's two set-up commands are what CI runs, and the sample data the demo uses is shipped."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = next(b.strip() for b in _bash_blocks() if "nox" in b and "pip install" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_quick_start_installs_every_plugin_folder():
    install = next(b for b in _bash_blocks() if "plugformers demo" in b)
    for plugin in sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file()):
        assert f"-e plugins/{plugin}" in install, plugin


def test_demo_sample_inputs_are_shipped_with_the_package():
    data = ROOT / "host" / "plugformers" / "data"
    assert (data / "cat.jpg").stat().st_size > 1000
    assert (data / "speech.wav").stat().st_size > 1000
