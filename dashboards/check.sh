#!/usr/bin/env bash
# The CI check of dashboards/: the rules pass promtool, the dashboards are provisionable JSON, and every PromQL
# expression of the dashboards and the rules runs against a real Prometheus scraping a live collector (the local
# demo: a collector on SQLite fed by real agents, with the S3 fault left in place so that an alert is open).
#
#   dashboards/check.sh                      # from a build: .build/debug/plumb-collector
#   PLUMB_COLLECTOR=/path/to/plumb-collector dashboards/check.sh
#
# Needs promtool and prometheus (Debian: prometheus), jq and curl. Listens on 127.0.0.1 only, on free ports; stops
# what it started by pid and removes its temporary directory, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

RULES=dashboards/rules/plumb.rules.yaml
TESTS=dashboards/rules/plumb.rules.test.yaml
PLUMB_COLLECTOR=${PLUMB_COLLECTOR:-.build/debug/plumb-collector}
# The families the collector declares (a test in the Swift suite fails on a family missing there): every plumb_
# name an expression references must be one of them (or its _bucket, _sum, _count).
METRICS_SOURCE=Sources/PlumbCollector/CollectorMetrics.swift
# Families that may legitimately have no series in the demo. An expression that references one may return nothing;
# the other families it references must still have series.
#   plumb_nat_*, plumb:nat_*: examples/demo.yaml has no NAT egress check (the demo's NAT instance only forwards).
#   plumb_registrations_refused_total: a series per reason, created by the first refusal; the demo refuses none.
#   plumb_tls_reloads_total: only with TLS; the demo listens on plain HTTP.
MAY_BE_ABSENT='^(plumb_nat_[a-z_]+|plumb:nat_[a-z0-9_:]+|plumb_registrations_refused_total|plumb_tls_reloads_total)$'
# What Grafana would put in place of its built-in variables; the dashboards' own variables ($subnet, $kind, …, all
# used as label=~"$var") become .* (All).
RATE_INTERVAL=1m
INTERVAL=15s
RANGE=5m

for tool in promtool prometheus jq curl; do
    command -v "$tool" >/dev/null || { echo "check.sh: $tool is missing (Debian: apt-get install prometheus jq curl)" >&2; exit 1; }
done

failures=0
passes=0
ok() { passes=$((passes + 1)); printf 'OK    %s\n' "$*"; }
fail() { failures=$((failures + 1)); printf 'FAIL  %s\n' "$*"; }
one_line() { tr '\n' ' ' <<<"$1" | tr -s ' ' | sed 's/ $//'; }

echo "== (a) rules: promtool check rules, promtool test rules"
if out=$(promtool check rules "$RULES" 2>&1); then ok "promtool check rules $RULES"; else fail "promtool check rules $RULES"; fi
grep -v '^$' <<<"$out" | sed 's/^/      /'
rule_count=$(sed -n 's/.*SUCCESS: \([0-9]*\) rules found.*/\1/p' <<<"$out")
if out=$(promtool test rules "$TESTS" 2>&1); then ok "promtool test rules $TESTS"; else fail "promtool test rules $TESTS"; fi
grep -v '^$' <<<"$out" | sed 's/^/      /'

echo "== (b) dashboards: valid JSON, provisionable (no \${DS_…} or __inputs), one datasource variable"
dashboards=(dashboards/*.json)
uids=()
for dashboard in "${dashboards[@]}"; do
    if ! jq empty "$dashboard" 2>/dev/null; then
        fail "$dashboard: not valid JSON"
        continue
    fi
    if grep -qF '${DS_' "$dashboard" || grep -qF '__inputs' "$dashboard"; then
        fail "$dashboard: uses \${DS_…} or __inputs (import-only; provisioning needs the datasource variable)"
    else
        ok "$dashboard: no \${DS_…}, no __inputs"
    fi
    # schemaVersion, a uid, the datasource variable, and every panel and query on ${datasource}.
    problems=$(jq -r '
        [ (if (.schemaVersion // 0) < 39 then "schemaVersion \(.schemaVersion) < 39" else empty end),
          (if (.uid // "") == "" then "no uid" else empty end),
          (if ([.templating.list[]? | select(.type == "datasource" and .name == "datasource" and .query == "prometheus")] | length) != 1
           then "no datasource variable (type datasource, query prometheus)" else empty end),
          (recurse(.panels[]?) | select(has("gridPos") and .type != "row") as $p
           | (if $p.datasource != {"type": "prometheus", "uid": "${datasource}"} then "panel \($p.id) \"\($p.title)\": datasource \($p.datasource | tojson)" else empty end),
             ($p.targets[]? | select(.datasource != {"type": "prometheus", "uid": "${datasource}"}) | "panel \($p.id) \"\($p.title)\" query \(.refId): datasource \(.datasource | tojson)")),
          ([recurse(.panels[]?) | select(has("gridPos")) | .id] | group_by(.) | map(select(length > 1) | "panel id \(.[0]) used twice") | .[])
        ] | .[]' "$dashboard")
    if [ -n "$problems" ]; then
        while IFS= read -r problem; do fail "$dashboard: $problem"; done <<<"$problems"
    else
        ok "$dashboard: schemaVersion $(jq .schemaVersion "$dashboard"), uid $(jq -r .uid "$dashboard"), every panel on \${datasource}"
    fi
    uids+=("$(jq -r .uid "$dashboard")")
done
if [ "$(printf '%s\n' "${uids[@]}" | sort | uniq -d)" != "" ]; then fail "dashboard uids are not unique: ${uids[*]}"; fi

echo "== (c) the local demo: a live collector fed by real agents"
tmp=$(mktemp -d)
demo_pid=""
prometheus_pid=""
cleanup() {
    local status=$?
    for pid in "$prometheus_pid" "$demo_pid"; do
        [ -n "$pid" ] || continue
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free port on 127.0.0.1: one nothing answers on (the demo and Prometheus fail to start if it is taken meanwhile).
free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 12000))  # below Linux's ephemeral range (32768-60999): no outgoing connection takes it meanwhile
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "check.sh: no free port found" >&2
    return 1
}
port=$(free_port)
prometheus_port=$(free_port)
while [ "$prometheus_port" = "$port" ]; do prometheus_port=$(free_port); done

if [ ! -x "$PLUMB_COLLECTOR" ]; then
    echo "check.sh: $PLUMB_COLLECTOR is not an executable (build first, or set PLUMB_COLLECTOR)" >&2
    exit 1
fi
"$PLUMB_COLLECTOR" demo --hold 90 --keep-fault --port "$port" --ready-file "$tmp/ready.json" >"$tmp/demo.log" 2>&1 &
demo_pid=$!

echo "== (d) Prometheus: job plumb-collector on 127.0.0.1:$port, scrape and evaluation every 1 s, the rules loaded"
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/$RULES
scrape_configs:
  - job_name: plumb-collector
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" --web.listen-address="127.0.0.1:$prometheus_port" \
    --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prometheus_pid=$!
prom="http://127.0.0.1:$prometheus_port"

# The demo writes ready.json once its script is done (about 20 s): the matrix agreed, the fault is in, the alert open.
for _ in $(seq 180); do
    [ -s "$tmp/ready.json" ] && break
    if ! kill -0 "$demo_pid" 2>/dev/null; then
        tail -n 30 "$tmp/demo.log" >&2
        echo "check.sh: the demo ended before it was ready" >&2
        exit 1
    fi
    sleep 1
done
if [ ! -s "$tmp/ready.json" ]; then
    tail -n 30 "$tmp/demo.log" >&2
    echo "check.sh: the demo was not ready after 180 s" >&2
    exit 1
fi
url=$(jq -r .url "$tmp/ready.json")
echo "      demo ready at $url"
curl -sf "$url/metrics" >"$tmp/metrics.txt"
if out=$(promtool check metrics <"$tmp/metrics.txt" 2>&1) && [ -z "$out" ]; then
    ok "promtool check metrics on $url/metrics ($(grep -c '^plumb_' "$tmp/metrics.txt") samples)"
else
    echo "$out"
    fail "promtool check metrics on $url/metrics"
fi

# query EXPR: the JSON answer of /api/v1/query (also for a 400: the body says why).
query() { curl -s --get --data-urlencode "query=$1" "$prom/api/v1/query"; }
for _ in $(seq 60); do curl -sf "$prom/-/ready" >/dev/null 2>&1 && break; sleep 1; done
curl -sf "$prom/-/ready" >/dev/null || { tail -n 30 "$tmp/prometheus.log" >&2; echo "check.sh: Prometheus is not ready" >&2; exit 1; }
samples=0
for _ in $(seq 90); do
    samples=$(query 'count_over_time(up{job="plumb-collector"}[1m]) and on (instance) (up{job="plumb-collector"} == 1)' |
        jq -r '.data.result[0].value[1] // 0')
    [ "$samples" -ge 15 ] && break
    sleep 1
done
if [ "$samples" -ge 15 ]; then
    ok "Prometheus at $prom: target up, $samples scrapes in the last minute"
else
    tail -n 30 "$tmp/prometheus.log" >&2
    fail "Prometheus at $prom: the target is not up with 15 scrapes ($samples)"
    exit 1
fi

echo "== (e) every expression of the dashboards and the rules, through $prom/api/v1/query"
# The rules as Prometheus loaded them from $RULES (/api/v1/rules), as many as promtool counted.
rules_json=$(curl -sf "$prom/api/v1/rules")
loaded=$(jq '[.data.groups[].rules[]] | length' <<<"$rules_json")
if [ "$loaded" = "$rule_count" ]; then
    ok "Prometheus loaded $loaded rules from $RULES"
else
    fail "Prometheus loaded $loaded rules, promtool counted ${rule_count:-none} in $RULES"
fi
recorded=$(jq -r '.data.groups[].rules[] | select(.type == "recording") | .name' <<<"$rules_json")
families=$(grep -oE '^ *"plumb_[a-z_]+":' "$METRICS_SOURCE" | tr -d ' ":')

# One JSON object per expression: {kind: panel|variable|record|alert, where, expr}, Grafana's variables substituted.
{
    for dashboard in "${dashboards[@]}"; do
        jq -c --arg file "$dashboard" --arg rate "$RATE_INTERVAL" --arg interval "$INTERVAL" --arg range "$RANGE" '
            [.templating.list[]? | select(.type != "datasource") | .name] as $vars
            | def subst:
                gsub("\\$\\{?__rate_interval\\}?"; $rate) | gsub("\\$\\{?__interval\\}?"; $interval) | gsub("\\$\\{?__range\\}?"; $range)
                | reduce $vars[] as $v (.; gsub("\\$\\{" + $v + "(:[a-z]+)?\\}|\\$" + $v + "\\b"; ".*"));
            (recurse(.panels[]?) | select(has("targets")) as $p | $p.targets[] | select(.expr? // "" | length > 0)
             | {kind: "panel", where: "\($file) panel \($p.id) \"\($p.title)\" \(.refId)", expr: (.expr | subst)}),
            (.templating.list[]? | select(.type == "query")
             | {kind: "variable", where: "\($file) variable $\(.name)", expr: ((if (.query | type) == "object" then .query.query else .query end) | subst)})
        ' "$dashboard"
    done
    jq -c --arg file "$RULES" '.data.groups[] | .name as $group | .rules[]
        | {kind: (if .type == "recording" then "record" else "alert" end), where: "\($file) \($group) \(.name)", expr: .query}' <<<"$rules_json"
} >"$tmp/expressions.jsonl"

# has_series NAME: whether Prometheus has a series of that name now.
has_series() { [ "$(query "count({__name__=\"$1\"})" | jq '.data.result | length')" -gt 0 ]; }

while IFS= read -r item; do
    kind=$(jq -r .kind <<<"$item")
    where=$(jq -r .where <<<"$item")
    expr=$(jq -r .expr <<<"$item")
    shown="$where: $(one_line "$expr")"
    if [[ "$expr" == *'$'* ]]; then
        fail "$shown (a variable that is not the dashboard's)"
        continue
    fi
    # The metrics it reads: plumb_ families (known to the collector), recording rules (defined), up.
    names=$(grep -oE 'plumb_[a-z_]+|plumb:[a-z0-9_:]+' <<<"$expr" | sort -u || true)
    if grep -qE '(^|[^A-Za-z0-9_:])up[[:space:]]*\{' <<<"$expr"; then names=$(printf '%s\nup' "$names"); fi
    unknown=""
    for name in $names; do
        case "$name" in
            plumb:*) grep -qxF "$name" <<<"$recorded" || unknown+=" $name (no such recording rule)" ;;
            plumb_*) grep -qxF "$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")" <<<"$families" || unknown+=" $name (no such family in $METRICS_SOURCE)" ;;
        esac
    done
    if [ -n "$unknown" ]; then
        fail "$shown —$unknown"
        continue
    fi
    if [ "$kind" = variable ]; then
        # label_values(SELECTOR, LABEL) → the label values API with match[]=SELECTOR; query_result(EXPR) → a query.
        if [[ "$expr" =~ ^label_values\((.*),[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)\)$ ]]; then
            answer=$(curl -s --get --data-urlencode "match[]=${BASH_REMATCH[1]}" "$prom/api/v1/label/${BASH_REMATCH[2]}/values")
        elif [[ "$expr" =~ ^label_values\(([A-Za-z_][A-Za-z0-9_]*)\)$ ]]; then
            answer=$(curl -s "$prom/api/v1/label/${BASH_REMATCH[1]}/values")
        elif [[ "$expr" =~ ^query_result\((.*)\)$ ]]; then
            answer=$(query "${BASH_REMATCH[1]}" | jq '{status, data: .data.result}')
        else
            fail "$shown (not label_values(…) or query_result(…))"
            continue
        fi
        if [ "$(jq -r .status <<<"$answer")" = success ] && [ "$(jq '.data | length' <<<"$answer")" -gt 0 ]; then
            ok "$shown → $(jq -r '[.data[] | if type == "string" then . else tostring end] | join(", ")' <<<"$answer")"
        else
            fail "$shown → $(one_line "$answer")"
        fi
        continue
    fi
    answer=$(query "$expr")
    if [ "$(jq -r '.status // "error"' <<<"$answer" 2>/dev/null)" != success ]; then
        fail "$shown → $(jq -r '.error // .' <<<"$answer" 2>/dev/null || echo "$answer")"
        continue
    fi
    results=$(jq '.data.result | length' <<<"$answer")
    absent_ok=""
    missing=""
    for name in $names; do
        if grep -qE "$MAY_BE_ABSENT" <<<"$name"; then
            absent_ok+=" $name"
        elif ! has_series "$name"; then
            missing+=" $name"
        fi
    done
    if [ -n "$missing" ]; then
        fail "$shown (no series of$missing)"
    elif [ "$kind" = alert ]; then
        ok "$shown (every metric it reads has series; firing now: $results)"
    elif [ "$results" -gt 0 ]; then
        ok "$shown ($results series)"
    elif [ -n "$absent_ok" ]; then
        ok "$shown (empty: reads$absent_ok, absent in the demo)"
    else
        fail "$shown (empty result)"
    fi
done <"$tmp/expressions.jsonl"

echo "dashboards/check.sh: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
