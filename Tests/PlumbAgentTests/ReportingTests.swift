import Foundation
import PlumbAgent
import PlumbWire
import Synchronization
import Testing

@Suite("spool and reporter")
struct ReportingTests {
    func encode(_ ids: [String]) -> (Int64, DropCounters) throws -> Data {
        { sequence, dropped in
            try JSONEncoder().encode(Report(agentId: "a", sequence: sequence, createdAtMs: 0, dropped: dropped, results: ids.map { result($0) }))
        }
    }

    @Test("batches are numbered, survive a restart, and sequence numbers are never reused")
    func spoolRestart() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        do {
            let spool = try Spool(directory: directory.path, maxBytes: 1 << 20)
            try spool.append(count: 1, encode: encode(["a"]))
            try spool.append(count: 1, encode: encode(["b"]))
            spool.remove(sequence: 1)
        }
        let reopened = try Spool(directory: directory.path, maxBytes: 1 << 20)
        #expect(reopened.entries.map(\.sequence) == [2])
        #expect(reopened.nextSequence == 3)
        // Even without state.json the next number is past every spooled batch.
        try FileManager.default.removeItem(atPath: directory.path + "/state.json")
        let again = try Spool(directory: directory.path, maxBytes: 1 << 20)
        #expect(again.nextSequence == 3)
        let report = try JSONDecoder().decode(Report.self, from: #require(again.read(again.entries[0])))
        #expect(report.results.map(\.probeId) == ["b"])
    }

    @Test("a sequence at Int64.max, from the collector or on disk, never traps the agent")
    func spoolTopSequence() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        do {
            let spool = try Spool(directory: directory.path, maxBytes: 1 << 20)
            spool.advance(past: .max)
            #expect(spool.nextSequence == .max)
            try spool.append(count: 1, encode: encode(["a"]))
        }
        // A batch named with the top sequence on disk: the spool opens.
        let reopened = try Spool(directory: directory.path, maxBytes: 1 << 20)
        #expect(reopened.entries.map(\.sequence) == [.max])
        #expect(reopened.nextSequence == .max)
    }

    @Test("over its bound the spool drops the oldest batches and counts them; the counts travel in the next report")
    func spoolBound() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let spool = try Spool(directory: directory.path, maxBytes: 64 * 1024)
        let ids = (0..<150).map { "probe-\($0)" }  // ~ 20 KiB per batch
        for _ in 0..<5 { try spool.append(count: ids.count, encode: encode(ids)) }
        #expect(spool.totalBytes <= 64 * 1024)
        #expect(spool.entries.first?.sequence == 3)
        #expect(spool.dropped == DropCounters(batches: 2, results: 300))
        let newest = try JSONDecoder().decode(Report.self, from: #require(spool.read(spool.entries.last!)))
        #expect(newest.dropped.batches == 1)  // counted when batch 5 was written, before it pushed batch 2 out
        try spool.append(count: 1, encode: encode(["x"]))
        let latest = try JSONDecoder().decode(Report.self, from: #require(spool.read(spool.entries.last!)))
        #expect(latest.dropped == DropCounters(batches: 2, results: 300))
    }

    @Test("after the collector says it has later batches (a lost spool), numbering continues past them")
    func advancePastCollector() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let spool = try Spool(directory: directory.path, maxBytes: 1 << 20)
        spool.advance(past: 41)
        #expect(try spool.append(count: 1, encode: encode(["a"])).sequence == 42)
        spool.advance(past: 10)  // never backwards
        #expect(spool.nextSequence == 43)
        #expect(try Spool(directory: directory.path, maxBytes: 1 << 20).nextSequence == 43)
    }

    @Test(
        "a result matches its expectation only when the network said so",
        arguments: [
            (ExpectedVerdict.reach, ProbeOutcome.ok, true), (.reach, .refused, false), (.reach, .timeout, false),
            (.block, .timeout, true), (.block, .unreachable, true), (.block, .refused, false), (.block, .ok, false),
            (.block, .unsupported, false), (.block, .error, false), (.block, .dnsFailure, false), (.block, .tlsFailure, false),
        ])
    func expectation(verdict: ExpectedVerdict, outcome: ProbeOutcome, matches: Bool) {
        var probe = result("x")
        probe.expected = verdict
        probe.outcome = outcome
        #expect(probe.matchesExpectation == matches)
    }

    @Test("an unwritable spool directory is a clear error")
    func spoolUnwritable() throws {
        #expect(throws: SpoolError.self) { try Spool(directory: "/proc/plumb-cannot-exist", maxBytes: 1 << 20) }
    }

    @Test("collector outage: refused, then 503, then accepting — every result arrives exactly once, in order")
    func replayAcrossOutage() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let collector = try FakeCollector()
        collector.stop()  // down: connections are refused
        let session = Session(directory: nil)
        session.set(.init(agentId: "agent-1", token: "t"))
        collector.state.withLock { $0.tokens = ["t"] }
        let spool = try Spool(directory: directory.path, maxBytes: 1 << 20)
        let reporter = Reporter(
            destination: .collector(CollectorClient(baseURL: collector.url, timeoutMs: 2_000), session, spool), logger: quietLogger,
            agentId: { "agent-1" })
        let sender = Task { await reporter.runSending() }
        defer { sender.cancel() }
        var expected: [String] = []
        for batch in 0..<4 {
            for index in 0..<10 {
                let id = "r\(batch)-\(index)"
                expected.append(id)
                reporter.submit(result(id))
            }
            await reporter.flush()
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(spool.entries.count == 4)
        collector.state.withLock { $0.failNextReports = 2 }
        try collector.start()
        #expect(await eventually(seconds: 20) { spool.entries.isEmpty })
        let reports = collector.reports
        #expect(reports.map(\.sequence) == [1, 2, 3, 4])
        #expect(reports.flatMap(\.results).map(\.probeId) == expected)
        #expect(collector.state.withLock { $0.duplicates } == 0)
        #expect(reporter.delivered == 40)
        collector.stop()
    }

    @Test("an agent restarted during the outage sends the previous run's batches first, then continues the sequence")
    func replayAfterRestart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let collector = try FakeCollector()
        collector.stop()
        collector.state.withLock { $0.tokens = ["t"] }
        let session = Session(directory: directory.path)
        session.set(.init(agentId: "agent-1", token: "t"))
        do {
            let spool = try Spool(directory: directory.path, maxBytes: 1 << 20)
            let first = Reporter(
                destination: .collector(CollectorClient(baseURL: collector.url), session, spool), logger: quietLogger, agentId: { "agent-1" })
            first.submit(result("before-1"))
            await first.flush()
            first.submit(result("before-2"))
            await first.flush()
        }
        try collector.start()
        defer { collector.stop() }
        let spool = try Spool(directory: directory.path, maxBytes: 1 << 20)
        let second = Reporter(
            destination: .collector(CollectorClient(baseURL: collector.url), Session(directory: directory.path), spool), logger: quietLogger,
            agentId: { "agent-1" })
        second.submit(result("after-1"))
        await second.flush()
        #expect(await second.drain(deadline: .now + .seconds(10)))
        #expect(collector.reports.map(\.sequence) == [1, 2, 3])
        #expect(collector.reports.flatMap(\.results).map(\.probeId) == ["before-1", "before-2", "after-1"])
    }

    /// A reporter for agent-1, registered with `collector` (token `t`), spooling in `spool`.
    func signedInReporter(to collector: FakeCollector, spool: TemporaryDirectory, settings: PlanSettings = PlanSettings()) throws -> Reporter {
        collector.state.withLock { $0.tokens = ["t"] }
        let session = Session(directory: nil)
        session.set(.init(agentId: "agent-1", token: "t"))
        return Reporter(
            destination: .collector(CollectorClient(baseURL: collector.url), session, try Spool(directory: spool.path, maxBytes: 1 << 20)),
            settings: settings, logger: quietLogger, agentId: { "agent-1" })
    }

    @Test("a batch the collector refuses for good is set aside in rejected/, and the rest still flows")
    func rejected() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let collector = try FakeCollector()
        defer { collector.stop() }
        // A corrupt batch on disk (as a broken disk or an older agent might leave it).
        _ = FileManager.default.createFile(atPath: directory.path + "/00000000000000000001-1.json", contents: Data("{not json".utf8))
        let reporter = try signedInReporter(to: collector, spool: directory)
        reporter.submit(result("good"))
        await reporter.flush()
        #expect(await reporter.drain(deadline: .now + .seconds(10)))
        #expect(collector.reports.map(\.sequence) == [2])
        #expect(FileManager.default.fileExists(atPath: directory.path + "/rejected/00000000000000000001-1.json"))
    }

    @Test("with nothing to report, the agent still sends an empty report every interval to the collector (its heartbeat)")
    func heartbeat() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let collector = try FakeCollector()
        defer { collector.stop() }
        let reporter = try signedInReporter(to: collector, spool: directory, settings: PlanSettings(reportIntervalMs: 200))
        let batching = Task { await reporter.runBatching() }
        let sending = Task { await reporter.runSending() }
        defer {
            batching.cancel()
            sending.cancel()
        }
        #expect(await eventually(seconds: 30) { collector.reports.count >= 3 })
        #expect(collector.reports.allSatisfy { $0.results.isEmpty })
        #expect(Set(collector.reports.map(\.sequence)).count == collector.reports.count)
    }

    @Test("a refused token triggers a new registration and the batch waits in the spool")
    func unauthorized() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let collector = try FakeCollector()
        defer { collector.stop() }
        let session = Session(directory: nil)
        session.set(.init(agentId: "agent-1", token: "stale"))
        let asked = Wakeup()
        let reporter = Reporter(
            destination: .collector(CollectorClient(baseURL: collector.url), session, try Spool(directory: directory.path, maxBytes: 1 << 20)),
            logger: quietLogger, agentId: { "agent-1" }, unauthorized: { asked.signal() })
        reporter.submit(result("x"))
        await reporter.flush()
        #expect(await reporter.drain(deadline: .now + .seconds(5)) == false)
        #expect(await asked.wait(for: .seconds(1)))
        #expect(session.credentials == nil)
        #expect(collector.reports.isEmpty)
    }
}
