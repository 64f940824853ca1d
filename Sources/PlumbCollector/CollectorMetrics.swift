import CoreMetrics
import Metrics
import PlumbCore

/// The collector's metrics, through swift-metrics (the binary bootstraps Prometheus; tests use no-op handlers).
public struct CollectorMetrics: Sendable {
    let reports = Counter(label: "plumb_reports_ingested_total")
    let results = Counter(label: "plumb_results_ingested_total")
    let duplicates = Counter(label: "plumb_reports_duplicate_total")
    let staleResults = Counter(label: "plumb_results_stale_total")
    let evaluationSeconds = Timer(label: "plumb_evaluation_duration_seconds")
    let plannedProbes = Gauge(label: "plumb_planned_probes")
    /// 1 while this collector leads (evaluates and delivers), 0 while it follows.
    let leader = Gauge(label: "plumb_collector_leader")
    let deliveriesOK = Counter(label: "plumb_webhook_deliveries_total", dimensions: [("outcome", "delivered")])
    let deliveriesFailed = Counter(label: "plumb_webhook_deliveries_total", dimensions: [("outcome", "failed")])
    let deliveriesGivenUp = Counter(label: "plumb_webhook_deliveries_total", dimensions: [("outcome", "gave_up")])

    /// Creates the handles.
    public init() {}

    func record(alerts: [Alert], pairs: [String: PairState]) {
        for kind in Finding.Kind.allCases {
            Gauge(label: "plumb_alerts_firing", dimensions: [("kind", kind.rawValue)]).record(alerts.filter { $0.kind == kind }.count)
        }
        for status in [PairState.Status.unknown, .agreeing, .disagreeing] {
            Gauge(label: "plumb_pairs", dimensions: [("status", status.rawValue)]).record(pairs.values.filter { $0.status == status }.count)
        }
    }
}
