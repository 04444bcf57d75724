"""Fusion: per-modality base features -> one video vector (the default, and later the trained head)."""
