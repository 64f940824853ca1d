import ArgumentParser
import Foundation
import PlumbCore
import PlumbModelIO

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say whether the model allows a flow, hop by hop, and what blocks it.",
        discussion: """
            SRC and DST: an instance id or name, an ENI id, an IPv4 address (inside or outside the VPC), a load balancer, \
            an endpoint id, or 'internet'. For icmp, --port is the ICMP type (8 = echo request). Exits 0 for either verdict, \
            1 when the model has errors, 2 when SRC or DST names nothing.

            'internet' is an address outside every block the model names; the verdict and the hops are its own. After them             come the classes of internet addresses the model tells apart (the blocks its rules, routes, prefix lists and             endpoints name), each with its verdict (json: internetClasses). An explicit address means just that address.
            """)

    @OptionGroup var options: ModelOption

    @Option(help: ArgumentHelp("Source.", valueName: "SRC"))
    var from: String

    @Option(help: ArgumentHelp("Destination.", valueName: "DST"))
    var to: String

    @Option(help: "Destination port (ICMP type for icmp).")
    var port: Int

    @Option(name: .customLong("protocol"), help: "tcp, udp or icmp.")
    var proto: String = "tcp"

    @Option(help: "text or json.")
    var format: TextOrJSON = .text

    func run() throws {
        guard let ipProtocol = IPProtocol(proto), [.tcp, .udp, .icmp].contains(ipProtocol) else {
            throw ValidationError("--protocol must be tcp, udp or icmp, not '\(proto)'")
        }
        let (topology, _) = try options.loadValid()
        let network = Network(topology)
        let explanation: Explanation
        do {
            explanation = try network.explain(from: from, to: to, port: port, protocol: ipProtocol)
        } catch {
            printError("plumb explain: \(error)")
            throw ExitCodes.badQuestion
        }
        switch format {
        case .json: print(try jsonText(explanation))
        case .text: print(ExplanationText.render(explanation))
        }
    }
}

/// Renders an explanation as a hop-by-hop path for people.
enum ExplanationText {
    static func render(_ explanation: Explanation) -> String {
        let flow = explanation.protocol == .icmp ? "icmp type \(explanation.port)" : "\(explanation.protocol) \(explanation.port)"
        var lines = ["\(explanation.source) -> \(explanation.destination) \(flow): \(explanation.verdict.rawValue.uppercased())"]
        let componentWidth = min(28, explanation.hops.map(\.component.count).max() ?? 0)
        for (number, hop) in explanation.hops.enumerated() {
            let mark =
                switch hop.outcome {
                case .pass: "ok  "
                case .fail: "FAIL"
                case .info: "    "
                }
            let way = hop.direction == .forward ? "  " : "<-"
            let component = hop.component.padding(toLength: componentWidth, withPad: " ", startingAt: 0)
            lines.append(String(format: "%3d %@ %@ %@  %@", number + 1, way, mark, component, hop.detail))
        }
        if let blocker = explanation.blockedBy {
            lines.append(
                "blocked by \(blocker.component) (\(blocker.componentType)) on the \(blocker.direction == .forward ? "request" : "reply"): \(blocker.code)\(blocker.rule.map { ", \($0)" } ?? "")"
            )
        }
        if let classes = explanation.internetClasses, let summary = explanation.internetSummary {
            lines.append("")
            lines.append("internet: \(summary)")
            lines += internetClassLines(classes)
        }
        return lines.joined(separator: "\n")
    }

    /// One line per internet class: what it is, the address evaluated, the verdict and why.
    static func internetClassLines(_ classes: [InternetClassVerdict]) -> [String] {
        let width = min(48, classes.map(\.description.count).max() ?? 0)
        let addressWidth = classes.map(\.representative.description.count).max() ?? 0
        return classes.map { verdict in
            let why =
                verdict.blockedBy.map { "\($0.component)\($0.rule.map { " \($0)" } ?? "") (\($0.code))" }
                ?? (verdict.allowedBy.isEmpty ? "" : verdict.allowedBy.joined(separator: ", "))
            let name = verdict.description.padding(toLength: max(width, verdict.description.count), withPad: " ", startingAt: 0)
            let address = verdict.representative.description.padding(toLength: addressWidth, withPad: " ", startingAt: 0)
            let line = "  \(name)  \(address)  \(verdict.verdict.rawValue.uppercased().padding(toLength: 7, withPad: " ", startingAt: 0))  \(why)"
            return String(line.reversed().drop { $0 == " " }.reversed())
        }
    }
}
