import Foundation
import PlumbCore
import Yams

/// A model read from a file: the decoded topology (when it decoded), every diagnostic, and locations.
public struct LoadedModel: Sendable {
    /// The model, nil when it could not be decoded.
    public var topology: Topology?
    /// Errors and warnings, sorted by location.
    public var diagnostics: [Diagnostic]
    /// Where each field is.
    public var sourceMap: SourceMap

    /// True when there is a model and no error.
    public var isValid: Bool { topology != nil && !diagnostics.hasErrors }
}

/// Reads topology models from YAML or JSON files.
public enum ModelLoader {
    /// The largest model file accepted (64 MiB).
    public static let maximumFileSize = 64 << 20

    /// Reads, decodes and validates the model at `path`. Never throws: an unreadable file is a diagnostic.
    public static func load(path: String) -> LoadedModel {
        switch readText(path: path) {
        case .success(let text): return load(text: text, file: path)
        case .failure(let diagnostic): return LoadedModel(topology: nil, diagnostics: [diagnostic], sourceMap: SourceMap(file: path))
        }
    }

    /// Decodes and validates model text; `file` names it in diagnostics.
    public static func load(text: String, file: String, limits: DocumentLimits = .files) -> LoadedModel {
        let parsed = DocumentParser.parse(text, file: file, limits: limits)
        guard let node = parsed.node else { return LoadedModel(topology: nil, diagnostics: parsed.diagnostics, sourceMap: SourceMap(file: file)) }
        let decoded = DocumentDecoder.decode(Topology.self, from: node)
        var diagnostics = parsed.diagnostics + decoded.diagnostics
        if let topology = decoded.value, !diagnostics.hasErrors {
            diagnostics += Validator.validate(topology, sourceMap: decoded.sourceMap)
        }
        return LoadedModel(topology: decoded.value, diagnostics: diagnostics.sortedByLocation(), sourceMap: decoded.sourceMap)
    }

    /// Reads a UTF-8 text file, with a clear diagnostic for a missing, unreadable, oversized or binary file.
    public static func readText(path: String) -> Result<String, Diagnostic> {
        let top = SourceLocation(file: path, line: 1, column: 1)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return .failure(Diagnostic(.error, at: top, code: "unreadable", "file not found; check the path"))
        }
        if isDirectory.boolValue { return .failure(Diagnostic(.error, at: top, code: "unreadable", "is a directory, not a model file")) }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            return .failure(Diagnostic(.error, at: top, code: "unreadable", "cannot open the file for reading; check its permissions"))
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maximumFileSize + 1) ?? Data()
        } catch {
            return .failure(Diagnostic(.error, at: top, code: "unreadable", "cannot read the file: \(error.localizedDescription)"))
        }
        if data.count > maximumFileSize {
            return .failure(Diagnostic(.error, at: top, code: "too-large", "the file is larger than \(maximumFileSize >> 20) MiB"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(Diagnostic(.error, at: top, code: "malformed", "the file is not UTF-8 text"))
        }
        return .success(text)
    }
}

/// Writes topology models as YAML or JSON.
public enum ModelWriter {
    /// The model as YAML.
    public static func yaml(_ topology: Topology) throws -> String {
        try YAMLEncoder().encode(topology)
    }

    /// The model as pretty JSON.
    public static func json(_ topology: Topology) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(topology), as: UTF8.self) + "\n"
    }
}
