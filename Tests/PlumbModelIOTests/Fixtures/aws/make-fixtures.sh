#!/usr/bin/env bash
# Regenerates the AWS `describe-*` JSON fixtures in ./nat-scenario/ .
#
# Builds AWS's documented "VPC with public and private subnets (NAT)" scenario
# (plus a few extras: bastion, security-group chains, a custom NACL, a
# secondary ENI, an S3 gateway endpoint and an internal ALB) against a local
# moto server, dumps every describe call the importer reads, then runs
# fix-moto.py to correct the places where moto's output differs from what
# real AWS writes. See README.md beside this file.
#
# Needs: python3 with moto[server] (moto_server) and awscli (v1 or v2).
# Talks only to a moto_server it starts on 127.0.0.1; no AWS account needed.
# Idempotent: every run starts a fresh, seeded moto, so resource ids are the
# same on every run, and the output directory is rewritten from scratch.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE/nat-scenario"
PYTHON="${PYTHON:-python3}"
REGION=us-east-1
SEED=20240115
AMI=ami-04681a1dbd79675a5   # amzn2-ami-hvm-2.0.20180810-x86_64-gp2, in moto's built-in image list

for tool in moto_server aws "$PYTHON"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "make-fixtures: '$tool' not found on PATH" >&2; exit 1; }
done

# Dummy credentials: moto accepts anything; never use real ones here.
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_SESSION_TOKEN=testing
export AWS_DEFAULT_REGION="$REGION"
export AWS_PAGER=""
export AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE

# --- start moto on a free loopback port ------------------------------------
PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
ENDPOINT="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
MOTO_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -s "$WORK/moto.log" ]]; then
        echo "--- moto_server log (tail) ---" >&2
        tail -n 30 "$WORK/moto.log" >&2 || true
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!

ready=""
for _ in $(seq 1 150); do
    if "$PYTHON" - "$ENDPOINT" <<'PY' 2>/dev/null; then ready=1; break; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
PY
    kill -0 "$MOTO_PID" 2>/dev/null || { echo "make-fixtures: moto_server exited early" >&2; exit 1; }
    sleep 0.2
done
[[ -n "$ready" ]] || { echo "make-fixtures: moto_server did not answer on $ENDPOINT" >&2; exit 1; }

moto_api() { # POST to moto's control API (reset state, seed the id generator)
    "$PYTHON" - "$ENDPOINT$1" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b"", method="POST"), timeout=10).read()
PY
}
moto_api /moto-api/reset
moto_api "/moto-api/seed?a=$SEED"

aws_() { aws --endpoint-url "$ENDPOINT" --region "$REGION" --output json "$@"; }
q() { aws --endpoint-url "$ENDPOINT" --region "$REGION" --output text "$@"; }   # scalar queries
tags() { # tags RESOURCE_TYPE Name [Key=Value ...]
    local rt=$1 name=$2; shift 2
    local t="{Key=Name,Value=$name}"
    for kv in "$@"; do t="$t,{Key=${kv%%=*},Value=${kv#*=}}"; done
    printf 'ResourceType=%s,Tags=[%s]' "$rt" "$t"
}

# --- network -----------------------------------------------------------------
VPC=$(q ec2 create-vpc --cidr-block 10.0.0.0/16 \
    --tag-specifications "$(tags vpc plumb-nat-scenario)" --query Vpc.VpcId)
# As in AWS's scenario: instances with a public address get a public DNS name.
aws_ ec2 modify-vpc-attribute --vpc-id "$VPC" --enable-dns-hostnames '{"Value":true}' >/dev/null

subnet() { # CIDR AZ NAME
    q ec2 create-subnet --vpc-id "$VPC" --cidr-block "$1" --availability-zone "$2" \
        --tag-specifications "$(tags subnet "$3")" --query Subnet.SubnetId
}
PUB_A=$(subnet 10.0.0.0/24 us-east-1a public-a)
PRIV_A=$(subnet 10.0.1.0/24 us-east-1a private-a)
PRIV_B=$(subnet 10.0.2.0/24 us-east-1b private-b)

IGW=$(q ec2 create-internet-gateway \
    --tag-specifications "$(tags internet-gateway plumb-igw)" --query InternetGateway.InternetGatewayId)
aws_ ec2 attach-internet-gateway --internet-gateway-id "$IGW" --vpc-id "$VPC" >/dev/null

PUB_RT=$(q ec2 create-route-table --vpc-id "$VPC" \
    --tag-specifications "$(tags route-table public-rt)" --query RouteTable.RouteTableId)
aws_ ec2 create-route --route-table-id "$PUB_RT" --destination-cidr-block 0.0.0.0/0 --gateway-id "$IGW" >/dev/null
aws_ ec2 associate-route-table --route-table-id "$PUB_RT" --subnet-id "$PUB_A" >/dev/null

NAT_EIP=$(q ec2 allocate-address --domain vpc \
    --tag-specifications "$(tags elastic-ip nat-eip)" --query AllocationId)
NAT=$(q ec2 create-nat-gateway --subnet-id "$PUB_A" --allocation-id "$NAT_EIP" \
    --tag-specifications "$(tags natgateway plumb-nat)" --query NatGateway.NatGatewayId)

PRIV_RT=$(q ec2 create-route-table --vpc-id "$VPC" \
    --tag-specifications "$(tags route-table private-rt)" --query RouteTable.RouteTableId)
aws_ ec2 create-route --route-table-id "$PRIV_RT" --destination-cidr-block 0.0.0.0/0 --nat-gateway-id "$NAT" >/dev/null
aws_ ec2 associate-route-table --route-table-id "$PRIV_RT" --subnet-id "$PRIV_A" >/dev/null
aws_ ec2 associate-route-table --route-table-id "$PRIV_RT" --subnet-id "$PRIV_B" >/dev/null

VPCE=$(q ec2 create-vpc-endpoint --vpc-id "$VPC" --vpc-endpoint-type Gateway \
    --service-name "com.amazonaws.$REGION.s3" --route-table-ids "$PRIV_RT" \
    --tag-specifications "$(tags vpc-endpoint s3-gateway-endpoint)" --query VpcEndpoint.VpcEndpointId)

# --- security groups ------------------------------------------------------------
sg() { # NAME DESCRIPTION
    q ec2 create-security-group --vpc-id "$VPC" --group-name "$1" --description "$2" \
        --tag-specifications "$(tags security-group "$1")" --query GroupId
}
BASTION_SG=$(sg bastion-sg "SSH from the admin network")
WEB_SG=$(sg web-sg "HTTP/HTTPS from the internet, SSH from bastion")
APP_SG=$(sg app-sg "App port from web tier, SSH from bastion")
DB_SG=$(sg db-sg "PostgreSQL from app tier, SSH from bastion")
ALB_SG=$(sg alb-sg "HTTP from inside the VPC")

ingress() { # GROUP IP_PERMISSIONS_JSON
    aws_ ec2 authorize-security-group-ingress --group-id "$1" --ip-permissions "$2" >/dev/null
}
cidr_rule() { printf '{"IpProtocol":"tcp","FromPort":%s,"ToPort":%s,"IpRanges":[{"CidrIp":"%s"}]}' "$1" "$1" "$2"; }
sg_rule() { printf '{"IpProtocol":"tcp","FromPort":%s,"ToPort":%s,"UserIdGroupPairs":[{"GroupId":"%s"}]}' "$1" "$1" "$2"; }

ingress "$BASTION_SG" "[$(cidr_rule 22 198.51.100.0/24)]"
ingress "$WEB_SG" "[$(cidr_rule 80 0.0.0.0/0),$(cidr_rule 443 0.0.0.0/0),$(sg_rule 22 "$BASTION_SG")]"
ingress "$APP_SG" "[$(sg_rule 8080 "$WEB_SG"),$(sg_rule 22 "$BASTION_SG")]"
ingress "$DB_SG" "[$(sg_rule 5432 "$APP_SG"),$(sg_rule 22 "$BASTION_SG")]"
ingress "$ALB_SG" "[$(cidr_rule 80 10.0.0.0/16)]"

# --- network ACL for the private subnets -------------------------------------
ACL=$(q ec2 create-network-acl --vpc-id "$VPC" \
    --tag-specifications "$(tags network-acl private-acl)" --query NetworkAcl.NetworkAclId)
acl_entry() { # ingress|egress RULE ACTION PROTOCOL CIDR [FROM TO]
    local dir=--ingress
    [[ $1 == egress ]] && dir=--egress
    local args=(ec2 create-network-acl-entry --network-acl-id "$ACL" "$dir"
        --rule-number "$2" --rule-action "$3" --protocol "$4" --cidr-block "$5")
    [[ $# -ge 7 ]] && args+=(--port-range "From=$6,To=$7")
    aws_ "${args[@]}" >/dev/null
}
acl_entry ingress 100 allow -1 10.0.0.0/16
acl_entry ingress 110 allow 6 0.0.0.0/0 1024 65535
acl_entry ingress 120 deny 6 0.0.0.0/0 22 22
acl_entry egress 100 allow -1 10.0.0.0/16
acl_entry egress 110 allow 6 0.0.0.0/0 80 80
acl_entry egress 120 allow 6 0.0.0.0/0 443 443
acl_entry egress 130 allow 6 0.0.0.0/0 1024 65535

for subnet_id in "$PRIV_A" "$PRIV_B"; do
    assoc=$(q ec2 describe-network-acls --filters "Name=association.subnet-id,Values=$subnet_id" \
        --query "NetworkAcls[].Associations[?SubnetId=='$subnet_id'].NetworkAclAssociationId | [0][0]")
    aws_ ec2 replace-network-acl-association --association-id "$assoc" --network-acl-id "$ACL" >/dev/null
done

# --- instances --------------------------------------------------------------------
instance() { # NAME SUBNET SG [PRIVATE_IP]
    local args=(ec2 run-instances --image-id "$AMI" --instance-type t3.micro --count 1
        --subnet-id "$2" --security-group-ids "$3"
        --tag-specifications "$(tags instance "$1" "Role=$1")" --query 'Instances[0].InstanceId')
    [[ $# -ge 4 ]] && args+=(--private-ip-address "$4")
    q "${args[@]}"
}
BASTION=$(instance bastion "$PUB_A" "$BASTION_SG")
WEB=$(instance web "$PUB_A" "$WEB_SG")
APP=$(instance app "$PRIV_A" "$APP_SG" 10.0.1.10)
DB=$(instance db "$PRIV_A" "$DB_SG" 10.0.1.20)

eip_for() { # NAME INSTANCE
    local alloc
    alloc=$(q ec2 allocate-address --domain vpc --tag-specifications "$(tags elastic-ip "$1")" --query AllocationId)
    aws_ ec2 associate-address --allocation-id "$alloc" --instance-id "$2" >/dev/null
    echo "$alloc"
}
BASTION_EIP=$(eip_for bastion-eip "$BASTION")
WEB_EIP=$(eip_for web-eip "$WEB")

DB_ENI=$(q ec2 create-network-interface --subnet-id "$PRIV_A" --private-ip-address 10.0.1.50 \
    --groups "$DB_SG" --description "static ip for db" \
    --tag-specifications "$(tags network-interface db-static)" --query NetworkInterface.NetworkInterfaceId)
aws_ ec2 attach-network-interface --network-interface-id "$DB_ENI" --instance-id "$DB" --device-index 1 >/dev/null

# --- internal application load balancer ------------------------------------------
ALB=$(q elbv2 create-load-balancer --name internal-alb --type application --scheme internal \
    --subnets "$PRIV_A" "$PRIV_B" --security-groups "$ALB_SG" \
    --tags Key=Name,Value=internal-alb --query 'LoadBalancers[0].LoadBalancerArn')
TG=$(q elbv2 create-target-group --name app-tg --protocol HTTP --port 8080 --vpc-id "$VPC" \
    --target-type instance --tags Key=Name,Value=app-tg --query 'TargetGroups[0].TargetGroupArn')
aws_ elbv2 register-targets --target-group-arn "$TG" --targets "Id=$APP,Port=8080" >/dev/null
LISTENER=$(q elbv2 create-listener --load-balancer-arn "$ALB" --protocol HTTP --port 80 \
    --default-actions "Type=forward,TargetGroupArn=$TG" --query 'Listeners[0].ListenerArn')

# --- dump -------------------------------------------------------------------------------
RAW="$WORK/raw"
mkdir -p "$RAW"
vpc_filter=(--filters "Name=vpc-id,Values=$VPC")
aws_ ec2 describe-vpcs --vpc-ids "$VPC"                        >"$RAW/describe-vpcs.json"
aws_ ec2 describe-subnets "${vpc_filter[@]}"                   >"$RAW/describe-subnets.json"
aws_ ec2 describe-route-tables "${vpc_filter[@]}"              >"$RAW/describe-route-tables.json"
aws_ ec2 describe-internet-gateways --filters "Name=attachment.vpc-id,Values=$VPC" >"$RAW/describe-internet-gateways.json"
aws_ ec2 describe-nat-gateways --filter "Name=vpc-id,Values=$VPC" >"$RAW/describe-nat-gateways.json"
aws_ ec2 describe-security-groups "${vpc_filter[@]}"           >"$RAW/describe-security-groups.json"
aws_ ec2 describe-network-acls "${vpc_filter[@]}"              >"$RAW/describe-network-acls.json"
aws_ ec2 describe-network-interfaces "${vpc_filter[@]}"        >"$RAW/describe-network-interfaces.json"
aws_ ec2 describe-instances "${vpc_filter[@]}"                 >"$RAW/describe-instances.json"
aws_ ec2 describe-addresses                                    >"$RAW/describe-addresses.json"
aws_ ec2 describe-vpc-endpoints "${vpc_filter[@]}"             >"$RAW/describe-vpc-endpoints.json"
aws_ ec2 describe-prefix-lists                                 >"$RAW/describe-prefix-lists.json"
aws_ elbv2 describe-load-balancers --load-balancer-arns "$ALB" >"$RAW/describe-load-balancers.json"
aws_ elbv2 describe-target-groups --load-balancer-arn "$ALB"   >"$RAW/describe-target-groups.json"
aws_ elbv2 describe-listeners --load-balancer-arn "$ALB"       >"$RAW/describe-listeners.json"
# describe-target-health takes one group at a time: merge all groups into one
# file and tag each description with the TargetGroupArn it belongs to.
: >"$RAW/target-health.jsonl"
for tg in $(q elbv2 describe-target-groups --load-balancer-arn "$ALB" --query 'TargetGroups[].TargetGroupArn'); do
    aws_ elbv2 describe-target-health --target-group-arn "$tg" \
        | "$PYTHON" -c 'import json,sys; print(json.dumps({"TargetGroupArn": sys.argv[1], "Response": json.load(sys.stdin)}))' "$tg" \
        >>"$RAW/target-health.jsonl"
done

# Ids the post-processor needs to know which resource is which.
cat >"$RAW/ids.json" <<EOF
{
    "vpc": "$VPC",
    "subnets": {"public-a": "$PUB_A", "private-a": "$PRIV_A", "private-b": "$PRIV_B"},
    "igw": "$IGW",
    "route_tables": {"public-rt": "$PUB_RT", "private-rt": "$PRIV_RT"},
    "nat": "$NAT",
    "vpce": "$VPCE",
    "security_groups": {"bastion-sg": "$BASTION_SG", "web-sg": "$WEB_SG", "app-sg": "$APP_SG", "db-sg": "$DB_SG", "alb-sg": "$ALB_SG"},
    "nacl": "$ACL",
    "instances": {"bastion": "$BASTION", "web": "$WEB", "app": "$APP", "db": "$DB"},
    "eni_db_static": "$DB_ENI",
    "eips": {"nat-eip": "$NAT_EIP", "bastion-eip": "$BASTION_EIP", "web-eip": "$WEB_EIP"},
    "load_balancer": "$ALB",
    "target_group": "$TG",
    "listener": "$LISTENER"
}
EOF

if [[ -n "${KEEP_RAW:-}" ]]; then   # debugging aid: keep moto's uncorrected output
    rm -rf "$KEEP_RAW" && cp -r "$RAW" "$KEEP_RAW"
fi

rm -rf "$OUT"
mkdir -p "$OUT"
"$PYTHON" "$HERE/fix-moto.py" "$RAW" "$OUT"

# Every file must parse.
for f in "$OUT"/*.json; do
    "$PYTHON" -m json.tool "$f" >/dev/null
done
if grep -q '172\.31\.' "$OUT"/*.json; then
    echo "make-fixtures: moto's default VPC (172.31.0.0/16) leaked into the fixtures" >&2
    exit 1
fi
echo "make-fixtures: wrote $(ls "$OUT" | wc -l) files to $OUT"
