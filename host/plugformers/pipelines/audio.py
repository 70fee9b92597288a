"""Audio pipelines: speech recognition with CTC heads, and audio classification.

Inputs are WAV files (16-bit PCM or 32-bit float), WAV bytes, 1-D float arrays at the feature extractor's
sampling rate, or ``{"raw"/"array": samples, "sampling_rate": rate}``; audio at another rate is refused
with both rates named (plugformers does not resample). Clips are sorted by length; a model whose feature
extractor returns attention masks gets padded batches with masks, any other model batches only clips of
equal length, so a batch never changes a clip's result.

Long recordings: ``chunk_length_s`` cuts the audio into overlapping chunks (``stride_length_s`` of context
on each side, default a sixth of the chunk) that are recognised in batches; the frames of each chunk's
context are dropped and the rest joined before the CTC decoding, so words at chunk edges are read with
context on both sides.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import torch

from plugformers.pipelines.base import Feature, Pipeline, ranked, scores
from plugformers.pipelines.pooling import check_pooling, pool

__all__ = ["AudioClassificationPipeline", "AudioFeatureExtractionPipeline", "AutomaticSpeechRecognitionPipeline", "load_audio"]


def load_audio(audio: Any, sampling_rate: int) -> np.ndarray:
    """Mono float32 samples at ``sampling_rate`` from a WAV path, WAV bytes, an array or a dict."""
    from plugformers.audio_utils import load_wav

    rate: int | None = None
    if isinstance(audio, (str, os.PathLike)):
        where = os.fspath(audio)
        if not where.lower().endswith((".wav", ".wave")):
            raise ValueError(f"{where!r}: only WAV files are read; decode other formats yourself and pass the samples.")
        samples, rate = load_wav(where)
    elif isinstance(audio, (bytes, bytearray)):
        with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
            handle.write(audio)
            handle.flush()
            samples, rate = load_wav(handle.name)
    elif isinstance(audio, dict):
        key = "raw" if "raw" in audio else "array" if "array" in audio else None
        if key is None or "sampling_rate" not in audio:
            raise ValueError(f"an audio dict holds 'raw' (or 'array') and 'sampling_rate'; got keys {sorted(audio)}.")
        samples, rate = audio[key], int(audio["sampling_rate"])
    else:
        samples = audio
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"audio must be mono (one dimension of samples), got shape {samples.shape}; mix channels down first.")
    if rate is not None and rate != sampling_rate:
        raise ValueError(f"the audio is sampled at {rate} Hz but the model expects {sampling_rate} Hz; resample it first.")
    if samples.size == 0:
        raise ValueError("the audio holds no samples.")
    return samples.astype(np.float32, copy=False)


class _AudioPipeline(Pipeline):
    """Load clips, batch them by length (with attention masks where the model takes them) and featurise."""

    def __init__(self, model: Any, *, feature_extractor: Any = None, **kwargs: Any) -> None:
        if feature_extractor is None:
            raise ValueError(f"The {self.task} pipeline needs a feature extractor: pass feature_extractor=.")
        super().__init__(model, feature_extractor=feature_extractor, **kwargs)
        self.sampling_rate = int(feature_extractor.sampling_rate)
        self.masked = bool(getattr(feature_extractor, "return_attention_mask", False))
        # The frames a clip of n samples gives (the reference's name for it); without it, no padding.
        self._frames = getattr(self.model, "_get_feat_extract_output_lengths", None)

    def compatible(self, first: Feature, other: Feature) -> bool:
        return self.masked or first.size == other.size

    def featurise(self, features: list[Feature]) -> dict[str, torch.Tensor]:
        clips = [f.inputs["audio"] for f in features]
        batch = self.feature_extractor(
            clips, sampling_rate=self.sampling_rate, padding=True, return_attention_mask=self.masked, return_tensors="pt"
        )
        inputs = {"input_values": self._to_model(batch["input_values"])}
        if self.masked and "attention_mask" in batch:
            inputs["attention_mask"] = self._to_model(batch["attention_mask"])
        return inputs


class AudioClassificationPipeline(_AudioPipeline):
    """``[{"score", "label"}]`` best first (``top_k``, default 5) per clip."""

    task = "audio-classification"
    parameters = {"top_k": 5, "function_to_apply": "softmax"}

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Feature]:
        samples = load_audio(item, self.sampling_rate)
        return [Feature({"audio": samples}, samples.shape[0])]

    def forward(self, features: list[Feature], params: dict[str, Any]) -> list[Any]:
        return list(self.model(**self.featurise(features), return_dict=True).logits.float().cpu())

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        ((_, logits),) = outputs
        return ranked(scores(logits, params["function_to_apply"]), params["top_k"], self._label, score_first=True)


class AudioFeatureExtractionPipeline(_AudioPipeline):
    """The last hidden state per clip (``[[...] per frame]]``), or one vector per clip with ``pooling="mean"``.

    Only a clip's own frames count: in a padded batch the frames its samples give (the model's frame count
    for that many samples) are averaged, so a clip's vector does not depend on its batch. ``normalize=True``
    scales the vector to unit length; ``return_tensors=True`` gives tensors instead of nested lists.
    """

    task = "audio-feature-extraction"
    parameters = {"pooling": None, "normalize": False, "return_tensors": False}

    def __init__(self, model: Any, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if self._frames is None:
            self.masked = False  # frames of padding could not be told from a clip's own: equal lengths only

    def _check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        checked = super()._check_params(params)
        check_pooling(checked.get("pooling"), ("mean", "max"))
        return checked

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Feature]:
        samples = load_audio(item, self.sampling_rate)
        return [Feature({"audio": samples}, samples.shape[0])]

    def forward(self, features: list[Feature], params: dict[str, Any]) -> list[Any]:
        hidden = self.model(**self.featurise(features), return_dict=True).last_hidden_state
        total = hidden.shape[1]
        if self.masked and self._frames is not None:
            counts = self._frames(torch.tensor([f.size for f in features])).tolist()
            frames = [min(int(n), total) for n in counts]
        else:
            frames = [total] * len(features)
        if params["pooling"] is None:
            return [hidden[b, :n].float().cpu() for b, n in enumerate(frames)]
        mask = torch.arange(total, device=hidden.device)[None, :] < torch.tensor(frames, device=hidden.device)[:, None]
        return list(pool(hidden, mask, params["pooling"], params["normalize"]).cpu())

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        ((_, values),) = outputs
        if params["pooling"] is None:
            if params["normalize"]:
                values = torch.nn.functional.normalize(values, p=2, dim=-1)
            values = values[None]
        return values if params["return_tensors"] else values.tolist()


class AutomaticSpeechRecognitionPipeline(_AudioPipeline):
    """``{"text": ...}`` per clip, greedy CTC decoding (repeats joined, blanks dropped); long audio: see the module docstring."""

    task = "automatic-speech-recognition"
    parameters = {"chunk_length_s": 0.0, "stride_length_s": None}

    def __init__(self, model: Any, *, tokenizer: Any = None, **kwargs: Any) -> None:
        if tokenizer is None:
            raise ValueError("The automatic-speech-recognition pipeline needs the CTC tokenizer: pass tokenizer=.")
        super().__init__(model, tokenizer=tokenizer, **kwargs)
        if not hasattr(self.model, "config") or getattr(self.model.config, "vocab_size", None) is None:
            raise ValueError(f"{type(self.model).__name__} is not a CTC model (it has no vocabulary).")
        if self._frames is None:
            # Without the frame count of a clip, padded frames cannot be told from real ones: equal lengths only.
            self.masked = False

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Feature]:
        samples = load_audio(item, self.sampling_rate)
        chunk = round(float(params["chunk_length_s"] or 0) * self.sampling_rate)
        if chunk <= 0 or samples.shape[0] <= chunk:
            return [Feature({"audio": samples}, samples.shape[0], {"left": 0, "right": 0})]
        stride_s = params["stride_length_s"]
        stride = chunk / 6 if stride_s is None else float(stride_s) * self.sampling_rate
        left = right = round(stride)
        step = chunk - left - right
        if step <= 0:
            raise ValueError(f"chunk_length_s must be longer than twice stride_length_s (got {params['chunk_length_s']} and {stride_s}).")
        features = []
        total = samples.shape[0]
        for start in range(0, total, step):
            end = start + chunk
            last = end >= total
            piece = samples[start:end]
            ctx_left = 0 if start == 0 else left
            if piece.shape[0] > ctx_left:
                features.append(Feature({"audio": piece}, piece.shape[0], {"left": ctx_left, "right": 0 if last else right}))
            if last:
                break
        return features

    def forward(self, features: list[Feature], params: dict[str, Any]) -> list[Any]:
        inputs = self.featurise(features)
        logits = self.model(**inputs, return_dict=True).logits
        ids = logits.argmax(-1).cpu()
        frames_total = ids.shape[1]
        if self.masked and self._frames is not None:
            lengths = torch.tensor([f.size for f in features])
            frames = [min(int(n), frames_total) for n in self._frames(lengths).tolist()]
        else:
            frames = [frames_total] * len(features)
        # Samples per output frame: the config's (the reference's name for it), else what this batch shows.
        per_frame = getattr(self.model.config, "inputs_to_logits_ratio", None) or inputs["input_values"].shape[-1] / frames_total
        out = []
        for b, feature in enumerate(features):
            samples = feature.size
            nominal = round(samples / per_frame)  # frames the chunk spans, context included
            left = round(feature.meta["left"] / samples * nominal)
            right = round(feature.meta["right"] / samples * nominal)
            out.append(ids[b, left : max(left, min(frames[b], nominal - right) if right else frames[b])])
        return out

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: dict[str, Any]) -> Any:
        ids = torch.cat([o for _, o in outputs]) if outputs else torch.zeros(0, dtype=torch.long)
        # As the reference's pipeline does for CTC: tokens like <unk> stay in the text (the blank is dropped).
        return {"text": self.tokenizer.decode(ids.tolist())}
