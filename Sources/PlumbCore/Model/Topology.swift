/// The intended topology of one VPC: what the operator planned. Plumb derives from it what should be
/// reachable, and compares that with what agents observe.
///
/// Read it with `ModelLoader` (PlumbModelIO) from YAML or JSON; field reference in `docs/topology.md`.
public struct Topology: Codable, Sendable {
    /// Model format version; 1.
    public var version: Int?
    /// A name for the model, used in alerts and the dashboard.
    public var name: String?
    /// The VPC.
    public var vpc: VPC
    /// The VPC's internet gateway, if one is attached.
    public var internetGateway: InternetGateway?
    /// Named sets of CIDR blocks (AWS-managed for S3/DynamoDB, or customer-managed).
    public var prefixLists: [PrefixList]
    /// Subnets of the VPC.
    public var subnets: [Subnet]
    /// Route tables; exactly one should be `main: true`.
    public var routeTables: [RouteTable]
    /// Network ACLs; at most one `default: true`. Without one, the VPC's default NACL allows everything.
    public var networkAcls: [NetworkACL]
    /// Security groups.
    public var securityGroups: [SecurityGroup]
    /// Instances with their network interfaces (ENIs).
    public var instances: [Instance]
    /// NAT gateways and NAT instances.
    public var nats: [NAT]
    /// Peering connections to other VPCs.
    public var peerings: [Peering]
    /// VPC endpoints (gateway endpoints for S3/DynamoDB, interface endpoints).
    public var vpcEndpoints: [VPCEndpoint]
    /// Load balancers.
    public var loadBalancers: [LoadBalancer]
    /// Services outside the VPC that instances use (S3, SQS, DynamoDB, any URL, the egress echo).
    public var endpoints: [Endpoint]
    /// Explicit assertions about reachability that the model must satisfy.
    public var intents: [Intent]
    /// How agents probe.
    public var probing: ProbingSettings?
    /// The ephemeral port range assumed for clients outside the VPC (internet, peered VPCs); 1024-65535 when absent (NACL-10).
    public var externalEphemeralPorts: PortRange?

    enum CodingKeys: String, CodingKey {
        case version, name, vpc, internetGateway, prefixLists, subnets, routeTables, networkAcls, securityGroups, instances, nats
        case peerings, vpcEndpoints, loadBalancers, endpoints, intents, probing, externalEphemeralPorts
    }

    /// Creates a model.
    public init(
        version: Int? = 1, name: String? = nil, vpc: VPC, internetGateway: InternetGateway? = nil, prefixLists: [PrefixList] = [],
        subnets: [Subnet] = [], routeTables: [RouteTable] = [], networkAcls: [NetworkACL] = [], securityGroups: [SecurityGroup] = [],
        instances: [Instance] = [], nats: [NAT] = [], peerings: [Peering] = [], vpcEndpoints: [VPCEndpoint] = [],
        loadBalancers: [LoadBalancer] = [], endpoints: [Endpoint] = [], intents: [Intent] = [], probing: ProbingSettings? = nil,
        externalEphemeralPorts: PortRange? = nil
    ) {
        self.version = version
        self.name = name
        self.vpc = vpc
        self.internetGateway = internetGateway
        self.prefixLists = prefixLists
        self.subnets = subnets
        self.routeTables = routeTables
        self.networkAcls = networkAcls
        self.securityGroups = securityGroups
        self.instances = instances
        self.nats = nats
        self.peerings = peerings
        self.vpcEndpoints = vpcEndpoints
        self.loadBalancers = loadBalancers
        self.endpoints = endpoints
        self.intents = intents
        self.probing = probing
        self.externalEphemeralPorts = externalEphemeralPorts
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func list<T: Decodable>(_ key: CodingKeys) throws -> [T] {
            try c.decodeIfPresent([Recovered<T>].self, forKey: key)?.compactMap(\.value) ?? []
        }
        version = try c.decodeIfPresent(Int.self, forKey: .version)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        vpc = try c.decode(VPC.self, forKey: .vpc)
        internetGateway = try c.decodeIfPresent(InternetGateway.self, forKey: .internetGateway)
        prefixLists = try list(.prefixLists)
        subnets = try list(.subnets)
        routeTables = try list(.routeTables)
        networkAcls = try list(.networkAcls)
        securityGroups = try list(.securityGroups)
        instances = try list(.instances)
        nats = try list(.nats)
        peerings = try list(.peerings)
        vpcEndpoints = try list(.vpcEndpoints)
        loadBalancers = try list(.loadBalancers)
        endpoints = try list(.endpoints)
        intents = try list(.intents)
        probing = try c.decodeIfPresent(ProbingSettings.self, forKey: .probing)
        externalEphemeralPorts = try c.decodeIfPresent(PortRange.self, forKey: .externalEphemeralPorts)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func list<T: Encodable>(_ items: [T], _ key: CodingKeys) throws {
            if !items.isEmpty { try c.encode(items, forKey: key) }
        }
        try c.encodeIfPresent(version, forKey: .version)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encode(vpc, forKey: .vpc)
        try c.encodeIfPresent(internetGateway, forKey: .internetGateway)
        try list(prefixLists, .prefixLists)
        try list(subnets, .subnets)
        try list(routeTables, .routeTables)
        try list(networkAcls, .networkAcls)
        try list(securityGroups, .securityGroups)
        try list(instances, .instances)
        try list(nats, .nats)
        try list(peerings, .peerings)
        try list(vpcEndpoints, .vpcEndpoints)
        try list(loadBalancers, .loadBalancers)
        try list(endpoints, .endpoints)
        try list(intents, .intents)
        try c.encodeIfPresent(probing, forKey: .probing)
        try c.encodeIfPresent(externalEphemeralPorts, forKey: .externalEphemeralPorts)
    }
}

/// The VPC.
public struct VPC: Codable, Sendable {
    /// VPC id (`vpc-…`).
    public var id: String
    /// A display name.
    public var name: String?
    /// IPv4 CIDR blocks; the first is the primary.
    public var cidrBlocks: [CIDR]
    /// The AWS account that owns the VPC (12 digits; `OwnerId` in describe-vpcs). When set, agents' instance identity
    /// documents must name it.
    public var account: String?
    /// The region (`us-east-1`). When set, agents' instance identity documents must name it; when not, the region is
    /// taken from the subnets' zones where they are region-style names (`us-east-1a`).
    public var region: String?

    /// Creates a VPC.
    public init(id: String, name: String? = nil, cidrBlocks: [CIDR], account: String? = nil, region: String? = nil) {
        self.id = id
        self.name = name
        self.cidrBlocks = cidrBlocks
        self.account = account
        self.region = region
    }
}

/// An internet gateway attached to the VPC.
public struct InternetGateway: Codable, Sendable {
    /// Gateway id (`igw-…`).
    public var id: String
    /// A display name.
    public var name: String?

    /// Creates a gateway.
    public init(id: String, name: String? = nil) {
        self.id = id
        self.name = name
    }
}

/// A named list of CIDR blocks.
public struct PrefixList: Codable, Sendable {
    /// Prefix list id (`pl-…`).
    public var id: String
    /// Its name (`com.amazonaws.us-east-1.s3`).
    public var name: String?
    /// The blocks.
    public var cidrs: [CIDR]

    /// Creates a prefix list.
    public init(id: String, name: String? = nil, cidrs: [CIDR]) {
        self.id = id
        self.name = name
        self.cidrs = cidrs
    }
}

/// A subnet. Whether it is public is derived from its route table (RT-9), never declared.
public struct Subnet: Codable, Sendable {
    /// Subnet id (`subnet-…`).
    public var id: String
    /// A display name.
    public var name: String?
    /// Its IPv4 block, inside the VPC.
    public var cidr: CIDR
    /// Availability zone.
    public var zone: String?
    /// The route table explicitly associated; without one the main table applies (RT-1).
    public var routeTable: String?
    /// The network ACL explicitly associated; without one the default NACL applies (NACL-1).
    public var networkAcl: String?

    /// Creates a subnet.
    public init(id: String, name: String? = nil, cidr: CIDR, zone: String? = nil, routeTable: String? = nil, networkAcl: String? = nil) {
        self.id = id
        self.name = name
        self.cidr = cidr
        self.zone = zone
        self.routeTable = routeTable
        self.networkAcl = networkAcl
    }
}

/// A route table.
public struct RouteTable: Codable, Sendable {
    /// Route table id (`rtb-…`).
    public var id: String
    /// A display name.
    public var name: String?
    /// True for the VPC's main table, used by subnets without an explicit association.
    public var main: Bool?
    /// Subnets explicitly associated (alternative to `routeTable` on the subnet).
    public var subnets: [String]?
    /// Routes. The `local` route for each VPC block is implied when absent (RT-2).
    public var routes: [Route]

    /// Creates a route table.
    public init(id: String, name: String? = nil, main: Bool? = nil, subnets: [String]? = nil, routes: [Route]) {
        self.id = id
        self.name = name
        self.main = main
        self.subnets = subnets
        self.routes = routes
    }

    /// True when this is the main table.
    public var isMain: Bool { main ?? false }
}

/// One route: a destination (CIDR block or prefix list) and a target.
public struct Route: Codable, Sendable {
    /// Destination block.
    public var destination: CIDR?
    /// Destination prefix list id (`pl-…`), for gateway endpoint routes.
    public var destinationPrefixList: String?
    /// `local`, or the id of an internet gateway, NAT gateway or NAT, instance, ENI, peering, or gateway VPC endpoint.
    public var target: String
    /// `active` (default) or `blackhole`: the target is gone and packets are dropped (RT-6).
    public var state: RouteState?

    /// Creates a route.
    public init(destination: CIDR? = nil, destinationPrefixList: String? = nil, target: String, state: RouteState? = nil) {
        self.destination = destination
        self.destinationPrefixList = destinationPrefixList
        self.target = target
        self.state = state
    }
}

/// The state of a route.
public enum RouteState: String, Codable, Sendable, CaseIterable {
    /// The route forwards.
    case active
    /// The route drops: its target is unavailable.
    case blackhole
}

/// An IP protocol as security groups and NACLs name it.
public enum IPProtocol: Hashable, Sendable, CustomStringConvertible {
    /// TCP (6).
    case tcp
    /// UDP (17).
    case udp
    /// ICMP (1).
    case icmp
    /// Every protocol (`-1`).
    case all
    /// Another protocol number.
    case number(Int)

    /// Parses `tcp`, `udp`, `icmp`, `all`, `-1` or a protocol number.
    public init?(_ text: String) {
        switch text.lowercased() {
        case "tcp", "6": self = .tcp
        case "udp", "17": self = .udp
        case "icmp", "1": self = .icmp
        case "all", "-1", "*": self = .all
        default:
            guard let number = Int(text), (0...255).contains(number) else { return nil }
            self = .number(number)
        }
    }

    /// The protocol number; -1 for all.
    public var number: Int {
        switch self {
        case .tcp: 6
        case .udp: 17
        case .icmp: 1
        case .all: -1
        case .number(let n): n
        }
    }

    /// True when rules for this protocol have a port (or ICMP type) range (SG-4, NACL-8).
    public var hasPorts: Bool { self == .tcp || self == .udp || self == .icmp }

    /// `tcp`, `udp`, `icmp`, `all`, or the number.
    public var description: String {
        switch self {
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmp: "icmp"
        case .all: "all"
        case .number(let n): "\(n)"
        }
    }
}

extension IPProtocol: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = IPProtocol(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not a protocol; write tcp, udp, icmp, all, or a number 0-255")
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// One security group rule. Exactly one peer: `cidr`, `securityGroup` or `prefixList`.
public struct SecurityGroupRule: Codable, Sendable {
    /// Protocol.
    public var `protocol`: IPProtocol
    /// Port range for tcp/udp; ICMP type range for icmp. Absent means all (SG-4).
    public var ports: PortRange?
    /// ICMP code for icmp rules; absent means all codes.
    public var icmpCode: Int?
    /// Peer block.
    public var cidr: CIDR?
    /// Peer security group: matches the private addresses of ENIs that carry it (SG-5).
    public var securityGroup: String?
    /// Peer prefix list.
    public var prefixList: String?
    /// A note.
    public var description: String?

    /// Creates a rule.
    public init(
        protocol: IPProtocol, ports: PortRange? = nil, icmpCode: Int? = nil, cidr: CIDR? = nil, securityGroup: String? = nil,
        prefixList: String? = nil, description: String? = nil
    ) {
        self.protocol = `protocol`
        self.ports = ports
        self.icmpCode = icmpCode
        self.cidr = cidr
        self.securityGroup = securityGroup
        self.prefixList = prefixList
        self.description = description
    }
}

/// A security group: stateful, allow-only (SG-1, SG-3).
public struct SecurityGroup: Codable, Sendable {
    /// Group id (`sg-…`).
    public var id: String
    /// Group name.
    public var name: String?
    /// A note.
    public var description: String?
    /// Inbound rules; absent or empty allows nothing in.
    public var ingress: [SecurityGroupRule]?
    /// Outbound rules; **absent** means AWS's default allow-all, an explicit empty list allows nothing out (SG-1).
    public var egress: [SecurityGroupRule]?

    /// Creates a group.
    public init(id: String, name: String? = nil, description: String? = nil, ingress: [SecurityGroupRule]? = nil, egress: [SecurityGroupRule]? = nil)
    {
        self.id = id
        self.name = name
        self.description = description
        self.ingress = ingress
        self.egress = egress
    }

    /// The outbound rules in force.
    public var effectiveEgress: [SecurityGroupRule] {
        egress ?? [SecurityGroupRule(protocol: .all, cidr: .any, description: "default: all outbound")]
    }
}

/// Allow or deny.
public enum RuleAction: String, Codable, Sendable, CaseIterable {
    /// The rule allows.
    case allow
    /// The rule denies.
    case deny
}

/// One numbered network ACL rule (NACL-2).
public struct NetworkACLRule: Codable, Sendable {
    /// Rule number, 1...32766, evaluated lowest first.
    public var rule: Int
    /// Protocol.
    public var `protocol`: IPProtocol
    /// Port range (tcp/udp) or ICMP type range (icmp); absent means all.
    public var ports: PortRange?
    /// ICMP code; absent means all codes.
    public var icmpCode: Int?
    /// The block matched against the remote address.
    public var cidr: CIDR
    /// Allow or deny.
    public var action: RuleAction

    /// Creates a rule.
    public init(rule: Int, protocol: IPProtocol, ports: PortRange? = nil, icmpCode: Int? = nil, cidr: CIDR, action: RuleAction) {
        self.rule = rule
        self.protocol = `protocol`
        self.ports = ports
        self.icmpCode = icmpCode
        self.cidr = cidr
        self.action = action
    }
}

/// A network ACL: stateless, ordered, with an implicit final deny (NACL-2, NACL-3, NACL-5).
public struct NetworkACL: Codable, Sendable {
    /// NACL id (`acl-…`).
    public var id: String
    /// A display name.
    public var name: String?
    /// True for the VPC's default NACL, used by subnets without an explicit association.
    public var `default`: Bool?
    /// Subnets explicitly associated (alternative to `networkAcl` on the subnet).
    public var subnets: [String]?
    /// Inbound rules.
    public var ingress: [NetworkACLRule]
    /// Outbound rules.
    public var egress: [NetworkACLRule]

    /// Creates a NACL.
    public init(id: String, name: String? = nil, default: Bool? = nil, subnets: [String]? = nil, ingress: [NetworkACLRule], egress: [NetworkACLRule])
    {
        self.id = id
        self.name = name
        self.default = `default`
        self.subnets = subnets
        self.ingress = ingress
        self.egress = egress
    }

    /// True when this is the VPC's default NACL.
    public var isDefault: Bool { self.default ?? false }
}

/// A network interface (ENI).
public struct NetworkInterface: Codable, Sendable {
    /// ENI id (`eni-…`).
    public var id: String
    /// MAC address.
    public var mac: String?
    /// The subnet it lives in.
    public var subnet: String
    /// Primary private IPv4 address.
    public var privateIp: IPv4Address
    /// Secondary private IPv4 addresses.
    public var secondaryIps: [IPv4Address]?
    /// Auto-assigned public IPv4 address.
    public var publicIp: IPv4Address?
    /// Elastic IP associated with the primary private address.
    public var elasticIp: IPv4Address?
    /// Security groups; the union of their rules applies (SG-2, SG-11).
    public var securityGroups: [String]
    /// Device index; 0 is the primary ENI, which cannot be detached (ENI-2).
    public var deviceIndex: Int?
    /// Source/destination check; true unless disabled, which NAT instances need (NAT-7, ENI-4).
    public var sourceDestCheck: Bool?
    /// A note, e.g. "static IP for the Redis master".
    public var description: String?

    /// Creates an ENI.
    public init(
        id: String, mac: String? = nil, subnet: String, privateIp: IPv4Address, secondaryIps: [IPv4Address]? = nil, publicIp: IPv4Address? = nil,
        elasticIp: IPv4Address? = nil, securityGroups: [String], deviceIndex: Int? = nil, sourceDestCheck: Bool? = nil, description: String? = nil
    ) {
        self.id = id
        self.mac = mac
        self.subnet = subnet
        self.privateIp = privateIp
        self.secondaryIps = secondaryIps
        self.publicIp = publicIp
        self.elasticIp = elasticIp
        self.securityGroups = securityGroups
        self.deviceIndex = deviceIndex
        self.sourceDestCheck = sourceDestCheck
        self.description = description
    }

    /// The public address internet traffic uses: the Elastic IP, else the auto-assigned public IP.
    public var effectivePublicIp: IPv4Address? { elasticIp ?? publicIp }
    /// All private addresses.
    public var privateIps: [IPv4Address] { [privateIp] + (secondaryIps ?? []) }
}

/// A port an instance listens on.
public struct Listen: Codable, Sendable, Hashable {
    /// Port.
    public var port: Int
    /// Protocol; tcp when absent.
    public var `protocol`: IPProtocol?
    /// A name (`postgres`, `ssh`).
    public var name: String?

    /// Creates a listening port.
    public init(port: Int, protocol: IPProtocol? = nil, name: String? = nil) {
        self.port = port
        self.protocol = `protocol`
        self.name = name
    }
}

/// An instance and its ENIs.
public struct Instance: Codable, Sendable {
    /// Instance id (`i-…`).
    public var id: String
    /// A display name, usable wherever an id is.
    public var name: String?
    /// Role labels (`bastion`, `web`, `app`, `db`, `nat`, …), usable in intents as `role:NAME`.
    public var roles: [String]?
    /// Network interfaces; device index 0 is the primary.
    public var interfaces: [NetworkInterface]
    /// Ports its services listen on; the expected matrix probes these.
    public var listens: [Listen]?
    /// The client ephemeral port range it uses (NACL-10); 32768-61000 when absent.
    public var ephemeralPorts: PortRange?

    /// Creates an instance.
    public init(
        id: String, name: String? = nil, roles: [String]? = nil, interfaces: [NetworkInterface], listens: [Listen]? = nil,
        ephemeralPorts: PortRange? = nil
    ) {
        self.id = id
        self.name = name
        self.roles = roles
        self.interfaces = interfaces
        self.listens = listens
        self.ephemeralPorts = ephemeralPorts
    }
}

/// Whether a NAT is a managed gateway or an instance.
public enum NATKind: String, Codable, Sendable, CaseIterable {
    /// A NAT gateway.
    case gateway
    /// A NAT instance.
    case instance
}

/// A NAT gateway or NAT instance.
public struct NAT: Codable, Sendable {
    /// Id (`nat-…`).
    public var id: String
    /// A display name.
    public var name: String?
    /// Gateway or instance.
    public var kind: NATKind
    /// For a gateway: the subnet it sits in.
    public var subnet: String?
    /// For a gateway: its private address in that subnet.
    public var privateIp: IPv4Address?
    /// For a gateway: `public` (default; needs an Elastic IP) or `private` (NAT-1).
    public var connectivity: String?
    /// For an instance: the instance that does NAT.
    public var instance: String?
    /// The Elastic IP the NAT's traffic leaves with.
    public var elasticIp: IPv4Address?
    /// A standby NAT instance for failover.
    public var standby: String?

    /// Creates a NAT.
    public init(
        id: String, name: String? = nil, kind: NATKind, subnet: String? = nil, privateIp: IPv4Address? = nil, connectivity: String? = nil,
        instance: String? = nil, elasticIp: IPv4Address? = nil, standby: String? = nil
    ) {
        self.id = id
        self.name = name
        self.kind = kind
        self.subnet = subnet
        self.privateIp = privateIp
        self.connectivity = connectivity
        self.instance = instance
        self.elasticIp = elasticIp
        self.standby = standby
    }

    /// True for a private NAT gateway (no internet egress).
    public var isPrivate: Bool { connectivity == "private" }
}

/// A peering connection.
public struct Peering: Codable, Sendable {
    /// Id (`pcx-…`).
    public var id: String
    /// The peer VPC id.
    public var peerVpc: String?
    /// The peer VPC's blocks.
    public var peerCidrs: [CIDR]

    /// Creates a peering.
    public init(id: String, peerVpc: String? = nil, peerCidrs: [CIDR]) {
        self.id = id
        self.peerVpc = peerVpc
        self.peerCidrs = peerCidrs
    }
}

/// A VPC endpoint.
public struct VPCEndpoint: Codable, Sendable {
    /// Id (`vpce-…`).
    public var id: String
    /// `gateway` (S3, DynamoDB; routed by prefix list) or `interface` (ENIs in subnets).
    public var type: String
    /// Service name (`com.amazonaws.us-east-1.s3`).
    public var service: String?
    /// For a gateway endpoint: the service's prefix list.
    public var prefixList: String?
    /// For a gateway endpoint: the route tables it serves. Each needs a route `destinationPrefixList: <its prefix list>`
    /// with this endpoint as target (as AWS adds); validation warns when one is missing.
    public var routeTables: [String]?

    /// Creates an endpoint.
    public init(id: String, type: String, service: String? = nil, prefixList: String? = nil, routeTables: [String]? = nil) {
        self.id = id
        self.type = type
        self.service = service
        self.prefixList = prefixList
        self.routeTables = routeTables
    }
}

/// A load balancer listener.
public struct Listener: Codable, Sendable {
    /// Port clients connect to.
    public var port: Int
    /// Protocol; tcp when absent (HTTP/HTTPS listeners are TCP on the wire).
    public var `protocol`: IPProtocol?
    /// Port on the targets; the listener port when absent.
    public var targetPort: Int?

    /// Creates a listener.
    public init(port: Int, protocol: IPProtocol? = nil, targetPort: Int? = nil) {
        self.port = port
        self.protocol = `protocol`
        self.targetPort = targetPort
    }
}

/// A load balancer node's address in one subnet.
public struct LoadBalancerNode: Codable, Sendable {
    /// The subnet.
    public var subnet: String
    /// Its private address; the subnet's first assignable address when absent.
    public var privateIp: IPv4Address?
    /// Its public address, for internet-facing balancers.
    public var publicIp: IPv4Address?

    /// Creates a node.
    public init(subnet: String, privateIp: IPv4Address? = nil, publicIp: IPv4Address? = nil) {
        self.subnet = subnet
        self.privateIp = privateIp
        self.publicIp = publicIp
    }
}

/// A load balancer.
public struct LoadBalancer: Codable, Sendable {
    /// Id (name or ARN).
    public var id: String
    /// A display name.
    public var name: String?
    /// `internal` or `internet-facing` (ELB-1).
    public var scheme: String
    /// `application` or `network`.
    public var type: String?
    /// Subnets with a node each.
    public var subnets: [String]
    /// Node addresses per subnet, where known.
    public var nodes: [LoadBalancerNode]?
    /// Its security groups (ELB-2).
    public var securityGroups: [String]?
    /// Listeners.
    public var listeners: [Listener]
    /// Target instance ids or names.
    public var targets: [String]

    /// Creates a load balancer.
    public init(
        id: String, name: String? = nil, scheme: String, type: String? = nil, subnets: [String], nodes: [LoadBalancerNode]? = nil,
        securityGroups: [String]? = nil, listeners: [Listener], targets: [String]
    ) {
        self.id = id
        self.name = name
        self.scheme = scheme
        self.type = type
        self.subnets = subnets
        self.nodes = nodes
        self.securityGroups = securityGroups
        self.listeners = listeners
        self.targets = targets
    }

    /// True for an internet-facing balancer.
    public var isInternetFacing: Bool { scheme == "internet-facing" }
}

/// The kind of an external service endpoint.
public enum EndpointKind: String, Codable, Sendable, CaseIterable {
    /// Amazon S3.
    case s3
    /// Amazon SQS.
    case sqs
    /// Amazon DynamoDB.
    case dynamodb
    /// Any URL.
    case url
    /// A service that answers with the caller's source address; verifies NAT egress IPs.
    case egressEcho = "egress-echo"
}

/// A service outside the VPC.
public struct Endpoint: Codable, Sendable {
    /// Id, e.g. `s3`.
    public var id: String
    /// What it is.
    public var kind: EndpointKind
    /// URL agents probe (`https://s3.us-east-1.amazonaws.com`).
    public var url: String?
    /// Addresses or blocks it answers on.
    public var addresses: [CIDR]?
    /// A prefix list naming its blocks (S3/DynamoDB).
    public var prefixList: String?
    /// Port; 443 when absent.
    public var port: Int?
    /// Protocol; tcp when absent.
    public var `protocol`: IPProtocol?
    /// Instances or `role:NAME` selectors that use it; everyone when absent.
    public var usedBy: [String]?

    /// Creates an endpoint.
    public init(
        id: String, kind: EndpointKind, url: String? = nil, addresses: [CIDR]? = nil, prefixList: String? = nil, port: Int? = nil,
        protocol: IPProtocol? = nil, usedBy: [String]? = nil
    ) {
        self.id = id
        self.kind = kind
        self.url = url
        self.addresses = addresses
        self.prefixList = prefixList
        self.port = port
        self.protocol = `protocol`
        self.usedBy = usedBy
    }
}

/// What an intent expects.
public enum Expectation: String, Codable, Sendable, CaseIterable {
    /// Every flow of the intent must be allowed.
    case allow
    /// Every flow of the intent must be blocked.
    case deny
}

/// A named assertion about reachability, checked against the model (and, later, against observations).
public struct Intent: Codable, Sendable {
    /// Name, used in messages and alerts.
    public var name: String
    /// Sources: selectors (instance, `role:NAME`, `subnet:ID`, `private`, `public`, `instances`, `internet`, an address).
    public var from: [String]
    /// Sources to leave out of `from`.
    public var except: [String]?
    /// Destinations: selectors, as `from`.
    public var to: [String]
    /// Destination port (ICMP type for icmp).
    public var port: Int
    /// Protocol; tcp when absent.
    public var `protocol`: IPProtocol?
    /// allow or deny.
    public var expect: Expectation

    /// Creates an intent.
    public init(name: String, from: [String], except: [String]? = nil, to: [String], port: Int, protocol: IPProtocol? = nil, expect: Expectation) {
        self.name = name
        self.from = from
        self.except = except
        self.to = to
        self.port = port
        self.protocol = `protocol`
        self.expect = expect
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        from = try c.decodeOneOrMany(forKey: .from)
        except = try c.contains(.except) ? c.decodeOneOrMany(forKey: .except) : nil
        to = try c.decodeOneOrMany(forKey: .to)
        port = try c.decode(Int.self, forKey: .port)
        `protocol` = try c.decodeIfPresent(IPProtocol.self, forKey: .protocol)
        expect = try c.decode(Expectation.self, forKey: .expect)
    }
}

/// How agents probe; used by plan generation and the collector's state machines.
public struct ProbingSettings: Codable, Sendable {
    /// Seconds between rounds of a probe.
    public var intervalSeconds: Int?
    /// Probe timeout in milliseconds.
    public var timeoutMilliseconds: Int?
    /// Failures among the last `window` results that take a pair down.
    public var failuresToDown: Int?
    /// The window of results considered.
    public var window: Int?
    /// Consecutive successes that bring a pair back up.
    public var successesToUp: Int?
    /// Per-agent cap on probes per second.
    public var maxProbesPerSecond: Double?
    /// Peers probed in the agent's own subnet.
    public var peersPerSubnet: Int?

    /// Creates settings.
    public init(
        intervalSeconds: Int? = nil, timeoutMilliseconds: Int? = nil, failuresToDown: Int? = nil, window: Int? = nil, successesToUp: Int? = nil,
        maxProbesPerSecond: Double? = nil, peersPerSubnet: Int? = nil
    ) {
        self.intervalSeconds = intervalSeconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.failuresToDown = failuresToDown
        self.window = window
        self.successesToUp = successesToUp
        self.maxProbesPerSecond = maxProbesPerSecond
        self.peersPerSubnet = peersPerSubnet
    }
}

/// Enums read from a model say which values they take when given another.
protocol ModelEnum: RawRepresentable, Codable, CaseIterable where RawValue == String {}

extension ModelEnum {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = Self(rawValue: text) else {
            let allowed = Self.allCases.map(\.rawValue).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not one of: \(allowed)")
        }
        self = value
    }
}

extension RouteState: ModelEnum {}
extension RuleAction: ModelEnum {}
extension NATKind: ModelEnum {}
extension EndpointKind: ModelEnum {}
extension Expectation: ModelEnum {}

extension KeyedDecodingContainer {
    /// Decodes a string or a list of strings.
    func decodeOneOrMany(forKey key: Key) throws -> [String] {
        if let one = try? decode(String.self, forKey: key) { return [one] }
        return try decode([String].self, forKey: key)
    }
}
