"""Inference backends behind one contract (``Backend``): ONNX Runtime in process, Triton over gRPC."""
