import PlumbCore
import Testing

/// The blame engine and the alert book as event → action tables: pair states in, findings and alert changes out.
@Suite("blame engine: hitting set, ties, episodes, flapping")
struct BlameEngineTests {
    static let interval: Int64 = 2_000

    /// A pair through `components`; `alternatives` for a load balancer's targets.
    static func probe(
        _ id: String, agent: String, subnet: String, target: String, _ components: [ComponentRef], alternatives: [ComponentRef]? = nil,
        purpose: PlannedProbe.Purpose = .crossSubnet, port: Int = 7471
    ) -> PlannedProbe {
        PlannedProbe(
            id: id, purpose: purpose, kind: "tcp", target: "10.0.0.1", port: port, expectReach: true, sourceAgent: agent, sourceInstance: agent,
            sourceSubnet: subnet, targetName: target, targetInstance: target, components: components, alternatives: alternatives,
            evaluatedProtocol: "tcp", evaluatedPort: port)
    }

    /// A pair that agreed for a while and then failed four times (k + 1), as the state machine leaves it.
    static func pair(_ probe: PlannedProbe, failing: Bool, at now: Int64 = 100_000) -> PairView {
        var state = PairState()
        let hysteresis = Hysteresis()
        var time: Int64 = 0
        for _ in 0..<10 {
            _ = state.observe(disagrees: false, rttMs: nil, at: time, hysteresis: hysteresis)
            time += interval
        }
        // One result past the threshold: a single failing path needs k + 1 failures in a row (loss rarely does that).
        // A passing pair keeps passing meanwhile: only results taken after the first failure vouch.
        for _ in 0..<4 {
            _ = state.observe(disagrees: failing, rttMs: nil, at: time, hysteresis: hysteresis)
            time += interval
        }
        return PairView(key: "\(probe.sourceAgent)/\(probe.id)", probe: probe, state: state, reason: failing ? .blocked : nil)
    }

    // The lab in small: web clients reach the internal balancer's node in subnet-app; its targets app-1 and app-2;
    // udp-echo pairs cross the same NACLs on another port.
    static let webEgress8080 = ComponentRef(.networkACL, "acl-web", scope: "egress tcp/8080 rule 100")
    static let appIngress8080 = ComponentRef(.networkACL, "acl-app", scope: "ingress tcp/8080 rule 100")
    static let lb = ComponentRef(.loadBalancer, "lb-internal")
    static let targets = ComponentRef(.targetGroup, "lb-internal", scope: "tcp/8080")
    static let services = [ComponentRef(.instance, "app-1", scope: "tcp/8080"), ComponentRef(.instance, "app-2", scope: "tcp/8080")]
    static func lbProbe(_ agent: String) -> PlannedProbe {
        probe(
            "lb:lb-internal:8080", agent: agent, subnet: "web", target: "lb-internal", [webEgress8080, appIngress8080, lb, targets],
            alternatives: services, purpose: .loadBalancer, port: 8080)
    }
    static func echo(_ agent: String, to target: String) -> PlannedProbe {
        probe(
            "cross-subnet:\(target)", agent: agent, subnet: "web", target: target,
            [
                ComponentRef(.networkACL, "acl-web", scope: "egress udp/7471 rule 100"),
                ComponentRef(.networkACL, "acl-app", scope: "ingress udp/7471 rule 100"),
                ComponentRef(.instance, target),
            ])
    }

    @Test("a dead load balancer is blamed on the load balancer, not on the NACL its passing udp-echo neighbours cross; the tie is said")
    func deadLoadBalancer() {
        // haproxy killed on its live node: the connections are refused, so the path answered and only the balancer
        // and its targets are left; no probe tells those two apart.
        let refused = [Self.pair(Self.lbProbe("web-1"), failing: true), Self.pair(Self.lbProbe("web-2"), failing: true)].map { pair -> PairView in
            var pair = pair
            pair.answered = true
            return pair
        }
        let echoes = [Self.pair(Self.echo("web-1", to: "app-1"), failing: false), Self.pair(Self.echo("web-2", to: "app-2"), failing: false)]
        let findings = BlameEngine().findings(BlameInput(pairs: refused + echoes, now: 100_000))
        #expect(findings.count == 1)
        let finding = findings.first
        #expect(finding?.kind == .unexpectedBlock)
        #expect(finding?.component == "lb-internal" && finding?.componentType == "load-balancer")
        #expect(finding?.failingPaths == 2 && finding?.passingPaths == 0)
        #expect(finding?.alternatives == ["its targets app-1, app-2"])
        #expect(finding?.summary.contains("lb-internal or its targets app-1, app-2: no probe tells them apart") == true)
        // The same flows time out instead: a rule on the tcp/8080 path explains them as well, and a dead balancer
        // would have refused; the rules come first, the balancer is named among the alternatives.
        let timedOut = BlameEngine().findings(
            BlameInput(
                pairs: [Self.pair(Self.lbProbe("web-1"), failing: true), Self.pair(Self.lbProbe("web-2"), failing: true)] + echoes, now: 100_000))
        #expect(timedOut.first?.componentType == "network-acl")
        #expect(timedOut.first?.alternatives?.contains("load-balancer lb-internal") == true)
    }

    @Test("a target probed directly separates the candidates: a dead target is blamed on its instance, a dead balancer alone")
    func directTargetProbe() {
        let direct = { (agent: String, target: String) in
            Self.probe(
                "lb-target:\(target):8080", agent: agent, subnet: "web", target: target,
                [Self.webEgress8080, Self.appIngress8080, ComponentRef(.instance, target, scope: "tcp/8080")], purpose: .lbTarget, port: 8080)
        }
        // app-1's service died: the balancer still works (app-2 serves), the direct probe to app-1 fails.
        let oneTarget = [
            Self.pair(Self.lbProbe("web-1"), failing: false), Self.pair(direct("web-1", "app-1"), failing: true),
            Self.pair(direct("web-2", "app-2"), failing: false),
        ]
        let target = BlameEngine().findings(BlameInput(pairs: oneTarget, now: 100_000))
        #expect(target.map(\.component) == ["app-1"])
        #expect(target.first?.componentType == "instance")
        // The balancer died: its flows fail, the targets answer directly, so the target group vouches and is no candidate.
        let balancer = [
            Self.pair(Self.lbProbe("web-1"), failing: true), Self.pair(direct("web-1", "app-1"), failing: false),
            Self.pair(direct("web-2", "app-2"), failing: false),
        ]
        let dead = BlameEngine().findings(BlameInput(pairs: balancer, now: 100_000))
        #expect(dead.map(\.component) == ["lb-internal"])
        #expect(dead.first?.alternatives?.contains("its targets app-1, app-2") != true)
        #expect(dead.first?.alternatives?.contains { $0.hasPrefix("network-acl") } != true)
    }

    @Test("kinds only break ties: a configuration component on fewer paths never beats a runtime one on more, nor the reverse")
    func evidenceBeforeKind() {
        let nat = ComponentRef(.natInstance, "nat")
        let acl = ComponentRef(.networkACL, "acl-app", scope: "egress tcp/443 rule 120")
        let dataAcl = ComponentRef(.networkACL, "acl-data", scope: "egress tcp/443 rule 120")
        let pairs = [
            Self.pair(Self.probe("s3", agent: "app-1", subnet: "app", target: "s3", [acl, nat]), failing: true),
            Self.pair(Self.probe("s3", agent: "app-2", subnet: "app", target: "s3", [acl, nat]), failing: true),
            // The data subnet's flows through the same NAT still pass: the NAT vouched for, the NACL is the only candidate.
            Self.pair(Self.probe("s3", agent: "db-1", subnet: "data", target: "s3", [dataAcl, nat]), failing: false),
        ]
        let findings = BlameEngine().findings(BlameInput(pairs: pairs, now: 100_000))
        #expect(findings.map(\.component) == ["acl-app"])
        #expect(findings.first?.alternatives == nil)
    }

    @Test("where the packet died: a refused flow blames the service at its end, a timed-out one the path before a service")
    func refusedOrTimedOut() {
        let acl = ComponentRef(.networkACL, "acl-public", scope: "egress tcp/80 rule 100")
        let echo = ComponentRef(.endpoint, "egress-echo")
        let probes = ["app-1", "app-2"].map {
            Self.probe("egress", agent: $0, subnet: "app", target: "egress-echo", [acl, echo], purpose: .natEgress)
        }
        // The echo service is down on a live host: the flows are refused, so the NACL on their path is not what failed.
        let refused = probes.map { probe -> PairView in
            var pair = Self.pair(probe, failing: true)
            pair.answered = true
            return pair
        }
        let down = BlameEngine().findings(BlameInput(pairs: refused, now: 100_000))
        #expect(down.map(\.component) == ["egress-echo"])
        #expect(down.first?.alternatives == nil)
        // The same flows time out: the service and the NACL explain them equally, and a dead service would have
        // refused, so the NACL comes first and the service is named as the alternative.
        let timedOut = BlameEngine().findings(BlameInput(pairs: probes.map { Self.pair($0, failing: true) }, now: 100_000))
        #expect(timedOut.map(\.component) == ["acl-public"])
        #expect(timedOut.first?.alternatives == ["endpoint egress-echo"])
    }

    @Test("one failing path alone waits for k + 1 failures in a row: random loss rarely does that, a dead component always does")
    func singlePathConfirmation() {
        let service = ComponentRef(.instance, "app-1", scope: "tcp/8080")
        let probe = Self.probe("lb-target:app-1:8080", agent: "web-1", subnet: "web", target: "app-1", [service], purpose: .lbTarget, port: 8080)
        var state = PairState()
        for step in 0..<10 { _ = state.observe(disagrees: false, rttMs: nil, at: Int64(step), hysteresis: Hysteresis()) }
        // Three losses in five take it down, with a success in between: not enough for a finding on its own.
        for (step, disagrees) in [true, false, true, true].enumerated() {
            _ = state.observe(disagrees: disagrees, rttMs: nil, at: Int64(20 + step), hysteresis: Hysteresis())
        }
        #expect(state.status == .disagreeing)
        let noisy = PairView(key: "web-1/\(probe.id)", probe: probe, state: state, reason: .blocked)
        #expect(BlameEngine().findings(BlameInput(pairs: [noisy], now: 100_000)).isEmpty)
        // Four failures in a row: the service is down.
        #expect(BlameEngine().findings(BlameInput(pairs: [Self.pair(probe, failing: true)], now: 100_000)).map(\.component) == ["app-1"])
    }

    @Test("a pair that just came back does not vouch: it takes a window of agreements")
    func recoveredPairDoesNotVouch() {
        let nat = ComponentRef(.natInstance, "nat")
        let acl = ComponentRef(.networkACL, "acl-app", scope: "egress tcp/443 rule 120")
        var recovered = Self.pair(Self.probe("echo", agent: "db-1", subnet: "data", target: "echo", [nat]), failing: true)
        for step in 0..<2 { _ = recovered.state.observe(disagrees: false, rttMs: nil, at: 200_000 + Int64(step), hysteresis: Hysteresis()) }
        #expect(recovered.state.status == .agreeing)
        var pairs = [recovered, Self.pair(Self.probe("s3", agent: "app-1", subnet: "app", target: "s3", [acl, nat]), failing: true)]
        // Two agreements after a failure vouch for nothing yet: the NAT is still a candidate and wins the tie.
        #expect(BlameEngine().findings(BlameInput(pairs: pairs, now: 100_000)).map(\.component) == ["nat"])
        // After a window of agreements it vouches, and the NACL is left.
        for step in 0..<3 { _ = pairs[0].state.observe(disagrees: false, rttMs: nil, at: 300_000 + Int64(step), hysteresis: Hysteresis()) }
        #expect(BlameEngine().findings(BlameInput(pairs: pairs, now: 100_000)).map(\.component) == ["acl-app"])
    }

    /// Steps a flapping NAT through the engine and the book: `down` intervals failing, `up` passing, `cycles` times.
    func flap(down: Int, up: Int, cycles: Int, holdDownIntervals: Int64) -> (changes: [AlertChange], book: AlertBook) {
        let nat = ComponentRef(.natInstance, "nat")
        let probes = ["app", "web", "data"].flatMap { subnet in
            ["s3", "echo"].map { target in
                Self.probe(
                    target, agent: "\(subnet)-1", subnet: subnet, target: target,
                    [
                        ComponentRef(.networkACL, "acl-\(subnet)", scope: "egress tcp/443 rule 120"),
                        ComponentRef(.routeTable, "rtb-private", scope: "route 0.0.0.0/0"), nat,
                    ])
            }
        }
        var states = probes.map { _ in PairState() }
        let engine = BlameEngine(holdDownMs: holdDownIntervals * Self.interval)
        var book = AlertBook(holdDownMs: holdDownIntervals * Self.interval)
        var changes: [AlertChange] = []
        let warm = 8
        for step in 0..<(warm + (down + up) * cycles + 20) {
            let now = Int64(step) * Self.interval
            let phase = step - warm
            let failing = phase >= 0 && phase < (down + up) * cycles && phase % (down + up) < down
            for index in states.indices { _ = states[index].observe(disagrees: failing, rttMs: nil, at: now, hysteresis: Hysteresis()) }
            let views = probes.indices.map { index in
                PairView(
                    key: "\(probes[index].sourceAgent)/\(probes[index].id)", probe: probes[index], state: states[index],
                    reason: states[index].status == .disagreeing || failing ? .blocked : nil)
            }
            changes += book.reconcile(engine.findings(BlameInput(pairs: views, open: Array(book.open.values), now: now)), now: now)
        }
        return (changes, book)
    }

    @Test("a flapping NAT is one alert, marked flapping, on the NAT only, resolved once after it has been stable")
    func flapping() {
        let (changes, book) = flap(down: 3, up: 3, cycles: 6, holdDownIntervals: 7)
        let fired = changes.compactMap { change -> Alert? in if case .fired(let alert) = change { alert } else { nil } }
        let resolved = changes.compactMap { change -> Alert? in if case .resolved(let alert) = change { alert } else { nil } }
        #expect(fired.map(\.component) == ["nat"])
        #expect(fired.first?.kind == .natFailure)
        #expect(resolved.count == 1)
        #expect(resolved.first?.flapping == true)
        #expect((resolved.first?.transitions ?? 0) >= 2)
        #expect(book.open.isEmpty)
        // Without a hold-down that covers the flap, the same NAT storms: several episodes.
        let (storm, _) = flap(down: 3, up: 3, cycles: 6, holdDownIntervals: 0)
        #expect(storm.filter { if case .fired = $0 { true } else { false } }.count > 1)
    }

    @Test("two faults: a NACL failure behind an open NAT episode is blamed on the NACL once the NAT is vouched for again")
    func twoFaults() {
        let nat = ComponentRef(.natInstance, "nat")
        let appAcl = ComponentRef(.networkACL, "acl-app", scope: "egress tcp/443 rule 120")
        let s3App = Self.probe("s3", agent: "app-1", subnet: "app", target: "s3", [appAcl, nat])
        let echoData = Self.probe(
            "echo", agent: "db-1", subnet: "data", target: "echo", [ComponentRef(.networkACL, "acl-data", scope: "egress tcp/80 rule 110"), nat])
        let engine = BlameEngine(holdDownMs: 7 * Self.interval)
        var book = AlertBook(holdDownMs: 7 * Self.interval)
        // The NAT fails: both pairs fail; one nat_failure.
        var open = book.reconcile(
            engine.findings(BlameInput(pairs: [Self.pair(s3App, failing: true), Self.pair(echoData, failing: true)], now: 100_000)), now: 100_000)
        #expect(open.count == 1 && book.open.values.first?.component == "nat")
        // The NAT is repaired (the data subnet's echo has agreed for a window), but acl-app now denies 443: app's pair
        // keeps failing. Within the hold-down it stays with the NAT's episode.
        var echoBack = Self.pair(echoData, failing: false)
        echoBack.state.agreeingStreak = 6
        var findings = engine.findings(BlameInput(pairs: [Self.pair(s3App, failing: true), echoBack], open: Array(book.open.values), now: 104_000))
        open = book.reconcile(findings, now: 104_000)
        #expect(findings.map(\.component) == ["nat"])
        #expect(findings.first?.active == false)
        // Past the hold-down the NAT resolves and the NACL is blamed.
        findings = engine.findings(BlameInput(pairs: [Self.pair(s3App, failing: true), echoBack], open: Array(book.open.values), now: 120_000))
        open = book.reconcile(findings, now: 120_000)
        #expect(findings.map(\.component) == ["acl-app"])
        #expect(open.contains { if case .resolved(let alert) = $0 { alert.component == "nat" } else { false } })
        #expect(open.contains { if case .fired(let alert) = $0 { alert.component == "acl-app" } else { false } })
    }

    @Test("the alert book: a quiet alert waits out its hold-down, a return within it counts a transition, the second marks flapping")
    func holdDown() {
        var book = AlertBook(holdDownMs: 10_000)
        let finding = Finding(
            kind: .natFailure, severity: .critical, component: "nat", componentType: "nat-instance", summary: "s", pairs: ["a"], evidence: [])
        #expect(book.reconcile([finding], now: 0).count == 1)
        // Healthy for less than the hold-down: still open, quiet.
        _ = book.reconcile([], now: 4_000)
        #expect(book.open.values.first?.quietSinceMs == 4_000)
        // Back within it: the same episode, one transition, not yet flapping.
        _ = book.reconcile([finding], now: 6_000)
        #expect(book.open.values.first?.transitions == 1 && book.open.values.first?.flapping == nil)
        _ = book.reconcile([], now: 8_000)
        _ = book.reconcile([finding], now: 9_000)
        #expect(book.open.values.first?.flapping == true)
        // Stable for the hold-down: resolved once.
        _ = book.reconcile([], now: 12_000)
        #expect(!book.open.isEmpty)
        let last = book.reconcile([], now: 19_000)
        #expect(last.count == 1)
        if case .resolved(let alert) = last.first {
            #expect(alert.endsAtMs == 19_000 && alert.flapping == true)
        } else {
            Issue.record("expected a resolution")
        }
    }
}
