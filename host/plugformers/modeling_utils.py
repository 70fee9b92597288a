"""`PreTrainedModel`: the torch module base class with reference-compatible loading and saving.

Loading builds the module without running any weight initialisation (parameters are allocated empty,
on the target device), then assigns the checkpoint's tensors straight from the memory-mapped safetensors
file, converted to the target dtype and device; only the weights the checkpoint lacks are initialised.
Saving writes ``config.json`` plus ``model.safetensors`` (or shards and an index) through a staging
folder that is swapped in atomically.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from plugformers.configuration_utils import PretrainedConfig
from plugformers.modeling_layers import GradientCheckpointingLayer, MultiHeadAttention
from plugformers.output_capturing import Record, install_first_token_layer, install_recorders
from plugformers.peft_integration import PeftAdapterMixin, find_adapter_checkpoint
from plugformers.utils.hub import (
    HubOptions,
    PlugformersFileNotFoundError,
    PushToHubMixin,
    WeightsLoadingError,
    folder_state,
    resolve_file,
)
from plugformers.utils.io import atomic_directory, write_json
from plugformers.utils.logging import get_logger
from plugformers.vocabulary import (
    PICKLE_WEIGHTS_INDEX_NAME,
    PICKLE_WEIGHTS_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
)

__all__ = [
    "PreTrainedModel",
    "WeightsLoadingError",
    "classification_loss",
    "init_normal_weights",
    "no_init_weights",
    "span_loss",
    "text_input_shape",
]

logger = get_logger(__name__)


M = TypeVar("M", bound="PreTrainedModel")




# ----- skipping initialisation while loading ----------------------------------------------------------

_INIT_FUNCTIONS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "ones_",
    "zeros_",
    "orthogonal_",
)
_init_lock = threading.Lock()
_init_depth = 0
_saved_init: dict[str, Callable[..., Any]] = {}
_skip_local = threading.local()


# Re-entrant: a model's __init__ may itself load a sub-model (a pretrained backbone) in another dtype.
_dtype_lock = threading.RLock()


@contextlib.contextmanager
def _default_float_dtype(dtype: torch.dtype | None) -> Iterator[None]:
    """Create the model's float tensors directly in ``dtype`` while it is built for loading.

    Without this a bfloat16 load onto a GPU would first allocate every weight in float32 there, twice the
    memory the model needs. torch's default dtype is process-wide, so every load builds under the lock,
    including loads that keep the default (they would otherwise be built in another thread's dtype); float
    tensors that threads outside ``from_pretrained`` create meanwhile still get ``dtype``.
    """
    with _dtype_lock:
        previous = torch.get_default_dtype()
        if dtype not in (torch.float16, torch.bfloat16, torch.float64) or dtype == previous:
            yield
            return
        torch.set_default_dtype(dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)


def _noop_init(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return tensor


@contextlib.contextmanager
def no_init_weights() -> Iterator[None]:
    """Build modules without spending time on random initialisation (their values are about to be replaced).

    ``torch.nn.init`` functions become no-ops while any thread is inside the block, and ``post_init``
    skips ``_init_weights`` in this thread.
    """
    global _init_depth
    with _init_lock:
        if _init_depth == 0:
            for name in _INIT_FUNCTIONS:
                _saved_init[name] = getattr(torch.nn.init, name)
                setattr(torch.nn.init, name, _noop_init)
        _init_depth += 1
    previous = getattr(_skip_local, "skip", False)
    _skip_local.skip = True
    try:
        yield
    finally:
        _skip_local.skip = previous
        with _init_lock:
            _init_depth -= 1
            if _init_depth == 0:
                for name, fn in _saved_init.items():
                    setattr(torch.nn.init, name, fn)
                _saved_init.clear()


def _init_skipped() -> bool:
    return bool(getattr(_skip_local, "skip", False))


# ----- losses shared by classification heads ----------------------------------------------------------


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, config: PretrainedConfig, num_labels: int | None = None
) -> torch.Tensor:
    """Regression (MSE), single-label (cross-entropy) or multi-label (BCE-with-logits) loss.

    The kind comes from ``config.problem_type``; when unset it is inferred as the reference library does
    (one label -> regression; integer labels -> single-label; otherwise multi-label) and stored.
    """
    n = config.num_labels if num_labels is None else num_labels
    if config.problem_type is None:
        if n == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if n == 1:
            return nn.functional.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return nn.functional.mse_loss(logits, labels.to(logits.dtype))
    if config.problem_type == "single_label_classification":
        return nn.functional.cross_entropy(logits.view(-1, n), labels.view(-1))
    return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def span_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
) -> torch.Tensor:
    """Extractive question answering's loss: the mean of the start and end positions' cross-entropies.

    ``*_logits`` are ``(batch, seq)``. Positions outside the sequence (an answer cut off by truncation) are
    clamped to ``seq`` and ignored, so such examples add nothing to the loss.
    """
    outside = start_logits.shape[1]
    start = start_positions.reshape(-1).clamp(0, outside).to(start_logits.device)
    end = end_positions.reshape(-1).clamp(0, outside).to(end_logits.device)
    return (
        nn.functional.cross_entropy(start_logits, start, ignore_index=outside)
        + nn.functional.cross_entropy(end_logits, end, ignore_index=outside)
    ) / 2


def text_input_shape(
    input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, hidden_size: int, size_name: str = "hidden_size"
) -> tuple[int, int]:
    """``(batch, seq_len)`` of a text encoder's input, given as token ids or as embeddings (exactly one of them).

    Raises a ValueError naming the argument whose shape is wrong, so a misshapen input fails here and not
    deep inside attention; ``size_name`` is the config field that ``hidden_size`` comes from.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of input_ids or inputs_embeds (got both or neither).")
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}.")
        return input_ids.shape[0], input_ids.shape[1]
    assert inputs_embeds is not None
    if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != hidden_size:
        raise ValueError(
            f"inputs_embeds must have shape (batch, seq_len, {size_name}={hidden_size}), got {tuple(inputs_embeds.shape)}."
        )
    return inputs_embeds.shape[0], inputs_embeds.shape[1]


def init_normal_weights(module: nn.Module, std: float) -> None:
    """The usual initialisation of a BERT-style transformer, for a family's ``_init_weights``.

    Linear and embedding weights are drawn from Normal(0, ``std``), biases and an embedding's padding row are
    zero, LayerNorms are the identity; other modules are left to the caller.
    """
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


#: Submodule names ``get_encoder`` looks for, by modality (None: text).
_ENCODER_NAMES: dict[str | None, tuple[str, ...]] = {
    None: ("text_encoder", "encoder"),
    "image": ("vision_tower", "visual", "vision_model", "vision_encoder", "image_tower"),
    "video": ("vision_tower", "visual", "vision_model", "vision_encoder", "image_tower"),
    "audio": ("audio_tower", "audio_encoder", "speech_encoder"),
}


def _output_requires_grad(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
    output.requires_grad_(True)


def _offloaded_checkpoint(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``torch.utils.checkpoint.checkpoint`` with the tensors it saves held in host memory (pinned where CUDA is)."""
    with torch.autograd.graph.save_on_cpu(pin_memory=torch.cuda.is_available()):
        return torch.utils.checkpoint.checkpoint(function, *args, **kwargs)


# ----- the base class -----------------------------------------------------------------------------------


class PreTrainedModel(nn.Module, PushToHubMixin, PeftAdapterMixin):
    """Base of every model: holds the config, loads and saves checkpoints in the reference layout."""

    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    base_model_prefix: ClassVar[str] = ""
    main_input_name: ClassVar[str] = "input_ids"
    _no_split_modules: ClassVar[list[str] | None] = None

    # ----- what the class supports: declared here, read by the host and the shared test suite --------------
    #: Attention through ``torch.nn.functional.scaled_dot_product_attention`` (``attn_implementation="sdpa"``).
    _supports_sdpa: ClassVar[bool] = False
    #: ``gradient_checkpointing_enable()`` (its layers are ``GradientCheckpointingLayer`` s).
    supports_gradient_checkpointing: ClassVar[bool] = False
    #: ``torch.compile(model, fullgraph=True)`` traces the default forward without a graph break.
    supports_compile_fullgraph: ClassVar[bool] = False
    #: ``torch.export.export(model, ...)`` exports the default forward.
    supports_export: ClassVar[bool] = False
    #: ``prune_heads()`` (its attention modules are ``MultiHeadAttention`` s, one per layer).
    supports_head_pruning: ClassVar[bool] = False
    #: ``enable_fast_path()`` (some submodule declares a ``fast_path_plan``, see :mod:`plugformers.fast_path`).
    supports_fast_path: ClassVar[bool] = False

    # ----- how forward's outputs are assembled (see plugformers.output_capturing.model_forward) ----------
    #: Output field -> the submodules whose outputs fill it when ``output_hidden_states`` / ``output_attentions``
    #: ask for them; set on the base model class.
    recorded_outputs: ClassVar[dict[str, Record]] = {}
    #: A head that reads only the first position of its encoder's output: the last layer computes that one alone.
    first_token_only: ClassVar[bool] = False

    #: Regexes of checkpoint keys that may be missing / unexpected without a warning.
    _keys_to_ignore_on_load_missing: ClassVar[list[str] | None] = None
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str] | None] = None
    _auto_class: ClassVar[str | None] = None

    # ----- declarations adapter and training libraries read (PEFT, accelerate), in the reference's formats ----
    #: ``{target: source}`` parameter names: the target is the source's tensor while ``tie_word_embeddings`` holds.
    _tied_weights_keys: ClassVar[dict[str, str] | None] = None
    #: Exact state-dict names (of this model, or of a model inside it, relative to that one) ``save_pretrained`` leaves out.
    _keys_to_ignore_on_save: ClassVar[list[str] | None] = None
    #: Submodule names (dotted path segments, e.g. ``"wo"`` or ``"encoder.norm"``) whose weights stay float32 when the
    #: model is loaded or built in float16; the ``_strict`` list also in bfloat16.
    _keep_in_fp32_modules: ClassVar[list[str] | None] = None
    _keep_in_fp32_modules_strict: ClassVar[list[str] | None] = None
    #: Tags ``add_model_tags`` collects; ``save_pretrained`` writes them into the folder's model card (README.md).
    model_tags: list[str] | None = None

    def __init__(self, config: PretrainedConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(config, PretrainedConfig):
            raise TypeError(
                f"{type(self).__name__} takes a PretrainedConfig (for example {self.config_class.__name__}()), "
                f"got {type(config).__name__}. To load weights use {type(self).__name__}.from_pretrained(path)."
            )
        self.config = config
        self.name_or_path = config.name_or_path
        config._attn_implementation = self._resolve_attn_implementation(
            getattr(config, "_attn_implementation", None)
        )

    # ----- initialisation ------------------------------------------------------------------------------

    def _init_weights(self, module: nn.Module) -> None:
        """Initialise one submodule's parameters; families override this with their scheme."""

    def post_init(self) -> None:
        """Run at the end of ``__init__``: initialise every submodule and tie weights."""
        pruned = getattr(self.config, "pruned_heads", None)
        if pruned and self.supports_head_pruning and self.base_model is self:
            # A checkpoint saved after prune_heads records the pruned heads: build the same smaller layers.
            self._prune_attention_heads({int(layer): list(heads) for layer, heads in pruned.items()})
        if not _init_skipped():
            self.apply(self._init_weights)
        self.tie_weights()
        if self.recorded_outputs:
            install_recorders(self, self.recorded_outputs)
        if self.first_token_only:
            install_first_token_layer(self)
        if self.supports_gradient_checkpointing and getattr(self.config, "gradient_checkpointing", False):
            # The switch older config.json files carry: honoured once and dropped, as the reference does.
            self.gradient_checkpointing_enable()
            del self.config.gradient_checkpointing

    def init_weights(self) -> None:
        """Re-initialise every weight (and prune heads the config lists)."""
        pruned = getattr(self.config, "pruned_heads", None)
        if pruned:
            self.prune_heads(pruned)
        self.apply(self._init_weights)
        self.tie_weights()

    # ----- attention backends --------------------------------------------------------------------------

    @classmethod
    def _resolve_attn_implementation(cls, requested: str | None) -> str:
        from plugformers.plugins import get_registry

        if requested is None:
            return "sdpa" if cls._supports_sdpa else "eager"
        names = get_registry().attention_names()
        if requested not in names:
            raise ValueError(f"Unknown attn_implementation {requested!r}; available: {sorted(names)}.")
        if requested == "sdpa" and not cls._supports_sdpa:
            raise ValueError(f"{cls.__name__} does not support attn_implementation='sdpa'; use 'eager'.")
        return requested

    def set_attn_implementation(self, name: str) -> None:
        """Switch the attention backend (``"eager"``, ``"sdpa"`` or a plugin's) for every layer, at run time."""
        resolved = self._resolve_attn_implementation(name)
        for module in self.modules():
            cfg = getattr(module, "config", None)
            if isinstance(cfg, PretrainedConfig):
                cfg._attn_implementation = resolved

    # ----- basic properties ----------------------------------------------------------------------------

    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix, self)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.get_default_dtype()

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of (trainable) parameters, counting tied tensors once."""
        seen: set[int] = set()
        excluded: set[int] = set()
        if exclude_embeddings:
            excluded = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        total = 0
        for p in self.parameters():
            if id(p) in seen or id(p) in excluded or (only_trainable and not p.requires_grad):
                continue
            seen.add(id(p))
            total += p.numel()
        return total

    # ----- embeddings ----------------------------------------------------------------------------------

    def get_input_embeddings(self) -> nn.Module:
        base = self.base_model
        if base is not self and isinstance(base, PreTrainedModel):
            return base.get_input_embeddings()
        raise NotImplementedError(f"{type(self).__name__} has no input embeddings.")

    def set_input_embeddings(self, value: nn.Module) -> None:
        base = self.base_model
        if base is not self and isinstance(base, PreTrainedModel):
            base.set_input_embeddings(value)
            return
        raise NotImplementedError(f"{type(self).__name__} has no input embeddings.")

    def get_output_embeddings(self) -> nn.Module | None:
        return None

    def tie_weights(self) -> None:
        """Share the output projection's weight with the input embeddings when the config asks for it."""
        if not getattr(self.config, "tie_word_embeddings", False):
            return
        output = self.get_output_embeddings()
        if output is None:
            return
        output.weight = self.get_input_embeddings().weight  # type: ignore[union-attr]

    def _tied_parameter_names(self) -> dict[str, str]:
        """``{alias: canonical}`` for parameters that are the same tensor under two names."""
        first: dict[int, str] = {}
        aliases: dict[str, str] = {}
        for name, p in self.named_parameters(remove_duplicate=False):
            if id(p) in first:
                aliases[name] = first[id(p)]
            else:
                first[id(p)] = name
        return aliases

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None) -> nn.Embedding:
        """Grow or shrink the vocabulary: copies the kept rows, initialises new ones, updates ``vocab_size``."""
        old = self.get_input_embeddings()
        if not isinstance(old, nn.Embedding):
            raise TypeError(f"resize_token_embeddings needs an nn.Embedding, found {type(old).__name__}.")
        if new_num_tokens is None:
            new_num_tokens = old.num_embeddings
        if pad_to_multiple_of is not None:
            if pad_to_multiple_of <= 0:
                raise ValueError(f"pad_to_multiple_of must be positive, got {pad_to_multiple_of}.")
            new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
        if new_num_tokens <= 0:
            raise ValueError(f"new_num_tokens must be positive, got {new_num_tokens}.")
        if new_num_tokens != old.num_embeddings:
            new = nn.Embedding(
                new_num_tokens, old.embedding_dim, padding_idx=old.padding_idx, device=old.weight.device, dtype=old.weight.dtype
            )
            self._init_weights(new)
            keep = min(new_num_tokens, old.num_embeddings)
            with torch.no_grad():
                new.weight[:keep] = old.weight[:keep]
            new.weight.requires_grad = old.weight.requires_grad
            self.set_input_embeddings(new)
            output = self.get_output_embeddings()
            if isinstance(output, nn.Linear):
                if getattr(self.config, "tie_word_embeddings", False):
                    output.weight = new.weight
                else:
                    w = torch.empty(new_num_tokens, output.in_features, device=output.weight.device, dtype=output.weight.dtype)
                    w.normal_(0.0, getattr(self.config, "initializer_range", 0.02))
                    w[:keep] = output.weight[:keep].detach()
                    output.weight = nn.Parameter(w)
                if output.bias is not None:
                    b = torch.zeros(new_num_tokens, device=output.bias.device, dtype=output.bias.dtype)
                    b[:keep] = output.bias[:keep].detach()
                    output.bias = nn.Parameter(b)
                output.out_features = new_num_tokens
        self.config.vocab_size = new_num_tokens
        self.tie_weights()
        return self.get_input_embeddings()  # type: ignore[return-value]

    # ----- head pruning ---------------------------------------------------------------------------------

    def prune_heads(self, heads_to_prune: dict[int, list[int]]) -> None:
        """Remove attention heads: ``{layer index: [head indices]}``; remembered in ``config.pruned_heads``."""
        if not isinstance(heads_to_prune, dict):
            raise TypeError(f"heads_to_prune must be a dict {{layer: [heads]}}, got {type(heads_to_prune).__name__}.")
        pruned: dict[int, list[int]] = {int(k): list(v) for k, v in (getattr(self.config, "pruned_heads", None) or {}).items()}
        todo: dict[int, list[int]] = {}
        for layer, heads in heads_to_prune.items():
            layer = int(layer)
            new_heads = sorted(set(heads) - set(pruned.get(layer, [])))
            union = sorted(set(pruned.get(layer, [])) | set(heads))
            pruned[layer] = union
            if new_heads:
                todo[layer] = new_heads
        if not self.supports_head_pruning:
            raise NotImplementedError(f"{type(self).__name__} does not support head pruning.")
        self._prune_attention_heads(todo)
        self.config.pruned_heads = pruned

    def _prune_attention_heads(self, heads_to_prune: dict[int, list[int]]) -> None:
        """Prune ``{layer: [heads]}`` in the base model's attention modules (the n-th one is layer n's)."""
        attentions = [m for m in self.base_model.modules() if isinstance(m, MultiHeadAttention)]
        for layer, heads in heads_to_prune.items():
            if not 0 <= layer < len(attentions):
                raise ValueError(f"Cannot prune heads of layer {layer}: the model has layers 0..{len(attentions) - 1}.")
            attentions[layer].prune_heads(heads)

    # ----- activation (gradient) checkpointing -----------------------------------------------------------

    def activation_checkpointing_enable(
        self,
        activation_checkpointing_kwargs: dict[str, Any] | None = None,
        every_n_layers: int = 1,
        offload: bool = False,
    ) -> None:
        """Recompute layer activations in the backward pass instead of storing them (less memory).

        ``activation_checkpointing_kwargs`` go to ``torch.utils.checkpoint.checkpoint`` (non-reentrant unless they
        say ``use_reentrant=True``). ``every_n_layers=k`` checkpoints layers 0, k, 2k, ... and lets the others keep
        their activations. ``offload=True`` keeps what checkpointing saves (each layer's inputs) in host memory.
        Reentrant checkpointing gives no gradient to layers whose inputs do not require grad (frozen embeddings),
        so it also turns on :meth:`enable_input_require_grads`; :meth:`activation_checkpointing_disable` turns it
        off again.
        """
        if not self.supports_gradient_checkpointing:
            raise ValueError(f"{type(self).__name__} does not support gradient checkpointing (activation checkpointing).")
        if isinstance(every_n_layers, bool) or not isinstance(every_n_layers, int) or every_n_layers < 1:
            raise ValueError(f"every_n_layers must be a positive int, got {every_n_layers!r}.")
        kwargs = {"use_reentrant": False, **(activation_checkpointing_kwargs or {})}
        fn = functools.partial(_offloaded_checkpoint if offload else torch.utils.checkpoint.checkpoint, **kwargs)
        for index, layer in enumerate(self._checkpointing_layers()):
            layer._gradient_checkpointing_func = fn
            layer.gradient_checkpointing = index % every_n_layers == 0
        if kwargs["use_reentrant"] and "_require_grads_hooks" not in self.__dict__:
            self.enable_input_require_grads()
            self.__dict__["_checkpointing_input_grads"] = True

    def activation_checkpointing_disable(self) -> None:
        """Store activations again (and drop the input-grad hooks that reentrant checkpointing turned on)."""
        for layer in self._checkpointing_layers():
            layer.gradient_checkpointing = False
        if self.__dict__.pop("_checkpointing_input_grads", False):
            self.disable_input_require_grads()

    @property
    def is_activation_checkpointing(self) -> bool:
        """Whether some layer recomputes its activations in the backward pass."""
        return any(layer.gradient_checkpointing for layer in self._checkpointing_layers())

    def gradient_checkpointing_enable(
        self, gradient_checkpointing_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """The older name of :meth:`activation_checkpointing_enable` (same arguments)."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def gradient_checkpointing_disable(self) -> None:
        """The older name of :meth:`activation_checkpointing_disable`."""
        self.activation_checkpointing_disable()

    @property
    def is_gradient_checkpointing(self) -> bool:
        """The older name of :attr:`is_activation_checkpointing`."""
        return self.is_activation_checkpointing

    def _checkpointing_layers(self) -> list[GradientCheckpointingLayer]:
        return [m for m in self.modules() if isinstance(m, GradientCheckpointingLayer)]

    def enable_input_require_grads(self) -> None:
        """Make the input embeddings' output require grad (adapter libraries call this with checkpointing on).

        With frozen embeddings and *reentrant* checkpointing, the checkpointed blocks would otherwise get
        no gradient. Every distinct input embedding module of this model and of the models inside it gets one
        hook; models without input embeddings (audio, convolutional encoders) get none rather than an error.
        """
        self.disable_input_require_grads()
        hooks = []
        seen: set[int] = set()
        for module in self.modules():
            if not isinstance(module, PreTrainedModel):
                continue
            try:
                embeddings = module.get_input_embeddings()
            except NotImplementedError:
                continue
            if isinstance(embeddings, nn.Module) and id(embeddings) not in seen:
                seen.add(id(embeddings))
                hooks.append(embeddings.register_forward_hook(_output_requires_grad))
        if hooks:
            self.__dict__["_require_grads_hooks"] = hooks
            self.__dict__["_require_grads_hook"] = hooks[0]  # the single-hook name older callers look for

    def disable_input_require_grads(self) -> None:
        """Remove the hooks :meth:`enable_input_require_grads` installed (nothing to do if none)."""
        for hook in self.__dict__.pop("_require_grads_hooks", []):
            hook.remove()
        self.__dict__.pop("_require_grads_hook", None)

    # ----- the rest of the reference's model API that porting code and adapter libraries call -------------

    def get_encoder(self, modality: str | None = None) -> nn.Module:
        """The encoder stack, found by name as the reference finds it.

        A submodule named like an encoder (``encoder``, ``text_encoder``; for ``modality="image"`` or ``"video"``
        ``vision_model`` and the like; for ``"audio"`` ``audio_encoder`` and the like), else the base model's,
        else the model itself (DistilBERT keeps its layers in ``transformer``, ViT in ``layers``).
        """
        if modality not in _ENCODER_NAMES:
            raise ValueError(f"modality must be None, 'image', 'video' or 'audio', got {modality!r}.")
        for name in _ENCODER_NAMES[modality]:
            module = self._modules.get(name)
            if module is not None:
                return module
        base = self.base_model
        if base is not self and isinstance(base, PreTrainedModel):
            found = base.get_encoder(modality)
            if found is not base:
                return found
        return self

    @classmethod
    def can_generate(cls) -> bool:
        """Whether the class generates sequences (defines ``generate``); False for the encoders plugformers ships."""
        return callable(getattr(cls, "generate", None))

    def add_model_tags(self, tags: list[str] | str) -> None:
        """Add tags (once each, in order) that ``save_pretrained`` and ``push_to_hub`` write into the model card.

        The reference writes them into the card only when pushing; plugformers has no card generator beyond
        this, so every save writes them into ``README.md`` (created with a short card, or merged into the one
        the folder already has), and a push uploads that file.
        """
        tags = [tags] if isinstance(tags, str) else list(tags)
        bad = [t for t in tags if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"Model tags must be non-empty strings, got {bad!r}.")
        current = list(self.model_tags or [])
        current.extend(t for t in dict.fromkeys(tags) if t not in current)
        self.model_tags = current

    def _keys_ignored_on_save(self) -> set[str]:
        """Every ``_keys_to_ignore_on_save`` of this model and the models inside it, as names in this state dict."""
        names: set[str] = set()
        for prefix, module in self.named_modules():
            if isinstance(module, PreTrainedModel):
                names.update(f"{prefix}.{k}" if prefix else k for k in module._keys_to_ignore_on_save or ())
        return names

    def _keep_modules_in_fp32(self, dtype: torch.dtype | None) -> bool:
        """Cast the submodules that ``_keep_in_fp32_modules`` names (for float16; ``_strict``: also for bfloat16)
        back to float32. Returns whether there were any."""
        patterns: set[str] = set()
        for module in self.modules():
            if isinstance(module, PreTrainedModel):
                if dtype == torch.float16:
                    patterns.update(module._keep_in_fp32_modules or ())
                if dtype in (torch.float16, torch.bfloat16):
                    patterns.update(module._keep_in_fp32_modules_strict or ())
        kept = [
            module
            for name, module in self.named_modules()
            if name and any(f".{pattern}." in f".{name}." for pattern in patterns)
        ]
        for module in kept:
            module.float()
        return bool(kept)

    def _write_model_card(self, folder: Path, extra_tags: list[str] | str | None) -> None:
        """Write :attr:`model_tags` (and ``extra_tags``) into ``folder/README.md``'s metadata; nothing without tags."""
        extra = [extra_tags] if isinstance(extra_tags, str) else list(extra_tags or [])
        tags = list(dict.fromkeys([*(self.model_tags or []), *extra]))
        if not tags:
            return
        from huggingface_hub import ModelCard, ModelCardData

        path = folder / "README.md"
        if path.is_file():
            card = ModelCard.load(path)
        else:
            data = ModelCardData(library_name="transformers")
            card = ModelCard(
                f"---\n{data.to_yaml()}\n---\n\n# {_own_class(self).__name__}\n\n"
                "Saved with plugformers, in the reference library's checkpoint layout (it loads in either).\n"
            )
        card.data.tags = list(dict.fromkeys([*(card.data.tags or []), *tags]))
        path.unlink(missing_ok=True)  # the staging folder may hold a hard link to the saved folder's file
        card.save(str(path))

    # ----- opt-in inference fast path (see plugformers.fast_path) ---------------------------------------

    def enable_fast_path(self: M) -> M:
        """Opt into the inference fast path. Returns ``self``.

        A pass over the module tree gives every module that declares a ``fast_path_plan`` its fast form (see
        :mod:`plugformers.fast_path`): transformer families get fused q/k/v projections and, on x86 CPUs with
        AVX-512 in float32, oneDNN pre-packed weights with the activation fused into the matmul (elsewhere plain
        weights; see :func:`plugformers.fast_path.onednn_preferred`); convolutional ones get batch norms folded into
        the convolutions before them, in channels-last layout (their feature maps come out channels-last).
        Outputs agree with the plain path to float32 rounding; the state dict and saved files do not change.
        The fast path steps aside while gradients are needed, under autocast, under ``torch.compile`` or
        ``torch.jit.trace``, and for weights made under ``torch.inference_mode()``; it follows weight updates
        and ``.to()``. It costs memory for the derived weights (about one more copy of the layers it
        covers). Raises ``NotImplementedError`` for families without one.
        """
        from plugformers import fast_path

        if not self.supports_fast_path or not fast_path.apply_plans(self):
            raise NotImplementedError(
                f"{type(self).__name__} has no fast path (no module of it declares one); it runs as it is."
            )
        return self

    def disable_fast_path(self: M) -> M:
        """Back to the plain path, freeing the derived weights. Returns ``self``."""
        from plugformers import fast_path

        fast_path.remove_plans(self)
        return self

    def to_inference(
        self: M, dtype: torch.dtype | str | None = None, quantize: str | None = None, *, fast_path: bool = False
    ) -> M:
        """Reduced-precision CPU inference, opt in: ``dtype="bfloat16"`` and/or ``quantize="int8"``. Returns ``self``.

        bfloat16 converts the model and casts floating-point inputs on each call (fast where the CPU has
        bfloat16 matrix instructions; :func:`plugformers.precision.cpu_support` says); int8 replaces every
        linear layer by an int8 one with activations quantized per call, on any CPU, after which the model
        cannot be trained or saved. ``fast_path=True`` also enables the fast path, whose fusions apply on
        top. See :func:`plugformers.precision.to_inference`.
        """
        from plugformers.precision import to_inference

        return to_inference(self, dtype, quantize, fast_path=fast_path)  # type: ignore[return-value]

    # ----- saving ----------------------------------------------------------------------------------------

    @classmethod
    def register_for_auto_class(cls, auto_class: str | type = "AutoModel") -> None:
        """Make ``save_pretrained`` ship this class's code for ``auto_class`` (loaded with ``trust_remote_code``)."""
        from plugformers.dynamic_module_utils import auto_class_name

        cls._auto_class = auto_class_name(auto_class, prefix=("AutoModel", "AutoBackbone"))

    _hub_replaced_patterns = (
        SAFE_WEIGHTS_NAME,
        "model-*-of-*.safetensors",
        SAFE_WEIGHTS_INDEX_NAME,
        PICKLE_WEIGHTS_NAME,
        "pytorch_model-*-of-*.bin",
        PICKLE_WEIGHTS_INDEX_NAME,
    )

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        state_dict: dict[str, torch.Tensor] | None = None,
        max_shard_size: int | str = "5GB",
        safe_serialization: bool = True,
        is_main_process: bool = True,
        push_to_hub: bool = False,
        **kwargs: Any,
    ) -> None:
        """Write ``config.json`` and the weights (safetensors, sharded past ``max_shard_size``) atomically."""
        if not is_main_process:
            return
        if self._hf_peft_config_loaded:  # as the reference does: the adapter alone (plugformers.peft_integration)
            return self._save_adapter(save_directory, state_dict, safe_serialization, push_to_hub, kwargs)
        from plugformers.precision import inference_settings

        if inference_settings(self)["quantize"] is not None:
            raise ValueError(
                f"This model was quantized for inference ({inference_settings(self)['quantize']}): its linear layers "
                "hold no float weights any more. Save the model before calling to_inference(quantize=...)."
            )
        limit = _parse_size(max_shard_size)
        if state_dict is None:
            state_dict = self.state_dict()
        ignored = self._keys_ignored_on_save()
        state_dict = {k: v for k, v in state_dict.items() if k not in ignored}
        _refuse_sharded(state_dict)
        tensors = _dedupe_shared(state_dict, self)
        config = self.config
        config.architectures = [_own_class(self).__name__]
        config.dtype = self.dtype
        before = folder_state(save_directory) if push_to_hub else {}
        with atomic_directory(save_directory) as staging:
            staging = Path(staging)
            for old in list(staging.iterdir()):
                if old.is_file() and re.fullmatch(r"(model|pytorch_model)(-\d{5}-of-\d{5})?\.(safetensors|bin)(\.index\.json)?", old.name):
                    old.unlink()
            if self._auto_class is not None:
                from plugformers.dynamic_module_utils import custom_object_save

                custom_object_save(self, staging, config=config)
            config.save_pretrained(staging)
            self._write_model_card(staging, kwargs.pop("tags", None))
            if safe_serialization:
                _write_safetensors(tensors, staging, limit)
            else:
                _write_pickle(tensors, staging, limit)
        if push_to_hub:
            self._push_saved_folder(save_directory, before, kwargs.pop("repo_id", None), kwargs)

    # ----- loading ---------------------------------------------------------------------------------------

    @classmethod
    def _fix_checkpoint_key(cls, key: str) -> str:
        """Rename one checkpoint key to today's name (old LayerNorm ``gamma``/``beta`` spellings here)."""
        if (key.endswith(".gamma") and "LayerNorm" in key) or key.endswith("layer_norm.gamma"):
            return key[: -len("gamma")] + "weight"
        if (key.endswith(".beta") and "LayerNorm" in key) or key.endswith("layer_norm.beta"):
            return key[: -len("beta")] + "bias"
        return key

    @classmethod
    def _from_config(cls: type[M], config: PretrainedConfig, **kwargs: Any) -> M:
        """Build with random weights from ``config`` (``dtype`` and ``attn_implementation`` honoured)."""
        dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
        attn = kwargs.pop("attn_implementation", None)
        if attn is not None:
            config._attn_implementation = cls._resolve_attn_implementation(attn)
        dtype = _parse_dtype(dtype, config)
        model = cls(config, **kwargs)
        if dtype is not None:
            model.to(dtype)
            model._keep_modules_in_fp32(dtype)
            _record_dtype(config, dtype)
        return model

    @classmethod
    def from_pretrained(
        cls: type[M],
        pretrained_model_name_or_path: str | os.PathLike[str] | None,
        *model_args: Any,
        config: PretrainedConfig | str | os.PathLike[str] | None = None,
        state_dict: dict[str, torch.Tensor] | None = None,
        dtype: str | torch.dtype | None = None,
        device_map: str | torch.device | dict[str, Any] | None = None,
        attn_implementation: str | None = None,
        output_loading_info: bool = False,
        ignore_mismatched_sizes: bool = False,
        use_safetensors: bool | None = True,
        **kwargs: Any,
    ) -> Any:
        """Load a model from a folder or Hub repo holding ``config.json`` and safetensors weights.

        ``config`` replaces the saved configuration; other keyword arguments that name config fields
        override them. ``dtype`` is a torch dtype, its name, or ``"auto"`` (the checkpoint's). ``device_map``
        is ``"cpu"``, ``"cuda"``, ``"auto"`` or ``{"": device}``: each tensor is placed there directly.
        ``output_loading_info=True`` also returns a dict of the ``missing_keys`` and ``unexpected_keys`` (sets of
        names), the ``mismatched_keys`` (a set of ``(name, checkpoint shape, model shape)``) and ``error_msgs``.
        Loading inside ``with torch.device("meta"):`` is refused: build ``cls(config)`` there instead.
        ``from_pretrained(None, config=config, state_dict=tensors)`` loads weights held in memory instead.
        """
        _refuse_meta_default_device(cls.__name__)
        if "torch_dtype" in kwargs:
            torch_dtype = kwargs.pop("torch_dtype")
            dtype = dtype if dtype is not None else torch_dtype
        kwargs.pop("trust_remote_code", None)
        kwargs.pop("low_cpu_mem_usage", None)
        hub = HubOptions.pop_from(kwargs)
        if state_dict is not None and pretrained_model_name_or_path is not None:
            raise ValueError(
                "Pass either a checkpoint path or state_dict= to from_pretrained, not both: "
                "from_pretrained(None, config=config, state_dict=tensors) loads weights held in memory."
            )
        if pretrained_model_name_or_path is None and (state_dict is None or config is None):
            raise ValueError(
                "from_pretrained(None, ...) needs both config= and state_dict=; otherwise pass a checkpoint folder "
                "or Hub repo id."
            )
        source = "" if pretrained_model_name_or_path is None else os.fspath(pretrained_model_name_or_path)
        adapter = find_adapter_checkpoint(source, hub, kwargs)  # a PEFT adapter folder: load its base model first
        source = source if adapter is None else adapter.base
        if config is None or isinstance(config, (str, os.PathLike)):
            loaded = cls.config_class.from_pretrained(
                config if config is not None else source, return_unused_kwargs=True, **hub.as_kwargs(), **kwargs
            )
            assert isinstance(loaded, tuple)
            resolved, model_kwargs = loaded
        else:
            if not isinstance(config, PretrainedConfig):
                raise TypeError(f"config must be a PretrainedConfig or a path, got {type(config).__name__}.")
            resolved = _copy_config(config)
            model_kwargs = {}
            for key, value in kwargs.items():
                if hasattr(resolved, key) or key == "num_labels":
                    setattr(resolved, key, value)
                else:
                    model_kwargs[key] = value
        if source:
            resolved.name_or_path = source
        if attn_implementation is not None:
            resolved._attn_implementation = attn_implementation
        device = _resolve_device_map(device_map)
        entries: Iterable[tuple[str, Callable[[], torch.Tensor]]]
        if state_dict is not None:
            entries = _iter_state_dict(state_dict)
            where = "the given state_dict"
            target_dtype = _parse_dtype(dtype, resolved, state_dict=state_dict)
        else:
            files, is_safetensors = _find_weights(source, hub, use_safetensors)
            entries = itertools.chain.from_iterable(_iter_checkpoint(f, is_safetensors, device) for f in files)
            where = files[0] if len(files) == 1 else os.path.dirname(files[0])
            target_dtype = _parse_dtype(dtype, resolved, files if is_safetensors else None)
        with no_init_weights(), torch.device(device), _default_float_dtype(target_dtype):
            model = cls(resolved, *model_args, **model_kwargs)
        # With modules kept in float32 each weight takes the dtype its module was built in, not one dtype for all.
        load_dtype = None if model._keep_modules_in_fp32(target_dtype) else target_dtype
        info = model._load_weights(entries, where, device, load_dtype, ignore_mismatched_sizes)
        if target_dtype is not None:
            _record_dtype(resolved, target_dtype)
        model.eval()
        if adapter is not None:
            info = adapter.load_into(model, hub)
        if output_loading_info:
            return model, info
        return model

    def _load_weights(
        self,
        entries: Iterable[tuple[str, Callable[[], torch.Tensor]]],
        where: str,
        device: torch.device,
        dtype: torch.dtype | None,
        ignore_mismatched_sizes: bool,
    ) -> dict[str, Any]:
        """Assign the checkpoint's ``(key, loader)`` entries; initialise and report what they do not cover."""
        expected = dict(self.state_dict(keep_vars=True))
        tied = self._tied_parameter_names()  # the sharing the model was built with: {alias: canonical}
        prefix = self.base_model_prefix
        has_prefix_module = bool(prefix) and hasattr(self, prefix)
        loaded: set[str] = set()
        unexpected: list[str] = []
        mismatched: list[tuple[str, torch.Size, torch.Size]] = []
        for raw_key, get in entries:
            key = type(self)._fix_checkpoint_key(raw_key)
            name = self._match_key(key, expected, prefix, has_prefix_module)
            if name is None:
                unexpected.append(raw_key)
                continue
            current = expected[name]
            tensor = get()
            if tuple(tensor.shape) != tuple(current.shape):
                mismatched.append((name, tensor.shape, current.shape))
                continue
            if tensor.is_floating_point() and (dtype is not None or current.is_floating_point()):
                tensor = tensor.to(device=device, dtype=dtype if dtype is not None else current.dtype)
            else:
                tensor = tensor.to(device=device)
            _assign(self, name, tensor, current)
            loaded.add(name)
        if mismatched and not ignore_mismatched_sizes:
            lines = "\n".join(f"  {n}: checkpoint {list(a)} vs model {list(b)}" for n, a, b in mismatched)
            raise WeightsLoadingError(
                f"Some weights in {where!r} do not fit {_own_class(self).__name__}:\n{lines}\n"
                "Pass ignore_mismatched_sizes=True to initialise them randomly instead."
            )
        self._retie_loaded(tied, loaded)
        mismatched_names = {n for n, _, _ in mismatched}
        missing = [n for n in expected if n not in loaded and not (n in tied and tied[n] in loaded)]
        self._initialise_missing(missing, device, dtype)
        if dtype is not None:
            # Buffers built in __init__ (position ids, sinusoidal tables) follow the requested float dtype.
            for module in self.modules():
                for bname, buf in module.named_buffers(recurse=False):
                    if buf is not None and buf.is_floating_point() and buf.dtype != dtype:
                        module._buffers[bname] = buf.to(dtype)
        self.tie_weights()
        missing_report = [
            n
            for n in missing
            if n not in mismatched_names
            and not any(re.search(p, n) for p in (self._keys_to_ignore_on_load_missing or []))
        ]
        unexpected_report = [
            k for k in unexpected if not any(re.search(p, k) for p in (self._keys_to_ignore_on_load_unexpected or []))
        ]
        self._warn_loading(where, missing_report, unexpected_report, mismatched)
        return {
            "missing_keys": set(missing_report),
            "unexpected_keys": set(unexpected_report),
            "mismatched_keys": set(mismatched),
            "error_msgs": [],
        }

    def _retie_loaded(self, tied: dict[str, str], loaded: set[str]) -> None:
        """Give every tied group the checkpoint's value, whichever of its names the checkpoint used.

        Loading replaces parameters one name at a time, which breaks the sharing; this moves a value loaded
        under an alias to the canonical name and makes the aliases share it again.
        """
        for alias, canonical in tied.items():
            if canonical not in loaded and alias in loaded:
                value = self.get_parameter(alias)
                _assign(self, canonical, value.detach(), value)
                loaded.add(canonical)
        for alias, canonical in tied.items():
            module_name, _, attr = alias.rpartition(".")
            module = self.get_submodule(module_name) if module_name else self
            module._parameters[attr] = self.get_parameter(canonical)

    @staticmethod
    def _match_key(key: str, expected: dict[str, Any], prefix: str, has_prefix_module: bool) -> str | None:
        if key in expected:
            return key
        if prefix:
            if has_prefix_module and f"{prefix}.{key}" in expected:
                return f"{prefix}.{key}"  # base checkpoint into a head model
            if key.startswith(prefix + ".") and key[len(prefix) + 1 :] in expected and not has_prefix_module:
                return key[len(prefix) + 1 :]  # head checkpoint into a base model
        return None

    def _initialise_missing(self, missing: list[str], device: torch.device, dtype: torch.dtype | None) -> None:
        """Give the weights the checkpoint lacked their family initialisation (loaded neighbours kept)."""
        if not missing:
            return
        owners: dict[str, nn.Module] = {}
        for name in missing:
            module_name = name.rpartition(".")[0]
            owners[module_name] = self.get_submodule(module_name) if module_name else self
        for module_name, module in owners.items():
            keep = {
                n: t.detach().clone()
                for n, t in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
                if t is not None and (f"{module_name}.{n}" if module_name else n) not in missing
            }
            self._init_weights(module)
            with torch.no_grad():
                for n, value in keep.items():
                    getattr(module, n).copy_(value)
        if dtype is not None:
            for name in missing:
                module_name, _, attr = name.rpartition(".")
                module = self.get_submodule(module_name) if module_name else self
                tensor = getattr(module, attr)
                if tensor is not None and tensor.is_floating_point() and tensor.dtype != dtype:
                    _assign(self, name, tensor.detach().to(dtype), tensor)

    def _warn_loading(
        self, where: str, missing: list[str], unexpected: list[str], mismatched: list[tuple[str, Any, Any]]
    ) -> None:
        if not (missing or unexpected or mismatched):
            return
        if os.path.isfile(where):
            where = os.path.dirname(where)
        parts = [f"Loading {_own_class(self).__name__} from {where!r}:"]
        if missing:
            parts.append(f"newly initialised (not in the checkpoint; train before use): {missing}")
        if mismatched:
            parts.append(
                "newly initialised because the checkpoint's shape differs (train before use): "
                + ", ".join(f"{n} {list(a)}->{list(b)}" for n, a, b in mismatched)
            )
        if unexpected:
            parts.append(f"unused checkpoint weights (expected when loading another head): {unexpected}")
        logger.warning(" ".join(parts))


# ----- helpers -----------------------------------------------------------------------------------------


def _copy_config(config: PretrainedConfig) -> PretrainedConfig:
    import copy

    return copy.deepcopy(config)


def _record_dtype(config: PretrainedConfig, dtype: torch.dtype) -> None:
    """Set ``dtype`` on ``config`` and on each of its ``sub_configs``: the whole model's weights are in it."""
    config.dtype = dtype
    for key in config.sub_configs:
        nested = getattr(config, key, None)
        if isinstance(nested, PretrainedConfig):
            nested.dtype = dtype


def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"max_shard_size must be positive, got {size}.")
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B)\s*", size.upper())
    if not match:
        raise ValueError(f"max_shard_size must be an int or like '5GB' / '500MB', got {size!r}.")
    number, unit = float(match.group(1)), match.group(2)
    base = 1024 if "I" in unit else 1000
    power = {"B": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit[0]]
    return int(number * base**power)


def _parse_dtype(
    dtype: str | torch.dtype | None,
    config: PretrainedConfig,
    safetensors_files: list[str] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> torch.dtype | None:
    """The torch dtype to load in; ``"auto"`` is the config's, else the weights' first float dtype."""
    if dtype is None:
        return None
    if dtype == "auto":
        name = getattr(config, "dtype", None)
        if isinstance(name, torch.dtype) or (isinstance(name, str) and name):
            dtype = name
        elif safetensors_files:
            return _first_float_dtype(safetensors_files[0])
        elif state_dict:
            return next((t.dtype for t in state_dict.values() if t.is_floating_point()), None)
        else:
            return None
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.replace("torch.", ""), None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"Unknown dtype {dtype!r}; use e.g. 'float32', 'float16', 'bfloat16' or 'auto'.")
        dtype = resolved
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype, got {dtype!r}.")
    return dtype


def _first_float_dtype(file: str) -> torch.dtype | None:
    from safetensors import safe_open

    with safe_open(file, framework="pt") as f:
        for key in f.keys():
            t = f.get_slice(key)
            name = str(t.get_dtype()).lower()
            mapping = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "f64": torch.float64}
            if name in mapping:
                return mapping[name]
    return None


def _refuse_meta_default_device(class_name: str) -> None:
    """Refuse to load under ``with torch.device("meta"):``: the weights read would be thrown away."""
    if torch.get_default_device().type == "meta":
        raise RuntimeError(
            f"{class_name}.from_pretrained was called while torch's default device is 'meta' (inside "
            "`with torch.device('meta'):` or after torch.set_default_device('meta')); tensors made there hold no "
            f"data, so the checkpoint's weights would be lost. Load outside that context, or build an empty model "
            f"there with {class_name}(config) or _from_config(config)."
        )


def _resolve_device_map(device_map: Any) -> torch.device:
    if device_map is None:
        return torch.device("cpu")
    if isinstance(device_map, dict):
        devices = {str(v) if not isinstance(v, int) else f"cuda:{v}" for v in device_map.values()}
        if len(devices) != 1:
            raise NotImplementedError(
                f"device_map spreads the model over {sorted(devices)}; plugformers places a model on one device. "
                "Use a single device, e.g. device_map='cuda' or {'': 'cuda:0'}."
            )
        device_map = devices.pop()
    if device_map == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device_map, int):
        device_map = f"cuda:{device_map}"
    device = torch.device(device_map)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device_map={device_map!r} asks for CUDA, but no CUDA device is available.")
    return device


def _find_weights(source: str, hub: HubOptions, use_safetensors: bool | None) -> tuple[list[str], bool]:
    """Locate the weight files: safetensors (single or sharded) first, pickle only when allowed."""
    kw = hub.as_kwargs()
    if use_safetensors is not False:
        single = resolve_file(source, SAFE_WEIGHTS_NAME, required=False, **kw)
        if single is not None:
            return [single], True
        index = resolve_file(source, SAFE_WEIGHTS_INDEX_NAME, required=False, **kw)
        if index is not None:
            return _shards_from_index(source, index, kw), True
    pickle_single = resolve_file(source, PICKLE_WEIGHTS_NAME, required=False, **kw)
    pickle_index = None if pickle_single else resolve_file(source, PICKLE_WEIGHTS_INDEX_NAME, required=False, **kw)
    if pickle_single is None and pickle_index is None:
        raise PlugformersFileNotFoundError(
            f"{source!r} has no weights: expected {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME}"
            + ("" if use_safetensors is not False else f" or {PICKLE_WEIGHTS_NAME}")
            + "."
        )
    if use_safetensors is not False:
        raise WeightsLoadingError(
            f"{source!r} only has pickle weights ({PICKLE_WEIGHTS_NAME}). Unpickling can run arbitrary code, so "
            "plugformers does not do it by default. If you trust the source, pass use_safetensors=False (they are then "
            "read with torch.load(weights_only=True)), or convert them to safetensors."
        )
    if pickle_single is not None:
        return [pickle_single], False
    assert pickle_index is not None
    return _shards_from_index(source, pickle_index, kw), False


def _shards_from_index(source: str, index_path: str, kw: dict[str, Any]) -> list[str]:
    try:
        with open(index_path, encoding="utf-8") as fh:
            index = json.load(fh)
        weight_map = index["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsLoadingError(f"Shard index {index_path!r} is invalid: {exc}") from exc
    shard_names = sorted(set(weight_map.values()))
    for name in shard_names:
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise WeightsLoadingError(f"Shard index {index_path!r} names an invalid shard file {name!r}.")
    files = []
    for name in shard_names:
        path = resolve_file(source, name, **kw)
        assert path is not None
        files.append(path)
    return files


def _iter_checkpoint(file: str, is_safetensors: bool, device: torch.device) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
    """Yield ``(key, loader)`` pairs; tensors are read lazily from the memory-mapped file."""
    if is_safetensors:
        from safetensors import SafetensorError, safe_open

        load_device = str(device) if device.type == "cuda" else "cpu"
        try:
            handle = safe_open(file, framework="pt", device=load_device)
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsLoadingError(f"{file!r} is not a valid safetensors file: {exc}") from exc
        with handle as f:
            metadata = f.metadata() or {}
            fmt = metadata.get("format", "pt")
            if fmt not in ("pt", "tf", "flax", "mlx", "np"):
                raise WeightsLoadingError(f"{file!r} declares an unknown tensor format {fmt!r}.")
            for key in f.keys():

                def get(k: str = key) -> torch.Tensor:
                    try:
                        return f.get_tensor(k)
                    except Exception as exc:  # safetensors raises its own error types
                        raise WeightsLoadingError(f"{file!r}: cannot read tensor {k!r}: {exc}") from exc

                yield key, get
        return
    try:
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise WeightsLoadingError(f"{file!r} could not be read with torch.load(weights_only=True): {exc}") from exc
    if not isinstance(state, dict):
        raise WeightsLoadingError(f"{file!r} does not hold a state dict (found {type(state).__name__}).")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsLoadingError(f"{file!r}: entry {key!r} is not a tensor.")
        yield key, functools.partial(_identity, value)


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _iter_state_dict(state_dict: dict[str, torch.Tensor]) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
    """``(key, loader)`` pairs over tensors already in memory (``from_pretrained(None, state_dict=...)``)."""
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict must be a dict of tensors, got {type(state_dict).__name__}.")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict entry {key!r} is not a tensor (got {type(value).__name__}).")
        yield key, functools.partial(_identity, value.detach())


def _assign(model: nn.Module, name: str, tensor: torch.Tensor, current: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    existing = module._parameters[attr] if attr in module._parameters else module._buffers.get(attr)
    if existing is not None and _is_dtensor(existing):  # an FSDP2 shard (distributed.load_sharded): FSDP holds it
        if tensor is not existing:
            with torch.no_grad():
                existing.copy_(tensor)
    elif attr in module._parameters:
        module._parameters[attr] = nn.Parameter(tensor, requires_grad=current.requires_grad)
    elif attr in module._buffers:
        module._buffers[attr] = tensor
    else:  # a parametrization or other attribute: copy in place
        with torch.no_grad():
            getattr(module, attr).copy_(tensor)


def _own_class(model: nn.Module) -> type:
    """The model's class, not the ``FSDP<Name>`` subclass that FSDP2's ``fully_shard`` swaps in."""
    cls = type(model)
    fsdp = sys.modules.get("torch.distributed.fsdp")  # not imported: nothing can be sharded (and no import cost)
    if fsdp is not None and issubclass(cls, fsdp.FSDPModule):
        return next(b for b in cls.__mro__[1:] if not issubclass(b, fsdp.FSDPModule))
    return cls


def _is_dtensor(tensor: Any) -> bool:
    """Whether ``tensor`` is a DTensor (sharded by FSDP2); never imports torch.distributed to find out."""
    dtensor = sys.modules.get("torch.distributed.tensor")
    return dtensor is not None and isinstance(tensor, dtensor.DTensor)


def _refuse_sharded(state_dict: dict[str, Any]) -> None:
    """A sharded tensor saved as it is would write one rank's part only: point to the gathering save instead."""
    sharded = [k for k, v in state_dict.items() if _is_dtensor(v)]
    if sharded:
        raise ValueError(
            f"save_pretrained got sharded (DTensor) weights such as {sharded[0]!r}, e.g. from a model wrapped by "
            "fully_shard; each rank holds only part of them. Call plugformers.distributed.save_pretrained(model, "
            "path) on every rank, or pass state_dict=plugformers.distributed.full_state_dict(model)."
        )


def _dedupe_shared(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Drop the second name of tensors that share storage (tied weights); safetensors cannot store both."""
    seen: dict[tuple[Any, ...], str] = {}
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict entry {name!r} is not a tensor.")
        t = tensor.detach()
        if t.device.type != "meta" and t.numel() > 0:
            ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
            if ident in seen:
                continue
            seen[ident] = name
        out[name] = t.contiguous()
    return out


def _shard(tensors: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    return shards


def _write_safetensors(tensors: dict[str, torch.Tensor], folder: Path, limit: int) -> None:
    from safetensors.torch import save_file

    cpu = {k: (v.cpu() if v.device.type != "cpu" else v) for k, v in tensors.items()}
    shards = _shard(cpu, limit)
    if len(shards) == 1:
        save_file(shards[0], str(folder / SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
        return
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        for key, t in shard.items():
            weight_map[key] = name
            total += t.numel() * t.element_size()
    write_json(folder / SAFE_WEIGHTS_INDEX_NAME, {"metadata": {"total_size": total}, "weight_map": weight_map})


def _write_pickle(tensors: dict[str, torch.Tensor], folder: Path, limit: int) -> None:
    shards = _shard({k: v.cpu() for k, v in tensors.items()}, limit)
    if len(shards) == 1:
        torch.save(shards[0], folder / PICKLE_WEIGHTS_NAME)
        return
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards, start=1):
        name = f"pytorch_model-{i:05d}-of-{len(shards):05d}.bin"
        torch.save(shard, folder / name)
        weight_map.update(dict.fromkeys(shard, name))
    write_json(folder / PICKLE_WEIGHTS_INDEX_NAME, {"metadata": {}, "weight_map": weight_map})
