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

import importlib
import keyword
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from plugformers import hookspecs
from plugformers.utils.env import env_true

__all__ = [
    "KNOWN_FAMILIES",
    "FamilySpec",
    "PluginConflictError",
    "PluginError",
    "PluginInfo",
    "Registry",
    "get_plugin_manager",
    "get_registry",
    "import_object",
]

ENTRY_POINT_GROUP = "plugformers"

#: Families this project publishes, so an error can say which distribution to install.
KNOWN_FAMILIES: dict[str, str] = {
    "distilbert": "plugformers-distilbert",
    "vit": "plugformers-vit",
    "wav2vec2": "plugformers-wav2vec2",
    "resnet": "plugformers-resnet",
    "maskformer": "plugformers-maskformer",
}
#: Class-name prefixes of those families, longest first (``ViT`` must not catch ``ViTMAE``-like names wrongly).
KNOWN_CLASS_PREFIXES: dict[str, str] = {
    "DistilBert": "distilbert",
    "Wav2Vec2": "wav2vec2",
    "MaskFormer": "maskformer",
    "ResNet": "resnet",
    "ConvNext": "resnet",
    "ViT": "vit",
}

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
        # config (say a custom config reusing "resnet"): looked up by class, like the reference does.
        self.class_models: dict[type, dict[str, Any]] = {}
        self._attention: dict[str, tuple[Any, str]] = {}
        self.overrides: list[str] = []

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

    def _run_hook(self, hook_name: str, make_registrar: Callable[[PluginInfo, list[Any]], Callable[..., None]]) -> None:
        assert self._pm is not None
        hook = getattr(self._pm.hook, hook_name)
        # Call each implementation on its own so that one broken plugin cannot stop the others.
        pending: list[tuple[bool, PluginInfo, Any]] = []
        for impl in hook.get_hookimpls():
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
            override: bool = False,
        ) -> None:
            if not isinstance(model_type, str) or not model_type.strip() or model_type != model_type.strip():
                raise PluginError(f"model_type must be a non-empty string, got {model_type!r}.")
            _check_ref(f"config of {model_type!r}", config)
            models = dict(models or {})
            for key, ref in models.items():
                if not isinstance(key, str) or not key.startswith("Auto"):
                    raise PluginError(f"model key {key!r} of {model_type!r} must name an Auto class, e.g. 'AutoModel'.")
                _check_ref(f"{key} model of {model_type!r}", ref)
            optional = {
                "tokenizer": tokenizer,
                "tokenizer_fast": tokenizer_fast,
                "image_processor": image_processor,
                "image_processor_fast": image_processor_fast,
                "feature_extractor": feature_extractor,
                "processor": processor,
            }
            for what, ref in optional.items():
                if ref is not None:
                    _check_ref(f"{what} of {model_type!r}", ref)
            for name, ref in (exports or {}).items():
                _check_ref(f"export {name!r}", ref)
            spec = FamilySpec(model_type, config, info.name, models, **optional)

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
                self._attention[name] = (function, info.name)  # replaces any function resolved under the name
                info.attention.append(name)

            staged.append(commit)

        return register

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
            self.families[spec.model_type] = spec
            info = self.plugins.get(spec.plugin)
            for name, ref in public.items():
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
                new = FamilySpec(model_type, obj, "runtime")
                if spec is not None:
                    new.models, new.tokenizer, new.tokenizer_fast = dict(spec.models), spec.tokenizer, spec.tokenizer_fast
                    new.image_processor, new.feature_extractor, new.processor = (
                        spec.image_processor,
                        spec.feature_extractor,
                        spec.processor,
                    )
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
        if model_type in KNOWN_FAMILIES:
            hint = f" Install it with `pip install {KNOWN_FAMILIES[model_type]}`."
        plugins = ", ".join(sorted(n for n in self.plugins if n != HOST_PLUGIN)) or "none"
        return (
            f"No installed plugin provides model_type {model_type!r}.{hint} "
            f"Installed model types: {', '.join(installed)}; installed plugins: {plugins}."
        )

    def family_for_config_class(self, config_class: type) -> FamilySpec | None:
        """The family whose config ``config_class`` is (or subclasses); None for an unrelated class.

        Sharing a ``model_type`` string is not enough: a custom config named "resnet" must not get the
        installed ResNet's models.
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

    def missing_name_message(self, name: str) -> str:
        """Why ``plugformers.<name>`` does not exist: the family's plugin is absent, or it lacks that class."""
        self.ensure_loaded()
        for prefix, family in sorted(KNOWN_CLASS_PREFIXES.items(), key=lambda kv: -len(kv[0])):
            if not name.startswith(prefix):
                continue
            distribution = KNOWN_FAMILIES[family]
            spec = self.families.get(family)
            info = self.plugins.get(spec.plugin) if spec is not None else None
            if info is None:
                info = next((i for i in self.plugins.values() if i.distribution == distribution), None)
            if info is None:
                return (
                    f"cannot import name {name!r} from 'plugformers': it is provided by the "
                    f"{distribution} plugin, which is not installed (pip install {distribution})."
                )
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
                f"({info.distribution} {info.version}) does not provide it. It provides: {', '.join(provided)}."
            )
        return f"cannot import name {name!r} from 'plugformers' (no installed plugin provides it)."

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
