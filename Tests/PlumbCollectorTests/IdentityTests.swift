import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import PlumbCollector
import PlumbCore
import PlumbIdentity
import PlumbStore
import PlumbWire
import Prometheus
import SwiftASN1
import Testing
import X509
import _CryptoExtras

/// A signing key and certificates made for the tests (the lab makes its own with openssl).
struct IdentityAuthority: Sendable {
    let key: _RSA.Signing.PrivateKey
    let signer: InstanceIdentitySigner

    static let shared: IdentityAuthority = {
        let key = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
        return IdentityAuthority(key: key, signer: InstanceIdentitySigner(key: key))
    }()

    /// A self-signed certificate for the key, valid from `from` to `until`, as PEM.
    func certificate(from: Date = Date(timeIntervalSinceNow: -3_600), until: Date = Date(timeIntervalSinceNow: 86_400)) throws -> String {
        let name = try DistinguishedName {
            CountryName("US")
            OrganizationName("plumb tests")
            CommonName("instance identity")
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: Certificate.PublicKey(key.publicKey), notValidBefore: from,
            notValidAfter: until, issuer: name, subject: name, signatureAlgorithm: .sha256WithRSAEncryption, extensions: Certificate.Extensions {},
            issuerPrivateKey: Certificate.PrivateKey(key))
        return try certificate.serializeAsPEM().pemString
    }

    /// A proof for a document about `instance`.
    func proof(instance: String, account: String = "123456789012", region: String = "us-east-1", privateIp: String? = nil) throws
        -> InstanceIdentityProof
    {
        try signer.proof(
            for: InstanceIdentityDocument(
                accountId: account, instanceId: instance, region: region, availabilityZone: region + "a", privateIp: privateIp,
                pendingTime: "2026-11-30T08:00:00Z", instanceType: "t3.micro", imageId: "ami-0123456789abcdef0"
            ).text)
    }
}

@Suite("identity: who may register as which instance")
struct IdentityTests {
    /// The registration db's agent sends (karma.yaml: i-db, eni-db, 10.0.2.10).
    func dbRegistration(key: String = "db-key-0123456789abcdef0123456789", proof: InstanceIdentityProof? = nil) -> Registration {
        var registration = registration(
            "i-db", interfaces: [InterfaceInfo(mac: "02:00:0a:00:02:0a", interfaceId: "eni-db", privateIPv4s: ["10.0.2.10"])])
        registration.agentKey = key
        registration.instanceIdentity = proof
        return registration
    }

    func refusal(_ body: () async throws -> Void) async -> APIError? {
        do {
            try await body()
            return nil
        } catch let error as APIError {
            return error
        } catch {
            Issue.record("not an APIError: \(error)")
            return nil
        }
    }

    @Test("source address: only the claimed instance's addresses register it; X-Forwarded-For only from a trusted proxy")
    func sourceAddress() async throws {
        let harness = try await Harness.make { configuration in
            configuration.identity.checks = [.sourceAddress]
            configuration.identity.trustedProxies = [CIDR("127.0.0.1/32")!]
        }
        defer { harness.cleanup() }
        let collector = harness.collector
        // From web-1 (10.0.1.10) claiming db: refused, counted in the store for identity_conflict.
        let wrong = await refusal {
            _ = try await collector.register(
                dbRegistration(), bearer: "enroll-secret", source: RegistrationSource(peer: "127.0.0.1", forwardedFor: "10.0.1.10"), now: 2_000)
        }
        #expect(wrong?.status == 403)
        #expect(wrong?.code == "identity_refused")
        #expect(wrong?.reason == "source_address")
        #expect(wrong?.message.contains("10.0.1.10, which is not an address of i-db (10.0.2.10)") == true)
        // A client-written X-Forwarded-For in front of the proxy's own entry does not help: the proxy's entry counts.
        let spoofed = await refusal {
            _ = try await collector.register(
                dbRegistration(), bearer: "enroll-secret", source: RegistrationSource(peer: "127.0.0.1", forwardedFor: "10.0.2.10, 10.0.1.10"),
                now: 2_000)
        }
        #expect(spoofed?.reason == "source_address")
        // From an untrusted peer, its X-Forwarded-For is ignored.
        let untrusted = await refusal {
            _ = try await collector.register(
                dbRegistration(), bearer: "enroll-secret", source: RegistrationSource(peer: "10.0.1.10", forwardedFor: "10.0.2.10"), now: 2_000)
        }
        #expect(untrusted?.reason == "source_address")
        // No address at all (a trusted proxy that sent none): refused, not waved through.
        let unknown = await refusal {
            _ = try await collector.register(dbRegistration(), bearer: "enroll-secret", source: RegistrationSource(peer: "127.0.0.1"), now: 2_000)
        }
        #expect(unknown?.reason == "source_address")
        // An instance the model does not have.
        let stranger = await refusal {
            _ = try await collector.register(
                registration("i-stranger"), bearer: "enroll-secret", source: RegistrationSource(peer: "10.0.2.10"), now: 2_000)
        }
        #expect(stranger?.reason == "unknown_instance")
        // From db itself, through the proxy: registered, with the check recorded.
        let response = try await collector.register(
            dbRegistration(), bearer: "enroll-secret", source: RegistrationSource(peer: "127.0.0.1", forwardedFor: "10.0.2.10"), now: 2_000)
        #expect(response.agentId == "i-db")
        let stored = try await harness.store.agent(id: "i-db")
        #expect(stored?.verification?.checks == ["source-address"])
        #expect(stored?.verification?.sourceAddress == "10.0.2.10")
        #expect(stored?.verification?.keyHash?.count == 64)
        #expect(stored?.registration.agentKey == nil)  // only its hash is kept
        #expect(
            try await harness.store.refusals(since: 0).map(\.reason).sorted() == [
                "source_address", "source_address", "source_address", "source_address", "unknown_instance",
            ])
    }

    @Test("instance identity: a signed document for the claimed instance, account and region registers; every other claim is refused")
    func instanceIdentity() async throws {
        let authority = IdentityAuthority.shared
        let directory = NSTemporaryDirectory() + "plumb-identity-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let current = directory + "/identity.pem"
        try authority.certificate().write(toFile: current, atomically: true, encoding: .utf8)
        let expired = directory + "/expired.pem"
        try authority.certificate(from: Date(timeIntervalSinceNow: -86_400 * 30), until: Date(timeIntervalSinceNow: -86_400))
            .write(toFile: expired, atomically: true, encoding: .utf8)
        let harness = try await Harness.make { configuration in
            configuration.identity.checks = [.instanceIdentity]
            configuration.identity.certificateFile = current
            configuration.identity.accounts = ["123456789012"]
        }
        defer { harness.cleanup() }
        let collector = harness.collector
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        func attempt(_ registration: Registration, on target: Collector? = nil) async -> APIError? {
            await refusal { _ = try await (target ?? collector).register(registration, bearer: "enroll-secret", now: now) }
        }
        #expect(await attempt(dbRegistration())?.reason == "identity_missing")
        // Forged: the document altered after signing (another account), or a signature by another key.
        var forged = try authority.proof(instance: "i-db")
        forged.document = forged.document.replacingOccurrences(of: "123456789012", with: "999999999999")
        #expect(await attempt(dbRegistration(proof: forged))?.reason == "identity_signature")
        let stranger = InstanceIdentitySigner(key: try _RSA.Signing.PrivateKey(keySize: .bits2048))
        let otherKey = try stranger.proof(for: InstanceIdentityDocument(accountId: "123456789012", instanceId: "i-db", region: "us-east-1").text)
        #expect(await attempt(dbRegistration(proof: otherKey))?.reason == "identity_signature")
        #expect(await attempt(dbRegistration(proof: InstanceIdentityProof(document: "{}", signature: "not base64!")))?.reason == "identity_malformed")
        // Genuine documents that do not fit the claim or the model.
        #expect(await attempt(dbRegistration(proof: try authority.proof(instance: "i-web-1")))?.reason == "identity_mismatch")
        #expect(await attempt(dbRegistration(proof: try authority.proof(instance: "i-db", account: "210987654321")))?.reason == "wrong_account")
        #expect(await attempt(dbRegistration(proof: try authority.proof(instance: "i-db", region: "eu-west-1")))?.reason == "wrong_region")
        var unknown = registration("i-0123456789abcdef0")
        unknown.instanceIdentity = try authority.proof(instance: "i-0123456789abcdef0")
        #expect(await attempt(unknown)?.reason == "unknown_instance")
        // The right document, but the only certificate configured has expired.
        let stale = try await Harness.make(directory: directory + "/stale") { configuration in
            configuration.identity.checks = [.instanceIdentity]
            configuration.identity.certificateFile = expired
        }
        #expect(await attempt(dbRegistration(proof: try authority.proof(instance: "i-db")), on: stale.collector)?.reason == "identity_expired")
        // The right document: registered.
        let response = try await collector.register(dbRegistration(proof: try authority.proof(instance: "i-db")), bearer: "enroll-secret", now: now)
        #expect(response.agentId == "i-db")
        let stored = try await harness.store.agent(id: "i-db")
        #expect(stored?.verification?.checks == ["instance-identity"])
        #expect(stored?.verification?.accountId == "123456789012")
        #expect(stored?.registration.instanceIdentity == nil)
    }

    @Test("a live agent is never displaced: a replayed registration with another key, a second agent for the instance, a move")
    func liveAgentKeepsItsInstance() async throws {
        let harness = try await Harness.make { configuration in
            configuration.identity.checks = [.sourceAddress]
            configuration.silenceSeconds = 30
        }
        defer { harness.cleanup() }
        let collector = harness.collector
        let fromDB = RegistrationSource(peer: "10.0.2.10")
        let first = try await collector.register(
            dbRegistration(key: "key-of-the-real-agent-000000000000"), bearer: "enroll-secret", source: fromDB, now: 10_000)
        // The same registration replayed from db's address (or a second agent there) without the agent's key.
        let replay = await refusal {
            _ = try await collector.register(
                dbRegistration(key: "another-key-11111111111111111111111"), bearer: "enroll-secret", source: fromDB, now: 20_000)
        }
        #expect(replay?.reason == "instance_in_use")
        // Another agent id for the same instance.
        var second = dbRegistration(key: "another-key-11111111111111111111111")
        second.agentId = "db-again"
        #expect(
            await refusal { _ = try await collector.register(second, bearer: "enroll-secret", source: fromDB, now: 20_000) }?.reason
                == "instance_in_use")
        // The real agent's token still works, and it re-registers with it; it cannot claim another instance with it.
        #expect(try await collector.authenticateAgent(id: "i-db", bearer: first.agentToken).agentId == "i-db")
        var moved = dbRegistration(key: "key-of-the-real-agent-000000000000")
        moved.identity.instanceId = "i-web-1"
        #expect(
            await refusal { _ = try await collector.register(moved, bearer: first.agentToken, source: fromDB, now: 21_000) }?.reason
                == "instance_changed")
        let again = try await collector.register(
            dbRegistration(key: "key-of-the-real-agent-000000000000"), bearer: first.agentToken, source: fromDB, now: 22_000)
        #expect(again.agentToken == first.agentToken)
        // The real agent restarts with its key: the enrollment token registers it again at once.
        let restarted = try await collector.register(
            dbRegistration(key: "key-of-the-real-agent-000000000000"), bearer: "enroll-secret", source: fromDB, now: 23_000)
        #expect(restarted.agentId == "i-db")
        // Its reports keep it live in the store (not in the registry's cache, which holds registration times): a second
        // agent long after the registration is still refused.
        var reporting = try #require(try await harness.store.agent(id: "i-db"))
        reporting.lastSeenAtMs = 200_000
        try await harness.store.saveAgent(reporting)
        #expect(
            await refusal { _ = try await collector.register(second, bearer: "enroll-secret", source: fromDB, now: 210_000) }?.reason
                == "instance_in_use")
        // Silent for longer than silenceSeconds: a reinstalled agent (a new key) may take the instance over.
        let reinstalled = try await collector.register(
            dbRegistration(key: "a-reinstalled-agent-2222222222222222"), bearer: "enroll-secret", source: fromDB, now: 200_000 + 31_000)
        #expect(reinstalled.agentId == "i-db")
    }

    @Test("refused claims raise one identity_conflict naming the instance; the real agent goes on; the 403 says which check failed")
    func conflictAlertAndAPI() async throws {
        let registry = PrometheusCollectorRegistry()
        let harness = try await Harness.make { configuration in
            configuration.identity.checks = [.sourceAddress]
            configuration.identity.conflictSeconds = 60
        }
        defer { harness.cleanup() }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        _ = try await harness.collector.register(dbRegistration(), bearer: "enroll-secret", source: RegistrationSource(peer: "10.0.2.10"), now: now)
        let app = Application(router: buildRouter(collector: harness.collector, configuration: harness.configuration, registry: registry))
        try await app.test(.live) { client in
            // Over a real socket the peer is 127.0.0.1, which is not db's: 403 with the check in the body.
            let response = try await client.execute(
                uri: "/v1/agents/register", method: .post, headers: [.authorization: "Bearer enroll-secret", .contentType: "application/json"],
                body: ByteBuffer(bytes: try JSONEncoder().encode(dbRegistration(key: "impostor-key-33333333333333333333"))))
            #expect(response.status == .forbidden)
            let body = try JSONDecoder().decode(ErrorBody.self, from: Data(response.body.readableBytesView))
            #expect(body.error.code == "identity_refused")
            #expect(body.error.reason == "source_address")
            #expect(body.error.message.contains("127.0.0.1"))
        }
        // The refusal carries the wall clock of the request, which a loaded machine may take seconds to serve.
        let served = Int64(Date().timeIntervalSince1970 * 1000)
        let changes = try await harness.collector.evaluate(now: served + 1_000)
        let fired = changes.compactMap { change -> Alert? in if case .fired(let alert) = change { alert } else { nil } }
        #expect(fired.map(\.kind) == [.identityConflict])
        #expect(fired.first?.component == "i-db")
        #expect(fired.first?.severity == .critical)
        // The real agent is still registered with its token, and the alert resolves conflictSeconds after the last refusal.
        #expect(try await harness.store.agent(id: "i-db")?.verification?.sourceAddress == "10.0.2.10")
        let later = try await harness.collector.evaluate(now: served + 62_000)
        #expect(later.contains { if case .resolved(let alert) = $0 { alert.kind == .identityConflict } else { false } })
    }

    @Test("with both checks, a registration from the wrong address is told so first, and a verified one records both")
    func bothChecks() async throws {
        let authority = IdentityAuthority.shared
        let directory = NSTemporaryDirectory() + "plumb-identity-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try authority.certificate().write(toFile: directory + "/identity.pem", atomically: true, encoding: .utf8)
        let harness = try await Harness.make(directory: directory + "/store") { configuration in
            configuration.identity.checks = [.sourceAddress, .instanceIdentity]
            configuration.identity.certificateFile = directory + "/identity.pem"
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let impostor = await refusal {
            _ = try await harness.collector.register(
                dbRegistration(), bearer: "enroll-secret", source: RegistrationSource(peer: "10.0.1.10"), now: now)
        }
        #expect(impostor?.reason == "source_address")
        let fromDB = RegistrationSource(peer: "10.0.2.10")
        #expect(
            await refusal { _ = try await harness.collector.register(dbRegistration(), bearer: "enroll-secret", source: fromDB, now: now) }?.reason
                == "identity_missing")
        _ = try await harness.collector.register(
            dbRegistration(proof: try authority.proof(instance: "i-db")), bearer: "enroll-secret", source: fromDB, now: now)
        #expect(try await harness.store.agent(id: "i-db")?.verification?.checks == ["instance-identity", "source-address"])
    }

    @Test("auto: source-address on a non-loopback listener, instance-identity with a certificate file, nothing on loopback")
    func auto() {
        var settings = IdentitySettings()
        #expect(settings.effectiveChecks(listenHost: "127.0.0.1").isEmpty)
        #expect(settings.effectiveChecks(listenHost: "0.0.0.0") == [.sourceAddress])
        settings.certificateFile = "/etc/plumb/aws.pem"
        #expect(settings.effectiveChecks(listenHost: "10.0.9.10") == [.sourceAddress, .instanceIdentity])
        settings.checks = []
        #expect(settings.effectiveChecks(listenHost: "10.0.9.10").isEmpty)
        // X-Forwarded-For, right to left through trusted proxies only.
        let proxies = [CIDR("10.0.9.0/28")!]
        #expect(
            RegistrationSource(peer: "10.0.9.5", forwardedFor: "1.2.3.4, 10.0.2.10, 10.0.9.6").clientAddress(trusting: proxies)?.description
                == "10.0.2.10")
        #expect(RegistrationSource(peer: "::ffff:10.0.2.10").clientAddress(trusting: proxies)?.description == "10.0.2.10")
        #expect(RegistrationSource(peer: "10.0.9.5", forwardedFor: "junk").clientAddress(trusting: proxies) == nil)
    }
}

@Suite("operator tokens: named, read or admin, hashed, re-read on change")
struct OperatorTokenTests {
    @Test("a read token reads and cannot acknowledge or PUT; an admin token can; a revoked one stops working without a restart")
    func scopes() async throws {
        let directory = NSTemporaryDirectory() + "plumb-tokens-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/tokens"
        let lines = [
            "# operators", OperatorTokensFile.line(name: "grafana", scope: .read, token: "read-token"),
            OperatorTokensFile.line(name: "alice", scope: .admin, token: "admin-token"),
        ]
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try String(contentsOfFile: file, encoding: .utf8).contains("read-token") == false)
        let harness = try await Harness.make { $0.operatorTokensFile = file }
        defer { harness.cleanup() }
        let app = Application(
            router: buildRouter(collector: harness.collector, configuration: harness.configuration, registry: PrometheusCollectorRegistry()))
        try await app.test(.router) { client in
            func call(_ method: HTTPRequest.Method, _ uri: String, _ token: String, body: String? = nil) async throws -> HTTPResponse.Status {
                try await client.execute(
                    uri: uri, method: method, headers: [.authorization: "Bearer \(token)"], body: body.map { ByteBuffer(string: $0) }
                ).status
            }
            #expect(try await call(.get, "/v1/alerts", "read-token") == .ok)
            #expect(try await call(.get, "/v1/status", "read-token") == .ok)
            #expect(try await call(.post, "/v1/alerts/nope/acknowledge", "read-token") == .forbidden)
            #expect(try await call(.put, "/v1/topology", "read-token", body: "version: 1") == .forbidden)
            #expect(try await call(.post, "/v1/alerts/nope/acknowledge", "admin-token") == .notFound)
            #expect(try await call(.get, "/v1/alerts", "operator-secret") == .ok)  // the single configured token is admin
            #expect(try await call(.get, "/v1/alerts", "admin-token-not") == .forbidden)
            // Revoke grafana: the file changes, the next sync re-reads it.
            try lines.filter { !$0.hasPrefix("grafana") }.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
            try await harness.collector.sync(now: 5_000)
            #expect(try await call(.get, "/v1/alerts", "read-token") == .forbidden)
            // A malformed file keeps the tokens in force.
            try "alice admin sha256:nothex".write(toFile: file, atomically: true, encoding: .utf8)
            harness.collector.reloadTokens(force: true)
            #expect(try await call(.get, "/v1/alerts", "admin-token") == .ok)
        }
    }

    @Test("the tokens file: errors name the line")
    func parse() throws {
        #expect(throws: ConfigurationError.self) { try OperatorTokensFile.parse("a read", source: "t") }
        do {
            _ = try OperatorTokensFile.parse("\n# x\nbob superuser sha256:" + String(repeating: "a", count: 64), source: "tokens")
            Issue.record("accepted a bad scope")
        } catch {
            #expect(error.description == "tokens:3: scope 'superuser' is not read or admin")
        }
        #expect(
            try OperatorTokensFile.parse("a read sha256:" + String(repeating: "A", count: 64) + " # comment", source: "t").first?.hash
                == String(repeating: "a", count: 64))
    }
}
