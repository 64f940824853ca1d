import Foundation
import PlumbCore

/// Reads a directory of `aws ec2 describe-*` JSON files and imports them with ``AWSImporter``.
public enum AWSImport {
    /// Imports from `directory`; files are named after their call (`describe-vpcs.json`).
    public static func run(directory: String, vpc: String? = nil) -> AWSImporter.Result {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            return AWSImporter.Result(
                topology: nil,
                diagnostics: [
                    Diagnostic(
                        .error, at: SourceLocation(file: directory, line: 1, column: 1), code: "unreadable",
                        "not a directory; give the folder holding the describe-*.json files")
                ])
        }
        var documents: [String: DocumentNode] = [:]
        var diagnostics: [Diagnostic] = []
        for file in AWSImporter.requiredFiles + AWSImporter.optionalFiles {
            let path = (directory as NSString).appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: path) else { continue }
            switch ModelLoader.readText(path: path) {
            case .failure(let diagnostic): diagnostics.append(diagnostic)
            case .success(let text):
                let parsed = DocumentParser.parse(text, file: file)
                diagnostics += parsed.diagnostics
                if let node = parsed.node { documents[file] = node }
            }
        }
        if diagnostics.hasErrors { return AWSImporter.Result(topology: nil, diagnostics: diagnostics) }
        var result = AWSImporter.run(documents: documents, vpc: vpc)
        result.diagnostics = diagnostics + result.diagnostics
        return result
    }
}
