import Foundation
import Hummingbird
import Logging
import PlumbProbes
import PlumbStore
import Prometheus
import ServiceLifecycle

/// Evaluates on an interval: pair states into findings into alerts and deliveries; rolls up old results each minute.
public struct EvaluationService: Service {
    let collector: Collector
    let interval: Duration
    let logger: Logger

    /// A service evaluating every `interval`.
    public init(collector: Collector, interval: Duration, logger: Logger) {
        self.collector = collector
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        var lastRollUp = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await collector.evaluate(now: wallClockMilliseconds())
                if ContinuousClock.now - lastRollUp > .seconds(60) {
                    lastRollUp = .now
                    let rolled = try await collector.rollUp(now: wallClockMilliseconds())
                    if rolled > 0 { logger.debug("rolled up results", metadata: ["rows": "\(rolled)"]) }
                }
            } catch {
                logger.error("evaluation failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}

/// The whole collector as one Hummingbird application: the API, the evaluation loop and the notifier.
/// `registry` is the Prometheus registry `/metrics` renders (bootstrap swift-metrics with it in `main`).
public func buildApplication(
    configuration: CollectorConfiguration, logger: Logger, registry: PrometheusCollectorRegistry
) async throws -> some ApplicationProtocol {
    let store = try await SQLiteStore.open(path: configuration.sqlitePath, logger: logger)
    let collector = Collector(store: store, configuration: configuration, logger: logger)
    try await collector.start(now: wallClockMilliseconds())
    let router = buildRouter(collector: collector, configuration: configuration, registry: registry)
    return Application(
        router: router, configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "plumb-collector"),
        services: [
            EvaluationService(collector: collector, interval: .milliseconds(Int(configuration.evaluationIntervalSeconds * 1000)), logger: logger),
            Notifier(collector: collector, store: store, receivers: configuration.receivers, logger: logger),
        ],
        logger: logger)
}
