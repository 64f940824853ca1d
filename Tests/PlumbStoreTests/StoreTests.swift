import Foundation
import Logging
import PlumbStore
import PlumbWire
import Testing

@Suite("the SQLite store on real files")
struct StoreTests {
    func withStore(_ body: (SQLiteStore, String) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "plumb-store-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(path: directory + "/plumb.sqlite", logger: Logger(label: "test"))
        for agent in ["a-1", "a-2"] {
            try await store.saveAgent(
                AgentRecord(agentId: agent, tokenHash: "x", registration: registration(agent), registeredAtMs: 0, lastSeenAtMs: 0))
        }
        do {
            try await body(store, directory)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }

    func report(_ agent: String, _ sequence: Int64, at: Int64, results: Int = 3) -> Report {
        var list: [ProbeResult] = []
        for index in 0..<results {
            let lost = index == 2
            let burst = BurstStatistics(sent: 5, received: lost ? 0 : 4, rttAvgMs: lost ? nil : Double(index + 1))
            list.append(
                ProbeResult(
                    probeId: "p\(index)", kind: .udpEcho, target: "10.0.0.\(index)", port: 7471, startedAtMs: at, outcome: lost ? .timeout : .ok,
                    burst: burst))
        }
        return Report(agentId: agent, sequence: sequence, createdAtMs: at, results: list)
    }

    @Test("concurrent reports share commits; each is stored once, replays and in-batch repeats are duplicates, results come back whole")
    func groupCommit() async throws {
        try await withStore { store, _ in
            let outcomes = try await withThrowingTaskGroup(of: (Int64, IngestOutcome).self) { group in
                // Sequences 1...40 for a-1, each posted twice at once; a-2 posts 1...40 once.
                for sequence in Int64(1)...40 {
                    for agent in ["a-1", "a-1", "a-2"] {
                        group.addTask {
                            (sequence, try await store.ingest(self.report(agent, sequence, at: 1_000 + sequence), body: nil, receivedAt: 2_000))
                        }
                    }
                }
                var all: [(Int64, IngestOutcome)] = []
                for try await outcome in group { all.append(outcome) }
                return all
            }
            #expect(outcomes.filter { $0.1 == .stored }.count == 80)
            #expect(outcomes.filter { $0.1 == .duplicate }.count == 40)
            #expect(try await store.ingest(report("a-2", 7, at: 1_007), body: nil, receivedAt: 3_000) == .duplicate)
            let stored = try await store.results(agentId: "a-1", since: 0, limit: 10_000)
            #expect(stored.count == 120)
            #expect(Set(stored.map(\.sequence)) == Set(1...40))
            #expect(stored.first?.result.burst?.rttAvgMs == 1)
            #expect(try await store.agent(id: "a-1")?.lastSequence == 40)
        }
    }

    @Test("roll-up: per pair and minute, sent/received from the bursts; pruned report rows still make replays duplicates")
    func rollUpAndPrune() async throws {
        try await withStore { store, _ in
            for sequence in Int64(1)...3 {
                #expect(try await store.ingest(report("a-1", sequence, at: 60_000 + sequence), body: nil, receivedAt: 60_100 + sequence) == .stored)
            }
            #expect(try await store.rollUp(before: 120_000) == 9)
            #expect(try await store.results(agentId: "a-1", since: 0, limit: 100).isEmpty)
            let lost = try await store.rollups(agentId: "a-1", probeId: "p2")
            #expect(lost.map(\.sent) == [15] && lost.map(\.received) == [0])
            let good = try await store.rollups(agentId: "a-1", probeId: "p0")
            #expect(good.map(\.received) == [12] && good.first?.rttP50Ms == 1)
            // The report rows are gone; a replay of 2 is still a duplicate, 4 is new.
            #expect(try await store.ingest(report("a-1", 2, at: 60_002), body: nil, receivedAt: 130_000) == .duplicate)
            #expect(try await store.ingest(report("a-1", 4, at: 125_000), body: nil, receivedAt: 130_000) == .stored)
            #expect(try await store.results(agentId: "a-1", since: 0, limit: 100).count == 3)
        }
    }

    @Test("a report survives closing and reopening the file; the reopened store still knows it")
    func reopen() async throws {
        let directory = NSTemporaryDirectory() + "plumb-store-reopen-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/plumb.sqlite"
        let first = try await SQLiteStore.open(path: path, logger: Logger(label: "test"))
        try await first.saveAgent(AgentRecord(agentId: "a-1", tokenHash: "x", registration: registration("a-1"), registeredAtMs: 0, lastSeenAtMs: 0))
        #expect(try await first.ingest(report("a-1", 1, at: 1_000), body: nil, receivedAt: 1_100) == .stored)
        try await first.close()
        let second = try await SQLiteStore.open(path: path, logger: Logger(label: "test"))
        #expect(try await second.ingest(report("a-1", 1, at: 1_000), body: nil, receivedAt: 1_200) == .duplicate)
        #expect(try await second.results(agentId: "a-1", since: 0, limit: 10).count == 3)
        try await second.close()
    }
}
