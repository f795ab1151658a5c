#!/usr/bin/env bash
# The referral lifecycle with a third-party FHIR client, every response validated by
# independent R4 validators (see conformance/README.md). Installs its npm dependencies
# from the lock file, builds the server and runs it on SQLite, and on PostgreSQL too when
# WOR_HUB_TEST_POSTGRES_URL is set. Extra arguments go to lifecycle.mjs (--verbose ...).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "conformance: node and npm are needed (Node.js >= 20.19)" >&2
    exit 1
fi
node -e 'const [a, b] = process.versions.node.split(".").map(Number);
  if (a < 20 || (a === 20 && b < 19)) { console.error(`conformance: Node.js >= 20.19 needed, found ${process.versions.node}`); process.exit(1); }'
if [ -n "${WOR_HUB_TEST_POSTGRES_URL:-}" ] && ! command -v psql >/dev/null; then
    echo "conformance: psql is needed to create the PostgreSQL test database (Debian: postgresql-client)" >&2
    exit 1
fi

npm ci --prefix conformance --no-audit --no-fund --loglevel=error
cargo build --locked --quiet
node conformance/lifecycle.mjs --bin target/debug/wor-hub "$@"
