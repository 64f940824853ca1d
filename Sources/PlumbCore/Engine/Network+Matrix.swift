/// A flow the model says must be allowed or blocked, with the engine's explanation.
public struct ExpectedFlow: Sendable, Codable {
    /// Source label.
    public var source: String
    /// Destination label.
    public var destination: String
    /// Protocol.
    public var `protocol`: IPProtocol
    /// Port (ICMP type for icmp).
    public var port: Int
    /// What the model says.
    public var verdict: Verdict
    /// Why, when blocked.
    public var blockedBy: Blocker?
}

/// An intent that the model contradicts, for one flow.
public struct IntentViolation: Sendable {
    /// The intent's name.
    public var intent: String
    /// The engine's explanation of the contradicting flow.
    public var explanation: Explanation
}

/// A service port.
public struct ServicePort: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// Protocol.
    public var `protocol`: IPProtocol
    /// Port (ICMP type for icmp).
    public var port: Int

    /// Creates a service port.
    public init(_ proto: IPProtocol, _ port: Int) {
        self.protocol = proto
        self.port = port
    }

    /// `tcp/22`.
    public var description: String { "\(`protocol`)/\(port)" }

    public static func < (lhs: ServicePort, rhs: ServicePort) -> Bool {
        (lhs.protocol.number, lhs.port) < (rhs.protocol.number, rhs.port)
    }
}

/// The expected reachability matrix: for each service port, which source reaches which destination.
public struct ExpectedMatrix: Sendable, Codable {
    /// One port's truth table.
    public struct Table: Sendable, Codable {
        /// The port.
        public var service: ServicePort
        /// Row labels.
        public var sources: [String]
        /// Column labels (destinations that serve this port).
        public var destinations: [String]
        /// `cells[row][column]`; nil where source and destination are the same.
        public var cells: [[Verdict?]]
    }

    /// Tables, by port.
    public var tables: [Table]
    /// Flows to a port something serves that the model blocks: the candidates for expected-deny probes.
    public var mustBlock: [ExpectedFlow]
    /// Flows the model allows.
    public var allowedCount: Int
}

extension Network {
    /// The ports each instance serves: its `listens`, single-port inbound rules of its groups, and load balancer target ports.
    public func servicePorts(ofInstance index: Int) -> Set<ServicePort> {
        var ports = Set(instances[index].listens.map { ServicePort($0.protocol ?? .tcp, $0.port) })
        for interface in instances[index].interfaces {
            for group in interfaces[interface].securityGroups {
                for rule in securityGroups[group].ingress where rule.protocolNumber == 6 || rule.protocolNumber == 17 {
                    if let range = rule.ports, range.from == range.to {
                        ports.insert(ServicePort(rule.protocolNumber == 6 ? .tcp : .udp, range.from))
                    }
                }
            }
        }
        for balancer in loadBalancers where balancer.targets.contains(index) {
            for listener in balancer.listeners { ports.insert(ServicePort(IPProtocol(String(listener.protocolNumber)) ?? .tcp, listener.targetPort)) }
        }
        return ports
    }

    /// The expected matrix over every instance (and the internet as a source) and every port the model implies.
    public func expectedMatrix() -> ExpectedMatrix {
        var sources: [(label: String, party: Party)] = [("internet", internetParty)]
        for balancer in loadBalancers {
            if let node = balancer.nodes.first { sources.append((balancer.label, .interface(node, address: interfaces[node].privateIp))) }
        }
        var destinationsByPort: [ServicePort: [Int]] = [:]
        for (index, instance) in instances.enumerated() {
            guard let primary = instance.interfaces.first else { continue }
            sources.append((instance.label, .interface(primary, address: interfaces[primary].privateIp)))
            for service in servicePorts(ofInstance: index) { destinationsByPort[service, default: []].append(index) }
        }
        var tables: [ExpectedMatrix.Table] = []
        var mustBlock: [ExpectedFlow] = []
        var allowed = 0
        for service in destinationsByPort.keys.sorted() {
            let destinations = destinationsByPort[service]!
            var cells: [[Verdict?]] = []
            for source in sources {
                var row: [Verdict?] = []
                for destination in destinations {
                    let primary = instances[destination].interfaces[0]
                    if case .interface(primary, _) = source.party {
                        row.append(nil)
                        continue
                    }
                    let target = addressed(.interface(primary, address: interfaces[primary].privateIp), from: source.party)
                    guard let (verdict, blocker) = try? verdict(from: source.party, to: target, port: service.port, protocol: service.protocol) else {
                        row.append(nil)
                        continue
                    }
                    row.append(verdict)
                    if verdict == .blocked {
                        mustBlock.append(
                            ExpectedFlow(
                                source: source.label, destination: instances[destination].label, protocol: service.protocol, port: service.port,
                                verdict: .blocked, blockedBy: blocker))
                    } else {
                        allowed += 1
                    }
                }
                cells.append(row)
            }
            tables.append(
                ExpectedMatrix.Table(
                    service: service, sources: sources.map(\.label), destinations: destinations.map { instances[$0].label }, cells: cells))
        }
        return ExpectedMatrix(tables: tables, mustBlock: mustBlock, allowedCount: allowed)
    }

    /// Subnet-level matrix: one representative instance per subnet, every ordered subnet pair, each port class.
    /// Returns the number of allowed and blocked flows; used by the benchmark and by `plumb matrix --by subnet`.
    public func subnetMatrix(ports: [ServicePort]) -> (representatives: [Int?], verdicts: [[[Verdict]]]) {
        var representative = [Int?](repeating: nil, count: subnets.count)
        for instance in instances {
            guard let primary = instance.interfaces.first else { continue }
            let subnet = interfaces[primary].subnet
            if representative[subnet] == nil { representative[subnet] = primary }
        }
        var verdicts: [[[Verdict]]] = []
        verdicts.reserveCapacity(subnets.count)
        for source in representative {
            var row: [[Verdict]] = []
            row.reserveCapacity(subnets.count)
            for destination in representative {
                guard let source, let destination else {
                    row.append([])
                    continue
                }
                let from = Party.interface(source, address: interfaces[source].privateIp)
                let to = Party.interface(destination, address: interfaces[destination].privateIp)
                row.append(
                    ports.map { service in
                        (try? verdict(from: from, to: to, port: service.port, protocol: service.protocol, details: false))?.0 ?? .blocked
                    })
            }
            verdicts.append(row)
        }
        return (representative.map { $0 }, verdicts)
    }

    /// Every (source, destination) pair an intent covers; pairs of a party with itself are left out.
    public func flows(of intent: Intent) -> [(Party, Party)] {
        let (sources, destinations) = parties(of: intent)
        var pairs: [(Party, Party)] = []
        for source in sources {
            for destination in destinations where !samePlace(source, destination) {
                if case .external = source, case .external = destination { continue }
                pairs.append((source, destination))
            }
        }
        return pairs
    }

    /// The sources (less `except`) and destinations an intent's selectors name. With `everyInternetClass`,
    /// `internet` stands for one party per internet class; otherwise for the arbitrary internet address.
    private func parties(of intent: Intent, everyInternetClass: Bool = false) -> (sources: [Party], destinations: [Party]) {
        func expand(_ selector: String) -> [Party] {
            selector == "internet" && everyInternetClass ? internetParties : select(selector) ?? []
        }
        var excluded = (intent.except ?? []).flatMap(expand)
        if everyInternetClass {
            // An internet address in `except` excepts its whole class: the model cannot tell its addresses apart.
            for case .external(let address, .internet, _) in excluded {
                if let index = internetClasses.firstIndex(where: { $0.contains(address) }) { excluded.append(internetParty(ofClass: index)) }
            }
        }
        return (intent.from.flatMap(expand).filter { !excluded.contains($0) }, intent.to.flatMap(expand))
    }

    private func samePlace(_ a: Party, _ b: Party) -> Bool {
        if case .interface(let x, _) = a, case .interface(let y, _) = b {
            return instanceIndex(ofInterface: x).map { $0 == instanceIndex(ofInterface: y) } ?? (x == y)
        }
        return a == b
    }

    /// The outcome of checking an intent against the model.
    public struct IntentCheck: Sendable {
        /// Contradicting flows, each with the engine's explanation.
        public var violations: [IntentViolation]
        /// Classes of flows the intent covers (see ``violations(of:limit:budget:)``).
        public var classPairs: Int
        /// Classes of flows evaluated.
        public var checked: Int
        /// True when the budget cut the check to a sample.
        public var sampled: Bool
    }

    /// The flows of `intent` whose verdict contradicts it. From outside the VPC, instances are addressed at
    /// their public IP when they have one (that is how the internet would reach them).
    public func violations(of intent: Intent, limit: Int = .max) -> [IntentViolation] {
        check(intent, limit: limit).violations
    }

    /// Checks `intent` against the model.
    ///
    /// Parties the model cannot tell apart (same subnet, same security groups, same ephemeral range, both with or
    /// without a public IP, and no rule block narrower than the subnet that holds their address) get the same
    /// verdict, so one flow per pair of such classes is evaluated: an intent over thousands of instances costs one
    /// evaluation per pair of classes, not per pair of instances. When there are more pairs of classes than
    /// `budget`, an evenly spread sample of about `budget` of them is checked and ``IntentCheck/sampled`` says so.
    ///
    /// `internet` in a `deny` intent is every internet class (``internetClasses``): an exposure to any range of the
    /// internet breaks it, and the violation names the class. In an `allow` intent it is the arbitrary internet
    /// address: the internet at large must get through, while ranges the model names may be restricted on purpose.
    public func check(_ intent: Intent, limit: Int = .max, budget: Int = 50_000) -> IntentCheck {
        let proto = intent.protocol ?? .tcp
        let wanted: Verdict = intent.expect == .allow ? .allowed : .blocked
        let (allSources, allDestinations) = parties(of: intent, everyInternetClass: intent.expect == .deny)
        let sources = representatives(allSources)
        let destinations = representatives(allDestinations)
        let total = sources.count * destinations.count
        let step = max(1, (total + budget - 1) / max(budget, 1))
        var found: [IntentViolation] = []
        var checked = 0
        for pair in stride(from: 0, to: total, by: step) {
            let source = sources[pair / destinations.count]
            let destination = destinations[pair % destinations.count]
            // Two members per class, so that a class paired with itself still has a pair of distinct instances.
            guard let (from, to) = source.lazy.flatMap({ s in destination.lazy.map { (s, $0) } }).first(where: { !samePlace($0.0, $0.1) })
            else { continue }
            if case .external = from, case .external = to { continue }
            let target = addressed(to, from: from)
            guard let (verdict, _) = try? verdict(from: from, to: target, port: intent.port, protocol: proto, details: false) else { continue }
            checked += 1
            if verdict != wanted, let explanation = try? explain(from: from, to: target, port: intent.port, protocol: proto) {
                found.append(IntentViolation(intent: intent.name, explanation: explanation))
                if found.count >= limit { break }
            }
        }
        return IntentCheck(violations: found, classPairs: total, checked: checked, sampled: step > 1)
    }

    /// Up to two members of each equivalence class, in first-seen order.
    private func representatives(_ parties: [Party]) -> [[Party]] {
        var classes: [[Party]] = []
        var position: [[Int]: Int] = [:]
        for party in parties {
            let key = equivalenceKey(party)
            if let index = position[key] {
                if classes[index].count < 2 && !classes[index].contains(party) { classes[index].append(party) }
            } else {
                position[key] = classes.count
                classes.append([party])
            }
        }
        return classes
    }

    /// A key equal for parties the model's rules cannot tell apart; see ``violations(of:limit:)``.
    func equivalenceKey(_ party: Party) -> [Int] {
        switch party {
        case .interface(let index, let address):
            let interface = interfaces[index]
            var key = [0, interface.subnet, interface.publicIp == nil ? 0 : 1, interface.ephemeralPorts.from, interface.ephemeralPorts.to]
            key += interface.securityGroups.sorted()
            if address != interface.privateIp || hasNarrowerBlock(containing: address, than: subnets[interface.subnet].cidr) {
                key += [-2, Int(address.value)]
            }
            if case .instance = interface.owner {} else { key += [-3, index] }
            return key
        case .loadBalancer(let index): return [1, index]
        case .external(let address, _, _): return [2, Int(address.value)]
        case .unassigned(let address): return [3, Int(address.value)]
        }
    }

    /// True when some rule or route block strictly inside `subnet` holds `address`, so that the address may be
    /// treated differently from its neighbours.
    func hasNarrowerBlock(containing address: IPv4Address, than subnet: CIDR) -> Bool {
        narrowBlocks.contains { $0.prefixLength > subnet.prefixLength && subnet.contains($0) && $0.contains(address) }
    }
}
