// plumb-bench blame: a fault simulator that measures blame. Models (generated VPCs at several sizes, the seed
// architecture and the lab's model) are planned; single faults of every kind each model can express are injected;
// the observed result of every planned probe is derived by evaluating the faulted model with the same engine (plus
// an overlay for dead processes: NATs, load balancers, targets, instances, endpoints), with random loss; the real pair
// state machines, blame engine and alert book are stepped through time; and per fault kind the benchmark prints top-1
// accuracy, how often the alert admits ambiguity, detection time in probe intervals and false alerts. Fault-free
// runs with loss (false alerts per simulated hour) and flapping faults (episodes per fault) complete the table.
//
// Each table is printed per timing: lockstep (every probe at the interval's start, read at once), spread (each agent
// at its own moment, its probes over the interval, reports batched every second and up to a second in flight, the
// fault at a random moment) and slow (spread, with one agent in four reporting up to a probe interval late).
//
//   swift run -c release plumb-bench blame [--faults N] [--loss 0.01] [--hours H] [--sizes 2,6,20] [--seed S]
//       [--timing lockstep,spread,slow] [--only KIND] [--verbose]
import Foundation
import PlumbCore
import PlumbModelIO

enum BlameBench {
    struct Options {
        var faults = 1_000
        var loss = 0.01
        var hours = 1.0
        var sizes = [2, 6, 20]
        var seed: UInt64 = 7
        var verbose = false
        var only: String?
        var timings = ["lockstep", "spread", "slow"]
    }

    static let timings: [String: SimulationTiming] = ["lockstep": .lockstep, "spread": .spread, "slow": .slowReporters]

    static func run(_ arguments: [String]) async throws {
        var options = Options()
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            if flag == "--verbose" {
                options.verbose = true
                continue
            }
            switch (flag, iterator.next()) {
            case ("--faults", let value?): options.faults = Int(value) ?? options.faults
            case ("--loss", let value?): options.loss = Double(value) ?? options.loss
            case ("--hours", let value?): options.hours = Double(value) ?? options.hours
            case ("--sizes", let value?): options.sizes = value.split(separator: ",").compactMap { Int($0) }
            case ("--seed", let value?): options.seed = UInt64(value) ?? options.seed
            case ("--only", let value?): options.only = value
            case ("--timing", let value?): options.timings = value.split(separator: ",").map(String.init)
            default:
                fatalError(
                    "usage: plumb-bench blame [--faults N] [--loss P] [--hours H] [--sizes 2,6,20] [--seed S] [--timing lockstep,spread,slow] [--only KIND] [--verbose]"
                )
            }
        }
        var models: [(name: String, topology: Topology)] = []
        for size in options.sizes {
            for variant in 0..<2 {
                let text = generatedModel(perTier: size, zones: 2, directTargets: variant == 1)
                let loaded = ModelLoader.load(text: text, file: "generated-\(size)")
                guard let topology = loaded.topology, !loaded.diagnostics.hasErrors else {
                    fatalError("the generated model is invalid:\n" + loaded.diagnostics.map(\.description).joined(separator: "\n"))
                }
                models.append(("generated \(size)/tier\(variant == 1 ? " (targets probed directly)" : "")", topology))
            }
        }
        for path in ["examples/karma.yaml", "deploy/lab/lab.yaml"] {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), let topology = ModelLoader.load(text: text, file: path).topology {
                models.append((path, topology))
            } else {
                print("  (\(path) not found: run from the repository's top level to include it)")
            }
        }
        for name in options.timings {
            guard let timing = timings[name] else { fatalError("--timing: \(name) is not one of \(timings.keys.sorted().joined(separator: ", "))") }
            print("")
            print("== timing: \(name)")
            play(models: models, timing: timing, options: options)
        }
    }

    static func play(models: [(name: String, topology: Topology)], timing: SimulationTiming, options: Options) {
        var random = SplitMix64(seed: options.seed)
        let simulations = models.map { FaultSimulator(name: $0.name, topology: $0.topology, loss: options.loss, timing: timing) }
        print("blame simulator: \(simulations.count) models, \(options.faults) single faults, \(Int(options.loss * 100)) % loss on tcp/http results")
        for simulation in simulations {
            print(
                "  \(simulation.name): \(simulation.network.instances.count) instances, \(simulation.agents.count) agents, \(simulation.probes.count) planned probes"
            )
        }
        // Faults, spread over models and kinds.
        var tallies: [FaultKind: Tally] = [:]
        var unobservable: [FaultKind: Int] = [:]
        var injected = 0
        var attempts = 0
        while injected < options.faults && attempts < options.faults * 20 {
            attempts += 1
            let model = random.below(simulations.count)
            let kind = FaultKind.allCases[random.below(FaultKind.allCases.count)]
            if let only = options.only, kind.rawValue != only { continue }
            guard let fault = simulations[model].fault(kind, random: &random) else { continue }
            let trace = ProcessInfo.processInfo.environment["PLUMB_BLAME_TRACE"] != nil ? { (line: String) in print(line) } : nil
            let outcome = simulations[model].play(fault, random: &random, trace: trace)
            guard outcome.observable else {
                unobservable[kind, default: 0] += 1
                continue
            }
            injected += 1
            tallies[kind, default: Tally()].add(outcome)
            if options.verbose && (!outcome.correct || outcome.falseAlerts > 0 || outcome.episodes > 1) {
                print(
                    "  \(outcome.correct ? "ok  " : "MISS") \(simulations[model].name): \(fault.label) -> \(outcome.firstAlert ?? "no alert")"
                        + (outcome.falseDetails.isEmpty ? "" : "; also \(outcome.falseDetails.joined(separator: ", "))")
                        + (outcome.episodes > 1 ? "; \(outcome.episodes) episodes" : ""))
            }
        }
        // Fault-free runs with loss.
        let intervalsPerHour = 3_600 / 2
        var quietAlerts = 0
        var quietHours = 0.0
        for index in simulations.indices {
            let intervals = Int(options.hours * Double(intervalsPerHour))
            quietAlerts += simulations[index].quiet(intervals: intervals, random: &random, onFalse: options.verbose ? { print($0) } : nil)
            quietHours += Double(intervals) / Double(intervalsPerHour)
        }
        report(tallies: tallies, unobservable: unobservable, quietAlerts: quietAlerts, quietHours: quietHours)
    }

    struct Tally {
        var faults = 0
        var correct = 0
        var ambiguous = 0
        var detected = 0
        var detection = 0
        var maxDetection = 0
        var falseAlerts = 0
        var episodes = 0
        var unresolved = 0
        var namedOrTied = 0

        mutating func add(_ outcome: FaultOutcome) {
            faults += 1
            if outcome.correct { correct += 1 }
            if outcome.namedOrTied { namedOrTied += 1 }
            if outcome.ambiguous { ambiguous += 1 }
            if let detection = outcome.detection {
                detected += 1
                self.detection += detection
                maxDetection = max(maxDetection, detection)
            }
            falseAlerts += outcome.falseAlerts
            episodes += outcome.episodes
            if !outcome.resolved { unresolved += 1 }
        }
    }

    static func report(tallies: [FaultKind: Tally], unobservable: [FaultKind: Int], quietAlerts: Int, quietHours: Double) {
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : text + String(repeating: " ", count: width - text.count) }
        func percent(_ part: Int, _ whole: Int) -> String { String(format: "%.1f %%", Double(part) / Double(max(1, whole)) * 100) }
        func row(_ name: String, _ tally: Tally, episodes: Bool) -> String {
            pad(name, 24) + pad("\(tally.faults)", 8) + pad(percent(tally.correct, tally.faults), 9)
                + pad(percent(tally.namedOrTied, tally.faults), 10)
                + pad(percent(tally.ambiguous, tally.faults), 11)
                + pad(String(format: "%.1f / %d", Double(tally.detection) / Double(max(1, tally.detected)), tally.maxDetection), 19)
                + pad("\(tally.falseAlerts)", 7)
                + pad(episodes ? String(format: "%.2f", Double(tally.episodes) / Double(max(1, tally.faults))) : "", 10)
                + "\(tally.unresolved)"
        }
        print("")
        print(
            pad("fault", 24) + pad("faults", 8) + pad("top-1", 9) + pad("or tied", 10) + pad("ambiguous", 11) + pad("detect (mean/max)", 19)
                + pad("false", 7) + pad("episodes", 10) + "unresolved")
        var total = Tally()
        var pathMax = 0
        for kind in FaultKind.allCases {
            guard let tally = tallies[kind] else { continue }
            print(row(kind.rawValue, tally, episodes: true))
            total.faults += tally.faults
            total.correct += tally.correct
            total.namedOrTied += tally.namedOrTied
            total.ambiguous += tally.ambiguous
            total.falseAlerts += tally.falseAlerts
            total.detected += tally.detected
            total.detection += tally.detection
            total.maxDetection = max(total.maxDetection, tally.maxDetection)
            total.unresolved += tally.unresolved
            // Silence is detected by the silence window, a flap by as many cycles as the hysteresis needs: neither is
            // the k + 1 of a steady path fault.
            if kind != .instanceDead && kind != .natFlapping { pathMax = max(pathMax, tally.maxDetection) }
        }
        print(row("all", total, episodes: false))
        if !unobservable.isEmpty {
            print(
                "not observable by the plan (no planned probe sees them; not counted): "
                    + unobservable.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", "))
        }
        let accuracy = Double(total.correct) / Double(max(1, total.faults)) * 100
        let flapping = tallies[.natFlapping].map { Double($0.episodes) / Double(max(1, $0.faults)) } ?? 0
        print("")
        print(
            "targets: top-1 >= 99 % over >= 1,000 faults: \(String(format: "%.1f %%", accuracy)) over \(total.faults) \(accuracy >= 99 && total.faults >= 1_000 ? "(met)" : "(not met)"); named or tied: \(percent(total.namedOrTied, total.faults))"
        )
        print(
            "         0 false alerts in fault-free runs with loss: \(quietAlerts) in \(String(format: "%.1f", quietHours)) simulated hours \(quietAlerts == 0 ? "(met)" : "(not met)"); during faults: \(total.falseAlerts)"
        )
        print("         one episode per flapping fault: \(String(format: "%.2f", flapping)) \(flapping == 1 ? "(met)" : "(not met)")")
        print("         detection of steady path faults within k + 1 = 4 intervals: max \(pathMax) \(pathMax <= 4 ? "(met)" : "(not met)")")
    }
}

extension BlameBench {
    /// A VPC of the seed architecture's shape, `zones` zones with public, web, app and data subnets, `perTier`
    /// instances per tier and zone, a NAT per zone (an instance in the first, a gateway in the others), an internal
    /// load balancer over the app tier, S3 and an egress echo, a bastion and a static-IP ENI per zone. With
    /// `directTargets`, the app tier also admits the web tier on its target port, so agents can probe the targets.
    static func generatedModel(perTier: Int, zones: Int, directTargets: Bool) -> String {
        var lines: [String] = [
            "version: 1", "name: generated", "vpc: {id: vpc-gen, cidrBlocks: [10.0.0.0/16]}", "internetGateway: {id: igw-gen}",
            "prefixLists:", "  - {id: pl-s3, cidrs: [203.0.113.100/32]}", "subnets:",
        ]
        let tiers = ["public", "web", "app", "data"]
        for zone in 0..<zones {
            for (t, tier) in tiers.enumerated() {
                lines.append(
                    "  - {id: subnet-\(tier)-\(zone), cidr: 10.0.\(zone * 10 + t).0/24, zone: z\(zone), routeTable: rtb-\(tier == "public" ? "public" : "private-\(zone)"), networkAcl: acl-\(tier)}"
                )
            }
        }
        lines.append("routeTables:")
        lines.append("  - {id: rtb-public, routes: [{destination: 10.0.0.0/16, target: local}, {destination: 0.0.0.0/0, target: igw-gen}]}")
        for zone in 0..<zones {
            lines.append(
                "  - {id: rtb-private-\(zone), routes: [{destination: 10.0.0.0/16, target: local}, {destination: 0.0.0.0/0, target: nat-\(zone)}]}")
        }
        lines.append("networkAcls:")
        lines.append(
            "  - {id: acl-public, ingress: [{rule: 100, protocol: all, cidr: 10.0.0.0/16, action: allow}, {rule: 110, protocol: tcp, ports: 22, cidr: 192.0.2.0/24, action: allow}, {rule: 120, protocol: tcp, ports: 1024-65535, cidr: 0.0.0.0/0, action: allow}], egress: [{rule: 100, protocol: all, cidr: 0.0.0.0/0, action: allow}]}"
        )
        for tier in tiers.dropFirst() {
            lines.append(
                "  - {id: acl-\(tier), ingress: [{rule: 100, protocol: all, cidr: 10.0.0.0/16, action: allow}, {rule: 110, protocol: tcp, ports: 1024-65535, cidr: 0.0.0.0/0, action: allow}], egress: [{rule: 100, protocol: all, cidr: 10.0.0.0/16, action: allow}, {rule: 110, protocol: tcp, ports: 80, cidr: 0.0.0.0/0, action: allow}, {rule: 120, protocol: tcp, ports: 443, cidr: 0.0.0.0/0, action: allow}]}"
            )
        }
        lines += [
            "securityGroups:",
            "  - {id: sg-agent, ingress: [{protocol: udp, ports: 7471, cidr: 10.0.0.0/16}, {protocol: tcp, ports: 7471, cidr: 10.0.0.0/16}]}",
            "  - {id: sg-bastion, ingress: [{protocol: tcp, ports: 22, cidr: 192.0.2.0/24}]}",
            "  - {id: sg-nat, ingress: [{protocol: tcp, ports: 80, cidr: 10.0.0.0/16}, {protocol: tcp, ports: 443, cidr: 10.0.0.0/16}], egress: [{protocol: tcp, ports: 80, cidr: 0.0.0.0/0}, {protocol: tcp, ports: 443, cidr: 0.0.0.0/0}, {protocol: all, cidr: 10.0.0.0/16}]}",
            "  - {id: sg-web, ingress: [{protocol: tcp, ports: 80, cidr: 10.0.0.0/16}, {protocol: tcp, ports: 22, securityGroup: sg-bastion}]}",
            "  - {id: sg-lb, ingress: [{protocol: tcp, ports: 8080, securityGroup: sg-web}]}",
            "  - {id: sg-app, ingress: [{protocol: tcp, ports: 8080, securityGroup: sg-lb}, {protocol: tcp, ports: 22, securityGroup: sg-bastion}"
                + (directTargets ? ", {protocol: tcp, ports: 8080, securityGroup: sg-web}]}" : "]}"),
            "  - {id: sg-db, ingress: [{protocol: tcp, ports: 5432, securityGroup: sg-app}, {protocol: tcp, ports: 22, securityGroup: sg-bastion}]}",
            "instances:",
            "  - {id: i-bastion, roles: [bastion], interfaces: [{id: eni-bastion, subnet: subnet-public-0, privateIp: 10.0.0.11, elasticIp: 203.0.113.11, securityGroups: [sg-bastion, sg-agent], deviceIndex: 0}]}",
        ]
        var appTargets: [String] = []
        for zone in 0..<zones {
            if zone == 0 {
                lines.append(
                    "  - {id: i-nat-0, roles: [nat], interfaces: [{id: eni-nat-0, subnet: subnet-public-0, privateIp: 10.0.0.10, elasticIp: 203.0.113.10, securityGroups: [sg-nat, sg-agent], deviceIndex: 0, sourceDestCheck: false}]}"
                )
            }
            for (t, tier) in tiers.enumerated().dropFirst() {
                let group = tier == "data" ? "sg-db" : "sg-\(tier)"
                let listen = tier == "web" ? 80 : tier == "app" ? 8080 : 5432
                for host in 0..<perTier {
                    let id = "i-\(tier)-\(zone)-\(host)"
                    if tier == "app" { appTargets.append(id) }
                    var interfaces =
                        "[{id: eni-\(tier)-\(zone)-\(host), subnet: subnet-\(tier)-\(zone), privateIp: 10.0.\(zone * 10 + t).\(10 + host), securityGroups: [\(group), sg-agent], deviceIndex: 0}"
                    if tier == "data" && host == 0 {
                        interfaces +=
                            ", {id: eni-static-\(zone), subnet: subnet-data-\(zone), privateIp: 10.0.\(zone * 10 + t).250, securityGroups: [\(group), sg-agent], deviceIndex: 1}"
                    }
                    lines.append(
                        "  - {id: \(id), roles: [\(tier == "data" ? "db" : tier)], listens: [{port: \(listen)}], interfaces: \(interfaces)]}")
                }
            }
        }
        lines.append("nats:")
        lines.append("  - {id: nat-0, kind: instance, instance: i-nat-0, elasticIp: 203.0.113.10}")
        for zone in 1..<max(1, zones) {
            lines.append(
                "  - {id: nat-\(zone), kind: gateway, subnet: subnet-public-\(zone), privateIp: 10.0.\(zone * 10).250, elasticIp: 203.0.113.\(20 + zone)}"
            )
        }
        lines += [
            "loadBalancers:",
            "  - id: lb-app",
            "    scheme: internal",
            "    subnets: [" + (0..<zones).map { "subnet-app-\($0)" }.joined(separator: ", ") + "]",
            "    nodes: [" + (0..<zones).map { "{subnet: subnet-app-\($0), privateIp: 10.0.\($0 * 10 + 2).200}" }.joined(separator: ", ") + "]",
            "    securityGroups: [sg-lb]",
            "    listeners: [{port: 8080}]",
            "    targets: [\(appTargets.joined(separator: ", "))]",
            "endpoints:",
            "  - {id: s3, kind: s3, url: \"https://s3.example/health\", prefixList: pl-s3, port: 443, usedBy: [\"role:app\", \"role:db\"]}",
            "  - {id: egress-echo, kind: egress-echo, url: \"http://203.0.113.200/ip\", addresses: [203.0.113.200/32], port: 80}",
            "intents:",
            "  - {name: ssh to private instances only from the bastion, from: instances, except: [role:bastion], to: private, port: 22, expect: deny}",
            "  - {name: only the app tier reaches the database, from: [role:web, role:bastion], to: role:db, port: 5432, expect: deny}",
            "probing: {intervalSeconds: 2, failuresToDown: 3, window: 5, successesToUp: 2}",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}
