#!/usr/bin/env bash
# Validates the ops artefacts: alert rules (syntax and unit tests), the Grafana dashboard, and runbook anchors.
# Usage, from the repository root: bash ops/check.sh
# Installs promtool (Debian package "prometheus") when it is missing. Exits non-zero on any failure.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

failures=0
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }

install_promtool() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "promtool missing and not root (no sudo)" >&2; return 1; }
        sudo="sudo"
    fi
    # The package ships a service; keep it from starting. An existing policy-rc.d is left as it is.
    local own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
    if [ "$rc" -eq 0 ]; then
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus || rc=$?
    fi
    [ -n "$own_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d
    # A failed service start in postinst is tolerated as long as the binary is there.
    command -v promtool >/dev/null 2>&1 || { echo "promtool still missing after apt-get (rc=$rc)" >&2; return 1; }
}

step "promtool"
if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found; installing the Debian package 'prometheus'"
    install_promtool || { fail "could not install promtool"; exit 1; }
fi
promtool --version 2>&1 | head -1

step "promtool check rules ops/alerts.yml"
promtool check rules ops/alerts.yml || fail "alert rules do not parse"

step "promtool test rules ops/alerts.test.yml"
promtool test rules ops/alerts.test.yml || fail "alert rule unit tests"

step "alert labels, annotations and runbook anchors"
python3 - <<'PY' || fail "alert metadata or runbook anchors"
import re, sys
rules = open("ops/alerts.yml", encoding="utf-8").read()
runbook = open("ops/RUNBOOK.md", encoding="utf-8").read()

def slug(heading):
    # GitHub's anchor rule: lowercase, drop punctuation except - and _, spaces become -.
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")

anchors = {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", runbook, re.M)}
anchors |= set(re.findall(r'<a\s+(?:name|id)="([^"]+)"', runbook))
bad = 0
chunks = re.split(r"^\s*- alert:\s*", rules, flags=re.M)[1:]
for chunk in chunks:
    name = chunk.split()[0]
    for key in ("severity:", "summary:", "description:", "runbook_url:"):
        if key not in chunk:
            print(f"{name}: missing {key}"); bad += 1
    m = re.search(r'runbook_url:\s*"ops/RUNBOOK\.md#([^"]+)"', chunk)
    if not m:
        print(f"{name}: runbook_url is not ops/RUNBOOK.md#<anchor>"); bad += 1
    elif m.group(1) not in anchors:
        print(f"{name}: anchor #{m.group(1)} not found in ops/RUNBOOK.md"); bad += 1
print(f"{len(chunks)} alerts checked")
sys.exit(1 if bad or not chunks else 0)
PY

step "dashboard JSON"
if python3 -m json.tool ops/grafana-dashboard.json >/dev/null; then
    echo "valid JSON"
else
    fail "ops/grafana-dashboard.json is not valid JSON"
fi

step "dashboard structure and PromQL"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/dashboard-queries.yml" <<'PY' || fail "dashboard structure"
import json, sys
d = json.load(open("ops/grafana-dashboard.json", encoding="utf-8"))
bad = []
variables = {v["name"]: v for v in d["templating"]["list"]}
if variables.get("DS_PROMETHEUS", {}).get("type") != "datasource":
    bad.append("no datasource variable DS_PROMETHEUS")
office = variables.get("office", {})
if "label_values(antrean_slots_remaining, office)" not in json.dumps(office.get("query")):
    bad.append("variable office must query label_values(antrean_slots_remaining, office)")
rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
for want in ("Traffic", "Booking", "Waiting room", "Overload", "Durability", "Process"):
    if want not in rows:
        bad.append(f"missing row {want}")
ids = [p["id"] for p in d["panels"]]
if len(ids) != len(set(ids)):
    bad.append("duplicate panel ids")
exprs = []
for p in d["panels"]:
    if p["type"] == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        bad.append(f"panel {p['title']!r} does not use ${{DS_PROMETHEUS}}")
    for t in p.get("targets", []):
        exprs.append((p["title"], t["expr"]))
# Substitute Grafana variables so promtool can parse every query as a recording rule.
subs = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*", "$office": ".*"}
with open(sys.argv[1], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        for k, v in subs.items():
            e = e.replace(k, v)
        f.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
for b in bad:
    print(b)
print(f"{len(rows)} rows, {len(d['panels']) - len(rows)} panels, {len(exprs)} queries")
sys.exit(1 if bad else 0)
PY
promtool check rules "$tmp/dashboard-queries.yml" || fail "a dashboard query does not parse"

printf '\n'
if [ "$failures" -ne 0 ]; then
    echo "ops/check.sh: $failures check(s) failed" >&2
    exit 1
fi
echo "ops/check.sh: all checks passed"
