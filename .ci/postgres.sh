# Sourced by .ci/run: a throwaway PostgreSQL cluster (Debian's postgresql package) for the
# storage tests, reachable on 127.0.0.1 only; exports PERMED_TEST_DATABASE_URL and stops the
# cluster when CI ends. Without root or the package, the PostgreSQL tests skip and say why.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

start_postgres() {
  if [ -z "$(pg_bin)" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local bin dir port=54329
  bin=$(pg_bin)
  [ -n "$bin" ] || return 1
  dir=$(mktemp -d /tmp/permed-pg.XXXXXX)
  chown postgres: "$dir" || return 1
  su postgres -s /bin/sh -c "$bin/initdb -D $dir/data -A trust -U postgres" >/dev/null || return 1
  su postgres -s /bin/sh -c "$bin/pg_ctl -D $dir/data -l $dir/log -w start \
      -o '-k $dir -p $port -c listen_addresses=127.0.0.1'" >/dev/null || return 1
  su postgres -s /bin/sh -c "$bin/createdb -h 127.0.0.1 -p $port -U postgres permed_test" \
      || return 1
  export PERMED_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/permed_test"
  PERMED_PG_STOP="su postgres -s /bin/sh -c '$bin/pg_ctl -D $dir/data -m fast stop' >/dev/null; rm -rf $dir"
  trap 'eval "$PERMED_PG_STOP"' EXIT
  echo "PostgreSQL $($bin/postgres --version | awk '{print $3}') on 127.0.0.1:$port for the storage tests"
}

start_postgres || echo "warning: PostgreSQL could not be started: its storage tests will skip"
