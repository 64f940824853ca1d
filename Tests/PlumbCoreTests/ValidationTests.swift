import PlumbCore
import Testing

/// Validation problems beyond the per-rule tests: each case breaks one thing and expects its code and grade.
@Suite("Validation")
struct ValidationTests {
    static let cases: [(String, Diagnostic.Severity, @Sendable (inout Topology) -> Void)] = [
        ("duplicate-id", .error, { $0.securityGroups.append(SecurityGroup(id: "subnet-priv")) }),
        ("cidr-outside-vpc", .error, { $0.subnets[2].cidr = CIDR("10.1.2.0/24")! }),
        ("overlapping-cidr", .error, { $0.subnets[2].cidr = CIDR("10.0.1.128/25")! }),
        ("address-outside-subnet", .error, { $0.instance("priv") { $0.interfaces[0].privateIp = IPv4Address(10, 0, 2, 50) } }),
        ("duplicate-address", .error, { $0.instance("priv") { $0.interfaces[0].privateIp = IPv4Address(10, 0, 1, 11) } }),
        ("duplicate-address", .error, { $0.nats[0].privateIp = IPv4Address(10, 0, 0, 10) }),
        (
            "duplicate-rule-number", .error,
            {
                $0.acl(
                    "acl-x", subnet: "subnet-far", ingress: [rule(100, .all, nil, "0.0.0.0/0", .allow), rule(100, .tcp, nil, "0.0.0.0/0", .deny)],
                    egress: [])
            }
        ),
        (
            "invalid-rule-number", .error,
            { $0.acl("acl-x", subnet: "subnet-far", ingress: [rule(32767, .all, nil, "0.0.0.0/0", .allow)], egress: []) }
        ),
        ("duplicate-route", .error, { $0.routeTables[0].routes.append(Route(destination: .any, target: "nat-gw")) }),
        ("invalid-route-target", .error, { $0.routeTables[0].routes.append(Route(destination: CIDR("192.0.2.0/24")!, target: "sg-open")) }),
        ("malformed", .error, { $0.nats[0].connectivity = "pubic" }),
        ("malformed", .error, { $0.nats[0].elasticIp = nil }),
        ("nat-in-private-subnet", .warning, { $0.nats[0].subnet = "subnet-far" }),
        ("unused-security-group", .warning, { $0.securityGroups.append(SecurityGroup(id: "sg-lonely")) }),
        ("no-security-groups", .warning, { $0.instance("far") { $0.interfaces[0].securityGroups = [] } }),
        ("invalid-port", .error, { $0.intents.append(Intent(name: "x", from: ["pub"], to: ["priv"], port: 70_000, expect: .allow)) }),
        ("dangling-reference", .error, { $0.intents.append(Intent(name: "x", from: ["role:ghost"], to: ["priv"], port: 22, expect: .allow)) }),
        ("dangling-reference", .error, { $0.intents.append(Intent(name: "x", from: ["10.0.1.99"], to: ["priv"], port: 22, expect: .allow)) }),
        ("intent-violated", .error, { $0.intents.append(Intent(name: "x", from: ["internet"], to: ["pub"], port: 22, expect: .deny)) }),
        (
            "endpoint-route-missing", .warning,
            {
                $0.prefixLists = [PrefixList(id: "pl-s3", cidrs: [CIDR("52.216.0.0/15")!])]
                $0.vpcEndpoints = [VPCEndpoint(id: "vpce-s3", type: "gateway", prefixList: "pl-s3", routeTables: ["rtb-priv"])]
            }
        ),
        (
            "elastic-ip-quota", .warning,
            { model in
                for n in 0..<5 {
                    model.instances.append(
                        Instance(
                            id: "i-e\(n)",
                            interfaces: [Fixture.eni("eni-e\(n)", "subnet-pub", "10.0.0.\(100 + n)", elasticIp: "203.0.113.\(100 + n)")]))
                }
            }
        ),
    ]

    @Test("the fixture itself is clean")
    func fixtureIsClean() {
        #expect(Fixture.base().diagnostics().isEmpty)
    }

    @Test(arguments: cases.indices)
    func reports(index: Int) {
        let (code, severity, change) = ValidationTests.cases[index]
        var model = Fixture.base()
        change(&model)
        let problems = model.diagnostics()
        #expect(problems.contains { $0.code == code && $0.severity == severity }, "case \(index) \(code): \(problems)")
    }
}
