import Foundation
import PlumbCore
import Synchronization

/// The agent's registration with the collector: its id and bearer token, kept in the spool directory (mode 0600)
/// so a restarted agent can go on probing and spooling while the collector is down.
public final class Session: Sendable {
    /// Id and token.
    public struct Credentials: Codable, Sendable, Equatable {
        public var agentId: String
        public var token: String

        /// Creates credentials.
        public init(agentId: String, token: String) {
            self.agentId = agentId
            self.token = token
        }
    }

    private let state = Mutex<Credentials?>(nil)
    private let lastAgentId = Mutex<String?>(nil)
    private let file: String?

    /// A session persisted in `directory` (nil: memory only).
    public init(directory: String?) {
        file = directory.map { $0 + "/session.json" }
        if let file, let data = FileManager.default.contents(atPath: file), let saved = try? JSONDecoder().decode(Credentials.self, from: data) {
            state.withLock { $0 = saved }
            lastAgentId.withLock { $0 = saved.agentId }
        }
    }

    /// The id the collector gave this agent, also after its token was refused.
    public var agentId: String? { lastAgentId.withLock { $0 } }

    /// The current credentials, if registered.
    public var credentials: Credentials? { state.withLock { $0 } }

    /// Stores new credentials.
    public func set(_ credentials: Credentials) {
        state.withLock { $0 = credentials }
        lastAgentId.withLock { $0 = credentials.agentId }
        guard let file, let data = try? JSONEncoder().encode(credentials) else { return }
        _ = FileManager.default.createFile(atPath: file, contents: data, attributes: [.posixPermissions: 0o600])
    }

    /// The agent's key: 32 random bytes (hex) made at the first registration and kept in `agent-key` (mode 0600) next
    /// to the session, sent with every registration so that the collector can tell this agent from another claiming
    /// the same instance. In memory only for a session without a directory.
    public var agentKey: String {
        keyLock.withLock { key in
            if let key { return key }
            let path = file.map { ($0 as NSString).deletingLastPathComponent + "/agent-key" }
            if let path, let data = FileManager.default.contents(atPath: path) {
                let saved = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if saved.count >= 32 {
                    key = saved
                    return saved
                }
            }
            var generator = SystemRandomNumberGenerator()
            let made = hexString((0..<32).map { _ in generator.next() as UInt8 })
            if let path { _ = FileManager.default.createFile(atPath: path, contents: Data(made.utf8), attributes: [.posixPermissions: 0o600]) }
            key = made
            return made
        }
    }
    private let keyLock = Mutex<String?>(nil)

    /// Forgets the token (the collector refused it); `agentId` stays for the reports.
    public func invalidate() {
        state.withLock { $0 = nil }
        if let file { try? FileManager.default.removeItem(atPath: file) }
    }
}
