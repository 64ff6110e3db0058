"""The ONNX Runtime session options of a served model, defined once.

Used in process (``LocalBackend``) and by the Triton python-backend model, which runs in
Triton's own interpreter without stemserve: the CPU repository generator copies this file
beside its ``model.py``. So it imports onnxruntime and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

import onnxruntime as ort


def session_options(config_entries: Mapping[str, str], intra_op_threads: int = 0) -> ort.SessionOptions:
    """``config_entries``: the model's ``onnxruntime_session_config`` (key -> value);
    ``intra_op_threads`` 0: ONNX Runtime picks (every core)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True  # reuse buffers between runs
    # memory patterns keep one arena plan per input shape: off keeps peak memory low at the same speed
    options.enable_mem_pattern = False
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    for key, value in config_entries.items():
        options.add_session_config_entry(key, value)
    return options
