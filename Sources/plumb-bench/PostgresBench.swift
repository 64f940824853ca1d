// plumb-bench collector --db postgres://USER@HOST:PORT/DB: the collector's ingest on PostgreSQL, in one run and on one
// server, side by side:
//
// - one collector (a Hummingbird app and its own PostgresStore) taking reports over HTTP;
// - two collectors (two apps on two ports, each with its own PostgresStore and so its own pool, as two processes
//   would have), the load generator's workers spread over both;
// - the baseline: the same rows inserted straight into PostgreSQL (the store's schema, one transaction per report
//   holding its report row and one multi-row INSERT of its results), from as many connections as the load
//   generator has workers: no HTTP, no JSON, no authentication, no deduplication, no group commit;
//
// then the database's size per agent: a known load (agents × their planned probes every 10 s, a report every 5 s)
// for a simulated span, the tables' sizes, the results rolled up and the roll-ups' size, extrapolated per agent and
// day.
//
// Each part runs in a database of its own, created on the server (the URL's user needs CREATEDB) and dropped after.
// Per part the benchmark also reads the CPU the machine, this process and the server spent (from /proc, when the
// server runs on this machine), and the server's commits and WAL, so the figures say what bounds them.
import Foundation
import Logging
import NIOCore
import PlumbCollector
import PlumbCore
import PlumbModelIO
import PlumbProbes
import PlumbStore
import PlumbWire
import PostgresNIO
import ServiceLifecycle
import Synchronization

enum PostgresBench {
    /// `plumb-bench collector` flags for PostgreSQL.
    struct Options {
        /// The server (`--db`); nil: the SQLite figures.
        var url: String?
        /// Runs each collector's evaluation loop too (`--evaluate`): sync every second, the leader reads the feed and
        /// evaluates every 2 s.
        var evaluate = false
        /// Connections of the raw insert (`--raw-connections`); 0: as many as the load generator's workers.
        var rawConnections = 0
        /// Agents of the size measurement (`--size-agents`).
        var sizeAgents = 200
        /// Simulated minutes of the size measurement (`--size-minutes`); 0 skips it.
        var sizeMinutes = 10.0
        /// Rounds of one and two collectors (`--rounds`); the ratios are of the medians.
        var rounds = 1
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func run(_ load: IngestLoad, options: Options) async throws {
        guard let url = options.url else { return }
        let logger = CollectorBench.quietLogger()
        let server = try await BenchServer(url: url, logger: logger)
        let directory = NSTemporaryDirectory() + "plumb-collector-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        do {
            try await compare(load, options: options, server: server, directory: directory, logger: logger)
        } catch {
            await server.dropAll()
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        await server.dropAll()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func compare(_ load: IngestLoad, options: Options, server: BenchServer, directory: String, logger: Logger) async throws {
        print(
            "  PostgreSQL: \(server.version); fsync \(server.settings["fsync"] ?? "?"), synchronous_commit \(server.settings["synchronous_commit"] ?? "?"), full_page_writes \(server.settings["full_page_writes"] ?? "?")"
                + (server.postmaster == nil ? " (not on this machine: no server CPU figures)" : " (on this machine)"))
        let modelPath = directory + "/model.json"
        try ModelWriter.json(load.topology).write(toFile: modelPath, atomically: true, encoding: .utf8)
        let templates = try CollectorBench.reportTemplates(load)

        // Rounds alternate one and two collectors, so a load that comes and goes on a shared machine falls on both.
        var ones: [Double] = []
        var twos: [Double] = []
        for round in 1...max(1, options.rounds) {
            let label = options.rounds > 1 ? ", round \(round)" : ""
            let one = try await collectors(
                1, load: load, templates: templates.split, modelPath: modelPath, evaluate: options.evaluate, server: server)
            print(one.line("one collector" + label))
            ones.append(one.resultsPerSecond)
            let two = try await collectors(
                2, load: load, templates: templates.split, modelPath: modelPath, evaluate: options.evaluate, server: server)
            print(two.line("two collectors" + label))
            twos.append(two.resultsPerSecond)
        }
        let connections = options.rawConnections > 0 ? options.rawConnections : load.workers
        let raw = try await rawInsert(load, templates: templates.full, connections: connections, seconds: min(load.seconds, 5), server: server)
        print(raw.line("raw batched INSERT, \(connections) connections"))
        let (one, two) = (median(ones), median(twos))
        print(
            String(
                format: "  ratios%@: two collectors / one = %.2f (target >= 1.6: %@); one collector / raw insert = %.2f; two / raw = %.2f",
                ones.count > 1 ? " (medians of \(ones.count) rounds: one \(Int(one)), two \(Int(two)) results/s)" : "", two / max(1, one),
                two >= 1.6 * one ? "met" : "not met", one / max(1, raw.resultsPerSecond), two / max(1, raw.resultsPerSecond)))
        if options.sizeMinutes > 0 {
            try await storage(
                load, agents: min(options.sizeAgents, load.agents.count), minutes: options.sizeMinutes, modelPath: modelPath, server: server)
        }
    }

    // MARK: - Ingest over HTTP

    /// What one part measured.
    struct Figures {
        var results: Int
        var seconds: Double
        var resultsPerSecond: Double
        var detail: String
        var usage: Usage

        /// The figures on one line, then the CPU per result and the rate the machine's cores would allow at that cost.
        func line(_ name: String) -> String {
            let perResult = { (cores: Double) in cores / max(1, resultsPerSecond) * 1e6 }
            var cost = String(format: "CPU per result: machine %.0f us (this process %.0f", perResult(usage.machine), perResult(usage.process))
            if let server = usage.server { cost += String(format: ", the server %.0f", perResult(server)) }
            cost += String(
                format: "); all %d cores at that cost: %.0f results/s", ProcessInfo.processInfo.activeProcessorCount,
                Double(ProcessInfo.processInfo.activeProcessorCount) / max(1e-9, usage.machine / max(1, resultsPerSecond)))
            return String(format: "  %@: %d results in %.1f s = %.0f results/s", name, results, seconds, resultsPerSecond)
                + " (\(detail));\n    \(usage);\n    \(cost)"
        }
    }

    /// `count` collectors on a fresh database: the agents registered at the first (the others load them at start),
    /// then the load generator for `load.seconds` over all of them.
    static func collectors(
        _ count: Int, load: IngestLoad, templates: [String: (prefix: String, suffix: String)], modelPath: String, evaluate: Bool, server: BenchServer
    ) async throws -> Figures {
        let logger = server.logger
        let url = try await server.create("c\(count)")
        var stores: [PostgresStore] = []
        var tasks: [Task<Void, any Error>] = []
        func stop() async {
            for task in tasks { task.cancel() }
            for task in tasks { _ = await task.result }
            for store in stores { await store.close() }
            await server.drop(url)
        }
        do {
            let basePort = 19_000 + Int.random(in: 0..<900)
            var collectors: [(collector: Collector, configuration: CollectorConfiguration)] = []
            for index in 0..<count {
                // A pool as large as the load generator's workers: a pool never waits for a connection in this run.
                let store = try await PostgresStore.open(url: url, passwordFile: nil, logger: logger, maximumConnections: max(10, load.workers))
                stores.append(store)
                var configuration = CollectorBench.benchConfiguration(modelPath: modelPath, port: basePort + index * 2)
                configuration.database = url
                configuration.collectorId = "bench-\(index)"
                collectors.append((Collector(store: store, configuration: configuration, logger: logger), configuration))
            }
            let now = wallClockMilliseconds()
            try await collectors[0].collector.start(now: now)
            let (tokens, registerTime) = try await CollectorBench.measureAsync {
                try await CollectorBench.register(load.agents, at: collectors[0].collector, now: now)
            }
            for other in collectors.dropFirst() {
                try await other.collector.start(now: now)
                try await other.collector.replanIfNeeded(now: now, force: true)
            }
            for (collector, configuration) in collectors {
                let services: [any Service] =
                    evaluate
                    ? [EvaluationService(collector: collector, interval: .seconds(configuration.evaluationIntervalSeconds), logger: logger)] : []
                tasks.append(CollectorBench.serve(collector, configuration: configuration, logger: logger, services: services))
            }
            try await Task.sleep(for: .milliseconds(500))
            let work = IngestWork(
                agents: load.agents, templates: templates, tokens: tokens, bases: collectors.map { "http://127.0.0.1:\($0.configuration.port)" })
            let before = try await Snapshot(server: server, database: url)
            let run = await CollectorBench.drive(
                work, workers: load.workers, seconds: load.seconds, resultsPerReport: load.resultsPerReport, client: load.client)
            let after = try await Snapshot(server: server, database: url, settle: true)
            await stop()
            let usage = Usage(from: before, to: after)
            return Figures(
                results: run.reports * load.resultsPerReport, seconds: run.elapsed, resultsPerSecond: run.resultsPerSecond,
                detail: String(
                    format: "%d reports, p50 %.1f ms, p99 %.1f ms, %d %@ workers, %d failed; %.1f reports per commit; registered %d agents in %.1f s",
                    run.reports, run.p50, run.p99, load.workers, load.client.rawValue, run.failures, Double(run.reports) / max(1, usage.commits),
                    load.agents.count,
                    registerTime),
                usage: usage)
        } catch {
            await stop()
            throw error
        }
    }

    // MARK: - The raw insert

    /// The same rows inserted straight into the store's schema: per report one transaction, its report row and one
    /// multi-row INSERT of its results, from `connections` connections at once for `seconds`.
    static func rawInsert(_ load: IngestLoad, templates: [String: String], connections: Int, seconds: Double, server: BenchServer) async throws
        -> Figures
    {
        let url = try await server.create("raw")
        do {
            // The schema as the store makes it (its migrations), then plain connections.
            await (try await PostgresStore.open(url: url, passwordFile: nil, logger: server.logger)).close()
            let configuration = try connectionConfiguration(url)
            var reports: [(agent: String, body: String, results: [ProbeResult])] = []
            for agent in load.agents {
                let body = templates[agent]!
                reports.append((agent, body, try JSONDecoder().decode(Report.self, from: Data(body.utf8)).results))
            }
            let rows = reports
            var opened: [PostgresConnection] = []
            for index in 0..<connections {
                opened.append(try await PostgresConnection.connect(configuration: configuration, id: 2_000_000 + index, logger: server.logger))
            }
            let connectionsOpened = opened
            let before = try await Snapshot(server: server, database: url)
            let started = ContinuousClock.now
            let deadline = started + .milliseconds(Int(seconds * 1000))
            let logger = server.logger
            let inserted = try await withThrowingTaskGroup(of: Int.self) { group in
                for (index, connection) in connectionsOpened.enumerated() {
                    group.addTask {
                        var inserted = 0
                        var round = 0
                        while ContinuousClock.now < deadline {
                            let sequence = round * connections + index + 1
                            round += 1
                            let report = rows[sequence % rows.count]
                            var values = PostgresBindings(capacity: report.results.count * 9)
                            for (position, result) in report.results.enumerated() {
                                values.append(report.agent)
                                values.append(Int64(sequence))
                                values.append(Int64(position))
                                values.append(result.probeId)
                                values.append(result.startedAtMs)
                                values.append(result.outcome.rawValue)
                                values.append(result.timings.connectMs ?? result.timings.totalMs)
                                values.append(Int64(1))
                                values.append(Int64(result.outcome == .ok ? 1 : 0))
                            }
                            var reportValues = PostgresBindings(capacity: 7)
                            reportValues.append(report.agent)
                            reportValues.append(Int64(sequence))
                            reportValues.append(wallClockMilliseconds())
                            reportValues.append(Int64(report.results.count))
                            reportValues.append(Int64(0))
                            reportValues.append(Int64(0))
                            reportValues.append(report.body)
                            _ = try await connection.query("BEGIN", logger: logger)
                            _ = try await connection.query(
                                PostgresQuery(
                                    unsafeSQL:
                                        "INSERT INTO reports (agent_id, sequence, received_at, result_count, dropped_batches, dropped_results, body) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                                    binds: reportValues), logger: logger)
                            _ = try await connection.query(
                                PostgresQuery(
                                    unsafeSQL:
                                        "INSERT INTO results (agent_id, sequence, position, probe_id, started_at, outcome, rtt_ms, sent, received) VALUES "
                                        + placeholders(rows: report.results.count, columns: 9), binds: values), logger: logger)
                            _ = try await connection.query("COMMIT", logger: logger)
                            inserted += report.results.count
                        }
                        return inserted
                    }
                }
                var total = 0
                for try await part in group { total += part }
                return total
            }
            let elapsed = Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000
            let after = try await Snapshot(server: server, database: url, settle: true)
            for connection in opened { try? await connection.close() }
            await server.drop(url)
            let usage = Usage(from: before, to: after)
            return Figures(
                results: inserted, seconds: elapsed, resultsPerSecond: Double(inserted) / elapsed,
                detail: String(format: "%.0f commits/s", usage.commits / max(0.001, elapsed)), usage: usage)
        } catch {
            await server.drop(url)
            throw error
        }
    }

    /// `($1, $2, ...), (...)` for `rows` rows of `columns` values.
    static func placeholders(rows: Int, columns: Int) -> String {
        (0..<rows).map { row in "(" + (1...columns).map { "$\(row * columns + $0)" }.joined(separator: ", ") + ")" }.joined(separator: ", ")
    }

    /// A single connection's settings for `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DB[?sslmode=…]`, the password
    /// else from `PGPASSWORD`): `sslmode=disable` without TLS, any other with TLS when the server offers it, unverified
    /// (a benchmark's connection, not the store's).
    static func connectionConfiguration(_ url: String) throws -> PostgresConnection.Configuration {
        guard let components = URLComponents(string: url), let host = components.host, let user = components.user else {
            throw BenchError("cannot read \(url) as postgres://USER@HOST:PORT/DB")
        }
        let database = String(components.path.dropFirst())
        let password = ProcessInfo.processInfo.environment["PGPASSWORD"] ?? components.password
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        return PostgresConnection.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: password, database: database.isEmpty ? user : database,
            tls: mode == "disable" ? .disable : .prefer(try NIOSSLContext(configuration: tls)))
    }

    // MARK: - Size

    /// `agents` agents report their planned probes' results (every probe every 10 s, a report every 5 s) for `minutes`
    /// simulated minutes, straight into the store (`ingest`, as the API calls it); then the tables' sizes, the
    /// results rolled up, the roll-ups' size, and the figures per agent and day.
    static func storage(_ load: IngestLoad, agents count: Int, minutes: Double, modelPath: String, server: BenchServer) async throws {
        let url = try await server.create("size")
        var store: PostgresStore?
        func stop() async {
            await store?.close()
            await server.drop(url)
        }
        do {
            let opened = try await PostgresStore.open(url: url, passwordFile: nil, logger: server.logger)
            store = opened
            var configuration = CollectorBench.benchConfiguration(modelPath: modelPath, port: 7470)
            configuration.database = url
            let collector = Collector(store: opened, configuration: configuration, logger: server.logger)
            let end = wallClockMilliseconds()
            let start = end - Int64(minutes * 60_000)
            try await collector.start(now: start)
            let agents = Array(load.agents.prefix(count))
            _ = try await CollectorBench.register(agents, at: collector, now: start)
            let probes = agents.map { load.plans[$0] ?? [] }
            let steps = Int(minutes * 12)
            var random = SplitMix64(seed: 5)
            var resultCount = 0
            var bodyBytes = 0
            let (_, ingestTime) = try await CollectorBench.measureAsync {
                for step in 0..<steps {
                    // A report every 5 s holds the probes run in those 5 s: every probe runs every 10 s, half of them in
                    // each half of the interval.
                    let at = start + Int64(step) * 5_000
                    var batch: [(Report, String)] = []
                    for (index, agent) in agents.enumerated() {
                        let due = probes[index].enumerated().filter { $0.offset % 2 == step % 2 }.map(\.element)
                        let results = due.map { result(for: $0, at: at - 5_000 + Int64(random.below(5_000)), random: &random) }
                        let report = Report(agentId: agent, sequence: Int64(step + 1), createdAtMs: at, planId: "plan", results: results)
                        let body = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
                        resultCount += results.count
                        bodyBytes += body.utf8.count
                        batch.append((report, body))
                    }
                    let reports = batch
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (report, body) in reports {
                            group.addTask { _ = try await opened.ingest(report, body: body, receivedAt: at) }
                        }
                        try await group.waitForAll()
                    }
                }
            }
            let reportCount = steps * agents.count
            let probesPerAgent = Double(probes.map(\.count).reduce(0, +)) / Double(max(1, agents.count))
            print(
                String(
                    format:
                        "  size: %d agents x %.1f planned probes (mean) every 10 s, a report every 5 s, %.0f simulated minutes: %d reports, %d results (stored in %.1f s); report bodies %.0f bytes of JSON on average",
                    agents.count, probesPerAgent, minutes, reportCount, resultCount, ingestTime, Double(bodyBytes) / Double(max(1, reportCount))))
            let raw = try await tableSizes(server: server, database: url)
            print("    before the roll-up: " + raw.description)
            let rolled = try await opened.rollUp(before: end + 1)
            let rolledUp = try await tableSizes(server: server, database: url)
            print("    after rolling up \(rolled) results: " + rolledUp.description)
            await stop()
            store = nil

            // Per agent: the raw results and their reports are kept 1 h (retentionSeconds), so they hold one hour of
            // them at any time and write (and delete) 24 hours' worth a day; roll-ups (a row per probe and minute) stay.
            let resultsPerHour = probesPerAgent * 360
            let resultBytes = Double(raw.bytes["results"] ?? 0) / Double(max(1, raw.rows["results"] ?? 1))
            let reportBytes = Double(raw.bytes["reports"] ?? 0) / Double(max(1, raw.rows["reports"] ?? 1))
            let rollupBytes = Double(rolledUp.bytes["rollups"] ?? 0) / Double(max(1, rolledUp.rows["rollups"] ?? 1))
            let rawPerAgent = resultBytes * resultsPerHour + reportBytes * 720
            let rollupsPerAgentDay = rollupBytes * probesPerAgent * 1_440
            let mib = 1_048_576.0
            print(
                String(
                    format:
                        "    per row (table, indexes and TOAST): a result %.0f B, a report %.0f B, a roll-up %.0f B. Per agent (%.1f probes): raw results and reports kept 1 h = %.2f MiB at any time (%.1f MiB written and deleted per day); roll-ups %.2f MiB per day, kept until deleted (%.0f MiB per year). 10,000 agents: %.1f GiB raw, %.1f GiB of roll-ups per day",
                    resultBytes, reportBytes, rollupBytes, probesPerAgent, rawPerAgent / mib, rawPerAgent * 24 / mib, rollupsPerAgentDay / mib,
                    rollupsPerAgentDay * 365 / mib, rawPerAgent * 10_000 / mib / 1_024, rollupsPerAgentDay * 10_000 / mib / 1_024))
        } catch {
            await stop()
            throw error
        }
    }

    /// A result as an agent would send it for `probe` (the fields its prober fills in, random timings).
    static func result(for probe: PlannedProbe, at: Int64, random: inout SplitMix64) -> ProbeResult {
        func rtt() -> Double { 0.1 + Double(random.below(1_000_000)) / 500_000 }
        let kind = ProbeKind(rawValue: probe.kind) ?? .tcp
        var result = ProbeResult(
            probeId: probe.id, kind: kind, target: probe.target, port: probe.port, startedAtMs: at, outcome: probe.expectReach ? .ok : .timeout,
            expected: probe.expectReach ? .reach : .block, sourceAddress: "10.0.\(random.below(200)).\(10 + random.below(200))")
        guard probe.expectReach else {
            result.timings = ProbeTimings(totalMs: 1_000)
            result.detail = "no answer within 1000 ms"
            return result
        }
        switch kind {
        case .udpEcho, .icmp:
            let (low, average) = (rtt(), rtt())
            result.burst = BurstStatistics(
                sent: 5, received: 5, rttMinMs: min(low, average), rttAvgMs: max(low, average), rttMaxMs: max(low, average) + rtt())
            result.timings = ProbeTimings(totalMs: 5 * rtt())
            if kind == .udpEcho {
                result.identity = ResponderIdentity(
                    agentId: probe.expectedInstance ?? "i-peer", instanceId: probe.expectedInstance ?? "i-peer", mac: "0a:1b:2c:3d:4e:5f",
                    address: probe.target, interface: "ens5", interfaceId: probe.expectedInterface)
            } else {
                result.method = "datagram"
            }
        case .http, .https:
            let connect = rtt()
            result.timings = ProbeTimings(dnsMs: rtt(), connectMs: connect, firstByteMs: connect + rtt(), totalMs: connect + 2 * rtt())
            result.httpStatus = 200
            result.egressIP = probe.expectedEgressIP
        case .dns:
            result.timings = ProbeTimings(totalMs: rtt())
            result.answers = ["10.0.0.2"]
        case .tcp:
            let connect = rtt()
            result.timings = ProbeTimings(connectMs: connect, totalMs: connect + 0.01)
        }
        return result
    }

    /// Rows and bytes (`pg_total_relation_size`: the table, its indexes and TOAST) of the store's tables.
    struct TableSizes: CustomStringConvertible {
        var rows: [String: Int] = [:]
        var bytes: [String: Int] = [:]

        var description: String {
            let total = bytes.values.reduce(0, +)
            let named = ["results", "reports", "rollups", "plans", "agents"].map { name in
                String(format: "%@ %d rows %.1f MiB", name, rows[name] ?? 0, Double(bytes[name] ?? 0) / 1_048_576)
            }
            return named.joined(separator: ", ") + String(format: "; all tables %.1f MiB", Double(total) / 1_048_576)
        }
    }

    static func tableSizes(server: BenchServer, database url: String) async throws -> TableSizes {
        var sizes = TableSizes()
        for row in try await PostgresStore.maintenance(
            url: url,
            [
                "ANALYZE",
                """
                SELECT c.relname::text, pg_total_relation_size(c.oid)::text FROM pg_class c
                WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
                """,
            ], logger: server.logger)
        {
            if let name = row[0], let bytes = row[1].flatMap({ Int($0) }) { sizes.bytes[name] = bytes }
        }
        let counted = ["results", "reports", "rollups", "plans", "agents"]
        let counts = try await PostgresStore.maintenance(
            url: url, ["SELECT " + counted.map { "(SELECT count(*) FROM \($0))::text" }.joined(separator: ", ")], logger: server.logger)
        for (index, name) in counted.enumerated() { sizes.rows[name] = counts.first?[index].flatMap { Int($0) } ?? 0 }
        return sizes
    }
}

/// An error of the benchmark's own.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The server the benchmark was given: its settings, its postmaster's pid when it runs on this machine, and the
/// databases the benchmark made on it (`plumb_bench_PID_PART`), dropped by `drop` or `dropAll`.
final class BenchServer: Sendable {
    let url: String
    let logger: Logger
    let version: String
    let settings: [String: String]
    /// The server's postmaster, when it runs here (the parent of a backend, found in /proc).
    let postmaster: Int32?
    private let made = Mutex<[String]>([])

    init(url: String, logger: Logger) async throws {
        self.url = url
        self.logger = logger
        let names = ["fsync", "synchronous_commit", "full_page_writes"]
        let rows = try await PostgresStore.maintenance(
            url: url,
            [
                "SELECT current_setting('server_version'), "
                    + names.map { "current_setting('\($0)')" }.joined(separator: ", ")
            ], logger: logger)
        let row = rows.first ?? []
        version = row.first.flatMap { $0 } ?? "?"
        var settings: [String: String] = [:]
        for (index, name) in names.enumerated() { settings[name] = row[index + 1] }
        self.settings = settings
        // The parent of this connection's backend, read while the backend is there.
        let connection = try await PostgresConnection.connect(
            configuration: try PostgresBench.connectionConfiguration(url), id: 1_999_999, logger: logger)
        var backend: Int32?
        for try await pid in try await connection.query("SELECT pg_backend_pid()", logger: logger).decode(Int32.self) { backend = pid }
        postmaster = backend.flatMap { ProcessStat(pid: $0)?.parent }
        try? await connection.close()
    }

    /// Creates a database for `part` and returns its URL (the server's URL with the database replaced).
    func create(_ part: String) async throws -> String {
        let name = "plumb_bench_\(getpid())_\(part)"
        _ = try await PostgresStore.maintenance(
            url: url, ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)", "CREATE DATABASE \(name)"], logger: logger)
        made.withLock { $0.append(name) }
        return Self.url(url, database: name)
    }

    /// Drops the database of `url` (one `create` made).
    func drop(_ databaseURL: String) async {
        guard let name = URLComponents(string: databaseURL)?.path.dropFirst() else { return }
        _ = try? await PostgresStore.maintenance(url: url, ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)"], logger: logger)
        made.withLock { $0.removeAll { $0 == String(name) } }
    }

    /// Drops every database `create` made and no `drop` dropped.
    func dropAll() async {
        for name in made.withLock({ $0 }) {
            _ = try? await PostgresStore.maintenance(url: url, ["DROP DATABASE IF EXISTS \(name) WITH (FORCE)"], logger: logger)
        }
        made.withLock { $0.removeAll() }
    }

    /// `url` with its database replaced by `name`.
    static func url(_ url: String, database name: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.path = "/" + name
        return components.string ?? url
    }
}

/// A process's CPU time and parent, from /proc/PID/stat.
struct ProcessStat {
    var parent: Int32
    /// User and system time, clock ticks.
    var ticks: Int
    /// User and system time of its children that ended and were waited for, clock ticks.
    var childTicks: Int

    init?(pid: Int32) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else { return nil }
        // After the command's ")": state, ppid, ..., utime (14th field), stime, cutime, cstime.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 14, let parent = Int32(fields[1]), let user = Int(fields[11]), let system = Int(fields[12]),
            let childUser = Int(fields[13]), let childSystem = Int(fields[14])
        else { return nil }
        self.parent = parent
        ticks = user + system
        childTicks = childUser + childSystem
    }
}

/// The machine's, this process's and the server's CPU time, and the server's commits and WAL, at one moment.
struct Snapshot {
    var at = ContinuousClock.now
    /// /proc/stat: ticks busy (all but idle and iowait), in iowait, and in all, over every core.
    var busy = 0
    var iowait = 0
    var total = 0
    var process = 0
    var server: Int?
    /// `pg_stat_database.xact_commit` of the part's database; `pg_stat_wal`'s bytes and syncs.
    var commits = 0.0
    var walBytes = 0.0
    var walSyncs = 0.0

    /// The CPU times now, then the server's counters. With `settle`, the counters are read 1.5 s later: a backend
    /// reports its counts when it goes idle, at most once a second.
    init(server: BenchServer, database url: String, settle: Bool = false) async throws {
        at = .now
        if let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8), let line = text.split(separator: "\n").first {
            let ticks = line.split(separator: " ").dropFirst().prefix(8).compactMap { Int($0) }
            if ticks.count == 8 {
                total = ticks.reduce(0, +)
                iowait = ticks[4]
                busy = total - ticks[3] - ticks[4]
            }
        }
        process = ProcessStat(pid: getpid())?.ticks ?? 0
        if let postmaster = server.postmaster, let main = ProcessStat(pid: postmaster) {
            var ticks = main.ticks + main.childTicks
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(entry), let stat = ProcessStat(pid: pid), stat.parent == postmaster else { continue }
                ticks += stat.ticks
            }
            self.server = ticks
        }
        if settle { try await Task.sleep(for: .milliseconds(1_500)) }
        let rows = try await PostgresStore.maintenance(
            url: url,
            [
                """
                SELECT xact_commit::text, (SELECT wal_bytes::text FROM pg_stat_wal), (SELECT wal_sync::text FROM pg_stat_wal)
                FROM pg_stat_database WHERE datname = current_database()
                """
            ], logger: server.logger)
        if let row = rows.first {
            commits = row[0].flatMap { Double($0) } ?? 0
            walBytes = row[1].flatMap { Double($0) } ?? 0
            walSyncs = row[2].flatMap { Double($0) } ?? 0
        }
    }
}

/// CPU (in cores: 1.0 is one core busy for the whole interval), commits and WAL between two snapshots.
struct Usage: CustomStringConvertible {
    var machine: Double
    var iowait: Double
    var process: Double
    var server: Double?
    var commits: Double
    var walBytes: Double
    var walSyncs: Double
    var seconds: Double

    init(from before: Snapshot, to after: Snapshot) {
        let seconds = Double((after.at - before.at) / .milliseconds(1)) / 1000
        self.seconds = seconds
        let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
        let total = Double(max(1, after.total - before.total))
        machine = Double(after.busy - before.busy) / total * cores
        iowait = Double(after.iowait - before.iowait) / total * cores
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        process = Double(after.process - before.process) / tick / max(0.001, seconds)
        server = after.server.flatMap { a in before.server.map { Double(a - $0) / tick / max(0.001, seconds) } }
        commits = after.commits - before.commits
        walBytes = after.walBytes - before.walBytes
        walSyncs = after.walSyncs - before.walSyncs
    }

    var description: String {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var text = String(format: "CPU: machine %.2f of %d cores busy (iowait %.2f), this process %.2f", machine, cores, iowait, process)
        if let server { text += String(format: ", the server %.2f", server) }
        text += String(
            format: "; %.0f commits/s, WAL %.1f MiB/s, %.0f WAL syncs/s", commits / max(0.001, seconds), walBytes / 1_048_576 / max(0.001, seconds),
            walSyncs / max(0.001, seconds))
        return text
    }
}
