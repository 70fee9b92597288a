"""`Wav2Vec2FeatureExtractor`: raw 16 kHz mono audio -> padded, normalised ``input_values``.

Saved as ``preprocessor_config.json`` with the reference library's keys, so either library reads the
other's files. This module does not import torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from plugformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from plugformers.feature_extraction_utils import BatchFeature
from plugformers.utils.logging import warn_once

__all__ = ["Wav2Vec2FeatureExtractor"]

# A 2-D array this narrow is a (samples, channels) recording rather than a batch of waveforms.
_MAX_CHANNELS = 8


class Wav2Vec2FeatureExtractor(SequenceFeatureExtractor):
    """Pads a batch of waveforms and (``do_normalize``) scales each to zero mean and unit variance.

    Normalisation uses only each example's real samples (when an attention mask is produced, i.e. when
    padding), and the padded tail is reset to ``padding_value``. ``return_attention_mask`` should be True
    for models with ``feat_extract_norm="layer"`` (the large ones) and is False by default, as in the
    reference: base models were trained on zero-padded batches without a mask.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 16000,
        padding_value: float = 0.0,
        return_attention_mask: bool = False,
        do_normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.do_normalize = do_normalize

    @staticmethod
    def zero_mean_unit_var_norm(
        input_values: list[np.ndarray], attention_mask: list[np.ndarray] | None, padding_value: float = 0.0
    ) -> list[np.ndarray]:
        """Scale every example to mean 0 and variance 1 over its real samples (``attention_mask`` 1s)."""
        out = []
        if attention_mask is None:
            for values in input_values:
                values = np.asarray(values, dtype=np.float32)
                out.append((values - values.mean()) / np.sqrt(values.var() + 1e-7))
            return out
        for values, mask in zip(input_values, attention_mask):
            values = np.asarray(values, dtype=np.float32)
            length = int(np.asarray(mask).sum())
            real = values[:length]
            normed = (values - real.mean()) / np.sqrt(real.var() + 1e-7)
            if length < normed.shape[0]:
                normed[length:] = padding_value
            out.append(normed)
        return out

    def __call__(
        self,
        raw_speech: Any,
        padding: bool | str = False,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        sampling_rate: int | None = None,
    ) -> BatchFeature:
        """Featurise one waveform (1-D) or a batch (list of 1-D arrays, or a 2-D array of equal-length rows).

        ``padding=True`` pads to the longest example; ``"max_length"`` to ``max_length``. Pass
        ``sampling_rate`` so that audio at another rate is refused instead of silently mis-read.
        """
        if sampling_rate is None:
            warn_once(
                f"Pass sampling_rate= to {type(self).__name__} (it expects {self.sampling_rate} Hz audio) so that "
                "audio at another rate is detected rather than silently giving wrong results."
            )
        self.check_sampling_rate(sampling_rate)
        shape = getattr(raw_speech, "shape", None)
        if shape is not None and len(shape) == 2 and 0 < shape[1] <= _MAX_CHANNELS < shape[0]:
            raise ValueError(
                f"The audio array has shape {tuple(shape)}, which looks like (samples, channels): "
                f"{type(self).__name__} takes mono audio. Mix the channels down first, e.g. audio.mean(axis=1); "
                "for a batch pass a list of 1-D arrays or a (batch, samples) array."
            )
        examples, _ = self.check_raw_audio(raw_speech)

        padded = self.pad(
            {"input_values": examples},
            padding=padding,
            max_length=max_length,
            truncation=truncation,
            pad_to_multiple_of=pad_to_multiple_of,
            return_attention_mask=return_attention_mask,
        )
        values = [np.asarray(v, dtype=np.float32) for v in padded["input_values"]]
        masks = padded.get("attention_mask")
        if masks is not None:
            padded["attention_mask"] = [np.asarray(m, dtype=np.int32) for m in masks]
        if self.do_normalize:
            # The mask only describes padding when there was padding to do.
            use_mask = masks if self._strategy(padding, max_length) != "do_not_pad" else None
            # A list of arrays (not pad()'s stacked array), as the reference returns with return_tensors=None.
            padded["input_values"] = self.zero_mean_unit_var_norm(values, use_mask, padding_value=self.padding_value)
        if return_tensors is not None:
            padded = padded.convert_to_tensors(return_tensors)
        return padded
