import PlumbCore
import Testing

/// The blame engine as the old correlator tests call it (no open alerts).
struct Engine {
    var engine = BlameEngine()
    init(_ engine: BlameEngine = BlameEngine()) { self.engine = engine }
    func findings(pairs: [PairView], agents: [AgentActivity], placements: [InterfacePlacementDrift], now: Int64) -> [Finding] {
        engine.findings(BlameInput(pairs: pairs, agents: agents, placements: placements, now: now))
    }
}

@Suite("drift: pair states, correlation, alert lifecycle, SHA-256")
struct DriftTests {
    @Test("SHA-256 and HMAC-SHA256 match the published test vectors")
    func sha256() {
        #expect(hexString(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hexString(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(hexString(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // RFC 4231 test cases 1 and 2.
        #expect(
            hexString(SHA256.hmac(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(
            hexString(SHA256.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // RFC 4231 case 6: a key longer than the block.
        #expect(
            hexString(
                SHA256.hmac(key: [UInt8](repeating: 0xaa, count: 131), message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        #expect(constantTimeEqual([1, 2, 3], [1, 2, 3]) && !constantTimeEqual([1, 2, 3], [1, 2, 4]) && !constantTimeEqual([1], [1, 2]))
    }

    /// Feeds a sequence of results (true = disagrees) and returns the transitions after each.
    func run(_ sequence: [Bool], _ hysteresis: Hysteresis = Hysteresis()) -> (PairState, [[PairState.Transition]]) {
        var state = PairState()
        var out: [[PairState.Transition]] = []
        for (index, disagrees) in sequence.enumerated() {
            out.append(state.observe(disagrees: disagrees, rttMs: nil, at: Int64(index), hysteresis: hysteresis))
        }
        return (state, out)
    }

    @Test(
        "hysteresis: down after 3 disagreements of the last 5, up after 2 agreements in a row",
        arguments: [
            // (results, final status, index of the transition to disagreeing or nil)
            ([false, false, true, true, false, true], PairState.Status.disagreeing, 5 as Int?),
            ([true, true, false, false, true], .disagreeing, 4),
            ([true, true, false, false, false, true], .agreeing, nil),
            ([true, false, true, false, false, false, true, false, true], .agreeing, nil),
            ([true, true, true], .disagreeing, 2),
        ])
    func hysteresis(results: [Bool], status: PairState.Status, downAt: Int?) {
        let (state, transitions) = run(results)
        #expect(state.status == status)
        #expect(transitions.firstIndex { $0.contains(.disagreeing) } == downAt)
    }

    @Test("recovery needs m agreements in a row, and a single flap does not take it down again")
    func recovery() {
        let (state, transitions) = run([true, true, true, false, true, false, false, true, false])
        #expect(transitions[2] == [.disagreeing])
        #expect(transitions[6] == [.agreeing])
        #expect(transitions.flatMap { $0 }.filter { $0 == .disagreeing }.count == 1)
        #expect(state.status == .agreeing)
    }

    @Test("latency: a learned baseline, then three slow results of five regress and two normal ones recover")
    func latency() {
        var state = PairState()
        let hysteresis = Hysteresis()
        var transitions: [PairState.Transition] = []
        for index in 0..<25 { transitions += state.observe(disagrees: false, rttMs: 0.5, at: Int64(index), hysteresis: hysteresis) }
        #expect(transitions.isEmpty)
        for index in 25..<28 { transitions += state.observe(disagrees: false, rttMs: 20, at: Int64(index), hysteresis: hysteresis) }
        #expect(transitions == [.latencyRegressed])
        for index in 28..<30 { transitions += state.observe(disagrees: false, rttMs: 0.6, at: Int64(index), hysteresis: hysteresis) }
        #expect(transitions == [.latencyRegressed, .latencyRecovered])
    }

    func probe(
        _ id: String, agent: String, subnet: String, target: String, components: [String], reach: Bool = true,
        purpose: PlannedProbe.Purpose = .crossSubnet,
        blocking: String? = nil, intent: String? = nil
    ) -> PlannedProbe {
        PlannedProbe(
            id: id, purpose: purpose, kind: "udp-echo", target: "10.0.0.1", port: 7471, expectReach: reach, sourceAgent: agent, sourceInstance: agent,
            sourceSubnet: subnet, targetName: target, targetInstance: target, components: components.map(ref), blockingComponent: blocking.map(ref),
            intent: intent, evaluatedProtocol: "tcp", evaluatedPort: 443)
    }

    /// `kind:id/scope` as a component: `network-acl:acl-app/egress/tcp/443`.
    func ref(_ text: String) -> ComponentRef {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let rest = parts[1].split(separator: "/", maxSplits: 1).map(String.init)
        return ComponentRef(ComponentKind(rawValue: parts[0])!, rest[0], scope: rest.count > 1 ? rest[1] : nil)
    }

    func view(_ probe: PlannedProbe, _ status: PairState.Status, _ reason: Disagreement? = nil) -> PairView {
        var state = PairState()
        state.status = status
        state.recent = status == .disagreeing ? [true, true, true, true] : [false, false]
        state.agreeingStreak = status == .agreeing ? 10 : 0
        // Results of the same round: the failures began at 500 ms, every pair last reported at 1 s.
        state.failingSinceMs = status == .disagreeing ? 500 : nil
        state.lastAtMs = 1_000
        return PairView(key: "\(probe.sourceAgent)/\(probe.id)", probe: probe, state: state, reason: reason)
    }

    /// The seed architecture in small: app and data subnets egress through the NAT; app → data direct.
    var pairs: [PlannedProbe] {
        [
            probe(
                "s3", agent: "app-1", subnet: "app", target: "s3",
                components: ["network-acl:acl-app/egress/tcp/443", "route-table:rtb-private", "nat-instance:nat", "endpoint:s3"]),
            probe(
                "s3", agent: "app-2", subnet: "app", target: "s3",
                components: ["network-acl:acl-app/egress/tcp/443", "route-table:rtb-private", "nat-instance:nat", "endpoint:s3"]),
            probe(
                "s3", agent: "db-1", subnet: "data", target: "s3",
                components: ["network-acl:acl-data/egress/tcp/443", "route-table:rtb-private", "nat-instance:nat", "endpoint:s3"]),
            probe(
                "db", agent: "app-1", subnet: "app", target: "db-1",
                components: ["network-acl:acl-app/egress/udp/7471", "route-table:rtb-private", "instance:db-1"]),
            probe(
                "db", agent: "app-2", subnet: "app", target: "db-1",
                components: ["network-acl:acl-app/egress/udp/7471", "route-table:rtb-private", "instance:db-1"]),
            probe(
                "app", agent: "db-1", subnet: "data", target: "app-1",
                components: ["network-acl:acl-data/egress/udp/7471", "route-table:rtb-private", "instance:app-1"]),
        ]
    }

    @Test("a failed NAT, a dead host and a NACL change blame three different components")
    func blame() {
        let correlator = Engine()
        let agents = ["app-1", "app-2", "db-1"].map {
            AgentActivity(agentId: $0, instance: $0, subnet: $0.hasPrefix("app") ? "app" : "data", lastSeenMs: 1_000)
        }
        let all = pairs

        // NAT: every egress fails from both subnets; direct flows work.
        let nat = correlator.findings(
            pairs: all.map { view($0, $0.id == "s3" ? .disagreeing : .agreeing, $0.id == "s3" ? .blocked : nil) }, agents: agents, placements: [],
            now: 2_000)
        #expect(nat.map(\.kind) == [.natFailure])
        #expect(nat.first?.component == "nat")
        #expect(nat.first?.pairs.count == 3)
        #expect(nat.first?.evidence.first == "affected subnets: app, data")

        // A dead host: only the flows to db-1 fail; its agent is still reporting (the process, not the host, answers).
        let host = correlator.findings(
            pairs: all.map { view($0, $0.targetName == "db-1" ? .disagreeing : .agreeing, $0.targetName == "db-1" ? .blocked : nil) }, agents: agents,
            placements: [], now: 2_000)
        #expect(host.map(\.kind) == [.unexpectedBlock])
        #expect(host.first?.component == "db-1")
        #expect(host.first?.componentType == "instance")

        // A NACL: egress 443 denied for the app subnet only; the data subnet still egresses through the same NAT.
        let acl = correlator.findings(
            pairs: all.map {
                let failing = $0.id == "s3" && $0.sourceSubnet == "app"
                return view($0, failing ? .disagreeing : .agreeing, failing ? .blocked : nil)
            }, agents: agents, placements: [], now: 2_000)
        #expect(acl.map(\.kind) == [.unexpectedBlock])
        #expect(acl.first?.component == "acl-app")
        #expect(acl.first?.componentType == "network-acl")
    }

    @Test("exposure names the flow, the component that should block it and the intent")
    func exposure() {
        let deny = probe(
            "deny:db-1:22", agent: "web-1", subnet: "web", target: "db-1", components: [], reach: false, purpose: .expectedDeny,
            blocking: "security-group:sg-db", intent: "only the bastion reaches ssh")
        let findings = Engine().findings(pairs: [view(deny, .disagreeing, .reached)], agents: [], placements: [], now: 0)
        #expect(findings.map(\.kind) == [.unexpectedReachability])
        #expect(findings.first?.component == "sg-db")
        #expect(findings.first?.summary.contains("web-1 → db-1:443") == true)
        #expect(findings.first?.summary.contains("'only the bastion reaches ssh'") == true)
    }

    @Test("one silent agent is agent_silent; a whole silent subnet is one subnet_silent, not one alert per agent")
    func silence() {
        let correlator = Engine(BlameEngine(silenceMs: 10_000))
        let agents = [
            AgentActivity(agentId: "a1", instance: "a1", subnet: "app", lastSeenMs: 0),
            AgentActivity(agentId: "a2", instance: "a2", subnet: "app", lastSeenMs: 0),
            AgentActivity(agentId: "d1", instance: "d1", subnet: "data", lastSeenMs: 0),
            AgentActivity(agentId: "d2", instance: "d2", subnet: "data", lastSeenMs: 19_000),
        ]
        let findings = correlator.findings(pairs: [], agents: agents, placements: [], now: 20_000)
        #expect(findings.map(\.kind).sorted { $0.rawValue < $1.rawValue } == [.agentSilent, .subnetSilent])
        #expect(findings.first { $0.kind == .subnetSilent }?.component == "app")
        #expect(findings.first { $0.kind == .agentSilent }?.component == "d1")
    }

    @Test("failures towards a late agent wait for the silence verdict; the NAT's own silent agent folds into nat_failure")
    func lateAndFold() {
        let correlator = Engine(BlameEngine(silenceMs: 9_000, natInstances: ["nat": "nat-box"]))
        // db-1's agent is 4 s late (over a third of 9 s): the failing flows to it are not blamed on the path yet.
        var agents = ["app-1", "app-2"].map { AgentActivity(agentId: $0, instance: $0, subnet: "app", lastSeenMs: 10_000) }
        agents.append(AgentActivity(agentId: "db-1", instance: "db-1", subnet: "data", lastSeenMs: 6_000))
        let towardsDB = pairs.filter { $0.sourceAgent != "db-1" }.map {
            view($0, $0.targetName == "db-1" ? .disagreeing : .agreeing, $0.targetName == "db-1" ? .blocked : nil)
        }
        #expect(correlator.findings(pairs: towardsDB, agents: agents, placements: [], now: 10_000).isEmpty)
        // On time, the same failures are blamed on db-1.
        agents[2].lastSeenMs = 9_000
        #expect(correlator.findings(pairs: towardsDB, agents: agents, placements: [], now: 10_000).map(\.component) == ["db-1"])
        // Just back from being late: still held until the pairs towards it have had their chance to agree.
        agents[2].heldUntilMs = 12_000
        #expect(correlator.findings(pairs: towardsDB, agents: agents, placements: [], now: 10_000).isEmpty)
        agents[2].heldUntilMs = nil

        // The NAT's link is down: egress fails and the agent on the NAT instance is silent. One alert, not two.
        agents[2].lastSeenMs = 10_000
        agents.append(AgentActivity(agentId: "nat-agent", instance: "nat-box", subnet: "public", lastSeenMs: 0))
        let egress = pairs.map { view($0, $0.id == "s3" ? .disagreeing : .agreeing, $0.id == "s3" ? .blocked : nil) }
        let findings = correlator.findings(pairs: egress, agents: agents, placements: [], now: 10_000)
        #expect(findings.map(\.kind) == [.natFailure])
        #expect(findings.first?.evidence.contains { $0.hasPrefix("the agent on the NAT instance is silent too") } == true)
        // Without a NAT failure the same silence is its own alert.
        let quiet = correlator.findings(pairs: pairs.map { view($0, .agreeing) }, agents: agents, placements: [], now: 10_000)
        #expect(quiet.map(\.kind) == [.agentSilent])
    }

    @Test("flows to and from a failing NAT's own host join its nat_failure; the same failures without one are their own alert")
    func natHostFlowsFold() {
        let correlator = Engine(BlameEngine(silenceMs: 30_000, natInstances: ["nat": "nat-box"]))
        let agents = ["app-1", "app-2", "db-1", "nat-box"].map {
            AgentActivity(agentId: $0, instance: $0, subnet: $0 == "nat-box" ? "public" : "app", lastSeenMs: 10_000)
        }
        // The NAT's link is down (a flap: its agent is not late yet): egress fails, and so do the probes towards the NAT
        // instance's responder and its agent's own probes, which cross the host's security group.
        let host = [
            probe(
                "nat", agent: "app-1", subnet: "app", target: "nat-box",
                components: ["network-acl:acl-app/egress/udp/7471", "instance:nat-box", "security-group:sg-nat"]),
            probe(
                "nat", agent: "app-2", subnet: "app", target: "nat-box",
                components: ["network-acl:acl-app/egress/udp/7471", "instance:nat-box", "security-group:sg-nat"]),
            probe("app", agent: "nat-box", subnet: "public", target: "app-1", components: ["security-group:sg-nat", "instance:app-1"]),
        ]
        let failing =
            pairs.map { view($0, $0.id == "s3" ? .disagreeing : .agreeing, $0.id == "s3" ? .blocked : nil) }
            + host.map { view($0, .disagreeing, .blocked) }
        let findings = correlator.findings(pairs: failing, agents: agents, placements: [], now: 10_000)
        #expect(findings.map(\.kind) == [.natFailure])
        #expect(findings.first?.pairs.count == 6)
        // The NAT explains them itself: its host is on every one of their paths and nothing passed through it since.
        let natPairs = Set(findings.first?.pairs ?? [])
        #expect(natPairs.isSuperset(of: host.map { "\($0.sourceAgent)/\($0.id)" }))
        // Egress works: the same host failures are a finding of their own (the NAT is not what failed).
        let alone = correlator.findings(
            pairs: pairs.map { view($0, .agreeing) } + host.map { view($0, .disagreeing, .blocked) }, agents: agents, placements: [], now: 10_000)
        #expect(!alone.isEmpty && !alone.contains { $0.kind == .natFailure })
    }

    @Test("refused registrations are one identity_conflict per claimed instance, critical, until conflictMs after the last")
    func identityConflicts() {
        let engine = BlameEngine(conflictMs: 60_000)
        let refusals = [
            RegistrationRefusal(
                instance: "i-db", agentId: "i-db", reason: "source_address", source: "10.0.1.10", detail: "not db's address", atMs: 1_000),
            RegistrationRefusal(
                instance: "i-db", agentId: "i-db", reason: "source_address", source: "10.0.1.10", detail: "not db's address", atMs: 5_000),
            RegistrationRefusal(instance: "i-web", agentId: "x", reason: "instance_in_use", source: nil, detail: "live agent", atMs: 2_000),
        ]
        let findings = engine.findings(BlameInput(pairs: [], refusals: refusals, now: 10_000))
        #expect(findings.map(\.kind) == [.identityConflict, .identityConflict])
        let db = findings.first { $0.component == "i-db" }
        #expect(db?.severity == .critical)
        #expect(db?.componentType == "instance")
        #expect(db?.summary.contains("2 registrations claiming i-db refused from 10.0.1.10 (source_address)") == true)
        #expect(db?.evidence.first?.hasPrefix("5 s ago") == true)
        // 60 s after the last refusal for i-db it is over; i-web's ended earlier.
        #expect(engine.findings(BlameInput(pairs: [], refusals: refusals, now: 64_000)).map(\.component) == ["i-db"])
        #expect(engine.findings(BlameInput(pairs: [], refusals: refusals, now: 65_001)).isEmpty)
    }

    @Test("an ENI answered by another instance, or reported by another agent, is one eni_moved naming both instances")
    func eniMoved() {
        var static1 = probe("eni:eni-zk", agent: "app-1", subnet: "app", target: "eni-zk", components: [], purpose: .staticENI)
        static1.interface = "eni-zk"
        static1.expectedInstance = "zk-1"
        var pair = view(static1, .disagreeing, .identity)
        pair.observedInstance = "zk-2"
        let findings = Engine().findings(
            pairs: [pair], agents: [],
            placements: [InterfacePlacementDrift(interface: "eni-zk", expectedInstance: "zk-1", observedInstance: "zk-2", agentId: "zk-2")],
            now: 0)
        #expect(findings.count == 1)
        #expect(findings.first?.kind == .eniMoved)
        #expect(findings.first?.summary == "eni-zk belongs to zk-1 in the model but is attached to zk-2")
    }

    @Test("alerts fire once per episode, update without re-firing, resolve, and fire anew with a new id")
    func alertBook() {
        var book = AlertBook()
        let finding = Finding(
            kind: .natFailure, severity: .critical, component: "nat", componentType: "nat-instance", summary: "s", pairs: ["a"], evidence: ["e1"])
        guard case .fired(let first) = book.reconcile([finding], now: 10).first else {
            Issue.record("expected a firing alert")
            return
        }
        #expect(book.reconcile([finding], now: 20).isEmpty)
        var more = finding
        more.evidence = ["e1", "e2"]
        #expect(book.reconcile([more], now: 30).count == 1)
        guard case .resolved(let resolved) = book.reconcile([], now: 40).first else {
            Issue.record("expected a resolution")
            return
        }
        #expect(resolved.id == first.id && resolved.endsAtMs == 40 && resolved.status == .resolved)
        guard case .fired(let again) = book.reconcile([finding], now: 50).first else {
            Issue.record("expected a new episode")
            return
        }
        #expect(again.fingerprint == first.fingerprint && again.id != first.id)
        // After a restart the book is rebuilt from the store: nothing fires twice.
        var restarted = AlertBook(open: [again])
        #expect(restarted.reconcile([finding], now: 60).isEmpty)
    }
}

extension DriftTests {
    @Test("a pair whose latest result failed does not vouch for its path; a lone unexplained failure waits to settle")
    func settling() {
        let correlator = Engine(BlameEngine(settleMs: 10_000))
        let s3 = [
            probe("s3", agent: "a", subnet: "public", target: "s3", components: ["route-table:rtb-public", "internet-gateway:igw", "endpoint:s3"]),
            probe("s3", agent: "b", subnet: "app", target: "s3", components: ["route-table:rtb-private", "nat-instance:nat", "endpoint:s3"]),
            probe("sqs", agent: "b", subnet: "app", target: "sqs", components: ["route-table:rtb-private", "nat-instance:nat", "endpoint:sqs"]),
            probe(
                "sqs", agent: "a", subnet: "public", target: "sqs", components: ["route-table:rtb-public", "internet-gateway:igw", "endpoint:sqs"]),
        ]
        // a's pair is down; b's pair to s3 is still agreeing by status but its last result failed.
        var trending = view(s3[1], .agreeing)
        trending.state.recent = [false, false, true]
        trending.state.agreeingStreak = 0
        let views = [view(s3[0], .disagreeing, .blocked), trending, view(s3[2], .agreeing), view(s3[3], .agreeing)]
        let findings = correlator.findings(pairs: views, agents: [], placements: [], now: 20_000)
        #expect(findings.map(\.component) == ["s3"])
        // With the s3 endpoint also vouched for by a healthy pair, nothing explains a's failure alone: wait, then blame.
        var failing = view(s3[0], .disagreeing, .blocked)
        failing.state.changedAtMs = 15_000
        let healthy = view(s3[1], .agreeing)
        let others = [healthy, view(s3[2], .agreeing), view(s3[3], .agreeing)]
        #expect(correlator.findings(pairs: [failing] + others, agents: [], placements: [], now: 20_000).isEmpty)
        #expect(correlator.findings(pairs: [failing] + others, agents: [], placements: [], now: 26_000).count == 1)
    }
}
