"""The modality-balanced video embedding (MBVR, DESIGN.md section 6): towers, losses, training,
ONNX export and serving."""
