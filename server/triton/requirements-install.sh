#!/usr/bin/env bash
# Install what `stemserve triton` and TritonBackend need, into the given stemserve Python:
#   server/triton/requirements-install.sh .venv/bin/python
# - tritonclient (gRPC client) and nvidia-pytriton (for its bundled tritonserver binary),
#   both without their pinned dependencies: nvidia-pytriton pins numpy<2 and
#   tritonclient[grpc] protobuf<7, which would downgrade what the server extra needs;
#   grpcio and protobuf come from the server extra.
# - build/triton/python-env: the Python environment the python-backend models run in,
#   with numpy<2 (the stub of Triton 2.51 is built against numpy 1.x) and the same
#   onnxruntime version as stemserve's, so both backends give the same numbers.
set -euo pipefail
python=${1:-.venv/bin/python}
cd "$(dirname "$0")/../.."
"$python" -m pip install --quiet --no-deps "nvidia-pytriton==0.7.0" "tritonclient==2.73.0" "python-rapidjson>=0.9.1"
ort_version=$("$python" -c "import onnxruntime; print(onnxruntime.__version__)")
env_dir=build/triton/python-env
if ! "$env_dir/bin/python3" -c "import numpy, onnxruntime, sys; sys.exit(numpy.__version__ >= '2' or onnxruntime.__version__ != '$ort_version')" 2>/dev/null; then
    "$python" -m venv --clear "$env_dir"
    "$env_dir/bin/python3" -m pip install --quiet "numpy>=1.26,<2" "onnxruntime==$ort_version"
fi
