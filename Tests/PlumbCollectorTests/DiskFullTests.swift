import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PlumbCollector
import PlumbCore
import PlumbStore
import PlumbWire
import Prometheus
import Testing

/// The collector's own disk fills up (issue 23): reports are refused with 503 and the collector says it is degraded,
/// the alert book does not run ahead of the store (no `resolved` for a `firing` that was never stored), and its own
/// trouble is not blamed on the VPC as silence. A real full file system: a small tmpfs (root only, as in CI).
@Suite("a full disk under the collector", .enabled(if: getuid() == 0), .serialized)
struct DiskFullTests {
    static func run(_ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Fills the file system under `directory` with one file until a write fails; returns the file.
    static func fill(_ directory: String) -> String {
        let path = directory + "/filler"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let fd = open(path, O_WRONLY)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 4096)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        return path
    }

    @Test("disk full: reports 503, /readyz 503 collector_degraded, the firing kept and written first, no silence blamed; all well once freed")
    func diskFull() async throws {
        let directory = NSTemporaryDirectory() + "plumb-diskfull-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        #expect(Self.run(["/bin/mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", directory]) == 0)
        defer {
            _ = Self.run(["/bin/umount", directory])
            try? FileManager.default.removeItem(atPath: directory)
        }
        let harness = try await Harness.make(receivers: [Receiver(name: "hook", url: "http://127.0.0.1:9/hook")], directory: directory)
        let flow = DriftFlowTests()
        _ = try await harness.registerAll(karmaInstances)
        var sequence: Int64 = 0
        for step in 0..<3 {
            sequence += 1
            try await flow.round(harness, at: 10_000 + Int64(step) * 1_000, sequence: sequence) { _, _ in false }
        }
        #expect(try await harness.collector.evaluate(now: 13_000).isEmpty)
        // The NAT fails; the reports saying so are stored, then the disk fills up before the evaluation writes.
        for step in 0..<3 {
            sequence += 1
            try await flow.round(harness, at: 20_000 + Int64(step) * 1_000, sequence: sequence, disagree: flow.goesThroughNAT)
        }
        // An empty WAL, so that every later write must grow a file.
        #expect(Self.run(["/usr/bin/sqlite3", harness.configuration.sqlitePath, "PRAGMA wal_checkpoint(TRUNCATE);"]) == 0)
        let filler = Self.fill(directory)

        await #expect(throws: (any Error).self) { try await harness.collector.evaluate(now: 23_000) }
        #expect(try await harness.store.alerts(AlertFilter()).isEmpty, "nothing stored while the disk is full")
        sequence += 1
        await #expect(throws: APIError.self) {
            try await flow.round(harness, at: 24_000, sequence: sequence) { _, _ in false }
        }
        #expect(await harness.collector.degraded != nil)
        let app = Application(
            router: buildRouter(collector: harness.collector, configuration: harness.configuration, registry: PrometheusCollectorRegistry()))
        try await app.test(.router) { client in
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .serviceUnavailable)
            #expect(String(buffer: ready.body).contains("collector_degraded"))
        }
        // Well past the silence window (60 s) while full: still nothing blamed, and nothing can be stored.
        await #expect(throws: (any Error).self) { try await harness.collector.evaluate(now: 90_000) }

        // Freed: the firing is stored first, then the repair resolves it; no silence was ever raised.
        try FileManager.default.removeItem(atPath: filler)
        var changes = try await harness.collector.evaluate(now: 91_000)
        for step in 0..<3 {
            sequence += 1
            try await flow.round(harness, at: 92_000 + Int64(step) * 1_000, sequence: sequence) { _, _ in false }
            changes += try await harness.collector.evaluate(now: 92_500 + Int64(step) * 1_000)
        }
        #expect(await harness.collector.degraded == nil)
        let alerts = try await harness.store.alerts(AlertFilter())
        #expect(alerts.map(\.kind) == [.natFailure], "\(alerts.map { "\($0.kind.rawValue) \($0.component)" })")
        let alert = try #require(alerts.first)
        let events = try await harness.store.alertEvents(id: alert.id).map(\.event)
        #expect(events.first == "firing" && events.last == "resolved" && !events.dropLast().contains("resolved"), "\(events)")
        let deliveries = try await harness.store.deliveries(alertId: alert.id, limit: 10).sorted { $0.id < $1.id }.map(\.event)
        #expect(deliveries == ["firing", "resolved"], "\(deliveries)")
        #expect(!changes.contains { if case .fired(let fired) = $0 { fired.kind == .subnetSilent || fired.kind == .agentSilent } else { false } })
    }
}
