import CoreMetrics
import Foundation
import Logging
import PlumbCore
import PlumbModelIO
import PlumbProbes
import PlumbStore
import PlumbWire
import Synchronization

/// Errors the API turns into JSON answers: `{"error": {"code", "message", "field"}}` with `status`.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var code: String
    public var message: String
    public var field: String?
    /// Which check refused an identity claim (`identity_refused` only).
    public var reason: String?
    /// Seconds the client should wait before trying again (`Retry-After` on 429 and 503).
    public var retryAfterSeconds: Int?

    public init(_ status: Int, _ code: String, _ message: String, field: String? = nil, retryAfterSeconds: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { "\(status) \(code): \(message)" }
}

/// The live model: the topology version, its compiled network and the plans derived from it.
struct LiveModel: Sendable {
    var version: Int
    var topology: Topology
    var network: Network
}

/// The collector: the API's one way to the store and to the parts that share its work.
///
/// - `AgentRegistry`: registration and token checks, against the store (any collector serves them).
/// - Plans (here): derived from the stored agents and the active topology version, the same on every collector, so
///   every collector hands an agent the same plan and ETag.
/// - Ingest (here): stateless — authenticate, deduplicate on (agent, sequence) in the store, store, acknowledge
///   after the commit.
/// - `Evaluator`: the leader's pair states, evidence and alert book, built from the store's feed of reports.
/// - `Notifier`: the leader's webhook deliveries, claimed in the store so no two collectors send one at once.
///
/// `sync(now:)` runs every second: it confirms (or takes) the lead and picks up what other collectors changed — a
/// topology version, registrations, acknowledgements.
public actor Collector {
    let store: any Store
    let configuration: CollectorConfiguration
    let logger: Logger
    let metrics: CollectorMetrics
    /// This collector's id (`--id`, else the host name and listening port).
    public let collectorId: String
    let registry: AgentRegistry
    let evaluator: Evaluator
    /// The operator tokens in force (re-read at each sync when the file changed, and on SIGHUP).
    public let operatorTokens: OperatorTokens
    /// Failed authentications, counted and slowed per source.
    let authFailures: AuthFailureGuard
    /// Whether a topology document from a request is being read now.
    private let modelReads = Mutex(false)
    private let leadership: any Leadership
    private var leading = false
    private var leaderSince: Int64 = 0
    private var startedFresh = true
    private var model: LiveModel?
    private var snapshot = PlanSnapshot()
    private var plansByAgent: [String: (etag: String, plan: Plan)] = [:]
    private var rateBuckets: [String: (tokens: Double, at: Int64)] = [:]
    private var plansStale = false
    private var lastReplanCost: Duration = .zero
    private var lastReplanAt = ContinuousClock.now
    private var storeReachable = true
    /// The last write this collector could not make (a report, or the leader's evaluation), and the last that
    /// succeeded: while the failure is the newer, the collector is degraded (`/readyz` 503, `plumb_collector_degraded`).
    private var lastWriteFailure: (atMs: Int64, what: String)?
    private var lastWriteSuccessMs: Int64 = 0
    /// What each agent's last report to this collector said about the agent (`/metrics`).
    private var agentHealth: [String: AgentHealth] = [:]

    /// A collector over `store`. Call `start(now:)` before serving.
    public init(
        store: any Store, configuration: CollectorConfiguration, logger: Logger, metrics: CollectorMetrics = CollectorMetrics(),
        collectorId: String? = nil
    ) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.collectorId = collectorId ?? configuration.collectorId ?? Self.defaultId(port: configuration.port)
        let verification: IdentityVerification
        do {
            verification = try IdentityVerification(settings: configuration.identity, listenHost: configuration.host)
        } catch {
            logger.error(
                "identity verification cannot be set up; every registration with the enrollment token is refused", metadata: ["error": "\(error)"])
            verification = IdentityVerification(refusingAll: "\(error)", settings: configuration.identity)
        }
        registry = AgentRegistry(store: store, configuration: configuration, verifier: verification, logger: logger)
        do {
            operatorTokens = try OperatorTokens(operatorToken: configuration.operatorToken, path: configuration.operatorTokensFile)
        } catch {
            // Checked with the configuration already; a file gone since then leaves the single token, and the sync retries.
            logger.error("cannot read the operator tokens file", metadata: ["error": "\(error)"])
            operatorTokens = (try? OperatorTokens(operatorToken: configuration.operatorToken, path: nil)) ?? Self.noTokens
        }
        evaluator = Evaluator(store: store, configuration: configuration, logger: logger, metrics: metrics)
        authFailures = AuthFailureGuard(logger: logger, burst: configuration.authFailuresPerSource)
        leadership = store.leadership(collectorId: self.collectorId)
    }

    private static let noTokens = try! OperatorTokens(operatorToken: nil, path: nil)

    static func defaultId(port: Int) -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host =
            gethostname(&name, name.count) == 0 ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "collector"
        return "\(host):\(port)"
    }

    /// Loads agents and the topology (the stored one, or the model file when it differs: a new version is kept),
    /// plans, then takes the lead if it is free.
    public func start(now: Int64) async throws {
        metrics.declare(receivers: configuration.receivers.map(\.name))
        metrics.degraded.record(0)
        AuthFailureGuard.declare(
            routes: apiRoutes.filter { !AuthFailureMiddleware.open.contains($0.path) && !$0.path.hasPrefix("/assets") }.map {
                "\($0.method) \($0.path)"
            })
        _ = try await registry.reload(revision: try await store.marks().agentsRevision)
        var document: (text: String, format: String, version: Int)?
        if let stored = try await store.latestTopology() { document = (stored.document, stored.format, stored.version) }
        if let path = configuration.modelPath {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw APIError(500, "model_unreadable", "cannot read the model file \(path)")
            }
            if document?.text != text {
                _ = try await putTopology(
                    text, format: path.hasSuffix(".json") ? "json" : "yaml", file: path, author: "plumb-collector --model", now: now)
                document = nil
            }
        }
        if let document { try await activate(document.text, format: document.format, file: "topology", version: document.version, now: now) }
        try await sync(now: now)
    }

    /// Confirms or takes the lead, and picks up what any collector changed in the store: a newer topology version,
    /// agents registered or changed, acknowledgements. Errors mean the store is unreachable: readiness fails, and a
    /// leader stops acting until it can confirm again.
    public func sync(now: Int64) async throws {
        reloadTokens(force: false)
        let lead = await leadership.acquireOrConfirm(now: now)
        if lead != leading {
            if lead {
                leading = true
                leaderSince = now
                logger.notice("leading", metadata: ["collector": "\(collectorId)", "store": "\(store.summary)"])
            } else {
                leading = false
                await evaluator.leaveLead()
                logger.notice("following", metadata: ["collector": "\(collectorId)"])
            }
        }
        metrics.leader.record(leading ? 1 : 0)
        let marks: StoreMarks
        do {
            marks = try await store.marks()
            storeReachable = true
        } catch {
            storeReachable = false
            throw error
        }
        if marks.topologyVersion > (model?.version ?? 0), let latest = try await store.latestTopology() {
            try await activate(latest.document, format: latest.format, file: "topology", version: latest.version, now: now)
            logger.info("topology version from the store", metadata: ["version": "\(latest.version)"])
        }
        if try await registry.reload(revision: marks.agentsRevision) { plansStale = true }
        try await replanIfNeeded(now: now)
        if leading {
            try await takeLeadIfNeeded(now: now)
            try await store.recordLeader(LeaderRecord(collectorId: collectorId, sinceMs: leaderSince, confirmedAtMs: now))
            try await evaluator.applyAcknowledgements(through: marks.acknowledgement, now: now)
        }
        startedFresh = false
    }

    /// The leader's state loaded from the store, once per lead. A fresh start on a store of its own (SQLite) gives the
    /// agents a new silence window.
    private func takeLeadIfNeeded(now: Int64) async throws {
        guard !(await evaluator.active) else { return }
        try await evaluator.takeLead(now: now, freshStart: startedFresh && !store.isShared)
    }

    /// Whether this collector leads now.
    public var isLeader: Bool { leading }

    /// Whether the store answered the last sync.
    public var isStoreReachable: Bool { storeReachable }

    /// Gives the lead up (shutdown).
    public func resign() async {
        guard leading else { return }
        leading = false
        await evaluator.leaveLead()
        await leadership.release()
        metrics.leader.record(0)
    }

    /// What `GET /v1/status` says about this collector.
    public func status() async -> CollectorStatus {
        let leader = try? await store.leader()
        return CollectorStatus(
            collectorId: collectorId, role: leading ? "leader" : "follower", leaderId: leading ? collectorId : leader?.collectorId,
            leaderConfirmedAtMs: leading ? nil : leader?.confirmedAtMs, topologyVersion: model?.version, store: store.summary,
            storeReachable: storeReachable, agents: await registry.agents.count, degraded: degraded)
    }

    // MARK: - Topology

    /// Validates a topology document: errors and warnings, with locations. The work is bounded by
    /// `configuration.modelLimits`, and runs on the control pool, not on a request's thread.
    public nonisolated func validate(_ text: String, file: String) async -> (topology: Topology?, diagnostics: [Diagnostic]) {
        let limits = configuration.modelLimits
        let loaded = await BlockingPool.control.run { ModelLoader.load(text: text, file: file, limits: limits) }
        return (loaded.topology, loaded.diagnostics)
    }

    /// `validate` for a request: one document is read at a time, so a burst of large models costs one parse of
    /// memory, not many. A request waits its turn up to 10 s, then answers 503 with `Retry-After`.
    public nonisolated func validateForRequest(_ text: String, file: String) async throws -> (topology: Topology?, diagnostics: [Diagnostic]) {
        let waitUntil = ContinuousClock.now + .seconds(10)
        while !modelReads.withLock({ busy -> Bool in
            if busy { return false }
            busy = true
            return true
        }) {
            guard ContinuousClock.now < waitUntil else {
                throw APIError(503, "busy", "other topology documents are being read; try again in a few seconds", retryAfterSeconds: 5)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        defer { modelReads.withLock { $0 = false } }
        return await validate(text, file: file)
    }

    /// Stores and activates a new topology version; 422 with every problem when it is invalid. The other collectors
    /// activate it at their next sync.
    public func putTopology(_ text: String, format: String, file: String, author: String, now: Int64, comment: String? = nil) async throws -> Int {
        let (topology, diagnostics) = try await validateForRequest(text, file: file)
        guard let topology, !diagnostics.hasErrors else {
            let errors = diagnostics.filter { $0.severity == .error }.prefix(20).map(\.description)
            throw APIError(422, "invalid_topology", errors.joined(separator: "\n"), field: "body")
        }
        let version = try await store.saveTopology(document: text, format: format, author: author, comment: comment, at: now)
        try await activate(topology, version: version, now: now)
        logger.info("topology activated", metadata: ["version": "\(version)", "author": "\(author)"])
        return version
    }

    private func activate(_ text: String, format: String, file: String, version: Int, now: Int64) async throws {
        let (topology, diagnostics) = await validate(text, file: file)
        guard let topology, !diagnostics.hasErrors else { throw APIError(422, "invalid_topology", "the stored topology is invalid") }
        try await activate(topology, version: version, now: now)
    }

    private func activate(_ topology: Topology, version: Int, now: Int64) async throws {
        model = LiveModel(version: version, topology: topology, network: Network(topology))
        try await replan(now: now)
    }

    /// The live model, if any.
    var live: LiveModel? { model }

    // MARK: - Agents

    /// Registers an agent (new, or refreshing its registration) and returns its id and token.
    public func register(
        _ registration: Registration, bearer: String, source: RegistrationSource = RegistrationSource(peer: nil), now: Int64
    ) async throws -> RegistrationResponse {
        let registered = try await registry.register(
            registration, bearer: bearer, source: source, network: model?.network, placements: snapshot.placements, now: now)
        if registered.changesPlans { plansStale = true }
        snapshot.agents[registered.record.agentId] = registered.record
        await evaluator.apply(snapshot, now: now)
        return registered.response
    }

    /// Whether `bearer` may register at all (the enrollment token, or some agent's own token): checked before the body
    /// is read.
    public func mayRegister(bearer: String) async throws -> Bool {
        try await registry.mayRegister(bearer: bearer)
    }

    /// The agent a bearer token belongs to, when it is that agent's token.
    public func authenticateAgent(id: String, bearer: String) async throws -> AgentRecord {
        try await registry.authenticate(id: id, bearer: bearer)
    }

    /// The operator token a bearer is, if any.
    public nonisolated func operatorToken(_ bearer: String) -> OperatorToken? { operatorTokens.lookup(bearer) }

    /// Re-reads the operator tokens file (SIGHUP, or at a sync when it changed).
    public nonisolated func reloadTokens(force: Bool) {
        let before = operatorTokens.count
        if let problem = operatorTokens.reload(force: force) {
            logger.error("operator tokens not reloaded", metadata: ["problem": "\(problem)"])
        } else if force || operatorTokens.count != before {
            logger.notice("operator tokens", metadata: ["tokens": "\(operatorTokens.count)", "file": "\(operatorTokens.path ?? "none")"])
        }
    }

    /// Every agent, as stored (last-seen times as any collector last heard them).
    public func listAgents() async throws -> [AgentRecord] { try await store.agents() }

    /// The placement of an agent in the model (instance id), if any.
    public func instance(ofAgent id: String) -> String? {
        guard let index = snapshot.placements[id], let model else { return nil }
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

    /// Plans for every stored agent from the active topology version: a pure function of the two, so every collector
    /// computes the same plans and ETags.
    private func replan(now: Int64) async throws {
        plansStale = false
        let started = ContinuousClock.now
        defer {
            lastReplanCost = ContinuousClock.now - started
            lastReplanAt = ContinuousClock.now
        }
        let agents = await registry.agents
        guard let model else {
            snapshot.agents = agents
            await evaluator.apply(snapshot, now: now)
            return
        }
        var placed: [AgentPlacement] = []
        var placements: [String: Int] = [:]
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
        let hysteresis =
            configuration.hysteresis
            ?? Hysteresis(failuresToDown: probing?.failuresToDown ?? 3, window: probing?.window ?? 5, successesToUp: probing?.successesToUp ?? 2)
        let generator = PlanGenerator(network: model.network, settings: PlannerSettings(peersPerSubnet: probing?.peersPerSubnet))
        let planned = generator.plans(for: placed)
        var catalog: [String: PlannedProbe] = [:]
        let interval = (probing?.intervalSeconds).map { $0 * 1000 } ?? configuration.probeIntervalMs
        let timeout = probing?.timeoutMilliseconds ?? configuration.probeTimeoutMs
        let settings = PlanSettings(
            reportIntervalMs: configuration.reportIntervalMs, maxProbesPerSecond: probing?.maxProbesPerSecond ?? 20,
            planRefreshMs: configuration.planRefreshMs)
        for agent in agents.keys.sorted() {
            let probes = planned[agent] ?? []
            for probe in probes { catalog["\(agent)/\(probe.id)"] = probe }
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
        snapshot = PlanSnapshot(
            model: model, catalog: catalog, placements: placements, agents: agents, hysteresis: hysteresis, probeIntervalMs: Int64(interval))
        await evaluator.apply(snapshot, now: now)
        metrics.plannedProbes.record(catalog.count)
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

    /// An agent's plan and ETag. Served from what this collector planned, also while the store is unreachable.
    public func plan(agentId: String) async throws -> (etag: String, plan: Plan) {
        try? await replanIfNeeded(now: wallClockMilliseconds())
        if let plan = plansByAgent[agentId] { return plan }
        let empty = Plan(agentId: agentId, planId: "\"empty\"", probes: [], settings: PlanSettings(planRefreshMs: configuration.planRefreshMs))
        return ("\"empty\"", empty)
    }

    // MARK: - Ingest

    /// Checks the per-agent rate (per collector); 429 when over it.
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

    /// Stores a report (once) and acknowledges it after the commit. The leader reads it from the store's feed.
    public func ingest(_ report: Report, body: String? = nil, agentId: String, now: Int64) async throws -> ReportAcknowledgement {
        guard report.agentId == agentId else {
            throw APIError(422, "agent_mismatch", "the report names agent \(report.agentId) but was posted for \(agentId)", field: "agentId")
        }
        guard report.results.count <= configuration.maxResultsPerReport else {
            throw APIError(
                413, "too_many_results", "\(report.results.count) results; at most \(configuration.maxResultsPerReport) per report", field: "results")
        }
        // Every value is held to its meaning before it is stored: a stored report is read again by every leader, and
        // one that the evaluation cannot take would be met at every restart.
        let problems = report.problems(now: now, lastSequence: await registry.record(agentId)?.lastSequence, limits: configuration.reportLimits)
        if let first = problems.first {
            metrics.reportsRefused.increment()
            throw APIError(
                422, first.field == "sequence" ? "invalid_sequence" : "invalid_report",
                "the report was not stored: " + problems.prefix(5).map(\.description).joined(separator: "; ")
                    + (problems.count > 5 ? "; and \(problems.count - 5) more" : ""),
                field: first.field)
        }
        let outcome: IngestOutcome
        do {
            outcome = try await store.ingest(report, body: body, receivedAt: now)
        } catch {
            noteWriteFailure("storing a report: \(error)", now: now)
            await evaluator.noteUnstored(agentId: agentId, now: now)
            throw APIError(503, "store_unavailable", "the store cannot take the report now; keep it and send it again", retryAfterSeconds: 2)
        }
        noteWriteSuccess(now: now)
        guard outcome == .stored else {
            metrics.duplicates.increment()
            return ReportAcknowledgement(sequence: report.sequence, stored: false)
        }
        await registry.noteStored(agentId: agentId, sequence: report.sequence)
        metrics.reports.increment()
        metrics.results.increment(by: report.results.count)
        agentHealth[agentId] = AgentHealth(
            receivedAtMs: now, planId: report.planId, spoolBatches: report.spoolBatches, droppedResults: report.dropped.results)
        if let identity = report.identity, try await registry.updateIdentity(identity, of: agentId) { plansStale = true }
        return ReportAcknowledgement(sequence: report.sequence, stored: true)
    }

    // MARK: - Degraded

    /// Why this collector cannot do its work now (its store refuses writes or does not answer), or nil.
    public var degraded: String? {
        guard let failure = lastWriteFailure, failure.atMs >= lastWriteSuccessMs else { return nil }
        return failure.what
    }

    private func noteWriteFailure(_ what: String, now: Int64) {
        if degraded == nil {
            logger.error(
                "collector degraded: its store refuses writes or does not answer; agents keep their reports and send them again",
                metadata: ["error": "\(what)", "store": "\(store.summary)"])
        }
        lastWriteFailure = (now, what)
        metrics.degraded.record(1)
    }

    private func noteWriteSuccess(now: Int64) {
        if let failure = lastWriteFailure, failure.atMs >= lastWriteSuccessMs {
            logger.notice("collector recovered: the store takes writes again", metadata: ["degradedForSeconds": "\((now - failure.atMs) / 1000)"])
            metrics.degraded.record(0)
        }
        lastWriteSuccessMs = max(lastWriteSuccessMs, now)
    }

    // MARK: - Metrics

    /// Records the gauges that are read rather than counted: agents, pairs per subnet pair, open alerts, the store's
    /// size (every few seconds, on every collector; the pair and alert gauges only on the leader, which holds them).
    public func recordMetrics(now: Int64) async {
        // From the store: its lastSeenAtMs moves with every report to any collector (the registry's copy does not).
        if let agents = try? await store.agents() {
            var currentPlans: [String: String] = [:]
            for (agent, entry) in plansByAgent { currentPlans[agent] = entry.plan.planId }
            let silenceMs = Int64(configuration.silenceSeconds * 1000)
            metrics.record(agents: agents, health: agentHealth, currentPlans: currentPlans, silenceMs: silenceMs, now: now)
            agentHealth = agentHealth.filter { now - $0.value.receivedAtMs <= silenceMs }
        }
        metrics.plannedAgents.record(plansByAgent.count)
        if let version = model?.version { metrics.topologyVersion.record(version) }
        if let size = try? await store.sizeBytes() { metrics.storeBytes.record(size) }
        await evaluator.recordStateMetrics()
    }

    // MARK: - Evaluation

    /// One evaluation by the leader: the feed read into the pair states, acknowledgements applied, findings into
    /// alerts and deliveries. A follower does nothing. Returns the changes.
    @discardableResult
    public func evaluate(now: Int64) async throws -> [AlertChange] {
        try await replanIfNeeded(now: now)
        guard leading else { return [] }
        try await takeLeadIfNeeded(now: now)
        do {
            try await evaluator.readFeed(now: now)
            let changes = try await evaluator.evaluate(now: now, receivers: configuration.receivers)
            noteWriteSuccess(now: now)
            return changes
        } catch {
            noteWriteFailure("the evaluation: \(error)", now: now)
            throw error
        }
    }

    /// The findings now, without changing anything (a follower's from what the leader stored).
    public func currentFindings(now: Int64) async -> [Finding] {
        if !leading { try? await evaluator.loadForReading(now: now) }
        await refreshView()
        return await evaluator.currentFindings(now: now)
    }

    /// Pairs that disagree with the model now, with their probes.
    public func drift() async -> [(key: String, probe: PlannedProbe, state: PairState, memory: (reason: String?, lastResult: String?))] {
        if !leading { try? await evaluator.loadForReading(now: wallClockMilliseconds()) }
        await refreshView()
        return await evaluator.drift()
    }

    /// Every planned pair with its state (for the live matrix).
    public func pairsWithProbes() async -> [(key: String, probe: PlannedProbe, state: PairState?, lastResult: String?)] {
        if !leading { try? await evaluator.loadForReading(now: wallClockMilliseconds()) }
        await refreshView()
        return await evaluator.pairsWithProbes()
    }

    /// Planned pairs per subnet pair and status (the page's table).
    func subnetPairCounts() async -> [SubnetPairKey: [PairState.Status: Int]] {
        if !leading { try? await evaluator.loadForReading(now: wallClockMilliseconds()) }
        await refreshView()
        return await evaluator.subnetPairCounts()
    }

    /// The leader's view brought up to the feed's end (a follower's was loaded above).
    private func refreshView() async {
        guard leading else { return }
        try? await takeLeadIfNeeded(now: wallClockMilliseconds())
        try? await evaluator.readFeed(now: wallClockMilliseconds())
    }

    /// Acknowledges an open alert. On the leader the book takes it at once; on a follower it is recorded in the store
    /// and the leader applies it at its next sync (within a second).
    public func acknowledge(alertId: String, by who: String, now: Int64) async throws -> Alert {
        guard let stored = try await store.alert(id: alertId) else { throw APIError(404, "unknown_alert", "no alert \(alertId)", field: "id") }
        guard stored.status == .firing else {
            throw APIError(409, "not_firing", "alert \(alertId) is \(stored.status.rawValue); only firing alerts can be acknowledged")
        }
        var alert = stored
        if leading, let acknowledged = await evaluator.acknowledge(fingerprint: stored.fingerprint, by: who, at: now) {
            alert = acknowledged
        } else {
            alert.acknowledgedBy = who
            alert.acknowledgedAtMs = now
        }
        try await store.saveAlert(alert, event: "acknowledged", at: now, deliveries: [])
        return alert
    }

    /// Rolls up results older than the retention window (the leader's job).
    public func rollUp(now: Int64) async throws -> Int {
        guard leading else { return 0 }
        return try await store.rollUp(before: now - Int64(configuration.retentionSeconds * 1000))
    }
}

/// One collector, as `GET /v1/status` shows it.
public struct CollectorStatus: Sendable, Codable, Hashable {
    public var collectorId: String
    /// `leader` or `follower`.
    public var role: String
    /// The leader's id, as it last recorded itself (nil before any collector led).
    public var leaderId: String?
    /// When the leader last confirmed its lead (a follower's view).
    public var leaderConfirmedAtMs: Int64?
    public var topologyVersion: Int?
    /// The store, without secrets.
    public var store: String
    public var storeReachable: Bool
    public var agents: Int
    /// Why the collector cannot do its work now (its store refuses writes or does not answer); absent when it can.
    public var degraded: String? = nil
}

extension JSONEncoder {
    /// Sorted keys: the same value always encodes to the same bytes (plan ETags depend on it).
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
