#!/usr/bin/env bash
# Install what `python -m stemserve.export` needs: bash export/requirements-install.sh [PYTHON]
#
# demucs and openunmix are installed without their dependency lists: those name torchaudio
# (whose wheels pin a torch build of their own and replace the CPU torch) and the demucs
# CLI's I/O stack. The model code needs only the few pure-python packages below; the
# torch pin on the same command line keeps pip from touching torch. BS-RoFormer is pinned
# at 0.3.10: for the published RoFormer configs its models have exactly the state-dict keys
# of Music-Source-Separation-Training's (later versions add layers); it and
# rotary-embedding-torch go in without their dependency lists too (an unpinned torch).
# librosa is needed by MelBandRoformer's mel filter bank.
set -euo pipefail
PYTHON="${1:-${PYTHON:-python}}"  # the interpreter of the target environment
TORCH_PIN="torch==2.13.0"
"$PYTHON" -m pip install --quiet "$TORCH_PIN" "onnx>=1.15" "julius>=0.2.7" "einops>=0.6" "tqdm>=4.60" "pyyaml>=6.0" \
    "beartype==0.22.9" "librosa==0.11.0"
"$PYTHON" -m pip install --quiet --no-deps "$TORCH_PIN" "demucs==4.1.0" "openunmix==1.3.0" \
    "bs-roformer==0.3.10" "rotary-embedding-torch==0.8.9"
"$PYTHON" -c "import demucs.htdemucs, demucs.apply; from export.packages import openunmix_model; openunmix_model()"
"$PYTHON" -c "from bs_roformer import BSRoformer, MelBandRoformer"
