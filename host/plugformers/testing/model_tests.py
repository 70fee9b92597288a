"""Model tests a family's own test classes mix in, next to the conformance suite the registry drives.

:mod:`plugformers.testing.conformance` runs every registered class on the family's registered
``tiny_config``. A family's test class adds what it cannot: :class:`ModelExtraTestsMixin` (sharded
checkpoints, eager/SDPA agreement, the opt-in fast path, ``torch.compile`` with generated kernels, CUDA
half precision) for any config, and :class:`ModelTesterMixin` (those plus the generic battery: forward,
backward, save/load, loading between base and head checkpoints, tuple outputs, dtypes, the Auto classes)
for configs other than the registered one (``torch.export`` too). What a class declares it supports
(``supports_compile_fullgraph``, ``supports_export``, ``supports_fast_path``, ...) decides which apply. A test
class lists ``all_model_classes`` and implements ``get_config()`` and ``prepare_inputs(config, model_class)``.
Importing this module does not import pytest.
"""

from __future__ import annotations

import copy
import os
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from plugformers import fast_path
from plugformers.configuration_utils import PretrainedConfig
from plugformers.modeling_utils import PreTrainedModel
from plugformers.testing.checks import MARKS_ATTRIBUTE, assert_close_outputs
from plugformers.testing.checks import output_tensors as _tensors

if TYPE_CHECKING:
    import pytest

__all__ = ["ModelExtraTestsMixin", "ModelTesterMixin", "assert_close_outputs", "needs_gpu"]

F = TypeVar("F", bound=Callable[..., Any])



def needs_gpu(function: F) -> F:
    """Mark a test ``gpu`` (deselected by ``-m "not gpu"``) without importing pytest; it skips without CUDA."""
    setattr(function, MARKS_ATTRIBUTE, (*getattr(function, MARKS_ATTRIBUTE, ()), "gpu"))
    return function


def _skip(reason: str) -> None:
    import pytest

    pytest.skip(reason)


class ModelExtraTestsMixin:
    """Mix into a pytest class; set ``all_model_classes`` and implement the two factory methods."""

    all_model_classes: tuple[type[PreTrainedModel], ...] = ()
    #: Set False for families whose models never return attention weights (convolutional ones).
    has_attentions: bool = True
    #: Run torch.compile(fullgraph=True) on the base model (slow on small CPUs: one compile per family).
    test_compile: bool = True
    compile_atol: float = 1e-4

    def get_config(self) -> PretrainedConfig:
        raise NotImplementedError

    def prepare_inputs(self, config: PretrainedConfig, model_class: type[PreTrainedModel]) -> dict[str, Any]:
        raise NotImplementedError

    # ----- helpers ---------------------------------------------------------------------------------------

    def _build(self, model_class: type[PreTrainedModel], **config_overrides: Any) -> tuple[PreTrainedModel, dict[str, Any]]:
        torch.manual_seed(0)
        config = self.get_config()
        for key, value in config_overrides.items():
            setattr(config, key, value)
        model = model_class(config).eval()
        torch.manual_seed(1)
        inputs = self.prepare_inputs(copy.deepcopy(config), model_class)
        return model, inputs

    @staticmethod
    def _without_labels(inputs: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in inputs.items() if "label" not in k}

    def _base_class(self) -> type[PreTrainedModel]:
        for cls in self.all_model_classes:
            prefix = cls.base_model_prefix
            probe_cfg = self.get_config()
            model = cls(probe_cfg)
            if not prefix or not hasattr(model, prefix):
                return cls
        _skip("no base model class among all_model_classes")
        raise AssertionError  # unreachable

    # ----- beyond the conformance suite -------------------------------------------------------------------

    def test_sharded_save_reloads(self, tmp_path: Any) -> None:
        cls = self.all_model_classes[0]
        model, inputs = self._build(cls)
        total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        model.save_pretrained(tmp_path, max_shard_size=max(total // 3, 1))
        shards = [f for f in os.listdir(tmp_path) if f.endswith(".safetensors")]
        assert "model.safetensors.index.json" in os.listdir(tmp_path) and len(shards) > 1
        reloaded = cls.from_pretrained(tmp_path)
        with torch.no_grad():
            assert_close_outputs(model(**inputs), reloaded(**inputs), atol=0, rtol=0)

    def test_eager_and_sdpa_agree(self) -> None:
        for cls in self.all_model_classes:
            if not cls._supports_sdpa:
                continue
            model, inputs = self._build(cls)
            with torch.no_grad():
                model.set_attn_implementation("eager")
                eager = model(**inputs)
                model.set_attn_implementation("sdpa")
                sdpa = model(**inputs)
            assert_close_outputs(eager, sdpa, atol=1e-5, rtol=1e-4)

    def test_torch_compile_fullgraph_matches_eager(self) -> None:
        base_cls = self._base_class()
        if not self.test_compile or not base_cls.supports_compile_fullgraph:
            _skip("compile test disabled for this family" if base_cls.supports_compile_fullgraph else
                  f"{base_cls.__name__} does not declare supports_compile_fullgraph")
        model, inputs = self._build(base_cls)
        inputs = self._without_labels(inputs)
        with torch.no_grad():
            expected = model(**inputs)
            compiled = torch.compile(model, fullgraph=True, backend="eager" if os.environ.get("PLUGFORMERS_FAST_COMPILE") else "inductor")
            got = compiled(**inputs)
        assert_close_outputs(expected, got, atol=self.compile_atol, rtol=self.compile_atol)

    # ----- the opt-in fast path (families whose modules support it) ------------------------------------

    def _fast_path_model(self, cls: type[PreTrainedModel]) -> tuple[PreTrainedModel, dict[str, Any]]:
        model, inputs = self._build(cls)
        if not cls.supports_fast_path:
            try:
                model.enable_fast_path()
            except NotImplementedError as exc:
                assert "no fast path" in str(exc), exc
            else:
                raise AssertionError(f"{cls.__name__} says it has no fast path, yet enable_fast_path() worked")
            _skip(f"{cls.__name__} has no fast path")
        return model, inputs

    def test_fast_path_matches_and_follows_weight_changes(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Both matmul flavours, whichever one this CPU would pick by default (see fast_path.onednn_preferred).
        for onednn in ("1", "0"):
            monkeypatch.setenv(fast_path.ONEDNN_ENV, onednn)
            self._fast_path_follows_weight_changes()

    def _fast_path_follows_weight_changes(self) -> None:
        for cls in self.all_model_classes:
            model, inputs = self._fast_path_model(cls)
            keys = {k: v.shape for k, v in model.state_dict().items()}
            with torch.no_grad():
                plain = model(**inputs)
                assert model.enable_fast_path() is model
                assert_close_outputs(plain, model(**inputs), atol=1e-5, rtol=1e-5)
                # An in-place change after the derived weights were built must be seen, not a stale copy.
                for p in model.parameters():
                    if p.ndim >= 2:  # linear and convolution weights
                        p.mul_(1.5)
                for b in model.buffers():
                    if b.is_floating_point():  # e.g. batch-norm running statistics that the fast path folds in
                        b.mul_(1.25)
                changed = model(**inputs)
                model.disable_fast_path()
                # The changes make activations grow layer by layer: compare relative to each output's scale
                # (a stale copy would be off by tens of percent).
                for fast, slow in zip(_tensors(changed), _tensors(model(**inputs))):
                    scale = 1.0 + slow.float().abs().max().item()
                    torch.testing.assert_close(fast.float(), slow.float(), atol=1e-4 * scale, rtol=1e-4)
            assert not all(torch.equal(a, b) for a, b in zip(_tensors(plain), _tensors(changed)))
            assert {k: v.shape for k, v in model.state_dict().items()} == keys, "the fast path changed the state dict"

    def test_fast_path_under_inference_mode(self) -> None:
        # Serving code often builds or loads the model inside inference_mode: its weights are inference tensors.
        for cls in self.all_model_classes:
            model, inputs = self._fast_path_model(cls)
            with torch.no_grad():
                expected = model(**inputs)
            with torch.inference_mode():
                served = cls(model.config).eval()
                served.load_state_dict(model.state_dict())
                served.enable_fast_path()
                assert_close_outputs(expected, served(**inputs), atol=1e-5, rtol=1e-5)

    def test_fast_path_steps_aside_for_training_and_survives_copies(self, tmp_path: Any) -> None:
        for cls in self.all_model_classes:
            model, inputs = self._fast_path_model(cls)
            try:
                pickle.dumps(model)
                picklable = True
            except RuntimeError:  # torch refuses to pickle parametrized (weight-norm) modules at all
                picklable = False
            model.enable_fast_path()
            with torch.no_grad():
                expected = model(**inputs)
                assert_close_outputs(expected, copy.deepcopy(model)(**inputs), atol=1e-5, rtol=1e-5)
                if picklable:
                    torch.save(model, tmp_path / "model.pt")
                    again = torch.load(tmp_path / "model.pt", weights_only=False)
                    assert_close_outputs(expected, again(**inputs), atol=1e-5, rtol=1e-5)
            model.train()
            out = model(**inputs)
            loss = out["loss"] if isinstance(out, dict) and out.get("loss") is not None else torch.stack(
                [t.float().sum() for t in _tensors(out) if t.is_floating_point()]
            ).sum()
            loss.backward()
            # Gradients must reach the real weights of every layer the fast path covers.
            covered = fast_path.covered_layers(model)
            assert covered
            missing = [name for name, layer in covered if layer.weight.grad is None]
            assert not missing, f"{cls.__name__}: no gradient reached {missing}"

    @needs_gpu
    def test_cuda_half_precision_forward(self) -> None:
        if not torch.cuda.is_available():
            _skip("needs CUDA")
        for dtype in (torch.float16, torch.bfloat16):
            for cls in self.all_model_classes:
                model, inputs = self._build(cls)
                model = model.to("cuda", dtype)
                cast = {
                    k: (v.to("cuda", dtype) if v.is_floating_point() else v.to("cuda")) if torch.is_tensor(v) else v
                    for k, v in self._without_labels(inputs).items()
                }
                with torch.no_grad():
                    out = model(**cast)
                assert all(torch.isfinite(t.float()).all() for t in _tensors(out)), f"{cls.__name__} {dtype}"


class ModelTesterMixin(ModelExtraTestsMixin):
    """The extra tests plus the generic battery (and export), for configs other than the registered tiny one."""

    # ----- the generic battery (what the conformance suite runs on the registered config) -----------------------------------------------------------------------------

    def test_forward_is_deterministic_in_eval(self) -> None:
        for cls in self.all_model_classes:
            model, inputs = self._build(cls)
            with torch.no_grad():
                first = model(**inputs)
                second = model(**inputs)
            assert _tensors(first), f"{cls.__name__} returned no tensors"
            for t in _tensors(first):
                assert torch.isfinite(t.float()).all(), f"{cls.__name__} produced non-finite values"
            assert_close_outputs(first, second, atol=0, rtol=0)

    def test_backward_reaches_every_trainable_weight_of_the_base(self) -> None:
        for cls in self.all_model_classes:
            model, inputs = self._build(cls)
            model.train()
            out = model(**inputs)
            loss = out["loss"] if isinstance(out, dict) and out.get("loss") is not None else sum(
                t.float().sum() for t in _tensors(out) if t.is_floating_point()
            )
            assert isinstance(loss, torch.Tensor) and loss.requires_grad, f"{cls.__name__}: loss has no grad"
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.requires_grad]
            assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{cls.__name__}: no gradient reached a weight"

    def test_save_and_reload_gives_identical_outputs(self, tmp_path: Any) -> None:
        for cls in self.all_model_classes:
            model, inputs = self._build(cls)
            folder = tmp_path / cls.__name__
            model.save_pretrained(folder)
            assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
            reloaded, info = cls.from_pretrained(folder, output_loading_info=True)
            assert not info["missing_keys"] and not info["unexpected_keys"], f"{cls.__name__}: {info}"
            with torch.no_grad():
                assert_close_outputs(model(**inputs), reloaded(**inputs), atol=0, rtol=0)

    def test_base_checkpoint_loads_into_every_head_and_back(self, tmp_path: Any) -> None:
        base_cls = self._base_class()
        base, _ = self._build(base_cls)
        base.save_pretrained(tmp_path / "base")
        base_state = base.state_dict()
        for cls in self.all_model_classes:
            if cls is base_cls:
                continue
            head, info = cls.from_pretrained(tmp_path / "base", output_loading_info=True)
            prefix = cls.base_model_prefix
            inner = getattr(head, prefix)
            for key, value in inner.state_dict().items():
                torch.testing.assert_close(value, base_state[key], msg=f"{cls.__name__}: {key} not loaded")
            assert not info["unexpected_keys"], f"{cls.__name__}: {info['unexpected_keys']}"
            head.save_pretrained(tmp_path / cls.__name__)
            back, info_back = base_cls.from_pretrained(tmp_path / cls.__name__, output_loading_info=True)
            assert not info_back["missing_keys"], f"{cls.__name__} -> base: {info_back['missing_keys']}"
            for key, value in back.state_dict().items():
                torch.testing.assert_close(value, base_state[key])

    def test_return_dict_false_gives_the_same_tensors_as_a_tuple(self) -> None:
        for cls in self.all_model_classes:
            model, inputs = self._build(cls)
            with torch.no_grad():
                as_dict = model(**inputs)
                model.config.return_dict = False
                as_tuple = model(**inputs)
            assert isinstance(as_tuple, tuple), f"{cls.__name__} ignored return_dict=False"
            assert_close_outputs(as_dict.to_tuple(), as_tuple, atol=0, rtol=0)

    def test_hidden_states_and_attentions_on_request(self) -> None:
        for cls in self.all_model_classes:
            model, inputs = self._build(cls)
            with torch.no_grad():
                out = model(**inputs, output_hidden_states=True, **({"output_attentions": True} if self.has_attentions else {}))
            assert out.get("hidden_states") is not None, f"{cls.__name__}: no hidden_states"
            if self.has_attentions:
                assert out.get("attentions") is not None, f"{cls.__name__}: no attentions"
                for a in out["attentions"]:
                    torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)), atol=1e-4, rtol=1e-4)

    def test_bfloat16_loading_converts_every_float_weight(self, tmp_path: Any) -> None:
        cls = self.all_model_classes[0]
        model, inputs = self._build(cls)
        model.save_pretrained(tmp_path)
        half = cls.from_pretrained(tmp_path, dtype=torch.bfloat16)
        assert {p.dtype for p in half.parameters() if p.is_floating_point()} == {torch.bfloat16}
        assert half.config.dtype is torch.bfloat16
        cast = {k: (v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in inputs.items()}
        with torch.no_grad():
            out = half(**self._without_labels(cast))
        assert all(torch.isfinite(t.float()).all() for t in _tensors(out))

    def test_auto_classes_build_the_same_class(self, tmp_path: Any) -> None:
        from plugformers.plugins import get_registry, import_object

        config = self.get_config()
        spec = get_registry().family(config.model_type)
        assert import_object(spec.config) is type(config)
        import plugformers.auto as auto

        for key, ref in spec.models.items():
            cls = import_object(ref)
            if cls not in self.all_model_classes:
                continue
            model = getattr(auto, key).from_config(self.get_config())
            assert type(model) is cls, f"{key}.from_config built {type(model).__name__}, expected {cls.__name__}"
            model.save_pretrained(tmp_path / key)
            loaded = getattr(auto, key).from_pretrained(tmp_path / key)
            assert type(loaded) is cls

    def test_torch_export_matches_eager(self) -> None:
        base_cls = self._base_class()
        if not base_cls.supports_export:
            _skip(f"{base_cls.__name__} does not declare supports_export")
        model, inputs = self._build(base_cls)
        inputs = self._without_labels(inputs)
        exported = torch.export.export(model, args=(), kwargs=inputs)
        with torch.no_grad():
            assert_close_outputs(model(**inputs), exported.module()(**inputs), atol=1e-5, rtol=1e-5)
