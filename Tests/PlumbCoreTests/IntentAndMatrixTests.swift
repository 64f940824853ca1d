import PlumbCore
import Testing

@Suite("Intents and the expected matrix")
struct IntentAndMatrixTests {
    @Test("selectors expand to the instances they name")
    func selectors() throws {
        var model = Fixture.base()
        model.instance("priv") { $0.roles = ["db"] }
        let network = Network(model)
        #expect(network.select("role:db")?.count == 1)
        #expect(network.select("private")?.count == 3)
        #expect(network.select("public")?.count == 1)
        #expect(network.select("subnet:subnet-priv")?.count == 2)
        #expect(network.select("instances")?.count == 4)
        #expect(network.select("role:nope") == nil)
        #expect(network.select("internet")?.count == 1)
    }

    @Test("an intent the rules contradict is found, even for one host among many alike")
    func violationsAreFound() {
        var model = Fixture.base()
        model.instances += (20..<40).map {
            Instance(id: "i-\($0)", name: "worker-\($0)", interfaces: [Fixture.eni("eni-\($0)", "subnet-far", "10.0.2.\($0)")])
        }
        model.acl(
            "acl-priv", subnet: "subnet-priv", ingress: [rule(90, .all, nil, "10.0.2.33/32", .deny), rule(100, .all, nil, "0.0.0.0/0", .allow)],
            egress: allowAll)
        let intent = Intent(name: "far reaches priv", from: ["subnet:subnet-far"], to: ["priv"], port: 22, expect: .allow)
        let violations = Network(model).violations(of: intent)
        #expect(violations.count == 1)
        #expect(violations.first?.explanation.source == "worker-33 (10.0.2.33)")
        #expect(violations.first?.explanation.blockedBy?.rule == "rule 90")
    }

    @Test("a holding intent has no violation; flows of a party with itself are left out")
    func holdingIntent() {
        let model = Fixture.base()
        let network = Network(model)
        #expect(network.violations(of: Intent(name: "mesh", from: ["private"], to: ["private"], port: 22, expect: .allow)).isEmpty)
        #expect(network.flows(of: Intent(name: "mesh", from: ["private"], to: ["private"], port: 22, expect: .allow)).count == 6)
        let exposure = Intent(name: "no ssh from the internet", from: ["internet"], to: ["public"], port: 22, expect: .deny)
        #expect(network.violations(of: exposure).count == 1, "sg-open admits ssh from anywhere and pub has an Elastic IP")
    }

    @Test("the matrix covers every served port and lists the blocked flows")
    func matrix() throws {
        var model = Fixture.base()
        model.instance("priv") { $0.listens = [Listen(port: 5432)] }
        model.groups(
            of: "priv", [SecurityGroup(id: "sg-db", ingress: [SecurityGroupRule(protocol: .tcp, ports: PortRange(5432), securityGroup: "sg-app")])])
        model.groups(of: "far", [SecurityGroup(id: "sg-app")])
        let matrix = Network(model).expectedMatrix()
        let table = try #require(matrix.tables.first { $0.service == ServicePort(.tcp, 5432) })
        #expect(table.destinations == ["priv"])
        let row = { (name: String) in table.cells[table.sources.firstIndex(of: name)!][0] }
        #expect(row("far") == .allowed)
        #expect(row("pub") == .blocked)
        #expect(row("internet") == .blocked)
        #expect(row("priv") == nil)
        #expect(matrix.mustBlock.contains { $0.source == "pub" && $0.destination == "priv" && $0.port == 5432 && $0.blockedBy?.component == "sg-db" })
    }

    @Test("the subnet matrix has a verdict per subnet pair and port class")
    func subnetMatrix() {
        let network = Network(Fixture.base())
        let result = network.subnetMatrix(ports: [ServicePort(.tcp, 22), ServicePort(.tcp, 80)])
        #expect(result.verdicts.count == 3)
        #expect(result.verdicts[0][1] == [.allowed, .allowed])
    }
}
