/// The kinds of probe an agent runs.
public enum ProbeKind: String, Codable, Sendable, CaseIterable {
    /// A burst of UDP datagrams to a peer's responder; measures loss, RTT, duplicates and reordering, and returns the
    /// responder's identity.
    case udpEcho = "udp-echo"
    /// A TCP connect (then close): `ok` (open), `refused` or `timeout`.
    case tcp
    /// ICMP echo, over an unprivileged datagram socket or a raw socket.
    case icmp
    /// An HTTP request through libcurl with per-phase timings.
    case http
    /// An HTTPS request through libcurl with per-phase timings.
    case https
    /// A DNS lookup through the system resolver or a given server.
    case dns
}

/// What the plan expects a probe to observe.
public enum ExpectedVerdict: String, Codable, Sendable {
    /// The flow must work: the target answers.
    case reach
    /// The flow must be blocked: the probe times out, or the path answers unreachable. A refusal means the packets
    /// reached the host, so it does not count as blocked.
    case block
}

/// The identity a responder is expected to answer with; every field given must match.
public struct ExpectedIdentity: Codable, Sendable, Hashable {
    /// The agent id of the responder.
    public var agentId: String?
    /// The EC2 instance id of the responder.
    public var instanceId: String?
    /// The ENI id the probe must arrive on.
    public var interfaceId: String?
    /// The MAC address (lowercase, colon separated) of the interface the probe must arrive on.
    public var mac: String?

    /// Creates an expected identity.
    public init(agentId: String? = nil, instanceId: String? = nil, interfaceId: String? = nil, mac: String? = nil) {
        self.agentId = agentId
        self.instanceId = instanceId
        self.interfaceId = interfaceId
        self.mac = mac
    }
}

/// What a probe checks beyond "it answered".
public struct ProbeExpectation: Codable, Sendable, Hashable {
    /// Whether the flow should work or be blocked.
    public var verdict: ExpectedVerdict
    /// The responder identity the reply must carry (udp-echo, tcp to a responder port).
    public var identity: ExpectedIdentity?
    /// The public source address the egress-echo endpoint must report (the NAT's Elastic IP).
    public var egressIP: String?
    /// The HTTP status codes that count as success; default 200–399.
    public var status: [Int]?
    /// A substring the HTTP body must contain.
    public var bodyContains: String?

    /// Creates an expectation.
    public init(
        verdict: ExpectedVerdict = .reach, identity: ExpectedIdentity? = nil, egressIP: String? = nil, status: [Int]? = nil,
        bodyContains: String? = nil
    ) {
        self.verdict = verdict
        self.identity = identity
        self.egressIP = egressIP
        self.status = status
        self.bodyContains = bodyContains
    }

    /// Decodes an expectation; `verdict` defaults to `reach`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        verdict = try container.decodeIfPresent(ExpectedVerdict.self, forKey: .verdict) ?? .reach
        identity = try container.decodeIfPresent(ExpectedIdentity.self, forKey: .identity)
        egressIP = try container.decodeIfPresent(String.self, forKey: .egressIP)
        status = try container.decodeIfPresent([Int].self, forKey: .status)
        bodyContains = try container.decodeIfPresent(String.self, forKey: .bodyContains)
    }
}

/// One probe of a plan.
public struct ProbeSpec: Codable, Sendable, Hashable, Identifiable {
    /// Stable id, unique within the plan; results carry it.
    public var id: String
    /// What kind of probe.
    public var kind: ProbeKind
    /// The target: an IPv4 address or host name (udp-echo, tcp, icmp, dns server), a URL (http, https), or the name
    /// to resolve (dns).
    public var target: String
    /// The port (udp-echo, tcp); ignored by icmp, taken from the URL for http.
    public var port: Int?
    /// Milliseconds between two runs of this probe.
    public var intervalMs: Int
    /// Milliseconds before the probe gives up and reports `timeout`.
    public var timeoutMs: Int
    /// What the probe should observe.
    public var expect: ProbeExpectation
    /// Datagrams per run: default 5 for udp-echo, 3 for icmp.
    public var burst: Int?
    /// For dns: the server to ask (`ADDRESS[:PORT]`); default the system resolver.
    public var server: String?
    /// For https: whether to verify the server certificate (default true).
    public var verifyTLS: Bool?
    /// For http(s): the egress-echo check reads the caller's public IP from the response.
    public var egressEcho: Bool?
    /// For tcp: read the responder's identity line after the connect (the target port is a Plumb responder).
    public var readIdentity: Bool?
    /// Free-form labels the collector uses to tie the result to the model (source, target, path, intent).
    public var labels: [String: String]?

    /// Creates a probe.
    public init(
        id: String, kind: ProbeKind, target: String, port: Int? = nil, intervalMs: Int = 10_000, timeoutMs: Int = 1_000,
        expect: ProbeExpectation = ProbeExpectation(), burst: Int? = nil, server: String? = nil, verifyTLS: Bool? = nil,
        egressEcho: Bool? = nil, readIdentity: Bool? = nil, labels: [String: String]? = nil
    ) {
        self.id = id
        self.kind = kind
        self.target = target
        self.port = port
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.expect = expect
        self.burst = burst
        self.server = server
        self.verifyTLS = verifyTLS
        self.egressEcho = egressEcho
        self.readIdentity = readIdentity
        self.labels = labels
    }

    /// Decodes a probe; `intervalMs` (10 s), `timeoutMs` (1 s) and `expect` (reach) may be left out.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        kind = try container.decode(ProbeKind.self, forKey: .kind)
        target = try container.decode(String.self, forKey: .target)
        port = try container.decodeIfPresent(Int.self, forKey: .port)
        intervalMs = try container.decodeIfPresent(Int.self, forKey: .intervalMs) ?? 10_000
        timeoutMs = try container.decodeIfPresent(Int.self, forKey: .timeoutMs) ?? 1_000
        expect = try container.decodeIfPresent(ProbeExpectation.self, forKey: .expect) ?? ProbeExpectation()
        burst = try container.decodeIfPresent(Int.self, forKey: .burst)
        server = try container.decodeIfPresent(String.self, forKey: .server)
        verifyTLS = try container.decodeIfPresent(Bool.self, forKey: .verifyTLS)
        egressEcho = try container.decodeIfPresent(Bool.self, forKey: .egressEcho)
        readIdentity = try container.decodeIfPresent(Bool.self, forKey: .readIdentity)
        labels = try container.decodeIfPresent([String: String].self, forKey: .labels)
    }
}

/// Limits the collector sets for an agent.
public struct PlanSettings: Codable, Sendable, Hashable {
    /// Milliseconds between two report batches.
    public var reportIntervalMs: Int
    /// Results per batch at most.
    public var maxBatchResults: Int
    /// Probes started per second at most (all kinds together).
    public var maxProbesPerSecond: Double
    /// Probes in flight at most.
    public var maxConcurrency: Int
    /// Milliseconds between two plan fetches.
    public var planRefreshMs: Int

    /// Creates settings; the defaults suit a plan of a few hundred probes.
    public init(
        reportIntervalMs: Int = 5_000, maxBatchResults: Int = 500, maxProbesPerSecond: Double = 50, maxConcurrency: Int = 32,
        planRefreshMs: Int = 30_000
    ) {
        self.reportIntervalMs = reportIntervalMs
        self.maxBatchResults = maxBatchResults
        self.maxProbesPerSecond = maxProbesPerSecond
        self.maxConcurrency = maxConcurrency
        self.planRefreshMs = planRefreshMs
    }

    public init(from decoder: any Decoder) throws {
        let defaults = PlanSettings()
        let container = try decoder.container(keyedBy: CodingKeys.self)
        reportIntervalMs = try container.decodeIfPresent(Int.self, forKey: .reportIntervalMs) ?? defaults.reportIntervalMs
        maxBatchResults = try container.decodeIfPresent(Int.self, forKey: .maxBatchResults) ?? defaults.maxBatchResults
        maxProbesPerSecond = try container.decodeIfPresent(Double.self, forKey: .maxProbesPerSecond) ?? defaults.maxProbesPerSecond
        maxConcurrency = try container.decodeIfPresent(Int.self, forKey: .maxConcurrency) ?? defaults.maxConcurrency
        planRefreshMs = try container.decodeIfPresent(Int.self, forKey: .planRefreshMs) ?? defaults.planRefreshMs
    }
}

/// The probes one agent runs: `GET /v1/agents/{id}/plan`.
public struct Plan: Codable, Sendable, Hashable {
    /// Document version; `1`.
    public var version: Int
    /// The agent the plan is for.
    public var agentId: String?
    /// Identifies this plan's content; the collector sets it to the plan's ETag, and reports carry it.
    public var planId: String?
    /// The topology version the plan was derived from.
    public var topologyVersion: Int?
    /// The probes.
    public var probes: [ProbeSpec]
    /// Limits.
    public var settings: PlanSettings

    /// Creates a plan.
    public init(
        version: Int = 1, agentId: String? = nil, planId: String? = nil, topologyVersion: Int? = nil, probes: [ProbeSpec],
        settings: PlanSettings = PlanSettings()
    ) {
        self.version = version
        self.agentId = agentId
        self.planId = planId
        self.topologyVersion = topologyVersion
        self.probes = probes
        self.settings = settings
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        version = try container.decodeIfPresent(Int.self, forKey: .version) ?? 1
        agentId = try container.decodeIfPresent(String.self, forKey: .agentId)
        planId = try container.decodeIfPresent(String.self, forKey: .planId)
        topologyVersion = try container.decodeIfPresent(Int.self, forKey: .topologyVersion)
        probes = try container.decode([ProbeSpec].self, forKey: .probes)
        settings = try container.decodeIfPresent(PlanSettings.self, forKey: .settings) ?? PlanSettings()
    }

    /// Problems that make the plan unusable, each naming the probe and the field; empty when the plan is good.
    public func problems() -> [String] {
        var problems: [String] = []
        var seen: Set<String> = []
        if version != 1 { problems.append("version \(version) is not supported; this agent reads version 1") }
        for (index, probe) in probes.enumerated() {
            let name = "probes[\(index)] (\(probe.id))"
            if probe.id.isEmpty { problems.append("probes[\(index)]: id is empty") }
            if !seen.insert(probe.id).inserted { problems.append("\(name): id is used twice") }
            if probe.target.isEmpty { problems.append("\(name): target is empty") }
            if probe.intervalMs < 100 { problems.append("\(name): intervalMs \(probe.intervalMs) is below 100") }
            if probe.timeoutMs < 1 || probe.timeoutMs > 60_000 {
                problems.append("\(name): timeoutMs \(probe.timeoutMs) is outside 1…60000")
            }
            switch probe.kind {
            case .udpEcho, .tcp:
                if let port = probe.port, (1...65535).contains(port) {
                } else {
                    problems.append("\(name): a \(probe.kind.rawValue) probe needs a port in 1…65535")
                }
            case .http, .https:
                if !probe.target.hasPrefix("http://") && !probe.target.hasPrefix("https://") {
                    problems.append("\(name): target must be an http:// or https:// URL")
                }
            case .icmp, .dns: break
            }
            if let burst = probe.burst, !(1...100).contains(burst) { problems.append("\(name): burst \(burst) is outside 1…100") }
        }
        if settings.planRefreshMs < 1_000 { problems.append("settings.planRefreshMs must be at least 1000") }
        if settings.maxConcurrency < 1 { problems.append("settings.maxConcurrency must be at least 1") }
        if settings.maxProbesPerSecond <= 0 { problems.append("settings.maxProbesPerSecond must be above 0") }
        if settings.maxBatchResults < 1 { problems.append("settings.maxBatchResults must be at least 1") }
        if settings.reportIntervalMs < 100 { problems.append("settings.reportIntervalMs must be at least 100") }
        return problems
    }
}
