import Foundation
import PlumbCollector
import PlumbCore
import PlumbFakes
import PlumbProbes
import PlumbStore
import PlumbWire
import Testing

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1 and a free port, with its own storage in a
/// temporary directory, no clustering, and a null receiver. `stop()` ends it and removes the directory.
final class AlertmanagerProcess {
    static let binary = ProcessInfo.processInfo.environment["PLUMB_ALERTMANAGER"] ?? "/usr/bin/prometheus-alertmanager"

    let directory: String
    private(set) var process = Process()
    private(set) var port = 0
    var url: String { "http://127.0.0.1:\(port)" }

    /// An alert as `GET /api/v2/alerts` lists it.
    struct Listed: Decodable {
        struct Status: Decodable { var state: String }
        var labels: [String: String]
        var startsAt: String
        var endsAt: String
        var status: Status
    }

    /// Starts Alertmanager with `resolveTimeout` (a Go duration such as `5s`) and waits until it is ready.
    init(resolveTimeout: String) async throws {
        directory = NSTemporaryDirectory() + "plumb-alertmanager-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try """
        global:
          resolve_timeout: \(resolveTimeout)
        route:
          receiver: "null"
        receivers:
          - name: "null"
        """.write(toFile: directory + "/alertmanager.yml", atomically: true, encoding: .utf8)
        // The port is free when picked, and may be taken before Alertmanager binds it: then it exits, and we try another.
        for _ in 0..<3 {
            port = freeTCPPort()
            process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = [
                "--config.file=\(directory)/alertmanager.yml", "--storage.path=\(directory)/data", "--web.listen-address=127.0.0.1:\(port)",
                "--cluster.listen-address=", "--log.level=warn",
            ]
            let log = directory + "/alertmanager.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            do { try process.run() } catch {
                stop()
                throw error
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning && ContinuousClock.now < deadline {
                let ready = await Curl.perform(HTTPRequest(url: url + "/-/ready", timeoutMs: 1_000))
                if ready.status == 200 { return }
                try? await Task.sleep(for: .milliseconds(100))
            }
            if process.isRunning { break }
        }
        let text = self.log
        stop()
        throw AlertmanagerError(description: "Alertmanager did not become ready on 127.0.0.1:\(port) within 10 s; its log:\n\(text)")
    }

    struct AlertmanagerError: Error, CustomStringConvertible { var description: String }

    /// What Alertmanager logged.
    var log: String { (try? String(contentsOfFile: directory + "/alertmanager.log", encoding: .utf8)) ?? "" }

    /// Ends the process (SIGTERM, then SIGKILL after 5 s) and removes its directory.
    func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The active alerts named `alertname`.
    func active(_ alertname: String) async throws -> [Listed] {
        let filter = "alertname=\"\(alertname)\"".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let response = await Curl.perform(HTTPRequest(url: url + "/api/v2/alerts?active=true&filter=" + filter, timeoutMs: 3_000))
        guard response.failure == nil, response.status == 200 else {
            throw AlertmanagerError(description: "GET /api/v2/alerts: \(response.status) \(response.errorMessage ?? response.text)")
        }
        return try JSONDecoder().decode([Listed].self, from: Data(response.body))
    }

    /// Posts one alert without `endsAt`, as a client that never re-sends would.
    func postOnce(_ alertname: String) async throws {
        let body = Array(#"[{"labels":{"alertname":"\#(alertname)"}}]"#.utf8)
        let response = await Curl.perform(
            HTTPRequest(method: "POST", url: url + "/api/v2/alerts", headers: [("Content-Type", "application/json")], body: body, timeoutMs: 3_000))
        guard response.status == 200 else { throw AlertmanagerError(description: "POST /api/v2/alerts: \(response.status) \(response.text)") }
    }
}

@Suite("Alertmanager receivers: repeats with endsAt keep a firing alert active; the resolution ends it", .serialized)
struct AlertmanagerTests {
    func goesThroughNAT(_ agent: String, _ probe: ProbeSpec) -> Bool {
        (probe.id.hasPrefix("egress:") || probe.id.hasPrefix("endpoint:")) && !["i-bastion", "i-nat"].contains(agent)
    }

    /// One report from every agent, taken at `at`: the NAT's flows fail while `natDown`.
    func round(_ harness: Harness, at: Int64, sequence: Int64, natDown: Bool) async throws {
        for agent in karmaInstances {
            let plan = try await harness.collector.plan(agentId: agent).plan
            let results = plan.probes.map { result(for: $0, agrees: !(natDown && goesThroughNAT(agent, $0)), at: at) }
            _ = try await harness.collector.ingest(
                Report(agentId: agent, sequence: sequence, createdAtMs: at, results: results), agentId: agent, now: at)
        }
    }

    func fired(_ changes: [AlertChange]) -> [Alert] {
        changes.compactMap { change -> Alert? in if case .fired(let alert) = change { return alert } else { return nil } }
    }

    static let skip = ProcessInfo.processInfo.environment["PLUMB_SKIP_ALERTMANAGER"] == "1"

    @Test(
        "a real Alertmanager (resolve_timeout 5s) keeps a nat_failure active while it fires, and drops it after the repair",
        .disabled(if: skip, "PLUMB_SKIP_ALERTMANAGER=1"), .timeLimit(.minutes(1)))
    func realAlertmanager() async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: AlertmanagerProcess.binary),
            "\(AlertmanagerProcess.binary) is missing: apt-get install -y prometheus-alertmanager (or PLUMB_ALERTMANAGER=PATH; PLUMB_SKIP_ALERTMANAGER=1 skips)"
        )
        let alertmanager = try await AlertmanagerProcess(resolveTimeout: "5s")
        defer { alertmanager.stop() }
        let receiver = Receiver(
            name: "am", url: alertmanager.url + "/api/v2/alerts", format: .alertmanager, kinds: [.natFailure], repeatIntervalSeconds: 2)
        let harness = try await Harness.make(receivers: [receiver])
        defer { harness.cleanup() }
        let notifier = Notifier(collector: harness.collector, store: harness.store, receivers: [receiver], logger: quiet)
        _ = try await harness.registerAll(karmaInstances, now: wallClockMilliseconds())

        // A client that sends once, for comparison: Alertmanager lets it go after resolve_timeout.
        try await alertmanager.postOnce("sent_once")
        var sequence: Int64 = 0
        for _ in 0..<3 {
            sequence += 1
            try await round(harness, at: wallClockMilliseconds(), sequence: sequence, natDown: true)
        }
        let alert = try #require(fired(try await harness.collector.evaluate(now: wallClockMilliseconds())).first { $0.kind == .natFailure })
        let firstSent = wallClockMilliseconds()
        #expect(try await notifier.deliverDue(now: firstSent) == 1)
        #expect(try await alertmanager.active("nat_failure").count == 1)

        // The NAT stays down for 11 s: past resolve_timeout (5 s) and past the first request's endsAt (4 × 2 s).
        var lastReport = firstSent
        while wallClockMilliseconds() < firstSent + 11_000 {
            try await Task.sleep(for: .milliseconds(250))
            let now = wallClockMilliseconds()
            if now - lastReport >= 1_000 {
                sequence += 1
                try await round(harness, at: now, sequence: sequence, natDown: true)
                lastReport = now
            }
            #expect(fired(try await harness.collector.evaluate(now: now)).isEmpty)
            try await notifier.deliverDue(now: now)
        }
        let deliveries = try await harness.store.deliveries(alertId: alert.id, limit: 100)
        let repeats = deliveries.filter { $0.event == "repeat" && $0.deliveredAtMs != nil }
        #expect(repeats.count >= 3, "\(deliveries.map { "\($0.event) \($0.deliveredAtMs.map(String.init) ?? "pending") \($0.lastError ?? "")" })")
        #expect(Set(deliveries.map(\.idempotencyKey)).count == deliveries.count)
        let active = try await alertmanager.active("nat_failure")
        let listed = try #require(active.first, "the nat_failure is no longer active in Alertmanager; its log:\n\(alertmanager.log)")
        #expect(listed.status.state == "active" && listed.labels["fingerprint"] == alert.fingerprint)
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let endsAt = try #require(iso.date(from: listed.endsAt), "endsAt \(listed.endsAt)")
        #expect(endsAt.timeIntervalSince1970 * 1000 > Double(firstSent + 8_000), "endsAt \(listed.endsAt) was not moved on by the repeats")
        #expect(try await alertmanager.active("sent_once").isEmpty, "Alertmanager should have let the alert sent once go after resolve_timeout")
        let elapsed = Double(wallClockMilliseconds() - firstSent) / 1000
        print(
            "alertmanager: \(String(format: "%.1f", elapsed)) s after the firing (resolve_timeout 5s, repeat 2 s): nat_failure \(listed.status.state),"
                + " endsAt \(listed.endsAt), \(repeats.count) repeats delivered; sent_once (no repeats) gone")

        // Repaired: two good rounds bring the pairs up; the resolution goes out with the resolution time as endsAt.
        var resolved: Alert?
        for _ in 0..<4 where resolved == nil {
            sequence += 1
            try await round(harness, at: wallClockMilliseconds(), sequence: sequence, natDown: false)
            resolved = try await harness.collector.evaluate(now: wallClockMilliseconds()).compactMap { change -> Alert? in
                if case .resolved(let alert) = change { return alert } else { return nil }
            }.first
        }
        let resolution = try #require(resolved, "the repair did not resolve the alert")
        #expect(resolution.id == alert.id)
        let repairedAt = wallClockMilliseconds()
        var gone = false
        while !gone && wallClockMilliseconds() < repairedAt + 5_000 {
            try await notifier.deliverDue(now: wallClockMilliseconds())
            gone = try await alertmanager.active("nat_failure").isEmpty
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(gone, "the nat_failure is still active in Alertmanager 5 s after the resolution")
        let resolutionDelivery = try await harness.store.deliveries(alertId: alert.id, limit: 100).first { $0.event == "resolved" }
        #expect(resolutionDelivery?.deliveredAtMs != nil)
        print(
            "alertmanager: after the repair the resolution was delivered and nat_failure is gone from GET /api/v2/alerts?active=true"
                + " (\(String(format: "%.2f", Double(wallClockMilliseconds() - repairedAt) / 1000)) s)")
    }

    /// The `startsAt` and `endsAt` of the alert in an alertmanager body.
    struct Sent: Decodable {
        var startsAt: String
        var endsAt: String?
    }

    /// What `receiver` would be sent for `alert` at `now`.
    static func sent(_ alert: Alert, _ receiver: Receiver, at now: Int64) throws -> Sent {
        let body = WebhookPayload.body(
            alert, event: "repeat", format: receiver.format, explanation: nil, sentAtMs: now, firingEndsAtMs: receiver.firingEndsAt(sentAtMs: now))
        guard let decoded = try JSONDecoder().decode([Sent].self, from: Data(body)).first else {
            throw AlertmanagerProcess.AlertmanagerError(description: "an empty list: \(String(decoding: body, as: UTF8.self))")
        }
        return decoded
    }

    @Test("the alertmanager body: a firing alert's endsAt is endsAtIntervals repeat intervals after the request, a resolved one's is its resolution")
    func body() throws {
        var book = AlertBook()
        let finding = Finding(
            kind: .natFailure, severity: .critical, component: "nat-karma", componentType: "nat", summary: "down", pairs: [], evidence: [])
        guard case .fired(var alert) = book.reconcile([finding], now: 1_000).first else {
            Issue.record("the finding did not fire")
            return
        }
        let defaults = Receiver(name: "am", url: "http://127.0.0.1/", format: .alertmanager)
        #expect(defaults.effectiveRepeatIntervalSeconds == 60)
        #expect(try Self.sent(alert, defaults, at: 60_000).endsAt == "1970-01-01T00:05:00.000Z")  // 60 s + 4 × 60 s
        let short = Receiver(name: "am", url: "http://127.0.0.1/", format: .alertmanager, repeatIntervalSeconds: 2, endsAtIntervals: 3)
        #expect(try Self.sent(alert, short, at: 10_000).endsAt == "1970-01-01T00:00:16.000Z")
        let never = Receiver(name: "am", url: "http://127.0.0.1/", format: .alertmanager, repeatIntervalSeconds: 0)
        #expect(never.effectiveRepeatIntervalSeconds == nil)
        #expect(try Self.sent(alert, never, at: 10_000).endsAt == nil)
        guard case .resolved(let resolved) = book.reconcile([], now: 42_000).first else {
            Issue.record("the alert did not resolve")
            return
        }
        alert = resolved
        #expect(try Self.sent(alert, short, at: 50_000).endsAt == "1970-01-01T00:00:42.000Z")
        // Other formats keep their default (no repeats) and have no endsAt while firing.
        #expect(Receiver(name: "ops", url: "http://127.0.0.1/", format: .plumb).effectiveRepeatIntervalSeconds == nil)
        #expect(Receiver(name: "ops", url: "http://127.0.0.1/", format: .slack).firingEndsAt(sentAtMs: 1) == nil)
        #expect(Receiver(name: "ops", url: "http://127.0.0.1/", format: .plumb, repeatIntervalSeconds: 5).firingEndsAt(sentAtMs: 1) == nil)
    }

    @Test("endsAtIntervals is checked: alertmanager receivers only, 2 or more")
    func configurationCheck() throws {
        var configuration = CollectorConfiguration()
        configuration.receivers = [
            Receiver(name: "ops", url: "http://127.0.0.1/", format: .plumb, endsAtIntervals: 4),
            Receiver(name: "am", url: "http://127.0.0.1/", format: .alertmanager, endsAtIntervals: 1),
        ]
        let error = try #require(throws: CollectorConfiguration.Invalid.self) { try configuration.check(source: "collector.yaml") }
        #expect(error.problems.count == 2)
        #expect(error.problems.first?.contains("receiver 'ops': endsAtIntervals applies to format alertmanager only") == true)
        #expect(error.problems.last?.contains("receiver 'am': endsAtIntervals is 1; use 2 or more") == true)
    }

    @Test("a receiver that is down collects one pending repeat per alert: each new repeat supersedes the one still waiting")
    func supersededRepeats() async throws {
        // Nothing listens on this port: every attempt fails, and the repeats wait in the outbox.
        let receiver = Receiver(name: "am", url: "http://127.0.0.1:\(freeTCPPort())/api/v2/alerts", format: .alertmanager, kinds: [.natFailure])
        let harness = try await Harness.make(receivers: [receiver])
        defer { harness.cleanup() }
        _ = try await harness.registerAll(karmaInstances, now: 10_000)
        for step in 0..<3 { try await round(harness, at: 10_000 + Int64(step) * 1_000, sequence: Int64(step + 1), natDown: true) }
        let alert = try #require(fired(try await harness.collector.evaluate(now: 13_000)).first)
        // The default interval of an alertmanager receiver is 60 s: repeats at 73 s and 133 s, none in between.
        var sequence: Int64 = 3
        for now in stride(from: Int64(23_000), through: 143_000, by: 10_000) {
            sequence += 1
            try await round(harness, at: now - 500, sequence: sequence, natDown: true)
            try await harness.collector.evaluate(now: now)
        }
        let deliveries = try await harness.store.deliveries(alertId: alert.id, limit: 100).sorted { $0.id < $1.id }
        #expect(deliveries.map(\.event) == ["firing", "repeat", "repeat"])
        #expect(deliveries.map(\.createdAtMs) == [13_000, 73_000, 133_000])
        #expect(deliveries[1].gaveUpAtMs == 133_000 && deliveries[1].lastError == "superseded by a later repeat")
        #expect(deliveries[0].gaveUpAtMs == nil && deliveries[2].gaveUpAtMs == nil)
    }
}
