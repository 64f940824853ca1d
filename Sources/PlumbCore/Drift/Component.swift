/// The kinds of component an intended path crosses and an alert can blame: one enum, spelled once.
public enum ComponentKind: String, Sendable, Hashable, Codable, CaseIterable {
    case natInstance = "nat-instance"
    case natGateway = "nat-gateway"
    case loadBalancer = "load-balancer"
    /// All targets of a load balancer on one port, together: a load balancer's flow fails only when every target does.
    case targetGroup = "target-group"
    case instance
    case endpoint
    case eni
    case internetGateway = "internet-gateway"
    case vpcEndpoint = "vpc-endpoint"
    case peering
    case routeTable = "route-table"
    case networkACL = "network-acl"
    case securityGroup = "security-group"
    case subnet
    case agent

    /// A service at the end of a flow (an endpoint, a load balancer, its targets, an instance's port) rather than a
    /// device or rule on the path. A dead service on a live host refuses; so a flow that timed out points at the path
    /// first, and one that was refused points at the service alone.
    public var isTargetService: Bool { self == .endpoint || self == .loadBalancer || self == .targetGroup || self == .instance }

    /// Whether a failure of this kind is a NAT failure (`nat_failure`) rather than an `unexpected_block`.
    public var isNAT: Bool { self == .natInstance || self == .natGateway }

    /// The order in which tied candidates are preferred (lower first): the stated tie-break, runtime components
    /// (processes and devices that die: NATs, load balancers, instances, endpoints, ENIs) before configuration
    /// (route tables, NACLs, security groups), since a dead process is likelier than a configuration change that
    /// breaks exactly the probed class of flows. It never overrides evidence: it only orders components that explain
    /// exactly the same failures.
    public var tieRank: Int {
        switch self {
        case .natInstance: 0
        case .natGateway: 1
        case .loadBalancer: 2
        case .instance: 3
        case .endpoint: 4
        case .eni: 5
        case .targetGroup: 6
        case .routeTable: 7
        case .networkACL: 8
        case .securityGroup: 9
        // Managed attachments: their "failure" is a configuration change (detached, deleted), and they are on every
        // path of their kind, so they would win every tie they are part of.
        case .internetGateway: 10
        case .vpcEndpoint: 11
        case .peering: 12
        case .subnet: 13
        case .agent: 14
        }
    }
}

/// One component on an intended path, as blame sees it: a kind, the model id, and the scope that the evidence for it
/// is about. Rules are per direction and port, so a network ACL or security group is scoped
/// (`egress tcp/443`): a passing udp/7471 flow says nothing about its tcp/443 rules. A route table is scoped by the
/// route the flow takes; a target service by its port. Runtime components that fail as a whole (a NAT, a load
/// balancer, a host) are not scoped.
public struct ComponentRef: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    /// The kind.
    public var kind: ComponentKind
    /// The model id (`acl-app`, `nat-1`, `i-app-1`).
    public var id: String
    /// What part of it (`egress tcp/443`, `ingress udp replies`, `route 0.0.0.0/0`, `tcp/8080`), when it is scoped.
    public var scope: String?

    /// Creates a reference.
    public init(_ kind: ComponentKind, _ id: String, scope: String? = nil) {
        self.kind = kind
        self.id = id
        self.scope = scope
    }

    /// Hashes the kind and id only: the scopes of one component are few, and the blame engine hashes these for every
    /// component of every passing pair at each evaluation (equality still compares the scope).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(id)
    }

    /// The component without its scope: what an alert names.
    public var base: ComponentRef { ComponentRef(kind, id) }

    /// `network-acl acl-app (egress tcp/443)`.
    public var description: String { scope.map { "\(kind.rawValue) \(id) (\($0))" } ?? "\(kind.rawValue) \(id)" }

    /// Orders by tie rank, then id, then scope.
    public static func < (lhs: ComponentRef, rhs: ComponentRef) -> Bool {
        (lhs.kind.tieRank, lhs.id, lhs.scope ?? "") < (rhs.kind.tieRank, rhs.id, rhs.scope ?? "")
    }
}
