/// A value in a report that the collector refuses: where it is (a JSON path) and what is wrong with it.
public struct ReportProblem: Sendable, Hashable, CustomStringConvertible {
    /// The field, as a path into the document: `createdAtMs`, `results[3].burst.sent`.
    public var field: String
    /// What is wrong, and what would be right.
    public var message: String

    /// Creates a problem.
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// The bounds a report's values are held to at the collector's door, by their meaning. Every value a collector
/// computes with (times it subtracts, counts it adds to counters, durations it turns into integers) is checked here,
/// so that no value from the wire can trap in arithmetic later.
public struct ReportLimits: Sendable, Hashable {
    /// How far before the collector's clock a batch or a result may be dated: a spool replayed after a long cut.
    public var pastMs: Int64
    /// How far after the collector's clock (agents' clocks drift; a batch from the future is a broken clock).
    public var futureMs: Int64
    /// The longest duration or round trip a result may report, in milliseconds.
    public var maxDurationMs: Double
    /// The most datagrams one burst may count.
    public var maxBurst: Int
    /// How far past the agent's last stored sequence a batch's sequence may jump (batches dropped from a full spool
    /// leave gaps; a jump of billions poisons the agent's numbering).
    public var maxSequenceStep: Int64

    /// The defaults: a week back, an hour ahead, an hour per duration, 10,000 datagrams a burst, 10 million sequences.
    public init(
        pastMs: Int64 = 7 * 24 * 3_600_000, futureMs: Int64 = 3_600_000, maxDurationMs: Double = 3_600_000, maxBurst: Int = 10_000,
        maxSequenceStep: Int64 = 10_000_000
    ) {
        self.pastMs = pastMs
        self.futureMs = futureMs
        self.maxDurationMs = maxDurationMs
        self.maxBurst = maxBurst
        self.maxSequenceStep = maxSequenceStep
    }
}

extension Report {
    /// Every value of this report outside `limits` at `now` (the collector's clock, ms since the epoch), first problem
    /// first; empty when the report can be stored and evaluated. `lastSequence` is the agent's last stored sequence,
    /// when known (the sequence is then held within `maxSequenceStep` of it).
    public func problems(now: Int64, lastSequence: Int64?, limits: ReportLimits = ReportLimits()) -> [ReportProblem] {
        var problems: [ReportProblem] = []
        let earliest = now.subtractingReportingOverflow(limits.pastMs).partialValue
        let latest = now.addingReportingOverflow(limits.futureMs).overflow ? Int64.max : now + limits.futureMs
        func time(_ value: Int64, _ field: String) {
            guard value < earliest || value > latest else { return }
            problems.append(
                ReportProblem(
                    field: field,
                    message:
                        "\(value) is not within \(limits.pastMs / 3_600_000) h before and \(limits.futureMs / 60_000) min after the collector's clock (\(now)); check the agent's clock"
                ))
        }
        func count(_ value: Int, _ field: String, atMost bound: Int = .max) {
            guard value < 0 || value > bound else { return }
            problems.append(ReportProblem(field: field, message: "\(value) is not a count between 0 and \(bound)"))
        }
        func duration(_ value: Double?, _ field: String) {
            guard let value, !(value.isFinite && value >= 0 && value <= limits.maxDurationMs) else { return }
            problems.append(ReportProblem(field: field, message: "\(value) is not a duration between 0 and \(Int(limits.maxDurationMs)) ms"))
        }
        if sequence < 1 {
            problems.append(ReportProblem(field: "sequence", message: "\(sequence): sequence numbers start at 1"))
        } else if let lastSequence, sequence > lastSequence, sequence - lastSequence > limits.maxSequenceStep {
            problems.append(
                ReportProblem(
                    field: "sequence",
                    message: "\(sequence) jumps more than \(limits.maxSequenceStep) past the agent's last stored sequence \(lastSequence)"))
        }
        time(createdAtMs, "createdAtMs")
        count(dropped.batches, "dropped.batches")
        count(dropped.results, "dropped.results")
        if let spoolBatches { count(spoolBatches, "spoolBatches") }
        for (index, result) in results.enumerated() {
            let at = "results[\(index)]"
            time(result.startedAtMs, "\(at).startedAtMs")
            if let port = result.port { count(port, "\(at).port", atMost: 65_535) }
            if let status = result.httpStatus { count(status, "\(at).httpStatus", atMost: 999) }
            duration(result.timings.dnsMs, "\(at).timings.dnsMs")
            duration(result.timings.connectMs, "\(at).timings.connectMs")
            duration(result.timings.tlsMs, "\(at).timings.tlsMs")
            duration(result.timings.firstByteMs, "\(at).timings.firstByteMs")
            duration(result.timings.totalMs, "\(at).timings.totalMs")
            if let burst = result.burst {
                count(burst.sent, "\(at).burst.sent", atMost: limits.maxBurst)
                count(burst.received, "\(at).burst.received", atMost: max(0, burst.sent))
                count(burst.duplicates, "\(at).burst.duplicates", atMost: limits.maxBurst)
                count(burst.reordered, "\(at).burst.reordered", atMost: limits.maxBurst)
                duration(burst.rttMinMs, "\(at).burst.rttMinMs")
                duration(burst.rttAvgMs, "\(at).burst.rttAvgMs")
                duration(burst.rttMaxMs, "\(at).burst.rttMaxMs")
            }
        }
        return problems
    }
}
