"""The host's shared model blocks, on the toy family that docs/plugins.md builds from them (the page's code runs here).

Covers what no single real family shows alone: recorded outputs, first-token heads, the fast-path pass and its
undo, head pruning through MultiHeadAttention, the mask helpers, and threads sharing one model.
"""

from __future__ import annotations

import copy
import pickle
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from plugformers import fast_path
from plugformers.masking_utils import prepare_attention_mask, prepare_head_mask
from plugformers.modeling_layers import GradientCheckpointingLayer
from plugformers.output_capturing import first_token_layer
from plugformers.testing.model_tests import ModelTesterMixin, assert_close_outputs

PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _load_toy_family(tmp: Path) -> Any:
    blocks = re.findall(r"```python\n# file: toy_family.py\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "docs/plugins.md must hold the toy family block"
    assert blocks[0].count("\n") < 150, "the docs promise a family in under 150 lines"
    (tmp / "toy_family.py").write_text(blocks[0], encoding="utf-8")
    sys.path.insert(0, str(tmp))
    try:
        import toy_family
    finally:
        sys.path.remove(str(tmp))
    return toy_family


toy = _load_toy_family(Path(__import__("tempfile").mkdtemp(prefix="toy_family_")))


def _ids(batch: int = 2, seq: int = 5) -> torch.Tensor:
    return torch.randint(0, 32, (batch, seq), generator=torch.Generator().manual_seed(3))


class TestToyFamily(ModelTesterMixin):
    all_model_classes = (toy.ToyModel, toy.ToyForSequenceClassification)
    test_compile = False  # compiled below with the eager backend, which is enough to prove the full graph

    def get_config(self) -> Any:
        return toy.ToyConfig(num_labels=3)

    def prepare_inputs(self, config: Any, model_class: type) -> dict[str, Any]:
        mask = torch.ones(2, 5, dtype=torch.long)
        mask[1, 3:] = 0
        inputs: dict[str, Any] = {"input_ids": _ids(), "attention_mask": mask}
        if model_class is toy.ToyForSequenceClassification:
            inputs["labels"] = torch.tensor([0, 2])
        return inputs

    def test_auto_classes_build_the_same_class(self, tmp_path: Any) -> None:
        pytest.skip("the toy family is not registered through a plugin")


def _models() -> tuple[Any, Any]:
    torch.manual_seed(0)
    config = toy.ToyConfig(num_labels=3)
    return toy.ToyModel(config).eval(), toy.ToyForSequenceClassification(config).eval()


def test_recorded_outputs_are_the_layers_inputs_and_outputs() -> None:
    model, _ = _models()
    ids = _ids()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handles = [layer.register_forward_hook(lambda m, a, o: seen.append((a[0], o))) for layer in model.layers]
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_attentions=True)
        plain = model(ids)
    for handle in handles:
        handle.remove()
    assert [t is s for t, s in zip(out.hidden_states, [seen[0][0], *(o for _, o in seen[:2])])] == [True] * 3
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 2, 5, 5)
    assert plain.hidden_states is None and plain.attentions is None  # not asked: nothing recorded or computed
    assert list(out.keys()) == ["last_hidden_state", "hidden_states", "attentions"]  # declared order, for to_tuple
    as_tuple = model(ids, output_hidden_states=True, return_dict=False)
    assert len(as_tuple) == 2 and len(as_tuple[1]) == 3


def test_config_switches_and_positional_arguments_count_too() -> None:
    model, _ = _models()
    ids = _ids()
    with torch.no_grad():
        positional = model(ids, None, None, True, True, False)  # output_attentions, output_hidden_states, return_dict
        model.config.output_hidden_states = True
        from_config = model(ids)
    assert isinstance(positional, tuple) and len(positional) == 3
    assert len(from_config.hidden_states) == 3 and from_config.attentions is None


def test_first_token_head_trims_the_last_layer_only_when_nothing_is_recorded() -> None:
    _, head = _models()
    ids = _ids()
    last = head.toy.layers[-1]
    shapes: list[tuple[int, ...]] = []
    handle = last.register_forward_hook(lambda m, a, o: shapes.append(tuple(o.shape)))
    with torch.no_grad():
        short = head(ids).logits
        full = head(ids, output_hidden_states=True).logits
        attn = head(ids, output_attentions=True).logits
        base = head.toy(ids).last_hidden_state  # the base model called directly is never trimmed
    handle.remove()
    assert shapes == [(2, 1, 16), (2, 5, 16), (2, 5, 16), (2, 5, 16)]
    torch.testing.assert_close(short, full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(short, attn, atol=1e-6, rtol=1e-5)
    assert base.shape == (2, 5, 16) and first_token_layer() is None
    assert toy.ToyForSequenceClassification.first_token_only and not toy.ToyModel.first_token_only


def test_a_first_token_head_needs_recorded_hidden_states() -> None:
    class Bare(toy.ToyModel):
        recorded_outputs: dict[str, Any] = {}

    class Headless(toy.ToyPreTrainedModel):
        first_token_only = True

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.toy = Bare(config)
            self.post_init()

    with pytest.raises(TypeError, match="records no hidden_states layers"):
        Headless(toy.ToyConfig())


def test_threads_sharing_a_model_record_only_their_own_calls() -> None:
    model, _ = _models()
    ids = _ids()
    with torch.no_grad():
        expected = model(ids, output_hidden_states=True).hidden_states
    barrier, results, errors = threading.Barrier(2), {}, []

    def run(record: bool) -> None:
        try:
            barrier.wait()
            with torch.no_grad():
                for _ in range(20):
                    out = model(ids, output_hidden_states=record)
                    results[record] = out.hidden_states
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results[False] is None and len(results[True]) == 3
    for got, want in zip(results[True], expected):
        torch.testing.assert_close(got, want)


def test_compile_fullgraph_of_base_and_head_with_and_without_recording() -> None:
    model, head = _models()
    ids = _ids()
    with torch.no_grad():
        for module, kwargs in ((model, {}), (head, {}), (model, {"output_hidden_states": True})):
            compiled = torch.compile(module, fullgraph=True, backend="eager")
            assert_close_outputs(module(ids, **kwargs), compiled(ids, **kwargs), atol=1e-6, rtol=1e-6)


def test_gradient_checkpointing_recomputes_each_layer_and_keeps_the_gradients() -> None:
    grads, calls = [], []
    for checkpointing in (False, True):
        model, _ = _models()
        model.train()
        counter = [0]
        model.layers[0].register_forward_pre_hook(lambda m, a, c=counter: c.__setitem__(0, c[0] + 1))
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.is_gradient_checkpointing
        model(_ids()).last_hidden_state.sum().backward()
        calls.append(counter[0])
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert calls == [1, 2]  # the checkpointed layer ran again in the backward pass
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad)
    assert isinstance(_models()[0].layers[0], GradientCheckpointingLayer)


def test_pruned_heads_equal_masked_heads_and_survive_a_reload(tmp_path: Path) -> None:
    model, _ = _models()
    ids = _ids()
    mask = torch.ones(2, 2)
    mask[1, 0] = 0
    with torch.no_grad():
        masked = model(ids, head_mask=mask).last_hidden_state
        model.prune_heads({1: [0]})
        pruned = model(ids).last_hidden_state
    torch.testing.assert_close(pruned, masked, atol=1e-6, rtol=1e-5)
    assert model.layers[1].attention.query.out_features == 8 and model.layers[1].attention.dense.in_features == 8
    model.save_pretrained(tmp_path)
    again = toy.ToyModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(ids).last_hidden_state, pruned)
    with pytest.raises(ValueError, match="layer 7"):
        model.prune_heads({7: [0]})


def test_fast_path_pass_swaps_declared_modules_and_undoes_them() -> None:
    model, _ = _models()
    ids = _ids()
    keys = list(model.state_dict())
    attention, mlp = model.layers[0].attention, model.layers[0].mlp
    with torch.no_grad():
        plain = model(ids).last_hidden_state
        model.enable_fast_path()
        model.enable_fast_path()  # a second pass changes nothing
        assert type(mlp.fc1) is fast_path.FastLinear and mlp.fc1.fused_activation == "gelu"
        assert type(mlp.act) is fast_path.FusedActivation and type(attention.dense) is fast_path.FastLinear
        assert "project_qkv" in attention.__dict__
        names = {name for name, _ in fast_path.covered_layers(model)}
        assert {"layers.0.attention.query", "layers.0.attention.dense", "layers.1.mlp.fc2"} <= names
        torch.testing.assert_close(model(ids).last_hidden_state, plain, atol=1e-5, rtol=1e-5)
        assert list(model.state_dict()) == keys
        again = pickle.loads(pickle.dumps(model))
        torch.testing.assert_close(again(ids).last_hidden_state, plain, atol=1e-5, rtol=1e-5)
        twin = copy.deepcopy(model)
        assert twin.layers[0].attention.__dict__["project_qkv"].args[0] is twin.layers[0].attention
        model.prune_heads({0: [1]})  # new projections: the pruned layer keeps its fast form
        assert type(attention.dense) is fast_path.FastLinear
        model.disable_fast_path()
    assert type(mlp.fc1) is nn.Linear and type(mlp.act) is nn.GELU and type(attention.dense) is nn.Linear
    assert "project_qkv" not in attention.__dict__ and not fast_path.covered_layers(model)


def test_fold_batch_norm_step_and_its_undo() -> None:
    class ConvBN(nn.Module):
        fast_path_plan = (fast_path.FoldBatchNorm("conv", "norm"),)

        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm = nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(self.conv(x))

    torch.manual_seed(0)
    block = ConvBN().eval()
    with torch.no_grad():
        block.norm.running_mean.uniform_(-1, 1)
        block.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = block(x)
        assert fast_path.apply_plans(block) == 1
        assert type(block.conv) is fast_path.FoldedConv2d and type(block.norm) is fast_path.FoldedBatchNorm2d
        torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)
    block.train()
    trained = block(x)  # batch statistics: not folded, and the running statistics move once
    assert not torch.allclose(trained, expected, atol=1e-3)
    fast_path.remove_plans(block)
    assert type(block.conv) is nn.Conv2d and type(block.norm) is nn.BatchNorm2d


def test_mask_helpers() -> None:
    keep = torch.tensor([[1, 1, 0]])
    additive = prepare_attention_mask(keep, 1, 3, torch.float32)
    assert additive is not None and additive.shape == (1, 1, 1, 3)
    assert additive[0, 0, 0, 2] == torch.finfo(torch.float32).min and additive[0, 0, 0, 0] == 0
    causal = torch.tril(torch.ones(3, 3, dtype=torch.bool))[None, None]
    as_float = prepare_attention_mask(causal, 1, 3, torch.bfloat16)
    assert as_float is not None and as_float.dtype == torch.bfloat16 and as_float[0, 0, 0, 1] < 0
    assert prepare_attention_mask(None, 1, 3, torch.float32) is None
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 4\)"):
        prepare_attention_mask(torch.ones(1, 4), 1, 3, torch.float32)
    # Packed rows: two sequences (2 and 1 tokens) end to end, each seeing only itself.
    block = prepare_attention_mask(None, 1, 3, torch.float32, cu_seqlens=torch.tensor([0, 2, 3]))
    assert block is not None and block.shape == (1, 1, 3, 3)
    assert (block[0, 0] == 0).tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    with pytest.raises(ValueError, match="one packed row of 3 tokens"):
        prepare_attention_mask(None, 2, 3, torch.float32, cu_seqlens=torch.tensor([0, 2, 3]))
    per_layer = prepare_head_mask(torch.tensor([1.0, 0.0]), 3, torch.float32)
    assert len(per_layer) == 3 and per_layer[2].shape == (1, 2, 1, 1)
    with pytest.raises(ValueError, match="head_mask must have shape"):
        prepare_head_mask(torch.ones(2, 2), 3, torch.float32)


def test_a_plugin_backend_that_overrides_a_resolved_name_takes_effect() -> None:
    from plugformers import hookimpl
    from plugformers.attention import eager_attention, get_attention_function
    from plugformers.plugins import registered_plugin

    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return eager_attention(*args, **kwargs)

    class Plugin:
        @hookimpl
        def plugformers_register_attention(self, register: Any) -> None:
            register("eager", counting, override=True)

    assert get_attention_function("eager") is eager_attention  # resolved and kept by the registry
    with registered_plugin(Plugin(), name="counting"):
        assert get_attention_function("eager") is counting
        model, _ = _models()
        model.set_attn_implementation("eager")
        with torch.no_grad():
            model(_ids())
        assert len(calls) == 2  # one per layer
    assert get_attention_function("eager") is eager_attention


# ----- helpers the text families share (modeling_utils) ------------------------------------------------------


def test_span_loss_ignores_answers_cut_off_by_truncation():
    from plugformers.modeling_utils import span_loss

    torch.manual_seed(0)
    start, end = torch.randn(3, 7), torch.randn(3, 7)
    inside = span_loss(start[:2], end[:2], torch.tensor([1, 4]), torch.tensor([2, 6]))
    expected = (nn.functional.cross_entropy(start[:2], torch.tensor([1, 4]))
                + nn.functional.cross_entropy(end[:2], torch.tensor([2, 6]))) / 2
    assert torch.allclose(inside, expected)
    # The third answer lies past the 7 positions (clamped, then ignored): the loss is the first two's.
    assert torch.allclose(span_loss(start, end, torch.tensor([1, 4, 30]), torch.tensor([2, 6, 31])), inside)


def test_text_input_shape_takes_ids_or_embeddings_and_names_a_wrong_one():
    from plugformers.modeling_utils import text_input_shape

    assert text_input_shape(torch.zeros(2, 5, dtype=torch.long), None, 8) == (2, 5)
    assert text_input_shape(None, torch.zeros(3, 4, 8), 8) == (3, 4)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        text_input_shape(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, 8), 8)
    with pytest.raises(ValueError, match="exactly one"):
        text_input_shape(None, None, 8)
    with pytest.raises(ValueError, match=r"input_ids must have shape \(batch, seq_len\), got \(5,\)"):
        text_input_shape(torch.zeros(5, dtype=torch.long), None, 8)
    with pytest.raises(ValueError, match=r"inputs_embeds must have shape \(batch, seq_len, dim=8\), got \(2, 5, 6\)"):
        text_input_shape(None, torch.zeros(2, 5, 6), 8, "dim")


def test_init_normal_weights_draws_linear_and_embeddings_and_resets_norms():
    from plugformers.modeling_utils import init_normal_weights

    torch.manual_seed(0)
    linear, embedding, norm = nn.Linear(64, 512), nn.Embedding(512, 64, padding_idx=3), nn.LayerNorm(64)
    nn.init.constant_(norm.weight, 5.0)
    nn.init.constant_(norm.bias, 5.0)
    for module in (linear, embedding, norm):
        init_normal_weights(module, 0.02)
    assert abs(float(linear.weight.std()) - 0.02) < 0.002 and not linear.bias.any()
    assert abs(float(embedding.weight.std()) - 0.02) < 0.002 and not embedding.weight[3].any()
    assert bool((norm.weight == 1).all()) and not norm.bias.any()


@pytest.mark.parametrize(
    "lengths",
    [[6, 6, 6], [5, 6, 7, 7, 3], [2, 30, 3], [1]],
    ids=["one-length", "similar-lengths-padded", "far-apart-per-length", "single"],
)
@pytest.mark.parametrize("backend", ["sdpa", "eager"])
def test_packed_attention_equals_each_sequence_alone(lengths, backend):
    """Packed sequences attend within themselves: one masked call over the sequences padded to the longest
    (similar lengths) or one call per length (far apart); either way each equals the sequence alone."""
    from plugformers.attention import get_attention_function
    from plugformers.masking_utils import PackedSequences

    torch.manual_seed(0)
    sequences = PackedSequences.from_lengths(lengths)
    query, key, value = (torch.randn(1, 2, sequences.total, 4) for _ in range(3))
    attend = get_attention_function(backend)
    module = nn.Module().eval()
    packed = sequences.attend(attend, module, query, key, value, scaling=0.5)
    alone = torch.cat(
        [attend(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None, scaling=0.5)[0]
         for a, b in zip(sequences.cu_seqlens, sequences.cu_seqlens[1:])],
        dim=2,
    )
    assert packed.shape == (1, 2, sequences.total, 4)
    torch.testing.assert_close(packed, alone, atol=1e-6, rtol=1e-6)
