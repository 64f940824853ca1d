/// What a probe observed on the network.
public enum ProbeOutcome: String, Codable, Sendable {
    /// The target answered (udp-echo reply, TCP open, ICMP echo reply, HTTP response, DNS answer).
    case ok
    /// The target's host answered that nothing listens (TCP reset, ICMP port unreachable): reachable, not serving.
    case refused
    /// No answer before the timeout: filtered or blocked on the way.
    case timeout
    /// The network said the destination cannot be reached (ICMP host/net unreachable, no route).
    case unreachable
    /// The name did not resolve.
    case dnsFailure = "dns-failure"
    /// The TLS handshake failed.
    case tlsFailure = "tls-failure"
    /// This host cannot run the probe (e.g. ICMP without `ping_group_range` or CAP_NET_RAW).
    case unsupported
    /// A local error (socket limit, bad target); `error` says which.
    case error

    /// Whether the probe's packets reached the target's host (it answered, refused, or failed the TLS handshake).
    public var reached: Bool { self == .ok || self == .refused || self == .tlsFailure }

    /// Whether the network stopped the probe (no answer, or an unreachable from the path). `dns-failure`,
    /// `unsupported` and `error` are neither reached nor blocked: they say nothing about the path.
    public var blocked: Bool { self == .timeout || self == .unreachable }
}

/// Per-phase timings, in milliseconds; each is cumulative from the start, as libcurl reports them.
public struct ProbeTimings: Codable, Sendable, Hashable {
    /// Name resolution finished.
    public var dnsMs: Double?
    /// TCP connect finished.
    public var connectMs: Double?
    /// TLS handshake finished.
    public var tlsMs: Double?
    /// First byte of the response.
    public var firstByteMs: Double?
    /// The whole probe.
    public var totalMs: Double?

    /// Creates timings.
    public init(dnsMs: Double? = nil, connectMs: Double? = nil, tlsMs: Double? = nil, firstByteMs: Double? = nil, totalMs: Double? = nil) {
        self.dnsMs = dnsMs
        self.connectMs = connectMs
        self.tlsMs = tlsMs
        self.firstByteMs = firstByteMs
        self.totalMs = totalMs
    }
}

/// Loss and round-trip statistics of a burst (udp-echo, icmp).
public struct BurstStatistics: Codable, Sendable, Hashable {
    /// Datagrams sent.
    public var sent: Int
    /// Distinct replies received.
    public var received: Int
    /// Replies received more than once.
    public var duplicates: Int
    /// Replies that arrived after a reply to a later datagram.
    public var reordered: Int
    /// Minimum, mean and maximum RTT in milliseconds over the replies (absent without replies).
    public var rttMinMs: Double?
    public var rttAvgMs: Double?
    public var rttMaxMs: Double?

    /// Share of datagrams without a reply.
    public var lossRatio: Double { sent == 0 ? 0 : Double(sent - received) / Double(sent) }

    /// Creates statistics.
    public init(
        sent: Int, received: Int, duplicates: Int = 0, reordered: Int = 0, rttMinMs: Double? = nil, rttAvgMs: Double? = nil,
        rttMaxMs: Double? = nil
    ) {
        self.sent = sent
        self.received = received
        self.duplicates = duplicates
        self.reordered = reordered
        self.rttMinMs = rttMinMs
        self.rttAvgMs = rttAvgMs
        self.rttMaxMs = rttMaxMs
    }
}

/// Who answered a probe: carried in every responder reply.
public struct ResponderIdentity: Codable, Sendable, Hashable {
    /// The responding agent's id.
    public var agentId: String
    /// The responding instance's id.
    public var instanceId: String
    /// The MAC address of the interface the probe arrived on (lowercase, colon separated).
    public var mac: String
    /// The address the probe was sent to, as the responder saw it.
    public var address: String
    /// The kernel name of the interface the probe arrived on.
    public var interface: String?
    /// The ENI id of that interface, when the responder knows it.
    public var interfaceId: String?

    /// Creates an identity.
    public init(agentId: String, instanceId: String, mac: String, address: String, interface: String? = nil, interfaceId: String? = nil) {
        self.agentId = agentId
        self.instanceId = instanceId
        self.mac = mac
        self.address = address
        self.interface = interface
        self.interfaceId = interfaceId
    }
}

/// One run of one probe.
public struct ProbeResult: Codable, Sendable, Hashable {
    /// The probe's id in the plan.
    public var probeId: String
    /// The probe's kind.
    public var kind: ProbeKind
    /// The target as planned.
    public var target: String
    /// The port probed, if any.
    public var port: Int?
    /// When the probe started, milliseconds since the Unix epoch.
    public var startedAtMs: Int64
    /// What the network did.
    public var outcome: ProbeOutcome
    /// The expected verdict of the plan, copied so a result reads on its own.
    public var expected: ExpectedVerdict
    /// Checks that failed although the target answered (identity, egress IP, status, body), one sentence each.
    public var checkFailures: [String]?
    /// Timings.
    public var timings: ProbeTimings
    /// Burst statistics (udp-echo, icmp).
    public var burst: BurstStatistics?
    /// The responder's identity (udp-echo, tcp with `readIdentity`).
    public var identity: ResponderIdentity?
    /// The public source address the egress-echo endpoint saw.
    public var egressIP: String?
    /// The HTTP status.
    public var httpStatus: Int?
    /// The DNS answers.
    public var answers: [String]?
    /// The local address the probe left from.
    public var sourceAddress: String?
    /// How an ICMP probe was sent: `datagram` or `raw`.
    public var method: String?
    /// Details of an `error`, `unsupported` or failed outcome.
    public var detail: String?

    /// Creates a result.
    public init(
        probeId: String, kind: ProbeKind, target: String, port: Int? = nil, startedAtMs: Int64, outcome: ProbeOutcome,
        expected: ExpectedVerdict = .reach, checkFailures: [String]? = nil, timings: ProbeTimings = ProbeTimings(),
        burst: BurstStatistics? = nil, identity: ResponderIdentity? = nil, egressIP: String? = nil, httpStatus: Int? = nil,
        answers: [String]? = nil, sourceAddress: String? = nil, method: String? = nil, detail: String? = nil
    ) {
        self.probeId = probeId
        self.kind = kind
        self.target = target
        self.port = port
        self.startedAtMs = startedAtMs
        self.outcome = outcome
        self.expected = expected
        self.checkFailures = checkFailures
        self.timings = timings
        self.burst = burst
        self.identity = identity
        self.egressIP = egressIP
        self.httpStatus = httpStatus
        self.answers = answers
        self.sourceAddress = sourceAddress
        self.method = method
        self.detail = detail
    }

    /// Whether the observation agrees with the plan: `reach` needs `ok` with every check passed; `block` needs the
    /// network to have stopped the probe (`timeout` or `unreachable`). A probe that could not run matches neither.
    public var matchesExpectation: Bool {
        switch expected {
        case .reach: return outcome == .ok && (checkFailures ?? []).isEmpty
        case .block: return outcome.blocked
        }
    }
}
