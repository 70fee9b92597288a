"""The opt-in inference fast path that the model families share.

Imported by the modeling modules only (it imports torch), never by ``import plugformers``.

:meth:`~plugformers.modeling_utils.PreTrainedModel.enable_fast_path` is a pass over the module tree, in the
spirit of timm's ``reparameterize_model``: every module that declares a ``fast_path_plan`` (a tuple of the steps
below, a class attribute) has the children it names turned into their fast forms, and
:meth:`~plugformers.modeling_utils.PreTrainedModel.disable_fast_path` turns them back. The modules' ``forward``
stays plain PyTorch. The steps:

- :class:`PackLinear` turns an ``nn.Linear`` into a :class:`FastLinear`, with the activation that follows it
  fused into the matmul when it is an exact GELU or a ReLU;
- :class:`FoldBatchNorm` turns an ``nn.Conv2d`` and the ``nn.BatchNorm2d`` after it into a :class:`FoldedConv2d`
  that does both and a :class:`FoldedBatchNorm2d` that passes its input on;
- :class:`FuseQKV` makes a :class:`~plugformers.modeling_layers.MultiHeadAttention` compute q, k and v as one matmul
  and packs its output projection.

A fast form is the same module object with another class (a subclass of the plain one), so it keeps its
parameters, buffers and hooks: the state dict and the saved files do not change.

Fast modules read *derived* copies of their weights: the q|k|v weights concatenated, and on x86 CPUs with AVX-512
in float32 oneDNN's pre-packed (blocked) layout, which its linear kernel reads faster than a plain matrix and which
can carry a fused GELU or ReLU (see :func:`onednn_preferred`); for convolutions, the weight with the batch norm's
inference-time scale folded in, in channels-last layout (oneDNN's and cuDNN's preferred one), and the norm's shift
as a bias. The copies are rebuilt whenever a source weight changes (a training step, ``load_state_dict``,
``.to()``), are never part of the state dict, and are skipped whenever a gradient is needed, under autocast, while
the model is being compiled or traced, and for weights made under ``torch.inference_mode()`` (which have no version
counter to watch): the module then computes the plain way, so the fast path never returns stale numbers. Results
agree with the plain path to float32 rounding.

The engine underneath is also usable on its own: :func:`linear`, :func:`fused_linear` and :func:`conv_bn` take
the module that owns the derived weights (turned on with :func:`enable`) and the layers to run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from plugformers.utils.env import env_switch

__all__ = [
    "FUSABLE_ACTIVATIONS", "FastLinear", "FastPathStep", "FoldBatchNorm", "FoldedBatchNorm2d", "FoldedConv2d", "FuseQKV",
    "PackLinear", "apply_plans", "conv_bn", "covered_layers", "disable", "enable", "fused_linear", "is_enabled", "linear",
    "onednn_available", "onednn_preferred", "remove_plans", "reset",
]

# Activations that the fast path applies inside the matmul kernel (exact GELU, not the tanh approximation).
FUSABLE_ACTIVATIONS = frozenset({"gelu", "relu"})

_STATE = "_plugformers_fast_path"
ONEDNN_ENV = "PLUGFORMERS_FAST_PATH_ONEDNN"


class _State:
    """A module's derived weights, keyed by the layers they come from. Copies and pickles start empty."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[tuple[int, ...], _Entry] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> _State:
        return _State()  # oneDNN's packed tensors cannot be copied; the copy rebuilds its own on first use

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_State, ())


class _Entry:
    __slots__ = ("bias", "packed", "signature", "weight")

    def __init__(self, signature: tuple[Any, ...], weight: Any, bias: Any, packed: Any) -> None:
        self.signature, self.weight, self.bias, self.packed = signature, weight, bias, packed


def enable(module: nn.Module) -> None:
    """Turn the fast path on for one module (its derived weights are built on first use)."""
    if _STATE not in module.__dict__:
        module.__dict__[_STATE] = _State()


def disable(module: nn.Module) -> None:
    """Turn it off and free the derived weights."""
    module.__dict__.pop(_STATE, None)


def is_enabled(module: nn.Module) -> bool:
    return module.__dict__.get(_STATE) is not None


def reset(module: nn.Module) -> None:
    """Forget the derived weights (for modules that replace their layers, e.g. when pruning heads)."""
    state = module.__dict__.get(_STATE)
    if state is not None:
        state.entries.clear()


@functools.lru_cache(maxsize=1)
def onednn_available() -> bool:
    """Whether this torch build has oneDNN's pre-packed linear kernel (x86 CPU builds do)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        packed = torch.ops.mkldnn._reorder_linear_weight(torch.ones(3, 4), None)
        torch.ops.mkldnn._linear_pointwise(torch.ones(2, 4), packed, torch.zeros(3), "gelu", [], "none")
    except (AttributeError, RuntimeError):
        return False
    return True


def _cpu_has_avx512() -> bool:
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    return capability.startswith("AVX512") or "AMX" in capability


def onednn_preferred() -> bool:
    """Whether float32 CPU matmuls on the fast path read oneDNN-packed weights (else plain ones, q|k|v still fused).

    Only where that pays off. On an AVX2-only x86 CPU (2026-12-01, one thread) oneDNN's packed kernel took
    1.00-1.11x the time of torch's ``addmm`` at DistilBERT, ViT and Wav2Vec2 shapes and its fused GELU 1.26-1.62x
    the time of ``addmm`` then ``gelu``, which made ``enable_fast_path()`` 13-27% slower than the plain model; on
    the machine of the earlier benchmark runs (its instruction set was not recorded) it took 0.72-1.00x. So by
    default oneDNN is used where torch reports AVX-512 or AMX. ``PLUGFORMERS_FAST_PATH_ONEDNN=1`` or ``0``
    overrides that; it is read whenever derived weights are built.
    """
    setting = env_switch(ONEDNN_ENV)
    wanted = _cpu_has_avx512() if setting is None else setting
    return wanted and onednn_available()


def linear(owner: nn.Module, x: torch.Tensor, layer: nn.Linear, activation: str | None = None) -> torch.Tensor:
    """``activation(layer(x))``, through the fast path when ``owner`` has it on and it applies.

    ``activation`` is None or one of :data:`FUSABLE_ACTIVATIONS`; other activations are the caller's to apply.
    """
    out = _fast(owner, x, (layer,), activation)
    if out is not None:
        return out
    return _activate(layer(x), activation)


def _activate(out: torch.Tensor, activation: str | None) -> torch.Tensor:
    if activation == "gelu":
        return nn.functional.gelu(out)
    return torch.relu(out) if activation == "relu" else out


def fused_linear(owner: nn.Module, x: torch.Tensor, *layers: nn.Linear) -> torch.Tensor | None:
    """The outputs of ``layers`` on the same ``x``, concatenated on the last axis, as one matmul.

    Returns None when the fast path is off or does not apply, so that the caller runs its plain code.
    """
    return _fast(owner, x, layers, None)


def conv_bn(
    owner: nn.Module,
    x: torch.Tensor,
    conv: nn.Conv2d,
    norm: nn.BatchNorm2d | None = None,
    activation: nn.Module | None = None,
) -> torch.Tensor:
    """``activation(norm(conv(x)))``; through the fast path when ``owner`` has it on and it applies.

    The fast path runs one convolution with ``norm``'s running statistics and affine parameters folded into the
    weight and bias, on channels-last tensors, and returns a channels-last result (same values and shape; call
    ``.contiguous()`` before ``.view()``). A norm in training mode uses batch statistics, so it is never folded.
    """
    out = _fast_conv(owner, x, conv, norm)
    if out is None:
        out = conv(x)
        if norm is not None:
            out = norm(out)
    return activation(out) if activation is not None else out


def _usable_state(owner: nn.Module, x: torch.Tensor, params: list[torch.Tensor]) -> _State | None:
    """The module's state when the fast path may run on ``x``, else None."""
    state = owner.__dict__.get(_STATE)
    if state is None or torch.compiler.is_compiling() or torch.is_autocast_enabled(x.device.type):
        return None  # off, or compiling (the compiler fuses by itself), or autocast (it picks the matmul dtype)
    if torch.jit.is_tracing():
        return None  # a trace would keep today's derived weights as constants, stale after the next update
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return None  # gradients must reach the real weights
    if any(p.is_inference() for p in params):
        return None  # inference tensors have no version counter, so a changed weight could not be noticed
    return state


def _fast(owner: nn.Module, x: torch.Tensor, layers: tuple[nn.Linear, ...], activation: str | None) -> Any:
    if activation is not None and activation not in FUSABLE_ACTIVATIONS:
        raise ValueError(f"The fast path fuses only {sorted(FUSABLE_ACTIVATIONS)}, not {activation!r}.")
    if not all(type(layer) in (nn.Linear, FastLinear) for layer in layers):
        # Replaced or parametrized (a LoRA adapter, quantisation): its own forward must run, except that int8
        # layers from to_inference(quantize="int8") that read the same input still make one matmul.
        return _fast_int8(owner, x, layers, activation)
    params = _params(layers)
    state = _usable_state(owner, x, params)
    if state is None:
        return None
    entry = _entry(state, tuple(id(layer) for layer in layers), params, lambda: _build_linear(layers))
    if entry.packed is not None:
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return None  # e.g. bfloat16 activations with float32 weights: left to the plain path
        attr, algorithm = (activation, "none" if activation == "gelu" else "") if activation else ("none", "")
        return torch.ops.mkldnn._linear_pointwise(x, entry.packed, entry.bias, attr, [], algorithm)
    return _activate(torch.nn.functional.linear(x, entry.weight, entry.bias), activation)


def _fast_int8(owner: nn.Module, x: torch.Tensor, layers: tuple[Any, ...], activation: str | None) -> Any:
    """Int8 layers (``to_inference(quantize="int8")``): one int8 matmul for several layers; None for other layers."""
    from plugformers.cpu_kernels import Int8Linear, fuse_int8

    state = owner.__dict__.get(_STATE)
    if state is None or torch.compiler.is_compiling() or not all(isinstance(layer, Int8Linear) for layer in layers):
        return None
    if len(layers) == 1:
        return layers[0](x, activation)
    key = tuple(id(layer) for layer in layers)
    signature = tuple(id(layer.kernel) for layer in layers)
    entry = state.entries.get(key)
    if entry is None or entry.signature != signature:
        entry = state.entries[key] = _Entry(signature, None, None, fuse_int8(layers))
    return entry.packed(x, activation)


def _fast_conv(owner: nn.Module, x: torch.Tensor, conv: nn.Conv2d, norm: nn.BatchNorm2d | None) -> Any:
    if type(conv) not in (nn.Conv2d, FoldedConv2d):
        return None  # replaced or parametrized (a LoRA adapter, quantisation): its own forward must run
    if conv.padding_mode != "zeros" or x.dim() != 4 or isinstance(conv.padding, str):
        return None
    if norm is not None and (norm.training or norm.running_mean is None or norm.running_var is None):
        return None  # batch statistics, not foldable
    params = [p for p in (conv.weight, conv.bias) if p is not None]
    if norm is not None:
        params += [t for t in (norm.weight, norm.bias, norm.running_mean, norm.running_var) if t is not None]
    state = _usable_state(owner, x, params)
    if state is None or x.dtype != conv.weight.dtype:
        return None
    entry = _entry(state, (id(conv), id(norm)), params, lambda: _build_conv(conv, norm))
    x = x.contiguous(memory_format=torch.channels_last)
    return torch.nn.functional.conv2d(x, entry.weight, entry.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _params(layers: tuple[nn.Linear, ...]) -> list[torch.Tensor]:
    return [p for layer in layers for p in (layer.weight, layer.bias) if p is not None]


def _entry(state: _State, key: tuple[int, ...], sources: list[torch.Tensor], build: Any) -> _Entry:
    """The derived weights under ``key``, rebuilt by ``build()`` when any of ``sources`` changed since."""
    first = sources[0]
    signature = (first.device, first.dtype, *((t._version, t.data_ptr()) for t in sources))
    entry = state.entries.get(key)
    if entry is None or entry.signature != signature:
        with torch.no_grad():
            weight, bias, packed = build()
        entry = state.entries[key] = _Entry(signature, weight, bias, packed)
    return entry


def _build_linear(layers: tuple[nn.Linear, ...]) -> tuple[Any, Any, Any]:
    """q|k|v-style concatenated weight and bias; where oneDNN is preferred, only its packed weight is kept."""
    first = layers[0].weight
    weight: torch.Tensor = first if len(layers) == 1 else torch.cat([layer.weight for layer in layers], dim=0)
    biases = [layer.bias for layer in layers]
    bias: torch.Tensor | None = None
    if len(layers) == 1:
        bias = biases[0]
    elif any(b is not None for b in biases):
        bias = torch.cat([b if b is not None else layer.weight.new_zeros(layer.out_features)
                          for b, layer in zip(biases, layers)])
    bias = bias.detach() if bias is not None else None
    if first.device.type == "cpu" and first.dtype == torch.float32 and onednn_preferred():
        # On CPU only the packed copy is read: do not keep a second plain one.
        return None, bias, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
    return weight.detach(), bias, None


def _build_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d | None) -> tuple[Any, Any, Any]:
    """The convolution with ``norm`` folded in: w * s and (b - mean) * s + shift, s = gamma / sqrt(var + eps)."""
    weight, bias = conv.weight.detach(), conv.bias.detach() if conv.bias is not None else None
    if norm is not None:
        assert norm.running_mean is not None and norm.running_var is not None
        dtype = torch.promote_types(weight.dtype, torch.float32)  # fold half-precision weights in float32
        scale = torch.rsqrt(norm.running_var.to(dtype) + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.to(dtype)
        shift = -norm.running_mean.to(dtype) * scale
        if bias is not None:
            shift = shift + bias.to(dtype) * scale
        if norm.bias is not None:
            shift = shift + norm.bias.to(dtype)
        weight = (weight.to(dtype) * scale[:, None, None, None]).to(weight.dtype)
        bias = shift.to(weight.dtype)
    return weight.contiguous(memory_format=torch.channels_last), bias, None


# ----- the pass over the module tree: fast forms of modules, and the steps that make them ------------------------


def _become(module: nn.Module, cls: type[nn.Module]) -> None:
    """Give ``module`` the class ``cls`` (a subclass of its own), remembering the plain one."""
    module.__dict__.setdefault("_plain_class", type(module))
    module.__class__ = cls


def _unbecome(module: nn.Module) -> None:
    plain = module.__dict__.pop("_plain_class", None)
    if plain is not None:
        module.__class__ = plain


class FastLinear(nn.Linear):
    """An ``nn.Linear`` on the fast path: reads derived (possibly oneDNN-packed) weights, and applies
    ``fused_activation`` (``"gelu"``, ``"relu"`` or None) inside the matmul; plain math where the fast path steps aside.
    """

    fused_activation: str | None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        out = _fast(self, input, (self,), self.fused_activation)
        if out is not None:
            return out
        return _activate(super().forward(input), self.fused_activation)


class FusedActivation(nn.Module):
    """Stands in for an activation that a :class:`FastLinear` before it applies; passes its input on."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return input


class FoldedBatchNorm2d(nn.BatchNorm2d):
    """A batch norm whose work the :class:`FoldedConv2d` before it does; passes its input on (same buffers)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return input


class FoldedConv2d(nn.Conv2d):
    """A convolution with the batch norm after it (``folded_norm``) folded into its weight and bias, on
    channels-last tensors; where folding does not apply (batch statistics, gradients, ...) it runs the convolution
    and then the norm's own math."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        norm: nn.BatchNorm2d = self.__dict__["folded_norm"]
        out = _fast_conv(self, input, self, norm)
        if out is not None:
            return out
        return nn.BatchNorm2d.forward(norm, super().forward(input))


class FastPathStep:
    """One step of a module's ``fast_path_plan``: what :meth:`apply` turns into its fast form, :meth:`undo` back."""

    def apply(self, module: nn.Module) -> None:
        raise NotImplementedError

    def undo(self, module: nn.Module) -> None:
        raise NotImplementedError


# Activations the fast path can apply inside a matmul, by the module that computes them in the plain model.
def _fusable_activation(module: nn.Module | None) -> str | None:
    if type(module) is nn.GELU and module.approximate == "none":
        return "gelu"
    return "relu" if type(module) is nn.ReLU else None


@dataclass(frozen=True)
class PackLinear(FastPathStep):
    """The ``nn.Linear`` child named ``layer`` becomes a :class:`FastLinear`; the child named ``activation``, when it
    is applied right after that layer and is an exact GELU or a ReLU, moves into its matmul."""

    layer: str
    activation: str | None = None

    def apply(self, module: nn.Module) -> None:
        linear = module.get_submodule(self.layer)
        if type(linear) is not nn.Linear:
            return  # already fast, or a layer of another kind (e.g. an adapter's): left as it is
        act = module.get_submodule(self.activation) if self.activation is not None else None
        fused = _fusable_activation(act)
        linear.__dict__["fused_activation"] = fused
        _become(linear, FastLinear)
        enable(linear)
        if fused is not None:
            assert act is not None
            _become(act, FusedActivation)

    def undo(self, module: nn.Module) -> None:
        linear = module.get_submodule(self.layer)
        if isinstance(linear, FastLinear):
            disable(linear)
            _unbecome(linear)
            del linear.fused_activation
        if self.activation is not None:
            _unbecome(module.get_submodule(self.activation))


@dataclass(frozen=True)
class FoldBatchNorm(FastPathStep):
    """The ``nn.Conv2d`` child ``conv`` and the ``nn.BatchNorm2d`` child ``norm`` applied right after it become a
    :class:`FoldedConv2d` and a :class:`FoldedBatchNorm2d`."""

    conv: str
    norm: str

    def apply(self, module: nn.Module) -> None:
        conv, norm = module.get_submodule(self.conv), module.get_submodule(self.norm)
        if type(conv) is not nn.Conv2d or type(norm) is not nn.BatchNorm2d:
            return
        conv.__dict__["folded_norm"] = norm  # not a child: the norm stays where the checkpoint has it
        _become(conv, FoldedConv2d)
        _become(norm, FoldedBatchNorm2d)
        enable(conv)

    def undo(self, module: nn.Module) -> None:
        conv = module.get_submodule(self.conv)
        if isinstance(conv, FoldedConv2d):
            disable(conv)
            del conv.__dict__["folded_norm"]
            _unbecome(conv)
        _unbecome(module.get_submodule(self.norm))


def _fused_project_qkv(
    module: Any,
    hidden_states: torch.Tensor,
    query_states: torch.Tensor | None = None,
    key_states: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What :class:`FuseQKV` puts in place of ``MultiHeadAttention.project_qkv``: one matmul for self-attention."""
    if query_states is None and key_states is None:
        layers = (module.projection("query"), module.projection("key"), module.projection("value"))
        qkv = _fast(module, hidden_states, layers, None)
        if qkv is not None:
            batch, length, _ = hidden_states.shape
            # (batch, length, 3 * heads * head_dim) -> 3 x (batch, heads, length, head_dim)
            q, k, v = qkv.view(batch, length, 3, module.num_heads, module.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            return q, k, v
        # int8 query and key with a float32 value (what to_inference(quantize="int8") leaves): q|k in one matmul.
        qk = _fast_int8(module, hidden_states, layers[:2], None)
        if qk is not None:
            batch, length, _ = hidden_states.shape
            q, k = qk.view(batch, length, 2, module.num_heads, module.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            value = _fast(module, hidden_states, layers[2:], None)
            return q, k, module._heads(layers[2](hidden_states) if value is None else value)
    return type(module).project_qkv(module, hidden_states, query_states, key_states)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class FuseQKV(FastPathStep):
    """A :class:`~plugformers.modeling_layers.MultiHeadAttention` computes q, k and v of self-attention as one
    matmul over the concatenated weights, and its output projection (where it owns one) becomes a :class:`FastLinear`."""

    def apply(self, module: nn.Module) -> None:
        attention: Any = module
        if "project_qkv" not in module.__dict__:
            enable(module)
            module.__dict__["project_qkv"] = functools.partial(_fused_project_qkv, module)
        if "output" in attention.projections:
            PackLinear(attention.projections["output"]).apply(module)

    def undo(self, module: nn.Module) -> None:
        attention: Any = module
        if module.__dict__.pop("project_qkv", None) is not None:
            disable(module)
        if "output" in attention.projections:
            PackLinear(attention.projections["output"]).undo(module)


class FastPathModule(Protocol):
    """What a module declares to take part: the steps that give it its fast form."""

    fast_path_plan: ClassVar[tuple[FastPathStep, ...]]


def _plan(module: nn.Module) -> tuple[FastPathStep, ...]:
    return getattr(type(module), "fast_path_plan", ())


def apply_plans(model: nn.Module) -> int:
    """Give every module under ``model`` that declares a ``fast_path_plan`` its fast form; returns how many did."""
    owners = [module for module in model.modules() if _plan(module)]
    for module in owners:
        for step in _plan(module):
            step.apply(module)
    return len(owners)


def remove_plans(model: nn.Module) -> None:
    """Turn every fast form under ``model`` back into the plain module, freeing the derived weights."""
    for module in list(model.modules()):
        for step in _plan(module):
            step.undo(module)


def covered_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every linear or convolution layer under ``model`` that now runs in its fast form."""
    covered: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if isinstance(module, (FastLinear, FoldedConv2d)):
            covered.append((name, module))
        elif "project_qkv" in module.__dict__:  # FuseQKV
            attention: Any = module
            covered += [(f"{name}.{attention.projections[r]}", attention.projection(r)) for r in ("query", "key", "value")]
    return covered


def refresh(module: nn.Module) -> None:
    """After ``module`` replaced layers (e.g. pruned heads): drop stale derived weights, give new layers their fast form."""
    if is_enabled(module) or any(is_enabled(child) for child in module.children()):
        reset(module)
        for step in _plan(module):
            step.apply(module)
