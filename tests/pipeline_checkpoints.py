"""Tiny checkpoints (saved in the reference layout, with their preprocessing files) for the pipeline tests.

Each builder writes a folder in seconds and returns it; the families' plugins must be installed (callers
skip otherwise). Weights are random but seeded, so two builds are identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

WORDS = (
    "the quick brown fox jumps over lazy dog john smith lives in paris london works at acme "
    "what where who is it a an and of to was born city river"
).split()
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "B-ORG", 6: "I-ORG"}
NLI_LABELS = {0: "contradiction", 1: "neutral", 2: "entailment"}
CTC_VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "a": 5, "b": 6, "c": 7, "d": 8, "e": 9}


def vocabulary(folder: Path) -> Path:
    """A WordPiece vocabulary that spells any lowercase English text (letters and ``##`` letters) plus some words."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    digits = [str(d) for d in range(10)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?", "!", "'", "-", *letters, *digits]
    tokens += [f"##{c}" for c in letters + digits]
    tokens += [w for w in dict.fromkeys(WORDS) if w not in tokens]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def text_checkpoint(folder: Path, head: str, seed: int = 0, **config: Any) -> Path:
    """A 2-layer DistilBERT ``head`` (class name) with a fast tokenizer, saved to ``folder``."""
    import plugformers
    from plugformers import DistilBertConfig, DistilBertTokenizerFast

    tokenizer = DistilBertTokenizerFast(vocab_file=str(vocabulary(folder)))
    torch.manual_seed(seed)
    settings = {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 4, "vocab_size": len(tokenizer), **config}
    getattr(plugformers, head)(DistilBertConfig(**settings)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def vit_checkpoint(folder: Path, head: str = "ViTForImageClassification", **config: Any) -> Path:
    import plugformers
    from plugformers import ViTConfig, ViTImageProcessor

    torch.manual_seed(0)
    settings = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                "image_size": 32, "patch_size": 8, "id2label": {i: f"class{i}" for i in range(5)}, **config}
    getattr(plugformers, head)(ViTConfig(**settings)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def maskformer_checkpoint(folder: Path) -> Path:
    """MaskFormer on a tiny ResNet; class logits scaled up so that random weights still give confident segments."""
    from plugformers import (
        MaskFormerConfig,
        MaskFormerForInstanceSegmentation,
        MaskFormerImageProcessor,
        ResNetConfig,
    )

    torch.manual_seed(0)
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic",
                            out_features=["stage1", "stage2", "stage3", "stage4"])
    decoder = {"model_type": "detr", "d_model": 32, "decoder_layers": 1, "decoder_attention_heads": 2,
               "decoder_ffn_dim": 64, "num_queries": 6}
    config = MaskFormerConfig(backbone_config=backbone, decoder_config=decoder, fpn_feature_size=32,
                              mask_feature_size=32, id2label={0: "sky", 1: "tree", 2: "road"})
    model = MaskFormerForInstanceSegmentation(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "class_predictor" in name:
                param.mul_(30)
    model.save_pretrained(folder)
    MaskFormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    return folder


def _wav2vec2_config(masked: bool, **extra: Any) -> Any:
    from plugformers import Wav2Vec2Config

    settings: dict[str, Any] = {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "conv_dim": [16, 16], "conv_stride": [5, 4], "conv_kernel": [10, 8], "conv_bias": True,
        "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, **extra,
    }
    if masked:  # layer-normed feature encoder: the variant trained with attention masks
        settings.update(feat_extract_norm="layer", do_stable_layer_norm=True)
    return Wav2Vec2Config(**settings)


def ctc_checkpoint(folder: Path, masked: bool = True) -> Path:
    from plugformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(CTC_VOCAB), encoding="utf-8")
    torch.manual_seed(0)
    Wav2Vec2ForCTC(_wav2vec2_config(masked, vocab_size=len(CTC_VOCAB))).save_pretrained(folder)
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=masked)
    Wav2Vec2Processor(extractor, Wav2Vec2CTCTokenizer(str(folder / "vocab.json"))).save_pretrained(folder)
    return folder


def audio_classifier_checkpoint(folder: Path, masked: bool = True) -> Path:
    from plugformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(0)
    config = _wav2vec2_config(masked, id2label={0: "yes", 1: "no", 2: "up"})
    Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=masked).save_pretrained(folder)
    return folder


def photo(path: Path, size: tuple[int, int] = (40, 30), seed: int = 1) -> Path:
    """A random RGB image of ``size`` (width, height) saved to ``path``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def tone(seconds: float, rate: int = 16000, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A sine tone with a little noise, float32 mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)
