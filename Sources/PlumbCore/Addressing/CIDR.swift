/// An IPv4 CIDR block: a network address and a prefix length.
///
/// The network address is always canonical: `10.0.0.18/18` parses to `10.0.0.0/18`, as AWS stores it
/// (NACL-9). ``wasCanonical`` tells whether the text had host bits set.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    /// The first address of the block.
    public let network: IPv4Address
    /// The prefix length, 0...32.
    public let prefixLength: Int
    /// False when the parsed text had host bits set (`10.0.0.18/18`).
    public let wasCanonical: Bool

    /// Creates a block; host bits of `address` are cleared.
    public init(_ address: IPv4Address, prefixLength: Int) {
        precondition((0...32).contains(prefixLength), "prefix length out of range")
        let mask = CIDR.mask(prefixLength)
        network = IPv4Address(address.value & mask)
        self.prefixLength = prefixLength
        wasCanonical = address.value & ~mask == 0
    }

    /// Parses `a.b.c.d/n`; a bare address is a `/32`. Returns nil for malformed text.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard let address = parts.first.flatMap({ IPv4Address($0) }) else { return nil }
        switch parts.count {
        case 1:
            self.init(address, prefixLength: 32)
        case 2:
            let lengthText = parts[1]
            guard !lengthText.isEmpty, lengthText.count <= 2, lengthText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let length = Int(lengthText), (0...32).contains(length)
            else { return nil }
            self.init(address, prefixLength: length)
        default:
            return nil
        }
    }

    /// The netmask for a prefix length.
    @inlinable
    public static func mask(_ prefixLength: Int) -> UInt32 {
        prefixLength == 0 ? 0 : UInt32.max << UInt32(32 - prefixLength)
    }

    /// The netmask of this block.
    public var mask: UInt32 { CIDR.mask(prefixLength) }

    /// The last address of the block.
    public var lastAddress: IPv4Address { IPv4Address(network.value | ~mask) }

    /// The number of addresses in the block.
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefixLength) }

    /// True when `address` is inside this block.
    @inlinable
    public func contains(_ address: IPv4Address) -> Bool {
        address.value & CIDR.mask(prefixLength) == network.value
    }

    /// True when `other` lies entirely inside this block.
    public func contains(_ other: CIDR) -> Bool {
        other.prefixLength >= prefixLength && contains(other.network)
    }

    /// True when the two blocks share at least one address.
    public func overlaps(_ other: CIDR) -> Bool {
        contains(other.network) || other.contains(network)
    }

    /// `a.b.c.d/n` with the canonical network address.
    public var description: String { "\(network)/\(prefixLength)" }

    /// Blocks are equal when network and prefix length are; how the text was written does not matter.
    public static func == (lhs: CIDR, rhs: CIDR) -> Bool { lhs.network == rhs.network && lhs.prefixLength == rhs.prefixLength }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(network)
        hasher.combine(prefixLength)
    }

    /// Every IPv4 address.
    public static let any = CIDR(IPv4Address(0), prefixLength: 0)

    /// RFC 1918 private blocks.
    public static let privateRanges: [CIDR] = [
        CIDR(IPv4Address(10, 0, 0, 0), prefixLength: 8),
        CIDR(IPv4Address(172, 16, 0, 0), prefixLength: 12),
        CIDR(IPv4Address(192, 168, 0, 0), prefixLength: 16),
    ]

    /// Link-local addresses reserved by AWS for the instance metadata service and DNS (RT-7).
    public static let awsReserved = CIDR(IPv4Address(169, 254, 168, 0), prefixLength: 22)
}

extension CIDR: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let block = CIDR(text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(text)' is not an IPv4 CIDR block; write it as address/prefix, e.g. 10.0.1.0/24")
        }
        self = block
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A longest-prefix-match table from CIDR blocks to values (RT-3).
///
/// Lookups walk the prefix lengths present in the table, longest first, and probe a hash map
/// per length: O(number of distinct prefix lengths), independent of the number of entries.
public struct PrefixTable<Value: Sendable>: Sendable {
    private var byLength: [Int: [UInt32: Value]] = [:]
    private var lengths: [Int] = []

    /// Creates an empty table.
    public init() {}

    /// Inserts or replaces the value for `block`.
    public mutating func insert(_ block: CIDR, _ value: Value) {
        if byLength[block.prefixLength] == nil {
            lengths.append(block.prefixLength)
            lengths.sort(by: >)
        }
        byLength[block.prefixLength, default: [:]][block.network.value] = value
    }

    /// The value of the longest block containing `address`, with that block.
    public func lookup(_ address: IPv4Address) -> (block: CIDR, value: Value)? {
        for length in lengths {
            let key = address.value & CIDR.mask(length)
            if let value = byLength[length]?[key] {
                return (CIDR(IPv4Address(key), prefixLength: length), value)
            }
        }
        return nil
    }

    /// True when no block was inserted.
    public var isEmpty: Bool { lengths.isEmpty }
}
