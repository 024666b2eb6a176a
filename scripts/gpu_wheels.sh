#!/usr/bin/env bash
# Wheels for the GPU check's machine: what mirg needs beyond what that machine's image
# already has (a CUDA torch 2.11, transformers 5.17, accelerate, pandas, pyarrow, psutil,
# xxhash, fsspec, aiohttp: the device notes list it), for Python 3.12 on Linux x86_64, into
# ./wheels (git ignores it; the check installs from it without an index, since that machine
# has no internet). TRL, datasets (mirg's lowest, 4.7) and datasets' two pins, and PEFT
# at the version mirg is tested with: about 3 MB, far under the 64 MiB a check may carry.
#
#   bash scripts/gpu_wheels.sh [PYTHON_VERSION]     # default 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${1:-3.12}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
rm -rf wheels && mkdir wheels
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYV" \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 -d wheels \
  trl==1.16.0 peft==0.21.2 datasets==4.7.0 'dill<0.4.1' 'multiprocess<0.70.19'
du -sh wheels
