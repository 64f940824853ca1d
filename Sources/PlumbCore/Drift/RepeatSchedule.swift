/// When a firing alert is sent again to a receiver: a pure schedule, time passed in.
///
/// A receiver that repeats gets a firing alert again every interval, counted from the last notification of that
/// alert queued for that receiver (its `firing`, or its last repeat). Alertmanager needs this: it expires a firing
/// alert at its `endsAt`, or `resolve_timeout` after it last heard of an alert sent without one, however long the
/// problem lasts. Prometheus re-sends for the same reason.
public struct RepeatSchedule: Sendable, Hashable {
    /// A (receiver, alert) pair.
    public struct Key: Sendable, Hashable {
        /// The receiver's name.
        public var receiver: String
        /// The alert's id (one episode: a new episode of the same problem has its own schedule).
        public var alertId: String

        /// Creates a key.
        public init(receiver: String, alertId: String) {
            self.receiver = receiver
            self.alertId = alertId
        }
    }

    /// One open alert that one repeating receiver accepts.
    public struct Subscription: Sendable, Hashable {
        /// The receiver and the alert.
        public var key: Key
        /// When the alert fired: the first repeat is due an interval after it when nothing was notified yet.
        public var startsAtMs: Int64
        /// The receiver's repeat interval in milliseconds; 0 or less never repeats.
        public var intervalMs: Int64

        /// Creates a subscription.
        public init(receiver: String, alertId: String, startsAtMs: Int64, intervalMs: Int64) {
            self.key = Key(receiver: receiver, alertId: alertId)
            self.startsAtMs = startsAtMs
            self.intervalMs = intervalMs
        }
    }

    /// When each (receiver, alert) was last notified.
    public private(set) var lastNotified: [Key: Int64]

    /// A schedule that knows the last notifications (loaded from the store after a restart).
    public init(lastNotified: [Key: Int64] = [:]) {
        self.lastNotified = lastNotified
    }

    /// Records a notification of `alertId` to `receiver` queued at `now` (a `firing`, a `resolved`, a repeat). An
    /// earlier time than the one known is ignored.
    public mutating func notified(receiver: String, alertId: String, at now: Int64) {
        let key = Key(receiver: receiver, alertId: alertId)
        lastNotified[key] = max(lastNotified[key] ?? now, now)
    }

    /// The subscriptions due a repeat at `now`, in the order given; each is recorded as notified at `now`. Pairs
    /// that are not among `subscriptions` (resolved alerts, receivers that stopped repeating) are forgotten.
    public mutating func due(_ subscriptions: [Subscription], now: Int64) -> [Subscription] {
        var due: [Subscription] = []
        var kept: [Key: Int64] = [:]
        for subscription in subscriptions where subscription.intervalMs > 0 {
            let last = lastNotified[subscription.key] ?? subscription.startsAtMs
            if now - last >= subscription.intervalMs {
                due.append(subscription)
                kept[subscription.key] = now
            } else {
                kept[subscription.key] = last
            }
        }
        lastNotified = kept
        return due
    }

    /// The `endsAt` of a firing alert sent at `sentAtMs` to a receiver that repeats every `intervalMs`: `intervals`
    /// intervals ahead, so the receiver keeps it while repeats arrive and lets it go when they stop (the sender is
    /// down). Prometheus sends four times its resend delay.
    public static func firingEndsAt(sentAtMs: Int64, intervalMs: Int64, intervals: Int) -> Int64 {
        sentAtMs + intervalMs * Int64(max(intervals, 1))
    }
}
