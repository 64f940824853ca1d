/// A ``Topology`` compiled for evaluation: every reference resolved to an index, every lookup a hash or
/// prefix-table probe. Build it once per model version; it is immutable and `Sendable`.
///
/// Building assumes the model validated without errors; dangling references are treated as absent
/// (a route to a missing target is a blackhole), never as a crash.
public struct Network: Sendable {
    /// The model it was built from.
    public let topology: Topology

    /// What owns an interface.
    public enum Owner: Sendable, Equatable {
        /// An instance, by index.
        case instance(Int)
        /// A NAT gateway, by index into ``nats``.
        case natGateway(Int)
        /// A load balancer node, by index into ``loadBalancers``.
        case loadBalancer(Int)
    }

    /// An interface with its references resolved.
    public struct Interface: Sendable {
        /// ENI id.
        public let id: String
        /// Owner.
        public let owner: Owner
        /// Subnet index.
        public let subnet: Int
        /// Primary private address.
        public let privateIp: IPv4Address
        /// Every private address.
        public let privateIps: [IPv4Address]
        /// Public or Elastic IP.
        public let publicIp: IPv4Address?
        /// Security group indexes; empty with `hasSecurityGroups == false` for NAT gateways and NLBs without groups.
        public let securityGroups: [Int]
        /// False when no security group applies at all (NAT gateway ENI, NLB without groups).
        public let hasSecurityGroups: Bool
        /// Source/destination check (ENI-4).
        public let sourceDestCheck: Bool
        /// Client ephemeral range (NACL-10).
        public let ephemeralPorts: PortRange
        /// Device index.
        public let deviceIndex: Int
    }

    /// A subnet with its associations resolved.
    public struct SubnetInfo: Sendable {
        /// Subnet id.
        public let id: String
        /// Name, or the id.
        public let label: String
        /// Its block.
        public let cidr: CIDR
        /// Zone.
        public let zone: String?
        /// Route table index, nil when the model has none for it.
        public let routeTable: Int?
        /// NACL index into ``acls``.
        public let acl: Int
        /// True when its route table sends something to the internet gateway (RT-9).
        public let isPublic: Bool
    }

    /// Where a route sends packets.
    public enum RouteTarget: Sendable, Equatable {
        /// Inside the VPC.
        case local
        /// The internet gateway.
        case internetGateway
        /// A NAT gateway, by index into ``nats``.
        case natGateway(Int)
        /// An interface (NAT instance or appliance), by index into ``interfaces``.
        case interface(Int)
        /// A peering, by index.
        case peering(Int)
        /// A gateway VPC endpoint, by index.
        case vpcEndpoint(Int)
        /// Dropped; the text says why.
        case blackhole(String)
    }

    /// A compiled route.
    public struct CompiledRoute: Sendable {
        /// The destination as written (`0.0.0.0/0` or `pl-…`).
        public let destinationText: String
        /// The target id as written.
        public let targetText: String
        /// The resolved target.
        public let target: RouteTarget
    }

    /// A compiled route table.
    public struct CompiledRouteTable: Sendable {
        /// Id.
        public let id: String
        /// Routes.
        public let routes: [CompiledRoute]
        let cidrRoutes: PrefixTable<Int>
        let prefixListRoutes: [(block: CIDR, route: Int)]

        /// The route for `address` by longest prefix match; a CIDR route wins a tie with a prefix-list route (RT-3, RT-4).
        public func lookup(_ address: IPv4Address) -> CompiledRoute? {
            let byCIDR = cidrRoutes.lookup(address)
            var best: (length: Int, route: Int)?
            for entry in prefixListRoutes where entry.block.contains(address) {
                if best == nil || entry.block.prefixLength > best!.length { best = (entry.block.prefixLength, entry.route) }
            }
            if let best, best.length > (byCIDR?.block.prefixLength ?? -1) { return routes[best.route] }
            return byCIDR.map { routes[$0.value] }
        }
    }

    /// A compiled NACL rule.
    public struct CompiledACLRule: Sendable {
        /// Rule number.
        public let number: Int
        /// Protocol number; -1 for all.
        public let protocolNumber: Int
        /// Ports (or ICMP types); nil for all.
        public let ports: PortRange?
        /// ICMP code; nil for all.
        public let icmpCode: Int?
        /// Remote block.
        public let cidr: CIDR
        /// Allow or deny.
        public let allow: Bool
    }

    /// A compiled NACL; rules sorted by number.
    public struct CompiledACL: Sendable {
        /// Id.
        public let id: String
        /// Inbound rules, lowest number first.
        public let ingress: [CompiledACLRule]
        /// Outbound rules, lowest number first.
        public let egress: [CompiledACLRule]
    }

    /// The peer of a compiled security group rule.
    public enum SGPeer: Sendable {
        /// A block.
        case cidr(CIDR)
        /// A group, by index.
        case group(Int)
        /// A prefix list's blocks.
        case prefixList([CIDR])
    }

    /// A compiled security group rule.
    public struct CompiledSGRule: Sendable {
        /// Position in the group's ingress or egress list.
        public let index: Int
        /// Protocol number; -1 for all.
        public let protocolNumber: Int
        /// Ports or ICMP types; nil for all.
        public let ports: PortRange?
        /// ICMP code; nil for all.
        public let icmpCode: Int?
        /// The peer.
        public let peer: SGPeer
        /// The peer as written.
        public let peerText: String
    }

    /// A compiled security group.
    public struct CompiledSG: Sendable {
        /// Id.
        public let id: String
        /// `sg-1 (web)` when the group has a name, else the id.
        public let label: String
        /// Inbound rules.
        public let ingress: [CompiledSGRule]
        /// Outbound rules.
        public let egress: [CompiledSGRule]
    }

    /// A NAT with its references resolved.
    public struct NATInfo: Sendable {
        /// Id.
        public let id: String
        /// Gateway or instance.
        public let kind: NATKind
        /// The interface that carries its traffic (a synthesised ENI for a gateway; the instance's primary ENI).
        public let interface: Int?
        /// Address its traffic leaves with.
        public let egressAddress: IPv4Address?
        /// True for a private NAT gateway.
        public let isPrivate: Bool
    }

    /// A load balancer with its references resolved.
    public struct LoadBalancerInfo: Sendable {
        /// Id.
        public let id: String
        /// Name, or the id.
        public let label: String
        /// Internet-facing?
        public let internetFacing: Bool
        /// Its node interfaces, one per subnet.
        public let nodes: [Int]
        /// Listeners: client port → target port, protocol number.
        public let listeners: [(port: Int, targetPort: Int, protocolNumber: Int)]
        /// Target instance indexes.
        public let targets: [Int]
    }

    /// An instance with its references resolved.
    public struct InstanceInfo: Sendable {
        /// Id.
        public let id: String
        /// Name, or the id.
        public let label: String
        /// Roles.
        public let roles: [String]
        /// Interfaces, primary first.
        public let interfaces: [Int]
        /// Ports it listens on.
        public let listens: [Listen]
    }

    /// Every interface: instances' ENIs, then synthesised ones for NAT gateways and load balancer nodes.
    public private(set) var interfaces: [Interface] = []
    /// Subnets, in model order.
    public private(set) var subnets: [SubnetInfo] = []
    /// Route tables, in model order.
    public private(set) var routeTables: [CompiledRouteTable] = []
    /// NACLs, in model order, plus the implied default when the model declares none.
    public private(set) var acls: [CompiledACL] = []
    /// Security groups, in model order.
    public private(set) var securityGroups: [CompiledSG] = []
    /// Instances, in model order.
    public private(set) var instances: [InstanceInfo] = []
    /// NATs, in model order.
    public private(set) var nats: [NATInfo] = []
    /// Load balancers, in model order.
    public private(set) var loadBalancers: [LoadBalancerInfo] = []

    var subnetByAddress = PrefixTable<Int>()
    var interfaceByPrivateIp: [IPv4Address: Int] = [:]
    var interfaceByPublicIp: [IPv4Address: Int] = [:]
    var interfaceById: [String: Int] = [:]
    var instanceByKey: [String: Int] = [:]
    var subnetById: [String: Int] = [:]
    var securityGroupById: [String: Int] = [:]
    var natById: [String: Int] = [:]
    var natByInstance: [Int: Int] = [:]
    var loadBalancerByKey: [String: Int] = [:]
    var endpointById: [String: Int] = [:]
    var prefixListById: [String: [CIDR]] = [:]
    var interfaceGroups: [Set<Int>] = []
    /// Every block longer than /16 that a rule or route names; see ``hasNarrowerBlock(containing:than:)``.
    var narrowBlocks: [CIDR] = []
    /// The partition of the internet by the blocks the model names; see ``InternetClass``.
    public private(set) var internetClasses: [InternetClass] = []
    /// The index in ``internetClasses`` of the class that stands for "the internet"; see ``arbitraryInternetClass``.
    public private(set) var arbitraryInternetClassIndex = 0

    /// Compiles `topology`.
    public init(_ topology: Topology) {
        self.topology = topology
        for list in topology.prefixLists { prefixListById[list.id] = list.cidrs }
        for (index, group) in topology.securityGroups.enumerated() { securityGroupById[group.id] = index }
        for (index, endpoint) in topology.endpoints.enumerated() { endpointById[endpoint.id] = index }
        compileSecurityGroups()
        compileACLs()
        compileSubnetsAndRoutes()
        compileInstances()
        compileNATs()
        compileLoadBalancers()
        resolveRouteTargets()
        interfaceGroups = interfaces.map { Set($0.securityGroups) }
        var blocks = Set<CIDR>()
        for acl in topology.networkAcls { for rule in acl.ingress + acl.egress { blocks.insert(rule.cidr) } }
        for group in topology.securityGroups {
            for rule in (group.ingress ?? []) + group.effectiveEgress { if let block = rule.cidr { blocks.insert(block) } }
        }
        for table in topology.routeTables { for route in table.routes { if let block = route.destination { blocks.insert(block) } } }
        for list in topology.prefixLists { blocks.formUnion(list.cidrs) }
        narrowBlocks = blocks.filter { $0.prefixLength > 16 }.sorted { $0.prefixLength > $1.prefixLength }
        compileInternetClasses(named: blocks)
    }

    /// Partitions the internet by `named` plus the endpoints' addresses. The VPC, its peers, the addresses
    /// its interfaces and NATs hold, and blocks never routed on the internet are not the internet.
    private mutating func compileInternetClasses(named: Set<CIDR>) {
        var named = named
        for endpoint in topology.endpoints { named.formUnion(endpoint.addresses ?? []) }
        func range(_ block: CIDR) -> ClosedRange<UInt32> { block.network.value...block.lastAddress.value }
        var excluded = (topology.vpc.cidrBlocks + topology.peerings.flatMap(\.peerCidrs) + InternetClass.nonInternetBlocks).map(range)
        for interface in interfaces { if let address = interface.publicIp { excluded.append(address.value...address.value) } }
        for nat in nats { if let address = nat.egressAddress { excluded.append(address.value...address.value) } }
        internetClasses = InternetClass.partition(named: named, excluded: excluded)
        // "The internet" is an address the model names nowhere; if every internet address is named, the largest class.
        arbitraryInternetClassIndex =
            internetClasses.firstIndex { $0.isRest }
            ?? internetClasses.indices.max { internetClasses[$0].addressCount < internetClasses[$1].addressCount } ?? 0
    }

    private mutating func compileSecurityGroups() {
        func compile(_ rules: [SecurityGroupRule]) -> [CompiledSGRule] {
            rules.enumerated().map { index, rule in
                let peer: SGPeer
                let text: String
                if let group = rule.securityGroup {
                    peer = securityGroupById[group].map(SGPeer.group) ?? .prefixList([])
                    text = group
                } else if let list = rule.prefixList {
                    peer = .prefixList(prefixListById[list] ?? [])
                    text = list
                } else {
                    peer = .cidr(rule.cidr ?? .any)
                    text = (rule.cidr ?? .any).description
                }
                return CompiledSGRule(
                    index: index, protocolNumber: rule.protocol.number, ports: rule.protocol.hasPorts ? rule.ports : nil,
                    icmpCode: rule.icmpCode == -1 ? nil : rule.icmpCode, peer: peer, peerText: text)
            }
        }
        securityGroups = topology.securityGroups.map { group in
            CompiledSG(
                id: group.id, label: group.name.map { "\(group.id) (\($0))" } ?? group.id, ingress: compile(group.ingress ?? []),
                egress: compile(group.effectiveEgress))
        }
    }

    private mutating func compileACLs() {
        func compile(_ rules: [NetworkACLRule]) -> [CompiledACLRule] {
            rules.sorted { $0.rule < $1.rule }.map {
                CompiledACLRule(
                    number: $0.rule, protocolNumber: $0.protocol.number, ports: $0.protocol.hasPorts ? $0.ports : nil,
                    icmpCode: $0.icmpCode == -1 ? nil : $0.icmpCode, cidr: $0.cidr, allow: $0.action == .allow)
            }
        }
        acls = topology.networkAcls.map { CompiledACL(id: $0.id, ingress: compile($0.ingress), egress: compile($0.egress)) }
    }

    /// The id given to the VPC's default NACL when the model does not declare one.
    public var impliedDefaultACLId: String { "\(topology.vpc.id)-default-acl" }

    private mutating func compileSubnetsAndRoutes() {
        // Associations: the subnet's own field wins; else a table/NACL listing it; else main/default.
        var tableForSubnet: [String: Int] = [:]
        for (index, table) in topology.routeTables.enumerated() {
            for subnet in table.subnets ?? [] where tableForSubnet[subnet] == nil { tableForSubnet[subnet] = index }
        }
        let tableIndexById = Dictionary(topology.routeTables.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        let mainTable = topology.routeTables.firstIndex { $0.isMain }
        var aclForSubnet: [String: Int] = [:]
        for (index, acl) in topology.networkAcls.enumerated() {
            for subnet in acl.subnets ?? [] where aclForSubnet[subnet] == nil { aclForSubnet[subnet] = index }
        }
        let aclIndexById = Dictionary(topology.networkAcls.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        var defaultACL = topology.networkAcls.firstIndex { $0.isDefault }
        if defaultACL == nil {
            // NACL-4: the VPC's default NACL allows everything in and out.
            let allowAll = [CompiledACLRule(number: 100, protocolNumber: -1, ports: nil, icmpCode: nil, cidr: .any, allow: true)]
            acls.append(CompiledACL(id: impliedDefaultACLId, ingress: allowAll, egress: allowAll))
            defaultACL = acls.count - 1
        }
        // Route tables are compiled after targets are known; record the table per subnet first.
        let igw = topology.internetGateway?.id
        for (index, subnet) in topology.subnets.enumerated() {
            let table = subnet.routeTable.flatMap { tableIndexById[$0] } ?? tableForSubnet[subnet.id] ?? mainTable
            let acl = subnet.networkAcl.flatMap { aclIndexById[$0] } ?? aclForSubnet[subnet.id] ?? defaultACL!
            let isPublic =
                table.map { topology.routeTables[$0].routes.contains { $0.target == igw && $0.state != .blackhole && igw != nil } } ?? false
            subnets.append(
                SubnetInfo(
                    id: subnet.id, label: subnet.name ?? subnet.id, cidr: subnet.cidr, zone: subnet.zone, routeTable: table, acl: acl,
                    isPublic: isPublic))
            subnetById[subnet.id] = index
            subnetByAddress.insert(subnet.cidr, index)
        }
    }

    private mutating func addInterface(_ interface: Interface) -> Int {
        let index = interfaces.count
        interfaces.append(interface)
        interfaceById[interface.id] = index
        for address in interface.privateIps where interfaceByPrivateIp[address] == nil { interfaceByPrivateIp[address] = index }
        if let publicIp = interface.publicIp, interfaceByPublicIp[publicIp] == nil { interfaceByPublicIp[publicIp] = index }
        return index
    }

    private mutating func compileInstances() {
        for (instanceIndex, instance) in topology.instances.enumerated() {
            var indexes: [Int] = []
            let ordered = instance.interfaces.enumerated().sorted { ($0.element.deviceIndex ?? $0.offset) < ($1.element.deviceIndex ?? $1.offset) }
            for (offset, eni) in ordered {
                guard let subnet = subnetById[eni.subnet] else { continue }
                indexes.append(
                    addInterface(
                        Interface(
                            id: eni.id, owner: .instance(instanceIndex), subnet: subnet, privateIp: eni.privateIp, privateIps: eni.privateIps,
                            publicIp: eni.effectivePublicIp, securityGroups: eni.securityGroups.compactMap { securityGroupById[$0] },
                            hasSecurityGroups: true, sourceDestCheck: eni.sourceDestCheck ?? true,
                            ephemeralPorts: instance.ephemeralPorts ?? .linuxEphemeral, deviceIndex: eni.deviceIndex ?? offset)))
            }
            instances.append(
                InstanceInfo(
                    id: instance.id, label: instance.name ?? instance.id, roles: instance.roles ?? [], interfaces: indexes,
                    listens: instance.listens ?? []))
            instanceByKey[instance.id] = instanceIndex
            if let name = instance.name, instanceByKey[name] == nil { instanceByKey[name] = instanceIndex }
        }
    }

    private mutating func compileNATs() {
        for (index, nat) in topology.nats.enumerated() {
            natById[nat.id] = index
            switch nat.kind {
            case .gateway:
                var interface: Int?
                if let subnetId = nat.subnet, let subnet = subnetById[subnetId] {
                    let address = nat.privateIp ?? IPv4Address(subnets[subnet].cidr.network.value &+ 4)
                    interface = addInterface(
                        Interface(
                            id: "\(nat.id)-eni", owner: .natGateway(index), subnet: subnet, privateIp: address, privateIps: [address],
                            publicIp: nat.isPrivate ? nil : nat.elasticIp, securityGroups: [], hasSecurityGroups: false, sourceDestCheck: false,
                            ephemeralPorts: .awsEphemeral, deviceIndex: 0))
                }
                nats.append(
                    NATInfo(
                        id: nat.id, kind: .gateway, interface: interface, egressAddress: nat.isPrivate ? nat.privateIp : nat.elasticIp,
                        isPrivate: nat.isPrivate))
            case .instance:
                let instance = nat.instance.flatMap { instanceByKey[$0] }
                let interface = instance.flatMap { instances[$0].interfaces.first }
                if let instance { natByInstance[instance] = index }
                nats.append(
                    NATInfo(
                        id: nat.id, kind: .instance, interface: interface,
                        egressAddress: nat.elasticIp ?? interface.flatMap { interfaces[$0].publicIp }, isPrivate: false))
            }
        }
    }

    private mutating func compileLoadBalancers() {
        for (index, balancer) in topology.loadBalancers.enumerated() {
            var nodes: [Int] = []
            for subnetId in balancer.subnets {
                guard let subnet = subnetById[subnetId] else { continue }
                let node = balancer.nodes?.first { $0.subnet == subnetId }
                let address = node?.privateIp ?? IPv4Address(subnets[subnet].cidr.network.value &+ 4)
                let groups = (balancer.securityGroups ?? []).compactMap { securityGroupById[$0] }
                nodes.append(
                    addInterface(
                        Interface(
                            id: "\(balancer.id)@\(subnetId)", owner: .loadBalancer(index), subnet: subnet, privateIp: address,
                            privateIps: [address], publicIp: balancer.isInternetFacing ? node?.publicIp : nil, securityGroups: groups,
                            hasSecurityGroups: balancer.securityGroups != nil, sourceDestCheck: true, ephemeralPorts: .awsEphemeral,
                            deviceIndex: 0)))
            }
            let listeners = balancer.listeners.map { ($0.port, $0.targetPort ?? $0.port, ($0.protocol ?? .tcp).number) }
            loadBalancers.append(
                LoadBalancerInfo(
                    id: balancer.id, label: balancer.name ?? balancer.id, internetFacing: balancer.isInternetFacing, nodes: nodes,
                    listeners: listeners,
                    targets: balancer.targets.compactMap { instanceByKey[$0] }))
            loadBalancerByKey[balancer.id] = index
            if let name = balancer.name, loadBalancerByKey[name] == nil { loadBalancerByKey[name] = index }
        }
    }

    private mutating func resolveRouteTargets() {
        let peeringById = Dictionary(topology.peerings.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        let endpointIndexById = Dictionary(topology.vpcEndpoints.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        for table in topology.routeTables {
            var routes: [CompiledRoute] = []
            var byCIDR = PrefixTable<Int>()
            var byList: [(block: CIDR, route: Int)] = []
            var hasLocal = Set<CIDR>()
            for route in table.routes {
                let target: RouteTarget
                let name = route.target
                if route.state == .blackhole {
                    target = .blackhole("the route is in state blackhole: its target \(name) is unavailable")
                } else if name == "local" {
                    target = .local
                } else if name == topology.internetGateway?.id {
                    target = .internetGateway
                } else if let nat = natById[name] {
                    switch nats[nat].kind {
                    case .gateway: target = .natGateway(nat)
                    case .instance: target = nats[nat].interface.map(RouteTarget.interface) ?? .blackhole("NAT \(name) has no interface")
                    }
                } else if let instance = instanceByKey[name] {
                    // RT-5: an instance target needs exactly one attached interface... we use its primary.
                    target = instances[instance].interfaces.first.map(RouteTarget.interface) ?? .blackhole("instance \(name) has no interface")
                } else if let interface = interfaceById[name] {
                    target = .interface(interface)
                } else if let peering = peeringById[name] {
                    target = .peering(peering)
                } else if let endpoint = endpointIndexById[name] {
                    target = .vpcEndpoint(endpoint)
                } else {
                    target = .blackhole("target \(name) is not in the model")
                }
                let index = routes.count
                if let destination = route.destination {
                    routes.append(CompiledRoute(destinationText: destination.description, targetText: name, target: target))
                    byCIDR.insert(destination, index)
                    if target == .local { hasLocal.insert(destination) }
                } else if let list = route.destinationPrefixList {
                    routes.append(CompiledRoute(destinationText: list, targetText: name, target: target))
                    for block in prefixListById[list] ?? [] { byList.append((block, index)) }
                }
            }
            // RT-2: every table has a local route for each VPC block.
            for block in topology.vpc.cidrBlocks where !hasLocal.contains(block) && byCIDR.lookup(block.network)?.block != block {
                byCIDR.insert(block, routes.count)
                routes.append(CompiledRoute(destinationText: block.description, targetText: "local", target: .local))
            }
            routeTables.append(CompiledRouteTable(id: table.id, routes: routes, cidrRoutes: byCIDR, prefixListRoutes: byList))
        }
    }

    // MARK: Lookups

    /// The instance with this id or name.
    public func instance(named key: String) -> Int? { instanceByKey[key] }
    /// The interface with this id.
    public func interface(id: String) -> Int? { interfaceById[id] }
    /// The interface holding this private address.
    public func interface(privateIp: IPv4Address) -> Int? { interfaceByPrivateIp[privateIp] }
    /// The interface holding this public or Elastic IP.
    public func interface(publicIp: IPv4Address) -> Int? { interfaceByPublicIp[publicIp] }
    /// The subnet whose block holds `address`.
    public func subnet(containing address: IPv4Address) -> Int? { subnetByAddress.lookup(address)?.value }
    /// The subnet with this id.
    public func subnet(id: String) -> Int? { subnetById[id] }
    /// The load balancer with this id or name.
    public func loadBalancer(named key: String) -> Int? { loadBalancerByKey[key] }
    /// The endpoint with this id.
    public func endpoint(id: String) -> Int? { endpointById[id] }
    /// The blocks of a prefix list.
    public func prefixList(_ id: String) -> [CIDR]? { prefixListById[id] }
    /// The NAT whose instance this is.
    public func nat(forInstance index: Int) -> Int? { natByInstance[index] }

    /// True when `address` is inside one of the VPC's blocks.
    public func isInsideVPC(_ address: IPv4Address) -> Bool { topology.vpc.cidrBlocks.contains { $0.contains(address) } }

    /// The instance index owning an interface, if an instance owns it.
    public func instanceIndex(ofInterface index: Int) -> Int? {
        if case .instance(let instance) = interfaces[index].owner { return instance }
        return nil
    }

    /// A label for an interface: the instance name, NAT or load balancer id.
    public func label(ofInterface index: Int) -> String {
        switch interfaces[index].owner {
        case .instance(let instance): instances[instance].label
        case .natGateway(let nat): nats[nat].id
        case .loadBalancer(let balancer): loadBalancers[balancer].label
        }
    }
}
