import Foundation
import PlumbCore
import Yams

/// Parses YAML or JSON text into a located ``DocumentNode`` tree.
public enum DocumentParser {
    /// Parses `text`; `file` names it in locations. Problems come back as diagnostics, never as a crash.
    public static func parse(_ text: String, file: String) -> (node: DocumentNode?, diagnostics: [Diagnostic]) {
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
            var diagnostics: [Diagnostic] = []
            let node = convert(root, file: file, diagnostics: &diagnostics)
            return (node, diagnostics)
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

    static func convert(_ node: Node, file: String, diagnostics: inout [Diagnostic]) -> DocumentNode {
        func location(_ mark: Mark?) -> SourceLocation {
            SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
        }
        switch node {
        case .scalar(let scalar):
            let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
            if !quoted && ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
                return DocumentNode(.null, at: location(scalar.mark))
            }
            return DocumentNode(.scalar(scalar.string, quoted: quoted), at: location(scalar.mark))
        case .sequence(let sequence):
            return DocumentNode(.sequence(sequence.map { convert($0, file: file, diagnostics: &diagnostics) }), at: location(sequence.mark))
        case .mapping(let mapping):
            var entries: [DocumentNode.Entry] = []
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    diagnostics.append(
                        Diagnostic(.error, at: location(key.mark), code: "malformed", "mapping keys must be plain text, not a list or mapping"))
                    continue
                }
                entries.append(
                    DocumentNode.Entry(
                        key: keyScalar.string, keyLocation: location(keyScalar.mark), value: convert(value, file: file, diagnostics: &diagnostics)))
            }
            return DocumentNode(.mapping(entries), at: location(mapping.mark))
        case .alias(let alias):
            diagnostics.append(
                Diagnostic(.error, at: location(alias.mark), code: "malformed", "YAML aliases (*name) are not supported; write the value out"))
            return DocumentNode(.null, at: location(alias.mark))
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
