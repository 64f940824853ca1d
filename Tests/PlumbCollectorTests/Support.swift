import Foundation
import Logging
import PlumbCollector
import PlumbCore
import PlumbStore
import PlumbWire

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let karmaPath = repositoryRoot.appendingPathComponent("examples/karma.yaml").path

let quiet: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()

/// A collector over a fresh SQLite file, with karma.yaml loaded.
struct Harness {
    let directory: String
    let store: SQLiteStore
    let collector: Collector
    let configuration: CollectorConfiguration

    /// A collector on a fresh SQLite file. `holdDownSeconds` is 0 by default: these tests step time by hand and expect
    /// a resolution as soon as the pairs agree again; the hold-down has its own tests (PlumbCoreTests, the lab).
    static func make(
        receivers: [Receiver] = [], directory: String? = nil, model: String? = karmaPath, holdDownSeconds: Double? = 0,
        configure: (inout CollectorConfiguration) -> Void = { _ in }
    ) async throws -> Harness {
        let directory = directory ?? NSTemporaryDirectory() + "plumb-collector-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var configuration = CollectorConfiguration()
        configuration.modelPath = model
        configuration.database = directory + "/plumb.sqlite"
        configuration.operatorToken = "operator-secret"
        configuration.enrollmentToken = "enroll-secret"
        configuration.receivers = receivers
        configuration.silenceSeconds = 60
        configuration.holdDownSeconds = holdDownSeconds
        configure(&configuration)
        let store = try await SQLiteStore.open(path: configuration.sqlitePath, logger: quiet)
        let collector = Collector(store: store, configuration: configuration, logger: quiet)
        try await collector.start(now: 1_000)
        return Harness(directory: directory, store: store, collector: collector, configuration: configuration)
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: directory) }

    /// Registers one agent per instance of the model, as `agent-<instance>`, and returns the tokens.
    func registerAll(_ instances: [String], now: Int64 = 1_000) async throws -> [String: String] {
        var tokens: [String: String] = [:]
        for instance in instances {
            let response = try await collector.register(registration(instance), bearer: "enroll-secret", now: now)
            tokens[response.agentId] = response.agentToken
        }
        return tokens
    }
}

let karmaInstances = [
    "i-bastion", "i-nat", "i-web-1", "i-web-2", "i-app-1", "i-app-2", "i-db", "i-queue", "i-cache", "i-zookeeper", "i-redis-a", "i-redis-b",
]

func registration(_ instance: String, interfaces: [InterfaceInfo] = []) -> Registration {
    Registration(
        agentId: instance, identity: AgentIdentity(instanceId: instance, interfaces: interfaces, source: .local), agentVersion: "test",
        capabilities: [.udpEcho, .tcp, .http], responderPort: 7471)
}

/// A result for a planned probe that agrees (`agrees: true`) or disagrees with its expectation.
func result(for probe: ProbeSpec, agrees: Bool, at: Int64, egressIP: String? = nil, instance: String? = nil) -> ProbeResult {
    var outcome: ProbeOutcome
    switch probe.expect.verdict {
    case .reach: outcome = agrees ? .ok : .timeout
    case .block: outcome = agrees ? .timeout : .refused
    }
    var result = ProbeResult(
        probeId: probe.id, kind: probe.kind, target: probe.target, port: probe.port, startedAtMs: at, outcome: outcome, expected: probe.expect.verdict
    )
    if outcome == .ok {
        if let expected = probe.expect.egressIP {
            result.egressIP = egressIP ?? expected
            if result.egressIP != expected { result.checkFailures = ["egress IP: expected \(expected), the echo endpoint saw \(result.egressIP!)"] }
        }
        if let identity = probe.expect.identity {
            let answered = instance ?? identity.instanceId ?? "?"
            result.identity = ResponderIdentity(agentId: answered, instanceId: answered, mac: "", address: probe.target)
            if answered != identity.instanceId {
                result.checkFailures = ["identity: expected instance \(identity.instanceId ?? ""), the responder answered as \(answered)"]
            }
        }
    }
    return result
}
