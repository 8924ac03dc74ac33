#!/usr/bin/env bash
# The "hold one slot" workload, on this machine and in this run, against:
#   antrean (fsync=always and fsync=none), Redis + Lua (appendfsync always and no), PostgreSQL with a conditional
#   UPDATE in a transaction (synchronous_commit on and off),
# plus antrean's ping ceiling and its refusals, so every ratio is taken from one run. Durable is compared with durable
# (antrean fsync=always, Redis appendfsync=always, PostgreSQL synchronous_commit=on, all fsync on) and in-memory with
# in-memory (antrean fsync=none, Redis appendfsync=no, PostgreSQL synchronous_commit=off).
#
# The hot spot: Redis and PostgreSQL take every hold from one row (one counter); antrean from one office and one date
# (three sessions that share one shard lock and one log), with room for every hold of the run.
#
# Installs redis-server and PostgreSQL with apt-get when missing, starts them as plain processes on loopback ports
# (Redis 16379, PostgreSQL 15432) with their data in a temporary directory, and stops them at the end whatever
# happens. Prints a table and writes every run's JSON report (and the table) into loadtest/compare/out/.
#
# Usage: loadtest/compare/run.sh [--duration 10s] [--concurrency 64] [--connections 4] [--skip-build]
set -euo pipefail

DURATION=10s
CONCURRENCY=64
CONNECTIONS=4
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --concurrency) CONCURRENCY="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        *) echo "usage: $0 [--duration 10s] [--concurrency 64] [--connections 4] [--skip-build]" >&2; exit 64 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/loadtest/compare/out"
REDIS_PORT=16379
PG_PORT=15432
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/antrean-compare.XXXXXX)"
chmod 755 "$WORK"
REDIS_PID=""
PG_BIN=""
PG_DATA="$WORK/pg/data"

log() { printf '%s compare: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
    set +e
    if [[ -n "$REDIS_PID" ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
        kill "$REDIS_PID"
        wait "$REDIS_PID" 2>/dev/null
    fi
    if [[ -n "$PG_BIN" && -f "$PG_DATA/postmaster.pid" ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# --- install ---------------------------------------------------------------------------------------------------
find_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
need=()
command -v redis-server >/dev/null || need+=(redis-server)
[[ -n "$(find_pg_bin)" ]] || need+=(postgresql)
if [[ ${#need[@]} -gt 0 ]]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi
PG_BIN="$(find_pg_bin)"
[[ -x "$PG_BIN/initdb" ]] || { echo "no PostgreSQL binaries in /usr/lib/postgresql/*/bin" >&2; exit 1; }

# --- build ------------------------------------------------------------------------------------------------------
if [[ "$BUILD" == 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -j2 --bin antrean && cargo build --release -j2 -p loadtest)
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOADTEST="$TARGET_DIR/release/loadtest"
ANTREAN="$TARGET_DIR/release/antrean"

# --- servers ----------------------------------------------------------------------------------------------------
mkdir -p "$WORK/redis"
log "starting redis-server on 127.0.0.1:$REDIS_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
    --appendonly yes --appendfsync always --daemonize no --logfile "$WORK/redis/redis.log" &
REDIS_PID=$!
for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping >/dev/null

log "starting PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
mkdir -p "$WORK/pg"
chown postgres: "$WORK/pg"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres >"$WORK/pg/initdb.log" 2>&1
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/server.log" -w start -o \
    "-c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$WORK/pg -c max_connections=200 \
     -c fsync=on -c synchronous_commit=on -c full_page_writes=on" >/dev/null

# --- runs -------------------------------------------------------------------------------------------------------
COMMON=(--duration "$DURATION" --concurrency "$CONCURRENCY" --connections "$CONNECTIONS" --quiet)
HOT=(--offices 1 --days 1 --slots 300000)
run() {
    local name="$1"; shift
    log "run $name: loadtest $*"
    "$LOADTEST" "$@" "${COMMON[@]}" --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || {
        local code=$?
        # 2 means a correctness count was not 0: keep going, the table shows it.
        [[ $code == 2 ]] || { cat "$OUT/$name.txt" >&2; exit "$code"; }
    }
}
run antrean-ping ping --spawn --server-bin "$ANTREAN"
run antrean-always hold --spawn --server-bin "$ANTREAN" --server-arg=--fsync --server-arg=always "${HOT[@]}"
run antrean-none hold --spawn --server-bin "$ANTREAN" --server-arg=--fsync --server-arg=none "${HOT[@]}"
run antrean-refusals refusals --spawn --server-bin "$ANTREAN"
run redis-always compare-redis --target "127.0.0.1:$REDIS_PORT" --redis-appendfsync always
run redis-no compare-redis --target "127.0.0.1:$REDIS_PORT" --redis-appendfsync no
run postgres-on compare-postgres --target "127.0.0.1:$PG_PORT" --pg-synchronous-commit on
run postgres-off compare-postgres --target "127.0.0.1:$PG_PORT" --pg-synchronous-commit off

# --- table ------------------------------------------------------------------------------------------------------
python3 - "$OUT" "$CONCURRENCY" "$DURATION" <<'PY' | tee "$OUT/table.txt"
import json, sys, os, platform
out, concurrency, duration = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)
def figures(name, rpc, ok_only=True):
    r = load(name)
    stats = r["rpcs"].get(rpc, {"calls": 0, "codes": {}, "latency_ms": {"p50": 0, "p99": 0}})
    count = stats["codes"].get("OK", 0) if ok_only else stats["calls"]
    c = r["correctness"]
    bad = c["overbooked"] + c["lost"] if r["checked"] else None
    return count / max(r["elapsed_s"], 1e-9), stats["latency_ms"]["p50"], stats["latency_ms"]["p99"], bad, stats["codes"]
rows = [
    ("antrean", "ping ceiling (Health/Check)", "antrean-ping", "Health/Check", False, None),
    ("antrean", "hold, fsync=always", "antrean-always", "Hold", True, "antrean-always"),
    ("redis+lua", "appendfsync=always", "redis-always", "Hold", True, "antrean-always"),
    ("postgres", "synchronous_commit=on", "postgres-on", "Hold", True, "antrean-always"),
    ("antrean", "hold, fsync=none", "antrean-none", "Hold", True, "antrean-none"),
    ("redis+lua", "appendfsync=no", "redis-no", "Hold", True, "antrean-none"),
    ("postgres", "synchronous_commit=off", "postgres-off", "Hold", True, "antrean-none"),
    ("antrean", "refusals (not open / full)", "antrean-refusals", "Hold", False, None),
]
values = {}
print(f"hold one slot, {concurrency} concurrent callers, {duration} each, {os.cpu_count()} CPUs ({platform.node()})")
print(f"{'system':<10} {'mode':<28} {'holds/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'antrean/this':>13} {'ok':>4}  codes")
for system, mode, name, rpc, ok_only, baseline in rows:
    rate, p50, p99, bad, codes = figures(name, rpc, ok_only)
    values[name] = rate
    ratio = ""
    if baseline and baseline != name:
        ratio = f"{values[baseline] / rate:.2f}x" if rate > 0 else "inf"
    elif baseline == name:
        ratio = "1.00x"
    okay = "-" if bad is None else ("yes" if bad == 0 else f"NO({bad})")
    code_text = " ".join(f"{k}={v}" for k, v in sorted(codes.items()))
    print(f"{system:<10} {mode:<28} {rate:>10.0f} {p50:>8.3f} {p99:>8.3f} {ratio:>13} {okay:>4}  {code_text}")
ping = values["antrean-ping"]
print()
print("targets (reported, not asserted):")
print(f"  holds/s fsync=always / ping ceiling = {values['antrean-always'] / ping:.2f} (target >= 0.70); fsync=none / ping = {values['antrean-none'] / ping:.2f}")
print(f"  antrean fsync=always / redis appendfsync=always = {values['antrean-always'] / max(values['redis-always'], 1e-9):.2f}x (target >= 1.2x)")
print(f"  antrean fsync=always / postgres synchronous_commit=on = {values['antrean-always'] / max(values['postgres-on'], 1e-9):.1f}x (target >= 20x)")
print(f"  refusals / ping ceiling = {values['antrean-refusals'] / ping:.2f} (target ~1.0)")
PY
log "reports in $OUT"
