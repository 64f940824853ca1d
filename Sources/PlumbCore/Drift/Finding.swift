/// Why a pair disagrees with the model.
public enum Disagreement: String, Sendable, Hashable, Codable {
    /// The model says the flow works; it does not.
    case blocked
    /// The model says the flow is blocked; it got through (exposure).
    case reached
    /// Another instance or ENI answered than the model says.
    case identity
    /// The egress echo saw another public address than the NAT's Elastic IP.
    case egressIP = "egress-ip"

    /// Why a pair disagrees after a result (`new`, nil when the result agreed) and its state after it. A lost answer
    /// says nothing about who answered or the egress address, so while the pair disagrees it keeps an identity or
    /// egress reason it already has; an agreeing pair has none.
    public static func current(_ new: Disagreement?, previous: Disagreement?, status: PairState.Status) -> Disagreement? {
        guard status == .disagreeing else { return new }
        guard let new else { return previous }
        if new == .blocked, let previous, previous != .blocked { return previous }
        return new
    }
}

/// One pair as correlation sees it.
public struct PairView: Sendable, Hashable {
    /// `agentId/probeId`.
    public var key: String
    /// The probe and its intended path.
    public var probe: PlannedProbe
    /// The pair's state.
    public var state: PairState
    /// Why the last disagreeing result disagreed.
    public var reason: Disagreement?
    /// One line about the last result (outcome, RTT, check failure).
    public var lastResult: String?
    /// Who answered, when an identity check failed.
    public var observedInstance: String?
    /// The egress address seen, when the egress check failed.
    public var observedEgressIP: String?
    /// True when the last failing result was answered by the target's host (refused, a TLS failure, an HTTP error):
    /// the packets crossed the path and came back, so the path is not what failed; the target service is.
    public var answered: Bool

    /// Creates a view.
    public init(
        key: String, probe: PlannedProbe, state: PairState, reason: Disagreement? = nil, lastResult: String? = nil, observedInstance: String? = nil,
        observedEgressIP: String? = nil, answered: Bool = false
    ) {
        self.answered = answered
        self.key = key
        self.probe = probe
        self.state = state
        self.reason = reason
        self.lastResult = lastResult
        self.observedInstance = observedInstance
        self.observedEgressIP = observedEgressIP
    }
}

/// An agent for the silence check.
public struct AgentActivity: Sendable, Hashable {
    public var agentId: String
    public var instance: String
    public var subnet: String?
    public var lastSeenMs: Int64
    /// Until then, failures towards this agent's instance are held as if it were late: it has just come back
    /// and the pairs towards it have not had the results to agree again.
    public var heldUntilMs: Int64?

    /// Creates an activity record.
    public init(agentId: String, instance: String, subnet: String?, lastSeenMs: Int64, heldUntilMs: Int64? = nil) {
        self.agentId = agentId
        self.instance = instance
        self.subnet = subnet
        self.lastSeenMs = lastSeenMs
        self.heldUntilMs = heldUntilMs
    }
}

/// A registration the collector refused because its identity claim did not hold.
public struct RegistrationRefusal: Sendable, Hashable {
    /// The instance it claimed.
    public var instance: String
    /// The agent id it asked for.
    public var agentId: String?
    /// Which check failed.
    public var reason: String
    /// Where it came from.
    public var source: String?
    /// What did not hold.
    public var detail: String
    public var atMs: Int64

    /// Creates a refusal.
    public init(instance: String, agentId: String?, reason: String, source: String?, detail: String, atMs: Int64) {
        self.instance = instance
        self.agentId = agentId
        self.reason = reason
        self.source = source
        self.detail = detail
        self.atMs = atMs
    }
}

/// An ENI seen on another instance than the model says (from an agent's own discovery).
public struct InterfacePlacementDrift: Sendable, Hashable {
    public var interface: String
    public var expectedInstance: String
    public var observedInstance: String
    public var agentId: String

    /// Creates a drift record.
    public init(interface: String, expectedInstance: String, observedInstance: String, agentId: String) {
        self.interface = interface
        self.expectedInstance = expectedInstance
        self.observedInstance = observedInstance
        self.agentId = agentId
    }
}

/// Something that disagrees with the model, with the component to blame: what an alert is raised for.
public struct Finding: Sendable, Hashable, Codable {
    /// The drift kinds.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        case natFailure = "nat_failure"
        case eniMoved = "eni_moved"
        case unexpectedReachability = "unexpected_reachability"
        case unexpectedBlock = "unexpected_block"
        case egressIPChanged = "egress_ip_changed"
        case agentSilent = "agent_silent"
        case subnetSilent = "subnet_silent"
        case latencyRegression = "latency_regression"
        /// A registration claimed an instance and was refused (a wrong address, a forged identity document, a second
        /// agent for an instance that has a live one): someone is trying to impersonate it, or two agents run there.
        case identityConflict = "identity_conflict"
    }

    /// How urgent.
    public enum Severity: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
        case info
        case warning
        case critical

        public static func < (lhs: Severity, rhs: Severity) -> Bool {
            allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
        }
    }

    public var kind: Kind
    public var severity: Severity
    /// The component to blame (its model id).
    public var component: String
    /// Its type (`nat-instance`, `network-acl`, `instance`, `eni`, `subnet`, `agent`, …).
    public var componentType: String
    /// One sentence.
    public var summary: String
    /// The pairs behind it (`agentId/probeId`).
    public var pairs: [String]
    /// Evidence lines: sample results, counts.
    public var evidence: [String]
    /// A flow whose intended path explains the alert: source instance, target, port, protocol.
    public var flow: Flow?
    /// Why this component was chosen: on how many failing intended paths it is, and on how many recently passing
    /// paths of the same direction and port class (0 when the evidence is clean).
    public var failingPaths: Int?
    public var passingPaths: Int?
    /// Other components the evidence cannot tell apart from this one (`target-group lb-internal (tcp/8080: i-app-1,
    /// i-app-2)`), most likely first. Empty when one component alone explains the failures.
    public var alternatives: [String]?
    /// False when an open alert is only kept up by pairs it holds while its component is vouched for again (a repair
    /// under way, a flap's good phase): it stays open, but does not count as failing for the hold-down.
    public var active: Bool = true

    private enum CodingKeys: String, CodingKey {
        case kind, severity, component, componentType, summary, pairs, evidence, flow, failingPaths, passingPaths, alternatives
    }

    /// A flow to explain.
    public struct Flow: Sendable, Hashable, Codable {
        public var source: String
        public var destination: String
        public var port: Int
        public var `protocol`: String
    }

    /// Creates a finding.
    public init(
        kind: Kind, severity: Severity, component: String, componentType: String, summary: String, pairs: [String], evidence: [String],
        flow: Flow? = nil
    ) {
        self.kind = kind
        self.severity = severity
        self.component = component
        self.componentType = componentType
        self.summary = summary
        self.pairs = pairs
        self.evidence = evidence
        self.flow = flow
    }

    /// Stable across evaluations and restarts: kind and component.
    public var fingerprint: String { hexString(SHA256.hash(Array("\(kind.rawValue)|\(component)".utf8)).prefix(8)) }
}
