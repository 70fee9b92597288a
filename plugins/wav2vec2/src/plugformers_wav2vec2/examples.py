"""Example inputs and an offline feature extractor for Wav2Vec2, named by the registration (tests, demo, export).

Imported only when the host or a test asks for them: registering the family stays free of torch.
"""

from __future__ import annotations

from typing import Any

#: Output frames of the feature encoder per example clip (the clip length follows the config's strides).
FRAMES = 40
SAMPLING_RATE = 16000


def num_samples(config: Any) -> int:
    """Samples of an example clip: about :data:`FRAMES` frames for the config (800 for the tiny one)."""
    return int(config.inputs_to_logits_ratio) * FRAMES


def num_frames(config: Any, samples: int) -> int:
    """Frames the feature encoder makes of ``samples`` audio samples (no padding in its convolutions)."""
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        samples = (samples - kernel) // stride + 1
    return samples


def speech_like(batch_size: int, samples: int, seed: int = 0) -> Any:
    """Harmonic tones under a Hann window plus a little noise: voiced-speech-like float32 clips."""
    import torch

    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / SAMPLING_RATE
    rows = []
    for b in range(batch_size):
        f0 = 110.0 + 30.0 * b + 40.0 * torch.rand((), generator=g)
        wave = sum(torch.sin(2 * torch.pi * f0 * k * t) / k for k in range(1, 6))
        rows.append(wave * torch.hann_window(samples) + 0.01 * torch.randn(samples, generator=g))
    return torch.stack(rows).float()


def example_inputs(config: Any, model_class: type, batch_size: int = 2, labels: bool = False) -> dict[str, Any]:
    """Clips whose last row is padded after 60% (zeros, mask 0) and, with ``labels``, what each head's loss takes."""
    import numpy as np
    import torch

    from plugformers_wav2vec2.modeling_wav2vec2 import (
        Wav2Vec2ForAudioFrameClassification,
        Wav2Vec2ForCTC,
        Wav2Vec2ForPreTraining,
        Wav2Vec2ForSequenceClassification,
        Wav2Vec2ForXVector,
        compute_mask_indices,
        sample_negative_indices,
    )

    samples = num_samples(config)
    values = speech_like(batch_size, samples)
    mask = torch.ones(batch_size, samples, dtype=torch.long)
    if batch_size > 1:
        mask[-1, int(samples * 0.6) :] = 0
    inputs: dict[str, Any] = {"input_values": values * mask, "attention_mask": mask}
    if not labels:
        return inputs
    g = torch.Generator().manual_seed(1)
    frames = num_frames(config, samples)
    if issubclass(model_class, Wav2Vec2ForCTC):
        length = min(4, frames // 4)
        targets = torch.randint(1, config.vocab_size, (batch_size, length), generator=g)
        if batch_size > 1:
            targets[-1, length // 2 :] = -100  # the padded clip says less
        inputs["labels"] = targets
    elif issubclass(model_class, (Wav2Vec2ForSequenceClassification, Wav2Vec2ForXVector)):
        inputs["labels"] = torch.randint(0, config.num_labels, (batch_size,), generator=g)
    elif issubclass(model_class, Wav2Vec2ForAudioFrameClassification):
        classes = torch.randint(0, config.num_labels, (batch_size, frames), generator=g)
        inputs["labels"] = torch.nn.functional.one_hot(classes, config.num_labels)
    elif issubclass(model_class, Wav2Vec2ForPreTraining):
        # The contrastive loss needs masked frames and distractors; both are drawn with numpy's global
        # generator, seeded here and restored so the caller's random state is untouched.
        state = np.random.get_state()
        np.random.seed(0)
        try:
            masked = compute_mask_indices((batch_size, frames), mask_prob=0.3, mask_length=2, min_masks=2)
            negatives = sample_negative_indices((batch_size, frames), config.num_negatives, masked)
        finally:
            np.random.set_state(state)
        inputs["mask_time_indices"] = torch.from_numpy(masked)
        inputs["sampled_negative_indices"] = torch.from_numpy(negatives).long()
    return inputs


def example_preprocessor(config: Any) -> Any:
    """The family's feature extractor at 16 kHz, with attention masks where the config's layout wants them."""
    from plugformers_wav2vec2.feature_extraction_wav2vec2 import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        sampling_rate=SAMPLING_RATE, return_attention_mask=config.feat_extract_norm == "layer"
    )
