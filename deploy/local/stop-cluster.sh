#!/usr/bin/env bash
# Stop the cluster started by start-cluster.sh: workers first (so none of them is left
# waiting for a lost scheduler), then the scheduler. Each process gets SIGTERM and time to
# close gracefully, then SIGKILL. Only the process ids recorded in the pid files are
# signalled, and only while they still run a dask command.
#
# Environment: UPDM_CLUSTER_DIR [./updm-cluster], UPDM_STOP_TIMEOUT seconds [30]
set -euo pipefail

cluster_dir="${UPDM_CLUSTER_DIR:-$PWD/updm-cluster}"
timeout="${UPDM_STOP_TIMEOUT:-30}"

running() {
    # Alive, not a zombie, and still a dask process (the pid was not reused).
    local state
    state="$(ps -o stat= -p "$1" 2> /dev/null)" || return 1
    state="${state//[[:space:]]/}"
    [[ "$state" != Z* && "$(ps -o args= -p "$1" 2> /dev/null)" == *dask* ]]
}

stop() {
    local pid_file="$1" pid
    pid="$(cat "$pid_file")"
    if running "$pid"; then
        kill -TERM "$pid" 2> /dev/null || true
        for _ in $(seq "$((timeout * 10))"); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            echo "stop-cluster.sh: $(basename "$pid_file" .pid) (pid $pid) ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2> /dev/null || true
        fi
    fi
    rm -f "$pid_file"
}

if [ ! -d "$cluster_dir" ]; then
    echo "stop-cluster.sh: no cluster directory $cluster_dir" >&2
    exit 1
fi
for pid_file in "$cluster_dir"/worker-*.pid; do
    if [ -e "$pid_file" ]; then
        stop "$pid_file"
    fi
done
if [ -e "$cluster_dir/scheduler.pid" ]; then
    stop "$cluster_dir/scheduler.pid"
fi
rm -f "$cluster_dir/scheduler.json"
echo "dask cluster in $cluster_dir stopped"
