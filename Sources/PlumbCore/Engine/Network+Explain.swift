/// One end of a flow, resolved against the model.
public enum Party: Sendable, Equatable {
    /// An interface inside the VPC, addressed at `address` (its private IP, or its public IP from outside).
    case interface(Int, address: IPv4Address)
    /// A load balancer (the flow goes to a node, then on to a target).
    case loadBalancer(Int)
    /// An address outside the VPC.
    case external(IPv4Address, ExternalKind, label: String)
    /// An address inside the VPC that no interface of the model holds.
    case unassigned(IPv4Address)

    /// What is outside the VPC.
    public enum ExternalKind: Sendable, Equatable {
        /// The internet.
        case internet
        /// A peered VPC, by peering index.
        case peer(Int)
        /// A modelled endpoint, by index.
        case endpoint(Int)
    }
}

extension Network {
    /// The address that stood for "the internet" before internet classes: 198.51.100.1 (TEST-NET-2).
    ///
    /// Deprecated: `internet` now resolves to ``internetParty``, the representative of the class of addresses the
    /// model names nowhere (198.51.100.1 when the model does not name it); see ``internetClasses``.
    public static let internetAddress = IPv4Address(198, 51, 100, 1)

    /// Resolves a source or destination: an instance id or name, an ENI id, an IPv4 address, a load balancer,
    /// an endpoint id, or `internet`.
    public func resolve(_ text: String, role: String = "endpoint") throws(ExplainError) -> Party {
        if text == "internet" { return internetParty }
        if let instance = instanceByKey[text], let primary = instances[instance].interfaces.first {
            return .interface(primary, address: interfaces[primary].privateIp)
        }
        if let interface = interfaceById[text] { return .interface(interface, address: interfaces[interface].privateIp) }
        if let balancer = loadBalancerByKey[text] { return .loadBalancer(balancer) }
        if let endpoint = endpointById[text], let address = endpointAddress(endpoint) {
            return .external(address, .endpoint(endpoint), label: text)
        }
        if let address = IPv4Address(text) { return party(for: address) }
        throw .unknownParty(text, role: role)
    }

    /// The party that holds `address`.
    public func party(for address: IPv4Address) -> Party {
        if let interface = interfaceByPrivateIp[address] { return .interface(interface, address: address) }
        if let interface = interfaceByPublicIp[address] { return .interface(interface, address: address) }
        if isInsideVPC(address) { return .unassigned(address) }
        if let peering = topology.peerings.firstIndex(where: { $0.peerCidrs.contains { $0.contains(address) } }) {
            return .external(address, .peer(peering), label: address.description)
        }
        return .external(address, .internet, label: address.description)
    }

    /// A representative address of an endpoint: its first address, else the first block of its prefix list.
    public func endpointAddress(_ index: Int) -> IPv4Address? {
        let endpoint = topology.endpoints[index]
        let block = endpoint.addresses?.first ?? endpoint.prefixList.flatMap { prefixListById[$0]?.first }
        guard let block else { return nil }
        // A host address of the block: the block itself for /31 and /32, else its first host.
        return block.prefixLength >= 31 ? block.network : IPv4Address(block.network.value &+ 1)
    }

    /// Explains a flow given by names, as `plumb explain` does. With `internet` at one end the explanation also
    /// carries the verdict of every internet class (see ``explainInternet(from:to:port:protocol:)``).
    public func explain(from: String, to: String, port: Int, protocol proto: IPProtocol) throws(ExplainError) -> Explanation {
        if (from == "internet") != (to == "internet") { return try explainInternet(from: from, to: to, port: port, protocol: proto) }
        return try explainNamed(from: from, to: to, port: port, protocol: proto)
    }

    /// Explains a flow given by names, `internet` being its arbitrary address only.
    func explainNamed(from: String, to: String, port: Int, protocol proto: IPProtocol) throws(ExplainError) -> Explanation {
        let source = try resolve(from, role: "source")
        var destination = try resolve(to, role: "destination")
        // A named destination is reached from outside at its public address; an explicit address is taken as given.
        if IPv4Address(to) == nil { destination = addressed(destination, from: source) }
        return try explain(from: source, to: destination, port: port, protocol: proto)
    }

    /// The destination as `source` would address it: from outside the VPC, an interface's public or Elastic IP
    /// when it has one; otherwise unchanged.
    public func addressed(_ destination: Party, from source: Party) -> Party {
        guard case .external = source, case .interface(let index, _) = destination, let publicIp = interfaces[index].publicIp else {
            return destination
        }
        return .interface(index, address: publicIp)
    }

    /// Explains a flow between resolved parties.
    public func explain(from source: Party, to destination: Party, port: Int, protocol proto: IPProtocol) throws(ExplainError) -> Explanation {
        var walker = PathWalker(network: self, protocolNumber: proto.number, port: port)
        let blocker = try walk(&walker, from: source, to: destination)
        return Explanation(
            verdict: blocker == nil ? .allowed : .blocked, source: describe(source), destination: describe(destination), protocol: proto,
            port: port, hops: walker.hops, blockedBy: blocker)
    }

    /// The verdict and blocker of a flow, without the hop-by-hop text: what the matrix, intents and plans use.
    /// With `details: false` the blocker's `detail` is empty (component, code and rule are still set).
    public func verdict(
        from source: Party, to destination: Party, port: Int, protocol proto: IPProtocol, details: Bool = true
    ) throws(ExplainError) -> (Verdict, Blocker?) {
        var walker = PathWalker(network: self, protocolNumber: proto.number, port: port, recording: false, details: details)
        let blocker = try walk(&walker, from: source, to: destination)
        return (blocker == nil ? .allowed : .blocked, blocker)
    }

    private func walk(_ walker: inout PathWalker, from source: Party, to destination: Party) throws(ExplainError) -> Blocker? {
        guard (0...65535).contains(walker.port), walker.protocolNumber != 1 || walker.port <= 255 else { throw .invalidPort(walker.port) }
        let blocker: Blocker?
        switch (source, destination) {
        case (.external(_, _, let a), .external(_, _, let b)): throw .bothExternal(a, b)
        case (.unassigned(let address), _):
            throw .unknownParty("\(address) (no interface in the model holds it)", role: "source")
        case (.loadBalancer(let balancer), _):
            guard let node = loadBalancers[balancer].nodes.first else { throw .unknownParty(loadBalancers[balancer].id, role: "source") }
            blocker = walker.leg(from: .interface(node, address: interfaces[node].privateIp), to: destination)
        case (_, .loadBalancer(let balancer)):
            blocker = walker.viaLoadBalancer(from: source, balancer: balancer)
        default:
            blocker = walker.leg(from: source, to: destination)
        }
        return blocker
    }

    /// A label for a party: `bastion (10.0.0.10)`.
    public func describe(_ party: Party) -> String {
        switch party {
        case .interface(let index, let address): "\(label(ofInterface: index)) (\(address))"
        case .loadBalancer(let index): loadBalancers[index].label
        case .external(let address, _, let label): label == address.description ? label : "\(label) (\(address))"
        case .unassigned(let address): "\(address) (unassigned)"
        }
    }
}

/// Walks one flow through the model, collecting hops. A value type; one per explain call.
struct PathWalker {
    let network: Network
    let protocolNumber: Int
    var port: Int
    /// Where hops go; nil when only the verdict is wanted. A reference, so that recording does not need
    /// exclusive access to the walker while a hop's text reads it.
    private let log: HopLog?
    private var returnChecks: [ReturnCheck] = []

    final class HopLog {
        var hops: [Hop] = []
        init() { hops.reserveCapacity(16) }
    }

    /// The hops recorded so far (empty when not recording).
    var hops: [Hop] {
        get { log?.hops ?? [] }
        nonmutating set { log?.hops = newValue }
    }

    /// False to leave the blocker's sentence empty when not recording.
    let details: Bool

    /// `recording: false` computes only the verdict and the blocker: no hop text is built, and with
    /// `details: false` not even the blocker's sentence.
    init(network: Network, protocolNumber: Int, port: Int, recording: Bool = true, details: Bool = true) {
        self.network = network
        self.protocolNumber = protocolNumber
        self.port = port
        self.details = details
        log = recording ? HopLog() : nil
    }

    /// Appends a hop; the hop (and its text) is built only when recording.
    func record(_ hop: @autoclosure () -> Hop) {
        if let log { log.hops.append(hop()) }
    }

    /// A packet as it travels: addresses as currently seen, and what the path did to it.
    struct Packet {
        var source: IPv4Address
        var destination: IPv4Address
        /// The sender's ephemeral range: the reply's destination ports.
        var sourcePorts: PortRange
        /// False once a NAT, the internet gateway or a middlebox has been crossed: SG references no longer match (SG-6).
        var identityPreserved: Bool
        /// The interface that last sent the packet (for IGW 1:1 NAT).
        var sender: Int?
        /// True when the source address is public (after the IGW or a public NAT).
        var publicSource: Bool
        /// True when the packet entered through a peering connection.
        var viaPeering: Bool
    }

    /// A stateless check to replay for the reply.
    struct ReturnCheck {
        var acl: Int
        var subnet: Int
        var ingress: Bool
        var remote: IPv4Address
        var ports: PortRange
    }

    // MARK: Legs

    /// The flow to a load balancer: client to a node (with the listener check), then node to a target.
    mutating func viaLoadBalancer(from source: Party, balancer index: Int) -> Blocker? {
        let balancer = network.loadBalancers[index]
        let fromInternet: Bool
        if case .external = source { fromInternet = true } else { fromInternet = false }
        // Prefer a node in the client's zone; from the internet, a node with a public address.
        var node = balancer.nodes.first
        if fromInternet {
            node = balancer.nodes.first { network.interfaces[$0].publicIp != nil } ?? node
        } else if case .interface(let client, _) = source {
            let zone = network.subnets[network.interfaces[client].subnet].zone
            node = balancer.nodes.first { network.subnets[network.interfaces[$0].subnet].zone == zone } ?? node
        }
        guard let node else {
            return block(
                balancer.id, "load-balancer", ExplanationCode.noTargets, nil, .forward,
                "load balancer \(balancer.id) has no node in any subnet of the model")
        }
        let nodeAddress =
            fromInternet ? (network.interfaces[node].publicIp ?? network.interfaces[node].privateIp) : network.interfaces[node].privateIp
        if let blocker = leg(from: source, to: .interface(node, address: nodeAddress)) { return blocker }
        guard let listener = balancer.listeners.first(where: { $0.port == port && ($0.protocolNumber == protocolNumber || $0.protocolNumber == -1) })
        else {
            let ports = balancer.listeners.map { "\($0.port)" }.joined(separator: ", ")
            return block(
                balancer.id, "load-balancer", ExplanationCode.noListener, nil, .forward,
                "load balancer \(balancer.id) has no listener on \(protocolName) port \(port) (listeners: \(ports.isEmpty ? "none" : ports))")
        }
        guard !balancer.targets.isEmpty else {
            return block(balancer.id, "load-balancer", ExplanationCode.noTargets, nil, .forward, "load balancer \(balancer.id) has no targets")
        }
        record(
            Hop(
                direction: .forward, component: balancer.id, componentType: "load-balancer", check: "listener", outcome: .pass,
                rule: "listener \(listener.port)", detail: "listener \(listener.port) forwards to targets on port \(listener.targetPort)"))
        port = listener.targetPort
        let before = hops
        var firstFailure: (hops: [Hop], blocker: Blocker)?
        for target in balancer.targets {
            guard let interface = network.instances[target].interfaces.first else { continue }
            hops = before
            let blocker = leg(
                from: .interface(node, address: network.interfaces[node].privateIp),
                to: .interface(interface, address: network.interfaces[interface].privateIp))
            guard let blocker else { return nil }
            if firstFailure == nil { firstFailure = (hops, blocker) }
        }
        if let firstFailure {
            hops = firstFailure.hops
            return firstFailure.blocker
        }
        return block(balancer.id, "load-balancer", ExplanationCode.noTargets, nil, .forward, "no target of \(balancer.id) is in the model")
    }

    /// One request/reply exchange between two parties: forward path, then the stateless return checks.
    mutating func leg(from source: Party, to destination: Party) -> Blocker? {
        returnChecks.removeAll(keepingCapacity: true)
        let destinationAddress: IPv4Address
        switch destination {
        case .interface(_, let address), .external(let address, _, _), .unassigned(let address): destinationAddress = address
        case .loadBalancer: return nil  // handled by viaLoadBalancer
        }
        if case .interface = source, isNotFiltered(destinationAddress) {
            record(
                Hop(
                    direction: .forward, component: network.topology.vpc.id, componentType: "vpc", check: "deliver", outcome: .info, rule: nil,
                    detail: "\(destinationAddress) is the VPC resolver or metadata service: security groups and network ACLs do not apply (SG-10)"))
            return nil
        }
        let blocker: Blocker?
        switch source {
        case .interface(let sender, let address):
            var packet = Packet(
                source: address, destination: destinationAddress, sourcePorts: network.interfaces[sender].ephemeralPorts, identityPreserved: true,
                sender: sender, publicSource: network.interfaces[sender].privateIp != address, viaPeering: false)
            if let failure = securityGroupCheck(
                sender, ingress: false, remote: destinationAddress, identityPreserved: isPrivateInVPC(destinationAddress))
            {
                return failure
            }
            blocker = forward(&packet, from: network.interfaces[sender].subnet, to: destination)
        case .external(let address, let kind, _):
            var packet = Packet(
                source: address, destination: destinationAddress, sourcePorts: network.topology.externalEphemeralPorts ?? .awsEphemeral,
                identityPreserved: false, sender: nil,
                publicSource: true, viaPeering: false)
            if case .peer = kind { packet.viaPeering = true }
            blocker = arriveFromOutside(&packet, kind: kind, to: destination)
        case .unassigned, .loadBalancer:
            return nil
        }
        if let blocker { return blocker }
        return replayReturnChecks()
    }

    // MARK: Forwarding

    private func isPrivateInVPC(_ address: IPv4Address) -> Bool { network.isInsideVPC(address) }

    /// SG-10: the VPC resolver (VPC base + 2), 169.254.169.253 and the metadata service are never filtered.
    private func isNotFiltered(_ address: IPv4Address) -> Bool {
        if address == IPv4Address(169, 254, 169, 253) || address == IPv4Address(169, 254, 169, 254) { return true }
        guard let primary = network.topology.vpc.cidrBlocks.first else { return false }
        return address.value == primary.network.value &+ 2
    }

    private mutating func forward(_ packet: inout Packet, from start: Int, to destination: Party) -> Blocker? {
        var current = start
        for _ in 0..<16 {
            // NACL-6: within a subnet, packets are not routed and NACLs do not apply.
            if case .interface(let target, _) = destination, network.interfaces[target].subnet == current,
                network.interfaces[target].privateIps.contains(packet.destination)
            {
                record(
                    Hop(
                        direction: .forward, component: network.subnets[current].id, componentType: "subnet", check: "deliver", outcome: .info,
                        rule: nil, detail: "same subnet \(network.subnets[current].label): delivered directly; network ACLs do not apply (NACL-6)"))
                return securityGroupCheck(target, ingress: true, remote: packet.source, identityPreserved: packet.identityPreserved)
            }
            let subnet = network.subnets[current]
            guard let tableIndex = subnet.routeTable else {
                return block(
                    subnet.id, "subnet", ExplanationCode.noRoute, nil, .forward,
                    "subnet \(subnet.label) has no route table: associate one or mark a table main: true")
            }
            let table = network.routeTables[tableIndex]
            guard let route = table.lookup(packet.destination) else {
                return block(
                    table.id, "route-table", ExplanationCode.noRoute, nil, .forward, "route table \(table.id) has no route to \(packet.destination)")
            }
            let routeRule = "\(route.destinationText) -> \(route.targetText)"
            func routeHop(_ detail: String) -> Hop {
                Hop(
                    direction: .forward, component: table.id, componentType: "route-table", check: "route", outcome: .pass, rule: routeRule,
                    detail: detail)
            }
            switch route.target {
            case .blackhole(let why):
                return block(
                    table.id, "route-table", ExplanationCode.blackhole, routeRule, .forward, "route \(routeRule) drops the packet: \(why) (RT-6)")

            case .local:
                guard let next = network.subnet(containing: packet.destination) else {
                    return block(
                        table.id, "route-table", ExplanationCode.noRoute, routeRule, .forward,
                        "\(packet.destination) is in the VPC but in no subnet of the model")
                }
                if let failure = aclCheck(subnet: current, ingress: false, packet: packet) { return failure }
                record(routeHop("\(packet.destination) is local to the VPC: to subnet \(network.subnets[next].label)"))
                if let failure = aclCheck(subnet: next, ingress: true, packet: packet) { return failure }
                guard case .interface(let target, _) = destination, network.interfaces[target].subnet == next else {
                    return block(
                        network.subnets[next].id, "subnet", ExplanationCode.unassigned, nil, .forward,
                        "no interface in the model holds \(packet.destination) in subnet \(network.subnets[next].label)")
                }
                return securityGroupCheck(target, ingress: true, remote: packet.source, identityPreserved: packet.identityPreserved)

            case .internetGateway:
                let igw = network.topology.internetGateway?.id ?? "igw"
                if packet.viaPeering {
                    return block(
                        igw, "internet-gateway", ExplanationCode.peeringTransit, routeRule, .forward,
                        "traffic from a peered VPC cannot leave through this VPC's internet gateway (PCX-1)")
                }
                if !packet.publicSource {
                    guard let sender = packet.sender, let publicIp = network.interfaces[sender].publicIp else {
                        return block(
                            igw, "internet-gateway", ExplanationCode.igwEgressNeedsPublicIp, routeRule, .forward,
                            "\(packet.source) has no public or Elastic IP, so the internet gateway drops its traffic (RT-9)")
                    }
                    packet.source = publicIp
                    packet.publicSource = true
                }
                if let failure = aclCheck(subnet: current, ingress: false, packet: packet) { return failure }
                record(routeHop("\(packet.destination) leaves through internet gateway \(igw)"))
                packet.identityPreserved = false
                if case .interface(let target, _) = destination, network.interfaces[target].publicIp == packet.destination {
                    record(
                        Hop(
                            direction: .forward, component: igw, componentType: "internet-gateway", check: "translate", outcome: .info, rule: nil,
                            detail: "hairpin: the internet gateway maps \(packet.destination) to \(network.interfaces[target].privateIp)"))
                    return arriveThroughGateway(&packet, target: target, gateway: igw, viaPeering: false)
                }
                if packet.destination.isPrivate || network.isInsideVPC(packet.destination) {
                    return block(
                        igw, "internet-gateway", ExplanationCode.noRoute, routeRule, .forward,
                        "the internet gateway does not route to the private address \(packet.destination)")
                }
                record(
                    Hop(
                        direction: .forward, component: igw, componentType: "internet-gateway", check: "egress", outcome: .pass, rule: nil,
                        detail: "leaves to the internet from \(packet.source)"))
                return nil

            case .natGateway(let natIndex):
                let nat = network.nats[natIndex]
                guard let natInterface = nat.interface else {
                    return block(
                        nat.id, "nat-gateway", ExplanationCode.blackhole, routeRule, .forward, "NAT gateway \(nat.id) has no subnet in the model")
                }
                let natSubnet = network.interfaces[natInterface].subnet
                if packet.viaPeering {
                    return block(
                        nat.id, "nat-gateway", ExplanationCode.natSourceOutsideVPC, routeRule, .forward,
                        "NAT gateway \(nat.id) serves only sources in its own VPC (NAT-3)")
                }
                if natSubnet == current {
                    return block(
                        nat.id, "nat-gateway", ExplanationCode.natSameSubnet, routeRule, .forward,
                        "NAT gateway \(nat.id) does not serve instances in its own subnet \(network.subnets[natSubnet].label) (NAT-3)")
                }
                guard protocolNumber == 6 || protocolNumber == 17 || protocolNumber == 1 else {
                    return block(
                        nat.id, "nat-gateway", ExplanationCode.natProtocol, routeRule, .forward, "NAT gateways carry TCP, UDP and ICMP only (NAT-3)")
                }
                if let failure = aclCheck(subnet: current, ingress: false, packet: packet) { return failure }
                record(routeHop("\(packet.destination) goes to NAT gateway \(nat.id)"))
                if let failure = aclCheck(subnet: natSubnet, ingress: true, packet: packet) { return failure }
                let translated = nat.egressAddress ?? network.interfaces[natInterface].privateIp
                record(
                    Hop(
                        direction: .forward, component: nat.id, componentType: "nat-gateway", check: "translate", outcome: .info, rule: nil,
                        detail: "source \(packet.source) becomes \(translated)\(protocolNumber == 1 ? "" : ", source ports 1024-65535") (NAT-2)"))
                packet.source = translated
                packet.sourcePorts = .awsEphemeral
                packet.identityPreserved = false
                packet.publicSource = !nat.isPrivate && nat.egressAddress != nil
                packet.sender = natInterface
                current = natSubnet

            case .interface(let forwarder):
                let hop = network.interfaces[forwarder]
                let owner = network.label(ofInterface: forwarder)
                if hop.sourceDestCheck {
                    return block(
                        hop.id, "network-interface", ExplanationCode.sourceDestCheck, routeRule, .forward,
                        "\(owner) (\(hop.id)) has source/destination check on, so it drops traffic it forwards (NAT-7, ENI-4)")
                }
                if hop.subnet != current, let failure = aclCheck(subnet: current, ingress: false, packet: packet) { return failure }
                record(routeHop("\(packet.destination) goes to \(owner) (\(hop.id))"))
                if hop.subnet != current, let failure = aclCheck(subnet: hop.subnet, ingress: true, packet: packet) { return failure }
                if let failure = securityGroupCheck(forwarder, ingress: true, remote: packet.source, identityPreserved: packet.identityPreserved) {
                    return failure
                }
                let natIndex = network.instanceIndex(ofInterface: forwarder).flatMap { network.nat(forInstance: $0) }
                if let natIndex {
                    let nat = network.nats[natIndex]
                    let translated = nat.egressAddress ?? hop.publicIp ?? hop.privateIp
                    record(
                        Hop(
                            direction: .forward, component: nat.id, componentType: "nat-instance", check: "translate", outcome: .info, rule: nil,
                            detail: "NAT instance \(owner) rewrites source \(packet.source) to \(translated)"))
                    packet.source = translated
                    packet.publicSource = !translated.isPrivate && !network.isInsideVPC(translated)
                }
                packet.identityPreserved = false
                packet.sender = forwarder
                if let failure = securityGroupCheck(forwarder, ingress: false, remote: packet.destination, identityPreserved: false) {
                    return failure
                }
                current = hop.subnet

            case .peering(let peeringIndex):
                let peering = network.topology.peerings[peeringIndex]
                if packet.viaPeering {
                    return block(
                        peering.id, "peering", ExplanationCode.peeringTransit, routeRule, .forward, "peering is not transitive (PCX-1)")
                }
                guard peering.peerCidrs.contains(where: { $0.contains(packet.destination) }) else {
                    return block(
                        peering.id, "peering", ExplanationCode.peeringAddress, routeRule, .forward,
                        "\(packet.destination) is not inside the peer VPC's blocks")
                }
                if let failure = aclCheck(subnet: current, ingress: false, packet: packet) { return failure }
                record(routeHop("\(packet.destination) goes over peering \(peering.id)"))
                record(
                    Hop(
                        direction: .forward, component: peering.id, componentType: "peering", check: "egress", outcome: .pass, rule: nil,
                        detail: "enters the peer VPC \(peering.peerVpc ?? ""); its side is not in this model"))
                return nil

            case .vpcEndpoint(let endpointIndex):
                let endpoint = network.topology.vpcEndpoints[endpointIndex]
                if packet.viaPeering {
                    return block(
                        endpoint.id, "vpc-endpoint", ExplanationCode.peeringTransit, routeRule, .forward,
                        "a VPC endpoint cannot be used over peering (VPCE-3)")
                }
                guard protocolNumber == 6 || (protocolNumber == 1 && port == 8) else {
                    return block(
                        endpoint.id, "vpc-endpoint", ExplanationCode.endpointProtocol, routeRule, .forward,
                        "gateway endpoint \(endpoint.id) accepts TCP and ICMP echo only (VPCE-2)")
                }
                if let failure = aclCheck(subnet: current, ingress: false, packet: packet) { return failure }
                record(routeHop("\(packet.destination) goes to gateway endpoint \(endpoint.id)"))
                record(
                    Hop(
                        direction: .forward, component: endpoint.id, componentType: "vpc-endpoint", check: "egress", outcome: .pass, rule: nil,
                        detail: "reaches \(endpoint.service ?? "the service") privately; the endpoint policy is not modelled"))
                return nil
            }
        }
        return block(
            network.subnets[current].id, "subnet", ExplanationCode.cycle, nil, .forward, "the path loops through more than 16 forwarding steps")
    }

    /// A packet from outside the VPC arrives.
    private mutating func arriveFromOutside(_ packet: inout Packet, kind: Party.ExternalKind, to destination: Party) -> Blocker? {
        guard case .interface(let target, let address) = destination else {
            if case .unassigned(let address) = destination {
                return block(
                    network.topology.vpc.id, "vpc", ExplanationCode.unassigned, nil, .forward, "no interface in the model holds \(address)")
            }
            return nil
        }
        switch kind {
        case .internet, .endpoint:
            guard let igw = network.topology.internetGateway?.id else {
                return block(network.topology.vpc.id, "vpc", ExplanationCode.noInternetGateway, nil, .forward, "the VPC has no internet gateway")
            }
            guard network.interfaces[target].publicIp == address else {
                let interface = network.interfaces[target]
                let reason =
                    interface.publicIp.map {
                        "\(address) is a private address; from the internet \(network.label(ofInterface: target)) is reached at \($0)"
                    }
                    ?? "\(network.label(ofInterface: target)) has no public or Elastic IP, so it cannot be reached from the internet"
                return block(interface.id, "network-interface", ExplanationCode.igwIngressPrivateIp, nil, .forward, "\(reason) (RT-9)")
            }
            record(
                Hop(
                    direction: .forward, component: igw, componentType: "internet-gateway", check: "translate", outcome: .info, rule: nil,
                    detail: "enters through \(igw), which maps \(address) to \(network.interfaces[target].privateIp)"))
            return arriveThroughGateway(&packet, target: target, gateway: igw, viaPeering: false)
        case .peer(let peeringIndex):
            let peering = network.topology.peerings[peeringIndex]
            record(
                Hop(
                    direction: .forward, component: peering.id, componentType: "peering", check: "ingress", outcome: .info, rule: nil,
                    detail: "enters over peering \(peering.id) from \(packet.source)"))
            return arriveThroughGateway(&packet, target: target, gateway: peering.id, viaPeering: true)
        }
    }

    /// The last steps of a packet that came in through the IGW or a peering: NACL and SG of the target, and
    /// a reply route that goes back the same way.
    private mutating func arriveThroughGateway(_ packet: inout Packet, target: Int, gateway: String, viaPeering: Bool) -> Blocker? {
        let interface = network.interfaces[target]
        packet.destination = interface.privateIp
        if let failure = aclCheck(subnet: interface.subnet, ingress: true, packet: packet) { return failure }
        if let failure = securityGroupCheck(target, ingress: true, remote: packet.source, identityPreserved: false) { return failure }
        // The reply must leave the way the request came in; a NAT or no route on the way back breaks it (RT-9).
        let subnet = network.subnets[interface.subnet]
        let route = subnet.routeTable.flatMap { network.routeTables[$0].lookup(packet.source) }
        let tableId = subnet.routeTable.map { network.routeTables[$0].id } ?? subnet.id
        let expected: Network.RouteTarget? =
            viaPeering ? network.topology.peerings.firstIndex { $0.id == gateway }.map(Network.RouteTarget.peering) : .internetGateway
        guard let route, route.target == expected else {
            let actual = route.map { "\($0.destinationText) -> \($0.targetText)" } ?? "no route"
            return block(
                tableId, "route-table", ExplanationCode.noRoute, route.map { "\($0.destinationText) -> \($0.targetText)" }, .return,
                "replies from \(network.label(ofInterface: target)) to \(packet.source) follow \(actual) in \(tableId), not back through \(gateway)"
                    + (viaPeering ? "" : ": the subnet is private (RT-9)"))
        }
        record(
            Hop(
                direction: .return, component: tableId, componentType: "route-table", check: "route", outcome: .pass,
                rule: "\(route.destinationText) -> \(route.targetText)", detail: "replies to \(packet.source) go back through \(gateway)"))
        return nil
    }

    // MARK: Checks

    private var protocolName: String {
        switch protocolNumber {
        case 6: "tcp"
        case 17: "udp"
        case 1: "icmp"
        case -1: "all"
        default: "protocol \(protocolNumber)"
        }
    }

    private var flowText: String { protocolNumber == 1 ? "icmp type \(port)" : "\(protocolName) \(port)" }

    /// The blocker, and its hop when recording. The sentence is built only when hops are recorded or details wanted.
    private func block(
        _ component: String, _ type: String, _ code: String, _ rule: String?, _ direction: Hop.Direction, _ detail: @autoclosure () -> String
    ) -> Blocker {
        let text = log != nil || details ? detail() : ""
        record(Hop(direction: direction, component: component, componentType: type, check: "block", outcome: .fail, rule: rule, detail: text))
        return Blocker(component: component, componentType: type, code: code, rule: rule, direction: direction, detail: text)
    }

    /// SG-1…SG-5: the union of the interface's groups must allow the flow; stateful, so checked on the request only.
    private mutating func securityGroupCheck(_ interface: Int, ingress: Bool, remote: IPv4Address, identityPreserved: Bool) -> Blocker? {
        let eni = network.interfaces[interface]
        guard eni.hasSecurityGroups else { return nil }
        let check = ingress ? "sg-ingress" : "sg-egress"
        let way = ingress ? "from" : "to"
        if let (group, rule) = network.matchSecurityGroups(
            of: interface, ingress: ingress, remote: remote, identityPreserved: identityPreserved, protocolNumber: protocolNumber, port: port)
        {
            let id = network.securityGroups[group].id
            record(
                Hop(
                    direction: .forward, component: id, componentType: "security-group", check: check, outcome: .pass,
                    rule: "\(ingress ? "ingress" : "egress")[\(rule.index)]",
                    detail:
                        "\(network.securityGroups[group].label) on \(network.label(ofInterface: interface)) allows \(flowText) \(way) \(rule.peerText)"
                ))
            return nil
        }
        let groups = eni.securityGroups.map { network.securityGroups[$0].label }
        let component = eni.securityGroups.first.map { network.securityGroups[$0].id } ?? eni.id
        let note =
            identityPreserved ? "" : " (rules that name a security group match only private addresses of the VPC, not translated ones: SG-6)"
        return block(
            component, groups.isEmpty ? "network-interface" : "security-group", ExplanationCode.securityGroup, nil, .forward,
            "no \(ingress ? "inbound" : "outbound") rule of \(groups.isEmpty ? "any security group" : groups.joined(separator: ", ")) on \(network.label(ofInterface: interface)) allows \(flowText) \(way) \(remote)\(note)"
        )
    }

    /// NACL check for crossing a subnet boundary; records the mirrored check for the reply (NACL-5).
    private mutating func aclCheck(subnet: Int, ingress: Bool, packet: Packet) -> Blocker? {
        let aclIndex = network.subnets[subnet].acl
        let acl = network.acls[aclIndex]
        let remote = ingress ? packet.source : packet.destination
        let verdict = network.evaluateACL(aclIndex, ingress: ingress, remote: remote, protocolNumber: protocolNumber, ports: PortRange(port))
        let check = ingress ? "nacl-ingress" : "nacl-egress"
        switch verdict {
        case .allowed(let rule):
            record(
                Hop(
                    direction: .forward, component: acl.id, componentType: "network-acl", check: check, outcome: .pass, rule: "rule \(rule)",
                    detail: "\(acl.id) (\(network.subnets[subnet].label)) rule \(rule) allows \(flowText) \(ingress ? "from" : "to") \(remote)"))
        case .denied(let rule, _):
            let ruleText = rule.map { "rule \($0)" } ?? "*"
            return block(
                acl.id, "network-acl", ExplanationCode.networkACL, ruleText, .forward,
                "\(acl.id) (\(network.subnets[subnet].label)) \(rule.map { "rule \($0) denies" } ?? "has no rule allowing, so the final * denies") \(ingress ? "inbound" : "outbound") \(flowText) \(ingress ? "from" : "to") \(remote)"
            )
        }
        returnChecks.append(ReturnCheck(acl: aclIndex, subnet: subnet, ingress: !ingress, remote: remote, ports: packet.sourcePorts))
        return nil
    }

    /// Replays the recorded NACL crossings for the reply, in reverse order, with the client's ephemeral ports (NACL-5, NACL-10).
    private mutating func replayReturnChecks() -> Blocker? {
        let replyProtocol = protocolNumber
        var replyPort: Int?
        if protocolNumber == 1 {
            // Echo request 8 → reply 0, timestamp 13 → 14; other ICMP types have no reply to check.
            switch port {
            case 8: replyPort = 0
            case 13: replyPort = 14
            default: return nil
            }
        }
        for check in returnChecks.reversed() {
            let acl = network.acls[check.acl]
            let ports = replyPort.map { PortRange($0) } ?? check.ports
            let what = replyPort.map { "icmp type \($0)" } ?? "\(protocolName) ports \(ports)"
            let direction = check.ingress ? "inbound" : "outbound"
            switch network.evaluateACL(check.acl, ingress: check.ingress, remote: check.remote, protocolNumber: replyProtocol, ports: ports) {
            case .allowed(let rule):
                record(
                    Hop(
                        direction: .return, component: acl.id, componentType: "network-acl", check: check.ingress ? "nacl-ingress" : "nacl-egress",
                        outcome: .pass, rule: "rule \(rule)",
                        detail:
                            "reply: \(acl.id) (\(network.subnets[check.subnet].label)) allows \(direction) \(what) \(check.ingress ? "from" : "to") \(check.remote)"
                    ))
            case .denied(let rule, let deniedPorts):
                let ruleText = rule.map { "rule \($0)" } ?? "*"
                let portsText = deniedPorts.map(\.description).joined(separator: ", ")
                return block(
                    acl.id, "network-acl", ExplanationCode.networkACL, ruleText, .return,
                    "reply: \(acl.id) (\(network.subnets[check.subnet].label)) \(rule.map { "rule \($0) denies" } ?? "has no rule allowing, so the final * denies") \(direction) \(protocolName) \(replyPort == nil ? "to ephemeral ports \(portsText)" : what) \(check.ingress ? "from" : "to") \(check.remote) (NACLs are stateless: NACL-5)"
                )
            }
        }
        return nil
    }
}

/// The verdict of a network ACL over a range of ports.
public enum ACLVerdict: Sendable, Equatable {
    /// Every port was allowed; the first allow rule that applied.
    case allowed(rule: Int)
    /// Some ports were denied: by this rule, or by the implicit `*` when nil; and which ports.
    case denied(rule: Int?, ports: [PortRange])
}

extension Network {
    /// Evaluates NACL `index` for traffic whose remote end is `remote`, over every port in `ports` (NACL-2, NACL-3, NACL-8).
    ///
    /// Rules apply lowest number first; a port is decided by the first rule that matches it. The result is
    /// `allowed` only when every port of the range is allowed, so a reply on any ephemeral port will pass.
    public func evaluateACL(_ index: Int, ingress: Bool, remote: IPv4Address, protocolNumber: Int, ports: PortRange) -> ACLVerdict {
        let rules = ingress ? acls[index].ingress : acls[index].egress
        let hasPorts = protocolNumber == 6 || protocolNumber == 17 || protocolNumber == 1
        var remaining = PortSet(hasPorts ? ports : .all)
        var firstAllow: Int?
        for rule in rules {
            guard rule.protocolNumber == -1 || rule.protocolNumber == protocolNumber, rule.cidr.contains(remote) else { continue }
            if protocolNumber == 1, let code = rule.icmpCode, code != 0 { continue }
            let covered = hasPorts && rule.protocolNumber != -1 ? (rule.ports ?? .all) : .all
            let removed = remaining.subtract(covered)
            guard !removed.isEmpty else { continue }
            if !rule.allow { return .denied(rule: rule.number, ports: removed) }
            if firstAllow == nil { firstAllow = rule.number }
            if remaining.isEmpty { return .allowed(rule: firstAllow!) }
        }
        return .denied(rule: nil, ports: remaining.ranges)
    }

    /// The first security group rule of an interface that allows the flow, if any (SG-2, SG-4, SG-5).
    ///
    /// A rule naming a security group matches only when `identityPreserved` (no NAT or middlebox in between)
    /// and `remote` is a private address of an interface carrying that group (SG-5, SG-6).
    public func matchSecurityGroups(
        of interface: Int, ingress: Bool, remote: IPv4Address, identityPreserved: Bool, protocolNumber: Int, port: Int
    ) -> (group: Int, rule: CompiledSGRule)? {
        let hasPorts = protocolNumber == 6 || protocolNumber == 17 || protocolNumber == 1
        for group in interfaces[interface].securityGroups {
            let rules = ingress ? securityGroups[group].ingress : securityGroups[group].egress
            for rule in rules {
                guard rule.protocolNumber == -1 || rule.protocolNumber == protocolNumber else { continue }
                if hasPorts, rule.protocolNumber != -1, let ports = rule.ports, !ports.contains(port) { continue }
                if protocolNumber == 1, let code = rule.icmpCode, code != 0 { continue }
                switch rule.peer {
                case .cidr(let block):
                    if block.contains(remote) { return (group, rule) }
                case .group(let peerGroup):
                    if identityPreserved, let peer = interfaceByPrivateIp[remote], interfaceGroups[peer].contains(peerGroup) { return (group, rule) }
                case .prefixList(let blocks):
                    if blocks.contains(where: { $0.contains(remote) }) { return (group, rule) }
                }
            }
        }
        return nil
    }
}
