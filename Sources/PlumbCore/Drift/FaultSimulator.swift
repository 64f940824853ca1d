/// The fault simulator behind `plumb-bench blame`: one model planned with an agent on every instance, single faults
/// injected into it (in the model, or as dead processes), the observed result of every planned probe derived by the
/// same engine, and the real pair state machines, blame engine and alert book stepped through time with random loss.
/// Pure and deterministic for a seed; the benchmark prints its figures and the tests hold it to them.

/// The fault kinds the simulator injects.
public enum FaultKind: String, Sendable, CaseIterable {
    case natDead = "NAT dead"
    case natNotTranslating = "NAT not translating"
    case loadBalancerDead = "load balancer dead"
    case targetDead = "one target dead"
    case instanceDead = "instance dead"
    case eniDetached = "ENI detached"
    case eniMoved = "ENI moved"
    case naclDeny = "NACL deny inserted"
    case sgRuleRemoved = "SG rule removed"
    case sgRuleAdded = "SG rule added"
    case routeBlackhole = "route blackholed"
    case endpointDown = "endpoint down"
    case egressChanged = "egress address changed"
    case natFlapping = "NAT flapping"
}

/// How results reach the engine in a simulation.
public struct SimulationTiming: Sendable, Hashable {
    /// False: every probe runs at the start of its interval and every result is read at once (lockstep). True: each agent
    /// has its own moment in the interval and spreads its probes over half of it, batches its results into reports
    /// every `reportIntervalMs` at its own moment, and each report takes up to a report interval to arrive; the
    /// collector evaluates every `evaluationMs`, and a fault begins at a random moment of its interval.
    public var spread: Bool
    /// How often an agent reports (spread only).
    public var reportIntervalMs: Int64
    /// How often the collector evaluates.
    public var evaluationMs: Int64
    /// One agent in four takes up to a probe interval longer to report (a busy host, a slow link).
    public var slowReporters: Bool

    /// Creates a timing.
    public init(spread: Bool, reportIntervalMs: Int64 = 1_000, evaluationMs: Int64 = 500, slowReporters: Bool = false) {
        self.spread = spread
        self.reportIntervalMs = reportIntervalMs
        self.evaluationMs = evaluationMs
        self.slowReporters = slowReporters
    }

    /// Every probe at the interval's start, read at once, evaluated once per interval.
    public static let lockstep = SimulationTiming(spread: false, reportIntervalMs: 0, evaluationMs: FaultSimulator.intervalMs)
    /// Agents' own phases, reports every second arriving within a second, evaluation every half second.
    public static let spread = SimulationTiming(spread: true)
    /// As `spread`, with one agent in four reporting up to a probe interval late.
    public static let slowReporters = SimulationTiming(spread: true, slowReporters: true)
}

/// One injected fault: the faulted model, the dead processes, and what the alert must name.
public struct SimulatedFault: Sendable {
    public var kind: FaultKind
    public var label: String
    public var faulted: Network
    /// Runtime components that no longer forward or answer (bases), and target services that died.
    public var dead: Set<ComponentRef> = []
    /// Agents that stop reporting (their instance died).
    public var silent: Set<String> = []
    /// ENIs reported by the agent of another instance.
    public var placements: [InterfacePlacementDrift] = []
    /// The component the first alert must name, and the alert kinds that name it rightly.
    public var culprit: ComponentRef
    public var kinds: Set<Finding.Kind>
    /// Down and up phases in intervals (flapping), or nil for a steady fault.
    public var flap: (down: Int, up: Int, cycles: Int)?
}

/// What the alerts said about one played fault.
public struct FaultOutcome: Sendable {
    /// Some planned probe, silence or ENI report sees the fault at all.
    public var observable = true
    /// The first alert after the injection names the culprit (kind and component).
    public var correct = false
    /// The first alert lists other candidates it cannot tell apart.
    public var ambiguous = false
    /// Probe intervals from the injection to the right alert.
    public var detection: Int?
    /// Alerts that name another component (the first alert's miss not counted twice).
    public var falseAlerts = 0
    /// Alerts for the culprit.
    public var episodes = 0
    /// `KIND on TYPE COMPONENT` of the first alert after the injection.
    public var firstAlert: String?
    /// Nothing is open at the end of the run.
    public var resolved = true
    /// The culprit is the first alert's component or one of the candidates it says it cannot tell apart.
    public var namedOrTied = false
    /// The false alerts, one line each.
    public var falseDetails: [String] = []
}

/// One model, planned, with an agent on every instance.
public struct FaultSimulator: Sendable {
    /// The model's name in the figures.
    public let name: String
    /// The compiled model.
    public let network: Network
    let planner: PlanGenerator
    /// Every planned probe of every agent.
    public let probes: [PlannedProbe]
    /// One agent per instance.
    public let agents: [AgentActivity]
    let natInstances: [String: String]
    let loss: Double
    let hysteresis = Hysteresis()
    /// The probe interval the simulation steps by.
    public static let intervalMs: Int64 = 2_000
    /// How results reach the engine.
    public let timing: SimulationTiming

    /// Plans `topology` with an agent on every instance; `loss` is the random loss of a tcp or http result.
    public init(name: String, topology: Topology, loss: Double, timing: SimulationTiming = .lockstep) {
        self.name = name
        self.timing = timing
        network = Network(topology)
        planner = PlanGenerator(network: network)
        self.loss = loss
        var placements: [AgentPlacement] = []
        var agents: [AgentActivity] = []
        var natInstances: [String: String] = [:]
        for nat in network.nats {
            if let interface = nat.interface, case .instance(let owner) = network.interfaces[interface].owner {
                natInstances[nat.id] = network.instances[owner].id
            }
        }
        for (index, instance) in network.instances.enumerated() {
            guard let primary = instance.interfaces.first else { continue }
            placements.append(AgentPlacement(agentId: instance.id, instance: index, responderPort: 7471))
            agents.append(
                AgentActivity(
                    agentId: instance.id, instance: instance.id, subnet: network.subnets[network.interfaces[primary].subnet].id, lastSeenMs: 0))
        }
        let plans = planner.plans(for: placements)
        probes = plans.keys.sorted().flatMap { plans[$0] ?? [] }
        self.agents = agents
        self.natInstances = natInstances
    }

    // MARK: - Faults

    /// A fault of `kind` picked at random among those the model can express, or nil when it can express none.
    public func fault(_ kind: FaultKind, random: inout SplitMix64) -> SimulatedFault? {
        var topology = network.topology
        func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[random.below(items.count)] }
        let reachable = probes.filter(\.expectReach)
        switch kind {
        case .natDead, .natNotTranslating, .egressChanged, .natFlapping:
            guard let natId = pick(Array(Set(reachable.compactMap { $0.components.first { $0.kind.isNAT }?.id })).sorted()),
                let nat = network.nats.first(where: { $0.id == natId })
            else { return nil }
            let ref = ComponentRef(nat.kind == .gateway ? .natGateway : .natInstance, nat.id)
            var fault = SimulatedFault(kind: kind, label: "\(kind.rawValue): \(nat.id)", faulted: network, culprit: ref, kinds: [.natFailure])
            switch kind {
            case .egressChanged:
                guard let index = topology.nats.firstIndex(where: { $0.id == natId }) else { return nil }
                if topology.nats[index].kind == .instance, let instanceId = topology.nats[index].instance,
                    let owner = topology.instances.firstIndex(where: { $0.id == instanceId })
                {
                    topology.instances[owner].interfaces[0].elasticIp = IPv4Address(198, 18, 0, 77)
                    topology.nats[index].elasticIp = nil
                } else {
                    topology.nats[index].elasticIp = IPv4Address(198, 18, 0, 77)
                }
                fault.faulted = Network(topology)
                fault.kinds = [.egressIPChanged]
            case .natDead:
                // A NAT instance's link down: the host is cut off, its own flows fail and its agent falls silent.
                fault.dead = [ref]
                if let host = natInstances[nat.id] {
                    fault.dead.insert(ComponentRef(.instance, host))
                    fault.silent = [host]
                }
            case .natFlapping:
                // The link flapping, as the lab does it: the host and its agent go with it.
                fault.dead = [ref]
                if let host = natInstances[nat.id] {
                    fault.dead.insert(ComponentRef(.instance, host))
                    fault.silent = [host]
                }
                // Down at least the hysteresis' k intervals (a shorter flap is filtered by design), up 2–4.
                fault.flap = (down: 3 + random.below(2), up: 2 + random.below(3), cycles: 5)
            default:
                fault.dead = [ref]
            }
            return fault
        case .loadBalancerDead:
            guard let lb = pick(Array(Set(reachable.filter { $0.purpose == .loadBalancer }.map(\.targetName))).sorted()) else { return nil }
            let ref = ComponentRef(.loadBalancer, lb)
            return SimulatedFault(
                kind: kind, label: "\(kind.rawValue): \(lb)", faulted: network, dead: [ref], culprit: ref, kinds: [.unexpectedBlock])
        case .targetDead:
            let services = Set(reachable.filter { $0.purpose == .loadBalancer }.flatMap { $0.alternatives ?? [] })
            guard let service = pick(services.sorted()) else { return nil }
            return SimulatedFault(
                kind: kind, label: "\(kind.rawValue): \(service)", faulted: network, dead: [service], culprit: service.base, kinds: [.unexpectedBlock]
            )
        case .instanceDead:
            let targets = Set(reachable.compactMap(\.targetInstance)).subtracting(natInstances.values)
            guard let instance = pick(targets.sorted()) else { return nil }
            let ref = ComponentRef(.instance, instance)
            return SimulatedFault(
                kind: kind, label: "\(kind.rawValue): \(instance)", faulted: network, dead: [ref], silent: [instance],
                culprit: ComponentRef(.agent, instance), kinds: [.agentSilent])
        case .eniDetached, .eniMoved:
            let statics = network.interfaces.enumerated().filter { $0.element.deviceIndex > 0 }.map(\.offset)
            guard let interface = pick(statics), case .instance(let owner) = network.interfaces[interface].owner else { return nil }
            let eni = network.interfaces[interface].id
            guard let ownerIndex = topology.instances.firstIndex(where: { $0.id == network.instances[owner].id }),
                let position = topology.instances[ownerIndex].interfaces.firstIndex(where: { $0.id == eni })
            else { return nil }
            let moved = topology.instances[ownerIndex].interfaces.remove(at: position)
            var placements: [InterfacePlacementDrift] = []
            if kind == .eniMoved {
                let subnet = moved.subnet
                guard
                    let other = topology.instances.indices.first(where: { index in
                        index != ownerIndex && topology.instances[index].interfaces.first?.subnet == subnet
                            && !natInstances.values.contains(topology.instances[index].id)
                    })
                else { return nil }
                var attached = moved
                attached.deviceIndex = topology.instances[other].interfaces.count
                topology.instances[other].interfaces.append(attached)
                placements = [
                    InterfacePlacementDrift(
                        interface: eni, expectedInstance: network.instances[owner].id, observedInstance: topology.instances[other].id,
                        agentId: topology.instances[other].id)
                ]
            }
            return SimulatedFault(
                kind: kind, label: "\(kind.rawValue): \(eni)", faulted: Network(topology), placements: placements, culprit: ComponentRef(.eni, eni),
                kinds: kind == .eniMoved ? [.eniMoved] : [.unexpectedBlock, .eniMoved])
        case .naclDeny:
            let used = reachable.flatMap { probe in
                probe.components.filter { $0.kind == .networkACL && $0.scope?.contains("replies") == false }.map { (probe, $0) }
            }
            guard let (probe, acl) = pick(used), let index = topology.networkAcls.firstIndex(where: { $0.id == acl.id }) else { return nil }
            let ingress = acl.scope?.hasPrefix("ingress") == true
            let proto: IPProtocol = probe.evaluatedProtocol == "udp" ? .udp : .tcp
            let rule = NetworkACLRule(rule: 1, protocol: proto, ports: PortRange(probe.evaluatedPort), cidr: .any, action: .deny)
            if ingress { topology.networkAcls[index].ingress.append(rule) } else { topology.networkAcls[index].egress.append(rule) }
            return SimulatedFault(
                kind: kind, label: "\(kind.rawValue): \(acl.id) \(ingress ? "ingress" : "egress") \(proto)/\(probe.evaluatedPort)",
                faulted: Network(topology), culprit: acl.base, kinds: [.unexpectedBlock])
        case .sgRuleRemoved:
            let used = reachable.flatMap { probe in probe.components.filter { $0.kind == .securityGroup && $0.scope?.hasPrefix("ingress") == true } }
            guard let group = pick(used), let index = topology.securityGroups.firstIndex(where: { $0.id == group.id }),
                let scope = group.scope, let open = scope.firstIndex(of: "["), let close = scope.firstIndex(of: "]"),
                let rule = Int(scope[scope.index(after: open)..<close]), rule < (topology.securityGroups[index].ingress?.count ?? 0)
            else { return nil }
            topology.securityGroups[index].ingress?.remove(at: rule)
            return SimulatedFault(
                kind: kind, label: "\(kind.rawValue): \(group.id) ingress[\(rule)]", faulted: Network(topology), culprit: group.base,
                kinds: [.unexpectedBlock])
        case .sgRuleAdded:
            let denies = probes.filter { !$0.expectReach && $0.blockingComponent?.kind == .securityGroup }
            guard let probe = pick(denies), let group = probe.blockingComponent,
                let index = topology.securityGroups.firstIndex(where: { $0.id == group.id })
            else { return nil }
            topology.securityGroups[index].ingress =
                (topology.securityGroups[index].ingress ?? []) + [
                    SecurityGroupRule(protocol: .tcp, ports: PortRange(probe.evaluatedPort), cidr: CIDR("10.0.0.0/8")!)
                ]
            return SimulatedFault(
                kind: kind, label: "\(kind.rawValue): \(group.id) tcp/\(probe.evaluatedPort)", faulted: Network(topology), culprit: group.base,
                kinds: [.unexpectedReachability])
        case .routeBlackhole:
            let used = reachable.flatMap { probe in
                probe.components.filter { $0.kind == .routeTable && $0.scope != nil }
            }.filter { ref in
                topology.routeTables.first { $0.id == ref.id }?.routes.contains {
                    "route \($0.destination?.description ?? "")" == ref.scope && $0.target != "local"
                }
                    ?? false
            }
            guard let route = pick(used), let table = topology.routeTables.firstIndex(where: { $0.id == route.id }),
                let position = topology.routeTables[table].routes.firstIndex(where: { "route \($0.destination?.description ?? "")" == route.scope })
            else { return nil }
            topology.routeTables[table].routes[position].state = .blackhole
            return SimulatedFault(
                kind: kind, label: "\(kind.rawValue): \(route)", faulted: Network(topology), culprit: route.base,
                kinds: [.unexpectedBlock, .natFailure])
        case .endpointDown:
            guard let endpoint = pick(Array(Set(reachable.filter { $0.purpose == .endpoint }.map(\.targetName))).sorted()) else { return nil }
            let ref = ComponentRef(.endpoint, endpoint)
            return SimulatedFault(
                kind: kind, label: "\(kind.rawValue): \(endpoint)", faulted: network, dead: [ref], culprit: ref, kinds: [.unexpectedBlock])
        }
    }

    // MARK: - Observation

    /// What a planned probe observes in the faulted model: nil when it agrees with the intended model.
    /// What a probe observes: why it disagrees, who answered, and whether the target's host answered (refused).
    typealias Observation = (reason: Disagreement, observedInstance: String?, answered: Bool)

    /// What a planned probe observes in the faulted model: nil when it agrees with the intended model.
    func observe(_ probe: PlannedProbe, in fault: SimulatedFault) -> Observation? {
        let faulted = fault.faulted
        guard let source = faulted.instances.firstIndex(where: { $0.id == probe.sourceInstance }),
            let primary = faulted.instances[source].interfaces.first
        else { return nil }
        let from = Party.interface(primary, address: faulted.interfaces[primary].privateIp)
        let destination: Party
        switch probe.purpose {
        case .endpoint, .natEgress, .loadBalancer:
            guard let party = try? faulted.resolve(probe.targetName) else { return probe.expectReach ? (.blocked, nil, false) : nil }
            destination = party
        default:
            guard let address = IPv4Address(probe.target) else { return nil }
            destination = faulted.party(for: address)
        }
        let proto: IPProtocol = probe.kind == "udp-echo" ? .udp : .tcp
        let port = probe.evaluatedPort
        var reached = (try? faulted.verdict(from: from, to: destination, port: port, protocol: proto, details: false))?.0 == .allowed
        if case .unassigned = destination { reached = false }
        let path = PlanGenerator(network: faulted).pathComponents(from: from, to: destination, port: port, proto: proto)
        var refused = false
        if reached {
            // Dead devices on the path drop (a timeout); a dead service at the end, on a live host, refuses.
            let onPath = Set((path + probe.components).filter { !$0.kind.isTargetService }.map(\.base))
            if !onPath.isDisjoint(with: fault.dead) { reached = false }
            if let target = probe.targetInstance, fault.dead.contains(ComponentRef(.instance, target)) { reached = false }
            if reached {
                let services = probe.alternatives ?? probe.components.filter { $0.kind == .instance && $0.scope != nil }
                let deadService =
                    probe.components.contains { $0.kind.isTargetService && $0.kind != .instance && fault.dead.contains($0.base) }
                    || (probe.purpose == .lbTarget
                        && probe.targetInstance.map { fault.dead.contains(ComponentRef(.instance, $0, scope: "tcp/\(port)")) } == true)
                    || (probe.purpose == .loadBalancer && !services.isEmpty
                        && services.allSatisfy { fault.dead.contains($0) || fault.dead.contains($0.base) })
                if deadService {
                    reached = false
                    refused = true
                }
            }
        }
        guard probe.expectReach else { return reached ? (.reached, nil, false) : nil }
        guard reached else { return (.blocked, nil, refused) }
        if let expected = probe.expectedInstance, case .interface(let index, _) = destination,
            case .instance(let owner) = faulted.interfaces[index].owner,
            faulted.instances[owner].id != expected
        {
            return (.identity, faulted.instances[owner].id, false)
        }
        if probe.purpose == .natEgress, let expected = probe.expectedEgressIP {
            let nat = path.first { $0.kind.isNAT }.flatMap { ref in faulted.nats.first { $0.id == ref.id } }
            let seen = nat?.egressAddress ?? faulted.interfaces[primary].publicIp
            if seen?.description != expected { return (.egressIP, nil, false) }
        }
        return nil
    }

    // MARK: - Time

    /// Plays one fault: warm-up, the fault (steady or flapping), the repair, and what the alerts said. With `timing`'s
    /// spread, the fault begins at a random moment of its interval, and each result reaches the engine when its agent's
    /// report does.
    public func play(_ fault: SimulatedFault, random: inout SplitMix64, trace: ((String) -> Void)? = nil) -> FaultOutcome {
        let observed = probes.map { observe($0, in: fault) }
        var outcome = FaultOutcome()
        outcome.observable = observed.contains { $0 != nil } || !fault.silent.isEmpty || !fault.placements.isEmpty
        guard outcome.observable else { return outcome }
        let interval = Self.intervalMs
        let warm = 8
        let faultLength = fault.flap.map { ($0.down + $0.up) * $0.cycles } ?? 12
        let settle = 20
        let start = Int64(warm) * interval + (timing.spread ? Int64(random.below(Int(interval))) : 0)
        let window = FaultWindow(start: start, end: start + Int64(faultLength) * interval, flap: fault.flap.map { ($0.down, $0.up) })
        var run = Run(simulation: self, random: &random)
        var fired: [(at: Int64, alert: Alert)] = []
        var now: Int64 = 0
        let end = Int64(warm + faultLength + settle) * interval
        while now < end {
            for case .fired(let alert) in run.step(to: now, fault: fault, window: window, observed: observed, random: &random) {
                fired.append((now, alert))
            }
            now += timing.evaluationMs
        }
        outcome.resolved = run.book.open.isEmpty
        func names(_ alert: Alert) -> Bool {
            fault.kinds.contains(alert.kind) && alert.component == fault.culprit.id
                && (alert.componentType == fault.culprit.kind.rawValue || fault.culprit.kind == .agent)
        }
        // Intervals since the fault began, the interval in which it began counting as the first.
        func intervals(_ at: Int64) -> Int { Int((at - start) / interval) + 1 }
        let afterInjection = fired.filter { $0.at >= start }
        if let first = afterInjection.first {
            outcome.firstAlert = "\(first.alert.kind.rawValue) on \(first.alert.componentType) \(first.alert.component)"
            outcome.correct = names(first.alert)
            outcome.ambiguous = !(first.alert.alternatives ?? []).isEmpty
            outcome.namedOrTied =
                outcome.correct
                || (first.alert.alternatives ?? []).contains { $0.hasPrefix("\(fault.culprit.kind.rawValue) \(fault.culprit.id)") }
            if outcome.correct { outcome.detection = intervals(first.at) }
        }
        // Alerts that name something else. The dead instance's own agent silence and a dead NAT instance's folded
        // agent are the fault, not false alerts.
        let others = fired.filter { !names($0.alert) && !fault.silent.contains($0.alert.component) }
        outcome.falseAlerts = others.filter { $0.alert.id != fired.first?.alert.id || outcome.correct }.count
        if let trace {
            for (at, alert) in fired {
                trace(
                    "    [\(Self.seconds(at - start)) s] \(alert.kind.rawValue) \(alert.componentType) \(alert.component): \(alert.summary)\n      \(alert.evidence.prefix(6).joined(separator: "\n      "))"
                )
            }
        }
        outcome.falseDetails = others.map {
            "\($0.alert.kind.rawValue) on \($0.alert.componentType) \($0.alert.component) at \(Self.seconds($0.at - start)) s"
        }
        outcome.episodes = fired.filter { names($0.alert) }.count
        return outcome
    }

    static func seconds(_ ms: Int64) -> String { BlameEngine.seconds(ms) }

    /// Runs `intervals` probe intervals without a fault and returns the alerts fired (each one false); `onFalse` hears
    /// each.
    public func quiet(intervals: Int, random: inout SplitMix64, onFalse: ((String) -> Void)? = nil) -> Int {
        var run = Run(simulation: self, random: &random)
        var alerts = 0
        let nothing = probes.map { _ in Observation?.none }
        let none = SimulatedFault(kind: .natDead, label: "none", faulted: network, culprit: ComponentRef(.subnet, ""), kinds: [])
        let never = FaultWindow(start: .max, end: .max, flap: nil)
        var now: Int64 = 0
        let end = Int64(intervals) * Self.intervalMs
        while now < end {
            for case .fired(let alert) in run.step(to: now, fault: none, window: never, observed: nothing, random: &random) {
                alerts += 1
                if let onFalse {
                    onFalse(
                        "  FALSE \(name) at \(Self.seconds(now)) s: \(alert.kind.rawValue) on \(alert.componentType) \(alert.component): \(alert.summary)"
                    )
                }
            }
            now += timing.evaluationMs
        }
        return alerts
    }

    /// When a fault is in place: from `start` to `end`, down and up by whole intervals when it flaps.
    struct FaultWindow {
        var start: Int64
        var end: Int64
        var flap: (down: Int, up: Int)?

        func active(at time: Int64) -> Bool {
            guard time >= start && time < end else { return false }
            guard let flap else { return true }
            return Int((time - start) / FaultSimulator.intervalMs) % (flap.down + flap.up) < flap.down
        }
    }

    /// A report on its way to the collector: the results of one batch, when it arrives.
    struct Batch {
        var agent: Int
        var arrivesAt: Int64
        var results: [(probe: Int, at: Int64, result: Observation?)]
    }

    /// The pair states, the engine and the book through one run; agents probe, batch and report as `timing` says.
    struct Run {
        let simulation: FaultSimulator
        var states: [PairState]
        var reasons: [Disagreement?]
        var observedInstances: [String?]
        var answered: [Bool]
        var lastSeen: [String: Int64] = [:]
        var book: AlertBook
        let engine: BlameEngine
        /// Each probe's moment in its interval, each agent's moment in its report interval and its report delay bound.
        let probePhase: [Int64]
        let reportPhase: [Int64]
        let reportDelay: [Int64]
        /// The agents' index by id, each probe's agent, results taken and not yet reported, reports on their way.
        let agentIndex: [String: Int]
        let probeAgent: [Int]
        var buffers: [[(probe: Int, at: Int64, result: Observation?)]]
        var inFlight: [Batch] = []
        var lastArrival: [Int64]
        var previous: Int64 = -1

        init(simulation: FaultSimulator, random: inout SplitMix64) {
            self.simulation = simulation
            states = simulation.probes.map { _ in PairState() }
            reasons = simulation.probes.map { _ in nil }
            observedInstances = simulation.probes.map { _ in nil }
            answered = simulation.probes.map { _ in false }
            let interval = FaultSimulator.intervalMs
            let timing = simulation.timing
            // The collector's defaults: the hold-down is the hysteresis window plus the successes to come back.
            let holdDown = Int64(simulation.hysteresis.window + simulation.hysteresis.successesToUp) * interval
            book = AlertBook(holdDownMs: holdDown)
            engine = BlameEngine(
                silenceMs: 5 * interval, lateMs: max(2 * interval + 500, 2 * timing.reportIntervalMs + 1_000), settleMs: 5 * interval,
                holdDownMs: holdDown, vouchAfter: simulation.hysteresis.window,
                confirmSingle: min(simulation.hysteresis.failuresToDown + 1, simulation.hysteresis.window),
                evidenceWaitMs: interval + timing.reportIntervalMs, natInstances: simulation.natInstances)
            agentIndex = Dictionary(simulation.agents.enumerated().map { ($1.agentId, $0) }, uniquingKeysWith: { first, _ in first })
            let index = agentIndex
            probeAgent = simulation.probes.map { index[$0.sourceAgent] ?? 0 }
            let count = simulation.agents.count
            if timing.spread {
                // Each agent starts at its own moment and spreads its probes over the interval.
                let agentPhase = (0..<count).map { _ in Int64(random.below(Int(interval))) }
                probePhase = probeAgent.map { (agentPhase[$0] + Int64(random.below(Int(interval) / 2))) % interval }
                let report = max(1, timing.reportIntervalMs)
                reportPhase = (0..<count).map { _ in Int64(random.below(Int(report))) }
                // Delivery takes up to a report interval; a slow reporter (one in four) takes up to a probe interval more.
                reportDelay = (0..<count).map { agent in report + (timing.slowReporters && agent % 4 == 1 ? interval : 0) }
            } else {
                probePhase = probeAgent.map { _ in 0 }
                reportPhase = Array(repeating: 0, count: count)
                reportDelay = Array(repeating: 0, count: count)
            }
            buffers = Array(repeating: [], count: count)
            lastArrival = Array(repeating: 0, count: count)
        }

        /// Advances the run to `now`: the probes due since the last step run, the reports due are sent, those that
        /// arrived are read into the pair states, and the engine and the book evaluate at `now`.
        mutating func step(
            to now: Int64, fault: SimulatedFault, window: FaultWindow, observed: [Observation?], random: inout SplitMix64
        ) -> [AlertChange] {
            let interval = FaultSimulator.intervalMs
            let timing = simulation.timing
            let silent = fault.silent
            func quiet(_ agent: Int, at time: Int64) -> Bool { window.active(at: time) && silent.contains(simulation.agents[agent].agentId) }
            // Probes whose moment fell in (previous, now].
            for (index, probe) in simulation.probes.enumerated() {
                let phase = probePhase[index]
                var run = previous < phase ? phase : ((previous - phase) / interval + 1) * interval + phase
                while run <= now {
                    let agent = probeAgent[index]
                    if !quiet(agent, at: run) {
                        var result = window.active(at: run) ? observed[index] : nil
                        // Loss: a tcp or http result fails with the loss rate (a lost SYN outlasts the probe's timeout);
                        // a udp-echo burst fails only when all three datagrams are lost.
                        let loss = simulation.loss
                        let lossRate = probe.kind == "udp-echo" ? loss * loss * loss : loss
                        if result == nil, probe.expectReach, Double(random.below(1_000_000)) / 1_000_000 < lossRate {
                            result = (.blocked, nil, false)
                        }
                        buffers[agent].append((index, run, result))
                    }
                    run += interval
                }
            }
            // Reports whose moment fell in (previous, now]; every agent reports each interval, results or not.
            for agent in buffers.indices {
                let phase = reportPhase[agent]
                let every = max(1, timing.reportIntervalMs)
                var send = timing.spread ? (previous < phase ? phase : ((previous - phase) / every + 1) * every + phase) : now
                while send <= now {
                    if !quiet(agent, at: send) {
                        let delay = reportDelay[agent] > 0 ? Int64(random.below(Int(reportDelay[agent]))) : 0
                        let arrives = max(send + delay, lastArrival[agent])  // in sequence, as the agent sends them
                        lastArrival[agent] = arrives
                        inFlight.append(Batch(agent: agent, arrivesAt: arrives, results: buffers[agent]))
                        buffers[agent] = []
                    }
                    send += every
                    if !timing.spread { break }
                }
            }
            // What arrived, in order of arrival.
            inFlight.sort { $0.arrivesAt < $1.arrivesAt }
            let arrived = inFlight.prefix { $0.arrivesAt <= now }
            inFlight.removeFirst(arrived.count)
            for batch in arrived {
                lastSeen[simulation.agents[batch.agent].agentId] = batch.arrivesAt
                for (index, at, result) in batch.results {
                    _ = states[index].observe(disagrees: result != nil, rttMs: nil, at: at, hysteresis: simulation.hysteresis)
                    reasons[index] = Disagreement.current(result?.0, previous: reasons[index], status: states[index].status)
                    if let seen = result?.observedInstance { observedInstances[index] = seen }
                    if let result { answered[index] = result.reason == .blocked && result.answered }
                }
            }
            previous = now
            let views = simulation.probes.indices.map { index in
                PairView(
                    key: "\(simulation.probes[index].sourceAgent)/\(simulation.probes[index].id)", probe: simulation.probes[index],
                    state: states[index],
                    reason: reasons[index], observedInstance: observedInstances[index], answered: answered[index])
            }
            var agents = simulation.agents
            for index in agents.indices { agents[index].lastSeenMs = lastSeen[agents[index].agentId] ?? 0 }
            let placements = window.active(at: now) ? fault.placements : []
            let findings = engine.findings(BlameInput(pairs: views, agents: agents, placements: placements, open: Array(book.open.values), now: now))
            return book.reconcile(findings, now: now)
        }
    }
}
