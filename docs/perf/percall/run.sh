#!/usr/bin/env bash
# run.sh BIN SCENARIO DURATION OUTNAME [perf-seconds] [extra loadtest args...]
set -u
BIN=$1; SC=$2; DUR=$3; NAME=$4; PERF=${5:-0}; shift 5 || shift $#
LT=/tmp/percall/bin/loadtest
OUT=/tmp/percall/out; mkdir -p $OUT
$LT $SC --spawn --server-bin $BIN --server-cpus 1 --client-cpus 0 --duration $DUR --concurrency 64 --connections 4 --quiet --json $OUT/$NAME.json "$@" > $OUT/$NAME.txt 2>&1 &
LPID=$!
sleep 0.5
SPID=""
for _ in $(seq 40); do SPID=$(pgrep -P $LPID | head -1); [[ -n "$SPID" ]] && break; sleep 0.1; done
( last=""; while [[ -r /proc/$SPID/stat ]]; do l=$(awk '{print $14+$15}' /proc/$SPID/stat 2>/dev/null) && [[ -n "$l" ]] && last=$l; echo "$last" > $OUT/$NAME.cpu; sleep 0.2; done ) &
if [[ $PERF != 0 ]]; then
  sleep 4
  perf record ${PERFARGS:--g} -p $SPID -o $OUT/$NAME.perf.data -- sleep $PERF > $OUT/$NAME.perf.log 2>&1
fi
wait $LPID
sleep 0.3
python3 - $OUT/$NAME.json $OUT/$NAME.cpu <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))
ticks=float(open(sys.argv[2]).read().strip() or 0)
for k,v in r["rpcs"].items():
    if v["calls"] < 1000: continue
    print(f'{sys.argv[1].split("/")[-1]:<22} {k:<13} {v["calls"]/r["elapsed_s"]:>8.0f}/s p50 {v["latency_ms"]["p50"]:.3f} p99 {v["latency_ms"]["p99"]:.3f} server-cpu/call {ticks*10000/v["calls"]:.1f}us {v["codes"]}')
PY
