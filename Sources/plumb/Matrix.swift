import ArgumentParser
import Foundation
import PlumbCore
import PlumbModelIO

struct Matrix: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the expected reachability matrix: for each port the model implies, who reaches whom.",
        discussion: """
            One truth table per port: rows are sources (the internet, each load balancer and every instance), columns the instances that \
            serve the port ('.' allowed, 'X' blocked, '-' itself). Then the flows the model blocks to served ports: \
            the expected-deny probes. json and csv give the same cells.
            """)

    @Option(name: .long, help: ArgumentHelp("The topology model (YAML or JSON).", valueName: "FILE"))
    var model: String?

    @Flag(help: "Expected against observed, from a running collector (--collector URL, --token-file FILE).")
    var live = false

    @Option(name: .long, help: ArgumentHelp("The collector's base URL, with --live.", valueName: "URL"))
    var collector: String?

    @Option(name: .long, help: ArgumentHelp("File holding the operator token, with --live.", valueName: "FILE"))
    var tokenFile: String?

    @Option(help: "text, json or csv.")
    var format: OutputFormat = .text

    func run() throws {
        if live {
            var options = CollectorOptions()
            options.collector = collector
            options.tokenFile = tokenFile
            options.format = format == .json ? .json : .text
            try printLiveMatrix(options)
            return
        }
        guard let model else { throw ValidationError("give --model FILE (the expected matrix) or --live (expected vs observed from a collector)") }
        var options = ModelOption()
        options.model = model
        let (topology, _) = try options.loadValid()
        let matrix = Network(topology).expectedMatrix()
        switch format {
        case .json: print(try jsonText(matrix))
        case .csv: print(csv(matrix), terminator: "")
        case .text: print(text(matrix), terminator: "")
        }
    }

    func symbol(_ verdict: Verdict?) -> String {
        switch verdict {
        case .allowed: "."
        case .blocked: "X"
        case nil: "-"
        }
    }

    func text(_ matrix: ExpectedMatrix) -> String {
        var out = ""
        for table in matrix.tables {
            let rowWidth = max(table.service.description.count, table.sources.map(\.count).max() ?? 0)
            let widths = table.destinations.map { max($0.count, 1) }
            out += table.service.description.padding(toLength: rowWidth, withPad: " ", startingAt: 0)
            for (index, destination) in table.destinations.enumerated() {
                out += "  " + destination.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }
            out += "\n"
            for (row, source) in table.sources.enumerated() {
                out += source.padding(toLength: rowWidth, withPad: " ", startingAt: 0)
                for (column, cell) in table.cells[row].enumerated() {
                    out += "  " + symbol(cell).padding(toLength: widths[column], withPad: " ", startingAt: 0)
                }
                out += "\n"
            }
            out += "\n"
        }
        out += "\(matrix.allowedCount) flows allowed, \(matrix.mustBlock.count) blocked to served ports (expected-deny probes):\n"
        for flow in matrix.mustBlock {
            let by = flow.blockedBy.map { " by \($0.component) (\($0.code))" } ?? ""
            out += "  \(flow.source) -> \(flow.destination) \(flow.protocol)/\(flow.port)\(by)\n"
        }
        return out
    }

    /// RFC 4180: quote a field holding a comma, quote or line break.
    func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    func csv(_ matrix: ExpectedMatrix) -> String {
        // Blockers by flow, looked up once per cell instead of scanning the list.
        var blockers: [String: Blocker] = [:]
        for flow in matrix.mustBlock { blockers["\(flow.protocol)/\(flow.port) \(flow.source) \(flow.destination)"] = flow.blockedBy }
        var out = "protocol,port,source,destination,verdict,blocked_by,code\n"
        for table in matrix.tables {
            for (row, source) in table.sources.enumerated() {
                for (column, destination) in table.destinations.enumerated() {
                    guard let verdict = table.cells[row][column] else { continue }
                    let blocker = verdict == .blocked ? blockers["\(table.service) \(source) \(destination)"] : nil
                    let fields = [
                        "\(table.service.protocol)", "\(table.service.port)", source, destination, verdict.rawValue, blocker?.component ?? "",
                        blocker?.code ?? "",
                    ]
                    out += fields.map(csvField).joined(separator: ",") + "\n"
                }
            }
        }
        return out
    }
}
