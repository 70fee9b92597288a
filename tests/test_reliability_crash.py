"""Crash-safe saving: a writer process is SIGKILLed at random points while it saves into one folder.

A forked child (cheap to start: torch is already imported) saves a tiny model, and a tokenizer when the
DistilBERT plugin is installed, into the same folder again and again, each generation ``g`` with every
weight equal to ``g``, ``config.generation == g``, the vocabulary token ``gen<g>`` and
``model_max_length == 100000 + g``. The parent kills it at a random moment and then checks that the folder
holds one complete generation of each save: config and weights agree, tokenizer files agree, everything
loads, nothing half-written or stray sits inside it, and generations never go backwards. Leftover
``.<folder>.staging-*`` siblings (a kill inside ``atomic_directory``) are allowed and counted; they never
change what the folder holds, and the next save of the folder removes them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from plugformers.utils.io import atomic_directory

from tinyfamily import TinyConfig, TinyModel

try:
    from plugformers_distilbert.tokenization_distilbert import DistilBertTokenizer
    from plugformers_distilbert.tokenization_distilbert_fast import DistilBertTokenizerFast
except ImportError:  # the model half of the tests still runs without the plugin
    DistilBertTokenizer = DistilBertTokenizerFast = None  # type: ignore[assignment,misc]

KILLS = 36
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MODEL_FILES = {"config.json", "model.safetensors"}
TOKENIZER_FILES = {"tokenizer_config.json", "special_tokens_map.json", "vocab.txt"}
SIBLING = re.compile(r"^\.ckpt\.(staging|old)-[A-Za-z0-9]+-\d+-[A-Za-z0-9_]+$")

# Filled in by the test, read by docs/reliability.md's numbers.
STATS: dict[str, int] = {}


def _model(gen: int) -> TinyModel:
    model = TinyModel(TinyConfig(vocab_size=20, dim=8, n_layers=2, generation=gen))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float(gen))
    return model


def _tokenizer(gen: int, scratch: Path, fast: bool = False) -> Any:
    vocab = scratch / f"vocab-{os.getpid()}.txt"
    vocab.write_text("\n".join([*SPECIALS, "hello", f"gen{gen}"]) + "\n", encoding="utf-8")
    cls = DistilBertTokenizerFast if fast else DistilBertTokenizer
    return cls(str(vocab), model_max_length=100000 + gen)


def _save(folder: Path, gen: int, combined: bool, scratch: Path, with_tokenizer: bool) -> None:
    model = _model(gen)
    tok = _tokenizer(gen, scratch) if with_tokenizer else None
    if combined:
        # One outer atomic save: the nested saves write into its staging folder, one swap for all.
        with atomic_directory(folder) as staging:
            model.save_pretrained(staging)
            if tok is not None:
                tok.save_pretrained(staging)
    else:
        model.save_pretrained(folder)
        if tok is not None:
            tok.save_pretrained(folder)


def _writer(folder: str, scratch: str, base: int, combined: bool, with_tokenizer: bool, done: Any) -> None:
    """Child process body: save generation after generation until killed."""
    torch.set_num_threads(1)
    gen = base
    while True:
        gen += 1
        _save(Path(folder), gen, combined, Path(scratch), with_tokenizer)
        with done.get_lock():
            done.value += 1


def _read_state(folder: Path, with_tokenizer: bool, fast: bool = False) -> tuple[int, int | None]:
    """Check the folder holds one complete, self-consistent checkpoint; return (model gen, tokenizer gen)."""
    names = {p.name for p in folder.iterdir()}
    expected = MODEL_FILES | (TOKENIZER_FILES | ({"tokenizer.json"} if fast else set()) if with_tokenizer else set())
    assert names == expected, f"stray or missing files in the checkpoint: {sorted(names ^ expected)}"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    gen = config["generation"]
    weights = load_file(str(folder / "model.safetensors"))
    assert set(weights) == {"embeddings.weight", "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}
    for key, tensor in weights.items():
        assert bool((tensor == float(gen)).all()), f"{key} is not from generation {gen} (config and weights mixed)"
    loaded = TinyModel.from_pretrained(folder)
    assert loaded.config.generation == gen
    assert float(loaded.layers[1].bias.detach()[0]) == float(gen)
    if not with_tokenizer:
        return gen, None
    tok_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    tgen = tok_config["model_max_length"] - 100000
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert vocab[:-1] == [*SPECIALS, "hello", f"gen{tgen}"] and vocab[-1] == "", "vocab.txt is from another save"
    if fast:
        backend = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        assert backend["model"]["vocab"].get(f"gen{tgen}") == len(SPECIALS) + 1, "tokenizer.json is from another save"
    json.loads((folder / "special_tokens_map.json").read_text(encoding="utf-8"))
    return gen, tgen


@pytest.mark.skipif(not hasattr(signal, "SIGKILL") or os.name != "posix", reason="needs POSIX fork and SIGKILL")
def test_sigkill_during_saves_leaves_old_or_new_checkpoint(tmp_path: Path) -> None:
    with_tokenizer = DistilBertTokenizer is not None
    ctx = multiprocessing.get_context("fork")
    folder = tmp_path / "ckpt"
    scratch = tmp_path.parent / f"{tmp_path.name}-scratch"  # outside tmp_path so siblings are only ours
    scratch.mkdir()
    _save(folder, 0, False, scratch, with_tokenizer)
    rng = random.Random(1234)
    last_model, last_tok = 0, 0
    killed_inside = advanced = 0
    for kill in range(KILLS):
        combined = kill % 2 == 1
        base = (kill + 1) * 10000
        done = ctx.Value("i", 0)
        proc = ctx.Process(target=_writer, args=(str(folder), str(scratch), base, combined, with_tokenizer, done))
        before = {p.name for p in tmp_path.iterdir()}
        proc.start()
        deadline = time.monotonic() + 30
        while done.value < 1 and proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.is_alive(), f"writer died on its own with exit code {proc.exitcode}"
        time.sleep(rng.uniform(0.0, 0.3))
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        model_gen, tok_gen = _read_state(folder, with_tokenizer)
        assert model_gen >= last_model and (model_gen == last_model or model_gen > base), "went back to an old save"
        if with_tokenizer:
            assert tok_gen is not None and tok_gen >= last_tok
            if combined:
                assert tok_gen == model_gen, "one combined save left model and tokenizer from different saves"
            else:
                assert tok_gen in (model_gen, model_gen - 1, last_tok), (model_gen, tok_gen, last_tok)
            last_tok = tok_gen
        advanced += model_gen > base + 1
        last_model = model_gen
        siblings = {p.name for p in tmp_path.iterdir()} - before
        killed_inside += bool(siblings)
        for name in {p.name for p in tmp_path.iterdir()} - {"ckpt"}:
            assert SIBLING.match(name), f"unexpected leftover beside the checkpoint: {name!r}"
    leftovers = [p for p in tmp_path.iterdir() if p.name != "ckpt"]
    STATS.update(kills=KILLS, killed_inside_atomic_directory=killed_inside, leftover_siblings=len(leftovers),
                 kills_after_several_saves=advanced)
    print(f"crash-safety: {STATS}")
    # Killed mid-save at least sometimes, or the test proves nothing.
    assert killed_inside >= 3, STATS


def _kill_around_swap(folder: str, scratch: str, what: str, when: str) -> None:
    """Child body: save generation 2 of one object, SIGKILLing itself just before or just after the swap."""
    import plugformers.utils.io as io

    real_exchange = io._exchange

    def exchange_then_maybe_die(a: Path, b: Path) -> bool:
        if when == "before-swap":
            os.kill(os.getpid(), signal.SIGKILL)
        swapped = real_exchange(a, b)
        if swapped:
            os.kill(os.getpid(), signal.SIGKILL)
        return swapped

    io._exchange = exchange_then_maybe_die  # type: ignore[assignment]
    torch.set_num_threads(1)
    if what == "model":
        _model(2).save_pretrained(folder)
    else:
        _tokenizer(2, Path(scratch), fast=what == "fast-tokenizer").save_pretrained(folder)
    os._exit(3)  # not reached when the kill fired




@pytest.mark.skipif(not hasattr(signal, "SIGKILL") or os.name != "posix", reason="needs POSIX fork and SIGKILL")
@pytest.mark.parametrize(
    ("what", "when"),
    [
        ("model", "before-swap"),
        ("model", "after-swap"),
        ("slow-tokenizer", "before-swap"),
        ("slow-tokenizer", "after-swap"),
        pytest.param("fast-tokenizer", "before-swap"),
        ("fast-tokenizer", "after-swap"),
    ],
)
def test_sigkill_at_the_swap(tmp_path: Path, what: str, when: str) -> None:
    """Kill at the two worst moments of one save: the folder holds exactly the old or exactly the new files."""
    if what != "model" and DistilBertTokenizer is None:
        pytest.skip("plugformers_distilbert is not installed")
    fast = what == "fast-tokenizer"
    with_tokenizer = what != "model"
    folder = tmp_path / "ckpt"
    _model(1).save_pretrained(folder)
    if with_tokenizer:
        _tokenizer(1, tmp_path, fast=fast).save_pretrained(folder)
    (tmp_path / f"vocab-{os.getpid()}.txt").unlink(missing_ok=True)
    proc = multiprocessing.get_context("fork").Process(
        target=_kill_around_swap, args=(str(folder), str(tmp_path), what, when)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL, f"the writer was not killed at the swap (exit code {proc.exitcode})"
    model_gen, tok_gen = _read_state(folder, with_tokenizer, fast=fast)
    new = 2 if when == "after-swap" else 1
    assert (tok_gen if with_tokenizer else model_gen) == new
    if with_tokenizer:
        assert model_gen == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "ckpt" and not p.name.startswith("vocab-")]
    assert all(SIBLING.match(n) for n in leftovers), leftovers
    # Killed before the swap: the staging folder is left behind; after: the old contents are.
    assert len(leftovers) == 1
    # The next save of the folder removes what the killed process left.
    _model(3).save_pretrained(folder)
    assert [p.name for p in tmp_path.iterdir() if SIBLING.match(p.name)] == []


def test_only_leftovers_of_dead_processes_on_this_machine_are_removed(tmp_path: Path) -> None:
    from plugformers.utils import io

    host = io._owner_tag().rsplit("-", 1)[0]
    ctx = multiprocessing.get_context("fork")
    dead = ctx.Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()
    assert dead.pid is not None
    made = {
        "dead": f".ckpt.staging-{host}-{dead.pid}-abc123",
        "alive": f".ckpt.staging-{host}-{os.getppid()}-abc123",
        "other-host": f".ckpt.staging-otherhost{host}-{dead.pid}-abc123",
        "other-folder": f".ckpt2.staging-{host}-{dead.pid}-abc123",
        "old-style": ".ckpt.staging-abc123",
    }
    for name in made.values():
        (tmp_path / name).mkdir()
    _model(1).save_pretrained(tmp_path / "ckpt")
    left = {p.name for p in tmp_path.iterdir()}
    assert made["dead"] not in left
    assert {made[k] for k in ("alive", "other-host", "other-folder", "old-style")} <= left
