"""Parity of the DistilBERT models with the reference library (run in the nox ``parity`` session).

Checkpoints go both ways (reference save -> our load, our save -> reference load) and every output
(hidden states, attentions, logits, losses) must agree within 1e-5 in float32.
"""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from plugformers_distilbert import modeling_distilbert as ours  # noqa: E402
from plugformers_distilbert.configuration_distilbert import DistilBertConfig  # noqa: E402

ATOL = 1e-5
HEADS = [
    "DistilBertModel",
    "DistilBertForMaskedLM",
    "DistilBertForSequenceClassification",
    "DistilBertForQuestionAnswering",
    "DistilBertForTokenClassification",
    "DistilBertForMultipleChoice",
]
SMALL = dict(vocab_size=99, dim=32, hidden_dim=37, n_heads=4, n_layers=2, max_position_embeddings=64)
CONFIGS = {
    "small": SMALL,
    "sinusoidal": {**SMALL, "sinusoidal_pos_embds": True},
    "relu": {**SMALL, "activation": "relu"},
    "three_labels": {**SMALL, "num_labels": 3, "n_layers": 3},
}


def _inputs(name: str, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A padded batch (second row half padding) plus labels for the head ``name``."""
    g = torch.Generator().manual_seed(seed)
    batch, seq = 3, 9
    shape = (batch, 2, seq) if name == "DistilBertForMultipleChoice" else (batch, seq)
    ids = torch.randint(1, vocab, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., seq // 2 :] = 0
    ids = ids.masked_fill(mask == 0, 0)
    out = {"input_ids": ids, "attention_mask": mask}
    if name == "DistilBertForMaskedLM":
        labels = torch.randint(0, vocab, (batch, seq), generator=g)
        labels[0, :3] = -100
        out["labels"] = labels
    elif name == "DistilBertForSequenceClassification":
        out["labels"] = torch.tensor([0, 1, 1])
    elif name == "DistilBertForTokenClassification":
        out["labels"] = torch.randint(0, 2, (batch, seq), generator=g)
    elif name == "DistilBertForQuestionAnswering":
        out["start_positions"] = torch.tensor([1, 3, 20])  # 20: out of range, clamped and ignored
        out["end_positions"] = torch.tensor([2, 4, 5])
    elif name == "DistilBertForMultipleChoice":
        out["labels"] = torch.tensor([0, 1, 1])
    return out


def _tensors(output: object) -> dict[str, torch.Tensor]:
    flat: dict[str, torch.Tensor] = {}
    for key, value in output.items():  # type: ignore[attr-defined]
        if isinstance(value, torch.Tensor):
            flat[key] = value
        elif isinstance(value, tuple):
            for i, t in enumerate(value):
                flat[f"{key}.{i}"] = t
    return flat


def _assert_close(ref: object, mine: object) -> None:
    a, b = _tensors(ref), _tensors(mine)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].shape == b[key].shape, key
        diff = (a[key].float() - b[key].float()).abs().max().item()
        assert diff <= ATOL, f"{key}: max abs diff {diff}"


def _reference_model(name: str, kwargs: dict, seed: int = 0, attn: str = "eager"):
    torch.manual_seed(seed)
    config = transformers.DistilBertConfig(**kwargs)
    config._attn_implementation = attn
    model = getattr(transformers, name)(config).eval()
    return model


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
@pytest.mark.parametrize("name", HEADS)
def test_reference_checkpoint_loads_and_matches(tmp_path, name, config_name):
    kwargs = CONFIGS[config_name]
    if name == "DistilBertForQuestionAnswering" and kwargs.get("num_labels", 2) != 2:
        pytest.skip("question answering always has two labels (start, end)")
    ref = _reference_model(name, kwargs)
    ref.save_pretrained(tmp_path)
    mine = getattr(ours, name).from_pretrained(tmp_path, attn_implementation="eager")
    assert not mine.training
    inputs = _inputs(name, kwargs["vocab_size"])
    with torch.no_grad():
        expected = ref(**inputs, output_hidden_states=True, output_attentions=True)
        got = mine(**inputs, output_hidden_states=True, output_attentions=True)
        _assert_close(expected, got)
        # Without the extra outputs (the classification heads then take their first-token shortcut).
        plain_ref = ref(**inputs)
        _assert_close(plain_ref, mine(**inputs))
        mine.set_attn_implementation("sdpa")
        _assert_close(plain_ref, mine(**inputs))
        mine.enable_fast_path()
        _assert_close(plain_ref, mine(**inputs))


@pytest.mark.parametrize("name", HEADS)
def test_our_checkpoint_loads_in_reference(tmp_path, name):
    torch.manual_seed(1)
    mine = getattr(ours, name)(DistilBertConfig(**SMALL)).eval()
    mine.save_pretrained(tmp_path)
    ref = getattr(transformers, name).from_pretrained(tmp_path, attn_implementation="eager").eval()
    inputs = _inputs(name, SMALL["vocab_size"], seed=3)
    with torch.no_grad():
        _assert_close(ref(**inputs, output_hidden_states=True), mine(**inputs, output_hidden_states=True))


def test_checkpoint_saved_with_fast_path_on_loads_in_reference(tmp_path):
    torch.manual_seed(2)
    mine = ours.DistilBertForSequenceClassification(DistilBertConfig(**SMALL)).eval().enable_fast_path()
    mine.save_pretrained(tmp_path)
    ref = transformers.DistilBertForSequenceClassification.from_pretrained(tmp_path).eval()
    inputs = _inputs("DistilBertForSequenceClassification", SMALL["vocab_size"])
    with torch.no_grad():
        _assert_close(ref(**inputs), mine(**inputs))


@pytest.mark.parametrize("name", HEADS)
def test_state_dict_names_and_shapes_match(name):
    ref = _reference_model(name, SMALL)
    mine = getattr(ours, name)(DistilBertConfig(**SMALL))
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    my_shapes = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    assert my_shapes == ref_shapes


def test_default_config_prints_and_saves_like_reference(tmp_path):
    ref_cfg = transformers.DistilBertConfig()
    my_cfg = DistilBertConfig()
    ref_json = json.loads(ref_cfg.to_json_string())
    my_json = json.loads(my_cfg.to_json_string())
    ref_json.pop("transformers_version")
    my_json.pop("plugformers_version")
    assert my_json == ref_json
    custom = {"activation": "relu", "attention_dropout": 0.4}
    ref_json = json.loads(transformers.DistilBertConfig(**custom).to_json_string())
    ref_json.pop("transformers_version")
    my_json = json.loads(DistilBertConfig(**custom).to_json_string())
    my_json.pop("plugformers_version")
    assert my_json == ref_json
    # A config.json written by the reference loads here and ours there.
    transformers.DistilBertConfig(n_layers=3, sinusoidal_pos_embds=True).save_pretrained(tmp_path / "ref")
    loaded = DistilBertConfig.from_pretrained(tmp_path / "ref")
    assert (loaded.n_layers, loaded.sinusoidal_pos_embds) == (3, True)
    DistilBertConfig(n_heads=4, dim=64).save_pretrained(tmp_path / "mine")
    back = transformers.DistilBertConfig.from_pretrained(tmp_path / "mine")
    assert (back.n_heads, back.dim) == (4, 64)


def test_default_size_model_matches(tmp_path):
    ref = _reference_model("DistilBertModel", {}, attn="sdpa")
    ref.save_pretrained(tmp_path)
    mine = ours.DistilBertModel.from_pretrained(tmp_path)
    inputs = _inputs("DistilBertModel", 30522)
    with torch.no_grad():
        _assert_close(ref(**inputs), mine(**inputs))


REFERENCE_ACTIVATIONS = [
    "gelu", "gelu_10", "gelu_fast", "gelu_new", "gelu_python", "gelu_pytorch_tanh", "gelu_python_tanh",
    "gelu_accurate", "hardswish", "laplace", "leaky_relu", "linear", "mish", "quick_gelu", "relu", "relu2",
    "relu6", "sigmoid", "silu", "sqrtsoftplus", "swish", "tanh", "prelu", "xielu",
]  # fmt: skip


@pytest.mark.parametrize("activation", REFERENCE_ACTIVATIONS)
def test_every_reference_activation(tmp_path, activation):
    kwargs = {**SMALL, "activation": activation, "n_layers": 1}
    ref = _reference_model("DistilBertForMaskedLM", kwargs)
    ref.save_pretrained(tmp_path)
    mine = ours.DistilBertForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager")
    inputs = _inputs("DistilBertForMaskedLM", SMALL["vocab_size"])
    with torch.no_grad():
        _assert_close(ref(**inputs, output_hidden_states=True), mine(**inputs, output_hidden_states=True))


@pytest.mark.parametrize("problem_type,labels", [
    ("regression", torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.4]])),
    ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])),
    ("single_label_classification", torch.tensor([2, 0, 1])),
])  # fmt: skip
def test_sequence_classification_losses(tmp_path, problem_type, labels):
    kwargs = {**SMALL, "num_labels": 3, "problem_type": problem_type}
    ref = _reference_model("DistilBertForSequenceClassification", kwargs)
    ref.save_pretrained(tmp_path)
    mine = ours.DistilBertForSequenceClassification.from_pretrained(tmp_path)
    inputs = _inputs("DistilBertForSequenceClassification", SMALL["vocab_size"])
    inputs["labels"] = labels
    with torch.no_grad():
        _assert_close(ref(**inputs), mine(**inputs))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("name", ["DistilBertModel", "DistilBertForSequenceClassification"])
def test_4d_additive_mask_matches(tmp_path, name, attn):
    """A (batch, 1, seq, seq) float mask whose query rows differ (causal plus padding)."""
    ref = _reference_model(name, SMALL, attn=attn)
    ref.save_pretrained(tmp_path)
    mine = getattr(ours, name).from_pretrained(tmp_path, attn_implementation=attn)
    inputs = _inputs(name, SMALL["vocab_size"])
    keep = torch.tril(torch.ones(9, 9, dtype=torch.bool))[None, None] & inputs["attention_mask"].bool()[:, None, None, :]
    inputs["attention_mask"] = torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)
    with torch.no_grad():
        _assert_close(ref(**inputs), mine(**inputs))


def test_inputs_embeds_match(tmp_path):
    ref = _reference_model("DistilBertModel", SMALL)
    ref.save_pretrained(tmp_path)
    mine = ours.DistilBertModel.from_pretrained(tmp_path)
    embeds = torch.randn(2, 5, SMALL["dim"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _assert_close(ref(inputs_embeds=embeds), mine(inputs_embeds=embeds))


def test_random_init_statistics_match_reference():
    """Fresh models are initialised like the reference's (same distributions, padding row zero)."""
    kwargs = {**SMALL, "dim": 64, "n_heads": 4}
    ref = _reference_model("DistilBertForMaskedLM", kwargs)
    mine = ours.DistilBertForMaskedLM(DistilBertConfig(**kwargs))
    ref_sd, my_sd = ref.state_dict(), mine.state_dict()
    for key in ref_sd:
        a, b = ref_sd[key].float(), my_sd[key].float()
        assert abs(a.mean() - b.mean()) < 0.01, key
        assert abs(a.std() - b.std()) < 0.01 or a.numel() < 2, key
    pad = mine.config.pad_token_id
    assert torch.all(my_sd["distilbert.embeddings.word_embeddings.weight"][pad] == 0)


# ----- loading behaviour: the same answers as the reference ----------------------------------------------


def _ref_quiet() -> None:
    transformers.logging.set_verbosity_error()


def _both():
    import plugformers

    return (("ref", transformers), ("ours", plugformers))


@pytest.mark.parametrize("kwargs", [{"dtype": torch.float16}, {"torch_dtype": torch.bfloat16}, {"dtype": "auto"}])
def test_auto_model_dtype_matches_reference(tmp_path, kwargs):
    _ref_quiet()
    transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig(**SMALL)).half().save_pretrained(tmp_path)
    got = {}
    for name, lib in _both():
        model = lib.AutoModelForSequenceClassification.from_pretrained(tmp_path, **kwargs)
        got[name] = (model.dtype, model.config.dtype)
    assert got["ours"] == got["ref"]


@pytest.mark.parametrize("stored_under", ["vocab_projector.weight", None])
def test_tied_weight_under_one_or_no_name_matches_reference(tmp_path, stored_under):
    from safetensors.torch import load_file, save_file

    _ref_quiet()
    transformers.DistilBertForMaskedLM(transformers.DistilBertConfig(**SMALL)).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    weight = tensors.pop("distilbert.embeddings.word_embeddings.weight")
    if stored_under:
        tensors[stored_under] = weight
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    got = {}
    for name, lib in _both():
        model, info = lib.DistilBertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
        embedding = model.distilbert.embeddings.word_embeddings.weight
        assert torch.isfinite(embedding).all()
        got[name] = (sorted(info["missing_keys"]), torch.equal(embedding, weight), model.vocab_projector.weight is embedding)
    assert got["ours"] == got["ref"]


def test_mismatched_sizes_report_matches_reference(tmp_path):
    _ref_quiet()
    transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig(**SMALL, num_labels=3)).save_pretrained(
        tmp_path
    )
    got = {}
    for name, lib in _both():
        _, info = lib.DistilBertForSequenceClassification.from_pretrained(
            tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
        )
        got[name] = (sorted(info["missing_keys"]), sorted(str(k[0]) for k in info["mismatched_keys"]))
    assert got["ours"] == got["ref"]


def test_state_dict_loading_matches_reference(tmp_path):
    _ref_quiet()
    reference = transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig(**SMALL))
    reference.save_pretrained(tmp_path)
    zeros = {k: torch.zeros_like(v) for k, v in reference.state_dict().items()}
    for _name, lib in _both():
        config = lib.DistilBertConfig.from_pretrained(tmp_path)
        model = lib.DistilBertForSequenceClassification.from_pretrained(None, config=config, state_dict=zeros)
        assert torch.all(model.classifier.weight == 0)
        with pytest.raises(ValueError):
            lib.DistilBertForSequenceClassification.from_pretrained(tmp_path, config=config, state_dict=zeros)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id2label": {0: "a"}, "num_labels": 3},
        {"label2id": {"a": 0, "b": 1, "c": 2}},
        {"id2label": {"0": "x", "1": "y", "2": "z"}, "num_labels": 3},
        {"num_labels": 4},
    ],
)
def test_label_maps_match_reference(kwargs):
    _ref_quiet()
    ref = transformers.DistilBertConfig(**kwargs)
    ours_config = DistilBertConfig(**kwargs)
    assert (ours_config.num_labels, ours_config.id2label) == (ref.num_labels, ref.id2label)
    # Where the reference leaves label2id unset we fill in the inverse of id2label (docs/differences.md).
    expected = ref.label2id if ref.label2id is not None else {v: k for k, v in ref.id2label.items()}
    assert ours_config.label2id == expected


def test_resaved_config_json_keys_match_reference(tmp_path):
    _ref_quiet()
    transformers.DistilBertModel(transformers.DistilBertConfig(**SMALL)).save_pretrained(tmp_path / "src")
    saved = {}
    for name, lib in _both():
        model = lib.DistilBertModel.from_pretrained(tmp_path / "src", dtype=torch.float16)
        assert model.config.dtype is torch.float16
        model.save_pretrained(tmp_path / name)
        saved[name] = json.loads((tmp_path / name / "config.json").read_text())
    assert "_name_or_path" not in saved["ours"] and "_name_or_path" not in saved["ref"]
    assert saved["ours"]["dtype"] == saved["ref"]["dtype"] == "float16"
    drop = {"transformers_version", "plugformers_version"}
    assert set(saved["ours"]) - drop == set(saved["ref"]) - drop


def test_overrides_applied_before_validation_like_reference(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "distilbert", "dim": 32, "n_heads": 12}))
    for _name, lib in _both():
        assert lib.AutoConfig.from_pretrained(tmp_path, n_heads=2).n_heads == 2
        assert lib.DistilBertConfig.from_dict({"dim": 32}, n_heads=2).n_heads == 2


@pytest.mark.parametrize("key", ["return_dict", "output_hidden_states", "output_attentions"])
def test_null_switch_behaves_like_reference(tmp_path, key):
    _ref_quiet()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "distilbert", **SMALL, key: None}))
    ids = torch.tensor([[1, 2, 3]])
    kinds = {}
    for name, lib in _both():
        model = lib.DistilBertModel(lib.AutoConfig.from_pretrained(tmp_path)).eval()
        out = model(ids)
        kinds[name] = (type(out).__name__, out.hidden_states is None, out.attentions is None)
    assert kinds["ours"] == kinds["ref"]
