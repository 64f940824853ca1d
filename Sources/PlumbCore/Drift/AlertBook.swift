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
    /// The last evaluation at which the component was failing (not only held): the hold-down counts from here.
    public var lastActiveAtMs: Int64?
    /// Since when the component has looked healthy, while the alert waits out its hold-down.
    public var quietSinceMs: Int64?
    /// How often the component recovered and failed again within this episode.
    public var transitions: Int?
    /// True once it recovered and failed again at least twice: one alert for a flapping component, resolved once it
    /// has been stable for the hold-down.
    public var flapping: Bool?
    /// Why the component was chosen, and what else the evidence could not rule out (see `Finding`).
    public var failingPaths: Int?
    public var passingPaths: Int?
    public var alternatives: [String]?
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
/// An alert fires once per episode, however many evaluations see it. An episode stays open until its component has
/// been healthy for the hold-down; a component that fails again within it is the same episode, and one that does so
/// `flapAfter` times is marked flapping (one alert, resolved once it has been stable).
public struct AlertBook: Sendable {
    /// Open (firing) alerts by fingerprint.
    public private(set) var open: [String: Alert]
    /// Milliseconds a component must look healthy before its alert resolves.
    public var holdDownMs: Int64
    /// Recoveries followed by a new failure, within one episode, after which the alert is marked flapping.
    public var flapAfter: Int

    /// A book holding `open` (loaded from the store after a restart, so nothing fires twice).
    public init(open: [Alert] = [], holdDownMs: Int64 = 0, flapAfter: Int = 2) {
        self.open = Dictionary(open.filter { $0.status == .firing }.map { ($0.fingerprint, $0) }, uniquingKeysWith: { first, _ in first })
        self.holdDownMs = holdDownMs
        self.flapAfter = max(1, flapAfter)
    }

    /// Compares `findings` with the open alerts at `now`.
    public mutating func reconcile(_ findings: [Finding], now: Int64) -> [AlertChange] {
        var changes: [AlertChange] = []
        var seen: Set<String> = []
        for finding in findings {
            let fingerprint = finding.fingerprint
            guard seen.insert(fingerprint).inserted else { continue }
            if var alert = open[fingerprint] {
                let before = alert
                alert.evidence = finding.evidence
                alert.pairs = finding.pairs
                alert.summary = finding.summary
                alert.severity = finding.severity
                alert.failingPaths = finding.failingPaths
                alert.passingPaths = finding.passingPaths
                alert.alternatives = finding.alternatives
                if finding.active {
                    if alert.quietSinceMs != nil {
                        // It looked healthy and fails again inside the hold-down: the same episode, one more flap.
                        let transitions = (alert.transitions ?? 0) + 1
                        alert.transitions = transitions
                        if transitions >= flapAfter { alert.flapping = true }
                    }
                    alert.quietSinceMs = nil
                    alert.lastActiveAtMs = now
                } else if alert.quietSinceMs == nil {
                    alert.quietSinceMs = now
                }
                if alert.flapping == true, let transitions = alert.transitions {
                    alert.evidence.append("flapping: failed again \(transitions) time\(transitions == 1 ? "" : "s") after recovering in this episode")
                }
                if Self.differs(before, alert) {
                    alert.updatedAtMs = now
                    changes.append(.updated(alert))
                }
                open[fingerprint] = alert
            } else if finding.active {
                let alert = Alert(
                    id: "\(fingerprint)-\(now)", fingerprint: fingerprint, kind: finding.kind, severity: finding.severity,
                    component: finding.component,
                    componentType: finding.componentType, summary: finding.summary, evidence: finding.evidence, pairs: finding.pairs,
                    flow: finding.flow,
                    status: .firing, startsAtMs: now, endsAtMs: nil, updatedAtMs: now, lastActiveAtMs: now, failingPaths: finding.failingPaths,
                    passingPaths: finding.passingPaths, alternatives: finding.alternatives)
                open[fingerprint] = alert
                changes.append(.fired(alert))
            }
        }
        for (fingerprint, var alert) in open.sorted(by: { $0.key < $1.key }) where !seen.contains(fingerprint) {
            // Healthy now; resolved only once it has stayed healthy for the hold-down.
            let lastActive = alert.lastActiveAtMs ?? alert.updatedAtMs
            if now - lastActive < holdDownMs {
                if alert.quietSinceMs == nil {
                    alert.quietSinceMs = now
                    open[fingerprint] = alert
                    changes.append(.updated(alert))
                }
                continue
            }
            alert.status = .resolved
            alert.endsAtMs = now
            alert.updatedAtMs = now
            alert.quietSinceMs = nil
            open[fingerprint] = nil
            changes.append(.resolved(alert))
        }
        return changes
    }

    /// Whether an update is worth storing: anything but the bookkeeping of the last active time.
    private static func differs(_ lhs: Alert, _ rhs: Alert) -> Bool {
        var left = lhs
        var right = rhs
        left.lastActiveAtMs = nil
        right.lastActiveAtMs = nil
        left.updatedAtMs = 0
        right.updatedAtMs = 0
        return left != right
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
