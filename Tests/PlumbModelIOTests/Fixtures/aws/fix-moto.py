#!/usr/bin/env python3
"""Post-process moto's describe-* output so it reads like real AWS output.

Usage: fix-moto.py RAW_DIR OUT_DIR

RAW_DIR holds what make-fixtures.sh dumped from moto (one <call>.json per
describe call, target-health.jsonl, ids.json). OUT_DIR receives the corrected
<call>.json files, pretty-printed with 4-space indentation like the AWS CLI.

Every correction is listed, with its reason, in README.md beside this file.
The script is deterministic: same input, same output.
"""

import copy
import hashlib
import json
import os
import re
import sys
import uuid

EC2_CALLS = [
    "describe-vpcs",
    "describe-subnets",
    "describe-route-tables",
    "describe-internet-gateways",
    "describe-nat-gateways",
    "describe-security-groups",
    "describe-network-acls",
    "describe-network-interfaces",
    "describe-instances",
    "describe-addresses",
    "describe-vpc-endpoints",
    "describe-prefix-lists",
]
ELB_CALLS = [
    "describe-load-balancers",
    "describe-target-groups",
    "describe-listeners",
]

REGION = "us-east-1"
# One fixed time for every timestamp, so regenerating gives identical files.
FIXED_TIME = "2024-05-01T12:00:00.000Z"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

# Elastic IPs get addresses from TEST-NET-3 (RFC 5737), in allocation order.
EIP_ORDER = ["nat-eip", "bastion-eip", "web-eip"]
EIP_BASE = "203.0.113."
EIP_FIRST = 10
NAT_PRIVATE_IP = "10.0.0.100"          # inside public-a (10.0.0.0/24)
ALB_ENI_IPS = {"private-a": "10.0.1.100", "private-b": "10.0.2.100"}

# AWS-managed prefix lists. Real ids of the us-east-1 lists where known; the
# others keep moto's id, shortened to the 8-hex-digit form AWS uses for them.
PREFIX_LISTS = {
    f"com.amazonaws.{REGION}.s3": ("pl-63a5400a", ["52.216.0.0/15", "3.5.0.0/19"]),
    f"com.amazonaws.{REGION}.dynamodb": ("pl-02cd2c6b", ["52.94.0.0/22"]),
    "com.amazonaws.global.cloudfront.origin-facing": ("pl-3b927c52", ["192.0.2.0/26"]),
    "com.amazonaws.global.groundstation": (None, ["192.0.2.64/26"]),
    f"com.amazonaws.{REGION}.vpc-lattice": (None, ["169.254.171.0/24"]),
    f"com.amazonaws.{REGION}.ipv6.vpc-lattice": (None, ["fd00:ec2:80::/64"]),
}

# Requester / owner ids AWS shows on the ENIs it manages.
NAT_ENI_REQUESTER_ID = "036872051663"
ALB_HOSTED_ZONE_ID = "Z35SXDOTRQ7X7K"  # ELB's canonical hosted zone for ALBs in us-east-1


def fail(msg):
    sys.exit(f"fix-moto: {msg}")


def digest(*parts, n=17):
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:n]


def walk_strings(node, fn):
    """Return a copy of node with fn applied to every string value."""
    if isinstance(node, dict):
        return {k: walk_strings(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [walk_strings(v, fn) for v in node]
    if isinstance(node, str):
        return fn(node)
    return node


def walk_dicts(node, fn):
    """Call fn on every dict inside node (depth-first, parents first)."""
    if isinstance(node, dict):
        fn(node)
        for v in node.values():
            walk_dicts(v, fn)
    elif isinstance(node, list):
        for v in node:
            walk_dicts(v, fn)


def private_dns(ip):
    return "ip-" + ip.replace(".", "-") + ".ec2.internal"


def public_dns(ip):
    return "ec2-" + ip.replace(".", "-") + ".compute-1.amazonaws.com"


def name_tag(tags):
    for t in tags or []:
        if t.get("Key") == "Name":
            return t.get("Value")
    return None


def main():
    if len(sys.argv) != 3:
        fail("usage: fix-moto.py RAW_DIR OUT_DIR")
    raw_dir, out_dir = sys.argv[1], sys.argv[2]

    def load(name):
        with open(os.path.join(raw_dir, name + ".json")) as f:
            return json.load(f)

    ids = load("ids")
    d = {call: load(call) for call in EC2_CALLS + ELB_CALLS}
    with open(os.path.join(raw_dir, "target-health.jsonl")) as f:
        health = [json.loads(line) for line in f if line.strip()]

    vpc_id = ids["vpc"]
    account = d["describe-vpcs"]["Vpcs"][0]["OwnerId"]
    subnet_name = {v: k for k, v in ids["subnets"].items()}
    sg_name = {v: k for k, v in ids["security_groups"].items()}

    # --------------------------------------------------------------------- VPCs
    # A new VPC is associated with the region's default DHCP options set
    # (dopt-...); moto writes the literal "default".
    for v in d["describe-vpcs"]["Vpcs"]:
        if v.get("DhcpOptionsId") == "default":
            v["DhcpOptionsId"] = "dopt-" + digest("dhcp", account, REGION, n=8)

    # ------------------------------------------------------------------ subnets
    for s in d["describe-subnets"]["Subnets"]:
        s.setdefault("EnableDns64", False)
        s.setdefault("MapCustomerOwnedIpOnLaunch", False)

    # ------------------------------------------------------------- route tables
    for rt in d["describe-route-tables"]["RouteTables"]:
        rt.setdefault("PropagatingVgws", [])

    # ---------------------------------------------------------- security groups
    # The default group of a VPC allows all inbound traffic from itself.
    for sg in d["describe-security-groups"]["SecurityGroups"]:
        if sg["GroupName"] == "default" and not sg["IpPermissions"]:
            sg["IpPermissions"] = [{
                "IpProtocol": "-1",
                "UserIdGroupPairs": [{"UserId": account, "GroupId": sg["GroupId"]}],
                "IpRanges": [],
                "Ipv6Ranges": [],
                "PrefixListIds": [],
            }]

    # ------------------------------------------------------------- network ACLs
    # Every NACL ends with the implicit "*" rule 32767 deny-all, both ways, and
    # AWS lists egress entries before ingress, each in rule-number order.
    for acl in d["describe-network-acls"]["NetworkAcls"]:
        entries = acl["Entries"]
        for egress in (True, False):
            if not any(e["Egress"] == egress and e["RuleNumber"] == 32767 for e in entries):
                entries.append({
                    "CidrBlock": "0.0.0.0/0",
                    "Egress": egress,
                    "Protocol": "-1",
                    "RuleAction": "deny",
                    "RuleNumber": 32767,
                })
        entries.sort(key=lambda e: (not e["Egress"], e["RuleNumber"]))

    # ------------------------------------------------------ elastic IPs (values)
    addresses = {a["AllocationId"]: a for a in d["describe-addresses"]["Addresses"]}
    ip_map = {}
    for i, name in enumerate(EIP_ORDER):
        alloc = ids["eips"][name]
        if alloc not in addresses:
            fail(f"EIP {name} ({alloc}) missing from describe-addresses")
        ip_map[addresses[alloc]["PublicIp"]] = EIP_BASE + str(EIP_FIRST + i)

    nat = d["describe-nat-gateways"]["NatGateways"]
    if len(nat) != 1:
        fail(f"expected one NAT gateway, got {len(nat)}")
    nat = nat[0]
    nat_addr = nat["NatGatewayAddresses"][0]
    nat_eni_id = nat_addr["NetworkInterfaceId"]
    ip_map[nat_addr["PrivateIp"]] = NAT_PRIVATE_IP

    for call in EC2_CALLS:
        d[call] = walk_strings(d[call], lambda s: ip_map.get(s, s))
    nat = d["describe-nat-gateways"]["NatGateways"][0]
    nat_addr = nat["NatGatewayAddresses"][0]

    # --------------------------------------------------------------- NAT gateway
    nat_addr.setdefault("IsPrimary", True)
    nat_addr.setdefault("Status", "succeeded")
    nat.setdefault("ConnectivityType", "public")

    # --------------------------------------------------------------- addresses
    for a in d["describe-addresses"]["Addresses"]:
        if a.get("InstanceId") == "":
            del a["InstanceId"]  # AWS omits it for addresses not on an instance
        a.setdefault("PublicIpv4Pool", "amazon")
        a.setdefault("NetworkBorderGroup", REGION)

    # ------------------------------------------------------ network interfaces
    enis = d["describe-network-interfaces"]["NetworkInterfaces"]
    eni_by_id = {e["NetworkInterfaceId"]: e for e in enis}
    if nat_eni_id not in eni_by_id:
        fail(f"NAT ENI {nat_eni_id} missing from describe-network-interfaces")

    nat_eni = eni_by_id[nat_eni_id]
    nat_eni.update({
        "Description": f"Interface for NAT Gateway {nat['NatGatewayId']}",
        "Groups": [],
        "InterfaceType": "nat_gateway",
        "RequesterId": NAT_ENI_REQUESTER_ID,
        "RequesterManaged": True,
        "SourceDestCheck": False,
        "Status": "in-use",
        "Attachment": {
            "AttachmentId": "ela-attach-" + digest("nat", nat["NatGatewayId"]),
            "DeleteOnTermination": False,
            "DeviceIndex": 1,
            "InstanceOwnerId": "amazon-aws",
            "Status": "attached",
        },
    })

    primary_eni_ids = set()
    for r in d["describe-instances"]["Reservations"]:
        for inst in r["Instances"]:
            for ni in inst["NetworkInterfaces"]:
                if ni["Attachment"]["DeviceIndex"] == 0:
                    primary_eni_ids.add(ni["NetworkInterfaceId"])

    def fix_eni(ni):
        """Fixes shared by describe-network-interfaces and describe-instances."""
        if ni["NetworkInterfaceId"] in primary_eni_ids:
            # ENIs that run-instances creates have no description and are
            # deleted with the instance.
            ni["Description"] = ""
            ni["Attachment"]["DeleteOnTermination"] = True
        if ni.get("Association") == {}:
            del ni["Association"]
        ni["PrivateDnsName"] = private_dns(ni["PrivateIpAddress"])
        for p in ni.get("PrivateIpAddresses", []):
            p["PrivateDnsName"] = private_dns(p["PrivateIpAddress"])
            if p.get("Primary") and "Association" in ni:
                p["Association"] = copy.deepcopy(ni["Association"])

    for ni in enis:
        fix_eni(ni)

    # An ALB has one AWS-managed ENI in each of its subnets; moto creates none.
    subnets_by_id = {s["SubnetId"]: s for s in d["describe-subnets"]["Subnets"]}
    lbs = d["describe-load-balancers"]["LoadBalancers"]
    for lb in lbs:
        arn = lb["LoadBalancerArn"]
        lb_id = "/".join(arn.split(":loadbalancer/")[1].split("/"))  # app/NAME/HEX
        for az in lb["AvailabilityZones"]:
            sid = az["SubnetId"]
            ip = ALB_ENI_IPS[subnet_name[sid]]
            h = digest(arn, sid, n=40)
            eni = {
                "Attachment": {
                    "AttachTime": FIXED_TIME,
                    "AttachmentId": "ela-attach-" + h[:17],
                    "DeleteOnTermination": False,
                    "DeviceIndex": 1,
                    "InstanceOwnerId": "amazon-elb",
                    "Status": "attached",
                },
                "AvailabilityZone": az["ZoneName"],
                "Description": f"ELB {lb_id}",
                "Groups": [{"GroupId": g, "GroupName": sg_name.get(g, g)} for g in lb["SecurityGroups"]],
                "InterfaceType": "interface",
                "Ipv6Addresses": [],
                "MacAddress": "0e:" + ":".join(h[17 + 2 * i: 19 + 2 * i] for i in range(5)),
                "NetworkInterfaceId": "eni-" + h[22:39],
                "OwnerId": account,
                "PrivateDnsName": private_dns(ip),
                "PrivateIpAddress": ip,
                "PrivateIpAddresses": [
                    {"Primary": True, "PrivateDnsName": private_dns(ip), "PrivateIpAddress": ip}
                ],
                "RequesterId": "amazon-elb",
                "RequesterManaged": True,
                "SourceDestCheck": True,
                "Status": "in-use",
                "SubnetId": sid,
                "TagSet": [],
                "VpcId": lb["VpcId"],
            }
            enis.append(eni)
            subnets_by_id[sid]["AvailableIpAddressCount"] -= 1

    # ------------------------------------------------------------- instances
    for r in d["describe-instances"]["Reservations"]:
        for inst in r["Instances"]:
            for ni in inst["NetworkInterfaces"]:
                fix_eni(ni)
            if inst.get("Platform") == "Linux/UNIX":
                del inst["Platform"]  # AWS sets Platform only for "windows"
            inst.setdefault("PlatformDetails", "Linux/UNIX")
            inst.setdefault("UsageOperation", "RunInstances")
            # t3 is a Nitro (ENA) type, not SR-IOV "simple".
            inst.pop("SriovNetSupport", None)
            inst.setdefault("EnaSupport", True)
            inst.setdefault("CpuOptions", {"CoreCount": 1, "ThreadsPerCore": 2})
            if inst.get("HibernationOptions") == {}:
                inst["HibernationOptions"] = {"Configured": False}
            if inst.get("StateReason") == {"Code": "", "Message": ""}:
                del inst["StateReason"]  # running instances have no StateReason
            for bdm in inst.get("BlockDeviceMappings", []):
                if bdm["DeviceName"] == "/dev/sda1" and inst.get("RootDeviceName") == "/dev/xvda":
                    bdm["DeviceName"] = "/dev/xvda"
            inst["ClientToken"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "plumb-fixture:" + inst["InstanceId"]))
            inst["PrivateDnsName"] = private_dns(inst["PrivateIpAddress"])
            inst["PublicDnsName"] = public_dns(inst["PublicIpAddress"]) if inst.get("PublicIpAddress") else ""

    # Public DNS names everywhere follow the (rewritten) public address.
    def fix_public_dns(node):
        if "PublicIp" in node and "PublicDnsName" in node:
            node["PublicDnsName"] = public_dns(node["PublicIp"])
    for call in ("describe-network-interfaces", "describe-instances"):
        walk_dicts(d[call], fix_public_dns)

    # --------------------------------------------------------- VPC endpoints
    for ep in d["describe-vpc-endpoints"]["VpcEndpoints"]:
        if ep["VpcEndpointType"] == "Gateway":
            ep["PrivateDnsEnabled"] = False  # gateway endpoints have no private DNS
        ep.setdefault("RequesterManaged", False)
        if ep.get("PolicyDocument"):
            ep["PolicyDocument"] = json.dumps(json.loads(ep["PolicyDocument"]), separators=(",", ":"))

    # ---------------------------------------------------------- prefix lists
    pl_map = {}
    for pl in d["describe-prefix-lists"]["PrefixLists"]:
        known = PREFIX_LISTS.get(pl["PrefixListName"])
        real_id, cidrs = known if known else (None, None)
        new_id = real_id or ("pl-" + pl["PrefixListId"][3:11])
        pl_map[pl["PrefixListId"]] = new_id
        if not pl.get("Cidrs") and cidrs:
            pl["Cidrs"] = list(cidrs)
        pl.setdefault("Cidrs", [])
    ordered = []
    for pl in d["describe-prefix-lists"]["PrefixLists"]:  # AWS's key order
        ordered.append({"Cidrs": pl["Cidrs"], "PrefixListId": pl["PrefixListId"],
                        "PrefixListName": pl["PrefixListName"]})
    d["describe-prefix-lists"]["PrefixLists"] = ordered
    for call in EC2_CALLS:
        d[call] = walk_strings(d[call], lambda s: pl_map.get(s, s))

    # ---------------------------------------------------------------- ELBv2
    for lb in d["describe-load-balancers"]["LoadBalancers"]:
        prefix = "internal-" if lb["Scheme"] == "internal" else ""
        number = int(digest(lb["LoadBalancerArn"], n=12), 16) % 10**10
        lb["DNSName"] = f"{prefix}{lb['LoadBalancerName']}-{number:010d}.{REGION}.elb.amazonaws.com"
        lb["CanonicalHostedZoneId"] = ALB_HOSTED_ZONE_ID
        for az in lb["AvailabilityZones"]:
            az.setdefault("LoadBalancerAddresses", [])

    for lst in d["describe-listeners"]["Listeners"]:
        if lst["Protocol"] in ("HTTP", "TCP", "UDP", "TCP_UDP"):
            lst.pop("SslPolicy", None)  # only HTTPS/TLS listeners have one
            if not lst.get("AlpnPolicy"):
                lst.pop("AlpnPolicy", None)
        for action in lst["DefaultActions"]:
            if action["Type"] == "forward" and "TargetGroupArn" in action and "ForwardConfig" not in action:
                action["ForwardConfig"] = {
                    "TargetGroups": [{"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}],
                    "TargetGroupStickinessConfig": {"Enabled": False},
                }

    descriptions = []
    for item in health:
        for desc in item["Response"]["TargetHealthDescriptions"]:
            desc.setdefault("AdministrativeOverride", {
                "State": "no_override",
                "Reason": "AdministrativeOverride.NoOverride",
                "Description": "No override is currently active on target",
            })
            desc["TargetGroupArn"] = item["TargetGroupArn"]  # Plumb's addition, see README
            descriptions.append(desc)
    d["describe-target-health"] = {"TargetHealthDescriptions": descriptions}

    # ------------------------------------------------------ timestamps, checks
    def fix_time(s):
        return FIXED_TIME if TIMESTAMP.match(s) else s
    for call in d:
        d[call] = walk_strings(d[call], fix_time)

    text = {call: json.dumps(doc) for call, doc in d.items()}
    for call, t in text.items():
        for bad in ["172.31.", "127."] + list(ip_map) + list(pl_map):
            if bad in t:
                fail(f"{call}: still contains {bad!r}")
        if "Linux/UNIX\", \"Platform" in t:
            fail(f"{call}: Platform left")
    for call in EC2_CALLS:
        if call in ("describe-addresses", "describe-prefix-lists"):
            continue
        def check_vpc(node, call=call):
            if "VpcId" in node and node["VpcId"] != vpc_id:
                fail(f"{call}: foreign VpcId {node['VpcId']}")
        walk_dicts(d[call], check_vpc)

    os.makedirs(out_dir, exist_ok=True)
    for call, doc in d.items():
        with open(os.path.join(out_dir, call + ".json"), "w") as f:
            json.dump(doc, f, indent=4, ensure_ascii=False)
            f.write("\n")


if __name__ == "__main__":
    main()
