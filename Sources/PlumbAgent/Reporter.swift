import Foundation
import Logging
import PlumbProbes
import PlumbWire
import Synchronization

/// Where reports go.
public enum ReportDestination: Sendable {
    /// Spooled on disk, then posted to the collector and removed once acknowledged.
    case collector(CollectorClient, Session, Spool)
    /// Written as JSON lines to a file descriptor (standalone mode).
    case output(Int32)
}

/// Collects results into batches and delivers them: to the spool and the collector, or as JSON lines.
///
/// A batch closes every `reportIntervalMs`, when it holds `maxBatchResults`, or at once when the agent's identity
/// changed. In collector mode every batch is written to the spool first and removed only after the collector
/// acknowledged it; while the collector is unreachable the sender retries with exponential backoff (1 s up to three report intervals, 2–60 s,
/// jittered) and sends in sequence order when it is back.
public final class Reporter: Sendable {
    private struct Buffer {
        var results: [ProbeResult] = []
        var identity: AgentIdentity?
        var planId: String?
        var lostInMemory = DropCounters()
        var nextOutputSequence: Int64 = 1
        /// The interval passed: a batch goes to the collector even when empty (the agent's heartbeat).
        var heartbeat = false
    }

    private let destination: ReportDestination
    private let buffer = Mutex(Buffer())
    private let settings: Mutex<PlanSettings>
    private let agentId: @Sendable () -> String
    private let logger: Logger
    private let flushSignal: AsyncStream<Void>.Continuation
    private let flushSignals: AsyncStream<Void>
    private let sendSignal: AsyncStream<Void>.Continuation
    private let sendSignals: AsyncStream<Void>
    private let unauthorized: @Sendable () -> Void
    private let sentCount = Atomic<Int>(0)
    /// Results held in memory at most when the spool cannot be written (a full disk); beyond, the oldest are dropped.
    let memoryBound = 50_000

    /// A reporter for `destination`; `agentId` names the agent in each batch; `unauthorized` is called when the collector
    /// refuses the token.
    public init(
        destination: ReportDestination, settings: PlanSettings = PlanSettings(), logger: Logger, agentId: @escaping @Sendable () -> String,
        unauthorized: @escaping @Sendable () -> Void = {}
    ) {
        self.destination = destination
        self.settings = Mutex(settings)
        self.logger = logger
        self.agentId = agentId
        self.unauthorized = unauthorized
        (flushSignals, flushSignal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (sendSignals, sendSignal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Takes new limits (batch size, interval) from a plan.
    public func apply(_ plan: Plan) {
        settings.withLock { $0 = plan.settings }
        buffer.withLock { $0.planId = plan.planId }
    }

    /// Queues one result.
    public func submit(_ result: ProbeResult) {
        let full = buffer.withLock { buffer -> Bool in
            buffer.results.append(result)
            return buffer.results.count >= settings.withLock { $0.maxBatchResults }
        }
        if full { flushSignal.yield() }
    }

    /// Puts the agent's changed identity into the next batch and closes that batch now.
    public func identityChanged(_ identity: AgentIdentity) {
        buffer.withLock { $0.identity = identity }
        flushSignal.yield()
    }

    /// Results delivered (acknowledged by the collector, or written out).
    public var delivered: Int { sentCount.load(ordering: .relaxed) }

    /// Closes batches on the interval, on size, or on an identity change, until cancelled.
    public func runBatching() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [flushSignals] in
                for await _ in flushSignals { await self.flush() }
            }
            group.addTask {
                // Short steps, so a new plan's interval takes effect within a second.
                var last = ContinuousClock.now
                while !Task.isCancelled {
                    let interval = Duration.milliseconds(self.settings.withLock { $0.reportIntervalMs })
                    let due = last + interval
                    do { try await Task.sleep(until: min(due, .now + .seconds(1)), clock: .continuous) } catch { return }
                    if ContinuousClock.now >= due {
                        last = .now
                        self.buffer.withLock { $0.heartbeat = true }
                        self.flushSignal.yield()
                    }
                }
            }
            // Both children end when this task is cancelled (the stream's iteration ends, the sleep throws).
            await group.waitForAll()
        }
    }

    /// Closes a batch from what is buffered now. An empty buffer closes no batch, except on the report interval
    /// towards a collector: an empty report then tells it the agent is alive (an agent with an empty plan, or
    /// whose probes are all slower than the interval, is not silent).
    public func flush() async {
        let sendsEmpty: Bool
        if case .collector = destination { sendsEmpty = true } else { sendsEmpty = false }
        let taken = buffer.withLock { buffer -> (results: [ProbeResult], identity: AgentIdentity?, planId: String?)? in
            let heartbeat = buffer.heartbeat && sendsEmpty
            buffer.heartbeat = false
            guard !buffer.results.isEmpty || buffer.identity != nil || heartbeat else { return nil }
            defer {
                buffer.results = []
                buffer.identity = nil
            }
            return (buffer.results, buffer.identity, buffer.planId)
        }
        guard let taken else { return }
        let id = agentId()
        let now = wallClockMilliseconds()
        switch destination {
        case .output(let fd):
            let sequence = buffer.withLock { buffer -> Int64 in
                defer { buffer.nextOutputSequence += 1 }
                return buffer.nextOutputSequence
            }
            let report = Report(
                agentId: id, sequence: sequence, createdAtMs: now, planId: taken.planId, identity: taken.identity, results: taken.results)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            guard var line = try? encoder.encode(report) else { return }
            line.append(10)
            let payload = line
            let written = await BlockingPool.control.run { Self.writeAll(fd, payload) }
            if written { sentCount.add(taken.results.count, ordering: .relaxed) }
        case .collector(_, _, let spool):
            let lost = buffer.withLock { $0.lostInMemory }
            let results = taken.results
            let outcome: Result<Spool.Entry, any Error> = await BlockingPool.control.run {
                Result {
                    try spool.append(count: results.count) { sequence, dropped in
                        let counters = DropCounters(batches: dropped.batches + lost.batches, results: dropped.results + lost.results)
                        // The batches already waiting, plus this one: how far behind the collector the agent is.
                        let report = Report(
                            agentId: id, sequence: sequence, createdAtMs: now, planId: taken.planId, dropped: counters, identity: taken.identity,
                            results: results, spoolBatches: spool.entries.count + 1)
                        return try JSONEncoder().encode(report)
                    }
                }
            }
            switch outcome {
            case .success:
                sendSignal.yield()
            case .failure(let error):
                logger.error("cannot spool a report batch", metadata: ["error": "\(error)"])
                // Keep the results for the next try, within a memory bound; count what has to go.
                buffer.withLock { buffer in
                    buffer.results = taken.results + buffer.results
                    if buffer.identity == nil { buffer.identity = taken.identity }
                    let excess = buffer.results.count - memoryBound
                    if excess > 0 {
                        buffer.results.removeFirst(excess)
                        buffer.lostInMemory.results += excess
                        buffer.lostInMemory.batches += 1
                    }
                }
            }
        }
    }

    /// Posts spooled batches in sequence order until cancelled (collector mode; returns at once otherwise).
    public func runSending() async {
        guard case .collector(let client, let session, let spool) = destination else { return }
        var backoff = 1.0
        while !Task.isCancelled {
            switch await sendOldest(client: client, session: session, spool: spool) {
            case .sent, .skipped:
                backoff = 1
                continue
            case .empty:
                var iterator = sendSignals.makeAsyncIterator()
                _ = await iterator.next()
            case .retry:
                let delay = backoff * Double.random(in: 0.5...1.0)
                // Capped at three report intervals (2–60 s): once the network or the collector is back, the agent
                // reports again well within the collector's silence window, instead of sleeping out a minute.
                let cap = min(60, max(2, 3 * Double(settings.withLock { $0.reportIntervalMs }) / 1000))
                backoff = min(cap, backoff * 2)
                do { try await Task.sleep(for: .seconds(delay)) } catch { return }
            // A new batch does not cut the wait short: the collector is down, not waiting for us.
            }
        }
    }

    /// Sends what is spooled until the spool is empty, a send fails, or `deadline` passes (shutdown).
    @discardableResult
    public func drain(deadline: ContinuousClock.Instant) async -> Bool {
        guard case .collector(let client, let session, let spool) = destination else { return true }
        while ContinuousClock.now < deadline {
            switch await sendOldest(client: client, session: session, spool: spool, timeoutMs: max(200, Int((deadline - .now) / .milliseconds(1)))) {
            case .sent, .skipped: continue
            case .empty: return true
            case .retry: return false
            }
        }
        return spool.entries.isEmpty
    }

    private enum SendOutcome {
        case sent
        case skipped
        case empty
        case retry
    }

    private func sendOldest(client: CollectorClient, session: Session, spool: Spool, timeoutMs: Int? = nil) async -> SendOutcome {
        guard let entry = spool.entries.first else { return .empty }
        guard let credentials = session.credentials else { return .retry }
        guard let data = await BlockingPool.control.run({ spool.read(entry) }) else {
            spool.remove(sequence: entry.sequence)  // vanished from disk: nothing to send
            return .skipped
        }
        var client = client
        if let timeoutMs { client.timeoutMs = min(client.timeoutMs, timeoutMs) }
        do {
            let acknowledgement = try await client.report(agentId: credentials.agentId, token: credentials.token, body: Array(data))
            if acknowledgement.sequence != entry.sequence {
                logger.warning(
                    "the collector acknowledged another sequence",
                    metadata: ["sent": "\(entry.sequence)", "acknowledged": "\(acknowledgement.sequence)"])
            }
            spool.remove(sequence: entry.sequence)
            sentCount.add(entry.count, ordering: .relaxed)
            return .sent
        } catch .unauthorized(let detail) {
            logger.warning("the collector refused the agent token; registering again", metadata: ["detail": "\(detail)"])
            session.invalidate()
            unauthorized()
            return .retry
        } catch .malformed(let detail) {
            // A 2xx means committed: the collector acknowledges only after storing. Do not send it again.
            logger.warning("the collector's acknowledgement was unreadable; counting the batch as delivered", metadata: ["detail": "\(detail)"])
            spool.remove(sequence: entry.sequence)
            sentCount.add(entry.count, ordering: .relaxed)
            return .sent
        } catch .rejected(let status, let detail) {
            logger.error(
                "the collector rejected a report batch for good; it is kept in the spool's rejected/ folder",
                metadata: ["sequence": "\(entry.sequence)", "status": "\(status)", "detail": "\(detail)"])
            spool.reject(sequence: entry.sequence)
            return .skipped
        } catch {
            logger.debug("report not delivered; will retry", metadata: ["error": "\(error)"])
            return .retry
        }
    }

    private static func writeAll(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }
}
