import Foundation

/// Where a PostgreSQL database is and how to reach it, parsed from a libpq-style URL:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB?sslmode=MODE&sslrootcert=FILE` (`postgresql://` too).
///
/// A Unix socket: `host=/run/postgresql` in the query, or the directory percent-encoded as the host
/// (`postgres://plumb@%2Frun%2Fpostgresql/plumb`); as with libpq the socket is `DIR/.s.PGSQL.PORT`.
/// A password in the URL works but is discouraged (it shows in process lists and shell history): prefer a password
/// file or `PGPASSWORD`.
struct PostgresLocation: Sendable, Hashable {
    /// libpq's `sslmode`.
    enum SSLMode: String, Sendable, Hashable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    var user: String
    var password: String?
    /// A host name or address, or the directory of a Unix socket (starts with `/`).
    var host: String
    var port: Int
    var database: String
    var sslMode: SSLMode
    /// `sslrootcert`: the CA certificates (PEM) that verify the server in `verify-ca` and `verify-full`.
    var sslRootCert: String?

    /// Whether `host` is a Unix socket directory.
    var isSocket: Bool { host.hasPrefix("/") }

    /// The socket file for a socket directory (or the host itself when it names the file already).
    var socketPath: String {
        let name = host.split(separator: "/").last ?? ""
        return name.hasPrefix(".s.PGSQL.") ? host : host + (host.hasSuffix("/") ? "" : "/") + ".s.PGSQL.\(port)"
    }

    /// `USER@HOST:PORT/DB`: what the store is, for logs and status. Never the password.
    var display: String { "\(user)@\(host):\(port)/\(database)" }

    /// Why a URL cannot be used.
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses `url`.
    init(url: String) throws {
        let schemes = ["postgres://", "postgresql://"]
        guard let scheme = schemes.first(where: { url.lowercased().hasPrefix($0) }) else {
            throw Invalid(description: "not a postgres:// or postgresql:// URL")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var hostPort = rest
        var user = ""
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            hostPort = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decode(userInfo[..<colon])
                password = try Self.decode(userInfo[userInfo.index(after: colon)...])
            } else {
                user = try Self.decode(userInfo)
            }
        }
        var host = ""
        var port: Int?
        if hostPort.hasPrefix("[") {  // [IPv6]:port
            guard let close = hostPort.firstIndex(of: "]") else { throw Invalid(description: "unclosed [ in the host") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { port = try Self.port(after.dropFirst()) }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = try Self.decode(hostPort[..<colon])
            port = try Self.port(hostPort[hostPort.index(after: colon)...])
        } else {
            host = try Self.decode(hostPort)
        }
        var database = try Self.decode(path)
        var sslMode = SSLMode.prefer
        var sslRootCert: String?
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try Self.decode(parts[0])
            let value = parts.count > 1 ? try Self.decode(parts[1]) : ""
            switch key {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    throw Invalid(description: "sslmode '\(value)' is not one of disable, allow, prefer, require, verify-ca, verify-full")
                }
                sslMode = mode
            case "sslrootcert": sslRootCert = value
            case "host": host = value
            case "port": port = try Self.port(Substring(value))
            case "user": user = value
            case "password": password = value
            case "dbname": database = value
            case "application_name", "connect_timeout", "target_session_attrs": break  // accepted, not used
            default: throw Invalid(description: "unknown parameter '\(key)'")
            }
        }
        guard !host.isEmpty else { throw Invalid(description: "no host (use host=/socket/dir for a Unix socket)") }
        guard !user.isEmpty else { throw Invalid(description: "no user (postgres://USER@HOST:PORT/DB)") }
        self.user = user
        self.password = password
        self.host = host
        self.port = port ?? 5432
        self.database = database.isEmpty ? user : database
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
    }

    private static func decode(_ text: Substring) throws -> String {
        guard let decoded = String(text).removingPercentEncoding else { throw Invalid(description: "bad percent-encoding in '\(text)'") }
        return decoded
    }

    private static func port(_ text: Substring) throws -> Int? {
        if text.isEmpty { return nil }
        guard let port = Int(text), (1...65_535).contains(port) else { throw Invalid(description: "port '\(text)' is not a number in 1-65535") }
        return port
    }
}
