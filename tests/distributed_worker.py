"""The 2-rank side of ``test_distributed.py``: training, saving and loading scenarios run under ``torchrun``.

``torchrun --nproc-per-node 2 tests/distributed_worker.py OUT`` runs every scenario below in one process
group (gloo, CPU) and writes ``OUT/results.json`` (rank 0) plus the folders the scenarios save; the tests
compare them with single-process runs of the same code (the helpers here are shared with the tests).
Scenarios run in order and the first error stops both ranks (torchrun ends the group), so a result is
only written for a scenario that finished on every rank.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import plugformers
import plugformers.modeling_utils
from plugformers.distributed import unwrap_model
from plugformers.plugins import FamilySpec, get_registry

# ----- tiny configs and tasks (shared with the tests) ------------------------------------------------

# Config switches that build other block classes than the default config does.
CONFIG_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "wav2vec2": [{"do_stable_layer_norm": True, "feat_extract_norm": "layer"}],
}
# No randomness in training mode, so that runs on 1 and 2 ranks can agree.
DETERMINISTIC = dict(
    dropout=0.0, attention_dropout=0.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    hidden_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, final_dropout=0.0, layerdrop=0.0,
    mask_time_prob=0.0, mask_feature_prob=0.0,
)


def tiny_config(model_type: str, **overrides: Any) -> Any:
    """The family's registered tiny config, with ``overrides`` (those of ``DETERMINISTIC`` only where they apply)."""
    spec: FamilySpec = get_registry().families[model_type]
    if not spec.tiny_config:
        raise KeyError(f"family {model_type!r} registers no tiny_config (plugformers_register_families(tiny_config=...))")
    config = spec.build_config(tiny=True)
    for key, value in overrides.items():
        if key in DETERMINISTIC and not hasattr(config, key):
            continue
        setattr(config, key, value)
    return config


# The head each family trains on, and its inputs (a fixed batch: the loss must go down on it).
TASK_HEADS = {
    "distilbert": "AutoModelForMaskedLM",
    "vit": "AutoModelForImageClassification",
    "wav2vec2": "AutoModelForAudioClassification",
    "resnet": "AutoModelForImageClassification",
    "maskformer": "AutoModelForInstanceSegmentation",
}
# Families without batch norm: their loss does not depend on how the batch is split over ranks.
SPLIT_INVARIANT = ("distilbert", "vit", "wav2vec2")
GLOBAL_BATCH = 4


def task_model(model_type: str, seed: int = 0, **overrides: Any) -> Any:
    torch.manual_seed(seed)
    config = tiny_config(model_type, **{**DETERMINISTIC, **overrides})
    return getattr(plugformers, TASK_HEADS[model_type]).from_config(config)


def task_batch(model_type: str, n: int = GLOBAL_BATCH, seed: int = 1) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    if model_type == "distilbert":
        ids = torch.randint(1, 64, (n, 8), generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    if model_type == "wav2vec2":
        return {"input_values": torch.randn(n, 400, generator=g), "labels": labels}
    pixels = torch.randn(n, 3, 32, 32, generator=g)
    if model_type == "maskformer":
        masks = [(torch.rand(2, 32, 32, generator=g) > 0.5).float() for _ in range(n)]
        classes = [torch.randint(0, 3, (2,), generator=g) for _ in range(n)]
        return {"pixel_values": pixels, "mask_labels": masks, "class_labels": classes}
    return {"pixel_values": pixels, "labels": labels}


def rank_part(batch: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """This rank's equal slice of the global batch (tensors and per-sample lists alike)."""
    n = len(batch[next(iter(batch))])
    per = n // world
    return {k: v[rank * per : (rank + 1) * per] for k, v in batch.items()}


def make_optimizer(model: nn.Module, lr: float = 1e-2) -> torch.optim.Optimizer:
    """AdamW with eps=1e-6: gradients that are zero but for rounding (attention key biases) then move their
    weights by ~1e-5 instead of a full ``lr`` in a random direction, so runs on 1 and 2 ranks stay comparable."""
    lr = 1e-3 if unwrap_model(model).config.model_type == "maskformer" else lr
    return torch.optim.AdamW(model.parameters(), lr=lr, eps=1e-6)


def train_steps(
    model: nn.Module,
    batch: dict[str, Any],
    steps: int,
    *,
    autocast: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
) -> list[float]:
    """``steps`` optimiser steps on this rank's part of ``batch``; the losses averaged over ranks."""
    distributed = dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    local = rank_part(batch, rank, world)
    opt = optimizer or make_optimizer(model)
    model.train()
    losses = []
    for _ in range(steps):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:
            loss = model(**local).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        value = loss.detach().float().clone()
        if distributed:
            dist.all_reduce(value)
            value /= world
        losses.append(value.item())
    return losses


# ----- the 2-rank scenarios ------------------------------------------------------------------------------

Results = dict[str, Any]
SCENARIOS: list[tuple[str, Callable[[Path, Path], Results]]] = []


def scenario(fn: Callable[[Path, Path], Results]) -> Callable[[Path, Path], Results]:
    SCENARIOS.append((fn.__name__, fn))
    return fn


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@scenario
def sharded_load_memory(out: Path, inputs: Path) -> Results:
    """Peak resident memory a rank adds while ``load_sharded`` loads a ~75 MB checkpoint (runs first)."""
    from plugformers.distributed import load_sharded

    warm = load_sharded(plugformers.DistilBertModel, inputs / "distilbert-base")  # imports, mesh, first touch
    del warm
    before = _peak_rss_mb()
    start = time.perf_counter()
    model = load_sharded(plugformers.DistilBertForMaskedLM, inputs / "distilbert-large")
    seconds = time.perf_counter() - start
    delta = _peak_rss_mb() - before
    local = sum(p.to_local().numel() * p.element_size() for p in model.parameters()) / 2**20
    per_rank = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, {"peak_delta_mb": delta, "local_shard_mb": local, "seconds": seconds})
    return {"ranks": per_rank}


@scenario
def fsdp_train(out: Path, inputs: Path) -> Results:
    """Every family: fully_shard per block then root, train the fixed batch, save from the shards."""
    from plugformers.distributed import fully_shard_model, save_pretrained

    results: Results = {}
    for family in TASK_HEADS:
        model = task_model(family)
        buffers = {k: v.clone() for k, v in model.named_buffers()}
        tied_before = sorted(model._tied_parameter_names().items())
        fully_shard_model(model)
        tied_after = sorted(model._tied_parameter_names().items())
        losses = train_steps(model, task_batch(family), 5)
        changed = sorted(k for k, v in model.named_buffers() if not torch.equal(v, buffers[k]))
        save_pretrained(model, out / f"fsdp-{family}", max_shard_size="40KB")
        try:  # the plain save would write this rank's shards only
            model.save_pretrained(out / f"wrong-{family}-{dist.get_rank()}")
            refused = ""
        except ValueError as exc:
            refused = str(exc)
        results[family] = {
            "losses": losses,
            "ties": [tied_before, tied_after],
            "changed_buffers": changed,
            "class": type(model).__name__,
            "plain_save_refused": refused,
            "plain_save_wrote": (out / f"wrong-{family}-{dist.get_rank()}").exists(),
        }
    return results


@scenario
def ddp_train(out: Path, inputs: Path) -> Results:
    """Every family under DistributedDataParallel; buffers compared across ranks after training."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from plugformers.distributed import save_pretrained

    results: Results = {}
    for family in TASK_HEADS:
        ddp = DDP(task_model(family))
        losses = train_steps(ddp, task_batch(family), 5)
        save_pretrained(ddp, out / f"ddp-{family}")
        # Each rank's batch norm updates its own statistics in a forward; DDP hands rank 0's to all ranks at
        # the start of the next one. An eval forward (which updates nothing) shows what every rank then uses.
        ddp.eval()
        with torch.no_grad():
            ddp(**rank_part(task_batch(family), dist.get_rank(), dist.get_world_size()))
        mine = {k: v.clone() for k, v in ddp.module.named_buffers()}
        theirs = [None] * dist.get_world_size()
        dist.all_gather_object(theirs, mine)
        same = all(torch.equal(mine[k], other[k]) for other in theirs for k in mine)  # type: ignore[index]
        results[family] = {"losses": losses, "buffers_same_on_ranks": same}
    return results


def _count(calls: list[int], *_: Any) -> None:
    calls.append(1)


@scenario
def checkpointing_and_bf16(out: Path, inputs: Path) -> Results:
    """Gradient checkpointing (fp32: same losses as without) and bf16 autocast, under FSDP2 and DDP."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from plugformers.distributed import fsdp_blocks, fully_shard_model

    results: Results = {}
    for family in ("distilbert", "vit"):
        for wrapper in ("fsdp", "ddp"):
            for mode in ("checkpointing", "bf16", "checkpointing+bf16"):
                model = task_model(family)
                if "checkpointing" in mode:
                    model.gradient_checkpointing_enable()
                calls: list[int] = []  # the last layer; checkpointed, it runs again in the backward pass
                fsdp_blocks(model)[0].register_forward_pre_hook(functools.partial(_count, calls))
                wrapped = fully_shard_model(model) if wrapper == "fsdp" else DDP(model)
                losses = train_steps(wrapped, task_batch(family), 5, autocast="bf16" in mode)
                results[f"{wrapper}-{family}-{mode}"] = {"losses": losses, "block_calls": len(calls)}
    return results


@scenario
def fsdp_mixed_precision_policy(out: Path, inputs: Path) -> Results:
    """FSDP2's own MixedPrecisionPolicy: bf16 compute and all-gathers, fp32 gradient reduction."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    from plugformers.distributed import fully_shard_model

    model = task_model("distilbert")
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    fully_shard_model(model, mp_policy=policy)
    losses = train_steps(model, task_batch("distilbert"), 5)
    return {"losses": losses, "param_dtype": str(next(model.parameters()).dtype)}


@scenario
def compiled_blocks(out: Path, inputs: Path) -> Results:
    """``torch.compile`` of every block (the listed ``_no_split_modules``), under FSDP2 and DDP."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from plugformers.distributed import fsdp_blocks, fully_shard_model

    # aot_eager traces forward and backward graphs (where model code can break) without inductor's C++
    # build, which takes over a minute on 2 CPU cores; PLUGFORMERS_TEST_COMPILE_BACKEND=inductor runs that too.
    backend = os.environ.get("PLUGFORMERS_TEST_COMPILE_BACKEND", "aot_eager")
    results: Results = {"backend": backend}
    for wrapper in ("fsdp", "ddp"):
        model = task_model("distilbert")
        for block in fsdp_blocks(model):
            block.compile(backend=backend, fullgraph=True)
        wrapped = fully_shard_model(model) if wrapper == "fsdp" else DDP(model)
        results[wrapper] = {"losses": train_steps(wrapped, task_batch("distilbert"), 3)}
    return results


@scenario
def dcp_save_and_resume(out: Path, inputs: Path) -> Results:
    """DCP: save a sharded run after 2 steps and go on; resume the 1-process run the tests saved."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    from plugformers.distributed import fully_shard_model

    batch = task_batch("distilbert")
    model = fully_shard_model(task_model("distilbert"))
    opt = make_optimizer(model)
    first = train_steps(model, batch, 2, optimizer=opt)
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(out / "dcp-2-ranks"))
    then = train_steps(model, batch, 2, optimizer=opt)

    resumed = fully_shard_model(task_model("distilbert", seed=123))  # other weights: the load must replace them
    ropt = make_optimizer(resumed)
    model_sd, optim_sd = get_state_dict(resumed, ropt)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(inputs / "dcp-1-rank"))
    set_state_dict(resumed, ropt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    resumed_losses = train_steps(resumed, batch, 2, optimizer=ropt)
    return {"first": first, "then": then, "resumed_from_1_rank": resumed_losses}


@scenario
def load_sharded_heads(out: Path, inputs: Path) -> Results:
    """``load_sharded`` of a base checkpoint into heads (new head initialised), then train and save."""
    from plugformers.distributed import load_sharded, save_pretrained

    results: Results = {}
    for name in ("DistilBertForMaskedLM", "DistilBertForSequenceClassification"):
        model = load_sharded(getattr(plugformers, name), inputs / "distilbert-base", num_labels=3)
        save_pretrained(model, out / f"loaded-{name}")
        buffers = {k: v.clone() for k, v in model.named_buffers()}
        batch = task_batch("distilbert")
        if name.endswith("Classification"):
            batch = {**batch, "labels": task_batch("vit")["labels"]}
        losses = train_steps(model, batch, 3)
        results[name] = {"losses": losses, "buffers": {k: v.tolist() for k, v in buffers.items()}}
    auto = load_sharded(plugformers.AutoModelForImageClassification, inputs / "vit-classifier", dtype=torch.bfloat16)
    save_pretrained(auto, out / "loaded-vit-bf16")
    results["auto_class"] = type(auto).__name__
    vit = plugformers.ViTForImageClassification
    try:
        load_sharded(vit, inputs / "vit-classifier", num_labels=5)
        results["mismatch_error"] = ""
    except plugformers.modeling_utils.WeightsLoadingError as exc:
        results["mismatch_error"] = str(exc)
    _, info = load_sharded(vit, inputs / "vit-classifier", num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True)
    results["mismatched_keys"] = [name for name, _, _ in info["mismatched_keys"]]
    return results


@scenario
def accelerate_prepare(out: Path, inputs: Path) -> Results:
    """accelerate's ``Accelerator.prepare`` on 2 CPU processes (it wraps the model in DDP)."""
    try:
        from accelerate import Accelerator
    except ImportError:
        return {"skipped": "accelerate is not installed"}
    accelerator = Accelerator(cpu=True)
    model = task_model("vit")
    opt = make_optimizer(model)
    model, opt = accelerator.prepare(model, opt)
    batch = rank_part(task_batch("vit"), accelerator.process_index, accelerator.num_processes)
    losses = []
    for _ in range(5):
        loss = model(**batch).loss
        accelerator.backward(loss)
        opt.step()
        opt.zero_grad()
        losses.append(accelerator.reduce(loss.detach(), reduction="mean").item())
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        unwrapped.save_pretrained(out / "accelerate-vit", state_dict=accelerator.get_state_dict(model))
    accelerator.wait_for_everyone()
    return {"losses": losses, "wrapper": type(model).__name__, "unwrapped": type(unwrapped).__name__}


def main() -> None:
    out, inputs = Path(sys.argv[1]), Path(sys.argv[2])
    only = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    rank = dist.get_rank()
    results: dict[str, Any] = {}
    for name, fn in SCENARIOS:
        if only is not None and name not in only:
            continue
        start = time.perf_counter()
        results[name] = fn(out, inputs)
        results[name + ".seconds"] = round(time.perf_counter() - start, 2)
        if rank == 0:
            _write(out / "results.json", results)
    dist.barrier()
    dist.destroy_process_group()


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
