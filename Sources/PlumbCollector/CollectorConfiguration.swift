import Foundation
import PlumbCore
import PlumbModelIO
import PlumbWire

/// Where alerts go.
public struct Receiver: Sendable, Hashable, Codable {
    /// The payload format.
    public enum Format: String, Sendable, Hashable, Codable, CaseIterable {
        /// Plumb's own JSON (docs/alerts.md).
        case plumb
        /// A Slack incoming webhook (`text` + `blocks`).
        case slack
        /// Alertmanager's v2 API (`POST /api/v2/alerts`, a list of alerts).
        case alertmanager
    }

    /// A name, unique among receivers.
    public var name: String
    /// Where to POST.
    public var url: String
    public var format: Format
    /// The HMAC-SHA256 key for the `Plumb-Signature` header; without it deliveries are not signed.
    public var secret: String?
    /// Only these kinds (all when absent).
    public var kinds: [Finding.Kind]?
    /// Only these severities and above (all when absent).
    public var minimumSeverity: Finding.Severity?
    /// Seconds between repeats of a still-firing alert (0: never). Absent: 60 for `alertmanager` receivers, never
    /// for the others (see `effectiveRepeatIntervalSeconds`).
    public var repeatIntervalSeconds: Int?
    /// `alertmanager` only: a firing alert's `endsAt` is this many repeat intervals after the request (default 4), so
    /// Alertmanager keeps it while the repeats arrive, and lets it go when the collector has been away that long.
    public var endsAtIntervals: Int?
    /// Give up on a delivery after this many seconds (default one day).
    public var maxAgeSeconds: Int?
    /// The longest wait between two attempts (default 300 s): the backoff doubles from 1 s up to it.
    public var maxBackoffSeconds: Int?

    /// Creates a receiver.
    public init(
        name: String, url: String, format: Format = .plumb, secret: String? = nil, kinds: [Finding.Kind]? = nil,
        minimumSeverity: Finding.Severity? = nil,
        repeatIntervalSeconds: Int? = nil, maxAgeSeconds: Int? = nil, maxBackoffSeconds: Int? = nil, endsAtIntervals: Int? = nil
    ) {
        self.endsAtIntervals = endsAtIntervals
        self.maxBackoffSeconds = maxBackoffSeconds
        self.name = name
        self.url = url
        self.format = format
        self.secret = secret
        self.kinds = kinds
        self.minimumSeverity = minimumSeverity
        self.repeatIntervalSeconds = repeatIntervalSeconds
        self.maxAgeSeconds = maxAgeSeconds
    }

    /// The repeat interval of an `alertmanager` receiver that does not set `repeatIntervalSeconds`: well below
    /// Alertmanager's default `resolve_timeout` (5 minutes), like Prometheus's resend delay (1 minute).
    public static let alertmanagerRepeatIntervalSeconds = 60
    /// The `endsAtIntervals` of an `alertmanager` receiver that does not set it (Prometheus: four resend delays).
    public static let defaultEndsAtIntervals = 4

    /// Seconds between repeats in effect: `repeatIntervalSeconds`, else 60 for `alertmanager` receivers; nil when
    /// the receiver does not repeat.
    public var effectiveRepeatIntervalSeconds: Int? {
        let seconds = repeatIntervalSeconds ?? (format == .alertmanager ? Self.alertmanagerRepeatIntervalSeconds : nil)
        guard let seconds, seconds > 0 else { return nil }
        return seconds
    }

    /// The `endsAt` of a firing alert in a request built at `sentAtMs`: for `alertmanager` receivers that repeat,
    /// `endsAtIntervals` repeat intervals ahead; nil otherwise (Alertmanager then applies its `resolve_timeout`).
    public func firingEndsAt(sentAtMs: Int64) -> Int64? {
        guard format == .alertmanager, let seconds = effectiveRepeatIntervalSeconds else { return nil }
        return RepeatSchedule.firingEndsAt(
            sentAtMs: sentAtMs, intervalMs: Int64(seconds) * 1000, intervals: endsAtIntervals ?? Self.defaultEndsAtIntervals)
    }

    /// Whether an alert goes to this receiver.
    public func accepts(_ alert: Alert) -> Bool {
        if let kinds, !kinds.contains(alert.kind) { return false }
        if let minimumSeverity, alert.severity < minimumSeverity { return false }
        return true
    }
}

/// The collector's settings: a YAML (or JSON) file, then `PLUMB_*` environment variables, then flags.
public struct CollectorConfiguration: Sendable {
    /// The topology model file loaded at start (when the store has no topology yet, or it differs).
    public var modelPath: String?
    /// `sqlite:PATH`, a file path, or `postgres://USER@HOST:PORT/DB[?sslmode=…]` (several collectors share one).
    public var database = "plumb.sqlite"
    /// A file holding the PostgreSQL password (`PLUMB_DB_PASSWORD_FILE`); else `PGPASSWORD`.
    public var databasePasswordFile: String?
    /// This collector's id in status, logs and delivery claims; default HOST:PORT.
    public var collectorId: String?
    public var host = "127.0.0.1"
    public var port = 7470
    /// TLS on the listener (`tls:` in the file, `--tls-*` flags, `PLUMB_TLS_*`); nil serves plain HTTP.
    public var tls: TLSFiles?
    /// Secrets, compared by hash in constant time.
    public var operatorToken: String?
    public var enrollmentToken: String?
    /// Named operator tokens, each `read` or `admin`, as hashes (`OperatorTokensFile`); re-read when it changes.
    public var operatorTokensFile: String?
    public var receivers: [Receiver] = []
    /// How registering agents prove their instance (`identity:`).
    public var identity = IdentitySettings()
    /// Hysteresis for pair states, when this configuration sets it (`evaluation` in the file); else the model's
    /// `probing.failuresToDown`, `window` and `successesToUp`, else 3 of 5 down and 2 up.
    public var hysteresis: Hysteresis?
    /// Seconds between evaluations.
    public var evaluationIntervalSeconds = 2.0
    /// Seconds without a report after which an agent is silent.
    public var silenceSeconds = 30.0
    /// Seconds an alert's component must look healthy before the alert resolves (the hold-down); a component that fails
    /// again within it is the same episode, marked flapping after two returns. Default: three probe intervals.
    public var holdDownSeconds: Double?
    /// Seconds raw results are kept before they are rolled up per minute.
    public var retentionSeconds = 3_600.0
    /// Limits: request body bytes, results per report, reports per agent per second.
    public var maxBodyBytes = 4 * 1024 * 1024
    public var maxResultsPerReport = 5_000
    public var maxReportsPerSecondPerAgent = 20.0
    /// Values a topology document sent to the API may hold (estimated before it is parsed), and the bounds on its YAML
    /// aliases: one document is read at a time, at a bounded cost.
    public var modelLimits = DocumentLimits(maxValues: 1_000_000)
    /// Seconds a request waits for the store before it answers 503 with `Retry-After`.
    public var storeTimeoutSeconds = 2.0
    /// Open connections served at once; more wait in the listen backlog. Nil: the descriptor limit less a reserve
    /// for the store, webhooks and files.
    public var maxConnections: Int?
    /// Failed authentications one source address may make in a burst before it is answered 429 (one more a second).
    public var authFailuresPerSource = 20.0
    /// Seconds a connection may stay open without a request (also the time a client has to send a request's head).
    public var idleTimeoutSeconds = 30.0
    /// The bounds every report value is held to at the door (times, counts, durations, sequence steps).
    public var reportLimits = ReportLimits()
    /// Probe interval and timeout given to agents (the model's `probing` wins when set).
    public var probeIntervalMs = 10_000
    public var probeTimeoutMs = 1_000
    public var reportIntervalMs = 5_000
    public var planRefreshMs = 15_000

    /// Defaults.
    public init() {}

    private struct File: Decodable {
        struct Listen: Decodable {
            var host: String?
            var port: Int?
        }
        struct Tokens: Decodable {
            var operatorToken: String?
            var operatorTokenFile: String?
            var operatorTokensFile: String?
            var enrollmentToken: String?
            var enrollmentTokenFile: String?
        }
        struct Evaluation: Decodable {
            var intervalSeconds: Double?
            var silenceSeconds: Double?
            var holdDownSeconds: Double?
            var failuresToDown: Int?
            var window: Int?
            var successesToUp: Int?
        }
        struct Limits: Decodable {
            var maxBodyBytes: Int?
            var maxResultsPerReport: Int?
            var maxReportsPerSecondPerAgent: Double?
            var maxModelValues: Int?
            var storeTimeoutSeconds: Double?
            var maxConnections: Int?
            var idleTimeoutSeconds: Double?
            var authFailuresPerSource: Double?
        }
        struct Agents: Decodable {
            var probeIntervalMs: Int?
            var probeTimeoutMs: Int?
            var reportIntervalMs: Int?
            var planRefreshMs: Int?
        }
        struct Identity: Decodable {
            var verify: [IdentitySettings.Check]?
            var trustedProxies: [String]?
            var certificateFile: String?
            var accounts: [String]?
            var conflictSeconds: Double?
        }
        var model: String?
        var identity: Identity?
        var tls: TLSFiles?
        var database: String?
        var databasePasswordFile: String?
        var collectorId: String?
        var listen: Listen?
        var tokens: Tokens?
        var receivers: [Receiver]?
        var evaluation: Evaluation?
        var retentionSeconds: Double?
        var limits: Limits?
        var agents: Agents?
    }

    /// A configuration that cannot be used; every problem with its location.
    public struct Invalid: Error, CustomStringConvertible {
        public var problems: [String]
        /// Creates the error.
        public init(problems: [String]) { self.problems = problems }
        public var description: String { problems.joined(separator: "\n") }
    }

    /// Reads `path` over the defaults.
    public static func load(path: String) throws -> CollectorConfiguration {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Invalid(problems: ["\(path): cannot read the file"]) }
        let decoded = DocumentParser.decode(File.self, text: text, file: path)
        guard let file = decoded.value else { throw Invalid(problems: decoded.diagnostics.map(\.description)) }
        var configuration = CollectorConfiguration()
        configuration.modelPath = file.model
        configuration.database = file.database ?? configuration.database
        configuration.databasePasswordFile = file.databasePasswordFile ?? configuration.databasePasswordFile
        configuration.collectorId = file.collectorId ?? configuration.collectorId
        configuration.host = file.listen?.host ?? configuration.host
        configuration.port = file.listen?.port ?? configuration.port
        configuration.tls = file.tls
        if let tokens = file.tokens {
            configuration.operatorToken =
                try tokens.operatorTokenFile.map { try readSecret($0, what: "tokens.operatorTokenFile") } ?? tokens.operatorToken
            configuration.enrollmentToken =
                try tokens.enrollmentTokenFile.map { try readSecret($0, what: "tokens.enrollmentTokenFile") } ?? tokens.enrollmentToken
            configuration.operatorTokensFile = tokens.operatorTokensFile
        }
        configuration.receivers = file.receivers ?? []
        if let identity = file.identity {
            configuration.identity.checks = identity.verify
            var proxies: [CIDR] = []
            for text in identity.trustedProxies ?? [] {
                guard let cidr = CIDR(text) ?? IPv4Address(text).map({ CIDR($0, prefixLength: 32) }) else {
                    throw Invalid(problems: ["\(path): identity.trustedProxies: '\(text)' is not an IPv4 address or CIDR block"])
                }
                proxies.append(cidr)
            }
            configuration.identity.trustedProxies = proxies
            configuration.identity.certificateFile = identity.certificateFile
            configuration.identity.accounts = identity.accounts ?? []
            configuration.identity.conflictSeconds = identity.conflictSeconds ?? configuration.identity.conflictSeconds
        }
        if let evaluation = file.evaluation {
            configuration.evaluationIntervalSeconds = evaluation.intervalSeconds ?? configuration.evaluationIntervalSeconds
            configuration.silenceSeconds = evaluation.silenceSeconds ?? configuration.silenceSeconds
            configuration.holdDownSeconds = evaluation.holdDownSeconds ?? configuration.holdDownSeconds
            if evaluation.failuresToDown != nil || evaluation.window != nil || evaluation.successesToUp != nil {
                configuration.hysteresis = Hysteresis(
                    failuresToDown: evaluation.failuresToDown ?? 3, window: evaluation.window ?? 5, successesToUp: evaluation.successesToUp ?? 2)
            }
        }
        configuration.retentionSeconds = file.retentionSeconds ?? configuration.retentionSeconds
        if let limits = file.limits {
            configuration.maxBodyBytes = limits.maxBodyBytes ?? configuration.maxBodyBytes
            configuration.maxResultsPerReport = limits.maxResultsPerReport ?? configuration.maxResultsPerReport
            configuration.maxReportsPerSecondPerAgent = limits.maxReportsPerSecondPerAgent ?? configuration.maxReportsPerSecondPerAgent
            configuration.modelLimits.maxValues = limits.maxModelValues ?? configuration.modelLimits.maxValues
            configuration.storeTimeoutSeconds = limits.storeTimeoutSeconds ?? configuration.storeTimeoutSeconds
            configuration.maxConnections = limits.maxConnections ?? configuration.maxConnections
            configuration.idleTimeoutSeconds = limits.idleTimeoutSeconds ?? configuration.idleTimeoutSeconds
            configuration.authFailuresPerSource = limits.authFailuresPerSource ?? configuration.authFailuresPerSource
        }
        if let agents = file.agents {
            configuration.probeIntervalMs = agents.probeIntervalMs ?? configuration.probeIntervalMs
            configuration.probeTimeoutMs = agents.probeTimeoutMs ?? configuration.probeTimeoutMs
            configuration.reportIntervalMs = agents.reportIntervalMs ?? configuration.reportIntervalMs
            configuration.planRefreshMs = agents.planRefreshMs ?? configuration.planRefreshMs
        }
        try configuration.check(source: path)
        return configuration
    }

    /// Applies `PLUMB_OPERATOR_TOKEN(_FILE)`, `PLUMB_ENROLLMENT_TOKEN(_FILE)`, `PLUMB_DB`, `PLUMB_LISTEN`, `PLUMB_MODEL`,
    /// `PLUMB_TLS_CERTIFICATE`, `PLUMB_TLS_KEY`, `PLUMB_TLS_CLIENT_CA`.
    public mutating func apply(environment: [String: String]) throws {
        if let value = environment["PLUMB_OPERATOR_TOKEN"] { operatorToken = value }
        if let value = environment["PLUMB_OPERATOR_TOKEN_FILE"] { operatorToken = try Self.readSecret(value, what: "PLUMB_OPERATOR_TOKEN_FILE") }
        if let value = environment["PLUMB_ENROLLMENT_TOKEN"] { enrollmentToken = value }
        if let value = environment["PLUMB_ENROLLMENT_TOKEN_FILE"] {
            enrollmentToken = try Self.readSecret(value, what: "PLUMB_ENROLLMENT_TOKEN_FILE")
        }
        if let value = environment["PLUMB_OPERATOR_TOKENS_FILE"] { operatorTokensFile = value }
        if let value = environment["PLUMB_DB"] { database = value }
        if let value = environment["PLUMB_DB_PASSWORD_FILE"] { databasePasswordFile = value }
        if let value = environment["PLUMB_COLLECTOR_ID"] { collectorId = value }
        if let value = environment["PLUMB_MODEL"] { modelPath = value }
        if let value = environment["PLUMB_LISTEN"] { try setListen(value, source: "PLUMB_LISTEN") }
        setTLS(
            certificateFile: environment["PLUMB_TLS_CERTIFICATE"], keyFile: environment["PLUMB_TLS_KEY"],
            clientCAFile: environment["PLUMB_TLS_CLIENT_CA"])
    }

    /// Sets those of the TLS files that are given, over what is set already.
    public mutating func setTLS(certificateFile: String?, keyFile: String?, clientCAFile: String?) {
        guard certificateFile != nil || keyFile != nil || clientCAFile != nil else { return }
        var files = tls ?? TLSFiles()
        files.certificateFile = certificateFile ?? files.certificateFile
        files.keyFile = keyFile ?? files.keyFile
        files.clientCAFile = clientCAFile ?? files.clientCAFile
        tls = files
    }

    /// Sets host and port from `HOST:PORT`.
    public mutating func setListen(_ value: String, source: String) throws {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]), (0...65535).contains(port) else {
            throw Invalid(problems: ["\(source): '\(value)' is not HOST:PORT"])
        }
        host = String(value[..<colon])
        self.port = port
    }

    /// Checks what the types cannot.
    public func check(source: String) throws {
        var problems: [String] = []
        var names: Set<String> = []
        for receiver in receivers {
            if !names.insert(receiver.name).inserted { problems.append("\(source): receiver name '\(receiver.name)' is used twice") }
            if !receiver.url.hasPrefix("http://") && !receiver.url.hasPrefix("https://") {
                problems.append("\(source): receiver '\(receiver.name)': url must start with http:// or https://")
            }
            if let seconds = receiver.repeatIntervalSeconds, seconds < 0 {
                problems.append("\(source): receiver '\(receiver.name)': repeatIntervalSeconds is \(seconds); use 0 (never) or more")
            }
            if let intervals = receiver.endsAtIntervals {
                if receiver.format != .alertmanager {
                    problems.append(
                        "\(source): receiver '\(receiver.name)': endsAtIntervals applies to format alertmanager only (this one is \(receiver.format.rawValue)); remove it"
                    )
                } else if intervals < 2 {
                    problems.append(
                        "\(source): receiver '\(receiver.name)': endsAtIntervals is \(intervals); use 2 or more, or Alertmanager lets the alert go before the next repeat arrives"
                    )
                }
            }
        }
        if let tls {
            if tls.certificateFile == nil || tls.keyFile == nil {
                problems.append(
                    "\(source): tls needs both certificateFile and keyFile (--tls-certificate and --tls-key, PLUMB_TLS_CERTIFICATE and PLUMB_TLS_KEY); "
                        + "\(tls.certificateFile == nil ? "certificateFile" : "keyFile") is missing")
            }
        }
        if modelLimits.maxValues < 1_000 { problems.append("\(source): limits.maxModelValues must be at least 1000") }
        if storeTimeoutSeconds < 0.1 || storeTimeoutSeconds > 60 {
            problems.append("\(source): limits.storeTimeoutSeconds must be between 0.1 and 60")
        }
        if let maxConnections, maxConnections < 4 { problems.append("\(source): limits.maxConnections must be at least 4") }
        if authFailuresPerSource < 1 { problems.append("\(source): limits.authFailuresPerSource must be at least 1") }
        if idleTimeoutSeconds < 1 { problems.append("\(source): limits.idleTimeoutSeconds must be at least 1") }
        if evaluationIntervalSeconds < 0.1 { problems.append("\(source): evaluation.intervalSeconds must be at least 0.1") }
        do {
            _ = try IdentityVerification(settings: identity, listenHost: host)
        } catch {
            problems.append("\(source): identity: \(error)")
        }
        do {
            _ = try OperatorTokens(operatorToken: operatorToken, path: operatorTokensFile)
        } catch {
            problems.append("\(source): tokens.operatorTokensFile: \(error)")
        }
        if identity.conflictSeconds < 1 { problems.append("\(source): identity.conflictSeconds must be at least 1") }
        if isPostgres, Self.urlHasPassword(database) {
            problems.append(
                "\(source): the database URL carries a password; put it in a file (databasePasswordFile, PLUMB_DB_PASSWORD_FILE) or PGPASSWORD instead"
            )
        }
        if !problems.isEmpty { throw Invalid(problems: problems) }
    }

    /// Whether a `postgres://USER:PASSWORD@…` URL carries a password.
    static func urlHasPassword(_ url: String) -> Bool {
        guard let scheme = url.range(of: "://") else { return false }
        let rest = url[scheme.upperBound...]
        guard let at = rest.firstIndex(of: "@") else { return false }
        return rest[..<at].contains(":")
    }

    /// Whether `database` names PostgreSQL.
    public var isPostgres: Bool { database.hasPrefix("postgres://") || database.hasPrefix("postgresql://") }

    /// The SQLite file path of `database`.
    public var sqlitePath: String { database.hasPrefix("sqlite:") ? String(database.dropFirst("sqlite:".count)) : database }

    /// Reads a token file; an unreadable or empty file is an error naming the setting.
    public static func readSecret(_ path: String, what: String) throws -> String {
        guard let token = SecretFile.read(path) else { throw Invalid(problems: ["\(what): cannot read a token from \(path) (missing or empty)"]) }
        return token
    }
}
