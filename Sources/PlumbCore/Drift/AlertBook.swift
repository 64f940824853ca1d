/// An alert: a finding with a lifecycle.
public struct Alert: Sendable, Hashable, Codable {
    /// Firing until the finding goes away.
    public enum Status: String, Sendable, Hashable, Codable {
        case firing
        case resolved
    }

    /// `FINGERPRINT-STARTSAT`: one alert per episode.
    public var id: String
    public var fingerprint: String
    public var kind: Finding.Kind
    public var severity: Finding.Severity
    public var component: String
    public var componentType: String
    public var summary: String
    public var evidence: [String]
    public var pairs: [String]
    public var flow: Finding.Flow?
    public var status: Status
    public var startsAtMs: Int64
    public var endsAtMs: Int64?
    public var updatedAtMs: Int64
    public var acknowledgedBy: String?
    public var acknowledgedAtMs: Int64?
}

/// What reconciling findings did to the open alerts.
public enum AlertChange: Sendable, Hashable {
    /// A new alert fires: notify.
    case fired(Alert)
    /// An open alert's evidence changed: store, no notification.
    case updated(Alert)
    /// An alert's finding went away: notify the resolution.
    case resolved(Alert)
}

/// The open alerts, keyed by fingerprint; a pure state machine fed with the findings of each evaluation.
/// An alert fires once per episode, however many evaluations see it, and resolves when its finding is gone.
public struct AlertBook: Sendable {
    /// Open (firing) alerts by fingerprint.
    public private(set) var open: [String: Alert]

    /// A book holding `open` (loaded from the store after a restart, so nothing fires twice).
    public init(open: [Alert] = []) {
        self.open = Dictionary(open.filter { $0.status == .firing }.map { ($0.fingerprint, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Compares `findings` with the open alerts at `now`.
    public mutating func reconcile(_ findings: [Finding], now: Int64) -> [AlertChange] {
        var changes: [AlertChange] = []
        var seen: Set<String> = []
        for finding in findings {
            let fingerprint = finding.fingerprint
            guard seen.insert(fingerprint).inserted else { continue }
            if var alert = open[fingerprint] {
                if alert.evidence != finding.evidence || alert.pairs != finding.pairs || alert.summary != finding.summary
                    || alert.severity != finding.severity
                {
                    alert.evidence = finding.evidence
                    alert.pairs = finding.pairs
                    alert.summary = finding.summary
                    alert.severity = finding.severity
                    alert.updatedAtMs = now
                    open[fingerprint] = alert
                    changes.append(.updated(alert))
                }
            } else {
                let alert = Alert(
                    id: "\(fingerprint)-\(now)", fingerprint: fingerprint, kind: finding.kind, severity: finding.severity,
                    component: finding.component,
                    componentType: finding.componentType, summary: finding.summary, evidence: finding.evidence, pairs: finding.pairs,
                    flow: finding.flow,
                    status: .firing, startsAtMs: now, endsAtMs: nil, updatedAtMs: now)
                open[fingerprint] = alert
                changes.append(.fired(alert))
            }
        }
        for (fingerprint, var alert) in open.sorted(by: { $0.key < $1.key }) where !seen.contains(fingerprint) {
            alert.status = .resolved
            alert.endsAtMs = now
            alert.updatedAtMs = now
            open[fingerprint] = nil
            changes.append(.resolved(alert))
        }
        return changes
    }

    /// Marks an open alert acknowledged; false when it is not open.
    public mutating func acknowledge(fingerprint: String, by who: String, at now: Int64) -> Alert? {
        guard var alert = open[fingerprint] else { return nil }
        alert.acknowledgedBy = who
        alert.acknowledgedAtMs = now
        open[fingerprint] = alert
        return alert
    }
}
