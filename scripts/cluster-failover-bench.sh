#!/usr/bin/env bash
# A failover under load, measured: 3 nats-server (2.15.1, `sync_interval: always`) and 3 antrean nodes of one
# partition on loopback, release binaries; `loadtest cluster` holds through whichever node serves, kills the owner with
# SIGKILL mid-run, and reports holds per second with R3, the unavailability window (longest gap between acknowledged
# holds of one office) and the check through the node serving at the end (lost and overbooked must be 0).
#
#   bash scripts/cluster-failover-bench.sh [OUT.json] [extra loadtest flags...]
#
# OUT.json defaults to docs/perf/cluster-failover.json. Needs target/release/antrean and target/release/loadtest
# (`nice -n 19 cargo build --release -p antrean -p loadtest`; ANTREAN_BIN and LOADTEST_BIN name others, as the
# loadtest smoke test does with debug builds). BENCH_DURATION (30s), BENCH_KILL_OWNER_AFTER (10s),
# BENCH_CONCURRENCY (32) and BENCH_LEASE_TTL_MS (the node default, 10000) shape the run. Everything it starts it
# stops; its work directory (NATS storage, node configs and logs) is printed and left in /tmp for reading.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out="${1:-docs/perf/cluster-failover.json}"
shift || true
duration="${BENCH_DURATION:-30s}"
kill_after="${BENCH_KILL_OWNER_AFTER:-10s}"
concurrency="${BENCH_CONCURRENCY:-32}"
lease_ttl_ms="${BENCH_LEASE_TTL_MS:-}"
antrean="${ANTREAN_BIN:-target/release/antrean}"
loadtest="${LOADTEST_BIN:-target/release/loadtest}"
for binary in "$antrean" "$loadtest"; do
    [ -x "$binary" ] || { echo "missing $binary: nice -n 19 cargo build --release -p antrean -p loadtest" >&2; exit 1; }
done

work="$(mktemp -d /tmp/antrean-cluster-bench.XXXXXX)"
pids=()
nats_pid=""
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    echo "work directory: $work" >&2
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

bash scripts/nats-server.sh cluster "$work/nats" --sync-always > "$work/nats.out" 2> "$work/nats.err" &
nats_pid=$!
for _ in $(seq 1 300); do
    grep -q '^nats_urls' "$work/nats.out" 2>/dev/null && break
    sleep 0.1
done
urls_line="$(grep '^nats_urls' "$work/nats.out")" || { cat "$work/nats.err" >&2; exit 1; }

addresses=()
for index in 1 2 3; do
    port="$(free_port)"
    {
        echo "[cluster]"
        echo "node_name = \"node-$index\""
        echo "$urls_line"
        echo 'offices = "all"'
        echo 'partition = "bench"'
        if [ -n "$lease_ttl_ms" ]; then
            echo "lease_ttl_ms = $lease_ttl_ms"
            echo "lease_renew_every_ms = $(( lease_ttl_ms / 6 ))"
            echo "request_timeout_ms = $(( lease_ttl_ms / 3 ))"
        fi
    } > "$work/node-$index.toml"
    "$antrean" --config "$work/node-$index.toml" --listen "127.0.0.1:$port" --metrics-listen "" \
        --data-dir "$work/node-$index" --log-format json > "$work/node-$index.out" 2> "$work/node-$index.log" &
    pids+=("$!")
    addresses+=("127.0.0.1:$port")
    # The first node takes the lease before the others start, so the run begins with one owner and two standbys.
    [ "$index" = 1 ] && sleep 2
done

sleep 1
for index in 0 1 2; do
    if ! kill -0 "${pids[$index]}" 2>/dev/null; then
        echo "node-$((index + 1)) exited at start:" >&2
        tail -5 "$work/node-$((index + 1)).log" >&2
        exit 1
    fi
done

nodes="$(IFS=,; echo "${addresses[*]}")"
node_pids="$(IFS=,; echo "${pids[*]}")"
mkdir -p "$(dirname "$out")"
command=("$loadtest" cluster --nodes "$nodes" --node-pids "$node_pids" --kill-owner-after "$kill_after"
    --duration "$duration" --concurrency "$concurrency" --call-timeout 2s --offices 1 --slots 100000 --json "$out"
    --quiet "$@")
echo "+ ${command[*]}" >&2
status=0
"${command[@]}" || status=$?
echo "report written to $out (loadtest exit status $status)" >&2
exit "$status"
