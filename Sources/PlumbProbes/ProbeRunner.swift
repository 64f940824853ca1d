import CPlumbSys
import Glibc
import PlumbWire

/// Runs one probe of a plan and returns its result. A failure on the network is a result, never a thrown error.
///
/// Every run opens a new socket (or connection): a tracked connection would hide a security-group change.
public struct ProbeRunner: Sendable {
    /// The reactor the probe sockets wait on.
    public var reactor: Reactor
    /// The pool for blocking calls (libcurl, getaddrinfo).
    public var pool: BlockingPool

    /// Creates a runner over the shared reactor and pool.
    public init(reactor: Reactor = .shared, pool: BlockingPool = .shared) {
        self.reactor = reactor
        self.pool = pool
    }

    /// Runs `spec` once.
    public func run(_ spec: ProbeSpec) async -> ProbeResult {
        var result: ProbeResult
        switch spec.kind {
        case .tcp: result = await TCPProber(reactor: reactor).run(spec)
        case .udpEcho: result = await UDPEchoProber(reactor: reactor).run(spec)
        case .icmp: result = await ICMPProber(reactor: reactor).run(spec)
        case .http, .https: result = await HTTPProber(pool: pool).run(spec)
        case .dns: result = await DNSProber(reactor: reactor, pool: pool).run(spec)
        }
        result.expected = spec.expect.verdict
        let failures = (result.checkFailures ?? []) + Self.checkFailures(spec: spec, result: result)
        result.checkFailures = failures.isEmpty ? nil : failures
        return result
    }

    /// The checks of `spec.expect` that `result` fails; only meaningful when the target answered.
    static func checkFailures(spec: ProbeSpec, result: ProbeResult) -> [String] {
        guard result.outcome == .ok else { return [] }
        var failures: [String] = []
        if let expected = spec.expect.identity {
            if let identity = result.identity {
                let pairs: [(String, String?, String?)] = [
                    ("agent", expected.agentId, identity.agentId), ("instance", expected.instanceId, identity.instanceId),
                    ("interface", expected.interfaceId, identity.interfaceId), ("mac", expected.mac, identity.mac),
                ]
                for (name, want, got) in pairs {
                    guard let want else { continue }
                    // A responder without ENI ids (no IMDS, none configured) cannot confirm them; the instance can.
                    if (name == "interface" || name == "mac") && (got ?? "").isEmpty { continue }
                    if want.lowercased() != (got ?? "").lowercased() {
                        failures.append("identity: expected \(name) \(want), the responder answered as \(got ?? "(none)")")
                    }
                }
            } else {
                failures.append("identity: expected a responder identity, the reply carried none")
            }
        }
        if let expected = spec.expect.egressIP {
            if let seen = result.egressIP {
                if seen != expected { failures.append("egress IP: expected \(expected), the echo endpoint saw \(seen)") }
            } else {
                failures.append("egress IP: expected \(expected), the response carried no address")
            }
        }
        return failures
    }
}

/// Maps a socket errno to an outcome.
func outcome(forErrno code: Int32) -> ProbeOutcome {
    switch code {
    case 0: return .ok
    case ECONNREFUSED: return .refused
    case ETIMEDOUT: return .timeout
    case EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN, EACCES, EPERM: return .unreachable
    default: return .error
    }
}

/// The text of an errno.
func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// Milliseconds between two monotonic instants.
@inline(__always) func elapsedMs(_ start: UInt64, _ end: UInt64 = monotonicNanoseconds()) -> Double {
    Double(end &- start) / 1_000_000
}

/// Parses `HOST[:PORT]`.
func splitHostPort(_ text: String, defaultPort: Int) -> (host: String, port: Int)? {
    if let colon = text.lastIndex(of: ":") {
        guard let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        return (String(text[..<colon]), port)
    }
    return (text, defaultPort)
}

/// The local address of a socket.
func localAddress(of fd: Int32) -> String? {
    var address = sockaddr_in()
    guard plumb_getsockname_in(fd, &address) == 0 else { return nil }
    return IPv4Text.format(plumb_sockaddr_address(&address))
}

/// A TCP connect probe: `ok` (open), `refused`, `timeout`, `unreachable`; optionally reads a responder's identity line.
struct TCPProber {
    var reactor: Reactor

    func run(_ spec: ProbeSpec) async -> ProbeResult {
        let startedAt = wallClockMilliseconds()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(spec.timeoutMs) * 1_000_000
        var result = ProbeResult(probeId: spec.id, kind: .tcp, target: spec.target, port: spec.port, startedAtMs: startedAt, outcome: .error)
        guard let address = await resolveIPv4(spec.target, timeoutMs: spec.timeoutMs) else {
            result.outcome = .dnsFailure
            result.detail = "\(spec.target) does not resolve to an IPv4 address"
            return result
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            result.detail = "socket: \(errnoText(errno))"
            return result
        }
        defer { close(fd) }
        _ = plumb_set_linger_zero(fd)  // no TIME_WAIT per probe
        _ = plumb_set_int_option(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        var target = plumb_sockaddr_in(address, UInt16(spec.port ?? 0))
        var code = plumb_connect_in(fd, &target)
        if code == EINPROGRESS {
            switch await reactor.wait(fd, for: .writable, deadline: deadline) {
            case .ready: code = plumb_socket_error(fd)
            case .timedOut: code = ETIMEDOUT
            case .cancelled: code = ECANCELED
            }
        }
        result.timings.connectMs = elapsedMs(start)
        result.sourceAddress = localAddress(of: fd)
        result.outcome = outcome(forErrno: code)
        if result.outcome == .error { result.detail = "connect: \(errnoText(code))" }
        if result.outcome == .unreachable { result.detail = "connect: \(errnoText(code))" }
        if result.outcome == .ok && spec.readIdentity == true {
            let line = await readLine(fd, deadline: deadline, limit: 1024)
            if let line, let identity = IdentityLine.decode(line) {
                result.identity = identity
            } else {
                result.detail = line == nil ? "no identity line before the timeout" : "the peer did not send a Plumb identity line"
            }
        }
        result.timings.totalMs = elapsedMs(start)
        return result
    }

    private func readLine(_ fd: Int32, deadline: UInt64, limit: Int) async -> String? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while bytes.count < limit {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                bytes.append(contentsOf: buffer[0..<count])
                if let newline = bytes.firstIndex(of: 10) { return String(decoding: bytes[..<newline], as: UTF8.self) }
                continue
            }
            if count == 0 { break }
            let code = errno
            guard code == EAGAIN || code == EWOULDBLOCK || code == EINTR else { return nil }
            guard await reactor.wait(fd, for: .readable, deadline: deadline) == .ready else { return nil }
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }
}

/// A burst of udp-echo datagrams to a Plumb responder.
struct UDPEchoProber {
    var reactor: Reactor

    func run(_ spec: ProbeSpec) async -> ProbeResult {
        let startedAt = wallClockMilliseconds()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(spec.timeoutMs) * 1_000_000
        let burst = max(1, min(spec.burst ?? 5, 100))
        var result = ProbeResult(probeId: spec.id, kind: .udpEcho, target: spec.target, port: spec.port, startedAtMs: startedAt, outcome: .error)
        guard let address = await resolveIPv4(spec.target, timeoutMs: spec.timeoutMs) else {
            result.outcome = .dnsFailure
            result.detail = "\(spec.target) does not resolve to an IPv4 address"
            return result
        }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            result.detail = "socket: \(errnoText(errno))"
            return result
        }
        defer { close(fd) }
        var target = plumb_sockaddr_in(address, UInt16(spec.port ?? 0))
        // Connected: the kernel drops datagrams from anyone else and reports ICMP errors on this socket.
        let connected = plumb_connect_in(fd, &target)
        guard connected == 0 else {
            result.outcome = outcome(forErrno: connected)
            result.detail = "connect: \(errnoText(connected))"
            return result
        }
        result.sourceAddress = localAddress(of: fd)
        var generator = SystemRandomNumberGenerator()
        let nonce = generator.next() as UInt64
        var sentAt = [UInt64](repeating: 0, count: burst)
        var sent = 0
        var networkError: Int32 = 0
        for sequence in 0..<burst {
            let now = monotonicNanoseconds()
            let packet = EchoPacket.request(sequence: UInt16(sequence), nonce: nonce, sentAt: now)
            let code = packet.withUnsafeBytes { plumb_sendto_in(fd, $0.baseAddress, $0.count, nil) }
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
        var reordered = 0
        var highest = -1
        var rtts: [Double] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        receiving: while received < sent {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                let code = errno
                if code == EAGAIN || code == EWOULDBLOCK || code == EINTR {
                    switch await reactor.wait(fd, for: .readable, deadline: deadline) {
                    case .ready: continue receiving
                    case .timedOut, .cancelled: break receiving
                    }
                }
                // ECONNREFUSED: ICMP port unreachable. Without any reply so far nothing listens there: stop waiting.
                networkError = code
                if received == 0 { break receiving }
                continue receiving
            }
            let arrived = monotonicNanoseconds()
            buffer.withUnsafeBytes { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                guard let header = EchoPacket.parseHeader(bytes), header.type == 2, header.nonce == nonce,
                    Int(header.sequence) < burst, sentAt[Int(header.sequence)] != 0
                else { return }  // not ours: dropped
                let sequence = Int(header.sequence)
                if seen[sequence] {
                    duplicates += 1
                    return
                }
                seen[sequence] = true
                received += 1
                if sequence < highest { reordered += 1 }
                highest = max(highest, sequence)
                rtts.append(elapsedMs(sentAt[sequence], arrived))
                if result.identity == nil { result.identity = EchoPacket.parseIdentity(bytes) }
            }
        }
        result.burst = BurstStatistics(
            sent: sent, received: received, duplicates: duplicates, reordered: reordered, rttMinMs: rtts.min(),
            rttAvgMs: rtts.isEmpty ? nil : rtts.reduce(0, +) / Double(rtts.count), rttMaxMs: rtts.max())
        result.timings.totalMs = elapsedMs(start)
        if received > 0 {
            result.outcome = .ok
        } else if networkError != 0 {
            result.outcome = outcome(forErrno: networkError)
            if result.outcome == .ok { result.outcome = .error }
            result.detail = errnoText(networkError)
        } else {
            result.outcome = .timeout
        }
        return result
    }
}
