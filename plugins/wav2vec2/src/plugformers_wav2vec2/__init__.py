"""Wav2Vec2 speech models for plugformers: config, models, feature extractor, CTC tokenizer and processor.

The classes are registered with the host through ``plugformers_wav2vec2.plugin`` and imported lazily;
this package module imports nothing heavy.
"""
