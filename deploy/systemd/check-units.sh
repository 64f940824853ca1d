#!/usr/bin/env bash
# Prints the exposure score of `systemd-analyze security --offline=true` for the agent's unit (as shipped: no
# capability), the agent's unit with the raw-icmp.conf drop-in (CAP_NET_RAW), and the collector's unit. Fails when
# a score is above its threshold, or when systemd-analyze warns about a unit file (an unknown or misspelt
# directive is otherwise ignored, and the unit would be less confined than it reads).
#
# The thresholds are the scores measured when the units were written (systemd 252), rounded up to the next multiple of 0.5 above them:
# a change that loosens a unit shows up here; one that tightens it may lower the threshold.
#
# Usage: deploy/systemd/check-units.sh          (needs systemd-analyze; skipped with a note without it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

agent_threshold=1.5
agent_raw_icmp_threshold=2.0
collector_threshold=1.5

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check-units: systemd-analyze is not installed (Debian package systemd); not checked"
    exit 0
fi

work=$(mktemp -d /tmp/plumb-check-units.XXXXXX)
trap 'rm -rf "$work"' EXIT

failed=0

# check NAME THRESHOLD UNIT [DROP-IN]: analyses a copy of UNIT (with DROP-IN in UNIT.d/ when given) in a
# directory of its own. systemd-analyze reads the drop-ins next to a unit file, so the unit as shipped is
# analysed away from deploy/systemd/plumb-agent.service.d.
check() {
    local name=$1 threshold=$2 unit=$3 dropin=${4:-}
    local dir="$work/$name" base
    base=$(basename "$unit")
    mkdir -p "$dir"
    cp "$unit" "$dir/$base"
    if [ -n "$dropin" ]; then
        mkdir -p "$dir/$base.d"
        cp "$dropin" "$dir/$base.d/"
    fi
    local output warnings score
    output=$(systemd-analyze security --offline=true --no-pager "$dir/$base" 2>"$dir/stderr") || true
    warnings=$(cat "$dir/stderr")
    score=$(printf '%s\n' "$output" | sed -n 's/^→ Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -z "$score" ]; then
        echo "check-units: $name: no score in the output of systemd-analyze:" >&2
        printf '%s\n%s\n' "$output" "$warnings" >&2
        failed=1
        return
    fi
    if [ -n "$warnings" ]; then
        echo "check-units: $name: systemd-analyze warns about the unit:" >&2
        printf '%s\n' "$warnings" >&2
        failed=1
    fi
    if awk -v s="$score" -v t="$threshold" 'BEGIN { exit !(s > t) }'; then
        echo "check-units: $name: exposure $score is above its threshold $threshold; what was loosened:" >&2
        printf '%s\n' "$output" | grep '✗' >&2
        failed=1
    else
        printf '%-22s exposure %s (threshold %s)\n' "$name" "$score" "$threshold"
    fi
}

check plumb-agent "$agent_threshold" "$here/plumb-agent.service"
check plumb-agent+raw-icmp "$agent_raw_icmp_threshold" "$here/plumb-agent.service" "$here/plumb-agent.service.d/raw-icmp.conf"
check plumb-collector "$collector_threshold" "$here/plumb-collector.service"

if [ "$failed" != 0 ]; then
    echo "check-units: failed (systemd-analyze security --offline=true --no-pager UNIT shows every setting)" >&2
    exit 1
fi
