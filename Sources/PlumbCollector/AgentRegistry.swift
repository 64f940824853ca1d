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
    private(set) var agents: [String: AgentRecord] = [:]
    private(set) var revision: Int64 = -1

    init(store: any Store, configuration: CollectorConfiguration) {
        self.store = store
        self.configuration = configuration
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

    /// Registers an agent (new, or refreshing its registration). The enrollment token registers any agent; an agent's
    /// own token re-registers it and is kept (a new one would turn away the requests it has in flight).
    func register(_ registration: Registration, bearer: String, now: Int64) async throws -> Registered {
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
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = generator.next() }
        let token = ownToken ? bearer : "plumb_" + hexString(bytes)
        let record = AgentRecord(
            agentId: requested, tokenHash: hexString(SHA256.hash(Array(token.utf8))), registration: registration,
            registeredAtMs: existing?.registeredAtMs ?? now, lastSeenAtMs: now, lastSequence: existing?.lastSequence ?? 0)
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
    func updateIdentity(_ identity: AgentIdentity, of agentId: String) async throws -> Bool {
        guard let cached = agents[agentId], cached.registration.identity != identity else { return false }
        // The stored record, so that a token issued by another collector meanwhile is kept.
        var agent = try await store.agent(id: agentId) ?? cached
        agent.registration.identity = identity
        agents[agentId] = agent
        try await store.saveAgent(agent)
        return true
    }

    /// One agent, as cached.
    func record(_ id: String) -> AgentRecord? { agents[id] }
}
