import PlumbCollector
import PlumbCore
import PlumbModelIO
import PlumbWire
import Testing

@Suite("plans over the seed architecture")
struct PlanTests {
    let network: Network = {
        let loaded = ModelLoader.load(path: karmaPath)
        return Network(loaded.topology!)
    }()

    func placements(_ ids: [String]) -> [AgentPlacement] {
        ids.map { id in AgentPlacement(agentId: id, instance: network.instances.firstIndex { $0.id == id }!, responderPort: 7471) }
    }

    @Test("every ordered pair of subnets with agents is covered, without a full mesh, within the budget")
    func coverage() {
        let plans = PlanGenerator(network: network).plans(for: placements(karmaInstances))
        let probes = plans.values.flatMap { $0 }
        var covered: Set<String> = []
        for probe in probes where probe.purpose == .crossSubnet || probe.purpose == .peer {
            let target = network.instances.firstIndex { $0.id == probe.targetInstance }!
            let targetSubnet = network.subnets[network.interfaces[network.instances[target].interfaces[0]].subnet].id
            covered.insert("\(probe.sourceSubnet)->\(targetSubnet)")
        }
        let subnets = Set(
            karmaInstances.map { id in
                network.subnets[network.interfaces[network.instances[network.instances.firstIndex { $0.id == id }!].interfaces[0]].subnet].id
            })
        for from in subnets { for to in subnets where from != to { #expect(covered.contains("\(from)->\(to)"), "\(from) -> \(to)") } }
        #expect(plans.values.allSatisfy { $0.count <= PlannerSettings().maxProbesPerAgent })
        let echo = probes.filter { $0.purpose == .peer || $0.purpose == .crossSubnet }.count
        #expect(echo < karmaInstances.count * (karmaInstances.count - 1))
    }

    @Test("every private subnet that may reach the echo egresses through the NAT from two agents, checking the Elastic IP")
    func natEgress() {
        let probes = PlanGenerator(network: network).plans(for: placements(karmaInstances)).values.flatMap { $0 }
        let egress = probes.filter { $0.purpose == .natEgress }
        for subnet in ["subnet-app-a", "subnet-app-b"] {
            #expect(Set(egress.filter { $0.sourceSubnet == subnet }.map(\.sourceAgent)).count == 2, "\(subnet)")
        }
        let viaNAT = egress.filter { $0.nat != nil }
        // Four agents behind the NAT, and the NAT instance itself (same Elastic IP).
        #expect(viaNAT.count == 5)
        #expect(viaNAT.allSatisfy { $0.expectedEgressIP == "203.0.113.10" && $0.nat == "nat-karma" })
        #expect(viaNAT.filter { $0.sourceAgent != "i-nat" }.allSatisfy { $0.components.contains(ComponentRef(.natInstance, "nat-karma")) })
        // Public instances leave with their own Elastic IP; the data tier may not use port 80 (its NACL), so it has no echo
        // probe, and its NAT use is covered by the S3 probes instead.
        #expect(egress.first { $0.sourceAgent == "i-bastion" }?.expectedEgressIP == "203.0.113.20")
        #expect(probes.contains { $0.sourceSubnet == "subnet-data-a" && $0.purpose == .endpoint && $0.nat == "nat-karma" })
    }

    @Test("expected-deny probes carry the intent and the component that should block; static ENIs expect their owner")
    func denyAndStatic() {
        let probes = PlanGenerator(network: network).plans(for: placements(karmaInstances)).values.flatMap { $0 }
        let denies = probes.filter { $0.purpose == .expectedDeny }
        #expect(!denies.isEmpty)
        #expect(denies.allSatisfy { !$0.expectReach && $0.intent != nil && $0.blockingComponent != nil })
        let statics = probes.filter { $0.purpose == .staticENI }
        #expect(Set(statics.compactMap(\.interface)) == ["eni-zookeeper-static", "eni-redis-master"])
        #expect(statics.first { $0.interface == "eni-redis-master" }?.expectedInstance == "i-redis-a")
    }

    @Test("plans stay stable when an agent leaves: the others keep most of their probes")
    func stability() {
        let generator = PlanGenerator(network: network)
        let before = generator.plans(for: placements(karmaInstances))
        let after = generator.plans(for: placements(karmaInstances.filter { $0 != "i-app-2" }))
        var kept = 0
        var total = 0
        for (agent, probes) in before where agent != "i-app-2" {
            let ids = Set(after[agent]?.map(\.id) ?? [])
            total += probes.count
            kept += probes.filter { ids.contains($0.id) }.count
        }
        #expect(Double(kept) / Double(total) > 0.8, "kept \(kept) of \(total)")
    }

    // MARK: - Service flows (what the application uses)

    @Test("every allow intent between instances is probed on its own port by a TCP connect, from two agents where two exist")
    func allowIntents() {
        let probes = PlanGenerator(network: network).plans(for: placements(karmaInstances)).values.flatMap { $0 }
        let services = probes.filter { $0.purpose == .service }
        for (name, port, sources) in [
            ("app reaches the database", 5432, 2), ("app reaches redis on the master's static IP", 6379, 2),
            ("bastion reaches every private instance over ssh", 22, 1),
        ] {
            let flows = services.filter { $0.intent == name }
            #expect(Set(flows.map(\.sourceAgent)).count == sources, "\(name): \(flows.map { "\($0.sourceAgent) -> \($0.target)" })")
            #expect(flows.allSatisfy { $0.kind == "tcp" && $0.port == port && $0.expectReach })
        }
        // The database flow crosses the database's group by the rule that admits the app tier: removing that rule
        // fails it, and the group is on its path to blame.
        let database = services.first { $0.intent == "app reaches the database" }
        #expect(
            database?.components.contains { $0.kind == .securityGroup && $0.id == "sg-db" } == true, "\(String(describing: database?.components))")
        #expect(database?.targetInstance == "i-db")
        #expect(plansWithinBudget(probes))
    }

    @Test("every tcp ingress rule of a security group whose source holds an agent is exercised by a planned probe")
    func ruleCoverage() {
        let plans = PlanGenerator(network: network).plans(for: placements(karmaInstances))
        let probes = plans.values.flatMap { $0 }
        let agentInterfaces = placements(karmaInstances).compactMap { network.instances[$0.instance].interfaces.first }
        var eligible = 0
        var covered = 0
        var missing: [String] = []
        for (groupIndex, group) in network.securityGroups.enumerated() {
            // Instances holding the group (a load balancer's groups are proven by its own probes).
            let holders = Set(
                network.interfaces.indices.filter { index in
                    guard case .instance = network.interfaces[index].owner else { return false }
                    return network.interfaces[index].securityGroups.contains(groupIndex)
                })
            for rule in group.ingress where rule.protocolNumber == 6 {
                guard let ports = rule.ports else { continue }
                let sources = agentInterfaces.filter { interface in
                    switch rule.peer {
                    case .cidr(let block): return block.contains(network.interfaces[interface].privateIp)
                    case .group(let peer): return network.interfaces[interface].securityGroups.contains(peer)
                    case .prefixList(let blocks): return blocks.contains { $0.contains(network.interfaces[interface].privateIp) }
                    }
                }
                // A flow needs a source and a target on different instances (an ensemble's only member cannot
                // probe itself through its group).
                guard sources.contains(where: { source in holders.contains { instanceOwning($0) != instanceOwning(source) } }) else { continue }
                eligible += 1
                let sourceInstances = Set(sources.map { network.instances[instanceOwning($0)].id })
                let exercised = probes.contains { probe in
                    guard let port = probe.port, ports.contains(port), sourceInstances.contains(probe.sourceInstance),
                        let target = network.interfaces.firstIndex(where: { $0.privateIp.description == probe.target })
                    else { return false }
                    return holders.contains(target)
                }
                if exercised { covered += 1 } else { missing.append("\(group.id) ingress[\(rule.index)] from \(rule.peerText)") }
            }
        }
        #expect(eligible > 5)
        #expect(Double(covered) >= 0.95 * Double(eligible), "\(covered) of \(eligible); not exercised: \(missing)")
    }

    @Test("service flows stay where they are when an agent joins")
    func serviceStability() {
        let generator = PlanGenerator(network: network)
        let before = generator.serviceProbes(for: placements(karmaInstances.filter { $0 != "i-web-2" }))
        let after = generator.serviceProbes(for: placements(karmaInstances))
        var kept = 0
        var total = 0
        for (agent, probes) in before {
            let ids = Set(after[agent]?.map(\.id) ?? [])
            total += probes.count
            kept += probes.filter { ids.contains($0.id) }.count
        }
        #expect(total > 0)
        #expect(Double(kept) / Double(total) > 0.8, "kept \(kept) of \(total)")
    }

    func instanceOwning(_ interface: Int) -> Int {
        network.instances.firstIndex { $0.interfaces.contains(interface) }!
    }

    func plansWithinBudget(_ probes: [PlannedProbe]) -> Bool {
        Dictionary(grouping: probes, by: \.sourceAgent).values.allSatisfy { $0.count <= PlannerSettings().maxProbesPerAgent }
    }
}
