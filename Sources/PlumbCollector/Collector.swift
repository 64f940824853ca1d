import CoreMetrics
import Foundation
import Logging
import PlumbCore
import PlumbModelIO
import PlumbProbes
import PlumbStore
import PlumbWire

/// Errors the API turns into JSON answers: `{"error": {"code", "message", "field"}}` with `status`.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    public var field: String?

    public init(_ status: Int, _ code: String, _ message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    public var description: String { "\(status) \(code): \(message)" }
}

/// The live model: the topology version, its compiled network and the plans derived from it.
struct LiveModel: Sendable {
    var version: Int
    var topology: Topology
    var network: Network
}

/// What the collector remembers about a pair's last result, for evidence.
struct PairMemory: Sendable {
    var reason: Disagreement?
    var lastResult: String
    var observedInstance: String?
    var observedEgressIP: String?
    /// The last failing result was answered by the target's host (refused, TLS failure, HTTP error).
    var answered = false
}

/// The collector's state and logic between the API and the store: registration, plans, ingest into pair states,
/// evaluation into alerts, and the outbox. An actor: the coarse state lives here; the store is the source of truth
/// across restarts.
public actor Collector {
    let store: any Store
    let configuration: CollectorConfiguration
    let logger: Logger
    let metrics: CollectorMetrics
    private var model: LiveModel?
    private var agents: [String: AgentRecord] = [:]
    private var placements: [String: Int] = [:]
    private var catalog: [String: PlannedProbe] = [:]
    private var plansByAgent: [String: (etag: String, plan: Plan)] = [:]
    private var pairs: [String: PairState] = [:]
    private var memory: [String: PairMemory] = [:]
    private var book = AlertBook()
    private var repeats = RepeatSchedule()
    private var rateBuckets: [String: (tokens: Double, at: Int64)] = [:]
    private var dirtyPairs = false
    private var hysteresis = Hysteresis()
    private var clockOffsets: [String: Int64] = [:]
    private var heldUntil: [String: Int64] = [:]
    private var historyBefore: [String: Int64] = [:]  // per agent, in its clock: results started earlier are history
    private var probeIntervalMs: Int64 = 10_000
    /// An agent this late is held (the correlator's "late"), and a result this old when it arrives is history.
    /// At least two report intervals, so an agent that reports on time is never late.
    private var lateMs: Int64 { max(Int64(configuration.silenceSeconds * 1000) / 3, 2 * Int64(configuration.reportIntervalMs) + 1_000) }
    static let agentMaxBackoffMs: Int64 = 60_000
    /// How long an alert's component must look healthy before the alert resolves: configured, else the intervals a
    /// recovered pair needs to go down again (the hysteresis window) and to come back (its successes), so that a
    /// component failing and recovering faster than that is one episode.
    private var holdDownMs: Int64 {
        configuration.holdDownSeconds.map { Int64($0 * 1000) } ?? Int64(hysteresis.window + hysteresis.successesToUp) * probeIntervalMs
    }
    private var plansStale = false
    private var lastReplanCost: Duration = .zero
    private var lastReplanAt = ContinuousClock.now

    /// A collector over `store`. Call `start()` before serving.
    public init(store: any Store, configuration: CollectorConfiguration, logger: Logger, metrics: CollectorMetrics = CollectorMetrics()) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
    }

    /// Loads agents, pair states and open alerts from the store, then the topology: the stored one, or the model
    /// file when it differs (a new version is kept).
    public func start(now: Int64) async throws {
        // After a restart every agent gets a fresh silence window: the collector was away, not the agents. Agents
        // retry with a backoff of up to 60 s (three report intervals), so the window starts that much later.
        for var agent in try await store.agents() {
            agent.lastSeenAtMs = max(agent.lastSeenAtMs, now + Self.agentMaxBackoffMs)
            agents[agent.agentId] = agent
        }
        pairs = try await store.pairStates()
        book = AlertBook(open: try await store.alerts(AlertFilter(status: .firing, limit: 100_000)), holdDownMs: holdDownMs)
        // Repeats count from the last notification queued before the restart.
        let openIds = Set(book.open.values.map(\.id))
        for delivery in try await store.deliveries(alertId: nil, limit: 10_000) where openIds.contains(delivery.alertId) {
            repeats.notified(receiver: delivery.receiver, alertId: delivery.alertId, at: delivery.createdAtMs)
        }
        var document: (text: String, format: String)?
        if let stored = try await store.latestTopology() { document = (stored.document, stored.format) }
        if let path = configuration.modelPath {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw APIError(500, "model_unreadable", "cannot read the model file \(path)")
            }
            if document?.text != text {
                _ = try await putTopology(
                    text, format: path.hasSuffix(".json") ? "json" : "yaml", file: path, author: "plumb-collector --model", now: now)
                return
            }
        }
        if let document { try await activate(document.text, format: document.format, file: "topology", version: nil, now: now) }
    }

    // MARK: - Topology

    /// Validates a topology document: errors and warnings, with locations.
    public func validate(_ text: String, file: String) -> (topology: Topology?, diagnostics: [Diagnostic]) {
        let loaded = ModelLoader.load(text: text, file: file)
        return (loaded.topology, loaded.diagnostics)
    }

    /// Stores and activates a new topology version; 422 with every problem when it is invalid.
    public func putTopology(_ text: String, format: String, file: String, author: String, now: Int64, comment: String? = nil) async throws -> Int {
        let (topology, diagnostics) = validate(text, file: file)
        guard topology != nil, !diagnostics.hasErrors else {
            let errors = diagnostics.filter { $0.severity == .error }.prefix(20).map(\.description)
            throw APIError(422, "invalid_topology", errors.joined(separator: "\n"), field: "body")
        }
        let version = try await store.saveTopology(document: text, format: format, author: author, comment: comment, at: now)
        try await activate(text, format: format, file: file, version: version, now: now)
        logger.info("topology activated", metadata: ["version": "\(version)", "author": "\(author)"])
        return version
    }

    private func activate(_ text: String, format: String, file: String, version: Int?, now: Int64) async throws {
        let (topology, diagnostics) = validate(text, file: file)
        guard let topology, !diagnostics.hasErrors else { throw APIError(422, "invalid_topology", "the stored topology is invalid") }
        let storedVersion: Int
        if let version { storedVersion = version } else { storedVersion = try await store.latestTopology()?.version ?? 0 }
        model = LiveModel(version: storedVersion, topology: topology, network: Network(topology))
        try await replan(now: now)
    }

    /// The live model, if any.
    var live: LiveModel? { model }

    // MARK: - Agents

    /// Registers an agent (new, or refreshing its registration) and returns its id and a new token.
    public func register(_ registration: Registration, bearer: String, now: Int64) async throws -> RegistrationResponse {
        let requested = registration.agentId ?? registration.identity.instanceId
        guard !requested.isEmpty, requested.count <= 128, !requested.contains("/") else {
            throw APIError(422, "invalid_agent_id", "agent id must be 1–128 characters without '/'", field: "agentId")
        }
        let bearerHash = hexString(SHA256.hash(Array(bearer.utf8)))
        let enrolled =
            configuration.enrollmentToken.map { constantTimeEqual(Array(hexString(SHA256.hash(Array($0.utf8))).utf8), Array(bearerHash.utf8)) }
            ?? false
        let existing = agents[requested]
        let ownToken = existing.map { constantTimeEqual(Array($0.tokenHash.utf8), Array(bearerHash.utf8)) } ?? false
        guard enrolled || ownToken else { throw APIError(401, "unauthorized", "the enrollment token (or this agent's own token) is required") }
        // An agent re-registering with its own token (a changed identity) keeps it: a new one would turn away the
        // requests it has in flight with the old one, and each of those would register again.
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = generator.next() }
        let token = ownToken ? bearer : "plumb_" + hexString(bytes)
        // An agent registering after a gap (a restart) is back from being late, as one reporting after it.
        if let existing, now - existing.lastSeenAtMs > lateMs { markReturned(requested, now: now, offset: clockOffsets[requested] ?? 0) }
        let record = AgentRecord(
            agentId: requested, tokenHash: hexString(SHA256.hash(Array(token.utf8))), registration: registration,
            registeredAtMs: existing?.registeredAtMs ?? now, lastSeenAtMs: now, lastSequence: existing?.lastSequence ?? 0)
        try await store.saveAgent(record)
        let isNew =
            existing == nil || existing?.registration.identity != registration.identity
            || existing?.registration.responderPort != registration.responderPort
        agents[requested] = record
        if isNew { plansStale = true }
        return RegistrationResponse(
            agentId: requested, agentToken: token, planRefreshMs: configuration.planRefreshMs, lastSequence: record.lastSequence)
    }

    /// The agent a bearer token belongs to, when it is that agent's token.
    public func authenticateAgent(id: String, bearer: String) throws -> AgentRecord {
        // Unknown agents and wrong tokens answer alike, so a bearer cannot find out which agent ids exist.
        guard let agent = agents[id] else { throw APIError(401, "unauthorized", "this token does not belong to agent \(id); register first") }
        guard constantTimeEqual(Array(agent.tokenHash.utf8), Array(hexString(SHA256.hash(Array(bearer.utf8))).utf8)) else {
            throw APIError(401, "unauthorized", "this token does not belong to agent \(id)")
        }
        return agent
    }

    /// Whether a bearer token is the operator token.
    public func isOperator(_ bearer: String) -> Bool {
        guard let token = configuration.operatorToken else { return false }
        return constantTimeEqual(SHA256.hash(Array(token.utf8)), SHA256.hash(Array(bearer.utf8)))
    }

    /// Every agent.
    public func listAgents() -> [AgentRecord] { agents.values.sorted { $0.agentId < $1.agentId } }

    /// The placement of an agent in the model (instance id), if any.
    public func instance(ofAgent id: String) -> String? {
        guard let index = placements[id], let model else { return nil }
        return model.network.instances[index].id
    }

    // MARK: - Plans

    /// Replans when agents changed since the last plan: at once while plans are cheap (under 50 ms), otherwise at most
    /// every 5 s (a registration storm of thousands of agents must not replan thousands of times).
    public func replanIfNeeded(now: Int64, force: Bool = false) async throws {
        guard plansStale else { return }
        guard force || lastReplanCost < .milliseconds(50) || ContinuousClock.now - lastReplanAt > .seconds(5) else { return }
        try await replan(now: now)
    }

    private func replan(now: Int64) async throws {
        plansStale = false
        let started = ContinuousClock.now
        defer {
            lastReplanCost = ContinuousClock.now - started
            lastReplanAt = ContinuousClock.now
        }
        guard let model else { return }
        var placed: [AgentPlacement] = []
        placements = [:]
        for agent in agents.values.sorted(by: { $0.agentId < $1.agentId }) {
            let identity = agent.registration.identity
            let addresses = identity.interfaces.flatMap(\.privateIPv4s).compactMap(IPv4Address.init)
            guard
                let index = model.network.instanceIndex(
                    instanceId: identity.instanceId, interfaceIds: identity.interfaces.compactMap(\.interfaceId), addresses: addresses)
            else { continue }
            placements[agent.agentId] = index
            placed.append(AgentPlacement(agentId: agent.agentId, instance: index, responderPort: agent.registration.responderPort ?? 7471))
        }
        let probing = model.topology.probing
        hysteresis =
            configuration.hysteresis
            ?? Hysteresis(failuresToDown: probing?.failuresToDown ?? 3, window: probing?.window ?? 5, successesToUp: probing?.successesToUp ?? 2)
        let generator = PlanGenerator(network: model.network, settings: PlannerSettings(peersPerSubnet: probing?.peersPerSubnet))
        let planned = generator.plans(for: placed)
        var newCatalog: [String: PlannedProbe] = [:]
        let interval = (probing?.intervalSeconds).map { $0 * 1000 } ?? configuration.probeIntervalMs
        probeIntervalMs = Int64(interval)
        book.holdDownMs = holdDownMs
        let timeout = probing?.timeoutMilliseconds ?? configuration.probeTimeoutMs
        let settings = PlanSettings(
            reportIntervalMs: configuration.reportIntervalMs, maxProbesPerSecond: probing?.maxProbesPerSecond ?? 20,
            planRefreshMs: configuration.planRefreshMs)
        for agent in agents.keys.sorted() {
            let probes = planned[agent] ?? []
            for probe in probes { newCatalog["\(agent)/\(probe.id)"] = probe }
            var plan = Plan(
                agentId: agent, topologyVersion: model.version, probes: probes.map { Self.spec($0, interval: interval, timeout: timeout) },
                settings: settings)
            let body = try JSONEncoder.sorted.encode(plan)
            let etag = "\"" + hexString(SHA256.hash(body).prefix(8)) + "\""
            plan.planId = etag
            if plansByAgent[agent]?.etag != etag {
                plansByAgent[agent] = (etag, plan)
                try await store.savePlan(
                    agentId: agent, etag: etag, body: String(decoding: try JSONEncoder.sorted.encode(plan), as: UTF8.self), at: now)
            }
        }
        catalog = newCatalog
        // Pairs whose probe left the plans are forgotten.
        pairs = pairs.filter { newCatalog[$0.key] != nil }
        memory = memory.filter { newCatalog[$0.key] != nil }
        metrics.plannedProbes.record(newCatalog.count)
    }

    static func spec(_ probe: PlannedProbe, interval: Int, timeout: Int) -> ProbeSpec {
        ProbeSpec(
            id: probe.id, kind: ProbeKind(rawValue: probe.kind) ?? .tcp, target: probe.target, port: probe.port, intervalMs: interval,
            timeoutMs: timeout,
            expect: ProbeExpectation(
                verdict: probe.expectReach ? .reach : .block,
                identity: probe.expectedInstance.map { ExpectedIdentity(instanceId: $0, interfaceId: probe.expectedInterface) },
                egressIP: probe.expectedEgressIP),
            egressEcho: probe.purpose == .natEgress ? true : nil,
            labels: ["purpose": probe.purpose.rawValue, "target": probe.targetName])
    }

    /// An agent's plan and ETag.
    public func plan(agentId: String) async throws -> (etag: String, plan: Plan) {
        try await replanIfNeeded(now: wallClockMilliseconds())
        if let plan = plansByAgent[agentId] { return plan }
        let empty = Plan(agentId: agentId, planId: "\"empty\"", probes: [], settings: PlanSettings(planRefreshMs: configuration.planRefreshMs))
        return ("\"empty\"", empty)
    }

    // MARK: - Ingest

    /// Checks the per-agent rate; 429 when over it.
    public func admit(agentId: String, now: Int64) throws {
        let rate = configuration.maxReportsPerSecondPerAgent
        var bucket = rateBuckets[agentId] ?? (tokens: rate * 2, at: now)
        bucket.tokens = min(rate * 2, bucket.tokens + Double(now - bucket.at) / 1000 * rate)
        bucket.at = now
        guard bucket.tokens >= 1 else {
            rateBuckets[agentId] = bucket
            throw APIError(429, "rate_limited", "more than \(rate) reports per second from \(agentId); slow down")
        }
        bucket.tokens -= 1
        rateBuckets[agentId] = bucket
    }

    /// Stores a report (once) and feeds its results to the pair states; acknowledged after the commit.
    public func ingest(_ report: Report, body: String? = nil, agentId: String, now: Int64) async throws -> ReportAcknowledgement {
        guard report.agentId == agentId else {
            throw APIError(422, "agent_mismatch", "the report names agent \(report.agentId) but was posted for \(agentId)", field: "agentId")
        }
        guard report.results.count <= configuration.maxResultsPerReport else {
            throw APIError(
                413, "too_many_results", "\(report.results.count) results; at most \(configuration.maxResultsPerReport) per report", field: "results")
        }
        guard report.sequence >= 1 else { throw APIError(422, "invalid_sequence", "sequence numbers start at 1", field: "sequence") }
        let outcome = try await store.ingest(report, body: body, receivedAt: now)
        let returning = (agents[agentId]?.lastSeenAtMs).map { now - $0 > lateMs } ?? false
        agents[agentId]?.lastSeenAtMs = now
        let lastSequence = max(agents[agentId]?.lastSequence ?? 0, report.sequence)
        agents[agentId]?.lastSequence = lastSequence
        guard outcome == .stored else {
            metrics.duplicates.increment()
            return ReportAcknowledgement(sequence: report.sequence, stored: false)
        }
        metrics.reports.increment()
        metrics.results.increment(by: report.results.count)
        if let identity = report.identity, var agent = agents[agentId] {
            agent.registration.identity = identity
            agents[agentId] = agent
            try await store.saveAgent(agent)
        }
        // Results taken while the collector did not hear from the agent (replayed from its spool after a cut, a
        // link down or a restart), and any result older than the silence window, are history: stored, not
        // evaluated. The silence (or lateness) was the finding for that time; evaluating them now would raise
        // alerts for a past that is over. The agent's clock offset is estimated from its reports.
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
        return ReportAcknowledgement(sequence: report.sequence, stored: true)
    }

    /// An agent back from being late (a restart, a cut, a link down): the pairs towards it take a few rounds to agree
    /// again and are held until they have had the chance, and what it took meanwhile (its spool) is history.
    private func markReturned(_ agentId: String, now: Int64, offset: Int64) {
        heldUntil[agentId] = now + Int64(hysteresis.successesToUp + 1) * probeIntervalMs + lateMs
        historyBefore[agentId] = max(historyBefore[agentId] ?? 0, now - offset)
    }

    private func observe(_ result: ProbeResult, agentId: String) {
        let key = "\(agentId)/\(result.probeId)"
        guard catalog[key] != nil else { return }
        // A probe that could not run (no name, no ICMP here, a local error) says nothing about the path.
        if result.outcome == .dnsFailure || result.outcome == .unsupported || result.outcome == .error { return }
        let reason = Self.disagreement(result)
        var state = pairs[key] ?? PairState()
        let rtt = result.burst?.rttAvgMs ?? (result.kind == .tcp ? result.timings.connectMs : nil)
        _ = state.observe(disagrees: reason != nil, rttMs: rtt, at: result.startedAtMs, hysteresis: hysteresis)
        pairs[key] = state
        dirtyPairs = true
        let summary = Self.summary(result)
        if reason != nil || memory[key] == nil || state.status != .disagreeing {
            memory[key] = PairMemory(
                reason: Disagreement.current(reason, previous: memory[key]?.reason, status: state.status), lastResult: summary,
                observedInstance: result.identity?.instanceId, observedEgressIP: result.egressIP,
                answered: reason == .blocked && (result.outcome == .refused || result.outcome == .tlsFailure || result.outcome == .ok))
        }
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
    /// deliveries queued. Returns the changes.
    @discardableResult
    public func evaluate(now: Int64) async throws -> [AlertChange] {
        try await replanIfNeeded(now: now)
        let started = ContinuousClock.now
        let findings = currentFindings(now: now)
        let changes = book.reconcile(findings, now: now)
        var deliveries: [OutboxEntry] = []
        for change in changes {
            switch change {
            case .fired(let alert):
                try await store.saveAlert(alert, event: "firing", at: now, deliveries: queue(alert, event: "firing", now: now))
                logger.notice("alert firing", metadata: ["kind": "\(alert.kind.rawValue)", "component": "\(alert.component)", "id": "\(alert.id)"])
            case .updated(let alert):
                try await store.saveAlert(alert, event: "updated", at: now, deliveries: [])
            case .resolved(let alert):
                try await store.saveAlert(alert, event: "resolved", at: now, deliveries: queue(alert, event: "resolved", now: now))
                logger.notice("alert resolved", metadata: ["kind": "\(alert.kind.rawValue)", "component": "\(alert.component)", "id": "\(alert.id)"])
            }
        }
        deliveries += try await dueRepeats(now: now)
        try await store.enqueue(deliveries)
        if dirtyPairs {
            try await store.savePairStates(pairs)
            dirtyPairs = false
        }
        metrics.evaluationSeconds.recordNanoseconds(Int64((ContinuousClock.now - started) / .nanoseconds(1)))
        metrics.record(alerts: Array(book.open.values), pairs: pairs)
        return changes
    }

    private func queue(_ alert: Alert, event: String, now: Int64) -> [OutboxEntry] {
        configuration.receivers.filter { $0.accepts(alert) }.map { receiver in
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
    private func dueRepeats(now: Int64) async throws -> [OutboxEntry] {
        var subscriptions: [RepeatSchedule.Subscription] = []
        for alert in book.open.values.sorted(by: { $0.id < $1.id }) {
            for receiver in configuration.receivers where receiver.accepts(alert) {
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

    /// The findings now, without changing anything.
    public func currentFindings(now: Int64) -> [Finding] {
        guard let model else { return [] }
        var views: [PairView] = []
        for (key, state) in pairs {
            guard let probe = catalog[key] else { continue }
            let remembered = memory[key]
            views.append(
                PairView(
                    key: key, probe: probe, state: state, reason: remembered?.reason, lastResult: remembered?.lastResult,
                    observedInstance: remembered?.observedInstance, observedEgressIP: remembered?.observedEgressIP,
                    answered: remembered?.answered ?? false))
        }
        var activity: [AgentActivity] = []
        var drift: [InterfacePlacementDrift] = []
        for agent in agents.values {
            let index = placements[agent.agentId]
            let subnet = index.flatMap { instance in
                model.network.instances[instance].interfaces.min {
                    model.network.interfaces[$0].deviceIndex < model.network.interfaces[$1].deviceIndex
                }
            }.map { model.network.subnets[model.network.interfaces[$0].subnet].id }
            activity.append(
                AgentActivity(
                    agentId: agent.agentId, instance: index.map { model.network.instances[$0].id } ?? agent.registration.identity.instanceId,
                    subnet: subnet, lastSeenMs: agent.lastSeenAtMs, heldUntilMs: heldUntil[agent.agentId]))
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
        let engine = BlameEngine(
            silenceMs: Int64(configuration.silenceSeconds * 1000), lateMs: lateMs, holdDownMs: holdDownMs, vouchAfter: hysteresis.window,
            confirmSingle: min(hysteresis.failuresToDown + 1, hysteresis.window),
            natInstances: natInstances)
        return engine.findings(BlameInput(pairs: views, agents: activity, placements: drift, open: Array(book.open.values), now: now))
    }

    /// Pairs that disagree with the model now, with their probes.
    public func drift() -> [(key: String, probe: PlannedProbe, state: PairState, memory: (reason: String?, lastResult: String?))] {
        pairs.filter { $0.value.status == .disagreeing }.sorted { $0.key < $1.key }.compactMap { key, state in
            guard let probe = catalog[key] else { return nil }
            return (key, probe, state, (memory[key]?.reason?.rawValue, memory[key]?.lastResult))
        }
    }

    /// Every planned pair with its state (for the live matrix).
    public func pairsWithProbes() -> [(key: String, probe: PlannedProbe, state: PairState?, lastResult: String?)] {
        catalog.sorted { $0.key < $1.key }.map { ($0.key, $0.value, pairs[$0.key], memory[$0.key]?.lastResult) }
    }

    /// Acknowledges an open alert.
    public func acknowledge(alertId: String, by who: String, now: Int64) async throws -> Alert {
        guard let stored = try await store.alert(id: alertId) else { throw APIError(404, "unknown_alert", "no alert \(alertId)", field: "id") }
        guard stored.status == .firing, let alert = book.acknowledge(fingerprint: stored.fingerprint, by: who, at: now) else {
            throw APIError(409, "not_firing", "alert \(alertId) is \(stored.status.rawValue); only firing alerts can be acknowledged")
        }
        try await store.saveAlert(alert, event: "acknowledged", at: now, deliveries: [])
        return alert
    }

    /// Rolls up results older than the retention window.
    public func rollUp(now: Int64) async throws -> Int {
        try await store.rollUp(before: now - Int64(configuration.retentionSeconds * 1000))
    }
}

extension JSONEncoder {
    /// Sorted keys: the same value always encodes to the same bytes (plan ETags depend on it).
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
