"""Python side of svd-inbetween: ONNX exporter, tiny random-weight models and the PyTorch reference pipeline."""
