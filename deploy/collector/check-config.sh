#!/usr/bin/env bash
# Starts a real collector on a configuration file (by default deploy/collector/collector.yaml) to show that the
# collector reads every key of it: the file's /etc/plumb/ and /var/lib/plumb/ paths point into a temporary
# directory, where a stand-in is made for every file it names (a CA and a certificate for 127.0.0.1, tokens, an
# operator tokens file written by `plumb-collector token add`, an RSA identity certificate, examples/karma.yaml as
# the model); the receivers' URLs point at 127.0.0.1:9, where nothing listens (no alert fires anyway). The collector
# listens on 127.0.0.1 only. Then it checks, over HTTPS verified with the stand-in CA (with a client certificate from
# it, for a file that sets tls.clientCAFile):
#
#   - /healthz answers, /readyz answers 200 (the model is active), /metrics says this collector leads;
#   - /v1/status answers the operator token, and /v1/receivers lists the file's receivers;
#   - SIGHUP reloads the TLS certificate (what `systemctl reload plumb-collector` does);
#   - with sqlite3 at hand: an online `.backup` of the running store is a sound copy (docs/operations.md);
#   - SIGTERM stops it with status 0, and it logged nothing at warning or above.
#
# With PLUMB_TEST_POSTGRES set (a postgres:// URL, as .ci/run sets it for the tests) and psql at hand, it does the
# same once more with the file's commented PostgreSQL lines in place of its SQLite database, in a database of its
# own that it creates and drops.
#
# Everything it makes (files, processes, the PostgreSQL database) is removed at exit. No traffic leaves 127.0.0.1.
#
# Usage: deploy/collector/check-config.sh PATH/TO/plumb-collector [CONFIG]
#        (CI: deploy/collector/check-config.sh .build/debug/plumb-collector)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 PATH/TO/plumb-collector [CONFIG]" >&2
    exit 64
fi
collector=$(realpath -- "$1")
config=$(realpath -- "${2:-$here/collector.yaml}")
[ -x "$collector" ] || { echo "check-config: $collector is not an executable" >&2; exit 1; }
[ -f "$config" ] || { echo "check-config: no configuration file $config" >&2; exit 1; }
for tool in openssl curl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "check-config: needs $tool" >&2; exit 1; }
done

work=$(mktemp -d /tmp/plumb-check-config.XXXXXX)
pid=""
pg_url=""
pg_database=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [ -n "$pg_database" ]; then
        psql -q -X "$pg_url" -c "DROP DATABASE IF EXISTS $pg_database WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "check-config: $*" >&2
    if [ -f "$work/log" ]; then
        echo "check-config: the collector's log:" >&2
        sed 's/^/    /' "$work/log" >&2
    fi
    exit 1
}

# The configuration, its paths moved into $work, its receivers pointed at a port where nothing listens.
mkdir -p "$work/etc" "$work/var"
sed -e "s#/etc/plumb/#$work/etc/#g" -e "s#/var/lib/plumb/#$work/var/#g" \
    -e "s#^\([[:space:]]*-\{0,1\}[[:space:]]*url:[[:space:]]*\)https\{0,1\}://[^/[:space:]]*#\1http://127.0.0.1:9#" \
    "$config" >"$work/collector.yaml"

# The stand-ins. A CA, and the collector's certificate for 127.0.0.1 from it (as docs/collector.md makes them).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/O=Plumb check/CN=Plumb check CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$work/ca-key.pem" -out "$work/ca.pem" 2>/dev/null
make_certificate() { # NAME USAGE: $work/NAME.pem and $work/NAME-key.pem, for 127.0.0.1, signed by the CA
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Plumb check/CN=$1" \
        -keyout "$work/$1-key.pem" -out "$work/$1.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=$2" "subjectAltName=IP:127.0.0.1" >"$work/$1.ext"
    openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -days 2 \
        -set_serial "0x$(openssl rand -hex 8)" -extfile "$work/$1.ext" -out "$work/$1.pem" 2>/dev/null
}
make_certificate server serverAuth
# A client certificate from the same CA, presented when the file requires them (tls.clientCAFile).
make_certificate client clientAuth
operator_token=""
# Every path the file names (outside comments) gets a stand-in; a path this script does not know is an error, so
# that a new key in the example gets a stand-in here too.
for path in $(grep -v '^[[:space:]]*#' "$work/collector.yaml" | sed 's/[[:space:]]#.*//' | grep -o "$work/[A-Za-z0-9_./-]*" | sort -u); do
    case "$path" in
    "$work"/var/*) mkdir -p "$(dirname "$path")" ;;
    */topology.yaml) cp "$repo/examples/karma.yaml" "$path" ;;
    */collector.pem) cp "$work/server.pem" "$path" ;;
    */collector-key.pem) cp "$work/server-key.pem" "$path" ;;
    */agents-ca.pem | */db-ca.pem) cp "$work/ca.pem" "$path" ;;
    */operator-tokens) operator_token=$("$collector" token add --file "$path" --name check-config --scope admin 2>/dev/null) ;;
    */operator-token | */enrollment-token | */db-password) openssl rand -hex 32 >"$path" ;;
    */ec2-identity-rsa.pem)
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/O=Plumb check/CN=identity stand-in" \
            -keyout "$work/identity-key.pem" -out "$path" 2>/dev/null ;;
    *) fail "the configuration names $path; give it a stand-in in $0" ;;
    esac
done
if grep -q "^[[:space:]]*operatorTokenFile:" "$work/collector.yaml" && [ -z "$operator_token" ]; then
    operator_token=$(cat "$(sed -n 's/^[[:space:]]*operatorTokenFile:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$work/collector.yaml")")
fi
[ -n "$operator_token" ] || fail "the configuration gives no operator token (tokens.operatorTokensFile or operatorTokenFile)"

# A port nothing answers on, below Linux's ephemeral range (32768-60999), so no outgoing connection holds it; a
# collector that still finds it taken (errno 98) is started again on another one.
pick_port() {
    local tries=0
    port=$((20000 + RANDOM % 12000))
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((20000 + RANDOM % 12000))
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || fail "no free port in 20000-31999 on 127.0.0.1"
    done
    base="https://127.0.0.1:$port"
}
pick_port
get() { curl -sS --cacert "$work/ca.pem" --cert "$work/client.pem" --key "$work/client-key.pem" --max-time 10 "$@"; }

# check_collector CONFIG WHAT: starts the collector on CONFIG, checks it, stops it.
check_collector() {
    local file=$1 what=$2
    local attempt=0
    : >"$work/log"
    "$collector" serve --config "$file" --listen "127.0.0.1:$port" --log-level info >"$work/log" 2>&1 &
    pid=$!
    local waited=0
    until get -o /dev/null "$base/healthz" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" || true
            pid=""
            if grep -q "Address already in use" "$work/log" && [ "$attempt" -lt 5 ]; then
                attempt=$((attempt + 1))
                pick_port
                : >"$work/log"
                "$collector" serve --config "$file" --listen "127.0.0.1:$port" --log-level info >"$work/log" 2>&1 &
                pid=$!
                continue
            fi
            fail "$what: the collector stopped at start"
        fi
        waited=$((waited + 1))
        [ "$waited" -lt 120 ] || fail "$what: no answer on $base/healthz after 60 s"
        sleep 0.5
    done
    [ "$(get "$base/healthz")" = '{"status":"ok"}' ] || fail "$what: /healthz: $(get "$base/healthz")"
    local status
    status=$(get -o /dev/null -w '%{http_code}' "$base/readyz")
    [ "$status" = 200 ] || fail "$what: /readyz answered $status (no active topology?)"
    status=$(get -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $operator_token" "$base/v1/status")
    [ "$status" = 200 ] || fail "$what: /v1/status answered $status to the operator token"
    local receivers expected name
    receivers=$(get -H "Authorization: Bearer $operator_token" "$base/v1/receivers")
    expected=$(sed -n 's/^[[:space:]]*-[[:space:]]*name:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$file")
    for name in $expected; do
        case "$receivers" in *"\"$name\""*) ;; *) fail "$what: /v1/receivers lacks '$name': $receivers" ;; esac
    done
    get "$base/metrics" >"$work/metrics"
    grep -q '^plumb_collector_leader 1' "$work/metrics" || fail "$what: /metrics does not say plumb_collector_leader 1"
    if ! grep -q "https://127.0.0.1:$port" "$work/log"; then fail "$what: the log does not say it listens on https://127.0.0.1:$port"; fi

    # SIGHUP: the certificate and key again, as systemctl reload plumb-collector does.
    kill -HUP "$pid"
    waited=0
    until grep -q "TLS certificate reloaded" "$work/log"; do
        waited=$((waited + 1))
        [ "$waited" -lt 40 ] || fail "$what: SIGHUP did not reload the TLS certificate"
        sleep 0.25
    done
    get "$base/metrics" >"$work/metrics"
    grep -q '^plumb_tls_reloads_total{result="ok"} 1' "$work/metrics" || fail "$what: plumb_tls_reloads_total{result=\"ok\"} is not 1"

    # An online backup of a SQLite store, while the collector writes to it.
    local database
    database=$(sed -n 's/^database:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$file")
    if [ "${database#postgres}" = "$database" ] && command -v sqlite3 >/dev/null 2>&1; then
        database=${database#sqlite:}
        sqlite3 "$database" ".backup '$work/backup.sqlite'"
        [ "$(sqlite3 "$work/backup.sqlite" 'PRAGMA integrity_check')" = ok ] || fail "$what: the online backup is not sound"
        [ "$(sqlite3 "$work/backup.sqlite" 'SELECT count(*) > 0 FROM topology_versions')" = 1 ] ||
            fail "$what: the online backup holds no topology"
        echo "check-config: $what: an online sqlite3 .backup of the running store passes integrity_check"
    fi

    kill -TERM "$pid"
    local code=0
    wait "$pid" || code=$?
    pid=""
    [ "$code" = 0 ] || fail "$what: the collector exited with status $code on SIGTERM"
    # A setting the collector warns about is a problem of the example too.
    if grep -E '^[^ ]+ (warning|error|critical) ' "$work/log" >&2; then fail "$what: the collector logged the problems above"; fi
    echo "check-config: $what: the collector started on it (https://127.0.0.1:$port), answered, reloaded TLS on SIGHUP and stopped"
}

check_collector "$work/collector.yaml" "${config#"$repo"/}"

# The PostgreSQL alternative: the commented database, databasePasswordFile and collectorId lines, uncommented.
if [ -n "${PLUMB_TEST_POSTGRES:-}" ]; then
    if ! command -v psql >/dev/null 2>&1; then
        echo "check-config: PLUMB_TEST_POSTGRES is set but psql is missing: the PostgreSQL lines are not checked"
    elif ! grep -q '^# database: postgres://' "$work/collector.yaml"; then
        fail "PLUMB_TEST_POSTGRES is set but the file has no commented '# database: postgres://' line"
    else
        pg_url=$PLUMB_TEST_POSTGRES
        pg_database="plumb_check_config_$$"
        psql -q -X "$pg_url" -c "CREATE DATABASE $pg_database" >/dev/null
        # The test server's URL, with the database made for this check (its TLS is not the point here).
        test_url=$(printf '%s\n' "$pg_url" | sed "s#^\(postgres[a-z]*://[^/]*\)/[^?]*#\1/$pg_database#")
        sed -e '/^database:/d' -e 's/^# \(database\|databasePasswordFile\|collectorId\): /\1: /' \
            -e "s#^database: postgres.*#database: $test_url#" "$work/collector.yaml" >"$work/collector-postgres.yaml"
        for path in $(sed -n 's/^databasePasswordFile:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$work/collector-postgres.yaml"); do
            [ -f "$path" ] || openssl rand -hex 16 >"$path"
        done
        grep -q '^collectorId:' "$work/collector-postgres.yaml" || fail "the PostgreSQL lines lost collectorId"
        check_collector "$work/collector-postgres.yaml" "${config#"$repo"/} with PostgreSQL"
    fi
fi
echo "check-config: passed"
