"""PEFT adapters (LoRA, IA³, ...) on plugformers models, under the reference library's method names.

``peft`` is an optional dependency (``pip install 'plugformers[peft]'``), imported only when an adapter method
runs: ``import plugformers`` never imports it (peft itself imports the reference library). The adapter layers
live inside the model's own modules, where peft's functional API (``peft.functional``) puts them, so the model
stays a plugformers model. While an adapter is attached, ``save_pretrained`` writes only the adapter
(``adapter_config.json`` and ``adapter_model.safetensors``), and ``from_pretrained`` of such a folder loads the
base model the adapter names, then the adapter.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from plugformers.configuration_utils import load_json_file
from plugformers.utils.hub import (
    HubOptions,
    WeightsLoadingError,
    folder_state,
    push_folder_to_hub,
    resolve_file,
)
from plugformers.utils.io import atomic_directory
from plugformers.utils.logging import get_logger
from plugformers.vocabulary import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_SAFE_WEIGHTS_NAME,
    ADAPTER_WEIGHTS_NAME,
    CONFIG_NAME,
)

if TYPE_CHECKING:
    import torch

__all__ = ["AdapterCheckpoint", "PeftAdapterMixin", "adapter_base_model", "find_adapter_checkpoint", "require_peft"]

logger = get_logger(__name__)

DEFAULT_ADAPTER_NAME = "default"
#: How peft's ``PeftModel`` wrapper prefixes the keys of the adapter files it writes; files here use it too,
#: so adapters move between plugformers, peft and the reference library unchanged.
_FILE_KEY_PREFIX = "base_model.model."
PEFT_EXTRA_HINT = "pip install 'plugformers[peft]'"


def require_peft() -> ModuleType:
    """``peft.functional`` (the part of peft made for integrations like this one), or an error naming the extra."""
    try:
        import peft.functional
    except ImportError as exc:
        raise ImportError(
            "Adapters (add_adapter, load_adapter, loading a folder with adapter_config.json) need the optional "
            f"`peft` package (0.21 or newer), which is not installed or too old ({exc}). Install it with: "
            f"{PEFT_EXTRA_HINT}"
        ) from exc
    return peft.functional


class AdapterCheckpoint(NamedTuple):
    """What ``from_pretrained`` found: the base model to load, then the adapter to load onto it."""

    base: str
    adapter: str
    name: str
    adapter_kwargs: dict[str, Any]

    def load_into(self, model: Any, hub: HubOptions) -> dict[str, Any]:
        options = {**hub.as_kwargs(), **self.adapter_kwargs}
        return model.load_adapter(self.adapter, adapter_name=self.name, **options)  # type: ignore[no-any-return]


def find_adapter_checkpoint(source: str, hub: HubOptions, kwargs: dict[str, Any]) -> AdapterCheckpoint | None:
    """The adapter ``source`` holds (``adapter_config.json``), with the base model it goes on, or None.

    Takes ``adapter_name`` and ``adapter_kwargs`` out of ``kwargs``. As in the reference library, a local folder
    that also holds ``config.json`` is its own base model (an adapter saved beside the model); otherwise the base
    model is the one ``base_model_name_or_path`` names. Raises the install hint when peft is missing, before any
    base model is downloaded.
    """
    name = kwargs.pop("adapter_name", None) or DEFAULT_ADAPTER_NAME
    adapter_kwargs = dict(kwargs.pop("adapter_kwargs", None) or {})
    if not source:
        return None
    try:
        config_path = resolve_file(source, ADAPTER_CONFIG_NAME, required=False, **hub.as_kwargs())
    except OSError:  # not a folder or repo, offline, unreachable: loading the model reports it properly
        return None
    if config_path is None:
        return None
    require_peft()
    if os.path.isfile(os.path.join(source, hub.subfolder, CONFIG_NAME)):
        return AdapterCheckpoint(source, source, name, adapter_kwargs)
    base = load_json_file(config_path).get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise ValueError(
            f"{config_path!r} does not name its base model (base_model_name_or_path), so plugformers cannot tell "
            f"which model to load it onto. Load the base model with from_pretrained, then call load_adapter({source!r})."
        )
    return AdapterCheckpoint(base, source, name, adapter_kwargs)


def adapter_base_model(source: str, hub: HubOptions) -> str:
    """Where an Auto class reads the config from: the adapter's base model when ``source`` is an adapter."""
    found = find_adapter_checkpoint(source, hub, {})
    return source if found is None else found.base


class PeftAdapterMixin:
    """Adapter methods of the reference library's models, on top of peft's functional API.

    Attaching an adapter freezes the base weights and leaves the adapter trainable (``load_adapter`` loads it
    frozen unless ``is_trainable=True``), as peft does. ``save_pretrained`` then writes only the active adapter.
    """

    #: Whether an adapter has been attached; the reference library's Trainer reads this name.
    _hf_peft_config_loaded: bool = False
    peft_config: dict[str, Any]

    def add_adapter(self, adapter_config: Any, adapter_name: str | None = None) -> None:
        """Attach a new, freshly initialised adapter (a ``peft.LoraConfig`` or other non-prompt config) and make it
        the active one."""
        functional = require_peft()
        from peft import PeftConfig

        if not isinstance(adapter_config, PeftConfig):
            raise TypeError(f"add_adapter takes a peft config such as peft.LoraConfig(...), got {type(adapter_config).__name__}.")
        name = adapter_name or DEFAULT_ADAPTER_NAME
        self._refuse_existing(name)
        adapter_config.base_model_name_or_path = getattr(self, "name_or_path", None) or None
        functional.inject_adapter_in_model(adapter_config, self, name)
        self._hf_peft_config_loaded = True
        self.set_adapter(name)

    def load_adapter(
        self,
        peft_model_id: str | os.PathLike[str] | None = None,
        adapter_name: str | None = None,
        peft_config: Any = None,
        adapter_state_dict: dict[str, torch.Tensor] | None = None,
        low_cpu_mem_usage: bool = False,
        is_trainable: bool = False,
        hotswap: bool | str = "auto",
        *,
        use_safetensors: bool | None = None,
        adapter_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Attach a saved adapter: a folder or Hub repo with ``adapter_config.json`` and its weights, or
        ``peft_config=`` with ``adapter_state_dict=``.

        The adapter is frozen and the model put in eval mode unless ``is_trainable=True``. Hub keywords
        (``revision``, ``token``, ``cache_dir``, ``local_files_only``, ``subfolder``, ...) work as in
        ``from_pretrained``. Pickled ``adapter_model.bin`` weights are read only with ``use_safetensors=False``
        (with ``torch.load(weights_only=True)``). Returns the loading report: the adapter weights the file did not
        fill (``missing_keys``) and the file's keys that fit no adapter weight (``unexpected_keys``); a shape that
        does not fit raises.
        """
        functional = require_peft()
        from peft import PeftConfig

        if hotswap is True:
            raise NotImplementedError("plugformers does not hotswap adapters; delete_adapter(name), then load the new one.")
        name = adapter_name or DEFAULT_ADAPTER_NAME
        self._refuse_existing(name)
        rest = {**kwargs, **(adapter_kwargs or {})}
        hub = HubOptions.pop_from(rest)
        if rest:
            raise TypeError(f"load_adapter got unexpected keyword arguments {sorted(rest)}.")
        if peft_config is None:
            if peft_model_id is None:
                raise ValueError("load_adapter needs a folder or Hub repo id, or peft_config= with adapter_state_dict=.")
            source = os.fspath(peft_model_id)
            config_file = resolve_file(source, ADAPTER_CONFIG_NAME, **hub.as_kwargs())
            assert config_file is not None
            peft_config = PeftConfig.from_pretrained(os.path.dirname(config_file))
        elif not isinstance(peft_config, PeftConfig):
            raise TypeError(f"peft_config must be a peft config such as peft.LoraConfig(...), got {type(peft_config).__name__}.")
        if adapter_state_dict is None:
            if peft_model_id is None:
                raise ValueError("load_adapter(peft_config=...) also needs adapter_state_dict= (or a folder to read it from).")
            adapter_state_dict = _read_adapter_weights(os.fspath(peft_model_id), hub, use_safetensors)
        state = {key.removeprefix(_FILE_KEY_PREFIX): value for key, value in adapter_state_dict.items()}
        peft_config.inference_mode = not is_trainable
        before = set(self.state_dict())  # type: ignore[attr-defined]
        functional.inject_adapter_in_model(peft_config, self, name, low_cpu_mem_usage=low_cpu_mem_usage)
        self._hf_peft_config_loaded = True
        result = functional.set_peft_model_state_dict(self, state, adapter_name=name, low_cpu_mem_usage=low_cpu_mem_usage)
        added = set(self.state_dict()) - before  # type: ignore[attr-defined]
        missing = {key for key in result.missing_keys if key in added and f".{name}." in f".{key}."}
        unexpected = set(result.unexpected_keys)
        if missing or unexpected:
            where = peft_model_id if peft_model_id is not None else "adapter_state_dict"
            logger.warning(
                f"Loading adapter {name!r} from {os.fspath(where)!r}: adapter weights left at their initial values: "
                f"{sorted(missing)}; weights that fit no adapter layer: {sorted(unexpected)}."
            )
        if not is_trainable:
            self.eval()  # type: ignore[attr-defined]
            functional.set_requires_grad(self, name, requires_grad=False)
        return {"missing_keys": missing, "unexpected_keys": unexpected, "mismatched_keys": set(), "error_msgs": []}

    def set_adapter(self, adapter_name: str | list[str]) -> None:
        """Make ``adapter_name`` (or several names) the active adapter(s); the others stop contributing."""
        functional = require_peft()
        wanted = [adapter_name] if isinstance(adapter_name, str) else list(adapter_name)
        unknown = [n for n in wanted if n not in self._adapter_configs()]
        if unknown:
            raise ValueError(f"No adapter named {unknown} on this model; it has {list(self.peft_config)}.")
        functional.set_adapter(self, adapter_name)

    def active_adapters(self) -> list[str]:
        """The names of the adapters that take part in the forward pass."""
        self._adapter_configs()
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, BaseTunerLayer):
                return list(module.active_adapters)
        return []

    def disable_adapters(self) -> None:
        """Run the base model alone (adapters stay attached; ``enable_adapters`` turns them back on)."""
        self._switch_adapters(False)

    def enable_adapters(self) -> None:
        """Undo ``disable_adapters``: the active adapters take part in the forward pass again."""
        self._switch_adapters(True)

    def delete_adapter(self, adapter_names: str | list[str]) -> None:
        """Remove adapter(s) and their weights. With the last one gone the model's own layers are back in place and it
        saves as a full model again (the reference leaves peft's wrappers, whose names no checkpoint loader knows)."""
        functional = require_peft()
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        configs = self._adapter_configs()
        unknown = [n for n in names if n not in configs]
        if unknown:
            raise ValueError(f"No adapter named {unknown} on this model; it has {list(configs)}.")
        for name in names:
            functional.delete_adapter(self, adapter_name=name, prefix=f"{configs[name].peft_type.value.lower()}_")
            configs.pop(name)
        if not configs:
            del self.peft_config
            self._hf_peft_config_loaded = False
            self._remove_adapter_layers()

    def get_adapter_state_dict(
        self, adapter_name: str | None = None, state_dict: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """The weights of one adapter (default: the first active one), keyed as in the model without the adapter
        name (``...q_lin.lora_A.weight``)."""
        functional = require_peft()
        self._adapter_configs()
        name = adapter_name or self.active_adapters()[0]
        return functional.get_peft_model_state_dict(self, state_dict=state_dict, adapter_name=name)  # type: ignore[no-any-return]

    # ----- for PreTrainedModel ---------------------------------------------------------------------------

    def _save_adapter(
        self,
        save_directory: str | os.PathLike[str],
        state_dict: dict[str, torch.Tensor] | None,
        safe_serialization: bool,
        push_to_hub: bool,
        kwargs: dict[str, Any],
    ) -> None:
        """``save_pretrained`` with an adapter attached: the active adapter's config and weights, nothing else."""
        active = self.active_adapters()
        if len(active) != 1:
            raise ValueError(
                f"save_pretrained writes one adapter, but {active} are active. Save them one at a time: "
                "model.set_adapter(name), then model.save_pretrained(folder)."
            )
        tensors = self.get_adapter_state_dict(active[0], state_dict=state_dict)
        if kwargs.pop("save_peft_format", True):
            tensors = {_FILE_KEY_PREFIX + key: value for key, value in tensors.items()}
        tensors = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}
        before = folder_state(save_directory) if push_to_hub else {}
        with atomic_directory(save_directory) as staging:
            self.peft_config[active[0]].save_pretrained(str(staging))
            if safe_serialization:
                from safetensors.torch import save_file

                save_file(tensors, str(Path(staging, ADAPTER_SAFE_WEIGHTS_NAME)), metadata={"format": "pt"})
            else:
                import torch

                torch.save(tensors, Path(staging, ADAPTER_WEIGHTS_NAME))
        if push_to_hub:
            after = folder_state(save_directory)
            push_folder_to_hub(
                save_directory,
                kwargs.pop("repo_id", None) or Path(os.path.abspath(os.fspath(save_directory))).name,
                commit_message=kwargs.get("commit_message") or "Upload adapter",
                commit_description=kwargs.get("commit_description"),
                private=kwargs.get("private"),
                token=kwargs.get("token"),
                revision=kwargs.get("revision"),
                create_pr=bool(kwargs.get("create_pr", False)),
                only_files=sorted(path for path, st in after.items() if before.get(path) != st),
            )

    # ----- helpers ---------------------------------------------------------------------------------------

    def _adapter_configs(self) -> dict[str, Any]:
        """``{name: peft config}`` of the attached adapters; raises when there are none."""
        require_peft()
        if not self._hf_peft_config_loaded or not getattr(self, "peft_config", None):
            raise ValueError("This model has no adapter: add one with add_adapter(config) or load_adapter(folder) first.")
        return self.peft_config

    def _refuse_existing(self, name: str) -> None:
        if self._hf_peft_config_loaded and name in getattr(self, "peft_config", {}):
            raise ValueError(f"This model already has an adapter named {name!r}; pick another adapter_name or delete it first.")

    def _remove_adapter_layers(self) -> None:
        """Put the plain layers back where peft wrapped them, so that the state dict has the model's own names again
        (``q_lin.weight``, not ``q_lin.base_layer.weight``) and ``save_pretrained`` writes a loadable model."""
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        for name, module in list(self.named_modules()):  # type: ignore[attr-defined]
            if isinstance(module, BaseTunerLayer):
                plain = module.get_base_layer()
            elif isinstance(module, AuxiliaryTrainingWrapper):
                plain = module.original_module
            else:
                continue
            parent, _, attr = name.rpartition(".")
            setattr(self.get_submodule(parent) if parent else self, attr, plain)  # type: ignore[attr-defined]

    def _switch_adapters(self, enabled: bool) -> None:
        self._adapter_configs()
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, (BaseTunerLayer, AuxiliaryTrainingWrapper)):
                module.enable_adapters(enabled)


def _read_adapter_weights(source: str, hub: HubOptions, use_safetensors: bool | None) -> dict[str, torch.Tensor]:
    """The tensors of ``adapter_model.safetensors`` (or, allowed with ``use_safetensors=False``, ``adapter_model.bin``)."""
    safe = None if use_safetensors is False else resolve_file(source, ADAPTER_SAFE_WEIGHTS_NAME, required=False, **hub.as_kwargs())
    if safe is not None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(safe)
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsLoadingError(f"{safe!r} is not a valid safetensors file: {exc}") from exc
    pickled = resolve_file(source, ADAPTER_WEIGHTS_NAME, required=False, **hub.as_kwargs())
    if pickled is None:
        raise WeightsLoadingError(f"{source!r} has no adapter weights: expected {ADAPTER_SAFE_WEIGHTS_NAME} or {ADAPTER_WEIGHTS_NAME}.")
    if use_safetensors is not False:
        raise WeightsLoadingError(
            f"{source!r} only has pickled adapter weights ({ADAPTER_WEIGHTS_NAME}). Unpickling can run arbitrary code, "
            "so plugformers does not do it by default; if you trust the source, pass use_safetensors=False."
        )
    import torch

    try:
        state = torch.load(pickled, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsLoadingError(f"{pickled!r} could not be read with torch.load(weights_only=True): {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsLoadingError(f"{pickled!r} does not hold a dict of tensors.")
    return state
