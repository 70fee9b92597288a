"""Vision Transformer (ViT) for plugformers.

The classes (``ViTConfig``, ``ViTModel``, ``ViTForImageClassification``, ``ViTForMaskedImageModeling``,
``ViTImageProcessor``) are registered with the host by :mod:`plugformers_vit.plugin` and reached through
``plugformers`` (``from plugformers import ViTModel``); importing this package imports nothing heavy.
"""
