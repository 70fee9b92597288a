"""Plugin discovery through entry points: laziness, isolation of broken plugins, conflicts, env switches.

Each scenario runs in a fresh interpreter with fake distributions (``*.dist-info`` folders) on its path,
exactly how installed plugins are found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HOST = str(Path(__file__).resolve().parents[1] / "host")

GOOD = '''
from plugformers import hookimpl

@hookimpl
def plugformers_register_families(register):
    register("{mt}", config="{mod}_impl:{cls}Config", models={{"AutoModel": "{mod}_impl:{cls}Model"}},
             override={override})
'''
IMPL = '''
from plugformers.configuration_utils import PretrainedConfig
class {cls}Config(PretrainedConfig):
    model_type = "{mt}"
class {cls}Model:
    pass
'''


def make_plugin(root: Path, dist: str, ep_name: str, module: str, body: str, impl: str = "") -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    if impl:
        (root / f"{module}_impl.py").write_text(textwrap.dedent(impl))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[plugformers]\n{ep_name} = {module}\n")


def good(root: Path, dist: str, name: str, mt: str, cls: str, override: bool = False) -> None:
    mod = f"plug_{name}"
    make_plugin(
        root, dist, name, mod, GOOD.format(mt=mt, mod=mod, cls=cls, override=override), IMPL.format(mt=mt, cls=cls)
    )


def run(root: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGFORMERS_")}
    full_env["PYTHONPATH"] = os.pathsep.join([str(root), HOST])
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env, cwd=root, timeout=120
    )


REPORT = """
import json, warnings
warnings.simplefilter("always")
import plugformers
r = plugformers.get_registry()
print(json.dumps({n: i.as_dict() for n, i in r.plugins.items() if n.startswith(("alpha", "beta", "broken", "junk", "raiser"))}))
"""


def test_import_is_lazy_and_does_not_touch_torch_or_plugins(tmp_path):
    good(tmp_path, "alpha-dist", "alpha", "alpha-type", "Alpha")
    out = run(
        tmp_path,
        """
        import sys, plugformers
        print("torch" in sys.modules, "plug_alpha" in sys.modules, "pluggy" in sys.modules)
        cfg = plugformers.AutoConfig.for_model("alpha-type")
        print(type(cfg).__name__, "torch" in sys.modules, "plug_alpha" in sys.modules)
        """,
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.split("\n")[:2]
    assert first == "False False True"
    assert second == "AlphaConfig False True"


def test_broken_import_is_recorded_and_others_keep_working(tmp_path):
    good(tmp_path, "alpha-dist", "alpha", "alpha-type", "Alpha")
    make_plugin(tmp_path, "broken-dist", "broken", "plug_broken", "raise RuntimeError('boom at import')\n")
    out = run(tmp_path, REPORT + "\nprint(type(plugformers.AutoConfig.for_model('alpha-type')).__name__)")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.splitlines()[0])
    assert report["broken"]["status"] == "failed"
    assert "boom at import" in report["broken"]["errors"][0]
    assert report["alpha"]["status"] == "loaded" and report["alpha"]["model_types"] == ["alpha-type"]
    assert out.stdout.splitlines()[1] == "AlphaConfig"
    assert "broken" in out.stderr and "broken-dist" in out.stderr  # one warning naming plugin and distribution


def test_hook_that_raises_or_registers_junk_is_isolated(tmp_path):
    good(tmp_path, "alpha-dist", "alpha", "alpha-type", "Alpha")
    make_plugin(
        tmp_path,
        "raiser-dist",
        "raiser",
        "plug_raiser",
        """
        from plugformers import hookimpl
        @hookimpl
        def plugformers_register_families(register):
            raise ValueError("hook exploded")
        """,
    )
    make_plugin(
        tmp_path,
        "junk-dist",
        "junk",
        "plug_junk",
        """
        from plugformers import hookimpl
        @hookimpl
        def plugformers_register_families(register):
            register("junk-type", config=42)
        """,
    )
    out = run(tmp_path, REPORT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.splitlines()[0])
    assert report["raiser"]["status"] == "failed" and "hook exploded" in report["raiser"]["errors"][0]
    assert report["junk"]["status"] == "failed" and "config" in report["junk"]["errors"][0]
    assert report["alpha"]["status"] == "loaded"


def test_conflicting_model_type_names_both_distributions(tmp_path):
    good(tmp_path, "alpha-dist", "alpha", "shared-type", "Alpha")
    good(tmp_path, "beta-dist", "beta", "shared-type", "Beta")
    out = run(tmp_path, REPORT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.splitlines()[0])
    errors = report["alpha"]["errors"] + report["beta"]["errors"]
    assert len(errors) == 1 and "alpha-dist" in errors[0] and "beta-dist" in errors[0]
    strict = run(tmp_path, REPORT, PLUGFORMERS_STRICT_PLUGINS="1")
    assert strict.returncode != 0 and "PluginConflictError" in strict.stderr


def test_explicit_override_replaces_without_error(tmp_path):
    good(tmp_path, "alpha-dist", "alpha", "shared-type", "Alpha")
    good(tmp_path, "beta-dist", "beta", "shared-type", "Beta", override=True)
    out = run(tmp_path, REPORT + "\nprint(type(plugformers.AutoConfig.for_model('shared-type')).__name__)")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.splitlines()[0])
    assert report["alpha"]["errors"] == [] and report["beta"]["errors"] == []
    assert out.stdout.splitlines()[1] == "BetaConfig"


def test_an_installed_plugin_can_override_a_host_attention_backend(tmp_path):
    # override=True replaces the host's backend, and the host records no conflict.
    body = """
from plugformers import hookimpl
from plugformers.attention import eager_attention

def counting(*args, **kwargs):
    counting.calls += 1
    return eager_attention(*args, **kwargs)
counting.calls = 0

@hookimpl
def plugformers_register_attention(register):
    register("eager", counting, override=True)
"""
    make_plugin(tmp_path, "kernel-dist", "kernels", "plug_kernels", body)
    out = run(
        tmp_path,
        """
        import plugformers, plug_kernels
        from plugformers.attention import get_attention_function
        r = plugformers.get_registry()
        print(get_attention_function("eager") is plug_kernels.counting, r.plugins["plugformers (host)"].errors)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "[]"], out.stdout + out.stderr


def test_shadowing_a_host_name_is_refused(tmp_path):
    make_plugin(
        tmp_path,
        "junk-dist",
        "junk",
        "plug_junk",
        """
        from plugformers import hookimpl
        @hookimpl
        def plugformers_register_families(register):
            register("junk-type", config="plug_junk:X", exports={"AutoModel": "plug_junk:X"})
        X = object
        """,
    )
    out = run(tmp_path, REPORT + "\nimport plugformers.auto as a; print(plugformers.AutoModel is a.AutoModel)")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.splitlines()[0])
    assert "name of the plugformers host" in report["junk"]["errors"][0]
    assert out.stdout.splitlines()[1] == "True"


def test_only_and_disable_switches(tmp_path):
    good(tmp_path, "alpha-dist", "alpha", "alpha-type", "Alpha")
    good(tmp_path, "beta-dist", "beta", "beta-type", "Beta")
    out = run(tmp_path, REPORT, PLUGFORMERS_DISABLE_PLUGINS="beta")
    report = json.loads(out.stdout.splitlines()[0])
    assert report["beta"]["status"] == "disabled" and report["alpha"]["status"] == "loaded"
    out = run(tmp_path, REPORT, PLUGFORMERS_PLUGINS="beta")
    report = json.loads(out.stdout.splitlines()[0])
    assert report["alpha"]["status"] == "disabled" and report["beta"]["status"] == "loaded"


def test_unknown_type_and_missing_family_class_name_the_distribution(tmp_path):
    out = run(
        tmp_path,
        """
        import plugformers
        try:
            plugformers.AutoConfig.for_model("maskformer-nope")
        except ValueError as e:
            print("A", e)
        try:
            from plugformers import NotARealThing
        except ImportError as e:
            print("B", e)
        print("C", hasattr(plugformers, "NotARealThing"))
        """,
        PLUGFORMERS_PLUGINS="none-at-all",
    )
    assert out.returncode == 0, out.stderr
    assert "No installed plugin provides model_type 'maskformer-nope'" in out.stdout
    assert "C False" in out.stdout
    switched_off = run(
        tmp_path,
        """
        import plugformers
        print("H", hasattr(plugformers, "DistilBertModel"))
        try:
            plugformers.DistilBertModel
        except AttributeError as e:
            print("A", e)
        try:
            from plugformers import DistilBertModel
        except ImportError as e:
            print("I", e)
        """,
        PLUGFORMERS_PLUGINS="none-at-all",
    )
    assert switched_off.returncode == 0, switched_off.stderr
    assert "H False" in switched_off.stdout
    for tag in ("A", "I"):  # the `from` statement keeps the message too
        assert f"{tag} cannot import name 'DistilBertModel'" in switched_off.stdout
    assert switched_off.stdout.count("plugformers-distilbert") == 2 and "switched off" in switched_off.stdout


def test_missing_family_plugin_says_what_to_install(monkeypatch):
    import pluggy

    from plugformers import hookspecs, plugins

    monkeypatch.setattr(plugins, "_entry_points", lambda: [])
    pm = pluggy.PluginManager("plugformers")
    pm.add_hookspecs(hookspecs)
    message = plugins.Registry(pm).missing_name_message("DistilBertModel")
    assert "plugformers-distilbert plugin, which is not installed (pip install plugformers-distilbert)" in message


def test_class_the_installed_plugin_lacks_is_named_and_hasattr_is_false(tmp_path):
    # The installed family plugin is there; the class is simply not part of it (the reference has more heads).
    good(tmp_path, "fake-distilbert", "fakedb", "distilbert", "DistilBert")
    out = run(
        tmp_path,
        """
        import plugformers
        print("H", hasattr(plugformers, "DistilBertForNothing"))
        try:
            from plugformers import DistilBertForNothing
        except ImportError as e:
            print("I", e)
        """,
        PLUGFORMERS_PLUGINS="fakedb",
    )
    assert out.returncode == 0, out.stderr
    assert "H False" in out.stdout
    assert "plugin 'fakedb' (fake-distilbert 1.2.3) does not provide it." in out.stdout
    assert "It provides: DistilBertConfig, DistilBertModel." in out.stdout


def test_registry_first_use_from_eight_threads_registers_each_plugin_once(tmp_path):
    good(tmp_path, "alpha-dist", "alpha", "alpha-type", "Alpha")
    out = run(
        tmp_path,
        """
        import threading, plugformers
        from plugformers.plugins import get_registry
        results = []
        def use():
            results.append(id(get_registry()))
        threads = [threading.Thread(target=use) for _ in range(8)]
        [t.start() for t in threads]; [t.join() for t in threads]
        r = get_registry()
        print(len(set(results)), r.plugins["alpha"].model_types, r.plugins["alpha"].classes)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1 ['alpha-type'] ['AlphaConfig', 'AlphaModel']"


@pytest.mark.parametrize("flag", ["", "--json"])
def test_cli_lists_plugins_without_importing_torch(tmp_path, flag):
    good(tmp_path, "alpha-dist", "alpha", "alpha-type", "Alpha")
    make_plugin(tmp_path, "broken-dist", "broken", "plug_broken", "raise RuntimeError('boom')\n")
    out = run(
        tmp_path,
        f"""
        import sys
        from plugformers.cli import main
        code = main(["plugins"] + ({flag!r}.split() if {flag!r} else []))
        print("TORCH", "torch" in sys.modules, code)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert "TORCH False 0" in out.stdout
    if flag:
        data = json.loads(out.stdout.split("TORCH")[0])
        by_name = {p["name"]: p for p in data["plugins"]}
        assert by_name["alpha"]["distribution"] == "alpha-dist" and by_name["alpha"]["version"] == "1.2.3"
        assert by_name["broken"]["status"] == "failed"
    else:
        assert "alpha-dist" in out.stdout and "alpha-type" in out.stdout and "boom" in out.stdout
