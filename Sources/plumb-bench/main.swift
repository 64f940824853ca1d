// plumb-bench: generates a large VPC model and measures the engine. Prints figures a person can compare run to run.
//
//   swift run -c release plumb-bench [probes|footprint|collector|failover|blame|diagram …] [--instances N] [--subnets N] [--groups N] [--acls N] [--seconds S]
//
// Figures: model load (parse + decode + validate, with intents) against a plain JSON parse of the same
// document as the baseline; compile; explain calls per second on one core after warm-up (by resolved party and
// by name); and the whole subnet-pair x port-class matrix.
import Foundation
import PlumbCore
import PlumbModelIO

// Agent benchmarks (see ProbeBench.swift and FootprintBench.swift).
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "probes" {
    try await ProbeBench.run(Array(CommandLine.arguments.dropFirst(2)))
    exit(0)
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "collector" {
    try await CollectorBench.run(Array(CommandLine.arguments.dropFirst(2)))
    exit(0)
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "failover" {
    try await FailoverBench.run(Array(CommandLine.arguments.dropFirst(2)))
    exit(0)
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "blame" {
    try await BlameBench.run(Array(CommandLine.arguments.dropFirst(2)))
    exit(0)
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "diagram" {
    try DiagramBench.run(Array(CommandLine.arguments.dropFirst(2)))
    exit(0)
}
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "footprint" {
    try await FootprintBench.run(Array(CommandLine.arguments.dropFirst(2)))
    exit(0)
}

struct Options {
    var instances = 10_000
    var subnets = 200
    var groups = 500
    var acls = 50
    var seconds = 3.0

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { fatalError("missing value after \(flag)") }
            switch flag {
            case "--instances": instances = Int(value)!
            case "--subnets": subnets = Int(value)!
            case "--groups": groups = Int(value)!
            case "--acls": acls = Int(value)!
            case "--seconds": seconds = Double(value)!
            default: fatalError("unknown option \(flag); see the header of Sources/plumb-bench/main.swift")
            }
        }
        precondition(subnets <= 250, "subnets are /24s inside 10.0.0.0/16 (at most 250)")
        precondition(instances <= subnets * 240, "at most 240 instances per /24 subnet")
    }
}

func generate(_ options: Options) -> Topology {
    var random = SplitMix64(seed: 42)
    let zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
    let publicCount = max(3, options.subnets / 20)
    var topology = Topology(
        name: "bench", vpc: VPC(id: "vpc-bench", cidrBlocks: [CIDR("10.0.0.0/16")!]), internetGateway: InternetGateway(id: "igw-bench"))
    topology.routeTables.append(RouteTable(id: "rtb-public", routes: [Route(destination: .any, target: "igw-bench")]))
    for (z, zone) in zones.enumerated() {
        topology.routeTables.append(
            RouteTable(id: "rtb-private-\(z)", main: z == 0 ? true : nil, routes: [Route(destination: .any, target: "nat-\(z)")]))
        topology.nats.append(
            NAT(
                id: "nat-\(z)", kind: .gateway, subnet: "subnet-\(z)", privateIp: IPv4Address(10, 0, UInt8(z), 250),
                elasticIp: IPv4Address(203, 0, 113, UInt8(z + 1))))
        _ = zone
    }
    let ports = [22, 80, 443, 5432, 6379, 8080, 9092, 11211]
    for a in 0..<options.acls {
        var ingress: [NetworkACLRule] = []
        for r in 0..<8 {
            ingress.append(
                NetworkACLRule(
                    rule: 100 + r * 10, protocol: .tcp, ports: PortRange(ports[(a + r) % ports.count]),
                    cidr: CIDR("10.0.\(random.below(options.subnets)).0/24")!,
                    action: r == 0 ? .deny : .allow))
        }
        ingress.append(NetworkACLRule(rule: 200, protocol: .all, cidr: CIDR("10.0.0.0/16")!, action: .allow))
        ingress.append(NetworkACLRule(rule: 210, protocol: .tcp, ports: PortRange(1024, 65535), cidr: .any, action: .allow))
        let egress = [
            NetworkACLRule(rule: 100, protocol: .all, cidr: CIDR("10.0.0.0/16")!, action: .allow),
            NetworkACLRule(rule: 110, protocol: .tcp, ports: PortRange(443), cidr: .any, action: .allow),
            NetworkACLRule(rule: 120, protocol: .tcp, ports: PortRange(1024, 65535), cidr: .any, action: .allow),
        ]
        topology.networkAcls.append(NetworkACL(id: "acl-\(a)", ingress: ingress, egress: egress))
    }
    for s in 0..<options.subnets {
        let isPublic = s < publicCount
        topology.subnets.append(
            Subnet(
                id: "subnet-\(s)", cidr: CIDR("10.0.\(s).0/24")!, zone: zones[s % zones.count],
                routeTable: isPublic ? "rtb-public" : "rtb-private-\(s % zones.count)", networkAcl: "acl-\(s % options.acls)"))
    }
    for g in 0..<options.groups {
        var ingress: [SecurityGroupRule] = []
        for _ in 0..<(3 + random.below(6)) {
            let port = PortRange(ports[random.below(ports.count)])
            switch random.below(3) {
            case 0: ingress.append(SecurityGroupRule(protocol: .tcp, ports: port, securityGroup: "sg-\(random.below(options.groups))"))
            case 1: ingress.append(SecurityGroupRule(protocol: .tcp, ports: port, cidr: CIDR("10.0.\(random.below(options.subnets)).0/24")!))
            default: ingress.append(SecurityGroupRule(protocol: .tcp, ports: port, cidr: CIDR("10.0.0.0/16")!))
            }
        }
        topology.securityGroups.append(SecurityGroup(id: "sg-\(g)", name: "group-\(g)", ingress: ingress))
    }
    let roles = ["web", "app", "db", "cache", "queue", "worker"]
    for i in 0..<options.instances {
        let subnet = i % options.subnets
        let host = 10 + i / options.subnets
        // Instances of one role share their groups, as in real VPCs; some carry one more group of their own.
        let tier = (i % roles.count) * 7 + subnet % 7
        var groups = ["sg-\(tier % options.groups)", "sg-\((tier + 50) % options.groups)"]
        if random.below(10) == 0 { groups.append("sg-\(random.below(options.groups))") }
        let isPublic = subnet < publicCount
        topology.instances.append(
            Instance(
                id: "i-\(i)", name: "host-\(i)", roles: [roles[i % roles.count]],
                interfaces: [
                    NetworkInterface(
                        id: "eni-\(i)", subnet: "subnet-\(subnet)", privateIp: IPv4Address(10, 0, UInt8(subnet), UInt8(host)),
                        publicIp: isPublic ? IPv4Address(UInt32(0xC633_6400) &+ UInt32(i)) : nil, securityGroups: Array(Set(groups)), deviceIndex: 0)
                ]))
    }
    topology.intents = [
        Intent(name: "databases are not on the internet", from: ["internet"], to: ["role:db"], port: 5432, expect: .deny),
        Intent(name: "no telnet anywhere", from: ["instances"], to: ["private"], port: 23, expect: .deny),
    ]
    return topology
}

func measure<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let value = try body()
    let elapsed = ContinuousClock.now - start
    return (value, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

func say(_ text: String) {
    print(text)
    fflush(nil)
}

func format(_ value: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", value) }

let options = Options(CommandLine.arguments)
say("plumb-bench: \(options.instances) instances, \(options.subnets) subnets, \(options.groups) security groups, \(options.acls) NACLs")
let (topology, generateTime) = measure { generate(options) }
let yaml = try ModelWriter.yaml(topology)
let json = try ModelWriter.json(topology)
say("generate: \(format(generateTime)) s; document: \(yaml.utf8.count / 1024) KiB YAML, \(json.utf8.count / 1024) KiB JSON")

let (_, jsonBaseline) = measure { _ = try? JSONSerialization.jsonObject(with: Data(json.utf8)) }
let (loadedJSON, loadJSON) = measure { ModelLoader.load(text: json, file: "bench.json") }
let (loadedYAML, loadYAML) = measure { ModelLoader.load(text: yaml, file: "bench.yaml") }
precondition(loadedJSON.isValid && loadedYAML.isValid, "generated model is invalid: \(loadedJSON.diagnostics.prefix(5))")
let (_, validateOnly) = measure { _ = Validator.validate(topology, sourceMap: SourceMap(file: "bench")) }
say("baseline: JSONSerialization parse of the JSON document: \(format(jsonBaseline)) s")
say("load+validate JSON: \(format(loadJSON)) s (\(format(loadJSON / jsonBaseline, 1))x baseline)")
say("load+validate YAML: \(format(loadYAML)) s (\(format(loadYAML / jsonBaseline, 1))x baseline)")
say("validate only (with \(topology.intents.count) intents): \(format(validateOnly)) s")

let (network, compileTime) = measure { Network(topology) }
say("compile: \(format(compileTime)) s")

// Explain throughput on one core: random instance pairs and ports, resolved once.
var random = SplitMix64(seed: 7)
let parties = network.instances.map { Party.interface($0.interfaces[0], address: network.interfaces[$0.interfaces[0]].privateIp) }
let flows: [(Party, Party, Int)] = (0..<65_536).map { _ in
    (parties[random.below(parties.count)], parties[random.below(parties.count)], [22, 80, 443, 5432, 6379][random.below(5)])
}
func explainRate(seconds: Double, _ body: (Int) -> Verdict) -> (rate: Double, allowed: Int) {
    var calls = 0
    var allowed = 0
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    let start = ContinuousClock.now
    while ContinuousClock.now < deadline {
        for _ in 0..<1000 {
            if body(calls) == .allowed { allowed += 1 }
            calls += 1
        }
    }
    let elapsed = ContinuousClock.now - start
    return (Double(calls) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18), allowed)
}
_ = explainRate(seconds: 0.5) { i in
    (try? network.explain(from: flows[i & 0xFFFF].0, to: flows[i & 0xFFFF].1, port: flows[i & 0xFFFF].2, protocol: .tcp))?.verdict ?? .blocked
}
let byParty = explainRate(seconds: options.seconds) { i in
    (try? network.explain(from: flows[i & 0xFFFF].0, to: flows[i & 0xFFFF].1, port: flows[i & 0xFFFF].2, protocol: .tcp))?.verdict ?? .blocked
}
say("explain (resolved parties, one core): \(Int(byParty.rate)) calls/s; \(format(1e6 / byParty.rate, 2)) us/call")
let verdicts = explainRate(seconds: options.seconds) { i in
    (try? network.verdict(from: flows[i & 0xFFFF].0, to: flows[i & 0xFFFF].1, port: flows[i & 0xFFFF].2, protocol: .tcp, details: false))?.0
        ?? .blocked
}
say(
    "verdict only (no hop text, one core): \(Int(verdicts.rate)) calls/s; \(format(verdicts.rate / byParty.rate, 1))x explain"
)
let names = network.instances.map(\.label)
let byName = explainRate(seconds: options.seconds) { i in
    let a = names[(i &* 7919) % names.count]
    let b = names[(i &* 104_729 &+ 1) % names.count]
    return (try? network.explain(from: a, to: b, port: 443, protocol: .tcp))?.verdict ?? .blocked
}
say("explain (by name, one core): \(Int(byName.rate)) calls/s")

let portClasses = [ServicePort(.tcp, 22), ServicePort(.tcp, 443), ServicePort(.tcp, 5432), ServicePort(.udp, 53), ServicePort(.icmp, 8)]
let (matrix, matrixTime) = measure { network.subnetMatrix(ports: portClasses) }
let cells = matrix.verdicts.reduce(0) { $0 + $1.reduce(0) { $0 + $1.count } }
let allowedCells = matrix.verdicts.reduce(0) { $0 + $1.reduce(0) { $0 + $1.filter { $0 == .allowed }.count } }
say(
    "subnet matrix: \(options.subnets)x\(options.subnets) pairs x \(portClasses.count) port classes = \(cells) flows in \(format(matrixTime)) s (\(allowedCells) allowed)"
)
