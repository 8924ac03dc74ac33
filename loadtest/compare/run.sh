#!/usr/bin/env bash
# The "hold one slot" workload, on this machine and in this run, against:
#   antrean (fsync=always and fsync=none), Redis + Lua (appendfsync always and no), PostgreSQL with a conditional
#   UPDATE in a transaction (synchronous_commit on and off),
# plus antrean's ping ceiling and its refusals, so every ratio is taken from one run. Durable is compared with durable
# (antrean fsync=always, Redis appendfsync=always, PostgreSQL synchronous_commit=on, all fsync on) and in-memory with
# in-memory (antrean fsync=none, Redis appendfsync=no, PostgreSQL synchronous_commit=off).
#
# Pinning: every server runs on the server CPUs (default 1) and the load generator on the client CPUs (default 0), so
# that on a 2-core machine a ratio such as hold / ping measures the server's cost per call. antrean is pinned by
# `loadtest --server-cpus`, Redis (single-threaded: one I/O thread) and PostgreSQL (the postmaster, so every backend)
# with `taskset -c`, the driver with `loadtest --client-cpus`. The same Rust driver and HDR recorder measure every
# system.
#
# The hot spot: Redis and PostgreSQL take every hold from one row (one counter); antrean from one office and one date
# (three sessions that share one shard lock and one log). A run stops after its duration or after 90% of the hot
# date's 300,000 slots, whichever comes first, so no antrean hold meets SESSION_FULL (holds pick a session at random).
#
# Installs redis-server and PostgreSQL with apt-get when missing (Debian packages: no other network), starts them as
# plain processes on loopback ports (Redis 16379, PostgreSQL 15432) with their data in a temporary directory, and
# stops them at the end whatever happens. Prints a table with the ratios of issue 14 against their targets, writes
# every run's JSON report (and the table) into the output directory and the summary as JSON to --json.
#
# Usage: loadtest/compare/run.sh [--duration 10s] [--concurrency 64] [--connections 4] [--server-cpus 1]
#            [--client-cpus 0] [--out DIR] [--json FILE] [--skip-build]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION=10s
CONCURRENCY=64
CONNECTIONS=4
SERVER_CPUS=1
CLIENT_CPUS=0
OUT="$ROOT/loadtest/compare/out"
JSON=""
BUILD=1
usage() {
    echo "usage: $0 [--duration 10s] [--concurrency 64] [--connections 4] [--server-cpus 1] [--client-cpus 0]" \
        "[--out DIR] [--json FILE] [--skip-build]" >&2
    exit 64
}
while [[ $# -gt 0 ]]; do
    [[ "$1" == --skip-build || $# -ge 2 ]] || usage
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --concurrency) CONCURRENCY="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --server-cpus) SERVER_CPUS="$2"; shift 2 ;;
        --client-cpus) CLIENT_CPUS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --json) JSON="$2"; shift 2 ;;
        --skip-build) BUILD=0; shift ;;
        *) usage ;;
    esac
done
JSON="${JSON:-$OUT/compare.json}"
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed to pin Redis and PostgreSQL" >&2; exit 1; }
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
    (cd "$ROOT" && nice -n 19 cargo build --release -j2 -p antrean -p loadtest)
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOADTEST="$TARGET_DIR/release/loadtest"
ANTREAN="$TARGET_DIR/release/antrean"

# --- servers ----------------------------------------------------------------------------------------------------
mkdir -p "$WORK/redis"
log "starting redis-server on 127.0.0.1:$REDIS_PORT, CPUs $SERVER_CPUS"
# One I/O thread (the default, said out loud): Redis serves every command from its one main thread.
taskset -c "$SERVER_CPUS" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
    --io-threads 1 --appendonly yes --appendfsync always --daemonize no --logfile "$WORK/redis/redis.log" &
REDIS_PID=$!
for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping >/dev/null

log "starting PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT, CPUs $SERVER_CPUS"
mkdir -p "$WORK/pg"
chown postgres: "$WORK/pg"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres >"$WORK/pg/initdb.log" 2>&1
# The postmaster inherits the CPUs from pg_ctl, and every backend from the postmaster.
runuser -u postgres -- taskset -c "$SERVER_CPUS" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/server.log" -w start -o \
    "-c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$WORK/pg -c max_connections=200 \
     -c fsync=on -c synchronous_commit=on -c full_page_writes=on" >/dev/null

# What the kernel allows each server, read back so the summary states the pinning that took effect.
allowed_cpus() { awk '/^Cpus_allowed_list:/ {print $2}' "/proc/$1/status"; }
REDIS_CPUS_ALLOWED="$(allowed_cpus "$REDIS_PID")"
PG_CPUS_ALLOWED="$(allowed_cpus "$(head -n 1 "$PG_DATA/postmaster.pid")")"
log "Redis may run on CPUs $REDIS_CPUS_ALLOWED, the PostgreSQL postmaster on CPUs $PG_CPUS_ALLOWED"

# --- runs -------------------------------------------------------------------------------------------------------
COMMON=(--duration "$DURATION" --concurrency "$CONCURRENCY" --connections "$CONNECTIONS" --quiet
    --client-cpus "$CLIENT_CPUS")
# 90% of the slots: three sessions of 100,000 picked at random never run out.
HOT=(--offices 1 --days 1 --slots 300000 --max-requests 270000)
SPAWN=(--spawn --server-bin "$ANTREAN" --server-cpus "$SERVER_CPUS")
run() {
    local name="$1"; shift
    log "run $name: loadtest $*"
    "$LOADTEST" "$@" "${COMMON[@]}" --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 || {
        local code=$?
        # 2 means a correctness count was not 0: keep going, the table shows it.
        [[ $code == 2 ]] || { cat "$OUT/$name.txt" >&2; exit "$code"; }
    }
}
run antrean-ping ping "${SPAWN[@]}"
run antrean-always hold "${SPAWN[@]}" --server-arg=--fsync --server-arg=always "${HOT[@]}"
run antrean-none hold "${SPAWN[@]}" --server-arg=--fsync --server-arg=none "${HOT[@]}"
run antrean-refusals refusals "${SPAWN[@]}"
run redis-always compare-redis --target "127.0.0.1:$REDIS_PORT" --redis-appendfsync always
run redis-no compare-redis --target "127.0.0.1:$REDIS_PORT" --redis-appendfsync no
run postgres-on compare-postgres --target "127.0.0.1:$PG_PORT" --pg-synchronous-commit on
run postgres-off compare-postgres --target "127.0.0.1:$PG_PORT" --pg-synchronous-commit off

# --- table ------------------------------------------------------------------------------------------------------
python3 - "$OUT" "$JSON" "$CONCURRENCY" "$DURATION" "$SERVER_CPUS" "$CLIENT_CPUS" "$REDIS_CPUS_ALLOWED" \
    "$PG_CPUS_ALLOWED" <<'PY' | tee "$OUT/table.txt"
import json, os, platform, sys
out, summary_path, concurrency, duration, server_cpus, client_cpus, redis_cpus, pg_cpus = sys.argv[1:9]

def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)

def figures(name, rpc, ok_only):
    r = load(name)
    stats = r["rpcs"].get(rpc, {"calls": 0, "codes": {}, "latency_ms": {"p50": 0, "p99": 0}})
    count = stats["codes"].get("OK", 0) if ok_only else stats["calls"]
    c = r["correctness"]
    return {
        "per_s": count / max(r["elapsed_s"], 1e-9),
        "p50_ms": stats["latency_ms"]["p50"],
        "p99_ms": stats["latency_ms"]["p99"],
        "elapsed_s": r["elapsed_s"],
        "overbooked_plus_lost": c["overbooked"] + c["lost"] if r["checked"] else None,
        "codes": stats["codes"],
        "pinning": r.get("pinning"),
    }

# (system, mode, report, rpc, count OK calls only, compared with)
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
table = []
print(f"hold one slot, {concurrency} concurrent callers, {duration} each (antrean holds: at most 270,000), "
      f"{os.cpu_count()} CPUs ({platform.node()})")
client = figures("antrean-ping", "Health/Check", False)["pinning"] or {}
antrean_cpus = client.get("server_cpus_allowed")
print(f"pinning: servers on CPUs {server_cpus} (allowed: antrean {antrean_cpus}, Redis {redis_cpus}, PostgreSQL "
      f"{pg_cpus}), load generator on CPUs {client_cpus} (allowed {client.get('client_cpus_allowed')}, "
      f"{client.get('client_worker_threads', '?')} tokio worker threads)")
print(f"{'system':<10} {'mode':<28} {'calls/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'antrean/this':>13} {'ok':>4}  codes")
for system, mode, name, rpc, ok_only, baseline in rows:
    f = figures(name, rpc, ok_only)
    values[name] = f
    ratio = None
    if baseline:
        ratio = values[baseline]["per_s"] / f["per_s"] if f["per_s"] > 0 else float("inf")
    bad = f["overbooked_plus_lost"]
    okay = "-" if bad is None else ("yes" if bad == 0 else f"NO({bad})")
    code_text = " ".join(f"{k}={v}" for k, v in sorted(f["codes"].items()))
    ratio_text = "" if ratio is None else f"{ratio:.2f}x"
    print(f"{system:<10} {mode:<28} {f['per_s']:>10.0f} {f['p50_ms']:>8.3f} {f['p99_ms']:>8.3f} {ratio_text:>13} "
          f"{okay:>4}  {code_text}")
    table.append({"system": system, "mode": mode, "report": name + ".json", "rpc": rpc, "per_s": f["per_s"],
                  "p50_ms": f["p50_ms"], "p99_ms": f["p99_ms"], "elapsed_s": f["elapsed_s"],
                  "antrean_over_this": ratio, "overbooked_plus_lost": bad, "codes": f["codes"]})

rate = lambda name: values[name]["per_s"]
ping = max(rate("antrean-ping"), 1e-9)
# The figures of issue 14's table: (name, value, target, whether higher is better).
ratios = [
    ("durable hold (fsync always) / ping", rate("antrean-always") / ping, 0.60, True),
    ("hold with fsync none / ping", rate("antrean-none") / ping, 0.75, True),
    ("refusals / ping", rate("antrean-refusals") / ping, 0.90, True),
    ("durable hold / Redis+Lua appendfsync always", rate("antrean-always") / max(rate("redis-always"), 1e-9), 1.2, True),
    ("durable hold p99 ms", values["antrean-always"]["p99_ms"], 5.0, False),
    ("hold fsync none p99 ms", values["antrean-none"]["p99_ms"], None, False),
    ("refusals p99 ms", values["antrean-refusals"]["p99_ms"], None, False),
    ("Redis+Lua appendfsync always p99 ms", values["redis-always"]["p99_ms"], None, False),
    ("durable hold / PostgreSQL synchronous_commit on", rate("antrean-always") / max(rate("postgres-on"), 1e-9), None, True),
]
print()
print("issue 14's figures (reported, not asserted):")
summary_ratios = []
for name, value, target, higher in ratios:
    if target is None:
        verdict, target_text = "", ""
    else:
        met = value >= target if higher else value <= target
        verdict = "met" if met else "NOT met"
        target_text = f"(target {'>=' if higher else '<='} {target:g})"
    print(f"  {name:<48} {value:>9.2f} {target_text:<16} {verdict}")
    summary_ratios.append({"name": name, "value": value, "target": target,
                           "target_is_minimum": higher if target is not None else None,
                           "met": None if target is None else (value >= target if higher else value <= target)})

summary = {
    "host": platform.node(), "cpus": os.cpu_count(), "concurrency": int(concurrency), "duration": duration,
    "pinning": {"server_cpus": server_cpus, "client_cpus": client_cpus,
                "antrean_cpus_allowed": antrean_cpus, "redis_cpus_allowed": redis_cpus,
                "postgres_cpus_allowed": pg_cpus, "client_cpus_allowed": client.get("client_cpus_allowed"),
                "client_worker_threads": client.get("client_worker_threads")},
    "rows": table, "ratios": summary_ratios,
}
os.makedirs(os.path.dirname(os.path.abspath(summary_path)), exist_ok=True)
with open(summary_path, "w") as f:
    json.dump(summary, f, indent=2)
PY
log "reports in $OUT, summary in $JSON"
