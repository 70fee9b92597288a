"""Training under torch.distributed: FSDP2, DDP, DCP and sharded loading, on 2 gloo processes via torchrun.

One ``torchrun --nproc-per-node 2`` launch (``distributed_worker.py``) runs every 2-rank scenario; the
tests here check its results against single-process runs of the same code on the same data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import plugformers
from plugformers.distributed import (
    fsdp_blocks,
    full_state_dict,
    fully_shard_model,
    load_sharded,
    parameters_on_meta,
    save_pretrained,
)
from plugformers.plugins import get_registry, import_object

from distributed_worker import (
    CONFIG_VARIANTS,
    SPLIT_INVARIANT,
    TASK_HEADS,
    make_optimizer,
    task_batch,
    task_model,
    tiny_config,
    train_steps,
)

WORKER = Path(__file__).with_name("distributed_worker.py")
# Rounding differs between one process and two (sums in another order): measured up to 4.8e-7.
LOSS_TOL = 1e-5


def torchrun(nproc: int, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``distributed_worker.py`` under ``torchrun --standalone`` (a free local port each time)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(WORKER.parent), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(WORKER), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _single_process_dcp(folder: Path) -> list[float]:
    """Train 2 steps in one process, save model and optimizer with DCP, go on 2 steps: the later losses."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model = task_model("distilbert")
    opt = make_optimizer(model)
    batch = task_batch("distilbert")
    train_steps(model, batch, 2, optimizer=opt)
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(folder), no_dist=True)
    return train_steps(model, batch, 2, optimizer=opt)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Write the checkpoints the scenarios read, launch them on 2 ranks, return results and folders."""
    inputs = tmp_path_factory.mktemp("inputs")
    out = tmp_path_factory.mktemp("out")
    torch.manual_seed(0)
    plugformers.DistilBertModel(tiny_config("distilbert")).save_pretrained(inputs / "distilbert-base")
    plugformers.ViTForImageClassification(tiny_config("vit")).save_pretrained(inputs / "vit-classifier")
    large = plugformers.DistilBertConfig(vocab_size=30522, dim=384, hidden_dim=1536, n_heads=6, n_layers=4)
    plugformers.DistilBertForMaskedLM(large).save_pretrained(inputs / "distilbert-large")
    single_then = _single_process_dcp(inputs / "dcp-1-rank")
    proc = torchrun(2, str(out), str(inputs))
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    return {
        "results": results,
        "out": out,
        "inputs": inputs,
        "single_then": single_then,
        "log": proc.stdout[-3000:] + proc.stderr[-6000:],
        "rc": proc.returncode,
    }


def result(run: dict[str, Any], name: str) -> Any:
    if name not in run["results"]:
        pytest.fail(f"scenario {name!r} did not finish on 2 ranks (torchrun exit {run['rc']}):\n{run['log']}")
    return run["results"][name]


def single_process_losses(family: str, steps: int = 5, **kwargs: Any) -> tuple[list[float], Any]:
    model = task_model(family)
    return train_steps(model, task_batch(family), steps, **kwargs), model


# ----- in one process ---------------------------------------------------------------------------------


def _family_models() -> list[tuple[str, type]]:
    registry = get_registry()
    found = []
    for model_type, spec in sorted(registry.families.items()):
        if spec.plugin == "tiny-test-plugin":  # the host tests' stand-in family (tests/tinyfamily.py)
            continue
        classes = {import_object(ref) for ref in spec.models.values()}
        found += [(model_type, cls) for cls in sorted(classes, key=lambda c: c.__name__)]
    return found


def test_no_split_modules_name_real_blocks_of_every_family():
    """Each listed name is a block class some model of the family builds, and every model holds one."""
    models = _family_models()
    assert {t for t, _ in models} >= set(TASK_HEADS), "an installed family is missing from the registry"
    built: dict[str, set[str]] = {}
    for model_type, cls in models:
        listed = set(cls._no_split_modules or ())
        assert listed, f"{cls.__name__} lists no _no_split_modules"
        for i, variant in enumerate([{}, *CONFIG_VARIANTS.get(model_type, [])]):
            model = cls(tiny_config(model_type, **variant))
            names = {type(m).__name__ for m in model.modules() if m is not model}
            assert i > 0 or listed & names, f"{cls.__name__} holds none of {sorted(listed)}"
            built.setdefault(model_type, set()).update(names)
    for model_type, cls in models:
        missing = set(cls._no_split_modules or ()) - built[model_type]
        assert not missing, f"{cls.__name__}._no_split_modules names {sorted(missing)}, which no {model_type} model builds"


def test_fsdp_blocks_lists_the_family_blocks_innermost_first():
    model = plugformers.DistilBertForMaskedLM(tiny_config("distilbert"))
    blocks = fsdp_blocks(model)
    assert [type(b).__name__ for b in blocks] == ["TransformerBlock", "TransformerBlock"]
    assert blocks[0] is model.distilbert.transformer.layer[1]
    resnet = plugformers.ResNetModel(tiny_config("resnet"))
    order = [id(m) for m in resnet.modules()]
    ranks = [order.index(id(b)) for b in fsdp_blocks(resnet)]
    assert ranks == sorted(ranks, reverse=True)


def test_fsdp_blocks_refuses_a_model_without_blocks():
    from tinyfamily import TinyConfig, TinyModel

    with pytest.raises(ValueError, match="lists no _no_split_modules"):
        fsdp_blocks(TinyModel(TinyConfig()))


def test_a_tie_across_two_fsdp_units_is_refused():
    from plugformers.distributed import _check_ties

    model = plugformers.DistilBertForMaskedLM(tiny_config("distilbert"))
    _check_ties(model, fsdp_blocks(model))  # decoder and embeddings both in the root unit: fine
    with pytest.raises(ValueError, match=r"vocab_projector\.weight.*different FSDP blocks"):
        _check_ties(model, [model.distilbert.embeddings])  # the embeddings a unit of their own


def test_parameters_on_meta_keeps_buffers_real():
    torch.manual_seed(0)
    real = plugformers.ViTForImageClassification(tiny_config("vit"))
    real_dist = plugformers.DistilBertModel(tiny_config("distilbert", sinusoidal_pos_embds=True))
    with parameters_on_meta():
        meta = plugformers.ViTForImageClassification(tiny_config("vit"))
        meta_dist = plugformers.DistilBertModel(tiny_config("distilbert", sinusoidal_pos_embds=True))
    assert all(p.device.type == "meta" for p in [*meta.parameters(), *meta_dist.parameters()])
    for ref, built in ((real, meta), (real_dist, meta_dist)):
        assert [k for k, _ in ref.named_parameters()] == [k for k, _ in built.named_parameters()]
        for (name, buf), (_, ref_buf) in zip(built.named_buffers(), ref.named_buffers()):
            assert buf.device.type == "cpu" and torch.equal(buf, ref_buf), name
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"  # the patch ends with the block
    with parameters_on_meta(), parameters_on_meta():  # nested (a model building a sub-model): no deadlock
        assert torch.nn.Linear(2, 2).weight.device.type == "meta"
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"


def test_sharding_and_sharded_loading_need_a_process_group(tmp_path):
    model = plugformers.DistilBertModel(tiny_config("distilbert"))
    model.save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="init_process_group"):
        fully_shard_model(model)
    with pytest.raises(RuntimeError, match="init_process_group"):
        load_sharded(plugformers.DistilBertModel, tmp_path)


def test_safetensors_reader_reads_rows_slices_and_converts(tmp_path):
    """The reader behind load_sharded, on a plain tensor: whole tensors, a column slice, another dtype."""
    from safetensors.torch import save_file

    from plugformers.distributed import _SafetensorsReader

    weights = {"a": torch.arange(24, dtype=torch.float32).reshape(4, 6), "b": torch.tensor(3.5, dtype=torch.bfloat16)}
    save_file(weights, str(tmp_path / "w.safetensors"))
    reader = _SafetensorsReader(str(tmp_path / "w.safetensors"))
    a = torch.empty(4, 6)
    assert reader.read_local("a", a) is a and torch.equal(a, weights["a"])
    b = torch.empty((), dtype=torch.float32)
    reader.read_local("b", b)
    assert b.item() == 3.5
    part = torch.empty(4, 2)
    reader._read_slice("a", [0, 2], [4, 2], part)
    assert torch.equal(part, weights["a"][:, 2:4])
    assert reader.read_local("a", torch.empty(6, 4)).device.type == "meta"  # a size mismatch is not read


def test_save_pretrained_of_a_plain_model_needs_no_process_group(tmp_path):
    model = plugformers.DistilBertForMaskedLM(tiny_config("distilbert"))
    save_pretrained(model, tmp_path / "a", max_shard_size="40KB")
    model.save_pretrained(tmp_path / "b", max_shard_size="40KB")
    assert _folder_bytes(tmp_path / "a") == _folder_bytes(tmp_path / "b")
    assert "vocab_projector.weight" not in full_state_dict(model)


# ----- on 2 ranks ---------------------------------------------------------------------------------------


def test_torchrun_scenarios_all_finished(run):
    assert run["rc"] == 0, run["log"]


@pytest.mark.parametrize("family", list(TASK_HEADS))
def test_fsdp_trains_every_family(run, family):
    got = result(run, "fsdp_train")[family]
    losses = got["losses"]
    assert got["class"].startswith("FSDP")
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("family", list(TASK_HEADS))
def test_plain_save_pretrained_of_a_sharded_model_is_refused(run, family):
    got = result(run, "fsdp_train")[family]
    assert "plugformers.distributed.save_pretrained" in got["plain_save_refused"]
    assert not got["plain_save_wrote"]


def test_fsdp_keeps_the_mlm_tie_and_the_buffers(run):
    got = result(run, "fsdp_train")
    before, after = got["distilbert"]["ties"]
    assert before == after == [["vocab_projector.weight", "distilbert.embeddings.word_embeddings.weight"]]
    for family in SPLIT_INVARIANT:
        assert got[family]["changed_buffers"] == [], family  # position ids etc. untouched
    assert any(k.endswith("running_mean") for k in got["resnet"]["changed_buffers"])  # batch norm did update
    folder = run["out"] / "fsdp-distilbert"
    keys = set(json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"])
    assert "vocab_projector.weight" not in keys and "distilbert.embeddings.word_embeddings.weight" in keys
    model = plugformers.DistilBertForMaskedLM.from_pretrained(folder)
    assert model.vocab_projector.weight is model.distilbert.embeddings.word_embeddings.weight


@pytest.mark.parametrize("family", SPLIT_INVARIANT)
@pytest.mark.parametrize("wrapper", ["fsdp", "ddp"])
def test_two_ranks_train_like_one_process(run, family, wrapper):
    """Same init, same global batch split over 2 ranks: same losses and weights as one process."""
    got = result(run, f"{wrapper}_train")[family]["losses"]
    want, single = single_process_losses(family)
    assert max(abs(a - b) for a, b in zip(got, want)) < LOSS_TOL, (got, want)
    trained = type(single).from_pretrained(run["out"] / f"{wrapper}-{family}")
    for (name, a), b in zip(single.state_dict().items(), trained.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("family", ["resnet", "maskformer"])
def test_ddp_trains_batch_norm_families_with_buffers_in_step(run, family):
    got = result(run, "ddp_train")[family]
    assert got["losses"][-1] < got["losses"][0], got["losses"]
    assert got["buffers_same_on_ranks"]  # DDP broadcasts rank 0's running stats every forward


@pytest.mark.parametrize("family", list(TASK_HEADS))
def test_sharded_save_equals_single_process_save(run, family, tmp_path):
    """Rank 0's folder from the shards is byte for byte what one process with those weights writes."""
    folder = run["out"] / f"fsdp-{family}"
    model = getattr(plugformers, TASK_HEADS[family]).from_pretrained(folder)
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    ours, theirs = _folder_bytes(folder), _folder_bytes(tmp_path)
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs
    shards = [n for n in ours if n.endswith(".safetensors")]
    limit = 40_000
    for name in shards:  # max_shard_size honoured: only a single tensor larger than it may exceed it
        tensors = load_file(str(folder / name))
        assert len(tensors) == 1 or sum(t.numel() * t.element_size() for t in tensors.values()) <= limit
    if family == "distilbert":
        assert len(shards) > 1


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_dcp_checkpoint_resumes_on_another_number_of_ranks(run):
    """Saved on 2 ranks, resumed in 1 process; saved in 1 process, resumed on 2: the run goes on unchanged."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    got = result(run, "dcp_save_and_resume")
    model = task_model("distilbert", seed=123)
    opt = make_optimizer(model)
    model_sd, optim_sd = get_state_dict(model, opt)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(run["out"] / "dcp-2-ranks"), no_dist=True)
    set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    resumed = train_steps(model, task_batch("distilbert"), 2, optimizer=opt)
    assert max(abs(a - b) for a, b in zip(resumed, got["then"])) < LOSS_TOL, (resumed, got["then"])
    assert max(abs(a - b) for a, b in zip(got["resumed_from_1_rank"], run["single_then"])) < LOSS_TOL
    assert got["then"][0] < got["first"][-1]


def test_load_sharded_holds_about_one_shard_per_rank(run):
    """Peak resident memory a rank adds while loading is its shard, well below one copy of the weights."""
    got = result(run, "sharded_load_memory")["ranks"]
    weights_mb = (run["inputs"] / "distilbert-large" / "model.safetensors").stat().st_size / 2**20
    for rank in got:
        assert rank["local_shard_mb"] < 0.55 * weights_mb
        assert rank["peak_delta_mb"] < 0.75 * weights_mb, (rank, weights_mb)


@pytest.mark.parametrize("name", ["DistilBertForMaskedLM", "DistilBertForSequenceClassification"])
def test_load_sharded_loads_what_from_pretrained_loads(run, name):
    got = result(run, "load_sharded_heads")[name]
    cls = getattr(plugformers, name)
    want = cls.from_pretrained(run["inputs"] / "distilbert-base", num_labels=3)
    loaded = cls.from_pretrained(run["out"] / f"loaded-{name}")
    base = load_file(str(run["inputs"] / "distilbert-base" / "model.safetensors"))
    for key, tensor in base.items():
        torch.testing.assert_close(loaded.state_dict()[f"distilbert.{key}"], tensor, rtol=0, atol=0)
    assert {k for k in loaded.state_dict()} == {k for k in want.state_dict()}
    new = [k for k in want.state_dict() if k.removeprefix("distilbert.") not in base]
    assert new, "the head adds weights the base checkpoint lacks"
    for key in new:  # initialised like the family does it (no garbage left from the empty shards)
        t = loaded.state_dict()[key]
        assert torch.isfinite(t).all() and t.abs().max() < 1.5, key
    assert {k: torch.tensor(v) for k, v in got["buffers"].items()}.keys() == dict(want.named_buffers()).keys()
    for key, buf in want.named_buffers():
        assert torch.equal(torch.tensor(got["buffers"][key], dtype=buf.dtype), buf), key
    assert got["losses"][-1] < got["losses"][0]


def test_load_sharded_through_an_auto_class_in_bf16(run):
    got = result(run, "load_sharded_heads")
    assert got["auto_class"] == "FSDPViTForImageClassification"
    loaded = plugformers.ViTForImageClassification.from_pretrained(run["out"] / "loaded-vit-bf16")
    want = plugformers.ViTForImageClassification.from_pretrained(run["inputs"] / "vit-classifier", dtype=torch.bfloat16)
    assert json.loads((run["out"] / "loaded-vit-bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    for (name, a), b in zip(want.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_load_sharded_reports_and_skips_mismatched_sizes(run):
    got = result(run, "load_sharded_heads")
    assert "do not fit ViTForImageClassification" in got["mismatch_error"]
    assert "classifier.weight: checkpoint [3, 32] vs model [5, 32]" in got["mismatch_error"]
    assert sorted(got["mismatched_keys"]) == ["classifier.bias", "classifier.weight"]


@pytest.mark.parametrize("wrapper", ["fsdp", "ddp"])
@pytest.mark.parametrize("family", ["distilbert", "vit"])
def test_gradient_checkpointing_and_bf16_autocast(run, wrapper, family):
    got = result(run, "checkpointing_and_bf16")
    plain = result(run, f"{wrapper}_train")[family]["losses"]
    checkpointed = got[f"{wrapper}-{family}-checkpointing"]
    assert max(abs(a - b) for a, b in zip(checkpointed["losses"], plain)) < 1e-5
    for mode in ("bf16", "checkpointing+bf16"):
        losses = got[f"{wrapper}-{family}-{mode}"]["losses"]
        assert abs(losses[0] - plain[0]) < 0.05 * plain[0], (losses, plain)
        assert losses[-1] < 0.9 * losses[0], losses
    # 5 steps: the block runs once per forward, and once more per backward when it is checkpointed.
    assert [got[f"{wrapper}-{family}-{m}"]["block_calls"] for m in ("bf16", "checkpointing", "checkpointing+bf16")] == [5, 10, 10]


def test_fsdp_mixed_precision_policy_trains(run):
    got = result(run, "fsdp_mixed_precision_policy")
    assert got["param_dtype"] == "torch.float32"  # the sharded master weights stay float32
    assert got["losses"][-1] < 0.9 * got["losses"][0], got["losses"]


@pytest.mark.parametrize("wrapper", ["fsdp", "ddp"])
def test_compiled_blocks_train_like_eager(run, wrapper):
    got = result(run, "compiled_blocks")[wrapper]["losses"]
    eager = result(run, f"{wrapper}_train")["distilbert"]["losses"][:3]
    assert max(abs(a - b) for a, b in zip(got, eager)) < 1e-4, (got, eager)


def test_accelerate_prepare_wraps_and_trains(run):
    got = result(run, "accelerate_prepare")
    if "skipped" in got:
        pytest.skip(got["skipped"])
    assert got["wrapper"] == "DistributedDataParallel" and got["unwrapped"] == "ViTForImageClassification"
    want, single = single_process_losses("vit")
    assert max(abs(a - b) for a, b in zip(got["losses"], want)) < LOSS_TOL
    saved = plugformers.ViTForImageClassification.from_pretrained(run["out"] / "accelerate-vit")
    for (name, a), b in zip(single.state_dict().items(), saved.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4, msg=name)
