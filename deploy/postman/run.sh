#!/usr/bin/env bash
# Runs the Postman collection (the README's referral story and the common mistakes) with
# newman against a freshly started wor-hub: the built binary on a temporary SQLite
# database, a free loopback port, the sample directory and --open-mode false (every
# request of the collection names its party in X-Acting-Party), and tools/hook-receiver.py
# on another free port as the endpoint of the collection's Subscription and of the GP
# system's messaging Endpoint (`hookUrl`); after the run it checks that the receiver got
# the handshake and events 1, 2, ... once each, in order, and at least one referral-status
# message answering folder 12's referral-new message (its MessageHeader.id,
# `referralMessageId`, is chosen here). Installs newman from
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
hook=""
cleanup() {
    for pid in $server $hook; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            wait "$pid" 2>/dev/null || true
        fi
    done
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

# The rest-hook receiver: it says on stderr where it listens, and logs one line per
# request (`<type> <event numbers>`, or `message <event code> <response.identifier>`)
# to hook.log.
python3 tools/hook-receiver.py 0 "$work/hook" >"$work/hook.log" 2>"$work/hook.err" &
hook=$!
hook_url=""
for _ in $(seq 1 100); do
    hook_url=$(grep -o 'http://[^ ]*' "$work/hook.err" || true)
    [ -n "$hook_url" ] && break
    if ! kill -0 "$hook" 2>/dev/null; then
        echo "postman: the hook receiver exited:" >&2
        cat "$work/hook.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$hook_url" ]; then
    echo "postman: the hook receiver did not start within 10 s" >&2
    exit 1
fi

# The MessageHeader.id of folder 12's referral-new message: new for every run.
message_id="msg-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')-new"

status=0
deploy/postman/node_modules/.bin/newman run deploy/postman/wor-hub.postman_collection.json \
    --environment deploy/postman/wor-hub.postman_environment.json \
    --env-var "baseUrl=http://127.0.0.1:$port/fhir" \
    --env-var "hookUrl=$hook_url" \
    --env-var "referralMessageId=$message_id" \
    --color off \
    --reporter-cli-no-success-assertions \
    "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "postman: newman failed (exit $status); last server log lines:" >&2
    tail -n 20 "$work/server.log" >&2
    exit "$status"
fi

# What the hub delivered (the collection checked with $events what it recorded): the
# receiver got the handshake, then every event of the run once, in order (message lines
# aside), and the GP system's Endpoint got referral-status messages answering its
# referral-new message (one per status change of the Task). Delivery is asynchronous:
# wait until the receiver's log stops growing for a second (30 s at most).
seen=-1
for _ in $(seq 1 30); do
    now=$(wc -l <"$work/hook.log")
    [ "$now" -eq "$seen" ] && break
    seen=$now
    sleep 1
done
python3 - "$work/hook.log" "$message_id" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
notifications = [line for line in lines if not line.startswith("message ")]
events = notifications[1:]
numbers = [int(n) for line in events for n in line.split()[-1].split(",") if n.isdigit()]
statuses = lines.count(f"message referral-status {sys.argv[2]}")
if (notifications[:1] == ["handshake -"] and all(line.startswith("event-notification ") for line in events)
        and len(numbers) >= 6 and numbers == list(range(1, len(numbers) + 1)) and statuses >= 1):
    print(f"postman: the hook receiver got the handshake and events 1 to {len(numbers)}, in order,"
          f" and {statuses} referral-status messages answering {sys.argv[2]}")
else:
    sys.exit("postman: the hook receiver got:\n  " + "\n  ".join(lines))
EOF
