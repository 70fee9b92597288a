"""`Wav2Vec2Processor`: the feature extractor and the CTC tokenizer behind one object.

``processor(audio=..., sampling_rate=16000)`` gives ``input_values``; adding ``text=`` puts the
transcription's ids under ``labels`` (for CTC training); ``batch_decode`` turns predicted ids into text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugformers.processing_utils import ProcessorMixin

if TYPE_CHECKING:
    from plugformers_wav2vec2.feature_extraction_wav2vec2 import Wav2Vec2FeatureExtractor
    from plugformers_wav2vec2.tokenization_wav2vec2 import Wav2Vec2CTCTokenizer

__all__ = ["Wav2Vec2Processor"]


class Wav2Vec2Processor(ProcessorMixin):
    """Bundles :class:`Wav2Vec2FeatureExtractor` and :class:`Wav2Vec2CTCTokenizer` (saved into one folder)."""

    attributes = ["feature_extractor", "tokenizer"]
    feature_extractor_class = "Wav2Vec2FeatureExtractor"
    tokenizer_class = "Wav2Vec2CTCTokenizer"
    text_target_key = "labels"
    # Set by ProcessorMixin.__init__ from ``attributes`` (checked against the classes named above).
    feature_extractor: Wav2Vec2FeatureExtractor
    tokenizer: Wav2Vec2CTCTokenizer

    def __call__(self, audio: Any = None, text: Any = None, images: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Featurise ``audio`` and/or tokenize ``text`` (its ids become ``labels`` when both are given).

        ``sampling_rate`` goes to the feature extractor only; ``padding``, ``return_tensors`` and the like
        go to both parts.
        """
        if images is not None:
            raise ValueError("Wav2Vec2Processor takes audio= and text=, not images=.")
        if "raw_speech" in kwargs and audio is None:
            audio = kwargs.pop("raw_speech")
        audio_kwargs = dict(kwargs.pop("audio_kwargs", None) or {})
        if "sampling_rate" in kwargs:
            audio_kwargs["sampling_rate"] = kwargs.pop("sampling_rate")
        return super().__call__(text=text, audio=audio, audio_kwargs=audio_kwargs, **kwargs)

    def pad(self, *args: Any, **kwargs: Any) -> Any:
        """Pad ``input_features`` with the feature extractor and ``labels`` with the tokenizer.

        ``input_features`` (first positional argument or keyword) is a batch of ``input_values``;
        ``labels`` a batch of ``input_ids``. With both, the padded label ids are returned under ``labels``.
        """
        input_features = kwargs.pop("input_features", None)
        labels = kwargs.pop("labels", None)
        if args:
            input_features, args = args[0], args[1:]
        if input_features is None and labels is None:
            raise ValueError("Wav2Vec2Processor.pad() needs input_features and/or labels.")
        if input_features is not None:
            input_features = self.feature_extractor.pad(input_features, *args, **kwargs)
        if labels is not None:
            labels = self.tokenizer.pad(labels, **kwargs)
        if labels is None:
            return input_features
        if input_features is None:
            return labels
        input_features["labels"] = labels["input_ids"]
        return input_features
