import CPlumbSys
import Glibc
import PlumbWire

/// ICMP echo: an unprivileged datagram socket where `net.ipv4.ping_group_range` allows the process's group, a raw
/// socket with CAP_NET_RAW otherwise, and `unsupported` when neither is possible.
struct ICMPProber {
    var reactor: Reactor

    private enum Method: String {
        case datagram
        case raw
    }

    func run(_ spec: ProbeSpec) async -> ProbeResult {
        let startedAt = wallClockMilliseconds()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(spec.timeoutMs) * 1_000_000
        let burst = max(1, min(spec.burst ?? 3, 100))
        var result = ProbeResult(probeId: spec.id, kind: .icmp, target: spec.target, startedAtMs: startedAt, outcome: .error)
        guard let address = await resolveIPv4(spec.target, timeoutMs: spec.timeoutMs) else {
            result.outcome = .dnsFailure
            result.detail = "\(spec.target) does not resolve to an IPv4 address"
            return result
        }
        let flags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        var method = Method.datagram
        var fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | flags, Int32(IPPROTO_ICMP))
        if fd < 0 {
            let datagramError = errno
            method = .raw
            fd = socket(AF_INET, Int32(SOCK_RAW.rawValue) | flags, Int32(IPPROTO_ICMP))
            if fd < 0 {
                result.outcome = .unsupported
                result.detail =
                    "ICMP is not available to this process: the datagram socket failed (\(errnoText(datagramError)); "
                    + "net.ipv4.ping_group_range does not include its group) and the raw socket failed (\(errnoText(errno)); "
                    + "it needs CAP_NET_RAW)"
                return result
            }
        }
        defer { close(fd) }
        result.method = method.rawValue
        var target = plumb_sockaddr_in(address, 0)
        if method == .datagram {
            let code = plumb_connect_in(fd, &target)
            if code != 0 {
                result.outcome = outcome(forErrno: code)
                result.detail = "connect: \(errnoText(code))"
                return result
            }
        }
        var generator = SystemRandomNumberGenerator()
        let nonce = generator.next() as UInt64
        let identifier = UInt16(truncatingIfNeeded: generator.next() as UInt64)
        var sentAt = [UInt64](repeating: 0, count: burst)
        var sent = 0
        var networkError: Int32 = 0
        for sequence in 0..<burst {
            let now = monotonicNanoseconds()
            let packet = Self.echoRequest(identifier: identifier, sequence: UInt16(sequence), nonce: nonce)
            let code = packet.withUnsafeBytes { bytes in
                guard method == .raw else { return plumb_sendto_in(fd, bytes.baseAddress, bytes.count, nil) }
                return withUnsafePointer(to: &target) { plumb_sendto_in(fd, bytes.baseAddress, bytes.count, $0) }
            }
            if code == 0 {
                sentAt[sequence] = now
                sent += 1
            } else {
                networkError = code
            }
        }
        var seen = [Bool](repeating: false, count: burst)
        var received = 0
        var duplicates = 0
        var rtts: [Double] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        receiving: while received < sent {
            var from = sockaddr_in()
            let count = buffer.withUnsafeMutableBytes { plumb_recvfrom_in(fd, $0.baseAddress, $0.count, &from) }
            if count < 0 {
                let code = errno
                if code == EAGAIN || code == EWOULDBLOCK {
                    switch await reactor.wait(fd, for: .readable, deadline: deadline) {
                    case .ready: continue receiving
                    case .timedOut, .cancelled: break receiving
                    }
                }
                networkError = code
                if received == 0 { break receiving }
                continue receiving
            }
            let arrived = monotonicNanoseconds()
            if method == .raw && plumb_sockaddr_address(&from) != address { continue }
            var offset = 0
            if method == .raw {
                guard count >= 20 else { continue }
                offset = Int(buffer[0] & 0x0f) * 4  // the raw socket hands over the IP header too
            }
            guard count - offset >= 24, buffer[offset] == 0 else { continue }  // type 0: echo reply
            if method == .raw && (UInt16(buffer[offset + 4]) << 8 | UInt16(buffer[offset + 5])) != identifier { continue }
            let sequence = Int(UInt16(buffer[offset + 6]) << 8 | UInt16(buffer[offset + 7]))
            var echoedNonce: UInt64 = 0
            for index in offset + 8..<offset + 16 { echoedNonce = echoedNonce << 8 | UInt64(buffer[index]) }
            guard echoedNonce == nonce, sequence < burst, sentAt[sequence] != 0 else { continue }
            if seen[sequence] {
                duplicates += 1
                continue
            }
            seen[sequence] = true
            received += 1
            rtts.append(elapsedMs(sentAt[sequence], arrived))
        }
        result.burst = BurstStatistics(
            sent: sent, received: received, duplicates: duplicates, rttMinMs: rtts.min(),
            rttAvgMs: rtts.isEmpty ? nil : rtts.reduce(0, +) / Double(rtts.count), rttMaxMs: rtts.max())
        result.timings.totalMs = elapsedMs(start)
        if received > 0 {
            result.outcome = .ok
        } else if networkError != 0 {
            result.outcome = outcome(forErrno: networkError)
            if result.outcome == .ok || result.outcome == .refused { result.outcome = .unreachable }
            result.detail = errnoText(networkError)
        } else {
            result.outcome = .timeout
        }
        return result
    }

    /// An echo request: type 8, code 0, checksum, identifier, sequence, then the nonce and zero padding (56 bytes of
    /// payload, as ping sends).
    static func echoRequest(identifier: UInt16, sequence: UInt16, nonce: UInt64) -> [UInt8] {
        var packet: [UInt8] = [8, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        for shift in stride(from: 56, through: 0, by: -8) { packet.append(UInt8(nonce >> UInt64(shift) & 0xff)) }
        packet.append(contentsOf: repeatElement(0, count: 48))
        let checksum = packet.withUnsafeBytes { plumb_inet_checksum($0.baseAddress, $0.count) }
        packet[2] = UInt8(checksum >> 8)
        packet[3] = UInt8(checksum & 0xff)
        return packet
    }
}

/// Whether this process can send ICMP echo, and how.
public enum ICMPSupport {
    /// `datagram`, `raw` or nil.
    public static func method() -> String? {
        let flags = Int32(SOCK_CLOEXEC.rawValue)
        var fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | flags, Int32(IPPROTO_ICMP))
        if fd >= 0 {
            close(fd)
            return "datagram"
        }
        fd = socket(AF_INET, Int32(SOCK_RAW.rawValue) | flags, Int32(IPPROTO_ICMP))
        if fd >= 0 {
            close(fd)
            return "raw"
        }
        return nil
    }
}
