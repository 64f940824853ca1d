import PlumbCore
import Testing

/// Security group semantics, one test per numbered rule of the reference (SG-1…SG-11) that concerns reachability.
@Suite("Security groups")
struct SecurityGroupRuleTests {
    @Test("SG-1 allow-only: a group without inbound rules admits nothing; an absent egress list allows all out")
    func sg1AllowOnly() throws {
        var model = Fixture.base()
        model.groups(of: "priv", [SecurityGroup(id: "sg-closed")])
        let inbound = try model.explain("pub", "priv", 22)
        #expect(inbound.verdict == .blocked)
        #expect(inbound.code == "ENI_SG_RULES_MISMATCH")
        #expect(inbound.blockedComponent == "sg-closed")
        #expect(try model.explain("priv", "pub", 22).verdict == .allowed)
    }

    @Test("SG-1 allow-only: an explicit empty egress list allows nothing out")
    func sg1NoOutboundRules() throws {
        var model = Fixture.base()
        model.groups(of: "priv", [SecurityGroup(id: "sg-noout", ingress: [SecurityGroupRule(protocol: .all, cidr: .any)], egress: [])])
        let outbound = try model.explain("priv", "pub", 22)
        #expect(outbound.verdict == .blocked)
        #expect(outbound.blockedComponent == "sg-noout")
        #expect(outbound.hops.count == 1, "the first check, SG egress, stops it")
    }

    @Test("SG-2 union: the rules of every group on the interface add up")
    func sg2Union() throws {
        var model = Fixture.base()
        model.groups(
            of: "priv",
            [
                SecurityGroup(id: "sg-ssh", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(22), cidr: .any)]),
                SecurityGroup(id: "sg-web", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(80), cidr: .any)]),
            ])
        #expect(try model.explain("pub", "priv", 22).verdict == .allowed)
        #expect(try model.explain("pub", "priv", 80).verdict == .allowed)
        #expect(try model.explain("pub", "priv", 443).verdict == .blocked)
    }

    @Test("SG-3 stateful: the reply is never checked against security groups")
    func sg3Stateful() throws {
        var model = Fixture.base()
        model.groups(
            of: "priv", [SecurityGroup(id: "sg-in", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(22), cidr: .any)], egress: [])])
        let explanation = try model.explain("pub", "priv", 22)
        #expect(explanation.verdict == .allowed)
        #expect(!explanation.hops.contains { $0.direction == .return && $0.componentType == "security-group" })
    }

    @Test("SG-4 fields: protocol all ignores ports; tcp does not match udp; ranges are inclusive; icmp ports are types")
    func sg4Fields() throws {
        var model = Fixture.base()
        model.groups(
            of: "priv",
            [
                SecurityGroup(
                    id: "sg-mixed",
                    ingress: [
                        SecurityGroupRule(protocol: .udp, ports: PortRange(53), cidr: .any),
                        SecurityGroupRule(protocol: .tcp, ports: PortRange(1000, 2000), cidr: .any),
                        SecurityGroupRule(protocol: .icmp, ports: PortRange(8), cidr: .any),
                        SecurityGroupRule(protocol: .number(50), cidr: .any),
                    ])
            ])
        #expect(try model.explain("pub", "priv", 53, .udp).verdict == .allowed)
        #expect(try model.explain("pub", "priv", 53, .tcp).verdict == .blocked)
        #expect(try model.explain("pub", "priv", 1000).verdict == .allowed)
        #expect(try model.explain("pub", "priv", 2000).verdict == .allowed)
        #expect(try model.explain("pub", "priv", 999).verdict == .blocked)
        #expect(try model.explain("pub", "priv", 2001).verdict == .blocked)
        #expect(try model.explain("pub", "priv", 8, .icmp).verdict == .allowed)
        #expect(try model.explain("pub", "priv", 13, .icmp).verdict == .blocked)
        #expect(try model.explain("pub", "priv", 0, .number(50)).verdict == .allowed, "a protocol other than tcp/udp/icmp has no ports")

        model.groups(of: "priv", [SecurityGroup(id: "sg-all", ingress: [SecurityGroupRule(protocol: .all, ports: PortRange(22), cidr: .any)])])
        #expect(try model.explain("pub", "priv", 5432).verdict == .allowed, "-1 allows every port whatever the range says")
    }

    @Test("SG-5 references: a rule naming a group matches the private addresses of its members")
    func sg5References() throws {
        var model = Fixture.base()
        model.groups(
            of: "priv", [SecurityGroup(id: "sg-db", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(5432), securityGroup: "sg-app")])])
        model.groups(of: "pub", [SecurityGroup(id: "sg-app")])
        let allowed = try model.explain("pub", "priv", 5432)
        #expect(allowed.verdict == .allowed)
        #expect(allowed.hops.contains { $0.component == "sg-db" && $0.rule == "ingress[0]" })
        #expect(try model.explain("far", "priv", 5432).code == "ENI_SG_RULES_MISMATCH")
    }

    @Test("SG-6 references do not survive translation: hairpin through the internet gateway arrives from the public IP")
    func sg6NoReferenceAcrossTranslation() throws {
        var model = Fixture.base()
        model.instances.append(
            Instance(id: "i-pub2", name: "pub2", interfaces: [Fixture.eni("eni-pub2", "subnet-pub", "10.0.0.20", elasticIp: "203.0.113.20")]))
        model.groups(
            of: "pub2", [SecurityGroup(id: "sg-db", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(5432), securityGroup: "sg-app")])])
        model.groups(of: "pub", [SecurityGroup(id: "sg-app")])
        #expect(try model.explain("pub", "pub2", 5432).verdict == .allowed)
        let hairpin = try model.explain("pub", "203.0.113.20", 5432)
        #expect(hairpin.verdict == .blocked)
        #expect(hairpin.blockedComponent == "sg-db")
        #expect(hairpin.blockedBy?.detail.contains("SG-6") == true)

        model.groups(
            of: "pub2",
            [SecurityGroup(id: "sg-db", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(5432), cidr: Fixture.cidr("203.0.113.10/32"))])])
        #expect(try model.explain("pub", "203.0.113.20", 5432).verdict == .allowed, "allowing the caller's Elastic IP works")
    }

    @Test("SG-7 default group: members reach each other through the self-reference, others do not")
    func sg7DefaultSelfReference() throws {
        var model = Fixture.base()
        let selfReferencing = SecurityGroup(id: "sg-default", ingress: [SecurityGroupRule(protocol: .all, securityGroup: "sg-default")])
        model.groups(of: "priv", [selfReferencing])
        model.groups(of: "priv-b", [selfReferencing])
        model.groups(of: "far", [SecurityGroup(id: "sg-other")])
        #expect(try model.explain("priv-b", "priv", 6379).verdict == .allowed)
        #expect(try model.explain("far", "priv", 6379).verdict == .blocked)
    }

    @Test("SG-8 stale references: a rule naming a group that does not exist is an error")
    func sg8StaleReference() {
        var model = Fixture.base()
        model.groups(
            of: "priv", [SecurityGroup(id: "sg-x", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(22), securityGroup: "sg-gone")])])
        let problems = model.diagnostics()
        #expect(problems.contains { $0.severity == .error && $0.code == "dangling-reference" && $0.message.contains("sg-gone") })
    }

    @Test("SG-10 the VPC resolver and the metadata service are never filtered")
    func sg10NeverFiltered() throws {
        var model = Fixture.base()
        model.groups(of: "priv", [SecurityGroup(id: "sg-mute", egress: [])])
        model.acl("acl-deny", subnet: "subnet-priv", ingress: [], egress: [])
        #expect(try model.explain("priv", "10.0.0.2", 53, .udp).verdict == .allowed)
        #expect(try model.explain("priv", "169.254.169.254", 80).verdict == .allowed)
        #expect(try model.explain("priv", "169.254.169.253", 53, .udp).verdict == .allowed)
        #expect(try model.explain("priv", "pub", 22).verdict == .blocked)
    }

    @Test("SG-11 groups belong to interfaces: each ENI of an instance is checked against its own groups")
    func sg11PerInterface() throws {
        var model = Fixture.base()
        model.securityGroups.append(SecurityGroup(id: "sg-closed"))
        model.instance("priv") { $0.interfaces.append(Fixture.eni("eni-priv-2", "subnet-priv", "10.0.1.20", groups: ["sg-closed"], device: 1)) }
        #expect(try model.explain("pub", "10.0.1.10", 22).verdict == .allowed)
        let second = try model.explain("pub", "10.0.1.20", 22)
        #expect(second.verdict == .blocked)
        #expect(second.blockedComponent == "sg-closed")
    }
}
