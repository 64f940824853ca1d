import Foundation
import Testing

/// Runs the real `plumb` binary, as an operator or a script would.
struct CLI {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The `plumb` built beside this test bundle (`swift build` / `swift test` put every product in one folder).
    static let executable: URL? = {
        var candidates: [URL] = []
        if let bundle = Bundle.allBundles.first(where: { $0.bundlePath.hasSuffix(".xctest") }) {
            candidates.append(URL(fileURLWithPath: bundle.bundlePath).deletingLastPathComponent().appendingPathComponent("plumb"))
        }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plumb"))
        candidates.append(repositoryRoot.appendingPathComponent(".build/debug/plumb"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    static func run(_ arguments: [String]) throws -> Output {
        let process = Process()
        guard let executable else {
            struct NotBuilt: Error, CustomStringConvertible { var description: String { "build the plumb product first (swift build)" } }
            throw NotBuilt()
        }
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = repositoryRoot
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }
}

func temporaryFile(_ name: String, _ text: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("plumb-\(UUID().uuidString)-\(name)")
    try Data(text.utf8).write(to: url)
    return url
}

@Suite("The plumb CLI", .serialized)
struct CLITests {
    @Test("validate: exit 0 and a summary for a valid model")
    func validateValid() throws {
        let output = try CLI.run(["validate", "--model", "examples/karma.yaml"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("valid: 5 subnets, 12 instances"))
    }

    @Test("validate: exit 1 and one FILE:LINE:COLUMN line per problem")
    func validateInvalid() throws {
        let file = try temporaryFile(
            "bad.yaml",
            "vpc: {id: vpc-1, cidrBlocks: [10.0.0.0/16]}\nsubnets:\n  - {id: a, cidr: 10.1.0.0/24}\n  - {id: b, cidr: 10.0.0.0/24, routeTable: rtb-x}\n"
        )
        defer { try? FileManager.default.removeItem(at: file) }
        let output = try CLI.run(["validate", "--model", file.path])
        #expect(output.status == 1)
        let problems = output.stderr.split(separator: "\n").filter { $0.contains(": error: ") }
        #expect(problems.count == 3, "\(output.stderr)")
        for line in problems {
            #expect(line.hasPrefix("\(file.path):"), "\(line)")
            let parts = line.dropFirst(file.path.count + 1).split(separator: ":")
            #expect(Int(parts[0]) != nil && Int(parts[1]) != nil, "\(line)")
        }
        #expect(output.stderr.contains("\(file.path):3:19: error: subnet a block 10.1.0.0/24 is not inside the VPC"))
    }

    @Test("validate: warnings fail only with --strict; --format json lists them")
    func validateStrict() throws {
        let file = try temporaryFile(
            "warn.yaml",
            "vpc: {id: vpc-1, cidrBlocks: [10.0.0.0/16]}\nsubnets: [{id: a, cidr: 10.0.1.0/24}]\nrouteTables: [{id: r, main: true, routes: []}]\nsecurityGroups: [{id: sg-unused}]\n"
        )
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try CLI.run(["validate", "--model", file.path]).status == 0)
        let strict = try CLI.run(["validate", "--model", file.path, "--strict"])
        #expect(strict.status == 1)
        #expect(strict.stderr.contains("\(file.path):4:18: warning: security group sg-unused is attached to nothing"))
        let json = try CLI.run(["validate", "--model", file.path, "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["warnings"] as? Int == 1)
        #expect((object["diagnostics"] as? [[String: Any]])?.first?["code"] as? String == "unused-security-group")
    }

    @Test("explain: text reads hop by hop; exit 0 for both verdicts")
    func explainText() throws {
        let allowed = try CLI.run([
            "explain", "--model", "examples/karma.yaml", "--from", "app-1", "--to", "s3", "--port", "443", "--protocol", "tcp",
        ])
        #expect(allowed.status == 0)
        #expect(allowed.stdout.hasPrefix("app-1 (10.0.1.20) -> s3 (203.0.113.100) tcp 443: ALLOWED"), "\(allowed.stdout)")
        #expect(allowed.stdout.contains("NAT instance nat rewrites source 10.0.1.20 to 203.0.113.10"))
        let blocked = try CLI.run(["explain", "--model", "examples/karma.yaml", "--from", "web-1", "--to", "db", "--port", "22"])
        #expect(blocked.status == 0)
        #expect(blocked.stdout.contains("BLOCKED"))
        #expect(blocked.stdout.contains("blocked by acl-data (network-acl) on the request: SUBNET_ACL_RESTRICTION, rule 110"), "\(blocked.stdout)")
    }

    @Test("explain: JSON has verdict, hops and blockedBy")
    func explainJSON() throws {
        let output = try CLI.run([
            "explain", "--model", "examples/karma.yaml", "--from", "internet", "--to", "db", "--port", "5432", "--format", "json",
        ])
        #expect(output.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        #expect(object["verdict"] as? String == "blocked")
        #expect(object["hops"] is [Any])
        let blocker = try #require(object["blockedBy"] as? [String: Any])
        #expect(blocker["component"] as? String == "eni-db")
        #expect(blocker["code"] as? String == "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS")

        let ping = try CLI.run([
            "explain", "--model", "examples/karma.yaml", "--from", "bastion", "--to", "db", "--port", "8", "--protocol", "icmp", "--format", "json",
        ])
        let pingObject = try #require(try JSONSerialization.jsonObject(with: Data(ping.stdout.utf8)) as? [String: Any])
        #expect(pingObject["verdict"] as? String == "blocked", "acl-data admits no ICMP from the public subnet")
    }

    @Test("explain --from internet: the arbitrary address's verdict, then every class of internet addresses; json adds internetClasses")
    func explainInternetClasses() throws {
        let arguments = ["explain", "--model", "examples/aws-nat-scenario.yaml", "--from", "internet", "--to", "webserver", "--port", "22"]
        let text = try CLI.run(arguments)
        #expect(text.status == 0)
        #expect(text.stdout.hasPrefix("internet (198.51.100.1) -> webserver (203.0.113.20) tcp 22: BLOCKED"), "\(text.stdout)")
        #expect(
            text.stdout.contains(
                "internet: allowed from 192.0.2.0/24 (acl-public rule 120, sg-webserver ingress[2]) only; blocked from the rest of the internet"),
            "\(text.stdout)")
        let json = try CLI.run(arguments + ["--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["verdict"] as? String == "blocked")
        let classes = try #require(object["internetClasses"] as? [[String: Any]])
        let home = try #require(classes.first { ($0["cidrs"] as? [String]) == ["192.0.2.0/24"] })
        #expect(home["verdict"] as? String == "allowed")
        #expect(home["representative"] as? String == "192.0.2.1")
        #expect(classes.contains { $0["arbitrary"] as? Bool == true && $0["verdict"] as? String == "blocked" })
        // An explicit address is that address only.
        let explicit = try CLI.run([
            "explain", "--model", "examples/aws-nat-scenario.yaml", "--from", "192.0.2.10", "--to", "webserver", "--port", "22",
        ])
        #expect(explicit.stdout.hasPrefix("192.0.2.10 -> webserver (203.0.113.20) tcp 22: ALLOWED"), "\(explicit.stdout)")
        #expect(!explicit.stdout.contains("internet:"))
    }

    @Test("explain: an unknown source, a bad protocol or an invalid model is a clear error")
    func explainErrors() throws {
        let unknown = try CLI.run(["explain", "--model", "examples/karma.yaml", "--from", "nobody", "--to", "db", "--port", "22"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("unknown source 'nobody'"))
        let proto = try CLI.run(["explain", "--model", "examples/karma.yaml", "--from", "app-1", "--to", "db", "--port", "22", "--protocol", "sctp"])
        #expect(proto.status != 0)
        #expect(proto.stderr.contains("--protocol must be tcp, udp or icmp"))
        let missing = try CLI.run(["explain", "--model", "/nonexistent.yaml", "--from", "a", "--to", "b", "--port", "1"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("/nonexistent.yaml:1:1: error: file not found"))
    }

    @Test("matrix: truth tables, the expected-deny list, csv and json")
    func matrix() throws {
        let text = try CLI.run(["matrix", "--model", "examples/karma.yaml"])
        #expect(text.status == 0)
        let table = text.stdout.components(separatedBy: "\n\n").first { $0.hasPrefix("tcp/5432") }
        let rows = try #require(table).split(separator: "\n")
        #expect(rows.first { $0.hasPrefix("app-1 ") }?.trimmingCharacters(in: .whitespaces).hasSuffix(".") == true, "\(table ?? "")")
        #expect(rows.first { $0.hasPrefix("web-1 ") }?.trimmingCharacters(in: .whitespaces).hasSuffix("X") == true)
        #expect(text.stdout.contains("blocked to served ports (expected-deny probes)"))
        let csv = try CLI.run(["matrix", "--model", "examples/karma.yaml", "--format", "csv"])
        #expect(csv.stdout.hasPrefix("protocol,port,source,destination,verdict,blocked_by,code\n"))
        #expect(csv.stdout.contains("tcp,5432,web-1,db,blocked,sg-db,ENI_SG_RULES_MISMATCH"))
        let json = try CLI.run(["matrix", "--model", "examples/karma.yaml", "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect((object["tables"] as? [Any])?.isEmpty == false)
    }

    @Test("import aws: writes a model that validates and explains")
    func importAWS() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("plumb-import-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: output) }
        let run = try CLI.run(["import", "aws", "--from", natScenarioFixture, "--output", output.path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("wrote \(output.path): 3 subnets, 4 instances"))
        #expect(try CLI.run(["validate", "--model", output.path]).status == 0)
        let explain = try CLI.run(["explain", "--model", output.path, "--from", "app", "--to", "internet", "--port", "443"])
        #expect(explain.stdout.contains("ALLOWED"))

        let bad = try CLI.run(["import", "aws", "--from", "/nonexistent", "--output", output.path])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("not a directory"))
    }
}
