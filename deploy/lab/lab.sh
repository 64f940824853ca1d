#!/usr/bin/env bash
# The Plumb lab: the VPC of deploy/lab/lab.yaml built from network namespaces on this machine, with a real
# collector and one real agent per instance. See docs/lab.md.
#
#   deploy/lab/lab.sh up       build the lab and start everything
#   deploy/lab/lab.sh down     stop everything and remove every namespace (also after a failed run)
#   deploy/lab/lab.sh status   what runs, the collector's view and its alerts
#   deploy/lab/lab.sh test     up, the drift scenarios, down; ends with "N passed, N failed"
#   deploy/lab/lab.sh demo     up, the live matrix, a NAT failure, its alert and webhook, the repair, down
#
# Needs root, iproute2, iptables, haproxy, setpriv, sqlite3, curl, jq and openssl. Every address lives inside the
# namespaces the lab creates (all named pl-*); the root namespace gets no interface, route or rule. Scenario 11 needs
# prometheus-alertmanager, scenario 13 PostgreSQL 15 (deploy/postgres/test-cluster.sh); without them those fail.
# The collector serves HTTPS with a certificate from a CA the lab makes for each run ($STATE/tls, openssl); the agents,
# the CLI and the lab's curl calls verify it with that CA.
# Environment: PLUMB_BIN (directory with the built binaries; default: swift build's), PLUMB_LAB_STATE
# (default /tmp/plumb-lab), PLUMB_LAB_SCENARIOS (e.g. "2 5" to run only those), PLUMB_LAB_STEADY_SECONDS
# (scenario 1's length, default 120), PLUMB_LAB_MODEL (default deploy/lab/lab.yaml).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODEL=${PLUMB_LAB_MODEL:-$HERE/lab.yaml}
STATE=${PLUMB_LAB_STATE:-/tmp/plumb-lab}
BIN=${PLUMB_BIN:-}
NS=pl-                     # the prefix of every namespace the lab creates
RTR=${NS}rtr
INET=${NS}inet
INET_LINK_RTR=203.0.113.254
INET_LINK_INET=203.0.113.1
RECEIVER_PORT=9099
AM_PORT=19093          # the lab's Alertmanager, in the collector's namespace
AM_RESOLVE_TIMEOUT=20s
# Scenario 12's two collectors on PostgreSQL, each on a port of the collector namespace's loopback, behind haproxy.
CLUSTER_IDS=(collector-a collector-b)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'lab: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }

need() {
    [[ $(id -u) == 0 ]] || die "the lab needs root (network namespaces and iptables); run it with sudo"
    local tool missing=()
    for tool in ip iptables iptables-restore haproxy setpriv sqlite3 curl jq openssl; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (Debian: apt-get install iproute2 iptables haproxy util-linux sqlite3 curl jq openssl)"
}

binaries() {
    local product
    if [[ -n $BIN ]]; then
        for product in plumb-agent plumb-collector plumb-lab plumb; do
            [[ -x $BIN/$product ]] || die "PLUMB_BIN=$BIN has no $product; build it (swift build --product $product) or unset PLUMB_BIN"
        done
        return 0
    fi
    BIN=$(cd "$ROOT" && swift build --show-bin-path)
    for product in plumb-agent plumb-collector plumb-lab plumb; do
        if [[ ! -x $BIN/$product ]]; then
            log "building $product"
            (cd "$ROOT" && swift build --product "$product" >/dev/null) || die "swift build --product $product failed"
        fi
    done
}

# ---------------------------------------------------------------------------------------------------------------
# Processes: started inside a namespace, logged to $STATE/logs/NAME.log, stopped by the pid in $STATE/pids.

start() { # start NAME NAMESPACE [--as-nobody] COMMAND...
    local name=$1 ns=$2
    shift 2
    local prefix=()
    if [[ ${1:-} == --as-nobody ]]; then
        prefix=(setpriv --reuid=65534 --regid=65534 --clear-groups)
        shift
    fi
    ip netns exec "$ns" "${prefix[@]}" "$@" >>"$STATE/logs/$name.log" 2>&1 &
    echo $! >"$STATE/pids/$name.pid"
    disown $!
}

in_lab() { [[ $(ip netns identify "$1" 2>/dev/null) == "$NS"* ]]; }

stop() { # stop NAME [SIGNAL]
    local file=$STATE/pids/$1.pid pid
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    rm -f "$file"
    in_lab "$pid" || return 0
    kill -"${2:-TERM}" "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

running() { [[ -f $STATE/pids/$1.pid ]] && kill -0 "$(cat "$STATE/pids/$1.pid")" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------------------------
# The layout, from the model (plumb-lab layout): vpc, subnet, eni, public, listen, lb, endpoint lines.

layout() { "$BIN/plumb-lab" layout --model "$MODEL"; }

collector_address() { awk '$1 == "eni" && $2 == "collector" {split($7, a, "/"); print a[1]; exit}' "$STATE/layout"; }
collector_port() { awk '$1 == "listen" && $2 == "collector" {print $3; exit}' "$STATE/layout"; }
collector_url() { echo "https://$(collector_address):$(collector_port)"; }
CA_FILE_NAME=tls/ca.pem # under $STATE: the lab's CA, which verifies the collector's certificate
ca_file() { echo "$STATE/$CA_FILE_NAME"; }
agent_instances() { awk '$1 == "eni" && $2 != "collector" {print $2}' "$STATE/layout" | sort -u; }
instance_id() { awk -v n="$1" '$1 == "eni" && $2 == n {print $3; exit}' "$STATE/layout"; }

new_namespace() {
    local ns=$1
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    # Answer ARP only for addresses on the interface asked (an instance with two ENIs in one subnet).
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    # Unprivileged ICMP echo sockets for the agents, which run as nobody.
    ip netns exec "$ns" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
    # The stand-in services run as nobody too, some on ports below 1024.
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_unprivileged_port_start=0
}

up() {
    need
    binaries
    down quiet
    mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/agents"
    chmod 755 "$STATE"
    layout >"$STATE/layout" || die "plumb-lab layout failed for $MODEL"
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/operator-token"
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/enrollment-token"
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/webhook-secret"
    chmod 600 "$STATE/operator-token" "$STATE/webhook-secret"
    chmod 644 "$STATE/enrollment-token" # the agents run as nobody; in a deployment, a group-readable file
    # The IMDS stand-ins sign identity documents with a key made for this run, as AWS signs them; the collector trusts
    # its certificate (identity.certificateFile), as it would trust AWS's RSA certificate for the region.
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$STATE/imds-identity.key" -out "$STATE/imds-identity.pem" -days 2 \
        -subj "/C=US/O=plumb lab/CN=instance identity" 2>/dev/null || die "openssl could not make the IMDS identity key"
    chmod 600 "$STATE/imds-identity.key"
    local vpc
    vpc=$(awk '$1 == "vpc" {print $2; exit}' "$STATE/layout")

    log "router, subnets and route tables"
    new_namespace "$RTR"
    ip netns exec "$RTR" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0
    # Traffic inside a subnet is bridged and, as in a VPC, never meets a NACL: keep bridged frames out of iptables
    # (br_netfilter, when loaded, passes them through FORWARD; its switch is per namespace).
    if ip netns exec "$RTR" test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
        ip netns exec "$RTR" sysctl -qw net.bridge.bridge-nf-call-iptables=0
    fi
    local table=100 name id cidr gw default
    while read -r _ name id cidr gw default; do
        ip -n "$RTR" link add "b-$name" type bridge
        ip -n "$RTR" addr add "$gw" dev "b-$name"
        ip -n "$RTR" link set "b-$name" up
    done < <(awk '$1 == "subnet"' "$STATE/layout")

    log "internet namespace: egress echo and endpoints"
    new_namespace "$INET"
    # The internet's addresses sit on its loopback and are answered for on its link.
    ip netns exec "$INET" sysctl -qw net.ipv4.conf.all.arp_ignore=0
    ip -n "$RTR" link add r-inet type veth peer name i-rtr netns "$INET"
    ip -n "$RTR" addr add "$INET_LINK_RTR/24" dev r-inet
    ip -n "$RTR" link set r-inet up
    ip -n "$INET" addr add "$INET_LINK_INET/24" dev i-rtr
    ip -n "$INET" link set i-rtr up
    local private public
    while read -r _ private public; do
        ip -n "$INET" route add "$public/32" via "$INET_LINK_RTR"
    done < <(awk '$1 == "public"' "$STATE/layout")

    # One policy-routing table per subnet, chosen by the bridge the packet came in on: the VPC's local routes,
    # then the subnet's default (the internet gateway, a NAT instance, or none).
    while read -r _ name id cidr gw default; do
        local subnet_name subnet_cidr
        while read -r _ subnet_name _ subnet_cidr _ _; do
            ip -n "$RTR" route add "$subnet_cidr" dev "b-$subnet_name" table "$table"
        done < <(awk '$1 == "subnet"' "$STATE/layout")
        case $default in
            igw)
                ip -n "$RTR" route add 203.0.113.0/24 dev r-inet table "$table"
                ip -n "$RTR" route add default via "$INET_LINK_INET" dev r-inet table "$table"
                ;;
            none) ;;
            *) ip -n "$RTR" route add default via "$default" table "$table" ;;
        esac
        ip -n "$RTR" rule add iif "b-$name" lookup "$table" pref "$table"
        table=$((table + 1))
    done < <(awk '$1 == "subnet"' "$STATE/layout")

    log "instances: namespaces, ENIs (veths with the model's MACs), instance metadata"
    local instance instance_id device eni mac address subnet count=0
    while read -r _ instance instance_id device eni mac address gw subnet; do
        local ns=$NS$instance
        if ! ip netns list | grep -qx "$ns\( (id: [0-9]*)\)\?"; then
            new_namespace "$ns"
            ip -n "$ns" addr add 169.254.169.254/32 dev lo
        fi
        count=$((count + 1))
        ip -n "$RTR" link add "v$count" type veth peer name "eth$device" netns "$ns"
        ip -n "$RTR" link set "v$count" master "b-$subnet" up
        ip -n "$ns" link set "eth$device" address "$mac"
        ip -n "$ns" addr add "$address" dev "eth$device"
        ip -n "$ns" link set "eth$device" up
        if [[ $device == 0 ]]; then ip -n "$ns" route add default via "$gw"; fi
        echo "$eni $instance eth$device v$count $address" >>"$STATE/enis"
    done < <(awk '$1 == "eni"' "$STATE/layout")

    log "load balancers (haproxy)"
    local lb lb_id port target_port targets
    while read -r _ lb lb_id address gw subnet port target_port targets; do
        local ns=$NS$lb
        if ! ip netns list | grep -qx "$ns\( (id: [0-9]*)\)\?"; then new_namespace "$ns"; fi
        count=$((count + 1))
        ip -n "$RTR" link add "v$count" type veth peer name eth0 netns "$ns"
        ip -n "$RTR" link set "v$count" master "b-$subnet" up
        ip -n "$ns" addr add "$address" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via "$gw"
        "$BIN/plumb-lab" firewall --model "$MODEL" --load-balancer "$lb_id" | ip netns exec "$ns" iptables-restore
        {
            echo "global"
            echo "    maxconn 256"
            echo "defaults"
            echo "    mode tcp"
            echo "    timeout connect 1s"
            echo "    timeout client 10s"
            echo "    timeout server 10s"
            echo "frontend listener"
            echo "    bind ${address%/*}:$port"
            echo "    default_backend targets"
            echo "backend targets"
            local index=0 target
            for target in ${targets//,/ }; do
                index=$((index + 1))
                echo "    server target$index $target:$target_port check inter 2s"
            done
        } >"$STATE/$lb.haproxy.cfg"
        start "$lb-haproxy" "$ns" haproxy -db -f "$STATE/$lb.haproxy.cfg"
    done < <(awk '$1 == "lb"' "$STATE/layout")

    log "security groups (instance namespaces), network ACLs and the internet gateway (router)"
    for instance in $(awk '$1 == "eni" {print $2}' "$STATE/layout" | sort -u); do
        "$BIN/plumb-lab" firewall --model "$MODEL" --instance "$(instance_id "$instance")" | ip netns exec "$NS$instance" iptables-restore
    done
    "$BIN/plumb-lab" firewall --model "$MODEL" --router | ip netns exec "$RTR" iptables-restore

    log "NAT instances: forwarding and MASQUERADE"
    while read -r _ _ _ _ _ default; do
        [[ $default == igw || $default == none ]] && continue
        local nat
        nat=$(awk -v ip="$default" '$1 == "eni" {split($7, a, "/"); if (a[1] == ip) {print $2; exit}}' "$STATE/layout")
        [[ -n $nat ]] || die "no instance holds the NAT address $default"
        if [[ ! -f $STATE/nat-$nat ]]; then
            ip netns exec "$NS$nat" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0
            ip netns exec "$NS$nat" iptables -t nat -A POSTROUTING -o eth0 -s "$vpc" ! -d "$vpc" -j MASQUERADE
            echo "$nat" >"$STATE/nat-$nat"
        fi
    done < <(awk '$1 == "subnet"' "$STATE/layout")

    log "stand-ins: internet endpoints, services on the instances' ports, IMDS per instance"
    local kind
    while read -r _ id kind address port; do
        ip -n "$INET" addr add "$address/32" dev lo 2>/dev/null || true
        if [[ $kind == egress-echo ]]; then
            start "inet-$id" "$INET" "$BIN/plumb-lab" http --address "$address" --port "$port" --egress-echo
        else
            start "inet-$id" "$INET" "$BIN/plumb-lab" http --address "$address" --port "$port" --text "$id ok"
        fi
    done < <(awk '$1 == "endpoint"' "$STATE/layout")
    while read -r _ instance port; do
        [[ $instance == collector ]] && continue
        # On the primary ENI's address: the instance's metadata service has port 80 on 169.254.169.254.
        address=$(awk -v n="$instance" '$1 == "eni" && $2 == n && $4 == 0 {split($7, a, "/"); print a[1]; exit}' "$STATE/layout")
        start "svc-$instance-$port" "$NS$instance" --as-nobody "$BIN/plumb-lab" http --address "$address" --port "$port" --text "$instance:$port"
    done < <(awk '$1 == "listen"' "$STATE/layout")
    for instance in $(agent_instances); do
        start "imds-$instance" "$NS$instance" "$BIN/plumb-lab" imds --model "$MODEL" --instance "$(instance_id "$instance")" \
            --identity-key "$STATE/imds-identity.key"
    done

    log "TLS: a CA for this run and the collector's certificate (openssl)"
    make_certificates || die "making the lab's certificates failed; see $STATE/logs/openssl.log"

    log "collector and webhook receiver"
    cat >"$STATE/collector.yaml" <<EOF
model: $MODEL
database: $STATE/plumb.sqlite
listen: {host: $(collector_address), port: $(collector_port)}
tls: {certificateFile: $STATE/tls/collector.pem, keyFile: $STATE/tls/collector-key.pem}
tokens:
  operatorTokenFile: $STATE/operator-token
  enrollmentTokenFile: $STATE/enrollment-token
evaluation: {intervalSeconds: 1, silenceSeconds: 10}
identity:
  verify: [source-address, instance-identity]
  certificateFile: $STATE/imds-identity.pem
  conflictSeconds: 20
agents: {reportIntervalMs: 1000, planRefreshMs: 5000}
receivers:
  - {name: lab, url: "http://127.0.0.1:$RECEIVER_PORT/hooks/plumb", format: plumb, secret: "$(cat "$STATE/webhook-secret")", maxBackoffSeconds: 5}
  - {name: alertmanager, url: "http://127.0.0.1:$AM_PORT/api/v2/alerts", format: alertmanager, repeatIntervalSeconds: 5, maxBackoffSeconds: 5}
EOF
    start_alertmanager
    start_collector
    start_receiver

    log "agents (as nobody)"
    for instance in $(agent_instances); do
        mkdir -p "$STATE/agents/$instance/spool"
        cat >"$STATE/agents/$instance.yaml" <<EOF
collector: {url: "$(collector_url)", caFile: $(ca_file), enrollmentTokenFile: $STATE/enrollment-token}
spool: {directory: $STATE/agents/$instance/spool}
imds: {enabled: true, endpoint: "http://169.254.169.254"}
discovery: {intervalSeconds: 2}
EOF
        chown -R 65534:65534 "$STATE/agents/$instance"
        start_agent "$instance"
    done

    local expected
    expected=$(agent_instances | wc -l)
    log "waiting for $expected agents to register"
    wait_for 60 "all agents registered" agents_registered "$expected" || die "agents did not register; logs in $STATE/logs"
    log "lab is up: $(ip netns list | grep -c "^$NS") namespaces, $expected agents, collector at $(collector_url)"
}

# The lab's PKI, in $STATE/tls: a CA (P-256, two days) and the collector's server certificate from it, with IP SANs
# for the collector's address (also haproxy's, in scenario 13) and 127.0.0.1 (scenario 13's collectors, each on the
# namespace's loopback). The CA certificate is world-readable (the agents run as nobody); the keys are root's only.
make_certificates() {
    local dir=$STATE/tls
    mkdir -p "$dir"
    chmod 755 "$dir"
    {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/O=Plumb lab/CN=Plumb lab CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" &&
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Plumb lab/CN=plumb-collector" \
                -keyout "$dir/collector-key.pem" -out "$dir/collector.csr" &&
            printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
                "subjectAltName=IP:$(collector_address),IP:127.0.0.1" >"$dir/collector.ext" &&
            openssl x509 -req -in "$dir/collector.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -days 2 \
                -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -extfile "$dir/collector.ext" -out "$dir/collector.pem"
    } >>"$STATE/logs/openssl.log" 2>&1 || return 1
    chmod 600 "$dir/ca-key.pem" "$dir/collector-key.pem"
    chmod 644 "$dir/ca.pem" "$dir/collector.pem"
}

# A real Alertmanager (Debian's prometheus-alertmanager) in the collector's namespace, with a short resolve_timeout,
# for the scenario that checks a long fault stays active there. Optional: without it that scenario fails, the others run.
start_alertmanager() {
    command -v prometheus-alertmanager >/dev/null || return 0
    mkdir -p "$STATE/alertmanager"
    cat >"$STATE/alertmanager.yml" <<EOF
global: {resolve_timeout: $AM_RESOLVE_TIMEOUT}
route: {receiver: blackhole, group_wait: 1s, group_interval: 5s, repeat_interval: 1h}
receivers: [{name: blackhole}]
EOF
    start alertmanager "${NS}collector" prometheus-alertmanager --config.file="$STATE/alertmanager.yml" --storage.path="$STATE/alertmanager" \
        --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address=
    wait_for 20 "alertmanager up" alertmanager_ready || die "alertmanager did not start; see $STATE/logs/alertmanager.log"
}
alertmanager_ready() { ip netns exec "${NS}collector" curl -sf --max-time 2 "http://127.0.0.1:$AM_PORT/-/ready" >/dev/null 2>&1; }
start_collector() {
    start collector "${NS}collector" "$BIN/plumb-collector" serve --config "$STATE/collector.yaml"
    wait_for 30 "collector ready" collector_ready || die "the collector did not start; see $STATE/logs/collector.log"
}
start_receiver() {
    start receiver "${NS}collector" "$BIN/plumb-lab" receiver --port "$RECEIVER_PORT" --secret "$(cat "$STATE/webhook-secret")" \
        --log "$STATE/webhooks.jsonl"
    wait_for 10 "receiver up" receiver_ready || die "the webhook receiver did not start; see $STATE/logs/receiver.log"
}
start_agent() { start "agent-$1" "$NS$1" --as-nobody "$BIN/plumb-agent" --config "$STATE/agents/$1.yaml" --log-level notice; }

# ---------------------------------------------------------------------------------------------------------------
# Two collectors on PostgreSQL (scenario 13): a throwaway PostgreSQL cluster (deploy/postgres/test-cluster.sh) in the
# collector's namespace, listening on its loopback; collectors collector-a and collector-b on 127.0.0.1:18443 and
# :18444 there, with the lab's collector.yaml (so TLS with the lab's certificate) and --db, --id, --listen; haproxy
# (TCP passthrough, so the agents verify the collectors' own certificate; round robin; GET /readyz over TLS as the
# health check) on the address and port the agents use as their collector URL. `down` stops all of it.

PG_DIR_NAME=postgres # under $STATE
cluster_port() { # cluster_port ID
    case $1 in
        collector-a) echo 18443 ;;
        collector-b) echo 18444 ;;
        *) die "no collector $1" ;;
    esac
}
postgres_start() { # starts the cluster (the server forks from pg_ctl and stays in the namespace); prints its URL
    ip netns exec "${NS}collector" "$ROOT/deploy/postgres/test-cluster.sh" start "$STATE/$PG_DIR_NAME" 2>>"$STATE/logs/postgres.log"
}
postgres_stop() { # stops the cluster and removes its directory; nothing to do when there is none
    [[ -e $STATE/$PG_DIR_NAME ]] || return 0
    "$ROOT/deploy/postgres/test-cluster.sh" stop "$STATE/$PG_DIR_NAME" >>"$STATE/logs/postgres.log" 2>&1 ||
        log "stopping the PostgreSQL cluster failed; see $STATE/logs/postgres.log"
}
start_cluster_collector() { # start_cluster_collector ID DATABASE_URL
    # Behind haproxy in TCP mode (TLS passes through to the collectors) every connection comes from haproxy, so a
    # registration's source address cannot be checked: the collectors rely on the signed identity documents alone,
    # as they would behind an AWS Network Load Balancer.
    sed 's/^  verify: \[source-address, instance-identity\]$/  verify: [instance-identity]/' "$STATE/collector.yaml" >"$STATE/cluster-collector.yaml"
    start "$1" "${NS}collector" "$BIN/plumb-collector" serve --config "$STATE/cluster-collector.yaml" --db "$2" --id "$1" \
        --listen "127.0.0.1:$(cluster_port "$1")"
}
cluster_collector_ready() {
    ip netns exec "${NS}collector" curl -sf --max-time 2 --cacert "$(ca_file)" "https://127.0.0.1:$(cluster_port "$1")/readyz" >/dev/null 2>&1
}
start_collector_haproxy() {
    local id
    {
        echo "global"
        echo "    maxconn 512"
        echo "defaults"
        echo "    mode tcp"
        echo "    timeout connect 1s"
        echo "    timeout client 30s"
        echo "    timeout server 30s"
        # A connection refused (a collector just died, not yet marked down) is tried again on the other one.
        echo "    retries 3"
        echo "    option redispatch 1"
        echo "frontend collector"
        echo "    bind $(collector_address):$(collector_port)"
        echo "    default_backend collectors"
        echo "backend collectors"
        echo "    balance roundrobin"
        echo "    option httpchk GET /readyz"
        echo "    http-check expect status 200"
        for id in "${CLUSTER_IDS[@]}"; do
            echo "    server $id 127.0.0.1:$(cluster_port "$id") check check-ssl verify required ca-file $(ca_file) inter 1s fall 2 rise 2"
        done
    } >"$STATE/collector.haproxy.cfg"
    start collector-haproxy "${NS}collector" haproxy -db -f "$STATE/collector.haproxy.cfg"
}
direct() { # direct ID PATH: one collector's API, not through haproxy
    ip netns exec "${NS}collector" curl -sf --max-time 3 --cacert "$(ca_file)" -H "Authorization: Bearer $(cat "$STATE/operator-token")" \
        "https://127.0.0.1:$(cluster_port "$1")$2"
}

# ---------------------------------------------------------------------------------------------------------------
# The collector's API, from inside the collector's namespace (the root namespace has no route into the lab).

api() { # api PATH
    ip netns exec "${NS}collector" curl -sf --max-time 5 --cacert "$(ca_file)" -H "Authorization: Bearer $(cat "$STATE/operator-token")" \
        "$(collector_url)$1"
}
cli() { # cli SUBCOMMAND ARGS...
    local sub=$1
    shift
    ip netns exec "${NS}collector" env PLUMB_OPERATOR_TOKEN="$(cat "$STATE/operator-token")" \
        "$BIN/plumb" "$sub" --collector "$(collector_url)" --ca-file "$(ca_file)" "$@"
}
collector_ready() { ip netns exec "${NS}collector" curl -sf --max-time 2 --cacert "$(ca_file)" "$(collector_url)/readyz" >/dev/null 2>&1; }
receiver_ready() { ip netns exec "${NS}collector" bash -c "exec 3<>/dev/tcp/127.0.0.1/$RECEIVER_PORT" 2>/dev/null; }
agents_registered() { [[ $(api /v1/agents | jq '[.agents[] | select(.silentForSeconds < 5)] | length') -ge $1 ]]; }

wait_for() { # wait_for SECONDS WHAT COMMAND... : polls every 0.5 s
    local seconds=$1 what=$2
    shift 2
    local deadline=$(($(date +%s) + seconds))
    while (($(date +%s) < deadline)); do
        if "$@" 2>/dev/null; then return 0; fi
        sleep 0.5
    done
    log "timed out after ${seconds}s waiting for: $what"
    return 1
}

# ---------------------------------------------------------------------------------------------------------------

down() {
    local quiet=${1:-}
    [[ $quiet == quiet ]] || log "stopping processes and removing namespaces"
    if [[ -d $STATE/pids ]]; then
        # SIGTERM to all at once (the agents flush their last batch), then SIGKILL to what is left after 5 s.
        local file pids=()
        local pid
        for file in "$STATE"/pids/*.pid; do
            [[ -e $file ]] || continue
            pid=$(cat "$file")
            rm -f "$file"
            # Only a process still inside one of the lab's namespaces: a pid that was reused is somebody else's.
            in_lab "$pid" && pids+=("$pid")
        done
        if ((${#pids[@]})); then
            kill -TERM "${pids[@]}" 2>/dev/null || true
            local pid alive
            for _ in $(seq 50); do
                alive=0
                for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
                ((alive)) || break
                sleep 0.1
            done
            kill -KILL "${pids[@]}" 2>/dev/null || true
        fi
    fi
    postgres_stop # scenario 13's cluster, if any: before the namespaces go (it runs in one)
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS" || true); do
        # Anything still running inside one of the lab's namespaces is the lab's: stop it by its pid.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$STATE"
    [[ $quiet == quiet ]] || log "lab is down"
}

leftovers() { # prints what the lab left behind, if anything
    ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS" | sed 's/^/namespace /' || true
    ip -o link show 2>/dev/null | grep -E ': (b-|v[0-9]+|r-inet)[@:]' | sed 's/^/root link /' || true
    [[ -e $STATE ]] && echo "state directory $STATE"
    return 0
}

status() {
    if [[ ! -f $STATE/layout ]]; then
        echo "the lab is down"
        return 0
    fi
    binaries
    echo "namespaces: $(ip netns list | awk '{print $1}' | grep "^$NS" | tr '\n' ' ')"
    local file name
    for file in "$STATE"/pids/*.pid; do
        name=$(basename "$file" .pid)
        if running "$name"; then echo "  running  $name (pid $(cat "$file"))"; else echo "  STOPPED  $name"; fi
    done
    echo
    cli status || true
    echo
    cli alerts || true
}

source "$HERE/scenarios.sh"

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    test) run_tests ;;
    demo) run_demo ;;
    *)
        echo "usage: $0 up|down|status|test|demo" >&2
        exit 2
        ;;
esac
