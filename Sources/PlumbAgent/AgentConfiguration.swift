import Foundation
import PlumbCore
import PlumbModelIO
import PlumbProbes

/// The agent's settings: a YAML (or JSON) file, then environment variables, then flags, each overriding the one
/// before.
public struct AgentConfiguration: Sendable, Equatable {
    /// The collector's base URL (`http://collector:7470`); nil runs standalone with `planFile`.
    public var collectorURL: String?
    /// How the collector is verified (`collector.caFile`), the client certificate it may require, and whether plain
    /// HTTP to a non-loopback collector is allowed (`collector.insecure`).
    public var collectorTLS = CollectorTLS()
    /// The enrollment token that lets the agent register.
    public var enrollmentToken: String?
    /// The agent id to ask for; default: the instance id.
    public var agentId: String?
    /// Identity used when IMDS is absent (and to fill what it lacks).
    public var identity = IdentityOverrides()
    /// Responder address and port.
    public var responderAddress = "0.0.0.0"
    public var responderPort = 7471
    /// Responder answers per second at most.
    public var responderMaxRepliesPerSecond = 2_000.0
    /// Whether to run the responder at all.
    public var responderEnabled = true
    /// The spool directory and its size bound.
    public var spoolDirectory = "/var/lib/plumb-agent"
    public var spoolMaxBytes = 64 * 1024 * 1024
    /// IMDS endpoint, and whether to try it.
    public var imdsEndpoint = "http://169.254.169.254"
    public var imdsEnabled = true
    /// Seconds between two discovery passes.
    public var discoveryIntervalSeconds = 30.0
    /// A static plan (standalone mode).
    public var planFile: String?
    /// Where standalone reports go: a file path or `-` for standard output.
    public var output: String?

    /// Identity given by configuration.
    public struct IdentityOverrides: Sendable, Equatable, Decodable {
        /// Instance id.
        public var instanceId: String?
        /// Availability zone.
        public var zone: String?
        /// Region.
        public var region: String?
        /// ENIs by MAC, for hosts without IMDS.
        public var interfaces: [InterfaceOverride]?

        /// No overrides.
        public init(instanceId: String? = nil, zone: String? = nil, region: String? = nil, interfaces: [InterfaceOverride]? = nil) {
            self.instanceId = instanceId
            self.zone = zone
            self.region = region
            self.interfaces = interfaces
        }
    }

    /// What configuration says about one interface (matched by MAC).
    public struct InterfaceOverride: Sendable, Equatable, Decodable {
        public var mac: String
        public var interfaceId: String?
        public var subnetId: String?
        public var vpcId: String?
        public var deviceNumber: Int?
        public var securityGroupIds: [String]?
        public var publicIPv4s: [String]?
    }

    /// Defaults everywhere.
    public init() {}

    // The file's shape.
    private struct File: Decodable {
        struct Collector: Decodable {
            var url: String?
            var enrollmentToken: String?
            var enrollmentTokenFile: String?
            var caFile: String?
            var clientCertificateFile: String?
            var clientKeyFile: String?
            var insecure: Bool?
        }
        struct Agent: Decodable { var id: String? }
        struct Responder: Decodable {
            var enabled: Bool?
            var address: String?
            var port: Int?
            var maxRepliesPerSecond: Double?
        }
        struct Spool: Decodable {
            var directory: String?
            var maxBytes: Int?
        }
        struct IMDS: Decodable {
            var enabled: Bool?
            var endpoint: String?
        }
        struct Discovery: Decodable { var intervalSeconds: Double? }
        struct Standalone: Decodable {
            var plan: String?
            var output: String?
        }
        var collector: Collector?
        var agent: Agent?
        var identity: IdentityOverrides?
        var responder: Responder?
        var spool: Spool?
        var imds: IMDS?
        var discovery: Discovery?
        var standalone: Standalone?
    }

    /// A configuration that cannot be used; `description` lists every problem with its location.
    public struct Invalid: Error, CustomStringConvertible {
        /// The problems, one per line.
        public var problems: [String]
        public var description: String { problems.joined(separator: "\n") }
    }

    /// Reads `path` over the defaults. Every problem comes back at once, as `FILE:LINE:COLUMN: error: …`.
    public static func load(path: String) throws -> AgentConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Invalid(problems: ["\(path): cannot read the configuration file: \(error.localizedDescription)"])
        }
        let decoded = DocumentParser.decode(File.self, text: text, file: path)
        guard let file = decoded.value else { throw Invalid(problems: decoded.diagnostics.map(\.description)) }
        var configuration = AgentConfiguration()
        configuration.collectorURL = file.collector?.url
        configuration.enrollmentToken = file.collector?.enrollmentToken
        configuration.collectorTLS = CollectorTLS(
            caFile: file.collector?.caFile, clientCertificateFile: file.collector?.clientCertificateFile,
            clientKeyFile: file.collector?.clientKeyFile, insecure: file.collector?.insecure ?? false)
        if let tokenFile = file.collector?.enrollmentTokenFile {
            configuration.enrollmentToken = try readSecret(tokenFile, what: "collector.enrollmentTokenFile in \(path)")
        }
        configuration.agentId = file.agent?.id
        configuration.identity = file.identity ?? IdentityOverrides()
        if let responder = file.responder {
            configuration.responderEnabled = responder.enabled ?? true
            configuration.responderAddress = responder.address ?? configuration.responderAddress
            configuration.responderPort = responder.port ?? configuration.responderPort
            configuration.responderMaxRepliesPerSecond = responder.maxRepliesPerSecond ?? configuration.responderMaxRepliesPerSecond
        }
        configuration.spoolDirectory = file.spool?.directory ?? configuration.spoolDirectory
        configuration.spoolMaxBytes = file.spool?.maxBytes ?? configuration.spoolMaxBytes
        configuration.imdsEnabled = file.imds?.enabled ?? true
        configuration.imdsEndpoint = file.imds?.endpoint ?? configuration.imdsEndpoint
        configuration.discoveryIntervalSeconds = file.discovery?.intervalSeconds ?? configuration.discoveryIntervalSeconds
        configuration.planFile = file.standalone?.plan
        configuration.output = file.standalone?.output
        try configuration.check(source: path)
        return configuration
    }

    /// Applies the `PLUMB_*` environment variables.
    public mutating func apply(environment: [String: String]) throws {
        if let value = environment["PLUMB_COLLECTOR_URL"] { collectorURL = value }
        if let value = environment["PLUMB_CA_FILE"] { collectorTLS.caFile = value }
        if let value = environment["PLUMB_CLIENT_CERTIFICATE"] { collectorTLS.clientCertificateFile = value }
        if let value = environment["PLUMB_CLIENT_KEY"] { collectorTLS.clientKeyFile = value }
        if let value = environment["PLUMB_INSECURE"] { collectorTLS.insecure = ["1", "true", "yes"].contains(value.lowercased()) }
        if let value = environment["PLUMB_ENROLLMENT_TOKEN"] { enrollmentToken = value }
        if let value = environment["PLUMB_ENROLLMENT_TOKEN_FILE"] {
            enrollmentToken = try Self.readSecret(value, what: "PLUMB_ENROLLMENT_TOKEN_FILE")
        }
        if let value = environment["PLUMB_AGENT_ID"] { agentId = value }
        if let value = environment["PLUMB_INSTANCE_ID"] { identity.instanceId = value }
        if let value = environment["PLUMB_SPOOL_DIR"] { spoolDirectory = value }
        if let value = environment["PLUMB_IMDS_ENDPOINT"] { imdsEndpoint = value }
        if let value = environment["PLUMB_RESPONDER_PORT"] {
            guard let port = Int(value) else { throw Invalid(problems: ["PLUMB_RESPONDER_PORT: '\(value)' is not a port number"]) }
            responderPort = port
        }
        try check(source: "the environment")
    }

    /// Checks the values that the types cannot.
    public func check(source: String) throws {
        var problems: [String] = []
        if !(0...65535).contains(responderPort) { problems.append("\(source): responder port \(responderPort) is outside 0…65535") }
        if spoolMaxBytes < 64 * 1024 { problems.append("\(source): spool maxBytes \(spoolMaxBytes) is below 65536") }
        if discoveryIntervalSeconds < 1 { problems.append("\(source): discovery intervalSeconds must be at least 1") }
        if let url = collectorURL, !url.hasPrefix("http://") && !url.hasPrefix("https://") {
            problems.append("\(source): collector url '\(url)' must start with http:// or https://")
        } else if let url = collectorURL {
            problems += collectorTLS.problems(url: url, settings: Self.tlsSettingNames).map { "\(source): \($0)" }
        }
        if !imdsEndpoint.hasPrefix("http://") { problems.append("\(source): imds endpoint '\(imdsEndpoint)' must start with http://") }
        if !problems.isEmpty { throw Invalid(problems: problems) }
    }

    /// The TLS settings as a configuration file spells them (each also has a `PLUMB_*` variable and a flag).
    static let tlsSettingNames = CollectorTLS.Settings(
        caFile: "collector.caFile", clientCertificate: "collector.clientCertificateFile", clientKey: "collector.clientKeyFile",
        insecure: "collector.insecure: true")

    /// Reads a token file, trimmed; an empty or unreadable file is an error naming the setting.
    public static func readSecret(_ path: String, what: String) throws -> String {
        guard let token = SecretFile.read(path) else { throw Invalid(problems: ["\(what): cannot read a token from \(path) (missing or empty)"]) }
        return token
    }
}
