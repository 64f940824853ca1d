import Foundation
import PlumbFakes
import PlumbWire
import Synchronization
import Testing

/// The real `plumb-agent` binary, run as a process.
enum AgentBinary {
    static let url: URL? = {
        var candidates: [URL] = []
        if let bundle = Bundle.allBundles.first(where: { $0.bundlePath.hasSuffix(".xctest") }) {
            candidates.append(URL(fileURLWithPath: bundle.bundlePath).deletingLastPathComponent().appendingPathComponent("plumb-agent"))
        }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("plumb-agent"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    /// A started process with its output collected in files.
    final class Running: @unchecked Sendable {
        // Invariant: only the test's task touches these.
        let process: Process
        let stdout: URL
        let stderr: URL

        init(_ launcher: [String], _ arguments: [String], directory: String) throws {
            let binary = try #require(AgentBinary.url, "plumb-agent is built beside the test bundle")
            process = Process()
            stdout = URL(fileURLWithPath: directory + "/stdout-\(UUID().uuidString)")
            stderr = URL(fileURLWithPath: directory + "/stderr-\(UUID().uuidString)")
            _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
            _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
            if launcher.isEmpty {
                process.executableURL = binary
                process.arguments = arguments
            } else {
                process.executableURL = URL(fileURLWithPath: launcher[0])
                process.arguments = Array(launcher.dropFirst()) + [binary.path] + arguments
            }
            process.standardOutput = try FileHandle(forWritingTo: stdout)
            process.standardError = try FileHandle(forWritingTo: stderr)
            try process.run()
        }

        /// Sends SIGTERM and waits; returns the seconds it took to exit.
        func terminate() async -> Double {
            let started = ContinuousClock.now
            process.terminate()
            return await waitForExit(seconds: 10) ? Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000 : .infinity
        }

        func waitForExit(seconds: Double) async -> Bool {
            let exited = await eventually(seconds: seconds) { !self.process.isRunning }
            if !exited { kill(process.processIdentifier, SIGKILL) }
            return exited
        }

        var output: String { (try? String(contentsOf: stdout, encoding: .utf8)) ?? "" }
        var errors: String { (try? String(contentsOf: stderr, encoding: .utf8)) ?? "" }

        var reports: [Report] {
            output.split(separator: "\n").compactMap { try? JSONDecoder().decode(Report.self, from: Data($0.utf8)) }
        }
    }
}

/// A network namespace made for one test and deleted with it (its iptables rules go with it).
struct TestNamespace {
    let name: String

    static var available: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/iptables")
    }

    init() throws {
        name = "plumbtest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Self.run(["/usr/sbin/ip", "netns", "add", name])
        try Self.run(["/usr/sbin/ip", "-n", name, "link", "set", "lo", "up"])
    }

    func exec(_ command: [String]) throws { try Self.run(["/usr/sbin/ip", "netns", "exec", name] + command) }

    var launcher: [String] { ["/usr/sbin/ip", "netns", "exec", name] }

    func delete() { try? Self.run(["/usr/sbin/ip", "netns", "del", name]) }

    static func run(_ command: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NamespaceError(description: "\(command.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
    }

    struct NamespaceError: Error, CustomStringConvertible { var description: String }
}

@Suite("plumb-agent as a process", .serialized)
struct AgentProcessTests {
    func write(_ text: String, to path: String) throws { try text.write(toFile: path, atomically: true, encoding: .utf8) }

    @Test("standalone: SIGTERM closes the last batch, writes it, and exits 0 within 5 s")
    func standaloneShutdown() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let server = try MiniHTTPServer { _ in .text("ok") }
        defer { server.stop() }
        try write(
            """
            probes:
              - {id: web, kind: tcp, target: 127.0.0.1, port: \(server.port), intervalMs: 200, timeoutMs: 500}
            settings: {reportIntervalMs: 60000}
            """, to: directory.path + "/plan.yaml")
        let agent = try AgentBinary.Running(
            [], ["--plan", directory.path + "/plan.yaml", "--output", "-", "--no-imds", "--no-responder", "--instance-id", "i-standalone"],
            directory: directory.path)
        try await Task.sleep(for: .milliseconds(1_500))
        let seconds = await agent.terminate()
        #expect(seconds < 5)
        #expect(agent.process.terminationStatus == 0, "\(agent.errors)")
        let reports = agent.reports
        #expect(reports.count == 1)  // the interval is a minute: this batch was closed by the shutdown
        #expect(reports.first?.agentId == "i-standalone")
        #expect((reports.first?.results.count ?? 0) >= 3)
        #expect(reports.first?.results.allSatisfy { $0.outcome == .ok } == true)
    }

    @Test("a broken plan or configuration stops the agent with the file, line and column of each problem")
    func brokenInputs() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        try write(
            """
            probes:
              - id: a
                kind: tcp
                target: 10.0.0.1
                prot: 80
            """, to: directory.path + "/plan.yaml")
        let plan = try AgentBinary.Running([], ["--plan", directory.path + "/plan.yaml", "--no-imds", "--no-responder"], directory: directory.path)
        #expect(await plan.waitForExit(seconds: 10))
        #expect(plan.process.terminationStatus == 2)
        #expect(plan.errors.contains("plan.yaml:5:5: error: unknown field 'prot'"), "\(plan.errors)")

        try write("collector:\n  url: ftp://x\nspool:\n  maxbytes: 5\n", to: directory.path + "/agent.yaml")
        let config = try AgentBinary.Running([], ["--config", directory.path + "/agent.yaml"], directory: directory.path)
        #expect(await config.waitForExit(seconds: 10))
        #expect(config.process.terminationStatus == 2)
        #expect(config.errors.contains("agent.yaml:4:3: error: unknown field 'maxbytes'"), "\(config.errors)")
    }

    @Test(
        "tcp behind an iptables DROP is a timeout, a closed port is refused (in a network namespace made for the test)",
        .enabled(if: TestNamespace.available, "needs root, ip and iptables: skipped"))
    func tcpTimeoutInNamespace() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let namespace = try TestNamespace()
        defer { namespace.delete() }
        try namespace.exec(["/usr/sbin/iptables", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"])
        try write(
            """
            probes:
              - {id: filtered, kind: tcp, target: 127.0.0.1, port: 9, intervalMs: 400, timeoutMs: 300, expect: {verdict: block}}
              - {id: closed, kind: tcp, target: 127.0.0.1, port: 10, intervalMs: 400, timeoutMs: 300}
            settings: {reportIntervalMs: 500}
            """, to: directory.path + "/plan.yaml")
        let agent = try AgentBinary.Running(
            namespace.launcher, ["--plan", directory.path + "/plan.yaml", "--output", "-", "--no-imds", "--no-responder"], directory: directory.path)
        try await Task.sleep(for: .milliseconds(1_500))
        _ = await agent.terminate()
        let results = agent.reports.flatMap(\.results)
        let filtered = results.filter { $0.probeId == "filtered" }
        let closed = results.filter { $0.probeId == "closed" }
        #expect(!filtered.isEmpty && !closed.isEmpty, "\(agent.errors)")
        #expect(filtered.allSatisfy { $0.outcome == .timeout && $0.matchesExpectation })
        #expect(closed.allSatisfy { $0.outcome == .refused })
    }

    @Test(
        "icmp: datagram socket where ping_group_range allows, 'unsupported' for an unprivileged user where it does not",
        .enabled(
            if: TestNamespace.available && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root, ip and setpriv: skipped"))
    func icmpMethods() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let namespace = try TestNamespace()
        defer { namespace.delete() }
        try write(
            """
            probes:
              - {id: ping, kind: icmp, target: 127.0.0.1, intervalMs: 300, timeoutMs: 300}
            settings: {reportIntervalMs: 500}
            """, to: directory.path + "/plan.yaml")
        chmod(directory.path, 0o755)
        chmod(directory.path + "/plan.yaml", 0o644)
        let arguments = ["--plan", directory.path + "/plan.yaml", "--output", "-", "--no-imds", "--no-responder", "--instance-id", "i-1"]

        try namespace.exec(["/usr/sbin/sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"])
        let allowed = try AgentBinary.Running(namespace.launcher, arguments, directory: directory.path)
        try await Task.sleep(for: .milliseconds(1_200))
        _ = await allowed.terminate()
        let datagram = allowed.reports.flatMap(\.results)
        #expect(!datagram.isEmpty, "\(allowed.errors)")
        #expect(datagram.allSatisfy { $0.outcome == .ok && $0.method == "datagram" })

        try namespace.exec(["/usr/sbin/sysctl", "-q", "-w", "net.ipv4.ping_group_range=1 0"])
        let nobody = try AgentBinary.Running(
            namespace.launcher + ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], arguments, directory: directory.path)
        try await Task.sleep(for: .milliseconds(1_200))
        _ = await nobody.terminate()
        let refused = nobody.reports.flatMap(\.results)
        #expect(!refused.isEmpty, "\(nobody.errors)")
        #expect(refused.allSatisfy { $0.outcome == .unsupported && ($0.detail ?? "").contains("CAP_NET_RAW") })
    }

    @Test("on EC2 the registration carries IMDS's signed identity document, byte for byte, and the agent key, which survives a restart")
    func identityProof() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let document = "{\n  \"accountId\" : \"123456789012\",\n  \"instanceId\" : \"i-0abc\",\n  \"region\" : \"eu-west-1\"\n}"
        let imds = try FakeIMDS(
            instance: FakeIMDS.Instance(
                instanceId: "i-0abc", zone: "eu-west-1b", region: "eu-west-1", interfaces: [], identityDocument: document,
                identitySignature: "c2lnbmF0dXJl\nbGluZXM="))
        defer { imds.stop() }
        let collector = try FakeCollector()
        defer { collector.stop() }
        try write(collector.enrollmentToken + "\n", to: directory.path + "/token")
        let arguments = [
            "--collector", collector.url, "--enrollment-token-file", directory.path + "/token", "--spool-dir", directory.path + "/spool",
            "--imds", imds.endpoint, "--responder-port", "0", "--responder-address", "127.0.0.1",
        ]
        var agent = try AgentBinary.Running([], arguments, directory: directory.path)
        #expect(await eventually(seconds: 10) { !collector.state.withLock { $0.registrations.isEmpty } }, "\(agent.errors)")
        _ = await agent.terminate()
        let first = try #require(collector.state.withLock { $0.registrations.first })
        #expect(first.identity.instanceId == "i-0abc")
        #expect(first.instanceIdentity == InstanceIdentityProof(document: document, signature: "c2lnbmF0dXJl\nbGluZXM="))
        let key = try #require(first.agentKey)
        #expect(key.count == 64)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.path + "/spool/agent-key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // A new run (its session removed, so it registers with the enrollment token again) sends the same key.
        try? FileManager.default.removeItem(atPath: directory.path + "/spool/session.json")
        agent = try AgentBinary.Running([], arguments, directory: directory.path)
        #expect(await eventually(seconds: 10) { collector.state.withLock { $0.registrations.count >= 2 } }, "\(agent.errors)")
        _ = await agent.terminate()
        #expect(collector.state.withLock { $0.registrations.last?.agentKey } == key)
    }

    @Test("with a collector: registers, follows plan changes by ETag, spools through an outage, and delivers every batch once")
    func collectorMode() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let server = try MiniHTTPServer { _ in .text("ok") }
        defer { server.stop() }
        func probe(_ id: String) -> ProbeSpec {
            ProbeSpec(id: id, kind: .tcp, target: "127.0.0.1", port: server.port, intervalMs: 200, timeoutMs: 500)
        }
        let settings = PlanSettings(reportIntervalMs: 300, planRefreshMs: 1_000)
        let collector = try FakeCollector(plan: Plan(probes: [probe("first")], settings: settings))
        defer { collector.stop() }
        try write(collector.enrollmentToken + "\n", to: directory.path + "/token")
        let agent = try AgentBinary.Running(
            [],
            [
                "--collector", collector.url, "--enrollment-token-file", directory.path + "/token", "--spool-dir", directory.path + "/spool",
                "--no-imds", "--instance-id", "i-e2e", "--responder-port", "0", "--responder-address", "127.0.0.1",
            ], directory: directory.path)

        #expect(await eventually(seconds: 10) { collector.reports.flatMap(\.results).contains { $0.probeId == "first" } }, "\(agent.errors)")
        let registration = try #require(collector.state.withLock { $0.registrations.first })
        #expect(registration.identity.instanceId == "i-e2e")
        #expect(registration.capabilities.contains(.udpEcho))
        #expect(registration.responderPort != nil)

        collector.setPlan(Plan(probes: [probe("second")], settings: settings))
        #expect(await eventually(seconds: 10) { collector.reports.last?.results.contains { $0.probeId == "second" } == true })

        collector.stop()
        try await Task.sleep(for: .seconds(2))
        try collector.start()
        let count = collector.reports.count
        #expect(await eventually(seconds: 15) { collector.reports.count > count + 3 })
        // Unchanged plans were not sent again: the agent asked with the ETag it had.
        #expect(
            await eventually(seconds: 20) { collector.state.withLock { $0.planRequests.contains { $0.status == 304 && $0.etag == "\"plan-2\"" } } },
            "\(collector.state.withLock { $0.planRequests })")
        let seconds = await agent.terminate()
        #expect(seconds < 5)
        #expect(agent.process.terminationStatus == 0)
        let sequences = collector.reports.map(\.sequence)
        #expect(sequences == Array(1...Int64(sequences.count)), "no gap, no duplicate, in order")
        // A batch in flight when the collector stopped may have been stored without its acknowledgement reaching the
        // agent: it is sent again, once (the collector keeps it once). Nothing else is sent twice.
        #expect(collector.state.withLock { $0.duplicates } <= 1)
        let switched = try #require(collector.reports.firstIndex { $0.results.contains { $0.probeId == "second" } })
        #expect(!collector.reports[(switched + 1)...].contains { $0.results.contains { $0.probeId == "first" } })
    }
}
