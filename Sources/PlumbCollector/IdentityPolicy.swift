import Foundation
import PlumbCore
import PlumbIdentity
import PlumbStore
import PlumbWire

/// How the collector checks that a registering agent runs on the instance it claims (`identity:` in the
/// configuration; docs/security.md).
public struct IdentitySettings: Sendable {
    /// A check.
    public enum Check: String, Sendable, CaseIterable, Codable {
        /// The registration comes from one of the private addresses the model (or the instance's verified identity
        /// document) gives the claimed instance.
        case sourceAddress = "source-address"
        /// The registration carries the instance identity document and its signature, which verify against the
        /// configured certificate(s), and name the claimed instance, the model's account and region.
        case instanceIdentity = "instance-identity"
    }

    /// The checks; nil is `auto`: `source-address` unless the collector listens on loopback only (the demo, tests:
    /// every connection comes from 127.0.0.1), `instance-identity` when a certificate file is configured.
    public var checks: [Check]?
    /// Proxies and load balancers whose `X-Forwarded-For` is believed (nobody else's is).
    public var trustedProxies: [CIDR] = []
    /// PEM file with the certificate(s) whose RSA key signs identity documents (AWS's RSA certificate for the region).
    public var certificateFile: String?
    /// Accounts an identity document may name, besides the model's `vpc.account`.
    public var accounts: [String] = []
    /// Seconds an `identity_conflict` stays firing after the last refused claim for its instance.
    public var conflictSeconds = 300.0

    /// Defaults (`auto`).
    public init() {}

    /// The checks in force for a collector listening on `host`.
    public func effectiveChecks(listenHost: String) -> [Check] {
        if let checks { return checks }
        var result: [Check] = []
        if !Self.isLoopback(host: listenHost) { result.append(.sourceAddress) }
        if certificateFile != nil { result.append(.instanceIdentity) }
        return result
    }

    static func isLoopback(host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        guard let address = IPv4Address(host) else { return false }
        return CIDR("127.0.0.0/8")!.contains(address)
    }
}

/// Where a registration came from: the connection's peer and the `X-Forwarded-For` it carried.
public struct RegistrationSource: Sendable, Hashable {
    /// The TCP peer's address (nil when unknown, e.g. in router tests).
    public var peer: String?
    /// The `X-Forwarded-For` header, if any.
    public var forwardedFor: String?

    /// Creates a source.
    public init(peer: String?, forwardedFor: String? = nil) {
        self.peer = peer
        self.forwardedFor = forwardedFor
    }

    /// The client's address: the peer, or, while the address at hand is a trusted proxy, the entry before it in
    /// `X-Forwarded-For` (right to left, so a client cannot choose what a trusted proxy appended). Nil when the
    /// address cannot be told (no peer, a malformed entry, a trusted proxy that sent no header).
    public func clientAddress(trusting proxies: [CIDR]) -> IPv4Address? {
        guard let peer, var current = Self.address(peer) else { return nil }
        var hops = (forwardedFor ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        while proxies.contains(where: { $0.contains(current) }) {
            guard let last = hops.popLast(), let next = Self.address(last) else { return nil }
            current = next
        }
        return current
    }

    /// An IPv4 address, also written as an IPv4-mapped IPv6 one.
    static func address(_ text: String) -> IPv4Address? {
        let trimmed = text.hasPrefix("::ffff:") ? String(text.dropFirst(7)) : text
        return IPv4Address(trimmed)
    }
}

/// A registration whose claim does not hold: answered 403, counted, recorded for an `identity_conflict`.
struct IdentityRefused: Error, Sendable {
    /// The `reason` label.
    var reason: Reason
    /// The registration field at fault.
    var field: String?
    /// What did not hold and what to do.
    var message: String

    enum Reason: String, Sendable, CaseIterable {
        case sourceAddress = "source_address"
        case unknownInstance = "unknown_instance"
        case identityMissing = "identity_missing"
        case identitySignature = "identity_signature"
        case identityExpired = "identity_expired"
        case identityMalformed = "identity_malformed"
        case identityMismatch = "identity_mismatch"
        case wrongAccount = "wrong_account"
        case wrongRegion = "wrong_region"
        case instanceInUse = "instance_in_use"
        case instanceChanged = "instance_changed"
    }

    var apiError: APIError {
        var error = APIError(403, "identity_refused", message, field: field)
        error.reason = reason.rawValue
        return error
    }
}

/// The checks, ready to run: the certificate(s) read, the proxies parsed.
struct IdentityVerification: Sendable {
    let checks: [IdentitySettings.Check]
    let settings: IdentitySettings
    let verifier: InstanceIdentityVerifier?
    /// Set when the settings could not be used (a certificate file gone since the configuration was checked): every
    /// registration with the enrollment token is refused, rather than let through unchecked.
    let broken: String?

    /// Verification that refuses every claim, because of `problem`.
    init(refusingAll problem: String, settings: IdentitySettings) {
        self.settings = settings
        checks = []
        verifier = nil
        broken = problem
    }

    init(settings: IdentitySettings, listenHost: String) throws(ConfigurationProblem) {
        self.settings = settings
        broken = nil
        checks = settings.effectiveChecks(listenHost: listenHost)
        if checks.contains(.instanceIdentity) {
            guard let file = settings.certificateFile else {
                throw ConfigurationProblem(
                    "identity.verify has instance-identity but identity.certificateFile is not set; point it at the AWS RSA certificate for the region"
                )
            }
            verifier = try InstanceIdentityVerifier.load(path: file)
        } else {
            verifier = nil
        }
    }

    /// Checks a registration made with the enrollment token; returns how it was verified.
    func verify(
        _ registration: Registration, source: RegistrationSource, network: Network?, previous: AgentRecord?, now: Int64
    ) throws(IdentityRefused) -> AgentVerification {
        let claimed = registration.identity.instanceId
        if let broken {
            throw IdentityRefused(reason: .identitySignature, field: nil, message: "the collector cannot verify identities now: \(broken)")
        }
        var verification = AgentVerification(checks: [], verifiedAtMs: now)
        // The document first, but its failure is reported after the source address's: an impostor elsewhere is told
        // (and counted) for the address it came from.
        let verified: Result<InstanceIdentityDocument, IdentityRefused>? =
            checks.contains(.instanceIdentity) ? Result { () throws(IdentityRefused) in try document(registration, network: network, now: now) } : nil
        let documentAddress = (try? verified?.get())?.privateIp.flatMap(IPv4Address.init)
        if checks.contains(.sourceAddress) {
            guard let address = source.clientAddress(trusting: settings.trustedProxies) else {
                throw IdentityRefused(
                    reason: .sourceAddress, field: nil,
                    message:
                        "cannot tell the address this registration comes from (a trusted proxy sent no usable X-Forwarded-For); check identity.trustedProxies"
                )
            }
            var allowed: Set<IPv4Address> = []
            if let documentAddress { allowed.insert(documentAddress) }
            if let previous = previous?.verification?.sourceAddress.flatMap(IPv4Address.init) { allowed.insert(previous) }
            var placed = false
            if let network {
                let identity = registration.identity
                if let index = network.instanceIndex(
                    instanceId: claimed, interfaceIds: identity.interfaces.compactMap(\.interfaceId),
                    addresses: identity.interfaces.flatMap(\.privateIPv4s).compactMap(IPv4Address.init))
                {
                    placed = true
                    for interface in network.instances[index].interfaces { allowed.formUnion(network.interfaces[interface].privateIps) }
                }
            }
            guard placed || !allowed.isEmpty else {
                throw IdentityRefused(
                    reason: .unknownInstance, field: "identity.instanceId",
                    message:
                        "the model has no instance \(claimed) (nor its ENIs or addresses), so its address cannot be checked; add it to the topology")
            }
            guard allowed.contains(address) else {
                let expected = allowed.map { $0.description }.sorted().joined(separator: ", ")
                throw IdentityRefused(
                    reason: .sourceAddress, field: nil,
                    message: "this registration comes from \(address.description), which is not an address of \(claimed) (\(expected))")
            }
            verification.checks.append(IdentitySettings.Check.sourceAddress.rawValue)
            verification.sourceAddress = address.description
        }
        if let verified {
            let document = try verified.get()
            verification.checks.insert(IdentitySettings.Check.instanceIdentity.rawValue, at: 0)
            verification.accountId = document.accountId
            verification.region = document.region
            verification.privateIp = document.privateIp
            verification.pendingTime = document.pendingTime
        }
        return verification
    }

    /// The verified identity document of a registration, checked against the claim and the model.
    private func document(_ registration: Registration, network: Network?, now: Int64) throws(IdentityRefused) -> InstanceIdentityDocument {
        let claimed = registration.identity.instanceId
        guard let verifier else { throw IdentityRefused(reason: .identitySignature, field: nil, message: "no identity certificate is configured") }
        guard let proof = registration.instanceIdentity else {
            throw IdentityRefused(
                reason: .identityMissing, field: "instanceIdentity",
                message: "this collector requires the instance identity document: the agent must run on EC2 with IMDS enabled (imds.enabled)")
        }
        let document: InstanceIdentityDocument
        do {
            document = try verifier.verify(proof, now: Date(timeIntervalSince1970: Double(now) / 1000))
        } catch {
            let reason: IdentityRefused.Reason
            switch error {
            case .certificateNotValid: reason = .identityExpired
            case .malformedDocument, .malformedSignature: reason = .identityMalformed
            case .badSignature: reason = .identitySignature
            }
            throw IdentityRefused(reason: reason, field: "instanceIdentity.signature", message: "instance identity: \(error)")
        }
        guard document.instanceId == claimed else {
            throw IdentityRefused(
                reason: .identityMismatch, field: "identity.instanceId",
                message: "the identity document is for \(document.instanceId), the registration claims \(claimed)")
        }
        var accounts = settings.accounts
        if let account = network?.topology.vpc.account { accounts.append(account) }
        if !accounts.isEmpty, !accounts.contains(document.accountId) {
            throw IdentityRefused(
                reason: .wrongAccount, field: "instanceIdentity.document",
                message: "the identity document is from account \(document.accountId), not \(accounts.joined(separator: " or "))")
        }
        if let network {
            guard let index = network.instances.firstIndex(where: { $0.id == document.instanceId }) else {
                throw IdentityRefused(
                    reason: .unknownInstance, field: "identity.instanceId",
                    message: "the model has no instance \(document.instanceId); add it to the topology before its agent registers")
            }
            if let region = Self.region(of: index, in: network), region != document.region {
                throw IdentityRefused(
                    reason: .wrongRegion, field: "instanceIdentity.document",
                    message: "the identity document is from region \(document.region); the model's VPC is in \(region)")
            }
        }
        return document
    }

    /// The model's region for an instance: `vpc.region`, else its primary subnet's zone when the zone is a
    /// region-style name (`us-east-1a` → `us-east-1`).
    static func region(of instance: Int, in network: Network) -> String? {
        if let region = network.topology.vpc.region { return region }
        guard let first = network.instances[instance].interfaces.first, let zone = network.subnets[network.interfaces[first].subnet].zone,
            let last = zone.last, last.isLetter, zone.dropLast().last?.isNumber == true
        else { return nil }
        return String(zone.dropLast())
    }
}
