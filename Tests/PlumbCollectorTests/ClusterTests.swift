import Foundation
import PlumbCollector
import PlumbCore
import PlumbFakes
import PlumbStore
import PlumbTestSupport
import PlumbWire
import Synchronization
import Testing

/// Several collectors in this process on one real PostgreSQL database (`PLUMB_TEST_POSTGRES`; CI starts a throwaway
/// cluster with deploy/postgres/test-cluster.sh). Each collector has its own `PostgresStore` (its own pool and its own
/// leadership connection), as separate processes would.
@Suite("several collectors on one PostgreSQL", .enabled(if: TestPostgres.url != nil))
struct ClusterTests {
    static var serverURL: String? { TestPostgres.url }

    /// One collector of the cluster.
    struct Member {
        let store: PostgresStore
        let collector: Collector
    }

    /// A fresh database, `count` collectors on it (the first started first, so it leads), dropped afterwards.
    static func withCluster(
        _ count: Int, receivers: [Receiver] = [], model: String = karmaPath, _ body: ([Member], String) async throws -> Void
    ) async throws {
        let server = try #require(serverURL)
        let name = "plumb_cluster_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        _ = try await PostgresStore.maintenance(url: server, ["CREATE DATABASE \(name)"], logger: quiet)
        let url = try #require(TestPostgres.url(database: name))
        var members: [Member] = []
        do {
            for index in 0..<count {
                var configuration = CollectorConfiguration()
                configuration.modelPath = model
                configuration.database = url
                configuration.operatorToken = "operator-secret"
                configuration.enrollmentToken = "enroll-secret"
                configuration.receivers = receivers
                configuration.silenceSeconds = 60
                configuration.holdDownSeconds = 0
                let store = try await PostgresStore.open(url: url, passwordFile: nil, logger: quiet)
                let collector = Collector(store: store, configuration: configuration, logger: quiet, collectorId: "collector-\(index)")
                try await collector.start(now: 1_000)
                members.append(Member(store: store, collector: collector))
            }
            try await body(members, url)
        } catch {
            for member in members {
                await member.collector.resign()
                await member.store.close()
            }
            _ = try? await PostgresStore.maintenance(url: server, ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)"], logger: quiet)
            throw error
        }
        for member in members {
            await member.collector.resign()
            await member.store.close()
        }
        _ = try await PostgresStore.maintenance(url: server, ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)"], logger: quiet)
    }

    /// One round of results from every karma agent, posted to `via` in turn (agents spread over the collectors).
    func round(_ members: [Member], at time: Int64, sequence: Int64, failing: Bool) async throws {
        for (index, agent) in karmaInstances.enumerated() {
            let via = members[index % members.count].collector
            let plan = try await via.plan(agentId: agent).plan
            let results = plan.probes.map { probe in result(for: probe, agrees: !(failing && Self.goesThroughNAT(agent, probe)), at: time) }
            _ = try await via.ingest(Report(agentId: agent, sequence: sequence, createdAtMs: time, results: results), agentId: agent, now: time)
        }
    }

    static func goesThroughNAT(_ agent: String, _ probe: ProbeSpec) -> Bool {
        (probe.id.hasPrefix("egress:") || probe.id.hasPrefix("endpoint:")) && !["i-bastion", "i-nat"].contains(agent)
    }

    static func fired(_ changes: [AlertChange]) -> [Alert] { changes.compactMap { if case .fired(let alert) = $0 { alert } else { nil } } }
    static func resolved(_ changes: [AlertChange]) -> [Alert] { changes.compactMap { if case .resolved(let alert) = $0 { alert } else { nil } } }

    @Test("registration at one, reports at another; the same plan and ETag everywhere; one leader evaluates and one NAT failure fires once")
    func shareTheWork() async throws {
        try await Self.withCluster(2) { members, _ in
            let (a, b) = (members[0].collector, members[1].collector)
            #expect(await a.isLeader)
            #expect(await !b.isLeader)
            // Register everything at the follower; the leader learns of it at its next sync.
            var tokens: [String: String] = [:]
            for instance in karmaInstances {
                tokens[instance] = try await b.register(registration(instance), bearer: "enroll-secret", now: 2_000).agentToken
            }
            try await a.sync(now: 2_100)
            for instance in karmaInstances {
                // A token issued by one collector works at the other.
                _ = try await a.authenticateAgent(id: instance, bearer: tokens[instance]!)
                let (etagA, planA) = try await a.plan(agentId: instance)
                let (etagB, planB) = try await b.plan(agentId: instance)
                #expect(etagA == etagB && planA == planB, "\(instance): \(etagA) vs \(etagB)")
                #expect(!planA.probes.isEmpty)
            }
            // Reports spread over both; only the leader evaluates.
            var sequence: Int64 = 0
            for step in 0..<3 {
                sequence += 1
                try await round(members, at: 10_000 + Int64(step) * 1_000, sequence: sequence, failing: true)
            }
            #expect(try await b.evaluate(now: 13_000).isEmpty)
            let fired = Self.fired(try await a.evaluate(now: 13_000))
            #expect(fired.map(\.kind) == [.natFailure], "\(fired.map { "\($0.kind.rawValue) \($0.component)" })")
            #expect(fired.first?.component == "nat-karma")
            // The follower shows what the leader stored.
            #expect(await b.currentFindings(now: 13_100).map(\.kind).contains(.natFailure))
            let status = await b.status()
            #expect(status.role == "follower" && status.leaderId == "collector-0")
            #expect(await a.status().role == "leader")
        }
    }

    @Test("a delivery is sent once though two collectors try it at once, and keeps its idempotency key")
    func deliveredOnce() async throws {
        let requests = Mutex<[ServerRequest]>([])
        let receiver = try MiniHTTPServer { request in
            requests.withLock { $0.append(request) }
            usleep(200_000)  // slow, so both notifiers are busy at once
            return .text("ok")
        }
        defer { receiver.stop() }
        let receivers = [
            Receiver(
                name: "ops", url: receiver.url + "/hook", format: .plumb, secret: "s3cret", kinds: nil, minimumSeverity: nil,
                repeatIntervalSeconds: nil, maxAgeSeconds: nil)
        ]
        try await Self.withCluster(2, receivers: receivers) { members, _ in
            for instance in karmaInstances {
                _ = try await members[0].collector.register(registration(instance), bearer: "enroll-secret", now: 2_000)
            }
            try await members[1].collector.sync(now: 2_100)
            for step in 0..<3 { try await round(members, at: 10_000 + Int64(step) * 1_000, sequence: Int64(step + 1), failing: true) }
            #expect(Self.fired(try await members[0].collector.evaluate(now: 13_000)).count == 1)
            let notifiers = members.map { Notifier(collector: $0.collector, store: $0.store, receivers: receivers, logger: quiet) }
            let delivered = try await withThrowingTaskGroup(of: Int.self) { group in
                for notifier in notifiers {
                    group.addTask { try await notifier.deliverDue(now: 14_000) }
                }
                return try await group.reduce(0, +)
            }
            #expect(delivered == 1)
            #expect(requests.withLock { $0.count } == 1)
            #expect(requests.withLock { $0.first?.headers["idempotency-key"] }?.hasSuffix(":firing:ops") == true)
        }
    }

    @Test("acknowledge and topology PUT through a follower reach the leader at its next sync")
    func throughAFollower() async throws {
        try await Self.withCluster(2) { members, _ in
            let (a, b) = (members[0].collector, members[1].collector)
            for instance in karmaInstances { _ = try await a.register(registration(instance), bearer: "enroll-secret", now: 2_000) }
            try await b.sync(now: 2_100)
            for step in 0..<3 { try await round(members, at: 10_000 + Int64(step) * 1_000, sequence: Int64(step + 1), failing: true) }
            let alert = try #require(Self.fired(try await a.evaluate(now: 13_000)).first)
            _ = try await b.acknowledge(alertId: alert.id, by: "oncall", now: 13_500)
            try await a.sync(now: 14_000)
            for step in 0..<2 { try await round(members, at: 14_000 + Int64(step) * 1_000, sequence: Int64(step + 4), failing: true) }
            _ = try await a.evaluate(now: 16_000)
            // The leader's later saves keep the acknowledgement.
            #expect(try await members[0].store.alert(id: alert.id)?.acknowledgedBy == "oncall")
            // A new topology version through the follower: the leader activates it at its next sync.
            let text = try String(contentsOfFile: karmaPath, encoding: .utf8) + "\n# a comment makes a new version\n"
            let version = try await b.putTopology(text, format: "yaml", file: "karma.yaml", author: "test", now: 17_000)
            try await a.sync(now: 17_500)
            #expect(await a.status().topologyVersion == version)
        }
    }

    @Test("the leader's connection dies mid-fault: a follower leads; the open alert is not fired again and resolves once")
    func failover() async throws {
        try await Self.withCluster(3) { members, _ in
            let (a, b, c) = (members[0].collector, members[1].collector, members[2].collector)
            for instance in karmaInstances { _ = try await b.register(registration(instance), bearer: "enroll-secret", now: 2_000) }
            for member in members { try await member.collector.sync(now: 2_100) }
            var sequence: Int64 = 0
            var time: Int64 = 10_000
            for _ in 0..<3 {
                sequence += 1
                time += 1_000
                try await round(members, at: time, sequence: sequence, failing: true)
            }
            let alert = try #require(Self.fired(try await a.evaluate(now: time)).first)
            // The leader dies: its lead goes with its connection (resign closes it, as the server does for a killed
            // process). Exactly one of the others takes the lead at its next sync.
            await a.resign()
            await members[0].store.close()
            let survivors = [members[1], members[2]]
            try await b.sync(now: time + 500)
            try await c.sync(now: time + 500)
            let leaders = [await b.isLeader, await c.isLeader].filter { $0 }
            #expect(leaders.count == 1)
            let leader = await b.isLeader ? b : c
            // The fault goes on: nothing fires again.
            var changes: [AlertChange] = []
            for _ in 0..<2 {
                sequence += 1
                time += 1_000
                try await round(survivors, at: time, sequence: sequence, failing: true)
                changes += try await leader.evaluate(now: time)
            }
            #expect(Self.fired(changes).isEmpty, "\(Self.fired(changes).map(\.kind))")
            // Repaired: it resolves once, as the same alert.
            for _ in 0..<3 {
                sequence += 1
                time += 1_000
                try await round(survivors, at: time, sequence: sequence, failing: false)
                changes += try await leader.evaluate(now: time)
            }
            #expect(Self.resolved(changes).map(\.id) == [alert.id])
            let events = try await members[1].store.alertEvents(id: alert.id).map(\.event)
            #expect(events.filter { $0 == "firing" }.count == 1 && events.filter { $0 == "resolved" }.count == 1)
            // No report was lost or stored twice: every agent's every sequence is stored once.
            let stored = try await members[1].store.results(agentId: "i-app-1", since: 0, limit: 100_000)
            #expect(Set(stored.map(\.sequence)) == Set(1...sequence))
        }
    }
}
