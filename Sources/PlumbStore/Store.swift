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
    /// How it proved its instance at its last registration with the enrollment token (nil: registered before
    /// verification existed).
    public var verification: AgentVerification?

    /// Creates a record.
    public init(
        agentId: String, tokenHash: String, registration: Registration, registeredAtMs: Int64, lastSeenAtMs: Int64, lastSequence: Int64 = 0,
        verification: AgentVerification? = nil
    ) {
        self.verification = verification
        self.agentId = agentId
        self.tokenHash = tokenHash
        self.registration = registration
        self.registeredAtMs = registeredAtMs
        self.lastSeenAtMs = lastSeenAtMs
        self.lastSequence = lastSequence
    }
}

/// How an agent proved which instance it runs on.
public struct AgentVerification: Sendable, Hashable, Codable {
    /// The checks it passed: `source-address`, `instance-identity`; empty when the collector verifies nothing.
    public var checks: [String]
    /// The address the registration came from (after trusted proxies).
    public var sourceAddress: String?
    /// SHA-256 (hex) of the agent's key; a live agent is not displaced by a registration with another.
    public var keyHash: String?
    /// From a verified identity document.
    public var accountId: String?
    public var region: String?
    public var privateIp: String?
    public var pendingTime: String?
    /// When.
    public var verifiedAtMs: Int64

    /// Creates a verification.
    public init(
        checks: [String], sourceAddress: String? = nil, keyHash: String? = nil, accountId: String? = nil, region: String? = nil,
        privateIp: String? = nil, pendingTime: String? = nil, verifiedAtMs: Int64
    ) {
        self.checks = checks
        self.sourceAddress = sourceAddress
        self.keyHash = keyHash
        self.accountId = accountId
        self.region = region
        self.privateIp = privateIp
        self.pendingTime = pendingTime
        self.verifiedAtMs = verifiedAtMs
    }
}

/// A registration the collector refused because the claim did not hold (not for a wrong enrollment token).
public struct IdentityRefusal: Sendable, Hashable, Codable {
    /// The instance the registration claimed.
    public var instanceId: String
    /// The agent id it asked for.
    public var agentId: String?
    /// Which check failed (the `reason` label of `plumb_registrations_refused_total`).
    public var reason: String
    /// The address it came from.
    public var source: String?
    /// What did not hold.
    public var detail: String
    public var atMs: Int64

    /// Refusals are kept a day.
    public static let keptMs: Int64 = 86_400_000

    /// Creates a refusal.
    public init(instanceId: String, agentId: String?, reason: String, source: String?, detail: String, atMs: Int64) {
        self.instanceId = instanceId
        self.agentId = agentId
        self.reason = reason
        self.source = source
        self.detail = detail
        self.atMs = atMs
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

/// A stored report as the leader reads it: its place in the feed (an id increasing with insertion), when it arrived
/// at whichever collector took it, and the report.
public struct FeedEntry: Sendable {
    public var id: Int64
    public var agentId: String
    public var sequence: Int64
    public var receivedAtMs: Int64
    public var report: Report

    /// Creates an entry.
    public init(id: Int64, agentId: String, sequence: Int64, receivedAtMs: Int64, report: Report) {
        self.id = id
        self.agentId = agentId
        self.sequence = sequence
        self.receivedAtMs = receivedAtMs
        self.report = report
    }
}

/// Where the leader stands in the feed. Every id at or below `through` was read except `gaps`: ids skipped because
/// the transaction holding them had not committed when a later one was read (with several collectors inserting at
/// once, ids commit out of order). A gap is looked for again until `FeedCursor.gapLifetimeMs` after it was first
/// missed; then it is taken for a rolled-back transaction and dropped.
public struct FeedCursor: Sendable, Hashable, Codable {
    /// The highest id read.
    public var through: Int64
    /// Ids below `through` not read yet, with the time (ms) each was first missed.
    public var gaps: [Int64: Int64]
    /// How long a gap is looked for.
    public static let gapLifetimeMs: Int64 = 60_000

    /// A cursor.
    public init(through: Int64 = 0, gaps: [Int64: Int64] = [:]) {
        self.through = through
        self.gaps = gaps
    }

    /// The cursor after reading `ids` (ascending) at `now`: ids skipped between are gaps, gaps read are closed, gaps
    /// older than their lifetime are dropped.
    public func advanced(reading ids: [Int64], now: Int64) -> FeedCursor {
        var next = self
        for id in ids {
            if id > next.through {
                var missing = next.through + 1
                while missing < id {
                    next.gaps[missing] = now
                    missing += 1
                }
                next.through = id
            } else {
                next.gaps[id] = nil
            }
        }
        next.gaps = next.gaps.filter { now - $0.value < Self.gapLifetimeMs }
        return next
    }
}

/// What an alert quotes about a pair: its last result and what it showed. Stored with the pair's state, so a
/// restart or a new leader quotes the same evidence.
public struct PairEvidence: Sendable, Hashable, Codable {
    public var reason: Disagreement?
    public var lastResult: String
    public var observedInstance: String?
    public var observedEgressIP: String?
    /// The last failing result was answered by the target's host (refused, TLS failure, HTTP error).
    public var answered: Bool

    /// Creates evidence.
    public init(reason: Disagreement?, lastResult: String, observedInstance: String?, observedEgressIP: String?, answered: Bool = false) {
        self.reason = reason
        self.lastResult = lastResult
        self.observedInstance = observedInstance
        self.observedEgressIP = observedEgressIP
        self.answered = answered
    }
}

/// A pair's state and its evidence, as stored.
public struct StoredPair: Sendable, Hashable, Codable {
    public var state: PairState
    public var evidence: PairEvidence?

    /// Creates a stored pair.
    public init(state: PairState, evidence: PairEvidence?) {
        self.state = state
        self.evidence = evidence
    }
}

/// Counters a collector polls to learn what other collectors changed: the newest topology version, a revision
/// raised by every agent saved, and the newest acknowledgement event.
public struct StoreMarks: Sendable, Hashable {
    public var topologyVersion: Int
    public var agentsRevision: Int64
    public var acknowledgement: Int64

    /// Creates marks.
    public init(topologyVersion: Int, agentsRevision: Int64, acknowledgement: Int64) {
        self.topologyVersion = topologyVersion
        self.agentsRevision = agentsRevision
        self.acknowledgement = acknowledgement
    }
}

/// An acknowledgement as recorded: the event's id, the alert, who and when. The leader applies these to its alerts, so
/// an acknowledgement taken by any collector survives the leader's next save of the alert.
public struct AcknowledgementEvent: Sendable, Hashable {
    public var eventId: Int64
    public var alertId: String
    public var by: String
    public var atMs: Int64

    /// Creates an event.
    public init(eventId: Int64, alertId: String, by: String, atMs: Int64) {
        self.eventId = eventId
        self.alertId = alertId
        self.by = by
        self.atMs = atMs
    }
}

/// The collector that leads, as it last recorded itself.
public struct LeaderRecord: Sendable, Hashable, Codable {
    public var collectorId: String
    /// When it took the lead, and when it last confirmed it (ms since the epoch).
    public var sinceMs: Int64
    public var confirmedAtMs: Int64

    /// Creates a record.
    public init(collectorId: String, sinceMs: Int64, confirmedAtMs: Int64) {
        self.collectorId = collectorId
        self.sinceMs = sinceMs
        self.confirmedAtMs = confirmedAtMs
    }
}

/// One collector's claim to lead. The store decides: SQLite has one collector, which always leads; PostgreSQL grants
/// an advisory lock held on a connection of the claim's own, so that the server releases it when that connection
/// dies and another collector can take over.
public protocol Leadership: Sendable {
    /// Takes the lead if it is free, or confirms it is still held; false when another collector leads or the store
    /// cannot be reached. A collector must act as leader only between a `true` and its next call, and must call
    /// again before acting after more than `confirmIntervalMs`.
    func acquireOrConfirm(now: Int64) async -> Bool
    /// Gives the lead up (shutdown).
    func release() async
}

/// Errors of a store, each saying what to do.
public enum StoreError: Error, CustomStringConvertible {
    /// The database cannot be opened or migrated.
    case open(String, String)
    /// A query failed.
    case query(String, String)

    /// Whether the database could not be reached or did not answer in time (as opposed to refusing one statement):
    /// trying the reports of a batch one by one would only wait again for each.
    public var isUnavailable: Bool {
        guard case .query(_, let reason) = self else { return true }
        let lowered = reason.lowercased()
        return ["within", "connection", "closed", "timed out", "timeout", "refused", "unreachable", "deadline"].contains { lowered.contains($0) }
    }

    public var description: String {
        switch self {
        case .open(let path, let reason): return "cannot open the store at \(path): \(reason)"
        case .query(let what, let reason): return "store: \(what) failed: \(reason)"
        }
    }
}

/// How long the current task may wait for the store at each call: a request sets it (`limits.storeTimeoutSeconds`),
/// and a store that would wait longer for a connection or an answer gives up with a `StoreError`, so the request
/// answers 503 instead of hanging for the length of a database outage. Work without one (the leader's loop) keeps the
/// store's own timeouts.
public enum StoreDeadline {
    @TaskLocal public static var current: Duration?

    /// `limit`, or the task's wait when it is shorter.
    public static func timeout(within limit: Duration) -> Duration {
        guard let current else { return limit }
        return max(.milliseconds(10), min(limit, current))
    }

    /// When a wait that starts now must end (nil without a task wait).
    public static var deadline: ContinuousClock.Instant? { current.map { ContinuousClock.now + $0 } }
}

/// The collector's storage. SQLite implements it (the embedded default); a PostgreSQL implementation can drop in:
/// no method exposes SQL or SQLite behaviour. Every method is atomic.
public protocol Store: Sendable {
    /// What the store is, for status and logs: `sqlite /path/plumb.sqlite`, `postgres user@host:5432/plumb`. Never a
    /// password.
    var summary: String { get }
    /// Whether several collectors can share it (PostgreSQL); SQLite has one collector.
    var isShared: Bool { get }

    /// Creates or upgrades the schema: each migration once, under a lock, in order.
    func migrate() async throws
    /// Succeeds when the store answers now (readiness).
    func ping() async throws
    /// Counters that move when another collector changes what this one serves.
    func marks() async throws -> StoreMarks
    /// The store's size in bytes (the SQLite file with its WAL, the PostgreSQL database), for `/metrics`.
    func sizeBytes() async throws -> Int64

    /// Inserts or replaces an agent.
    func saveAgent(_ agent: AgentRecord) async throws
    /// One agent.
    func agent(id: String) async throws -> AgentRecord?
    /// Every agent, by id.
    func agents() async throws -> [AgentRecord]
    /// Records a refused registration (kept `IdentityRefusal.keptMs`).
    func recordRefusal(_ refusal: IdentityRefusal) async throws
    /// Refusals at or after `since`, newest first (at most 1,000).
    func refusals(since: Int64) async throws -> [IdentityRefusal]

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

    /// Reports stored after `cursor` (above `through`, or in its gaps), in id order, at most `limit`.
    func feed(after cursor: FeedCursor, limit: Int) async throws -> [FeedEntry]

    /// Upserts `changed` pairs, deletes `removed` ones and records how far the feed was read, in one transaction:
    /// a new leader continues from exactly the results the stored states include.
    func savePairs(_ changed: [String: StoredPair], removed: [String], cursor: FeedCursor) async throws
    /// The stored pairs by `agentId/probeId`, and the feed cursor saved with them.
    func loadPairs() async throws -> (pairs: [String: StoredPair], cursor: FeedCursor)

    /// Inserts or updates an alert, records `event` (`firing`, `resolved`, `updated`, `acknowledged` — with the alert's
    /// `acknowledgedBy` as the event's detail) for it, and queues
    /// `deliveries` — in one transaction, so a crash cannot leave a firing alert without its notifications.
    func saveAlert(_ alert: Alert, event: String, at: Int64, deliveries: [OutboxEntry]) async throws
    /// Alerts matching `filter`, newest first.
    func alerts(_ filter: AlertFilter) async throws -> [Alert]
    /// One alert.
    func alert(id: String) async throws -> Alert?
    /// An alert's events: (event, time).
    func alertEvents(id: String) async throws -> [(event: String, atMs: Int64)]
    /// `acknowledged` events after event id `after`, oldest first.
    func acknowledgements(after: Int64) async throws -> [AcknowledgementEvent]

    /// Queues deliveries (ignored when the idempotency key is queued already).
    func enqueue(_ entries: [OutboxEntry]) async throws
    /// Deliveries due at `now`, oldest first.
    func dueDeliveries(now: Int64, limit: Int) async throws -> [OutboxEntry]
    /// Claims up to `limit` deliveries due at `now` that no one holds (or whose claim lapsed) for `owner` until
    /// `now + leaseMs`, oldest first: no two collectors get one delivery at once. `recordAttempt` ends the claim.
    func claimDeliveries(now: Int64, limit: Int, owner: String, leaseMs: Int64) async throws -> [OutboxEntry]
    /// Records an attempt: delivered, retried at `nextAttemptAt`, or given up.
    func recordAttempt(id: Int64, at: Int64, status: Int, error: String?, delivered: Bool, nextAttemptAt: Int64?, gaveUp: Bool) async throws
    /// Deliveries, newest first (for the API).
    func deliveries(alertId: String?, limit: Int) async throws -> [OutboxEntry]

    /// A claim to lead for collector `collectorId`.
    func leadership(collectorId: String) -> any Leadership
    /// Records that `collectorId` leads (called by the leader each time it confirms).
    func recordLeader(_ record: LeaderRecord) async throws
    /// The collector that last recorded itself as leader.
    func leader() async throws -> LeaderRecord?
}
