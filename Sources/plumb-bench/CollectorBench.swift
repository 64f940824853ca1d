// plumb-bench collector: plans for N agents, one evaluation over 500,000 pair states, and report ingest through the
// HTTP API into SQLite, against a raw insert of the same rows in the same run. With `--db postgres://…` (a server whose
// user may create databases) the ingest is measured on PostgreSQL instead, with one collector and with two, against a
// raw batched insert, and the database's size per agent is measured (see PostgresBench.swift).
//
//   swift build -c release --product plumb-bench
//   .build/release/plumb-bench collector [--agents N] [--results N] [--seconds S] [--pairs N] [--workers N] [--client curl|keepalive]
//       [--db postgres://USER@HOST:PORT/DB] [--rounds N] [--evaluate] [--raw-connections N] [--size-agents N] [--size-minutes M]
import CPlumbSys
import Foundation
import Hummingbird
import Logging
import NIOCore
import PlumbCollector
import PlumbCore
import PlumbModelIO
import PlumbProbes
import PlumbStore
import PlumbWire
import Prometheus
import SQLiteNIO
import ServiceLifecycle
import Synchronization

enum CollectorBench {
    static func run(_ arguments: [String]) async throws {
        var agents = 10_000
        var resultsPerReport = 50
        var seconds = 10.0
        var pairTarget = 500_000
        var workers = 16
        var postgres = PostgresBench.Options()
        var client = Client.curl
        let usage =
            "usage: plumb-bench collector [--agents N] [--results N] [--seconds S] [--pairs N] [--workers N] [--db postgres://…] [--evaluate] [--raw-connections N] [--size-agents N] [--size-minutes M] [--rounds N] [--client curl|keepalive]"
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            if flag == "--evaluate" {
                postgres.evaluate = true
                continue
            }
            switch (flag, iterator.next()) {
            case ("--agents", let value?): agents = Int(value) ?? agents
            case ("--results", let value?): resultsPerReport = Int(value) ?? resultsPerReport
            case ("--seconds", let value?): seconds = Double(value) ?? seconds
            case ("--pairs", let value?): pairTarget = Int(value) ?? pairTarget
            case ("--workers", let value?): workers = Int(value) ?? workers
            case ("--db", let value?): postgres.url = value
            case ("--raw-connections", let value?): postgres.rawConnections = Int(value) ?? postgres.rawConnections
            case ("--size-agents", let value?): postgres.sizeAgents = Int(value) ?? postgres.sizeAgents
            case ("--size-minutes", let value?): postgres.sizeMinutes = Double(value) ?? postgres.sizeMinutes
            case ("--rounds", let value?): postgres.rounds = max(1, Int(value) ?? postgres.rounds)
            case ("--client", let value?):
                guard let chosen = Client(rawValue: value) else { fatalError(usage) }
                client = chosen
            default: fatalError(usage)
            }
        }
        var options = Options(["plumb-bench"])
        options.instances = agents
        options.subnets = min(200, max(4, agents / 50))
        var topology = generate(options)
        // Agents answer on their responder port from anywhere in the VPC (the karma model's sg-plumb-agent), so the
        // planned peer and cross-subnet probes are flows the model allows.
        for index in topology.securityGroups.indices {
            topology.securityGroups[index].ingress =
                (topology.securityGroups[index].ingress ?? []) + [
                    SecurityGroupRule(protocol: .udp, ports: PortRange(7471), cidr: CIDR("10.0.0.0/16")!)
                ]
        }
        let network = Network(topology)
        print("collector benchmark: \(agents) agents on a \(network.instances.count)-instance model, \(network.subnets.count) subnets")

        // Plans.
        let placements = network.instances.indices.map { AgentPlacement(agentId: network.instances[$0].id, instance: $0, responderPort: 7471) }
        let (plans, planTime) = measure { PlanGenerator(network: network).plans(for: placements) }
        let counts = plans.values.map(\.count)
        let total = counts.reduce(0, +)
        print(
            String(
                format: "  plans: %.2f s for %d agents; probes per agent %.1f (max %d); %d probes per round vs %d for a full mesh (%.4f%%)", planTime,
                agents,
                Double(total) / Double(max(1, agents)), counts.max() ?? 0, total, agents * (agents - 1),
                Double(total) * 100 / Double(max(1, agents * (agents - 1)))))

        // Evaluation over pairTarget pair states: the planned pairs, repeated under other ids to reach the target.
        let probes = plans.values.flatMap { $0 }
        var views: [PairView] = []
        views.reserveCapacity(pairTarget)
        var random = SplitMix64(seed: 11)
        // Every path through one route table fails, plus 0.1 % of the others at random (single dead hosts): the
        // evaluation has a component to blame and noise to see through.
        var use: [ComponentRef: Int] = [:]
        // Only flows the model allows can fail as blocked (a flow it blocks already "fails").
        for probe in probes where probe.expectReach {
            for component in probe.components where component.kind == .routeTable { use[component, default: 0] += 1 }
        }
        let culprit = use.min { ($0.value, $0.key) < ($1.value, $1.key) }?.key ?? ComponentRef(.routeTable, "")
        while views.count < pairTarget && !probes.isEmpty {
            for probe in probes where views.count < pairTarget {
                var state = PairState()
                let failing = probe.expectReach && (probe.components.contains(culprit) || random.below(1_000) == 0)
                state.status = failing ? .disagreeing : .agreeing
                state.recent = failing ? [true, true, true] : [false, false, false, false, false]
                state.agreeingStreak = failing ? 0 : 10
                // One round's times: the failures began at 0.5 s and crossed at 0.9 s; every pair last reported at 1 s
                // (blame weighs only passes taken after the failures began).
                state.failingSinceMs = failing ? 500 : nil
                state.changedAtMs = failing ? 900 : 0
                state.lastAtMs = 1_000
                views.append(
                    PairView(key: "\(probe.sourceAgent)/\(probe.id)#\(views.count)", probe: probe, state: state, reason: failing ? .blocked : nil))
            }
        }
        let activity = placements.map { AgentActivity(agentId: $0.agentId, instance: $0.agentId, subnet: nil, lastSeenMs: 1_000) }
        // The collector's settings: the evidence wait is a probe interval plus the report interval.
        let engine = BlameEngine(silenceMs: 30_000, lateMs: 10_000, evidenceWaitMs: 15_000)
        var evaluations: [Double] = []
        var findings: [Finding] = []
        for _ in 0..<5 {
            let (result, time) = measure { engine.findings(BlameInput(pairs: views, agents: activity, now: 2_000)) }
            findings = result
            evaluations.append(time)
        }
        // Baseline in the same run: the same pairs, all agreeing (a pass over them and nothing to blame).
        let quiet = views.map { view -> PairView in
            var view = view
            view.state.status = .agreeing
            view.state.recent = [false, false, false, false, false]
            view.state.agreeingStreak = 10
            view.reason = nil
            return view
        }
        let quietTime = (0..<5).map { _ in measure { _ = engine.findings(BlameInput(pairs: quiet, agents: activity, now: 2_000)) }.1 }
            .sorted()[2]
        var book = AlertBook()
        let (_, reconcileTime) = measure { _ = book.reconcile(findings, now: 2_000) }
        print(
            String(
                format:
                    "  evaluation: %d pair states (failing: every path through %@, and 0.1%% at random), %d disagreeing -> %d findings (%@) in %.0f ms (median of 5; all agreeing: %.0f ms; alert reconcile %.2f ms)",
                views.count, culprit.description,
                views.filter { $0.state.status == .disagreeing }.count, findings.count,
                findings.sorted { $0.pairs.count > $1.pairs.count }.prefix(3).map { "\($0.kind.rawValue) \($0.component) (\($0.pairs.count) pairs)" }
                    .joined(separator: ", ") + (findings.count > 3 ? ", ..." : ""),
                evaluations.sorted()[2] * 1000, quietTime * 1000, reconcileTime * 1000))

        let load = IngestLoad(
            topology: topology, plans: plans, agents: placements.prefix(agents).map(\.agentId), resultsPerReport: resultsPerReport, seconds: seconds,
            workers: workers, client: client)
        if postgres.url != nil {
            try await PostgresBench.run(load, options: postgres)
        } else {
            try await ingest(load)
        }
    }

    /// Ingest over HTTP into SQLite, and the raw SQLite insert of the same rows.
    static func ingest(_ load: IngestLoad) async throws {
        let directory = NSTemporaryDirectory() + "plumb-collector-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try ModelWriter.json(load.topology).write(toFile: directory + "/model.json", atomically: true, encoding: .utf8)
        let logger = quietLogger()
        var configuration = benchConfiguration(modelPath: directory + "/model.json", port: 19_000 + Int.random(in: 0..<1_000))
        configuration.database = directory + "/plumb.sqlite"
        let store = try await SQLiteStore.open(path: configuration.sqlitePath, logger: logger)
        let collector = Collector(store: store, configuration: configuration, logger: logger)
        try await collector.start(now: 1_000)
        let (tokens, registerTime) = try await measureAsync { try await register(load.agents, at: collector) }
        print(String(format: "  registered %d agents in %.2f s (with one replan)", load.agents.count, registerTime))
        let server = serve(collector, configuration: configuration, logger: logger)
        defer { server.cancel() }
        try await Task.sleep(for: .milliseconds(500))

        let templates = try reportTemplates(load)
        let run = await drive(
            IngestWork(agents: load.agents, templates: templates.split, tokens: tokens, bases: ["http://127.0.0.1:\(configuration.port)"]),
            workers: load.workers, seconds: load.seconds, resultsPerReport: load.resultsPerReport, client: load.client)

        // Baseline: the same rows inserted straight into SQLite (same schema and pragmas), one transaction per report,
        // from one caller: no HTTP, no JSON, no authentication, no pair states.
        let raw = try await rawInsertRate(
            directory: directory, templates: templates.full, agents: load.agents, resultsPerReport: load.resultsPerReport,
            seconds: min(load.seconds, 5))
        print(
            String(
                format:
                    "  ingest over HTTP: %d reports x %d results in %.1f s = %.0f results/s (p50 %.1f ms, p99 %.1f ms, %d workers%@); raw SQLite insert of the same rows: %.0f results/s; ratio %.2f",
                run.reports, load.resultsPerReport, run.elapsed, run.resultsPerSecond, run.p50, run.p99, load.workers,
                load.client == .curl ? "" : ", kept-open connections", raw, run.resultsPerSecond / max(1, raw)))
    }

    /// A logger that says only what is critical (the benchmark prints its own lines).
    static func quietLogger() -> Logger {
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        return logger
    }

    /// The collector's settings for the benchmark: tokens `op` and `enroll`, no practical rate limit.
    static func benchConfiguration(modelPath: String, port: Int) -> CollectorConfiguration {
        var configuration = CollectorConfiguration()
        configuration.modelPath = modelPath
        configuration.host = "127.0.0.1"
        configuration.port = port
        configuration.operatorToken = "op"
        configuration.enrollmentToken = "enroll"
        configuration.maxReportsPerSecondPerAgent = 1_000
        return configuration
    }

    /// Registers every agent at `collector` and replans once; the agents' tokens.
    static func register(_ agents: [String], at collector: Collector, now: Int64 = 1_000) async throws -> [String: String] {
        var tokens: [String: String] = [:]
        for agent in agents {
            let registration = Registration(
                agentId: agent, identity: AgentIdentity(instanceId: agent, interfaces: [], source: .local), agentVersion: "bench",
                capabilities: [.tcp],
                responderPort: 7471)
            tokens[agent] = try await collector.register(registration, bearer: "enroll", now: now).agentToken
        }
        try await collector.replanIfNeeded(now: now, force: true)
        return tokens
    }

    /// The collector's HTTP API (and, with `services`, its loops) on `configuration`'s port, until cancelled.
    static func serve(
        _ collector: Collector, configuration: CollectorConfiguration, logger: Logger, services: [any Service] = []
    ) -> Task<Void, any Error> {
        let app = Application(
            router: buildRouter(collector: collector, configuration: configuration, registry: PrometheusCollectorRegistry()),
            configuration: .init(address: .hostname("127.0.0.1", port: configuration.port)), services: services, logger: logger)
        return Task { try await app.runService() }
    }

    /// Report bodies: per agent, its planned probes' results, the sequence left as `999999999` (`full`) and split
    /// around it (`split`), so the load generator fills in a new sequence per post.
    static func reportTemplates(_ load: IngestLoad) throws -> (full: [String: String], split: [String: (prefix: String, suffix: String)]) {
        let now = wallClockMilliseconds()
        var full: [String: String] = [:]
        var split: [String: (prefix: String, suffix: String)] = [:]
        for agent in load.agents {
            let probes = load.plans[agent] ?? []
            let results = (0..<load.resultsPerReport).map { index -> ProbeResult in
                let probe = probes.isEmpty ? nil : probes[index % probes.count]
                return ProbeResult(
                    probeId: probe?.id ?? "p\(index)", kind: .tcp, target: probe?.target ?? "10.0.0.1", port: probe?.port ?? 80, startedAtMs: now,
                    outcome: .ok,
                    expected: .reach, timings: ProbeTimings(connectMs: 0.4, totalMs: 0.5))
            }
            let report = Report(agentId: agent, sequence: 999_999_999, createdAtMs: now, results: results)
            let text = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
            full[agent] = text
            let parts = text.split(separator: "999999999", maxSplits: 1, omittingEmptySubsequences: false)
            split[agent] = (String(parts[0]), String(parts[1]))
        }
        return (full, split)
    }

    /// What one run of the load generator measured.
    struct IngestRun {
        /// Reports acknowledged (200).
        var reports: Int
        /// Posts that got anything else.
        var failures: Int
        var elapsed: Double
        var resultsPerSecond: Double
        /// Latency of the acknowledged posts, milliseconds.
        var p50: Double
        var p99: Double
    }

    /// The load generator's HTTP client.
    enum Client: String {
        /// `Curl.perform`, as the agent posts its reports (a new easy handle, and so a new connection, per request).
        case curl
        /// `KeepAliveClient`: one kept-open connection per worker.
        case keepalive
    }

    /// `workers` workers post reports for every agent in turn for `seconds`; worker `w` posts to
    /// `work.bases[w % bases.count]`.
    static func drive(_ work: IngestWork, workers: Int, seconds: Double, resultsPerReport: Int, client: Client = .curl) async -> IngestRun {
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(Int(seconds * 1000))
        // Keep-alive workers block on their sockets, each on a thread of its own.
        let threads = client == .keepalive ? BlockingPool(threads: workers, name: "bench-http") : nil
        let parts = await withTaskGroup(of: (latencies: [Double], failures: Int).self) { group in
            for worker in 0..<workers {
                if let threads {
                    group.addTask {
                        await threads.run {
                            let base = work.bases[worker % work.bases.count]
                            let connection = KeepAliveClient(port: Int(base.split(separator: ":").last ?? "") ?? 0)
                            var latencies: [Double] = []
                            var failures = 0
                            var index = worker
                            while ContinuousClock.now < deadline {
                                let (agent, body, token) = work.next(index)
                                index += workers
                                let sent = ContinuousClock.now
                                if connection.post(path: "/v1/agents/\(agent)/reports", token: token, body: body) == 200 {
                                    latencies.append(Double((ContinuousClock.now - sent) / .microseconds(1)) / 1000)
                                } else {
                                    failures += 1
                                }
                            }
                            return (latencies, failures)
                        }
                    }
                    continue
                }
                group.addTask {
                    var latencies: [Double] = []
                    var failures = 0
                    var index = worker
                    let base = work.bases[worker % work.bases.count]
                    while ContinuousClock.now < deadline {
                        let (agent, body, token) = work.next(index)
                        index += workers
                        let sent = ContinuousClock.now
                        let response = await Curl.perform(
                            PlumbProbes.HTTPRequest(
                                method: "POST", url: "\(base)/v1/agents/\(agent)/reports",
                                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")], body: body, timeoutMs: 30_000,
                                freshConnection: false))
                        if response.status == 200 {
                            latencies.append(Double((ContinuousClock.now - sent) / .microseconds(1)) / 1000)
                        } else {
                            failures += 1
                        }
                    }
                    return (latencies, failures)
                }
            }
            var all: [(latencies: [Double], failures: Int)] = []
            for await part in group { all.append(part) }
            return all
        }
        let elapsed = Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000
        let sorted = parts.flatMap(\.latencies).sorted()
        return IngestRun(
            reports: sorted.count, failures: parts.map(\.failures).reduce(0, +), elapsed: elapsed,
            resultsPerSecond: Double(sorted.count * resultsPerReport) / elapsed, p50: sorted.isEmpty ? 0 : sorted[sorted.count / 2],
            p99: sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, sorted.count * 99 / 100)])
    }

    static func rawInsertRate(directory: String, templates: [String: String], agents: [String], resultsPerReport: Int, seconds: Double) async throws
        -> Double
    {
        let connection = try await SQLiteConnection.open(storage: .file(path: directory + "/raw.sqlite"))
        defer { _ = connection.close() as EventLoopFuture<Void> }
        _ = try await connection.query("PRAGMA journal_mode=WAL")
        _ = try await connection.query("PRAGMA synchronous=NORMAL")
        _ = try await connection.query(
            "CREATE TABLE results (id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL, sequence INTEGER NOT NULL, position INTEGER NOT NULL, probe_id TEXT NOT NULL, started_at INTEGER NOT NULL, outcome TEXT NOT NULL, rtt_ms REAL, sent INTEGER NOT NULL, received INTEGER NOT NULL)"
        )
        _ = try await connection.query(
            "CREATE TABLE reports (agent_id TEXT NOT NULL, sequence INTEGER NOT NULL, body TEXT, PRIMARY KEY (agent_id, sequence))")
        let body = templates[agents[0]]!
        let rows = try JSONDecoder().decode(Report.self, from: Data(body.utf8)).results
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(Int(seconds * 1000))
        var inserted = 0
        var sequence = 0
        while ContinuousClock.now < deadline {
            sequence += 1
            var binds: [SQLiteData] = []
            for (index, row) in rows.enumerated() {
                binds += [
                    .text(agents[sequence % agents.count]), .integer(sequence), .integer(index), .text(row.probeId), .integer(Int(row.startedAtMs)),
                    .text("ok"), .float(0.4), .integer(1), .integer(1),
                ]
            }
            _ = try await connection.query("BEGIN IMMEDIATE")
            _ = try await connection.query(
                "INSERT INTO reports (agent_id, sequence, body) VALUES (?, ?, ?)",
                [.text(agents[sequence % agents.count]), .integer(sequence), .text(body)])
            _ = try await connection.query(
                "INSERT INTO results (agent_id, sequence, position, probe_id, started_at, outcome, rtt_ms, sent, received) VALUES "
                    + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?)", count: rows.count).joined(separator: ", "), binds)
            _ = try await connection.query("COMMIT")
            inserted += rows.count
        }
        return Double(inserted) / (Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000)
    }

    static func measureAsync<T>(_ body: () async throws -> T) async throws -> (T, Double) {
        let start = ContinuousClock.now
        let value = try await body()
        return (value, Double((ContinuousClock.now - start) / .microseconds(1)) / 1e6)
    }
}

/// What the ingest part loads: the model, its plans, the agents and the load generator's shape.
struct IngestLoad {
    var topology: Topology
    var plans: [String: [PlannedProbe]]
    var agents: [String]
    var resultsPerReport: Int
    var seconds: Double
    var workers: Int
    var client: CollectorBench.Client = .curl
}

/// The load generator's shared, read-only inputs.
struct IngestWork: Sendable {
    let agents: [String]
    let templates: [String: (prefix: String, suffix: String)]
    let tokens: [String: String]
    /// The collectors' base URLs (`http://127.0.0.1:PORT`).
    let bases: [String]
    private let sequences: SequenceBox

    /// `sequences` carries on from an earlier run (the sequences of one agent must grow across runs on one store).
    init(
        agents: [String], templates: [String: (prefix: String, suffix: String)], tokens: [String: String], bases: [String],
        sequences: SequenceBox = SequenceBox()
    ) {
        self.agents = agents
        self.templates = templates
        self.tokens = tokens
        self.bases = bases
        self.sequences = sequences
    }

    func next(_ index: Int) -> (String, [UInt8], String) {
        let agent = agents[index % agents.count]
        let sequence = sequences.next(agent)
        let template = templates[agent]!
        return (agent, Array(template.prefix.utf8) + Array(String(sequence).utf8) + Array(template.suffix.utf8), tokens[agent] ?? "")
    }
}

/// Each agent's next report sequence.
final class SequenceBox: Sendable {
    private let state = Mutex<[String: Int]>([:])
    func next(_ agent: String) -> Int {
        state.withLock {
            $0[agent, default: 0] += 1; return $0[agent]!
        }
    }
}
