#!/usr/bin/env bash
# Schemathesis against a live collector: the demo (a collector on SQLite with its model, five agents on 127.0.x.x, a
# fault kept in place so an alert is firing, a webhook receiver) held while schemathesis runs every check
# (`--checks all`: server errors, status codes, content types, response and header conformance, negative data
# rejected, positive data accepted, missing headers, unsupported methods, auth) over docs/openapi.yaml for a bounded
# time, with the operator token. The demo lets a source fail authentication without being slowed
# (--auth-failures-per-source): the fuzzer sends wrong tokens on purpose, and the slowing has its own test.
# deploy/collector/schemathesis.toml says what a schema cannot (a schema-valid topology may still be an invalid model).
#
# Schemathesis is installed with pip into .build/schemathesis (once). Everything it starts is stopped at exit;
# nothing leaves 127.0.0.1.
#
# Usage: deploy/collector/check-api.sh PATH/TO/plumb-collector [SECONDS]   (default 120)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
collector=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
seconds=${2:-120}

venv="$repo/.build/schemathesis"
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'schemathesis>=4.3,<5'
fi

work=$(mktemp -d /tmp/plumb-check-api.XXXXXX)
demo_pid=
cleanup() {
    if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
        kill "$demo_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$demo_pid" 2>/dev/null || true
    fi
    # The demo's own directory (its SQLite file, the agents' spools), named in its first line: a killed demo leaves it.
    local demo_dir
    demo_dir=$(sed -n 's|.*(SQLite \(/tmp/plumb-demo-[0-9]*\)/plumb.sqlite).*|\1|p' "$work/demo.log" 2>/dev/null | head -1)
    if [ -n "$demo_dir" ] && [ -d "$demo_dir" ]; then rm -rf "$demo_dir"; fi
    rm -rf "$work"
}
trap cleanup EXIT

cd "$repo"
"$collector" demo --hold $((seconds + 600)) --keep-fault --auth-failures-per-source 1000000 --ready-file "$work/ready.json" \
    >"$work/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 180); do
    [ -s "$work/ready.json" ] && break
    kill -0 "$demo_pid" 2>/dev/null || { cat "$work/demo.log" >&2; echo "the demo stopped before its hold" >&2; exit 1; }
    sleep 1
done
[ -s "$work/ready.json" ] || { cat "$work/demo.log" >&2; echo "the demo did not get to its hold" >&2; exit 1; }
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$work/ready.json")
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$work/ready.json")

"$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run docs/openapi.yaml --url "$url" --checks all \
    -H "Authorization: Bearer $token" --max-time "$seconds" --workers 2 --suppress-health-check all --seed 1
