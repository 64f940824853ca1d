import PlumbCore
import Testing

/// Route table semantics (RT-1…RT-10).
@Suite("Route tables")
struct RouteTableRuleTests {
    @Test("RT-1 one per subnet: a subnet without an association uses the main table")
    func rt1MainFallback() throws {
        let explanation = try Fixture.base().explain("priv", "far", 22)
        #expect(explanation.hops.contains { $0.component == "rtb-priv" && $0.check == "route" })
    }

    @Test("RT-1 one per subnet: two tables for one subnet, or none at all, is an error")
    func rt1Associations() {
        var twoTables = Fixture.base()
        twoTables.routeTables[1].subnets = ["subnet-pub"]
        #expect(twoTables.diagnostics().contains { $0.code == "multiple-route-tables" })

        var noMain = Fixture.base()
        noMain.routeTables[1].main = nil
        let problems = noMain.diagnostics().filter { $0.code == "no-route-table" }
        #expect(problems.count == 2, "subnet-priv and subnet-far have no table")

        var twoMains = Fixture.base()
        twoMains.routeTables[0].main = true
        #expect(twoMains.diagnostics().contains { $0.code == "multiple-main" })
    }

    @Test("RT-2 local route: implied for each VPC block; more specific routes only for whole subnets")
    func rt2Local() throws {
        let explanation = try Fixture.base().explain("pub", "priv", 22)
        #expect(explanation.hops.contains { $0.rule == "10.0.0.0/16 -> local" })

        var partial = Fixture.base()
        partial.routeTables[0].routes.append(Route(destination: Fixture.cidr("10.0.1.128/25"), target: "nat-gw"))
        #expect(partial.diagnostics().contains { $0.code == "route-more-specific-than-local" })

        var wholeSubnet = Fixture.base()
        wholeSubnet.routeTables[0].routes.append(Route(destination: Fixture.cidr("10.0.1.0/24"), target: "nat-gw"))
        #expect(!wholeSubnet.diagnostics().contains { $0.code == "route-more-specific-than-local" })
    }

    @Test("RT-3 longest prefix match: the most specific route wins")
    func rt3LongestPrefix() throws {
        var model = Fixture.base()
        model.routeTables[1].routes.append(Route(destination: Fixture.cidr("203.0.113.0/24"), target: "igw-t"))
        let specific = try model.explain("priv", "203.0.113.50", 443)
        #expect(specific.code == "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS", "203.0.113.0/24 -> igw beats 0.0.0.0/0 -> nat")
        #expect(try model.explain("priv", "198.51.100.7", 443).verdict == .allowed)
    }

    @Test("RT-4 ties: a CIDR route beats a prefix-list route of the same length; a more specific prefix list wins")
    func rt4PrefixListTies() throws {
        var model = Fixture.base()
        model.prefixLists = [PrefixList(id: "pl-x", cidrs: [Fixture.cidr("198.51.100.0/24")])]
        model.vpcEndpoints = [VPCEndpoint(id: "vpce-x", type: "gateway", prefixList: "pl-x")]
        model.routeTables[1].routes += [
            Route(destinationPrefixList: "pl-x", target: "vpce-x"), Route(destination: Fixture.cidr("198.51.100.0/24"), target: "igw-t"),
        ]
        #expect(try model.explain("priv", "198.51.100.7", 443).code == "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS")
        model.prefixLists = [PrefixList(id: "pl-x", cidrs: [Fixture.cidr("198.51.100.0/25")])]
        let viaEndpoint = try model.explain("priv", "198.51.100.7", 443)
        #expect(viaEndpoint.verdict == .allowed)
        #expect(viaEndpoint.hops.contains { $0.component == "vpce-x" })
    }

    @Test("RT-5 targets: an instance named as a route target forwards through its primary interface")
    func rt5InstanceTarget() throws {
        var model = NATRuleTests.withNATInstance()
        model.routeTables[1].routes = [Route(destination: .any, target: "natbox")]
        let explanation = try model.explain("priv", "internet", 443)
        #expect(explanation.verdict == .allowed)
        #expect(explanation.hops.contains { $0.rule == "0.0.0.0/0 -> natbox" })
    }

    @Test("RT-6 blackhole: the route drops, and there is no fallback to a shorter prefix")
    func rt6Blackhole() throws {
        var model = Fixture.base()
        model.routeTables[1].routes.append(Route(destination: Fixture.cidr("198.51.100.0/24"), target: "nat-gone", state: .blackhole))
        let dropped = try model.explain("priv", "198.51.100.7", 443)
        #expect(dropped.code == "BAD_STATE_ROUTE")
        #expect(dropped.blockedComponent == "rtb-priv")
        #expect(try model.explain("priv", "192.0.2.7", 443).verdict == .allowed, "other destinations still use 0.0.0.0/0")
        #expect(model.diagnostics().contains { $0.code == "blackhole-route" && $0.severity == .warning })
    }

    @Test("RT-6 blackhole: a route whose target is missing from the model is an error, and the engine drops")
    func rt6DanglingTarget() throws {
        var model = Fixture.base()
        model.routeTables[1].routes = [Route(destination: .any, target: "nat-typo")]
        #expect(model.diagnostics().contains { $0.code == "dangling-reference" && $0.message.contains("nat-typo") })
        #expect(try model.explain("priv", "internet", 443).code == "BAD_STATE_ROUTE")
    }

    @Test("RT-7 reserved ranges: no route into 169.254.168.0/22; its services are always reachable")
    func rt7Reserved() throws {
        var model = Fixture.base()
        model.routeTables[1].routes.append(Route(destination: Fixture.cidr("169.254.169.0/24"), target: "nat-gw"))
        #expect(model.diagnostics().contains { $0.code == "reserved-range" })
        #expect(try Fixture.base().explain("priv", "169.254.169.254", 80).verdict == .allowed)
    }

    @Test("RT-9 public subnet: the internet gateway needs a public IP; a private subnet's public IP does not help")
    func rt9PublicPrivate() throws {
        var model = Fixture.base()
        model.instances.append(Instance(id: "i-noip", name: "noip", interfaces: [Fixture.eni("eni-noip", "subnet-pub", "10.0.0.30")]))
        #expect(try model.explain("noip", "internet", 443).code == "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS")
        #expect(model.diagnostics().contains { $0.code == "public-subnet-no-public-ip" && $0.severity == .warning })
        #expect(try model.explain("pub", "internet", 443).verdict == .allowed)

        model.instance("priv") { $0.interfaces[0].elasticIp = Fixture.ip("203.0.113.40") }
        let inbound = try model.explain("internet", "priv", 22)
        #expect(inbound.verdict == .blocked)
        #expect(inbound.code == "NO_ROUTE_TO_DESTINATION")
        #expect(inbound.blockedBy?.direction == .return, "the reply would leave through the NAT, not the gateway it came in by")
        #expect(try model.explain("internet", "priv-b", 22).code == "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS")
    }

    @Test("RT-10 reserved addresses: the first four and the last address of a subnet cannot be assigned")
    func rt10ReservedAddresses() {
        for (address, reserved) in [("10.0.1.3", true), ("10.0.1.255", true), ("10.0.1.0", true), ("10.0.1.4", false)] {
            var model = Fixture.base()
            model.instance("priv") { $0.interfaces[0].privateIp = Fixture.ip(address) }
            #expect(model.diagnostics().contains { $0.code == "reserved-address" } == reserved, "\(address)")
        }
    }
}
