#!/usr/bin/env bash
# Start (or check) a local Docker engine on machines without systemd, such as CI.
# Usage: tools/docker_engine.sh start|status
set -euo pipefail
cmd="${1:-status}"
if docker info >/dev/null 2>&1; then
    echo "docker engine: running"
    exit 0
fi
if [ "$cmd" != "start" ]; then
    echo "docker engine: not running" >&2
    exit 1
fi
command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
mkdir -p /var/log
nohup dockerd >/var/log/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "docker engine: started"
        exit 0
    fi
    sleep 0.5
done
echo "docker engine did not start; see /var/log/dockerd.log" >&2
tail -20 /var/log/dockerd.log >&2
exit 1
