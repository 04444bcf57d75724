"""ONNX export of the text and vision encoders and their onnxruntime serving path."""
