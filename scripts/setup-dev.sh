#!/usr/bin/env bash
# Set up stemserve with every extra (and the Debian packages the tests need) in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
lists=(./*/apt-packages.txt ./*/*/apt-packages.txt)
packages=""
if [ ${#lists[@]} -gt 0 ]; then
    packages=$(cat "${lists[@]}" | sed -e '/^#/d' -e '/^\s*$/d' | sort -u | tr '\n' ' ')
fi
if [ -n "$packages" ] && command -v apt-get >/dev/null; then
    missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
    if [ -n "$missing" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev,server,train,export,triton,jobs]"
# installs pip cannot express (packages taken without their dependency pins), one script per part
for script in export/requirements-install.sh server/triton/requirements-install.sh; do
    bash "$script" .venv/bin/python
done
