import ArgumentParser
import Foundation
import PlumbCore
import PlumbModelIO

@main
struct Plumb: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plumb",
        abstract: "Plumb: keep a VPC true to its plan. Validate a topology model, explain flows, print the expected matrix, import from AWS.",
        version: "0.1.0",
        subcommands: [Validate.self, Explain.self, Matrix.self, DiagramCommand.self, Import.self, Status.self, Agents.self, Alerts.self, Drift.self]
    )
}

/// Exit codes shared by the subcommands.
enum ExitCodes {
    /// The model has errors (or warnings with --strict).
    static let invalidModel = ExitCode(1)
    /// The question was wrong: unknown source or destination, bad port.
    static let badQuestion = ExitCode(2)
}

struct ModelOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The topology model (YAML or JSON).", valueName: "FILE"))
    var model: String

    /// Loads the model; prints its problems to stderr and exits 1 when it has errors.
    func loadValid() throws -> (Topology, [Diagnostic]) {
        let loaded = ModelLoader.load(path: model)
        guard loaded.isValid, let topology = loaded.topology else {
            for diagnostic in loaded.diagnostics { printError(diagnostic.description) }
            printError("\(model): the model has errors; fix them (plumb validate --model \(model)) and try again")
            throw ExitCodes.invalidModel
        }
        return (topology, loaded.diagnostics)
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, csv
}

enum TextOrJSON: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

func jsonText<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
