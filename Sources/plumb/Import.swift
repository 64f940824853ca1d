import ArgumentParser
import Foundation
import PlumbCore
import PlumbModelIO

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Build a Plumb model from a cloud's own description.", subcommands: [ImportAWS.self])
}

struct ImportAWS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aws",
        abstract: "Build a model from the JSON that `aws ec2 describe-* --output json` writes.",
        discussion: """
            DIR holds describe-vpcs.json, describe-subnets.json, describe-route-tables.json, describe-internet-gateways.json, \
            describe-nat-gateways.json, describe-security-groups.json, describe-network-acls.json, \
            describe-network-interfaces.json, describe-instances.json, describe-addresses.json, \
            describe-vpc-endpoints.json and describe-prefix-lists.json (elbv2 describe-load-balancers.json, \
            describe-target-groups.json, describe-listeners.json and describe-target-health.json are optional). \
            Resource ids in the model are the AWS ids. With several VPCs, pick one with --vpc.
            """)

    @Option(help: ArgumentHelp("Directory with the describe-*.json files.", valueName: "DIR"))
    var from: String

    @Option(help: ArgumentHelp("Where to write the model (.yaml, .yml or .json); - for stdout.", valueName: "FILE"))
    var output: String

    @Option(help: "The VPC to import when the files hold several.")
    var vpc: String?

    func run() throws {
        let result = AWSImport.run(directory: from, vpc: vpc)
        for diagnostic in result.diagnostics { printError(diagnostic.description) }
        guard let topology = result.topology, !result.diagnostics.hasErrors else {
            printError("plumb import aws: nothing written; fix the input above and run again")
            throw ExitCodes.invalidModel
        }
        let text = output.hasSuffix(".json") ? try ModelWriter.json(topology) : try ModelWriter.yaml(topology)
        if output == "-" {
            print(text, terminator: "")
        } else {
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
            } catch {
                printError("plumb import aws: cannot write \(output): \(error.localizedDescription)")
                throw ExitCodes.invalidModel
            }
            printError(
                "wrote \(output): \(topology.subnets.count) subnets, \(topology.instances.count) instances, \(topology.securityGroups.count) security groups, \(topology.routeTables.count) route tables"
            )
        }
    }
}
