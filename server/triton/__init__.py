"""Serve the model repository through a real Triton Inference Server.

``repository`` generates the CPU variant of the repository (python-backend models that
run the same ``model.onnx`` in ONNX Runtime), ``bundle`` finds the ``tritonserver``
binary bundled in the nvidia-pytriton wheel, and ``process`` starts, watches and stops it.
"""
