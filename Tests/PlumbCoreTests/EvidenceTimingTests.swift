import PlumbCore
import Testing

/// The three sequences the lab failed on, replayed through the real pair states, blame engine and alert book with
/// time as the lab has it: each agent probes at its own moment of the 2 s interval, reports every second, and a
/// busy agent's reports arrive late. What is asserted is what the operator's receiver gets: the alerts fired and
/// resolved.
@Suite("blame waits for its evidence: faults and recoveries spreading over the pairs")
struct EvidenceTimingTests {
    static let interval: Int64 = 2_000
    static let hysteresis = Hysteresis()
    static let holdDown = Int64(hysteresis.window + hysteresis.successesToUp) * interval

    static func engine() -> BlameEngine {
        // The collector's settings for the lab: silence 10 s, late 3.3 s, evidence wait one interval plus the report
        // interval.
        BlameEngine(
            silenceMs: 10_000, lateMs: 3_333, holdDownMs: holdDown, vouchAfter: hysteresis.window,
            confirmSingle: hysteresis.failuresToDown + 1, evidenceWaitMs: interval + 1_000, natInstances: ["nat": "i-nat"])
    }

    /// One planned pair, its moment in the interval and when its agent's reports arrive.
    struct Planned {
        var probe: PlannedProbe
        var phase: Int64
    }

    /// An agent: its subnet, and how long its reports take to arrive (a function of the result's time, so a stall
    /// can be played).
    struct Reporter {
        var subnet: String
        var delay: @Sendable (Int64) -> Int64?
    }

    static func probe(_ id: String, agent: String, subnet: String, target: String, _ components: [ComponentRef]) -> PlannedProbe {
        PlannedProbe(
            id: id, purpose: target == "echo" ? .natEgress : .crossSubnet, kind: target == "echo" ? "http" : "udp-echo", target: "10.0.0.1",
            port: 443, expectReach: true, sourceAgent: agent, sourceInstance: agent, sourceSubnet: subnet, targetName: target,
            targetInstance: target == "echo" ? nil : target, components: components, evaluatedProtocol: "tcp", evaluatedPort: 443)
    }

    /// Plays `pairs` from 0 to `until`: a result taken at `t` fails when `fails(probe, t)`; it reaches the collector
    /// when its agent's report does (nil: the agent is cut off, the result is lost to it). The engine and the book
    /// evaluate every second. Returns every alert change with its time.
    static func play(
        _ pairs: [Planned], agents: [String: Reporter], until: Int64, fails: (PlannedProbe, Int64) -> Bool
    ) -> [(at: Int64, change: AlertChange)] {
        var states = pairs.map { _ in PairState() }
        var book = AlertBook(holdDownMs: holdDown)
        let engine = Self.engine()
        var lastSeen: [String: Int64] = [:]
        // As the collector does: an agent heard from after being late is held (failures towards it wait) until the pairs
        // towards it have had the results to agree again.
        var heldUntil: [String: Int64] = [:]
        let lateMs = engine.lateMs
        var arrivals: [(at: Int64, pair: Int?, agent: String, taken: Int64, failed: Bool)] = []
        for (index, pair) in pairs.enumerated() {
            var taken = pair.phase
            while taken < until {
                if let delay = agents[pair.probe.sourceAgent]?.delay(taken) {
                    arrivals.append((taken + delay, index, pair.probe.sourceAgent, taken, fails(pair.probe, taken)))
                }
                taken += interval
            }
        }
        // Heartbeats: every agent reports every second, results or not.
        for (agent, reporter) in agents {
            var sent: Int64 = 0
            while sent < until {
                if let delay = reporter.delay(sent) { arrivals.append((sent + delay, nil, agent, sent, false)) }
                sent += 1_000
            }
        }
        arrivals.sort { ($0.at, $0.taken) < ($1.at, $1.taken) }
        var changes: [(at: Int64, change: AlertChange)] = []
        var next = 0
        var now: Int64 = 1_000
        while now < until {
            while next < arrivals.count && arrivals[next].at <= now {
                let arrival = arrivals[next]
                if let seen = lastSeen[arrival.agent], arrival.at - seen > lateMs {
                    heldUntil[arrival.agent] = arrival.at + Int64(hysteresis.successesToUp + 1) * interval + lateMs
                }
                lastSeen[arrival.agent] = max(lastSeen[arrival.agent] ?? 0, arrival.at)
                if let index = arrival.pair {
                    _ = states[index].observe(disagrees: arrival.failed, rttMs: nil, at: arrival.taken, hysteresis: hysteresis)
                }
                next += 1
            }
            let views = pairs.indices.map { index in
                PairView(
                    key: "\(pairs[index].probe.sourceAgent)/\(pairs[index].probe.id)", probe: pairs[index].probe, state: states[index],
                    reason: states[index].status == .disagreeing ? .blocked : nil)
            }
            let activity = agents.keys.sorted().map { agent in
                AgentActivity(
                    agentId: agent, instance: agent, subnet: agents[agent]?.subnet, lastSeenMs: lastSeen[agent] ?? 0, heldUntilMs: heldUntil[agent])
            }
            let findings = engine.findings(BlameInput(pairs: views, agents: activity, open: Array(book.open.values), now: now))
            changes += book.reconcile(findings, now: now).map { (now, $0) }
            now += 1_000
        }
        return changes
    }

    static func fired(_ changes: [(at: Int64, change: AlertChange)]) -> [(at: Int64, alert: Alert)] {
        changes.compactMap { if case .fired(let alert) = $0.change { ($0.at, alert) } else { nil } }
    }

    static func resolved(_ changes: [(at: Int64, change: AlertChange)]) -> [(at: Int64, alert: Alert)] {
        changes.compactMap { if case .resolved(let alert) = $0.change { ($0.at, alert) } else { nil } }
    }

    static let nat = ComponentRef(.natInstance, "nat")
    static let route = ComponentRef(.routeTable, "rtb-private", scope: "route 0.0.0.0/0")
    static func egress(_ subnet: String) -> ComponentRef { ComponentRef(.networkACL, "acl-\(subnet)", scope: "egress tcp/443 rule 100") }
    static func local(_ subnet: String) -> ComponentRef { ComponentRef(.networkACL, "acl-\(subnet)", scope: "egress udp/7471 rule 100") }

    /// Three private subnets of two agents each; each agent probes the egress echo through the NAT and a peer in the
    /// next subnet directly. Subnets' agents probe at different moments of the interval.
    static func seedPairs(phases: [String: Int64]) -> [Planned] {
        let subnets = ["app", "data", "web"]
        var pairs: [Planned] = []
        for (position, subnet) in subnets.enumerated() {
            let next = subnets[(position + 1) % subnets.count]
            for number in 1...2 {
                let agent = "\(subnet)-\(number)"
                let phase = (phases[subnet] ?? 0) + Int64(number) * 100
                pairs.append(
                    Planned(probe: probe("egress:echo", agent: agent, subnet: subnet, target: "echo", [egress(subnet), route, nat]), phase: phase))
                pairs.append(
                    Planned(
                        probe: probe(
                            "cross-subnet:\(next)-\(number)", agent: agent, subnet: subnet, target: "\(next)-\(number)",
                            [
                                local(subnet), ComponentRef(.networkACL, "acl-\(next)", scope: "ingress udp/7471 rule 100"),
                                ComponentRef(.instance, "\(next)-\(number)"),
                            ]),
                        phase: phase))
            }
        }
        return pairs
    }

    @Test(
        "the NAT fails while two subnets' agents report late: one nat_failure listing every private subnet, nothing on a NACL",
        arguments: [Int64(0), 300, 700, 1_100, 1_500, 1_900], [Int64(2_500), 4_500])
    func natWhileOthersReportLate(faultOffset: Int64, lag: Int64) throws {
        // app probes early in the interval and reports at once; data and web probe late and their reports take `lag`
        // (a busy machine). Their last passes before the fault are on record when app's pairs cross the threshold.
        let pairs = Self.seedPairs(phases: ["app": 0, "data": 1_200, "web": 1_600])
        let agents: [String: Reporter] = Dictionary(
            uniqueKeysWithValues: Set(pairs.map(\.probe.sourceAgent)).map { agent in
                (agent, Reporter(subnet: String(agent.prefix { $0 != "-" }), delay: { _ in agent.hasPrefix("app") ? 300 : lag }))
            })
        let fault: Int64 = 30_000 + faultOffset
        let changes = Self.play(pairs, agents: agents, until: 60_000) { probe, taken in
            taken >= fault && probe.components.contains(Self.nat)
        }
        let fired = Self.fired(changes)
        #expect(fired.map { "\($0.alert.kind.rawValue) \($0.alert.component)" } == ["nat_failure nat"], "\(fired.map(\.alert.summary))")
        // It grows as the other subnets' pairs fail: the alert as last told lists every private subnet, and no NACL
        // that those pairs would have cleared is left in it as a tie.
        let told = changes.compactMap { change -> Alert? in
            switch change.change {
            case .fired(let alert), .updated(let alert): alert.kind == .natFailure ? alert : nil
            case .resolved: nil
            }
        }
        let alert = try #require(told.last)
        #expect(alert.evidence.first == "affected subnets: app, data, web")
        // The route that sends every one of these flows to the NAT is on every failing path and on no passing one: no
        // probe tells it apart. The NACL of the subnet that failed first is not.
        #expect(!(alert.alternatives ?? []).contains { $0.contains("acl-") }, "\(alert.summary)")
        // Detected once the first pairs are over their threshold (k intervals) and the evidence due is in, waiting at
        // most a probe interval and a report interval for it: within k + 1 intervals when reports are on time.
        let detection = try #require(fired.first).at - fault
        let k = Int64(Self.hysteresis.failuresToDown)
        #expect(detection <= (lag <= 2_500 ? (k + 1) * Self.interval : k * Self.interval + Self.engine().evidenceWaitMs) + 300, "\(detection) ms")
    }

    @Test("a NACL denies one subnet's egress while the other subnets' NAT pairs keep passing: the NACL, not the NAT")
    func naclWhileNATPasses() throws {
        let pairs = Self.seedPairs(phases: ["app": 0, "data": 1_200, "web": 1_600])
        let agents: [String: Reporter] = Dictionary(
            uniqueKeysWithValues: Set(pairs.map(\.probe.sourceAgent)).map { agent in
                (agent, Reporter(subnet: String(agent.prefix { $0 != "-" }), delay: { _ in agent.hasPrefix("app") ? 300 : 2_500 }))
            })
        let changes = Self.play(pairs, agents: agents, until: 60_000) { probe, taken in
            taken >= 30_000 && probe.components.contains(Self.egress("app"))
        }
        let fired = Self.fired(changes)
        #expect(fired.map { "\($0.alert.kind.rawValue) \($0.alert.component)" } == ["unexpected_block acl-app"], "\(fired.map(\.alert.summary))")
        #expect(fired.first?.alert.evidence.contains { $0.hasPrefix("evidence aligned") || $0.hasPrefix("decided after waiting") } == true)
    }

    @Test(
        "a subnet cut off comes back agent by agent, one of them stalling after its first report: one subnet_silent, one resolution, no agent_silent")
    func subnetComesBackWhole() {
        let pairs = Self.seedPairs(phases: ["app": 0, "data": 600, "web": 1_200])
        let cut: Range<Int64> = 20_000..<50_000
        var agents: [String: Reporter] = [:]
        for agent in Set(pairs.map(\.probe.sourceAgent)) {
            let subnet = String(agent.prefix { $0 != "-" })
            agents[agent] = Reporter(
                subnet: subnet,
                delay: { taken in
                    guard subnet == "web" else { return 200 }
                    if cut.contains(taken) { return nil }
                    // After the repair, web-1 is back at once; web-2 sends one report (its spool's first batch), then
                    // stalls for 12 s (a backoff, a slow disk) before it reports steadily.
                    if agent == "web-2" && taken >= 50_000 && taken < 64_000 { return taken < 51_000 ? 1_500 : 64_000 - taken + 500 }
                    return 300
                })
        }
        let changes = Self.play(pairs, agents: agents, until: 130_000) { probe, taken in
            // While the subnet is cut off, nothing reaches it either.
            cut.contains(taken) && (probe.sourceSubnet == "web" || probe.targetInstance?.hasPrefix("web") == true)
        }
        let fired = Self.fired(changes)
        #expect(fired.map { "\($0.alert.kind.rawValue) \($0.alert.component)" } == ["subnet_silent web"], "\(fired.map(\.alert.summary))")
        let resolved = Self.resolved(changes)
        #expect(resolved.map { "\($0.alert.kind.rawValue) \($0.alert.component)" } == ["subnet_silent web"])
        // Resolved once the last agent reports steadily and the hold-down has passed, not before.
        #expect((resolved.first?.at ?? 0) >= 64_000 + Self.holdDown)
    }
}

/// Latency regressions are blamed as paths are: on the target that all the slow round trips share, never on every
/// target of a busy prober, or of a machine under load.
@Suite("latency regressions: the common part, not a busy prober")
struct LatencyBlameTests {
    /// Three agents each probing three targets, all with a learned baseline; `slow` lists the `source→target` pairs
    /// regressed.
    static func findings(slow: Set<String>) -> [Finding] {
        var pairs: [PairView] = []
        for source in ["s1", "s2", "s3"] {
            for target in ["t1", "t2", "t3"] {
                let probe = EvidenceTimingTests.probe(
                    "cross-subnet:\(target)", agent: source, subnet: "a", target: target, [ComponentRef(.instance, target)])
                var state = PairState()
                state.status = .agreeing
                state.agreeingStreak = 30
                state.rttSamples = 40
                state.rttBaselineMs = 0.2
                state.latencyRegressed = slow.contains("\(source)→\(target)")
                pairs.append(PairView(key: "\(source)/\(probe.id)", probe: probe, state: state))
            }
        }
        let agents = ["s1", "s2", "s3"].map { AgentActivity(agentId: $0, instance: $0, subnet: "a", lastSeenMs: 10_000) }
        return BlameEngine().findings(BlameInput(pairs: pairs, agents: agents, now: 10_000)).filter { $0.kind == .latencyRegression }
    }

    @Test(
        "slow pairs → the target blamed",
        arguments: [
            // Every source sees t2 slow: t2.
            (["s1→t2", "s2→t2", "s3→t2"], ["t2"]),
            // Two of its three sources: still t2.
            (["s1→t2", "s3→t2"], ["t2"]),
            // One busy prober, slow to everything: nothing.
            (["s1→t1", "s1→t2", "s1→t3"], []),
            // Scattered over every target (a machine under load): nothing.
            (["s1→t1", "s2→t2", "s3→t3"], []),
            // One slow pair: nothing.
            (["s2→t3"], []),
            // A busy prober beside a slow target: the target, from the other sources.
            (["s1→t1", "s1→t2", "s1→t3", "s2→t3", "s3→t3"], ["t3"]),
        ] as [([String], [String])])
    func blamed(slow: [String], expected: [String]) {
        #expect(Self.findings(slow: Set(slow)).map(\.component) == expected)
    }
}
