import ArgumentParser
import Foundation
import PlumbCore
import PlumbDiagram
import PlumbModelIO

struct DiagramCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diagram",
        abstract: "Draw the VPC of a model as SVG: the drawing the collector's page shows, without live state.",
        discussion: """
            Zones side by side, public and private subnets with their route table and network ACL, instances with \
            their ENIs (static-IP ENIs marked) and security groups, NATs with their Elastic IPs, load balancers, the \
            bastion, the internet gateway, endpoints outside the VPC, and the intended paths between them. The layout \
            depends on the model alone: the same model gives the same file.
            """)

    @OptionGroup var options: ModelOption

    @Option(help: ArgumentHelp("Where to write the SVG (default: standard output).", valueName: "FILE"))
    var output: String?

    @Option(help: "Subnets with more instances than this draw them as one box of counts (NATs and bastions stay).")
    var collapseAbove = 12

    func run() throws {
        let (topology, _) = try options.loadValid()
        let svg = SVGRenderer.render(DiagramLayout(collapseAbove: collapseAbove).layout(topology), standalone: true)
        guard let output else {
            print(svg, terminator: "")
            return
        }
        do {
            try Data(svg.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        } catch {
            printError("cannot write \(output): \(error.localizedDescription)")
            throw ExitCode(1)
        }
        printError("wrote \(output) (\(topology.subnets.count) subnets, \(topology.instances.count) instances)")
    }
}
