/// Hysteresis for a pair: down after `failuresToDown` disagreements among the last `window` results, up again after
/// `successesToUp` agreements in a row (defaults 3 of 5, 2), as Cloudprober's "F of T" and SmokePing's edge triggers.
public struct Hysteresis: Sendable, Hashable, Codable {
    /// Disagreements in the window that take a pair down.
    public var failuresToDown: Int
    /// The window.
    public var window: Int
    /// Agreements in a row that bring it back.
    public var successesToUp: Int

    /// Creates settings; the defaults are 3 of 5, and 2.
    public init(failuresToDown: Int = 3, window: Int = 5, successesToUp: Int = 2) {
        self.failuresToDown = max(1, failuresToDown)
        self.window = max(self.failuresToDown, window)
        self.successesToUp = max(1, successesToUp)
    }
}

/// The state of one (agent, probe) pair: whether what it observes agrees with the model, with hysteresis, and a
/// learned latency baseline. A pure state machine: time and observations come in, transitions come out.
public struct PairState: Sendable, Hashable, Codable {
    /// Where the pair stands.
    public enum Status: String, Sendable, Hashable, Codable {
        /// Not enough results yet.
        case unknown
        /// Observations agree with the model.
        case agreeing
        /// Observations disagree with the model (with hysteresis).
        case disagreeing
    }

    /// What changed with an observation.
    public enum Transition: String, Sendable, Hashable, Codable {
        /// The pair started to disagree.
        case disagreeing
        /// The pair agrees again.
        case agreeing
        /// The RTT rose well above the learned baseline.
        case latencyRegressed
        /// The RTT is back near the baseline.
        case latencyRecovered
    }

    /// The status.
    public var status: Status = .unknown
    /// The last results, newest last: true where the result disagreed with the model.
    public var recent: [Bool] = []
    /// Agreements in a row since the last disagreement.
    public var agreeingStreak = 0
    /// When the status last changed, and when the last result came (ms since the epoch).
    public var changedAtMs: Int64 = 0
    public var lastAtMs: Int64 = 0
    /// When the first of the disagreeing results in a row that ends with the latest was taken (ms since the epoch),
    /// nil when the latest result agreed: when this pair began to see what it sees. Blame weighs passes against it (a pass taken before a
    /// fault began says nothing about the fault). Optional, so pair states stored before it existed still load.
    public var failingSinceMs: Int64?
    /// Results seen.
    public var observations = 0
    /// The learned RTT (EWMA over agreeing results), and whether the latency is regressed now.
    public var rttBaselineMs: Double?
    public var rttSamples = 0
    public var recentSlow: [Bool] = []
    public var latencyRegressed = false

    /// A fresh pair.
    public init() {}

    /// Feeds one result: `disagrees` when it does not match the model, with its RTT when it has one.
    public mutating func observe(disagrees: Bool, rttMs: Double?, at time: Int64, hysteresis: Hysteresis) -> [Transition] {
        var transitions: [Transition] = []
        observations += 1
        lastAtMs = time
        recent.append(disagrees)
        if recent.count > hysteresis.window { recent.removeFirst(recent.count - hysteresis.window) }
        // The run of failures in a row dates what the pair sees: a lost probe before it, with an agreeing result in
        // between, does not date a fault that began later.
        failingSinceMs = disagrees ? failingSinceMs ?? time : nil
        agreeingStreak = disagrees ? 0 : agreeingStreak + 1
        switch status {
        case .unknown, .agreeing:
            if recent.filter({ $0 }).count >= hysteresis.failuresToDown {
                status = .disagreeing
                changedAtMs = time
                transitions.append(.disagreeing)
            } else if status == .unknown && agreeingStreak >= hysteresis.successesToUp {
                status = .agreeing
                changedAtMs = time
            }
        case .disagreeing:
            if agreeingStreak >= hysteresis.successesToUp {
                status = .agreeing
                changedAtMs = time
                recent.removeAll()
                transitions.append(.agreeing)
            }
        }
        if let rttMs, !disagrees { transitions += observeLatency(rttMs, hysteresis: hysteresis) }
        return transitions
    }

    /// Latency: a result is slow above max(3x baseline, baseline + 5 ms) once 20 results taught the baseline;
    /// `failuresToDown` slow results of the window regress, `successesToUp` normal ones in a row recover.
    private mutating func observeLatency(_ rtt: Double, hysteresis: Hysteresis) -> [Transition] {
        guard let baseline = rttBaselineMs, rttSamples >= 20 else {
            rttBaselineMs = rttBaselineMs.map { $0 * 0.9 + rtt * 0.1 } ?? rtt
            rttSamples += 1
            return []
        }
        let slow = rtt > max(baseline * 3, baseline + 5)
        recentSlow.append(slow)
        if recentSlow.count > hysteresis.window { recentSlow.removeFirst(recentSlow.count - hysteresis.window) }
        if !slow { rttBaselineMs = baseline * 0.95 + rtt * 0.05 }
        if !latencyRegressed && recentSlow.filter({ $0 }).count >= hysteresis.failuresToDown {
            latencyRegressed = true
            return [.latencyRegressed]
        }
        if latencyRegressed && recentSlow.suffix(hysteresis.successesToUp).allSatisfy({ !$0 }) && recentSlow.count >= hysteresis.successesToUp {
            latencyRegressed = false
            recentSlow.removeAll()
            return [.latencyRecovered]
        }
        return []
    }
}
