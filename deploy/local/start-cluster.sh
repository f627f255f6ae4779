#!/usr/bin/env bash
# Start a Dask scheduler and workers as local processes: the cluster of deploy/compose.yaml
# on one machine without Docker. The workers run with the same dask arguments and the same
# UPDM_WORKER_* variables as the compose `worker` service; they find the scheduler through
# a scheduler file instead of a service name.
#
# Usage: start-cluster.sh [--dry-run] [N]
#   N           number of `dask worker` commands, like `docker compose up --scale worker=N`
#               (default: $UPDM_WORKER_REPLICAS, else 2); each runs UPDM_WORKER_PROCS processes
#   --dry-run   print the commands and exit
#
# Environment (defaults in brackets):
#   UPDM_CLUSTER_DIR        scheduler file, pid files and logs [./updm-cluster]
#   UPDM_SCHEDULER_HOST     address the scheduler listens on [127.0.0.1]
#   UPDM_SCHEDULER_PORT     scheduler port, 0 for any free port [8786]
#   UPDM_DASHBOARD_ADDRESS  dashboard / HTTP API, keep it private [127.0.0.1:8787]
#   UPDM_WORKER_PROCS       worker processes per worker command [1]
#   UPDM_WORKER_THREADS     threads per worker process [2]
#   UPDM_WORKER_MEMORY      memory limit per worker process [4GiB]
#   UPDM_DEATH_TIMEOUT      seconds a worker waits for a lost scheduler before exiting [60]
#   UPDM_START_TIMEOUT      seconds to wait for the scheduler and workers to come up [60]
#   DASK_CONFIG             dask configuration [deploy/dask.yaml of this checkout]
#   DASK_BIN                the dask command [dask on PATH]
#
# Then run jobs with:  updm run JOB.toml --scheduler-file "$UPDM_CLUSTER_DIR/scheduler.json"
# Stop with:           deploy/local/stop-cluster.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

dry_run=0
replicas="${UPDM_WORKER_REPLICAS:-2}"
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *[!0-9]* | '') echo "start-cluster.sh: expected --dry-run or a number of workers, got '$arg'" >&2; exit 2 ;;
        *) replicas="$arg" ;;
    esac
done
if [ "$replicas" -lt 1 ]; then
    echo "start-cluster.sh: the number of workers must be at least 1, got $replicas" >&2
    exit 2
fi

cluster_dir="${UPDM_CLUSTER_DIR:-$PWD/updm-cluster}"
scheduler_file="$cluster_dir/scheduler.json"
dask_bin="${DASK_BIN:-dask}"
timeout="${UPDM_START_TIMEOUT:-60}"
export DASK_CONFIG="${DASK_CONFIG:-$here/../dask.yaml}"

scheduler_cmd=(
    "$dask_bin" scheduler
    --host "${UPDM_SCHEDULER_HOST:-127.0.0.1}"
    --port "${UPDM_SCHEDULER_PORT:-8786}"
    --dashboard-address "${UPDM_DASHBOARD_ADDRESS:-127.0.0.1:8787}"
    --scheduler-file "$scheduler_file"
)
worker_cmd=(
    "$dask_bin" worker
    --scheduler-file "$scheduler_file"
    --nworkers "${UPDM_WORKER_PROCS:-1}"
    --nthreads "${UPDM_WORKER_THREADS:-2}"
    --memory-limit "${UPDM_WORKER_MEMORY:-4GiB}"
    --death-timeout "${UPDM_DEATH_TIMEOUT:-60}"
)

if [ "$dry_run" -eq 1 ]; then
    printf '%q ' "${scheduler_cmd[@]}"
    echo
    for _ in $(seq "$replicas"); do
        printf '%q ' "${worker_cmd[@]}"
        echo
    done
    exit 0
fi

if ! command -v "$dask_bin" > /dev/null; then
    echo "start-cluster.sh: '$dask_bin' not found; activate the environment with updm_dask or set DASK_BIN" >&2
    exit 1
fi

mkdir -p "$cluster_dir"
for pid_file in "$cluster_dir"/*.pid; do
    [ -e "$pid_file" ] || continue
    if kill -0 "$(cat "$pid_file")" 2> /dev/null; then
        echo "start-cluster.sh: a cluster is already running from $cluster_dir; stop it first" >&2
        exit 1
    fi
    rm -f "$pid_file"
done
# A scheduler file left by an earlier run would send the workers to a dead address.
rm -f "$scheduler_file"

start() {
    local name="$1"
    shift
    nohup "$@" > "$cluster_dir/$name.log" 2>&1 < /dev/null &
    echo "$!" > "$cluster_dir/$name.pid"
}

fail() {
    echo "start-cluster.sh: $1; last lines of $2:" >&2
    tail -n 20 "$2" >&2
    UPDM_CLUSTER_DIR="$cluster_dir" "$here/stop-cluster.sh" > /dev/null 2>&1 || true
    exit 1
}

start scheduler "${scheduler_cmd[@]}"
for _ in $(seq "$((timeout * 10))"); do
    [ -s "$scheduler_file" ] && break
    kill -0 "$(cat "$cluster_dir/scheduler.pid")" 2> /dev/null \
        || fail "the scheduler exited" "$cluster_dir/scheduler.log"
    sleep 0.1
done
[ -s "$scheduler_file" ] || fail "no scheduler file after ${timeout}s" "$cluster_dir/scheduler.log"

for i in $(seq "$replicas"); do
    start "worker-$i" "${worker_cmd[@]}"
done

# Each worker process logs "Registered to:" once the scheduler has accepted it. With
# --nworkers auto or a negative count dask decides; then wait for one per command.
case "${UPDM_WORKER_PROCS:-1}" in
    '' | *[!0-9]*) per_command=1 ;;
    *) per_command="${UPDM_WORKER_PROCS:-1}" ;;
esac
expected=$((replicas * per_command))
registered=0
for _ in $(seq "$((timeout * 10))"); do
    registered=$(cat "$cluster_dir"/worker-*.log | grep -c "Registered to:" || true)
    [ "$registered" -ge "$expected" ] && break
    for i in $(seq "$replicas"); do
        kill -0 "$(cat "$cluster_dir/worker-$i.pid")" 2> /dev/null \
            || fail "worker $i exited" "$cluster_dir/worker-$i.log"
    done
    sleep 0.1
done
[ "$registered" -ge "$expected" ] \
    || fail "only $registered of $expected worker processes registered after ${timeout}s" \
        "$cluster_dir/worker-1.log"

echo "dask cluster up: $expected worker processes; scheduler file $scheduler_file"
echo "run a job:  updm run JOB.toml --scheduler-file $scheduler_file"
echo "stop it:    $here/stop-cluster.sh"
