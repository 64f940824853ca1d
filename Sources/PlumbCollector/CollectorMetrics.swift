import CoreMetrics
import Metrics
import PlumbCore
import PlumbStore
import PlumbWire
import Prometheus
import Synchronization

// Prometheus has its own Counter and Gauge; the collector's are swift-metrics'.
typealias Counter = CoreMetrics.Counter
typealias Gauge = CoreMetrics.Gauge
typealias Timer = CoreMetrics.Timer

/// The collector's metrics, through swift-metrics (the binary bootstraps Prometheus with `CollectorMetrics.factory`;
/// tests use no-op handlers). Every family has its `# HELP` in `metricHelp`; `/metrics` adds them.
///
/// Cardinality (docs/collector.md, "Metrics"): path families are per (source subnet, target subnet, probe kind),
/// never per instance pair; NAT families per NAT, endpoint families per endpoint or load balancer, agent families
/// per agent, alert families per (kind, component) of the alerts open since the start.
public struct CollectorMetrics: Sendable {
    let reports = Counter(label: "plumb_reports_ingested_total")
    let results = Counter(label: "plumb_results_ingested_total")
    let duplicates = Counter(label: "plumb_reports_duplicate_total")
    /// Reports refused at the door for a value outside its meaning (422), never stored.
    let reportsRefused = Counter(label: "plumb_reports_refused_total")
    /// Stored reports the evaluation skipped: a value it cannot evaluate (stored before the checks existed).
    let reportsSkipped = Counter(label: "plumb_reports_skipped_total")
    let staleResults = Counter(label: "plumb_results_stale_total")
    let evaluationSeconds = Timer(label: "plumb_evaluation_duration_seconds")
    let evaluations = Counter(label: "plumb_evaluations_total")
    let plannedProbes = Gauge(label: "plumb_planned_probes")
    let plannedAgents = Gauge(label: "plumb_planned_agents")
    let topologyVersion = Gauge(label: "plumb_topology_version")
    /// 1 while this collector leads (evaluates and delivers), 0 while it follows.
    let leader = Gauge(label: "plumb_collector_leader")
    let storeBytes = Gauge(label: "plumb_store_size_bytes")
    /// 1 while this collector's store refuses its writes or does not answer (`/readyz` says 503).
    let degraded = Gauge(label: "plumb_collector_degraded")

    /// Creates the handles.
    public init() {}

    /// A delivery's outcome, per receiver (bounded by the configuration).
    func delivery(_ outcome: String, receiver: String) {
        Counter(label: "plumb_webhook_deliveries_total", dimensions: [("receiver", receiver), ("outcome", outcome)]).increment()
    }

    /// Creates every receiver's delivery series and every refusal reason's series at zero, so rates, increases and
    /// alert rules see the first event.
    func declare(receivers: [String]) {
        for reason in IdentityRefused.Reason.allCases {
            Counter(label: "plumb_registrations_refused_total", dimensions: [("reason", reason.rawValue)]).increment(by: 0)
        }
        for receiver in receivers {
            for outcome in ["delivered", "failed", "gave_up"] {
                Counter(label: "plumb_webhook_deliveries_total", dimensions: [("receiver", receiver), ("outcome", outcome)]).increment(by: 0)
            }
        }
    }

    func record(alerts: [Alert], pairs: [String: PairState], bySubnetPair: [SubnetPairKey: [PairState.Status: Int]]) {
        for kind in Finding.Kind.allCases {
            Gauge(label: "plumb_alerts_firing", dimensions: [("kind", kind.rawValue)]).record(alerts.filter { $0.kind == kind }.count)
        }
        for status in [PairState.Status.unknown, .agreeing, .disagreeing] {
            Gauge(label: "plumb_pairs", dimensions: [("status", status.rawValue)]).record(pairs.values.filter { $0.status == status }.count)
        }
        AlertSeries.shared.record(alerts)
        SubnetPairSeries.shared.record(bySubnetPair)
    }

    /// Agents as the store has them (every collector updates `lastSeenAtMs`): live or silent, the age of the last
    /// report; and the spool depth and plan the agent's last report to this collector carried, while that report is
    /// recent (within the silence window), so a collector an agent has left does not keep showing its old values.
    func record(agents: [AgentRecord], health: [String: AgentHealth], currentPlans: [String: String], silenceMs: Int64, now: Int64) {
        var live = 0
        var silent = 0
        for agent in agents {
            let age = max(0, now - agent.lastSeenAtMs)
            if age > silenceMs { silent += 1 } else { live += 1 }
            let dimensions = [("agent", agent.agentId)]
            Gauge(label: "plumb_agent_last_report_age_seconds", dimensions: dimensions).record(Double(age) / 1000)
            if let health = health[agent.agentId], now - health.receivedAtMs <= silenceMs {
                if let depth = health.spoolBatches { Gauge(label: "plumb_agent_spool_batches", dimensions: dimensions).record(depth) }
                let current = currentPlans[agent.agentId].map { $0 == health.planId } ?? false
                Gauge(label: "plumb_agent_plan_current", dimensions: dimensions).record(current ? 1 : 0)
                Gauge(label: "plumb_agent_dropped_results", dimensions: dimensions).record(health.droppedResults)
            }
        }
        AgentSeries.shared.retain(
            all: Set(agents.map(\.agentId)),
            reportingHere: Set(agents.map(\.agentId).filter { health[$0].map { now - $0.receivedAtMs <= silenceMs } ?? false }))
        Gauge(label: "plumb_agents", dimensions: [("state", "live")]).record(live)
        Gauge(label: "plumb_agents", dimensions: [("state", "silent")]).record(silent)
    }

    /// The factory the binaries bootstrap: Prometheus, with round-trip buckets fine enough for a VPC (from 100 µs).
    public static func factory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        let rtt: [Duration] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(5),
        ]
        for label in ["plumb_path_rtt_seconds", "plumb_nat_rtt_seconds", "plumb_endpoint_phase_seconds"] {
            factory.durationHistogramBuckets[label] = rtt
        }
        factory.durationHistogramBuckets["plumb_evaluation_duration_seconds"] = [
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(200),
            .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        return factory
    }
}

/// What an agent's last report to this collector said about the agent itself.
struct AgentHealth: Sendable {
    var receivedAtMs: Int64
    var planId: String?
    var spoolBatches: Int?
    var droppedResults: Int
}

struct SubnetPairKey: Hashable {
    var source: String
    var target: String
}

/// The probe-result series of one label set (a subnet pair and kind, a NAT, an endpoint), shared by every planned
/// pair with those labels: made once, so reading the feed does no lookup in the metrics registry.
final class ProbeSeries: Sendable {
    enum Family: Sendable, Hashable {
        case path(source: String, target: String, kind: String)
        case nat(String)
        case endpoint(String)
    }

    private let agree: Counter
    private let disagree: Counter
    private let inconclusive: Counter
    private let rtt: Timer?
    private let sent: Counter?
    private let lost: Counter?
    private let phases: [(phase: Phase, timer: Timer)]

    enum Phase: String, CaseIterable {
        case dns, connect, tls
        case firstByte = "first_byte"
        case total

        func milliseconds(_ timings: ProbeTimings) -> Double? {
            switch self {
            case .dns: timings.dnsMs
            case .connect: timings.connectMs
            case .tls: timings.tlsMs
            case .firstByte: timings.firstByteMs
            case .total: timings.totalMs
            }
        }
    }

    init(_ family: Family) {
        let name: String
        let dimensions: [(String, String)]
        switch family {
        case .path(let source, let target, let kind):
            name = "plumb_path"
            dimensions = [("source_subnet", source), ("target_subnet", target), ("kind", kind)]
        case .nat(let nat):
            name = "plumb_nat"
            dimensions = [("nat", nat)]
        case .endpoint(let endpoint):
            name = "plumb_endpoint"
            dimensions = [("endpoint", endpoint)]
        }
        agree = Counter(label: "\(name)_probes_total", dimensions: dimensions + [("result", "agree")])
        disagree = Counter(label: "\(name)_probes_total", dimensions: dimensions + [("result", "disagree")])
        inconclusive = Counter(label: "\(name)_probes_total", dimensions: dimensions + [("result", "inconclusive")])
        switch family {
        case .endpoint:
            rtt = nil
            sent = nil
            lost = nil
            phases = Phase.allCases.map { ($0, Timer(label: "plumb_endpoint_phase_seconds", dimensions: dimensions + [("phase", $0.rawValue)])) }
        case .path, .nat:
            rtt = Timer(label: "\(name)_rtt_seconds", dimensions: dimensions)
            sent = Counter(label: "\(name)_datagrams_sent_total", dimensions: dimensions)
            lost = Counter(label: "\(name)_datagrams_lost_total", dimensions: dimensions)
            phases = []
        }
    }

    /// One result: agree/disagree with the plan (or inconclusive: the probe could not run), round trip, loss.
    func record(_ result: ProbeResult, disagrees: Bool?) {
        switch disagrees {
        case .none: inconclusive.increment()
        case .some(true): disagree.increment()
        case .some(false): agree.increment()
        }
        // Reports are checked at the door (`Report.problems`); these guards keep a value that got past it (a row
        // stored before the checks) from trapping: counters take no negative, durations become integers only when
        // finite and bounded.
        if let burst = result.burst, burst.sent >= 0, burst.received >= 0 {
            sent?.increment(by: burst.sent)
            lost?.increment(by: max(0, burst.sent - burst.received))
        }
        if let rtt, let nanoseconds = Self.nanoseconds(result.burst?.rttAvgMs ?? result.timings.connectMs ?? result.timings.totalMs) {
            rtt.recordNanoseconds(nanoseconds)
        }
        if result.outcome == .ok {
            for phase in phases {
                if let nanoseconds = Self.nanoseconds(phase.phase.milliseconds(result.timings)) { phase.timer.recordNanoseconds(nanoseconds) }
            }
        }
    }

    /// Milliseconds as nanoseconds, nil unless finite and between 0 and a day.
    static func nanoseconds(_ milliseconds: Double?) -> Int64? {
        guard let milliseconds, milliseconds.isFinite, milliseconds >= 0, milliseconds <= 86_400_000 else { return nil }
        return Int64(milliseconds * 1_000_000)
    }
}

/// Series per open alert (kind, component): set to 1 while open, 0 after, so a graph shows when it ended.
final class AlertSeries: Sendable {
    static let shared = AlertSeries()
    private let seen = Mutex<Set<[String]>>([])

    func record(_ alerts: [Alert]) {
        var open: [[String]: Int] = [:]
        for alert in alerts { open[[alert.kind.rawValue, alert.component, alert.severity.rawValue], default: 0] += 1 }
        let known = seen.withLock { seen in
            seen.formUnion(open.keys)
            return seen
        }
        for key in known {
            Gauge(label: "plumb_alert_open", dimensions: [("kind", key[0]), ("component", key[1]), ("severity", key[2])]).record(open[key] ?? 0)
        }
    }
}

/// Pairs per (source subnet, target subnet) and status.
final class SubnetPairSeries: Sendable {
    static let shared = SubnetPairSeries()
    private let seen = Mutex<Set<SubnetPairKey>>([])

    func record(_ counts: [SubnetPairKey: [PairState.Status: Int]]) {
        let known = seen.withLock { seen in
            seen.formUnion(counts.keys)
            return seen
        }
        for key in known {
            for status in [PairState.Status.unknown, .agreeing, .disagreeing] {
                Gauge(
                    label: "plumb_subnet_pairs",
                    dimensions: [("source_subnet", key.source), ("target_subnet", key.target), ("status", status.rawValue)]
                )
                .record(counts[key]?[status] ?? 0)
            }
        }
    }
}

/// Agents' series: those of agents no longer registered are removed, and the health series of agents that stopped
/// reporting to this collector.
final class AgentSeries: Sendable {
    static let shared = AgentSeries()
    private let seen = Mutex<(all: Set<String>, here: Set<String>)>(([], []))
    static let healthLabels = ["plumb_agent_spool_batches", "plumb_agent_plan_current", "plumb_agent_dropped_results"]

    func retain(all agents: Set<String>, reportingHere: Set<String>) {
        let (gone, left) = seen.withLock { seen in
            let gone = seen.all.subtracting(agents)
            let left = seen.here.subtracting(reportingHere)
            seen = (agents, reportingHere)
            return (gone, left)
        }
        for agent in gone { Gauge(label: "plumb_agent_last_report_age_seconds", dimensions: [("agent", agent)]).destroy() }
        for agent in left.union(gone) {
            for label in Self.healthLabels { Gauge(label: label, dimensions: [("agent", agent)]).destroy() }
        }
    }
}

/// `# HELP` of every family the collector exposes (swift-metrics carries none); `/metrics` inserts them, and a test
/// fails on a family missing here.
public let metricHelp: [String: String] = [
    "plumb_reports_ingested_total": "Reports stored by this collector (duplicates excluded).",
    "plumb_results_ingested_total": "Probe results in the reports stored by this collector.",
    "plumb_reports_duplicate_total": "Reports received again (a retry or a replay) and acknowledged without storing.",
    "plumb_collector_degraded": "1 while this collector's store refuses its writes (a report, the evaluation) or does not answer; /readyz says 503.",
    "plumb_auth_failures_total": "Requests refused for a missing or wrong token (401, or 403 for a token that is not an operator token), per route.",
    "plumb_reports_refused_total":
        "Reports refused with 422 for a value outside its meaning (a time, a count, a duration, a sequence); never stored.",
    "plumb_reports_skipped_total": "Stored reports the leader's evaluation skipped because a value in them cannot be evaluated; logged.",
    "plumb_results_stale_total": "Results read by the leader but too old to evaluate (history from an agent's spool).",
    "plumb_evaluation_duration_seconds": "Time of one evaluation by the leader: findings, alerts, deliveries queued, pairs saved.",
    "plumb_evaluations_total": "Evaluations run by this collector while leading.",
    "plumb_planned_probes": "Probes in the current plans of all agents.",
    "plumb_planned_agents": "Agents placed in the model by the current plans.",
    "plumb_topology_version": "The version of the topology model in use.",
    "plumb_collector_leader": "1 while this collector leads (evaluates and delivers), 0 while it follows.",
    "plumb_store_size_bytes": "Size of the store: the SQLite file with its WAL, or the PostgreSQL database.",
    "plumb_webhook_deliveries_total": "Webhook delivery attempts by receiver and outcome (delivered, failed and retried later, gave_up).",
    "plumb_alerts_firing": "Open alerts by kind.",
    "plumb_alert_open": "Open alerts by kind, component and severity (0 once resolved).",
    "plumb_pairs": "Planned pairs by status: agreeing or disagreeing with the model, or unknown (not yet observed).",
    "plumb_subnet_pairs": "Planned pairs per source subnet, target subnet (outside: endpoints and NAT egress) and status.",
    "plumb_path_probes_total": "Probe results between subnets by kind and result (agree, disagree with the model, inconclusive).",
    "plumb_path_rtt_seconds": "Round-trip time of probes between subnets (burst mean, or TCP connect).",
    "plumb_path_datagrams_sent_total": "Datagrams sent by udp-echo and icmp bursts between subnets.",
    "plumb_path_datagrams_lost_total": "Datagrams of udp-echo and icmp bursts between subnets without a reply.",
    "plumb_nat_probes_total": "Egress checks through each NAT by result.",
    "plumb_nat_rtt_seconds": "Round-trip time of egress checks through each NAT.",
    "plumb_nat_datagrams_sent_total": "Datagrams sent by bursts through each NAT.",
    "plumb_nat_datagrams_lost_total": "Datagrams of bursts through each NAT without a reply.",
    "plumb_endpoint_probes_total": "Probes of each service endpoint or load balancer by result.",
    "plumb_endpoint_phase_seconds":
        "Time from the start of a successful endpoint probe to the end of each phase (dns, connect, tls, first_byte, total).",
    "plumb_agents": "Registered agents by state: live (heard within silenceSeconds) or silent.",
    "plumb_agent_last_report_age_seconds": "Seconds since the agent was last heard from.",
    "plumb_agent_spool_batches": "Report batches waiting in the agent's spool when it sent its last report here.",
    "plumb_agent_plan_current": "1 when the agent's last report here ran the agent's current plan.",
    "plumb_agent_dropped_results": "Results the agent dropped since it started (spool full), as of its last report here.",
    "plumb_registrations_refused_total": "Registrations refused by the identity checks, by reason.",
    "plumb_tls_reloads_total": "Reloads of the listener's TLS files (SIGHUP) by result.",
]

/// The exposition with a `# HELP` line before each `# TYPE` line that has none.
public func addingHelp(to exposition: [UInt8]) -> String {
    var output = ""
    output.reserveCapacity(exposition.count + metricHelp.count * 80)
    var previous: Substring = ""
    for line in String(decoding: exposition, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("# TYPE "), !previous.hasPrefix("# HELP ") {
            let name = line.dropFirst(7).prefix { $0 != " " }
            if let help = metricHelp[String(name)] { output += "# HELP \(name) \(help)\n" }
        }
        output += line
        output += "\n"
        previous = line
    }
    if output.hasSuffix("\n\n") { output.removeLast() }
    return output
}
