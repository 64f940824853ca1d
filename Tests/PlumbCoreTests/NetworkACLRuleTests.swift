import PlumbCore
import Testing

/// Network ACL semantics (NACL-1…NACL-11).
@Suite("Network ACLs")
struct NetworkACLRuleTests {
    @Test("NACL-1 one per subnet: without an association the VPC's default NACL applies")
    func nacl1DefaultAssociation() throws {
        let explanation = try Fixture.base().explain("pub", "priv", 22)
        #expect(explanation.verdict == .allowed)
        #expect(explanation.hops.contains { $0.component == "vpc-t-default-acl" && $0.check == "nacl-ingress" })
    }

    @Test("NACL-1 one per subnet: two NACLs on one subnet is an error")
    func nacl1TwoNACLs() {
        var model = Fixture.base()
        model.acl("acl-a", subnet: "subnet-priv", ingress: allowAll, egress: allowAll)
        model.acl("acl-b", subnet: "subnet-priv", ingress: allowAll, egress: allowAll)
        #expect(model.diagnostics().contains { $0.code == "multiple-network-acls" && $0.severity == .error })
    }

    @Test("NACL-2 ordered, first match: the lowest number that matches decides, whatever the listing order")
    func nacl2FirstMatch() throws {
        var model = Fixture.base()
        model.acl(
            "acl-priv", subnet: "subnet-priv",
            ingress: [rule(200, .all, nil, "0.0.0.0/0", .allow), rule(100, .tcp, PortRange(22), "0.0.0.0/0", .deny)], egress: allowAll)
        let denied = try model.explain("pub", "priv", 22)
        #expect(denied.verdict == .blocked)
        #expect(denied.code == "SUBNET_ACL_RESTRICTION")
        #expect(denied.blockedBy?.rule == "rule 100")
        #expect(try model.explain("pub", "priv", 80).verdict == .allowed)

        model.networkAcls = []
        model.acl(
            "acl-priv", subnet: "subnet-priv",
            ingress: [rule(100, .all, nil, "0.0.0.0/0", .allow), rule(200, .tcp, PortRange(22), "0.0.0.0/0", .deny)], egress: allowAll)
        #expect(try model.explain("pub", "priv", 22).verdict == .allowed)
    }

    @Test("NACL-3 catch-all deny: traffic no rule matches is denied by *")
    func nacl3CatchAll() throws {
        var model = Fixture.base()
        model.acl("acl-priv", subnet: "subnet-priv", ingress: [rule(100, .tcp, PortRange(80), "0.0.0.0/0", .allow)], egress: allowAll)
        let explanation = try model.explain("pub", "priv", 22)
        #expect(explanation.blockedBy?.rule == "*")
        #expect(explanation.blockedComponent == "acl-priv")
    }

    @Test("NACL-4 defaults: a custom NACL without rules denies everything; a declared default NACL serves unassociated subnets")
    func nacl4Defaults() throws {
        var model = Fixture.base()
        model.acl("acl-empty", subnet: "subnet-priv", ingress: [], egress: [])
        #expect(try model.explain("pub", "priv", 22).verdict == .blocked)

        var withDefault = Fixture.base()
        withDefault.networkAcls = [
            NetworkACL(id: "acl-default", default: true, ingress: [rule(100, .tcp, PortRange(80), "0.0.0.0/0", .allow)], egress: allowAll)
        ]
        let explanation = try withDefault.explain("pub", "priv", 22)
        #expect(explanation.blockedComponent == "acl-default")
    }

    @Test("NACL-5 stateless: the reply needs the destination subnet's outbound rules too")
    func nacl5Stateless() throws {
        var model = Fixture.base()
        model.acl("acl-priv", subnet: "subnet-priv", ingress: allowAll, egress: [rule(100, .tcp, PortRange(22), "0.0.0.0/0", .allow)])
        let explanation = try model.explain("pub", "priv", 22)
        #expect(explanation.verdict == .blocked)
        #expect(explanation.blockedBy?.direction == .return)
        #expect(explanation.code == "SUBNET_ACL_RESTRICTION")
        #expect(explanation.hops.filter { $0.direction == .forward }.allSatisfy { $0.outcome != .fail })
    }

    @Test("NACL-6 boundary only: traffic within a subnet never meets its NACL")
    func nacl6WithinSubnet() throws {
        var model = Fixture.base()
        model.acl("acl-deny", subnet: "subnet-priv", ingress: [], egress: [])
        let inside = try model.explain("priv-b", "priv", 22)
        #expect(inside.verdict == .allowed)
        #expect(!inside.hops.contains { $0.componentType == "network-acl" })
        #expect(try model.explain("pub", "priv", 22).verdict == .blocked)
    }

    @Test("NACL-8 protocol: all (-1) matches every port; a tcp rule does not match udp")
    func nacl8Protocol() throws {
        var model = Fixture.base()
        model.acl(
            "acl-priv", subnet: "subnet-priv", ingress: [NetworkACLRule(rule: 100, protocol: .all, ports: PortRange(80), cidr: .any, action: .allow)],
            egress: allowAll)
        #expect(try model.explain("pub", "priv", 22).verdict == .allowed, "ports are ignored for -1")
        model.networkAcls = []
        model.acl("acl-priv", subnet: "subnet-priv", ingress: [rule(100, .tcp, nil, "0.0.0.0/0", .allow)], egress: allowAll)
        #expect(try model.explain("pub", "priv", 53, .udp).blockedBy?.rule == "*")
    }

    @Test("NACL-9 canonical CIDRs: host bits are cleared, and the model warns about them")
    func nacl9Canonical() {
        let block = CIDR("100.68.0.18/18")!
        #expect(block.description == "100.68.0.0/18")
        #expect(!block.wasCanonical)
        var model = Fixture.base()
        model.subnets[2].cidr = CIDR("10.0.2.7/24")!
        #expect(model.diagnostics().contains { $0.code == "non-canonical-cidr" && $0.severity == .warning })
    }

    @Test("NACL-10 ephemeral ports: the reply must be allowed on the client's whole ephemeral range")
    func nacl10Ephemeral() throws {
        var model = Fixture.base()
        model.acl("acl-priv", subnet: "subnet-priv", ingress: allowAll, egress: [rule(100, .tcp, PortRange(49152, 65535), "0.0.0.0/0", .allow)])
        let linuxClient = try model.explain("pub", "priv", 22)
        #expect(linuxClient.blockedBy?.direction == .return)
        #expect(linuxClient.blockedBy?.detail.contains("32768-49151") == true)
        model.instance("pub") { $0.ephemeralPorts = PortRange(49152, 65535) }
        #expect(try model.explain("pub", "priv", 22).verdict == .allowed, "a Windows-range client fits")
    }

    @Test("NACL-10 ephemeral ports: replies to a NAT gateway use 1024-65535")
    func nacl10NATGatewayRange() throws {
        var model = Fixture.base()
        model.acl(
            "acl-pub", subnet: "subnet-pub",
            ingress: [rule(100, .all, nil, "10.0.0.0/16", .allow), rule(110, .tcp, PortRange(32768, 65535), "0.0.0.0/0", .allow)],
            egress: allowAll)
        let explanation = try model.explain("priv", "internet", 443)
        #expect(explanation.verdict == .blocked)
        #expect(explanation.blockedBy?.direction == .return)
        #expect(explanation.blockedBy?.detail.contains("1024-32767") == true)
    }

    @Test("NACL-11 ICMP: a rule for type 3 admits path-MTU messages; echo needs its own rule")
    func nacl11ICMP() throws {
        var model = Fixture.base()
        model.acl("acl-priv", subnet: "subnet-priv", ingress: [rule(100, .icmp, PortRange(3), "0.0.0.0/0", .allow)], egress: allowAll)
        #expect(try model.explain("pub", "priv", 3, .icmp).verdict == .allowed)
        #expect(try model.explain("pub", "priv", 8, .icmp).blockedBy?.rule == "*")
    }

    @Test("NACL-2 rule order, property: the range verdict equals a per-port first match")
    func nacl2PropertyFirstMatch() {
        var generator = SplitMix64(seed: 0x504C_554D)
        for _ in 0..<300 {
            var rules: [NetworkACLRule] = []
            var used = Set<Int>()
            for _ in 0..<Int(generator.next() % 6) {
                var number = Int(generator.next() % 50) + 1
                while used.contains(number) { number += 1 }
                used.insert(number)
                let low = Int(generator.next() % 40)
                let high = low + Int(generator.next() % 20)
                let proto: IPProtocol = generator.next() % 4 == 0 ? .all : .tcp
                rules.append(
                    NetworkACLRule(
                        rule: number, protocol: proto, ports: PortRange(low, high), cidr: generator.next() % 3 == 0 ? CIDR("10.9.0.0/16")! : .any,
                        action: generator.next() % 2 == 0 ? .allow : .deny))
            }
            var model = Fixture.base()
            model.acl("acl-x", subnet: "subnet-priv", ingress: rules, egress: allowAll)
            let network = Network(model)
            let index = network.acls.firstIndex { $0.id == "acl-x" }!
            let low = Int(generator.next() % 40)
            let range = PortRange(low, low + Int(generator.next() % 20))
            let remote = IPv4Address(10, 0, 0, 10)
            let verdict = network.evaluateACL(index, ingress: true, remote: remote, protocolNumber: 6, ports: range)
            // Reference: per port, the lowest-numbered matching rule.
            let sorted = rules.sorted { $0.rule < $1.rule }
            var expectAllowed = true
            for port in range.from...range.to {
                let decided = sorted.first {
                    ($0.protocol == .all || $0.protocol == .tcp) && $0.cidr.contains(remote) && ($0.protocol == .all || $0.ports!.contains(port))
                }
                if decided?.action != .allow { expectAllowed = false }
            }
            if case .allowed = verdict {
                #expect(expectAllowed, "rules \(rules) range \(range)")
            } else {
                #expect(!expectAllowed, "rules \(rules) range \(range)")
            }
        }
    }
}
