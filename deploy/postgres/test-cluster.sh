#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the store's tests: data, socket and log in DIR, listening on 127.0.0.1
# only, trust authentication (local socket and 127.0.0.1/32 only), a role `plumb` (LOGIN CREATEDB: the tests create
# a database per test; pg_read_all_settings: they find the socket directory) and a database `plumb` it owns. Not for
# anything but tests: nobody needs a password. With openssl at hand the server also offers TLS, with a certificate
# for localhost and 127.0.0.1 from a CA made for it (DIR/tls/ca.crt), so the tests can try every sslmode.
#
#   deploy/postgres/test-cluster.sh start DIR   create (if needed) and start it; prints its URL
#   deploy/postgres/test-cluster.sh url DIR     prints postgres://plumb@127.0.0.1:PORT/plumb?sslmode=disable
#   deploy/postgres/test-cluster.sh stop DIR    stops it and removes DIR
#
# Environment: PLUMB_PG_PORT (default 25432; when it is taken and PLUMB_PG_PORT is unset, the next free port up to
# 25532 is used: below Linux's ephemeral range, so no outgoing connection holds it), PLUMB_PG_BIN (default /usr/lib/postgresql/15/bin), PLUMB_PG_DURABLE=1 (at creation: keep fsync,
# synchronous_commit and full_page_writes on, as a production server has them, for benchmarks; by default they are
# off, which is fast and loses data on a crash).
#
# Idempotent: `start` on a running cluster prints its URL; `start` after an interrupted start removes the half-made
# cluster and makes it again; `stop` on a stopped or missing one succeeds. The server refuses to run as root: as
# root, everything runs as the user `postgres` (the Debian package creates it) and DIR becomes that user's. DIR is
# removed only when it holds this script's marker, so a mistyped DIR cannot delete anything else.
#
# Example (what CI does):
#   deploy/postgres/test-cluster.sh start /tmp/plumb-pg
#   PLUMB_TEST_POSTGRES=$(deploy/postgres/test-cluster.sh url /tmp/plumb-pg) swift test --filter PlumbStoreTests
#   deploy/postgres/test-cluster.sh stop /tmp/plumb-pg
set -euo pipefail

BIN=${PLUMB_PG_BIN:-/usr/lib/postgresql/15/bin}
MARKER=.plumb-test-cluster

die() { printf 'test-cluster: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: $0 start|stop|url DIR"; }

[[ $# == 2 ]] || usage
command=$1
[[ -n $2 ]] || usage
# An absolute path: the server runs in DIR with another working directory and user.
DIR=$(realpath -m -- "$2")
[[ $DIR != / ]] || die "refusing to use / as DIR"
DATA=$DIR/data

# Runs a command as the cluster's owner: `postgres` when we are root, ourselves otherwise.
if [[ $(id -u) == 0 ]]; then
    OWNER=postgres
    id -u "$OWNER" >/dev/null 2>&1 || die "no user '$OWNER' to run the server as (install postgresql-15)"
    as_owner() { runuser -u "$OWNER" -- "$@"; }
else
    OWNER=$(id -un)
    as_owner() { "$@"; }
fi

is_ours() { [[ -f $DIR/$MARKER ]]; }
is_running() { [[ -f $DATA/postmaster.pid ]] && as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }
port_of() { cat "$DIR/port" 2>/dev/null || true; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
url() { printf 'postgres://plumb@127.0.0.1:%s/plumb?sslmode=disable\n' "$1"; }

stop_server() {
    if is_running; then
        as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 30 >/dev/null
    fi
}

stop() {
    [[ -e $DIR ]] || return 0
    if ! is_ours; then
        # An empty directory (say, made by hand for us) is harmless to remove; anything else is not ours.
        [[ -z $(ls -A "$DIR") ]] || die "$DIR was not made by this script (no $MARKER); not touching it"
        rmdir "$DIR"
        return 0
    fi
    stop_server
    rm -rf -- "$DIR"
}

pick_port() {
    if [[ -n ${PLUMB_PG_PORT:-} ]]; then
        port_free "$PLUMB_PG_PORT" || die "port $PLUMB_PG_PORT (PLUMB_PG_PORT) is in use"
        echo "$PLUMB_PG_PORT"
        return
    fi
    local port
    local first=${1:-25432}
    for ((port = first; port <= 25532; port++)); do
        if port_free "$port"; then
            echo "$port"
            return
        fi
    done
    die "no free port in 25432-25532; set PLUMB_PG_PORT"
}

# A CA and a server certificate signed by it, for localhost and 127.0.0.1, valid for two days (a cluster lives for a
# test run).
make_certificates() {
    local tls=$DIR/tls
    mkdir -p "$tls"
    (
        cd "$tls"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=plumb test CA" -keyout ca.key -out ca.crt
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt
    ) >"$DIR/openssl.log" 2>&1 || die "making the test certificates failed; see $DIR/openssl.log"
    chown -R "$OWNER" "$tls"
    chmod 600 "$tls/server.key" "$tls/ca.key"
    chmod 644 "$tls/ca.crt"
}

start() {
    [[ -x $BIN/initdb ]] || die "no PostgreSQL 15 in $BIN (apt-get install postgresql-15, or set PLUMB_PG_BIN)"
    if is_ours && [[ -f $DIR/ready ]]; then
        if ! is_running; then
            local port
            port=$(port_of)
            port_free "$port" || die "port $port of the stopped cluster in $DIR is taken; run '$0 stop $DIR' first"
            as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$DIR/server.log" -w -t 60 >/dev/null \
                || die "the server did not start; see $DIR/server.log"
        fi
        url "$(port_of)"
        return
    fi
    # Nothing yet, or a start that was interrupted: begin again from nothing.
    stop
    mkdir -p -- "$DIR"
    touch "$DIR/$MARKER"
    chown "$OWNER" "$DIR"
    chmod 700 "$DIR"
    as_owner test -w "$DIR" || die "$OWNER cannot reach $DIR (a parent directory is closed to it); choose another DIR"
    local port
    port=$(pick_port)
    echo "$port" >"$DIR/port"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --no-locale -E UTF8 >"$DIR/initdb.log" 2>&1 \
        || die "initdb failed; see $DIR/initdb.log"
    local durability=off
    [[ ${PLUMB_PG_DURABLE:-} == 1 ]] && durability=on
    local ssl=off
    if command -v openssl >/dev/null; then
        make_certificates
        ssl=on
    fi
    cat >>"$DATA/postgresql.conf" <<EOF

# test-cluster.sh: a throwaway cluster for tests.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DIR'
max_connections = 300
fsync = $durability
synchronous_commit = $durability
full_page_writes = $durability
ssl = $ssl
ssl_cert_file = '$DIR/tls/server.crt'
ssl_key_file = '$DIR/tls/server.key'
EOF
    cat >"$DATA/pg_hba.conf" <<EOF
# test-cluster.sh: trust on the cluster's own socket and from 127.0.0.1 only; nothing else may connect.
local all all trust
host  all all 127.0.0.1/32 trust
EOF
    # A port taken between the check and the bind: the next one, a few times.
    local attempt
    for attempt in 1 2 3 4 5; do
        as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$DIR/server.log" -w -t 60 >/dev/null && break
        if [[ -z ${PLUMB_PG_PORT:-} && $attempt -lt 5 ]] && grep -q "could not bind\|Address already in use" "$DIR/server.log"; then
            port=$(pick_port $((port + 1)))
            echo "$port" >"$DIR/port"
            sed -i "s/^port = .*/port = $port/" "$DATA/postgresql.conf"
            continue
        fi
        tail -n 20 "$DIR/server.log" >&2 || true
        die "the server did not start; see $DIR/server.log (above)"
    done
    as_owner "$BIN/psql" -h "$DIR" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q >/dev/null <<EOF
CREATE ROLE plumb LOGIN CREATEDB;
GRANT pg_read_all_settings TO plumb;
CREATE DATABASE plumb OWNER plumb;
EOF
    touch "$DIR/ready"
    url "$port"
}

case $command in
    start) start ;;
    stop) stop ;;
    url)
        is_ours && [[ -f $DIR/ready ]] || die "no cluster in $DIR; run '$0 start $DIR'"
        url "$(port_of)"
        ;;
    *) usage ;;
esac
