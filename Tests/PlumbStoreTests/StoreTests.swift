import Foundation
import PlumbCore
import PlumbStore
import PlumbWire
import Testing

/// What every `Store` promises, on every backend this run has (`Backend.available`): each test gets a store of its
/// own, on a fresh file or database, with agents a-1 and a-2 registered.
@Suite("the store contract, on every backend")
struct StoreContractTests {
    func withStore(_ backend: Backend, _ body: (any Store, Place) async throws -> Void) async throws {
        try await backend.withPlace { place in
            try await place.withStore { store in
                for agent in ["a-1", "a-2"] { try await store.saveAgent(agentRecord(agent)) }
                try await body(store, place)
            }
        }
    }

    @Test("it says what it is, answers a ping, and is shared only on PostgreSQL", arguments: Backend.available)
    func identity(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            try await store.ping()
            #expect(store.isShared == (backend == .postgres))
            #expect(store.summary.hasPrefix(backend == .postgres ? "postgres " : "sqlite "))
        }
    }

    @Test(
        "concurrent reports share commits; each is stored once, replays and in-batch repeats are duplicates, results come back whole",
        arguments: Backend.available)
    func groupCommit(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let outcomes = try await withThrowingTaskGroup(of: (Int64, IngestOutcome).self) { group in
                // Sequences 1...40 for a-1, each posted twice at once; a-2 posts 1...40 once.
                for sequence in Int64(1)...40 {
                    for agent in ["a-1", "a-1", "a-2"] {
                        group.addTask {
                            (sequence, try await store.ingest(report(agent, sequence, at: 1_000 + sequence), body: nil, receivedAt: 2_000))
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
            #expect(try await store.results(agentId: nil, since: 0, limit: 10_000).count == 240)
            #expect(try await store.results(agentId: nil, since: 1_021, limit: 10_000).count == 120)
            let agent = try await store.agent(id: "a-1")
            #expect(agent?.lastSequence == 40)
            #expect(agent?.lastSeenAtMs == 2_000)
        }
    }

    @Test("a report's body is kept as received; a report of an agent the store does not know is stored all the same", arguments: Backend.available)
    func bodies(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let first = report("a-1", 1, at: 1_000)
            let body = String(decoding: try JSONEncoder().encode(first), as: UTF8.self)
            #expect(try await store.ingest(first, body: body, receivedAt: 1_100) == .stored)
            #expect(try await store.results(agentId: "a-1", since: 0, limit: 10).map(\.result.probeId) == ["p0", "p1", "p2"])
            // A report of an agent the store does not know is stored all the same (the collector authenticates).
            #expect(try await store.ingest(report("a-9", 1, at: 1_000), body: nil, receivedAt: 1_100) == .stored)
        }
    }

    @Test(
        "roll-up: per pair and minute, sent/received from the bursts; pruned report rows still make replays duplicates",
        arguments: Backend.available)
    func rollUpAndPrune(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            for sequence in Int64(1)...3 {
                #expect(try await store.ingest(report("a-1", sequence, at: 60_000 + sequence), body: nil, receivedAt: 60_100 + sequence) == .stored)
            }
            #expect(try await store.rollUp(before: 120_000) == 9)
            #expect(try await store.results(agentId: "a-1", since: 0, limit: 100).isEmpty)
            let lost = try await store.rollups(agentId: "a-1", probeId: "p2")
            #expect(lost.map(\.sent) == [15] && lost.map(\.received) == [0])
            let good = try await store.rollups(agentId: "a-1", probeId: "p0")
            #expect(good.map(\.received) == [12] && good.first?.rttP50Ms == 1)
            #expect(good.map(\.minuteMs) == [60_000])
            // The report rows are gone; a replay of 2 is still a duplicate, 4 is new.
            #expect(try await store.ingest(report("a-1", 2, at: 60_002), body: nil, receivedAt: 130_000) == .duplicate)
            #expect(try await store.ingest(report("a-1", 4, at: 125_000), body: nil, receivedAt: 130_000) == .stored)
            #expect(try await store.results(agentId: "a-1", since: 0, limit: 100).count == 3)
            // Nothing more to roll up before the same time; a second minute adds rows, not counts to the first.
            #expect(try await store.rollUp(before: 120_000) == 0)
            #expect(try await store.rollUp(before: 200_000) == 3)
            #expect(try await store.rollups(agentId: "a-1", probeId: "p0").map(\.minuteMs) == [60_000, 120_000])
        }
    }

    @Test("a report survives closing and reopening the store; the reopened store still knows it", arguments: Backend.available)
    func reopen(backend: Backend) async throws {
        try await backend.withPlace { place in
            try await place.withStore { first in
                try await first.saveAgent(agentRecord("a-1"))
                #expect(try await first.ingest(report("a-1", 1, at: 1_000), body: nil, receivedAt: 1_100) == .stored)
            }
            try await place.withStore { second throws in
                #expect(try await second.ingest(report("a-1", 1, at: 1_000), body: nil, receivedAt: 1_200) == .duplicate)
                #expect(try await second.results(agentId: "a-1", since: 0, limit: 10).count == 3)
                #expect(try await second.agent(id: "a-1")?.lastSequence == 1)
            }
        }
    }

    @Test("agents: saved, replaced (keeping when it registered), listed by id", arguments: Backend.available)
    func agents(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            var record = agentRecord("a-0", at: 5)
            try await store.saveAgent(record)
            record.tokenHash = "rotated"
            record.registeredAtMs = 99
            record.lastSeenAtMs = 50
            try await store.saveAgent(record)
            let stored = try await store.agent(id: "a-0")
            #expect(stored?.tokenHash == "rotated" && stored?.registeredAtMs == 5 && stored?.lastSeenAtMs == 50)
            #expect(stored?.registration == registration("a-0"))
            #expect(try await store.agents().map(\.agentId) == ["a-0", "a-1", "a-2"])
            #expect(try await store.agent(id: "nobody") == nil)
        }
    }

    @Test("topology versions count up; plans are replaced per agent", arguments: Backend.available)
    func topologyAndPlans(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            #expect(try await store.latestTopology() == nil)
            let first = try await store.saveTopology(document: "vpc: 1", format: "yaml", author: "ops", comment: nil, at: 10)
            let second = try await store.saveTopology(document: "{}", format: "json", author: "ci", comment: "second", at: 20)
            #expect(second > first)
            #expect(try await store.latestTopology()?.document == "{}")
            #expect(try await store.topology(version: first)?.document == "vpc: 1")
            let listed = try await store.topologyVersions()
            #expect(listed.map(\.version) == [second, first])
            #expect(listed.map(\.document) == ["", ""] && listed.first?.comment == "second" && listed.last?.comment == nil)
            #expect(try await store.plan(agentId: "a-1") == nil)
            try await store.savePlan(agentId: "a-1", etag: "e1", body: "{}", at: 1)
            try await store.savePlan(agentId: "a-1", etag: "e2", body: "{\"v\":2}", at: 2)
            let plan = try await store.plan(agentId: "a-1")
            #expect(plan?.etag == "e2" && plan?.body == "{\"v\":2}")
        }
    }

    @Test("the feed: reports in insertion order, after the cursor or in its gaps, at most the limit", arguments: Backend.available)
    func feed(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            for sequence in Int64(1)...5 {
                _ = try await store.ingest(report(sequence % 2 == 0 ? "a-2" : "a-1", sequence, at: sequence * 1_000), body: nil, receivedAt: 7_000)
            }
            let all = try await store.feed(after: FeedCursor(), limit: 100)
            #expect(all.map(\.sequence) == [1, 2, 3, 4, 5])
            #expect(all.map(\.agentId) == ["a-1", "a-2", "a-1", "a-2", "a-1"])
            #expect(zip(all, all.dropFirst()).allSatisfy { $0.id < $1.id })
            #expect(all.allSatisfy { $0.receivedAtMs == 7_000 && $0.report.results.count == 3 })
            #expect(all.first?.report == report("a-1", 1, at: 1_000))
            // At most the limit; the cursor then continues after what was read.
            let firstTwo = try await store.feed(after: FeedCursor(), limit: 2)
            #expect(firstTwo.map(\.id) == Array(all.prefix(2).map(\.id)))
            let cursor = FeedCursor().advanced(reading: firstTwo.map(\.id), now: 10_000)
            #expect(try await store.feed(after: cursor, limit: 100).map(\.id) == Array(all.dropFirst(2).map(\.id)))
            // A gap (an id not read) comes back with what follows the cursor; read, it is closed.
            let withGap = FeedCursor(through: all[3].id, gaps: [all[1].id: 10_000])
            let again = try await store.feed(after: withGap, limit: 100)
            #expect(again.map(\.id) == [all[1].id, all[4].id])
            let closed = withGap.advanced(reading: again.map(\.id), now: 11_000)
            #expect(closed.gaps.isEmpty && closed.through == all[4].id)
            #expect(try await store.feed(after: closed, limit: 100).isEmpty)
            // A gap that never fills (a rolled-back insert) is asked for and not found.
            let phantom = FeedCursor(through: all[4].id, gaps: [all[4].id + 1_000: 10_000])
            #expect(try await store.feed(after: phantom, limit: 100).isEmpty)
            // A replay is not in the feed again.
            _ = try await store.ingest(report("a-1", 1, at: 1_000), body: nil, receivedAt: 8_000)
            #expect(try await store.feed(after: closed, limit: 100).isEmpty)
        }
    }

    @Test("pair states with their evidence and the feed cursor: saved together, loaded together", arguments: Backend.available)
    func pairs(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let empty = try await store.loadPairs()
            #expect(empty.pairs.isEmpty && empty.cursor == FeedCursor())
            var down = PairState()
            _ = down.observe(disagrees: true, rttMs: nil, at: 1_000, hysteresis: Hysteresis(failuresToDown: 1, window: 1))
            var up = PairState()
            _ = up.observe(disagrees: false, rttMs: 1.5, at: 1_000, hysteresis: Hysteresis())
            let evidence = PairEvidence(
                reason: .blocked, lastResult: "timeout", observedInstance: "i-web-1", observedEgressIP: "203.0.113.9", answered: true)
            let first: [String: StoredPair] = [
                "a-1/p0": StoredPair(state: down, evidence: evidence), "a-1/p1": StoredPair(state: up, evidence: nil),
                "a-2/p0": StoredPair(state: up, evidence: PairEvidence(reason: nil, lastResult: "ok", observedInstance: nil, observedEgressIP: nil)),
            ]
            let cursor = FeedCursor(through: 42, gaps: [40: 9_000, 41: 9_500])
            try await store.savePairs(first, removed: [], cursor: cursor)
            let loaded = try await store.loadPairs()
            #expect(loaded.pairs == first)
            #expect(loaded.cursor == cursor)
            // Changed ones replace, removed ones go, the others stay; the cursor moves.
            let changed: [String: StoredPair] = ["a-1/p1": StoredPair(state: down, evidence: evidence)]
            let next = FeedCursor(through: 50)
            try await store.savePairs(changed, removed: ["a-2/p0", "never-stored"], cursor: next)
            let after = try await store.loadPairs()
            #expect(after.pairs == ["a-1/p0": first["a-1/p0"]!, "a-1/p1": changed["a-1/p1"]!])
            #expect(after.cursor == next)
        }
    }

    @Test("marks move when an agent is saved, a topology stored or an alert acknowledged, and only then", arguments: Backend.available)
    func marks(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let start = try await store.marks()
            #expect(start.topologyVersion == 0 && start.acknowledgement == 0)
            #expect(start.agentsRevision > 0)  // a-1 and a-2 were saved
            _ = try await store.ingest(report("a-1", 1, at: 1_000), body: nil, receivedAt: 1_000)
            try await store.savePlan(agentId: "a-1", etag: "e", body: "{}", at: 1)
            #expect(try await store.marks() == start)

            try await store.saveAgent(agentRecord("a-3"))
            let agentSaved = try await store.marks()
            #expect(agentSaved.agentsRevision > start.agentsRevision)
            try await store.saveAgent(agentRecord("a-1"))  // saving again moves it again
            #expect(try await store.marks().agentsRevision > agentSaved.agentsRevision)

            let version = try await store.saveTopology(document: "x", format: "yaml", author: "ops", comment: nil, at: 1)
            #expect(try await store.marks().topologyVersion == version)

            let before = try await store.marks()
            try await store.saveAlert(alert("alert-1", at: 1_000), event: "firing", at: 1_000, deliveries: [])
            #expect(try await store.marks() == before)
            #expect(try await store.acknowledgements(after: 0).isEmpty)
            var acknowledged = alert("alert-1", at: 1_000)
            acknowledged.acknowledgedBy = "ops"
            try await store.saveAlert(acknowledged, event: "acknowledged", at: 2_000, deliveries: [])
            let marked = try await store.marks()
            #expect(marked.acknowledgement > 0 && marked.topologyVersion == before.topologyVersion && marked.agentsRevision == before.agentsRevision)
            #expect(
                try await store.acknowledgements(after: 0)
                    == [AcknowledgementEvent(eventId: marked.acknowledgement, alertId: "alert-1", by: "ops", atMs: 2_000)])
            #expect(try await store.acknowledgements(after: marked.acknowledgement).isEmpty)
            try await store.saveAlert(alert("alert-2", at: 3_000), event: "firing", at: 3_000, deliveries: [])
            try await store.saveAlert(alert("alert-2", at: 3_000), event: "acknowledged", at: 3_500, deliveries: [])
            #expect(try await store.acknowledgements(after: marked.acknowledgement).map(\.alertId) == ["alert-2"])
            #expect(try await store.acknowledgements(after: 0).map(\.alertId) == ["alert-1", "alert-2"])
        }
    }

    @Test("alerts: saved with their events and deliveries in one go, filtered, newest first", arguments: Backend.available)
    func alerts(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            try await store.saveAlert(
                alert("old", at: 1_000, component: "nat-a"), event: "firing", at: 1_000, deliveries: [delivery("k-old", alertId: "old", at: 1_000)])
            try await store.saveAlert(
                alert("new", at: 2_000, component: "nat-b"), event: "firing", at: 2_000, deliveries: [delivery("k-new", alertId: "new", at: 2_000)])
            try await store.saveAlert(alert("old", status: .resolved, at: 1_000, component: "nat-a"), event: "resolved", at: 3_000, deliveries: [])
            #expect(try await store.alerts(AlertFilter()).map(\.id) == ["new", "old"])
            #expect(try await store.alerts(AlertFilter(status: .firing)).map(\.id) == ["new"])
            #expect(try await store.alerts(AlertFilter(component: "nat-a")).map(\.id) == ["old"])
            #expect(try await store.alerts(AlertFilter(kind: .natFailure, severity: .critical, limit: 1)).map(\.id) == ["new"])
            #expect(try await store.alerts(AlertFilter(kind: .agentSilent)).isEmpty)
            #expect(try await store.alert(id: "old")?.status == .resolved)
            #expect(try await store.alert(id: "old")?.summary == "NAT nat-a drops egress")
            #expect(try await store.alert(id: "missing") == nil)
            let events = try await store.alertEvents(id: "old")
            #expect(events.map(\.event) == ["firing", "resolved"] && events.map(\.atMs) == [1_000, 3_000])
            #expect(try await store.deliveries(alertId: nil, limit: 10).map(\.idempotencyKey) == ["k-new", "k-old"])
            #expect(try await store.deliveries(alertId: "old", limit: 10).map(\.idempotencyKey) == ["k-old"])
        }
    }

    @Test(
        "the outbox: queued once per key, due in order, claimed by one owner until the lease lapses or an attempt is recorded",
        arguments: Backend.available)
    func outbox(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            try await store.enqueue([delivery("k1", at: 100), delivery("k2", at: 200), delivery("k3", at: 5_000)])
            try await store.enqueue([delivery("k1", at: 300)])  // the same key again: ignored
            #expect(try await store.deliveries(alertId: nil, limit: 10).count == 3)
            #expect(try await store.dueDeliveries(now: 1_000, limit: 10).map(\.idempotencyKey) == ["k1", "k2"])

            let claimed = try await store.claimDeliveries(now: 1_000, limit: 10, owner: "c-1", leaseMs: 30_000)
            #expect(claimed.map(\.idempotencyKey) == ["k1", "k2"])
            #expect(try await store.claimDeliveries(now: 1_001, limit: 10, owner: "c-2", leaseMs: 30_000).isEmpty)
            // A retry ends the claim; it is due again at its next attempt, for anyone.
            let k1 = claimed[0]
            try await store.recordAttempt(id: k1.id, at: 1_100, status: 500, error: "HTTP 500", delivered: false, nextAttemptAt: 2_000, gaveUp: false)
            #expect(try await store.claimDeliveries(now: 1_500, limit: 10, owner: "c-2", leaseMs: 30_000).isEmpty)
            let retried = try await store.claimDeliveries(now: 2_000, limit: 10, owner: "c-2", leaseMs: 30_000)
            #expect(retried.map(\.idempotencyKey) == ["k1"] && retried.first?.attempts == 1 && retried.first?.lastError == "HTTP 500")
            // k2's lease (until 31,000) lapses: offered again, with k3, now due.
            #expect(try await store.claimDeliveries(now: 31_000, limit: 10, owner: "c-3", leaseMs: 30_000).map(\.idempotencyKey) == ["k3"])
            let lapsed = try await store.claimDeliveries(now: 31_001, limit: 10, owner: "c-3", leaseMs: 30_000)
            #expect(lapsed.map(\.idempotencyKey) == ["k2"])
            // Delivered and given up ones are done.
            try await store.recordAttempt(id: lapsed[0].id, at: 31_100, status: 200, error: nil, delivered: true, nextAttemptAt: nil, gaveUp: false)
            try await store.recordAttempt(id: k1.id, at: 31_200, status: 500, error: "again", delivered: false, nextAttemptAt: nil, gaveUp: true)
            #expect(try await store.dueDeliveries(now: 100_000, limit: 10).map(\.idempotencyKey) == ["k3"])
            let k3 = try await store.claimDeliveries(now: 100_000, limit: 10, owner: "c-4", leaseMs: 30_000)
            #expect(k3.map(\.idempotencyKey) == ["k3"])
            try await store.recordAttempt(id: k3[0].id, at: 100_100, status: 204, error: nil, delivered: true, nextAttemptAt: nil, gaveUp: false)
            let done = try await store.deliveries(alertId: nil, limit: 10)
            #expect(done.first { $0.idempotencyKey == "k2" }?.deliveredAtMs == 31_100)
            #expect(done.first { $0.idempotencyKey == "k1" }?.gaveUpAtMs == 31_200)
            #expect(done.first { $0.idempotencyKey == "k1" }?.attempts == 2)
            #expect(try await store.dueDeliveries(now: 1_000_000, limit: 10).isEmpty)
            // At most the limit, oldest first.
            try await store.enqueue((10..<20).map { delivery("m\($0)", at: Int64(200_000 + $0)) })
            #expect(
                try await store.claimDeliveries(now: 300_000, limit: 3, owner: "c-5", leaseMs: 1).map(\.idempotencyKey) == ["m10", "m11", "m12"])
        }
    }

    @Test("the leader record: none, then the last one recorded", arguments: Backend.available)
    func leaderRecord(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            #expect(try await store.leader() == nil)
            try await store.recordLeader(LeaderRecord(collectorId: "c-1", sinceMs: 1_000, confirmedAtMs: 1_000))
            try await store.recordLeader(LeaderRecord(collectorId: "c-1", sinceMs: 1_000, confirmedAtMs: 6_000))
            #expect(try await store.leader() == LeaderRecord(collectorId: "c-1", sinceMs: 1_000, confirmedAtMs: 6_000))
            try await store.recordLeader(LeaderRecord(collectorId: "c-2", sinceMs: 9_000, confirmedAtMs: 9_000))
            #expect(try await store.leader()?.collectorId == "c-2")
        }
    }

    @Test("a leadership can be taken, confirmed and given up", arguments: Backend.available)
    func leadership(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let claim = store.leadership(collectorId: "c-1")
            #expect(await claim.acquireOrConfirm(now: 1_000))
            #expect(await claim.acquireOrConfirm(now: 2_000))
            await claim.release()
        }
    }
}

@Suite("the feed cursor")
struct FeedCursorTests {
    @Test("ids skipped become gaps, gaps read are closed, gaps older than their lifetime are dropped")
    func advancing() {
        let cursor = FeedCursor().advanced(reading: [1, 2, 5], now: 1_000)
        #expect(cursor.through == 5 && cursor.gaps == [3: 1_000, 4: 1_000])
        let filled = cursor.advanced(reading: [3, 6], now: 2_000)
        #expect(filled.through == 6 && filled.gaps == [4: 1_000])
        let aged = filled.advanced(reading: [], now: 1_000 + FeedCursor.gapLifetimeMs)
        #expect(aged.through == 6 && aged.gaps.isEmpty)
    }

    @Test("it round-trips through JSON, gaps and all")
    func coding() throws {
        let cursor = FeedCursor(through: 9, gaps: [3: 100, 7: 200])
        #expect(try JSONDecoder().decode(FeedCursor.self, from: JSONEncoder().encode(cursor)) == cursor)
    }
}

/// A file that is not a database is an error to open, with the reason, never a crash (SQLiteNIO asserts on a
/// connection dropped open; the collector exits 2 with the message).
@Suite("opening a store that cannot be opened")
struct StoreOpenFailureTests {
    @Test("a file of random bytes: StoreError.open naming the file, no assertion")
    func notADatabase() async throws {
        let directory = NSTemporaryDirectory() + "plumb-corrupt-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/plumb.sqlite"
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<8_192).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        do {
            let store = try await SQLiteStore.open(path: path, logger: testLogger)
            try await store.close()
            Issue.record("random bytes opened as a database")
        } catch let error as StoreError {
            #expect(error.description.contains(path), "\(error)")
            #expect(error.description.contains("not a database"), "\(error)")
        }
    }
}
