import Foundation
import PlumbCore
import PlumbModelIO
import Testing

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func example(_ name: String) -> String { repositoryRoot.appendingPathComponent("examples/\(name)").path }

let minimalModel = """
    vpc:
      id: vpc-1
      cidrBlocks: [10.0.0.0/16]
    subnets:
      - id: subnet-a
        cidr: 10.0.1.0/24
    routeTables:
      - id: rtb-main
        main: true
        routes: []
    """

@Suite("Loading models")
struct ModelLoaderTests {
    @Test("the seed architecture is valid and its intents hold")
    func karmaIsValid() throws {
        let loaded = ModelLoader.load(path: example("karma.yaml"))
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        let topology = try #require(loaded.topology)
        #expect(topology.instances.count == 12)
        #expect(topology.intents.count >= 10)
    }

    @Test("AWS's NAT scenario example is valid")
    func natScenarioIsValid() {
        let loaded = ModelLoader.load(path: example("aws-nat-scenario.yaml"))
        #expect(loaded.isValid, "\(loaded.diagnostics)")
    }

    @Test("a minimal model loads")
    func minimal() throws {
        let loaded = ModelLoader.load(text: minimalModel, file: "m.yaml")
        #expect(loaded.isValid, "\(loaded.diagnostics)")
        #expect(try #require(loaded.topology).subnets[0].cidr.description == "10.0.1.0/24")
    }

    @Test("JSON models load, with locations")
    func json() throws {
        let text = """
            {
              "vpc": {"id": "vpc-1", "cidrBlocks": ["10.0.0.0/16"]},
              "subnets": [{"id": "subnet-a", "cidr": "10.0.1.0/33"}]
            }
            """
        let loaded = ModelLoader.load(text: text, file: "m.json")
        let problem = try #require(loaded.diagnostics.first)
        #expect(problem.location == SourceLocation(file: "m.json", line: 3, column: 42))
        #expect(problem.message.contains("subnets[0].cidr"))
        #expect(problem.message.contains("'10.0.1.0/33' is not an IPv4 CIDR block"))
    }

    @Test("every broken resource is reported, each at its line and column, not just the first")
    func reportsEveryProblem() {
        let text = """
            vpc:
              id: vpc-1
              cidrBlocks: [10.0.0.0/16]
            subnets:
              - id: subnet-a
                cidr: 10.0.1.0/24
                zoen: us-east-1a
              - id: subnet-b
                cidr: banana
              - cidr: 10.0.3.0/24
            instances:
              - id: i-1
                interfaces:
                  - {id: eni-1, subnet: subnet-a, privateIp: 10.0.1.10, securityGroups: [], deviceIndex: first}
            """
        let loaded = ModelLoader.load(text: text, file: "bad.yaml")
        let lines = loaded.diagnostics.map { "\($0.location.line):\($0.location.column) \($0.code)" }
        #expect(lines.contains("7:5 unknown-field"), "\(loaded.diagnostics)")
        #expect(lines.contains("9:11 malformed"), "\(loaded.diagnostics)")
        #expect(lines.contains("10:5 malformed"), "\(loaded.diagnostics)")
        #expect(lines.contains("14:94 malformed"), "\(loaded.diagnostics)")
        #expect(loaded.diagnostics.first { $0.code == "unknown-field" }?.message.contains("'zoen'") == true)
        #expect(loaded.diagnostics.contains { $0.message.contains("missing field 'id'") })
        #expect(loaded.diagnostics.contains { $0.message.contains("expected a whole number, found the value 'first'") })
    }

    @Test("semantic errors point at the field")
    func semanticLocations() throws {
        let text =
            minimalModel + """

                  - id: rtb-other
                    main: true
                    subnets: [subnet-nope]
                    routes:
                      - {destination: 0.0.0.0/0, target: igw-missing}
                """
        let loaded = ModelLoader.load(text: text, file: "s.yaml")
        let byCode = Dictionary(grouping: loaded.diagnostics, by: \.code)
        #expect(byCode["multiple-main"]?.first?.location.line == 12)
        #expect(byCode["dangling-reference"]?.map(\.location.line).sorted() == [13, 15])
    }

    @Test("malformed YAML, duplicate keys, aliased values, wrong shapes, empty and binary files: a located error each")
    func malformedDocuments() {
        let cases: [(String, String)] = [
            ("vpc: {id: vpc-1\n", "not valid YAML"),
            ("vpc:\n  id: a\n  id: b\n", "appears twice"),
            ("base: &b {id: vpc-1}\nvpc: *b\n", "missing field 'cidrBlocks' in vpc"),
            ("- 1\n- 2\n", "expected a mapping"),
            ("", "empty"),
            ("vpc: {id: vpc-1, cidrBlocks: 10.0.0.0/16}\n", "expected a list"),
            ("a\u{0}b", "NUL"),
        ]
        for (text, needle) in cases {
            let loaded = ModelLoader.load(text: text, file: "x.yaml")
            #expect(!loaded.isValid)
            #expect(loaded.diagnostics.contains { $0.message.contains(needle) }, "\(text.debugDescription): \(loaded.diagnostics)")
            #expect(loaded.diagnostics.allSatisfy { $0.location.file == "x.yaml" && $0.location.line >= 1 })
        }
    }

    @Test("an unreadable path is a diagnostic, not a crash")
    func unreadable() {
        #expect(ModelLoader.load(path: "/nonexistent/model.yaml").diagnostics.first?.message.contains("not found") == true)
        #expect(ModelLoader.load(path: "/tmp").diagnostics.first?.message.contains("directory") == true)
    }

    @Test("a violated intent is an error that prints the contradicting path")
    func violatedIntent() throws {
        var text = try String(contentsOfFile: example("karma.yaml"), encoding: .utf8)
        // Open ssh on the database to everyone in the VPC: the bastion intent no longer holds.
        text = text.replacingOccurrences(
            of: "      - {protocol: tcp, ports: 5432, securityGroup: sg-app}\n      - {protocol: tcp, ports: 22, securityGroup: sg-bastion}",
            with: "      - {protocol: tcp, ports: 5432, securityGroup: sg-app}\n      - {protocol: tcp, ports: 22, cidr: 10.0.0.0/16}")
        text = text.replacingOccurrences(of: "      - {rule: 110, protocol: tcp, ports: 22, cidr: 10.0.0.0/16, action: deny}\n", with: "")
        let loaded = ModelLoader.load(text: text, file: "k.yaml")
        let violation = try #require(loaded.diagnostics.first { $0.code == "intent-violated" })
        #expect(violation.message.contains("ssh to private instances only from the bastion"))
        #expect(violation.message.contains("-> db (10.0.2.10) tcp 22 is allowed"), "\(violation.message)")
        #expect(violation.message.contains("sg-db sg-ingress"), "the path is printed: \(violation.message)")
    }

    @Test("models round-trip through the writer")
    func roundTrip() throws {
        let topology = try #require(ModelLoader.load(path: example("karma.yaml")).topology)
        for text in [try ModelWriter.yaml(topology), try ModelWriter.json(topology)] {
            let again = ModelLoader.load(text: text, file: "again")
            #expect(again.isValid, "\(again.diagnostics)")
            let network = Network(try #require(again.topology))
            #expect(try network.explain(from: "app-1", to: "db", port: 5432, protocol: .tcp).verdict == .allowed)
        }
    }
}
