#!/usr/bin/env bash
# Read by id and the polling search measured with wrk (as the issue measured Helios),
# against the release server on an existing database:
#
#   cargo build --release --bin wor-hub
#   bash benches/wrk/run.sh DATABASE [SECONDS] [CONNECTIONS]
#
# DATABASE: a SQLite file or a postgres:// URL (for example one that
# `wor-hub-bench --preload N --keep-databases` kept). The server listens on a free
# loopback port in open mode; wrk runs 2 threads and CONNECTIONS (default 8)
# connections on the same machine. Prints wrk's figures; exits 1 when any answer was
# not 2xx. Needs wrk, curl and jq.
set -euo pipefail
db="$1"; seconds="${2:-5}"; conns="${3:-8}"
here="$(cd "$(dirname "$0")" && pwd)"
bin="${WOR_HUB_BIN:-$here/../../target/release/wor-hub}"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin" serve --database-url "$db" --listen "127.0.0.1:$port" --log warn --log-format text \
    --initial-directory none >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port/fhir"
for _ in $(seq 1 100); do curl -sf "$base/metadata" >/dev/null && break; sleep 0.1; done
owner="Organization/tom-in-de-buurt"
# 100 accepted Tasks (random ids: spread over the database) and the owner's first 100.
{ curl -sf "$base/Task?status=accepted&_count=100&_elements=id" | jq -r '.entry[].resource.id'
  curl -sf "$base/Task?owner=$owner&_count=100&_elements=id" | jq -r '.entry[].resource.id'
} >"$work/ids"
echo "wor-hub on $db: $(wc -l <"$work/ids") Task ids; wrk -t2 -c$conns -d${seconds}s"
failed=0
measure() {
    local what="$1"; shift
    echo "== $what"
    wrk -t2 -c"$conns" -d"${seconds}s" --latency "$@" | tee "$work/out" \
        | grep -E 'Requests/sec|50%|99%|Non-2xx|requests in|Socket errors'
    if grep -q 'Non-2xx' "$work/out"; then failed=1; fi
}
IDS="$work/ids" PREFIX="/fhir/Task/" measure "read by id (GET Task/{id})" \
    -s "$here/ids.lua" "$base/Task/x"
total="$(curl -sf "$base/Task?owner=$owner&status=requested&_summary=count" | jq .total)"
measure "polling search, first page of 10 of $total (Task?owner=..&status=requested)" \
    "$base/Task?owner=$owner&status=requested&_count=10"
exit "$failed"
