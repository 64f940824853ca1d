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
}
