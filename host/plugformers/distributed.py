"""Training plugformers models with ``torch.distributed``: FSDP2 by the family's blocks, saving, sharded loading.

The engine is torch's own: ``DistributedDataParallel``, FSDP2's ``fully_shard`` and
``torch.distributed.checkpoint`` (DCP), launched by ``torchrun``. This module only connects them to the
model classes:

- :func:`fully_shard_model` shards every block the family lists in ``_no_split_modules``, then the root;
- :func:`full_state_dict` and :func:`save_pretrained` gather a sharded (or DDP) model's weights and write
  the same ``save_pretrained`` folder a single process writes;
- :func:`load_sharded` builds the model with its parameters on the meta device, shards it, and each rank
  reads only its own rows of the checkpoint's safetensors files: no rank ever holds a full copy.

Every function that talks to other ranks is collective: call it on every rank. See ``docs/training.md``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import torch
from torch import nn

from plugformers.configuration_utils import PretrainedConfig
from plugformers.modeling_utils import (
    PreTrainedModel,
    WeightsLoadingError,
    _default_float_dtype,
    _find_weights,
    _own_class,
    _parse_dtype,
    _record_dtype,
    no_init_weights,
)
from plugformers.utils.hub import HubOptions

__all__ = [
    "fsdp_blocks",
    "full_state_dict",
    "fully_shard_model",
    "load_sharded",
    "parameters_on_meta",
    "save_pretrained",
    "unwrap_model",
]

M = TypeVar("M", bound=nn.Module)


def unwrap_model(model: nn.Module) -> PreTrainedModel:
    """The :class:`PreTrainedModel` inside ``DistributedDataParallel`` and ``torch.compile`` wrappers."""
    inner: nn.Module = model
    while not isinstance(inner, PreTrainedModel):
        nxt = getattr(inner, "module", None) or getattr(inner, "_orig_mod", None)
        if not isinstance(nxt, nn.Module):
            raise TypeError(f"{type(model).__name__} does not wrap a plugformers PreTrainedModel.")
        inner = nxt
    return inner


# ----- FSDP2 ------------------------------------------------------------------------------------------


def fsdp_blocks(model: PreTrainedModel) -> list[nn.Module]:
    """The submodules to shard one by one: those whose class the family names in ``_no_split_modules``.

    Inner blocks come before the blocks holding them, the order ``fully_shard`` needs. Raises
    ``ValueError`` when the family lists none or none of them is in this model.
    """
    names = set(getattr(model, "_no_split_modules", None) or ())
    if not names:
        raise ValueError(
            f"{type(model).__name__} lists no _no_split_modules, so there is no block to shard by; "
            "shard the whole model with torch.distributed.fsdp.fully_shard(model) instead."
        )
    blocks = [m for m in model.modules() if m is not model and _own_class(m).__name__ in names]
    if not blocks:
        raise ValueError(f"{type(model).__name__} holds none of its _no_split_modules {sorted(names)}.")
    return blocks[::-1]


def _check_ties(model: nn.Module, blocks: list[nn.Module]) -> None:
    """Refuse a parameter shared between two FSDP units (a tie across blocks cannot be sharded twice)."""
    unit_of: dict[str, str] = {}
    for module_name, module in model.named_modules():
        if any(module is b for b in blocks):
            unit_of[module_name] = module_name
    units: dict[int, dict[str, str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owner = max((u for u in unit_of if name.startswith(u + ".")), key=len, default="<root>")
        units.setdefault(id(param), {})[owner] = name
    for found in units.values():
        if len(found) > 1:
            raise ValueError(
                f"Parameters {sorted(found.values())} are one tensor but fall in different FSDP blocks "
                f"{sorted(found)}; shard the blocks that share it together."
            )


def fully_shard_model(model: M, **fsdp_kwargs: Any) -> M:
    """Apply ``torch.distributed.fsdp.fully_shard`` to every listed block, then to the root; returns ``model``.

    ``fsdp_kwargs`` (``mesh``, ``reshard_after_forward``, ``mp_policy``, ``offload_policy``, ...) go to every
    ``fully_shard`` call. Tied parameters (a decoder tied to the word embeddings) stay one
    parameter: both live in the root unit. Buffers are not sharded; they move to the mesh's device.
    Needs an initialised process group (``torch.distributed.init_process_group``).
    """
    from torch.distributed.fsdp import fully_shard

    pretrained = unwrap_model(model)
    if pretrained is not model:
        raise TypeError("fully_shard_model takes the bare model, not a DDP or torch.compile wrapper.")
    if not torch.distributed.is_initialized():
        raise RuntimeError("fully_shard_model needs torch.distributed.init_process_group() first (run under torchrun).")
    blocks = fsdp_blocks(pretrained)
    _check_ties(model, blocks)
    for block in blocks:
        fully_shard(block, **fsdp_kwargs)
    fully_shard(model, **fsdp_kwargs)
    return model


# ----- saving -----------------------------------------------------------------------------------------


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights as CPU tensors on rank 0 (``{}`` elsewhere); collective.

    Gathers FSDP shards with ``get_model_state_dict(full_state_dict=True, cpu_offload=True)``; DDP and
    ``torch.compile`` wrappers are seen through. Tied weights appear once, under the name a single
    process's ``save_pretrained`` keeps.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    inner = unwrap_model(model)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed:
        state = {k: v.detach().cpu() for k, v in inner.state_dict().items()}
    else:
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(inner, options=options)
    aliases = inner._tied_parameter_names()
    return {k: v for k, v in state.items() if k not in aliases}


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike[str], **kwargs: Any) -> None:
    """Write the ``save_pretrained`` folder of a sharded or replicated model from rank 0; collective.

    The folder equals what a single process holding the same weights writes (``max_shard_size`` and the
    other ``PreTrainedModel.save_pretrained`` keywords apply). Every rank returns once it is written.
    """
    state = full_state_dict(model)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    main = not distributed or torch.distributed.get_rank() == 0
    error: BaseException | None = None
    if main:
        try:
            unwrap_model(model).save_pretrained(save_directory, state_dict=state, **kwargs)
        except BaseException as exc:  # the other ranks wait in the broadcast below: tell them, then raise
            error = exc
    if distributed:
        failed = [error is not None]
        torch.distributed.broadcast_object_list(failed, src=0)
        if failed[0] and error is None:
            raise RuntimeError(f"save_pretrained failed on rank 0 while writing {os.fspath(save_directory)!r}.")
    if error is not None:
        raise error


# ----- loading straight into a sharded model ------------------------------------------------------------

_meta_lock = threading.RLock()  # re-entrant: a model may build a sub-model inside


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Build modules with their parameters on the meta device and their buffers real.

    Parameters take no memory and are filled later (each rank its own shard); buffers such as position
    ids or sinusoidal tables, which no checkpoint holds, are computed by the module as usual. Applies to
    modules built in any thread while the block runs.
    """
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            kind = type(param)
            module._parameters[name] = kind(param.to("meta"), requires_grad=param.requires_grad)

    with _meta_lock:
        nn.Module.register_parameter = register_on_meta  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            nn.Module.register_parameter = register  # type: ignore[method-assign,assignment]


def load_sharded(
    model_class: Any,
    pretrained_model_name_or_path: str | os.PathLike[str],
    *,
    dtype: str | torch.dtype | None = None,
    ignore_mismatched_sizes: bool = False,
    output_loading_info: bool = False,
    fsdp_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Load a checkpoint into a model sharded with :func:`fully_shard_model`, each rank reading its shard only.

    ``model_class`` is a model class or an ``AutoModel...`` class. The model is built with its parameters on
    the meta device, sharded, given empty local shards, and each rank reads its own rows of every weight
    from the safetensors files straight into them: peak memory per rank is about one shard, not one model,
    and no rank waits for another. The rest is ``from_pretrained``'s loading: keys matched the same way
    (a base model's checkpoint loads into a head and back), weights the checkpoint lacks (a new head) get
    the family's initialisation, ties and buffers are restored, the same warnings and
    ``output_loading_info``. ``dtype``, config overrides and hub keywords work as there; ``fsdp_kwargs`` go
    to ``fully_shard``. Collective. Returns the model in eval mode, like ``from_pretrained``.
    """
    if not torch.distributed.is_initialized():
        raise RuntimeError("load_sharded needs torch.distributed.init_process_group() first (run under torchrun).")
    source = os.fspath(pretrained_model_name_or_path)
    hub = HubOptions.pop_from(kwargs)
    try:
        files, _ = _find_weights(source, hub, use_safetensors=True)
    except WeightsLoadingError as exc:
        raise WeightsLoadingError(f"load_sharded reads safetensors weights only: {exc}") from exc
    concrete = isinstance(model_class, type) and issubclass(model_class, PreTrainedModel)
    if concrete:
        config_class: Any = model_class.config_class
    else:
        from plugformers.auto import AutoConfig

        config_class = AutoConfig
    config, model_kwargs = config_class.from_pretrained(source, return_unused_kwargs=True, **hub.as_kwargs(), **kwargs)
    config.name_or_path = source
    cls = model_class if concrete else _model_class_for(model_class, config)
    target_dtype = _parse_dtype(dtype, config, files)
    with no_init_weights(), parameters_on_meta(), _default_float_dtype(target_dtype):
        model = cls(config, **model_kwargs)
    fully_shard_model(model, **(fsdp_kwargs or {}))
    device = _materialise_shards(model)

    expected = dict(model.state_dict(keep_vars=True))
    prefix = model.base_model_prefix
    has_prefix_module = bool(prefix) and hasattr(model, prefix)
    entries = []
    for reader in (_SafetensorsReader(f) for f in files):
        for key in reader.entries:
            name = model._match_key(cls._fix_checkpoint_key(key), expected, prefix, has_prefix_module)
            target = expected.get(name) if name is not None else None
            entries.append((key, functools.partial(reader.read_local, key, target)))
    where = files[0] if len(files) == 1 else os.path.dirname(files[0])
    info = model._load_weights(entries, where, device, target_dtype, ignore_mismatched_sizes)
    if target_dtype is not None:
        _record_dtype(config, target_dtype)
    model.eval()
    return (model, info) if output_loading_info else model


def _model_class_for(auto_class: Any, config: PretrainedConfig) -> type[PreTrainedModel]:
    resolve = getattr(auto_class, "_model_class_for", None)
    if resolve is None:
        raise TypeError(f"load_sharded takes a PreTrainedModel subclass or an AutoModel class, got {auto_class!r}.")
    found: type[PreTrainedModel] = resolve(config)
    return found


def _materialise_shards(model: nn.Module) -> torch.device:
    """Give the meta-device shards real (uninitialised) memory on the mesh's device; keep the built buffers."""
    from torch.distributed.tensor import DTensor

    mesh = next(p.device_mesh for p in model.parameters() if isinstance(p, DTensor))
    if mesh.device_type == "cpu":
        device = torch.device("cpu")
    else:
        device = torch.device(mesh.device_type, torch.get_device_module(mesh.device_type).current_device())
    buffers = dict(model.named_buffers())
    model.to_empty(device=device)
    for name, buf in buffers.items():
        owner, _, attr = name.rpartition(".")
        model.get_submodule(owner)._buffers[attr] = buf.to(device)
    return device


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class _SafetensorsReader:
    """Reads the part of a tensor one rank holds straight from a safetensors file, with plain reads.

    Not through a memory map: mapped pages a rank touches count in its resident memory, so reading half of
    every weight through a map shows as a second copy of that half. A shard along the first dimension is
    one run of bytes in the file and is read straight into the rank's local tensor.
    """

    def __init__(self, path: str) -> None:
        import json
        import struct

        self.path = path
        try:
            with open(path, "rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(size))
        except (OSError, ValueError, struct.error) as exc:
            raise WeightsLoadingError(f"{path!r} is not a valid safetensors file: {exc}") from exc
        header.pop("__metadata__", None)
        self.data_start = 8 + size
        self.entries: dict[str, dict[str, Any]] = header

    def read_local(self, key: str, target: torch.Tensor | None) -> torch.Tensor:
        """Fill ``target``'s local part (its own shard for a DTensor, all of it otherwise) from ``key``; return it.

        A target of another shape is left alone: a meta tensor of the checkpoint's shape comes back, which
        the loader reports as a size mismatch.
        """
        from torch.distributed.tensor import DTensor

        entry = self.entries[key]
        dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
        shape = list(entry["shape"])
        if target is None or list(target.shape) != shape:
            return torch.empty(shape, dtype=dtype or torch.float32, device="meta")
        if isinstance(target, DTensor):
            local = target.to_local()
            (chunk,) = target.__create_chunk_list__()
            offsets, sizes = list(chunk.offsets), list(chunk.sizes)
        else:
            local, offsets, sizes = target, [0] * len(shape), shape
        if local.numel() == 0:
            return target
        rows_only = offsets[1:] == [0] * (len(shape) - 1) and sizes[1:] == shape[1:]
        if dtype is None or not rows_only:
            self._read_slice(key, offsets, sizes, local)
            return target
        row_bytes = dtype.itemsize * math.prod(shape[1:])
        begin = self.data_start + entry["data_offsets"][0] + (offsets[0] * row_bytes if shape else 0)
        direct = local.device.type == "cpu" and local.dtype == dtype and local.is_contiguous()
        buffer = local if direct else torch.empty(local.shape, dtype=dtype)
        view = memoryview(buffer.detach().reshape(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]
        with open(self.path, "rb", buffering=0) as fh:
            fh.seek(begin)
            done = 0
            while done < view.nbytes:
                n = fh.readinto(view[done:])
                if not n:
                    raise WeightsLoadingError(f"{self.path!r}: tensor {key!r} is cut short (file truncated?).")
                done += n
        if not direct:
            with torch.no_grad():
                local.copy_(buffer)
        return target

    def _read_slice(self, key: str, offsets: list[int], sizes: list[int], local: torch.Tensor) -> None:
        from safetensors import safe_open

        with safe_open(self.path, framework="pt") as f:
            part = f.get_slice(key)[tuple(slice(o, o + n) for o, n in zip(offsets, sizes))]
        with torch.no_grad():
            local.copy_(part)
