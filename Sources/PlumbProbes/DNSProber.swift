import CPlumbSys
import Glibc
import PlumbWire

/// A DNS lookup of an A record: through the system resolver (getaddrinfo on the blocking pool), or as one UDP query
/// to a given server.
struct DNSProber {
    var reactor: Reactor
    var pool: BlockingPool

    func run(_ spec: ProbeSpec) async -> ProbeResult {
        let startedAt = wallClockMilliseconds()
        let start = monotonicNanoseconds()
        var result = ProbeResult(probeId: spec.id, kind: .dns, target: spec.target, startedAtMs: startedAt, outcome: .error)
        if let server = spec.server {
            await query(spec, server: server, start: start, into: &result)
        } else {
            let name = spec.target
            let addresses = await pool.run { systemResolve(name) }
            result.answers = addresses.map(IPv4Text.format)
            result.outcome = addresses.isEmpty ? .dnsFailure : .ok
            if addresses.isEmpty { result.detail = "the system resolver has no IPv4 address for \(name)" }
        }
        result.timings.totalMs = elapsedMs(start)
        result.timings.dnsMs = result.timings.totalMs
        return result
    }

    private func query(_ spec: ProbeSpec, server: String, start: UInt64, into result: inout ProbeResult) async {
        let deadline = start + UInt64(spec.timeoutMs) * 1_000_000
        guard let (host, port) = splitHostPort(server, defaultPort: 53), let address = IPv4Text.parse(host) else {
            result.detail = "server '\(server)' is not ADDRESS[:PORT]"
            return
        }
        guard let question = DNSMessage.query(id: 0, name: spec.target) else {
            result.detail = "'\(spec.target)' is not a valid DNS name"
            return
        }
        var generator = SystemRandomNumberGenerator()
        let id = UInt16(truncatingIfNeeded: generator.next() as UInt64)
        var packet = question
        packet[0] = UInt8(id >> 8)
        packet[1] = UInt8(id & 0xff)
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            result.detail = "socket: \(errnoText(errno))"
            return
        }
        defer { close(fd) }
        var target = plumb_sockaddr_in(address, UInt16(port))
        var code = plumb_connect_in(fd, &target)
        if code == 0 { code = packet.withUnsafeBytes { plumb_sendto_in(fd, $0.baseAddress, $0.count, nil) } }
        guard code == 0 else {
            result.outcome = outcome(forErrno: code)
            result.detail = errnoText(code)
            return
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK || error == EINTR {
                    guard await reactor.wait(fd, for: .readable, deadline: deadline) == .ready else {
                        result.outcome = .timeout
                        return
                    }
                    continue
                }
                result.outcome = outcome(forErrno: error)
                result.detail = errnoText(error)
                return
            }
            guard let answer = DNSMessage.parseAnswer(Array(buffer[0..<count])), answer.id == id else { continue }
            result.answers = answer.addresses.map(IPv4Text.format)
            switch answer.responseCode {
            case 0:
                result.outcome = answer.addresses.isEmpty ? .dnsFailure : .ok
                if answer.addresses.isEmpty { result.detail = "\(server) has no A record for \(spec.target)" }
            case 3:
                result.outcome = .dnsFailure
                result.detail = "\(server) answered NXDOMAIN for \(spec.target)"
            default:
                result.outcome = .dnsFailure
                result.detail = "\(server) answered with response code \(answer.responseCode)"
            }
            return
        }
    }
}

/// The few DNS messages the agent needs: an A query, and the A records of an answer (RFC 1035).
public enum DNSMessage {
    /// A recursive query for the A record of `name`, with id `id`; nil for a name that cannot be encoded.
    public static func query(id: UInt16, name: String) -> [UInt8]? {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        guard let encoded = encodeName(name) else { return nil }
        bytes += encoded
        bytes += [0, 1, 0, 1]  // type A, class IN
        return bytes
    }

    /// An answer: id, response code and the A records' addresses (host order).
    public struct Answer: Equatable, Sendable {
        public var id: UInt16
        public var responseCode: Int
        public var addresses: [UInt32]
    }

    /// Parses a response; nil when it is not one or is truncated.
    public static func parseAnswer(_ bytes: [UInt8]) -> Answer? {
        guard bytes.count >= 12, bytes[2] & 0x80 != 0 else { return nil }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let code = Int(bytes[3] & 0x0f)
        let questions = Int(bytes[4]) << 8 | Int(bytes[5])
        let answers = Int(bytes[6]) << 8 | Int(bytes[7])
        var offset = 12
        for _ in 0..<questions {
            guard let end = skipName(bytes, offset), end + 4 <= bytes.count else { return nil }
            offset = end + 4
        }
        var addresses: [UInt32] = []
        for _ in 0..<answers {
            guard let end = skipName(bytes, offset), end + 10 <= bytes.count else { return nil }
            let type = Int(bytes[end]) << 8 | Int(bytes[end + 1])
            let length = Int(bytes[end + 8]) << 8 | Int(bytes[end + 9])
            let data = end + 10
            guard data + length <= bytes.count else { return nil }
            if type == 1 && length == 4 {
                addresses.append(UInt32(bytes[data]) << 24 | UInt32(bytes[data + 1]) << 16 | UInt32(bytes[data + 2]) << 8 | UInt32(bytes[data + 3]))
            }
            offset = data + length
        }
        return Answer(id: id, responseCode: code, addresses: addresses)
    }

    /// Encodes a name as labels; nil for an empty label or one longer than 63 bytes.
    public static func encodeName(_ name: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard !trimmed.isEmpty else { return nil }
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            let utf8 = Array(label.utf8)
            guard !utf8.isEmpty, utf8.count <= 63 else { return nil }
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        bytes.append(0)
        return bytes.count <= 255 ? bytes : nil
    }

    /// The offset after a (possibly compressed) name.
    static func skipName(_ bytes: [UInt8], _ start: Int) -> Int? {
        var offset = start
        while offset < bytes.count {
            let length = Int(bytes[offset])
            if length == 0 { return offset + 1 }
            if length & 0xc0 == 0xc0 { return offset + 2 <= bytes.count ? offset + 2 : nil }
            offset += 1 + length
        }
        return nil
    }
}
