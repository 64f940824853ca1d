import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import PlumbCollector
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `plumb-collector`: holds the intended topology, plans the agents' probes, compares what they observe with the
/// model and raises drift alerts to webhooks.
@main
struct PlumbCollectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plumb-collector",
        abstract: "The Plumb collector: topology, plans, ingest, drift alerts, webhooks, API.",
        version: "0.4.0",
        subcommands: [Serve.self, Demo.self, TokenCommand.self],
        defaultSubcommand: Serve.self)
}

/// `plumb-collector [serve]`: the collector.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the collector (the default).",
        discussion: """
            plumb-collector --model FILE --db PATH --listen HOST:PORT
            Settings come from --config FILE, then PLUMB_* environment variables (PLUMB_OPERATOR_TOKEN(_FILE),
            PLUMB_ENROLLMENT_TOKEN(_FILE), PLUMB_DB, PLUMB_DB_PASSWORD_FILE, PLUMB_COLLECTOR_ID, PLUMB_LISTEN, PLUMB_MODEL),
            then these flags. Without --db the store is plumb.sqlite in the working directory.
            Several collectors: --db postgres://USER@HOST:PORT/DB[?sslmode=require] on each, with the password in
            --db-password-file or PGPASSWORD (never in the URL); one leads (evaluates, delivers), the others follow.
            TLS: --tls-certificate FILE --tls-key FILE (PLUMB_TLS_CERTIFICATE, PLUMB_TLS_KEY, or tls: in the file) serve
            HTTPS; --tls-client-ca FILE (PLUMB_TLS_CLIENT_CA) requires client certificates signed by that CA. SIGHUP
            re-reads the certificate and key without closing any connection.
            """)

    @Option(help: "Configuration file (YAML or JSON).") var config: String?
    @Option(help: "The topology model to load (kept as a new version when it differs from the stored one).") var model: String?
    @Option(help: "The store: a SQLite file path (default plumb.sqlite) or postgres://USER@HOST:PORT/DB[?sslmode=…].") var db: String?
    @Option(help: "File holding the PostgreSQL password (else PGPASSWORD).") var dbPasswordFile: String?
    @Option(help: "This collector's id in status and logs (default HOST:PORT).") var id: String?
    @Option(help: "HOST:PORT to listen on (default 127.0.0.1:7470).") var listen: String?
    @Option(help: "File holding the operator token.") var operatorTokenFile: String?
    @Option(help: "File holding the enrollment token.") var enrollmentTokenFile: String?
    @Option(help: "Named operator tokens, read or admin, as hashes (plumb-collector token add); re-read when it changes.")
    var operatorTokensFile: String?
    @Option(help: ArgumentHelp("PEM certificate chain of the listener (serves HTTPS; needs --tls-key).", valueName: "FILE"))
    var tlsCertificate: String?
    @Option(help: ArgumentHelp("PEM private key of --tls-certificate.", valueName: "FILE")) var tlsKey: String?
    @Option(help: ArgumentHelp("PEM CA certificates; clients must present a certificate signed by one (mTLS).", valueName: "FILE"))
    var tlsClientCa: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "plumb-collector")
        var settings: CollectorConfiguration
        do {
            settings = try config.map(CollectorConfiguration.load(path:)) ?? CollectorConfiguration()
            try settings.apply(environment: ProcessInfo.processInfo.environment)
            if let model { settings.modelPath = model }
            if let db { settings.database = db }
            if let dbPasswordFile { settings.databasePasswordFile = dbPasswordFile }
            if let id { settings.collectorId = id }
            if let listen { try settings.setListen(listen, source: "--listen") }
            settings.setTLS(certificateFile: tlsCertificate, keyFile: tlsKey, clientCAFile: tlsClientCa)
            if let operatorTokenFile {
                settings.operatorToken = try CollectorConfiguration.readSecret(operatorTokenFile, what: "--operator-token-file")
            }
            if let operatorTokensFile { settings.operatorTokensFile = operatorTokensFile }
            if let enrollmentTokenFile {
                settings.enrollmentToken = try CollectorConfiguration.readSecret(enrollmentTokenFile, what: "--enrollment-token-file")
            }
            try settings.check(source: "the command line")
            guard settings.enrollmentToken != nil else {
                throw CollectorConfiguration.Invalid(problems: [
                    "no enrollment token: agents could not register. Set PLUMB_ENROLLMENT_TOKEN(_FILE), --enrollment-token-file or tokens.enrollmentToken(File)"
                ])
            }
            if settings.operatorToken == nil && settings.operatorTokensFile == nil {
                logger.warning(
                    "no operator token: the operator routes answer 403. Set --operator-tokens-file, PLUMB_OPERATOR_TOKEN(_FILE) or --operator-token-file"
                )
            }
        } catch {
            FileHandle.standardError.write(Data("plumb-collector: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(CollectorMetrics.factory(registry: registry))
        let reloader = CollectorReloader()
        let app: any ApplicationProtocol
        do {
            app = try await buildApplication(configuration: settings, logger: logger, registry: registry, reloader: reloader)
        } catch {
            FileHandle.standardError.write(Data("plumb-collector: \(error)\n".utf8))
            throw ExitCode(2)
        }
        logger.info(
            "listening",
            metadata: [
                "address": "\(settings.tls == nil ? "http" : "https")://\(settings.host):\(settings.port)",
                "store": "\(settings.isPostgres ? settings.database : settings.sqlitePath)",
            ])
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: app), .init(service: ReloadOnSIGHUP(reloader: reloader, logger: logger))],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Runs `reloader.reload()` on each SIGHUP, one after the other, until the collector shuts down.
struct ReloadOnSIGHUP: Service {
    let reloader: CollectorReloader
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            let names = reloader.names
            guard !names.isEmpty else {
                logger.notice("SIGHUP: nothing to reload (the collector reloads its TLS files; none are configured)")
                continue
            }
            logger.notice("SIGHUP: reloading", metadata: ["what": "\(names.joined(separator: ", "))"])
            await reloader.reload()
        }
    }
}
