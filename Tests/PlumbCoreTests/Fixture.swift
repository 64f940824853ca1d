import PlumbCore
import Testing

/// A small VPC the rule tests start from, and helpers to change it.
///
/// - vpc-t 10.0.0.0/16 with igw-t
/// - subnet-pub 10.0.0.0/24 (zone a): rtb-pub, 0.0.0.0/0 -> igw-t; instance `pub` 10.0.0.10 with EIP 203.0.113.10
/// - subnet-priv 10.0.1.0/24 (zone a): main table rtb-priv, 0.0.0.0/0 -> nat-gw; instances `priv` 10.0.1.10, `priv-b` 10.0.1.11
/// - subnet-far 10.0.2.0/24 (zone b): main table; instance `far` 10.0.2.10
/// - nat-gw: NAT gateway in subnet-pub, 10.0.0.5, EIP 203.0.113.5
/// - sg-open on every instance: all from 10.0.0.0/16, tcp 22 from anywhere; default egress
/// - no NACL declared: the implied default allows everything
enum Fixture {
    static func cidr(_ text: String) -> CIDR { CIDR(text)! }
    static func ip(_ text: String) -> IPv4Address { IPv4Address(text)! }

    static func eni(_ id: String, _ subnet: String, _ address: String, groups: [String] = ["sg-open"], elasticIp: String? = nil, device: Int? = nil)
        -> NetworkInterface
    {
        NetworkInterface(id: id, subnet: subnet, privateIp: ip(address), elasticIp: elasticIp.map(ip), securityGroups: groups, deviceIndex: device)
    }

    static func base() -> Topology {
        Topology(
            name: "fixture",
            vpc: VPC(id: "vpc-t", cidrBlocks: [cidr("10.0.0.0/16")]),
            internetGateway: InternetGateway(id: "igw-t"),
            subnets: [
                Subnet(id: "subnet-pub", cidr: cidr("10.0.0.0/24"), zone: "a", routeTable: "rtb-pub"),
                Subnet(id: "subnet-priv", cidr: cidr("10.0.1.0/24"), zone: "a"),
                Subnet(id: "subnet-far", cidr: cidr("10.0.2.0/24"), zone: "b"),
            ],
            routeTables: [
                RouteTable(id: "rtb-pub", routes: [Route(destination: cidr("0.0.0.0/0"), target: "igw-t")]),
                RouteTable(id: "rtb-priv", main: true, routes: [Route(destination: cidr("0.0.0.0/0"), target: "nat-gw")]),
            ],
            securityGroups: [
                SecurityGroup(
                    id: "sg-open",
                    ingress: [
                        SecurityGroupRule(protocol: .all, cidr: cidr("10.0.0.0/16")),
                        SecurityGroupRule(protocol: .tcp, ports: PortRange(22), cidr: .any),
                    ])
            ],
            instances: [
                Instance(id: "i-pub", name: "pub", interfaces: [eni("eni-pub", "subnet-pub", "10.0.0.10", elasticIp: "203.0.113.10")]),
                Instance(id: "i-priv", name: "priv", interfaces: [eni("eni-priv", "subnet-priv", "10.0.1.10")]),
                Instance(id: "i-priv-b", name: "priv-b", interfaces: [eni("eni-priv-b", "subnet-priv", "10.0.1.11")]),
                Instance(id: "i-far", name: "far", interfaces: [eni("eni-far", "subnet-far", "10.0.2.10")]),
            ],
            nats: [NAT(id: "nat-gw", kind: .gateway, subnet: "subnet-pub", privateIp: ip("10.0.0.5"), elasticIp: ip("203.0.113.5"))]
        )
    }
}

extension Topology {
    /// Changes the instance with this name.
    mutating func instance(_ name: String, _ change: (inout Instance) -> Void) {
        let index = instances.firstIndex { $0.name == name }!
        change(&instances[index])
    }

    /// Sets the security groups of an instance's primary ENI, adding the groups given.
    mutating func groups(of name: String, _ groups: [SecurityGroup]) {
        for group in groups {
            securityGroups.removeAll { $0.id == group.id }
            securityGroups.append(group)
        }
        instance(name) { $0.interfaces[0].securityGroups = groups.map(\.id) }
    }

    /// Adds a NACL for a subnet.
    mutating func acl(_ id: String, subnet: String, ingress: [NetworkACLRule], egress: [NetworkACLRule]) {
        networkAcls.append(NetworkACL(id: id, subnets: [subnet], ingress: ingress, egress: egress))
    }

    func explain(_ from: String, _ to: String, _ port: Int, _ proto: IPProtocol = .tcp) throws -> Explanation {
        try Network(self).explain(from: from, to: to, port: port, protocol: proto)
    }

    func diagnostics() -> [Diagnostic] { Validator.validate(self, sourceMap: SourceMap(file: "model.yaml")) }
}

/// A NACL rule, briefly.
func rule(_ number: Int, _ proto: IPProtocol, _ ports: PortRange?, _ cidr: String, _ action: RuleAction) -> NetworkACLRule {
    NetworkACLRule(rule: number, protocol: proto, ports: ports, cidr: CIDR(cidr)!, action: action)
}

/// Allow everything both ways, as a NACL rule list.
let allowAll = [rule(100, .all, nil, "0.0.0.0/0", .allow)]

extension Explanation {
    var code: String? { blockedBy?.code }
    var blockedComponent: String? { blockedBy?.component }
}
