#!/usr/bin/env bash
# Make a Docker daemon answer on this machine (CI or a fresh dev box), then return.
#   - installs docker.io from apt when dockerd is missing (needs root and an apt mirror);
#   - starts dockerd in the background (log: ${DOCKERD_LOG:-/tmp/dockerd.log}) unless a daemon already answers;
#   - polls `docker version` for up to ${DOCKER_WAIT_S:-60} s.
# Exit status 0 when `docker version` answers, 1 otherwise (the log's tail is printed).
set -euo pipefail

log="${DOCKERD_LOG:-/tmp/dockerd.log}"
wait_s="${DOCKER_WAIT_S:-60}"

if docker version >/dev/null 2>&1; then
    echo "start_docker: a Docker daemon already answers"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "start_docker: dockerd is missing and we are not root; install docker.io first" >&2
        exit 1
    fi
    echo "start_docker: installing docker.io from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends docker.io >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "start_docker: starting dockerd (log: $log)"
    nohup dockerd >"$log" 2>&1 &
fi

for _ in $(seq 1 $((wait_s * 5))); do
    if docker version >/dev/null 2>&1; then
        echo "start_docker: daemon ready ($(docker version --format '{{.Server.Version}}'))"
        exit 0
    fi
    sleep 0.2
done
echo "start_docker: dockerd did not answer within ${wait_s}s; last log lines:" >&2
tail -n 20 "$log" >&2 || true
exit 1
