import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import PlumbCollector
import PlumbCore
import PlumbProbes
import PlumbStore
import PlumbWire
import Prometheus
import Testing

/// Values that once crash-looped every collector (issue 23): each is refused at the door with 422 naming the field,
/// nothing is stored, and a row stored before the checks existed is skipped by the evaluation instead of stopping it.
@Suite("poison reports: refused at the door, skipped in the feed, never a crash")
struct PoisonReportTests {
    /// One poison: how it spoils a good report, and the field the refusal must name.
    struct Poison: Sendable, CustomTestStringConvertible {
        var name: String
        var field: String
        var spoil: @Sendable (inout Report) -> Void
        var testDescription: String { name }
    }

    static let poisons: [Poison] = [
        Poison(name: "createdAtMs Int64.min", field: "createdAtMs") { $0.createdAtMs = .min },
        Poison(name: "createdAtMs Int64.max", field: "createdAtMs") { $0.createdAtMs = .max },
        Poison(name: "a result started at Int64.min", field: "results[0].startedAtMs") { $0.results[0].startedAtMs = .min },
        Poison(name: "a negative burst", field: "results[0].burst.sent") {
            $0.results[0].burst = BurstStatistics(sent: -5, received: 0)
        },
        Poison(name: "more received than sent", field: "results[0].burst.received") {
            $0.results[0].burst = BurstStatistics(sent: 3, received: 7, rttAvgMs: 0.2)
        },
        Poison(name: "a round trip of 1e308 ms", field: "results[0].burst.rttAvgMs") {
            $0.results[0].burst = BurstStatistics(sent: 3, received: 3, rttAvgMs: 1e308)
        },
        Poison(name: "a negative connect time", field: "results[0].timings.connectMs") { $0.results[0].timings.connectMs = -1 },
        Poison(name: "a sequence of 10^15", field: "sequence") { $0.sequence = 1_000_000_000_000_000 },
        Poison(name: "sequence Int64.max", field: "sequence") { $0.sequence = .max },
        Poison(name: "negative dropped counters", field: "dropped.results") { $0.dropped = DropCounters(batches: 0, results: -1) },
        Poison(name: "port 70000", field: "results[0].port") { $0.results[0].port = 70_000 },
    ]

    func good(_ harness: Harness, agent: String, sequence: Int64, at now: Int64) async throws -> Report {
        let plan = try await harness.collector.plan(agentId: agent).plan
        return Report(
            agentId: agent, sequence: sequence, createdAtMs: now, results: plan.probes.prefix(3).map { result(for: $0, agrees: true, at: now - 100) })
    }

    @Test("refused with 422 naming the field, not stored; the next good report is", arguments: Self.poisons)
    func refused(_ poison: Poison) async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        let tokens = try await harness.registerAll(["i-app-1"])
        let app = Application(
            router: buildRouter(collector: harness.collector, configuration: harness.configuration, registry: PrometheusCollectorRegistry()))
        try await app.test(.router) { client in
            let auth: HTTPFields = [.authorization: "Bearer \(tokens["i-app-1"]!)"]
            let now = wallClockMilliseconds()
            var report = try await good(harness, agent: "i-app-1", sequence: 1, at: now)
            poison.spoil(&report)
            let response = try await client.execute(
                uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: ByteBuffer(bytes: try JSONEncoder().encode(report)))
            #expect(response.status == .unprocessableContent)
            let error = try JSONDecoder().decode(ErrorBody.self, from: Data(response.body.readableBytesView)).error
            #expect(error.field == poison.field, "\(error.message)")
            #expect(error.message.contains(poison.field))
            #expect(try await harness.store.results(agentId: "i-app-1", since: .min, limit: 100).isEmpty)
            let fine = try await good(harness, agent: "i-app-1", sequence: 1, at: now)
            let accepted = try await client.execute(
                uri: "/v1/agents/i-app-1/reports", method: .post, headers: auth, body: ByteBuffer(bytes: try JSONEncoder().encode(fine)))
            #expect(accepted.status == .ok)
            #expect(try await harness.store.results(agentId: "i-app-1", since: .min, limit: 100).count == 3)
        }
    }

    @Test("a poison row already in the store is skipped by the leader; evaluation goes on, also after a restart")
    func storedPoisonSkipped() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        _ = try await harness.registerAll(["i-app-1"])
        let now: Int64 = 10_000
        // Written past the door, as a collector before the checks did.
        for (sequence, poison) in Self.poisons.filter({ $0.field != "sequence" }).enumerated() {
            var report = try await good(harness, agent: "i-app-1", sequence: Int64(sequence + 1), at: now)
            poison.spoil(&report)
            _ = try await harness.store.ingest(report, body: nil, receivedAt: now)
        }
        let next = Int64(Self.poisons.count + 1)
        let fine = try await good(harness, agent: "i-app-1", sequence: next, at: now + 1_000)
        _ = try await harness.collector.ingest(fine, agentId: "i-app-1", now: now + 1_000)
        _ = try await harness.collector.evaluate(now: now + 2_000)
        // The good report's results were read into pairs; the poison ones were not.
        let read = await harness.collector.pairsWithProbes().filter { $0.state != nil }.count
        #expect(read == 3, "\(read) pairs read")
        // A second leader reading the same store from the start does the same.
        let again = try await Harness.make(directory: harness.directory)
        _ = try await again.collector.evaluate(now: now + 3_000)
        #expect(await again.collector.pairsWithProbes().filter { $0.state != nil }.count == 3)
    }
}
