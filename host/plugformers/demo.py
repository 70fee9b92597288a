"""``plugformers demo``: the user's guide, run end to end over every installed family.

For each family: build the default config (with ``small``, the family's registered ``tiny_config``) and
print it, build the model (random weights), save it in the reference layout, reload it through the Auto
classes and check the weights survived, run the host's sample input of the family's modality (a
sentence, a photograph, a spoken WAV file shipped in ``plugformers/data``) through the family's
registered ``example_preprocessor`` and the model, timing each step. Then the trained checkpoints the
installed plugins ship. Everything family-specific comes from the registry.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from plugformers.samples import PREPROCESSOR_AUTO, model_inputs, preprocess, read_sample

_STEP = {"text": "tokenize", "image": "preprocess photo", "audio": "extract features"}


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
    config = spec.build_config(tiny=small)
    text = repr(config)
    print("    config:", text if len(text) < 1200 else text[:1200] + "  ...")
    auto_key = "AutoModel" if "AutoModel" in spec.models else next(iter(spec.models))
    model_class = import_object(spec.models[auto_key])
    model = _timed(f"build {model_class.__name__}", lambda: model_class(config).eval())
    print(f"    parameters                   {model.num_parameters():,}")
    folder = workdir / model_type
    _timed("save_pretrained", lambda: model.save_pretrained(folder))
    reloaded = _timed(f"{auto_key}.from_pretrained", lambda: getattr(plugformers, auto_key).from_pretrained(folder))
    for key, value in model.state_dict().items():
        if not torch.equal(value, reloaded.state_dict()[key]):
            raise AssertionError(f"{key} changed through save/load")
    modality = spec.modality
    if spec.example_preprocessor is None or modality not in PREPROCESSOR_AUTO:
        print("    (no example preprocessor registered; skipping the forward pass)")
        return
    spec.build_example_preprocessor(config).save_pretrained(folder)
    preprocessor = getattr(plugformers, PREPROCESSOR_AUTO[modality]).from_pretrained(folder)
    sample = read_sample(modality)
    batch = _timed(_STEP[modality], lambda: preprocess(modality, preprocessor, sample))
    if modality == "text":
        print(f"    tokens                       {preprocessor.convert_ids_to_tokens(batch['input_ids'][0].tolist())}")
    inputs = model_inputs(reloaded, batch)
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
        from plugformers.plugins import known_families

        known = sorted({str(entry.get("distribution")) for entry in known_families().values() if entry.get("distribution")})
        print("No model families are installed. Install one" + (f", e.g. `pip install {known[0]}` ({', '.join(known)})" if known else "") + ".")
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

    print("\n== trained checkpoints shipped by the installed plugins (recorded results and sample predictions)")
    try:
        wrong = show_trained_models()
    except Exception as exc:
        wrong = 1
        print(f"    FAILED: {type(exc).__name__}: {exc}")
    if wrong:
        failures.append("trained checkpoints")
    ok = ran - len([f for f in failures if f != "trained checkpoints"])
    print(f"\n{ok} of {ran} famil{'y' if ran == 1 else 'ies'} ran end to end"
          + (f"; failed: {', '.join(failures)}" if failures else "."))
    return 1 if failures else 0
