# The lab's drift scenarios and its demo; sourced by lab.sh (which defines up, down, start, stop, api, cli, ...).
# Each scenario injects a fault into the running lab, waits for the alert the collector should raise, checks its
# kind, component and count against the webhook receiver's log and the API, checks that nothing else fired,
# repairs the fault and waits for the resolution. Latencies are measured from the injection to the signed
# webhook's arrival.

PASSED=0
FAILED=0
FAILURES=()
FAILED_CHECKS=() # "scenario N: what", repeated after the logs at the end so that a log tail shows them
LATENCIES=()
INTERVAL_S=2  # the lab model's probing.intervalSeconds
K=3           # its failuresToDown

hooks() { [[ -f $STATE/webhooks.jsonl ]] && cat "$STATE/webhooks.jsonl" || true; }
hook_count() { hooks | wc -l; }
hooks_since() { hooks | tail -n +$(($1 + 1)); }
# The first webhook since MARK with EVENT for KIND (and COMPONENT, if given): prints its arrival time (ms).
hook_at() { # hook_at MARK EVENT KIND [COMPONENT]
    hooks_since "$1" | jq -r --arg e "$2" --arg k "$3" --arg c "${4:-}" \
        'select(.event == $e and .payload.alert.kind == $k and ($c == "" or .payload.alert.component == $c)) | .at' | head -1 | grep .
}
hook_arrived() { hook_at "$@" >/dev/null; }
firing() { api "/v1/alerts?status=firing" | jq -c '[.alerts[] | {kind, component}]'; }
first_firing() { # first_firing KIND FILTER: FILTER applied to the first firing alert of KIND
    api "/v1/alerts?status=firing" | jq -rc --arg k "$1" "[.alerts[] | select(.kind == \$k)] | first | $2"
}
some_firing() { [[ $(api "/v1/alerts?status=firing" | jq '.alerts | length') -ge 1 ]]; }
no_firing() { [[ $(api "/v1/alerts?status=firing" | jq '.alerts | length') == 0 ]]; }

failed() { # failed DESCRIPTION: the current scenario fails, and the summary at the end names DESCRIPTION
    log "  FAILED check: $1"
    FAILED_CHECKS+=("scenario ${SCENARIO_NUMBER:-?}: $1")
    SCENARIO_OK=0
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then return 0; fi
    failed "$what"
}
# Every firing webhook since MARK is for KIND/COMPONENT, there is exactly one such alert, and every one verified.
only_fired() { # only_fired MARK KIND COMPONENT
    local others ids invalid
    others=$(hooks_since "$1" | jq -c --arg k "$2" --arg c "$3" \
        'select(.event == "firing" and (.payload.alert.kind != $k or .payload.alert.component != $c)) | [.payload.alert.kind, .payload.alert.component]')
    ids=$(hooks_since "$1" | jq -r 'select(.event == "firing") | .payload.alert.id' | sort -u | wc -l)
    invalid=$(hooks_since "$1" | jq -r 'select(.signatureValid != true) | .key' | wc -l)
    [[ -z $others ]] || log "  also fired: $others"
    [[ $invalid == 0 ]] || log "  $invalid deliveries with an invalid signature"
    [[ -z $others && $ids == 1 && $invalid == 0 ]]
}
detected() { # detected NAME MARK KIND COMPONENT STARTED_MS BUDGET_S: waits for the firing webhook, records the latency
    local name=$1 mark=$2 kind=$3 component=$4 started=$5 budget=$6 at
    if ! wait_for $((budget + 60)) "$kind on $component" hook_arrived "$mark" firing "$kind" "$component"; then
        failed "a $kind alert for $component; firing instead: $(firing)"
        return 1
    fi
    at=$(hook_at "$mark" firing "$kind" "$component")
    local latency
    latency=$(awk -v a="$at" -v s="$started" 'BEGIN {printf "%.1f", (a - s) / 1000}')
    log "  $name: $kind on $component delivered ${latency} s after the fault (budget ${budget} s)"
    LATENCIES+=("$name $latency")
    if awk -v l="$latency" -v b="$budget" 'BEGIN {exit !(l > b)}'; then
        failed "$name detected within ${budget} s (took ${latency} s)"
    fi
}
resolved() { # resolved MARK KIND COMPONENT STARTED_MS
    local at
    if ! wait_for 60 "resolution of $2 on $3" hook_arrived "$1" resolved "$2" "$3"; then
        failed "resolution of $2 on $3 within 60 s"
        return 1
    fi
    at=$(hook_at "$1" resolved "$2" "$3")
    log "  resolved and delivered $(awk -v a="$at" -v s="$4" 'BEGIN {printf "%.1f", (a - s) / 1000}') s after the repair"
}
settle() { # the lab is back to its steady state: nothing firing
    wait_for 90 "no firing alerts" no_firing || {
        failed "nothing firing 90 s after the repair; firing: $(firing)"
    }
}

# One fault from injection to resolution: inject, wait for the alert (latency recorded against BUDGET), optionally
# inspect it, repair, wait for the resolution and the steady state, and check that nothing else fired. INJECT,
# REPAIR and INSPECT are commands (words split on spaces).
fault_cycle() { # fault_cycle NAME KIND COMPONENT BUDGET_S DESCRIPTION INJECT REPAIR [INSPECT]
    local name=$1 kind=$2 component=$3 budget=$4 what=$5 inject=$6 repair=$7 inspect=${8:-}
    local mark started repaired
    mark=$(hook_count)
    started=$(now_ms)
    log "  $what"
    $inject
    detected "$name" "$mark" "$kind" "$component" "$started" "$budget"
    if [[ -n $inspect ]]; then $inspect; fi
    repaired=$(now_ms)
    $repair
    resolved "$mark" "$kind" "$component" "$repaired"
    settle
    check "exactly one $kind on $component and nothing else fired ($name)" only_fired "$mark" "$kind" "$component"
}

run_scenario() { # run_scenario NUMBER TITLE FUNCTION
    local number=$1 title=$2 function=$3
    if [[ -n ${PLUMB_LAB_SCENARIOS:-} && " $PLUMB_LAB_SCENARIOS " != *" $number "* ]]; then return 0; fi
    log "scenario $number: $title"
    SCENARIO_OK=1
    SCENARIO_NUMBER=$number
    local started
    started=$(date +%s)
    "$function" || SCENARIO_OK=0
    if ((SCENARIO_OK)); then
        PASSED=$((PASSED + 1))
        log "scenario $number: passed ($(($(date +%s) - started)) s)"
    else
        FAILED=$((FAILED + 1))
        FAILURES+=("$number")
        log "scenario $number: FAILED ($(($(date +%s) - started)) s)"
    fi
}

# --- 1 -----------------------------------------------------------------------------------------------------------
matrix_agrees() {
    local matrix
    matrix=$(api /v1/matrix)
    [[ $(jq .disagreeing <<<"$matrix") == 0 && $(jq .unknown <<<"$matrix") == 0 && $(jq .agreeing <<<"$matrix") -gt 0 ]]
}
loss() { # loss on|off: 1 % random drops on every link (each instance's and load balancer's inbound, the router's forwarding)
    local action=-I ns
    [[ $1 == off ]] && action=-D
    for ns in $(ip netns list | awk '{print $1}' | grep "^$NS" | grep -v "^$INET$"); do
        local chain=INPUT
        [[ $ns == "$RTR" ]] && chain=FORWARD
        if [[ $action == -I ]]; then
            ip netns exec "$ns" iptables -I "$chain" 1 -m statistic --mode random --probability 0.01 -m comment --comment lab-loss -j DROP
        else
            ip netns exec "$ns" iptables -D "$chain" -m statistic --mode random --probability 0.01 -m comment --comment lab-loss -j DROP || true
        fi
    done
}
scenario_steady() {
    local mark seconds=${PLUMB_LAB_STEADY_SECONDS:-120}
    wait_for 60 "the live matrix equals the expected one" matrix_agrees || {
        failed "the live matrix agrees; disagreeing pairs: $(api /v1/drift | jq -c '[.pairs[] | .key]')"
    }
    local matrix
    matrix=$(api /v1/matrix)
    log "  live matrix: $(jq .agreeing <<<"$matrix") pairs agree with the model, $(jq .disagreeing <<<"$matrix") disagree, $(jq .unknown <<<"$matrix") not yet observed"
    mark=$(hook_count)
    log "  $((seconds / 2)) s without faults, then $((seconds / 2)) s with 1 % random loss on every link"
    sleep $((seconds / 2))
    loss on
    sleep $((seconds / 2))
    loss off
    check "no webhook in the steady state" test "$(hooks_since "$mark" | wc -l)" = 0
    check "no firing alert" no_firing
    [[ $(hooks_since "$mark" | wc -l) == 0 ]] || log "  fired: $(hooks_since "$mark" | jq -c '[.event, .payload.alert.kind, .payload.alert.component]' | tr '\n' ' ')"
    agent_footprint
}
agent_footprint() { # RSS and CPU of the agents during the steady state
    local rss=0 cpu=0 count=0 instance pid
    for instance in $(agent_instances); do
        pid=$(cat "$STATE/pids/agent-$instance.pid" 2>/dev/null || true)
        [[ -n $pid && -r /proc/$pid/status ]] || continue
        rss=$((rss + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status" || echo 0)))
        cpu=$((cpu + $(awk '{print $14 + $15}' "/proc/$pid/stat" || echo 0)))
        count=$((count + 1))
    done
    if ((count == 0)); then
        log "  agents: none running"
        return 0
    fi
    local ticks uptime
    ticks=$(getconf CLK_TCK)
    log "  agents: $count, mean RSS $((rss / count / 1024)) MiB, mean CPU time $(awk -v c="$cpu" -v n="$count" -v t="$ticks" 'BEGIN {printf "%.2f", c / n / t}') s since start"
    FOOTPRINT="mean RSS $((rss / count / 1024)) MiB"
}

# --- 2 -----------------------------------------------------------------------------------------------------------
NAT_INSTANCE=nat
NAT_ID=nat-lab
nat_fault() { # nat_fault link|forwarding|masquerade break|repair
    local ns=$NS$NAT_INSTANCE vpc
    vpc=$(awk '$1 == "vpc" {print $2; exit}' "$STATE/layout")
    case $1/$2 in
        link/break) ip -n "$ns" link set eth0 down ;;
        link/repair)
            ip -n "$ns" link set eth0 up
            ip -n "$ns" route replace default via "$(awk -v n="$NAT_INSTANCE" '$1 == "eni" && $2 == n {print $8; exit}' "$STATE/layout")"
            ;;
        forwarding/break) ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0 ;;
        forwarding/repair) ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 ;;
        masquerade/break) ip netns exec "$ns" iptables -t nat -D POSTROUTING -o eth0 -s "$vpc" ! -d "$vpc" -j MASQUERADE ;;
        masquerade/repair) ip netns exec "$ns" iptables -t nat -A POSTROUTING -o eth0 -s "$vpc" ! -d "$vpc" -j MASQUERADE ;;
    esac
}
nat_lists_subnets() {
    api "/v1/alerts?status=firing" | jq -r '.alerts[] | select(.kind == "nat_failure") | .evidence[0]' |
        grep -q 'affected subnets: subnet-app, subnet-data, subnet-web'
}
nat_inspect() { check "the alert lists the private subnets" wait_for 15 "the three private subnets in the alert" nat_lists_subnets; }
scenario_nat() {
    local way
    for way in link forwarding masquerade; do
        fault_cycle "nat-$way" nat_failure "$NAT_ID" $((K * INTERVAL_S + 5)) "the NAT fails: $way" "nat_fault $way break" "nat_fault $way repair" \
            nat_inspect
    done
}

# --- 3 -----------------------------------------------------------------------------------------------------------
move_eni() { # move_eni ENI TO_INSTANCE
    local eni=$1 to=$2 from device address
    read -r _ from device _ address < <(awk -v e="$eni" '$1 == e' "$STATE/enis")
    [[ -f $STATE/eni-$eni ]] && from=$(cat "$STATE/eni-$eni")
    ip -n "$NS$from" link set "$device" netns "$NS$to"
    ip -n "$NS$to" addr add "$address" dev "$device"
    ip -n "$NS$to" link set "$device" up
    echo "$to" >"$STATE/eni-$eni"
}
eni_inspect() {
    local summary
    summary=$(first_firing eni_moved .summary)
    log "  $summary"
    check "the alert names the old and the new instance" grep -q 'i-redis-a.*i-redis-b' <<<"$summary"
}
scenario_eni() {
    fault_cycle eni-moved eni_moved eni-redis-master $((2 * INTERVAL_S + 5)) "eni-redis-master (10.0.2.50, its MAC) moves from redis-a to redis-b" \
        "move_eni eni-redis-master redis-b" "move_eni eni-redis-master redis-a" eni_inspect
}

# --- 4 -----------------------------------------------------------------------------------------------------------
open_ssh_on_db() { ip netns exec "${NS}db" iptables "$1" SG-IN -s 10.0.1.0/24 -p tcp --dport 22 -m comment --comment lab-exposure -j ACCEPT; }
exposure_inspect() {
    local summary
    summary=$(first_firing unexpected_reachability .summary)
    log "  $summary"
    check "the alert names the flow and the intent" grep -q 'web-[12] → i-db:22.*intent' <<<"$summary"
}
scenario_exposure() {
    fault_cycle exposure unexpected_reachability sg-db $((K * INTERVAL_S + 5)) "sg-db opened: tcp 22 from the web subnet" \
        "open_ssh_on_db -I" "open_ssh_on_db -D" exposure_inspect
}

# --- 5 -----------------------------------------------------------------------------------------------------------
deny_https_from_app() { ip netns exec "$RTR" iptables "$1" NACL-APP-OUT -p tcp --dport 443 -m comment --comment "lab: rule 90 deny" -j DROP; }
nacl_inspect() { log "  $(first_firing unexpected_block .summary)"; }
scenario_nacl() {
    fault_cycle nacl unexpected_block acl-app $((K * INTERVAL_S + 5 + 10)) "acl-app: egress tcp 443 denied (a rule 90 before the allow)" \
        "deny_https_from_app -I" "deny_https_from_app -D" nacl_inspect
}

# --- 6 -----------------------------------------------------------------------------------------------------------
cut_web() {
    ip netns exec "$RTR" iptables "$1" FORWARD $([[ $1 == -I ]] && echo 1) -i b-web -m comment --comment lab-cut -j DROP
    ip netns exec "$RTR" iptables "$1" FORWARD $([[ $1 == -I ]] && echo 1) -o b-web -m comment --comment lab-cut -j DROP
}
scenario_silence() {
    fault_cycle agent-silent agent_silent i-redis-b $((10 + 5)) "the agent on redis-b is killed (SIGKILL)" "stop agent-redis-b KILL" "start_agent redis-b"
    fault_cycle subnet-silent subnet_silent subnet-web $((10 + 5)) "the web subnet is cut off (the router drops everything from and to its bridge)" \
        "cut_web -I" "cut_web -D"
}

# --- 7 -----------------------------------------------------------------------------------------------------------
db_query() { sqlite3 -readonly "$STATE/plumb.sqlite" "$1"; }
gaps() { # agents whose stored report sequences are not contiguous
    db_query "SELECT agent_id FROM reports GROUP BY agent_id HAVING COUNT(*) != MAX(sequence) - MIN(sequence) + 1"
}
duplicates() { db_query "SELECT COUNT(*) FROM (SELECT 1 FROM results GROUP BY agent_id, sequence, position HAVING COUNT(*) > 1)"; }
caught_up() { # every agent's stored last sequence reached what it had produced before the check started
    local agent sequence
    while read -r agent sequence; do
        [[ $(db_query "SELECT COALESCE(MAX(sequence), 0) FROM reports WHERE agent_id = '$agent'") -ge $sequence ]] || return 1
    done <"$STATE/produced"
}
scenario_collector_restart() {
    local mark before after
    mark=$(hook_count)
    before=$(db_query "SELECT COUNT(*) FROM results")
    log "  the collector is killed (SIGKILL) mid-run; 20 s later it starts again"
    stop collector KILL
    sleep 20
    # What the agents produced meanwhile: their spools hold it, numbered.
    : >"$STATE/produced"
    local instance newest
    for instance in $(agent_instances); do
        newest=$(ls "$STATE/agents/$instance/spool" 2>/dev/null | grep -E '^[0-9]{20}-[0-9]+\.json$' | sed 's/-.*//; s/^0*//' | sort -n | tail -1)
        echo "$(instance_id "$instance") ${newest:-0}" >>"$STATE/produced"
    done
    log "  spooled meanwhile: $(awk '{print $2}' "$STATE/produced" | tr '\n' ' ')(newest sequence per agent)"
    start_collector
    check "every spooled report arrives" wait_for 60 "the spools replayed" caught_up
    after=$(db_query "SELECT COUNT(*) FROM results")
    log "  results stored: $before before the kill, $after after the replay"
    check "no agent has a gap in its sequences" test -z "$(gaps)"
    check "no result is stored twice" test "$(duplicates)" = 0
    sleep 10
    check "no alert fired across the restart" test -z "$(hooks_since "$mark" | jq -r 'select(.event == "firing") | .payload.alert.id')"
    check "nothing firing" no_firing
}

# --- 8 -----------------------------------------------------------------------------------------------------------
scenario_receiver_down() {
    local mark started
    mark=$(hook_count)
    log "  the webhook receiver goes down for 60 s; meanwhile sg-db is opened"
    stop receiver
    started=$(now_ms)
    open_ssh_on_db -I
    check "the collector raises the alert meanwhile" wait_for 30 "firing in the API" some_firing
    sleep $((60 - ($(now_ms) - started) / 1000))
    local back
    back=$(now_ms)
    start_receiver
    if wait_for 60 "delivery after the receiver is back" hook_arrived "$mark" firing unexpected_reachability sg-db; then
        local at
        at=$(hook_at "$mark" firing unexpected_reachability sg-db)
        log "  delivered $(awk -v a="$at" -v s="$back" 'BEGIN {printf "%.1f", (a - s) / 1000}') s after the receiver came back"
    else
        failed "the alert delivered within 60 s of the receiver coming back"
    fi
    check "the delivery's signature verifies" test "$(hooks_since "$mark" | jq -r 'select(.event == "firing") | .signatureValid' | sort -u)" = true
    local repaired
    repaired=$(now_ms)
    open_ssh_on_db -D
    resolved "$mark" unexpected_reachability sg-db "$repaired"
    settle
    check "one alert, delivered once per event" test "$(hooks_since "$mark" | jq -r 'select(.event == "firing") | .key' | sort | uniq -d)" = ""
    check "exactly one unexpected_reachability and nothing else fired" only_fired "$mark" unexpected_reachability sg-db
}

# --- 9 -----------------------------------------------------------------------------------------------------------
LB_ID=lb-internal
lb_name() { awk -v id="$LB_ID" '$1 == "lb" && $3 == id {print $2; exit}' "$STATE/layout"; }
lb_kill() { stop "$(lb_name)-haproxy"; }
lb_start() {
    local lb
    lb=$(lb_name)
    start "$lb-haproxy" "$NS$lb" haproxy -db -f "$STATE/$lb.haproxy.cfg"
}
lb_inspect() {
    local alert
    alert=$(first_firing unexpected_block '{summary, alternatives}')
    log "  $alert"
    # No agent may reach the targets on 8080 directly (sg-app admits the balancer only), so the balancer and its
    # targets cannot be told apart: the alert must say so rather than guess.
    check "the alert names the targets it cannot rule out" grep -q 'its targets i-app-1, i-app-2' <<<"$alert"
}
scenario_lb() {
    fault_cycle lb-dead unexpected_block "$LB_ID" $((K * INTERVAL_S + 5)) "the internal load balancer dies (haproxy killed)" lb_kill lb_start lb_inspect
}

# --- 10 ----------------------------------------------------------------------------------------------------------
scenario_flapping_nat() {
    local mark started repaired cycle
    mark=$(hook_count)
    started=$(now_ms)
    log "  the NAT instance's link flaps: 3 s down, 3 s up, ten times"
    for cycle in $(seq 10); do
        nat_fault link break
        sleep 3
        nat_fault link repair
        sleep 3
    done
    repaired=$(now_ms)
    detected nat-flapping "$mark" nat_failure "$NAT_ID" "$started" 60
    resolved "$mark" nat_failure "$NAT_ID" "$repaired"
    settle
    check "one nat_failure episode for the whole flapping, and nothing else fired" only_fired "$mark" nat_failure "$NAT_ID"
    log "  the episode: $(api "/v1/alerts?status=resolved&kind=nat_failure&limit=1" | jq -c '.alerts[0] | {flapping, transitions, startsAtMs, endsAtMs}')"
}

# --- 11 ----------------------------------------------------------------------------------------------------------
am_active() { # am_active ALERTNAME: Alertmanager lists it as active
    ip netns exec "${NS}collector" curl -sf --max-time 3 "http://127.0.0.1:$AM_PORT/api/v2/alerts?active=true" |
        jq -e --arg k "$1" '[.[] | select(.labels.alertname == $k and .labels.source == "plumb")] | length > 0' >/dev/null
}
am_gone() { ! am_active "$1"; }
scenario_alertmanager() {
    if ! running alertmanager; then
        failed "prometheus-alertmanager is running (Debian: apt-get install prometheus-alertmanager)"
        return 0
    fi
    local mark started
    mark=$(hook_count)
    started=$(now_ms)
    log "  the NAT stops forwarding for 50 s; Alertmanager's resolve_timeout is $AM_RESOLVE_TIMEOUT"
    nat_fault forwarding break
    detected am-nat "$mark" nat_failure "$NAT_ID" "$started" $((K * INTERVAL_S + 5))
    check "Alertmanager has the nat_failure" wait_for 20 "the alert in Alertmanager" am_active nat_failure
    sleep $((50 - ($(now_ms) - started) / 1000))
    check "50 s in, past resolve_timeout, the alert is still active in Alertmanager" am_active nat_failure
    local repaired
    repaired=$(now_ms)
    nat_fault forwarding repair
    resolved "$mark" nat_failure "$NAT_ID" "$repaired"
    check "after the repair Alertmanager no longer lists it" wait_for 20 "the alert gone from Alertmanager" am_gone nat_failure
    settle
    check "exactly one nat_failure and nothing else fired" only_fired "$mark" nat_failure "$NAT_ID"
}

# --- 12 ----------------------------------------------------------------------------------------------------------
# An impostor: from web-1, a registration with the enrollment token claiming the database's instance and its ENI;
# then, on db itself, a second agent with db's genuine identity document but without the real agent's key.
register_from() { # register_from INSTANCE BODY OUTPUT: POST /v1/agents/register from INSTANCE's namespace; prints the status
    ip netns exec "$NS$1" curl -s -o "$3" -w '%{http_code}' --max-time 5 --cacert "$(ca_file)" \
        -H "Authorization: Bearer $(cat "$STATE/enrollment-token")" -H 'Content-Type: application/json' \
        --data-binary "$2" "$(collector_url)/v1/agents/register"
}
imds_get() { # imds_get INSTANCE PATH: one item of the instance's IMDS, with an IMDSv2 token
    local token
    token=$(ip netns exec "$NS$1" curl -s --max-time 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
    ip netns exec "$NS$1" curl -s --max-time 2 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254$2"
}
refused_for() { jq -e --arg r "$2" '.error.code == "identity_refused" and .error.reason == $r' "$1" >/dev/null; } # refused_for FILE REASON
agent_reporting() { # agent_reporting AGENT: heard from within 5 s
    [[ $(api "/v1/agents/$1" | jq '.silentForSeconds') -lt 5 ]]
}
scenario_impostor() {
    local mark started db_id body status
    db_id=$(instance_id db)
    mark=$(hook_count)
    started=$(now_ms)
    log "  from web-1: a registration with the enrollment token claiming $db_id and its ENI"
    body=$(jq -cn --arg id "$db_id" --arg mac "$(awk -v n=db '$1 == "eni" && $2 == n {print $5; exit}' "$STATE/layout")" \
        '{version: 1, agentId: $id, agentVersion: "impostor", capabilities: ["udp-echo"], responderPort: 7471, agentKey: "impostor-0000000000000000000000000000",
          identity: {instanceId: $id, source: "local", interfaces: [{mac: $mac, interfaceId: "eni-db", privateIPv4s: ["10.0.2.10"], publicIPv4s: [], securityGroupIds: []}]}}')
    status=$(register_from web-1 "$body" "$STATE/impostor.json")
    check "the impostor is refused with 403 (got $status: $(cat "$STATE/impostor.json"))" test "$status" = 403
    check "the answer names the failed check (source_address)" refused_for "$STATE/impostor.json" source_address
    detected impostor "$mark" identity_conflict "$db_id" "$started" 15
    log "  on db itself: a second agent with db's genuine, signed identity document, without the real agent's key"
    local document signature
    document=$(imds_get db /latest/dynamic/instance-identity/document)
    signature=$(imds_get db /latest/dynamic/instance-identity/signature)
    body=$(jq -cn --arg id "$db_id" --arg document "$document" --arg signature "$signature" \
        '{version: 1, agentId: ($id + "-second"), agentVersion: "second", capabilities: ["udp-echo"], responderPort: 7471,
          agentKey: "second-agent-00000000000000000000000000", instanceIdentity: {document: $document, signature: $signature},
          identity: {instanceId: $id, source: "imds", interfaces: []}}')
    status=$(register_from db "$body" "$STATE/second.json")
    check "the second agent is refused with 403 (got $status: $(cat "$STATE/second.json"))" test "$status" = 403
    check "the answer says the instance has a live agent (instance_in_use)" refused_for "$STATE/second.json" instance_in_use
    check "the refusals are counted by reason" test "$(api /metrics | awk '$1 ~ /^plumb_registrations_refused_total/ {n += $2} END {printf "%d", n}')" -ge 2
    check "the real db agent keeps reporting" wait_for 15 "db's agent reporting" agent_reporting "$db_id"
    check "the live matrix still agrees with the model" wait_for 30 "the live matrix equals the expected one" matrix_agrees
    local repaired
    repaired=$(now_ms)
    resolved "$mark" identity_conflict "$db_id" "$repaired"
    settle
    check "exactly one identity_conflict on $db_id and nothing else fired" only_fired "$mark" identity_conflict "$db_id"
}

# --- 13 ----------------------------------------------------------------------------------------------------------
# Two collectors on one PostgreSQL database behind haproxy; the leader is killed mid-fault. The last scenario: it
# leaves the cluster, both collectors and their haproxy running, and `down` stops them (also when it fails).
collector_role() { direct "$1" /v1/status | jq -r .role; }
leaders() { # the collectors that say they lead, each asked directly
    local id
    for id in "${CLUSTER_IDS[@]}"; do
        if [[ $(collector_role "$id" 2>/dev/null) == leader ]]; then echo "$id"; fi
    done
}
one_leader() { [[ $(leaders | wc -l) == 1 ]]; }
hears_agents() { # hears_agents ID N: collector ID has heard from N agents within 5 s
    [[ $(direct "$1" /v1/agents | jq '[.agents[] | select(.silentForSeconds < 5)] | length') -ge $2 ]]
}
leader_gauge() { direct "$1" /metrics | awk '$1 == "plumb_collector_leader" {printf "%d", $2; exit}'; } # a gauge: "1.0"
ingested() { direct "$1" /metrics | awk '$1 == "plumb_reports_ingested_total" {printf "%d", $2; found = 1; exit} END {if (!found) print 0}'; }
matrix_agrees_at() { # matrix_agrees_at ID
    local matrix
    matrix=$(direct "$1" /v1/matrix)
    [[ $(jq .disagreeing <<<"$matrix") == 0 && $(jq .unknown <<<"$matrix") == 0 && $(jq .agreeing <<<"$matrix") -gt 0 ]]
}
alert_open_at() { # alert_open_at ID ALERT_ID: collector ID lists the alert as firing
    [[ $(direct "$1" "/v1/alerts?status=firing" | jq --arg id "$2" '[.alerts[] | select(.id == $id)] | length') == 1 ]]
}
alert_events() { # alert_events MARK EVENT ALERT_ID: how many EVENT webhooks for the alert since MARK
    hooks_since "$1" | jq -r --arg e "$2" --arg id "$3" 'select(.event == $e and .payload.alert.id == $id) | .key' | wc -l
}
refused_tokens() { # how many times the agents logged a refused token (they then register again)
    cat "$STATE"/logs/agent-*.log 2>/dev/null | grep -c 'refused the agent token' || true
}
agent_warnings() { cat "$STATE"/logs/agent-*.log 2>/dev/null | grep -c ' warning ' || true; }
scenario_two_collectors() {
    local mark expected url id switched refused
    expected=$(agent_instances | wc -l)
    mark=$(hook_count)
    refused=$(refused_tokens)
    log "  the SQLite collector stops; a PostgreSQL cluster, ${CLUSTER_IDS[*]} and haproxy start in ${NS}collector"
    switched=$(now_ms)
    stop collector
    if ! url=$(postgres_start); then
        log "  the PostgreSQL cluster did not start: $(tail -n 3 "$STATE/logs/postgres.log" | tr '\n' ' ')"
        return 1
    fi
    # One after the other: the first applies the migrations and stores the model, the second finds both.
    for id in "${CLUSTER_IDS[@]}"; do
        start_cluster_collector "$id" "$url"
        wait_for 30 "$id ready" cluster_collector_ready "$id" || {
            log "  $id did not start: $(tail -n 3 "$STATE/logs/$id.log" | tr '\n' ' ')"
            return 1
        }
    done
    start_collector_haproxy
    wait_for 10 "haproxy forwards to the collectors" collector_ready || return 1
    log "  $url; collectors on 127.0.0.1:$(cluster_port "${CLUSTER_IDS[0]}") and :$(cluster_port "${CLUSTER_IDS[1]}"), haproxy at $(collector_url)"

    # The agents' tokens are unknown to the new database: they get 401 and register again, through haproxy.
    local leader follower
    wait_for 20 "one collector leads" one_leader || {
        log "  leaders: $(leaders | tr '\n' ' ')"
        return 1
    }
    leader=$(leaders)
    for id in "${CLUSTER_IDS[@]}"; do [[ $id == "$leader" ]] || follower=$id; done
    if ! wait_for 90 "all $expected agents report to the new store" hears_agents "$leader" "$expected"; then
        log "  $leader hears from $(direct "$leader" /v1/agents | jq '[.agents[] | select(.silentForSeconds < 5)] | length') agents"
        return 1
    fi
    log "  all $expected agents registered again and report, $(awk -v n="$(now_ms)" -v s="$switched" 'BEGIN {printf "%.1f", (n - s) / 1000}') s after the switch ($(($(refused_tokens) - refused)) refused tokens logged by the agents)"
    check "$follower hears from every agent too" wait_for 10 "$follower hears from the agents" hears_agents "$follower" "$expected"
    check "the live matrix equals the expected one at $leader" wait_for 60 "the matrix agrees at $leader" matrix_agrees_at "$leader"
    # A steady state before the fault: a pair vouches for its path once it has agreed for its whole hysteresis window
    # (5 results, 10 s at the lab's 2 s probing), and the new store's pairs have only just begun to agree. A fault
    # injected earlier finds paths that cannot vouch yet, and the blame engine cannot single out the NAT.
    sleep 12
    check "exactly one collector leads" one_leader
    check "$follower names $leader as the leader" test "$(direct "$follower" /v1/status | jq -r .leaderId)" = "$leader"
    check "$leader says plumb_collector_leader 1" test "$(leader_gauge "$leader")" = 1
    check "$follower says plumb_collector_leader 0" test "$(leader_gauge "$follower")" = 0
    check "no webhook across the switch" test "$(hooks_since "$mark" | wc -l)" = 0
    check "both collectors take reports through haproxy" test "$(ingested "$follower")" -gt 0 -a "$(ingested "$leader")" -gt 0
    log "  $leader leads, $follower follows; reports ingested: $leader $(ingested "$leader"), $follower $(ingested "$follower")"

    # A fault, then the leader dies while its alert is open.
    local fault_mark started alert_id killed took=
    fault_mark=$(hook_count)
    started=$(now_ms)
    log "  the NAT stops forwarding"
    nat_fault forwarding break
    if ! detected cluster-nat "$fault_mark" nat_failure "$NAT_ID" "$started" $((K * INTERVAL_S + 5)); then
        nat_fault forwarding repair
        return 1
    fi
    alert_id=$(hooks_since "$fault_mark" | jq -r 'select(.event == "firing" and .payload.alert.kind == "nat_failure") | .payload.alert.id' | head -1)
    local before_follower refused_before warnings_before
    before_follower=$(ingested "$follower")
    refused_before=$(refused_tokens)
    warnings_before=$(agent_warnings)
    log "  SIGKILL to the leader $leader (pid $(cat "$STATE/pids/$leader.pid")), alert $alert_id open"
    killed=$(now_ms)
    stop "$leader" KILL
    while (($(now_ms) - killed < 30000)); do
        if [[ $(collector_role "$follower" 2>/dev/null) == leader ]]; then
            took=$(($(now_ms) - killed))
            break
        fi
        sleep 0.1
    done
    if [[ -n $took ]]; then
        FAILOVER="$(awk -v t="$took" 'BEGIN {printf "%.1f", t / 1000}') s"
        log "  $follower leads $FAILOVER after the SIGKILL"
        check "$follower leads within 10 s" test "$took" -le 10000
        check "$follower says plumb_collector_leader 1" test "$(leader_gauge "$follower")" = 1
        check "$follower names itself as the leader" test "$(direct "$follower" /v1/status | jq -r .leaderId)" = "$follower"
    else
        failed "$follower leads within 30 s of the SIGKILL"
    fi
    check "$follower keeps the alert open" wait_for 10 "the open alert at $follower" alert_open_at "$follower" "$alert_id"
    # Held 15 s more: long enough for a new leader that forgot the alert to fire it again.
    sleep 15
    check "$follower hears from every agent through haproxy" hears_agents "$follower" "$expected"
    check "$follower's ingest goes on" test "$(ingested "$follower")" -gt "$before_follower"
    log "  reports ingested by $follower: $before_follower at the kill, $(ingested "$follower") now; agents' warnings since: $(($(agent_warnings) - warnings_before))"
    # Tokens issued by either collector are good at the other: none refused once the agents had registered.
    check "no agent token refused after the kill" test "$(refused_tokens)" = "$refused_before"
    local repaired
    repaired=$(now_ms)
    nat_fault forwarding repair
    resolved "$fault_mark" nat_failure "$NAT_ID" "$repaired"
    settle
    sleep 5 # a second delivery of either event would come within the receivers' backoff
    check "one firing webhook for alert $alert_id" test "$(alert_events "$fault_mark" firing "$alert_id")" = 1
    check "its resolution delivered once" test "$(alert_events "$fault_mark" resolved "$alert_id")" = 1
    check "the agents still report through haproxy" hears_agents "$follower" "$expected"
    check "exactly one nat_failure and nothing else fired" only_fired "$mark" nat_failure "$NAT_ID"
}

# -------------------------------------------------------------------------------------------------------------------

run_tests() {
    local began
    began=$(date +%s)
    trap 'log "interrupted"; show_logs; down; exit 130' INT TERM
    trap 'down quiet' EXIT
    need
    binaries
    # Not `if ! (up)`: bash ignores `set -e` inside a condition, and a failed step must stop the build.
    set +e
    (
        set -e
        up
    )
    local built=$?
    set -e
    if ((built != 0)); then
        show_logs
        down
        echo "0 passed, 1 failed"
        exit 1
    fi
    run_scenario 1 "steady state, also with 1 % loss" scenario_steady
    run_scenario 2 "NAT failure: link down, forwarding off, MASQUERADE removed" scenario_nat
    run_scenario 3 "static-IP ENI moved to another instance" scenario_eni
    run_scenario 4 "exposure: the database's security group opened to the web subnet" scenario_exposure
    run_scenario 5 "NACL: egress 443 denied for the app subnet" scenario_nacl
    run_scenario 6 "an agent killed; a whole subnet cut off" scenario_silence
    run_scenario 7 "collector killed with SIGKILL and restarted" scenario_collector_restart
    run_scenario 8 "webhook receiver down for 60 s during a fault" scenario_receiver_down
    run_scenario 9 "the internal load balancer dies" scenario_lb
    run_scenario 10 "the NAT flaps: ten times 3 s down, 3 s up" scenario_flapping_nat
    run_scenario 11 "a real Alertmanager receiver keeps a long fault active" scenario_alertmanager
    run_scenario 12 "an impostor registers as another instance with the enrollment token" scenario_impostor
    run_scenario 13 "two collectors on PostgreSQL behind haproxy; the leader killed mid-fault" scenario_two_collectors
    ((FAILED == 0)) || show_logs
    down
    trap - EXIT
    local left
    left=$(leftovers)
    if [[ -n $left ]]; then
        log "the lab left something behind:"
        echo "$left"
        FAILED=$((FAILED + 1))
    fi
    log "detection latencies: ${LATENCIES[*]:-none}"
    if [[ -n ${FAILOVER:-} ]]; then log "failover (scenario 13, SIGKILL to the other collector leading): $FAILOVER"; fi
    log "lab run time: $(($(date +%s) - began)) s"
    if ((${#FAILURES[@]})); then log "failed scenarios: ${FAILURES[*]}"; fi
    local failure
    for failure in "${FAILED_CHECKS[@]}"; do log "  failed check in $failure"; done
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0))
}

show_logs() {
    [[ -d $STATE/logs ]] || return 0
    local file
    for file in "$STATE"/logs/collector*.log "$STATE"/logs/postgres.log "$STATE/$PG_DIR_NAME/server.log" "$STATE"/logs/agent-*.log; do
        [[ -s $file ]] || continue
        echo "---- last lines of $(basename "$file")"
        tail -n 6 "$file"
    done
}

run_demo() {
    trap 'down quiet' EXIT
    up
    echo
    log "the live matrix: expected (the model) vs observed (the agents)"
    wait_for 60 "the live matrix equals the expected one" matrix_agrees || true
    { cli matrix --live || true; } | head -25
    echo "... ($(api /v1/matrix | jq .agreeing) pairs agree, $(api /v1/matrix | jq .disagreeing) disagree)"
    echo
    local mark started
    mark=$(hook_count)
    started=$(now_ms)
    log "fault: IP forwarding turned off on the NAT instance"
    nat_fault forwarding break
    if wait_for 60 "the nat_failure webhook" hook_arrived "$mark" firing nat_failure "$NAT_ID"; then
        log "the collector's alert:"
        cli alerts --status firing
        log "the webhook the receiver got ($(hook_at "$mark" firing nat_failure "$NAT_ID" | awk -v s="$started" '{printf "%.1f", ($1 - s) / 1000}') s after the fault; signature verified):"
        hooks_since "$mark" | jq 'select(.event == "firing") | {signatureValid, event, alert: .payload.alert | {kind, component, severity, summary, evidence}}'
    fi
    log "repair: forwarding back on"
    nat_fault forwarding repair
    if wait_for 60 "the resolution" hook_arrived "$mark" resolved nat_failure "$NAT_ID"; then
        hooks_since "$mark" | jq -c 'select(.event == "resolved") | {signatureValid, event, kind: .payload.alert.kind, component: .payload.alert.component}'
    fi
    cli alerts
    down
    trap - EXIT
}
