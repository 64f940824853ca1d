import CoreMetrics
import Foundation
import Logging
import PlumbCore
import PlumbProbes
import PlumbStore
import ServiceLifecycle

/// Webhook payloads, per receiver format.
public enum WebhookPayload {
    /// The body for `alert` and `event` in `format`. `firingEndsAtMs` is the `endsAt` of a firing alert in the
    /// `alertmanager` format (`Receiver.firingEndsAt(sentAtMs:)`); without it a firing alert has none.
    public static func body(
        _ alert: Alert, event: String, format: Receiver.Format, explanation: Explanation?, sentAtMs: Int64, firingEndsAtMs: Int64? = nil
    ) -> [UInt8] {
        let encoder = JSONEncoder.sorted
        switch format {
        case .plumb:
            return Array((try? encoder.encode(PlumbPayload(alert: alert, event: event, explanation: explanation, sentAtMs: sentAtMs))) ?? Data())
        case .slack:
            let icon = alert.status == .resolved ? ":white_check_mark:" : (alert.severity == .critical ? ":rotating_light:" : ":warning:")
            let title =
                "\(icon) *\(alert.status == .resolved ? "RESOLVED" : alert.severity.rawValue.uppercased())* \(alert.kind.rawValue) on `\(alert.component)`"
            var lines = [title, alert.summary]
            if let explanation {
                lines.append(
                    "Intended path: \(explanation.source) → \(explanation.destination) \(explanation.protocol)/\(explanation.port): \(explanation.verdict.rawValue)"
                )
            }
            let evidence = alert.evidence.prefix(5).map { "• \($0)" }.joined(separator: "\n")
            let slack = SlackPayload(
                text: "\(alert.status == .resolved ? "Resolved" : "Firing"): \(alert.kind.rawValue) on \(alert.component): \(alert.summary)",
                blocks: [
                    .init(type: "section", text: .init(type: "mrkdwn", text: lines.joined(separator: "\n"))),
                    .init(type: "section", text: .init(type: "mrkdwn", text: evidence.isEmpty ? "_no evidence_" : evidence)),
                    .init(
                        type: "context", text: nil,
                        elements: [.init(type: "mrkdwn", text: "alert `\(alert.id)` · fingerprint `\(alert.fingerprint)` · event \(event)")]),
                ])
            return Array((try? encoder.encode(slack)) ?? Data())
        case .alertmanager:
            var annotations = ["summary": alert.summary, "description": alert.evidence.joined(separator: "\n")]
            if let alternatives = alert.alternatives, !alternatives.isEmpty { annotations["alternatives"] = alternatives.joined(separator: "\n") }
            if alert.flapping == true { annotations["flapping"] = "\(alert.transitions ?? 0) transitions in this episode" }
            if let explanation {
                annotations["explanation"] = explanation.hops.map { "\($0.component) \($0.outcome.rawValue): \($0.detail)" }.joined(separator: "\n")
            }
            let payload = [
                AlertmanagerAlert(
                    labels: [
                        "alertname": alert.kind.rawValue, "severity": alert.severity.rawValue, "component": alert.component,
                        "component_type": alert.componentType, "fingerprint": alert.fingerprint, "source": "plumb",
                    ], annotations: annotations, startsAt: rfc3339(alert.startsAtMs),
                    endsAt: alert.status == .resolved ? rfc3339(alert.endsAtMs ?? sentAtMs) : firingEndsAtMs.map(rfc3339), generatorURL: nil)
            ]
            return Array((try? encoder.encode(payload)) ?? Data())
        }
    }

    /// The signature headers: `Plumb-Timestamp` (Unix seconds) and `Plumb-Signature: v1=HEX`, the HMAC-SHA256 under
    /// the receiver's secret of `TIMESTAMP + "." + BODY`.
    public static func signature(body: [UInt8], secret: String, timestamp: Int64) -> String {
        "v1=" + hexString(SHA256.hmac(key: Array(secret.utf8), message: Array("\(timestamp).".utf8) + body))
    }

    static func rfc3339(_ ms: Int64) -> String {
        Date(timeIntervalSince1970: Double(ms) / 1000).formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)
        )
        .replacingOccurrences(of: "+0000", with: "Z")
    }

    struct PlumbPayload: Encodable {
        var version = 1
        var event: String
        var alert: Body
        var sentAt: String

        struct Body: Encodable {
            var id: String
            var fingerprint: String
            var kind: String
            var severity: String
            var status: String
            var component: String
            var componentType: String
            var summary: String
            var evidence: [String]
            var pairs: [String]
            var startsAt: String
            var endsAt: String?
            var acknowledgedBy: String?
            var explanation: Explanation?
            var alternatives: [String]?
            var failingPaths: Int?
            var passingPaths: Int?
            var flapping: Bool?
            var transitions: Int?
        }

        init(alert: Alert, event: String, explanation: Explanation?, sentAtMs: Int64) {
            self.event = event
            self.alert = Body(
                id: alert.id, fingerprint: alert.fingerprint, kind: alert.kind.rawValue, severity: alert.severity.rawValue,
                status: alert.status.rawValue,
                component: alert.component, componentType: alert.componentType, summary: alert.summary, evidence: alert.evidence, pairs: alert.pairs,
                startsAt: rfc3339(alert.startsAtMs), endsAt: alert.endsAtMs.map(rfc3339), acknowledgedBy: alert.acknowledgedBy,
                explanation: explanation, alternatives: alert.alternatives, failingPaths: alert.failingPaths, passingPaths: alert.passingPaths,
                flapping: alert.flapping, transitions: alert.transitions)
            sentAt = rfc3339(sentAtMs)
        }
    }

    struct SlackPayload: Encodable {
        struct Text: Encodable {
            var type: String
            var text: String
        }
        struct Block: Encodable {
            var type: String
            var text: Text?
            var elements: [Text]?
        }
        var text: String
        var blocks: [Block]
    }

    struct AlertmanagerAlert: Encodable {
        var labels: [String: String]
        var annotations: [String: String]
        var startsAt: String
        var endsAt: String?
        var generatorURL: String?
    }
}

/// Delivers the outbox: at least once per (alert, event, receiver), retried with exponential backoff and jitter
/// (1 s doubling to `maxBackoffSeconds`, 5 min by default) until `maxAgeSeconds`, each request signed and carrying its idempotency key. Outbound
/// HTTP goes through libcurl on its own blocking pool, never on the cooperative pool.
public struct Notifier: Service {
    let collector: Collector
    let store: any Store
    let receivers: [String: Receiver]
    let logger: Logger
    let pool: BlockingPool
    /// Seconds between outbox scans.
    public var pollInterval: Duration = .milliseconds(500)

    /// A notifier for `receivers`.
    public init(collector: Collector, store: any Store, receivers: [Receiver], logger: Logger) {
        self.collector = collector
        self.store = store
        self.receivers = Dictionary(receivers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.logger = logger
        self.pool = BlockingPool(threads: 4, name: "plumb-webhook")
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                // The leader delivers; claims keep two collectors from sending one delivery even while the lead moves.
                if await collector.isLeader { try await deliverDue(now: wallClockMilliseconds()) }
            } catch {
                logger.error("outbox scan failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: pollInterval)
        }
    }

    /// How long a claimed delivery is this collector's: longer than one request can take (10 s), so a claim lapses
    /// only when its collector died holding it, and then another sends it with the same idempotency key.
    public static let claimLeaseMs: Int64 = 30_000

    /// Claims the deliveries due at `now` and tries each once; returns how many were delivered.
    @discardableResult
    public func deliverDue(now: Int64) async throws -> Int {
        var delivered = 0
        for entry in try await store.claimDeliveries(now: now, limit: 50, owner: collector.collectorId, leaseMs: Self.claimLeaseMs) {
            guard let receiver = receivers[entry.receiver] else {
                try await store.recordAttempt(
                    id: entry.id, at: now, status: 0, error: "receiver \(entry.receiver) is no longer configured", delivered: false,
                    nextAttemptAt: nil,
                    gaveUp: true)
                continue
            }
            guard let alert = try await store.alert(id: entry.alertId) else { continue }
            let explanation = await collector.explanation(for: alert)
            // Built now, from the alert as it is now: a repeat (or a retry) carries the current state, and a firing
            // alert's endsAt counts from this request.
            let body = WebhookPayload.body(
                alert, event: entry.event, format: receiver.format, explanation: explanation, sentAtMs: now,
                firingEndsAtMs: receiver.firingEndsAt(sentAtMs: now))
            var headers: [(String, String)] = [
                ("Content-Type", "application/json"), ("Idempotency-Key", entry.idempotencyKey), ("Plumb-Event", entry.event),
                ("Plumb-Alert-Id", alert.id), ("User-Agent", "plumb-collector/1"),
            ]
            if let secret = receiver.secret {
                let timestamp = now / 1000
                headers.append(("Plumb-Timestamp", String(timestamp)))
                headers.append(("Plumb-Signature", WebhookPayload.signature(body: body, secret: secret, timestamp: timestamp)))
            }
            let response = await Curl.perform(
                HTTPRequest(method: "POST", url: receiver.url, headers: headers, body: body, timeoutMs: 10_000, connectTimeoutMs: 3_000), pool: pool)
            if response.failure == nil && (200...299).contains(response.status) {
                try await store.recordAttempt(
                    id: entry.id, at: now, status: response.status, error: nil, delivered: true, nextAttemptAt: nil, gaveUp: false)
                collector.metrics.delivery("delivered", receiver: entry.receiver)
                delivered += 1
                continue
            }
            let error = response.failure != nil ? (response.errorMessage ?? "transfer failed") : "HTTP \(response.status)"
            let maxAge = Int64(receiver.maxAgeSeconds ?? 86_400) * 1000
            if now - entry.createdAtMs >= maxAge {
                try await store.recordAttempt(
                    id: entry.id, at: now, status: response.status, error: error, delivered: false, nextAttemptAt: nil, gaveUp: true)
                collector.metrics.delivery("gave_up", receiver: entry.receiver)
                logger.error("webhook delivery given up", metadata: ["receiver": "\(receiver.name)", "alert": "\(alert.id)", "error": "\(error)"])
                continue
            }
            let backoff = min(max(1, receiver.maxBackoffSeconds ?? 300) * 1_000, 1_000 * (1 << min(entry.attempts, 20)))
            let next = now + Int64(Double(backoff) * Double.random(in: 0.5...1.0))
            try await store.recordAttempt(
                id: entry.id, at: now, status: response.status, error: error, delivered: false, nextAttemptAt: next, gaveUp: false)
            collector.metrics.delivery("failed", receiver: entry.receiver)
            logger.warning(
                "webhook delivery failed; will retry",
                metadata: ["receiver": "\(receiver.name)", "alert": "\(alert.id)", "error": "\(error)", "attempt": "\(entry.attempts + 1)"])
        }
        return delivered
    }
}

extension Collector {
    /// The engine's explanation of the alert's intended path, over the live model.
    public func explanation(for alert: Alert) -> Explanation? {
        guard let flow = alert.flow, let live else { return nil }
        let proto: IPProtocol = flow.protocol == "udp" ? .udp : .tcp
        return try? live.network.explain(from: flow.source, to: flow.destination, port: flow.port, protocol: proto)
    }
}
