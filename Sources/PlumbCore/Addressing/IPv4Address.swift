/// An IPv4 address, stored as a host-order 32-bit integer.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The address as a host-order integer (`10.0.0.1` is `0x0A00_0001`).
    public var value: UInt32

    /// Creates an address from its host-order integer value.
    public init(_ value: UInt32) { self.value = value }

    /// Creates an address from four octets, most significant first.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad notation (`10.0.1.20`); returns nil for anything else.
    ///
    /// Leading zeros are rejected (`010.0.0.1`), as they are ambiguous (octal in some parsers).
    public init?(_ text: some StringProtocol) {
        var octets: UInt32 = 0
        var count = 0
        var current: UInt32 = 0
        var digits = 0
        var leadingZero = false
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if digits == 1 && leadingZero { return nil }
                if digits == 0 && byte == UInt8(ascii: "0") { leadingZero = true }
                current = current * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                if current > 255 || digits > 3 { return nil }
            case UInt8(ascii: "."):
                if digits == 0 || count == 3 { return nil }
                octets = octets << 8 | current
                count += 1
                current = 0
                digits = 0
                leadingZero = false
            default:
                return nil
            }
        }
        if digits == 0 || count != 3 { return nil }
        value = octets << 8 | current
    }

    /// Dotted-quad text.
    public var description: String {
        // Hot in explanations: build the at most 15 bytes directly instead of interpolating four integers.
        String(unsafeUninitializedCapacity: 15) { buffer in
            var count = 0
            for shift in [24, 16, 8, 0] {
                let octet = Int(value >> UInt32(shift) & 0xFF)
                if octet >= 100 {
                    buffer[count] = UInt8(ascii: "0") + UInt8(octet / 100)
                    count += 1
                }
                if octet >= 10 {
                    buffer[count] = UInt8(ascii: "0") + UInt8(octet / 10 % 10)
                    count += 1
                }
                buffer[count] = UInt8(ascii: "0") + UInt8(octet % 10)
                count += 1
                if shift != 0 {
                    buffer[count] = UInt8(ascii: ".")
                    count += 1
                }
            }
            return count
        }
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }

    /// True for addresses that are not routed on the public internet (RFC 1918, loopback,
    /// link-local, carrier-grade NAT, and the IETF documentation/benchmark blocks are *not* included:
    /// those stand in for public addresses in examples).
    public var isPrivate: Bool {
        CIDR.privateRanges.contains { $0.contains(self) }
    }
}

extension IPv4Address: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let address = IPv4Address(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not an IPv4 address; write it as four numbers 0-255, e.g. 10.0.1.20")
        }
        self = address
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
