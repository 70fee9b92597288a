"""Plugin discovery and the family registry.

Plugins are modules named by entry points in the ``plugformers`` group. The first time anything asks the
registry (an Auto class, ``from plugformers import X``, ``plugformers plugins``), every plugin module is
imported and its hooks are called, one plugin at a time: a plugin that fails to import, raises in a hook,
registers junk or clashes with another is recorded with its error, skipped with one warning, and the rest
keep working. Nothing here imports torch; classes are imported only when first used.

Environment switches: ``PLUGFORMERS_PLUGINS=a,b`` loads only those plugins, ``PLUGFORMERS_DISABLE_PLUGINS=a,b``
blocks those, ``PLUGFORMERS_STRICT_PLUGINS=1`` turns every plugin failure into an exception.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import keyword
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pluggy

from plugformers import hookspecs
from plugformers.utils.env import env_true
from plugformers.vocabulary import AUTO_MODEL_CLASSES, CONFORMANCE_CHECKS, MODALITIES, closest, tasks_for

__all__ = [
    "FamilySpec",
    "PluginConflictError",
    "PluginError",
    "PluginInfo",
    "Registry",
    "get_plugin_manager",
    "get_registry",
    "import_object",
    "known_families",
    "registered_plugin",
]

ENTRY_POINT_GROUP = "plugformers"

#: Families known to exist, installed or not (data, not code): install hints for absent ones.
CATALOGUE_FILE = Path(__file__).parent / "data" / "families.json"

Ref = "str | type"  # a "module:Class" string, or the class itself (runtime registration)
HOST_PLUGIN = "plugformers (host)"


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered something invalid; the message names the plugin."""


class PluginConflictError(PluginError):
    """Two plugins registered the same model type or public name without ``override=True``."""


@dataclass
class PluginInfo:
    """What is known about one installed plugin (shown by ``plugformers plugins``)."""

    name: str
    distribution: str
    version: str
    module: str
    status: str = "pending"  # loaded | failed | disabled | partial
    model_types: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "model_types": list(self.model_types),
            "classes": list(self.classes),
            "attention": list(self.attention),
            "errors": list(self.errors),
        }


@dataclass
class FamilySpec:
    """Everything registered for one ``model_type``: classes as ``"module:Class"`` strings or class objects."""

    model_type: str
    config: Any
    plugin: str
    models: dict[str, Any] = field(default_factory=dict)
    tokenizer: Any = None
    tokenizer_fast: Any = None
    image_processor: Any = None
    image_processor_fast: Any = None
    feature_extractor: Any = None
    processor: Any = None
    #: What the models read: a key of :data:`plugformers.vocabulary.MODALITIES` (None: no models).
    modality: str | None = None
    #: Config overrides that make a model of seconds (tests, ``demo --small``).
    tiny_config: dict[str, Any] = field(default_factory=dict)
    #: ``"module:function"``: ``f(config, model_class, batch_size=2, labels=False) -> dict`` of forward keyword inputs.
    example_inputs: Any = None
    #: ``"module:function"``: ``f(config) -> preprocessor`` that works offline (e.g. a tokenizer with a tiny vocabulary).
    example_preprocessor: Any = None
    #: Trained checkpoints shipped as package data: ``{name: "package:relative/folder"}``.
    checkpoints: dict[str, str] = field(default_factory=dict)
    #: Conformance checks a class skips, with the reason: ``{class name: {check: why}}``.
    skips: dict[str, dict[str, str]] = field(default_factory=dict)

    def model_names(self) -> dict[str, list[str]]:
        """``{model class name: [Auto classes it is registered under]}``, in registration order."""
        names: dict[str, list[str]] = {}
        for key, ref in self.models.items():
            names.setdefault(_ref_name(ref), []).append(key)
        return names

    def tasks_of(self, class_name: str) -> list[str]:
        """The tasks the model class ``class_name`` serves, by the Auto classes it is registered under."""
        tasks: list[str] = []
        for key in self.model_names().get(class_name, []):
            tasks += [t for t in tasks_for(key, self.modality) if t not in tasks]
        return tasks

    def _registered(self, what: str) -> Any:
        ref = getattr(self, what)
        if ref is None:
            raise PluginError(f"model type {self.model_type!r} (plugin {self.plugin!r}) registers no {what}.")
        return import_object(ref)

    def build_config(self, *, tiny: bool = False, **overrides: Any) -> Any:
        """A config of the family: its defaults, or with ``tiny`` its registered ``tiny_config``; then ``overrides``."""
        import copy

        fields = copy.deepcopy(self.tiny_config) if tiny else {}
        fields.update(overrides)
        return import_object(self.config)(**fields)

    def build_example_inputs(self, config: Any, model_class: Any, batch_size: int = 2, labels: bool = False) -> dict[str, Any]:
        """The registered ``example_inputs`` for ``config`` and ``model_class`` (a class or its registered name)."""
        if isinstance(model_class, str):
            model_class = import_object(self.models[self.model_names()[model_class][0]])
        return self._registered("example_inputs")(config, model_class, batch_size=batch_size, labels=labels)  # type: ignore[no-any-return]

    def build_example_preprocessor(self, config: Any) -> Any:
        """The registered ``example_preprocessor`` for ``config``: a tokenizer, image processor or feature extractor."""
        return self._registered("example_preprocessor")(config)


def known_families() -> dict[str, dict[str, Any]]:
    """The catalogue: ``{model_type: {"distribution": ..., "class_prefixes": [...]}}`` (empty if unreadable)."""
    return dict(_catalogue())


@cache
def _catalogue() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _infer_modality(tokenizer: Any, image_processor: Any, feature_extractor: Any) -> str | None:
    """A family that does not say: audio if it extracts audio features, image if it processes images, else text."""
    if feature_extractor is not None:
        return "audio"
    if image_processor is not None:
        return "image"
    return "text" if tokenizer is not None else None


def import_object(ref: Any) -> Any:
    """Import ``"package.module:Name"`` (or return ``ref`` if it is already an object)."""
    if not isinstance(ref, str):
        return ref
    module_name, _, attr = ref.partition(":")
    module = importlib.import_module(module_name)
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    except AttributeError as exc:
        raise ImportError(f"{module_name!r} has no attribute {attr!r} (registered as {ref!r}).") from exc


def _ref_name(ref: Any) -> str:
    return ref.rpartition(":")[2].rpartition(".")[2] if isinstance(ref, str) else ref.__name__


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None or not raw.strip():
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _strict() -> bool:
    return env_true("PLUGFORMERS_STRICT_PLUGINS")


def _check_ref(what: str, ref: Any) -> None:
    if isinstance(ref, type):
        return
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise PluginError(f"{what} must be a 'package.module:ClassName' string or a class, got {ref!r}.")
    module_name, attr = ref.split(":")
    parts = module_name.split(".") + attr.split(".")
    if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        raise PluginError(f"{what} {ref!r} is not a valid 'package.module:ClassName' reference.")


def _check_checkpoints(model_type: str, checkpoints: Any) -> dict[str, str]:
    if checkpoints is None:
        return {}
    ok = isinstance(checkpoints, dict) and all(
        isinstance(k, str) and isinstance(v, str) and v.count(":") == 1 and all(v.split(":")) for k, v in checkpoints.items()
    )
    if not ok:
        raise PluginError(
            f"checkpoints of {model_type!r} must map names to 'package:relative/folder' strings, got {checkpoints!r}."
        )
    return dict(checkpoints)


def _check_skips(model_type: str, skips: Any, models: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Skips name a registered model class and a known check, and give a non-empty reason."""
    if skips is None:
        return {}
    if not isinstance(skips, dict):
        raise PluginError(f"skips of {model_type!r} must be {{class name: {{check: reason}}}}, got {skips!r}.")
    classes = {_ref_name(ref) for ref in models.values()}
    for class_name, checks in skips.items():
        if class_name not in classes:
            raise PluginError(
                f"skips of {model_type!r} name {class_name!r}, which it does not register{closest(class_name, classes)}."
            )
        if not isinstance(checks, dict):
            raise PluginError(f"skips[{class_name!r}] of {model_type!r} must be {{check: reason}}, got {checks!r}.")
        for check, reason in checks.items():
            if check not in CONFORMANCE_CHECKS:
                raise PluginError(
                    f"skips[{class_name!r}] of {model_type!r}: {check!r} is not a conformance check"
                    f"{closest(check, CONFORMANCE_CHECKS)}; checks: {', '.join(CONFORMANCE_CHECKS)}."
                )
            if not isinstance(reason, str) or not reason.strip():
                raise PluginError(f"skips[{class_name!r}][{check!r}] of {model_type!r} must give the reason as text.")
    return {k: dict(v) for k, v in skips.items()}


def _is_config_of(spec: FamilySpec, config_class: type) -> bool:
    """Whether ``config_class`` is the family's config class or a subclass of it."""
    family_config = spec.config
    if isinstance(family_config, str):
        if family_config == f"{config_class.__module__}:{config_class.__qualname__}":
            return True
        try:
            family_config = import_object(family_config)
        except Exception:  # a broken plugin is reported where it is used, not here
            return False
    return isinstance(family_config, type) and issubclass(config_class, family_config)


class Registry:
    """Model families, public class names and attention backends, filled from plugins on first use."""

    def __init__(self, plugin_manager: pluggy.PluginManager | None = None) -> None:
        self._lock = threading.RLock()
        self._loaded = False
        self._pm = plugin_manager
        self.plugins: dict[str, PluginInfo] = {}
        self.families: dict[str, FamilySpec] = {}
        self.names: dict[str, tuple[Any, str]] = {}  # public name -> (ref, plugin)
        # AutoModel*.register(config_class, ...) for a config class that is not its model_type's family
        # config (say a custom config reusing an installed family's model_type): looked up by class, like the
        # reference does.
        self.class_models: dict[type, dict[str, Any]] = {}
        self._attention: dict[str, tuple[Any, str]] = {}
        self.overrides: list[str] = []
        # What a plugin's registration replaced, so removing the plugin (remove_plugin) can put it back.
        self._replaced: dict[tuple[str, str], Any] = {}

    # ----- loading ---------------------------------------------------------------------------------------

    def ensure_loaded(self) -> Registry:
        """Discover and register every plugin once (thread-safe; later calls return at once)."""
        if self._loaded:
            return self
        with self._lock:
            if not self._loaded:
                self._load_all()
                self._loaded = True
        return self

    def _load_all(self) -> None:
        import plugformers._builtin as _builtin

        pm = self._pm or get_plugin_manager()
        self._pm = pm
        host = PluginInfo(HOST_PLUGIN, "plugformers", _host_version(), "plugformers._builtin")
        self.plugins[host.name] = host
        if not pm.is_registered(_builtin):
            pm.register(_builtin, name=HOST_PLUGIN)
        only = _env_list("PLUGFORMERS_PLUGINS")
        blocked = _env_list("PLUGFORMERS_DISABLE_PLUGINS") or set()
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                distribution=getattr(dist, "name", None) or "?",
                version=getattr(dist, "version", None) or "?",
                module=ep.value,
            )
            if info.name in self.plugins:
                info.name = f"{ep.name} ({info.distribution})"
            self.plugins[info.name] = info
            if (only is not None and ep.name not in only) or ep.name in blocked:
                info.status = "disabled"
                continue
            try:
                module = ep.load()
                if not pm.is_registered(module):
                    pm.register(module, name=info.name)
            except Exception as exc:
                self._fail(info, f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}", exc)
        # Plugins registered directly on the plugin manager (tests, embedding applications) count too.
        for plugin in pm.get_plugins():
            name = pm.get_name(plugin) or repr(plugin)
            if name not in self.plugins:
                self.plugins[name] = PluginInfo(name, "?", "?", getattr(plugin, "__name__", repr(plugin)))
        self._run_hook("plugformers_register_families", self._family_registrar)
        self._run_hook("plugformers_register_attention", self._attention_registrar)
        for info in self.plugins.values():
            if info.status == "pending":
                info.status = "loaded"

    def _run_hook(
        self,
        hook_name: str,
        make_registrar: Callable[[PluginInfo, list[Any]], Callable[..., None]],
        only: str | None = None,
    ) -> None:
        assert self._pm is not None
        hook = getattr(self._pm.hook, hook_name)
        # Call each implementation on its own so that one broken plugin cannot stop the others.
        pending: list[tuple[bool, PluginInfo, Any]] = []
        for impl in hook.get_hookimpls():
            if only is not None and impl.plugin_name != only:
                continue
            info = self.plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name, "?", "?", "?")
            self.plugins.setdefault(info.name, info)
            if info.status in ("failed", "disabled"):
                continue
            staged: list[Any] = []
            try:
                impl.function(register=make_registrar(info, staged))
            except Exception as exc:
                self._fail(info, f"hook {hook_name} raised {type(exc).__name__}: {exc}", exc)
                continue
            pending += [(getattr(c, "override", False), info, c) for c in staged]
        # Plain registrations first, deliberate overrides last, whatever order plugins were found in.
        for _override, info, commit in sorted(pending, key=lambda item: item[0]):
            try:
                commit()
            except PluginError as exc:
                info.status = "partial" if info.model_types else "failed"
                self._fail(info, str(exc), exc, keep_status=True)

    def _fail(self, info: PluginInfo, message: str, exc: BaseException, keep_status: bool = False) -> None:
        if not keep_status:
            info.status = "failed"
        info.errors.append(message)
        text = f"plugformers plugin {info.name!r} ({info.distribution}): {message}"
        if _strict():
            raise PluginError(text) from exc
        warnings.warn(text + " It was skipped; the other plugins keep working.", RuntimeWarning, stacklevel=4)

    # ----- registration callbacks ------------------------------------------------------------------------

    def _family_registrar(self, info: PluginInfo, staged: list[Any]) -> Callable[..., None]:
        def register(
            model_type: str,
            *,
            config: Any,
            models: dict[str, Any] | None = None,
            tokenizer: Any = None,
            tokenizer_fast: Any = None,
            image_processor: Any = None,
            image_processor_fast: Any = None,
            feature_extractor: Any = None,
            processor: Any = None,
            exports: dict[str, Any] | None = None,
            modality: str | None = None,
            tiny_config: dict[str, Any] | None = None,
            example_inputs: Any = None,
            example_preprocessor: Any = None,
            checkpoints: dict[str, str] | None = None,
            skips: dict[str, dict[str, str]] | None = None,
            override: bool = False,
        ) -> None:
            if not isinstance(model_type, str) or not model_type.strip() or model_type != model_type.strip():
                raise PluginError(f"model_type must be a non-empty string, got {model_type!r}.")
            _check_ref(f"config of {model_type!r}", config)
            models = dict(models or {})
            for key, ref in models.items():
                if key not in AUTO_MODEL_CLASSES:
                    raise PluginError(
                        f"model key {key!r} of {model_type!r} is not a plugformers Auto class{closest(key, AUTO_MODEL_CLASSES)}; "
                        f"valid keys: {', '.join(AUTO_MODEL_CLASSES)}."
                    )
                _check_ref(f"{key} model of {model_type!r}", ref)
            optional = {
                "tokenizer": tokenizer,
                "tokenizer_fast": tokenizer_fast,
                "image_processor": image_processor,
                "image_processor_fast": image_processor_fast,
                "feature_extractor": feature_extractor,
                "processor": processor,
                "example_inputs": example_inputs,
                "example_preprocessor": example_preprocessor,
            }
            for what, ref in optional.items():
                if ref is not None:
                    _check_ref(f"{what} of {model_type!r}", ref)
            for name, ref in (exports or {}).items():
                _check_ref(f"export {name!r}", ref)
            if modality is None:
                modality = _infer_modality(tokenizer or tokenizer_fast, image_processor or image_processor_fast, feature_extractor)
            elif modality not in MODALITIES:
                raise PluginError(
                    f"modality {modality!r} of {model_type!r} is not one of {', '.join(MODALITIES)}{closest(modality, MODALITIES)}."
                )
            if tiny_config is not None and not (
                isinstance(tiny_config, dict) and all(isinstance(k, str) for k in tiny_config)
            ):
                raise PluginError(f"tiny_config of {model_type!r} must be a dict of config fields, got {tiny_config!r}.")
            spec = FamilySpec(
                model_type,
                config,
                info.name,
                models,
                modality=modality,
                tiny_config=dict(tiny_config or {}),
                checkpoints=_check_checkpoints(model_type, checkpoints),
                skips=_check_skips(model_type, skips, models),
                **optional,
            )

            def commit() -> None:
                self.add_family(spec, exports or {}, override=override)

            commit.override = override  # type: ignore[attr-defined]
            staged.append(commit)

        return register

    def _attention_registrar(self, info: PluginInfo, staged: list[Any]) -> Callable[..., None]:
        def register(name: str, function: Any, *, override: bool = False) -> None:
            if not isinstance(name, str) or not name.isidentifier():
                raise PluginError(f"attention backend name must be an identifier, got {name!r}.")
            if isinstance(function, str):
                _check_ref(f"attention backend {name!r}", function)
            elif not callable(function):
                raise PluginError(f"attention backend {name!r} must be callable, got {function!r}.")

            def commit() -> None:
                existing = self._attention.get(name)
                if existing is not None and existing[1] != info.name and not override:
                    raise PluginConflictError(
                        f"attention backend {name!r} is already provided by {self._describe(existing[1])}; "
                        f"{self._describe(info.name)} must pass override=True to replace it."
                    )
                if existing is not None and existing[1] != info.name:
                    self._replaced.setdefault(("attention", name), existing)
                self._attention[name] = (function, info.name)  # replaces any function resolved under the name
                info.attention.append(name)

            commit.override = override  # type: ignore[attr-defined]
            staged.append(commit)

        return register

    # ----- plugins added at run time (tests, notebooks, applications that embed plugformers) -------------

    def add_plugin(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object (a module or an object with ``@hookimpl`` methods) now, like an installed one.

        Its hooks run through the same isolation as entry-point plugins: a failure is recorded in the returned
        :class:`PluginInfo` and warned about (raised with ``PLUGFORMERS_STRICT_PLUGINS=1``).
        """
        self.ensure_loaded()
        assert self._pm is not None
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        with self._lock:
            if name in self.plugins:
                raise PluginError(f"a plugin named {name!r} is already registered; remove it first or pick another name.")
            info = PluginInfo(name, "(runtime)", "-", getattr(plugin, "__name__", type(plugin).__qualname__))
            self.plugins[name] = info
            self._pm.register(plugin, name=name)
            try:
                self._run_hook("plugformers_register_families", self._family_registrar, only=name)
                self._run_hook("plugformers_register_attention", self._attention_registrar, only=name)
            except PluginError:  # strict mode: leave nothing of it behind
                self.remove_plugin(name)
                raise
            if info.status == "pending":
                info.status = "loaded"
        return info

    def remove_plugin(self, name: str) -> None:
        """Undo :meth:`add_plugin`: its families, names and attention backends go; what it overrode comes back."""
        with self._lock:
            info = self.plugins.pop(name, None)
            if info is None:
                raise KeyError(f"no plugin named {name!r} is registered.")
            if self._pm is not None and self._pm.get_plugin(name) is not None:
                self._pm.unregister(name=name)
            for model_type in info.model_types:
                if self.families.get(model_type) is not None and self.families[model_type].plugin == name:
                    previous = self._replaced.pop(("family", model_type), None)
                    if previous is None:
                        del self.families[model_type]
                    else:
                        self.families[model_type] = previous
            for public in info.classes:
                if public in self.names and self.names[public][1] == name:
                    previous = self._replaced.pop(("name", public), None)
                    if previous is None:
                        del self.names[public]
                    else:
                        self.names[public] = previous
            for backend in info.attention:
                if backend in self._attention and self._attention[backend][1] == name:
                    previous = self._replaced.pop(("attention", backend), None)
                    if previous is None:
                        del self._attention[backend]
                    else:
                        self._attention[backend] = previous
            self.overrides = [line for line in self.overrides if repr(name) not in line]

    # ----- mutation (plugins and runtime registration share these) ---------------------------------------

    def _describe(self, plugin: str) -> str:
        info = self.plugins.get(plugin)
        if info is None:
            return repr(plugin)
        return f"plugin {info.name!r} (distribution {info.distribution})"

    def add_family(self, spec: FamilySpec, exports: dict[str, Any], *, override: bool = False) -> None:
        """Add a family and its public names; a clash without ``override`` raises PluginConflictError."""
        with self._lock:
            existing = self.families.get(spec.model_type)
            if existing is not None and existing.plugin != spec.plugin and not override:
                raise PluginConflictError(
                    f"model_type {spec.model_type!r} is already registered by {self._describe(existing.plugin)}; "
                    f"{self._describe(spec.plugin)} registers it too. Uninstall one, or register with override=True."
                )
            public = self._public_names(spec, exports)
            host_names = _host_public_names()
            for name, _ref in public.items():
                if name in host_names:
                    raise PluginConflictError(
                        f"{self._describe(spec.plugin)} tries to export {name!r}, a name of the plugformers host itself."
                    )
                owner = self.names.get(name)
                if owner is not None and owner[1] != spec.plugin and not override:
                    raise PluginConflictError(
                        f"public name {name!r} is already provided by {self._describe(owner[1])}; "
                        f"{self._describe(spec.plugin)} provides it too. Register with override=True to replace it."
                    )
            if existing is not None and existing.plugin != spec.plugin:
                self.overrides.append(f"{spec.model_type}: {self._describe(spec.plugin)} overrides {self._describe(existing.plugin)}")
                self._replaced.setdefault(("family", spec.model_type), existing)
            self.families[spec.model_type] = spec
            info = self.plugins.get(spec.plugin)
            for name, ref in public.items():
                owner = self.names.get(name)
                if owner is not None and owner[1] != spec.plugin:
                    self._replaced.setdefault(("name", name), owner)
                self.names[name] = (ref, spec.plugin)
                if info is not None and name not in info.classes:
                    info.classes.append(name)
            if info is not None and spec.model_type not in info.model_types:
                info.model_types.append(spec.model_type)

    @staticmethod
    def _public_names(spec: FamilySpec, exports: dict[str, Any]) -> dict[str, Any]:
        refs: list[Any] = [spec.config, *spec.models.values()]
        refs += [
            r
            for r in (
                spec.tokenizer,
                spec.tokenizer_fast,
                spec.image_processor,
                spec.image_processor_fast,
                spec.feature_extractor,
                spec.processor,
            )
            if r is not None
        ]
        public = {_ref_name(r): r for r in refs if isinstance(r, str)}
        public.update(exports)
        return public

    def register_runtime(self, model_type: str, what: str, obj: Any, *, exist_ok: bool, key: str | None = None) -> None:
        """Registration by hand (``AutoConfig.register`` and friends): ``what`` is a FamilySpec field."""
        self.ensure_loaded()
        with self._lock:
            spec = self.families.get(model_type)
            if what == "config":
                if spec is not None and not exist_ok and spec.plugin != "runtime":
                    raise ValueError(
                        f"model_type {model_type!r} is already registered (by {self._describe(spec.plugin)}); "
                        "pass exist_ok=True to replace it."
                    )
                if spec is None:
                    new = FamilySpec(model_type, obj, "runtime")
                else:  # a new config class for a known type keeps the type's models and preprocessors
                    new = dataclasses.replace(spec, config=obj, plugin="runtime", models=dict(spec.models))
                self.families[model_type] = new
            else:
                if spec is None:
                    raise ValueError(
                        f"Register the configuration first: AutoConfig.register({model_type!r}, YourConfig)."
                    )
                if what == "models":
                    assert key is not None
                    if key in spec.models and not exist_ok and spec.models[key] is not obj and spec.plugin != "runtime":
                        raise ValueError(
                            f"{key} already has a model for {model_type!r} ({_ref_name(spec.models[key])}); "
                            "pass exist_ok=True to replace it."
                        )
                    spec.models[key] = obj
                else:
                    current = getattr(spec, what)
                    if current is not None and not exist_ok and current is not obj:
                        raise ValueError(
                            f"{what} for {model_type!r} is already registered ({_ref_name(current)}); pass exist_ok=True."
                        )
                    setattr(spec, what, obj)
            if isinstance(obj, type):
                self.names.setdefault(obj.__name__, (obj, "runtime"))

    # ----- queries ---------------------------------------------------------------------------------------

    def family(self, model_type: str) -> FamilySpec:
        """The family for ``model_type``, or a KeyError that lists what is installed and what to install."""
        self.ensure_loaded()
        spec = self.families.get(model_type)
        if spec is None:
            raise KeyError(self.unknown_type_message(model_type))
        return spec

    def unknown_type_message(self, model_type: str) -> str:
        installed = sorted(self.families) or ["none"]
        hint = ""
        distribution = _catalogue().get(model_type, {}).get("distribution")
        if isinstance(distribution, str):
            hint = f" Install it with `pip install {distribution}`."
        plugins = ", ".join(sorted(n for n in self.plugins if n != HOST_PLUGIN)) or "none"
        return (
            f"No installed plugin provides model_type {model_type!r}.{hint} "
            f"Installed model types: {', '.join(installed)}; installed plugins: {plugins}."
        )

    def family_for_config_class(self, config_class: type) -> FamilySpec | None:
        """The family whose config ``config_class`` is (or subclasses); None for an unrelated class.

        Sharing a ``model_type`` string is not enough: a custom config that reuses an installed family's
        ``model_type`` must not get that family's models.
        """
        self.ensure_loaded()
        model_type = getattr(config_class, "model_type", None)
        spec = self.families.get(model_type) if model_type else None
        if spec is not None and _is_config_of(spec, config_class):
            return spec
        for candidate in list(self.families.values()):  # a copy: another thread may be registering a family
            if candidate.config is config_class:
                return candidate
        return None

    def register_model_for_config_class(self, config_class: type, key: str, model_class: type, *, exist_ok: bool) -> None:
        """``AutoModel*.register(config_class, model_class)``: the family's table, or one keyed by the class."""
        self.ensure_loaded()
        with self._lock:
            model_type = config_class.model_type  # type: ignore[attr-defined]
            spec = self.families.get(model_type)
            if spec is None:
                self.register_runtime(model_type, "config", config_class, exist_ok=True)
            elif not _is_config_of(spec, config_class):
                self.class_models.setdefault(config_class, {})[key] = model_class
                self.names.setdefault(model_class.__name__, (model_class, "runtime"))
                return
            self.register_runtime(model_type, "models", model_class, exist_ok=exist_ok, key=key)

    def model_for_config_class(self, config_class: type, key: str) -> Any:
        """The model (class or reference) registered for ``config_class`` under Auto class ``key``, or None."""
        # Read without the lock: entries are only ever added (under it), and one dict lookup is atomic.
        for klass in getattr(config_class, "__mro__", ()):
            model = self.class_models.get(klass, {}).get(key)
            if model is not None:
                return model
        spec = self.family_for_config_class(config_class)
        return spec.models.get(key) if spec is not None else None

    def resolve_name(self, name: str) -> Any:
        """Import the public class ``name`` (``DistilBertModel``); ImportError naming the distribution if absent."""
        self.ensure_loaded()
        entry = self.names.get(name)
        if entry is None:
            raise ImportError(self.missing_name_message(name))
        return import_object(entry[0])

    def family_of_name(self, name: str) -> tuple[str, str | None] | None:
        """``(model_type, distribution)`` of the family a class name belongs to, by its prefix; None if none.

        An installed family's prefix is its config class's name without ``Config`` (``DistilBertConfig`` ->
        ``DistilBert``); the catalogue adds the prefixes of families that are not installed, and aliases.
        The longest matching prefix wins, so ``ViTMAEModel`` is not taken for ``ViT``.
        """
        self.ensure_loaded()
        prefixes: dict[str, tuple[str, str | None]] = {}
        for model_type, entry in _catalogue().items():
            distribution = entry.get("distribution")
            for prefix in entry.get("class_prefixes") or ():
                prefixes[prefix] = (model_type, distribution if isinstance(distribution, str) else None)
        for spec in list(self.families.values()):
            config_name = _ref_name(spec.config)
            if config_name.endswith("Config") and len(config_name) > len("Config"):
                info = self.plugins.get(spec.plugin)
                prefixes[config_name[: -len("Config")]] = (spec.model_type, info.distribution if info else None)
        matches = [p for p in prefixes if name.startswith(p) and name != p]
        return prefixes[max(matches, key=len)] if matches else None

    def missing_name_message(self, name: str) -> str:
        """Why ``plugformers.<name>`` does not exist: the family's plugin is absent, or it lacks that class."""
        self.ensure_loaded()
        found = self.family_of_name(name)
        if found is None:
            return f"cannot import name {name!r} from 'plugformers' (no installed plugin provides it)."
        family, distribution = found
        spec = self.families.get(family)
        info = self.plugins.get(spec.plugin) if spec is not None else None
        if info is None and distribution is not None:
            info = next((i for i in self.plugins.values() if i.distribution == distribution), None)
        if info is None:
            install = f"the {distribution} plugin" if distribution else f"a plugin for {family!r}"
            command = f" (pip install {distribution})" if distribution else ""
            return f"cannot import name {name!r} from 'plugformers': it is provided by {install}, which is not installed{command}."
        if spec is None and info.status == "disabled":
            return (
                f"cannot import name {name!r} from 'plugformers': the {info.distribution} {info.version} plugin "
                "is installed but switched off by PLUGFORMERS_PLUGINS or PLUGFORMERS_DISABLE_PLUGINS."
            )
        if spec is None:  # installed, but importing or registering it failed
            detail = f": {'; '.join(info.errors)}" if info.errors else ""
            return (
                f"cannot import name {name!r} from 'plugformers': the {info.distribution} {info.version} plugin "
                f"is installed but did not register {family!r} (status {info.status}){detail}."
            )
        provided = sorted(n for n, (_ref, owner) in list(self.names.items()) if owner == spec.plugin)
        return (
            f"cannot import name {name!r} from 'plugformers': the installed plugin {info.name!r} "
            f"({info.distribution} {info.version}) does not provide it. "
            f"It provides: {', '.join(provided)}."
        )

    def model_class_family(self, model_class: str | type) -> FamilySpec | None:
        """The family that registers ``model_class`` (a class or its name) under some Auto class, or None."""
        self.ensure_loaded()
        name = model_class if isinstance(model_class, str) else model_class.__name__
        for spec in list(self.families.values()):
            for ref in spec.models.values():
                if ref is model_class or (isinstance(ref, str) and _ref_name(ref) == name):
                    return spec
        return None

    def tasks_of(self, model_class: str | type) -> list[str]:
        """The tasks a model class serves, from the Auto classes it is registered under (default first)."""
        spec = self.model_class_family(model_class)
        if spec is None:
            return []
        name = model_class if isinstance(model_class, str) else model_class.__name__
        return spec.tasks_of(name)

    def attention_function(self, name: str) -> Callable[..., Any]:
        """The backend function registered under ``name``, imported on first use and kept resolved from then on."""
        self.ensure_loaded()
        entry = self._attention.get(name)
        if entry is None:
            raise ValueError(f"Unknown attention implementation {name!r}; available: {sorted(self._attention)}.")
        if isinstance(entry[0], str):
            entry = self._attention[name] = (import_object(entry[0]), entry[1])
        return entry[0]  # type: ignore[no-any-return]

    def attention_names(self) -> list[str]:
        self.ensure_loaded()
        return list(self._attention)


@contextlib.contextmanager
def registered_plugin(plugin: object, name: str | None = None) -> Iterator[PluginInfo]:
    """Register ``plugin`` for the duration of a ``with`` block (tests, notebooks): the public way to add one.

    >>> with registered_plugin(MyPlugin(), name="my-plugin") as info:   # doctest: +SKIP
    ...     model = AutoModel.from_config(MyConfig())
    """
    registry = get_registry()
    info = registry.add_plugin(plugin, name)
    try:
        yield info
    finally:
        registry.remove_plugin(info.name)


def _entry_points() -> Iterable[Any]:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _host_version() -> str:
    from plugformers import __version__

    return __version__


def _host_public_names() -> frozenset[str]:
    from plugformers import _HOST_NAMES

    return frozenset(_HOST_NAMES)


_PM: pluggy.PluginManager | None = None
_REGISTRY: Registry | None = None
_GLOBAL_LOCK = threading.Lock()


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy manager (hook specs added, no plugin loaded yet)."""
    global _PM
    with _GLOBAL_LOCK:
        if _PM is None:
            pm = pluggy.PluginManager("plugformers")
            pm.add_hookspecs(hookspecs)
            _PM = pm
        return _PM


def get_registry() -> Registry:
    """The process-wide registry, loading every plugin on first call."""
    global _REGISTRY
    if _REGISTRY is None:
        with _GLOBAL_LOCK:
            if _REGISTRY is None:
                _REGISTRY = Registry()
    return _REGISTRY.ensure_loaded()


def reset_registry(plugin_manager: pluggy.PluginManager | None = None) -> Registry:
    """Forget everything loaded and start again (for tests): returns the new, not-yet-loaded registry."""
    global _REGISTRY, _PM
    with _GLOBAL_LOCK:
        _PM = plugin_manager
        _REGISTRY = Registry(plugin_manager)
    return _REGISTRY
