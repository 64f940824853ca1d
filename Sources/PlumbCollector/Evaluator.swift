import CoreMetrics
import Foundation
import Logging
import PlumbCore
import PlumbProbes
import PlumbStore
import PlumbWire

/// What the planner hands the evaluator: the model, the planned pairs and where each agent sits in it.
struct PlanSnapshot: Sendable {
    var model: LiveModel?
    var catalog: [String: PlannedProbe] = [:]
    var placements: [String: Int] = [:]
    var agents: [String: AgentRecord] = [:]
    var hysteresis = Hysteresis()
    var probeIntervalMs: Int64 = 10_000
}

/// The leader's state: pair states built from the store's feed of reports, their evidence, the alert book and its
/// repeats, the agents' activity. Only the leader evaluates; it loads all of this from the store when it takes the
/// lead (pairs and the feed cursor saved together, open alerts, the deliveries queued for them) and continues from
/// the cursor, so a new leader neither loses a result nor counts one twice. A follower loads pairs and alerts for
/// reading only (`/v1/drift`, the matrix).
actor Evaluator {
    let store: any Store
    let configuration: CollectorConfiguration
    let logger: Logger
    let metrics: CollectorMetrics
    private var snapshot = PlanSnapshot()
    private var pairs: [String: PairState] = [:]
    private var evidence: [String: PairEvidence] = [:]
    private var changed: Set<String> = []
    private var removed: Set<String> = []
    private var cursor = FeedCursor()
    private var cursorMoved = false
    private var book = AlertBook()
    private var repeats = RepeatSchedule()
    /// When each agent was last heard from (a report read from the feed, or a registration), in the collector's clock.
    private var lastHeard: [String: Int64] = [:]
    private var clockOffsets: [String: Int64] = [:]
    private var heldUntil: [String: Int64] = [:]
    private var historyBefore: [String: Int64] = [:]  // per agent, in its clock: results started earlier are history
    private var acknowledgementsSeen: Int64 = 0
    /// Alert changes the book has made that the store has not taken yet, in order, with their times: written before
    /// anything newer, so a `resolved` never goes out for a `firing` that was not stored (and sent).
    private var unsaved: [(change: AlertChange, atMs: Int64)] = []
    /// Refused registrations of the last `identity.conflictSeconds`, read from the store at each evaluation (any
    /// collector may have refused them).
    private var refusals: [RegistrationRefusal] = []
    private(set) var active = false
    private var readOnlyLoadedAt: Int64?
    /// Each planned pair's metric series (looked up at its first result; one per label set, shared) and the subnets of
    /// probes' targets.
    private var probeSeries: [String: ProbeSeries] = [:]
    private var seriesByFamily: [ProbeSeries.Family: ProbeSeries] = [:]
    private var targetSubnets = TargetSubnets()
    static let agentMaxBackoffMs: Int64 = 60_000
    var conflictMs: Int64 { Int64(configuration.identity.conflictSeconds * 1000) }

    init(store: any Store, configuration: CollectorConfiguration, logger: Logger, metrics: CollectorMetrics) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
    }

    /// An agent this late is held (the blame engine's "late"), and a result this old when it arrives is history.
    /// At least two report intervals, so an agent that reports on time is never late.
    var lateMs: Int64 { max(Int64(configuration.silenceSeconds * 1000) / 3, 2 * Int64(configuration.reportIntervalMs) + 1_000) }

    /// How long an alert's component must look healthy before the alert resolves: configured, else the intervals a
    /// recovered pair needs to go down again (the hysteresis window) and to come back (its successes), so that a
    /// component failing and recovering faster than that is one episode.
    var holdDownMs: Int64 {
        configuration.holdDownSeconds.map { Int64($0 * 1000) }
            ?? Int64(snapshot.hysteresis.window + snapshot.hysteresis.successesToUp) * snapshot.probeIntervalMs
    }

    // MARK: - Taking and leaving the lead

    /// Takes the lead: loads pairs and the cursor, open alerts and their repeats, and the agents' last-seen times.
    /// `freshStart` (this collector just started and the store is its own) gives every agent a new silence window:
    /// the collector was away, not the agents, and they retry with a backoff of up to 60 s.
    func takeLead(now: Int64, freshStart: Bool) async throws {
        let loaded = try await store.loadPairs()
        pairs = loaded.pairs.mapValues(\.state)
        evidence = loaded.pairs.compactMapValues(\.evidence)
        cursor = loaded.cursor
        changed = []
        removed = []
        book = AlertBook(open: try await store.alerts(AlertFilter(status: .firing, limit: 100_000)), holdDownMs: holdDownMs)
        repeats = RepeatSchedule()
        // Repeats count from the last notification queued before.
        let openIds = Set(book.open.values.map(\.id))
        for delivery in try await store.deliveries(alertId: nil, limit: 10_000) where openIds.contains(delivery.alertId) {
            repeats.notified(receiver: delivery.receiver, alertId: delivery.alertId, at: delivery.createdAtMs)
        }
        acknowledgementsSeen = try await store.marks().acknowledgement
        unsaved = []
        let newest = snapshot.agents.values.map(\.lastSeenAtMs).max() ?? now
        // Nobody was heard for a while: the collectors were away (all of them), so the agents get a new window too.
        let grace = freshStart || now - newest > lateMs
        lastHeard = [:]
        for agent in snapshot.agents.values {
            lastHeard[agent.agentId] = grace ? max(agent.lastSeenAtMs, now + Self.agentMaxBackoffMs) : agent.lastSeenAtMs
        }
        clockOffsets = [:]
        heldUntil = [:]
        historyBefore = [:]
        active = true
        prune()
    }

    /// Leaves the lead: forgets the leader's state (the store holds it; changes it did not take are the next
    /// leader's to find again).
    func leaveLead() {
        active = false
        unsaved = []
        readOnlyLoadedAt = nil
    }

    /// A follower's view: pairs and open alerts as the leader last stored them, reloaded at most every 2 s.
    func loadForReading(now: Int64) async throws {
        guard !active else { return }
        if let at = readOnlyLoadedAt, now - at < 2_000, now >= at { return }
        let loaded = try await store.loadPairs()
        pairs = loaded.pairs.mapValues(\.state)
        evidence = loaded.pairs.compactMapValues(\.evidence)
        book = AlertBook(open: try await store.alerts(AlertFilter(status: .firing, limit: 100_000)), holdDownMs: holdDownMs)
        for agent in snapshot.agents.values { lastHeard[agent.agentId] = max(lastHeard[agent.agentId] ?? 0, agent.lastSeenAtMs) }
        readOnlyLoadedAt = now
    }

    /// A new plan (topology or agents changed): pairs whose probe left the plans are forgotten.
    func apply(_ snapshot: PlanSnapshot, now: Int64) {
        self.snapshot = snapshot
        probeSeries = [:]
        targetSubnets = TargetSubnets(snapshot.model?.topology)
        book.holdDownMs = holdDownMs
        for agent in snapshot.agents.values { noteRegistration(agent, now: now) }
        prune()
    }

    private func prune() {
        for key in pairs.keys where snapshot.catalog[key] == nil {
            pairs[key] = nil
            evidence[key] = nil
            changed.remove(key)
            removed.insert(key)
        }
    }

    /// An agent (re-)registered: heard from now, and back from being late when it had been.
    private func noteRegistration(_ agent: AgentRecord, now: Int64) {
        guard active else { return }
        guard let heard = lastHeard[agent.agentId] else {
            lastHeard[agent.agentId] = agent.lastSeenAtMs
            return
        }
        guard agent.lastSeenAtMs > heard else { return }
        // An agent registering after a gap (a restart) is back from being late, as one reporting after it.
        if agent.lastSeenAtMs - heard > lateMs {
            markReturned(agent.agentId, now: agent.lastSeenAtMs, offset: clockOffsets[agent.agentId] ?? 0)
        }
        lastHeard[agent.agentId] = agent.lastSeenAtMs
    }

    // MARK: - The feed

    /// Reads the reports stored since the cursor (by any collector) into the pair states.
    func readFeed(now: Int64) async throws {
        guard active else { return }
        while true {
            let entries = try await store.feed(after: cursor, limit: 2_000)
            for entry in entries { consume(entry) }
            let next = cursor.advanced(reading: entries.map(\.id), now: now)
            if next != cursor {
                cursor = next
                cursorMoved = true
            }
            if entries.count < 2_000 { break }
        }
    }

    /// One report. Results taken while the collector did not hear from the agent (replayed from its spool after a
    /// cut, a link down or a restart), and any result older than the silence window, are history: stored, not
    /// evaluated. The silence (or lateness) was the finding for that time; evaluating them now would raise alerts for a
    /// past that is over. The agent's clock offset is estimated from its reports.
    private func consume(_ entry: FeedEntry) {
        let agentId = entry.agentId
        let now = entry.receivedAtMs
        let report = entry.report
        // Checked at the door; a row stored before the checks existed (or by a collector without them) is skipped,
        // counted and logged, never evaluated: no stored value can stop the leader, again at every restart.
        let problems = report.problems(now: now, lastSequence: nil, limits: configuration.reportLimits)
        if let first = problems.first {
            metrics.reportsSkipped.increment()
            logger.error(
                "a stored report cannot be evaluated; skipped",
                metadata: ["agent": "\(agentId)", "sequence": "\(report.sequence)", "problem": "\(first)", "problems": "\(problems.count)"])
            return
        }
        let returning = lastHeard[agentId].map { now - $0 > lateMs } ?? false
        lastHeard[agentId] = max(lastHeard[agentId] ?? 0, now)
        let delay = now - report.createdAtMs
        let offset = min(delay, clockOffsets[agentId].map { $0 + 100 } ?? (abs(delay) < lateMs ? delay : 0))
        clockOffsets[agentId] = offset
        if returning { markReturned(agentId, now: now, offset: offset) }
        let staleBefore = max(historyBefore[agentId] ?? 0, now - offset - Int64(configuration.silenceSeconds * 1000))
        var stale = 0
        for result in report.results {
            if result.startedAtMs < staleBefore {
                stale += 1
            } else {
                observe(result, agentId: agentId)
            }
        }
        if stale > 0 { metrics.staleResults.increment(by: stale) }
    }

    /// An agent back from being late (a restart, a cut, a link down): the pairs towards it take a few rounds to agree
    /// again and are held until they have had the chance, and what it took meanwhile (its spool) is history.
    private func markReturned(_ agentId: String, now: Int64, offset: Int64) {
        heldUntil[agentId] = now + Int64(snapshot.hysteresis.successesToUp + 1) * snapshot.probeIntervalMs + lateMs
        historyBefore[agentId] = max(historyBefore[agentId] ?? 0, now - offset)
    }

    private func observe(_ result: ProbeResult, agentId: String) {
        let key = "\(agentId)/\(result.probeId)"
        guard let probe = snapshot.catalog[key] else { return }
        let series = probeSeries[key] ?? makeSeries(probe, key: key)
        // A probe that could not run (no name, no ICMP here, a local error) says nothing about the path.
        if result.outcome == .dnsFailure || result.outcome == .unsupported || result.outcome == .error {
            series.record(result, disagrees: nil)
            return
        }
        // A service flow is reached when the host answers at all: a reset proves the path as well as a connection.
        let reason = probe.purpose == .service && result.outcome == .refused ? nil : Self.disagreement(result)
        series.record(result, disagrees: reason != nil)
        var state = pairs[key] ?? PairState()
        let rtt = result.burst?.rttAvgMs ?? (result.kind == .tcp ? result.timings.connectMs : nil)
        // In the collector's clock (the agent's clock plus its estimated offset), so that results of different agents,
        // and the evaluation's own time, can be compared: blame weighs passes against when failures began.
        let at = result.startedAtMs + (clockOffsets[agentId] ?? 0)
        _ = state.observe(disagrees: reason != nil, rttMs: rtt, at: at, hysteresis: snapshot.hysteresis)
        pairs[key] = state
        changed.insert(key)
        removed.remove(key)
        if reason != nil || evidence[key] == nil || state.status != .disagreeing {
            evidence[key] = PairEvidence(
                reason: Disagreement.current(reason, previous: evidence[key]?.reason, status: state.status), lastResult: Self.summary(result),
                observedInstance: result.identity?.instanceId, observedEgressIP: result.egressIP,
                answered: reason == .blocked && (result.outcome == .refused || result.outcome == .tlsFailure || result.outcome == .ok))
        }
    }

    private func makeSeries(_ probe: PlannedProbe, key: String) -> ProbeSeries {
        let family: ProbeSeries.Family
        if probe.purpose == .natEgress, let nat = probe.nat {
            family = .nat(nat)
        } else if let target = targetSubnets.subnet(of: probe) {
            family = .path(source: probe.sourceSubnet, target: target, kind: probe.kind)
        } else {
            family = .endpoint(probe.targetName)
        }
        let series = seriesByFamily[family] ?? ProbeSeries(family)
        seriesByFamily[family] = series
        probeSeries[key] = series
        return series
    }

    /// Pairs per subnet pair and status, and the open alerts per component, for `/metrics` (every few seconds:
    /// it walks every planned pair).
    func recordStateMetrics() {
        guard active else { return }
        metrics.record(alerts: Array(book.open.values), pairs: pairs, bySubnetPair: subnetPairCounts())
    }

    /// Planned pairs per (source subnet, target subnet; `outside` for endpoints and NAT egress) and status: one walk
    /// over the plan, no sorting (the page asks every second).
    func subnetPairCounts() -> [SubnetPairKey: [PairState.Status: Int]] {
        var counts: [SubnetPairKey: [PairState.Status: Int]] = [:]
        for (key, probe) in snapshot.catalog {
            let target = targetSubnets.subnet(of: probe) ?? "outside"
            counts[SubnetPairKey(source: probe.sourceSubnet, target: target), default: [:]][pairs[key]?.status ?? .unknown, default: 0] += 1
        }
        return counts
    }

    static func disagreement(_ result: ProbeResult) -> Disagreement? {
        guard !result.matchesExpectation else { return nil }
        switch result.expected {
        case .block: return result.outcome.reached ? .reached : nil
        case .reach:
            if result.outcome == .ok, let failures = result.checkFailures {
                if failures.contains(where: { $0.hasPrefix("identity") }) { return .identity }
                if failures.contains(where: { $0.hasPrefix("egress IP") }) { return .egressIP }
            }
            return .blocked
        }
    }

    static func summary(_ result: ProbeResult) -> String {
        var text = "\(result.kind.rawValue) \(result.target)\(result.port.map { ":\($0)" } ?? "") \(result.outcome.rawValue)"
        if let burst = result.burst { text += " (\(burst.received)/\(burst.sent) replies)" }
        if let rtt = result.burst?.rttAvgMs ?? result.timings.connectMs { text += String(format: " %.2f ms", rtt) }
        if let failures = result.checkFailures { text += "; " + failures.joined(separator: "; ") }
        if let detail = result.detail, result.outcome != .ok { text += " — \(detail)" }
        return text
    }

    // MARK: - Evaluation

    /// One evaluation: findings from the pair states, agents and ENI placements; alerts fired, updated and resolved;
    /// deliveries queued; then the changed pairs and the cursor saved together. Alerts are saved first: a leader that
    /// dies between the two leaves the next one states older than the alerts, which it rebuilds from the feed into
    /// the same findings, and the stored book does not fire them again.
    func evaluate(now: Int64, receivers: [Receiver]) async throws -> [AlertChange] {
        guard active else { return [] }
        let started = ContinuousClock.now
        refusals = try await store.refusals(since: now - conflictMs).map {
            RegistrationRefusal(instance: $0.instanceId, agentId: $0.agentId, reason: $0.reason, source: $0.source, detail: $0.detail, atMs: $0.atMs)
        }
        // What an earlier evaluation could not store goes first; until it is stored the book takes nothing new.
        try await saveUnsaved(receivers: receivers)
        let findings = currentFindings(now: now)
        let changes = book.reconcile(findings, now: now)
        unsaved += changes.map { ($0, now) }
        try await saveUnsaved(receivers: receivers)
        try await store.enqueue(try await dueRepeats(now: now, receivers: receivers))
        if !changed.isEmpty || !removed.isEmpty || cursorMoved {
            var save: [String: StoredPair] = [:]
            for key in changed { if let state = pairs[key] { save[key] = StoredPair(state: state, evidence: evidence[key]) } }
            try await store.savePairs(save, removed: Array(removed), cursor: cursor)
            changed = []
            removed = []
            cursorMoved = false
        }
        metrics.evaluationSeconds.recordNanoseconds(Int64((ContinuousClock.now - started) / .nanoseconds(1)))
        metrics.evaluations.increment()
        return changes
    }

    /// Writes the book's changes in order; one the store refuses stays first in line with everything after it, and
    /// the error goes up (the evaluation is retried at the next tick). An update is folded into a later one of the same
    /// alert while they wait.
    private func saveUnsaved(receivers: [Receiver]) async throws {
        while let (change, at) = unsaved.first {
            switch change {
            case .fired(let alert):
                try await store.saveAlert(alert, event: "firing", at: at, deliveries: queue(alert, event: "firing", receivers: receivers, now: at))
                logger.notice("alert firing", metadata: ["kind": "\(alert.kind.rawValue)", "component": "\(alert.component)", "id": "\(alert.id)"])
            case .updated(let alert):
                if unsaved.dropFirst().contains(where: {
                    if case .updated(let later) = $0.change { return later.id == alert.id } else { return false }
                }) {
                    break
                }
                try await store.saveAlert(alert, event: "updated", at: at, deliveries: [])
            case .resolved(let alert):
                try await store.saveAlert(
                    alert, event: "resolved", at: at, deliveries: queue(alert, event: "resolved", receivers: receivers, now: at))
                logger.notice("alert resolved", metadata: ["kind": "\(alert.kind.rawValue)", "component": "\(alert.component)", "id": "\(alert.id)"])
            }
            unsaved.removeFirst()
        }
    }

    /// Alert changes waiting for the store.
    var unsavedChanges: Int { unsaved.count }

    /// The collector could not store a report of `agentId` (the store refused or did not answer): the agent was heard
    /// all the same. Every agent that was live when the trouble began gets the window a fresh start gives (its retries
    /// back off up to a minute), so the collector's own trouble is never blamed on the VPC as silence.
    func noteUnstored(agentId: String, now: Int64) {
        guard active else { return }
        lastHeard[agentId] = max(lastHeard[agentId] ?? 0, now)
        for (agent, heard) in lastHeard where now - heard <= lateMs {
            lastHeard[agent] = max(heard, now + Self.agentMaxBackoffMs)
        }
    }

    private func queue(_ alert: Alert, event: String, receivers: [Receiver], now: Int64) -> [OutboxEntry] {
        receivers.filter { $0.accepts(alert) }.map { receiver in
            repeats.notified(receiver: receiver.name, alertId: alert.id, at: now)
            return OutboxEntry(
                receiver: receiver.name, alertId: alert.id, event: event, idempotencyKey: "\(alert.id):\(event):\(receiver.name)", createdAtMs: now,
                nextAttemptAtMs: now)
        }
    }

    /// The repeats due at `now` (`RepeatSchedule`), one outbox entry each with its own idempotency key. The body is
    /// built when the request is made, from the alert as it is then, so a repeat still waiting for its receiver
    /// says nothing a newer one does not: it is given up as superseded (a receiver that is down collects one
    /// pending repeat per alert, not one per interval, and the newest is tried at once when it is back).
    private func dueRepeats(now: Int64, receivers: [Receiver]) async throws -> [OutboxEntry] {
        var subscriptions: [RepeatSchedule.Subscription] = []
        for alert in book.open.values.sorted(by: { $0.id < $1.id }) {
            for receiver in receivers where receiver.accepts(alert) {
                guard let seconds = receiver.effectiveRepeatIntervalSeconds else { continue }
                subscriptions.append(
                    RepeatSchedule.Subscription(
                        receiver: receiver.name, alertId: alert.id, startsAtMs: alert.startsAtMs, intervalMs: Int64(seconds) * 1000))
            }
        }
        var entries: [OutboxEntry] = []
        for due in repeats.due(subscriptions, now: now) {
            let (receiver, alertId) = (due.key.receiver, due.key.alertId)
            for pending in try await store.deliveries(alertId: alertId, limit: 50)
            where pending.receiver == receiver && pending.event == "repeat" && pending.deliveredAtMs == nil && pending.gaveUpAtMs == nil {
                try await store.recordAttempt(
                    id: pending.id, at: now, status: 0, error: "superseded by a later repeat", delivered: false, nextAttemptAt: nil, gaveUp: true)
            }
            entries.append(
                OutboxEntry(
                    receiver: receiver, alertId: alertId, event: "repeat", idempotencyKey: "\(alertId):repeat:\(now):\(receiver)", createdAtMs: now,
                    nextAttemptAtMs: now))
        }
        return entries
    }

    /// Acknowledgements recorded since the last look (by any collector) applied to the open alerts.
    func applyAcknowledgements(through mark: Int64, now: Int64) async throws {
        guard active, mark > acknowledgementsSeen else { return }
        for event in try await store.acknowledgements(after: acknowledgementsSeen) {
            acknowledgementsSeen = max(acknowledgementsSeen, event.eventId)
            guard let stored = try await store.alert(id: event.alertId), let open = book.open[stored.fingerprint], open.id == event.alertId,
                open.acknowledgedBy == nil
            else { continue }
            if let alert = book.acknowledge(fingerprint: stored.fingerprint, by: event.by, at: event.atMs) {
                try await store.saveAlert(alert, event: "updated", at: now, deliveries: [])
            }
        }
    }

    /// Acknowledges an open alert (the leader's own book); nil when it is not open here.
    func acknowledge(fingerprint: String, by who: String, at now: Int64) -> Alert? {
        guard active else { return nil }
        return book.acknowledge(fingerprint: fingerprint, by: who, at: now)
    }

    // MARK: - Reading

    /// The findings now, without changing anything.
    func currentFindings(now: Int64) -> [Finding] {
        guard let model = snapshot.model else { return [] }
        var views: [PairView] = []
        for (key, state) in pairs {
            guard let probe = snapshot.catalog[key] else { continue }
            let remembered = evidence[key]
            views.append(
                PairView(
                    key: key, probe: probe, state: state, reason: remembered?.reason, lastResult: remembered?.lastResult,
                    observedInstance: remembered?.observedInstance, observedEgressIP: remembered?.observedEgressIP,
                    answered: remembered?.answered ?? false))
        }
        var activity: [AgentActivity] = []
        var drift: [InterfacePlacementDrift] = []
        for agent in snapshot.agents.values {
            let index = snapshot.placements[agent.agentId]
            let subnet = index.flatMap { instance in
                model.network.instances[instance].interfaces.min {
                    model.network.interfaces[$0].deviceIndex < model.network.interfaces[$1].deviceIndex
                }
            }.map { model.network.subnets[model.network.interfaces[$0].subnet].id }
            activity.append(
                AgentActivity(
                    agentId: agent.agentId, instance: index.map { model.network.instances[$0].id } ?? agent.registration.identity.instanceId,
                    subnet: subnet, lastSeenMs: lastHeard[agent.agentId] ?? agent.lastSeenAtMs, heldUntilMs: heldUntil[agent.agentId]))
            if let index {
                let interfaces = agent.registration.identity.interfaces
                drift += model.network.placementDrift(
                    agentId: agent.agentId, instance: index, interfaceIds: interfaces.map(\.interfaceId),
                    addresses: interfaces.map { $0.privateIPv4s.compactMap(IPv4Address.init) })
            }
        }
        var natInstances: [String: String] = [:]
        for nat in model.network.nats {
            if let interface = nat.interface, case .instance(let owner) = model.network.interfaces[interface].owner {
                natInstances[nat.id] = model.network.instances[owner].id
            }
        }
        let hysteresis = snapshot.hysteresis
        let engine = BlameEngine(
            silenceMs: Int64(configuration.silenceSeconds * 1000), lateMs: lateMs, holdDownMs: holdDownMs, vouchAfter: hysteresis.window,
            confirmSingle: min(hysteresis.failuresToDown + 1, hysteresis.window),
            evidenceWaitMs: snapshot.probeIntervalMs + Int64(configuration.reportIntervalMs), natInstances: natInstances, conflictMs: conflictMs)
        return engine.findings(
            BlameInput(pairs: views, agents: activity, placements: drift, open: Array(book.open.values), refusals: refusals, now: now))
    }

    /// Pairs that disagree with the model now, with their probes.
    func drift() -> [(key: String, probe: PlannedProbe, state: PairState, memory: (reason: String?, lastResult: String?))] {
        pairs.filter { $0.value.status == .disagreeing }.sorted { $0.key < $1.key }.compactMap { key, state in
            guard let probe = snapshot.catalog[key] else { return nil }
            return (key, probe, state, (evidence[key]?.reason?.rawValue, evidence[key]?.lastResult))
        }
    }

    /// Every planned pair with its state (for the live matrix).
    func pairsWithProbes() -> [(key: String, probe: PlannedProbe, state: PairState?, lastResult: String?)] {
        snapshot.catalog.sorted { $0.key < $1.key }.map { ($0.key, $0.value, pairs[$0.key], evidence[$0.key]?.lastResult) }
    }
}

/// The subnet of a probe's target inside the VPC (an ENI's, else the target instance's primary interface's); nil for
/// what is outside (endpoints, NAT egress) or has no subnet of its own (a load balancer).
struct TargetSubnets: Sendable {
    private var interfaces: [String: String] = [:]
    private var instances: [String: String] = [:]

    init(_ topology: Topology? = nil) {
        guard let topology else { return }
        for instance in topology.instances {
            for interface in instance.interfaces { interfaces[interface.id] = interface.subnet }
            if let primary = instance.interfaces.min(by: { ($0.deviceIndex ?? 0) < ($1.deviceIndex ?? 0) }) {
                instances[instance.id] = primary.subnet
            }
        }
    }

    func subnet(of probe: PlannedProbe) -> String? {
        if probe.purpose == .natEgress || probe.purpose == .endpoint || probe.purpose == .loadBalancer { return nil }
        if let interface = probe.interface, let subnet = interfaces[interface] { return subnet }
        return probe.targetInstance.flatMap { instances[$0] }
    }
}
