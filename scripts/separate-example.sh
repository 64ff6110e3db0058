#!/usr/bin/env bash
# Set up stemserve in .venv and separate a generated example song with the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
mkdir -p out
.venv/bin/python -m stemserve.example out/example.wav --seconds 30
.venv/bin/stemserve separate out/example.wav -o out/stems --stems 5
ls -l out/stems/example
