/// Allowed or blocked.
public enum Verdict: String, Sendable, Codable, Hashable {
    /// The model lets the flow through, request and reply.
    case allowed
    /// Some component stops it.
    case blocked
}

/// One step of a path, as the engine checked it.
public struct Hop: Sendable, Codable, Hashable {
    /// Which way the packet travels.
    public enum Direction: String, Sendable, Codable, Hashable {
        /// The request.
        case forward
        /// The reply (only stateless checks: NACLs and return routes).
        case `return`
    }

    /// What came of the check.
    public enum Outcome: String, Sendable, Codable, Hashable {
        /// The check let the packet through.
        case pass
        /// The check stopped the packet.
        case fail
        /// Not a check: a step the packet takes (a translation, a delivery).
        case info
    }

    /// Request or reply.
    public var direction: Direction
    /// The resource id of the component (`sg-web`, `acl-private`, `rtb-private`, `igw-1`, …).
    public var component: String
    /// The kind of component (`security-group`, `network-acl`, `route-table`, `internet-gateway`, `nat-gateway`, …).
    public var componentType: String
    /// What was checked (`sg-egress`, `sg-ingress`, `nacl-egress`, `nacl-ingress`, `route`, `listener`, `translate`, `deliver`, `egress`, `ingress`), or `block` for the step that stopped the packet.
    public var check: String
    /// The result.
    public var outcome: Outcome
    /// The rule that decided, as written (`rule 100`, `egress[0]`, `0.0.0.0/0 -> nat-1`, `*`).
    public var rule: String?
    /// A sentence for people.
    public var detail: String
}

/// Why and where a flow is blocked.
public struct Blocker: Sendable, Codable, Hashable {
    /// The resource id to blame.
    public var component: String
    /// Its kind.
    public var componentType: String
    /// An explanation code; AWS Reachability Analyzer's where one fits (`ENI_SG_RULES_MISMATCH`, …).
    public var code: String
    /// The rule that blocked, or nil when nothing matched (SGs) / the implicit deny was reached (`*`).
    public var rule: String?
    /// Request or reply.
    public var direction: Hop.Direction
    /// A sentence for people.
    public var detail: String
}

/// The engine's answer for one flow.
public struct Explanation: Sendable, Codable {
    /// Allowed or blocked.
    public var verdict: Verdict
    /// The source as resolved (`bastion (10.0.0.10)`).
    public var source: String
    /// The destination as resolved.
    public var destination: String
    /// Protocol.
    public var `protocol`: IPProtocol
    /// Destination port (ICMP type for icmp).
    public var port: Int
    /// Every step, in the order the packets take them.
    public var hops: [Hop]
    /// Present when blocked.
    public var blockedBy: Blocker?
    /// When one end is `internet`: the verdict for each class of internet addresses the model tells apart
    /// (``Network/internetClasses``). ``verdict`` and ``hops`` are those of the arbitrary internet address.
    public var internetClasses: [InternetClassVerdict]? = nil
    /// When one end is `internet`: the classes in one sentence, e.g. `allowed from 198.51.100.0/24 (sg-bastion
    /// ingress[0]) only; blocked from the rest of the internet`.
    public var internetSummary: String? = nil
}

/// The verdict of a flow from or to one class of internet addresses.
public struct InternetClassVerdict: Sendable, Codable, Hashable {
    /// The named blocks holding the class, most specific first; empty for the rest of the internet.
    public var cidrs: [CIDR]
    /// How the class reads (``InternetClass/description``).
    public var description: String
    /// The address that was evaluated for the class.
    public var representative: IPv4Address
    /// True for the class that stands for "the internet": its verdict is the flow's ``Explanation/verdict``.
    public var arbitrary: Bool
    /// Allowed or blocked.
    public var verdict: Verdict
    /// Present when blocked.
    public var blockedBy: Blocker?
    /// Security group, NACL and route rules that passed the flow for this class but not for the arbitrary
    /// internet address (`sg-bastion ingress[0]`, `acl-public rule 120`): why this class differs.
    public var allowedBy: [String]
}

/// Explanation codes used by the engine. Reuses AWS Reachability Analyzer's names where one fits.
public enum ExplanationCode {
    /// No security group rule allows the flow.
    public static let securityGroup = "ENI_SG_RULES_MISMATCH"
    /// A network ACL denies the flow (a rule or the implicit `*`).
    public static let networkACL = "SUBNET_ACL_RESTRICTION"
    /// No route matches the destination, or the reply cannot come back the same way.
    public static let noRoute = "NO_ROUTE_TO_DESTINATION"
    /// The matching route is a blackhole.
    public static let blackhole = "BAD_STATE_ROUTE"
    /// Egress through the internet gateway needs a public or Elastic IP.
    public static let igwEgressNeedsPublicIp = "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS"
    /// Ingress from the internet reaches only public or Elastic IPs.
    public static let igwIngressPrivateIp = "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS"
    /// The VPC has no internet gateway.
    public static let noInternetGateway = "NO_INTERNET_GATEWAY"
    /// An instance or ENI forwarding traffic has source/destination check on.
    public static let sourceDestCheck = "ENI_SOURCE_DEST_CHECK_RESTRICTION"
    /// A NAT gateway carries TCP, UDP and ICMP only.
    public static let natProtocol = "NGW_PROTOCOL_RESTRICTION"
    /// A NAT gateway serves only sources inside its VPC.
    public static let natSourceOutsideVPC = "NGW_REQUIRES_SOURCE_IN_VPC"
    /// A NAT gateway does not serve instances in its own subnet.
    public static let natSameSubnet = "NGW_SAME_SUBNET"
    /// The destination is outside the peer VPC's blocks.
    public static let peeringAddress = "PCX_REQUIRES_ADDRESS_IN_VPC_CIDR"
    /// Peering is not transitive and has no edge-to-edge routing.
    public static let peeringTransit = "PCX_NO_EDGE_TO_EDGE_ROUTING"
    /// A gateway endpoint accepts TCP and ICMP echo only.
    public static let endpointProtocol = "VPCE_GATEWAY_PROTOCOL_RESTRICTION"
    /// No load balancer listener accepts the port.
    public static let noListener = "ELB_LISTENERS_MISMATCH"
    /// The load balancer has no target.
    public static let noTargets = "ELBV2_LISTENER_HAS_NO_TG"
    /// Nothing in the model holds the destination address.
    public static let unassigned = "DESTINATION_ADDRESS_UNASSIGNED"
    /// The path loops or is longer than the engine follows.
    public static let cycle = "CYCLIC_PATH_DETECTED"
}

/// A problem with the question asked, not with the network.
public enum ExplainError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The source or destination names nothing in the model.
    case unknownParty(String, role: String)
    /// Both ends are outside the VPC.
    case bothExternal(String, String)
    /// The port is outside 0...65535 (or the ICMP type outside 0...255).
    case invalidPort(Int)

    /// A sentence saying what to do.
    public var description: String {
        switch self {
        case .unknownParty(let name, let role):
            "unknown \(role) '\(name)': give an instance id or name, an ENI id, an IPv4 address, a load balancer, an endpoint id, or 'internet'"
        case .bothExternal(let from, let to):
            "both '\(from)' and '\(to)' are outside the VPC; at least one end must be inside it"
        case .invalidPort(let port): "port \(port) is out of range: use 0-65535 (for icmp, the ICMP type 0-255)"
        }
    }
}
