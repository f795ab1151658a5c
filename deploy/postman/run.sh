#!/usr/bin/env bash
# Runs the Postman collection (the README's referral story and the common mistakes) with
# newman against a freshly started wor-hub: the built binary on a temporary SQLite
# database, a free loopback port, the sample directory and --open-mode false (every
# request of the collection names its party in X-Acting-Party). Installs newman from
# deploy/postman/package-lock.json. Extra arguments go to newman (e.g. --verbose).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "postman: node and npm are needed (Node.js >= 16)" >&2
    exit 1
fi

npm ci --prefix deploy/postman --no-audit --no-fund --loglevel=error
cargo build --locked --quiet

work=$(mktemp -d "${TMPDIR:-/tmp}/wor-hub-postman.XXXXXX")
server=""
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill "$server"
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The contact-deadline job runs once at start (no Tasks yet) and not again during the
# run, so no version of its own can make the collection's If-Match stale.
target/debug/wor-hub serve \
    --listen 127.0.0.1:0 \
    --database-url "$work/wor-hub.db" \
    --initial-directory sample \
    --open-mode false \
    --overdue-check-interval 1h \
    --log-format json >"$work/server.log" 2>&1 &
server=$!

port=""
for _ in $(seq 1 600); do
    port=$(sed -n 's/.*wor-hub listening.*"port":[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$work/server.log" | head -n 1)
    [ -n "$port" ] && break
    if ! kill -0 "$server" 2>/dev/null; then
        echo "postman: the server exited:" >&2
        tail -n 20 "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "postman: the server did not start within 60 s:" >&2
    tail -n 20 "$work/server.log" >&2
    exit 1
fi

status=0
deploy/postman/node_modules/.bin/newman run deploy/postman/wor-hub.postman_collection.json \
    --environment deploy/postman/wor-hub.postman_environment.json \
    --env-var "baseUrl=http://127.0.0.1:$port/fhir" \
    --color off \
    --reporter-cli-no-success-assertions \
    "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "postman: newman failed (exit $status); last server log lines:" >&2
    tail -n 20 "$work/server.log" >&2
fi
exit "$status"
