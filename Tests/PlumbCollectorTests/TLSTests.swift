import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PlumbCollector
import PlumbProbes
import Prometheus
import ServiceLifecycle
import SwiftASN1
import Testing
import X509

/// The collector's listener on TLS, with CAs made here, answering the real libcurl client.
@Suite struct TLSTests {
    @Test func aCertificateFromTheCAThatTheClientTrustsIsServed() async throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let ca = try TestCA(name: "Plumb test CA")
        try files.write(ca.issue(commonName: "collector", sans: [.ipAddress(127, 0, 0, 1)]), as: "server")
        try files.write(ca, as: "ca")
        try await withCollector(files.tls("server")) { server in
            let response = await server.get(caFile: files.path("ca.pem"))
            #expect(response.failure == nil, "\(response.errorMessage ?? "")")
            #expect(response.status == 200)
            #expect(response.tlsMs > 0)
        }
    }

    @Test func plainHTTPToTheTLSListenerGetsNoAnswer() async throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let ca = try TestCA(name: "Plumb test CA")
        try files.write(ca.issue(commonName: "collector", sans: [.ipAddress(127, 0, 0, 1)]), as: "server")
        try await withCollector(files.tls("server")) { server in
            let response = await Curl.perform(HTTPRequest(url: "http://127.0.0.1:\(server.port)/healthz", timeoutMs: 5_000))
            #expect(response.status != 200)
        }
    }

    @Test func anExpiredServerCertificateIsRefused() async throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let ca = try TestCA(name: "Plumb test CA")
        let now = Date()
        try files.write(
            ca.issue(commonName: "collector", sans: [.ipAddress(127, 0, 0, 1)], notBefore: now - 7200, notAfter: now - 3600), as: "server")
        try files.write(ca, as: "ca")
        try await withCollector(files.tls("server")) { server in
            let response = await server.get(caFile: files.path("ca.pem"))
            #expect(response.failure == .tls)
            #expect(response.status == 0)
            #expect(response.errorMessage?.contains("expired") == true, "\(response.errorMessage ?? "")")
        }
    }

    @Test func aCertificateForAnotherHostIsRefused() async throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let ca = try TestCA(name: "Plumb test CA")
        try files.write(ca.issue(commonName: "other.example", sans: [.dns("other.example"), .ipAddress(127, 0, 0, 9)]), as: "server")
        try files.write(ca, as: "ca")
        try await withCollector(files.tls("server")) { server in
            let response = await server.get(caFile: files.path("ca.pem"))
            #expect(response.failure == .tls)
            #expect(response.status == 0)
        }
    }

    @Test func aCertificateFromAnotherCAIsRefused() async throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let ca = try TestCA(name: "Plumb test CA")
        let stranger = try TestCA(name: "Someone else's CA")
        try files.write(ca.issue(commonName: "collector", sans: [.ipAddress(127, 0, 0, 1)]), as: "server")
        try files.write(stranger, as: "stranger")
        try await withCollector(files.tls("server")) { server in
            let response = await server.get(caFile: files.path("stranger.pem"))
            #expect(response.failure == .tls)
            #expect(response.status == 0)
        }
    }

    @Test func withAClientCAEveryClientMustPresentACertificateSignedByIt() async throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let ca = try TestCA(name: "Plumb test CA")
        let agents = try TestCA(name: "Plumb agents CA")
        let stranger = try TestCA(name: "Someone else's CA")
        try files.write(ca, as: "ca")
        try files.write(agents, as: "agents-ca")
        try files.write(ca.issue(commonName: "collector", sans: [.ipAddress(127, 0, 0, 1)]), as: "server")
        try files.write(agents.issue(commonName: "agent-web-1", sans: [.dns("agent-web-1")]), as: "agent")
        try files.write(stranger.issue(commonName: "agent-web-1", sans: [.dns("agent-web-1")]), as: "forged")
        var tls = files.tls("server")
        tls.clientCAFile = files.path("agents-ca.pem")
        try await withCollector(tls) { server in
            let without = await server.get(caFile: files.path("ca.pem"))
            #expect(without.failure != nil)
            #expect(without.status == 0, "no client certificate: \(without.status)")

            let forged = await server.get(caFile: files.path("ca.pem"), client: (files.path("forged.pem"), files.path("forged-key.pem")))
            #expect(forged.failure != nil)
            #expect(forged.status == 0, "a client certificate from another CA: \(forged.status)")

            let with = await server.get(caFile: files.path("ca.pem"), client: (files.path("agent.pem"), files.path("agent-key.pem")))
            #expect(with.failure == nil, "\(with.errorMessage ?? "")")
            #expect(with.status == 200)
        }
    }

    @Test func aReloadServesTheNewCertificateToNewConnectionsAndKeepsTheOpenOnes() async throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let first = try TestCA(name: "Plumb test CA 1")
        let second = try TestCA(name: "Plumb test CA 2")
        try files.write(first, as: "ca1")
        try files.write(second, as: "ca2")
        try files.write(first.issue(commonName: "collector-1", sans: [.ipAddress(127, 0, 0, 1)]), as: "server")
        try await withCollector(files.tls("server")) { server in
            #expect(await server.get(caFile: files.path("ca1.pem")).status == 200)
            try await KeepAliveConnection.with(port: server.port, caFile: files.path("ca1.pem")) { open in
                #expect(try await open.get("/healthz") == 200)

                try files.write(second.issue(commonName: "collector-2", sans: [.ipAddress(127, 0, 0, 1)]), as: "server")
                await server.reloader.reload()

                let withSecond = await server.get(caFile: files.path("ca2.pem"))
                #expect(withSecond.status == 200, "\(withSecond.errorMessage ?? "")")
                let withFirst = await server.get(caFile: files.path("ca1.pem"))
                #expect(withFirst.failure == .tls)
                #expect(try await open.get("/healthz") == 200, "the connection opened before the reload still answers")
            }

            // A broken key file: the reload fails and the certificate in use stays.
            try TestCA(name: "unrelated").key.pemRepresentation.write(toFile: files.path("server-key.pem"), atomically: true, encoding: .utf8)
            await server.reloader.reload()
            #expect(await server.get(caFile: files.path("ca2.pem")).status == 200)

            let metrics = server.registry.emitToString()
            #expect(metrics.contains(#"plumb_tls_reloads_total{result="ok"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"plumb_tls_reloads_total{result="failed"} 1"#), "\(metrics)")
        }
    }

    @Test func aKeyThatDoesNotMatchTheCertificateStopsTheStartWithAClearError() async throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let ca = try TestCA(name: "Plumb test CA")
        try files.write(ca.issue(commonName: "collector", sans: [.ipAddress(127, 0, 0, 1)]), as: "server")
        try P256.Signing.PrivateKey().pemRepresentation.write(toFile: files.path("server-key.pem"), atomically: true, encoding: .utf8)
        let error = await #expect(throws: ServerTLS.Invalid.self) { try await withCollector(files.tls("server")) { _ in } }
        #expect(
            error?.description.contains("does not match the certificate in \(files.path("server.pem"))") == true, "\(error.map { "\($0)" } ?? "")")
    }

    @Test func anUnreadableCertificateFileIsNamed() async throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let error = await #expect(throws: ServerTLS.Invalid.self) { try await withCollector(files.tls("missing")) { _ in } }
        #expect(
            error?.description.contains("tls.certificateFile \(files.path("missing.pem")): cannot read it") == true, "\(error.map { "\($0)" } ?? "")")
    }

    @Test func theConfigurationFileAndEnvironmentSetTheTLSFiles() throws {
        let files = try TestPKI()
        defer { files.cleanup() }
        let path = files.path("collector.yaml")
        try "tls:\n  certificateFile: /etc/plumb/server.pem\n  keyFile: /etc/plumb/server-key.pem\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        var configuration = try CollectorConfiguration.load(path: path)
        #expect(configuration.tls == TLSFiles(certificateFile: "/etc/plumb/server.pem", keyFile: "/etc/plumb/server-key.pem"))
        try configuration.apply(environment: ["PLUMB_TLS_CLIENT_CA": "/etc/plumb/agents-ca.pem"])
        #expect(configuration.tls?.clientCAFile == "/etc/plumb/agents-ca.pem")
        #expect(configuration.tls?.keyFile == "/etc/plumb/server-key.pem")

        try "tls:\n  certificateFile: /etc/plumb/server.pem\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: CollectorConfiguration.Invalid.self) { try CollectorConfiguration.load(path: path) }
    }
}

// MARK: - A collector on TLS

/// A running collector: its port, its reloader and its metrics.
struct RunningCollector {
    let port: Int
    let reloader: CollectorReloader
    let registry: PrometheusCollectorRegistry

    /// `GET /healthz` over a new connection through libcurl, verifying with `caFile`.
    func get(caFile: String, client: (certificate: String, key: String)? = nil) async -> HTTPResponse {
        await Curl.perform(
            HTTPRequest(
                url: "https://127.0.0.1:\(port)/healthz", timeoutMs: 5_000, caFile: caFile, clientCertificateFile: client?.certificate,
                clientKeyFile: client?.key))
    }
}

/// Runs a collector from `buildApplication` on 127.0.0.1 and a port the kernel picks, with `tls`, around `body`.
func withCollector(_ tls: TLSFiles, _ body: (RunningCollector) async throws -> Void) async throws {
    let directory = NSTemporaryDirectory() + "plumb-tls-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var configuration = CollectorConfiguration()
    configuration.database = directory + "/plumb.sqlite"
    configuration.port = 0
    configuration.tls = tls
    configuration.enrollmentToken = "enroll-secret"
    let registry = PrometheusCollectorRegistry()
    let reloader = CollectorReloader()
    let (ports, bound) = AsyncStream<Int>.makeStream()
    let app = try await buildApplication(
        configuration: configuration, logger: quiet, registry: registry, reloader: reloader,
        onServerRunning: { channel in
            bound.yield(channel.localAddress?.port ?? 0)
            bound.finish()
        })
    let group = ServiceGroup(services: [app], logger: quiet)
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask {
            defer { bound.finish() }
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        do {
            try await body(RunningCollector(port: port, reloader: reloader, registry: registry))
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

/// One TLS connection that stays open: HTTP/1.1 requests one after the other on it.
final class KeepAliveConnection {
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

    init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.inbound = inbound
        self.outbound = outbound
    }

    /// Opens a connection to 127.0.0.1:`port` that verifies the server with `caFile`, runs `body` on it, closes it.
    static func with(port: Int, caFile: String, _ body: (KeepAliveConnection) async throws -> Void) async throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file(caFile)
        let context = try NIOSSLContext(configuration: configuration)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        try await channel.executeThenClose { inbound, outbound in
            try await body(KeepAliveConnection(inbound: inbound.makeAsyncIterator(), outbound: outbound))
        }
    }

    /// Sends `GET path` and returns the status, after reading the whole response (by its Content-Length).
    func get(_ path: String) async throws -> Int {
        try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"))
        var received = ""
        while true {
            if let end = received.range(of: "\r\n\r\n") {
                let head = received[..<end.lowerBound]
                let length =
                    head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if received[end.upperBound...].utf8.count >= length {
                    return Int(head.split(separator: " ")[1]) ?? 0
                }
            }
            guard let chunk = try await inbound.next() else { throw CancellationError() }
            received += String(buffer: chunk)
        }
    }
}

// MARK: - Certificates made here

/// A temporary directory of PEM files.
struct TestPKI {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "plumb-pki-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { directory + "/" + name }

    /// `NAME.pem` and `NAME-key.pem` as the collector's files.
    func tls(_ name: String) -> TLSFiles { TLSFiles(certificateFile: path("\(name).pem"), keyFile: path("\(name)-key.pem")) }

    /// Writes `NAME.pem` (the certificate) and `NAME-key.pem`.
    func write(_ issued: (certificate: Certificate, key: P256.Signing.PrivateKey), as name: String) throws {
        try issued.certificate.serializeAsPEM().pemString.write(toFile: path("\(name).pem"), atomically: true, encoding: .utf8)
        try issued.key.pemRepresentation.write(toFile: path("\(name)-key.pem"), atomically: true, encoding: .utf8)
    }

    /// Writes the CA's certificate as `NAME.pem`.
    func write(_ ca: TestCA, as name: String) throws {
        try ca.certificate.serializeAsPEM().pemString.write(toFile: path("\(name).pem"), atomically: true, encoding: .utf8)
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: directory) }
}

/// A certificate authority made in the test: a P256 key and a self-signed CA certificate.
struct TestCA {
    let key: P256.Signing.PrivateKey
    let name: DistinguishedName
    let certificate: Certificate

    /// A name in a subject alternative name.
    enum AlternativeName {
        case dns(String)
        case ipAddress(UInt8, UInt8, UInt8, UInt8)

        var general: GeneralName {
            switch self {
            case .dns(let name): return .dnsName(name)
            case .ipAddress(let a, let b, let c, let d): return .ipAddress(ASN1OctetString(contentBytes: [a, b, c, d]))
            }
        }
    }

    init(name commonName: String) throws {
        key = P256.Signing.PrivateKey()
        name = try DistinguishedName {
            OrganizationName("Plumb tests")
            CommonName(commonName)
        }
        let now = Date()
        certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey), notValidBefore: now - 3600,
            notValidAfter: now + 86_400, issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(key))
    }

    /// A leaf certificate for servers and clients, valid from `notBefore` to `notAfter` (default: an hour ago to a day
    /// ahead), with its new key.
    func issue(commonName: String, sans: [AlternativeName], notBefore: Date? = nil, notAfter: Date? = nil) throws -> (
        certificate: Certificate, key: P256.Signing.PrivateKey
    ) {
        let leafKey = P256.Signing.PrivateKey()
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(leafKey.publicKey),
            notValidBefore: notBefore ?? now - 3600, notValidAfter: notAfter ?? now + 86_400, issuer: name,
            subject: try DistinguishedName {
                OrganizationName("Plumb tests")
                CommonName(commonName)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(sans.map(\.general))
            },
            issuerPrivateKey: .init(key))
        return (certificate, leafKey)
    }
}
