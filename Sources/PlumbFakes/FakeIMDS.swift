import PlumbProbes
import Synchronization

/// A stand-in for the EC2 instance metadata service (IMDSv2) that enforces the token rules agents must follow:
/// `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` in 1…21600 (else 400), rejected with
/// `X-Forwarded-For` or on a versioned path (403); every `GET` needs a live `X-aws-ec2-metadata-token` (else 401);
/// unknown items are 404; listings end in `/`; `disabled` answers 403 to everything. The instance identity document and
/// its signature (`/latest/dynamic/instance-identity/…`) are served when the instance carries them.
public final class FakeIMDS: Sendable {
    /// One ENI as IMDS describes it.
    public struct Interface: Sendable, Equatable {
        public var mac: String
        public var interfaceId: String
        public var deviceNumber: Int
        public var subnetId: String
        public var subnetCIDR: String
        public var vpcId: String
        public var privateIPv4s: [String]
        public var publicIPv4s: [String]
        public var securityGroupIds: [String]

        /// Creates an interface.
        public init(
            mac: String, interfaceId: String, deviceNumber: Int, subnetId: String, subnetCIDR: String = "10.0.0.0/24", vpcId: String = "vpc-1",
            privateIPv4s: [String], publicIPv4s: [String] = [], securityGroupIds: [String] = []
        ) {
            self.mac = mac
            self.interfaceId = interfaceId
            self.deviceNumber = deviceNumber
            self.subnetId = subnetId
            self.subnetCIDR = subnetCIDR
            self.vpcId = vpcId
            self.privateIPv4s = privateIPv4s
            self.publicIPv4s = publicIPv4s
            self.securityGroupIds = securityGroupIds
        }
    }

    /// The instance the fake describes.
    public struct Instance: Sendable, Equatable {
        public var instanceId: String
        public var zone: String
        public var region: String
        public var interfaces: [Interface]
        /// `/latest/dynamic/instance-identity/document` and `…/signature`, when the fake serves them (404 otherwise).
        public var identityDocument: String?
        public var identitySignature: String?

        /// Creates an instance.
        public init(
            instanceId: String, zone: String = "us-east-1a", region: String = "us-east-1", interfaces: [Interface], identityDocument: String? = nil,
            identitySignature: String? = nil
        ) {
            self.instanceId = instanceId
            self.zone = zone
            self.region = region
            self.interfaces = interfaces
            self.identityDocument = identityDocument
            self.identitySignature = identitySignature
        }
    }

    private struct State {
        var instance: Instance
        var tokens: [String: UInt64] = [:]  // token → expiry (monotonic ns)
        var disabled = false
        var tokenRequests = 0
        var rejected: [Int: Int] = [:]
    }

    private final class Shared: Sendable {
        let state: Mutex<State>
        init(_ state: State) { self.state = Mutex(state) }
    }

    private let shared: Shared
    private let server: MiniHTTPServer

    /// Serves `instance` on `address:port`.
    public init(instance: Instance, address: String = "127.0.0.1", port: Int = 0) throws {
        let shared = Shared(State(instance: instance))
        self.shared = shared
        server = try MiniHTTPServer(address: address, port: port) { request in FakeIMDS.answer(request, shared: shared) }
    }

    /// The endpoint, `http://ADDRESS:PORT`.
    public var endpoint: String { server.url }

    /// Replaces what the fake describes (an ENI attached, detached or moved).
    public func update(_ instance: Instance) { shared.state.withLock { $0.instance = instance } }

    /// Forgets every token, as if they had expired: the next GET with an old token gets 401.
    public func revokeTokens() { shared.state.withLock { $0.tokens = [:] } }

    /// Turns the whole service off (403) or on.
    public func setDisabled(_ disabled: Bool) { shared.state.withLock { $0.disabled = disabled } }

    /// How many tokens were handed out.
    public var tokenRequests: Int { shared.state.withLock { $0.tokenRequests } }

    /// How many requests were refused, by status.
    public var rejections: [Int: Int] { shared.state.withLock { $0.rejected } }

    /// Stops serving.
    public func stop() { server.stop() }

    private static func answer(_ request: ServerRequest, shared: Shared) -> ServerResponse {
        let now = monotonicNanoseconds()
        return shared.state.withLock { state in
            func refuse(_ status: Int, _ text: String) -> ServerResponse {
                state.rejected[status, default: 0] += 1
                return .text(text, status: status)
            }
            if state.disabled { return refuse(403, "Forbidden") }
            if request.method == "PUT" {
                guard request.path == "/latest/api/token" else { return refuse(403, "Forbidden") }
                if request.headers["x-forwarded-for"] != nil { return refuse(403, "Forbidden") }
                guard let ttlText = request.headers["x-aws-ec2-metadata-token-ttl-seconds"], let ttl = Int(ttlText), (1...21600).contains(ttl) else {
                    return refuse(400, "Bad Request")
                }
                var generator = SystemRandomNumberGenerator()
                let token = (0..<4).map { _ in String(generator.next() as UInt64, radix: 36) }.joined()
                state.tokens[token] = now + UInt64(ttl) * 1_000_000_000
                state.tokenRequests += 1
                return .text(token, headers: [("X-aws-ec2-metadata-token-ttl-seconds", ttlText)])
            }
            guard request.method == "GET" || request.method == "HEAD" else { return refuse(405, "Method Not Allowed") }
            guard let token = request.headers["x-aws-ec2-metadata-token"], let expiry = state.tokens[token], expiry > now else {
                return refuse(401, "Unauthorized")
            }
            switch request.path {
            case "/latest/dynamic/instance-identity/document":
                return state.instance.identityDocument.map { .text($0) } ?? refuse(404, "Not Found")
            case "/latest/dynamic/instance-identity/signature":
                return state.instance.identitySignature.map { .text($0) } ?? refuse(404, "Not Found")
            default: break
            }
            let prefix = "/latest/meta-data/"
            guard request.path.hasPrefix(prefix) else { return refuse(404, "Not Found") }
            let path = String(request.path.dropFirst(prefix.count))
            guard let text = tree(state.instance)[path] else { return refuse(404, "Not Found") }
            return .text(text)
        }
    }

    private static func tree(_ instance: Instance) -> [String: String] {
        var items: [String: String] = [
            "": "instance-id\nlocal-ipv4\nmac\nnetwork/\nplacement/\n",
            "instance-id": instance.instanceId,
            "placement/": "availability-zone\nregion\n",
            "placement/availability-zone": instance.zone,
            "placement/region": instance.region,
            "network/": "interfaces/\n",
            "network/interfaces/": "macs/\n",
            "network/interfaces/macs/": instance.interfaces.map { "\($0.mac)/\n" }.joined(),
        ]
        if let primary = instance.interfaces.first(where: { $0.deviceNumber == 0 }) {
            items["mac"] = primary.mac
            items["local-ipv4"] = primary.privateIPv4s.first ?? ""
            if let publicIP = primary.publicIPv4s.first {
                items["public-ipv4"] = publicIP
                items[""]! += "public-ipv4\n"
            }
        }
        for interface in instance.interfaces {
            let base = "network/interfaces/macs/\(interface.mac)/"
            var listing = [
                "device-number", "interface-id", "local-ipv4s", "mac", "security-group-ids", "subnet-id", "subnet-ipv4-cidr-block", "vpc-id",
            ]
            items[base + "device-number"] = String(interface.deviceNumber)
            items[base + "interface-id"] = interface.interfaceId
            items[base + "local-ipv4s"] = interface.privateIPv4s.joined(separator: "\n")
            items[base + "mac"] = interface.mac
            items[base + "security-group-ids"] = interface.securityGroupIds.joined(separator: "\n")
            items[base + "subnet-id"] = interface.subnetId
            items[base + "subnet-ipv4-cidr-block"] = interface.subnetCIDR
            items[base + "vpc-id"] = interface.vpcId
            if !interface.publicIPv4s.isEmpty {
                items[base + "public-ipv4s"] = interface.publicIPv4s.joined(separator: "\n")
                listing.append("public-ipv4s")
            }
            items[base] = listing.sorted().map { $0 + "\n" }.joined()
        }
        return items
    }
}

/// The egress-echo endpoint: answers every request with the caller's source address as the body, as checkip-style
/// services do; `?format=json` answers `{"ip": "…"}`.
public enum EgressEchoService {
    /// The response for `request`.
    public static func answer(_ request: ServerRequest) -> ServerResponse {
        if request.path.contains("format=json") { return .json("{\"ip\": \"\(request.peerAddress)\"}") }
        return .text(request.peerAddress + "\n")
    }
}
