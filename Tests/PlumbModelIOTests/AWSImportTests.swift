import Foundation
import PlumbCore
import PlumbModelIO
import Testing

let natScenarioFixture = repositoryRoot.appendingPathComponent("Tests/PlumbModelIOTests/Fixtures/aws/nat-scenario").path

/// Copies the fixture directory to a fresh temporary one the test may change; removed by the caller.
func scratchCopyOfFixture() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("plumb-import-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: URL(fileURLWithPath: natScenarioFixture), to: directory)
    return directory
}

@Suite("Importing from AWS describe-* output")
struct AWSImportTests {
    @Test("the moto-built NAT scenario imports into a valid model with the AWS ids")
    func importsScenario() throws {
        let result = AWSImport.run(directory: natScenarioFixture)
        #expect(!result.diagnostics.hasErrors, "\(result.diagnostics)")
        let topology = try #require(result.topology)
        #expect(topology.vpc.id == "vpc-1e46acbd9cde6ece8")
        #expect(topology.vpc.cidrBlocks.map(\.description) == ["10.0.0.0/16"])
        #expect(topology.internetGateway?.id == "igw-e346cce9b56393f94")
        #expect(Set(topology.subnets.compactMap(\.name)) == ["public-a", "private-a", "private-b"])
        #expect(topology.routeTables.count == 3)
        #expect(topology.routeTables.filter(\.isMain).count == 1)

        let nat = try #require(topology.nats.first)
        #expect(nat.id == "nat-e9a0fc196c8df8711")
        #expect(nat.kind == .gateway)
        #expect(nat.elasticIp?.description == "203.0.113.10")
        #expect(nat.privateIp?.description == "10.0.0.100")

        let privateTable = try #require(topology.routeTables.first { $0.name == "private-rt" })
        #expect(privateTable.routes.contains { $0.destination == .any && $0.target == "nat-e9a0fc196c8df8711" })
        #expect(privateTable.routes.contains { $0.destinationPrefixList == "pl-63a5400a" && $0.target.hasPrefix("vpce-") })

        let privateACL = try #require(topology.networkAcls.first { $0.name == "private-acl" })
        #expect(!privateACL.ingress.contains { $0.rule == 32767 }, "the implicit deny is not imported as a rule (NACL-3)")
        #expect(privateACL.ingress.contains { $0.rule == 120 && $0.action == .deny && $0.ports == PortRange(22) })
        #expect(Set(privateACL.subnets ?? []).count == 2)

        let db = try #require(topology.instances.first { $0.name == "db" })
        #expect(db.roles == ["db"])
        let staticENI = try #require(db.interfaces.first { $0.deviceIndex == 1 })
        #expect(staticENI.privateIp.description == "10.0.1.50")
        #expect(staticENI.description == "static ip for db")
        let bastion = try #require(topology.instances.first { $0.name == "bastion" })
        #expect(bastion.interfaces[0].elasticIp?.description == "203.0.113.11", "an associated EIP is an elasticIp, not a publicIp")

        let balancer = try #require(topology.loadBalancers.first)
        #expect(balancer.name == "internal-alb")
        #expect(balancer.listeners.first?.targetPort == 8080)
        #expect(balancer.targets.count == 1)

        let sg = try #require(topology.securityGroups.first { $0.name == "db-sg" })
        #expect(sg.ingress?.contains { $0.securityGroup != nil && $0.ports == PortRange(5432) } == true)
        #expect(sg.egress?.contains { $0.protocol == .all && $0.cidr == .any } == true)
    }

    @Test("the imported model explains as AWS would route it")
    func explainsImported() throws {
        let topology = try #require(AWSImport.run(directory: natScenarioFixture).topology)
        #expect(!Validator.validate(topology, sourceMap: SourceMap(file: "imported")).hasErrors)
        let network = Network(topology)
        let egress = try network.explain(from: "app", to: "internet", port: 443, protocol: .tcp)
        #expect(egress.verdict == .allowed)
        #expect(egress.hops.contains { $0.component == "nat-e9a0fc196c8df8711" && $0.check == "translate" })
        #expect(
            try network.explain(from: "internet", to: "db", port: 5432, protocol: .tcp).blockedBy?.code == "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS")
        #expect(try network.explain(from: "bastion", to: "db", port: 22, protocol: .tcp).verdict == .allowed)
        #expect(try network.explain(from: "web", to: "db", port: 5432, protocol: .tcp).blockedBy?.code == "ENI_SG_RULES_MISMATCH")
        // The scenario's app-sg admits 8080 only from web-sg, not from the balancer's group: the balancer cannot reach its target.
        let throughBalancer = try network.explain(from: "web", to: "internal-alb", port: 80, protocol: .tcp)
        #expect(throughBalancer.blockedBy?.component == "sg-30cfa16292fcb184b")
    }

    @Test("a missing file is named, with the command that writes it")
    func missingFile() throws {
        let directory = try scratchCopyOfFixture()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.removeItem(at: directory.appendingPathComponent("describe-network-acls.json"))
        let result = AWSImport.run(directory: directory.path)
        #expect(result.topology == nil)
        let problem = try #require(result.diagnostics.first)
        #expect(problem.location.file == "describe-network-acls.json")
        #expect(problem.message.contains("aws ec2 describe-network-acls --output json"))
    }

    @Test("a file that is not what AWS writes gets a located error")
    func wrongShapes() throws {
        let cases: [(String, String, String)] = [
            ("describe-subnets.json", "{\"Subnets\": {\"SubnetId\": 1}}", "\"Subnets\" list"),
            ("describe-vpcs.json", "[1, 2]", "\"Vpcs\" list"),
            (
                "describe-route-tables.json",
                "{\"RouteTables\": [\n  {\"RouteTableId\": \"rtb-1\", \"VpcId\": \"vpc-1e46acbd9cde6ece8\",\n   \"Routes\": [{\"DestinationCidrBlock\": \"10.0.0.0/99\", \"GatewayId\": \"local\"}]}]}",
                "not an IPv4 CIDR block"
            ),
            (
                "describe-instances.json",
                "{\"Reservations\": [{\"Instances\": [{\"InstanceId\": \"i-1\", \"VpcId\": \"vpc-1e46acbd9cde6ece8\", \"NetworkInterfaces\": [{\"NetworkInterfaceId\": \"eni-1\", \"SubnetId\": \"subnet-1b5335c6879b62532\", \"PrivateIpAddress\": \"ten\"}]}]}]}",
                "'ten' is not an IPv4 address"
            ),
            ("describe-network-acls.json", "{\"NetworkAcls\": [ {\"NetworkAclId\": ", "not valid YAML/JSON"),
        ]
        for (file, text, needle) in cases {
            let directory = try scratchCopyOfFixture()
            defer { try? FileManager.default.removeItem(at: directory) }
            try Data(text.utf8).write(to: directory.appendingPathComponent(file))
            let result = AWSImport.run(directory: directory.path)
            #expect(result.topology == nil, "\(file)")
            let problem = result.diagnostics.first { $0.severity == .error }
            #expect(problem?.location.file == file, "\(result.diagnostics)")
            #expect(problem?.message.contains(needle) == true, "\(file): \(result.diagnostics)")
        }
    }

    @Test("several VPCs: the importer asks for --vpc, and --vpc picks one")
    func severalVPCs() throws {
        let directory = try scratchCopyOfFixture()
        defer { try? FileManager.default.removeItem(at: directory) }
        let vpcs = """
            {"Vpcs": [
              {"VpcId": "vpc-1e46acbd9cde6ece8", "CidrBlock": "10.0.0.0/16", "IsDefault": false},
              {"VpcId": "vpc-other", "CidrBlock": "10.9.0.0/16", "IsDefault": false}
            ]}
            """
        try Data(vpcs.utf8).write(to: directory.appendingPathComponent("describe-vpcs.json"))
        let ambiguous = AWSImport.run(directory: directory.path)
        #expect(ambiguous.diagnostics.contains { $0.message.contains("pick one with --vpc") })
        let picked = AWSImport.run(directory: directory.path, vpc: "vpc-1e46acbd9cde6ece8")
        #expect(picked.topology?.subnets.count == 3)
        #expect(
            AWSImport.run(directory: directory.path, vpc: "vpc-nope").diagnostics.contains { $0.message.contains("vpc-nope is not in this file") })
    }

    @Test("IPv6 entries are left out, as are deleted NAT gateways, whose routes become blackholes")
    func leftOut() throws {
        let directory = try scratchCopyOfFixture()
        defer { try? FileManager.default.removeItem(at: directory) }
        let natFile = directory.appendingPathComponent("describe-nat-gateways.json")
        let text = try String(contentsOf: natFile, encoding: .utf8).replacingOccurrences(
            of: "\"State\": \"available\"", with: "\"State\": \"deleted\"")
        try Data(text.utf8).write(to: natFile)
        let aclFile = directory.appendingPathComponent("describe-network-acls.json")
        let acls = try String(contentsOf: aclFile, encoding: .utf8).replacingOccurrences(
            of: "\"Entries\": [",
            with:
                "\"Entries\": [{\"Ipv6CidrBlock\": \"::/0\", \"Egress\": false, \"Protocol\": \"-1\", \"RuleAction\": \"allow\", \"RuleNumber\": 101},",
            options: [], range: nil)
        try Data(acls.utf8).write(to: aclFile)
        let result = AWSImport.run(directory: directory.path)
        let topology = try #require(result.topology)
        #expect(topology.nats.isEmpty)
        #expect(topology.networkAcls.allSatisfy { !$0.ingress.contains { $0.rule == 101 } })
        let privateTable = try #require(topology.routeTables.first { $0.name == "private-rt" })
        #expect(privateTable.routes.first { $0.destination == .any }?.state == .blackhole)
        #expect(try Network(topology).explain(from: "app", to: "internet", port: 443, protocol: .tcp).blockedBy?.code == "BAD_STATE_ROUTE")
    }
}
