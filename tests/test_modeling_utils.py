"""PreTrainedModel loading and saving: prefixes, tying, dtype, pickle refusal, corrupt files, atomic saves."""

from __future__ import annotations

import json
import os

import pytest
import torch

from plugformers import AutoModel, AutoModelForSequenceClassification
from plugformers.modeling_utils import WeightsLoadingError, classification_loss

from tinyfamily import TinyConfig, TinyForMaskedLM, TinyForSequenceClassification, TinyModel


def _ids():
    return torch.tensor([[1, 2, 3, 4]])


def test_tied_decoder_is_saved_once_and_retied_on_load(tmp_path):
    model = TinyForMaskedLM(TinyConfig())
    assert model.decoder.weight is model.tiny.embeddings.weight
    model.save_pretrained(tmp_path)
    from safetensors import safe_open

    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "tiny.embeddings.weight" in keys and "decoder.weight" not in keys
    loaded, info = TinyForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set()
    assert loaded.decoder.weight is loaded.tiny.embeddings.weight
    torch.testing.assert_close(loaded(_ids()).logits, model.eval()(_ids()).logits)


def _rewrite_weights(folder, edit):
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def test_tied_weight_stored_only_under_the_output_name_loads_both(tmp_path):
    model = TinyForMaskedLM(TinyConfig())
    model.save_pretrained(tmp_path)
    weight = model.tiny.embeddings.weight.detach().clone()
    _rewrite_weights(tmp_path, lambda t: t.__setitem__("decoder.weight", t.pop("tiny.embeddings.weight")))
    loaded, info = TinyForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set()
    assert loaded.decoder.weight is loaded.tiny.embeddings.weight
    assert torch.equal(loaded.tiny.embeddings.weight, weight)


def test_tied_weight_under_neither_name_is_reported_and_initialised(tmp_path):
    TinyForMaskedLM(TinyConfig()).save_pretrained(tmp_path)
    _rewrite_weights(tmp_path, lambda t: t.pop("tiny.embeddings.weight"))
    loaded, info = TinyForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["decoder.weight", "tiny.embeddings.weight"]
    assert loaded.decoder.weight is loaded.tiny.embeddings.weight
    assert torch.isfinite(loaded.tiny.embeddings.weight).all() and loaded.tiny.embeddings.weight.abs().sum() > 0


def test_missing_head_weights_are_initialised_and_reported_once(tmp_path, caplog):
    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    with caplog.at_level("WARNING"):
        model, info = TinyForSequenceClassification.from_pretrained(tmp_path, num_labels=4, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert model.classifier.weight.abs().sum() > 0  # initialised, not left empty
    assert torch.all(model.classifier.bias == 0)
    assert sum("newly initialised" in r.message for r in caplog.records) == 1


def test_loading_skips_random_init_but_keeps_non_persistent_buffers(tmp_path):
    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    loaded = TinyModel.from_pretrained(tmp_path)
    assert torch.equal(loaded.position_ids, torch.arange(64))


def test_config_object_and_overrides(tmp_path):
    TinyModel(TinyConfig(dim=8)).save_pretrained(tmp_path)
    cfg = TinyConfig(dim=8, n_layers=2, output_hidden_states=True)
    model = TinyModel.from_pretrained(tmp_path, config=cfg)
    assert model.config.output_hidden_states is True
    assert model.config is not cfg  # the caller's config is not mutated later by the model
    model2 = TinyModel.from_pretrained(tmp_path, output_hidden_states=True)
    assert model2.config.output_hidden_states


def test_shape_mismatch_lists_keys_unless_ignored(tmp_path):
    TinyModel(TinyConfig(vocab_size=20)).save_pretrained(tmp_path)
    with pytest.raises(WeightsLoadingError, match=r"embeddings\.weight.*\[20, 8\].*\[30, 8\]") as raised:
        TinyModel.from_pretrained(tmp_path, vocab_size=30)
    # Code written against the reference catches RuntimeError here; code written against ours, OSError.
    assert isinstance(raised.value, RuntimeError) and isinstance(raised.value, OSError)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes=True"):
        TinyModel.from_pretrained(tmp_path, vocab_size=30)
    model, info = TinyModel.from_pretrained(tmp_path, vocab_size=30, ignore_mismatched_sizes=True, output_loading_info=True)
    assert info["mismatched_keys"] == {("embeddings.weight", torch.Size([20, 8]), torch.Size([30, 8]))}
    assert model.embeddings.weight.shape == (30, 8)


def test_loading_info_holds_sets_of_keys_and_a_list_of_messages(tmp_path):
    TinyForSequenceClassification(TinyConfig(num_labels=3)).save_pretrained(tmp_path)
    _, info = TinyModel.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {
        "missing_keys": set(),
        "unexpected_keys": {"classifier.weight", "classifier.bias"},
        "mismatched_keys": set(),
        "error_msgs": [],
    }
    _, info = TinyForSequenceClassification.from_pretrained(
        tmp_path, num_labels=4, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert info["mismatched_keys"] == {
        ("classifier.weight", torch.Size([3, 8]), torch.Size([4, 8])),
        ("classifier.bias", torch.Size([3]), torch.Size([4])),
    }
    assert all(type(shape) is torch.Size for _, *shapes in info["mismatched_keys"] for shape in shapes)


def test_other_unusable_weights_stay_oserrors(tmp_path):
    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(OSError, match="not a valid safetensors file"):
        TinyModel.from_pretrained(tmp_path)


def test_from_pretrained_under_a_meta_default_device_is_refused(tmp_path):
    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    with torch.device("meta"), pytest.raises(RuntimeError, match=r"TinyModel\.from_pretrained.*'meta'.*TinyModel\(config\)"):
        TinyModel.from_pretrained(tmp_path)
    with torch.device("meta"), pytest.raises(RuntimeError, match="'meta'"):
        AutoModel.from_pretrained(tmp_path)
    with torch.device("meta"):
        empty = TinyModel(TinyConfig())  # building an empty model there is what the message points to
    assert empty.embeddings.weight.is_meta
    assert TinyModel.from_pretrained(tmp_path).embeddings.weight.device.type == "cpu"  # the context left no trace


def test_model_loading_records_the_path_it_loaded_from(tmp_path):
    TinyModel(TinyConfig()).save_pretrained(tmp_path / "a")
    model = TinyModel.from_pretrained(tmp_path / "a")
    assert model.config.name_or_path == str(tmp_path / "a") and model.name_or_path == str(tmp_path / "a")
    model.save_pretrained(tmp_path / "b")
    given = TinyConfig.from_pretrained(tmp_path / "a")
    given.name_or_path = "somewhere-else"
    assert TinyModel.from_pretrained(tmp_path / "b", config=given).config.name_or_path == str(tmp_path / "b")
    assert given.name_or_path == "somewhere-else"  # the caller's config is left as it was


def test_mismatched_keys_are_initialised_but_not_also_listed_as_missing(tmp_path, caplog):
    TinyForSequenceClassification(TinyConfig(num_labels=3)).save_pretrained(tmp_path)
    with caplog.at_level("WARNING"):
        model, info = TinyForSequenceClassification.from_pretrained(
            tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
        )
    assert info["missing_keys"] == set()
    assert sorted(k for k, _, _ in info["mismatched_keys"]) == ["classifier.bias", "classifier.weight"]
    assert model.classifier.weight.shape == (5, 8) and model.classifier.weight.abs().sum() > 0
    (message,) = [r.message for r in caplog.records if "classifier" in r.message]
    assert "not in the checkpoint" not in message and "shape differs" in message


def test_state_dict_in_memory_instead_of_a_path(tmp_path):
    model = TinyForSequenceClassification(TinyConfig(num_labels=3)).eval()
    zeros = {k: torch.zeros_like(v) for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    loaded, info = TinyForSequenceClassification.from_pretrained(
        None, config=model.config, state_dict=zeros, output_loading_info=True
    )
    assert torch.all(loaded.tiny.layers[0].weight == 0)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    half = {k: v.half() for k, v in model.state_dict().items()}
    assert TinyForSequenceClassification.from_pretrained(None, config=model.config, state_dict=half, dtype="auto").dtype == (
        torch.float16
    )
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not both"):  # as in the reference: one source of weights
        TinyForSequenceClassification.from_pretrained(tmp_path, state_dict=zeros)
    with pytest.raises(ValueError, match="needs both config= and state_dict="):
        TinyForSequenceClassification.from_pretrained(None, state_dict=zeros)


def test_pickle_checkpoints_refused_by_default_and_loaded_weights_only(tmp_path):
    model = TinyModel(TinyConfig())
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(WeightsLoadingError, match="use_safetensors=False"):
        TinyModel.from_pretrained(tmp_path)
    loaded = TinyModel.from_pretrained(tmp_path, use_safetensors=False)
    torch.testing.assert_close(loaded(_ids()).last_hidden_state, model.eval()(_ids()).last_hidden_state)


def test_pickle_with_code_is_never_executed(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    TinyConfig().save_pretrained(tmp_path)
    with open(tmp_path / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"embeddings.weight": Evil()}, fh)
    with pytest.raises(WeightsLoadingError):
        TinyModel.from_pretrained(tmp_path, use_safetensors=False)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate_header", "lie_about_length", "garbage"])
def test_corrupt_safetensors_names_the_file(tmp_path, damage):
    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    if damage == "truncate_header":
        data = data[:20]
    elif damage == "lie_about_length":
        data[0:8] = (10**9).to_bytes(8, "little")
    else:
        data = bytearray(b"not a safetensors file at all")
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsLoadingError, match=r"model\.safetensors"):
        TinyModel.from_pretrained(tmp_path)


def test_missing_weights_file_is_clear(tmp_path):
    TinyConfig().save_pretrained(tmp_path)
    with pytest.raises(OSError, match="no weights"):
        TinyModel.from_pretrained(tmp_path)


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = TinyModel(TinyConfig())
    model.save_pretrained(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    import plugformers.modeling_utils as mu

    def boom(*a, **k):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(mu, "_write_safetensors", boom)
    with pytest.raises(RuntimeError):
        TinyModel(TinyConfig(dim=8, n_layers=1)).save_pretrained(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_save_keeps_unrelated_files_and_removes_stale_shards(tmp_path):
    (tmp_path / "vocab.txt").write_text("hello\n")
    model = TinyModel(TinyConfig())
    model.save_pretrained(tmp_path, max_shard_size=300)
    assert any(n.startswith("model-000") for n in os.listdir(tmp_path))
    model.save_pretrained(tmp_path)
    names = sorted(os.listdir(tmp_path))
    assert names == ["config.json", "model.safetensors", "vocab.txt"]


def test_dtype_auto_uses_checkpoint_dtype(tmp_path):
    TinyModel(TinyConfig()).to(torch.float16).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "float16"
    model = TinyModel.from_pretrained(tmp_path, dtype="auto")
    assert model.dtype == torch.float16
    with pytest.raises(ValueError, match="Unknown dtype"):
        TinyModel.from_pretrained(tmp_path, dtype="float17")


def test_half_precision_load_builds_the_model_in_that_dtype(tmp_path, monkeypatch):
    # On a GPU a float32 build before loading would take twice the memory of the bfloat16 model.
    TinyForMaskedLM(TinyConfig()).save_pretrained(tmp_path)
    built = []
    original = TinyForMaskedLM.__init__

    def spy(self, config):
        original(self, config)
        built.append({p.dtype for p in self.parameters()})

    monkeypatch.setattr(TinyForMaskedLM, "__init__", spy)
    model = TinyForMaskedLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert built == [{torch.bfloat16}] and model.dtype == torch.bfloat16
    assert torch.get_default_dtype() == torch.float32

    def broken(self, config):
        raise RuntimeError("boom")

    monkeypatch.setattr(TinyForMaskedLM, "__init__", broken)
    with pytest.raises(RuntimeError, match="boom"):
        TinyForMaskedLM.from_pretrained(tmp_path, dtype=torch.float16)
    assert torch.get_default_dtype() == torch.float32, "a failed load must restore torch's default dtype"


def test_default_dtype_load_is_not_built_in_a_concurrent_half_precision_load(tmp_path):
    # torch's default dtype is process-wide: a float32 load that builds while another thread's bfloat16
    # load has switched it would silently come out in bfloat16.
    import threading

    from plugformers.modeling_utils import _default_float_dtype

    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    switched, release = threading.Event(), threading.Event()

    def half_precision_build():
        with _default_float_dtype(torch.bfloat16):
            switched.set()
            release.wait(10)

    other = threading.Thread(target=half_precision_build)
    other.start()
    try:
        assert switched.wait(10)
        timer = threading.Timer(0.2, release.set)
        timer.start()
        model = TinyModel.from_pretrained(tmp_path)
    finally:
        release.set()
        other.join()
    assert model.dtype == torch.float32
    assert torch.get_default_dtype() == torch.float32


def test_nested_loads_in_different_dtypes_do_not_deadlock():
    # A model whose __init__ loads a sub-model (a pretrained backbone) in another dtype re-enters the lock.
    from plugformers.modeling_utils import _default_float_dtype

    with _default_float_dtype(torch.bfloat16):
        with _default_float_dtype(torch.float16):
            assert torch.empty(1).dtype == torch.float16
        assert torch.empty(1).dtype == torch.bfloat16
    assert torch.get_default_dtype() == torch.float32


def test_device_map_split_over_devices_is_refused(tmp_path):
    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    with pytest.raises(NotImplementedError, match="one device"):
        TinyModel.from_pretrained(tmp_path, device_map={"embeddings": "cpu", "layers": "meta"})
    assert TinyModel.from_pretrained(tmp_path, device_map={"": "cpu"}).device.type == "cpu"


def test_resize_token_embeddings_keeps_rows_and_ties(tmp_path):
    model = TinyForMaskedLM(TinyConfig(vocab_size=20))
    old = model.tiny.embeddings.weight.detach().clone()
    model.resize_token_embeddings(25, pad_to_multiple_of=8)
    assert model.config.vocab_size == 32
    assert torch.equal(model.tiny.embeddings.weight[:20], old)
    assert model.decoder.weight is model.tiny.embeddings.weight
    assert model.decoder.bias.shape == (32,)
    assert model(_ids()).logits.shape[-1] == 32


def test_num_parameters_counts_tied_weights_once():
    model = TinyForMaskedLM(TinyConfig(vocab_size=20, dim=8, n_layers=1))
    expected = 20 * 8 + (8 * 8 + 8) + 20  # embeddings (shared with decoder) + layer + decoder bias
    assert model.num_parameters() == expected
    assert model.num_parameters(exclude_embeddings=True) == expected - 160


def test_auto_model_rejects_mismatched_registration():
    from plugformers import AutoConfig, PretrainedConfig

    class OtherConfig(PretrainedConfig):
        model_type = "other-test"

    with pytest.raises(ValueError, match="must equal the config's model_type"):
        AutoConfig.register("wrong-key", OtherConfig)
    with pytest.raises(ValueError, match="config_class is TinyConfig"):
        AutoModel.register(OtherConfig, TinyModel)
    with pytest.raises(ValueError, match="already registered"):
        AutoConfig.register("tiny-test", TinyConfig)
    AutoConfig.register("tiny-test", TinyConfig, exist_ok=True)


def test_auto_models_are_looked_up_by_config_class_not_model_type_string():
    from plugformers import AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel

    class LookalikeConfig(PretrainedConfig):  # a custom config that reuses an installed family's model_type
        model_type = "tiny-test"

    class LookalikeModel(PreTrainedModel):
        config_class = LookalikeConfig

        def __init__(self, config):
            super().__init__(config)
            self.layer = torch.nn.Linear(2, 2)

    with pytest.raises(ValueError, match=r"belongs to .*TinyConfig.*register"):
        AutoModel.from_config(LookalikeConfig())
    AutoModel.register(LookalikeConfig, LookalikeModel)  # no exist_ok needed: the family's entry is untouched
    assert type(AutoModel.from_config(LookalikeConfig())) is LookalikeModel
    assert type(AutoModel.from_config(TinyConfig())) is TinyModel
    with pytest.raises(ValueError, match="belongs to"):
        AutoModelForMaskedLM.from_config(LookalikeConfig())


def test_running_runtime_registrations_again_replaces_them():
    from plugformers import AutoConfig, PretrainedConfig, PreTrainedModel

    def define(width):  # what re-running a notebook cell does: new classes under the same names
        class RerunConfig(PretrainedConfig):
            model_type = "rerun-test"

        class RerunModel(PreTrainedModel):
            config_class = RerunConfig

            def __init__(self, config):
                super().__init__(config)
                self.layer = torch.nn.Linear(width, width)

        AutoConfig.register("rerun-test", RerunConfig)
        AutoModel.register(RerunConfig, RerunModel)
        return RerunConfig, RerunModel

    define(2)
    config_class, model_class = define(3)
    assert AutoConfig.for_model("rerun-test").__class__ is config_class
    assert type(AutoModel.from_config(config_class())) is model_class


def test_register_for_auto_class_checks_the_name():
    from plugformers import PretrainedConfig

    with pytest.raises(ValueError, match=r"not a plugformers Auto class.*AutoModelForImageClassification"):
        TinyModel.register_for_auto_class("AutoModelForImageClasification")
    with pytest.raises(ValueError, match="not a plugformers Auto class"):
        TinyModel.register_for_auto_class("AutoTokenizer")  # a model class is not a tokenizer

    class SharedConfig(PretrainedConfig):
        model_type = "shared-test"

    SharedConfig.register_for_auto_class("AutoModel")  # any Auto class is accepted, as in the reference
    assert SharedConfig._auto_class == "AutoConfig"
    with pytest.raises(ValueError, match="not a plugformers Auto class"):
        SharedConfig.register_for_auto_class("AutoConfg")


def test_auto_head_from_base_checkpoint(tmp_path):
    TinyModel(TinyConfig()).save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert isinstance(model, TinyForSequenceClassification)
    with pytest.raises(ValueError, match="no model for"):
        from plugformers import AutoModelForCTC

        AutoModelForCTC.from_pretrained(tmp_path)


def test_classification_loss_infers_problem_type():
    cfg = TinyConfig(num_labels=3)
    logits = torch.randn(4, 3)
    loss = classification_loss(logits, torch.tensor([0, 1, 2, 1]), cfg)
    assert cfg.problem_type == "single_label_classification" and loss.ndim == 0
    cfg2 = TinyConfig(num_labels=3)
    classification_loss(logits, torch.rand(4, 3), cfg2)
    assert cfg2.problem_type == "multi_label_classification"
    cfg3 = TinyConfig(num_labels=1)
    classification_loss(torch.randn(4, 1), torch.randn(4), cfg3)
    assert cfg3.problem_type == "regression"


def test_gradient_checkpointing_requires_support():
    with pytest.raises(ValueError, match="does not support gradient checkpointing"):
        TinyModel(TinyConfig()).gradient_checkpointing_enable()


def test_set_attn_implementation_validates_names():
    model = TinyModel(TinyConfig())
    assert model.config._attn_implementation == "sdpa"
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="Unknown attn_implementation"):
        model.set_attn_implementation("flash_attention_9")


def test_model_requires_a_config_object():
    with pytest.raises(TypeError, match="takes a PretrainedConfig"):
        TinyModel({"dim": 3})


def test_eight_threads_loading_one_checkpoint_get_equal_models(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    TinyForMaskedLM(TinyConfig()).save_pretrained(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: TinyForMaskedLM.from_pretrained(tmp_path), range(8)))
    ref = models[0].state_dict()
    for m in models[1:]:
        for k, v in m.state_dict().items():
            assert torch.equal(v, ref[k])
    # init functions were restored once every loader finished
    t = torch.zeros(3)
    torch.nn.init.ones_(t)
    assert torch.equal(t, torch.ones(3))


# ----- every model-loading keyword goes through the Auto classes to the model ------------------------


@pytest.fixture
def tiny_classifier(tmp_path):
    model = TinyForSequenceClassification(TinyConfig(num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    return tmp_path, model


@pytest.mark.parametrize("key", ["dtype", "torch_dtype"])
def test_auto_dtype_reaches_the_model(tiny_classifier, key):
    folder, _ = tiny_classifier
    model = AutoModelForSequenceClassification.from_pretrained(folder, **{key: torch.float16})
    assert model.dtype == torch.float16 and model.config.dtype is torch.float16


def test_auto_dtype_auto_follows_the_checkpoint(tmp_path):
    TinyModel(TinyConfig()).to(torch.bfloat16).save_pretrained(tmp_path)
    model = AutoModel.from_pretrained(tmp_path, dtype="auto")
    assert model.dtype == torch.bfloat16 and model.config.dtype is torch.bfloat16


def test_auto_device_map_reaches_the_model(tiny_classifier):
    folder, _ = tiny_classifier
    with pytest.raises(NotImplementedError, match="one device"):  # proves the model saw it
        AutoModelForSequenceClassification.from_pretrained(folder, device_map={"tiny": "cpu", "classifier": "meta"})
    assert AutoModelForSequenceClassification.from_pretrained(folder, device_map="cpu").device.type == "cpu"


def test_auto_attn_implementation_reaches_the_model(tiny_classifier):
    folder, _ = tiny_classifier
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="Unknown attn_implementation"):
        AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="no-such-kernel")


def test_auto_output_loading_info_and_ignore_mismatched_sizes_reach_the_model(tiny_classifier):
    folder, _ = tiny_classifier
    model, info = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert model.config.num_labels == 5 and model.classifier.out_features == 5
    assert sorted(k for k, _, _ in info["mismatched_keys"]) == ["classifier.bias", "classifier.weight"]
    with pytest.raises(WeightsLoadingError, match="ignore_mismatched_sizes"):
        AutoModelForSequenceClassification.from_pretrained(folder, num_labels=5)


def test_auto_use_safetensors_reaches_the_model(tiny_classifier, tmp_path):
    _, model = tiny_classifier
    model.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    with pytest.raises(WeightsLoadingError, match="use_safetensors=False"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "pickled")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pickled", use_safetensors=False)
    torch.testing.assert_close(loaded(_ids()).logits, model(_ids()).logits)


def test_auto_state_dict_reaches_the_model(tiny_classifier):
    folder, model = tiny_classifier
    zeros = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    loaded = AutoModelForSequenceClassification.from_pretrained(None, config=model.config, state_dict=zeros)
    assert isinstance(loaded, TinyForSequenceClassification) and torch.all(loaded.classifier.weight == 0)
    with pytest.raises(ValueError, match="not both"):
        AutoModelForSequenceClassification.from_pretrained(folder, state_dict=zeros)


def test_auto_low_cpu_mem_usage_and_trust_remote_code_are_accepted(tiny_classifier):
    folder, model = tiny_classifier
    loaded = AutoModelForSequenceClassification.from_pretrained(folder, low_cpu_mem_usage=True, trust_remote_code=False)
    torch.testing.assert_close(loaded(_ids()).logits, model(_ids()).logits)


def test_auto_subfolder_and_config_path_reach_the_model(tmp_path):
    model = TinyForSequenceClassification(TinyConfig(num_labels=3)).eval()
    model.save_pretrained(tmp_path / "repo" / "sub")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "repo", subfolder="sub", local_files_only=True)
    torch.testing.assert_close(loaded(_ids()).logits, model(_ids()).logits)
    TinyConfig(num_labels=3, output_hidden_states=True).save_pretrained(tmp_path / "other-config")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "repo" / "sub", config=str(tmp_path / "other-config"))
    assert loaded.config.output_hidden_states is True


def test_auto_config_object_with_field_overrides(tiny_classifier):
    folder, model = tiny_classifier
    loaded = AutoModelForSequenceClassification.from_pretrained(
        folder, config=model.config, output_hidden_states=True, dtype=torch.float16
    )
    assert loaded.config.output_hidden_states is True and loaded.dtype == torch.float16
    assert model.config.output_hidden_states is False  # the caller's config is left alone
