"""MaskFormer for plugformers: ``MaskFormerConfig``, ``MaskFormerModel``, ``MaskFormerForInstanceSegmentation``
and ``MaskFormerImageProcessor``. Classes are reached through ``plugformers`` (registered lazily by ``plugin.py``)."""
