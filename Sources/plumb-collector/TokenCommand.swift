import ArgumentParser
import Foundation
import PlumbCollector
import PlumbCore

/// `plumb-collector token add|revoke|list`: the operator tokens file (one `NAME SCOPE sha256:HEX` line per token).
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Add, revoke and list named operator tokens (read or admin) in a tokens file.",
        discussion: """
            The file holds hashes only. A running collector started with --operator-tokens-file FILE (or
            tokens.operatorTokensFile) re-reads it within a second of a change, and on SIGHUP: no restart.
            """,
        subcommands: [Add.self, Revoke.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a token, append its hash to FILE, print the token once.")
        @Option(help: "The tokens file (created with mode 0600 when missing; an existing one keeps its owner, group and mode).") var file: String
        @Option(help: "A name for the token: who or what holds it (shown in logs, acknowledgements, topology authors).") var name: String
        @Option(help: "read or admin.") var scope: String

        func run() throws {
            guard let scope = TokenScope(rawValue: scope) else { throw ValidationError("--scope must be read or admin") }
            guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "\t" || $0 == "#" }) else {
                throw ValidationError("--name must be non-empty, without spaces or '#'")
            }
            let existing = try TokenCommand.read(file)
            if existing.contains(where: { $0.name == name }) { throw ValidationError("\(file) already has a token named \(name); revoke it first") }
            var bytes = [UInt8](repeating: 0, count: 32)
            var generator = SystemRandomNumberGenerator()
            for index in bytes.indices { bytes[index] = generator.next() }
            let token =
                "plumbop_"
                + bytes.map { byte in String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }.joined()
            var text =
                (try? String(contentsOfFile: file, encoding: .utf8)) ?? "# plumb operator tokens: NAME SCOPE sha256:HEX (plumb-collector token add)\n"
            if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
            text += OperatorTokensFile.line(name: name, scope: scope, token: token) + "\n"
            try TokenCommand.write(text, to: file)
            FileHandle.standardError.write(Data("added \(scope.rawValue) token '\(name)' to \(file); it is shown once, below\n".utf8))
            print(token)
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove the token NAME from FILE; a running collector stops accepting it within a second.")
        @Option(help: "The tokens file.") var file: String
        @Option(help: "The token's name.") var name: String

        func run() throws {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
            _ = try TokenCommand.read(file)
            var removed = false
            let kept = text.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
                let fields = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?.split(whereSeparator: {
                    $0 == " " || $0 == "\t"
                })
                if fields?.first.map(String.init) == name {
                    removed = true
                    return false
                }
                return true
            }
            guard removed else { throw ValidationError("\(file) has no token named \(name)") }
            try TokenCommand.write(kept.joined(separator: "\n"), to: file)
            FileHandle.standardError.write(Data("revoked '\(name)' in \(file)\n".utf8))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The tokens' names and scopes.")
        @Option(help: "The tokens file.") var file: String

        func run() throws {
            for token in try TokenCommand.read(file) { print("\(token.name)\t\(token.scope.rawValue)") }
        }
    }

    /// The tokens of `file`; none when it does not exist; a clear error when it is malformed.
    static func read(_ file: String) throws -> [OperatorToken] {
        guard FileManager.default.fileExists(atPath: file) else { return [] }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
        do {
            return try OperatorTokensFile.parse(text, source: file)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// Replaces `file` atomically (a collector reading it sees the old or the new content), mode 0600.
    /// Replaces the file atomically. A new file is 0600; an existing one keeps its owner, group and mode (without any
    /// permission for others), so a file installed `root:plumb 0640` stays readable by the collector.
    static func write(_ text: String, to file: String) throws {
        let temporary = file + ".tmp-\(getpid())"
        var existing = stat()
        let exists = stat(file, &existing) == 0
        let mode = exists ? Int(existing.st_mode & 0o660) | 0o600 : 0o600
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw ValidationError("cannot write \(temporary)")
        }
        if exists { _ = chown(temporary, existing.st_uid, existing.st_gid) }  // as root; otherwise the file stays the caller's
        guard rename(temporary, file) == 0 else {
            unlink(temporary)
            throw ValidationError("cannot replace \(file): \(String(cString: strerror(errno)))")
        }
    }
}
