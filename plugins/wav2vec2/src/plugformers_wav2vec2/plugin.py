"""Registers the Wav2Vec2 family with the plugformers host (names only: nothing is imported here)."""

from __future__ import annotations

from typing import Any

from plugformers import hookimpl

_PKG = "plugformers_wav2vec2"
_M = f"{_PKG}.modeling_wav2vec2"


@hookimpl
def plugformers_register_families(register: Any) -> None:
    """Declare the ``wav2vec2`` model type: config, models per Auto class and preprocessing classes."""
    register(
        "wav2vec2",
        config=f"{_PKG}.configuration_wav2vec2:Wav2Vec2Config",
        models={
            "AutoModel": f"{_M}:Wav2Vec2Model",
            "AutoModelForCTC": f"{_M}:Wav2Vec2ForCTC",
            "AutoModelForAudioClassification": f"{_M}:Wav2Vec2ForSequenceClassification",
            "AutoModelForAudioFrameClassification": f"{_M}:Wav2Vec2ForAudioFrameClassification",
            "AutoModelForAudioXVector": f"{_M}:Wav2Vec2ForXVector",
            "AutoModelForPreTraining": f"{_M}:Wav2Vec2ForPreTraining",
        },
        tokenizer=f"{_PKG}.tokenization_wav2vec2:Wav2Vec2CTCTokenizer",
        feature_extractor=f"{_PKG}.feature_extraction_wav2vec2:Wav2Vec2FeatureExtractor",
        processor=f"{_PKG}.processing_wav2vec2:Wav2Vec2Processor",
        exports={
            "Wav2Vec2PreTrainedModel": f"{_M}:Wav2Vec2PreTrainedModel",
            "Wav2Vec2BaseModelOutput": f"{_M}:Wav2Vec2BaseModelOutput",
            "Wav2Vec2ForPreTrainingOutput": f"{_M}:Wav2Vec2ForPreTrainingOutput",
        },
    )
