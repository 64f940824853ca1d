import ArgumentParser
import Foundation
import Logging
import PlumbAgent
import PlumbProbes
import ServiceLifecycle
import UnixSignals

/// `plumb-agent`: probes the VPC from this instance and reports to the collector (or, standalone, to a file).
@main
struct PlumbAgentCommand: AsyncParsableCommand {
    static let version = "0.3.0"

    static let configuration = CommandConfiguration(
        commandName: "plumb-agent",
        abstract: "Probe peers, NATs and endpoints from this instance and report to the Plumb collector.",
        discussion: """
            Settings come from the configuration file, then PLUMB_* environment variables, then these flags.
            An https:// collector is verified with collector.caFile (PLUMB_CA_FILE, --ca-file), else the system's CA
            bundle; plain http:// is refused unless the collector is on the loopback or collector.insecure is true.
            Standalone (no collector): plumb-agent --plan plan.yaml --output - runs a static plan and writes one JSON
            report per line. SIGTERM stops the probes, closes the last batch and exits within 5 seconds.
            """,
        version: version)

    @Option(name: .long, help: "Configuration file (YAML or JSON).")
    var config: String?

    @Option(name: .long, help: "The collector's base URL, e.g. https://collector:7470 (http:// only to loopback, or with --insecure).")
    var collector: String?

    @Option(name: .long, help: ArgumentHelp("PEM CA file that verifies an https:// collector (default: the system's CA bundle).", valueName: "FILE"))
    var caFile: String?

    @Option(name: .long, help: ArgumentHelp("PEM client certificate, for a collector that requires one.", valueName: "FILE"))
    var clientCertificate: String?

    @Option(name: .long, help: ArgumentHelp("PEM private key of --client-certificate (default: in the certificate file).", valueName: "FILE"))
    var clientKey: String?

    @Flag(name: .long, help: "Allow plain http:// to a collector that is not on the loopback.")
    var insecure = false

    @Option(name: .long, help: "File holding the enrollment token.")
    var enrollmentTokenFile: String?

    @Option(name: .long, help: "The agent id to register as (default: the instance id).")
    var agentId: String?

    @Option(name: .long, help: "The instance id when IMDS is absent.")
    var instanceId: String?

    @Option(name: .long, help: "The responder's port, UDP and TCP (default 7471; 0 picks one).")
    var responderPort: Int?

    @Option(name: .long, help: "The address the responder binds (default 0.0.0.0).")
    var responderAddress: String?

    @Flag(name: .long, help: "Do not run the responder.")
    var noResponder = false

    @Option(name: .long, help: "Spool directory for reports waiting for the collector (default /var/lib/plumb-agent).")
    var spoolDir: String?

    @Option(name: .long, help: "Spool size bound in bytes (default 64 MiB).")
    var spoolMaxBytes: Int?

    @Option(name: .long, help: "IMDS endpoint (default http://169.254.169.254).")
    var imds: String?

    @Flag(name: .long, help: "Do not ask IMDS; use the kernel's interfaces and the configuration.")
    var noImds = false

    @Option(name: .long, help: "Seconds between discovery passes (default 30).")
    var discoveryInterval: Double?

    @Option(name: .long, help: "Standalone: a static plan file (JSON or YAML); re-read when it changes.")
    var plan: String?

    @Option(name: .long, help: "Standalone: where reports go, a file or - for standard output (default -).")
    var output: String?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "plumb-agent")
        let settings: AgentConfiguration
        do {
            settings = try resolve()
        } catch {
            FileHandle.standardError.write(Data("plumb-agent: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let service = AgentService(configuration: settings, version: Self.version, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as AgentService.StartError {
            FileHandle.standardError.write(Data("plumb-agent: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    private func resolve() throws -> AgentConfiguration {
        var settings = try config.map(AgentConfiguration.load(path:)) ?? AgentConfiguration()
        try settings.apply(environment: ProcessInfo.processInfo.environment)
        if let collector { settings.collectorURL = collector }
        if let caFile { settings.collectorTLS.caFile = caFile }
        if let clientCertificate { settings.collectorTLS.clientCertificateFile = clientCertificate }
        if let clientKey { settings.collectorTLS.clientKeyFile = clientKey }
        if insecure { settings.collectorTLS.insecure = true }
        if let enrollmentTokenFile {
            settings.enrollmentToken = try AgentConfiguration.readSecret(enrollmentTokenFile, what: "--enrollment-token-file")
        }
        if let agentId { settings.agentId = agentId }
        if let instanceId { settings.identity.instanceId = instanceId }
        if let responderPort { settings.responderPort = responderPort }
        if let responderAddress { settings.responderAddress = responderAddress }
        if noResponder { settings.responderEnabled = false }
        if let spoolDir { settings.spoolDirectory = spoolDir }
        if let spoolMaxBytes { settings.spoolMaxBytes = spoolMaxBytes }
        if let imds { settings.imdsEndpoint = imds }
        if noImds { settings.imdsEnabled = false }
        if let discoveryInterval { settings.discoveryIntervalSeconds = discoveryInterval }
        if let plan { settings.planFile = plan }
        if let output { settings.output = output }
        try settings.check(source: "the command line")
        return settings
    }
}
