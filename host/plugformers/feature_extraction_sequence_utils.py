"""``SequenceFeatureExtractor``: the base of audio feature extractors (checking, padding, truncating).

A family's extractor (e.g. Wav2Vec2's) calls :meth:`SequenceFeatureExtractor.check_raw_audio` and
:meth:`SequenceFeatureExtractor.check_sampling_rate` on what the user passed, computes its features per
example, and returns :meth:`SequenceFeatureExtractor.pad` of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from plugformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

__all__ = ["SequenceFeatureExtractor"]

_PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")


def _stacked_if_even(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One stacked array when every example has the same shape, else the list as it is."""
    if arrays and len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    return arrays


class SequenceFeatureExtractor(FeatureExtractionMixin):
    """Settings shared by sequence (audio) feature extractors, and padding of variable-length examples.

    ``feature_size`` is the size of one frame (1 for raw waveforms), ``sampling_rate`` the rate in Hz the
    model expects, ``padding_value`` what pads are filled with, ``padding_side`` "right" or "left", and
    ``return_attention_mask`` whether :meth:`pad` returns an ``attention_mask`` by default.
    """

    def __init__(self, feature_size: int, sampling_rate: int, padding_value: float, **kwargs: Any) -> None:
        if isinstance(feature_size, bool) or not isinstance(feature_size, (int, np.integer)) or feature_size < 1:
            raise ValueError(f"feature_size must be a positive integer, got {feature_size!r}.")
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
            raise ValueError(f"sampling_rate must be a positive integer (Hz), got {sampling_rate!r}.")
        self.feature_size = int(feature_size)
        self.sampling_rate = int(sampling_rate)
        self.padding_value = float(padding_value)
        self.padding_side = kwargs.pop("padding_side", "right")
        if self.padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {self.padding_side!r}.")
        self.return_attention_mask = bool(kwargs.pop("return_attention_mask", True))
        super().__init__(**kwargs)

    # -- input checks ---------------------------------------------------------------------------------------------

    def check_sampling_rate(self, sampling_rate: int | None) -> None:
        """Refuse audio recorded at another rate than the model's (no silent resampling)."""
        if sampling_rate is None:
            return
        if int(sampling_rate) != self.sampling_rate:
            raise ValueError(
                f"The audio was sampled at {sampling_rate} Hz but {type(self).__name__} expects "
                f"{self.sampling_rate} Hz. Resample it first, e.g. with "
                f"scipy.signal.resample_poly(audio, {self.sampling_rate}, {sampling_rate}) or "
                f"torchaudio.functional.resample(audio, {sampling_rate}, {self.sampling_rate})."
            )

    def check_raw_audio(self, raw_audio: Any) -> tuple[list[np.ndarray], bool]:
        """Validate one example or a batch; return (float32 arrays, one per example, whether it was a batch).

        One example is a 1-D array/list of samples (``(frames, feature_size)`` when ``feature_size > 1``);
        a batch is a list of those, or a 2-D array (one row per example) for raw waveforms. Empty examples,
        NaN/inf values, non-numeric data and wrong dimensions raise ``ValueError`` naming the example.
        """
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and isinstance(raw_audio, torch.Tensor):
            raw_audio = raw_audio.detach().cpu().numpy()
        example_ndim = 1 if self.feature_size == 1 else 2
        if isinstance(raw_audio, np.ndarray):
            if raw_audio.ndim == example_ndim:
                examples, batched = [raw_audio], False
            elif raw_audio.ndim == example_ndim + 1:
                examples, batched = list(raw_audio), True
            else:
                raise ValueError(
                    f"Audio array has shape {raw_audio.shape}; expected {example_ndim} dimension(s) for one "
                    f"example or {example_ndim + 1} for a batch."
                )
        elif isinstance(raw_audio, (list, tuple)):
            if len(raw_audio) == 0:
                raise ValueError("The audio input is empty.")
            first = raw_audio[0]
            if torch is not None and isinstance(first, torch.Tensor):
                first = first.detach().cpu().numpy()
            nested = isinstance(first, (list, tuple, np.ndarray))
            if example_ndim == 1 and not nested:
                examples, batched = [np.asarray(raw_audio)], False
            else:
                examples, batched = list(raw_audio), True
        else:
            raise ValueError(
                f"Audio must be a NumPy array, a torch tensor or a list of numbers/arrays, not {type(raw_audio).__name__}."
            )
        if batched and not examples:
            raise ValueError("The batch of audio examples is empty.")
        return [self._check_example(ex, i if batched else None, example_ndim) for i, ex in enumerate(examples)], batched

    def _check_example(self, example: Any, index: int | None, example_ndim: int) -> np.ndarray:
        import sys

        what = "the audio" if index is None else f"audio example {index}"
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(example, torch.Tensor):
            example = example.detach().cpu().numpy()
        try:
            arr = np.asarray(example)
        except ValueError as exc:
            raise ValueError(f"{what} is ragged or not numeric ({exc}).") from None
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_
        ):
            raise ValueError(f"{what} has the non-numeric dtype {arr.dtype}; pass samples as numbers.")
        if arr.ndim != example_ndim:
            shape_hint = "(samples,)" if example_ndim == 1 else f"(frames, {self.feature_size})"
            raise ValueError(
                f"{what} has shape {arr.shape}; each example must be {example_ndim}-D {shape_hint}. "
                "For stereo or multi-channel audio, average the channels to mono first; for a batch, pass a list."
            )
        if example_ndim == 2 and arr.shape[1] != self.feature_size:
            raise ValueError(f"{what} has {arr.shape[1]} features per frame; expected feature_size={self.feature_size}.")
        if arr.shape[0] == 0:
            raise ValueError(f"{what} is empty (0 samples).")
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contains NaN or infinite values.")
        return arr

    # -- padding ---------------------------------------------------------------------------------------------------

    def pad(
        self,
        processed_features: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
    ) -> BatchFeature:
        """Pad (and optionally truncate) a batch of examples to one length.

        ``processed_features`` is a dict/BatchFeature of lists (keyed by ``model_input_names[0]``, optionally
        with an ``attention_mask``) or a list of per-example dicts. ``padding``: True/"longest" pads to the
        longest example, "max_length" to ``max_length``, False/"do_not_pad" leaves lengths alone.
        ``truncation`` cuts examples longer than ``max_length`` (rounded up to ``pad_to_multiple_of`` when
        given); ``pad_to_multiple_of`` rounds the target length up. Pads use ``padding_value`` on
        ``padding_side``; the mask has 1 for real frames. With ``return_tensors=None`` examples of one length
        come back as one stacked NumPy array (as in the reference), ragged ones as a list of arrays.
        """
        if isinstance(processed_features, (list, tuple)) and processed_features and isinstance(processed_features[0], dict):
            keys = processed_features[0].keys()
            processed_features = {k: [ex[k] for ex in processed_features] for k in keys}
        if not isinstance(processed_features, dict):
            raise TypeError(
                "pad() takes a dict (or BatchFeature) of lists of examples, or a list of per-example dicts; "
                f"got {type(processed_features).__name__}."
            )
        main = self.model_input_names[0]
        if main not in processed_features:
            raise ValueError(f"pad() needs the key {main!r}; got keys {sorted(processed_features)}.")
        strategy = self._strategy(padding, max_length)
        if truncation and max_length is None:
            raise ValueError("truncation=True needs max_length.")
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0):
            raise ValueError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}.")
        want_mask = self.return_attention_mask if return_attention_mask is None else bool(return_attention_mask)

        values = processed_features[main]
        if isinstance(values, np.ndarray) and values.ndim >= 1 and values.dtype != object:
            values = list(values) if values.ndim > (1 if self.feature_size == 1 else 2) else [values]
        examples = [np.asarray(v) for v in values]
        masks_in = processed_features.get("attention_mask")
        masks = (
            [np.asarray(m, dtype=np.int32) for m in masks_in]
            if masks_in is not None
            else [np.ones(len(e), dtype=np.int32) for e in examples]
        )
        if truncation:
            assert max_length is not None  # checked above
            limit = max_length
            if pad_to_multiple_of is not None and limit % pad_to_multiple_of:
                # Cut at the padded length, as the reference does: a multiple of pad_to_multiple_of.
                limit = (limit // pad_to_multiple_of + 1) * pad_to_multiple_of
            examples = [e[:limit] for e in examples]
            masks = [m[:limit] for m in masks]
        if strategy == "longest":
            target: int | None = max(len(e) for e in examples)
        elif strategy == "max_length":
            target = max_length
        else:
            target = None
        if target is not None and pad_to_multiple_of is not None and target % pad_to_multiple_of:
            target = (target // pad_to_multiple_of + 1) * pad_to_multiple_of

        out_values, out_masks = [], []
        for e, m in zip(examples, masks):
            missing = 0 if target is None else max(target - len(e), 0)
            if missing:
                widths = [(0, missing) if self.padding_side == "right" else (missing, 0)] + [(0, 0)] * (e.ndim - 1)
                e = np.pad(e, widths, constant_values=self.padding_value)
                m = np.pad(m, widths[:1], constant_values=0)
            if e.dtype == np.float64:
                e = e.astype(np.float32)
            out_values.append(e)
            out_masks.append(m)
        data: dict[str, Any] = {k: v for k, v in processed_features.items() if k not in (main, "attention_mask")}
        data[main] = _stacked_if_even(out_values) if return_tensors is None else out_values
        if want_mask:
            data["attention_mask"] = _stacked_if_even(out_masks) if return_tensors is None else out_masks
        return BatchFeature(data, tensor_type=return_tensors)

    @staticmethod
    def _strategy(padding: bool | str, max_length: int | None) -> str:
        if padding is True:
            strategy = "longest"
        elif padding is False or padding is None:
            strategy = "do_not_pad"
        elif isinstance(padding, str) and padding in _PADDING_STRATEGIES:
            strategy = padding
        else:
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}.")
        if strategy == "max_length":
            if max_length is None:
                raise ValueError("padding='max_length' needs max_length.")
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= 0:
                raise ValueError(f"max_length must be a positive integer, got {max_length!r}.")
        return strategy
