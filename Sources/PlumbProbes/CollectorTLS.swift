import CPlumbSys
import Glibc

/// How a client (the agent, the `plumb` CLI) reaches the collector over TLS: the CA that verifies it, the client
/// certificate it presents when the collector requires one, and whether plain HTTP to a non-loopback collector is
/// allowed.
public struct CollectorTLS: Sendable, Equatable {
    /// A PEM file of the CA certificates that verify the collector; nil: the system's CA bundle.
    public var caFile: String?
    /// A PEM client certificate for a collector that requires one (`tls.clientCAFile` on the collector).
    public var clientCertificateFile: String?
    /// The PEM private key of `clientCertificateFile`; nil: the key is in the certificate file.
    public var clientKeyFile: String?
    /// Allows `http://` to a collector that is not on the loopback: tokens and reports then cross the network in clear.
    public var insecure: Bool

    /// No CA file, no client certificate, plain HTTP to loopback only.
    public init(caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.clientCertificateFile = clientCertificateFile
        self.clientKeyFile = clientKeyFile
        self.insecure = insecure
    }

    /// `request` with these files set (`CURLOPT_CAINFO`, `CURLOPT_SSLCERT`, `CURLOPT_SSLKEY`).
    public func applied(to request: HTTPRequest) -> HTTPRequest {
        var request = request
        request.caFile = caFile
        request.clientCertificateFile = clientCertificateFile
        request.clientKeyFile = clientKeyFile
        return request
    }

    /// What is wrong with reaching the collector at `url` this way, in words naming `settings` (the names the user
    /// sets: `collector.caFile`/`collector.insecure` in a file, `--ca-file`/`--insecure` on a command line); nil when
    /// nothing is. Plain `http://` is allowed to loopback hosts (127.0.0.0/8, ::1, `localhost`) and, with `insecure`,
    /// anywhere. A file that cannot be read is named too.
    public func problems(url: String, settings: Settings) -> [String] {
        var problems: [String] = []
        if Self.scheme(of: url) == "http", !insecure, !Self.isLoopback(host: Self.host(of: url)) {
            problems.append(
                "collector url '\(url)' is plain HTTP to a host that is not on the loopback: the tokens and reports would cross the network in clear. Use https:// with \(settings.caFile), or set \(settings.insecure)"
            )
        }
        for (name, path) in [(settings.caFile, caFile), (settings.clientCertificate, clientCertificateFile), (settings.clientKey, clientKeyFile)] {
            if let path, access(path, R_OK) != 0 { problems.append("\(name): cannot read \(path) (\(String(cString: strerror(errno))))") }
        }
        if clientKeyFile != nil && clientCertificateFile == nil {
            problems.append("\(settings.clientKey) is set without \(settings.clientCertificate); set both, or neither")
        }
        return problems
    }

    /// The names of the settings, as the user spells them, for `problems(url:settings:)`.
    public struct Settings: Sendable {
        public var caFile: String
        public var clientCertificate: String
        public var clientKey: String
        public var insecure: String

        /// Names the settings.
        public init(caFile: String, clientCertificate: String, clientKey: String, insecure: String) {
            self.caFile = caFile
            self.clientCertificate = clientCertificate
            self.clientKey = clientKey
            self.insecure = insecure
        }
    }

    /// The URL's scheme, lowercased (`http`, `https`), or "" without one.
    static func scheme(of url: String) -> String {
        guard let separator = schemeSeparator(in: url) else { return "" }
        return url[..<separator].lowercased()
    }

    /// Where `://` starts in `url`.
    private static func schemeSeparator(in url: String) -> String.Index? {
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else { return nil }
        return colon
    }

    /// The URL's host without brackets: `http://user@[::1]:7470/v1` → `::1`.
    public static func host(of url: String) -> String {
        var authority = Substring(url)
        if let separator = schemeSeparator(in: url) { authority = url[url.index(separator, offsetBy: 3)...] }
        if let end = authority.firstIndex(where: { "/?#".contains($0) }) { authority = authority[..<end] }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return String(authority.dropFirst()) }
            return String(authority[authority.index(after: authority.startIndex)..<close])
        }
        if let colon = authority.firstIndex(of: ":") { authority = authority[..<colon] }
        return String(authority)
    }

    /// Whether `host` is a loopback address: 127.0.0.0/8, ::1, or the name `localhost`.
    public static func isLoopback(host: String) -> Bool {
        let name = host.lowercased()
        if name == "localhost" || name == "localhost." { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, name, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
        }
        return false
    }
}
