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

    /// Creates a view.
    public init(
        key: String, probe: PlannedProbe, state: PairState, reason: Disagreement? = nil, lastResult: String? = nil, observedInstance: String? = nil,
        observedEgressIP: String? = nil
    ) {
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

/// Groups what disagrees with the model by the component the failing paths share and the passing paths do not, and
/// raises one finding per component (NetNORAD/Pingmesh-style rollup, with the model's paths instead of racks).
public struct Correlator: Sendable {
    /// Milliseconds without a report after which an agent is silent.
    public var silenceMs: Int64
    /// Milliseconds a failing pair that no component explains alone waits before it is blamed on the component on the
    /// most failing paths: other pairs through the true culprit are often still crossing their thresholds.
    public var settleMs: Int64
    /// NAT instance ids by NAT id: an agent that falls silent on a NAT blamed for failing is folded into that alert.
    public var natInstances: [String: String]
    /// Milliseconds without a report after which an agent is late (default: a third of `silenceMs`).
    public var lateMs: Int64

    /// A correlator.
    public init(silenceMs: Int64 = 30_000, settleMs: Int64 = 10_000, lateMs: Int64? = nil, natInstances: [String: String] = [:]) {
        self.silenceMs = silenceMs
        self.settleMs = settleMs
        self.lateMs = lateMs ?? silenceMs / 3
        self.natInstances = natInstances
    }

    /// Component types in the order they are preferred when two explain the same pairs: the most specific first.
    static let preference = [
        "nat-instance", "nat-gateway", "eni", "instance", "network-acl", "security-group", "route-table", "load-balancer", "endpoint",
        "vpc-endpoint", "internet-gateway", "peering", "subnet",
    ]

    /// Every finding for the current pair states, agents and ENI placements.
    public func findings(pairs: [PairView], agents: [AgentActivity], placements: [InterfacePlacementDrift], now: Int64) -> [Finding] {
        var findings: [Finding] = []
        let silentAgents = Set(agents.filter { now - $0.lastSeenMs > silenceMs }.map(\.agentId))
        // Pairs from silent agents say nothing new; pairs towards silent agents are explained by the silence, and so,
        // for now, are pairs towards late ones: an agent a third of the silence window late may be going silent (its
        // host or subnet cut off), and failures towards its instance wait for that verdict instead of being blamed
        // on the path.
        let lateInstances = Set(agents.filter { now - $0.lastSeenMs > lateMs || now < $0.heldUntilMs ?? 0 }.map(\.instance))
        func isLive(_ pair: PairView) -> Bool { silentAgents.isEmpty || !silentAgents.contains(pair.probe.sourceAgent) }
        let disagreeing = pairs.filter { $0.state.status == .disagreeing && isLive($0) }
        let blockedPairs = disagreeing.filter { $0.reason == .blocked && !lateInstances.contains($0.probe.targetInstance ?? "") }

        var silenceFindings = silence(agents: agents, silent: silentAgents, now: now)
        let instanceOfAgent = Dictionary(agents.map { ($0.agentId, $0.instance) }, uniquingKeysWith: { first, _ in first })
        // A silence holds the failing pairs towards its instances: they are explained by it, and they stay with it
        // while they recover (after the agent is back, those pairs take a few results to agree again).
        let towards = Dictionary(grouping: disagreeing.filter { $0.reason == .blocked }, by: { $0.probe.targetInstance ?? "" })
        for index in silenceFindings.indices {
            let component = silenceFindings[index].component
            let instances =
                silenceFindings[index].kind == .agentSilent
                ? [instanceOfAgent[component] ?? ""] : agents.filter { $0.subnet == component }.map(\.instance)
            silenceFindings[index].pairs = instances.flatMap { towards[$0]?.map(\.key) ?? [] }.sorted()
        }
        // A pair only vouches for its path when its latest result agreed: one that just failed may be on its way down.
        if !blockedPairs.isEmpty {
            findings += blocked(
                blockedPairs, among: pairs,
                isPassing: { $0.state.status != .disagreeing && $0.probe.expectReach && $0.state.recent.last == false && isLive($0) }, now: now)
        }
        findings += exposure(disagreeing.filter { $0.reason == .reached })
        findings += identity(disagreeing.filter { $0.reason == .identity }, placements: placements)
        findings += egress(disagreeing.filter { $0.reason == .egressIP })
        findings += latency(pairs.filter { $0.state.latencyRegressed && $0.state.status != .disagreeing && isLive($0) })
        // An agent that fell silent on a NAT instance blamed for failing is the same fault, not a second alert.
        for index in findings.indices where findings[index].kind == .natFailure {
            guard let natInstance = natInstances[findings[index].component] else { continue }
            let quiet = silenceFindings.filter { $0.kind == .agentSilent && instanceOfAgent[$0.component] == natInstance }
            findings[index].evidence += quiet.map { "the agent on the NAT instance is silent too: \($0.summary)" }
            silenceFindings.removeAll { $0.kind == .agentSilent && instanceOfAgent[$0.component] == natInstance }
        }
        findings = silenceFindings + findings
        // One finding per fingerprint (kind and component): an ACL blamed for two ports is one alert with both sets of pairs.
        var merged: [String: Finding] = [:]
        var order: [String] = []
        for finding in findings {
            if var existing = merged[finding.fingerprint] {
                existing.pairs = Array(Set(existing.pairs + finding.pairs)).sorted()
                existing.evidence += finding.evidence.filter { !existing.evidence.contains($0) }
                merged[finding.fingerprint] = existing
            } else {
                merged[finding.fingerprint] = finding
                order.append(finding.fingerprint)
            }
        }
        return order.compactMap { merged[$0] }.sorted {
            ($0.severity, $0.kind.rawValue, $0.component) > ($1.severity, $1.kind.rawValue, $1.component)
        }
    }

    private func silence(agents: [AgentActivity], silent: Set<String>, now: Int64) -> [Finding] {
        var findings: [Finding] = []
        let bySubnet = Dictionary(grouping: agents.filter { $0.subnet != nil }, by: { $0.subnet! })
        var explained: Set<String> = []
        for (subnet, members) in bySubnet.sorted(by: { $0.key < $1.key })
        where members.count >= 2 && members.allSatisfy({ silent.contains($0.agentId) }) {
            explained.formUnion(members.map(\.agentId))
            findings.append(
                Finding(
                    kind: .subnetSilent, severity: .critical, component: subnet, componentType: "subnet",
                    summary: "all \(members.count) agents in \(subnet) stopped reporting", pairs: [],
                    evidence: members.map { "\($0.agentId) (\($0.instance)) last reported \((now - $0.lastSeenMs) / 1000) s ago" }))
        }
        for agent in agents.sorted(by: { $0.agentId < $1.agentId }) where silent.contains(agent.agentId) && !explained.contains(agent.agentId) {
            findings.append(
                Finding(
                    kind: .agentSilent, severity: .warning, component: agent.agentId, componentType: "agent",
                    summary: "agent \(agent.agentId) on \(agent.instance) stopped reporting", pairs: [],
                    evidence: ["last report \((now - agent.lastSeenMs) / 1000) s ago"]))
        }
        return findings
    }

    /// Greedy set cover: the component on the most failing paths and on no passing path, preferring the most
    /// specific type, until every failing pair is explained.
    private func blocked(_ failing: [PairView], among pairs: [PairView], isPassing: (PairView) -> Bool, now: Int64) -> [Finding] {
        guard !failing.isEmpty else { return [] }
        // Only the components on failing paths matter: count passing pairs through those alone (in place: the pairs
        // are many and large, copying them costs more than the counting).
        let suspects = Set(failing.flatMap(components(of:)))
        var passingThrough: [String: Int] = [:]
        for index in pairs.indices where isPassing(pairs[index]) {
            for component in pairs[index].probe.components where suspects.contains(component) { passingThrough[component, default: 0] += 1 }
        }
        // Indices into `failing`, each pair's components once: the loop runs once per finding.
        let failingComponents = failing.map { Array(Set(components(of: $0))) }
        var remaining = Array(failing.indices)
        var findings: [Finding] = []
        while !remaining.isEmpty {
            var failingThrough: [String: [Int]] = [:]
            for index in remaining { for component in failingComponents[index] { failingThrough[component, default: []].append(index) } }
            let candidates = failingThrough.filter { passingThrough[$0.key, default: 0] == 0 }
            if candidates.isEmpty {
                // Nothing explains these alone. Blame the busiest component only once they have failed for a while.
                remaining.removeAll { now - failing[$0].state.changedAtMs < settleMs }
                if remaining.isEmpty { break }
            }
            let remainingSet = candidates.isEmpty ? Set(remaining) : []
            let pool =
                candidates.isEmpty
                ? failingThrough.mapValues { $0.filter { remainingSet.contains($0) } }.filter { !$0.value.isEmpty } : candidates
            guard
                let best = pool.max(by: { lhs, rhs in
                    (lhs.value.count, -rank(lhs.key), rhs.key) < (rhs.value.count, -rank(rhs.key), lhs.key)
                })
            else { break }
            let coveredSet = Set(best.value)
            remaining.removeAll { coveredSet.contains($0) }
            let covered = best.value.map { failing[$0] }
            let (type, id) = split(best.key)
            let isNAT = type == "nat-instance" || type == "nat-gateway"
            let subnets = Set(covered.map(\.probe.sourceSubnet)).sorted()
            let ambiguous = candidates.isEmpty ? " (no component is on only the failing paths; this one is on the most)" : ""
            let summary =
                isNAT
                ? "NAT \(id) is not forwarding: \(flows(covered.count)) from \(subnets.joined(separator: ", ")) through it fail\(covered.count == 1 ? "s" : "")"
                : "\(flows(covered.count)) the model allows fail\(covered.count == 1 ? "s" : ""); they share \(type) \(id)\(ambiguous)"
            findings.append(
                Finding(
                    kind: isNAT ? .natFailure : .unexpectedBlock, severity: isNAT ? .critical : .warning, component: id, componentType: type,
                    summary: summary, pairs: covered.map(\.key).sorted(),
                    evidence: (isNAT ? ["affected subnets: \(subnets.joined(separator: ", "))"] : [])
                        + covered.prefix(10).map { "\($0.key): \($0.lastResult ?? "no answer")" },
                    flow: flow(of: covered[0].probe)))
        }
        return findings
    }

    private func exposure(_ pairs: [PairView]) -> [Finding] {
        Dictionary(grouping: pairs, by: { $0.probe.blockingComponent ?? "target:\($0.probe.targetName)" }).sorted { $0.key < $1.key }.map {
            key, group in
            let (type, id) = split(key)
            let flows = group.map { "\($0.probe.sourceInstance) → \($0.probe.targetName):\($0.probe.evaluatedPort)" }
            let intents = Set(group.compactMap(\.probe.intent)).sorted()
            return Finding(
                kind: .unexpectedReachability, severity: .critical, component: id, componentType: type,
                summary:
                    "\(flows.count == 1 ? flows[0] : "\(flows.count) flows") got through although the model blocks \(group.count == 1 ? "it" : "them") at \(type) \(id)"
                    + (intents.isEmpty ? "" : "; intent \(intents.map { "'\($0)'" }.joined(separator: ", ")) is broken"),
                pairs: group.map(\.key).sorted(), evidence: group.prefix(10).map { "\($0.key): \($0.lastResult ?? "reached")" },
                flow: flow(of: group[0].probe))
        }
    }

    private func identity(_ pairs: [PairView], placements: [InterfacePlacementDrift]) -> [Finding] {
        var byInterface: [String: (expected: String, observed: Set<String>, pairs: [String], evidence: [String])] = [:]
        for pair in pairs {
            let interface = pair.probe.interface ?? pair.probe.expectedInterface ?? pair.probe.targetName
            var entry = byInterface[interface] ?? (pair.probe.expectedInstance ?? "?", [], [], [])
            if let observed = pair.observedInstance { entry.observed.insert(observed) }
            entry.pairs.append(pair.key)
            entry.evidence.append("\(pair.key): \(pair.lastResult ?? "answered by \(pair.observedInstance ?? "another instance")")")
            byInterface[interface] = entry
        }
        for drift in placements {
            var entry = byInterface[drift.interface] ?? (drift.expectedInstance, [], [], [])
            entry.observed.insert(drift.observedInstance)
            entry.evidence.append("agent \(drift.agentId) on \(drift.observedInstance) reports \(drift.interface) attached")
            byInterface[drift.interface] = entry
        }
        return byInterface.sorted { $0.key < $1.key }.map { interface, entry in
            let observed = entry.observed.sorted().joined(separator: ", ")
            return Finding(
                kind: .eniMoved, severity: .critical, component: interface, componentType: "eni",
                summary:
                    "\(interface) belongs to \(entry.expected) in the model but is attached to \(observed.isEmpty ? "another instance" : observed)",
                pairs: entry.pairs.sorted(), evidence: entry.evidence)
        }
    }

    private func egress(_ pairs: [PairView]) -> [Finding] {
        Dictionary(grouping: pairs, by: { $0.probe.nat ?? $0.probe.sourceInstance }).sorted { $0.key < $1.key }.map { nat, group in
            let seen = Set(group.compactMap(\.observedEgressIP)).sorted().joined(separator: ", ")
            let expected = group.first?.probe.expectedEgressIP ?? "?"
            return Finding(
                kind: .egressIPChanged, severity: .warning, component: nat, componentType: "nat",
                summary: "traffic through \(nat) leaves as \(seen.isEmpty ? "another address" : seen), not its Elastic IP \(expected)",
                pairs: group.map(\.key).sorted(), evidence: group.prefix(10).map { "\($0.key): \($0.lastResult ?? "")" })
        }
    }

    private func latency(_ pairs: [PairView]) -> [Finding] {
        Dictionary(grouping: pairs, by: { $0.probe.targetInstance ?? $0.probe.targetName }).sorted { $0.key < $1.key }.map { target, group in
            Finding(
                kind: .latencyRegression, severity: .info, component: target, componentType: "instance",
                summary: "round trips to \(target) are well above their learned baseline on \(group.count) path\(group.count == 1 ? "" : "s")",
                pairs: group.map(\.key).sorted(),
                evidence: group.prefix(10).map {
                    "\($0.key): baseline \(Int(($0.state.rttBaselineMs ?? 0) * 1000)) µs; \($0.lastResult ?? "")"
                })
        }
    }

    private func components(of pair: PairView) -> [String] { pair.probe.components }

    private func flows(_ count: Int) -> String { count == 1 ? "1 flow" : "\(count) flows" }

    private func rank(_ component: String) -> Int {
        Self.preference.firstIndex(of: split(component).type) ?? Self.preference.count
    }

    private func split(_ component: String) -> (type: String, id: String) {
        guard let colon = component.firstIndex(of: ":") else { return ("component", component) }
        var id = String(component[component.index(after: colon)...])
        let type = String(component[..<colon])
        if type == "network-acl", let slash = id.firstIndex(of: "/") { id = String(id[..<slash]) }
        return (type, id)
    }

    private func flow(of probe: PlannedProbe) -> Finding.Flow {
        Finding.Flow(source: probe.sourceInstance, destination: probe.targetName, port: probe.evaluatedPort, protocol: probe.evaluatedProtocol)
    }
}
