#!/usr/bin/env bash
# Run a command with DATABASE_URL pointing at a throwaway PostgreSQL cluster.
#
# If DATABASE_URL is already set, the command runs against that database unchanged.
# Otherwise a cluster is created in a temporary directory with the machine's
# PostgreSQL server binaries, started on a free loopback port, and removed on exit.
set -euo pipefail

if [ -n "${DATABASE_URL:-}" ]; then
    exec "$@"
fi

# runuser lives in /usr/sbin, which a minimal PATH (cron, CI runners, env -i) leaves out.
export PATH="$PATH:/usr/sbin:/sbin"

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
    echo "PostgreSQL server binaries not found (Debian: apt-get install postgresql)." >&2
    exit 1
fi

dir=$(mktemp -d /tmp/credence-pg.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root.
    chown postgres "$dir"
    as_pg=(runuser -u postgres --)
fi

stop_cluster() {
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop_cluster EXIT

"${as_pg[@]}" "$pgbin/initdb" -D "$dir/data" -U credence --auth=trust -E UTF8 >"$dir/initdb.log"
# fsync off: a throwaway test cluster, durability is not needed and it halves test time.
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') running on 127.0.0.1:$port" >&2

export DATABASE_URL="postgres://credence@127.0.0.1:$port/postgres"
"$@"
