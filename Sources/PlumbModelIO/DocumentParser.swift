import Foundation
import PlumbCore
import Yams

/// How much work one document may cost. A YAML alias reads its anchor's value again, so a few hundred bytes of nested
/// aliases can stand for billions of values; these bounds keep parsing linear in the text.
public struct DocumentLimits: Sendable, Hashable {
    /// Values (scalars, lists, mappings) the text may hold, estimated from its separators before it is parsed.
    public var maxValues: Int
    /// Aliases (`*name`) in the text.
    public var maxAliases: Int
    /// Values read again through aliases, in all.
    public var maxAliasedValues: Int

    public init(maxValues: Int = 4_000_000, maxAliases: Int = 10_000, maxAliasedValues: Int = 100_000) {
        self.maxValues = maxValues
        self.maxAliases = maxAliases
        self.maxAliasedValues = maxAliasedValues
    }

    /// Files a person reads with the command line (up to 64 MiB).
    public static let files = DocumentLimits()
}

/// Parses YAML or JSON text into a located ``DocumentNode`` tree.
public enum DocumentParser {
    /// Parses `text`; `file` names it in locations. Problems come back as diagnostics, never as a crash, and the work
    /// is bounded by `limits` (aliases included).
    public static func parse(_ text: String, file: String, limits: DocumentLimits = .files) -> (node: DocumentNode?, diagnostics: [Diagnostic]) {
        if let refusal = YAMLPrescan.check(text, file: file, limits: limits) { return (nil, [refusal]) }
        if text.utf8.contains(0) {
            return (
                nil,
                [
                    Diagnostic(
                        .error, at: SourceLocation(file: file, line: 1, column: 1), code: "malformed",
                        "the file contains NUL bytes; it is not YAML or JSON text")
                ]
            )
        }
        do {
            guard let root = try Yams.compose(yaml: text) else {
                return (nil, [Diagnostic(.error, at: SourceLocation(file: file, line: 1, column: 1), code: "malformed", "the document is empty")])
            }
            var conversion = Conversion(file: file, maxAliasedValues: limits.maxAliasedValues)
            let node = conversion.convert(root)
            return (node, conversion.diagnostics)
        } catch let error as YamlError {
            return (nil, [diagnostic(for: error, file: file)])
        } catch {
            return (nil, [Diagnostic(.error, at: SourceLocation(file: file, line: 1, column: 1), code: "malformed", "cannot parse: \(error)")])
        }
    }

    static func diagnostic(for error: YamlError, file: String) -> Diagnostic {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { "\(problem) \($0.text)" } ?? problem
            return Diagnostic(.error, at: at(mark), code: "malformed", "not valid YAML/JSON: \(detail)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return Diagnostic(
                .error, at: at(context.mark), code: "duplicate-key",
                "key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) appears twice in one mapping; keep one")
        case .reader(let problem, _, _, _):
            return Diagnostic(.error, at: SourceLocation(file: file, line: 1, column: 1), code: "malformed", "cannot read the text: \(problem)")
        default:
            return Diagnostic(.error, at: SourceLocation(file: file, line: 1, column: 1), code: "malformed", "not valid YAML/JSON: \(error)")
        }
    }

    /// Yams' tree into located nodes. An alias comes back from Yams as a copy of its anchor's value, with the
    /// anchor's position: a list or mapping met again at a position already converted is such a copy, and the values
    /// read through copies are counted against `maxAliasedValues`, so expanding them stays bounded.
    struct Conversion {
        let file: String
        let maxAliasedValues: Int
        var diagnostics: [Diagnostic] = []
        var seenCollections: Set<Position> = []
        var aliasDepth = 0
        var aliasedValues = 0
        var exhausted = false

        struct Position: Hashable {
            var line: Int
            var column: Int
            var mapping: Bool
        }

        init(file: String, maxAliasedValues: Int) {
            self.file = file
            self.maxAliasedValues = maxAliasedValues
        }

        func location(_ mark: Mark?) -> SourceLocation {
            SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
        }

        /// Counts one value; false once the aliases have cost more than allowed (reported once).
        mutating func count(_ mark: Mark?) -> Bool {
            guard aliasDepth > 0 else { return true }
            if exhausted { return false }
            aliasedValues += 1
            guard aliasedValues <= maxAliasedValues else {
                exhausted = true
                diagnostics.append(
                    Diagnostic(
                        .error, at: location(mark), code: "too-large",
                        "YAML aliases (*name) here expand to more than \(maxAliasedValues) values; write the values out or use fewer aliases"))
                return false
            }
            return true
        }

        mutating func convert(_ node: Node) -> DocumentNode {
            switch node {
            case .scalar(let scalar):
                guard count(scalar.mark) else { return DocumentNode(.null, at: location(scalar.mark)) }
                let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
                if !quoted && ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
                    return DocumentNode(.null, at: location(scalar.mark))
                }
                return DocumentNode(.scalar(scalar.string, quoted: quoted), at: location(scalar.mark))
            case .sequence(let sequence):
                guard count(sequence.mark) else { return DocumentNode(.null, at: location(sequence.mark)) }
                let again = enter(sequence.mark, mapping: false)
                defer { if again { aliasDepth -= 1 } }
                var items: [DocumentNode] = []
                items.reserveCapacity(sequence.count)
                for item in sequence {
                    items.append(convert(item))
                    if exhausted { break }
                }
                return DocumentNode(.sequence(items), at: location(sequence.mark))
            case .mapping(let mapping):
                guard count(mapping.mark) else { return DocumentNode(.null, at: location(mapping.mark)) }
                let again = enter(mapping.mark, mapping: true)
                defer { if again { aliasDepth -= 1 } }
                var entries: [DocumentNode.Entry] = []
                for (key, value) in mapping {
                    if exhausted { break }
                    guard case .scalar(let keyScalar) = key else {
                        diagnostics.append(
                            Diagnostic(.error, at: location(key.mark), code: "malformed", "mapping keys must be plain text, not a list or mapping"))
                        continue
                    }
                    entries.append(DocumentNode.Entry(key: keyScalar.string, keyLocation: location(keyScalar.mark), value: convert(value)))
                }
                return DocumentNode(.mapping(entries), at: location(mapping.mark))
            case .alias(let alias):
                diagnostics.append(
                    Diagnostic(
                        .error, at: location(alias.mark), code: "malformed", "YAML aliases (*name) are not supported here; write the value out"))
                return DocumentNode(.null, at: location(alias.mark))
            }
        }

        /// Notes a collection's position; true (and one level deeper in aliases) when it was converted before.
        mutating func enter(_ mark: Mark?, mapping: Bool) -> Bool {
            guard let mark else { return false }
            if seenCollections.insert(Position(line: mark.line, column: mark.column, mapping: mapping)).inserted { return false }
            aliasDepth += 1
            return true
        }
    }
}

extension DocumentParser {
    /// Parses `text` and decodes `T` with locations and unknown-field checks: the one path for models, configuration
    /// files, plans and strict API documents. `value` is nil when there are errors; `diagnostics` has them all.
    public static func decode<T: Decodable>(_ type: T.Type, text: String, file: String) -> (value: T?, diagnostics: [Diagnostic]) {
        let parsed = parse(text, file: file)
        guard let node = parsed.node else { return (nil, parsed.diagnostics) }
        let decoded = DocumentDecoder.decode(type, from: node)
        let diagnostics = (parsed.diagnostics + decoded.diagnostics).sortedByLocation()
        return (diagnostics.hasErrors ? nil : decoded.value, diagnostics)
    }
}

/// Secrets kept in files (tokens): read once, surrounding white space trimmed.
public enum SecretFile {
    /// The secret in `path`; nil when the file cannot be read or holds only white space.
    public static func read(_ path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return secret.isEmpty ? nil : secret
    }
}
