import PlumbWire

/// The udp-echo datagrams between a prober and a responder.
///
/// Request (`size` bytes, default 512): magic `PLB1`, type 1, flags, sequence (u16), nonce (8 bytes), the prober's
/// send time (u64 ns), zero padding. Reply: the same header with type 2 and the echoed sequence, nonce and time, then
/// the responder's identity as length-prefixed strings (agent id, instance id, MAC, address, interface name, ENI id).
/// A responder never answers with more bytes than it received, so it cannot be used to amplify traffic.
public enum EchoPacket {
    /// Bytes every request carries (the padding leaves room for the identity in the reply).
    public static let requestSize = 512
    static let headerSize = 24
    static let magic: [UInt8] = [0x50, 0x4C, 0x42, 0x31]  // "PLB1"

    /// A parsed request or reply header.
    public struct Header: Equatable, Sendable {
        /// 1 request, 2 reply.
        public var type: UInt8
        /// Position in the burst.
        public var sequence: UInt16
        /// The prober's random nonce for this run.
        public var nonce: UInt64
        /// The prober's monotonic send time.
        public var sentAt: UInt64

        /// Creates a header.
        public init(type: UInt8, sequence: UInt16, nonce: UInt64, sentAt: UInt64) {
            self.type = type
            self.sequence = sequence
            self.nonce = nonce
            self.sentAt = sentAt
        }
    }

    /// Encodes a request.
    public static func request(sequence: UInt16, nonce: UInt64, sentAt: UInt64, size: Int = requestSize) -> [UInt8] {
        var bytes = header(type: 1, sequence: sequence, nonce: nonce, sentAt: sentAt)
        bytes.append(contentsOf: repeatElement(0, count: max(0, size - bytes.count)))
        return bytes
    }

    /// Encodes a reply to `request`; nil when the reply would be larger than the request.
    public static func reply(to request: Header, identity: ResponderIdentity, requestLength: Int) -> [UInt8]? {
        var bytes = header(type: 2, sequence: request.sequence, nonce: request.nonce, sentAt: request.sentAt)
        for field in [identity.agentId, identity.instanceId, identity.mac, identity.address, identity.interface ?? "", identity.interfaceId ?? ""] {
            let utf8 = Array(field.utf8.prefix(255))
            bytes.append(UInt8(utf8.count))
            bytes.append(contentsOf: utf8)
        }
        return bytes.count <= requestLength ? bytes : nil
    }

    /// Parses a header; nil for anything that is not a Plumb datagram.
    public static func parseHeader(_ bytes: UnsafeRawBufferPointer) -> Header? {
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic else { return nil }
        let type = bytes[4]
        guard type == 1 || type == 2 else { return nil }
        return Header(
            type: type, sequence: UInt16(bytes[6]) << 8 | UInt16(bytes[7]), nonce: readUInt64(bytes, at: 8),
            sentAt: readUInt64(bytes, at: 16))
    }

    /// Parses the identity of a reply; nil when the fields are truncated.
    public static func parseIdentity(_ bytes: UnsafeRawBufferPointer) -> ResponderIdentity? {
        var offset = headerSize
        var fields: [String] = []
        for _ in 0..<6 {
            guard offset < bytes.count else { return nil }
            let length = Int(bytes[offset])
            offset += 1
            guard offset + length <= bytes.count else { return nil }
            fields.append(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length]), as: UTF8.self))
            offset += length
        }
        return ResponderIdentity(
            agentId: fields[0], instanceId: fields[1], mac: fields[2], address: fields[3], interface: fields[4].isEmpty ? nil : fields[4],
            interfaceId: fields[5].isEmpty ? nil : fields[5])
    }

    private static func header(type: UInt8, sequence: UInt16, nonce: UInt64, sentAt: UInt64) -> [UInt8] {
        var bytes = magic
        bytes.reserveCapacity(requestSize)
        bytes.append(type)
        bytes.append(0)
        bytes.append(UInt8(sequence >> 8))
        bytes.append(UInt8(sequence & 0xff))
        appendUInt64(&bytes, nonce)
        appendUInt64(&bytes, sentAt)
        return bytes
    }

    private static func appendUInt64(_ bytes: inout [UInt8], _ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(value >> UInt64(shift) & 0xff)) }
    }

    private static func readUInt64(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in offset..<offset + 8 { value = value << 8 | UInt64(bytes[index]) }
        return value
    }
}

/// The identity line a TCP responder writes on every accepted connection:
/// `plumb/1 agent=A instance=I mac=M address=X interface=N eni=E` and a newline; values are percent-encoded.
public enum IdentityLine {
    /// Encodes an identity.
    public static func encode(_ identity: ResponderIdentity) -> String {
        var line = "plumb/1"
        let fields: [(String, String?)] = [
            ("agent", identity.agentId), ("instance", identity.instanceId), ("mac", identity.mac), ("address", identity.address),
            ("interface", identity.interface), ("eni", identity.interfaceId),
        ]
        for (key, value) in fields {
            guard let value, !value.isEmpty else { continue }
            line += " \(key)=\(escape(value))"
        }
        return line + "\n"
    }

    /// Decodes a line; nil when it is not a Plumb identity line.
    public static func decode(_ line: String) -> ResponderIdentity? {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.first == "plumb/1" else { return nil }
        var values: [String: String] = [:]
        for part in parts.dropFirst() {
            guard let equals = part.firstIndex(of: "=") else { continue }
            values[String(part[..<equals])] = unescape(String(part[part.index(after: equals)...]))
        }
        guard let agent = values["agent"], let instance = values["instance"], let address = values["address"] else { return nil }
        return ResponderIdentity(
            agentId: agent, instanceId: instance, mac: values["mac"] ?? "", address: address, interface: values["interface"],
            interfaceId: values["eni"])
    }

    private static func escape(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            if byte <= 0x20 || byte == UInt8(ascii: "%") || byte == UInt8(ascii: "=") || byte >= 0x7f {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    private static func unescape(_ value: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(value.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2, let decoded = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(decoded)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
