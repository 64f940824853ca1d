import PlumbCore
import Testing

@Suite("repeat schedule: which firing alerts are sent again to which receiver, and their endsAt")
struct RepeatScheduleTests {
    struct Step: Sendable, CustomTestStringConvertible {
        /// What happens at `now`: a notification queued (`notified`), or an evaluation asking what is due.
        enum Event: Sendable {
            case notified(receiver: String, alert: String)
            case due([RepeatSchedule.Subscription])
        }
        var now: Int64
        var event: Event
        /// For `.due`: the receivers and alerts due, as `receiver|alert`.
        var expected: [String] = []
        var testDescription: String { "at \(now): \(event) -> \(expected)" }
    }

    /// A named sequence of steps (one table row).
    struct Scenario: Sendable, CustomTestStringConvertible {
        var name: String
        var steps: [Step]
        init(_ name: String, _ steps: [Step]) {
            self.name = name
            self.steps = steps
        }
        var testDescription: String { name }
    }

    static func am(_ alert: String = "a-1000", starts: Int64 = 1_000, every intervalMs: Int64 = 2_000) -> RepeatSchedule.Subscription {
        RepeatSchedule.Subscription(receiver: "am", alertId: alert, startsAtMs: starts, intervalMs: intervalMs)
    }

    static func ops(_ alert: String = "a-1000", starts: Int64 = 1_000, every intervalMs: Int64 = 5_000) -> RepeatSchedule.Subscription {
        RepeatSchedule.Subscription(receiver: "ops", alertId: alert, startsAtMs: starts, intervalMs: intervalMs)
    }

    @Test(
        "event → due table",
        arguments: [
            Scenario(
                "The firing is queued at 1 s; the first repeat is due one interval after it, then one interval after each.",
                [
                    Step(now: 1_000, event: .notified(receiver: "am", alert: "a-1000")),
                    Step(now: 2_999, event: .due([am()])),
                    Step(now: 3_000, event: .due([am()]), expected: ["am|a-1000"]),
                    Step(now: 3_500, event: .due([am()])),
                    Step(now: 5_100, event: .due([am()]), expected: ["am|a-1000"]),
                ]),
            Scenario(
                "Nothing known (a firing queued before a restart that lost it): counted from the alert's start.",
                [
                    Step(now: 2_000, event: .due([am()])),
                    Step(now: 3_000, event: .due([am()]), expected: ["am|a-1000"]),
                ]),
            Scenario(
                "An evaluation that comes late (the collector was busy or down) sends one repeat, not one per missed interval.",
                [
                    Step(now: 1_000, event: .notified(receiver: "am", alert: "a-1000")),
                    Step(now: 60_000, event: .due([am()]), expected: ["am|a-1000"]),
                    Step(now: 61_000, event: .due([am()])),
                ]),
            Scenario(
                "Each receiver on its own interval.",
                [
                    Step(now: 1_000, event: .notified(receiver: "am", alert: "a-1000")),
                    Step(now: 1_000, event: .notified(receiver: "ops", alert: "a-1000")),
                    Step(now: 3_000, event: .due([am(), ops()]), expected: ["am|a-1000"]),
                    Step(now: 6_000, event: .due([am(), ops()]), expected: ["am|a-1000", "ops|a-1000"]),
                ]),
            Scenario("Interval 0: never.", [Step(now: 100_000, event: .due([am(every: 0)]))]),
            Scenario(
                "A new episode of the same problem (a new alert id) has its own schedule, from its own start.",
                [
                    Step(now: 1_000, event: .notified(receiver: "am", alert: "a-1000")),
                    Step(now: 3_000, event: .due([am()]), expected: ["am|a-1000"]),
                    Step(now: 4_000, event: .notified(receiver: "am", alert: "a-4000")),
                    Step(now: 5_000, event: .due([am("a-4000", starts: 4_000)])),
                    Step(now: 6_000, event: .due([am("a-4000", starts: 4_000)]), expected: ["am|a-4000"]),
                ]),
            Scenario(
                "A resolved alert (no longer subscribed) is forgotten; were it subscribed again it would count from its start.",
                [
                    Step(now: 5_000, event: .notified(receiver: "am", alert: "a-1000")),
                    Step(now: 6_000, event: .due([])),
                    Step(now: 6_000, event: .due([am()]), expected: ["am|a-1000"]),
                ]),
            Scenario(
                "A notification older than the one known does not move the schedule back.",
                [
                    Step(now: 5_000, event: .notified(receiver: "am", alert: "a-1000")),
                    Step(now: 2_000, event: .notified(receiver: "am", alert: "a-1000")),
                    Step(now: 6_000, event: .due([am()])),
                    Step(now: 7_000, event: .due([am()]), expected: ["am|a-1000"]),
                ]),
        ])
    func table(scenario: Scenario) {
        var schedule = RepeatSchedule()
        for step in scenario.steps {
            switch step.event {
            case .notified(let receiver, let alert):
                schedule.notified(receiver: receiver, alertId: alert, at: step.now)
            case .due(let subscriptions):
                let due = schedule.due(subscriptions, now: step.now).map { "\($0.key.receiver)|\($0.key.alertId)" }
                #expect(due == step.expected, "\(step.testDescription)")
            }
        }
    }

    @Test(
        "a firing alert's endsAt is that many intervals after the request",
        arguments: [
            (sent: Int64(10_000), interval: Int64(60_000), intervals: 4, endsAt: Int64(250_000)),
            (10_000, 2_000, 3, 16_000),
            (10_000, 2_000, 0, 12_000),  // at least one interval
        ])
    func endsAt(sent: Int64, interval: Int64, intervals: Int, endsAt: Int64) {
        #expect(RepeatSchedule.firingEndsAt(sentAtMs: sent, intervalMs: interval, intervals: intervals) == endsAt)
    }
}
