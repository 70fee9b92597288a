"""BERT for plugformers: classes are reached through ``plugformers`` (this module imports nothing heavy)."""
