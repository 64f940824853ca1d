import Foundation
import PlumbCore
import PlumbIdentity
import Synchronization

/// What an operator token may do.
public enum TokenScope: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    /// Every `GET` of the operator API (status, agents, topology, matrix, drift, alerts, explain, deliveries) and
    /// `POST /v1/topology/validate`, which changes nothing.
    case read
    /// Also what changes state: acknowledging alerts, `PUT /v1/topology`.
    case admin

    public static func < (lhs: TokenScope, rhs: TokenScope) -> Bool { lhs == .read && rhs == .admin }
}

/// One named operator token, by the SHA-256 of its value.
public struct OperatorToken: Sendable, Hashable {
    public var name: String
    public var scope: TokenScope
    /// Lowercase hex SHA-256 of the token.
    public var hash: String

    /// Creates a token entry.
    public init(name: String, scope: TokenScope, hash: String) {
        self.name = name
        self.scope = scope
        self.hash = hash
    }
}

/// The operator tokens file: one token per line, `NAME SCOPE sha256:HEX`, `#` comments and blank lines ignored.
/// The file holds hashes only; `plumb-collector token add` makes a token, prints it once and appends its line.
public enum OperatorTokensFile {
    /// Parses `text`; `source` names the file in errors (`FILE:LINE: …`).
    public static func parse(_ text: String, source: String) throws(ConfigurationError) -> [OperatorToken] {
        var tokens: [OperatorToken] = []
        var names: Set<String> = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if fields.isEmpty { continue }
            let at = "\(source):\(number + 1)"
            guard fields.count == 3 else {
                throw ConfigurationError(
                    "\(at): expected NAME SCOPE sha256:HEX, found \(fields.count) field(s); make lines with `plumb-collector token add`")
            }
            guard let scope = TokenScope(rawValue: fields[1]) else {
                throw ConfigurationError("\(at): scope '\(fields[1])' is not read or admin")
            }
            let hash = fields[2].hasPrefix("sha256:") ? String(fields[2].dropFirst(7)).lowercased() : ""
            guard hash.count == 64, hash.allSatisfy(\.isHexDigit) else {
                throw ConfigurationError("\(at): the hash must be sha256: and 64 hex digits (the file never holds a token itself)")
            }
            guard names.insert(fields[0]).inserted else { throw ConfigurationError("\(at): the name '\(fields[0])' is used twice") }
            tokens.append(OperatorToken(name: fields[0], scope: scope, hash: hash))
        }
        return tokens
    }

    /// The line for a token.
    public static func line(name: String, scope: TokenScope, token: String) -> String {
        "\(name) \(scope.rawValue) sha256:\(hexString(SHA256.hash(Array(token.utf8))))"
    }
}

/// A configuration problem with its location and what to do (the same type the identity settings report).
public typealias ConfigurationError = ConfigurationProblem

/// The operator tokens in force: the single `operatorToken` of the configuration (an `admin` token named `operator`)
/// and the tokens file, re-read when it changes (checked every second) and on SIGHUP. A file that became unreadable or
/// malformed is logged and the tokens read before stay in force: a typo locks nobody out.
public final class OperatorTokens: Sendable {
    private struct State {
        var byHash: [String: OperatorToken] = [:]
        var stamp: FileStamp?
    }
    struct FileStamp: Equatable {
        var modified: Double
        var size: Int
        var inode: Int
    }

    private let state = Mutex(State())
    private let fixed: [OperatorToken]
    /// The tokens file, if any.
    public let path: String?

    /// Tokens from `configuration` (reads the file: a malformed one is an error here, at start).
    public init(operatorToken: String?, path: String?) throws(ConfigurationError) {
        fixed = operatorToken.map { [OperatorToken(name: "operator", scope: .admin, hash: hexString(SHA256.hash(Array($0.utf8))))] } ?? []
        self.path = path
        if let path {
            guard let stamp = Self.stamp(path), let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError("\(path): cannot read the operator tokens file")
            }
            install(try OperatorTokensFile.parse(text, source: path), stamp: stamp)
        } else {
            install([], stamp: nil)
        }
    }

    /// The token a bearer is, if any.
    public func lookup(_ bearer: String) -> OperatorToken? {
        let hash = hexString(SHA256.hash(Array(bearer.utf8)))
        return state.withLock { $0.byHash[hash] }
    }

    /// How many tokens are in force.
    public var count: Int { state.withLock { $0.byHash.count } }

    /// Re-reads the file when it changed (or always, with `force`). Returns a problem to log when the file cannot be
    /// used (the previous tokens stay), nil otherwise.
    @discardableResult
    public func reload(force: Bool = false) -> String? {
        guard let path else { return nil }
        guard let stamp = Self.stamp(path) else { return "\(path): cannot read the operator tokens file; the tokens read before stay in force" }
        if !force, state.withLock({ $0.stamp == stamp }) { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return "\(path): cannot read the operator tokens file; the tokens read before stay in force"
        }
        do {
            install(try OperatorTokensFile.parse(text, source: path), stamp: stamp)
            return nil
        } catch {
            state.withLock { $0.stamp = stamp }  // reported once, not every second
            return "\(error); the tokens read before stay in force"
        }
    }

    private func install(_ tokens: [OperatorToken], stamp: FileStamp?) {
        var byHash: [String: OperatorToken] = [:]
        for token in fixed + tokens where byHash[token.hash] == nil { byHash[token.hash] = token }
        state.withLock {
            $0.byHash = byHash
            $0.stamp = stamp
        }
    }

    static func stamp(_ path: String) -> FileStamp? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return FileStamp(
            modified: (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0, size: (attributes[.size] as? Int) ?? 0,
            inode: (attributes[.systemFileNumber] as? Int) ?? 0)
    }
}
