/// An agent as the planner sees it: which model instance it runs on, and its responder port.
public struct AgentPlacement: Sendable, Hashable {
    /// The agent's id.
    public var agentId: String
    /// The index of its instance in `Network.instances`.
    public var instance: Int
    /// The responder's port (UDP and TCP).
    public var responderPort: Int

    /// Creates a placement.
    public init(agentId: String, instance: Int, responderPort: Int) {
        self.agentId = agentId
        self.instance = instance
        self.responderPort = responderPort
    }
}

/// One probe the planner assigns to an agent, with what the collector needs to judge its results.
public struct PlannedProbe: Sendable, Codable, Hashable {
    /// Why the probe exists.
    public enum Purpose: String, Sendable, Codable, Hashable, CaseIterable {
        /// Another agent in the same subnet.
        case peer
        /// A representative agent in another subnet (every subnet pair is covered).
        case crossSubnet = "cross-subnet"
        /// The egress-echo endpoint through a NAT, checking the NAT's Elastic IP.
        case natEgress = "nat-egress"
        /// A service endpoint the model says the agent's instance uses (S3, SQS, …).
        case endpoint
        /// A load-balancer listener.
        case loadBalancer = "load-balancer"
        /// A static-IP ENI, checking who answers on it.
        case staticENI = "static-eni"
        /// A flow the model says must be blocked.
        case expectedDeny = "expected-deny"
        /// A load balancer's target, probed directly on its target port: it tells a dead target from a dead balancer.
        case lbTarget = "lb-target"
        /// A flow the application uses: an `allow` intent, or a security group rule that admits a source where an agent
        /// runs, probed on its own protocol and port by a TCP connect. An answer or a reset is reached (the groups and
        /// ACLs let it through and the host answered); a timeout is blocked.
        case service
    }

    /// Stable within the agent's plan: the same probe keeps its id across plan versions.
    public var id: String
    /// Why.
    public var purpose: Purpose
    /// `udp-echo`, `tcp`, `http` or `https` (the wire kind).
    public var kind: String
    /// An address or a URL.
    public var target: String
    /// The port (udp-echo, tcp).
    public var port: Int?
    /// Whether the model says the flow works.
    public var expectReach: Bool
    /// The instance and ENI that must answer (udp-echo, tcp with identity).
    public var expectedInstance: String?
    public var expectedInterface: String?
    /// The Elastic IP the egress echo must report.
    public var expectedEgressIP: String?
    /// The agent that runs it, its instance and subnet.
    public var sourceAgent: String
    public var sourceInstance: String
    public var sourceSubnet: String
    /// What it probes: an instance, endpoint, load balancer or ENI id.
    public var targetName: String
    /// The target's instance, when it is one.
    public var targetInstance: String?
    /// The NAT on the path, if any.
    public var nat: String?
    /// The ENI probed (static-eni).
    public var interface: String?
    /// The components on the intended path, scoped as blame needs them (`ComponentRef`): rules by direction, port and
    /// the other end, routes by the route taken, plus the target (instance, endpoint, ENI, load balancer). A failure
    /// of any one of them fails the probe; the blame engine blames these.
    public var components: [ComponentRef]
    /// For a load balancer's probe: its targets' services. The probe fails through its `target-group` component only
    /// when every one of them does, so any of them passing elsewhere vouches for the group.
    public var alternatives: [ComponentRef]?
    /// For expected-deny probes: the component the model says blocks the flow, and the intent that asks for it.
    public var blockingComponent: ComponentRef?
    public var intent: String?
    /// The protocol and port the engine evaluated.
    public var evaluatedProtocol: String
    public var evaluatedPort: Int

    /// Creates a probe.
    public init(
        id: String, purpose: Purpose, kind: String, target: String, port: Int? = nil, expectReach: Bool, expectedInstance: String? = nil,
        expectedInterface: String? = nil, expectedEgressIP: String? = nil, sourceAgent: String, sourceInstance: String, sourceSubnet: String,
        targetName: String, targetInstance: String? = nil, nat: String? = nil, interface: String? = nil, components: [ComponentRef],
        alternatives: [ComponentRef]? = nil, blockingComponent: ComponentRef? = nil, intent: String? = nil, evaluatedProtocol: String,
        evaluatedPort: Int
    ) {
        self.id = id
        self.purpose = purpose
        self.kind = kind
        self.target = target
        self.port = port
        self.expectReach = expectReach
        self.expectedInstance = expectedInstance
        self.expectedInterface = expectedInterface
        self.expectedEgressIP = expectedEgressIP
        self.sourceAgent = sourceAgent
        self.sourceInstance = sourceInstance
        self.sourceSubnet = sourceSubnet
        self.targetName = targetName
        self.targetInstance = targetInstance
        self.nat = nat
        self.interface = interface
        self.components = components
        self.alternatives = alternatives
        self.blockingComponent = blockingComponent
        self.intent = intent
        self.evaluatedProtocol = evaluatedProtocol
        self.evaluatedPort = evaluatedPort
    }
}

/// How much the planner may ask of each agent.
public struct PlannerSettings: Sendable, Hashable {
    /// Peers probed in the agent's own subnet.
    public var peersPerSubnet = 3
    /// Agents of a subnet that probe each other subnet.
    public var representativesPerSubnetPair = 2
    /// Agents of a subnet that probe through each NAT it routes through.
    public var egressAgentsPerSubnet = 2
    /// Agents of a subnet that probe each endpoint, load balancer and static ENI.
    public var serviceAgentsPerSubnet = 2
    /// Expected-deny flows per agent.
    public var denyFlowsPerAgent = 3
    /// Agents that probe each `allow` intent, where that many can.
    public var sourcesPerAllowIntent = 2
    /// Probes per agent at most (the budget).
    public var maxProbesPerAgent = 64

    /// The defaults, with the model's `probing.peersPerSubnet` when given.
    public init(peersPerSubnet: Int? = nil) {
        if let peersPerSubnet { self.peersPerSubnet = peersPerSubnet }
    }
}

/// Topology-aware probe plans, Pingmesh style: no N² mesh. Each agent gets a bounded sample of same-subnet peers,
/// representatives for every other subnet, egress probes through the NATs its subnet routes through, the endpoints,
/// load balancers and static ENIs the model says it reaches, and a sample of flows the model says must be blocked.
/// Every choice uses rendezvous hashing, so plans change little when agents come and go.
public struct PlanGenerator: Sendable {
    /// The compiled model.
    public var network: Network
    /// Limits.
    public var settings: PlannerSettings

    /// A planner over `network`.
    public init(network: Network, settings: PlannerSettings = PlannerSettings()) {
        self.network = network
        self.settings = settings
    }

    /// Plans for every placed agent, by agent id.
    public func plans(for agents: [AgentPlacement]) -> [String: [PlannedProbe]] {
        var bySubnet: [Int: [AgentPlacement]] = [:]
        for agent in agents {
            guard let subnet = primarySubnet(agent.instance) else { continue }
            bySubnet[subnet, default: []].append(agent)
        }
        // Flows the intents say must be blocked, once per intent, by source interface (not once per agent: that is N²).
        var denyFlows: [Int: [(to: Party, intent: Intent)]] = [:]
        for intent in network.topology.intents where intent.expect == .deny && (intent.protocol ?? .tcp) == .tcp {
            for (from, to) in network.flows(of: intent) {
                guard case .interface(let index, _) = from else { continue }
                denyFlows[index, default: []].append((to, intent))
            }
        }
        let chosen = Chosen()
        chosen.agentByInstance = Dictionary(agents.map { ($0.instance, $0) }, uniquingKeysWith: { first, _ in first })
        let services = serviceProbes(for: agents)
        var plans: [String: [PlannedProbe]] = [:]
        for agent in agents {
            plans[agent.agentId] = plan(for: agent, bySubnet: bySubnet, denyFlows: denyFlows, services: services[agent.agentId] ?? [], chosen: chosen)
        }
        return plans
    }

    // MARK: - What the application uses

    /// The service flows, by agent: every `allow` intent (tcp) from up to `sourcesPerAllowIntent` agents that it
    /// covers, each to one of its destinations; then every security group's tcp ingress rule whose source holds an
    /// agent, once, from such an agent to an instance holding the group, on the rule's first port. Agents and targets
    /// are chosen by rendezvous hashing (stable as agents come and go), and only flows the model allows are planned
    /// (a rule whose flow another layer blocks is not the rule's to prove).
    ///
    /// UDP and ICMP rules are left out: a datagram to a port nobody answers proves nothing, and an ICMP echo is
    /// answered by the kernel whatever the group admits on other protocols; the agents' own responders already prove
    /// their UDP paths.
    public func serviceProbes(for agents: [AgentPlacement]) -> [String: [PlannedProbe]] {
        var agentByInterface: [Int: AgentPlacement] = [:]
        for agent in agents {
            if let interface = primaryInterface(agent.instance) { agentByInterface[interface] = agent }
        }
        var probes: [String: [PlannedProbe]] = [:]
        var planned: Set<String> = []

        /// Plans `agent` → `target` on tcp `port` when the model allows it; true when it is planned.
        func plan(_ agent: AgentPlacement, to target: Int, port: Int, intent: String?) -> Bool {
            guard let sourceInterface = primaryInterface(agent.instance), case .instance(let owner) = network.interfaces[target].owner,
                owner != agent.instance
            else { return false }
            let source = Party.interface(sourceInterface, address: network.interfaces[sourceInterface].privateIp)
            let address = network.interfaces[target].privateIp
            let destination = Party.interface(target, address: address)
            guard let (verdict, _) = try? network.verdict(from: source, to: destination, port: port, protocol: .tcp, details: false),
                verdict == .allowed
            else { return false }
            let id = "service:\(network.interfaces[target].id):\(port)"
            guard planned.insert(agent.agentId + "|" + id).inserted else { return true }
            probes[agent.agentId, default: []].append(
                PlannedProbe(
                    id: id, purpose: .service, kind: "tcp", target: address.description, port: port, expectReach: true,
                    sourceAgent: agent.agentId, sourceInstance: network.instances[agent.instance].id,
                    sourceSubnet: network.subnets[network.interfaces[sourceInterface].subnet].id, targetName: network.instances[owner].id,
                    targetInstance: network.instances[owner].id,
                    components: pathComponents(from: source, to: destination, port: port, proto: .tcp)
                        // A static ENI (a secondary one) is its own component, as for the static-eni probes: detached or
                        // moved, it fails this flow while its instance is fine.
                        + (network.interfaces[target].deviceIndex > 0 ? [ComponentRef(.eni, network.interfaces[target].id)] : [])
                        + [ComponentRef(.instance, network.instances[owner].id)], intent: intent, evaluatedProtocol: "tcp", evaluatedPort: port))
            return true
        }

        // Allow intents: each from up to two agents, each to one destination it can reach.
        for intent in network.topology.intents where intent.expect == .allow && (intent.protocol ?? .tcp) == .tcp {
            var targetsBySource: [String: (agent: AgentPlacement, targets: [Int])] = [:]
            for (from, to) in network.flows(of: intent) {
                guard case .interface(let sourceIndex, _) = from, let agent = agentByInterface[sourceIndex], case .interface(let target, _) = to
                else {
                    continue
                }
                targetsBySource[agent.agentId, default: (agent, [])].targets.append(target)
            }
            let key = "allow:\(intent.name)"
            var sources = 0
            for candidate in Self.top(targetsBySource.count, of: Array(targetsBySource.values), key: key, id: { $0.agent.agentId })
            where sources < settings.sourcesPerAllowIntent {
                let targets = Self.top(candidate.targets.count, of: candidate.targets, key: key + ":" + candidate.agent.agentId) {
                    network.interfaces[$0].id
                }
                if targets.prefix(4).contains(where: { plan(candidate.agent, to: $0, port: intent.port, intent: intent.name) }) { sources += 1 }
            }
        }

        // Security group rules: each tcp ingress rule whose source holds an agent, once.
        for (groupIndex, group) in network.securityGroups.enumerated() {
            let holders = network.interfaces.indices.filter { index in
                guard case .instance = network.interfaces[index].owner else { return false }
                return network.interfaces[index].securityGroups.contains(groupIndex)
            }
            guard !holders.isEmpty else { continue }
            for rule in group.ingress where rule.protocolNumber == 6 {
                guard let port = rule.ports?.from else { continue }
                let sources = agentByInterface.filter { interface, _ in
                    let address = network.interfaces[interface].privateIp
                    switch rule.peer {
                    case .cidr(let block): return block.contains(address)
                    case .group(let peer): return network.interfaces[interface].securityGroups.contains(peer)
                    case .prefixList(let blocks): return blocks.contains { $0.contains(address) }
                    }
                }
                guard !sources.isEmpty else { continue }
                let key = "rule:\(group.id):\(rule.index)"
                let rankedSources = Self.top(4, of: Array(sources.values), key: key) { $0.agentId }
                let rankedTargets = Self.top(4, of: holders, key: key) { network.interfaces[$0].id }
                planning: for agent in rankedSources {
                    for target in rankedTargets where plan(agent, to: target, port: port, intent: nil) { break planning }
                }
            }
        }
        return probes
    }

    // MARK: - One agent

    private func plan(
        for agent: AgentPlacement, bySubnet: [Int: [AgentPlacement]], denyFlows: [Int: [(to: Party, intent: Intent)]], services: [PlannedProbe],
        chosen: Chosen
    ) -> [PlannedProbe] {
        guard let sourceInterface = primaryInterface(agent.instance) else { return [] }
        let subnet = network.interfaces[sourceInterface].subnet
        let source = Party.interface(sourceInterface, address: network.interfaces[sourceInterface].privateIp)
        let mates = bySubnet[subnet] ?? []
        var probes: [PlannedProbe] = []

        // Same-subnet peers.
        let peers = Self.top(settings.peersPerSubnet, of: mates.filter { $0.agentId != agent.agentId }, key: "peer:\(agent.agentId)") { $0.agentId }
        for peer in peers { if let probe = echoProbe(from: agent, source: source, to: peer, purpose: .peer) { probes.append(probe) } }

        // Representatives towards every other subnet.
        for (other, targets) in bySubnet.sorted(by: { $0.key < $1.key }) where other != subnet {
            let key = "pair:\(network.subnets[subnet].id)->\(network.subnets[other].id)"
            guard chosen.members(settings.representativesPerSubnetPair, of: mates, key: key).contains(agent.agentId) else { continue }
            guard let target = Self.top(1, of: targets, key: key + ":" + agent.agentId, id: { $0.agentId }).first else { continue }
            if let probe = echoProbe(from: agent, source: source, to: target, purpose: .crossSubnet) { probes.append(probe) }
        }

        // Services: egress echo through the NAT, endpoints, load balancers, static ENIs.
        for (index, endpoint) in network.topology.endpoints.enumerated() {
            guard let address = network.endpointAddress(index) else { continue }
            let isEcho = endpoint.kind == .egressEcho
            let key = "\(isEcho ? "egress" : "endpoint"):\(network.subnets[subnet].id):\(endpoint.id)"
            guard
                chosen.members(isEcho ? settings.egressAgentsPerSubnet : settings.serviceAgentsPerSubnet, of: mates, key: key).contains(agent.agentId)
            else {
                continue
            }
            let destination = network.party(for: address)
            let port = endpoint.port ?? (endpoint.url?.hasPrefix("http://") == true ? 80 : 443)
            guard let (verdict, _) = try? network.verdict(from: source, to: destination, port: port, protocol: .tcp, details: false) else {
                continue
            }
            // Endpoints are probed where the model says they are used; the egress echo wherever a NAT carries traffic.
            guard verdict == .allowed else { continue }
            let components = pathComponents(from: source, to: destination, port: port, proto: .tcp)
            // The NAT on the path; for the NAT instance itself, its own NAT (it leaves with the same Elastic IP).
            let ownNAT = network.nats.first { info in info.interface.map { network.instances[agent.instance].interfaces.contains($0) } ?? false }?.id
            let nat = components.first { $0.kind.isNAT }?.id ?? ownNAT
            let natInfo = nat.flatMap { id in network.nats.first { $0.id == id } }
            let url = endpoint.url ?? "http://\(address):\(port)/"
            let kind = url.hasPrefix("https://") ? "https" : "http"
            probes.append(
                PlannedProbe(
                    id: "\(isEcho ? "egress" : "endpoint"):\(endpoint.id)", purpose: isEcho ? .natEgress : .endpoint, kind: kind, target: url,
                    port: nil,
                    expectReach: true,
                    expectedEgressIP: isEcho ? (natInfo?.egressAddress ?? network.interfaces[sourceInterface].publicIp)?.description : nil,
                    sourceAgent: agent.agentId,
                    sourceInstance: network.instances[agent.instance].id, sourceSubnet: network.subnets[subnet].id, targetName: endpoint.id, nat: nat,
                    components: components + [ComponentRef(.endpoint, endpoint.id)], evaluatedProtocol: "tcp",
                    evaluatedPort: port))
        }
        for balancer in network.loadBalancers.indices {
            let info = network.loadBalancers[balancer]
            guard let listener = info.listeners.first, info.protocolIsTCP(listener.protocolNumber) else { continue }
            let key = "lb:\(network.subnets[subnet].id):\(info.id)"
            guard chosen.members(settings.serviceAgentsPerSubnet, of: mates, key: key).contains(agent.agentId) else { continue }
            guard let node = info.nodes.first else { continue }
            guard
                let (verdict, _) = try? network.verdict(
                    from: source, to: .loadBalancer(balancer), port: listener.port, protocol: .tcp, details: false),
                verdict == .allowed
            else { continue }
            let address = network.interfaces[node].privateIp
            let legs = chosen.targetLegs(balancer, listener: listener, planner: self)
            probes.append(
                PlannedProbe(
                    id: "lb:\(info.id):\(listener.port)", purpose: .loadBalancer, kind: "tcp", target: address.description, port: listener.port,
                    expectReach: true, sourceAgent: agent.agentId, sourceInstance: network.instances[agent.instance].id,
                    sourceSubnet: network.subnets[subnet].id, targetName: info.id,
                    components: pathComponents(from: source, to: .interface(node, address: address), port: listener.port, proto: .tcp)
                        + [ComponentRef(.loadBalancer, info.id)] + legs.shared,
                    alternatives: legs.members.isEmpty ? nil : legs.members, evaluatedProtocol: "tcp", evaluatedPort: listener.port))
            // Each target straight on its target port, from one agent of this subnet that the model lets through: when
            // the balancer's flows fail, these tell a dead balancer from dead targets.
            for target in info.targets {
                guard let targetInterface = network.instances[target].interfaces.first, target != agent.instance else { continue }
                let targetKey = "lb-target:\(network.subnets[subnet].id):\(network.instances[target].id):\(listener.targetPort)"
                guard chosen.members(1, of: mates, key: targetKey).contains(agent.agentId) else { continue }
                let destination = Party.interface(targetInterface, address: network.interfaces[targetInterface].privateIp)
                guard
                    let (direct, _) = try? network.verdict(from: source, to: destination, port: listener.targetPort, protocol: .tcp, details: false),
                    direct == .allowed
                else { continue }
                let service = ComponentRef(.instance, network.instances[target].id, scope: "tcp/\(listener.targetPort)")
                probes.append(
                    PlannedProbe(
                        id: "lb-target:\(network.instances[target].id):\(listener.targetPort)", purpose: .lbTarget, kind: "tcp",
                        target: network.interfaces[targetInterface].privateIp.description, port: listener.targetPort, expectReach: true,
                        sourceAgent: agent.agentId, sourceInstance: network.instances[agent.instance].id, sourceSubnet: network.subnets[subnet].id,
                        targetName: network.instances[target].id, targetInstance: network.instances[target].id,
                        components: pathComponents(from: source, to: destination, port: listener.targetPort, proto: .tcp) + [service],
                        evaluatedProtocol: "tcp", evaluatedPort: listener.targetPort))
            }
        }
        for (index, interface) in network.interfaces.enumerated() {
            guard interface.deviceIndex > 0, case .instance(let owner) = interface.owner, owner != agent.instance else { continue }
            let key = "eni:\(network.subnets[subnet].id):\(interface.id)"
            guard chosen.members(1, of: mates, key: key).contains(agent.agentId) else { continue }
            let destination = Party.interface(index, address: interface.privateIp)
            guard let (verdict, _) = try? network.verdict(from: source, to: destination, port: agent.responderPort, protocol: .udp, details: false),
                verdict == .allowed
            else { continue }
            probes.append(
                PlannedProbe(
                    id: "eni:\(interface.id)", purpose: .staticENI, kind: "udp-echo", target: interface.privateIp.description,
                    port: agent.responderPort,
                    expectReach: true, expectedInstance: network.instances[owner].id, expectedInterface: interface.id, sourceAgent: agent.agentId,
                    sourceInstance: network.instances[agent.instance].id, sourceSubnet: network.subnets[subnet].id, targetName: interface.id,
                    targetInstance: network.instances[owner].id, interface: interface.id,
                    components: pathComponents(from: source, to: destination, port: agent.responderPort, proto: .udp) + [
                        ComponentRef(.eni, interface.id), ComponentRef(.instance, network.instances[owner].id),
                    ], evaluatedProtocol: "udp", evaluatedPort: agent.responderPort))
            // The owner on its primary ENI from the same agent: when the static ENI stops answering, this tells the ENI
            // (detached, moved) from its host.
            if let ownerAgent = chosen.agentByInstance[owner],
                let probe = echoProbe(from: agent, source: source, to: ownerAgent, purpose: .crossSubnet),
                !probes.contains(where: { $0.targetInstance == probe.targetInstance && $0.purpose != .staticENI })
            {
                probes.append(probe)
            }
        }

        // What the application uses: allow intents and security group rules (planned for every agent at once).
        probes += services

        // Expected-deny: flows the intents say must be blocked, from this agent's instance.
        var denies: [PlannedProbe] = []
        // A deterministic sample per agent first (an intent over every instance has thousands of flows per agent), then
        // the engine on the sample only.
        // Up to four candidates per intent, so that every intent this agent can test stays in the sample.
        var candidates: [(to: Party, intent: Intent)] = []
        var generator = SplitMix64(seed: Self.rendezvousScore("deny", agent.agentId))
        var byIntent: [String: [(to: Party, intent: Intent)]] = [:]
        var intentOrder: [String] = []
        for flow in denyFlows[sourceInterface] ?? [] {
            if byIntent[flow.intent.name] == nil { intentOrder.append(flow.intent.name) }
            byIntent[flow.intent.name, default: []].append(flow)
        }
        for name in intentOrder {
            var flows = byIntent[name] ?? []
            let wanted = min(flows.count, 4)
            for index in 0..<wanted { flows.swapAt(index, index + generator.below(flows.count - index)) }
            candidates += flows.prefix(wanted)
        }
        for (to, intent) in candidates {
            guard case .interface(let targetIndex, let targetAddress) = to, case .instance(let owner) = network.interfaces[targetIndex].owner else {
                continue
            }
            guard let (verdict, blocker) = try? network.verdict(from: source, to: to, port: intent.port, protocol: .tcp, details: false),
                verdict == .blocked
            else { continue }
            denies.append(
                PlannedProbe(
                    id: "deny:\(network.instances[owner].id):\(intent.port)", purpose: .expectedDeny, kind: "tcp", target: targetAddress.description,
                    port: intent.port, expectReach: false, sourceAgent: agent.agentId, sourceInstance: network.instances[agent.instance].id,
                    sourceSubnet: network.subnets[subnet].id, targetName: network.instances[owner].id, targetInstance: network.instances[owner].id,
                    components: [],
                    blockingComponent: blocker.map { ComponentRef(ComponentKind(rawValue: $0.componentType) ?? .instance, $0.component) },
                    intent: intent.name,
                    evaluatedProtocol: "tcp", evaluatedPort: intent.port))
        }
        var seenDeny: Set<String> = []
        denies = denies.filter { seenDeny.insert($0.id).inserted }
        // One flow of each intent first (an intent no agent tests is a promise nobody checks), then the rest.
        var picked = Self.top(
            settings.denyFlowsPerAgent,
            of: Dictionary(grouping: denies, by: { $0.intent ?? "" }).values.map { group in
                Self.top(1, of: group, key: "deny:\(agent.agentId)") { $0.id }[0]
            }, key: "deny:\(agent.agentId)"
        ) { $0.id }
        let pickedIds = Set(picked.map(\.id))
        picked += Self.top(settings.denyFlowsPerAgent - picked.count, of: denies.filter { !pickedIds.contains($0.id) }, key: "deny:\(agent.agentId)")
        {
            $0.id
        }
        probes += picked

        var seen: Set<String> = []
        probes = probes.filter { seen.insert($0.id).inserted }
        return Array(probes.prefix(settings.maxProbesPerAgent))
    }

    private func echoProbe(from agent: AgentPlacement, source: Party, to peer: AgentPlacement, purpose: PlannedProbe.Purpose) -> PlannedProbe? {
        guard let interface = primaryInterface(peer.instance) else { return nil }
        let address = network.interfaces[interface].privateIp
        let destination = Party.interface(interface, address: address)
        guard let (verdict, _) = try? network.verdict(from: source, to: destination, port: peer.responderPort, protocol: .udp, details: false) else {
            return nil
        }
        return PlannedProbe(
            id: "\(purpose.rawValue):\(network.instances[peer.instance].id)", purpose: purpose, kind: "udp-echo", target: address.description,
            port: peer.responderPort, expectReach: verdict == .allowed, expectedInstance: network.instances[peer.instance].id,
            expectedInterface: network.interfaces[interface].id, sourceAgent: agent.agentId, sourceInstance: network.instances[agent.instance].id,
            sourceSubnet: network.subnets[network.interfaces[primaryInterface(agent.instance) ?? interface].subnet].id,
            targetName: network.instances[peer.instance].id, targetInstance: network.instances[peer.instance].id,
            components: pathComponents(from: source, to: destination, port: peer.responderPort, proto: .udp) + [
                ComponentRef(.instance, network.instances[peer.instance].id)
            ], evaluatedProtocol: "udp", evaluatedPort: peer.responderPort)
    }

    /// The components the intended path crosses, scoped for blame (see `ComponentRef`): a security group by the rule
    /// that allows the flow; a network ACL by direction, protocol, port and the rule that allows it (for the reply, by
    /// direction, protocol and rule); a route table by the route taken; NATs, gateways, peerings and load balancers whole.
    public func pathComponents(from source: Party, to destination: Party, port: Int, proto: IPProtocol) -> [ComponentRef] {
        guard let explanation = try? network.explain(from: source, to: destination, port: port, protocol: proto) else { return [] }
        var components: [ComponentRef] = []
        for hop in explanation.hops {
            guard let kind = ComponentKind(rawValue: hop.componentType), kind != .subnet else { continue }
            let rule = hop.rule ?? "*"
            let component: ComponentRef
            switch (kind, hop.direction) {
            case (.networkACL, .forward):
                component = ComponentRef(kind, hop.component, scope: "\(hop.check == "nacl-ingress" ? "ingress" : "egress") \(proto)/\(port) \(rule)")
            case (.networkACL, .return):
                component = ComponentRef(kind, hop.component, scope: "\(hop.check == "nacl-ingress" ? "ingress" : "egress") \(proto) replies \(rule)")
            case (.securityGroup, _):
                // Allow-only and stateful: the only way a security group breaks a flow is by losing the rule that
                // allowed it, and that breaks every flow the rule allows, whatever the port.
                component = ComponentRef(kind, hop.component, scope: rule)
            case (.routeTable, .forward):
                component = ComponentRef(kind, hop.component, scope: "route \(rule.split(separator: " ").first.map(String.init) ?? rule)")
            case (.routeTable, .return):
                continue
            default:
                component = ComponentRef(kind, hop.component)
            }
            if !components.contains(component) { components.append(component) }
        }
        return components
    }

    /// The part of a load balancer's path after its node: the components every target's leg shares, and, with more
    /// than one target, one `target-group` component for the rest (the flow fails only when every target fails), with
    /// the targets' services as its members.
    func targetLegs(_ balancer: Int, listener: (port: Int, targetPort: Int, protocolNumber: Int)) -> (shared: [ComponentRef], members: [ComponentRef])
    {
        let info = network.loadBalancers[balancer]
        guard let node = info.nodes.first else { return ([], []) }
        var legs: [[ComponentRef]] = []
        var members: [ComponentRef] = []
        for target in info.targets {
            guard let interface = network.instances[target].interfaces.first else { continue }
            let service = ComponentRef(.instance, network.instances[target].id, scope: "tcp/\(listener.targetPort)")
            members.append(service)
            legs.append(
                pathComponents(
                    from: .interface(node, address: network.interfaces[node].privateIp),
                    to: .interface(interface, address: network.interfaces[interface].privateIp), port: listener.targetPort, proto: .tcp) + [service])
        }
        guard legs.count > 1 else { return (legs.first ?? [], []) }
        let shared = legs.dropFirst().reduce(Set(legs[0])) { $0.intersection($1) }
        return (legs[0].filter(shared.contains) + [ComponentRef(.targetGroup, info.id, scope: "tcp/\(listener.targetPort)")], members)
    }

    private func primaryInterface(_ instance: Int) -> Int? {
        network.instances[instance].interfaces.min { network.interfaces[$0].deviceIndex < network.interfaces[$1].deviceIndex }
    }

    private func primarySubnet(_ instance: Int) -> Int? { primaryInterface(instance).map { network.interfaces[$0].subnet } }

    /// The `count` items with the highest rendezvous score for `key`: stable when items come and go.
    static func top<Item>(_ count: Int, of items: [Item], key: String, id: (Item) -> String) -> [Item] {
        guard count > 0 else { return [] }
        return items.map { (score: rendezvousScore(key, id($0)), item: $0) }.sorted { $0.score > $1.score }.prefix(count).map(\.item)
    }

    /// FNV-1a over `key|id`, finished with a SplitMix step for spread.
    static func rendezvousScore(_ key: String, _ id: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        hash = (hash ^ 0x7c) &* 0x100_0000_01b3
        for byte in id.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        hash ^= hash >> 30
        hash = hash &* 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 27
        hash = hash &* 0x94d0_49bb_1331_11eb
        return hash ^ (hash >> 31)
    }
}

/// Rendezvous choices that do not depend on the agent being planned (representatives of a subnet for a subnet pair, an
/// endpoint, a load balancer, an ENI), computed once per plan round instead of once per agent.
final class Chosen {
    private var memo: [String: Set<String>] = [:]
    private var legs: [Int: (shared: [ComponentRef], members: [ComponentRef])] = [:]
    /// The agent on each instance (by instance index).
    var agentByInstance: [Int: AgentPlacement] = [:]

    func targetLegs(_ balancer: Int, listener: (port: Int, targetPort: Int, protocolNumber: Int), planner: PlanGenerator) -> (
        shared: [ComponentRef], members: [ComponentRef]
    ) {
        if let cached = legs[balancer] { return cached }
        let computed = planner.targetLegs(balancer, listener: listener)
        legs[balancer] = computed
        return computed
    }

    func members(_ count: Int, of agents: [AgentPlacement], key: String) -> Set<String> {
        if let cached = memo[key] { return cached }
        let members = Set(PlanGenerator.top(count, of: agents, key: key) { $0.agentId }.map(\.agentId))
        memo[key] = members
        return members
    }
}

extension Network.LoadBalancerInfo {
    func protocolIsTCP(_ number: Int) -> Bool { number == 6 }
}
