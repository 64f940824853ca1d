import CPlumbSys
import Glibc
import PlumbWire
import Synchronization

/// Who this responder says it is; the agent updates it when discovery changes.
public struct ResponderSelf: Sendable, Equatable {
    /// The agent's id.
    public var agentId: String
    /// The instance's id.
    public var instanceId: String
    /// ENI ids by MAC (lowercase), from discovery.
    public var interfaceIds: [String: String]

    /// Creates a self description.
    public init(agentId: String, instanceId: String, interfaceIds: [String: String] = [:]) {
        self.agentId = agentId
        self.instanceId = instanceId
        self.interfaceIds = interfaceIds
    }
}

/// Errors starting the responder.
public enum ResponderError: Error, CustomStringConvertible {
    /// A socket could not be opened or bound.
    case bind(address: String, port: Int, protocolName: String, reason: String)

    public var description: String {
        switch self {
        case .bind(let address, let port, let protocolName, let reason):
            return "the responder cannot listen on \(protocolName) \(address):\(port): \(reason); choose another port with --responder-port"
        }
    }
}

/// The agent's responder: UDP echo and a TCP listener on one port (default 7471). Every answer carries the identity
/// of the responder and the MAC and address the probe arrived on.
///
/// Runs on two dedicated threads with blocking sockets; `stop()` closes them. Malformed datagrams are ignored, replies
/// never exceed the request's size, and token buckets cap answers per second: one for all, and one per source address
/// (a tenth of the total, at least 50 a second, bursts of 100) that is spent first, so a flood from one address uses up
/// its own budget and the planned probes of the other peers are still answered. (Inside a VPC the source address of a
/// packet cannot be forged: EC2 drops what an instance sends from an address that is not its own, unless its
/// source/destination check is off, as on a NAT instance.)
public final class Responder: Sendable {
    /// The port both sockets listen on (the bound port when 0 was asked for).
    public let port: Int
    /// The address both sockets are bound to.
    public let address: String
    private let udp: Int32
    private let tcp: Int32
    private let identity: Mutex<ResponderSelf>
    private let interfaces = InterfaceCache()
    private let limiter: Mutex<TokenBucket>
    private let perSource: Mutex<SourceBudgets>
    private let stopped = Atomic<Bool>(false)
    private let counters = Mutex(Counters())

    /// What the responder has done.
    public struct Counters: Sendable, Equatable {
        /// Datagrams answered.
        public var udpReplies = 0
        /// Connections answered.
        public var tcpReplies = 0
        /// Datagrams that were not Plumb requests.
        public var malformed = 0
        /// Requests not answered because of the rate limit.
        public var rateLimited = 0
    }

    /// Binds UDP and TCP on `address:port` (port 0 picks a free port, the same for both) and starts answering.
    public init(address: String = "0.0.0.0", port: Int = 7471, identity: ResponderSelf, maxRepliesPerSecond: Double = 2_000) throws {
        guard let host = IPv4Text.parse(address) else {
            throw ResponderError.bind(address: address, port: port, protocolName: "udp", reason: "not an IPv4 address")
        }
        let flags = Int32(SOCK_CLOEXEC.rawValue)
        var bound: (Int32, Int32, Int)?
        var lastError = ""
        // With port 0, the TCP port the kernel picks may be taken for UDP: try a few times.
        for _ in 0..<(port == 0 ? 20 : 1) {
            let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | flags, 0)
            _ = plumb_set_int_option(tcp, SOL_SOCKET, SO_REUSEADDR, 1)
            var socketAddress = plumb_sockaddr_in(host, UInt16(port))
            var code = plumb_bind_in(tcp, &socketAddress)
            if code == 0 && listen(tcp, 128) != 0 { code = errno }
            guard code == 0 else {
                close(tcp)
                throw ResponderError.bind(address: address, port: port, protocolName: "tcp", reason: errnoText(code))
            }
            var local = sockaddr_in()
            _ = plumb_getsockname_in(tcp, &local)
            let chosen = Int(plumb_sockaddr_port(&local))
            let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | flags, 0)
            _ = plumb_enable_pktinfo(udp)
            // Room for bursts (and for the planned probes in a flood) while the thread is not running: 1 MiB, or what
            // net.core.rmem_max allows.
            _ = plumb_set_int_option(udp, SOL_SOCKET, SO_RCVBUF, 1 << 20)
            var udpAddress = plumb_sockaddr_in(host, UInt16(chosen))
            let udpCode = plumb_bind_in(udp, &udpAddress)
            if udpCode == 0 {
                bound = (udp, tcp, chosen)
                break
            }
            lastError = errnoText(udpCode)
            close(udp)
            close(tcp)
        }
        guard let (udp, tcp, chosen) = bound else {
            throw ResponderError.bind(address: address, port: port, protocolName: "udp", reason: lastError)
        }
        self.udp = udp
        self.tcp = tcp
        self.port = chosen
        self.address = address
        self.identity = Mutex(identity)
        self.limiter = Mutex(TokenBucket(rate: maxRepliesPerSecond, burst: max(10, maxRepliesPerSecond / 10)))
        self.perSource = Mutex(SourceBudgets(rate: max(50, maxRepliesPerSecond / 10), burst: 100))
        OSThread(name: "plumb-resp-udp") { [self] in self.serveUDP() }.start()
        OSThread(name: "plumb-resp-tcp") { [self] in self.serveTCP() }.start()
    }

    /// Replaces the identity the responder answers with.
    public func update(_ identity: ResponderSelf) { self.identity.withLock { $0 = identity } }

    /// What the responder has done so far.
    public var statistics: Counters { counters.withLock { $0 } }

    /// Stops answering and closes both sockets.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(udp, Int32(SHUT_RDWR))
        shutdown(tcp, Int32(SHUT_RDWR))
    }

    deinit {
        close(udp)
        close(tcp)
    }

    /// Faults for tests: replies to drop or duplicate, by the request's sequence number.
    public struct Faults: Sendable {
        /// Sequence numbers whose replies are not sent.
        public var dropSequences: Set<UInt16> = []
        /// Sequence numbers whose replies are sent twice.
        public var duplicateSequences: Set<UInt16> = []

        /// No faults.
        public init(dropSequences: Set<UInt16> = [], duplicateSequences: Set<UInt16> = []) {
            self.dropSequences = dropSequences
            self.duplicateSequences = duplicateSequences
        }
    }

    private let faults = Mutex(Faults())

    /// Injects faults (tests only: simulated loss and duplicates on a real socket).
    public func inject(_ faults: Faults) { self.faults.withLock { $0 = faults } }

    private func describe(localAddress: UInt32, interfaceIndex: Int) -> ResponderIdentity {
        let me = identity.withLock { $0 }
        var interface = interfaceIndex > 0 ? interfaces.interface(index: interfaceIndex) : nil
        if interface == nil { interface = interfaces.interface(address: localAddress) }
        let mac = interface?.mac ?? ""
        return ResponderIdentity(
            agentId: me.agentId, instanceId: me.instanceId, mac: mac, address: IPv4Text.format(localAddress), interface: interface?.name,
            interfaceId: me.interfaceIds[mac])
    }

    private func allow(source: UInt32) -> Bool {
        let now = monotonicNanoseconds()
        let allowed = perSource.withLock { $0.take(source: source, now: now) } && limiter.withLock { $0.take(now: now) }
        if !allowed { counters.withLock { $0.rateLimited += 1 } }
        return allowed
    }

    private func serveUDP() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while !stopped.load(ordering: .acquiring) {
            var from = sockaddr_in()
            var local = in_addr()
            var interfaceIndex: Int32 = 0
            let count = buffer.withUnsafeMutableBytes { plumb_recv_pktinfo(udp, $0.baseAddress, $0.count, &from, &local, &interfaceIndex) }
            if count < 0 {
                if stopped.load(ordering: .acquiring) { return }
                continue
            }
            if count == 0 && stopped.load(ordering: .acquiring) { return }
            let header = buffer.withUnsafeBytes { EchoPacket.parseHeader(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            guard let header, header.type == 1 else {
                counters.withLock { $0.malformed += 1 }
                continue
            }
            guard allow(source: plumb_sockaddr_address(&from)) else { continue }
            let fault = faults.withLock { $0 }
            if fault.dropSequences.contains(header.sequence) { continue }
            let localHost = UInt32(bigEndian: local.s_addr)
            let identity = describe(localAddress: localHost, interfaceIndex: Int(interfaceIndex))
            guard let reply = EchoPacket.reply(to: header, identity: identity, requestLength: count) else {
                counters.withLock { $0.malformed += 1 }  // too short to answer without amplifying
                continue
            }
            let copies = fault.duplicateSequences.contains(header.sequence) ? 2 : 1
            for _ in 0..<copies {
                _ = reply.withUnsafeBytes { plumb_send_from(udp, $0.baseAddress, $0.count, &from, local, interfaceIndex) }
            }
            counters.withLock { $0.udpReplies += 1 }
        }
    }

    private func serveTCP() {
        while !stopped.load(ordering: .acquiring) {
            var from = sockaddr_in()
            let connection = plumb_accept_in(tcp, &from)
            if connection < 0 {
                if stopped.load(ordering: .acquiring) { return }
                let code = errno
                if code == EMFILE || code == ENFILE { usleep(10_000) }  // out of descriptors: back off, don't spin
                continue
            }
            defer { close(connection) }
            guard allow(source: plumb_sockaddr_address(&from)) else { continue }
            var local = sockaddr_in()
            _ = plumb_getsockname_in(connection, &local)
            let identity = describe(localAddress: plumb_sockaddr_address(&local), interfaceIndex: 0)
            let line = Array(IdentityLine.encode(identity).utf8)
            _ = line.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            counters.withLock { $0.tcpReplies += 1 }
        }
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
struct TokenBucket: Sendable {
    var rate: Double
    var burst: Double
    var tokens: Double
    var updatedAt: UInt64 = 0

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
    }

    mutating func take(now: UInt64) -> Bool {
        if updatedAt != 0 {
            tokens = min(burst, tokens + Double(now &- updatedAt) / 1e9 * rate)
        }
        updatedAt = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// A token bucket per source address, for the sources seen lately (at most 4,096: past that, the ones whose buckets
/// are full again are forgotten, and if none is, every one is).
struct SourceBudgets: Sendable {
    var rate: Double
    var burst: Double
    var buckets: [UInt32: TokenBucket] = [:]
    static let maxSources = 4_096

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
    }

    mutating func take(source: UInt32, now: UInt64) -> Bool {
        if buckets[source] == nil, buckets.count >= Self.maxSources {
            buckets = buckets.filter { $0.value.tokens + Double(now &- $0.value.updatedAt) / 1e9 * rate < burst }
            if buckets.count >= Self.maxSources { buckets = [:] }
        }
        return buckets[source, default: TokenBucket(rate: rate, burst: burst)].take(now: now)
    }
}
