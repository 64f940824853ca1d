import CoreMetrics
import Foundation
import Logging
import NIOSSL
import PlumbProbes
import SwiftASN1
import Synchronization
import X509

/// The files of the listener's TLS (`tls:` in the collector's configuration).
public struct TLSFiles: Sendable, Hashable, Codable {
    /// The server's certificate chain, PEM: its own certificate first, then any intermediates.
    public var certificateFile: String?
    /// The certificate's private key, PEM.
    public var keyFile: String?
    /// PEM CA certificates; when set, every client must present a certificate signed by one of them (mTLS).
    public var clientCAFile: String?

    /// The files.
    public init(certificateFile: String? = nil, keyFile: String? = nil, clientCAFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
    }
}

/// The listener's TLS: the `NIOSSLContext` that new handshakes use, replaced by `reload()` from the same files.
///
/// A connection keeps the context it was accepted with, so a reload never touches an established connection; a
/// reload that fails (a missing file, a key that does not match the certificate) keeps the context in use.
public final class ServerTLS: Sendable {
    /// What a loaded certificate is, for the log and for tests.
    public struct Summary: Sendable, Equatable {
        /// The leaf certificate's subject, `CN=…,O=…`.
        public var subject: String
        /// When the leaf certificate expires.
        public var notAfter: Date
        /// Whether clients must present a certificate (a client CA is set).
        public var requiresClientCertificate: Bool
    }

    /// Why the TLS files cannot be used; `description` says which file, what is wrong and what to do.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    private struct Loaded: Sendable {
        var context: NIOSSLContext
        var summary: Summary
    }

    /// The files read by `reload()`.
    public let files: TLSFiles
    private let loaded: Mutex<Loaded>
    private let logger: Logger
    private let reloadsOK: Counter
    private let reloadsFailed: Counter

    /// Loads `files`; throws `Invalid` when they cannot serve. `metrics` receives `plumb_tls_reloads_total`.
    /// Blocks on file I/O: call it off the cooperative pool (`open` does).
    init(files: TLSFiles, logger: Logger, metrics: any MetricsFactory) throws(Invalid) {
        self.files = files
        self.logger = logger
        let first = try Self.load(files)
        self.loaded = Mutex(first)
        self.reloadsOK = Counter(label: "plumb_tls_reloads_total", dimensions: [("result", "ok")], factory: metrics)
        self.reloadsFailed = Counter(label: "plumb_tls_reloads_total", dimensions: [("result", "failed")], factory: metrics)
        log(first.summary, message: "TLS certificate loaded")
    }

    /// Loads `files` on the blocking pool.
    public static func open(files: TLSFiles, logger: Logger, metrics: any MetricsFactory) async throws(Invalid) -> ServerTLS {
        let result: Result<ServerTLS, Invalid> = await BlockingPool.control.run {
            do throws(Invalid) {
                return .success(try ServerTLS(files: files, logger: logger, metrics: metrics))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The context a new connection's handshake uses.
    public var context: NIOSSLContext { loaded.withLock { $0.context } }

    /// The certificate in use.
    public var summary: Summary { loaded.withLock { $0.summary } }

    /// Re-reads the files (on the blocking pool). On success new handshakes use them; on failure the error is logged
    /// and the certificate in use stays. Counts `plumb_tls_reloads_total{result="ok|failed"}`. Returns whether it
    /// succeeded.
    @discardableResult
    public func reload() async -> Bool {
        let files = self.files
        let result: Result<Loaded, Invalid> = await BlockingPool.control.run {
            do throws(Invalid) {
                return .success(try Self.load(files))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let fresh):
            loaded.withLock { $0 = fresh }
            reloadsOK.increment()
            log(fresh.summary, message: "TLS certificate reloaded; new connections use it")
            return true
        case .failure(let error):
            reloadsFailed.increment()
            logger.error(
                "TLS reload failed; the certificate in use stays", metadata: ["error": "\(error)", "subject": "\(summary.subject)"])
            return false
        }
    }

    private func log(_ summary: Summary, message: Logger.Message) {
        logger.info(
            message,
            metadata: [
                "subject": "\(summary.subject)", "notAfter": "\(summary.notAfter.formatted(.iso8601))",
                "clientCertificates": "\(summary.requiresClientCertificate ? "required" : "not asked")",
            ])
        if summary.notAfter < Date() {
            logger.warning(
                "the TLS certificate has expired: clients will refuse it. Replace the files and send SIGHUP",
                metadata: ["file": "\(files.certificateFile ?? "")", "notAfter": "\(summary.notAfter.formatted(.iso8601))"])
        }
    }

    /// Reads and checks the files; blocks.
    private static func load(_ files: TLSFiles) throws(Invalid) -> Loaded {
        guard let certificateFile = files.certificateFile, let keyFile = files.keyFile else {
            throw Invalid(description: "tls: certificateFile and keyFile are both needed")
        }
        let chain = try certificates(certificateFile, what: "tls.certificateFile")
        try readable(keyFile, what: "tls.keyFile")
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw Invalid(
                description: "tls.keyFile \(keyFile): not a PEM private key (\(error)); give the key of \(certificateFile), unencrypted")
        }
        var configuration: TLSConfiguration
        var clientCAs: [NIOSSLCertificate] = []
        if let clientCAFile = files.clientCAFile {
            clientCAs = try certificates(clientCAFile, what: "tls.clientCAFile")
            configuration = .makeServerConfigurationWithMTLS(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key), trustRoots: .certificates(clientCAs))
            configuration.sendCANameList = true
        } else {
            configuration = .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        }
        configuration.minimumTLSVersion = .tlsv12
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw Invalid(
                description:
                    "tls: the key in \(keyFile) does not match the certificate in \(certificateFile) (\(error)); give the key the certificate was issued for"
            )
        }
        let summary: Summary
        do {
            let leaf = try Certificate(derEncoded: try chain[0].toDERBytes())
            summary = Summary(subject: leaf.subject.description, notAfter: leaf.notValidAfter, requiresClientCertificate: !clientCAs.isEmpty)
        } catch {
            throw Invalid(description: "tls.certificateFile \(certificateFile): the first certificate cannot be parsed (\(error))")
        }
        return Loaded(context: context, summary: summary)
    }

    private static func readable(_ path: String, what: String) throws(Invalid) {
        guard access(path, R_OK) == 0 else {
            throw Invalid(description: "\(what) \(path): cannot read it (\(String(cString: strerror(errno)))); check the path and its permissions")
        }
    }

    private static func certificates(_ path: String, what: String) throws(Invalid) -> [NIOSSLCertificate] {
        try readable(path, what: what)
        let list: [NIOSSLCertificate]
        do {
            list = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw Invalid(description: "\(what) \(path): not PEM certificates (\(error)); give a file of '-----BEGIN CERTIFICATE-----' blocks")
        }
        guard !list.isEmpty else {
            throw Invalid(description: "\(what) \(path): holds no certificate; give a file of '-----BEGIN CERTIFICATE-----' blocks")
        }
        return list
    }
}
