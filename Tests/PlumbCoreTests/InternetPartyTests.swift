import PlumbCore
import PropertyBased
import Testing

/// `internet` as a party: the classes of internet addresses the model tells apart, their verdicts, and intents.
@Suite("The internet as a party")
struct InternetPartyTests {
    /// `pub` (Elastic IP 203.0.113.10) is a bastion whose group admits ssh from the office range only.
    static func officeBastion() -> Topology {
        var model = Fixture.base()
        model.groups(
            of: "pub",
            [
                SecurityGroup(
                    id: "sg-bastion", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(22), cidr: Fixture.cidr("198.51.100.0/24"))])
            ]
        )
        return model
    }

    static func verdict(_ explanation: Explanation, _ description: String) -> InternetClassVerdict? {
        explanation.internetClasses?.first { $0.description == description }
    }

    @Test("an office range allowed by the bastion's group is no exposure to the internet, and is reported as its own class")
    func officeRange() throws {
        let explanation = try InternetPartyTests.officeBastion().explain("internet", "pub", 22)
        #expect(explanation.verdict == .blocked)
        #expect(explanation.blockedComponent == "sg-bastion")
        // The arbitrary address is outside every block the model names.
        #expect(!explanation.source.contains("198.51.100."))
        let office = try #require(InternetPartyTests.verdict(explanation, "198.51.100.0/24"))
        #expect(office.verdict == .allowed)
        #expect(office.allowedBy == ["sg-bastion ingress[0]"])
        #expect(office.cidrs == [Fixture.cidr("198.51.100.0/24")])
        let rest = try #require(InternetPartyTests.verdict(explanation, "the rest of the internet"))
        #expect(rest.arbitrary && rest.verdict == .blocked && rest.cidrs.isEmpty)
        #expect(
            explanation.internetSummary == "allowed from 198.51.100.0/24 (sg-bastion ingress[0]) only; blocked from the rest of the internet")
    }

    @Test("an explicit address means that address alone, with no classes")
    func explicitAddress() throws {
        let model = InternetPartyTests.officeBastion()
        let inside = try model.explain("198.51.100.7", "pub", 22)
        #expect(inside.verdict == .allowed)
        #expect(inside.source == "198.51.100.7")
        #expect(inside.internetClasses == nil)
        #expect(try model.explain("203.0.113.99", "pub", 22).verdict == .blocked)
    }

    @Test("a NACL deny for one range blocks that class only")
    func aclDenyForOneRange() throws {
        var model = Fixture.base()
        model.acl(
            "acl-pub", subnet: "subnet-pub", ingress: [rule(90, .tcp, PortRange(22), "192.0.2.0/24", .deny)] + allowAll, egress: allowAll)
        let explanation = try model.explain("internet", "pub", 22)
        #expect(explanation.verdict == .allowed)
        let denied = try #require(InternetPartyTests.verdict(explanation, "192.0.2.0/24"))
        #expect(denied.verdict == .blocked)
        #expect(denied.blockedBy?.component == "acl-pub")
        #expect(denied.blockedBy?.rule == "rule 90")
        #expect(
            explanation.internetSummary == "allowed from the internet, except from 192.0.2.0/24 (blocked by acl-pub rule 90), where it is blocked")
        // The allow intent is about the internet at large; the deny rule for one range is on purpose.
        model.intents = [Intent(name: "ssh from the internet", from: ["internet"], to: ["pub"], port: 22, expect: .allow)]
        #expect(Network(model).violations(of: model.intents[0]).isEmpty)
    }

    @Test("routes to a peering and to a prefix list split the internet towards them")
    func routesSplitClasses() throws {
        var model = ServiceRuleTests.withGatewayEndpoint()
        // A route wider than the peer's block: the rest of it is internet space the peering does not carry.
        model.peerings = [Peering(id: "pcx-1", peerCidrs: [Fixture.cidr("198.18.0.0/24")])]
        model.routeTables[1].routes.append(Route(destination: Fixture.cidr("198.18.0.0/16"), target: "pcx-1"))
        let network = Network(model)
        let explanation = try network.explain(from: "priv", to: "internet", port: 443, protocol: .tcp)
        #expect(explanation.verdict == .allowed)
        #expect(explanation.hops.contains { $0.component == "nat-gw" })
        let peered = try #require(InternetPartyTests.verdict(explanation, "198.18.0.0/16"))
        #expect(peered.verdict == .blocked)
        #expect(peered.blockedBy?.code == ExplanationCode.peeringAddress)
        let s3 = try #require(InternetPartyTests.verdict(explanation, "52.216.0.0/15"))
        #expect(s3.verdict == .allowed)
        #expect(s3.allowedBy == ["rtb-priv pl-s3 -> vpce-s3"])
        // The peer's own block is not the internet.
        #expect(!network.internetClasses.contains { $0.contains(Fixture.ip("198.18.0.9")) })
        #expect(network.internetClasses.contains { $0.contains(Fixture.ip("198.18.1.9")) })
    }

    @Test("a deny intent is broken by one exposed range, names it, and an address in except excepts its class")
    func denyIntentBrokenByOneRange() throws {
        var model = InternetPartyTests.officeBastion()
        let intent = Intent(name: "no ssh from the internet", from: ["internet"], to: ["pub"], port: 22, expect: .deny)
        let violations = Network(model).violations(of: intent)
        #expect(violations.count == 1)
        #expect(violations.first?.explanation.source.hasPrefix("internet 198.51.100.0/24") == true)
        #expect(violations.first?.explanation.verdict == .allowed)
        model.intents = [intent]
        #expect(model.diagnostics().contains { $0.code == "intent-violated" && $0.message.contains("198.51.100.0/24") })
        var excepted = intent
        excepted.except = ["198.51.100.7"]
        #expect(Network(model).violations(of: excepted).isEmpty)
        // Without the office rule nothing on the internet reaches the bastion.
        #expect(Network(Fixture.base()).violations(of: Intent(name: "x", from: ["internet"], to: ["priv"], port: 22, expect: .deny)).isEmpty)
    }

    @Test("internet resolves to one party, outside every named block, and the VPC's own addresses are not the internet")
    func arbitraryAddress() throws {
        let network = Network(InternetPartyTests.officeBastion())
        #expect(network.select("internet")?.count == 1)
        let arbitrary = try #require(network.arbitraryInternetClass)
        #expect(arbitrary.isRest)
        guard case .external(let address, .internet, "internet") = network.internetParty else {
            Issue.record("internet is not an external party")
            return
        }
        #expect(!Fixture.cidr("198.51.100.0/24").contains(address))
        #expect(arbitrary.contains(address))
        for excluded in ["203.0.113.10", "203.0.113.5", "10.0.0.10", "192.168.1.1"] {
            #expect(!network.internetClasses.contains { $0.contains(Fixture.ip(excluded)) }, "\(excluded) is not the internet")
        }
        // A model that names nothing keeps the address that stood for the internet before classes.
        #expect(Network(Fixture.base()).internetParty == .external(Network.internetAddress, .internet, label: "internet"))
    }

    @Test("a class inside a wider named block reads as the block outside the narrower ones")
    func descriptions() {
        let classes = InternetClass.partition(
            named: [Fixture.cidr("198.51.0.0/16"), Fixture.cidr("198.51.100.0/24"), Fixture.cidr("0.0.0.0/0")], excluded: [])
        #expect(Set(classes.map(\.description)) == ["the rest of the internet", "198.51.0.0/16 outside 198.51.100.0/24", "198.51.100.0/24"])
        let inner = classes.first { $0.description == "198.51.100.0/24" }
        #expect(inner?.cidrs == [Fixture.cidr("198.51.100.0/24"), Fixture.cidr("198.51.0.0/16")])
        #expect(inner?.representative == Fixture.ip("198.51.100.1"))
    }

    @Test("property: classes are disjoint, cover exactly the addresses not excluded, and each is one set of named blocks")
    func partitionProperties() async {
        await propertyCheck(
            count: 200, input: Gen.uint32().array(of: 0...12), Gen.int(in: 0...32).array(of: 12), Gen.uint32().array(of: 0...4),
            Gen.uint32().array(of: 8)
        ) { addresses, lengths, excludedStarts, probes in
            // Cluster blocks so that they nest and overlap, as real rules do.
            let named = addresses.enumerated().map { index, raw in
                CIDR(IPv4Address(index % 2 == 0 ? raw : (addresses[0] & 0xFF00_0000) | (raw & 0x00FF_FFFF)), prefixLength: lengths[index])
            }
            let excluded = excludedStarts.map { start in start...UInt32(min(UInt64(start) + UInt64(start % 65_536), UInt64(UInt32.max))) }
            let classes = InternetClass.partition(named: named, excluded: excluded)

            // Coverage: the class sizes plus the excluded union add up to the whole address space.
            var union: UInt64 = 0
            var reach: UInt64 = 0
            for range in excluded.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                let low = max(UInt64(range.lowerBound), reach)
                let high = UInt64(range.upperBound) + 1
                if high > low { union += high - low }
                reach = max(reach, high)
            }
            #expect(classes.reduce(0) { $0 + $1.addressCount } + union == 1 << 32)
            #expect(Set(classes.map(\.cidrs)).count == classes.count, "one class per set of named blocks")

            let edges = named.flatMap { [$0.network.value, $0.lastAddress.value, $0.lastAddress.value &+ 1] }
            for probe in probes + edges + excluded.flatMap({ [$0.lowerBound, $0.upperBound &+ 1] }) {
                let address = IPv4Address(probe)
                let holders = classes.filter { $0.contains(address) }
                let isExcluded = excluded.contains { $0.contains(probe) }
                #expect(holders.count == (isExcluded ? 0 : 1), "\(address) is in exactly one class unless excluded")
                if let holder = holders.first {
                    let expected = Set(named.filter { $0.prefixLength > 0 && $0.contains(address) })
                    #expect(Set(holder.cidrs) == expected, "\(address) is in exactly the blocks of its class")
                }
            }
            for internetClass in classes {
                #expect(internetClass.contains(internetClass.representative))
                #expect(internetClass.cidrs.map(\.prefixLength) == internetClass.cidrs.map(\.prefixLength).sorted(by: >))
                for (a, b) in zip(internetClass.ranges, internetClass.ranges.dropFirst()) { #expect(UInt64(a.upperBound) + 1 < UInt64(b.lowerBound)) }
            }
        }
    }
}
