import ArgumentParser
import Foundation
import PlumbCore
import PlumbModelIO

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a topology model.",
        discussion: """
            Prints one FILE:LINE:COLUMN: SEVERITY: MESSAGE line per problem (on stderr) and exits 0 when the model \
            has no error, 1 when it has. Warnings (legal in AWS, probably a mistake) fail only with --strict.
            """)

    @OptionGroup var options: ModelOption

    @Flag(help: "Treat warnings as errors.")
    var strict = false

    @Option(help: "text or json.")
    var format: TextOrJSON = .text

    func run() throws {
        let loaded = ModelLoader.load(path: options.model)
        let errors = loaded.diagnostics.filter { $0.severity == .error }.count
        let warnings = loaded.diagnostics.count - errors
        let failed = errors > 0 || (strict && warnings > 0)
        switch format {
        case .json:
            struct Report: Encodable {
                var file: String
                var valid: Bool
                var errors: Int
                var warnings: Int
                var diagnostics: [Entry]
            }
            struct Entry: Encodable {
                var file: String
                var line: Int
                var column: Int
                var severity: String
                var code: String
                var message: String
            }
            let entries = loaded.diagnostics.map {
                Entry(
                    file: $0.location.file, line: $0.location.line, column: $0.location.column, severity: $0.severity.rawValue, code: $0.code,
                    message: $0.message)
            }
            print(try jsonText(Report(file: options.model, valid: !failed, errors: errors, warnings: warnings, diagnostics: entries)))
        case .text:
            for diagnostic in loaded.diagnostics { printError(diagnostic.description) }
            if let topology = loaded.topology, !failed {
                print(
                    "\(options.model): valid: \(topology.subnets.count) subnets, \(topology.instances.count) instances, \(topology.securityGroups.count) security groups, \(topology.intents.count) intents hold; \(warnings) warning\(warnings == 1 ? "" : "s")"
                )
            } else {
                printError(
                    "\(options.model): \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")\(strict && errors == 0 ? " (--strict)" : "")"
                )
            }
        }
        if failed { throw ExitCodes.invalidModel }
    }
}
