#!/usr/bin/env bash
# Build the evaluation image (alma-eval:<content hash>) unless it is up to date; prints its tag.
# Needs a Docker daemon (scripts/start_docker.sh) and, the first time, PyPI access on the host for the
# wheelhouse and a Debian mirror for the base image when python:3.11-slim is neither local nor pullable.
# Extra arguments go to `python -m sandbox.image build` (--base-image IMAGE, --force, --no-pull, and
# --with PROJECT_DIR to install a plug-in benchmark/agent project in the image: it changes the tag, which is
# printed; installed plug-ins with an alma_engine.* entry point and $ALMA_IMAGE_WITH are included without it).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then python=.venv/bin/python; fi
exec "$python" -m sandbox.image build "$@"
