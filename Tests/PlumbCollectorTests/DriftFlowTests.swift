import Foundation
import PlumbCollector
import PlumbCore
import PlumbFakes
import PlumbStore
import PlumbWire
import Synchronization
import Testing

@Suite("drift end to end: results in, alerts and signed webhooks out")
struct DriftFlowTests {
    /// Posts one round of results for every agent: `disagree` decides per (agent, probe).
    func round(_ harness: Harness, at time: Int64, sequence: Int64, disagree: (String, ProbeSpec) -> Bool, egressIP: String? = nil) async throws {
        for agent in karmaInstances {
            let plan = try await harness.collector.plan(agentId: agent).plan
            let results = plan.probes.map { probe -> ProbeResult in
                let bad = disagree(agent, probe)
                return result(for: probe, agrees: !bad || probe.expect.egressIP != nil && egressIP != nil, at: time, egressIP: bad ? egressIP : nil)
            }
            _ = try await harness.collector.ingest(
                Report(agentId: agent, sequence: sequence, createdAtMs: time, results: results), agentId: agent, now: time)
        }
    }

    func goesThroughNAT(_ agent: String, _ probe: ProbeSpec) -> Bool {
        probe.id.hasPrefix("egress:") && !["i-bastion", "i-nat"].contains(agent)
            || (probe.id.hasPrefix("endpoint:") && !["i-bastion", "i-nat"].contains(agent))
    }

    @Test("a NAT failure is one nat_failure alert blaming the NAT instance with the private subnets; it resolves after repair")
    func natFailure() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        _ = try await harness.registerAll(karmaInstances)
        var sequence: Int64 = 0
        for step in 0..<3 {
            sequence += 1
            try await round(harness, at: 10_000 + Int64(step) * 1_000, sequence: sequence) { _, _ in false }
        }
        #expect(try await harness.collector.evaluate(now: 13_000).isEmpty)
        for step in 0..<3 {
            sequence += 1
            try await round(harness, at: 20_000 + Int64(step) * 1_000, sequence: sequence, disagree: goesThroughNAT)
        }
        let changes = try await harness.collector.evaluate(now: 23_000)
        let fired = changes.compactMap { change -> Alert? in if case .fired(let alert) = change { return alert } else { return nil } }
        #expect(fired.map(\.kind) == [.natFailure], "\(fired.map { "\($0.kind.rawValue) \($0.component): \($0.summary)" })")
        let alert = try #require(fired.first)
        #expect(alert.component == "nat-karma")
        #expect(alert.evidence.first?.contains("subnet-app-a") == true && alert.evidence.first?.contains("subnet-data-a") == true)
        #expect(await harness.collector.explanation(for: alert)?.hops.contains { $0.component == "nat-karma" } == true)
        for step in 0..<2 {
            sequence += 1
            try await round(harness, at: 30_000 + Int64(step) * 1_000, sequence: sequence) { _, _ in false }
        }
        let after = try await harness.collector.evaluate(now: 32_000)
        #expect(after.count == 1)
        guard case .resolved(let resolved) = after.first else {
            Issue.record("expected the resolution")
            return
        }
        #expect(resolved.id == alert.id)
        #expect(try await harness.store.alertEvents(id: alert.id).map(\.event) == ["firing", "resolved"])
    }

    @Test("the hold-down: a repaired NAT's alert stays open until the NAT has been healthy that long; a relapse within it is the same episode")
    func holdDown() async throws {
        let harness = try await Harness.make(holdDownSeconds: 20)
        defer { harness.cleanup() }
        _ = try await harness.registerAll(karmaInstances)
        var sequence: Int64 = 0
        var time: Int64 = 10_000
        func rounds(_ count: Int, failing: Bool) async throws -> [AlertChange] {
            var changes: [AlertChange] = []
            for _ in 0..<count {
                sequence += 1
                time += 1_000
                try await round(harness, at: time, sequence: sequence, disagree: failing ? goesThroughNAT : { _, _ in false })
                changes += try await harness.collector.evaluate(now: time)
            }
            return changes
        }
        func fired(_ changes: [AlertChange]) -> [Alert] { changes.compactMap { if case .fired(let alert) = $0 { alert } else { nil } } }
        func resolved(_ changes: [AlertChange]) -> [Alert] { changes.compactMap { if case .resolved(let alert) = $0 { alert } else { nil } } }
        _ = try await rounds(3, failing: false)
        let first = fired(try await rounds(3, failing: true))
        #expect(first.map(\.kind) == [.natFailure])
        // Repaired, then failing again within the hold-down: no resolution, no new alert.
        let relapse = try await rounds(3, failing: false) + rounds(3, failing: true)
        #expect(fired(relapse).isEmpty && resolved(relapse).isEmpty)
        // Repaired for good: still open inside the hold-down, resolved once after it.
        let early = try await rounds(10, failing: false)
        #expect(resolved(early).isEmpty)
        let late = try await rounds(15, failing: false)
        #expect(resolved(late).map(\.id) == first.map(\.id))
        #expect((resolved(late).first?.transitions ?? 0) >= 1)
    }

    @Test("the model's probing.failuresToDown/window/successesToUp set the hysteresis: 1 of 1 fires on the first failing round")
    func hysteresisFromModel() async throws {
        let model = NSTemporaryDirectory() + "plumb-hysteresis-\(UUID().uuidString).yaml"
        let text = try String(contentsOfFile: karmaPath, encoding: .utf8).replacingOccurrences(
            of: "  failuresToDown: 3\n  window: 5\n  successesToUp: 2", with: "  failuresToDown: 1\n  window: 1\n  successesToUp: 1")
        #expect(text.contains("failuresToDown: 1"))
        try text.write(toFile: model, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: model) }
        for (path, expected) in [(model, [Finding.Kind.natFailure]), (karmaPath, [])] {
            let harness = try await Harness.make(model: path)
            defer { harness.cleanup() }
            _ = try await harness.registerAll(karmaInstances)
            try await round(harness, at: 10_000, sequence: 1, disagree: goesThroughNAT)
            let kinds = try await harness.collector.evaluate(now: 30_000).compactMap { change -> Finding.Kind? in
                if case .fired(let alert) = change { return alert.kind } else { return nil }
            }
            #expect(kinds == expected, "\(path)")
        }
    }

    @Test("a partial repair does not raise new alerts: pairs stay with the NAT alert until they recover")
    func partialRepair() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        _ = try await harness.registerAll(karmaInstances)
        for step in 0..<3 { try await round(harness, at: 10_000 + Int64(step) * 1_000, sequence: Int64(step + 1), disagree: goesThroughNAT) }
        let fired = try await harness.collector.evaluate(now: 13_000)
        #expect(fired.count == 1)
        // The data tier's flows recover first (they vouch for the NAT again); the app tier's still fail.
        for step in 0..<3 {
            try await round(harness, at: 20_000 + Int64(step) * 1_000, sequence: Int64(step + 4)) { agent, probe in
                self.goesThroughNAT(agent, probe) && !["i-db", "i-queue", "i-cache", "i-zookeeper", "i-redis-a", "i-redis-b"].contains(agent)
            }
            let changes = try await harness.collector.evaluate(now: 20_500 + Int64(step) * 1_000)
            let newAlerts = changes.compactMap { change -> Alert? in if case .fired(let alert) = change { return alert } else { return nil } }
            #expect(newAlerts.isEmpty, "\(newAlerts.map { "\($0.kind.rawValue) \($0.component)" })")
        }
        #expect(try await harness.store.alerts(AlertFilter(status: .firing)).map(\.kind) == [.natFailure])
    }

    @Test("a NAT failure whose pairs cross their thresholds at different times, repaired in between, stays one nat_failure")
    func lateJoiners() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        _ = try await harness.registerAll(karmaInstances)
        let data = ["i-db", "i-queue", "i-cache", "i-zookeeper", "i-redis-a", "i-redis-b"]
        // The NAT fails; the app tier's flows cross their threshold first (three failures), the data tier's have
        // one failure then: the NAT is tied with the app subnet's NACL on the app tier's flows, and the data tier's
        // next results tell them apart, so the finding waits for them.
        for step in 0..<3 {
            try await round(harness, at: 10_000 + Int64(step) * 1_000, sequence: Int64(step + 1)) { agent, probe in
                self.goesThroughNAT(agent, probe) && (!data.contains(agent) || step == 2)
            }
        }
        #expect(try await harness.collector.evaluate(now: 12_500).isEmpty)
        try await round(harness, at: 13_000, sequence: 4) { agent, probe in self.goesThroughNAT(agent, probe) }
        let first = try await harness.collector.evaluate(now: 13_500).compactMap { change -> Alert? in
            if case .fired(let alert) = change { return alert } else { return nil }
        }
        #expect(first.map(\.kind) == [.natFailure])
        // Both tiers in it from the start, and neither private subnet's NACL left as an alternative (the NAT's own
        // subnet's NACL and route table are on every one of these paths: no probe tells them apart).
        #expect(first.first?.pairs.contains { $0.hasPrefix("i-db/") } == true)
        let alternatives = first.first?.alternatives ?? []
        #expect(!alternatives.contains { $0.contains("acl-app") || $0.contains("acl-data") }, "\(alternatives)")
        // Repaired: the app tier recovers, and the data tier's flows (which failed before the repair) only now
        // cross their threshold.
        for step in 0..<3 {
            try await round(harness, at: 20_000 + Int64(step) * 1_000, sequence: Int64(step + 5)) { agent, probe in
                self.goesThroughNAT(agent, probe) && data.contains(agent)
            }
            let fired = try await harness.collector.evaluate(now: 20_500 + Int64(step) * 1_000).compactMap { change -> Alert? in
                if case .fired(let alert) = change { return alert } else { return nil }
            }
            #expect(fired.isEmpty, "\(fired.map { "\($0.kind.rawValue) \($0.component)" })")
        }
        let open = try await harness.store.alerts(AlertFilter(status: .firing))
        #expect(open.map(\.kind) == [.natFailure])
        #expect(open.first?.pairs.contains { $0.hasPrefix("i-db/") } == true)
    }

    @Test("results that arrive long after they were taken (a replayed spool) are stored but do not raise alerts")
    func staleResults() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        _ = try await harness.registerAll(karmaInstances)
        try await round(harness, at: 10_000, sequence: 1) { _, _ in false }
        // Three rounds of NAT failures taken at 11–13 s arrive at 60 s: history.
        for step in 0..<3 {
            let time = 11_000 + Int64(step) * 1_000
            for agent in karmaInstances {
                let plan = try await harness.collector.plan(agentId: agent).plan
                let results = plan.probes.map { result(for: $0, agrees: !goesThroughNAT(agent, $0), at: time) }
                _ = try await harness.collector.ingest(
                    Report(agentId: agent, sequence: Int64(step + 2), createdAtMs: time, results: results), agentId: agent, now: 60_000)
            }
        }
        #expect(try await harness.collector.evaluate(now: 60_500).isEmpty)
        #expect(try await harness.store.results(agentId: "i-app-1", since: 0, limit: 10_000).count > 0)
    }

    @Test("a changed egress IP is egress_ip_changed on the NAT, not a NAT failure")
    func egressChanged() async throws {
        let harness = try await Harness.make()
        defer { harness.cleanup() }
        _ = try await harness.registerAll(karmaInstances)
        for step in 0..<3 {
            try await round(
                harness, at: 10_000 + Int64(step) * 1_000, sequence: Int64(step + 1),
                disagree: { _, probe in probe.expect.egressIP == "203.0.113.10" }, egressIP: "198.51.100.99")
        }
        let kinds = try await harness.collector.evaluate(now: 13_000).compactMap { change -> Finding.Kind? in
            if case .fired(let alert) = change { return alert.kind } else { return nil }
        }
        #expect(kinds == [.egressIPChanged])
    }

    @Test("webhooks: a receiver that fails, then recovers, gets each event once per key, signed; a restart fires nothing twice")
    func webhooks() async throws {
        final class Inbox: Sendable {
            let requests = Mutex<[ServerRequest]>([])
            let failuresLeft = Mutex(2)
        }
        let inbox = Inbox()
        let receiver = try MiniHTTPServer { request in
            if inbox.failuresLeft.withLock({ left in
                defer { left -= 1 }
                return left > 0
            }) {
                return .text("down", status: 503)
            }
            inbox.requests.withLock { $0.append(request) }
            return .text("ok")
        }
        defer { receiver.stop() }
        let receivers = [
            Receiver(
                name: "ops", url: receiver.url + "/hook", format: .plumb, secret: "s3cret", kinds: nil, minimumSeverity: nil,
                repeatIntervalSeconds: nil, maxAgeSeconds: nil),
            Receiver(
                name: "am", url: receiver.url + "/api/v2/alerts", format: .alertmanager, secret: nil, kinds: [.natFailure], minimumSeverity: .warning,
                repeatIntervalSeconds: nil, maxAgeSeconds: nil),
        ]
        let directory = NSTemporaryDirectory() + "plumb-webhook-test-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let harness = try await Harness.make(receivers: receivers, directory: directory)
            _ = try await harness.registerAll(karmaInstances)
            for step in 0..<3 { try await round(harness, at: 10_000 + Int64(step) * 1_000, sequence: Int64(step + 1), disagree: goesThroughNAT) }
            try await harness.collector.evaluate(now: 13_000)
            let notifier = Notifier(collector: harness.collector, store: harness.store, receivers: receivers, logger: quiet)
            // Two 503s, then deliveries; `now` jumps past each backoff.
            var now: Int64 = 13_000
            for _ in 0..<6 {
                try await notifier.deliverDue(now: now)
                now += 400_000
            }
        }
        let delivered = inbox.requests.withLock { $0 }
        #expect(delivered.count == 2)
        let plumb = try #require(delivered.first { $0.path == "/hook" })
        let timestamp = try #require(plumb.headers["plumb-timestamp"])
        let expected = "v1=" + hexString(SHA256.hmac(key: Array("s3cret".utf8), message: Array("\(timestamp).".utf8) + plumb.body))
        #expect(plumb.headers["plumb-signature"] == expected)
        #expect(plumb.headers["idempotency-key"]?.hasSuffix(":firing:ops") == true)
        #expect(plumb.text.contains("\"kind\":\"nat_failure\"") && plumb.text.contains("\"explanation\""))
        let alertmanager = try #require(delivered.first { $0.path == "/api/v2/alerts" })
        #expect(alertmanager.text.hasPrefix("[") && alertmanager.text.contains("\"alertname\":\"nat_failure\""))
        #expect(alertmanager.headers["plumb-signature"] == nil)

        // Restart on the same file: the open alert is known, nothing fires or is delivered again.
        let restarted = try await Harness.make(receivers: receivers, directory: directory)
        defer { restarted.cleanup() }
        for step in 0..<3 { try await round(restarted, at: 40_000 + Int64(step) * 1_000, sequence: Int64(step + 10), disagree: goesThroughNAT) }
        let changes = try await restarted.collector.evaluate(now: 43_000)
        #expect(!changes.contains { if case .fired = $0 { return true } else { return false } })
        let notifier = Notifier(collector: restarted.collector, store: restarted.store, receivers: receivers, logger: quiet)
        #expect(try await notifier.deliverDue(now: 10_000_000) == 0)
        #expect(inbox.requests.withLock { $0.count } == 2)
    }

    @Test("nothing acknowledged is lost across a restart, and a replayed report is not stored twice")
    func restart() async throws {
        let directory = NSTemporaryDirectory() + "plumb-restart-test-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var acknowledged: [Int64] = []
        do {
            let harness = try await Harness.make(directory: directory)
            _ = try await harness.registerAll(["i-app-1"])
            let plan = try await harness.collector.plan(agentId: "i-app-1").plan
            for sequence in 1...5 {
                let report = Report(
                    agentId: "i-app-1", sequence: Int64(sequence), createdAtMs: 0,
                    results: plan.probes.map { result(for: $0, agrees: true, at: Int64(sequence)) })
                let ack = try await harness.collector.ingest(report, agentId: "i-app-1", now: 1_000)
                if ack.stored { acknowledged.append(ack.sequence) }
            }
        }
        let restarted = try await Harness.make(directory: directory)
        defer { restarted.cleanup() }
        let plan = try await restarted.collector.plan(agentId: "i-app-1").plan
        let stored = try await restarted.store.results(agentId: "i-app-1", since: 0, limit: 10_000)
        #expect(Set(stored.map(\.sequence)) == Set(acknowledged))
        let replay = Report(agentId: "i-app-1", sequence: 3, createdAtMs: 0, results: plan.probes.map { result(for: $0, agrees: true, at: 3) })
        #expect(try await restarted.collector.ingest(replay, agentId: "i-app-1", now: 2_000).stored == false)
        #expect(try await restarted.store.results(agentId: "i-app-1", since: 0, limit: 10_000).count == stored.count)
        let again = try await restarted.collector.register(registration("i-app-1"), bearer: "enroll-secret", now: 3_000)
        #expect(again.lastSequence == 5)
    }
}
