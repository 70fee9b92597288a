"""The conformance suite, as a pytest plugin: the registry is the test matrix.

Every model class a family registers runs every check of :data:`plugformers.vocabulary.CONFORMANCE_CHECKS`
(forward, backward, save/load through its Auto classes, outputs, dtypes, base/head loading, gradient
checkpointing, ``torch.compile``, ``torch.export``, ONNX), built from the registration alone: the family's
``tiny_config`` and ``example_inputs``. One test per (family, class, check), with ids like
``test_conformance[vit-ViTModel-forward]``. A check a class cannot pass is skipped only where its
registration names it, with the reason, in ``skips``; a capability (``supports_compile_fullgraph``,
``supports_export``, ``supports_gradient_checkpointing``) that is False needs such a reason too.

A plugin runs the suite with one line in the ``conftest.py`` of its tests folder (the folder pytest is
given, or the root one)::

    pytest_plugins = ["plugformers.testing.conformance"]

By default every installed family is tested; to test only the plugin's own, add::

    plugformers_conformance_families = ["my-family"]

or set the ini option ``plugformers_conformance_families``. ``--conformance-family NAME`` narrows any run.
The tests appear under that ``conftest.py`` (``tests/conftest.py::test_conformance[...]``); when several
conftest files ask for the suite in one run, each family is tested once. Environment:
``PLUGFORMERS_COMPILE_BACKEND=inductor`` compiles kernels in the compile check (default: the "eager"
backend, which proves the full-graph capture), ``PLUGFORMERS_CONFORMANCE_RUN_SKIPPED=1`` runs the
declared skips too, to find the ones no longer needed.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from plugformers.testing.checks import MARKS_ATTRIBUTE, Case, CheckSkipped, applies, cases, run_check
from plugformers.vocabulary import CONFORMANCE_CHECKS

__all__ = ["FAMILIES_VARIABLE", "ConformanceSuite"]

#: The conftest variable (and ini option) naming the families a conftest's suite tests.
FAMILIES_VARIABLE = "plugformers_conformance_families"
_CLAIMED = pytest.StashKey[set[str]]()
#: Checks that take seconds per class on a small CPU: marked ``slow`` for every class but a family's first.
SLOW_CHECKS = frozenset({"compile"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(FAMILIES_VARIABLE, type="linelist", default=[], help="model types the conformance suite tests")
    parser.getgroup("plugformers").addoption(
        "--conformance-family",
        action="append",
        default=[],
        metavar="MODEL_TYPE",
        help="run the plugformers conformance suite for this model type only (repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: a test of the plugformers conformance suite")
    config.addinivalue_line("markers", "slow: larger than the tiny configs the default run uses")
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped where none is present")
    config.stash[_CLAIMED] = set()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Every family's models share the host blocks' code objects, so compiling many models in one process
    # would exhaust dynamo's recompile limit (8 per code object) and fail fullgraph=True: start each test
    # with empty caches. Only when some test has imported dynamo, so runs without compile pay nothing.
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        dynamo.reset()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply the markers the pytest-free mixins name on their tests (``needs_gpu``: ``gpu``)."""
    for item in items:
        for name in getattr(getattr(item, "function", None), MARKS_ATTRIBUTE, ()):
            item.add_marker(name)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The suite lives under each ``conftest.py`` that asks for this plugin."""
    if file_path.name != "conftest.py":
        return None
    conftest = _conftest_module(parent.config, file_path)
    if conftest is None or __name__ not in _declared_plugins(conftest):
        return None
    families = getattr(conftest, FAMILIES_VARIABLE, None)
    if families is None:
        families = parent.config.getini(FAMILIES_VARIABLE) or None
    elif isinstance(families, str):
        families = [families]
    suite: ConformanceSuite = ConformanceSuite.from_parent(parent, path=file_path)
    suite.families = list(families) if families is not None else None
    return suite


def _conftest_module(config: pytest.Config, path: Path) -> Any:
    module = config.pluginmanager.get_plugin(str(path))
    if module is None:  # registered under another spelling of the path
        module = next(
            (m for m in config.pluginmanager.get_plugins() if getattr(m, "__file__", None) and Path(m.__file__) == path),
            None,
        )
    return module


def _declared_plugins(conftest: Any) -> Sequence[str]:
    declared = getattr(conftest, "pytest_plugins", ())
    return [declared] if isinstance(declared, str) else list(declared)


class ConformanceSuite(pytest.Module):
    """The conformance tests of the families one ``conftest.py`` asks for (and no other conftest took)."""

    families: list[str] | None = None

    def _getobj(self) -> types.ModuleType:
        module = types.ModuleType(f"{__name__}[{self.nodeid}]")
        module.__file__ = __file__
        params = list(self._params())
        if params:

            @pytest.mark.parametrize(("case", "check"), params)
            def test_conformance(case: Case | None, check: str, tmp_path: Path) -> None:
                _run(case, check, tmp_path)

            module.test_conformance = test_conformance  # type: ignore[attr-defined]
        return module

    def funcnamefilter(self, name: str) -> bool:
        return name == "test_conformance"  # whatever the project's python_functions setting

    def _params(self) -> Iterable[Any]:
        from plugformers.plugins import get_registry

        registry = get_registry()
        claimed = self.config.stash[_CLAIMED]
        narrowed = self.config.getoption("conformance_family") or None
        if self.families is not None:
            wanted = [t for t in self.families if narrowed is None or t in narrowed]
        else:
            wanted = list(narrowed) if narrowed else sorted(t for t, s in registry.families.items() if s.models)
        for model_type in wanted:
            if model_type in claimed:
                continue
            claimed.add(model_type)
            spec = registry.families.get(model_type)
            if spec is None:
                yield pytest.param(None, model_type, id=f"{model_type}-registered")
                continue
            for index, case in enumerate(cases(spec)):
                for check in CONFORMANCE_CHECKS:
                    if applies(case, check):
                        # The first class of each family keeps its slow checks in a `-m "not slow"` run.
                        slow = check in SLOW_CHECKS and index > 0
                        marks = [pytest.mark.conformance, *([pytest.mark.slow] if slow else [])]
                        yield pytest.param(case, check, id=f"{case.id}-{check}", marks=marks)


def _run(case: Case | None, check: str, tmp_path: Path) -> None:
    if case is None:  # a family the conftest names is not registered: say why, from the registry
        from plugformers.plugins import get_registry

        registry = get_registry()
        errors = [f"{i.name}: {e}" for i in registry.plugins.values() for e in i.errors]
        pytest.fail(registry.unknown_type_message(check) + (f" Plugin errors: {'; '.join(errors)}" if errors else ""))
    try:
        run_check(case, check, tmp_path)
    except CheckSkipped as exc:
        pytest.skip(f"{case.class_name}: {exc}")

