import Foundation
import Logging
import PlumbProbes
import PlumbWire
import Synchronization

/// Why IMDS could not be used.
public enum IMDSError: Error, Equatable, CustomStringConvertible {
    /// Nothing answers at the endpoint (not on EC2, or blocked).
    case unavailable(String)
    /// IMDS answered 403: it is turned off for this instance, or the request was refused.
    case forbidden(String)
    /// A token could not be obtained (the PUT was refused), or a fresh token was rejected too.
    case token(String)
    /// An unexpected status.
    case status(Int, String)

    public var description: String {
        switch self {
        case .unavailable(let detail): return "IMDS is not reachable: \(detail)"
        case .forbidden(let path): return "IMDS refused \(path) with 403 (metadata access is off, or the request was not allowed)"
        case .token(let detail): return "IMDS token: \(detail)"
        case .status(let status, let path): return "IMDS answered \(status) for \(path)"
        }
    }
}

/// An IMDSv2 client: one session token reused until shortly before it expires, refreshed on 401.
public final class IMDSClient: Sendable {
    /// The endpoint, `http://169.254.169.254` on EC2.
    public let endpoint: String
    /// Seconds a token lives (1…21600).
    public let tokenTTLSeconds: Int
    private struct Token {
        var value: String
        var expiresAt: UInt64
    }
    private let token = Mutex<Token?>(nil)
    private let clock: @Sendable () -> UInt64

    /// A client for `endpoint`; `clock` (monotonic nanoseconds) decides when a token nears its expiry.
    public init(endpoint: String, tokenTTLSeconds: Int = 21_600, clock: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.tokenTTLSeconds = max(1, min(tokenTTLSeconds, 21_600))
        self.clock = clock
    }

    /// The item at `path` below `/latest/meta-data/`; nil when IMDS answers 404.
    public func get(_ path: String) async throws(IMDSError) -> String? {
        try await item("/latest/meta-data/" + path)
    }

    /// The item at `path` below `/latest/dynamic/` (`instance-identity/document`), exactly as served; nil for 404.
    public func dynamic(_ path: String) async throws(IMDSError) -> String? {
        try await item("/latest/dynamic/" + path)
    }

    /// The instance identity document and its signature, for the registration; nil when IMDS has none (not EC2).
    public func instanceIdentity() async throws(IMDSError) -> InstanceIdentityProof? {
        guard let document = try await dynamic("instance-identity/document"), let signature = try await dynamic("instance-identity/signature")
        else { return nil }
        return InstanceIdentityProof(document: document, signature: signature)
    }

    private func item(_ path: String) async throws(IMDSError) -> String? {
        for attempt in 0..<2 {
            let current = try await sessionToken()
            let response = await Curl.perform(
                HTTPRequest(
                    url: endpoint + path, headers: [("X-aws-ec2-metadata-token", current)], timeoutMs: 2_000,
                    freshConnection: false), pool: .control)
            if let failure = response.failure { throw .unavailable(response.errorMessage ?? "\(failure)") }
            switch response.status {
            case 200: return response.text
            case 404: return nil
            case 401:
                // Expired or revoked: forget it and ask once more with a new token.
                token.withLock { $0 = nil }
                if attempt == 1 { throw .token("a fresh token was rejected with 401 for \(path)") }
            case 403: throw .forbidden(path)
            default: throw .status(response.status, path)
            }
        }
        throw .token("unreachable")
    }

    /// A listing (`…/`) as its lines; empty for 404.
    public func list(_ path: String) async throws(IMDSError) -> [String] {
        guard let text = try await get(path) else { return [] }
        return text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    private func sessionToken() async throws(IMDSError) -> String {
        let now = clock()
        let refreshMargin = UInt64(min(60, tokenTTLSeconds / 2)) * 1_000_000_000
        if let cached = token.withLock({ $0 }), cached.expiresAt > now + refreshMargin { return cached.value }
        let response = await Curl.perform(
            HTTPRequest(
                method: "PUT", url: "\(endpoint)/latest/api/token", headers: [("X-aws-ec2-metadata-token-ttl-seconds", String(tokenTTLSeconds))],
                body: [], timeoutMs: 2_000, freshConnection: false), pool: .control)
        if let failure = response.failure { throw .unavailable(response.errorMessage ?? "\(failure)") }
        switch response.status {
        case 200:
            let value = response.text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !value.isEmpty else { throw .token("IMDS returned an empty token") }
            token.withLock { $0 = Token(value: value, expiresAt: now + UInt64(tokenTTLSeconds) * 1_000_000_000) }
            return value
        case 403: throw .forbidden("/latest/api/token")
        default: throw .token("PUT /latest/api/token answered \(response.status)")
        }
    }
}

/// Finds out who and where the agent is: IMDSv2 when present, else the kernel's interfaces plus configuration.
public struct Discoverer: Sendable {
    /// IMDS, when enabled.
    public var imds: IMDSClient?
    /// What configuration says.
    public var overrides: AgentConfiguration.IdentityOverrides
    /// Logger.
    public var logger: Logger

    /// Creates a discoverer.
    public init(imds: IMDSClient?, overrides: AgentConfiguration.IdentityOverrides, logger: Logger) {
        self.imds = imds
        self.overrides = overrides
        self.logger = logger
    }

    /// One discovery pass; never fails. IMDS errors fall back to local discovery, except after an earlier pass read
    /// IMDS (`previous`): then a passing IMDS failure keeps the previous identity instead of flapping to the local one.
    public func discover(previous: AgentIdentity? = nil) async -> AgentIdentity {
        if let imds {
            do {
                return try await fromIMDS(imds)
            } catch {
                if let previous, previous.source == .imds {
                    logger.warning("IMDS failed; keeping the identity it gave last time", metadata: ["reason": "\(error)"])
                    return previous
                }
                logger.info("falling back to local interfaces", metadata: ["reason": "\(error)"])
            }
        }
        return local()
    }

    func fromIMDS(_ imds: IMDSClient) async throws(IMDSError) -> AgentIdentity {
        guard let instanceId = try await imds.get("instance-id") else { throw .status(404, "instance-id") }
        let zone = try await imds.get("placement/availability-zone")
        let region = try await imds.get("placement/region")
        let kernel = LocalInterfaces.list()
        var interfaces: [InterfaceInfo] = []
        for entry in try await imds.list("network/interfaces/macs/") {
            let mac = entry.hasSuffix("/") ? String(entry.dropLast()) : entry
            let base = "network/interfaces/macs/\(mac)/"
            interfaces.append(
                InterfaceInfo(
                    mac: mac.lowercased(), interfaceId: try await imds.get(base + "interface-id"),
                    name: kernel.first { $0.mac == mac.lowercased() }?.name,
                    deviceNumber: try await imds.get(base + "device-number").flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) },
                    subnetId: try await imds.get(base + "subnet-id"), vpcId: try await imds.get(base + "vpc-id"),
                    privateIPv4s: try await imds.list(base + "local-ipv4s"), publicIPv4s: try await imds.list(base + "public-ipv4s"),
                    securityGroupIds: try await imds.list(base + "security-group-ids")))
        }
        return AgentIdentity(
            instanceId: overrides.instanceId ?? instanceId, hostname: Self.hostname(), zone: overrides.zone ?? zone,
            region: overrides.region ?? region, interfaces: Self.sorted(interfaces), source: .imds)
    }

    func local() -> AgentIdentity {
        let configured = Dictionary((overrides.interfaces ?? []).map { ($0.mac.lowercased(), $0) }, uniquingKeysWith: { first, _ in first })
        let interfaces = LocalInterfaces.list().filter { !$0.isLoopback && $0.isUp && $0.mac != nil && !$0.addresses.isEmpty }.map { kernel in
            let mac = kernel.mac ?? ""
            let override = configured[mac]
            return InterfaceInfo(
                mac: mac, interfaceId: override?.interfaceId, name: kernel.name, deviceNumber: override?.deviceNumber, subnetId: override?.subnetId,
                vpcId: override?.vpcId, privateIPv4s: kernel.addresses.map { IPv4Text.format($0.address) }, publicIPv4s: override?.publicIPv4s ?? [],
                securityGroupIds: override?.securityGroupIds ?? [])
        }
        let hostname = Self.hostname()
        return AgentIdentity(
            instanceId: overrides.instanceId ?? hostname ?? "unknown", hostname: hostname, zone: overrides.zone, region: overrides.region,
            interfaces: Self.sorted(interfaces), source: .local)
    }

    static func sorted(_ interfaces: [InterfaceInfo]) -> [InterfaceInfo] {
        interfaces.sorted { ($0.deviceNumber ?? Int.max, $0.mac) < ($1.deviceNumber ?? Int.max, $1.mac) }
    }

    static func hostname() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension AgentIdentity {
    /// What changed between `self` (before) and `other` (now), one sentence each: ENIs that appeared or left,
    /// addresses that moved. Empty when nothing did.
    public func changes(to other: AgentIdentity) -> [String] {
        var changes: [String] = []
        if instanceId != other.instanceId { changes.append("instance id changed from \(instanceId) to \(other.instanceId)") }
        let before = Dictionary(interfaces.map { ($0.mac, $0) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(other.interfaces.map { ($0.mac, $0) }, uniquingKeysWith: { first, _ in first })
        for (mac, interface) in after.sorted(by: { $0.key < $1.key }) where before[mac] == nil {
            changes.append("interface \(interface.interfaceId ?? mac) (\(mac)) appeared with \(interface.privateIPv4s.joined(separator: ", "))")
        }
        for (mac, interface) in before.sorted(by: { $0.key < $1.key }) where after[mac] == nil {
            changes.append("interface \(interface.interfaceId ?? mac) (\(mac)) left")
        }
        for (mac, now) in after.sorted(by: { $0.key < $1.key }) {
            guard let then = before[mac], then != now else { continue }
            if then.privateIPv4s != now.privateIPv4s {
                changes.append("interface \(now.interfaceId ?? mac) addresses changed from \(then.privateIPv4s) to \(now.privateIPv4s)")
            } else if then.publicIPv4s != now.publicIPv4s {
                changes.append("interface \(now.interfaceId ?? mac) public addresses changed from \(then.publicIPv4s) to \(now.publicIPv4s)")
            } else {
                changes.append("interface \(now.interfaceId ?? mac) changed")
            }
        }
        return changes
    }
}
