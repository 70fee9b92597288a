"""``plugformers demo``: the user's guide, run end to end over every installed family.

For each family: build the default config and print it, build the model (random weights), save it in
the reference layout, reload it through the Auto classes and check the weights survived, preprocess a
real sample input (a sentence, a photograph, a spoken WAV file shipped in ``plugformers/data``) and run
the model on it, timing each step.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
SENTENCE = "The quick brown fox jumps over the lazy dog."

# Families whose default config is too large to build quickly get smaller stand-ins with `small=True`.
_SMALL: dict[str, dict[str, Any]] = {
    "distilbert": {"dim": 64, "hidden_dim": 128, "n_layers": 2, "n_heads": 4},
    "vit": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4},
    "wav2vec2": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "conv_dim": [32, 32],
        "conv_stride": [5, 4],
        "conv_kernel": [10, 8],
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
    },
    "resnet": {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1], "layer_type": "basic"},
}


def _vocab_file(folder: Path) -> Path:
    """A small WordPiece vocabulary covering the demo sentence (a real tokenizer needs a real vocab)."""
    words = sorted({w.strip(".,").lower() for w in SENTENCE.split()})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *letters, *[f"##{c}" for c in letters], *words]
    path = folder / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def _timed(label: str, fn: Any) -> Any:
    start = time.perf_counter()
    result = fn()
    print(f"    {label:<28} {time.perf_counter() - start:7.3f} s")
    return result


def _demo_family(model_type: str, workdir: Path, small: bool) -> None:
    import torch

    import plugformers
    from plugformers.plugins import get_registry, import_object

    spec = get_registry().family(model_type)
    config = plugformers.AutoConfig.for_model(model_type, **(_SMALL.get(model_type, {}) if small else {}))
    text = repr(config)
    print("    config:", text if len(text) < 1200 else text[:1200] + "  ...")
    model_class = import_object(spec.models.get("AutoModel") or next(iter(spec.models.values())))
    model = _timed(f"build {model_class.__name__}", lambda: model_class(config).eval())
    print(f"    parameters                   {model.num_parameters():,}")
    folder = workdir / model_type
    _timed("save_pretrained", lambda: model.save_pretrained(folder))
    reloaded = _timed("AutoModel.from_pretrained", lambda: plugformers.AutoModel.from_pretrained(folder))
    for key, value in model.state_dict().items():
        if not torch.equal(value, reloaded.state_dict()[key]):
            raise AssertionError(f"{key} changed through save/load")
    inputs: dict[str, Any]
    if spec.feature_extractor:
        from plugformers.audio_utils import load_wav

        extractor = import_object(spec.feature_extractor)()
        extractor.save_pretrained(folder)
        extractor = plugformers.AutoFeatureExtractor.from_pretrained(folder)
        audio, rate = load_wav(DATA / "speech.wav")
        batch = _timed("extract features", lambda: extractor(audio, sampling_rate=rate, return_tensors="pt"))
        inputs = {"input_values": batch["input_values"]}
    elif spec.image_processor:
        from PIL import Image

        processor = import_object(spec.image_processor)()
        processor.save_pretrained(folder)
        processor = plugformers.AutoImageProcessor.from_pretrained(folder)
        image = Image.open(DATA / "cat.jpg").convert("RGB")
        batch = _timed("preprocess photo", lambda: processor(image, return_tensors="pt"))
        inputs = {"pixel_values": batch["pixel_values"]}
        size = getattr(config, "image_size", None)
        if isinstance(size, int) and inputs["pixel_values"].shape[-1] != size:
            inputs["interpolate_pos_encoding"] = True
    elif spec.tokenizer_fast or spec.tokenizer:
        tok_class = import_object(spec.tokenizer_fast or spec.tokenizer)
        tokenizer = tok_class(vocab_file=str(_vocab_file(workdir)))
        tokenizer.save_pretrained(folder)
        tokenizer = plugformers.AutoTokenizer.from_pretrained(folder)
        inputs = dict(_timed("tokenize", lambda: tokenizer(SENTENCE, return_tensors="pt")))
        print(f"    tokens                       {tokenizer.convert_ids_to_tokens(inputs['input_ids'][0].tolist())}")
    else:
        print("    (no preprocessing class registered; skipping the forward pass)")
        return
    with torch.no_grad():
        out = _timed("forward", lambda: reloaded(**inputs))
    shapes = {k: tuple(v.shape) for k, v in out.items() if isinstance(v, torch.Tensor)}
    print(f"    outputs                      {shapes}")


def run_demo(output_dir: str | None = None, families: list[str] | None = None, small: bool = False) -> int:
    """Run the walkthrough; returns a process exit code (1 if any family failed)."""
    from plugformers.plugins import get_registry

    registry = get_registry()
    types = [t for t in sorted(registry.families) if families is None or t in families]
    if not types:
        print("No model families are installed. Install one, e.g. `pip install plugformers-distilbert`.")
        return 1
    failures = []
    with tempfile.TemporaryDirectory(prefix="plugformers-demo-") as tmp:
        workdir = Path(output_dir) if output_dir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        ran = 0
        for model_type in types:
            spec = registry.families[model_type]
            if not spec.models:
                continue
            ran += 1
            print(f"\n== {model_type} (plugin {spec.plugin})")
            try:
                _demo_family(model_type, workdir, small)
            except Exception as exc:
                failures.append(model_type)
                print(f"    FAILED: {type(exc).__name__}: {exc}")
    from plugformers.demo_trained import show_trained_models

    print("\n== trained checkpoints shipped with plugformers (8x8 digits, held-out accuracy and predictions)")
    try:
        show_trained_models()
    except Exception as exc:
        failures.append("trained checkpoints")
        print(f"    FAILED: {type(exc).__name__}: {exc}")
    ok = ran - len([f for f in failures if f != "trained checkpoints"])
    print(f"\n{ok} of {ran} famil{'y' if ran == 1 else 'ies'} ran end to end"
          + (f"; failed: {', '.join(failures)}" if failures else "."))
    return 1 if failures else 0
