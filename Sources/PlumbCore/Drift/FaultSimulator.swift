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

    /// Plans `topology` with an agent on every instance; `loss` is the random loss of a tcp or http result.
    public init(name: String, topology: Topology, loss: Double) {
        self.name = name
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
                fault.dead = [ref]
                if let host = natInstances[nat.id] { fault.silent = [host] }
            case .natFlapping:
                fault.dead = [ref]
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

    /// Plays one fault: warm-up, the fault (steady or flapping), the repair, and what the alerts said.
    public func play(_ fault: SimulatedFault, random: inout SplitMix64, trace: ((String) -> Void)? = nil) -> FaultOutcome {
        let observed = probes.map { observe($0, in: fault) }
        var outcome = FaultOutcome()
        outcome.observable = observed.contains { $0 != nil } || !fault.silent.isEmpty || !fault.placements.isEmpty
        guard outcome.observable else { return outcome }
        let warm = 8
        let faultLength = fault.flap.map { ($0.down + $0.up) * $0.cycles } ?? 12
        let settle = 20
        var run = Run(simulation: self)
        var fired: [(at: Int, alert: Alert)] = []
        for interval in 0..<(warm + faultLength + settle) {
            var active = interval >= warm && interval < warm + faultLength
            if active, let flap = fault.flap { active = (interval - warm) % (flap.down + flap.up) < flap.down }
            let changes = run.step(interval: interval, fault: active ? fault : nil, observed: observed, random: &random)
            for case .fired(let alert) in changes { fired.append((interval, alert)) }
        }
        outcome.resolved = run.book.open.isEmpty
        func names(_ alert: Alert) -> Bool {
            fault.kinds.contains(alert.kind) && alert.component == fault.culprit.id
                && (alert.componentType == fault.culprit.kind.rawValue || fault.culprit.kind == .agent)
        }
        let afterInjection = fired.filter { $0.at >= warm }
        if let first = afterInjection.first {
            outcome.firstAlert = "\(first.alert.kind.rawValue) on \(first.alert.componentType) \(first.alert.component)"
            outcome.correct = names(first.alert)
            outcome.ambiguous = !(first.alert.alternatives ?? []).isEmpty
            outcome.namedOrTied =
                outcome.correct
                || (first.alert.alternatives ?? []).contains { $0.hasPrefix("\(fault.culprit.kind.rawValue) \(fault.culprit.id)") }
            if outcome.correct { outcome.detection = first.at - warm + 1 }
        }
        // Alerts that name something else. The dead instance's own agent silence and a dead NAT instance's folded
        // agent are the fault, not false alerts.
        let others = fired.filter { !names($0.alert) && !fault.silent.contains($0.alert.component) }
        outcome.falseAlerts = others.filter { $0.alert.id != fired.first?.alert.id || outcome.correct }.count
        if let trace {
            for (at, alert) in fired {
                trace(
                    "    [\(at - warm)] \(alert.kind.rawValue) \(alert.componentType) \(alert.component): \(alert.summary)\n      \(alert.evidence.prefix(4).joined(separator: "\n      "))"
                )
            }
        }
        outcome.falseDetails = others.map { "\($0.alert.kind.rawValue) on \($0.alert.componentType) \($0.alert.component) at \($0.at - warm)" }
        outcome.episodes = fired.filter { names($0.alert) }.count
        return outcome
    }

    /// Fault-free intervals with loss: the alerts that fired (all of them false).
    public func quiet(intervals: Int, random: inout SplitMix64, onFalse: ((String) -> Void)? = nil) -> Int {
        var run = Run(simulation: self)
        var alerts = 0
        let nothing = probes.map { _ in Observation?.none }
        for interval in 0..<intervals {
            for case .fired(let alert) in run.step(interval: interval, fault: nil, observed: nothing, random: &random) {
                alerts += 1
                if let onFalse {
                    onFalse(
                        "  FALSE \(name) at interval \(interval): \(alert.kind.rawValue) on \(alert.componentType) \(alert.component): \(alert.summary)"
                    )
                }
            }
        }
        return alerts
    }

    /// The pair states, the engine and the book through one run.
    struct Run {
        let simulation: FaultSimulator
        var states: [PairState]
        var reasons: [Disagreement?]
        var observedInstances: [String?]
        var answered: [Bool]
        var lastSeen: [String: Int64] = [:]
        var book: AlertBook
        let engine: BlameEngine

        init(simulation: FaultSimulator) {
            self.simulation = simulation
            states = simulation.probes.map { _ in PairState() }
            reasons = simulation.probes.map { _ in nil }
            observedInstances = simulation.probes.map { _ in nil }
            answered = simulation.probes.map { _ in false }
            let interval = FaultSimulator.intervalMs
            // The collector's defaults: the hold-down is the hysteresis window plus the successes to come back.
            let holdDown = Int64(simulation.hysteresis.window + simulation.hysteresis.successesToUp) * interval
            book = AlertBook(holdDownMs: holdDown)
            engine = BlameEngine(
                silenceMs: 5 * interval, lateMs: 2 * interval + 500, settleMs: 5 * interval, holdDownMs: holdDown,
                vouchAfter: simulation.hysteresis.window,
                confirmSingle: min(simulation.hysteresis.failuresToDown + 1, simulation.hysteresis.window),
                natInstances: simulation.natInstances)
        }

        mutating func step(
            interval: Int, fault: SimulatedFault?, observed: [Observation?], random: inout SplitMix64
        ) -> [AlertChange] {
            let now = Int64(interval) * FaultSimulator.intervalMs
            let silent = fault?.silent ?? []
            for (index, probe) in simulation.probes.enumerated() where !silent.contains(probe.sourceAgent) {
                var result = fault == nil ? nil : observed[index]
                // Loss: a tcp or http result fails with the loss rate (a lost SYN outlasts the probe's timeout); a
                // udp-echo burst fails only when all three datagrams are lost.
                let lossRate = probe.kind == "udp-echo" ? simulation.loss * simulation.loss * simulation.loss : simulation.loss
                if result == nil, probe.expectReach, Double(random.below(1_000_000)) / 1_000_000 < lossRate { result = (.blocked, nil, false) }
                _ = states[index].observe(disagrees: result != nil, rttMs: nil, at: now, hysteresis: simulation.hysteresis)
                reasons[index] = Disagreement.current(result?.0, previous: reasons[index], status: states[index].status)
                if let seen = result?.observedInstance { observedInstances[index] = seen }
                if let result { answered[index] = result.reason == .blocked && result.answered }
            }
            for agent in simulation.agents where !silent.contains(agent.agentId) { lastSeen[agent.agentId] = now }
            let views = simulation.probes.indices.map { index in
                PairView(
                    key: "\(simulation.probes[index].sourceAgent)/\(simulation.probes[index].id)", probe: simulation.probes[index],
                    state: states[index],
                    reason: reasons[index], observedInstance: observedInstances[index], answered: answered[index])
            }
            var agents = simulation.agents
            for index in agents.indices { agents[index].lastSeenMs = lastSeen[agents[index].agentId] ?? 0 }
            let findings = engine.findings(
                BlameInput(pairs: views, agents: agents, placements: fault?.placements ?? [], open: Array(book.open.values), now: now))
            return book.reconcile(findings, now: now)
        }
    }
}
