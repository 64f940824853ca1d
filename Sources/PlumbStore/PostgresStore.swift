import Foundation
import Logging
import NIOCore
import PlumbCore
import PlumbWire
import PostgresNIO

/// The shared store: one PostgreSQL database that several collectors use at once. A `PostgresClient` pool runs the
/// statements (its `run()` in a task the store owns, until `close()`); the leader's claim is an advisory lock held
/// on a connection of its own (`PostgresLeadership`).
///
/// Statements run at READ COMMITTED. Where several collectors could interleave, the order is made explicit: ingest
/// locks the agents it touches (in id order) before it inserts, roll-ups take an advisory lock, and counters other
/// collectors poll (agent revisions, topology versions, acknowledgement ids) are drawn under an advisory lock so that
/// they commit in the order they were drawn. Feed ids are not: several collectors insert reports at once, and the
/// leader's `FeedCursor` keeps the ids it skipped as gaps.
public actor PostgresStore: Store {
    /// `postgres USER@HOST:PORT/DB`; never the password.
    public nonisolated let summary: String
    /// Several collectors share a PostgreSQL store.
    public nonisolated var isShared: Bool { true }

    private let client: PostgresClient
    private let runner: Task<Void, Never>
    /// How the leadership's own connections are made (the pool's settings, one connection).
    private let connectionConfiguration: PostgresConnection.Configuration
    private let logger: Logger
    private var closed = false
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    private let decoder = JSONDecoder()

    /// How long `open` waits for the server, and `ping` for an answer.
    static let connectTimeout: Duration = .seconds(5)
    /// How long a statement may take before the store gives up on it (and on its connection, in a transaction): a
    /// bound for a server or network that stops answering, far above what any statement here needs.
    static let statementTimeout: Duration = .seconds(120)

    /// Opens the database at `url` (`postgres://USER@HOST:PORT/DB?sslmode=...`, see below), checks that the server
    /// answers within 5 s and applies the migrations it lacks.
    ///
    /// - `url`: `postgres://` or `postgresql://`, `USER[:PASSWORD]@HOST[:PORT]/DB`, then optional `sslmode` (`disable`,
    ///   `allow` and `prefer` (the default) try TLS without verifying the server, `require` insists on TLS without
    ///   verifying it, as libpq does; `verify-ca` verifies the certificate chain, `verify-full` the chain and the host
    ///   name) and `sslrootcert=FILE` (the CA certificates for `verify-*`; the system's trust roots otherwise). A Unix
    ///   socket: `host=/run/postgresql` in the query or the directory percent-encoded as the host.
    /// - The password: the contents of `passwordFile` (without a trailing newline) when given, else `PGPASSWORD`, else
    ///   the URL's. A password in the URL is discouraged: it shows in process lists and shell histories.
    /// - `maximumConnections`: the pool's size (the leadership's connection is not counted).
    public static func open(url: String, passwordFile: String?, logger: Logger, maximumConnections: Int = 10) async throws -> PostgresStore {
        let target = try Target(url: url, passwordFile: passwordFile)
        // The pool retries failed connects quietly; one connection of our own says at once why the server cannot be
        // reached.
        do {
            let probe = try await PostgresSupport.connect(target.connection, timeout: connectTimeout, logger: logger)
            try? await probe.close()
        } catch {
            throw StoreError.open(target.name, "cannot connect to \(target.location.host):\(target.location.port): \(PostgresSupport.reason(error))")
        }
        var configuration = target.client
        configuration.options.connectTimeout = connectTimeout
        configuration.options.maximumConnections = max(1, maximumConnections)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        // The pool leases connections only while run() runs: the first query waits until the store's task is in it
        // (it enters run() without suspending after saying so).
        let (started, starting) = AsyncStream<Void>.makeStream()
        let runner = Task {
            starting.finish()
            await client.run()
        }
        for await _ in started {}
        let store = PostgresStore(summary: target.name, client: client, runner: runner, connectionConfiguration: target.connection, logger: logger)
        do {
            try await store.migrate()
        } catch {
            await store.close()
            throw StoreError.open(target.name, "migrating: \(PostgresSupport.reason(error))")
        }
        return store
    }

    /// A URL and a password source resolved into what the pool and single connections need.
    struct Target {
        var location: PostgresLocation
        /// `postgres USER@HOST:PORT/DB`.
        var name: String
        var client: PostgresClient.Configuration
        var connection: PostgresConnection.Configuration

        init(url: String, passwordFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
            do {
                location = try PostgresLocation(url: url)
            } catch {
                // Not the URL itself in the message: it may hold a password.
                throw StoreError.open("postgres", "the URL cannot be used: \(error)")
            }
            name = "postgres " + location.display
            let password = try Self.password(url: location.password, file: passwordFile, environment: environment, name: name)
            do {
                let tls = try PostgresStore.tls(location)
                if location.isSocket {
                    client = PostgresClient.Configuration(
                        unixSocketPath: location.socketPath, username: location.user, password: password, database: location.database)
                    connection = PostgresConnection.Configuration(
                        unixSocketPath: location.socketPath, username: location.user, password: password, database: location.database)
                } else {
                    client = PostgresClient.Configuration(
                        host: location.host, port: location.port, username: location.user, password: password, database: location.database,
                        tls: tls.client)
                    connection = PostgresConnection.Configuration(
                        host: location.host, port: location.port, username: location.user, password: password, database: location.database,
                        tls: tls.connection)
                }
            } catch {
                throw StoreError.open(name, "TLS (sslmode=\(location.sslMode.rawValue)): \(PostgresSupport.reason(error))")
            }
            connection.options.connectTimeout = .seconds(Int64(connectTimeout.components.seconds))
        }

        /// The password: the file's contents (without trailing newlines) when a file is given, else `PGPASSWORD`, else
        /// the URL's.
        static func password(url: String?, file: String?, environment: [String: String], name: String) throws -> String? {
            if let file {
                do {
                    var text = try String(contentsOfFile: file, encoding: .utf8)
                    while text.last?.isNewline == true { text.removeLast() }
                    return text
                } catch {
                    throw StoreError.open(name, "cannot read the password file \(file): \(error.localizedDescription)")
                }
            }
            return environment["PGPASSWORD"] ?? url
        }
    }

    /// Maintenance and tests, not API: runs `statements` in order on a connection of its own to the database at `url`
    /// (no pool, no migration) and returns the rows of the last one, each column read as text (cast with `::text`).
    public static func maintenance(url: String, _ statements: [String], logger: Logger) async throws -> [[String?]] {
        let target = try Target(url: url, passwordFile: nil)
        let connection = try await PostgresSupport.connect(target.connection, timeout: connectTimeout, logger: logger)
        do {
            var rows: [PostgresRow] = []
            for statement in statements { rows = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect() }
            let table = try rows.map { row in try row.map { try $0.decode(String?.self) } }
            try? await connection.close()
            return table
        } catch {
            try? await connection.close()
            throw StoreError.query(what(statements.last ?? ""), PostgresSupport.reason(error))
        }
    }

    private init(
        summary: String, client: PostgresClient, runner: Task<Void, Never>, connectionConfiguration: PostgresConnection.Configuration, logger: Logger
    ) {
        self.summary = summary
        self.client = client
        self.runner = runner
        self.connectionConfiguration = connectionConfiguration
        self.logger = logger
    }

    /// The TLS settings of libpq's `sslmode`, for the pool and for single connections.
    private static func tls(_ location: PostgresLocation) throws -> (
        client: PostgresClient.Configuration.TLS, connection: PostgresConnection.Configuration.TLS
    ) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch location.sslMode {
        case .disable:
            return (.disable, .disable)
        case .allow, .prefer:
            configuration.certificateVerification = .none
            return (.prefer(configuration), .prefer(try NIOSSLContext(configuration: configuration)))
        case .require:
            configuration.certificateVerification = .none
            return (.require(configuration), .require(try NIOSSLContext(configuration: configuration)))
        case .verifyCA, .verifyFull:
            configuration.certificateVerification = location.sslMode == .verifyFull ? .fullVerification : .noHostnameVerification
            if let roots = location.sslRootCert, roots != "system" { configuration.trustRoots = .file(roots) }
            return (.require(configuration), .require(try NIOSSLContext(configuration: configuration)))
        }
    }

    /// Stops the pool (its connections close). The store cannot be used afterwards.
    public func close() async {
        guard !closed else { return }
        closed = true
        runner.cancel()
        await runner.value
    }

    // MARK: - Helpers

    /// Runs a statement on the pool, or on `connection` inside a transaction.
    @discardableResult
    private func run(_ sql: String, _ binds: PostgresBindings = PostgresBindings(), on connection: PostgresConnection? = nil) async throws
        -> [PostgresRow]
    {
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        let (client, logger) = (self.client, self.logger)
        do {
            guard let connection else {
                return try await PostgresSupport.withDeadline(StoreDeadline.timeout(within: Self.statementTimeout)) {
                    try await client.query(query, logger: logger).collect()
                }
            }
            // A query written to a connection that has closed is never answered (postgres-nio 1.33), and the server may
            // end a session in the middle of a transaction.
            guard !connection.isClosed else { throw PostgresSupport.Closed() }
            return try await PostgresSupport.withDeadline(
                StoreDeadline.timeout(within: Self.statementTimeout), onTimeout: { connection.close().whenComplete { _ in } }
            ) {
                try await connection.query(query, logger: logger).collect()
            }
        } catch {
            throw StoreError.query(Self.what(sql), PostgresSupport.reason(error))
        }
    }

    private static func what(_ sql: String) -> String {
        String(sql.split(whereSeparator: \.isWhitespace).joined(separator: " ").prefix(60))
    }

    /// Runs `body` in one transaction on one pooled connection: committed when it returns, rolled back when it throws.
    /// Runs `operation`, but when the task has a store wait (a request's), returns at it with a `StoreError`: the
    /// operation is cancelled (a wait for a pooled connection ends with it) and left to finish on its own.
    private func bounded<T: Sendable>(_ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let wait = StoreDeadline.current else { return try await operation() }
        do {
            return try await PostgresSupport.withDeadline(wait) { try await operation() }
        } catch let timeout as PostgresSupport.Timeout {
            throw StoreError.query(what, "\(timeout) (the database is unreachable or busy)")
        }
    }

    private func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withConnection { connection in
                try await self.run("BEGIN", on: connection)
                do {
                    let value = try await body(connection)
                    try await self.run("COMMIT", on: connection)
                    return value
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: self.logger).collect()
                    throw error
                }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.query("a transaction", PostgresSupport.reason(error))
        }
    }

    /// Decodes a row, as a store error when the columns are not what they should be.
    private func decodeRow<each Column: PostgresDecodable>(_ row: PostgresRow, as type: (repeat each Column).Type) throws -> (repeat each Column) {
        do {
            return try row.decode(type)
        } catch {
            throw StoreError.query("reading a row", PostgresSupport.reason(error))
        }
    }

    /// Decodes a one-column row.
    private func decodeRow<Column: PostgresDecodable>(_ row: PostgresRow, as type: Column.Type) throws -> Column {
        do {
            return try row.decode(type)
        } catch {
            throw StoreError.query("reading a row", PostgresSupport.reason(error))
        }
    }

    private func json(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }

    private func decode<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
        guard let text else { return nil }
        return try? decoder.decode(type, from: Data(text.utf8))
    }

    /// `($1, $2, $3), ($4, $5, $6)` for `rows` rows of `columns` values, numbered from `$first`; `casts` (one per
    /// column, e.g. `::bigint`) go on the first row, which fixes the types of a VALUES list outside an INSERT.
    private static func placeholders(rows: Int, columns: Int, casts: [String]? = nil) -> String {
        var text = ""
        text.reserveCapacity(rows * columns * 6)
        for row in 0..<rows {
            if row > 0 { text += ", " }
            text += "("
            for column in 0..<columns {
                if column > 0 { text += ", " }
                text += "$\(row * columns + column + 1)"
                if row == 0, let casts { text += casts[column] }
            }
            text += ")"
        }
        return text
    }

    /// At most this many bound values in one statement (the protocol allows 65,535).
    private static let maxBinds = 60_000

    // MARK: - Schema

    /// The number of migrations this version knows (the schema version of a database it migrated).
    public static var schemaVersion: Int { PostgresSchema.migrations.count }

    public func migrate() async throws {
        try await transaction { connection in
            // Two collectors starting on an empty database: the second waits here, then sees what the first applied.
            try await run("SELECT pg_advisory_xact_lock($1)", binds(PostgresSchema.Lock.migrate), on: connection)
            try await run("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at bigint NOT NULL)", on: connection)
            var applied = Set<Int>()
            for row in try await run("SELECT version FROM schema_migrations", on: connection) {
                applied.insert(Int(try decodeRow(row, as: Int32.self)))
            }
            let now = Int64(Date().timeIntervalSince1970 * 1_000)
            for (index, migration) in PostgresSchema.migrations.enumerated() where !applied.contains(index + 1) {
                for statement in PostgresSchema.statements(migration) { try await run(statement, on: connection) }
                try await run("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", binds(Int32(index + 1), now), on: connection)
                logger.info("store: applied migration", metadata: ["version": "\(index + 1)", "store": "\(summary)"])
            }
        }
    }

    public func sizeBytes() async throws -> Int64 {
        do {
            for try await size in try await client.query("SELECT pg_database_size(current_database())").decode(Int64.self) { return size }
            return 0
        } catch {
            throw StoreError.query("size", PostgresSupport.reason(error))
        }
    }

    public func ping() async throws {
        // The pool may wait for a connection it cannot make; readiness wants an answer now.
        do {
            try await PostgresSupport.withDeadline(StoreDeadline.timeout(within: Self.connectTimeout)) { [client] in
                _ = try await client.query("SELECT 1").collect()
            }
        } catch {
            throw StoreError.query("ping", PostgresSupport.reason(error))
        }
    }

    public func marks() async throws -> StoreMarks {
        let rows = try await run(
            """
            SELECT (SELECT COALESCE(MAX(version), 0) FROM topology_versions), (SELECT COALESCE(MAX(revision), 0) FROM agents),
            (SELECT COALESCE(MAX(id), 0) FROM alert_events WHERE event = 'acknowledged')
            """)
        guard let row = rows.first else { return StoreMarks(topologyVersion: 0, agentsRevision: 0, acknowledgement: 0) }
        let (version, revision, acknowledgement) = try decodeRow(row, as: (Int64, Int64, Int64).self)
        return StoreMarks(topologyVersion: Int(version), agentsRevision: revision, acknowledgement: acknowledgement)
    }

    // MARK: - Agents

    public func saveAgent(_ agent: AgentRecord) async throws {
        try await bounded("saving an agent") { try await self.saveAgentNow(agent) }
    }

    private func saveAgentNow(_ agent: AgentRecord) async throws {
        let registration = try json(agent.registration)
        let verification = try agent.verification.map { try json($0) }
        try await transaction { connection in
            // Revisions are drawn under the lock, so a collector that saw revision N has seen every agent saved before.
            try await run("SELECT pg_advisory_xact_lock($1)", binds(PostgresSchema.Lock.agents), on: connection)
            try await run(
                """
                INSERT INTO agents (agent_id, token_hash, registration, registered_at, last_seen_at, last_sequence, verification, revision)
                VALUES ($1, $2, $3, $4, $5, $6, $7, nextval('agents_revision'))
                ON CONFLICT (agent_id) DO UPDATE SET token_hash = excluded.token_hash, registration = excluded.registration,
                last_seen_at = excluded.last_seen_at, verification = excluded.verification, revision = excluded.revision
                """,
                binds(agent.agentId, agent.tokenHash, registration, agent.registeredAtMs, agent.lastSeenAtMs, agent.lastSequence, verification),
                on: connection)
        }
    }

    private static let agentColumns = "agent_id, token_hash, registration, registered_at, last_seen_at, last_sequence, verification"

    public func agent(id: String) async throws -> AgentRecord? {
        try await run("SELECT \(Self.agentColumns) FROM agents WHERE agent_id = $1", binds(id)).compactMap(agentRecord).first
    }

    public func agents() async throws -> [AgentRecord] {
        try await run("SELECT \(Self.agentColumns) FROM agents ORDER BY agent_id").compactMap(agentRecord)
    }

    private func agentRecord(_ row: PostgresRow) throws -> AgentRecord? {
        let (id, tokenHash, registrationText, registeredAt, lastSeenAt, lastSequence, verification) = try decodeRow(
            row, as: (String, String, String, Int64, Int64, Int64, String?).self)
        guard let registration = decode(Registration.self, registrationText) else { return nil }
        return AgentRecord(
            agentId: id, tokenHash: tokenHash, registration: registration, registeredAtMs: registeredAt, lastSeenAtMs: lastSeenAt,
            lastSequence: lastSequence, verification: decode(AgentVerification.self, verification))
    }

    public func recordRefusal(_ refusal: IdentityRefusal) async throws {
        try await run(
            """
            WITH pruned AS (DELETE FROM identity_refusals WHERE at < $7)
            INSERT INTO identity_refusals (instance_id, agent_id, reason, source, detail, at) VALUES ($1, $2, $3, $4, $5, $6)
            """,
            binds(
                refusal.instanceId, refusal.agentId, refusal.reason, refusal.source, refusal.detail, refusal.atMs,
                refusal.atMs - IdentityRefusal.keptMs))
    }

    public func refusals(since: Int64) async throws -> [IdentityRefusal] {
        try await run(
            "SELECT instance_id, agent_id, reason, source, detail, at FROM identity_refusals WHERE at >= $1 ORDER BY id DESC LIMIT 1000", binds(since)
        ).map { row in
            let (instance, agent, reason, source, detail, at) = try decodeRow(row, as: (String, String?, String, String?, String, Int64).self)
            return IdentityRefusal(instanceId: instance, agentId: agent, reason: reason, source: source, detail: detail, atMs: at)
        }
    }

    // MARK: - Topology and plans

    public func saveTopology(document: String, format: String, author: String, comment: String?, at: Int64) async throws -> Int {
        try await bounded("saving a topology version") {
            try await self.saveTopologyNow(document: document, format: format, author: author, comment: comment, at: at)
        }
    }

    private func saveTopologyNow(document: String, format: String, author: String, comment: String?, at: Int64) async throws -> Int {
        try await transaction { connection in
            try await run("SELECT pg_advisory_xact_lock($1)", binds(PostgresSchema.Lock.topology), on: connection)
            let rows = try await run(
                "INSERT INTO topology_versions (document, format, author, comment, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING version",
                binds(document, format, author, comment, at), on: connection)
            guard let row = rows.first else { throw StoreError.query("saving a topology", "no version returned") }
            return Int(try decodeRow(row, as: Int64.self))
        }
    }

    public func latestTopology() async throws -> TopologyVersion? {
        try await run("SELECT version, document, format, author, comment, created_at FROM topology_versions ORDER BY version DESC LIMIT 1")
            .map { try topologyVersion($0) }.first
    }

    public func topology(version: Int) async throws -> TopologyVersion? {
        try await run(
            "SELECT version, document, format, author, comment, created_at FROM topology_versions WHERE version = $1", binds(Int64(version))
        ).map { try topologyVersion($0) }.first
    }

    public func topologyVersions() async throws -> [TopologyVersion] {
        try await run("SELECT version, '' AS document, format, author, comment, created_at FROM topology_versions ORDER BY version DESC").map {
            try topologyVersion($0)
        }
    }

    private func topologyVersion(_ row: PostgresRow) throws -> TopologyVersion {
        let (version, document, format, author, comment, createdAt) = try decodeRow(row, as: (Int64, String, String, String, String?, Int64).self)
        return TopologyVersion(version: Int(version), document: document, format: format, author: author, comment: comment, createdAtMs: createdAt)
    }

    public func savePlan(agentId: String, etag: String, body: String, at: Int64) async throws {
        try await run(
            """
            INSERT INTO plans (agent_id, etag, body, created_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (agent_id) DO UPDATE SET etag = excluded.etag, body = excluded.body, created_at = excluded.created_at
            """, binds(agentId, etag, body, at))
    }

    public func plan(agentId: String) async throws -> (etag: String, body: String)? {
        guard let row = try await run("SELECT etag, body FROM plans WHERE agent_id = $1", binds(agentId)).first else { return nil }
        let (etag, body) = try decodeRow(row, as: (String, String).self)
        return (etag, body)
    }

    // MARK: - Reports and results

    private struct ReportKey: Hashable {
        var agent: String
        var sequence: Int64
    }

    /// A report waiting for the next group commit.
    private struct PendingIngest {
        var report: Report
        var body: String
        var receivedAt: Int64
        var continuation: CheckedContinuation<IngestOutcome, any Error>
        /// The request's deadline: past it the report is not written, and the request has its 503.
        var deadline: ContinuousClock.Instant?
    }
    private var pendingIngests: [PendingIngest] = []
    private var flushingIngests = false
    private static let maxReportsPerCommit = 500

    /// Group commit, as in SQLite: reports that arrive while a transaction runs wait and go together into the next
    /// one; each caller returns once its report is committed. A batch that fails is retried report by report, so only
    /// a bad report gets the error.
    public func ingest(_ report: Report, body: String?, receivedAt: Int64) async throws -> IngestOutcome {
        try await bounded("storing a report") { try await self.enqueueIngest(report, body: body, receivedAt: receivedAt) }
    }

    private func enqueueIngest(_ report: Report, body: String?, receivedAt: Int64) async throws -> IngestOutcome {
        let text = try body ?? json(report)
        return try await withCheckedThrowingContinuation { continuation in
            pendingIngests.append(
                PendingIngest(report: report, body: text, receivedAt: receivedAt, continuation: continuation, deadline: StoreDeadline.deadline))
            if !flushingIngests {
                flushingIngests = true
                Task { await self.flushIngests() }
            }
        }
    }

    private func flushIngests() async {
        while !pendingIngests.isEmpty {
            // Reports whose requests have given up are not written: their agents keep them and send them again.
            let now = ContinuousClock.now
            pendingIngests.removeAll { item in
                guard let deadline = item.deadline, deadline <= now else { return false }
                item.continuation.resume(
                    throwing: StoreError.query("storing a report", "no connection to the database within the request's deadline"))
                return true
            }
            guard !pendingIngests.isEmpty else { break }
            let count = min(pendingIngests.count, Self.maxReportsPerCommit)
            let batch = Array(pendingIngests.prefix(count))
            pendingIngests.removeFirst(count)
            // The batch's commit waits no longer than its most patient request.
            let deadlines = batch.map(\.deadline)
            let deadline = deadlines.contains(nil) ? nil : deadlines.compactMap { $0 }.max()
            do {
                let outcomes = try await StoreDeadline.$current.withValue(deadline.map { $0 - .now }) {
                    try await transaction { try await self.ingestBatch(batch, on: $0) }
                }
                for (item, outcome) in zip(batch, outcomes) { item.continuation.resume(returning: outcome) }
            } catch let error as StoreError where batch.count > 1 && !error.isUnavailable {
                for item in batch {
                    do {
                        let outcome = try await StoreDeadline.$current.withValue(item.deadline.map { $0 - .now }) {
                            try await transaction { try await self.ingestBatch([item], on: $0) }
                        }
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

    private func ingestBatch(_ batch: [PendingIngest], on connection: PostgresConnection) async throws -> [IngestOutcome] {
        var outcomes = [IngestOutcome](repeating: .duplicate, count: batch.count)
        // The agents first, locked in id order: two collectors ingesting for one agent take turns (so a report sent
        // to both is stored once without waiting on each other's unique-index entries), and a roll-up, which locks
        // them in the same order, cannot deadlock with an ingest. The floors are read under the same lock: another
        // collector's roll-up may have raised them.
        let agentIds = Array(Set(batch.map(\.report.agentId))).sorted()
        var floors: [String: Int64] = [:]
        for row in try await run(
            "SELECT agent_id, sequence_floor FROM agents WHERE agent_id = ANY($1) ORDER BY agent_id FOR UPDATE", binds(agentIds), on: connection)
        {
            let (agent, floor) = try decodeRow(row, as: (String, Int64).self)
            floors[agent] = floor
        }
        var seen = Set<ReportKey>()
        var candidates: [Int] = []
        for (index, item) in batch.enumerated() where item.report.sequence > floors[item.report.agentId] ?? 0 {
            if seen.insert(ReportKey(agent: item.report.agentId, sequence: item.report.sequence)).inserted { candidates.append(index) }
        }
        guard !candidates.isEmpty else { return outcomes }

        // Reports: the rows stored already are left out before they are inserted (not only by ON CONFLICT), so a
        // replay does not draw a feed id that would never commit and that the leader would look for as a gap.
        var stored = Set<ReportKey>()
        let reportColumns = 7
        for chunk in stride(from: 0, to: candidates.count, by: Self.maxBinds / reportColumns) {
            let slice = candidates[chunk..<min(chunk + Self.maxBinds / reportColumns, candidates.count)]
            var values = PostgresBindings(capacity: slice.count * reportColumns)
            for index in slice {
                let item = batch[index]
                values.append(item.report.agentId)
                values.append(item.report.sequence)
                values.append(item.receivedAt)
                values.append(Int64(item.report.results.count))
                values.append(Int64(item.report.dropped.batches))
                values.append(Int64(item.report.dropped.results))
                values.append(item.body)
            }
            let casts = ["::text", "::bigint", "::bigint", "::bigint", "::bigint", "::bigint", "::text"]
            let rows = try await run(
                """
                INSERT INTO reports (agent_id, sequence, received_at, result_count, dropped_batches, dropped_results, body)
                SELECT v.* FROM (VALUES \(Self.placeholders(rows: slice.count, columns: reportColumns, casts: casts)))
                AS v (agent_id, sequence, received_at, result_count, dropped_batches, dropped_results, body)
                WHERE NOT EXISTS (SELECT 1 FROM reports p WHERE p.agent_id = v.agent_id AND p.sequence = v.sequence)
                ON CONFLICT (agent_id, sequence) DO NOTHING RETURNING agent_id, sequence
                """, values, on: connection)
            for row in rows {
                let (agent, sequence) = try decodeRow(row, as: (String, Int64).self)
                stored.insert(ReportKey(agent: agent, sequence: sequence))
            }
        }

        // Results of the reports stored, many rows per statement; the agents' last-seen times.
        let resultColumns = 9
        let rowsPerStatement = Self.maxBinds / resultColumns
        var statements: [(rows: Int, binds: PostgresBindings)] = []
        var lastSeen: [String: (at: Int64, sequence: Int64)] = [:]
        for index in candidates {
            let report = batch[index].report
            guard stored.contains(ReportKey(agent: report.agentId, sequence: report.sequence)) else { continue }
            outcomes[index] = .stored
            let previous = lastSeen[report.agentId] ?? (0, 0)
            lastSeen[report.agentId] = (max(previous.at, batch[index].receivedAt), max(previous.sequence, report.sequence))
            for (position, result) in report.results.enumerated() {
                if statements.isEmpty || statements[statements.count - 1].rows == rowsPerStatement {
                    statements.append((0, PostgresBindings(capacity: min(rowsPerStatement, 1_024) * resultColumns)))
                }
                let rtt = result.burst?.rttAvgMs ?? result.timings.connectMs ?? result.timings.totalMs
                statements[statements.count - 1].rows += 1
                statements[statements.count - 1].binds.append(report.agentId)
                statements[statements.count - 1].binds.append(report.sequence)
                statements[statements.count - 1].binds.append(Int64(position))
                statements[statements.count - 1].binds.append(result.probeId)
                statements[statements.count - 1].binds.append(result.startedAtMs)
                statements[statements.count - 1].binds.append(result.outcome.rawValue)
                statements[statements.count - 1].binds.append(rtt)
                statements[statements.count - 1].binds.append(Int64(result.burst?.sent ?? 1))
                statements[statements.count - 1].binds.append(Int64(result.burst?.received ?? (result.outcome == .ok ? 1 : 0)))
            }
        }
        for statement in statements {
            try await run(
                "INSERT INTO results (agent_id, sequence, position, probe_id, started_at, outcome, rtt_ms, sent, received) VALUES "
                    + Self.placeholders(rows: statement.rows, columns: resultColumns), statement.binds, on: connection)
        }
        let seen3 = lastSeen.sorted { $0.key < $1.key }
        for chunk in stride(from: 0, to: seen3.count, by: Self.maxBinds / 3) {
            let slice = seen3[chunk..<min(chunk + Self.maxBinds / 3, seen3.count)]
            var values = PostgresBindings(capacity: slice.count * 3)
            for (agent, last) in slice {
                values.append(agent)
                values.append(last.at)
                values.append(last.sequence)
            }
            try await run(
                """
                UPDATE agents SET last_seen_at = GREATEST(agents.last_seen_at, v.seen), last_sequence = GREATEST(agents.last_sequence, v.sequence)
                FROM (VALUES \(Self.placeholders(rows: slice.count, columns: 3, casts: ["::text", "::bigint", "::bigint"]))) AS v (agent_id, seen, sequence)
                WHERE agents.agent_id = v.agent_id
                """, values, on: connection)
        }
        return outcomes
    }

    public func results(agentId: String?, since: Int64, limit: Int) async throws -> [StoredResult] {
        // A result is a position in its report's stored body; each body is decoded once.
        let select = """
            SELECT r.agent_id, r.sequence, r.position, p.body FROM results r
            JOIN reports p ON p.agent_id = r.agent_id AND p.sequence = r.sequence
            """
        let rows: [PostgresRow]
        if let agentId {
            rows = try await run(
                select + " WHERE r.agent_id = $1 AND r.started_at >= $2 ORDER BY r.started_at, r.id LIMIT $3", binds(agentId, since, Int64(limit)))
        } else {
            rows = try await run(select + " WHERE r.started_at >= $1 ORDER BY r.started_at, r.id LIMIT $2", binds(since, Int64(limit)))
        }
        var reports: [ReportKey: Report] = [:]
        var stored: [StoredResult] = []
        stored.reserveCapacity(rows.count)
        for row in rows {
            let (agent, sequence, position, body) = try decodeRow(row, as: (String, Int64, Int64, String).self)
            let key = ReportKey(agent: agent, sequence: sequence)
            if reports[key] == nil { reports[key] = decode(Report.self, body) }
            guard let report = reports[key], position >= 0, position < report.results.count else { continue }
            stored.append(StoredResult(agentId: agent, sequence: sequence, result: report.results[Int(position)]))
        }
        return stored
    }

    public func rollUp(before: Int64) async throws -> Int {
        try await transaction { connection in
            // One roll-up at a time across collectors: two would both fold the same results in.
            try await run("SELECT pg_advisory_xact_lock($1)", binds(PostgresSchema.Lock.rollUp), on: connection)
            try await pruneReports(before: before, on: connection)
            // Taken and deleted in one statement: a result committed meanwhile is either rolled up or left alone.
            let rows = try await run(
                "DELETE FROM results WHERE started_at < $1 RETURNING agent_id, probe_id, started_at, rtt_ms, sent, received", binds(before),
                on: connection)
            guard !rows.isEmpty else { return 0 }
            struct Key: Hashable, Comparable {
                var agent: String
                var probe: String
                var minute: Int64
                static func < (lhs: Key, rhs: Key) -> Bool { (lhs.agent, lhs.probe, lhs.minute) < (rhs.agent, rhs.probe, rhs.minute) }
            }
            var groups: [Key: (sent: Int64, received: Int64, rtts: [Double])] = [:]
            for row in rows {
                let (agent, probe, startedAt, rtt, sent, received) = try decodeRow(row, as: (String, String, Int64, Double?, Int64, Int64).self)
                let key = Key(agent: agent, probe: probe, minute: startedAt / 60_000 * 60_000)
                var entry = groups[key] ?? (0, 0, [])
                entry.sent += sent
                entry.received += received
                if let rtt { entry.rtts.append(rtt) }
                groups[key] = entry
            }
            let entries = groups.sorted { $0.key < $1.key }
            let columns = 8
            for chunk in stride(from: 0, to: entries.count, by: Self.maxBinds / columns) {
                let slice = entries[chunk..<min(chunk + Self.maxBinds / columns, entries.count)]
                var values = PostgresBindings(capacity: slice.count * columns)
                for (key, entry) in slice {
                    let sorted = entry.rtts.sorted()
                    func percentile(_ p: Double) -> Double? {
                        sorted.isEmpty ? nil : sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
                    }
                    values.append(key.agent)
                    values.append(key.probe)
                    values.append(key.minute)
                    values.append(entry.sent)
                    values.append(entry.received)
                    values.append(percentile(0.5))
                    values.append(percentile(0.95))
                    values.append(sorted.last)
                }
                try await run(
                    """
                    INSERT INTO rollups (agent_id, probe_id, minute, sent, received, rtt_p50, rtt_p95, rtt_max)
                    VALUES \(Self.placeholders(rows: slice.count, columns: columns))
                    ON CONFLICT (agent_id, probe_id, minute) DO UPDATE SET sent = rollups.sent + excluded.sent,
                    received = rollups.received + excluded.received, rtt_p50 = excluded.rtt_p50, rtt_p95 = excluded.rtt_p95,
                    rtt_max = GREATEST(rollups.rtt_max, excluded.rtt_max)
                    """, values, on: connection)
            }
            return rows.count
        }
    }

    /// Report rows exist to make ingest idempotent; those received before `before` are deleted, and each agent's floor
    /// rises to the highest sequence deleted: a replay at or below it is a duplicate without its row. The rows are
    /// deleted and the floors raised in one statement, after locking the agents in id order (as ingest does).
    private func pruneReports(before: Int64, on connection: PostgresConnection) async throws {
        try await run("SELECT agent_id FROM agents ORDER BY agent_id FOR UPDATE", on: connection)
        try await run(
            """
            WITH gone AS (DELETE FROM reports WHERE received_at < $1 RETURNING agent_id, sequence)
            UPDATE agents SET sequence_floor = GREATEST(agents.sequence_floor, top.sequence)
            FROM (SELECT agent_id, MAX(sequence) AS sequence FROM gone GROUP BY agent_id) AS top
            WHERE agents.agent_id = top.agent_id
            """, binds(before), on: connection)
    }

    public func rollups(agentId: String, probeId: String) async throws -> [Rollup] {
        try await run(
            "SELECT minute, sent, received, rtt_p50, rtt_p95, rtt_max FROM rollups WHERE agent_id = $1 AND probe_id = $2 ORDER BY minute",
            binds(agentId, probeId)
        ).map { row in
            let (minute, sent, received, p50, p95, rttMax) = try decodeRow(row, as: (Int64, Int64, Int64, Double?, Double?, Double?).self)
            return Rollup(
                agentId: agentId, probeId: probeId, minuteMs: minute, sent: Int(sent), received: Int(received), rttP50Ms: p50, rttP95Ms: p95,
                rttMaxMs: rttMax)
        }
    }

    // MARK: - The feed and pair states

    public func feed(after cursor: FeedCursor, limit: Int) async throws -> [FeedEntry] {
        let rows = try await run(
            """
            SELECT feed_id, agent_id, sequence, received_at, body FROM reports WHERE feed_id > $1 OR feed_id = ANY($2)
            ORDER BY feed_id LIMIT $3
            """, binds(cursor.through, cursor.gaps.keys.sorted(), Int64(limit)))
        var entries: [FeedEntry] = []
        entries.reserveCapacity(rows.count)
        for row in rows {
            let (id, agent, sequence, receivedAt, body) = try decodeRow(row, as: (Int64, String, Int64, Int64, String).self)
            guard let report = decode(Report.self, body) else {
                logger.warning("store: a stored report cannot be decoded; the feed skips it", metadata: ["feed_id": "\(id)", "agent": "\(agent)"])
                continue
            }
            entries.append(FeedEntry(id: id, agentId: agent, sequence: sequence, receivedAtMs: receivedAt, report: report))
        }
        return entries
    }

    public func savePairs(_ changed: [String: StoredPair], removed: [String], cursor: FeedCursor) async throws {
        var encoded: [(pair: String, state: String, evidence: String?)] = []
        encoded.reserveCapacity(changed.count)
        for (pair, stored) in changed.sorted(by: { $0.key < $1.key }) {
            encoded.append((pair, try json(stored.state), try stored.evidence.map { try json($0) }))
        }
        let cursorText = try json(cursor)
        try await transaction { connection in
            for chunk in stride(from: 0, to: encoded.count, by: Self.maxBinds / 3) {
                let slice = encoded[chunk..<min(chunk + Self.maxBinds / 3, encoded.count)]
                var values = PostgresBindings(capacity: slice.count * 3)
                for item in slice {
                    values.append(item.pair)
                    values.append(item.state)
                    values.append(item.evidence)
                }
                try await run(
                    """
                    INSERT INTO pair_states (pair, state, evidence) VALUES \(Self.placeholders(rows: slice.count, columns: 3))
                    ON CONFLICT (pair) DO UPDATE SET state = excluded.state, evidence = excluded.evidence
                    """, values, on: connection)
            }
            if !removed.isEmpty { try await run("DELETE FROM pair_states WHERE pair = ANY($1)", binds(removed), on: connection) }
            try await run(
                "INSERT INTO feed_cursor (id, cursor) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor", binds(cursorText),
                on: connection)
        }
    }

    public func loadPairs() async throws -> (pairs: [String: StoredPair], cursor: FeedCursor) {
        // One transaction: the states and the cursor saved with them, not a newer cursor with older states.
        let (pairRows, cursorRows) = try await transaction { connection in
            try await run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", on: connection)
            return (
                try await run("SELECT pair, state, evidence FROM pair_states", on: connection),
                try await run("SELECT cursor FROM feed_cursor WHERE id = 1", on: connection)
            )
        }
        var pairs: [String: StoredPair] = [:]
        for row in pairRows {
            let (pair, stateText, evidenceText) = try decodeRow(row, as: (String, String, String?).self)
            guard let state = decode(PairState.self, stateText) else { continue }
            pairs[pair] = StoredPair(state: state, evidence: decode(PairEvidence.self, evidenceText))
        }
        var cursor = FeedCursor()
        if let row = cursorRows.first, let stored = decode(FeedCursor.self, try decodeRow(row, as: String.self)) { cursor = stored }
        return (pairs, cursor)
    }

    // MARK: - Alerts

    public func saveAlert(_ alert: Alert, event: String, at: Int64, deliveries: [OutboxEntry]) async throws {
        try await bounded("saving an alert") { try await self.saveAlertNow(alert, event: event, at: at, deliveries: deliveries) }
    }

    private func saveAlertNow(_ alert: Alert, event: String, at: Int64, deliveries: [OutboxEntry]) async throws {
        let body = try json(alert)
        try await transaction { connection in
            // Acknowledgement ids are drawn under a lock: a collector that read id N has seen every earlier one.
            if event == "acknowledged" {
                try await run("SELECT pg_advisory_xact_lock($1)", binds(PostgresSchema.Lock.acknowledgement), on: connection)
            }
            try await run(
                """
                INSERT INTO alerts (id, fingerprint, status, kind, severity, component, starts_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (id) DO UPDATE SET status = excluded.status, severity = excluded.severity, body = excluded.body
                """,
                binds(
                    alert.id, alert.fingerprint, alert.status.rawValue, alert.kind.rawValue, alert.severity.rawValue, alert.component,
                    alert.startsAtMs, body), on: connection)
            // An acknowledgement's detail is who acknowledged.
            try await run(
                "INSERT INTO alert_events (alert_id, event, at, detail) VALUES ($1, $2, $3, $4)",
                binds(alert.id, event, at, event == "acknowledged" ? alert.acknowledgedBy ?? "" : nil), on: connection)
            try await insertOutbox(deliveries, on: connection)
        }
    }

    public func alerts(_ filter: AlertFilter) async throws -> [Alert] {
        var conditions: [String] = []
        var values = PostgresBindings()
        func condition(_ column: String, _ value: String?) {
            guard let value else { return }
            values.append(value)
            conditions.append("\(column) = $\(values.count)")
        }
        condition("status", filter.status?.rawValue)
        condition("kind", filter.kind?.rawValue)
        condition("severity", filter.severity?.rawValue)
        condition("component", filter.component)
        values.append(Int64(filter.limit))
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        return try await run("SELECT body FROM alerts \(whereClause) ORDER BY starts_at DESC, id LIMIT $\(values.count)", values).compactMap {
            decode(Alert.self, try decodeRow($0, as: String.self))
        }
    }

    public func alert(id: String) async throws -> Alert? {
        try await run("SELECT body FROM alerts WHERE id = $1", binds(id)).compactMap { decode(Alert.self, try decodeRow($0, as: String.self)) }.first
    }

    public func alertEvents(id: String) async throws -> [(event: String, atMs: Int64)] {
        try await run("SELECT event, at FROM alert_events WHERE alert_id = $1 ORDER BY id", binds(id)).map {
            let (event, at) = try decodeRow($0, as: (String, Int64).self)
            return (event, at)
        }
    }

    public func acknowledgements(after: Int64) async throws -> [AcknowledgementEvent] {
        try await run(
            "SELECT id, alert_id, at, detail FROM alert_events WHERE event = 'acknowledged' AND id > $1 ORDER BY id LIMIT 10000", binds(after)
        ).map {
            let (id, alert, at, by) = try decodeRow($0, as: (Int64, String, Int64, String?).self)
            return AcknowledgementEvent(eventId: id, alertId: alert, by: by ?? "", atMs: at)
        }
    }

    // MARK: - Outbox

    public func enqueue(_ entries: [OutboxEntry]) async throws {
        guard !entries.isEmpty else { return }
        try await transaction { try await insertOutbox(entries, on: $0) }
    }

    private func insertOutbox(_ entries: [OutboxEntry], on connection: PostgresConnection) async throws {
        let columns = 6
        for chunk in stride(from: 0, to: entries.count, by: Self.maxBinds / columns) {
            let slice = entries[chunk..<min(chunk + Self.maxBinds / columns, entries.count)]
            var values = PostgresBindings(capacity: slice.count * columns)
            for entry in slice {
                values.append(entry.receiver)
                values.append(entry.alertId)
                values.append(entry.event)
                values.append(entry.idempotencyKey)
                values.append(entry.createdAtMs)
                values.append(entry.nextAttemptAtMs)
            }
            try await run(
                """
                INSERT INTO outbox (receiver, alert_id, event, idempotency_key, created_at, next_attempt_at)
                VALUES \(Self.placeholders(rows: slice.count, columns: columns)) ON CONFLICT (idempotency_key) DO NOTHING
                """, values, on: connection)
        }
    }

    private static let outboxColumns =
        "id, receiver, alert_id, event, idempotency_key, created_at, next_attempt_at, attempts, delivered_at, gave_up_at, last_error"

    public func dueDeliveries(now: Int64, limit: Int) async throws -> [OutboxEntry] {
        try await run(
            """
            SELECT \(Self.outboxColumns) FROM outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= $1
            ORDER BY next_attempt_at, id LIMIT $2
            """, binds(now, Int64(limit))
        ).map { try outboxEntry($0) }
    }

    public func claimDeliveries(now: Int64, limit: Int, owner: String, leaseMs: Int64) async throws -> [OutboxEntry] {
        // SKIP LOCKED: a row another collector is claiming right now is passed over, not waited for; a row it claimed
        // and committed no longer matches (its claim has not lapsed).
        try await run(
            """
            WITH picked AS MATERIALIZED (
                SELECT id FROM outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= $1
                AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
            UPDATE outbox SET claimed_by = $3, claimed_until = $4 FROM picked WHERE outbox.id = picked.id
            RETURNING \(Self.outboxColumns.split(separator: ",").map { "outbox." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))
            """, binds(now, Int64(limit), owner, now + leaseMs)
        ).map { try outboxEntry($0) }.sorted { ($0.nextAttemptAtMs, $0.id) < ($1.nextAttemptAtMs, $1.id) }
    }

    public func recordAttempt(id: Int64, at: Int64, status: Int, error: String?, delivered: Bool, nextAttemptAt: Int64?, gaveUp: Bool) async throws {
        try await transaction { connection in
            try await run(
                "INSERT INTO delivery_attempts (outbox_id, at, status, error) VALUES ($1, $2, $3, $4)", binds(id, at, Int64(status), error),
                on: connection)
            try await run(
                """
                UPDATE outbox SET attempts = attempts + 1, last_error = $1, delivered_at = $2, gave_up_at = $3,
                next_attempt_at = COALESCE($4, next_attempt_at), claimed_by = NULL, claimed_until = NULL WHERE id = $5
                """, binds(error, delivered ? at : nil, gaveUp ? at : nil, nextAttemptAt, id), on: connection)
        }
    }

    public func deliveries(alertId: String?, limit: Int) async throws -> [OutboxEntry] {
        if let alertId {
            return try await run(
                "SELECT \(Self.outboxColumns) FROM outbox WHERE alert_id = $1 ORDER BY id DESC LIMIT $2", binds(alertId, Int64(limit))
            ).map { try outboxEntry($0) }
        }
        return try await run("SELECT \(Self.outboxColumns) FROM outbox ORDER BY id DESC LIMIT $1", binds(Int64(limit))).map { try outboxEntry($0) }
    }

    private func outboxEntry(_ row: PostgresRow) throws -> OutboxEntry {
        let (id, receiver, alertId, event, key, createdAt, nextAttemptAt, attempts, deliveredAt, gaveUpAt, lastError) = try decodeRow(
            row, as: (Int64, String, String, String, String, Int64, Int64, Int64, Int64?, Int64?, String?).self)
        return OutboxEntry(
            id: id, receiver: receiver, alertId: alertId, event: event, idempotencyKey: key, createdAtMs: createdAt, nextAttemptAtMs: nextAttemptAt,
            attempts: Int(attempts), deliveredAtMs: deliveredAt, gaveUpAtMs: gaveUpAt, lastError: lastError)
    }

    // MARK: - Leadership

    /// A claim to lead on a connection of its own (see `PostgresLeadership`).
    public nonisolated func leadership(collectorId: String) -> any Leadership {
        PostgresLeadership(collectorId: collectorId, configuration: connectionConfiguration, logger: logger)
    }

    public func recordLeader(_ record: LeaderRecord) async throws {
        try await run(
            """
            INSERT INTO leader (id, collector_id, since, confirmed_at) VALUES (1, $1, $2, $3)
            ON CONFLICT (id) DO UPDATE SET collector_id = excluded.collector_id, since = excluded.since, confirmed_at = excluded.confirmed_at
            """, binds(record.collectorId, record.sinceMs, record.confirmedAtMs))
    }

    public func leader() async throws -> LeaderRecord? {
        guard let row = try await run("SELECT collector_id, since, confirmed_at FROM leader WHERE id = 1").first else { return nil }
        let (collector, since, confirmed) = try decodeRow(row, as: (String, Int64, Int64).self)
        return LeaderRecord(collectorId: collector, sinceMs: since, confirmedAtMs: confirmed)
    }
}

/// Bound values for a statement, in order; nil binds NULL.
func binds<each Value: PostgresEncodable & Sendable>(_ value: repeat (each Value)?) -> PostgresBindings {
    var bindings = PostgresBindings()
    func add<V: PostgresEncodable>(_ value: V?) {
        if let value { try? bindings.append(value) } else { bindings.appendNull() }
    }
    repeat add(each value)
    return bindings
}
