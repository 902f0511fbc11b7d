"""Python side of svd-inbetween: ONNX exporter, tiny models (random for tests, trained for the demo), the PyTorch
reference pipeline, training and evaluation."""
