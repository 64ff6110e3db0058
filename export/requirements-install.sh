#!/usr/bin/env bash
# Install what `python -m stemserve.export` needs: bash export/requirements-install.sh [PYTHON]
#
# demucs and openunmix are installed without their dependency lists: those name torchaudio
# (whose wheels pin a torch build of their own and replace the CPU torch) and the demucs
# CLI's I/O stack. The model code needs only the few pure-python packages below; the
# torch pin on the same command line keeps pip from touching torch.
set -euo pipefail
PYTHON="${1:-${PYTHON:-python}}"  # the interpreter of the target environment
TORCH_PIN="torch==2.13.0"
"$PYTHON" -m pip install --quiet "$TORCH_PIN" "onnx>=1.15" "julius>=0.2.7" "einops>=0.6" "tqdm>=4.60" "pyyaml>=6.0"
"$PYTHON" -m pip install --quiet --no-deps "$TORCH_PIN" "demucs==4.1.0" "openunmix==1.3.0"
"$PYTHON" -c "import demucs.htdemucs, demucs.apply; from export.packages import openunmix_model; openunmix_model()"
