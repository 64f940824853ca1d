/// An inclusive range of ports (or, for ICMP rules, of ICMP types).
public struct PortRange: Hashable, Sendable, CustomStringConvertible {
    /// First port, 0...65535.
    public var from: Int
    /// Last port, `from`...65535.
    public var to: Int

    /// Creates a range; `from` must not exceed `to`.
    public init(_ from: Int, _ to: Int) {
        self.from = from
        self.to = to
    }

    /// A single port.
    public init(_ port: Int) { self.init(port, port) }

    /// Every port.
    public static let all = PortRange(0, 65535)
    /// The range AWS advises NACLs to open for return traffic; what NAT gateways, ELB and Lambda use (NACL-10).
    public static let awsEphemeral = PortRange(1024, 65535)
    /// The ephemeral range of Amazon Linux and many Linux kernels (NACL-10).
    public static let linuxEphemeral = PortRange(32768, 61000)

    /// Parses `80`, `1024-65535`, `all` or `*`.
    public init?(_ text: some StringProtocol) {
        let trimmed = text.trimmingSpaces
        if trimmed == "all" || trimmed == "*" || trimmed == "-1" {
            self = .all
            return
        }
        let parts = trimmed.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
            let low = Int(parts[0].trimmingSpaces), let high = Int(parts[parts.count - 1].trimmingSpaces),
            (0...65535).contains(low), (0...65535).contains(high), low <= high
        else { return nil }
        self.init(low, high)
    }

    /// True when `port` is in the range.
    @inlinable
    public func contains(_ port: Int) -> Bool { port >= from && port <= to }

    /// True when `other` lies inside this range.
    public func contains(_ other: PortRange) -> Bool { other.from >= from && other.to <= to }

    /// The common part, if any.
    public func intersection(_ other: PortRange) -> PortRange? {
        let low = max(from, other.from)
        let high = min(to, other.to)
        return low <= high ? PortRange(low, high) : nil
    }

    /// The number of ports in the range.
    public var count: Int { to - from + 1 }

    /// `80` or `1024-65535`.
    public var description: String { from == to ? "\(from)" : "\(from)-\(to)" }
}

extension PortRange: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let port = try? container.decode(Int.self) {
            guard (0...65535).contains(port) || port == -1 else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "port \(port) is out of range 0-65535")
            }
            self = port == -1 ? .all : PortRange(port)
            return
        }
        let text = try container.decode(String.self)
        guard let range = PortRange(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not a port range; write 443, 1024-65535 or all")
        }
        self = range
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if from == to {
            try container.encode(from)
        } else if self == .all {
            try container.encode("all")
        } else {
            try container.encode(description)
        }
    }
}

/// A set of disjoint port ranges, kept sorted; used to evaluate NACL rules over a whole
/// ephemeral range at once.
public struct PortSet: Sendable, Equatable {
    /// The disjoint ranges, in ascending order.
    public private(set) var ranges: [PortRange]

    /// A set holding exactly `range`.
    public init(_ range: PortRange) { ranges = [range] }

    /// True when the set holds no port.
    public var isEmpty: Bool { ranges.isEmpty }

    /// Removes `range` from the set; returns the part that was removed (may be empty).
    @discardableResult
    public mutating func subtract(_ range: PortRange) -> [PortRange] {
        var kept: [PortRange] = []
        var removed: [PortRange] = []
        kept.reserveCapacity(ranges.count + 1)
        for current in ranges {
            guard let common = current.intersection(range) else {
                kept.append(current)
                continue
            }
            removed.append(common)
            if current.from < common.from { kept.append(PortRange(current.from, common.from - 1)) }
            if common.to < current.to { kept.append(PortRange(common.to + 1, current.to)) }
        }
        ranges = kept
        return removed
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    var trimmingSpaces: Substring {
        let scalars = Substring(self)
        guard let start = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let end = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return scalars[start...end]
    }
}
