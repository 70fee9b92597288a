"""The conformance checks, as plain functions over one registered model class (no pytest needed to import).

A :class:`Case` is one model class of one registered family; it builds the family's ``tiny_config`` and
its ``example_inputs`` from the registration alone. :data:`CHECKS` maps every name of
:data:`plugformers.vocabulary.CONFORMANCE_CHECKS` to the function that runs it: ``check(case, folder)``
raises ``AssertionError`` on a failure and :class:`CheckSkipped` where the check does not apply.
:mod:`plugformers.testing.conformance` runs them under pytest, one test per class and check.
"""

from __future__ import annotations

import inspect
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugformers.plugins import FamilySpec, PluginError, _ref_name, import_object
from plugformers.vocabulary import CONFORMANCE_CHECKS, SAFE_WEIGHTS_NAME

if TYPE_CHECKING:
    import torch

__all__ = [
    "CAPABILITIES",
    "CHECKS",
    "MARKS_ATTRIBUTE",
    "Case",
    "CheckSkipped",
    "assert_close_outputs",
    "output_tensors",
]

#: The checks a model class runs only where it declares the capability (a class attribute of that name).
CAPABILITIES: dict[str, str] = {
    "gradient_checkpointing": "supports_gradient_checkpointing",
    "compile": "supports_compile_fullgraph",
    "export": "supports_export",
}

#: ``torch.compile`` backend of the compile check: "eager" proves the full-graph capture and is quick;
#: set ``PLUGFORMERS_COMPILE_BACKEND=inductor`` to generate and run kernels too.
COMPILE_BACKEND_ENV = "PLUGFORMERS_COMPILE_BACKEND"


#: Function attribute naming pytest markers that :mod:`plugformers.testing.conformance` applies to a test
#: (the pytest-free mixins cannot mark their tests themselves; see ``model_tests.needs_gpu``).
MARKS_ATTRIBUTE = "plugformers_marks"


class CheckSkipped(Exception):
    """The check does not apply to this class; the message says why."""


def output_tensors(output: Any) -> list[torch.Tensor]:
    """Flatten a model output (ModelOutput, dict, tuple, nested tuples) into its tensors, in order."""
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in output_tensors(item)]
    return []


def assert_close_outputs(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Every tensor of output ``a`` equals the matching tensor of ``b`` within the tolerance."""
    import torch

    ta, tb = output_tensors(a), output_tensors(b)
    assert len(ta) == len(tb), f"different number of output tensors: {len(ta)} vs {len(tb)}"
    for i, (x, y) in enumerate(zip(ta, tb)):
        assert x.shape == y.shape, f"output {i}: shape {tuple(x.shape)} vs {tuple(y.shape)}"

        def message(m: str, i: int = i) -> str:
            return f"output {i}: {m}"

        torch.testing.assert_close(x.float(), y.float(), atol=atol, rtol=rtol, msg=message)


def seed_everything(seed: int = 0) -> None:
    """Seed torch, numpy and random: forward passes that draw masks or dropout repeat exactly."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@dataclass
class Case:
    """One registered model class of one family, with everything the checks build from the registration."""

    spec: FamilySpec
    class_name: str
    auto_keys: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.spec.model_type}-{self.class_name}"

    @cached_property
    def model_class(self) -> Any:
        return import_object(self.spec.models[self.auto_keys[0]])

    @cached_property
    def base_class(self) -> Any:
        """The family's bare model (its ``AutoModel``), or None when it registers none."""
        ref = self.spec.models.get("AutoModel")
        return None if ref is None else import_object(ref)

    def config(self, **overrides: Any) -> Any:
        if not self.spec.tiny_config:
            raise PluginError(
                f"model type {self.spec.model_type!r} (plugin {self.spec.plugin!r}) registers no tiny_config: "
                "the conformance suite builds every model from it."
            )
        return self.spec.build_config(tiny=True, **overrides)

    def inputs(self, config: Any, labels: bool = False) -> dict[str, Any]:
        return self.spec.build_example_inputs(config, self.model_class, labels=labels)

    def build(self, model_class: Any = None, **overrides: Any) -> tuple[Any, Any]:
        """``(model in eval mode, its config)``, the weights drawn from a fixed seed."""
        config = self.config(**overrides)
        seed_everything()
        return (model_class or self.model_class)(config).eval(), config

    def skip_reason(self, check: str) -> str | None:
        return self.spec.skips.get(self.class_name, {}).get(check)

    def capability(self, check: str) -> bool | None:
        """The class's declared capability for ``check`` (None: the check needs none)."""
        attr = CAPABILITIES.get(check)
        if attr is None:
            return None
        value = getattr(self.model_class, attr, False)
        if not isinstance(value, bool):
            raise AssertionError(f"{self.class_name}.{attr} must be a class attribute True or False, got {value!r}.")
        return value


def _loss(output: Any) -> Any:
    return output.get("loss") if isinstance(output, dict) else None


def _sum_of_outputs(output: Any) -> Any:
    return sum(t.float().sum() for t in output_tensors(output) if t.is_floating_point())


def _forward_parameters(model: Any) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


# ----- the checks -------------------------------------------------------------------------------------------


def check_forward(case: Case, folder: Path) -> None:
    import torch

    model, config = case.build()
    inputs = case.inputs(config)
    with torch.no_grad():
        first = model(**inputs)
        second = model(**inputs)
    tensors = output_tensors(first)
    assert tensors, f"{case.class_name} returned no tensors"
    for i, t in enumerate(tensors):
        assert not t.is_floating_point() or torch.isfinite(t).all(), f"{case.class_name}: output {i} is not finite"
    assert_close_outputs(first, second, atol=0, rtol=0)


def check_backward(case: Case, folder: Path) -> None:
    import torch

    model, config = case.build()
    model.train()
    inputs = case.inputs(config, labels=True)
    takes_labels = set(inputs) - set(case.inputs(config))
    seed_everything()
    output = model(**inputs)
    loss = _loss(output)
    if takes_labels:
        assert isinstance(loss, torch.Tensor), f"{case.class_name} was given {sorted(takes_labels)} but returned no loss"
        assert loss.ndim == 0 and torch.isfinite(loss), f"{case.class_name}: the loss is {loss}"
    if loss is None:
        loss = _sum_of_outputs(output)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad, f"{case.class_name}: the loss has no gradient"
    loss.backward()
    unreached = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unreached, f"{case.class_name}: no gradient reached {unreached}"


def check_save_load(case: Case, folder: Path) -> None:
    import torch

    import plugformers.auto as auto

    model, config = case.build()
    model.save_pretrained(folder)
    inputs = case.inputs(config)
    with torch.no_grad():
        expected = model(**inputs)
    state = model.state_dict()
    for key in case.auto_keys:
        auto_class = getattr(auto, key)
        built = auto_class.from_config(config)
        assert type(built) is case.model_class, f"{key}.from_config built {type(built).__name__}"
        loaded, info = auto_class.from_pretrained(folder, output_loading_info=True)
        assert type(loaded) is case.model_class, f"{key}.from_pretrained built {type(loaded).__name__}"
        problems = {k: v for k, v in info.items() if k != "error_msgs" and v}
        assert not problems, f"{key}.from_pretrained of its own checkpoint: {problems}"
        for name, value in loaded.state_dict().items():
            assert torch.equal(value, state[name]), f"{key}: {name} changed through save/load"
        with torch.no_grad():
            # 1e-6, not bit equality: a memory-mapped weight may take another BLAS kernel than a fresh one.
            assert_close_outputs(expected, loaded(**inputs), atol=1e-6, rtol=1e-6)


def _fields(output: Any, suffix: str) -> dict[str, Any]:
    return {k: v for k, v in output.items() if k.endswith(suffix)} if isinstance(output, dict) else {}


def check_outputs(case: Case, folder: Path) -> None:
    import torch

    from plugformers.modeling_outputs import ModelOutput

    model, config = case.build()
    inputs = case.inputs(config)
    accepted = _forward_parameters(model)
    missing = {"output_hidden_states", "return_dict"} - accepted
    assert not missing, f"{case.class_name}.forward takes no {sorted(missing)}"
    with torch.no_grad():
        plain = model(**inputs)
        assert isinstance(plain, ModelOutput), f"{case.class_name} returned {type(plain).__name__}, not a ModelOutput"
        assert not any(v is not None for v in _fields(plain, "hidden_states").values()), (
            f"{case.class_name} returned hidden states nobody asked for"
        )
        states = model(**inputs, output_hidden_states=True)
        found = {k: v for k, v in _fields(states, "hidden_states").items() if v is not None}
        assert found, f"{case.class_name}: output_hidden_states=True returned no hidden states"
        for name, value in found.items():
            assert isinstance(value, tuple) and value, f"{case.class_name}: {name} is not a tuple of tensors"
        _check_hidden_state_selection(case, model, inputs, states)
        # Attention weights from the classes that declare an attention backend (a CNN may take the flag).
        if "output_attentions" in accepted and getattr(case.model_class, "_supports_sdpa", False):
            out = model(**inputs, output_attentions=True)
            found = {k: v for k, v in _fields(out, "attentions").items() if v is not None}
            assert found, f"{case.class_name}: output_attentions=True returned no attentions"
            for name, value in found.items():
                for layer, probs in enumerate(value):
                    sums = probs.float().sum(-1)
                    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-4), (
                        f"{case.class_name}: {name}[{layer}] rows do not sum to 1 (not attention probabilities)"
                    )
        as_tuple = model(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple), f"{case.class_name} ignored return_dict=False"
    assert_close_outputs(plain.to_tuple(), as_tuple, atol=0, rtol=0)


def _check_hidden_state_selection(case: Case, model: Any, inputs: dict[str, Any], full: Any) -> None:
    """``output_hidden_states=[0, -1]`` gives the full-length tuple with only the first and last states in it,
    for the hidden-state fields the host records (``recorded_outputs``)."""
    recorded = [k for k in type(model.base_model).recorded_outputs if not k.endswith("attentions")]
    if not recorded:
        return
    picked = model(**inputs, output_hidden_states=[0, -1])
    for name in recorded:
        expected, got = full.get(name), picked.get(name)
        if expected is None:
            continue
        assert isinstance(got, tuple) and len(got) == len(expected), (
            f"{case.class_name}: output_hidden_states=[0, -1] gave {name} of length "
            f"{None if got is None else len(got)}, not {len(expected)}"
        )
        for i, (a, b) in enumerate(zip(expected, got)):
            if i in (0, len(expected) - 1):
                assert b is not None and _equal(a, b), f"{case.class_name}: {name}[{i}] differs when selected"
            else:
                assert b is None, f"{case.class_name}: {name}[{i}] was returned although not selected"


def _equal(a: Any, b: Any) -> bool:
    import torch

    return bool(torch.equal(a, b))


def check_dtypes(case: Case, folder: Path) -> None:
    import torch

    import plugformers.auto as auto

    model, config = case.build()
    model.save_pretrained(folder)
    auto_class = getattr(auto, case.auto_keys[0])
    inputs = case.inputs(config)
    for dtype in (torch.bfloat16, torch.float16):
        loaded = auto_class.from_pretrained(folder, dtype=dtype)
        kept = _kept_in_fp32(loaded, dtype)
        kinds = {p.dtype for n, p in loaded.named_parameters() if p.is_floating_point() and n not in kept}
        assert kinds == {dtype}, f"{case.class_name}: from_pretrained(dtype={dtype}) gave parameters of {kinds}"
        wrong = {n: p.dtype for n, p in loaded.named_parameters() if n in kept and p.dtype != torch.float32}
        assert not wrong, f"{case.class_name}: _keep_in_fp32_modules names them, yet in {dtype} they are {wrong}"
        assert loaded.config.dtype is dtype, f"{case.class_name}: config.dtype is {loaded.config.dtype}"
        if dtype is torch.bfloat16:  # CPUs run bfloat16 everywhere; float16 kernels are patchy there
            cast = {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
            with torch.no_grad():
                out = loaded(**cast)
            for i, t in enumerate(output_tensors(out)):
                assert not t.is_floating_point() or torch.isfinite(t.float()).all(), f"output {i} is not finite"


def _kept_in_fp32(model: Any, dtype: Any) -> set[str]:
    """Names of the parameters ``_keep_in_fp32_modules`` (float16) / ``_keep_in_fp32_modules_strict`` keep in float32."""
    import torch

    patterns = set(model._keep_in_fp32_modules_strict or ())
    if dtype == torch.float16:
        patterns |= set(model._keep_in_fp32_modules or ())
    return {n for n, _ in model.named_parameters() if any(f".{p}." in f".{n}" for p in patterns)}


def _file_keys(folder: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(folder / SAFE_WEIGHTS_NAME), framework="pt") as f:
        return set(f.keys())


def _ignored(model: Any, keys: set[str], attr: str) -> set[str]:
    import re

    patterns = getattr(model, attr, None) or []
    return {k for k in keys if not any(re.search(p, k) for p in patterns)}


def _tied_groups(model: Any) -> dict[str, set[str]]:
    """``{name: every name of the same parameter}`` (weights shared between modules, like tied embeddings)."""
    by_tensor: dict[int, set[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        by_tensor.setdefault(id(param), set()).add(name)
    return {name: names for names in by_tensor.values() for name in names}


def check_base_head_loading(case: Case, folder: Path) -> None:
    import torch

    base_class = case.base_class
    if base_class is None:
        raise CheckSkipped(f"{case.spec.model_type!r} registers no AutoModel to load from")
    if case.model_class is base_class:
        raise CheckSkipped("the base model itself")
    base, _ = case.build(base_class)
    base.save_pretrained(folder / "base")
    base_state = base.state_dict()
    head, info = case.model_class.from_pretrained(folder / "base", output_loading_info=True)
    head_state = head.state_dict()
    prefix = head.base_model_prefix
    nested = bool(prefix) and hasattr(head, prefix)

    def in_head(key: str) -> str:
        return f"{prefix}.{key}" if nested else key

    shared = {key for key in base_state if in_head(key) in head_state}
    assert len(shared) * 2 >= len(base_state), (
        f"{case.class_name} takes only {len(shared)} of the base model's {len(base_state)} weights: does it hold the "
        f"base model as .{prefix} (its base_model_prefix)?"
    )
    for key in shared:
        torch.testing.assert_close(head_state[in_head(key)], base_state[key], msg=f"{case.class_name}: {key} not loaded")
    ties = _tied_groups(head)
    covered = {in_head(k) for k in shared}
    head_only = {k for k in head_state if k not in covered and not (ties.get(k, set()) & covered)}
    base_only = _file_keys(folder / "base") - {k for k in shared}
    assert set(info["missing_keys"]) == _ignored(head, head_only, "_keys_to_ignore_on_load_missing"), (
        f"base -> {case.class_name}: missing keys {sorted(info['missing_keys'])}, expected the head's own {sorted(head_only)}"
    )
    assert set(info["unexpected_keys"]) == _ignored(head, base_only, "_keys_to_ignore_on_load_unexpected"), (
        f"base -> {case.class_name}: unexpected keys {sorted(info['unexpected_keys'])}, expected the base's own {sorted(base_only)}"
    )
    # And back: the head's checkpoint gives the base every weight they share.
    head.save_pretrained(folder / "head")
    back, info_back = base_class.from_pretrained(folder / "head", output_loading_info=True)
    back_state = back.state_dict()
    for key in shared:
        torch.testing.assert_close(back_state[key], head_state[in_head(key)], msg=f"{case.class_name} -> base: {key}")
    head_keys = _file_keys(folder / "head")
    unused = {k for k in head_keys if k not in {in_head(s) for s in shared}}
    assert set(info_back["missing_keys"]) == _ignored(back, set(base_state) - shared, "_keys_to_ignore_on_load_missing"), (
        f"{case.class_name} -> base: missing keys {sorted(info_back['missing_keys'])}"
    )
    assert set(info_back["unexpected_keys"]) == _ignored(back, unused, "_keys_to_ignore_on_load_unexpected"), (
        f"{case.class_name} -> base: unexpected keys {sorted(info_back['unexpected_keys'])}, expected {sorted(unused)}"
    )


def _gradients(case: Case, checkpointing: bool) -> dict[str, Any]:
    model, config = case.build()
    model.train()
    calls = []
    if checkpointing:
        model.activation_checkpointing_enable()
        assert model.is_activation_checkpointing and model.is_gradient_checkpointing, (
            f"{case.class_name}: activation_checkpointing_enable (gradient_checkpointing_enable) changed nothing"
        )
        for module in model.modules():
            function = getattr(module, "_gradient_checkpointing_func", None)
            if function is not None:

                def counted(*args: Any, _function: Callable[..., Any] = function, **kwargs: Any) -> Any:
                    calls.append(1)
                    return _function(*args, **kwargs)

                module._gradient_checkpointing_func = counted
    inputs = case.inputs(config, labels=True)
    seed_everything()
    output = model(**inputs)
    loss = _loss(output)
    (loss if loss is not None else _sum_of_outputs(output)).backward()
    assert calls or not checkpointing, f"{case.class_name}: checkpointing is on but no layer was checkpointed"
    if checkpointing:
        model.activation_checkpointing_disable()
        assert not model.is_activation_checkpointing, f"{case.class_name}: activation_checkpointing_disable left it on"
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def check_gradient_checkpointing(case: Case, folder: Path) -> None:
    import torch

    plain, checkpointed = _gradients(case, False), _gradients(case, True)
    assert plain.keys() == checkpointed.keys(), f"{case.class_name}: gradients reached other weights with checkpointing"
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=f"{case.class_name}: {name}")


def check_model_api(case: Case, folder: Path) -> None:
    """The declarations adapter libraries read name real weights, and the model API they call answers."""
    from torch import nn

    from plugformers.configuration_utils import PretrainedConfig

    model, config = case.build()
    params = dict(model.named_parameters(remove_duplicate=False))
    tied = model._tied_weights_keys
    assert tied is None or isinstance(tied, dict), (
        f"{case.class_name}._tied_weights_keys must be a {{target: source}} dict (what PEFT and the reference "
        f"read), got {type(tied).__name__}"
    )
    for target, source in (tied or {}).items():
        assert target in params and source in params, f"{case.class_name}: tied {target} -> {source} names no parameter"
        if getattr(config, "tie_word_embeddings", False):
            assert params[target] is params[source], f"{case.class_name}: {target} is not tied to {source}"
    names = [n for n, _ in model.named_modules()]
    for pattern in [*(model._keep_in_fp32_modules or ()), *(model._keep_in_fp32_modules_strict or ())]:
        assert any(f".{pattern}." in f".{n}." for n in names), f"{case.class_name}: keeps {pattern!r} in fp32, no such module"
    state = model.state_dict()
    for key in model._keys_to_ignore_on_save or ():
        assert key in state, f"{case.class_name}._keys_to_ignore_on_save names {key!r}, which is not in its state dict"
    encoder = model.get_encoder()
    assert encoder is model or any(encoder is m for m in model.modules()), f"{case.class_name}: get_encoder() is foreign"
    assert isinstance(type(model).can_generate(), bool), f"{case.class_name}.can_generate() is not a bool"
    assert isinstance(config.get_text_config(), PretrainedConfig), f"{case.class_name}: get_text_config() is no config"
    try:
        embeddings: nn.Module | None = model.get_input_embeddings()
    except NotImplementedError:
        embeddings = None
    model.enable_input_require_grads()
    assert embeddings is None or _has_grad_hook(embeddings), f"{case.class_name}: enable_input_require_grads hooked nothing"
    model.disable_input_require_grads()
    left = [n for n, m in model.named_modules() if _has_grad_hook(m)]
    assert not left, f"{case.class_name}: disable_input_require_grads left hooks on {left}"


def _has_grad_hook(module: Any) -> bool:
    from plugformers.modeling_utils import _output_requires_grad

    return any(hook is _output_requires_grad for hook in module._forward_hooks.values())


@contextmanager
def _fresh_dynamo() -> Iterator[None]:
    import torch

    torch._dynamo.reset()
    try:
        yield
    finally:
        torch._dynamo.reset()


def check_compile(case: Case, folder: Path) -> None:
    import torch

    model, config = case.build()
    inputs = case.inputs(config)
    backend = os.environ.get(COMPILE_BACKEND_ENV, "eager")
    with torch.no_grad(), _fresh_dynamo():
        expected = model(**inputs)
        got = torch.compile(model, fullgraph=True, backend=backend)(**inputs)
    assert_close_outputs(expected, got, atol=1e-4, rtol=1e-4)


def check_export(case: Case, folder: Path) -> None:
    import torch

    model, config = case.build()
    inputs = case.inputs(config)
    with torch.no_grad():
        expected = model(**inputs)
        program = torch.export.export(model, args=(), kwargs=inputs)
        got = program.module()(**inputs)
    assert_close_outputs(expected, got, atol=1e-5, rtol=1e-5)


def check_onnx(case: Case, folder: Path) -> None:
    """``plugformers.export`` to ONNX, which runs the file in onnxruntime against eager at two batch sizes;
    then the file itself: inputs named and ordered as ``forward`` takes them, the batch axis dynamic, the
    dynamic axes under the names the export reports, outputs named after the output class."""
    from plugformers.exporting import export, onnx_requirements

    missing = [name for name, version in onnx_requirements().items() if version is None]
    if missing:
        raise CheckSkipped(f"ONNX export needs {', '.join(missing)}: pip install 'plugformers[onnx]'")
    import onnx

    model, _ = case.build()
    result = export(model, folder / "onnx")  # raises VerificationError past 1e-4, with the difference
    assert [c["batch_size"] for c in result.checks] == [2, 3] and result.max_abs_diff <= 1e-4, result.checks
    proto = onnx.load(str(result.path), load_external_data=False)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    order = list(inspect.signature(model.forward).parameters)
    assert list(dims) == result.input_names == sorted(result.input_names, key=order.index), (list(dims), order)
    assert result.dynamic_axes[result.input_names[0]].get(0) == "batch", result.dynamic_axes
    for name, axes in result.dynamic_axes.items():
        assert all(dims[name][axis] == label for axis, label in axes.items()), (name, dims[name], axes)
    assert [o.name for o in proto.graph.output] == result.output_names


CHECKS: dict[str, Callable[[Case, Path], None]] = {
    "forward": check_forward,
    "backward": check_backward,
    "save_load": check_save_load,
    "outputs": check_outputs,
    "dtypes": check_dtypes,
    "base_head_loading": check_base_head_loading,
    "gradient_checkpointing": check_gradient_checkpointing,
    "model_api": check_model_api,
    "compile": check_compile,
    "export": check_export,
    "onnx": check_onnx,
}
assert CHECKS.keys() == CONFORMANCE_CHECKS.keys(), "every check of the vocabulary has one function here"


def cases(spec: FamilySpec) -> list[Case]:
    """One case per model class the family registers (a class under several Auto classes counts once)."""
    return [Case(spec, name, keys) for name, keys in spec.model_names().items()]


def applies(case: Case, check: str) -> bool:
    """Whether ``check`` has a test for ``case`` (loading a base checkpoint into itself has none)."""
    if check == "base_head_loading":
        ref = case.spec.models.get("AutoModel")
        return ref is not None and _ref_name(ref) != case.class_name
    return True


def run_check(case: Case, check: str, folder: Path) -> None:
    """Run ``check`` on ``case`` as the registration asks: skipped with its reason, or gated by a capability.

    Raises :class:`CheckSkipped` for a declared skip; ``AssertionError`` for a capability that is False
    without a skip reason, or True with one (a stale skip), and for a failing check.
    """
    if _run_everything():
        CHECKS[check](case, folder)
        return
    reason = case.skip_reason(check)
    capable = case.capability(check)
    if capable is False and reason is None:
        raise AssertionError(
            f"{case.class_name}.{CAPABILITIES[check]} is False and the registration of {case.spec.model_type!r} gives no "
            f"reason: add skips={{{case.class_name!r}: {{{check!r}: 'why'}}}} to its register(...) call."
        )
    if capable is True and reason is not None:
        raise AssertionError(
            f"{case.class_name}.{CAPABILITIES[check]} is True, yet the registration of {case.spec.model_type!r} skips "
            f"{check!r} ({reason}): remove the skip, or set the capability False."
        )
    if reason is not None:
        raise CheckSkipped(reason)
    CHECKS[check](case, folder)


#: Set to 1 to run every check whatever the skips and capabilities say: finds skips no longer needed and
#: capabilities that could be True.
RUN_EVERYTHING_ENV = "PLUGFORMERS_CONFORMANCE_RUN_SKIPPED"


def _run_everything() -> bool:
    from plugformers.utils.env import env_true

    return env_true(RUN_EVERYTHING_ENV)
