import PlumbCore
import Testing

/// NAT gateway and NAT instance semantics (NAT-1…NAT-8).
@Suite("NAT")
struct NATRuleTests {
    /// The fixture with the NAT gateway replaced by a NAT instance `natbox` (10.0.0.50, EIP 203.0.113.50).
    static func withNATInstance(sourceDestCheck: Bool = false, natIngress: [SecurityGroupRule]? = nil) -> Topology {
        var model = Fixture.base()
        model.nats = [NAT(id: "nat-box", kind: .instance, instance: "natbox", elasticIp: Fixture.ip("203.0.113.50"))]
        var eni = Fixture.eni("eni-natbox", "subnet-pub", "10.0.0.50", groups: ["sg-nat"], elasticIp: "203.0.113.50")
        eni.sourceDestCheck = sourceDestCheck
        model.instances.append(Instance(id: "i-natbox", name: "natbox", roles: ["nat"], interfaces: [eni]))
        model.securityGroups.append(
            SecurityGroup(
                id: "sg-nat",
                ingress: natIngress ?? [
                    SecurityGroupRule(protocol: .tcp, ports: PortRange(443), cidr: Fixture.cidr("10.0.0.0/16"))
                ]))
        model.routeTables[1].routes = [Route(destination: .any, target: "nat-box")]
        return model
    }

    @Test("NAT-1 a private NAT gateway has no internet egress")
    func nat1PrivateGateway() throws {
        var model = Fixture.base()
        model.nats = [NAT(id: "nat-gw", kind: .gateway, subnet: "subnet-pub", privateIp: Fixture.ip("10.0.0.5"), connectivity: "private")]
        #expect(try model.explain("priv", "internet", 443).code == "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS")
        #expect(try Fixture.base().explain("priv", "internet", 443).verdict == .allowed)
    }

    @Test("NAT-2 source translation: the far end sees the Elastic IP, so only rules for it match")
    func nat2Translation() throws {
        var model = Fixture.base()
        let explanation = try model.explain("priv", "internet", 443)
        #expect(explanation.hops.contains { $0.component == "nat-gw" && $0.check == "translate" && $0.detail.contains("203.0.113.5") })

        model.groups(
            of: "pub",
            [SecurityGroup(id: "sg-pg", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(5432), cidr: Fixture.cidr("10.0.0.0/16"))])])
        #expect(try model.explain("priv", "203.0.113.10", 5432).code == "ENI_SG_RULES_MISMATCH", "the private block no longer matches after NAT")
        model.groups(
            of: "pub",
            [SecurityGroup(id: "sg-pg", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(5432), cidr: Fixture.cidr("203.0.113.5/32"))])])
        #expect(try model.explain("priv", "203.0.113.10", 5432).verdict == .allowed)
    }

    @Test("NAT-3 limits: not for its own subnet, TCP/UDP/ICMP only, and its subnet's NACL applies")
    func nat3Limits() throws {
        var sameSubnet = Fixture.base()
        sameSubnet.routeTables[0].routes.append(Route(destination: Fixture.cidr("198.51.100.0/24"), target: "nat-gw"))
        #expect(try sameSubnet.explain("pub", "198.51.100.7", 443).code == "NGW_SAME_SUBNET")

        #expect(try Fixture.base().explain("priv", "internet", 0, .number(47)).code == "NGW_PROTOCOL_RESTRICTION")
        #expect(try Fixture.base().explain("priv", "internet", 53, .udp).verdict == .allowed)

        var acl = Fixture.base()
        acl.acl("acl-pub", subnet: "subnet-pub", ingress: [rule(100, .tcp, PortRange(22), "0.0.0.0/0", .allow)], egress: allowAll)
        let blocked = try acl.explain("priv", "internet", 443)
        #expect(blocked.blockedComponent == "acl-pub")
        #expect(blocked.blockedBy?.direction == .forward)
    }

    @Test("NAT-7 NAT instance: forwards and translates with source/dest check off, under its own security group")
    func nat7Instance() throws {
        let model = NATRuleTests.withNATInstance()
        let explanation = try model.explain("priv", "internet", 443)
        #expect(explanation.verdict == .allowed)
        #expect(explanation.hops.contains { $0.component == "nat-box" && $0.check == "translate" && $0.detail.contains("203.0.113.50") })
        #expect(explanation.hops.contains { $0.component == "sg-nat" && $0.check == "sg-ingress" })
        #expect(!model.diagnostics().hasErrors)

        #expect(try model.explain("priv", "internet", 80).blockedComponent == "sg-nat", "the NAT's group admits only 443")

        let checked = NATRuleTests.withNATInstance(sourceDestCheck: true)
        #expect(try checked.explain("priv", "internet", 443).code == "ENI_SOURCE_DEST_CHECK_RESTRICTION")
        #expect(checked.diagnostics().contains { $0.code == "nat-source-dest-check" && $0.severity == .warning })
    }
}
