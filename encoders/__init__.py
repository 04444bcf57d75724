"""Media decoding, per-modality encoders and the modality-balanced fusion model."""
