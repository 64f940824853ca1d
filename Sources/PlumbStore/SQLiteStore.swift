import Foundation
import Logging
import NIOCore
import PlumbCore
import PlumbWire
import SQLiteNIO

/// The embedded store: one SQLite file in WAL mode. One connection; the actor serialises statements and
/// transactions. `synchronous=NORMAL` in WAL mode: a committed transaction survives a crash of the collector
/// (SIGKILL); a power loss may lose the last transactions (PostgreSQL is the choice when that matters).
public actor SQLiteStore: Store {
    /// The file.
    public let path: String
    public nonisolated var summary: String { "sqlite \(path)" }
    public nonisolated var isShared: Bool { false }
    private let connection: SQLiteConnection
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    private let decoder = JSONDecoder()

    /// Opens (creating if needed) the database at `path`.
    public static func open(path: String, logger: Logger) async throws -> SQLiteStore {
        do {
            let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            // A file that is not a database, or a disk too full to migrate on, fails here: the connection is closed
            // before the error goes up (SQLiteNIO asserts on a connection dropped open), and the caller exits with it.
            do {
                _ = try await connection.query("PRAGMA journal_mode=WAL")
                _ = try await connection.query("PRAGMA synchronous=NORMAL")
                _ = try await connection.query("PRAGMA foreign_keys=ON")
                _ = try await connection.query("PRAGMA busy_timeout=5000")
            } catch {
                try? await connection.close()
                throw error
            }
            let store = SQLiteStore(path: path, connection: connection)
            do {
                try await store.migrate()
            } catch {
                try? await store.close()
                throw error
            }
            return store
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.open(path, "\(error)")
        }
    }

    private init(path: String, connection: SQLiteConnection) {
        self.path = path
        self.connection = connection
    }

    private var closed = false
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// Runs `body` alone: the actor is reentrant at every `await`, and SQLite transactions on one connection must not
    /// interleave, so every public operation takes this FIFO lock.
    @discardableResult
    private func exclusive<T>(_ body: () async throws -> T) async throws -> T {
        if busy {
            await withCheckedContinuation { waiting.append($0) }  // ownership is handed over by the releaser
        } else {
            busy = true
        }
        defer {
            if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
        }
        return try await body()
    }

    /// Closes the connection.
    public func close() async throws {
        guard !closed else { return }
        closed = true
        try await connection.close()
    }

    deinit {
        // A store dropped without close() still closes its file (sqlite-nio asserts on an open handle).
        if !closed { _ = connection.close() as EventLoopFuture<Void> }
    }

    static let migrations: [String] = [
        """
        CREATE TABLE agents (
            agent_id TEXT PRIMARY KEY, token_hash TEXT NOT NULL, registration TEXT NOT NULL,
            registered_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, last_sequence INTEGER NOT NULL DEFAULT 0,
            sequence_floor INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE topology_versions (
            version INTEGER PRIMARY KEY AUTOINCREMENT, document TEXT NOT NULL, format TEXT NOT NULL, author TEXT NOT NULL,
            comment TEXT, created_at INTEGER NOT NULL);
        CREATE TABLE plans (agent_id TEXT PRIMARY KEY, etag TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE reports (
            agent_id TEXT NOT NULL, sequence INTEGER NOT NULL, received_at INTEGER NOT NULL, result_count INTEGER NOT NULL,
            dropped_batches INTEGER NOT NULL, dropped_results INTEGER NOT NULL, body TEXT, PRIMARY KEY (agent_id, sequence));
        CREATE INDEX reports_by_time ON reports (received_at);
        CREATE TABLE results (
            id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL, sequence INTEGER NOT NULL, position INTEGER NOT NULL, probe_id TEXT NOT NULL,
            started_at INTEGER NOT NULL, outcome TEXT NOT NULL, rtt_ms REAL, sent INTEGER NOT NULL, received INTEGER NOT NULL);
        CREATE INDEX results_by_time ON results (started_at);
        CREATE INDEX results_by_agent ON results (agent_id, started_at);
        CREATE TABLE rollups (
            agent_id TEXT NOT NULL, probe_id TEXT NOT NULL, minute INTEGER NOT NULL, sent INTEGER NOT NULL, received INTEGER NOT NULL,
            rtt_p50 REAL, rtt_p95 REAL, rtt_max REAL, PRIMARY KEY (agent_id, probe_id, minute));
        CREATE TABLE pair_states (pair TEXT PRIMARY KEY, state TEXT NOT NULL);
        CREATE TABLE alerts (
            id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
            component TEXT NOT NULL, starts_at INTEGER NOT NULL, body TEXT NOT NULL);
        CREATE INDEX alerts_by_status ON alerts (status, starts_at);
        CREATE TABLE alert_events (id INTEGER PRIMARY KEY, alert_id TEXT NOT NULL, event TEXT NOT NULL, at INTEGER NOT NULL);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY, receiver TEXT NOT NULL, alert_id TEXT NOT NULL, event TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, delivered_at INTEGER,
            gave_up_at INTEGER, last_error TEXT);
        CREATE INDEX outbox_due ON outbox (delivered_at, gave_up_at, next_attempt_at);
        CREATE TABLE delivery_attempts (
            id INTEGER PRIMARY KEY, outbox_id INTEGER NOT NULL, at INTEGER NOT NULL, status INTEGER NOT NULL, error TEXT);
        """,
        // 2: what the leader needs (the same schema as PostgreSQL's): a feed id per report, from a counter that pruning
        // cannot reset; agent revisions; pair evidence and the feed cursor; claimed deliveries; the leader.
        """
        ALTER TABLE agents ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE reports ADD COLUMN feed_id INTEGER;
        CREATE UNIQUE INDEX reports_by_feed ON reports (feed_id);
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        ALTER TABLE pair_states ADD COLUMN evidence TEXT;
        CREATE TABLE feed_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), cursor TEXT NOT NULL);
        ALTER TABLE alert_events ADD COLUMN detail TEXT;
        CREATE INDEX alert_events_by_event ON alert_events (event, id);
        ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
        ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
        CREATE TABLE leader (id INTEGER PRIMARY KEY CHECK (id = 1), collector_id TEXT NOT NULL, since INTEGER NOT NULL, confirmed_at INTEGER NOT NULL)
        """,
        // 3: how each agent proved its instance, and the registrations refused (for identity_conflict alerts).
        """
        ALTER TABLE agents ADD COLUMN verification TEXT;
        CREATE TABLE identity_refusals (
            id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, agent_id TEXT, reason TEXT NOT NULL, source TEXT, detail TEXT NOT NULL,
            at INTEGER NOT NULL);
        CREATE INDEX identity_refusals_by_time ON identity_refusals (at)
        """,
    ]

    public func migrate() async throws {
        try await exclusive {
            _ = try await run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            let current = try await run("SELECT MAX(version) AS v FROM schema_version").first?.column("v")?.integer ?? 0
            for (index, migration) in Self.migrations.enumerated() where index + 1 > current {
                try await transaction {
                    for statement in migration.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) })
                    where !statement.isEmpty {
                        _ = try await self.run(statement)
                    }
                    _ = try await self.run("INSERT INTO schema_version (version) VALUES (?)", [.integer(index + 1)])
                }
            }
        }
    }

    public func ping() async throws {
        try await exclusive { _ = try await run("SELECT 1") }
    }

    public func sizeBytes() async throws -> Int64 {
        var total: Int64 = 0
        for file in [path, path + "-wal"] {
            var info = stat()
            if stat(file, &info) == 0 { total += Int64(info.st_size) }
        }
        return total
    }

    public func marks() async throws -> StoreMarks {
        try await exclusive {
            let row = try await run(
                """
                SELECT (SELECT COALESCE(MAX(version), 0) FROM topology_versions) AS t, (SELECT COALESCE(MAX(revision), 0) FROM agents) AS a,
                (SELECT COALESCE(MAX(id), 0) FROM alert_events WHERE event = 'acknowledged') AS k
                """
            ).first
            return StoreMarks(
                topologyVersion: row?.column("t")?.integer ?? 0, agentsRevision: Int64(row?.column("a")?.integer ?? 0),
                acknowledgement: Int64(row?.column("k")?.integer ?? 0))
        }
    }

    // MARK: - Helpers

    @discardableResult
    private func run(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        do {
            return try await connection.query(sql, binds)
        } catch {
            throw StoreError.query(String(sql.prefix(60)), "\(error)")
        }
    }

    private func transaction<T>(_ body: () async throws -> T) async throws -> T {
        try await run("BEGIN IMMEDIATE")
        do {
            let value = try await body()
            try await run("COMMIT")
            return value
        } catch {
            _ = try? await connection.query("ROLLBACK", [])
            throw error
        }
    }

    private func json(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }

    private func decode<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
        guard let text else { return nil }
        return try? decoder.decode(type, from: Data(text.utf8))
    }

    // MARK: - Agents

    public func saveAgent(_ agent: AgentRecord) async throws {
        try await exclusive {
            try await run(
                """
                INSERT INTO agents (agent_id, token_hash, registration, registered_at, last_seen_at, last_sequence, verification, revision)
                VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(revision), 0) + 1 FROM agents))
                ON CONFLICT (agent_id) DO UPDATE SET token_hash = excluded.token_hash, registration = excluded.registration,
                last_seen_at = MAX(last_seen_at, excluded.last_seen_at), verification = excluded.verification, revision = excluded.revision
                """,
                [
                    .text(agent.agentId), .text(agent.tokenHash), .text(try json(agent.registration)), .integer(Int(agent.registeredAtMs)),
                    .integer(Int(agent.lastSeenAtMs)), .integer(Int(agent.lastSequence)),
                    try agent.verification.map { .text(try json($0)) } ?? .null,
                ])
        }
    }

    public func agent(id: String) async throws -> AgentRecord? {
        try await exclusive {
            try await run("SELECT * FROM agents WHERE agent_id = ?", [.text(id)]).compactMap(agentRecord).first
        }
    }

    public func agents() async throws -> [AgentRecord] {
        try await exclusive {
            try await run("SELECT * FROM agents ORDER BY agent_id").compactMap(agentRecord)
        }
    }

    private func agentRecord(_ row: SQLiteRow) -> AgentRecord? {
        guard let id = row.column("agent_id")?.string, let registration = decode(Registration.self, row.column("registration")?.string) else {
            return nil
        }
        return AgentRecord(
            agentId: id, tokenHash: row.column("token_hash")?.string ?? "", registration: registration,
            registeredAtMs: Int64(row.column("registered_at")?.integer ?? 0), lastSeenAtMs: Int64(row.column("last_seen_at")?.integer ?? 0),
            lastSequence: Int64(row.column("last_sequence")?.integer ?? 0),
            verification: decode(AgentVerification.self, row.column("verification")?.string))
    }

    public func recordRefusal(_ refusal: IdentityRefusal) async throws {
        try await exclusive {
            try await transaction {
                try await run(
                    "INSERT INTO identity_refusals (instance_id, agent_id, reason, source, detail, at) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        .text(refusal.instanceId), refusal.agentId.map { .text($0) } ?? .null, .text(refusal.reason),
                        refusal.source.map { .text($0) } ?? .null,
                        .text(refusal.detail), .integer(Int(refusal.atMs)),
                    ])
                // A day of them is plenty for alerts and forensics; the log has the rest.
                try await run("DELETE FROM identity_refusals WHERE at < ?", [.integer(Int(refusal.atMs - IdentityRefusal.keptMs))])
            }
        }
    }

    public func refusals(since: Int64) async throws -> [IdentityRefusal] {
        try await exclusive {
            try await run("SELECT * FROM identity_refusals WHERE at >= ? ORDER BY id DESC LIMIT 1000", [.integer(Int(since))]).compactMap { row in
                guard let instance = row.column("instance_id")?.string, let reason = row.column("reason")?.string else { return nil }
                return IdentityRefusal(
                    instanceId: instance, agentId: row.column("agent_id")?.string, reason: reason, source: row.column("source")?.string,
                    detail: row.column("detail")?.string ?? "", atMs: Int64(row.column("at")?.integer ?? 0))
            }
        }
    }

    // MARK: - Topology and plans

    public func saveTopology(document: String, format: String, author: String, comment: String?, at: Int64) async throws -> Int {
        try await exclusive {
            try await transaction {
                try await run(
                    "INSERT INTO topology_versions (document, format, author, comment, created_at) VALUES (?, ?, ?, ?, ?)",
                    [.text(document), .text(format), .text(author), comment.map { .text($0) } ?? .null, .integer(Int(at))])
                return Int(try await run("SELECT last_insert_rowid() AS id").first?.column("id")?.integer ?? 0)
            }
        }
    }

    public func latestTopology() async throws -> TopologyVersion? {
        try await exclusive {
            try await run("SELECT * FROM topology_versions ORDER BY version DESC LIMIT 1").map { topologyVersion($0, withDocument: true) }.first
        }
    }

    public func topology(version: Int) async throws -> TopologyVersion? {
        try await exclusive {
            try await run("SELECT * FROM topology_versions WHERE version = ?", [.integer(version)]).map { topologyVersion($0, withDocument: true) }
                .first
        }
    }

    public func topologyVersions() async throws -> [TopologyVersion] {
        try await exclusive {
            try await run("SELECT version, format, author, comment, created_at FROM topology_versions ORDER BY version DESC").map {
                topologyVersion($0, withDocument: false)
            }
        }
    }

    private func topologyVersion(_ row: SQLiteRow, withDocument: Bool) -> TopologyVersion {
        TopologyVersion(
            version: row.column("version")?.integer ?? 0, document: withDocument ? row.column("document")?.string ?? "" : "",
            format: row.column("format")?.string ?? "yaml", author: row.column("author")?.string ?? "", comment: row.column("comment")?.string,
            createdAtMs: Int64(row.column("created_at")?.integer ?? 0))
    }

    public func savePlan(agentId: String, etag: String, body: String, at: Int64) async throws {
        try await exclusive {
            try await run(
                "INSERT INTO plans (agent_id, etag, body, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET etag = excluded.etag, body = excluded.body, created_at = excluded.created_at",
                [.text(agentId), .text(etag), .text(body), .integer(Int(at))])
        }
    }

    public func plan(agentId: String) async throws -> (etag: String, body: String)? {
        try await exclusive {
            guard let row = try await run("SELECT etag, body FROM plans WHERE agent_id = ?", [.text(agentId)]).first,
                let etag = row.column("etag")?.string, let body = row.column("body")?.string
            else { return nil }
            return (etag, body)
        }
    }

    // MARK: - Reports and results

    private struct ReportKey: Hashable {
        var agent: String
        var sequence: Int
    }

    /// A report waiting for the next group commit.
    private struct PendingIngest {
        var report: Report
        var body: String
        var receivedAt: Int64
        var continuation: CheckedContinuation<IngestOutcome, any Error>
    }
    private var pendingIngests: [PendingIngest] = []
    private var flushingIngests = false
    /// Per agent, the highest sequence whose report row was pruned: anything at or below it was stored before.
    private var sequenceFloors: [String: Int64]?

    /// Group commit: reports that arrive while a transaction runs wait and go together into the next one, so the
    /// per-transaction cost (and the thread hops of the SQLite driver) is paid once per batch, not once per report.
    /// Each caller still returns only after its report is committed.
    public func ingest(_ report: Report, body: String?, receivedAt: Int64) async throws -> IngestOutcome {
        let text = try body ?? json(report)
        return try await withCheckedThrowingContinuation { continuation in
            pendingIngests.append(PendingIngest(report: report, body: text, receivedAt: receivedAt, continuation: continuation))
            if !flushingIngests {
                flushingIngests = true
                Task { await self.flushIngests() }
            }
        }
    }

    private static let maxReportsPerCommit = 256

    private func flushIngests() async {
        while !pendingIngests.isEmpty {
            let count = min(pendingIngests.count, Self.maxReportsPerCommit)
            let batch = Array(pendingIngests.prefix(count))
            pendingIngests.removeFirst(count)
            do {
                let outcomes = try await exclusive { try await transaction { try await ingestBatch(batch) } }
                for (item, outcome) in zip(batch, outcomes) { item.continuation.resume(returning: outcome) }
            } catch  where batch.count > 1 {
                // One report must not fail the others: retry each alone, so only the bad one gets the error.
                for item in batch {
                    do {
                        let outcome = try await exclusive { try await transaction { try await ingestBatch([item]) } }
                        item.continuation.resume(returning: outcome[0])
                    } catch {
                        item.continuation.resume(throwing: error)
                    }
                }
            } catch {
                for item in batch { item.continuation.resume(throwing: error) }
            }
        }
        flushingIngests = false
    }

    private func floors() async throws -> [String: Int64] {
        if let sequenceFloors { return sequenceFloors }
        var floors: [String: Int64] = [:]
        for row in try await run("SELECT agent_id, sequence_floor FROM agents WHERE sequence_floor > 0") {
            if let agent = row.column("agent_id")?.string { floors[agent] = Int64(row.column("sequence_floor")?.integer ?? 0) }
        }
        sequenceFloors = floors
        return floors
    }

    private func ingestBatch(_ batch: [PendingIngest]) async throws -> [IngestOutcome] {
        var outcomes = [IngestOutcome](repeating: .duplicate, count: batch.count)
        let floors = try await floors()
        var seen = Set<ReportKey>()
        var candidates: [Int] = []
        for (index, item) in batch.enumerated() where item.report.sequence > floors[item.report.agentId] ?? 0 {
            if seen.insert(ReportKey(agent: item.report.agentId, sequence: Int(item.report.sequence))).inserted { candidates.append(index) }
        }
        guard !candidates.isEmpty else { return outcomes }
        // Reports first: the rows that conflict with stored ones are not returned, and their results are not stored.
        var stored = Set<ReportKey>()
        for chunk in stride(from: 0, to: candidates.count, by: 1_000) {
            let slice = candidates[chunk..<min(chunk + 1_000, candidates.count)]
            var binds: [SQLiteData] = []
            for index in slice {
                let item = batch[index]
                binds += [
                    .text(item.report.agentId), .integer(Int(item.report.sequence)), .integer(Int(item.receivedAt)),
                    .integer(item.report.results.count),
                    .integer(item.report.dropped.batches), .integer(item.report.dropped.results), .text(item.body),
                ]
            }
            let rows = try await run(
                "INSERT INTO reports (agent_id, sequence, received_at, result_count, dropped_batches, dropped_results, body) VALUES "
                    + Array(repeating: "(?, ?, ?, ?, ?, ?, ?)", count: slice.count).joined(separator: ", ")
                    + " ON CONFLICT (agent_id, sequence) DO NOTHING RETURNING agent_id, sequence", binds)
            for row in rows {
                stored.insert(ReportKey(agent: row.column("agent_id")?.string ?? "", sequence: row.column("sequence")?.integer ?? 0))
            }
        }
        // Results, many rows per statement (SQLite allows 32,766 bound values); the agents' last-seen times.
        var chunks: [(rows: Int, binds: [SQLiteData])] = [(0, [])]
        var lastSeen: [String: (at: Int64, sequence: Int64)] = [:]
        for index in candidates {
            let report = batch[index].report
            guard stored.contains(ReportKey(agent: report.agentId, sequence: Int(report.sequence))) else { continue }
            outcomes[index] = .stored
            let previous = lastSeen[report.agentId] ?? (0, 0)
            lastSeen[report.agentId] = (max(previous.at, batch[index].receivedAt), max(previous.sequence, report.sequence))
            for (position, result) in report.results.enumerated() {
                let rtt = result.burst?.rttAvgMs ?? result.timings.connectMs ?? result.timings.totalMs
                if chunks[chunks.count - 1].rows == 3_000 { chunks.append((0, [])) }
                chunks[chunks.count - 1].rows += 1
                chunks[chunks.count - 1].binds += [
                    .text(report.agentId), .integer(Int(report.sequence)), .integer(position), .text(result.probeId),
                    .integer(Int(result.startedAtMs)), .text(result.outcome.rawValue), rtt.map { .float($0) } ?? .null,
                    .integer(result.burst?.sent ?? 1), .integer(result.burst?.received ?? (result.outcome == .ok ? 1 : 0)),
                ]
            }
        }
        // Feed ids in arrival order, from a counter (a MAX over the rows would start again once pruning emptied them).
        let storedInOrder = candidates.filter {
            stored.contains(ReportKey(agent: batch[$0].report.agentId, sequence: Int(batch[$0].report.sequence)))
        }
        if !storedInOrder.isEmpty {
            let base = Int64(try await run("SELECT value FROM counters WHERE name = 'feed'").first?.column("value")?.integer ?? 0)
            for chunk in stride(from: 0, to: storedInOrder.count, by: 3_000) {
                let slice = storedInOrder[chunk..<min(chunk + 3_000, storedInOrder.count)]
                var binds: [SQLiteData] = []
                for (offset, index) in slice.enumerated() {
                    binds += [
                        .text(batch[index].report.agentId), .integer(Int(batch[index].report.sequence)),
                        .integer(Int(base) + chunk + offset + 1),
                    ]
                }
                try await run(
                    "UPDATE reports SET feed_id = v.column3 FROM (VALUES "
                        + Array(repeating: "(?, ?, ?)", count: slice.count).joined(separator: ", ")
                        + ") AS v WHERE reports.agent_id = v.column1 AND reports.sequence = v.column2", binds)
            }
            try await run(
                "INSERT INTO counters (name, value) VALUES ('feed', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [.integer(Int(base) + storedInOrder.count)])
        }
        for chunk in chunks where chunk.rows > 0 {
            try await run(
                "INSERT INTO results (agent_id, sequence, position, probe_id, started_at, outcome, rtt_ms, sent, received) VALUES "
                    + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?)", count: chunk.rows).joined(separator: ", "), chunk.binds)
        }
        let agents = Array(lastSeen)
        for chunk in stride(from: 0, to: agents.count, by: 5_000) {
            let slice = agents[chunk..<min(chunk + 5_000, agents.count)]
            try await run(
                "UPDATE agents SET last_seen_at = MAX(last_seen_at, v.column2), last_sequence = MAX(last_sequence, v.column3) FROM (VALUES "
                    + Array(repeating: "(?, ?, ?)", count: slice.count).joined(separator: ", ") + ") AS v WHERE agents.agent_id = v.column1",
                slice.flatMap { [.text($0.key), .integer(Int($0.value.at)), .integer(Int($0.value.sequence))] as [SQLiteData] })
        }
        return outcomes
    }

    public func results(agentId: String?, since: Int64, limit: Int) async throws -> [StoredResult] {
        try await exclusive {
            // A result is a position in its report's stored body; each body is decoded once.
            let select = """
                SELECT r.agent_id, r.sequence, r.position, p.body FROM results r
                JOIN reports p ON p.agent_id = r.agent_id AND p.sequence = r.sequence
                """
            let rows: [SQLiteRow]
            if let agentId {
                rows = try await run(
                    select + " WHERE r.agent_id = ? AND r.started_at >= ? ORDER BY r.started_at, r.id LIMIT ?",
                    [.text(agentId), .integer(Int(since)), .integer(limit)])
            } else {
                rows = try await run(
                    select + " WHERE r.started_at >= ? ORDER BY r.started_at, r.id LIMIT ?", [.integer(Int(since)), .integer(limit)])
            }
            var reports: [ReportKey: Report] = [:]
            return rows.compactMap { row in
                guard let agent = row.column("agent_id")?.string, let sequence = row.column("sequence")?.integer,
                    let position = row.column("position")?.integer
                else { return nil }
                let key = ReportKey(agent: agent, sequence: sequence)
                if reports[key] == nil { reports[key] = decode(Report.self, row.column("body")?.string) }
                guard let report = reports[key], position < report.results.count else { return nil }
                return StoredResult(agentId: agent, sequence: Int64(sequence), result: report.results[position])
            }
        }
    }

    public func rollUp(before: Int64) async throws -> Int {
        try await exclusive {
            try await transaction {
                try await pruneReports(before: before)
                let rows = try await run(
                    "SELECT agent_id, probe_id, started_at, rtt_ms, sent, received FROM results WHERE started_at < ? ORDER BY agent_id, probe_id, started_at",
                    [.integer(Int(before))])
                guard !rows.isEmpty else { return 0 }
                struct Key: Hashable {
                    var agent: String
                    var probe: String
                    var minute: Int64
                }
                var groups: [Key: (sent: Int, received: Int, rtts: [Double])] = [:]
                for row in rows {
                    let key = Key(
                        agent: row.column("agent_id")?.string ?? "", probe: row.column("probe_id")?.string ?? "",
                        minute: Int64(row.column("started_at")?.integer ?? 0) / 60_000 * 60_000)
                    var entry = groups[key] ?? (0, 0, [])
                    entry.sent += row.column("sent")?.integer ?? 1
                    entry.received += row.column("received")?.integer ?? 0
                    if let rtt = row.column("rtt_ms")?.double { entry.rtts.append(rtt) }
                    groups[key] = entry
                }
                for (key, entry) in groups {
                    let sorted = entry.rtts.sorted()
                    func percentile(_ p: Double) -> SQLiteData {
                        sorted.isEmpty ? .null : .float(sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))])
                    }
                    try await run(
                        """
                        INSERT INTO rollups (agent_id, probe_id, minute, sent, received, rtt_p50, rtt_p95, rtt_max) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (agent_id, probe_id, minute) DO UPDATE SET sent = sent + excluded.sent, received = received + excluded.received,
                        rtt_p50 = excluded.rtt_p50, rtt_p95 = excluded.rtt_p95, rtt_max = MAX(COALESCE(rtt_max, 0), COALESCE(excluded.rtt_max, 0))
                        """,
                        [
                            .text(key.agent), .text(key.probe), .integer(Int(key.minute)), .integer(entry.sent), .integer(entry.received),
                            percentile(0.5),
                            percentile(0.95), sorted.last.map { .float($0) } ?? .null,
                        ])
                }
                try await run("DELETE FROM results WHERE started_at < ?", [.integer(Int(before))])
                return rows.count
            }
        }
    }

    /// Report rows exist to make ingest idempotent; those received before `before` are deleted, and each agent's
    /// floor rises to the highest sequence deleted: a replay at or below it is a duplicate without its row. Agents
    /// send their spool oldest first, so nothing below an acknowledged sequence arrives for the first time later.
    private func pruneReports(before: Int64) async throws {
        try await run(
            """
            UPDATE agents SET sequence_floor = MAX(sequence_floor, COALESCE(
                (SELECT MAX(sequence) FROM reports WHERE reports.agent_id = agents.agent_id AND received_at < ?), 0))
            """, [.integer(Int(before))])
        try await run("DELETE FROM reports WHERE received_at < ?", [.integer(Int(before))])
        sequenceFloors = nil
    }

    public func rollups(agentId: String, probeId: String) async throws -> [Rollup] {
        try await exclusive {
            try await run("SELECT * FROM rollups WHERE agent_id = ? AND probe_id = ? ORDER BY minute", [.text(agentId), .text(probeId)]).map { row in
                Rollup(
                    agentId: agentId, probeId: probeId, minuteMs: Int64(row.column("minute")?.integer ?? 0), sent: row.column("sent")?.integer ?? 0,
                    received: row.column("received")?.integer ?? 0, rttP50Ms: row.column("rtt_p50")?.double, rttP95Ms: row.column("rtt_p95")?.double,
                    rttMaxMs: row.column("rtt_max")?.double)
            }
        }
    }

    public func feed(after cursor: FeedCursor, limit: Int) async throws -> [FeedEntry] {
        try await exclusive {
            let gaps = cursor.gaps.keys.sorted().prefix(10_000)
            let rows = try await run(
                "SELECT feed_id, agent_id, sequence, received_at, body FROM reports WHERE feed_id > ?"
                    + (gaps.isEmpty ? "" : " OR feed_id IN (" + Array(repeating: "?", count: gaps.count).joined(separator: ", ") + ")")
                    + " ORDER BY feed_id LIMIT ?",
                [.integer(Int(cursor.through))] + gaps.map { .integer(Int($0)) } + [.integer(limit)])
            return rows.compactMap { row in
                guard let id = row.column("feed_id")?.integer, let agent = row.column("agent_id")?.string,
                    let report = decode(Report.self, row.column("body")?.string)
                else { return nil }
                return FeedEntry(
                    id: Int64(id), agentId: agent, sequence: Int64(row.column("sequence")?.integer ?? 0),
                    receivedAtMs: Int64(row.column("received_at")?.integer ?? 0), report: report)
            }
        }
    }

    // MARK: - Pair states

    public func savePairs(_ changed: [String: StoredPair], removed: [String], cursor: FeedCursor) async throws {
        try await exclusive {
            try await transaction {
                let entries = Array(changed)
                for chunk in stride(from: 0, to: entries.count, by: 400) {
                    let slice = entries[chunk..<min(chunk + 400, entries.count)]
                    var binds: [SQLiteData] = []
                    for (pair, stored) in slice {
                        binds += [.text(pair), .text(try json(stored.state)), try stored.evidence.map { .text(try json($0)) } ?? .null]
                    }
                    try await run(
                        "INSERT INTO pair_states (pair, state, evidence) VALUES "
                            + Array(repeating: "(?, ?, ?)", count: slice.count).joined(separator: ", ")
                            + " ON CONFLICT (pair) DO UPDATE SET state = excluded.state, evidence = excluded.evidence", binds)
                }
                for chunk in stride(from: 0, to: removed.count, by: 500) {
                    let slice = removed[chunk..<min(chunk + 500, removed.count)]
                    try await run(
                        "DELETE FROM pair_states WHERE pair IN (" + Array(repeating: "?", count: slice.count).joined(separator: ", ") + ")",
                        slice.map { .text($0) })
                }
                try await run(
                    "INSERT INTO feed_cursor (id, cursor) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor",
                    [.text(try json(cursor))])
            }
        }
    }

    public func loadPairs() async throws -> (pairs: [String: StoredPair], cursor: FeedCursor) {
        try await exclusive {
            var pairs: [String: StoredPair] = [:]
            for row in try await run("SELECT pair, state, evidence FROM pair_states") {
                if let pair = row.column("pair")?.string, let state = decode(PairState.self, row.column("state")?.string) {
                    pairs[pair] = StoredPair(state: state, evidence: decode(PairEvidence.self, row.column("evidence")?.string))
                }
            }
            let cursor = decode(FeedCursor.self, try await run("SELECT cursor FROM feed_cursor WHERE id = 1").first?.column("cursor")?.string)
            return (pairs, cursor ?? FeedCursor())
        }
    }

    // MARK: - Alerts

    public func saveAlert(_ alert: Alert, event: String, at: Int64, deliveries: [OutboxEntry]) async throws {
        try await exclusive {
            try await transaction {
                try await run(
                    """
                    INSERT INTO alerts (id, fingerprint, status, kind, severity, component, starts_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET status = excluded.status, severity = excluded.severity, body = excluded.body
                    """,
                    [
                        .text(alert.id), .text(alert.fingerprint), .text(alert.status.rawValue), .text(alert.kind.rawValue),
                        .text(alert.severity.rawValue),
                        .text(alert.component), .integer(Int(alert.startsAtMs)), .text(try json(alert)),
                    ])
                try await run(
                    "INSERT INTO alert_events (alert_id, event, at, detail) VALUES (?, ?, ?, ?)",
                    [.text(alert.id), .text(event), .integer(Int(at)), event == "acknowledged" ? .text(alert.acknowledgedBy ?? "") : .null])
                try await insertOutbox(deliveries)
            }
        }
    }

    public func alerts(_ filter: AlertFilter) async throws -> [Alert] {
        try await exclusive {
            var conditions: [String] = []
            var binds: [SQLiteData] = []
            if let status = filter.status {
                conditions.append("status = ?")
                binds.append(.text(status.rawValue))
            }
            if let kind = filter.kind {
                conditions.append("kind = ?")
                binds.append(.text(kind.rawValue))
            }
            if let severity = filter.severity {
                conditions.append("severity = ?")
                binds.append(.text(severity.rawValue))
            }
            if let component = filter.component {
                conditions.append("component = ?")
                binds.append(.text(component))
            }
            binds.append(.integer(filter.limit))
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try await run("SELECT body FROM alerts \(whereClause) ORDER BY starts_at DESC, id LIMIT ?", binds).compactMap {
                decode(Alert.self, $0.column("body")?.string)
            }
        }
    }

    public func alert(id: String) async throws -> Alert? {
        try await exclusive {
            try await run("SELECT body FROM alerts WHERE id = ?", [.text(id)]).compactMap { decode(Alert.self, $0.column("body")?.string) }.first
        }
    }

    public func alertEvents(id: String) async throws -> [(event: String, atMs: Int64)] {
        try await exclusive {
            try await run("SELECT event, at FROM alert_events WHERE alert_id = ? ORDER BY id", [.text(id)]).map {
                ($0.column("event")?.string ?? "", Int64($0.column("at")?.integer ?? 0))
            }
        }
    }

    public func acknowledgements(after: Int64) async throws -> [AcknowledgementEvent] {
        try await exclusive {
            try await run(
                "SELECT id, alert_id, at, detail FROM alert_events WHERE event = 'acknowledged' AND id > ? ORDER BY id LIMIT 10000",
                [.integer(Int(after))]
            ).map {
                AcknowledgementEvent(
                    eventId: Int64($0.column("id")?.integer ?? 0), alertId: $0.column("alert_id")?.string ?? "",
                    by: $0.column("detail")?.string ?? "",
                    atMs: Int64($0.column("at")?.integer ?? 0))
            }
        }
    }

    // MARK: - Outbox

    public func enqueue(_ entries: [OutboxEntry]) async throws {
        try await exclusive {
            guard !entries.isEmpty else { return }
            try await transaction { try await insertOutbox(entries) }
        }
    }

    private func insertOutbox(_ entries: [OutboxEntry]) async throws {
        for entry in entries {
            try await run(
                """
                INSERT INTO outbox (receiver, alert_id, event, idempotency_key, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (idempotency_key) DO NOTHING
                """,
                [
                    .text(entry.receiver), .text(entry.alertId), .text(entry.event), .text(entry.idempotencyKey), .integer(Int(entry.createdAtMs)),
                    .integer(Int(entry.nextAttemptAtMs)),
                ])
        }
    }

    public func dueDeliveries(now: Int64, limit: Int) async throws -> [OutboxEntry] {
        try await exclusive {
            try await run(
                "SELECT * FROM outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                [.integer(Int(now)), .integer(limit)]
            ).map(outboxEntry)
        }
    }

    public func claimDeliveries(now: Int64, limit: Int, owner: String, leaseMs: Int64) async throws -> [OutboxEntry] {
        try await exclusive {
            try await transaction {
                let due = try await run(
                    """
                    SELECT * FROM outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ?
                    AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_attempt_at, id LIMIT ?
                    """, [.integer(Int(now)), .integer(Int(now)), .integer(limit)]
                ).map(outboxEntry)
                for entry in due {
                    try await run(
                        "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                        [.text(owner), .integer(Int(now + leaseMs)), .integer(Int(entry.id))])
                }
                return due
            }
        }
    }

    public func recordAttempt(id: Int64, at: Int64, status: Int, error: String?, delivered: Bool, nextAttemptAt: Int64?, gaveUp: Bool) async throws {
        try await exclusive {
            try await transaction {
                try await run(
                    "INSERT INTO delivery_attempts (outbox_id, at, status, error) VALUES (?, ?, ?, ?)",
                    [.integer(Int(id)), .integer(Int(at)), .integer(status), error.map { .text($0) } ?? .null])
                try await run(
                    """
                    UPDATE outbox SET attempts = attempts + 1, last_error = ?, delivered_at = ?, gave_up_at = ?,
                    next_attempt_at = COALESCE(?, next_attempt_at), claimed_by = NULL, claimed_until = NULL WHERE id = ?
                    """,
                    [
                        error.map { .text($0) } ?? .null, delivered ? .integer(Int(at)) : .null, gaveUp ? .integer(Int(at)) : .null,
                        nextAttemptAt.map { .integer(Int($0)) } ?? .null, .integer(Int(id)),
                    ])
            }
        }
    }

    public func deliveries(alertId: String?, limit: Int) async throws -> [OutboxEntry] {
        try await exclusive {
            if let alertId {
                return try await run("SELECT * FROM outbox WHERE alert_id = ? ORDER BY id DESC LIMIT ?", [.text(alertId), .integer(limit)]).map(
                    outboxEntry)
            }
            return try await run("SELECT * FROM outbox ORDER BY id DESC LIMIT ?", [.integer(limit)]).map(outboxEntry)
        }
    }

    // MARK: - Leadership

    /// One collector uses a SQLite file, and it leads.
    public nonisolated func leadership(collectorId: String) -> any Leadership { SoleLeadership() }

    public func recordLeader(_ record: LeaderRecord) async throws {
        try await exclusive {
            try await run(
                """
                INSERT INTO leader (id, collector_id, since, confirmed_at) VALUES (1, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET collector_id = excluded.collector_id, since = excluded.since, confirmed_at = excluded.confirmed_at
                """, [.text(record.collectorId), .integer(Int(record.sinceMs)), .integer(Int(record.confirmedAtMs))])
        }
    }

    public func leader() async throws -> LeaderRecord? {
        try await exclusive {
            try await run("SELECT collector_id, since, confirmed_at FROM leader WHERE id = 1").first.map {
                LeaderRecord(
                    collectorId: $0.column("collector_id")?.string ?? "", sinceMs: Int64($0.column("since")?.integer ?? 0),
                    confirmedAtMs: Int64($0.column("confirmed_at")?.integer ?? 0))
            }
        }
    }

    private func outboxEntry(_ row: SQLiteRow) -> OutboxEntry {
        OutboxEntry(
            id: Int64(row.column("id")?.integer ?? 0), receiver: row.column("receiver")?.string ?? "", alertId: row.column("alert_id")?.string ?? "",
            event: row.column("event")?.string ?? "", idempotencyKey: row.column("idempotency_key")?.string ?? "",
            createdAtMs: Int64(row.column("created_at")?.integer ?? 0), nextAttemptAtMs: Int64(row.column("next_attempt_at")?.integer ?? 0),
            attempts: row.column("attempts")?.integer ?? 0, deliveredAtMs: row.column("delivered_at")?.integer.map { Int64($0) },
            gaveUpAtMs: row.column("gave_up_at")?.integer.map { Int64($0) }, lastError: row.column("last_error")?.string)
    }
}

/// The lead of a store only one collector uses: always held.
struct SoleLeadership: Leadership {
    func acquireOrConfirm(now: Int64) async -> Bool { true }
    func release() async {}
}
