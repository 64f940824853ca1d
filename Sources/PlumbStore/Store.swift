import PlumbCore
import PlumbWire

/// A registered agent.
public struct AgentRecord: Sendable, Hashable, Codable {
    /// Its id.
    public var agentId: String
    /// The SHA-256 of its bearer token (hex); the token itself is never stored.
    public var tokenHash: String
    /// What it sent when it last registered.
    public var registration: Registration
    /// When it first registered, and when it was last heard from (ms since the epoch).
    public var registeredAtMs: Int64
    public var lastSeenAtMs: Int64
    /// The highest report sequence stored.
    public var lastSequence: Int64

    /// Creates a record.
    public init(agentId: String, tokenHash: String, registration: Registration, registeredAtMs: Int64, lastSeenAtMs: Int64, lastSequence: Int64 = 0) {
        self.agentId = agentId
        self.tokenHash = tokenHash
        self.registration = registration
        self.registeredAtMs = registeredAtMs
        self.lastSeenAtMs = lastSeenAtMs
        self.lastSequence = lastSequence
    }
}

/// One stored version of the topology.
public struct TopologyVersion: Sendable, Hashable, Codable {
    public var version: Int
    /// The document as it was PUT (YAML or JSON); empty in listings.
    public var document: String
    public var format: String
    public var author: String
    public var comment: String?
    public var createdAtMs: Int64

    /// Creates a version.
    public init(version: Int, document: String, format: String, author: String, comment: String?, createdAtMs: Int64) {
        self.version = version
        self.document = document
        self.format = format
        self.author = author
        self.comment = comment
        self.createdAtMs = createdAtMs
    }
}

/// What ingesting a report did.
public enum IngestOutcome: Sendable, Hashable {
    /// Stored now.
    case stored
    /// Stored before (a replay): acknowledged again, not stored twice.
    case duplicate
}

/// A stored probe result.
public struct StoredResult: Sendable, Hashable {
    public var agentId: String
    public var sequence: Int64
    public var result: ProbeResult

    /// Creates a stored result.
    public init(agentId: String, sequence: Int64, result: ProbeResult) {
        self.agentId = agentId
        self.sequence = sequence
        self.result = result
    }
}

/// Per pair and minute: what older results were rolled up into.
public struct Rollup: Sendable, Hashable {
    public var agentId: String
    public var probeId: String
    public var minuteMs: Int64
    public var sent: Int
    public var received: Int
    public var rttP50Ms: Double?
    public var rttP95Ms: Double?
    public var rttMaxMs: Double?
}

/// Which alerts to list.
public struct AlertFilter: Sendable, Hashable {
    public var status: Alert.Status?
    public var kind: Finding.Kind?
    public var severity: Finding.Severity?
    public var component: String?
    public var limit: Int

    /// A filter; nil fields match everything.
    public init(status: Alert.Status? = nil, kind: Finding.Kind? = nil, severity: Finding.Severity? = nil, component: String? = nil, limit: Int = 500)
    {
        self.status = status
        self.kind = kind
        self.severity = severity
        self.component = component
        self.limit = limit
    }
}

/// One webhook delivery in the outbox.
public struct OutboxEntry: Sendable, Hashable, Codable {
    /// Row id (0 before it is stored).
    public var id: Int64
    /// The receiver's name.
    public var receiver: String
    /// The alert and what happened to it (`firing`, `resolved`, `repeat`).
    public var alertId: String
    public var event: String
    /// Unique per delivery: sent as the `Idempotency-Key` header.
    public var idempotencyKey: String
    /// When it was queued, when to try next, and attempts so far.
    public var createdAtMs: Int64
    public var nextAttemptAtMs: Int64
    public var attempts: Int
    /// Set once delivered, or once given up.
    public var deliveredAtMs: Int64?
    public var gaveUpAtMs: Int64?
    public var lastError: String?

    /// Creates an entry.
    public init(
        id: Int64 = 0, receiver: String, alertId: String, event: String, idempotencyKey: String, createdAtMs: Int64, nextAttemptAtMs: Int64,
        attempts: Int = 0, deliveredAtMs: Int64? = nil, gaveUpAtMs: Int64? = nil, lastError: String? = nil
    ) {
        self.id = id
        self.receiver = receiver
        self.alertId = alertId
        self.event = event
        self.idempotencyKey = idempotencyKey
        self.createdAtMs = createdAtMs
        self.nextAttemptAtMs = nextAttemptAtMs
        self.attempts = attempts
        self.deliveredAtMs = deliveredAtMs
        self.gaveUpAtMs = gaveUpAtMs
        self.lastError = lastError
    }
}

/// Errors of a store, each saying what to do.
public enum StoreError: Error, CustomStringConvertible {
    /// The database cannot be opened or migrated.
    case open(String, String)
    /// A query failed.
    case query(String, String)

    public var description: String {
        switch self {
        case .open(let path, let reason): return "cannot open the store at \(path): \(reason)"
        case .query(let what, let reason): return "store: \(what) failed: \(reason)"
        }
    }
}

/// The collector's storage. SQLite implements it (the embedded default); a PostgreSQL implementation can drop in:
/// no method exposes SQL or SQLite behaviour. Every method is atomic.
public protocol Store: Sendable {
    /// Creates or upgrades the schema.
    func migrate() async throws

    /// Inserts or replaces an agent.
    func saveAgent(_ agent: AgentRecord) async throws
    /// One agent.
    func agent(id: String) async throws -> AgentRecord?
    /// Every agent, by id.
    func agents() async throws -> [AgentRecord]

    /// Stores a new topology version and returns its number.
    func saveTopology(document: String, format: String, author: String, comment: String?, at: Int64) async throws -> Int
    /// The newest version, with its document.
    func latestTopology() async throws -> TopologyVersion?
    /// One version, with its document.
    func topology(version: Int) async throws -> TopologyVersion?
    /// Every version, newest first, without documents.
    func topologyVersions() async throws -> [TopologyVersion]

    /// Stores an agent's current plan.
    func savePlan(agentId: String, etag: String, body: String, at: Int64) async throws
    /// An agent's current plan and its ETag.
    func plan(agentId: String) async throws -> (etag: String, body: String)?

    /// Stores a report, once, and returns after it is committed: a report whose (agent, sequence) is stored already is a
    /// duplicate. `body` is the report as received (JSON), kept for the results API; nil encodes `report`. Updates
    /// the agent's last-seen time and last sequence. Concurrent calls may share one transaction.
    func ingest(_ report: Report, body: String?, receivedAt: Int64) async throws -> IngestOutcome
    /// Raw results newer than `since`, oldest first.
    func results(agentId: String?, since: Int64, limit: Int) async throws -> [StoredResult]
    /// Rolls results older than `before` into per-pair, per-minute rows and deletes them; returns the rows rolled.
    func rollUp(before: Int64) async throws -> Int
    /// Rollups of a pair.
    func rollups(agentId: String, probeId: String) async throws -> [Rollup]

    /// Replaces the stored pair states.
    func savePairStates(_ states: [String: PairState]) async throws
    /// The stored pair states by `agentId/probeId`.
    func pairStates() async throws -> [String: PairState]

    /// Inserts or updates an alert, records `event` (`firing`, `resolved`, `updated`, `acknowledged`) for it, and queues
    /// `deliveries` — in one transaction, so a crash cannot leave a firing alert without its notifications.
    func saveAlert(_ alert: Alert, event: String, at: Int64, deliveries: [OutboxEntry]) async throws
    /// Alerts matching `filter`, newest first.
    func alerts(_ filter: AlertFilter) async throws -> [Alert]
    /// One alert.
    func alert(id: String) async throws -> Alert?
    /// An alert's events: (event, time).
    func alertEvents(id: String) async throws -> [(event: String, atMs: Int64)]

    /// Queues deliveries (ignored when the idempotency key is queued already).
    func enqueue(_ entries: [OutboxEntry]) async throws
    /// Deliveries due at `now`, oldest first.
    func dueDeliveries(now: Int64, limit: Int) async throws -> [OutboxEntry]
    /// Records an attempt: delivered, retried at `nextAttemptAt`, or given up.
    func recordAttempt(id: Int64, at: Int64, status: Int, error: String?, delivered: Bool, nextAttemptAt: Int64?, gaveUp: Bool) async throws
    /// Deliveries, newest first (for the API).
    func deliveries(alertId: String?, limit: Int) async throws -> [OutboxEntry]
}
