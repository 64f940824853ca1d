// plumb-bench blame: a fault simulator that measures blame. Models (generated VPCs at several sizes, the seed
// architecture and the lab's model) are planned; single faults of every kind each model can express are injected;
// the observed result of every planned probe is derived by evaluating the faulted model with the same engine (plus
// an overlay for dead processes: NATs, load balancers, targets, instances, endpoints), with random loss; the real pair
// state machines, blame engine and alert book are stepped through time; and per fault kind the benchmark prints top-1
// accuracy, how often the alert admits ambiguity, detection time in probe intervals and false alerts. Fault-free
// runs with loss (false alerts per simulated hour) and flapping faults (episodes per fault) complete the table.
//
//   swift run -c release plumb-bench blame [--faults N] [--loss 0.01] [--hours H] [--sizes 2,6,20] [--seed S] [--verbose]
import Foundation
import PlumbCore
import PlumbModelIO

enum BlameBench {
    /// The fault kinds the simulator injects.
    enum FaultKind: String, CaseIterable {
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
    struct Fault {
        var kind: FaultKind
        var label: String
        var faulted: Network
        /// Runtime components that no longer forward or answer (bases), and target services that died.
        var dead: Set<ComponentRef> = []
        /// Agents that stop reporting (their instance died).
        var silent: Set<String> = []
        /// ENIs reported by the agent of another instance.
        var placements: [InterfacePlacementDrift] = []
        /// The component the first alert must name, and the alert kinds that name it rightly.
        var culprit: ComponentRef
        var kinds: Set<Finding.Kind>
        /// Down and up phases in intervals (flapping), or nil for a steady fault.
        var flap: (down: Int, up: Int, cycles: Int)?
    }

    struct Options {
        var faults = 1_000
        var loss = 0.01
        var hours = 1.0
        var sizes = [2, 6, 20]
        var seed: UInt64 = 7
        var verbose = false
        var only: String?
    }

    static func run(_ arguments: [String]) async throws {
        var options = Options()
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            if flag == "--verbose" {
                options.verbose = true
                continue
            }
            switch (flag, iterator.next()) {
            case ("--faults", let value?): options.faults = Int(value) ?? options.faults
            case ("--loss", let value?): options.loss = Double(value) ?? options.loss
            case ("--hours", let value?): options.hours = Double(value) ?? options.hours
            case ("--sizes", let value?): options.sizes = value.split(separator: ",").compactMap { Int($0) }
            case ("--seed", let value?): options.seed = UInt64(value) ?? options.seed
            case ("--only", let value?): options.only = value
            default:
                fatalError("usage: plumb-bench blame [--faults N] [--loss P] [--hours H] [--sizes 2,6,20] [--seed S] [--verbose]")
            }
        }
        var models: [(name: String, topology: Topology)] = []
        for size in options.sizes {
            for variant in 0..<2 {
                let text = generatedModel(perTier: size, zones: 2, directTargets: variant == 1)
                let loaded = ModelLoader.load(text: text, file: "generated-\(size)")
                guard let topology = loaded.topology, !loaded.diagnostics.hasErrors else {
                    fatalError("the generated model is invalid:\n" + loaded.diagnostics.map(\.description).joined(separator: "\n"))
                }
                models.append(("generated \(size)/tier\(variant == 1 ? " (targets probed directly)" : "")", topology))
            }
        }
        for path in ["examples/karma.yaml", "deploy/lab/lab.yaml"] {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), let topology = ModelLoader.load(text: text, file: path).topology {
                models.append((path, topology))
            } else {
                print("  (\(path) not found: run from the repository's top level to include it)")
            }
        }
        var random = SplitMix64(seed: options.seed)
        let simulations = models.map { Simulation(name: $0.name, topology: $0.topology, loss: options.loss) }
        print("blame simulator: \(simulations.count) models, \(options.faults) single faults, \(Int(options.loss * 100)) % loss on tcp/http results")
        for simulation in simulations {
            print(
                "  \(simulation.name): \(simulation.network.instances.count) instances, \(simulation.agents.count) agents, \(simulation.probes.count) planned probes"
            )
        }
        // Faults, spread over models and kinds.
        var tallies: [FaultKind: Tally] = [:]
        var unobservable: [FaultKind: Int] = [:]
        var injected = 0
        var attempts = 0
        while injected < options.faults && attempts < options.faults * 20 {
            attempts += 1
            let model = random.below(simulations.count)
            let kind = FaultKind.allCases[random.below(FaultKind.allCases.count)]
            if let only = options.only, kind.rawValue != only { continue }
            guard let fault = simulations[model].fault(kind, random: &random) else { continue }
            let outcome = simulations[model].play(fault, random: &random)
            guard outcome.observable else {
                unobservable[kind, default: 0] += 1
                continue
            }
            injected += 1
            tallies[kind, default: Tally()].add(outcome)
            if options.verbose && (!outcome.correct || outcome.falseAlerts > 0 || outcome.episodes > 1) {
                print(
                    "  \(outcome.correct ? "ok  " : "MISS") \(simulations[model].name): \(fault.label) -> \(outcome.firstAlert ?? "no alert")"
                        + (outcome.falseDetails.isEmpty ? "" : "; also \(outcome.falseDetails.joined(separator: ", "))")
                        + (outcome.episodes > 1 ? "; \(outcome.episodes) episodes" : ""))
            }
        }
        // Fault-free runs with loss.
        let intervalsPerHour = 3_600 / 2
        var quietAlerts = 0
        var quietHours = 0.0
        for index in simulations.indices {
            let intervals = Int(options.hours * Double(intervalsPerHour))
            quietAlerts += simulations[index].quiet(intervals: intervals, verbose: options.verbose, random: &random)
            quietHours += Double(intervals) / Double(intervalsPerHour)
        }
        report(tallies: tallies, unobservable: unobservable, quietAlerts: quietAlerts, quietHours: quietHours)
    }

    struct Outcome {
        var observable = true
        var correct = false
        var ambiguous = false
        var detection: Int?
        var falseAlerts = 0
        var episodes = 0
        var firstAlert: String?
        var resolved = true
        /// The culprit is the first alert's component or one of the candidates it says it cannot tell apart.
        var namedOrTied = false
        var falseDetails: [String] = []
    }

    struct Tally {
        var faults = 0
        var correct = 0
        var ambiguous = 0
        var detected = 0
        var detection = 0
        var maxDetection = 0
        var falseAlerts = 0
        var episodes = 0
        var unresolved = 0
        var namedOrTied = 0

        mutating func add(_ outcome: Outcome) {
            faults += 1
            if outcome.correct { correct += 1 }
            if outcome.namedOrTied { namedOrTied += 1 }
            if outcome.ambiguous { ambiguous += 1 }
            if let detection = outcome.detection {
                detected += 1
                self.detection += detection
                maxDetection = max(maxDetection, detection)
            }
            falseAlerts += outcome.falseAlerts
            episodes += outcome.episodes
            if !outcome.resolved { unresolved += 1 }
        }
    }

    static func report(tallies: [FaultKind: Tally], unobservable: [FaultKind: Int], quietAlerts: Int, quietHours: Double) {
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : text + String(repeating: " ", count: width - text.count) }
        func percent(_ part: Int, _ whole: Int) -> String { String(format: "%.1f %%", Double(part) / Double(max(1, whole)) * 100) }
        func row(_ name: String, _ tally: Tally, episodes: Bool) -> String {
            pad(name, 24) + pad("\(tally.faults)", 8) + pad(percent(tally.correct, tally.faults), 9)
                + pad(percent(tally.namedOrTied, tally.faults), 10)
                + pad(percent(tally.ambiguous, tally.faults), 11)
                + pad(String(format: "%.1f / %d", Double(tally.detection) / Double(max(1, tally.detected)), tally.maxDetection), 19)
                + pad("\(tally.falseAlerts)", 7)
                + pad(episodes ? String(format: "%.2f", Double(tally.episodes) / Double(max(1, tally.faults))) : "", 10)
                + "\(tally.unresolved)"
        }
        print("")
        print(
            pad("fault", 24) + pad("faults", 8) + pad("top-1", 9) + pad("or tied", 10) + pad("ambiguous", 11) + pad("detect (mean/max)", 19)
                + pad("false", 7) + pad("episodes", 10) + "unresolved")
        var total = Tally()
        var pathMax = 0
        for kind in FaultKind.allCases {
            guard let tally = tallies[kind] else { continue }
            print(row(kind.rawValue, tally, episodes: true))
            total.faults += tally.faults
            total.correct += tally.correct
            total.namedOrTied += tally.namedOrTied
            total.ambiguous += tally.ambiguous
            total.falseAlerts += tally.falseAlerts
            total.detected += tally.detected
            total.detection += tally.detection
            total.maxDetection = max(total.maxDetection, tally.maxDetection)
            total.unresolved += tally.unresolved
            // Silence is detected by the silence window, a flap by as many cycles as the hysteresis needs: neither is
            // the k + 1 of a steady path fault.
            if kind != .instanceDead && kind != .natFlapping { pathMax = max(pathMax, tally.maxDetection) }
        }
        print(row("all", total, episodes: false))
        if !unobservable.isEmpty {
            print(
                "not observable by the plan (no planned probe sees them; not counted): "
                    + unobservable.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", "))
        }
        let accuracy = Double(total.correct) / Double(max(1, total.faults)) * 100
        let flapping = tallies[.natFlapping].map { Double($0.episodes) / Double(max(1, $0.faults)) } ?? 0
        print("")
        print(
            "targets: top-1 >= 99 % over >= 1,000 faults: \(String(format: "%.1f %%", accuracy)) over \(total.faults) \(accuracy >= 99 && total.faults >= 1_000 ? "(met)" : "(not met)"); named or tied: \(percent(total.namedOrTied, total.faults))"
        )
        print(
            "         0 false alerts in fault-free runs with loss: \(quietAlerts) in \(String(format: "%.1f", quietHours)) simulated hours \(quietAlerts == 0 ? "(met)" : "(not met)"); during faults: \(total.falseAlerts)"
        )
        print("         one episode per flapping fault: \(String(format: "%.2f", flapping)) \(flapping == 1 ? "(met)" : "(not met)")")
        print("         detection of steady path faults within k + 1 = 4 intervals: max \(pathMax) \(pathMax <= 4 ? "(met)" : "(not met)")")
    }
}

/// One model, planned, with an agent on every instance.
struct Simulation {
    let name: String
    let network: Network
    let planner: PlanGenerator
    let probes: [PlannedProbe]
    let agents: [AgentActivity]
    let natInstances: [String: String]
    let loss: Double
    let hysteresis = Hysteresis()
    static let intervalMs: Int64 = 2_000

    init(name: String, topology: Topology, loss: Double) {
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

    func fault(_ kind: BlameBench.FaultKind, random: inout SplitMix64) -> BlameBench.Fault? {
        var topology = network.topology
        func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[random.below(items.count)] }
        let reachable = probes.filter(\.expectReach)
        switch kind {
        case .natDead, .natNotTranslating, .egressChanged, .natFlapping:
            guard let natId = pick(Array(Set(reachable.compactMap { $0.components.first { $0.kind.isNAT }?.id })).sorted()),
                let nat = network.nats.first(where: { $0.id == natId })
            else { return nil }
            let ref = ComponentRef(nat.kind == .gateway ? .natGateway : .natInstance, nat.id)
            var fault = BlameBench.Fault(kind: kind, label: "\(kind.rawValue): \(nat.id)", faulted: network, culprit: ref, kinds: [.natFailure])
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
            return BlameBench.Fault(
                kind: kind, label: "\(kind.rawValue): \(lb)", faulted: network, dead: [ref], culprit: ref, kinds: [.unexpectedBlock])
        case .targetDead:
            let services = Set(reachable.filter { $0.purpose == .loadBalancer }.flatMap { $0.alternatives ?? [] })
            guard let service = pick(services.sorted()) else { return nil }
            return BlameBench.Fault(
                kind: kind, label: "\(kind.rawValue): \(service)", faulted: network, dead: [service], culprit: service.base, kinds: [.unexpectedBlock]
            )
        case .instanceDead:
            let targets = Set(reachable.compactMap(\.targetInstance)).subtracting(natInstances.values)
            guard let instance = pick(targets.sorted()) else { return nil }
            let ref = ComponentRef(.instance, instance)
            return BlameBench.Fault(
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
            return BlameBench.Fault(
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
            return BlameBench.Fault(
                kind: kind, label: "\(kind.rawValue): \(acl.id) \(ingress ? "ingress" : "egress") \(proto)/\(probe.evaluatedPort)",
                faulted: Network(topology), culprit: acl.base, kinds: [.unexpectedBlock])
        case .sgRuleRemoved:
            let used = reachable.flatMap { probe in probe.components.filter { $0.kind == .securityGroup && $0.scope?.hasPrefix("ingress") == true } }
            guard let group = pick(used), let index = topology.securityGroups.firstIndex(where: { $0.id == group.id }),
                let scope = group.scope, let open = scope.firstIndex(of: "["), let close = scope.firstIndex(of: "]"),
                let rule = Int(scope[scope.index(after: open)..<close]), rule < (topology.securityGroups[index].ingress?.count ?? 0)
            else { return nil }
            topology.securityGroups[index].ingress?.remove(at: rule)
            return BlameBench.Fault(
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
            return BlameBench.Fault(
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
            return BlameBench.Fault(
                kind: kind, label: "\(kind.rawValue): \(route)", faulted: Network(topology), culprit: route.base,
                kinds: [.unexpectedBlock, .natFailure])
        case .endpointDown:
            guard let endpoint = pick(Array(Set(reachable.filter { $0.purpose == .endpoint }.map(\.targetName))).sorted()) else { return nil }
            let ref = ComponentRef(.endpoint, endpoint)
            return BlameBench.Fault(
                kind: kind, label: "\(kind.rawValue): \(endpoint)", faulted: network, dead: [ref], culprit: ref, kinds: [.unexpectedBlock])
        }
    }

    // MARK: - Observation

    /// What a planned probe observes in the faulted model: nil when it agrees with the intended model.
    /// What a probe observes: why it disagrees, who answered, and whether the target's host answered (refused).
    typealias Observation = (reason: Disagreement, observedInstance: String?, answered: Bool)

    /// What a planned probe observes in the faulted model: nil when it agrees with the intended model.
    func observe(_ probe: PlannedProbe, in fault: BlameBench.Fault) -> Observation? {
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
    func play(_ fault: BlameBench.Fault, random: inout SplitMix64) -> BlameBench.Outcome {
        let observed = probes.map { observe($0, in: fault) }
        var outcome = BlameBench.Outcome()
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
        if ProcessInfo.processInfo.environment["PLUMB_BLAME_TRACE"] != nil {
            for (at, alert) in fired {
                print(
                    "    [\(at - warm)] \(alert.kind.rawValue) \(alert.componentType) \(alert.component): \(alert.summary)\n      \(alert.evidence.prefix(4).joined(separator: "\n      "))"
                )
            }
        }
        outcome.falseDetails = others.map { "\($0.alert.kind.rawValue) on \($0.alert.componentType) \($0.alert.component) at \($0.at - warm)" }
        outcome.episodes = fired.filter { names($0.alert) }.count
        return outcome
    }

    /// Fault-free intervals with loss: the alerts that fired (all of them false).
    func quiet(intervals: Int, verbose: Bool = false, random: inout SplitMix64) -> Int {
        var run = Run(simulation: self)
        var alerts = 0
        let nothing = probes.map { _ in Observation?.none }
        for interval in 0..<intervals {
            for case .fired(let alert) in run.step(interval: interval, fault: nil, observed: nothing, random: &random) {
                alerts += 1
                if verbose {
                    print(
                        "  FALSE \(name) at interval \(interval): \(alert.kind.rawValue) on \(alert.componentType) \(alert.component): \(alert.summary)"
                    )
                }
            }
        }
        return alerts
    }

    /// The pair states, the engine and the book through one run.
    struct Run {
        let simulation: Simulation
        var states: [PairState]
        var reasons: [Disagreement?]
        var observedInstances: [String?]
        var answered: [Bool]
        var lastSeen: [String: Int64] = [:]
        var book: AlertBook
        let engine: BlameEngine

        init(simulation: Simulation) {
            self.simulation = simulation
            states = simulation.probes.map { _ in PairState() }
            reasons = simulation.probes.map { _ in nil }
            observedInstances = simulation.probes.map { _ in nil }
            answered = simulation.probes.map { _ in false }
            let interval = Simulation.intervalMs
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
            interval: Int, fault: BlameBench.Fault?, observed: [Observation?], random: inout SplitMix64
        ) -> [AlertChange] {
            let now = Int64(interval) * Simulation.intervalMs
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

extension BlameBench {
    /// A VPC of the seed architecture's shape, `zones` zones with public, web, app and data subnets, `perTier`
    /// instances per tier and zone, a NAT per zone (an instance in the first, a gateway in the others), an internal
    /// load balancer over the app tier, S3 and an egress echo, a bastion and a static-IP ENI per zone. With
    /// `directTargets`, the app tier also admits the web tier on its target port, so agents can probe the targets.
    static func generatedModel(perTier: Int, zones: Int, directTargets: Bool) -> String {
        var lines: [String] = [
            "version: 1", "name: generated", "vpc: {id: vpc-gen, cidrBlocks: [10.0.0.0/16]}", "internetGateway: {id: igw-gen}",
            "prefixLists:", "  - {id: pl-s3, cidrs: [203.0.113.100/32]}", "subnets:",
        ]
        let tiers = ["public", "web", "app", "data"]
        for zone in 0..<zones {
            for (t, tier) in tiers.enumerated() {
                lines.append(
                    "  - {id: subnet-\(tier)-\(zone), cidr: 10.0.\(zone * 10 + t).0/24, zone: z\(zone), routeTable: rtb-\(tier == "public" ? "public" : "private-\(zone)"), networkAcl: acl-\(tier)}"
                )
            }
        }
        lines.append("routeTables:")
        lines.append("  - {id: rtb-public, routes: [{destination: 10.0.0.0/16, target: local}, {destination: 0.0.0.0/0, target: igw-gen}]}")
        for zone in 0..<zones {
            lines.append(
                "  - {id: rtb-private-\(zone), routes: [{destination: 10.0.0.0/16, target: local}, {destination: 0.0.0.0/0, target: nat-\(zone)}]}")
        }
        lines.append("networkAcls:")
        lines.append(
            "  - {id: acl-public, ingress: [{rule: 100, protocol: all, cidr: 10.0.0.0/16, action: allow}, {rule: 110, protocol: tcp, ports: 22, cidr: 192.0.2.0/24, action: allow}, {rule: 120, protocol: tcp, ports: 1024-65535, cidr: 0.0.0.0/0, action: allow}], egress: [{rule: 100, protocol: all, cidr: 0.0.0.0/0, action: allow}]}"
        )
        for tier in tiers.dropFirst() {
            lines.append(
                "  - {id: acl-\(tier), ingress: [{rule: 100, protocol: all, cidr: 10.0.0.0/16, action: allow}, {rule: 110, protocol: tcp, ports: 1024-65535, cidr: 0.0.0.0/0, action: allow}], egress: [{rule: 100, protocol: all, cidr: 10.0.0.0/16, action: allow}, {rule: 110, protocol: tcp, ports: 80, cidr: 0.0.0.0/0, action: allow}, {rule: 120, protocol: tcp, ports: 443, cidr: 0.0.0.0/0, action: allow}]}"
            )
        }
        lines += [
            "securityGroups:",
            "  - {id: sg-agent, ingress: [{protocol: udp, ports: 7471, cidr: 10.0.0.0/16}, {protocol: tcp, ports: 7471, cidr: 10.0.0.0/16}]}",
            "  - {id: sg-bastion, ingress: [{protocol: tcp, ports: 22, cidr: 192.0.2.0/24}]}",
            "  - {id: sg-nat, ingress: [{protocol: tcp, ports: 80, cidr: 10.0.0.0/16}, {protocol: tcp, ports: 443, cidr: 10.0.0.0/16}], egress: [{protocol: tcp, ports: 80, cidr: 0.0.0.0/0}, {protocol: tcp, ports: 443, cidr: 0.0.0.0/0}, {protocol: all, cidr: 10.0.0.0/16}]}",
            "  - {id: sg-web, ingress: [{protocol: tcp, ports: 80, cidr: 10.0.0.0/16}, {protocol: tcp, ports: 22, securityGroup: sg-bastion}]}",
            "  - {id: sg-lb, ingress: [{protocol: tcp, ports: 8080, securityGroup: sg-web}]}",
            "  - {id: sg-app, ingress: [{protocol: tcp, ports: 8080, securityGroup: sg-lb}, {protocol: tcp, ports: 22, securityGroup: sg-bastion}"
                + (directTargets ? ", {protocol: tcp, ports: 8080, securityGroup: sg-web}]}" : "]}"),
            "  - {id: sg-db, ingress: [{protocol: tcp, ports: 5432, securityGroup: sg-app}, {protocol: tcp, ports: 22, securityGroup: sg-bastion}]}",
            "instances:",
            "  - {id: i-bastion, roles: [bastion], interfaces: [{id: eni-bastion, subnet: subnet-public-0, privateIp: 10.0.0.11, elasticIp: 203.0.113.11, securityGroups: [sg-bastion, sg-agent], deviceIndex: 0}]}",
        ]
        var appTargets: [String] = []
        for zone in 0..<zones {
            if zone == 0 {
                lines.append(
                    "  - {id: i-nat-0, roles: [nat], interfaces: [{id: eni-nat-0, subnet: subnet-public-0, privateIp: 10.0.0.10, elasticIp: 203.0.113.10, securityGroups: [sg-nat, sg-agent], deviceIndex: 0, sourceDestCheck: false}]}"
                )
            }
            for (t, tier) in tiers.enumerated().dropFirst() {
                let group = tier == "data" ? "sg-db" : "sg-\(tier)"
                let listen = tier == "web" ? 80 : tier == "app" ? 8080 : 5432
                for host in 0..<perTier {
                    let id = "i-\(tier)-\(zone)-\(host)"
                    if tier == "app" { appTargets.append(id) }
                    var interfaces =
                        "[{id: eni-\(tier)-\(zone)-\(host), subnet: subnet-\(tier)-\(zone), privateIp: 10.0.\(zone * 10 + t).\(10 + host), securityGroups: [\(group), sg-agent], deviceIndex: 0}"
                    if tier == "data" && host == 0 {
                        interfaces +=
                            ", {id: eni-static-\(zone), subnet: subnet-data-\(zone), privateIp: 10.0.\(zone * 10 + t).250, securityGroups: [\(group), sg-agent], deviceIndex: 1}"
                    }
                    lines.append(
                        "  - {id: \(id), roles: [\(tier == "data" ? "db" : tier)], listens: [{port: \(listen)}], interfaces: \(interfaces)]}")
                }
            }
        }
        lines.append("nats:")
        lines.append("  - {id: nat-0, kind: instance, instance: i-nat-0, elasticIp: 203.0.113.10}")
        for zone in 1..<max(1, zones) {
            lines.append(
                "  - {id: nat-\(zone), kind: gateway, subnet: subnet-public-\(zone), privateIp: 10.0.\(zone * 10).250, elasticIp: 203.0.113.\(20 + zone)}"
            )
        }
        lines += [
            "loadBalancers:",
            "  - id: lb-app",
            "    scheme: internal",
            "    subnets: [" + (0..<zones).map { "subnet-app-\($0)" }.joined(separator: ", ") + "]",
            "    nodes: [" + (0..<zones).map { "{subnet: subnet-app-\($0), privateIp: 10.0.\($0 * 10 + 2).200}" }.joined(separator: ", ") + "]",
            "    securityGroups: [sg-lb]",
            "    listeners: [{port: 8080}]",
            "    targets: [\(appTargets.joined(separator: ", "))]",
            "endpoints:",
            "  - {id: s3, kind: s3, url: \"https://s3.example/health\", prefixList: pl-s3, port: 443, usedBy: [\"role:app\", \"role:db\"]}",
            "  - {id: egress-echo, kind: egress-echo, url: \"http://203.0.113.200/ip\", addresses: [203.0.113.200/32], port: 80}",
            "intents:",
            "  - {name: ssh to private instances only from the bastion, from: instances, except: [role:bastion], to: private, port: 22, expect: deny}",
            "  - {name: only the app tier reaches the database, from: [role:web, role:bastion], to: role:db, port: 5432, expect: deny}",
            "probing: {intervalSeconds: 2, failuresToDown: 3, window: 5, successesToUp: 2}",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}
