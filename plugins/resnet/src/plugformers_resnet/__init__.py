"""ResNet for plugformers: config, models (base, image classification, backbone) and image processor.

Importing this package imports nothing heavy; the plugin registers classes by name (see ``plugin.py``).
"""
