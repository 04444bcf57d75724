"""The modality-balanced video embedding (MBVR; docs/architecture.md, "Algorithms"): towers, losses, training,
ONNX export and serving."""
