import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import PlumbProbes
import PlumbStore
import Prometheus
import ServiceLifecycle

/// The collector's loop: every second it syncs with the store (the lead confirmed or taken, what other collectors
/// changed picked up); every evaluation interval the leader evaluates; each minute the leader rolls up old results.
/// A store that stops answering is logged once per outage, not once per second.
public struct EvaluationService: Service {
    let collector: Collector
    let interval: Duration
    let logger: Logger
    /// Time between syncs.
    public var syncInterval: Duration = .seconds(1)

    /// A service evaluating every `interval`.
    public init(collector: Collector, interval: Duration, logger: Logger) {
        self.collector = collector
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        var lastRollUp = ContinuousClock.now
        var lastMetrics = ContinuousClock.now - .seconds(10)
        var lastEvaluation = ContinuousClock.now - interval
        var failing = false
        let tick = min(interval, syncInterval)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await collector.sync(now: wallClockMilliseconds())
                if ContinuousClock.now - lastEvaluation >= interval - .milliseconds(50) {
                    lastEvaluation = .now
                    try await collector.evaluate(now: wallClockMilliseconds())
                }
                if ContinuousClock.now - lastMetrics >= .seconds(5) {
                    lastMetrics = .now
                    await collector.recordMetrics(now: wallClockMilliseconds())
                }
                if ContinuousClock.now - lastRollUp > .seconds(60) {
                    lastRollUp = .now
                    let rolled = try await collector.rollUp(now: wallClockMilliseconds())
                    if rolled > 0 { logger.debug("rolled up results", metadata: ["rows": "\(rolled)"]) }
                }
                if failing {
                    failing = false
                    logger.notice("the store answers again")
                }
            } catch {
                if !failing { logger.error("sync or evaluation failed; retrying every second", metadata: ["error": "\(error)"]) }
                failing = true
            }
            try? await Task.sleep(for: tick)
        }
        await collector.resign()
    }
}

/// The whole collector as one Hummingbird application: the API, the evaluation loop and the notifier.
/// `registry` is the Prometheus registry `/metrics` renders (bootstrap swift-metrics with it in `main`).
/// With `configuration.tls` the listener speaks HTTPS (and with a client CA, requires client certificates); its
/// certificate is re-read by `reloader.reload()`. `onServerRunning` runs once the listener is bound (its channel
/// tells the port when `configuration.port` is 0).
public func buildApplication(
    configuration: CollectorConfiguration, logger: Logger, registry: PrometheusCollectorRegistry, reloader: CollectorReloader = CollectorReloader(),
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    try await buildApplication(
        configuration: configuration, store: try await openStore(configuration: configuration, logger: logger), logger: logger, registry: registry,
        reloader: reloader, onServerRunning: onServerRunning)
}

/// The whole collector over a store opened by the caller (any `Store`: SQLite, PostgreSQL).
public func buildApplication(
    configuration: CollectorConfiguration, store: any Store, logger: Logger, registry: PrometheusCollectorRegistry,
    reloader: CollectorReloader = CollectorReloader(), onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    // A connection idle (or still sending its request head) for idleTimeoutSeconds is closed; at most maxConnections
    // are served at once, the rest wait in the backlog, so the collector never runs out of descriptors in accept.
    let channel = HTTP1Channel.Configuration(idleTimeout: .milliseconds(Int64(configuration.idleTimeoutSeconds * 1000)))
    var server = HTTPServerBuilder.http1(configuration: channel)
    if let files = configuration.tls {
        let tls = try await ServerTLS.open(files: files, logger: logger, metrics: PrometheusMetricsFactory(registry: registry))
        reloader.add("tls") { await tls.reload() }
        server = .http1(tls: tls, configuration: channel)
    }
    let maxConnections = configuration.maxConnections ?? defaultMaxConnections()
    let collector = Collector(store: store, configuration: configuration, logger: logger)
    try await collector.start(now: wallClockMilliseconds())
    reloader.add("operator tokens") { collector.reloadTokens(force: true) }
    let router = buildRouter(collector: collector, configuration: configuration, registry: registry)
    return Application(
        router: router, server: server,
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "plumb-collector",
            availableConnectionsDelegate: .maximum(maxConnections, logger: logger)),
        services: [
            EvaluationService(collector: collector, interval: .milliseconds(Int(configuration.evaluationIntervalSeconds * 1000)), logger: logger),
            Notifier(collector: collector, store: store, receivers: configuration.receivers, logger: logger),
        ],
        onServerRunning: onServerRunning, logger: logger)
}

/// The connections served at once when the configuration does not say: the descriptor limit less 128 for the store,
/// webhooks, files and the listener, between 16 and 10,000.
func defaultMaxConnections() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1_000 }
    let soft = Int(min(limit.rlim_cur, 1_000_000))
    return min(10_000, max(16, soft - 128))
}
