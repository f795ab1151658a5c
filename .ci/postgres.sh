# Sourced by .ci/run (and usable by developers): starts a throwaway PostgreSQL 15 on a
# free loopback port and exports WOR_HUB_TEST_POSTGRES_URL. PostgreSQL refuses to run
# as root, so as root the server runs as the `postgres` user. Stopped on exit.

pg_bindir="$(pg_config --bindir 2>/dev/null || true)"
if [ ! -x "$pg_bindir/initdb" ]; then
    pg_bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
fi
if [ ! -x "$pg_bindir/initdb" ]; then
    echo "PostgreSQL server binaries not found; installing postgresql" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi

pg_dir="$(mktemp -d /tmp/wor-hub-pg.XXXXXX)"
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

as_pg "$pg_bindir/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$pg_dir/initdb.log" 2>&1 \
    || { cat "$pg_dir/initdb.log" >&2; exit 1; }
# fsync off: a throwaway test cluster; the service's own durability settings are unchanged.
as_pg "$pg_bindir/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c fsync=off -c max_connections=400" start >/dev/null \
    || { cat "$pg_dir/server.log" >&2; exit 1; }

stop_postgres() {
    as_pg "$pg_bindir/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
trap stop_postgres EXIT

export WOR_HUB_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
echo "PostgreSQL $("$pg_bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"
