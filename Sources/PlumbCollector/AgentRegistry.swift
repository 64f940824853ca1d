import CoreMetrics
import Logging
import PlumbCore
import PlumbProbes
import PlumbStore
import PlumbWire

/// The agents, as the store knows them: registration, token checks and the list the planner plans for. Any
/// collector registers and authenticates: the store holds the token hashes, and this is a cache of it that reloads
/// when the store's agent revision moves (another collector registered one) and, for one agent, when a token does not
/// match what it holds (it may have been issued elsewhere a moment ago).
actor AgentRegistry {
    let store: any Store
    let configuration: CollectorConfiguration
    let verifier: IdentityVerification
    let logger: Logger
    private(set) var agents: [String: AgentRecord] = [:] {
        didSet { tokenHashes = nil }
    }
    /// The token hashes of `agents`, built when first asked after a change.
    private var tokenHashes: Set<String>?
    private(set) var revision: Int64 = -1

    init(store: any Store, configuration: CollectorConfiguration, verifier: IdentityVerification, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.verifier = verifier
        self.logger = logger
    }

    /// Reloads every agent when the store's revision is not the one loaded; returns whether anything the plans
    /// depend on (the set of agents, an identity, a responder port) changed.
    func reload(revision newRevision: Int64) async throws -> Bool {
        guard newRevision != revision else { return false }
        let loaded = try await store.agents()
        var changed = loaded.count != agents.count
        var next: [String: AgentRecord] = [:]
        for record in loaded {
            if let old = agents[record.agentId] {
                if old.registration.identity != record.registration.identity || old.registration.responderPort != record.registration.responderPort {
                    changed = true
                }
            } else {
                changed = true
            }
            next[record.agentId] = record
        }
        agents = next
        revision = newRevision
        return changed
    }

    /// The outcome of a registration.
    struct Registered {
        var response: RegistrationResponse
        var record: AgentRecord
        /// The agent is new, or its identity or responder port changed: plans change.
        var changesPlans: Bool
    }

    /// Registers an agent (new, or refreshing its registration). The enrollment token registers any agent whose claim
    /// holds (`IdentityVerification`: its source address, its signed identity document; and no live agent holds the
    /// instance with another key); an agent's own token re-registers it and is kept (a new one would turn away the
    /// requests it has in flight), but cannot move it to another instance.
    ///
    /// `placements` is where the current plans put each agent (agent id → model instance index), to find another
    /// agent claiming the same instance under another id.
    func register(
        _ registration: Registration, bearer: String, source: RegistrationSource, network: Network?, placements: [String: Int], now: Int64
    ) async throws -> Registered {
        let requested = registration.agentId ?? registration.identity.instanceId
        guard !requested.isEmpty, requested.count <= 128, !requested.contains("/") else {
            throw APIError(422, "invalid_agent_id", "agent id must be 1–128 characters without '/'", field: "agentId")
        }
        let bearerHash = hexString(SHA256.hash(Array(bearer.utf8)))
        let enrolled =
            configuration.enrollmentToken.map { constantTimeEqual(Array(hexString(SHA256.hash(Array($0.utf8))).utf8), Array(bearerHash.utf8)) }
            ?? false
        // The store, not the cache: another collector may have registered this agent a moment ago.
        let existing = try await store.agent(id: requested)
        let ownToken = existing.map { constantTimeEqual(Array($0.tokenHash.utf8), Array(bearerHash.utf8)) } ?? false
        guard enrolled || ownToken else { throw APIError(401, "unauthorized", "the enrollment token (or this agent's own token) is required") }
        let keyHash = registration.agentKey.map { hexString(SHA256.hash(Array($0.utf8))) }
        // Other agents that claim the same instance (by instance id, or placed on the same model instance), as the store
        // has them now: the cache's last-seen times are those of their registrations, not of their last reports.
        var rivals: [AgentRecord] = []
        if !ownToken {
            let claimed = registration.identity.instanceId
            let claimedIndex = network.flatMap { network in
                network.instanceIndex(
                    instanceId: claimed, interfaceIds: registration.identity.interfaces.compactMap(\.interfaceId),
                    addresses: registration.identity.interfaces.flatMap(\.privateIPv4s).compactMap(IPv4Address.init))
            }
            for other in agents.values.sorted(by: { $0.agentId < $1.agentId }) where other.agentId != requested {
                guard other.registration.identity.instanceId == claimed || (claimedIndex != nil && placements[other.agentId] == claimedIndex) else {
                    continue
                }
                if let fresh = try await store.agent(id: other.agentId) { rivals.append(fresh) }
            }
        }
        let verification: AgentVerification?
        do {
            verification = try check(
                registration, agentId: requested, ownToken: ownToken, existing: existing, keyHash: keyHash, source: source, network: network,
                rivals: rivals, now: now)
        } catch {
            try await refuse(error, registration: registration, agentId: requested, source: source, now: now)
        }
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = generator.next() }
        let token = ownToken ? bearer : "plumb_" + hexString(bytes)
        // The key and the identity document are proofs, not state: only the key's hash is kept.
        var stored = registration
        stored.agentKey = nil
        stored.instanceIdentity = nil
        let record = AgentRecord(
            agentId: requested, tokenHash: hexString(SHA256.hash(Array(token.utf8))), registration: stored,
            registeredAtMs: existing?.registeredAtMs ?? now, lastSeenAtMs: now, lastSequence: existing?.lastSequence ?? 0,
            verification: verification)
        try await store.saveAgent(record)
        let changesPlans =
            existing == nil || existing?.registration.identity != registration.identity
            || existing?.registration.responderPort != registration.responderPort
        agents[requested] = record
        return Registered(
            response: RegistrationResponse(
                agentId: requested, agentToken: token, planRefreshMs: configuration.planRefreshMs, lastSequence: record.lastSequence),
            record: record, changesPlans: changesPlans)
    }

    /// The identity checks of one registration; the verification to store.
    private func check(
        _ registration: Registration, agentId: String, ownToken: Bool, existing: AgentRecord?, keyHash: String?, source: RegistrationSource,
        network: Network?, rivals: [AgentRecord], now: Int64
    ) throws(IdentityRefused) -> AgentVerification? {
        let claimed = registration.identity.instanceId
        if ownToken, let existing {
            // The token proves this is the agent that registered; it stays on its instance.
            guard existing.registration.identity.instanceId == claimed else {
                throw IdentityRefused(
                    reason: .instanceChanged, field: "identity.instanceId",
                    message:
                        "agent \(agentId) is registered for \(existing.registration.identity.instanceId), not \(claimed); an agent cannot move to another instance (register a new agent id there)"
                )
            }
            var kept = existing.verification
            if kept != nil, kept?.keyHash == nil { kept?.keyHash = keyHash }
            return kept
        }
        var verification = try verifier.verify(registration, source: source, network: network, previous: existing, now: now)
        verification.keyHash = keyHash
        let liveMs = Int64(configuration.silenceSeconds * 1000)
        func live(_ agent: AgentRecord) -> Bool { now - agent.lastSeenAtMs <= liveMs }
        // The same agent id: a live agent keeps its registration against anyone without its key (a replayed
        // registration, a second agent with the same id, a copied image).
        if let existing, live(existing), let held = existing.verification?.keyHash, held != keyHash {
            throw IdentityRefused(
                reason: .instanceInUse, field: "agentKey",
                message:
                    "agent \(agentId) on \(claimed) is live (last report \((now - existing.lastSeenAtMs) / 1000) s ago) and registered with another agent key; a second agent cannot take its place while it reports"
            )
        }
        // Another agent id claiming the same instance, live.
        if let other = rivals.first(where: live) {
            throw IdentityRefused(
                reason: .instanceInUse, field: "identity.instanceId",
                message:
                    "instance \(claimed) already has a live agent, \(other.agentId) (last report \((now - other.lastSeenAtMs) / 1000) s ago); one agent per instance"
            )
        }
        return verification
    }

    /// Counts, records and logs a refused claim, then throws its 403.
    private func refuse(_ refused: IdentityRefused, registration: Registration, agentId: String, source: RegistrationSource, now: Int64) async throws
        -> Never
    {
        Counter(label: "plumb_registrations_refused_total", dimensions: [("reason", refused.reason.rawValue)]).increment()
        let from = source.clientAddress(trusting: verifier.settings.trustedProxies)?.description ?? source.peer
        logger.warning(
            "registration refused",
            metadata: [
                "agent": "\(agentId)", "instance": "\(registration.identity.instanceId)", "reason": "\(refused.reason.rawValue)",
                "source": "\(from ?? "unknown")", "detail": "\(refused.message)",
            ])
        do {
            try await store.recordRefusal(
                IdentityRefusal(
                    instanceId: registration.identity.instanceId, agentId: agentId, reason: refused.reason.rawValue, source: from,
                    detail: refused.message, atMs: now))
        } catch {
            logger.error("cannot record a refused registration", metadata: ["error": "\(error)"])
        }
        throw refused.apiError
    }

    /// Whether `bearer` may register anything: the enrollment token, or the token of an agent the store holds (a
    /// re-registration). Asked before the body is read, so an unknown bearer costs a hash and a lookup; the store is
    /// asked only when another collector registered agents since the cache was loaded.
    func mayRegister(bearer: String) async throws -> Bool {
        let hash = hexString(SHA256.hash(Array(bearer.utf8)))
        if let enrollment = configuration.enrollmentToken,
            constantTimeEqual(Array(hexString(SHA256.hash(Array(enrollment.utf8))).utf8), Array(hash.utf8))
        {
            return true
        }
        guard bearer.hasPrefix("plumb_") else { return false }
        if knownTokenHashes().contains(hash) { return true }
        _ = try await reload(revision: try await store.marks().agentsRevision)
        return knownTokenHashes().contains(hash)
    }

    private func knownTokenHashes() -> Set<String> {
        if let tokenHashes { return tokenHashes }
        let built = Set(agents.values.map(\.tokenHash))
        tokenHashes = built
        return built
    }

    /// The agent a bearer token belongs to, when it is that agent's token. Unknown agents and wrong tokens answer
    /// alike, so a bearer cannot find out which agent ids exist.
    func authenticate(id: String, bearer: String) async throws -> AgentRecord {
        let hash = Array(hexString(SHA256.hash(Array(bearer.utf8))).utf8)
        if let agent = agents[id], constantTimeEqual(Array(agent.tokenHash.utf8), hash) { return agent }
        // Not what the cache holds: ask the store (a registration at another collector issues tokens too).
        guard let stored = try await store.agent(id: id) else {
            throw APIError(401, "unauthorized", "this token does not belong to agent \(id); register first")
        }
        agents[id] = stored
        guard constantTimeEqual(Array(stored.tokenHash.utf8), hash) else {
            throw APIError(401, "unauthorized", "this token does not belong to agent \(id)")
        }
        return stored
    }

    /// Records the identity an agent reported (an ENI attached or moved); returns whether it changed.
    func updateIdentity(_ reported: AgentIdentity, of agentId: String) async throws -> Bool {
        guard let cached = agents[agentId] else { return false }
        // A report may say that ENIs came or went, never that the agent moved to another instance.
        var identity = reported
        if identity.instanceId != cached.registration.identity.instanceId {
            logger.warning(
                "a report claims another instance id; ignored",
                metadata: ["agent": "\(agentId)", "registered": "\(cached.registration.identity.instanceId)", "reported": "\(identity.instanceId)"])
            identity.instanceId = cached.registration.identity.instanceId
        }
        guard cached.registration.identity != identity else { return false }
        // The stored record, so that a token issued by another collector meanwhile is kept.
        var agent = try await store.agent(id: agentId) ?? cached
        agent.registration.identity = identity
        agents[agentId] = agent
        try await store.saveAgent(agent)
        return true
    }

    /// One agent, as cached.
    func record(_ id: String) -> AgentRecord? { agents[id] }

    /// A report of the agent was stored here: its last sequence moves with it (the step a sequence may jump is
    /// counted from it).
    func noteStored(agentId: String, sequence: Int64) {
        guard var agent = agents[agentId], sequence > agent.lastSequence else { return }
        agent.lastSequence = sequence
        agents[agentId] = agent
    }
}
