/// What the blame engine sees at one evaluation.
public struct BlameInput: Sendable {
    /// Every planned pair with its state and last result.
    public var pairs: [PairView]
    /// Every agent's last report (and hold).
    public var agents: [AgentActivity]
    /// ENIs agents report on other instances than the model says.
    public var placements: [InterfacePlacementDrift]
    /// The alerts open now (an episode holds its pairs, and its component keeps new failures, within its hold-down).
    public var open: [Alert]
    /// Registrations refused for their identity claim, recent ones (any order).
    public var refusals: [RegistrationRefusal]
    /// Now, in milliseconds since the epoch.
    public var now: Int64

    /// Creates an input.
    public init(
        pairs: [PairView], agents: [AgentActivity] = [], placements: [InterfacePlacementDrift] = [], open: [Alert] = [],
        refusals: [RegistrationRefusal] = [], now: Int64
    ) {
        self.refusals = refusals
        self.pairs = pairs
        self.agents = agents
        self.placements = placements
        self.open = open
        self.now = now
    }
}

/// Turns pair states into findings: the one place where Plumb decides what is broken. Pure: time and state come in,
/// findings come out; the collector feeds it and carries out what the alert book makes of them.
///
/// The principle (network tomography, as Pingmesh, NetBouncer and 007 do it, with the model's intended paths instead of
/// racks): blame the smallest set of components that is on every failing path and on no path that recently passed in
/// the same direction and port class. Kinds only break ties, runtime components before configuration
/// (`ComponentKind.tieRank`), and a tie the evidence cannot separate is said in the finding (`alternatives`).
///
/// Around that core:
/// - silence: an agent silent for `silenceMs` is `agent_silent`, a subnet whose agents are all silent one
///   `subnet_silent`; failures towards silent, late (`lateMs`) or just-returned agents wait for that verdict, and a
///   silence holds the failing pairs towards its instances;
/// - episodes: an open path alert (`nat_failure`, `unexpected_block`) keeps the pairs it holds, and takes new failures
///   through its component, for `holdDownMs` after the component last failed: a repair or a flap's good phase never
///   spills the stragglers onto other components;
/// - the NAT instance's own silent agent is part of its `nat_failure`;
/// - exposure, moved ENIs, egress addresses and latency are blamed on the component the probe names.
public struct BlameEngine: Sendable {
    /// Milliseconds without a report after which an agent is silent.
    public var silenceMs: Int64
    /// Milliseconds without a report after which an agent is late (failures towards it wait).
    public var lateMs: Int64
    /// Milliseconds a failure that no component explains alone waits before the busiest component is blamed.
    public var settleMs: Int64
    /// Milliseconds an episode keeps its pairs and its component after the component last failed (the hold-down).
    public var holdDownMs: Int64
    /// Milliseconds an `identity_conflict` stays after the last refused claim for its instance.
    public var conflictMs: Int64
    /// NAT instance ids by NAT id.
    public var natInstances: [String: String]
    /// Agreeing results in a row after which a pair vouches for its path: as many as its hysteresis window, so a pair
    /// that just came back (or keeps coming back, with a flapping component) vouches for nothing yet.
    public var vouchAfter: Int
    /// Failing results in a row that a finding resting on one failing path needs (one more than the hysteresis' k):
    /// a single path down is what random loss looks like too, and loss rarely takes k + 1 results in a row.
    public var confirmSingle: Int
    /// Milliseconds, from the first failure it rests on, that a new path finding waits for evidence already due: pairs
    /// through its component (or one it cannot be told apart from) that have not reported since that failure, whose
    /// next result clears or convicts it. One probe interval plus the report interval: by then every live agent has
    /// probed and reported once. 0 decides on what is in.
    public var evidenceWaitMs: Int64

    /// An engine.
    public init(
        silenceMs: Int64 = 30_000, lateMs: Int64? = nil, settleMs: Int64 = 10_000, holdDownMs: Int64 = 0, vouchAfter: Int = 5,
        confirmSingle: Int = 4, evidenceWaitMs: Int64 = 0, natInstances: [String: String] = [:], conflictMs: Int64 = 300_000
    ) {
        self.evidenceWaitMs = evidenceWaitMs
        self.conflictMs = conflictMs
        self.vouchAfter = vouchAfter
        self.confirmSingle = confirmSingle
        self.silenceMs = silenceMs
        self.lateMs = lateMs ?? silenceMs / 3
        self.settleMs = settleMs
        self.holdDownMs = holdDownMs
        self.natInstances = natInstances
    }

    static let pathKinds: Set<Finding.Kind> = [.natFailure, .unexpectedBlock]

    /// Every finding for `input`, most severe first.
    public func findings(_ input: BlameInput) -> [Finding] {
        let now = input.now
        let silentAgents = Set(input.agents.filter { now - $0.lastSeenMs > silenceMs }.map(\.agentId))
        let lateAgents = Set(input.agents.filter { now - $0.lastSeenMs > lateMs }.map(\.agentId))
        // Failures towards a late agent's instance wait: it may be going silent (its host or subnet cut off). So do
        // failures towards one that just came back, until the pairs towards it have had the results to agree again.
        let heldInstances = Set(input.agents.filter { now - $0.lastSeenMs > lateMs || now < $0.heldUntilMs ?? 0 }.map(\.instance))
        func isLive(_ agent: String) -> Bool { silentAgents.isEmpty || !silentAgents.contains(agent) }
        let disagreeing = input.pairs.filter { $0.state.status == .disagreeing && isLive($0.probe.sourceAgent) }

        var findings = silence(input, silent: silentAgents, disagreeing: disagreeing)
        let blocked = disagreeing.filter {
            $0.reason == .blocked && $0.probe.expectReach && !heldInstances.contains($0.probe.targetInstance ?? "")
        }
        // On their way down: not over their threshold yet, but two recent failures and the latest one failed. They only
        // join an episode whose component they cross (they would cross the threshold with it in a moment).
        let trending = input.pairs.filter {
            $0.state.recent.last == true && $0.state.status != .disagreeing && $0.state.recent.filter { $0 }.count >= 2 && $0.probe.expectReach
                && isLive($0.probe.sourceAgent) && !lateAgents.contains($0.probe.sourceAgent)
                && !heldInstances.contains($0.probe.targetInstance ?? "")
        }
        findings += paths(
            blocked: blocked, trending: trending, all: input.pairs, agents: input.agents, isLive: isLive, open: input.open, now: now)
        findings += exposure(disagreeing.filter { $0.reason == .reached })
        findings += identity(disagreeing.filter { $0.reason == .identity }, placements: input.placements)
        findings += egress(disagreeing.filter { $0.reason == .egressIP })
        findings += latency(input.pairs, isLive: isLive)
        findings = foldNATAgents(findings, input: input)
        findings += conflicts(input.refusals, now: now)
        return Self.merged(findings)
    }

    // MARK: - Identity

    /// One `identity_conflict` per instance with a refused claim in the last `conflictMs`: critical, since either
    /// someone impersonates the instance or two agents run on it, and its results cannot be trusted as they were.
    private func conflicts(_ refusals: [RegistrationRefusal], now: Int64) -> [Finding] {
        let recent = refusals.filter { now - $0.atMs <= conflictMs && $0.atMs <= now }
        return Dictionary(grouping: recent, by: \.instance).sorted { $0.key < $1.key }.map { instance, claims in
            let newest = claims.sorted { $0.atMs > $1.atMs }
            let reasons = Set(claims.map(\.reason)).sorted()
            let sources = Set(claims.compactMap(\.source)).sorted()
            let from = sources.isEmpty ? "" : " from \(sources.joined(separator: ", "))"
            return Finding(
                kind: .identityConflict, severity: .critical, component: instance, componentType: ComponentKind.instance.rawValue,
                summary:
                    "\(claims.count) registration\(claims.count == 1 ? "" : "s") claiming \(instance) refused\(from) (\(reasons.joined(separator: ", ")))",
                pairs: [],
                evidence: newest.prefix(5).map { claim in
                    "\((now - claim.atMs) / 1000) s ago: \(claim.agentId.map { "agent \($0), " } ?? "")\(claim.source.map { "from \($0), " } ?? "")\(claim.reason): \(claim.detail)"
                })
        }
    }

    // MARK: - Silence

    private func silence(_ input: BlameInput, silent: Set<String>, disagreeing: [PairView]) -> [Finding] {
        let now = input.now
        var findings: [Finding] = []
        // An open subnet_silent stays up, and holds its agents, until the last of them is back and reporting steadily:
        // agents come back one by one (each after its own backoff, its spool first), and a recovery is judged whole.
        // A straggler, silent, late or only just back, is that subnet's silence, not an agent_silent of its own; one
        // that goes quiet again while the alert waits out its hold-down is the same episode.
        var explained: Set<String> = []
        var carriedSubnets: Set<String> = []
        func lastReports(_ members: [AgentActivity]) -> [String] {
            members.map { "\($0.agentId) (\($0.instance)) last reported \((now - $0.lastSeenMs) / 1000) s ago" }
        }
        for alert in input.open where alert.kind == .subnetSilent {
            let members = input.agents.filter { $0.subnet == alert.component }
            let quiet = members.filter { silent.contains($0.agentId) || now - $0.lastSeenMs > lateMs || now < $0.heldUntilMs ?? 0 }
            explained.formUnion(members.filter { silent.contains($0.agentId) }.map(\.agentId))
            guard !quiet.isEmpty else { continue }
            carriedSubnets.insert(alert.component)
            var carried = Finding(carrying: alert, pairs: alert.pairs)
            carried.evidence = lastReports(members)
            let stillSilent = quiet.filter { silent.contains($0.agentId) }.count
            if stillSilent < members.count {
                carried.evidence.append(
                    "recovering: \(members.count - stillSilent) of \(members.count) agents reporting again; waiting for \(quiet.map(\.agentId).sorted().joined(separator: ", ")) to report steadily"
                )
            }
            findings.append(carried)
        }
        let bySubnet = Dictionary(grouping: input.agents.filter { $0.subnet != nil }, by: { $0.subnet! })
        for (subnet, members) in bySubnet.sorted(by: { $0.key < $1.key })
        where !carriedSubnets.contains(subnet) && members.count >= 2 && members.allSatisfy({ silent.contains($0.agentId) }) {
            explained.formUnion(members.map(\.agentId))
            findings.append(
                Finding(
                    kind: .subnetSilent, severity: .critical, component: subnet, componentType: ComponentKind.subnet.rawValue,
                    summary: "all \(members.count) agents in \(subnet) stopped reporting", pairs: [], evidence: lastReports(members)))
        }
        for agent in input.agents.sorted(by: { $0.agentId < $1.agentId }) where silent.contains(agent.agentId) && !explained.contains(agent.agentId) {
            findings.append(
                Finding(
                    kind: .agentSilent, severity: .warning, component: agent.agentId, componentType: ComponentKind.agent.rawValue,
                    summary: "agent \(agent.agentId) on \(agent.instance) stopped reporting", pairs: [],
                    evidence: ["last report \((now - agent.lastSeenMs) / 1000) s ago"]))
        }
        // A silence holds the failing pairs towards its instances; they stay with it while they recover.
        let towards = Dictionary(grouping: disagreeing.filter { $0.reason == .blocked }, by: { $0.probe.targetInstance ?? "" })
        let instanceOfAgent = Dictionary(input.agents.map { ($0.agentId, $0.instance) }, uniquingKeysWith: { first, _ in first })
        for index in findings.indices {
            let component = findings[index].component
            let instances =
                findings[index].kind == .agentSilent
                ? [instanceOfAgent[component] ?? ""] : input.agents.filter { $0.subnet == component }.map(\.instance)
            findings[index].pairs = Array(Set(findings[index].pairs + instances.flatMap { towards[$0]?.map(\.key) ?? [] })).sorted()
        }
        return findings
    }

    /// The agent on a NAT instance whose `nat_failure` is found or open belongs to that fault (its link may be what
    /// failed), also while the alert waits out its hold-down after a repair and the agent is still backing off.
    private func foldNATAgents(_ findings: [Finding], input: BlameInput) -> [Finding] {
        let failing = Set(findings.filter { $0.kind == .natFailure }.map(\.component) + input.open.filter { $0.kind == .natFailure }.map(\.component))
        guard !failing.isEmpty else { return findings }
        let hosts = Set(failing.compactMap { natInstances[$0] })
        let hostOfAgent = Dictionary(input.agents.map { ($0.agentId, $0.instance) }, uniquingKeysWith: { first, _ in first })
        var result = findings
        let folded = findings.filter { $0.kind == .agentSilent && hosts.contains(hostOfAgent[$0.component] ?? "") }
        if !folded.isEmpty {
            result = result.filter { !($0.kind == .agentSilent && hosts.contains(hostOfAgent[$0.component] ?? "")) }
            for index in result.indices where result[index].kind == .natFailure {
                guard let host = natInstances[result[index].component] else { continue }
                result[index].evidence += folded.filter { hostOfAgent[$0.component] == host }.map {
                    "the agent on the NAT instance is silent too: \($0.summary)"
                }
            }
        }
        return foldNATHostPaths(result, input: input, hosts: hosts)
    }

    /// A failing NAT instance fails the flows to and from its own host too (its agent's probes, the probes towards
    /// its responder): an `unexpected_block` all of whose pairs start or end on the host of a NAT that is failing now
    /// is that `nat_failure` (its pairs join the episode), not a second alert on the host's instance or security group.
    private func foldNATHostPaths(_ findings: [Finding], input: BlameInput, hosts: Set<String>) -> [Finding] {
        let candidates = findings.filter { $0.kind == .unexpectedBlock && !$0.pairs.isEmpty }
        guard !candidates.isEmpty, !hosts.isEmpty else { return findings }
        let wanted = Set(candidates.flatMap(\.pairs))
        var ends: [String: (source: String, target: String?)] = [:]
        for index in input.pairs.indices where wanted.contains(input.pairs[index].key) {
            ends[input.pairs[index].key] = (input.pairs[index].probe.sourceInstance, input.pairs[index].probe.targetInstance)
        }
        let natOfHost = Dictionary(
            findings.filter { $0.kind == .natFailure }.compactMap { finding in natInstances[finding.component].map { ($0, finding.component) } },
            uniquingKeysWith: { first, _ in first })
        var joining: [String: [Finding]] = [:]  // NAT id → findings folded into its nat_failure
        var result: [Finding] = []
        for finding in findings {
            guard finding.kind == .unexpectedBlock, !finding.pairs.isEmpty else {
                result.append(finding)
                continue
            }
            let touched = finding.pairs.map { key -> Set<String> in
                guard let end = ends[key] else { return [] }
                return Set([end.source] + (end.target.map { [$0] } ?? [])).intersection(hosts)
            }
            if let host = touched.first?.first, touched.allSatisfy({ $0.contains(host) }), let nat = natOfHost[host] {
                joining[nat, default: []].append(finding)
            } else {
                result.append(finding)
            }
        }
        guard !joining.isEmpty else { return findings }
        for index in result.indices where result[index].kind == .natFailure {
            guard let joined = joining[result[index].component] else { continue }
            for finding in joined {
                result[index].pairs += finding.pairs.filter { !result[index].pairs.contains($0) }
                result[index].evidence.append("flows to and from the NAT instance fail too: \(finding.summary)")
            }
        }
        return result
    }

    // MARK: - Path blame

    /// The components that vouch: every component on the path of a pair that agrees and has agreed `vouchAfter` times
    /// in a row (a pair with a recent failure may be on its way down, or flapping with its component). A target group
    /// vouches when any of its targets does.
    ///
    /// Evidence is time-aligned: a result vouches for a component only if it was taken after the failures it is
    /// weighed against began (`since`, the latest failure start among the failing pairs through that component). A pass at
    /// 14:02:01 says nothing about a fault that began at 14:02:03; a pair that has not reported since (its agent busy,
    /// late, or its probe not due yet) is evidence still to come, not a voucher.
    private func vouched(
        _ pairs: [PairView], isLive: (String) -> Bool, suspects: Set<ComponentRef>, since: [ComponentRef: Int64]
    ) -> [ComponentRef: Int] {
        var passing: [ComponentRef: Int] = [:]
        var groups: [ComponentRef: [ComponentRef]] = [:]
        // In place: the pairs are many and large, and copying one costs more than the counting.
        for index in pairs.indices {
            // A failure the target answered (refused, an HTTP error) crossed its path both ways: the path vouches.
            if pairs[index].answered, pairs[index].state.status == .disagreeing, pairs[index].reason == .blocked,
                isLive(pairs[index].probe.sourceAgent)
            {
                for component in pairs[index].probe.components
                where !component.kind.isTargetService && suspects.contains(component) && pairs[index].state.lastAtMs > since[component] ?? .min {
                    passing[component, default: 0] += 1
                }
                continue
            }
            guard pairs[index].state.status == .agreeing, pairs[index].state.agreeingStreak >= vouchAfter, pairs[index].probe.expectReach,
                isLive(pairs[index].probe.sourceAgent)
            else { continue }
            for component in pairs[index].probe.components
            where suspects.contains(component) && pairs[index].state.lastAtMs > since[component] ?? .min {
                passing[component, default: 0] += 1
            }
        }
        // Members of the suspected groups (the failing pairs carry them) vouch for their group.
        for index in pairs.indices where pairs[index].probe.alternatives != nil {
            for group in pairs[index].probe.components where group.kind == .targetGroup && suspects.contains(group) {
                groups[group] = pairs[index].probe.alternatives
            }
        }
        return passing.merging(
            groups.compactMapValues { members in
                let count = members.reduce(0) { $0 + (passing[$1] ?? 0) }
                return count > 0 ? count : nil
            }, uniquingKeysWith: +)
    }

    private func paths(
        blocked: [PairView], trending: [PairView], all: [PairView], agents: [AgentActivity], isLive: (String) -> Bool, open: [Alert], now: Int64
    ) -> [Finding] {
        guard !blocked.isEmpty || !trending.isEmpty else { return [] }
        // Each suspect's failure time: the latest start among the failing pairs through it. Only a pass taken after
        // every failure through a component began clears it; an earlier start (a pair that lost a probe just before
        // the fault) must not let the fault's last passes vouch.
        var since: [ComponentRef: Int64] = [:]
        for pair in blocked + trending {
            let start = Self.failureStart(pair)
            for component in pair.probe.components + (pair.probe.alternatives ?? []) { since[component] = max(since[component] ?? start, start) }
        }
        let suspects = Set(since.keys)
        let passing = vouched(all, isLive: isLive, suspects: suspects, since: since)
        var findings: [Finding] = []

        // Episodes first: an open path alert within its hold-down keeps its pairs, and takes the failures through its
        // component that nothing vouches for. Oldest first, so a pair goes to the episode that was there before.
        var claimed: Set<String> = []
        let episodes = open.filter { Self.pathKinds.contains($0.kind) && !$0.pairs.isEmpty }.sorted {
            ($0.startsAtMs, $0.id) < ($1.startsAtMs, $1.id)
        }
        for alert in episodes {
            let holding = now - (alert.lastActiveAtMs ?? alert.updatedAtMs) <= holdDownMs
            let base = ComponentRef(ComponentKind(rawValue: alert.componentType) ?? .instance, alert.component)
            let held = Set(alert.pairs)
            var joined: [PairView] = []
            var failingNow = false
            for pair in blocked + trending where !claimed.contains(pair.key) {
                let through = pair.probe.components.filter { $0.base == base }
                let unvouched = holding && through.contains { passing[$0, default: 0] == 0 }
                // A held pair stays while it recovers (its latest result agreed), and within the hold-down while it
                // still fails; past that, a pair that keeps failing is a new question for the hitting set.
                let stays = held.contains(pair.key) && (holding || pair.state.recent.last == false)
                if stays || unvouched {
                    joined.append(pair)
                    claimed.insert(pair.key)
                    if unvouched { failingNow = true }
                }
            }
            guard !joined.isEmpty else { continue }
            // The episode's finding is told afresh from the pairs failing now (more subnets, more flows as they
            // cross their thresholds), and keeps every pair it held. What the evidence could not rule out when it
            // fired stays said while it still cannot: an alternative that is not on every path failing now (the NACL
            // of the subnet that failed first, once the others fail too) is dropped.
            var finding = finding(
                blaming: base, pairs: joined, tied: [], passing: passing.filter { $0.key.base == base }.values.reduce(0, +), clean: true,
                alternatives: nil)
            finding.pairs = Array(held.union(joined.map(\.key))).sorted()
            let failingNowPairs = joined.filter { $0.state.recent.last == true }
            var common: Set<ComponentRef>?
            for pair in failingNowPairs {
                let unvouched = Set(pair.probe.components.filter { passing[$0, default: 0] == 0 }.map(\.base))
                common = common.map { $0.intersection(unvouched) } ?? unvouched
            }
            finding.alternatives = alert.alternatives.map { alternatives in
                guard let common else { return alternatives }
                let described = Set(common.map(\.description))
                let groups = common.contains { $0.kind == .targetGroup }
                return alternatives.filter { described.contains($0) || (groups && $0.hasPrefix("its targets")) }
            }
            if finding.alternatives?.isEmpty == true { finding.alternatives = nil }
            if let alternatives = finding.alternatives, !alternatives.isEmpty {
                finding.summary += "; \(alert.component) or \(alternatives.prefix(3).joined(separator: ", ")): no probe tells them apart"
                finding.evidence.insert(
                    "also consistent with the evidence: \(alternatives.joined(separator: ", "))", at: min(finding.evidence.count, 2))
            }
            finding.active = failingNow
            findings.append(finding)
        }

        // The rest: a greedy hitting set. A pair is explained by any component with a part on its path that nothing
        // vouches for; components are counted whole (a NACL denying a port to every subnet is one component, whatever
        // the scopes of its parts).
        // Pairs on their way down count as evidence (their components are on failing paths too), so that a fault whose
        // pairs cross their thresholds at different times is blamed on what explains them all, not on the part that
        // crossed first; but they never raise a finding of their own.
        let down = blocked.filter { !claimed.contains($0.key) }
        let failing = down + trending.filter { !claimed.contains($0.key) }
        let isDown = failing.indices.map { $0 < down.count }
        let counted = Set(failing.map(\.key))
        let natOfHost = natHostsSuspected(failing, all: all, isLive: isLive)
        let suspectsOf = failing.map { pair in
            Set(pair.probe.components.filter { passing[$0, default: 0] == 0 && (!pair.answered || $0.kind.isTargetService) }.map(\.base))
                .union(natOfHost[pair.key].map { [$0] } ?? [])
        }
        let anyOf = failing.map { Set($0.probe.components.map(\.base)) }
        var remaining = Array(failing.indices)
        while remaining.contains(where: { isDown[$0] }) {
            var through: [ComponentRef: [Int]] = [:]
            for index in remaining { for component in suspectsOf[index] { through[component, default: []].append(index) } }
            let clean = !through.isEmpty
            if !clean {
                // Nothing explains these alone (a vouching pair may be stale, or two faults overlap). Blame the
                // component on the most failing paths, once they have failed for a while, and say so.
                remaining.removeAll { !isDown[$0] || now - failing[$0].state.changedAtMs < settleMs }
                if remaining.isEmpty { break }
                for index in remaining { for component in anyOf[index] { through[component, default: []].append(index) } }
            }
            // Ties by kind, with one piece of evidence first: a target service (endpoint, balancer, targets) whose
            // flows all timed out is less likely than the path, since a dead service on a live host refuses.
            func rank(_ candidate: (key: ComponentRef, value: [Int])) -> (Int, ComponentRef) {
                let timedOut =
                    candidate.key.kind.isTargetService && candidate.key.kind != .instance && candidate.value.allSatisfy { !failing[$0].answered }
                return (candidate.key.kind.tieRank + (timedOut ? 100 : 0), candidate.key)
            }
            guard
                let best = through.max(by: { lhs, rhs in
                    lhs.value.count != rhs.value.count ? lhs.value.count < rhs.value.count : rank(rhs) < rank(lhs)
                })
            else { break }
            let covered = Set(best.value)
            // Tied: other components on exactly the same failing paths; no probe tells them apart.
            let tied = through.filter { $0.key != best.key && Set($0.value) == covered }.map { $0 }.sorted { rank($0) < rank($1) }.map(\.key)
            remaining.removeAll { covered.contains($0) }
            guard best.value.contains(where: { isDown[$0] }) else { continue }
            if best.value.count == 1 {
                let recent = failing[best.value[0]].state.recent
                guard recent.count >= confirmSingle, recent.suffix(confirmSingle).allSatisfy({ $0 }) else { continue }
            }
            // Evidence already due (`due`): pairs through the chosen component, or one it cannot yet be told apart from,
            // whose next result clears or convicts it. A clean finding waits for them, up to `evidenceWaitMs` from the
            // moment it could first be made (its first pair over the threshold).
            let start = best.value.map { Self.failureStart(failing[$0]) }.max() ?? now
            let crossed = best.value.filter { isDown[$0] }.map { failing[$0].state.changedAtMs }.min() ?? now
            let candidates = Set([best.key] + tied)
            let due = clean ? Self.due(all, through: candidates, since: since, counted: counted, inProgress: !tied.isEmpty, isLive: isLive) : 0
            // An instance among the candidates whose agent has not reported since the failures began, or has missed its
            // reports for half the late threshold (its last report may have been in flight when the host died): it
            // reports (its host is up) or turns late (failures towards it are then held for the silence verdict).
            let quietHost =
                clean
                && agents.contains {
                    ($0.lastSeenMs <= start || now - $0.lastSeenMs > lateMs / 2) && now - $0.lastSeenMs <= lateMs
                        && candidates.contains(ComponentRef(.instance, $0.instance))
                }
            if (due > 0 && now - crossed < evidenceWaitMs) || quietHost { continue }
            let vouching = passing.filter { $0.key.base == best.key }.values.reduce(0, +)
            var found = finding(
                blaming: best.key, pairs: best.value.map { failing[$0] }, tied: tied, passing: clean ? 0 : vouching, clean: clean,
                alternatives: failing[best.value[0]].probe.alternatives)
            if clean && evidenceWaitMs > 0 {
                let seconds = Self.seconds(due == 0 ? now - start : now - crossed)
                found.evidence.append(
                    due == 0
                        ? "evidence aligned: every pair through the candidates has reported since the failures began (the latest \(seconds) s ago); passes taken before them do not vouch"
                        : "decided after waiting \(seconds) s for the pairs through the candidates: \(due) still had a result to come"
                )
            }
            findings.append(found)
        }
        return findings
    }

    /// A NAT instance is a host: when its link goes down, the flows to and from the host fail with the flows it
    /// forwards. For each failing pair that starts or ends on the host of a NAT instance through which no pair has
    /// passed since that pair began to fail, the NAT (its key: the pair's key). A NAT still forwarding is not suspected
    /// for its host's own flows (a dead agent, the host's security group).
    private func natHostsSuspected(_ failing: [PairView], all: [PairView], isLive: (String) -> Bool) -> [String: ComponentRef] {
        guard !natInstances.isEmpty else { return [:] }
        let natOfHost = Dictionary(natInstances.map { ($0.value, ComponentRef(.natInstance, $0.key)) }, uniquingKeysWith: { first, _ in first })
        let touching = failing.compactMap { pair -> (String, ComponentRef)? in
            let nat = natOfHost[pair.probe.sourceInstance] ?? pair.probe.targetInstance.flatMap { natOfHost[$0] }
            return nat.map { (pair.key, $0) }
        }
        guard !touching.isEmpty else { return [:] }
        let nats = Set(touching.map(\.1))
        var lastPass: [ComponentRef: Int64] = [:]
        for index in all.indices
        where all[index].state.status == .agreeing && all[index].state.agreeingStreak >= vouchAfter && all[index].probe.expectReach
            && isLive(all[index].probe.sourceAgent)
        {
            for component in all[index].probe.components where nats.contains(component.base) {
                lastPass[component.base] = max(lastPass[component.base] ?? .min, all[index].state.lastAtMs)
            }
        }
        let starts = Dictionary(failing.map { ($0.key, Self.failureStart($0)) }, uniquingKeysWith: { first, _ in first })
        return Dictionary(
            touching.filter { key, nat in lastPass[nat] ?? .min <= starts[key] ?? .min }, uniquingKeysWith: { first, _ in first })
    }

    /// When a failing pair began to fail: its current run's first failure, else when it went down.
    static func failureStart(_ pair: PairView) -> Int64 { pair.state.failingSinceMs ?? pair.state.changedAtMs }

    /// How many pairs the model says pass through a failing part of `components` (bases), from agents still reporting,
    /// have a result still to come that decides between them: those that have not reported since the failures through
    /// that part began (`since`), and, with `inProgress` (the candidates are tied), those whose latest result failed
    /// but that are not yet `counted` as failing (one failure: loss, or the fault reaching them) and that cross some
    /// of the candidates but not all (their next result breaks the tie). The evidence a decision is waiting for.
    static func due(
        _ pairs: [PairView], through components: Set<ComponentRef>, since: [ComponentRef: Int64], counted: Set<String>, inProgress: Bool,
        isLive: (String) -> Bool
    ) -> Int {
        var count = 0
        for index in pairs.indices
        where pairs[index].probe.expectReach && pairs[index].state.status != .disagreeing && isLive(pairs[index].probe.sourceAgent)
            && !counted.contains(pairs[index].key)
        {
            var crossed: Set<ComponentRef> = []
            var stale = false
            for part in pairs[index].probe.components where components.contains(part.base) {
                guard let began = since[part] else { continue }
                crossed.insert(part.base)
                if pairs[index].state.lastAtMs <= began { stale = true }
            }
            guard !crossed.isEmpty else { continue }
            // A pair that has not reported since can clear what it crosses; one failing for the first time separates
            // tied candidates only when it crosses some of them and not all.
            if stale || (inProgress && pairs[index].state.recent.last == true && crossed.count < components.count) { count += 1 }
        }
        return count
    }

    static func seconds(_ ms: Int64) -> String {
        let tenths = (max(0, ms) + 50) / 100
        return "\(tenths / 10).\(tenths % 10)"
    }

    private func finding(
        blaming component: ComponentRef, pairs covered: [PairView], tied: [ComponentRef], passing: Int, clean: Bool, alternatives: [ComponentRef]?
    )
        -> Finding
    {
        let subnets = Set(covered.map(\.probe.sourceSubnet)).sorted()
        let flows = covered.count == 1 ? "1 flow" : "\(covered.count) flows"
        let fail = covered.count == 1 ? "fails" : "fail"
        func describe(_ ref: ComponentRef) -> String {
            if ref.kind == .targetGroup, let members = alternatives, !members.isEmpty {
                return "its targets \(members.map(\.id).joined(separator: ", "))"
            }
            return ref.description
        }
        var summary: String
        if component.kind.isNAT {
            summary = "NAT \(component.id) is not forwarding: \(flows) from \(subnets.joined(separator: ", ")) through it \(fail)"
        } else {
            summary = "\(flows) the model allows \(fail); they share \(component.description)"
        }
        if !tied.isEmpty {
            let named = tied.prefix(3).map(describe) + (tied.count > 3 ? ["\(tied.count - 3) more"] : [])
            summary += "; \(component.id) or \(named.joined(separator: ", ")): no probe tells them apart"
        }
        if !clean { summary += " (no component is on only the failing paths; this one is on the most)" }
        var evidence = component.kind.isNAT ? ["affected subnets: \(subnets.joined(separator: ", "))"] : []
        evidence.append(
            "chosen: on \(covered.count) failing path\(covered.count == 1 ? "" : "s") and \(passing) recently passing path\(passing == 1 ? "" : "s") of the same direction and port class"
        )
        if !tied.isEmpty { evidence.append("also consistent with the evidence: \(tied.map(describe).joined(separator: ", "))") }
        evidence += covered.sorted { $0.key < $1.key }.prefix(10).map { "\($0.key): \($0.lastResult ?? "no answer")" }
        var finding = Finding(
            kind: component.kind.isNAT ? .natFailure : .unexpectedBlock, severity: component.kind.isNAT ? .critical : .warning,
            component: component.id,
            componentType: component.kind.rawValue, summary: summary, pairs: covered.map(\.key).sorted(), evidence: evidence,
            flow: Self.flow(of: covered.min { $0.key < $1.key }!.probe))
        finding.failingPaths = covered.count
        finding.passingPaths = passing
        finding.alternatives = tied.isEmpty ? nil : tied.map(describe)
        return finding
    }

    // MARK: - Other kinds

    private func exposure(_ pairs: [PairView]) -> [Finding] {
        Dictionary(grouping: pairs, by: { $0.probe.blockingComponent ?? ComponentRef(.instance, $0.probe.targetName) }).sorted { $0.key < $1.key }.map
        {
            component, group in
            let flows = group.map { "\($0.probe.sourceInstance) → \($0.probe.targetName):\($0.probe.evaluatedPort)" }
            let intents = Set(group.compactMap(\.probe.intent)).sorted()
            return Finding(
                kind: .unexpectedReachability, severity: .critical, component: component.id, componentType: component.kind.rawValue,
                summary:
                    "\(flows.count == 1 ? flows[0] : "\(flows.count) flows") got through although the model blocks \(group.count == 1 ? "it" : "them") at \(component.kind.rawValue) \(component.id)"
                    + (intents.isEmpty ? "" : "; intent \(intents.map { "'\($0)'" }.joined(separator: ", ")) is broken"),
                pairs: group.map(\.key).sorted(), evidence: group.prefix(10).map { "\($0.key): \($0.lastResult ?? "reached")" },
                flow: Self.flow(of: group[0].probe))
        }
    }

    private func identity(_ pairs: [PairView], placements: [InterfacePlacementDrift]) -> [Finding] {
        var byInterface: [String: (expected: String, observed: Set<String>, pairs: [String], evidence: [String])] = [:]
        for pair in pairs {
            let interface = pair.probe.interface ?? pair.probe.expectedInterface ?? pair.probe.targetName
            var entry = byInterface[interface] ?? (pair.probe.expectedInstance ?? "?", [], [], [])
            if let observed = pair.observedInstance { entry.observed.insert(observed) }
            entry.pairs.append(pair.key)
            entry.evidence.append("\(pair.key): \(pair.lastResult ?? "answered by \(pair.observedInstance ?? "another instance")")")
            byInterface[interface] = entry
        }
        for drift in placements {
            var entry = byInterface[drift.interface] ?? (drift.expectedInstance, [], [], [])
            entry.observed.insert(drift.observedInstance)
            entry.evidence.append("agent \(drift.agentId) on \(drift.observedInstance) reports \(drift.interface) attached")
            byInterface[drift.interface] = entry
        }
        return byInterface.sorted { $0.key < $1.key }.map { interface, entry in
            let observed = entry.observed.sorted().joined(separator: ", ")
            return Finding(
                kind: .eniMoved, severity: .critical, component: interface, componentType: ComponentKind.eni.rawValue,
                summary:
                    "\(interface) belongs to \(entry.expected) in the model but is attached to \(observed.isEmpty ? "another instance" : observed)",
                pairs: entry.pairs.sorted(), evidence: entry.evidence)
        }
    }

    private func egress(_ pairs: [PairView]) -> [Finding] {
        Dictionary(grouping: pairs, by: { $0.probe.nat ?? $0.probe.sourceInstance }).sorted { $0.key < $1.key }.map { nat, group in
            let seen = Set(group.compactMap(\.observedEgressIP)).sorted().joined(separator: ", ")
            let expected = group.first?.probe.expectedEgressIP ?? "?"
            let kind: ComponentKind =
                group.first?.probe.components.first { $0.kind.isNAT && $0.id == nat }?.kind ?? (natInstances[nat] != nil ? .natInstance : .natGateway)
            return Finding(
                kind: .egressIPChanged, severity: .warning, component: nat, componentType: kind.rawValue,
                summary: "traffic through \(nat) leaves as \(seen.isEmpty ? "another address" : seen), not its Elastic IP \(expected)",
                pairs: group.map(\.key).sorted(), evidence: group.prefix(10).map { "\($0.key): \($0.lastResult ?? "")" })
        }
    }

    /// Latency regressions blamed as paths are: on a target only when it is the common part. Measured pairs are those
    /// with a learned baseline that agree, from live agents. A round trip includes both ends' scheduling, so
    /// - a source slow on at least half of its measured pairs is a busy prober: its pairs say nothing about targets;
    /// - a target is blamed when at least half of its other measured pairs are slow too, on two sources or more where
    ///   it has them;
    /// - when more than half of the targets have a slow pair, the cause is common to all (the probers' hosts, a
    ///   machine under load): no target is blamed.
    private func latency(_ pairs: [PairView], isLive: (String) -> Bool) -> [Finding] {
        // Counted in place over every pair: most evaluations have no regression at all and return at once, and the
        // pairs are many and large.
        func measured(_ index: Int) -> Bool {
            pairs[index].state.rttSamples >= 20 && pairs[index].state.status != .disagreeing && isLive(pairs[index].probe.sourceAgent)
        }
        func target(_ index: Int) -> String { pairs[index].probe.targetInstance ?? pairs[index].probe.targetName }
        let regressed = pairs.indices.filter { pairs[$0].state.latencyRegressed && measured($0) }
        guard !regressed.isEmpty else { return [] }
        var bySource: [String: (measured: Int, slow: Int)] = [:]
        for index in pairs.indices where measured(index) {
            bySource[pairs[index].probe.sourceAgent, default: (0, 0)].measured += 1
            if pairs[index].state.latencyRegressed { bySource[pairs[index].probe.sourceAgent, default: (0, 0)].slow += 1 }
        }
        let busy = Set(bySource.filter { $0.value.slow * 2 >= $0.value.measured }.keys)
        var byTarget: [String: (measured: Int, sources: Set<String>)] = [:]
        for index in pairs.indices where measured(index) && !busy.contains(pairs[index].probe.sourceAgent) {
            byTarget[target(index), default: (0, [])].measured += 1
            byTarget[target(index), default: (0, [])].sources.insert(pairs[index].probe.sourceAgent)
        }
        let slowByTarget = Dictionary(grouping: regressed.filter { !busy.contains(pairs[$0].probe.sourceAgent) }, by: target)
        guard slowByTarget.count * 2 <= byTarget.count else { return [] }
        let blamed = slowByTarget.compactMap { target, slow -> [PairView]? in
            guard let all = byTarget[target], slow.count * 2 >= all.measured,
                Set(slow.map { pairs[$0].probe.sourceAgent }).count >= min(2, all.sources.count)
            else { return nil }
            return slow.map { pairs[$0] }
        }.flatMap { $0 }
        func target(_ pair: PairView) -> String { pair.probe.targetInstance ?? pair.probe.targetName }
        return Dictionary(grouping: blamed, by: target).sorted { $0.key < $1.key }.map { target, group in
            Finding(
                kind: .latencyRegression, severity: .info, component: target, componentType: ComponentKind.instance.rawValue,
                summary: "round trips to \(target) are well above their learned baseline on \(group.count) path\(group.count == 1 ? "" : "s")",
                pairs: group.map(\.key).sorted(),
                evidence: group.prefix(10).map {
                    "\($0.key): baseline \(Int(($0.state.rttBaselineMs ?? 0) * 1000)) µs; \($0.lastResult ?? "")"
                })
        }
    }

    // MARK: - Helpers

    /// One finding per fingerprint (kind and component): a NACL blamed for two ports is one alert with both sets of
    /// pairs; active when any part is.
    static func merged(_ findings: [Finding]) -> [Finding] {
        var merged: [String: Finding] = [:]
        var order: [String] = []
        for finding in findings {
            if var existing = merged[finding.fingerprint] {
                existing.pairs = Array(Set(existing.pairs + finding.pairs)).sorted()
                existing.evidence += finding.evidence.filter { !existing.evidence.contains($0) }
                existing.active = existing.active || finding.active
                existing.failingPaths = (existing.failingPaths ?? 0) + (finding.failingPaths ?? 0)
                existing.passingPaths = max(existing.passingPaths ?? 0, finding.passingPaths ?? 0)
                if let more = finding.alternatives { existing.alternatives = Array(Set((existing.alternatives ?? []) + more)).sorted() }
                merged[finding.fingerprint] = existing
            } else {
                merged[finding.fingerprint] = finding
                order.append(finding.fingerprint)
            }
        }
        return order.compactMap { merged[$0] }.sorted {
            ($0.severity, $0.kind.rawValue, $0.component) > ($1.severity, $1.kind.rawValue, $1.component)
        }
    }

    static func flow(of probe: PlannedProbe) -> Finding.Flow {
        Finding.Flow(source: probe.sourceInstance, destination: probe.targetName, port: probe.evaluatedPort, protocol: probe.evaluatedProtocol)
    }
}

extension Finding {
    /// An open alert carried into the next evaluation as its own finding (it stays up, with its last evidence).
    public init(carrying alert: Alert, pairs: [String]) {
        self.init(
            kind: alert.kind, severity: alert.severity, component: alert.component, componentType: alert.componentType, summary: alert.summary,
            pairs: pairs, evidence: alert.evidence.filter { !$0.hasPrefix("flapping: ") }, flow: alert.flow)
        failingPaths = alert.failingPaths
        passingPaths = alert.passingPaths
        alternatives = alert.alternatives
    }
}
